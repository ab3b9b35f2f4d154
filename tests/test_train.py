import numpy as np
import pytest

from mlp_lib import (
    MLP,
    Constant,
    DivergenceError,
    LinearDecay,
    evaluate,
    train_minibatch,
    train_per_sample,
)


def _act(name, h):
    return {
        "relu": lambda: np.maximum(h, 0),
        "sigmoid": lambda: 1 / (1 + np.exp(-h)),
        "tanh": lambda: np.tanh(h),
    }[name]()


def _act_derivative(name, h):
    s = 1 / (1 + np.exp(-h))
    return {
        "relu": lambda: (h > 0) * 1.0,
        "sigmoid": lambda: s * (1 - s),
        "tanh": lambda: 1 - np.tanh(h) ** 2,
    }[name]()


def spec_loop(model, images, labels, rates):
    """The per-sample SGD of docs/experiments.md, written out plainly: W = [b | weights^T] acting on
    concat(1, x); forward, all gradients, then W -= lr[s] * dL/dW."""
    name = model.activation
    W = [np.concatenate((b[:, None], w.T), axis=1) for w, b in zip(model.weights, model.biases)]
    for step, lr in enumerate(rates):
        x, label = images[step % len(images)], labels[step % len(images)]
        X, H = [], []
        for Wn in W:
            X.append(np.concatenate(([1.0], x)))
            H.append(Wn @ X[-1])
            x = _act(name, H[-1])
        y_hat = np.exp(H[-1] - H[-1].max())
        y_hat /= y_hat.sum()
        dH = y_hat - np.eye(len(y_hat))[label]
        grads = [None] * len(W)
        for n in reversed(range(len(W))):
            grads[n] = np.outer(dH, X[n])
            dX = dH @ W[n]
            if n:
                dH = dX[1:] * _act_derivative(name, H[n - 1])
        for n in range(len(W)):
            W[n] -= lr * grads[n]
    return W


@pytest.mark.parametrize(
    "activation, init, schedule, steps",
    [
        ("relu", "he", Constant(0.01), 500),
        ("sigmoid", "normal", LinearDecay(0.01, 1e-5, 100), 150),
        ("tanh", "xavier", Constant(0.01), 150),
    ],
)
def test_per_sample_trainer_equals_the_spec_loop(mnist_train, activation, init, schedule, steps):
    images, labels = mnist_train
    model = MLP([784, 512, 256, 64, 10], activation, init, seed=7)
    expected = spec_loop(model.copy(), images[:steps], labels[:steps], schedule.values(steps))
    train_per_sample(
        model, images[:steps], labels[:steps], epochs=1, schedule=schedule, progress=False
    )
    got = [np.concatenate((b[:, None], w.T), axis=1) for w, b in zip(model.weights, model.biases)]
    diff = max(np.abs(g - e).max() for g, e in zip(got, expected))
    assert diff < 1e-10
    # and training did move the weights
    untrained = MLP([784, 512, 256, 64, 10], activation, init, seed=7)
    assert np.abs(model.weights[1] - untrained.weights[1]).max() > 1e-4


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_relu_rows_of_inactive_units_skipped_exactly(mnist_train, dtype, tolerance):
    """ReLU layers work on the rows of their active inputs only (the rows of zero
    inputs would change by exactly 0): same weights as the spec loop with most
    units off; the dtype is kept."""
    images, labels = mnist_train
    model = MLP([784, 64, 48, 32, 10], "relu", "he", seed=3, dtype=dtype)
    for bias in model.biases[:-1]:
        bias -= 0.15  # switch most units off
    _, cache = model.forward_cache(images[:300])
    assert all(np.mean(a > 0) < 0.5 for a in cache["A_undropped"][1:])  # most rows skipped
    reference = model.copy()
    reference.weights = [w.astype(np.float64) for w in reference.weights]
    reference.biases = [b.astype(np.float64) for b in reference.biases]
    expected = spec_loop(reference, images[:300], labels[:300], [0.01] * 300)
    moved = model.copy()
    train_per_sample(
        moved, images[:300], labels[:300], epochs=1, schedule=Constant(0.01), progress=False
    )
    got = [np.concatenate((b[:, None], w.T), axis=1) for w, b in zip(moved.weights, moved.biases)]
    assert all(w.dtype == dtype for w in moved.weights + moved.biases)
    assert max(np.abs(g - e).max() for g, e in zip(got, expected)) < tolerance
    assert np.abs(moved.weights[1] - model.weights[1]).max() > 1e-4


