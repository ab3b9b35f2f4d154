import numpy as np
import pytest

from mlp_lib import MLP
from mlp_lib.core.gradcheck import numerical_gradient, relative_error
from mlp_lib.engines.minibatch import sgd_backward_update


def _sizes(depth):
    """Small nets of `depth` weight layers: [7, 6, 5, ..., 4 classes]."""
    return [7] + list(range(6, 6 - (depth - 1), -1)) + [4]


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh", "leaky_relu"])
@pytest.mark.parametrize("depth", [2, 3, 4, 5, 6])
def test_gradients_match_central_differences(depth, activation):
    rng = np.random.default_rng(depth)
    model = MLP(_sizes(depth), activation, "xavier", seed=depth)
    for b in model.biases:  # nonzero biases so their gradients are tested too
        b[:] = rng.normal(scale=0.1, size=b.shape)
    x = rng.normal(size=(5, 7))
    labels = rng.integers(0, 4, size=5)
    loss, weight_grads, bias_grads = model.gradients(x, labels)
    assert loss == pytest.approx(model.loss(x, labels), rel=1e-12)
    errors = []
    for params, grads in ((model.weights, weight_grads), (model.biases, bias_grads)):
        for p, g in zip(params, grads):
            assert g.shape == p.shape
            errors.append(relative_error(g, numerical_gradient(lambda: model.loss(x, labels), p)))
    assert max(errors) < 1e-6, errors


def test_report_sized_net_gradient_on_a_few_weights():
    model = MLP([784, 512, 256, 64, 10], "relu", "he", seed=0)
    rng = np.random.default_rng(0)
    x, labels = rng.random((2, 784)), np.array([3, 7])
    _, weight_grads, bias_grads = model.gradients(x, labels)
    for layer in range(4):
        w = model.weights[layer]
        for _ in range(3):
            i, j = rng.integers(w.shape[0]), rng.integers(w.shape[1])
            saved = w[i, j]
            w[i, j] = saved + 1e-6
            up = model.loss(x, labels)
            w[i, j] = saved - 1e-6
            down = model.loss(x, labels)
            w[i, j] = saved
            numeric = (up - down) / 2e-6
            assert abs(numeric - weight_grads[layer][i, j]) <= 1e-6 * max(1e-3, abs(numeric))


def test_gradients_are_means_over_rows():
    model = MLP([6, 5, 3], "sigmoid", "normal", seed=1)
    x = np.random.default_rng(1).random((4, 6))
    labels = np.array([0, 2, 1, 2])
    loss, wg, bg = model.gradients(x, labels)
    single = [model.gradients(x[i], labels[i]) for i in range(4)]
    assert loss == pytest.approx(np.mean([s[0] for s in single]))
    for layer in range(2):
        assert np.allclose(wg[layer], np.mean([s[1][layer] for s in single], axis=0))
        assert np.allclose(bg[layer], np.mean([s[2][layer] for s in single], axis=0))


def test_one_sample_and_batch_agree():
    model = MLP([784, 32, 10], seed=0)
    x = np.random.default_rng(0).random((3, 784))
    probs = model.forward(x)
    assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1)
    assert np.allclose(model.forward(x[1]), probs[1])
    assert model.predict(x[1]) == model.predict(x)[1] == probs[1].argmax()
    assert np.array_equal(model.predict_proba(x), probs)


def test_float32_model_stays_float32():
    model = MLP([20, 8, 3], dtype=np.float32, seed=0)
    x = np.random.default_rng(0).random((4, 20))
    loss, wg, bg = model.gradients(x, [0, 1, 2, 0])
    assert all(w.dtype == np.float32 for w in model.weights + wg + bg)
    assert model.forward(x).dtype == np.float32


