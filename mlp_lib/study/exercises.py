r"""Checks for the notebooks' exercises: write a piece of backpropagation, then ask here.

Each ``check_*`` takes the student's function (or answer), runs it beside the
library's own on small inputs (a few milliseconds), and either prints what was
checked (``correct: ...``), or raises ``AssertionError`` with a message that
names the mistake when it is a common one (a transposed array, a missing
factor, a flipped sign, a forgotten term) and otherwise shows the numbers. An
answer of ``None`` (the notebooks' empty stubs) is "not answered yet": the check
says so, so that a notebook with its exercises left open still
runs from top to bottom. Each check sets ``__tracebackhide__``, so that IPython
shows the student the failed check's message, not this module's frames.

The notation is notebook 01's: a batch of :math:`N` rows, layer :math:`l`
computes :math:`Z_l = A_{l-1} W_l + b_l` and :math:`A_l = \mathrm{act}(Z_l)`,
with :math:`W_l` of shape ``(n_in, n_out)``; :math:`\Delta_l = \partial L /
\partial Z_l` for the mean cross-entropy :math:`L` over the batch.

======================================  ==============================================
check                                   the student writes
======================================  ==============================================
``check_sigmoid_grad(f)``               :math:`\sigma'` from the sigmoid's output
                                        :math:`a`: ``f(a)``
``check_relu_grad(f)``                  ReLU' from its output: ``f(a)``
``check_output_delta(f)``               :math:`\Delta_L = (\hat Y - Y)/N`:
                                        ``f(probs, labels)``
``check_layer_backward(f)``             one layer's backward pass:
                                        ``f(delta, W, A_prev, act_grad)``
                                        returns ``(dW, db, delta_below)``
``check_linear_decay(f)``               the report's schedule:
                                        ``f(start, end, n_steps, total)``
``check_uniform_init_guess(fraction)``  a prediction: the share of test images an
                                        untrained U[0, 1) network puts in one class
``check_init_std(f)``                   the report's initial standard deviations:
                                        ``f(scheme, n_in, n_out)``
``check_parameter_count(f)``            a net's number of weights and biases:
                                        ``f(layer_sizes)``
======================================  ==============================================
"""

from __future__ import annotations

import numpy as np

from ..core import functional as F
from ..core.init import init_std
from ..core.model import MLP
from ..core.schedules import LinearDecay

__all__ = [
    "check_sigmoid_grad",
    "check_relu_grad",
    "check_output_delta",
    "check_layer_backward",
    "check_linear_decay",
    "check_uniform_init_guess",
    "check_init_std",
    "check_parameter_count",
]


def _passed(what):
    print(f"correct: {what}")


def _not_yet(name, what="returned None. Write the body (and `return` the result)"):
    print(f"not answered yet: {name} {what}, then run the cell again.")


def _as_array(value, name):
    __tracebackhide__ = True
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(
            f"{name} must be an array of numbers, got {type(value).__name__}"
        ) from None


def _same_shape(got, expected, name):
    __tracebackhide__ = True
    if got.shape == expected.shape:
        return
    hint = " (transposed?)" if got.shape == expected.shape[::-1] and got.ndim == 2 else ""
    raise AssertionError(f"{name} has shape {got.shape}, expected {expected.shape}{hint}")


def _diagnose(got, expected, name, known_mistakes=()):
    """Raise, naming the mistake, unless ``got`` equals ``expected`` (to 1e-10)."""
    __tracebackhide__ = True
    if np.allclose(got, expected, rtol=1e-10, atol=1e-12):
        return
    for wrong, message in known_mistakes:
        if np.shape(wrong) == got.shape and np.allclose(got, wrong, rtol=1e-10, atol=1e-12):
            raise AssertionError(f"{name}: {message}")
    if np.allclose(got, -expected, rtol=1e-10, atol=1e-12):
        raise AssertionError(f"{name}: the sign is flipped")
    nonzero = np.abs(expected) > 1e-12
    if nonzero.any():
        ratio = got[nonzero] / expected[nonzero]
        if np.allclose(ratio, ratio.flat[0], rtol=1e-8) and ratio.flat[0] != 0:
            raise AssertionError(
                f"{name}: right up to a constant factor: yours is {ratio.flat[0]:.6g} times "
                f"the correct value"
            )
    worst = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
    raise AssertionError(
        f"{name}: wrong values; e.g. at index {tuple(int(i) for i in worst)} yours is "
        f"{got[worst]:.6g}, the correct value {expected[worst]:.6g}"
    )