def test_a_layer_with_no_active_unit_stops_backprop_exactly(mnist_train):
    """The report's U[0,1) init kills every unit of layer 1 after a few steps;
    the engine then ends each step's backward pass at that layer (delta is exactly
    0 below, so W + 0 = W) and still equals the reference trainer to 1e-12
    (relative: the first steps blow the weights up to ~5e6)."""
    from mlp_lib.engines import reference

    images, labels = mnist_train[0][:1500], mnist_train[1][:1500]
    start = MLP([784, 512, 256, 64, 10], "relu", "uniform", seed=0)
    fast, slow = start.copy(), start.copy()
    train_per_sample(fast, images, labels, epochs=1, progress=False)
    reference.train_per_sample(slow, images, labels, epochs=1)
    _, cache = fast.forward_cache(images)
    assert not cache["A"][1].any()  # layer 1 is dead on every image: the early end is taken
    # the first steps blow the weights up to ~5e6, so agreement is relative
    diff = max(
        np.abs(a - b).max() / max(1.0, np.abs(b).max())
        for a, b in zip(fast.weights + fast.biases, slow.weights + slow.biases)
    )
    assert diff <= 1e-12
    assert np.abs(fast.biases[-1] - start.biases[-1]).max() > 1e-3  # the top still learns


def test_epochs_repeat_the_same_order(mnist_train):
    images, labels = mnist_train
    model = MLP([784, 16, 10], "sigmoid", "normal", seed=1)
    expected = spec_loop(model.copy(), images[:50], labels[:50], Constant(0.05).values(150))
    train_per_sample(
        model, images[:50], labels[:50], epochs=3, schedule=Constant(0.05), progress=False
    )
    got = [np.concatenate((b[:, None], w.T), axis=1) for w, b in zip(model.weights, model.biases)]
    assert max(np.abs(g - e).max() for g, e in zip(got, expected)) < 1e-10


def test_same_seed_bit_identical_after_1000_steps(mnist_train):
    images, labels = mnist_train
    runs = []
    for _ in range(2):
        model = MLP([784, 512, 256, 64, 10], "relu", "he", seed=123)
        train_per_sample(model, images[:1000], labels[:1000], epochs=1, progress=False)
        runs.append(model)
    for a, b in zip(runs[0].weights + runs[0].biases, runs[1].weights + runs[1].biases):
        assert np.array_equal(a, b)


def test_loss_curve_is_block_means(mnist_train):
    images, labels = mnist_train
    model = MLP([784, 20, 10], "relu", "he", seed=0)
    history = train_per_sample(
        model, images[:1000], labels[:1000], epochs=2, progress=False, record_every=100
    )
    assert history.steps == 2000 and history.loss_curve.shape == (20,)
    assert history.loss_curve[-1] < history.loss_curve[0]
    # first block: the mean of the first 100 losses, recomputed by the spec loop
    check = MLP([784, 20, 10], "relu", "he", seed=0)
    losses = []
    for i in range(100):
        loss, wg, bg = check.gradients(images[i], labels[i])
        losses.append(loss)
        for w, b, gw, gb in zip(check.weights, check.biases, wg, bg):
            w -= 0.01 * gw
            b -= 0.01 * gb
    assert history.loss_curve[0] == pytest.approx(np.mean(losses), rel=1e-12)


def test_linear_decay_is_the_reports_linspace():
    schedule = LinearDecay(10e-3, 10e-6, 100000)
    rates = np.linspace(10e-3, 10e-6, 100000)
    assert schedule.start == 0.01
    assert schedule(0) == rates[0] and schedule(99999) == rates[-1]
    assert schedule(123456) == rates[-1]
    assert np.array_equal(schedule.values(100003)[:100000], rates)
    assert Constant(0.01)(5) == 0.01
    with pytest.raises(ValueError, match="positive"):
        Constant(0)
    with pytest.raises(ValueError, match="n_steps"):
        LinearDecay(0.1, 0.01, 0)


def _exploding_model():
    """Weights so large that the logits overflow: the loss is NaN at the first step
    that reaches them (plain large learning rates only kill the ReLUs)."""
    model = MLP([784, 64, 64, 10], "relu", "he", seed=0)
    model.weights[1] *= 1e300
    model.weights[2] *= 1e300
    return model


def test_divergence_raises_and_stops(mnist_train):
    images, labels = mnist_train
    model = _exploding_model()
    before = model.copy()
    with pytest.raises(
        DivergenceError,
        match=r"diverged at step 0 \(learning rate 0.01\).*"
        r"non-finite output is in layer 3",
    ) as info:
        with np.errstate(all="ignore"):
            train_per_sample(model, images[:200], labels[:200], progress=False)
    assert info.value.step == 0 and info.value.lr == 0.01
    # the weights are those before the failing step
    assert all(np.array_equal(a, b) for a, b in zip(model.weights, before.weights))
    with np.errstate(all="ignore"):
        history = train_per_sample(
            _exploding_model(), images[:200], labels[:200], progress=False, on_divergence="stop"
        )
    assert history.diverged_at == 0 and history.steps == 0


