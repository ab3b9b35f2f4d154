import numpy as np
import pytest

from mlp_lib.core import functional as F
from mlp_lib.core.gradcheck import numerical_gradient, relative_error


@pytest.mark.parametrize("name", ["sigmoid", "relu", "tanh", "leaky_relu"])
def test_activation_derivative_matches_central_differences(name):
    act, act_grad = F.ACTIVATIONS[name]
    x = np.random.default_rng(0).normal(size=50) * 3
    x = x[np.abs(x) > 1e-3]  # away from ReLU's kink
    numeric = (act(x + 1e-6) - act(x - 1e-6)) / 2e-6
    assert relative_error(act_grad(act(x)), numeric) < 1e-6


def test_sigmoid_extremes_without_warnings():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = F.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    assert out.tolist() == [0.0, 0.5, 1.0]


def test_softmax_huge_logits():
    logits = np.array([[1e300, -1e300, 0.0], [1000.0, 1000.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        probs = F.softmax(logits)
        logp = F.log_softmax(logits)
    assert np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=1), 1)
    assert np.allclose(probs[1], [0.5, 0.5, 0.0])
    assert np.all(np.isfinite(logp[1])) and np.isclose(logp[1, 2], -2000 - np.log(2))
    assert F.cross_entropy(np.array([1000.0, -1000.0]), 1) == pytest.approx(2000.0)


def test_softmax_matches_naive_formula():
    logits = np.random.default_rng(1).normal(size=(4, 10))
    naive = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(F.softmax(logits), naive, rtol=1e-14)
    assert np.allclose(F.log_softmax(logits), np.log(naive), rtol=1e-13)


def test_cross_entropy_gradient_is_yhat_minus_y():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5, 10))
    labels = rng.integers(0, 10, size=5)
    numeric = numerical_gradient(lambda: F.cross_entropy(logits, labels), logits)
    analytic = F.softmax_cross_entropy_grad(F.softmax(logits), labels)
    assert relative_error(analytic, numeric) < 1e-6
    expected = (F.softmax(logits) - F.one_hot(labels)) / 5
    assert np.allclose(analytic, expected, rtol=0, atol=1e-15)


def test_cross_entropy_single_sample_equals_minus_log_prob():
    logits = np.array([0.5, 2.0, -1.0])
    assert F.cross_entropy(logits, 1) == pytest.approx(-np.log(F.softmax(logits)[1]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    x = np.linspace(-3, 3, 10, dtype=dtype).reshape(2, 5)
    for fn in (F.sigmoid, F.relu, F.softmax, F.log_softmax):
        assert fn(x).dtype == dtype
    assert F.relu_grad(F.relu(x)).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_equals_the_two_functions_bit_for_bit(dtype):
    rng = np.random.default_rng(4)
    logits = (rng.normal(size=(37, 10)) * 8).astype(dtype)
    logits[0, 3] = 500  # one saturated row
    labels = rng.integers(0, 10, size=37)
    probs, loss = F.softmax_cross_entropy(logits, labels)
    assert np.array_equal(probs, F.softmax(logits))
    assert loss == F.cross_entropy(logits, labels) and loss.dtype == dtype
    assert loss > 0
