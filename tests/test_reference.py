"""The fast per-sample engine computes what the textbook loop computes."""

import numpy as np
import pytest

from mlp_lib import MLP, Constant, DivergenceError, LinearDecay
from mlp_lib.engines import per_sample, reference

FOUR = [784, 512, 256, 64, 10]
SIX = [784, 512, 256, 128, 64, 32, 10]


@pytest.mark.parametrize(
    "sizes, activation, init, schedule",
    [
        (FOUR, "relu", "he", Constant(0.01)),
        (FOUR, "sigmoid", "normal", LinearDecay(0.01, 1e-5, 1000)),
        # the six-layer nets: the same code paths, twice the time (the full suite runs them)
        pytest.param(SIX, "relu", "he", Constant(0.01), marks=pytest.mark.slow),
        pytest.param(SIX, "sigmoid", "xavier", Constant(0.01), marks=pytest.mark.slow),
    ],
)
def test_engine_equals_the_reference_trainer(mnist_train, sizes, activation, init, schedule):
    """2,000 steps in float64 from the same weights: every weight, bias and
    per-step loss agrees to 1e-12 (only the rounding order differs)."""
    images, labels = mnist_train[0][:2000], mnist_train[1][:2000]
    start = MLP(sizes, activation, init, seed=11)
    slow, fast = start.copy(), start.copy()
    expected = reference.train_per_sample(slow, images, labels, epochs=1, schedule=schedule)
    got = per_sample.train_per_sample(
        fast, images, labels, epochs=1, schedule=schedule, progress=False
    )
    diff = max(
        np.abs(a - b).max() for a, b in zip(slow.weights + slow.biases, fast.weights + fast.biases)
    )
    assert diff <= 1e-12
    assert np.abs(expected.losses - got.losses).max() <= 1e-12
    assert np.allclose(expected.loss_curve, got.loss_curve, rtol=0, atol=1e-12)
    assert expected.steps == got.steps == 2000 and len(expected.loss_curve) == 20
    moved = max(np.abs(a - b).max() for a, b in zip(slow.weights, start.weights))
    assert moved > 1e-3  # training did happen


def test_reference_trainer_raises_on_divergence_and_checks_its_input(mnist_train):
    images, labels = mnist_train[0][:50], mnist_train[1][:50]
    model = MLP([784, 16, 10], "relu", "uniform", seed=0)
    with pytest.raises(DivergenceError, match="diverged at step"):
        reference.train_per_sample(model, images * 1e200, labels, epochs=1)
    with pytest.raises(ValueError, match="labels must be"):
        reference.train_per_sample(model, images, labels[:10], epochs=1)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        reference.train_per_sample(model, images, labels, epochs=0)