def test_collapsed_relu_net_is_not_divergence(mnist_train):
    """The report's uniform init: ReLU units die and the loss settles near ln 10."""
    images, labels = mnist_train
    model = MLP([784, 64, 64, 10], "relu", "uniform", seed=0)
    history = train_per_sample(model, images[:1000], labels[:1000], progress=False)
    assert history.diverged_at is None
    assert history.loss_curve[0] > 100 and abs(history.loss_curve[-1] - np.log(10)) < 0.1


def test_the_run_options_are_written_once_and_every_trainer_names_them():
    """Both fast trainers take ``**run_options``; ``RunOptions`` documents each one,
    and each trainer's docstring names them all (so help() says what to pass)."""
    import dataclasses
    import inspect

    from mlp_lib.engines.lifecycle import RunOptions

    names = [f.name for f in dataclasses.fields(RunOptions)]
    assert names == [
        "record_every",
        "progress",
        "on_divergence",
        "checkpoint",
        "resume",
        "observer",
    ]
    documented = inspect.getdoc(RunOptions)
    for name in names:
        assert f"\n{name} : " in documented, name
    for trainer in (train_per_sample, train_minibatch):
        parameters = inspect.signature(trainer).parameters
        assert not set(names) & set(parameters), trainer.__name__  # not typed out again
        assert parameters["run_options"].kind is inspect.Parameter.VAR_KEYWORD
        entry = inspect.getdoc(trainer).split("**run_options\n", 1)[1].split("\n\n", 1)[0]
        assert [name for name in names if f"``{name}``" in entry] == names, trainer.__name__
        assert "RunOptions" in entry


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epochs=0), "epochs must be a positive int"),
        (dict(record_every=0), "record_every must be a positive int"),
        (dict(on_divergence="ignore"), "on_divergence must be"),
    ],
)
def test_bad_training_arguments(mnist_train, kwargs, message):
    images, labels = mnist_train
    model = MLP([784, 5, 10], seed=0)
    before = model.copy()
    with pytest.raises(ValueError, match=message):
        train_per_sample(model, images[:10], labels[:10], progress=False, **kwargs)
    with pytest.raises(ValueError, match=r"shape \(N, 784\)"):
        train_per_sample(model, images[:10, :700], labels[:10], progress=False)
    with pytest.raises(ValueError, match="labels must be 10 integers"):
        train_per_sample(model, images[:10], labels[:9], progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(model.weights, before.weights))


def test_minibatch_learns_and_is_deterministic(mnist_train, mnist_test):
    images, labels = mnist_train
    results = []
    for _ in range(2):
        model = MLP([784, 64, 10], "relu", "he", seed=0, dtype=np.float32)
        history = train_minibatch(
            model,
            images[:6000],
            labels[:6000],
            epochs=2,
            batch_size=64,
            schedule=Constant(0.1),
            seed=1,
            record_every=10,
            progress=False,
        )
        results.append(model)
    assert len(history.epoch_loss) == 2 and history.epoch_loss[1] < history.epoch_loss[0]
    assert history.steps == 2 * 94 and history.loss_curve.shape == (18,)
    assert all(np.array_equal(a, b) for a, b in zip(results[0].weights, results[1].weights))
    assert results[0].weights[0].dtype == np.float32
    loss, accuracy = evaluate(results[0], *mnist_test)
    assert accuracy > 0.85 and loss < 0.6


def test_minibatch_step_is_gradient_step(mnist_train):
    """batch = the whole set, one step: W1 = W0 - lr * mean gradient."""
    images, labels = mnist_train
    model = MLP([784, 8, 10], "sigmoid", "xavier", seed=2)
    _, wg, bg = model.gradients(images[:32], labels[:32])
    expected = [w - 0.5 * g for w, g in zip(model.weights, wg)]
    train_minibatch(
        model,
        images[:32],
        labels[:32],
        epochs=1,
        batch_size=32,
        schedule=Constant(0.5),
        seed=0,
        progress=False,
        record_every=1,
    )
    assert all(np.allclose(w, e, rtol=0, atol=1e-14) for w, e in zip(model.weights, expected))


def test_evaluate_matches_direct_computation(mnist_test):
    images, labels = mnist_test
    model = MLP([784, 10, 10], seed=0)
    loss, accuracy = evaluate(model, images, labels)
    probs = model.forward(images)
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(len(labels)), labels])))
    assert accuracy == np.mean(probs.argmax(axis=1) == labels)