def test_same_seed_same_weights_and_generator_accepted():
    a = MLP([10, 5, 2], seed=3)
    b = MLP([10, 5, 2], seed=np.random.default_rng(3))
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    c = MLP([10, 5, 2], seed=4)
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_copy_is_deep():
    a = MLP([4, 3, 2], seed=0)
    b = a.copy()
    b.weights[0][:] = 0
    assert a.weights[0].any() and b.layer_sizes == a.layer_sizes


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(layer_sizes=[784]), "at least two positive ints"),
        (dict(layer_sizes=[784, 0, 10]), "at least two positive ints"),
        (
            dict(layer_sizes=[784, 10], activation="tanhh"),
            "unknown activation 'tanhh'; valid: sigmoid, relu, tanh",
        ),
        (
            dict(layer_sizes=[784, 10], init="zeros"),
            "unknown init 'zeros'; valid: normal, uniform, xavier, he",
        ),
        (dict(layer_sizes=[784, 10], dtype=np.int32), "float32 or float64"),
        (dict(layer_sizes=[784, 10], seed=-1), "seed must be"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(**kwargs)


def test_bad_inputs_and_labels():
    model = MLP([5, 4, 3], seed=0)
    before = [w.copy() for w in model.weights]
    with pytest.raises(ValueError, match=r"shape \(N, 5\) or \(5,\), got \(2, 6\)"):
        model.forward(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="NaN or inf"):
        model.forward(np.full((1, 5), np.nan))
    with pytest.raises(TypeError, match="numeric"):
        model.forward(np.array([["a"] * 5]))
    with pytest.raises(ValueError, match=r"labels must lie in 0..2, got values in 0..3"):
        model.gradients(np.zeros((2, 5)), [0, 3])
    with pytest.raises(ValueError, match="labels must be 2 integers"):
        model.gradients(np.zeros((2, 5)), [0.0, 1.0])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.weights))


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_gradients_with_dropout_and_weight_decay(activation):
    """Same masks for every evaluation (a Generator seeded alike), so the loss is a
    deterministic function of the parameters and central differences apply."""
    rng = np.random.default_rng(3)
    model = MLP([8, 7, 6, 4], activation, "xavier", seed=3)
    x, labels = rng.normal(size=(6, 8)), rng.integers(0, 4, size=6)
    options = dict(weight_decay=0.01, dropout=0.3, input_dropout=0.2)
    loss, weight_grads, bias_grads = model.gradients(
        x, labels, rng=np.random.default_rng(7), **options
    )

    def objective():
        return model.gradients(x, labels, rng=np.random.default_rng(7), **options)[0]

    errors = [
        relative_error(g, numerical_gradient(objective, p))
        for params, grads in ((model.weights, weight_grads), (model.biases, bias_grads))
        for p, g in zip(params, grads)
    ]
    assert max(errors) < 1e-6, errors
    plain = model.gradients(x, labels)[0]
    assert loss != plain  # the options did change the objective


def test_dropout_masks_scale_and_rate():
    model = MLP([50, 400, 10], "relu", "he", seed=0)
    x = np.ones((200, 50))
    _, cache = model.forward_cache(x, dropout=0.25, rng=np.random.default_rng(0))
    mask = cache["M"][1]
    assert set(np.unique(mask)) == {0.0, 1 / 0.75}
    assert abs(np.mean(mask == 0) - 0.25) < 0.01
    with pytest.raises(ValueError, match="needs a numpy Generator"):
        model.forward_cache(x, dropout=0.5)
    with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\)"):
        model.forward_cache(x, dropout=1.0, rng=np.random.default_rng(0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "leaky_relu"])
def test_fused_sgd_step_equals_backward_then_update(activation, dtype):
    """sgd_backward_update = backward + θ -= η g, in place on the model's own arrays."""
    rng = np.random.default_rng(5)
    x, labels = rng.normal(size=(9, 8)).astype(dtype), rng.integers(0, 4, size=9)
    options = dict(dropout=0.3, input_dropout=0.1)
    for weight_decay in (0.0, 0.05):
        fused = MLP([8, 7, 6, 4], activation, "xavier", seed=1, dtype=dtype)
        reference = fused.copy()
        arrays = fused.weights + fused.biases
        probs, cache = fused.forward_cache(x, rng=np.random.default_rng(2), **options)
        sgd_backward_update(fused, probs, cache, labels, 0.5, weight_decay)
        probs, cache = reference.forward_cache(x, rng=np.random.default_rng(2), **options)
        weight_grads, bias_grads = reference.backward(probs, cache, labels, weight_decay)
        for p, g in zip(reference.weights + reference.biases, weight_grads + bias_grads):
            p -= dtype(0.5) * g
        tolerance = 1e-6 if dtype is np.float32 else 1e-14
        for new, expected, old in zip(
            fused.weights + fused.biases, reference.weights + reference.biases, arrays
        ):
            assert new is old and new.dtype == dtype and new.flags.c_contiguous
            np.testing.assert_allclose(new, expected, rtol=0, atol=tolerance)
        moved = max(
            np.abs(a - b).max()
            for a, b in zip(
                fused.weights, MLP([8, 7, 6, 4], activation, "xavier", seed=1, dtype=dtype).weights
            )
        )
        assert moved > 1e-3  # the update did reach the model's arrays


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blas_products_match_numpy_for_every_layout(dtype):
    """The model's gemm helpers give numpy's results for C-ordered, Fortran-ordered
    and strided operands, keep the dtype, and update the weights in place."""
    from mlp_lib.core.blas import add_product as _add_product, matmul as _matmul

    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(6, 5)).astype(dtype), rng.normal(size=(5, 4)).astype(dtype)
    layouts = [lambda m: m, np.asfortranarray, lambda m: np.repeat(m, 2, axis=1)[:, ::2]]
    for arrange_left in layouts:
        for arrange_right in layouts:
            product = _matmul(arrange_left(left), arrange_right(right))
            assert product.dtype == dtype and product.flags.c_contiguous
            np.testing.assert_allclose(product, left @ right, rtol=1e-6)
    np.testing.assert_allclose(_matmul(left.T, left), left.T @ left, rtol=1e-6)
    assert _matmul(left[:0], right).shape == (0, 4)  # empty batch
    assert _matmul(left, right.astype(np.float64)).dtype == np.float64  # mixed: numpy's @

    weights, step = rng.normal(size=(5, 3)).astype(dtype), rng.normal(size=(6, 3)).astype(dtype)
    inputs = rng.normal(size=(6, 5)).astype(dtype)
    for keep in (1.0, 0.9):
        expected = keep * weights + inputs.T @ step
        target = weights.copy()
        _add_product(target, inputs, step, dtype(keep))
        np.testing.assert_allclose(target, expected, rtol=1e-5)
        strided = np.repeat(weights, 2, axis=0)[::2]  # not contiguous: numpy fallback
        _add_product(strided, inputs, step, dtype(keep))
        np.testing.assert_allclose(strided, expected, rtol=1e-5)


