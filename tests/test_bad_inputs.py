"""One table of rejected calls: each must raise with a message naming what was
given and what was expected, and leave the model exactly as it was."""

import numpy as np
import pytest

from mlp_lib import (
    MLP,
    Constant,
    LinearDecay,
    MLPClassifier,
    evaluate,
    train_minibatch,
    train_per_sample,
)
from mlp_lib.core.schedules import schedule_from_dict

RNG = np.random.default_rng(0)
X = RNG.random((20, 784))
Y = np.arange(20) % 10


def _nan_images():
    bad = X.copy()
    bad[3, 7] = np.nan
    return bad


def _inf_images():
    bad = X.copy()
    bad[0, 0] = np.inf
    return bad


CASES = {
    # --- data given to the model / trainers
    "1-D labels of wrong length": (
        lambda m: train_per_sample(m, X, Y[:5]),
        ValueError,
        "labels must be 20 integers",
    ),
    "float labels": (
        lambda m: train_per_sample(m, X, Y.astype(float)),
        ValueError,
        "labels must be 20 integers, got shape .* dtype float64",
    ),
    "label 10 of 10 classes": (
        lambda m: train_per_sample(m, X, np.full(20, 10)),
        ValueError,
        r"labels must lie in 0..9, got values in 10..10",
    ),
    "negative label": (
        lambda m: train_minibatch(m, X, np.full(20, -1)),
        ValueError,
        r"labels must lie in 0..9",
    ),
    "NaN pixel": (lambda m: train_per_sample(m, _nan_images(), Y), ValueError, "NaN or inf"),
    "inf pixel": (lambda m: train_minibatch(m, _inf_images(), Y), ValueError, "NaN or inf"),
    "wrong input width": (
        lambda m: train_per_sample(m, X[:, :100], Y),
        ValueError,
        r"shape \(N, 784\) or \(784,\), got \(20, 100\)",
    ),
    "3-D images": (
        lambda m: train_minibatch(m, X.reshape(20, 28, 28), Y),
        ValueError,
        r"shape \(N, 784\)",
    ),
    "string images": (lambda m: m.forward(np.array([["x"] * 784])), TypeError, "numeric"),
    "no images": (lambda m: train_per_sample(m, X[:0], Y[:0]), ValueError, "no training images"),
    "evaluate with wrong labels": (
        lambda m: evaluate(m, X, Y[:3]),
        ValueError,
        "labels must be 20 integers",
    ),
    # --- training settings
    "epochs 0": (
        lambda m: train_per_sample(m, X, Y, epochs=0),
        ValueError,
        "epochs must be a positive int, got 0",
    ),
    "epochs 1.5": (
        lambda m: train_minibatch(m, X, Y, epochs=1.5),
        ValueError,
        "epochs must be a positive int, got 1.5",
    ),
    "batch size 0": (
        lambda m: train_minibatch(m, X, Y, batch_size=0),
        ValueError,
        "batch_size must be a positive int, got 0",
    ),
    "batch size True": (
        lambda m: train_minibatch(m, X, Y, batch_size=True),
        ValueError,
        "batch_size must be a positive int",
    ),
    "record_every -1": (
        lambda m: train_per_sample(m, X, Y, record_every=-1),
        ValueError,
        "record_every must be a positive int",
    ),
    "schedule not a schedule": (
        lambda m: train_per_sample(m, X, Y, schedule=0.01),
        ValueError,
        "schedule must be a schedule",
    ),
    "on_divergence unknown": (
        lambda m: train_per_sample(m, X, Y, on_divergence="skip"),
        ValueError,
        "on_divergence must be 'raise', 'stop' or 'continue'",
    ),
    "a misspelt run option, per-sample": (
        lambda m: train_per_sample(m, X, Y, epoch=2),
        TypeError,
        r"train_per_sample\(\) got an unexpected keyword argument 'epoch' \(its run options: "
        r"record_every, progress, on_divergence, checkpoint, resume, observer\)",
    ),
    "a misspelt run option, mini-batch": (
        lambda m: train_minibatch(m, X, Y, progres=False),
        TypeError,
        r"train_minibatch\(\) got an unexpected keyword argument 'progres'",
    ),
    "a run option passed by position": (
        lambda m: train_per_sample(m, X, Y, 1, Constant(0.01), 100),
        TypeError,
        "positional argument",
    ),
    "resume with a dict": (
        lambda m: train_per_sample(m, X, Y, resume={}),
        ValueError,
        "resume must be a TrainingState",
    ),
    "learning rate 0": (
        lambda m: Constant(0),
        ValueError,
        "lr must be a positive finite learning rate, got 0",
    ),
    "learning rate -0.1": (
        lambda m: LinearDecay(-0.1, 0.01, 10),
        ValueError,
        "start must be a positive finite learning rate",
    ),
    "learning rate NaN": (lambda m: Constant(float("nan")), ValueError, "positive finite"),
    "decay over 0 steps": (
        lambda m: LinearDecay(0.1, 0.01, 0),
        ValueError,
        "n_steps must be a positive int",
    ),
    "unknown schedule name": (
        lambda m: schedule_from_dict({"name": "exp"}),
        ValueError,
        "unknown schedule 'exp'; valid: constant, linear_decay, step",
    ),
    # --- model construction
    "unknown activation": (
        lambda m: MLP([784, 10], activation="swish"),
        ValueError,
        "unknown activation 'swish'; valid: sigmoid, relu, tanh, leaky_relu",
    ),
    "unknown init": (
        lambda m: MLP([784, 10], init="glorot"),
        ValueError,
        "unknown init 'glorot'; valid: normal, uniform, xavier, he",
    ),
    "size 0": (lambda m: MLP([784, 0, 10]), ValueError, "at least two positive ints"),
    "negative size": (lambda m: MLP([784, -5, 10]), ValueError, "at least two positive ints"),
    "one layer size": (lambda m: MLP([784]), ValueError, "at least two positive ints"),
    "float size": (lambda m: MLP([784, 2.5, 10]), ValueError, "at least two positive ints"),
    "int dtype": (lambda m: MLP([784, 10], dtype=np.int64), ValueError, "float32 or float64"),
    "negative seed": (lambda m: MLP([784, 10], seed=-3), ValueError, "seed must be"),
    # --- estimator
    "unknown solver": (
        lambda m: MLPClassifier(solver="lbfgs").fit(X, Y),
        ValueError,
        "unknown solver 'lbfgs'; valid: minibatch, per-sample",
    ),
    "unknown estimator parameter": (
        lambda m: MLPClassifier().set_params(lr=1),
        ValueError,
        "invalid parameter",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rejected_and_nothing_changed(case):
    call, error, message = CASES[case]
    model = MLP([784, 12, 10], "relu", "he", seed=5)
    before = model.copy()
    with pytest.raises(error, match=message):
        call(model)
    for a, b in zip(model.weights + model.biases, before.weights + before.biases):
        assert np.array_equal(a, b)