def _answered(answer, expected, name, known_mistakes=()):
    """False, saying "not answered yet", for a stub's None; else True once ``answer``
    matches ``expected`` (``_compare`` raises, naming the mistake, if it does not)."""
    __tracebackhide__ = True
    if answer is None:
        _not_yet(name)
        return False
    _compare(answer, expected, name, known_mistakes)
    return True


def _compare(answer, expected, name, known_mistakes=()):
    """The student's ``answer`` against ``expected``: numbers, shape, then values."""
    __tracebackhide__ = True
    got = _as_array(answer, name)
    _same_shape(got, expected, name)
    _diagnose(got, expected, name, known_mistakes)


def check_sigmoid_grad(f):
    r"""``f(a)``: :math:`\sigma'(z)` written with the sigmoid's output
    :math:`a = \sigma(z)` only (no :math:`z`, no exponential)."""
    __tracebackhide__ = True
    z = np.linspace(-6, 6, 13)
    a = F.sigmoid(z)
    if _answered(
        f(a.copy()),
        F.sigmoid_grad(a),
        "f(a)",
        [
            (a, "you returned a = σ(z) itself, not its derivative: σ'(z) = a (1 - a)"),
            (1 - a, "only the (1 - a) factor: σ'(z) = a (1 - a)"),
            (a * a, "a times a, where the second factor is (1 - a): σ'(z) = a (1 - a)"),
            (
                F.sigmoid(a) * (1 - F.sigmoid(a)),
                "σ was applied again: f receives a = σ(z), so σ'(z) = a (1 - a), not σ(a)(1 - σ(a))",
            ),
        ],
    ):
        _passed("σ'(z) = a (1 - a), computed from the output a alone")


def check_relu_grad(f):
    r"""``f(a)``: ReLU's derivative written with its output :math:`a =
    \max(0, z)`: 1 where the unit is active, 0 elsewhere (0 at :math:`z = 0`,
    the convention the library and the report use)."""
    __tracebackhide__ = True
    a = F.relu(np.array([[-2.0, -0.5, 0.0, 0.5, 3.0], [1.0, 0.0, -1.0, 2.0, 0.25]]))
    if _answered(
        f(a.copy()),
        F.relu_grad(a),
        "f(a)",
        [
            (a, "you returned the activation a itself; the derivative is 1 where a > 0, else 0"),
            (
                np.ones_like(a),
                "every unit gets derivative 1, but an inactive unit (a = 0, z <= 0) has 0: "
                "a >= 0 holds for every ReLU output; use a > 0",
            ),
        ],
    ):
        _passed("ReLU'(z) = [a > 0]: 1 for the active units, 0 for the others")


def check_output_delta(f):
    r"""``f(probs, labels)``: :math:`\Delta_L = \partial L / \partial Z_L =
    (\hat Y - Y)/N` for the mean cross-entropy of a batch of :math:`N` rows
    (``probs`` the softmax outputs, shape ``(N, 10)``; ``labels`` ints)."""
    __tracebackhide__ = True
    rng = np.random.default_rng(7)
    probs = F.softmax(rng.normal(size=(4, 10)))
    labels = np.array([3, 0, 9, 3])
    one_hot, n = F.one_hot(labels, 10), len(labels)
    if _answered(
        f(probs.copy(), labels.copy()),
        F.softmax_cross_entropy_grad(probs, labels),
        "f(probs, labels)",
        [
            (probs - one_hot, "not divided by N: the loss is the batch's mean, so Δ_L = (Ŷ - Y)/N"),
            (probs / n, "the one-hot labels Y were not subtracted: Δ_L = (Ŷ - Y)/N"),
            (probs, "you returned Ŷ: subtract the one-hot labels Y and divide by N"),
        ],
    ):
        _passed("Δ_L = (Ŷ - Y)/N, shape (N, 10)")


