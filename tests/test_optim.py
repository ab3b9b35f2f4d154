import json

import numpy as np
import pytest

from mlp_lib.core.optim import SGD, Adam, make_optimizer
from mlp_lib.core.schedules import (
    Constant,
    Cosine,
    LinearDecay,
    StepDecay,
    schedule_from_dict,
    schedule_to_dict,
)


def _run(optimizer, grads, lr=0.1):
    param = np.array([1.0, -2.0])
    for g in grads:
        optimizer.step([param], [np.array(g, dtype=float)], lr)
    return param


GRADS = [[0.5, -1.0], [0.2, 0.4], [-0.3, 0.1]]


def test_plain_sgd():
    expected = np.array([1.0, -2.0]) - 0.1 * np.sum(GRADS, axis=0)
    assert np.allclose(_run(SGD(), GRADS), expected, rtol=0, atol=1e-15)


def test_momentum_and_nesterov_by_hand():
    theta, v = np.array([1.0, -2.0]), np.zeros(2)
    theta_n, v_n = theta.copy(), np.zeros(2)
    for g in map(np.array, GRADS):
        v = 0.9 * v - 0.1 * g
        theta = theta + v
        v_n = 0.9 * v_n - 0.1 * g
        theta_n = theta_n + 0.9 * v_n - 0.1 * g
    assert np.allclose(_run(SGD(0.9), GRADS), theta, rtol=0, atol=1e-15)
    assert np.allclose(_run(SGD(0.9, nesterov=True), GRADS), theta_n, rtol=0, atol=1e-15)


def test_adam_by_hand_and_first_step_size():
    theta, m, s = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate(map(np.array, GRADS), start=1):
        m = 0.9 * m + 0.1 * g
        s = 0.999 * s + 0.001 * g * g
        theta = theta - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(s / (1 - 0.999**t)) + 1e-8)
    assert np.allclose(_run(Adam(), GRADS), theta, rtol=1e-14)
    # the first Adam step moves every coordinate by about lr, whatever the gradient size
    assert np.allclose(_run(Adam(), [[1e-3, -50.0]]) - [1.0, -2.0], [-0.1, 0.1], rtol=1e-4)


def test_optimizers_minimise_a_quadratic():
    for name in ("sgd", "momentum", "nesterov", "adam"):
        optimizer, x = make_optimizer(name), np.array([3.0, -4.0])
        for _ in range(500):
            optimizer.step([x], [2 * x], 0.05)  # f = |x|², ∇f = 2x
        assert np.linalg.norm(x) < 1e-3, name


def test_bad_optimizer_settings():
    with pytest.raises(ValueError, match="unknown optimiser 'rmsprop'; valid: sgd, momentum"):
        make_optimizer("rmsprop")
    with pytest.raises(ValueError, match="momentum must be in"):
        SGD(momentum=1.5)
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        SGD(nesterov=True)
    with pytest.raises(ValueError, match="beta2 must be in"):
        Adam(beta2=1.0)


def test_step_and_cosine_schedules():
    assert StepDecay(0.1, 0.5, 10).values(25)[[0, 9, 10, 20]].tolist() == [0.1, 0.1, 0.05, 0.025]
    cosine = Cosine(0.1, 100, warmup=10, final=0.001)
    rates = cosine.values(120)
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1)
    assert rates[55] == pytest.approx(0.001 + 0.5 * 0.099)
    assert rates[100] == pytest.approx(0.001) and rates[119] == pytest.approx(0.001)
    assert np.all(np.diff(rates[10:101]) <= 1e-15)
    assert cosine(55) == rates[55]
    with pytest.raises(ValueError, match="warmup must be"):
        Cosine(0.1, 10, warmup=10)


@pytest.mark.parametrize(
    "schedule",
    [Constant(0.1), LinearDecay(0.1, 0.001, 50), StepDecay(0.1, 0.5, 7), Cosine(0.1, 40, 5, 0.01)],
)
def test_schedules_roundtrip_through_dicts(schedule):
    again = schedule_from_dict(schedule_to_dict(schedule))
    assert type(again) is type(schedule)
    assert np.array_equal(again.values(60), schedule.values(60))


@pytest.mark.parametrize(
    "optimizer, move", [(SGD(), -0.05), (SGD(0.9), -0.05), (SGD(0.9, nesterov=True), -0.095)]
)
def test_updates_are_in_place_keep_dtype_and_leave_gradients_alone(optimizer, move):
    param = np.arange(6, dtype=np.float32).reshape(2, 3)
    grad = np.full((2, 3), 0.5)  # float64 gradient for a float32 parameter
    same, grad_before = param, grad.copy()
    optimizer.step([param], [grad], 0.1)
    assert param is same and param.dtype == np.float32
    np.testing.assert_allclose(param, np.arange(6).reshape(2, 3) + move, rtol=1e-6)
    np.testing.assert_array_equal(grad, grad_before)


@pytest.mark.parametrize("make", [lambda: SGD(0.9), lambda: SGD(0.9, nesterov=True), Adam])
def test_optimiser_state_resumes_bit_for_bit(make):
    """Ten steps, or five, a state() / load_state() into a new optimiser, and
    five more: the same parameters to the last bit."""
    rng = np.random.default_rng(0)
    grads = [[rng.normal(size=(4, 3)), rng.normal(size=3)] for _ in range(10)]
    straight = [np.ones((4, 3)), np.zeros(3)]
    first = make()
    for g in grads:
        first.step(straight, g, 0.1)
    split = [np.ones((4, 3)), np.zeros(3)]
    before = make()
    for g in grads[:5]:
        before.step(split, g, 0.1)
    meta, arrays = before.state()
    after = make()
    after.load_state(json.loads(json.dumps(meta)), {k: v.copy() for k, v in arrays.items()}, split)
    for g in grads[5:]:
        after.step(split, g, 0.1)
    assert all(np.array_equal(a, b) for a, b in zip(straight, split))
    with pytest.raises(ValueError, match="differs from the checkpoint"):
        (SGD(0.5) if isinstance(first, Adam) else Adam()).load_state(meta, arrays, split)
