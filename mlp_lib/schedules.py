"""Learning-rate schedules, indexed by the global step (0, 1, 2, ...).

A schedule is a callable ``lr = schedule(step)``; ``schedule.values(n)`` gives
the rates of steps ``0..n-1`` at once (the trainers precompute them).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Constant", "LinearDecay", "schedule_to_dict", "schedule_from_dict"]


def _check_rate(name, value):
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite learning rate, got {value!r}")
    return value


class Constant:
    """The same rate at every step (the report's ``lr = 10e-3``, i.e. 0.01)."""

    def __init__(self, lr):
        self.lr = _check_rate("lr", lr)

    def __call__(self, step):
        return self.lr

    def values(self, n_steps):
        return np.full(n_steps, self.lr)

    def __repr__(self):
        return f"Constant({self.lr:g})"


class LinearDecay:
    r"""The report's schedule: ``rates = numpy.linspace(start, end, n_steps)``;
    step :math:`s` uses ``rates[min(s, n_steps - 1)]``.

    It decays linearly over the first ``n_steps`` steps, then holds at ``end``
    (the report stops incrementing its step counter at ``n_steps - 1``).
    The values are those of ``numpy.linspace`` itself, bit for bit.
    """

    def __init__(self, start, end, n_steps):
        self.start = _check_rate("start", start)
        self.end = _check_rate("end", end)
        if int(n_steps) != n_steps or n_steps < 1:
            raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
        self.n_steps = int(n_steps)
        self._rates = np.linspace(self.start, self.end, self.n_steps)

    def __call__(self, step):
        return float(self._rates[min(int(step), self.n_steps - 1)])

    def values(self, n_steps):
        return self._rates[np.minimum(np.arange(n_steps), self.n_steps - 1)]

    def __repr__(self):
        return f"LinearDecay({self.start:g}, {self.end:g}, {self.n_steps})"


def schedule_to_dict(schedule):
    """A JSON-ready description of a schedule (for checkpoints)."""
    if isinstance(schedule, Constant):
        return {"name": "constant", "lr": schedule.lr}
    if isinstance(schedule, LinearDecay):
        return {"name": "linear_decay", "start": schedule.start, "end": schedule.end,
                "n_steps": schedule.n_steps}
    raise ValueError(f"cannot describe schedule {schedule!r}; use Constant or LinearDecay")


def schedule_from_dict(description):
    """The schedule that ``schedule_to_dict`` described."""
    kinds = {"constant": Constant, "linear_decay": LinearDecay}
    params = dict(description)
    name = params.pop("name", None)
    if name not in kinds:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(kinds)}")
    return kinds[name](**params)