def check_layer_backward(f):
    r"""``f(delta, W, A_prev, act_grad)`` for one layer :math:`l`, given
    :math:`\Delta_l` ``(N, n_out)``, :math:`W_l` ``(n_in, n_out)``,
    :math:`A_{l-1}` ``(N, n_in)`` and ``act_grad(A_prev)`` (the activation's
    derivative from its output): returns ``(dW, db, delta_below)`` =
    :math:`(A_{l-1}^\top \Delta_l,\ \sum_n \Delta_{l,n},\ (\Delta_l W_l^\top)
    \odot \mathrm{act}'(Z_{l-1}))`, checked against ``MLP.backward``."""
    __tracebackhide__ = True
    model = MLP([6, 5, 4, 3], activation="sigmoid", init="normal", seed=3)
    rng = np.random.default_rng(11)
    x, labels = rng.random((4, 6)), np.array([0, 2, 1, 2])
    probs, cache = model.forward_cache(x, labels=labels)
    weight_grads, bias_grads = model.backward(probs, cache, labels)
    delta = F.softmax_cross_entropy_grad(probs, labels)  # Δ_3, for layer 3 (index 2)
    A_prev, W = cache["A"][2], model.weights[2]
    answer = f(delta.copy(), W.copy(), A_prev.copy(), F.sigmoid_grad)
    if answer is None:
        return _not_yet("f(delta, W, A_prev, act_grad)")
    if not isinstance(answer, tuple) or len(answer) != 3:
        raise AssertionError("return a tuple of three arrays: (dW, db, delta_below)")
    dW, db, below = answer
    _compare(dW, weight_grads[2], "dW", [(delta.T @ A_prev, "dW must be A_prevᵀ Δ")])
    mean = "db is the sum of Δ over the batch, not its mean (Δ has /N already)"
    _compare(db, bias_grads[2], "db", [(delta.mean(axis=0), mean)])
    missing = "the factor act'(Z_{l-1}) is missing: multiply Δ Wᵀ by act_grad(A_prev)"
    _compare(below, model.delta_below(2, delta, cache), "delta_below", [(delta @ W.T, missing)])
    return _passed("dW = A_{l-1}ᵀ Δ_l, db = Σ_n Δ_l, Δ_{l-1} = (Δ_l W_lᵀ) ⊙ act'(Z_{l-1})")


def check_linear_decay(f):
    """``f(start, end, n_steps, total)``: the report's learning rates for steps
    ``0 .. total - 1``: ``numpy.linspace(start, end, n_steps)``, held at ``end``
    after ``n_steps`` steps (the report stops its step counter at ``n_steps - 1``)."""
    __tracebackhide__ = True
    start, end, n_steps, total = 0.01, 1e-5, 50, 80
    steps = np.arange(total)
    if _answered(
        f(start, end, n_steps, total),
        LinearDecay(start, end, n_steps).values(total),
        "the rates",
        [
            (
                start + (end - start) * np.minimum(steps / n_steps, 1),
                "off by one: linspace puts `end` at step n_steps - 1, not n_steps",
            ),
            (
                np.linspace(start, end, total),
                "the decay spans all the steps: it should reach `end` after n_steps and stay",
            ),
            (
                LinearDecay(end, start, n_steps).values(total),
                "start and end are swapped: the rate decreases from start to end",
            ),
        ],
    ):
        _passed("rates = linspace(start, end, n_steps), then held at end")


def check_uniform_init_guess(fraction):
    """Before running notebook 03's U[0, 1) row, guess: what share of 1,000 test
    images does the untrained 784-512-256-64-10 ReLU network, its weights drawn
    from U[0, 1), put in its most frequent class? Answer a number in [0, 1]; it
    is checked against the network itself (within 0.1)."""
    __tracebackhide__ = True
    from ..io.data import load_mnist

    if fraction is None:
        return _not_yet("the guess", "is None. Put your guess in its place")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise AssertionError(f"answer a number in [0, 1], got {fraction!r}")
    if not 0 <= fraction <= 1:
        raise AssertionError(f"a share is in [0, 1], got {fraction}")
    images, _ = load_mnist("test")
    model = MLP([784, 512, 256, 64, 10], activation="relu", init="uniform", seed=0)
    predicted = model.predict(images[:1000])
    share = np.bincount(predicted, minlength=10).max() / len(predicted)
    z1 = images[:1000] @ model.weights[0]
    if abs(fraction - share) > 0.1:
        raise AssertionError(
            f"not quite: the network puts {share:.0%} of the images in one class. Every "
            f"weight is positive, so every pre-activation is a large positive sum (layer "
            f"1's average {z1.mean():.0f}), every ReLU passes it on, and the sums grow "
            f"layer by layer: the image hardly changes which logit is largest."
        )
    return _passed(
        f"{share:.0%} of the images land in one class (your guess {fraction:.0%}): with "
        f"positive weights the inputs all push the same way"
    )


