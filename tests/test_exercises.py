"""The notebooks' exercise checks: a correct answer passes, and each typical mistake fails
with a message that names it."""

import numpy as np
import pytest

from mlp_lib.core import functional as F
from mlp_lib.study import exercises as ex


def _passes(check, answer, capsys, *words):
    check(answer)
    said = capsys.readouterr().out
    return said.startswith("correct:") and all(word in said for word in words)


def _fails(check, answer, *words):
    with pytest.raises(AssertionError) as caught:
        check(answer)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    return message


def test_sigmoid_grad(capsys):
    assert _passes(ex.check_sigmoid_grad, lambda a: a * (1 - a), capsys)
    _fails(ex.check_sigmoid_grad, lambda a: a, "a = σ(z) itself")
    _fails(ex.check_sigmoid_grad, lambda a: 1 - a, "(1 - a) factor")
    _fails(ex.check_sigmoid_grad, lambda a: a * a, "a times a")
    _fails(ex.check_sigmoid_grad, lambda a: F.sigmoid(a) * (1 - F.sigmoid(a)), "applied again")
    _fails(ex.check_sigmoid_grad, lambda a: -a * (1 - a), "sign is flipped")
    _fails(ex.check_sigmoid_grad, lambda a: 2 * a * (1 - a), "constant factor", "2 times")
    _fails(ex.check_sigmoid_grad, lambda a: (a * (1 - a))[None, :], "shape")


def test_relu_grad(capsys):
    assert _passes(ex.check_relu_grad, lambda a: (a > 0).astype(float), capsys)
    assert _passes(ex.check_relu_grad, lambda a: a > 0, capsys)  # booleans are numbers here
    _fails(ex.check_relu_grad, lambda a: a, "activation a itself")
    _fails(ex.check_relu_grad, lambda a: (a >= 0).astype(float), "inactive unit", "a > 0")
    _fails(ex.check_relu_grad, lambda a: np.ones_like(a), "inactive unit")
    _fails(ex.check_relu_grad, lambda a: ((a > 0).astype(float)).T, "transposed")


def test_output_delta(capsys):
    def right(probs, labels):
        y = np.zeros_like(probs)
        y[np.arange(len(labels)), labels] = 1
        return (probs - y) / len(labels)

    assert _passes(ex.check_output_delta, right, capsys)
    _fails(ex.check_output_delta, lambda p, y: right(p, y) * len(y), "not divided by N")
    _fails(ex.check_output_delta, lambda p, y: p / len(y), "not subtracted")
    _fails(ex.check_output_delta, lambda p, y: -right(p, y), "sign is flipped")
    _fails(ex.check_output_delta, lambda p, y: right(p, y).T, "transposed")
    _fails(ex.check_output_delta, lambda p, y: right(p, y).sum(axis=1), "shape")


def test_layer_backward(capsys):
    def right(delta, W, A_prev, act_grad):
        return A_prev.T @ delta, delta.sum(axis=0), (delta @ W.T) * act_grad(A_prev)

    assert _passes(ex.check_layer_backward, right, capsys)

    def answer(dW=None, db=None, below=None):
        def f(delta, W, A_prev, act_grad):
            good = right(delta, W, A_prev, act_grad)
            return (
                good[0] if dW is None else dW(delta, W, A_prev),
                good[1] if db is None else db(delta),
                good[2] if below is None else below(delta, W, A_prev, act_grad),
            )

        return f

    _fails(ex.check_layer_backward, answer(dW=lambda d, W, A: d.T @ A), "dW", "transposed")
    _fails(ex.check_layer_backward, answer(db=lambda d: d.mean(axis=0)), "sum of Δ")
    _fails(ex.check_layer_backward, answer(below=lambda d, W, A, g: d @ W.T), "act'", "missing")
    _fails(ex.check_layer_backward, answer(below=lambda d, W, A, g: -(d @ W.T) * g(A)), "sign")
    _fails(ex.check_layer_backward, lambda d, W, A, g: A.T @ d, "tuple of three")


def test_linear_decay(capsys):
    def right(start, end, n_steps, total):
        rates = np.linspace(start, end, n_steps)
        return rates[np.minimum(np.arange(total), n_steps - 1)]

    assert _passes(ex.check_linear_decay, right, capsys)
    _fails(
        ex.check_linear_decay,
        lambda s, e, n, t: s + (e - s) * np.minimum(np.arange(t) / n, 1),
        "off by one",
    )
    _fails(ex.check_linear_decay, lambda s, e, n, t: np.linspace(s, e, t), "all the steps")
    _fails(ex.check_linear_decay, lambda s, e, n, t: right(e, s, n, t), "swapped")
    _fails(ex.check_linear_decay, lambda s, e, n, t: right(s, e, n, t)[:n], "shape")


def test_uniform_init_guess(capsys):
    assert _passes(ex.check_uniform_init_guess, 1.0, capsys, "one class")
    message = _fails(ex.check_uniform_init_guess, 0.1, "positive")
    assert "100%" in message or "%" in message
    _fails(ex.check_uniform_init_guess, 1.5, "[0, 1]")
    _fails(ex.check_uniform_init_guess, "all", "a number")


def test_an_empty_stub_is_not_yet_answered_and_says_so_without_raising(capsys):
    """The notebooks' stubs return None: each check says "not answered yet" (never
    "correct"), so a notebook runs with its exercises left open."""
    from mlp_lib.study import exercises

    def stub(*args):
        return None

    for check in (
        exercises.check_sigmoid_grad,
        exercises.check_relu_grad,
        exercises.check_output_delta,
        exercises.check_layer_backward,
        exercises.check_linear_decay,
    ):
        assert check(stub) is None  # nothing for a notebook to display but the message
        assert "not answered yet" in capsys.readouterr().out
    exercises.check_uniform_init_guess(None)
    assert "not answered yet" in capsys.readouterr().out


def test_init_std(capsys):
    from mlp_lib.core.init import init_std
    from mlp_lib.study.exercises import check_init_std

    check_init_std(lambda s, i, o: init_std(s, i, o))
    assert capsys.readouterr().out.startswith("correct:")
    with pytest.raises(AssertionError, match="bias input is not counted"):
        check_init_std(lambda s, i, o: np.sqrt(2 / (i + o)) if s == "xavier" else np.sqrt(2 / i))
    with pytest.raises(AssertionError, match="take its square root"):
        check_init_std(lambda s, i, o: 2 / (i + 1 + o) if s == "xavier" else 2 / (i + 1))
    with pytest.raises(AssertionError, match="Xavier's"):
        check_init_std(lambda s, i, o: np.sqrt(2 / (i + 1 + o)))
    check_init_std(lambda s, i, o: None)
    assert capsys.readouterr().out.startswith("not answered yet")


def test_parameter_count(capsys):
    from mlp_lib.study.exercises import check_parameter_count

    def right(sizes):
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))

    check_parameter_count(right)
    assert capsys.readouterr().out.startswith("correct:")
    with pytest.raises(AssertionError, match="weights only"):
        check_parameter_count(lambda s: sum(a * b for a, b in zip(s[:-1], s[1:])))
    with pytest.raises(AssertionError, match="input layer has no biases"):
        check_parameter_count(lambda s: sum(a * b for a, b in zip(s[:-1], s[1:])) + sum(s))
    with pytest.raises(AssertionError, match="whole number"):
        check_parameter_count(lambda s: float(right(s)))
    with pytest.raises(AssertionError, match="yours is"):
        check_parameter_count(lambda s: right(s) + 1)
    check_parameter_count(lambda s: None)
    assert capsys.readouterr().out.startswith("not answered yet")