def test_relu_with_the_cached_zeros_equals_maximum_and_leaves_the_cache_zero():
    from mlp_lib.core.blas import zeros_like

    rng = np.random.default_rng(2)
    model = MLP([600, 5], "relu", "he", seed=0, dtype=np.float32)
    for shape in [(3, 600), (128, 600), (1, 600), (2000, 600)]:  # the last one: over 2**20
        x = rng.normal(size=shape).astype(np.float32)
        _, cache = model.forward_cache(x)
        assert np.array_equal(cache["A"][0], x)
        zeros = zeros_like(x)
        assert np.array_equal(np.maximum(x, zeros), np.maximum(x, 0))
        assert not np.any(zeros) and (np.isscalar(zeros) or not zeros.flags.writeable)
    hidden = MLP([600, 64, 5], "relu", "he", seed=0, dtype=np.float32)
    x = rng.normal(size=(128, 600)).astype(np.float32)
    _, cache = hidden.forward_cache(x)
    expected = np.maximum(x @ hidden.weights[0] + hidden.biases[0], 0)
    # float32 sums of 600 products: BLAS builds may order them differently (eps * sum|x w| ~ 1e-5)
    np.testing.assert_allclose(cache["A"][1], expected, rtol=1e-5, atol=2e-5)
    assert not np.any(zeros_like(cache["A"][1]))  # ReLU never wrote into the shared zeros


def test_layer_errors_pass_a_correct_backward_and_catch_a_broken_derivative():
    """What notebook 01 shows: each layer's relative error, then the same check with
    sigmoid's (1 - a) factor dropped from the backward pass."""
    from mlp_lib.core import functional as F
    from mlp_lib.core.gradcheck import layer_errors

    rng = np.random.default_rng(0)
    model = MLP([12, 8, 6, 10], "sigmoid", "normal", seed=1)
    x, y = rng.random((3, 12)), np.array([3, 7, 1])
    rows = layer_errors(model, x, y)
    assert [(layer, kind) for layer, kind, _, _ in rows] == [
        (1, "W"), (1, "b"), (2, "W"), (2, "b"), (3, "W"), (3, "b")
    ]  # fmt: skip
    assert rows[0][2] == (12, 8) and max(error for *_, error in rows) < 1e-7

    def broken(probs, cache, labels):  # σ'(z) = a, not a (1 - a)
        delta = F.softmax_cross_entropy_grad(probs, labels)
        weight_grads, bias_grads = [None] * 3, [None] * 3
        for layer in (2, 1, 0):
            weight_grads[layer] = cache["A"][layer].T @ delta
            bias_grads[layer] = delta.sum(axis=0)
            if layer:
                delta = (delta @ model.weights[layer].T) * cache["A"][layer]
        return weight_grads, bias_grads

    errors = {(layer, kind): error for layer, kind, _, error in layer_errors(model, x, y, broken)}
    assert errors[(3, "W")] < 1e-7 and errors[(3, "b")] < 1e-7  # above the broken factor
    assert all(errors[(layer, kind)] > 1e-2 for layer in (1, 2) for kind in "Wb")