def check_init_std(f):
    r"""``f(scheme, n_in, n_out)``: the standard deviation the report draws one
    layer's weights with, for ``scheme`` "xavier" or "he", where the report
    counts the bias input in the fan-in, :math:`X_{len} = n_{in} + 1`, and
    :math:`H_{len} = n_{out}`: Xavier :math:`\sqrt{2/(X_{len} + H_{len})}`, He
    :math:`\sqrt{2/X_{len}}`. Checked on the layers of the report's two nets."""
    __tracebackhide__ = True
    layers = [(784, 512), (512, 256), (256, 128), (128, 64), (256, 64), (64, 32), (32, 10)]
    for scheme in ("xavier", "he"):
        answer = [f(scheme, n_in, n_out) for n_in, n_out in layers]
        if any(a is None for a in answer):
            return _not_yet(f"f({scheme!r}, n_in, n_out)")
        expected = np.array([init_std(scheme, n_in, n_out) for n_in, n_out in layers])
        if scheme == "xavier":
            mistakes = [
                (
                    [np.sqrt(2 / (i + o)) for i, o in layers],
                    "the bias input is not counted: the report's fan-in is X_len = n_in + 1",
                ),
                ([np.sqrt(1 / (i + 1)) for i, o in layers], "that is LeCun's 1/X_len, not Xavier"),
                (
                    [2 / (i + 1 + o) for i, o in layers],
                    "that is the variance: take its square root",
                ),
            ]
        else:
            mistakes = [
                (
                    [np.sqrt(2 / i) for i, o in layers],
                    "the bias input is not counted: X_len = n_in + 1",
                ),
                (
                    [np.sqrt(1 / (i + 1)) for i, o in layers],
                    "He doubles the variance: 2/X_len, not 1/X_len",
                ),
                ([2 / (i + 1) for i, o in layers], "that is the variance: take its square root"),
                (
                    [np.sqrt(2 / (i + 1 + o)) for i, o in layers],
                    "that is Xavier's: He uses the fan-in alone, sqrt(2/X_len)",
                ),
            ]
        _compare(answer, expected, f"f({scheme!r}, n_in, n_out)", mistakes)
    return _passed("Xavier sqrt(2/(X_len + H_len)) and He sqrt(2/X_len), with X_len = n_in + 1")


def check_parameter_count(f):
    """``f(layer_sizes)``: how many numbers a fully connected net of
    ``layer_sizes`` (e.g. ``[784, 512, 256, 64, 10]``) trains: every weight and
    every bias. Checked against ``MLP`` on the report's nets and a small one."""
    __tracebackhide__ = True
    nets = [[784, 512, 256, 64, 10], [784, 512, 256, 128, 64, 32, 10], [3, 2]]
    for sizes in nets:
        answer = f(list(sizes))
        if answer is None:
            return _not_yet("f(layer_sizes)")
        model = MLP(sizes, seed=0)
        expected = sum(w.size + b.size for w, b in zip(model.weights, model.biases))
        weights = sum(w.size for w in model.weights)
        if isinstance(answer, bool) or not isinstance(answer, (int, np.integer)):
            raise AssertionError(f"answer a whole number, got {answer!r}")
        if answer == expected:
            continue
        if answer == weights:
            raise AssertionError(f"{sizes}: {answer} counts the weights only; add the biases")
        if answer == weights + sum(sizes):
            raise AssertionError(f"{sizes}: the input layer has no biases; only layers 1..L do")
        if answer == sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) + sizes[0]:
            raise AssertionError(f"{sizes}: one bias per unit of each layer above the input")
        raise AssertionError(f"{sizes}: yours is {answer}, the net has {expected}")
    return _passed("Σ_l (n_{l-1} + 1) n_l: each unit has one weight per input and one bias")
