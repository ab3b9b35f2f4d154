"""Learning-rate schedules, indexed by the global step (0, 1, 2, ...).

A schedule is a callable ``lr = schedule(step)``; ``schedule.values(n)`` gives
the rates of steps ``0..n-1`` at once (the trainers precompute them).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Constant",
    "LinearDecay",
    "StepDecay",
    "Cosine",
    "schedule_to_dict",
    "schedule_from_dict",
]


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

    @classmethod
    def thousandfold(cls, lr, n_steps):
        """From ``lr`` down to ``lr / 1000`` over ``n_steps`` (the report's 0.01 -> 1e-5)."""
        return cls(lr, lr / 1000, n_steps)

    def __call__(self, step):
        return float(self._rates[min(int(step), self.n_steps - 1)])

    def values(self, n_steps):
        return self._rates[np.minimum(np.arange(n_steps), self.n_steps - 1)]

    def __repr__(self):
        return f"LinearDecay({self.start:g}, {self.end:g}, {self.n_steps})"


class StepDecay:
    """``lr * factor ** (step // every)``: the rate drops by ``factor`` every
    ``every`` steps."""

    def __init__(self, lr, factor, every):
        self.lr = _check_rate("lr", lr)
        if not 0 < factor <= 1:
            raise ValueError(f"factor must be in (0, 1], got {factor!r}")
        if int(every) != every or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.factor, self.every = float(factor), int(every)

    def __call__(self, step):
        return self.lr * self.factor ** (int(step) // self.every)

    def values(self, n_steps):
        return self.lr * self.factor ** (np.arange(n_steps) // self.every)

    def __repr__(self):
        return f"StepDecay({self.lr:g}, {self.factor:g}, {self.every})"


class Cosine:
    r"""Linear warm-up from ``lr / warmup`` to ``lr`` over ``warmup`` steps, then
    cosine annealing to ``final`` at step ``n_steps`` (held there after):

    .. math::

        \eta_s = \eta_{final} + \tfrac12(\eta - \eta_{final})
                 \bigl(1 + \cos(\pi\,\tfrac{s - w}{n - w})\bigr), \quad w \le s \le n
    """

    def __init__(self, lr, n_steps, warmup=0, final=0.0):
        self.lr = _check_rate("lr", lr)
        if int(n_steps) != n_steps or n_steps < 1:
            raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
        if int(warmup) != warmup or not 0 <= warmup < n_steps:
            raise ValueError(f"warmup must be an int in [0, n_steps), got {warmup!r}")
        if not 0 <= final <= lr:
            raise ValueError(f"final must be in [0, lr], got {final!r}")
        self.n_steps, self.warmup, self.final = int(n_steps), int(warmup), float(final)

    def values(self, n_steps):
        steps = np.arange(n_steps, dtype=np.float64)
        progress = np.clip((steps - self.warmup) / (self.n_steps - self.warmup), 0, 1)
        rates = self.final + 0.5 * (self.lr - self.final) * (1 + np.cos(np.pi * progress))
        if self.warmup:
            ramp = self.lr * (steps + 1) / self.warmup
            rates = np.where(steps < self.warmup, ramp, rates)
        return rates

    def __call__(self, step):
        return float(self.values(int(step) + 1)[-1])

    def __repr__(self):
        return f"Cosine({self.lr:g}, {self.n_steps}, warmup={self.warmup}, final={self.final:g})"


#: Each schedule's name in a checkpoint and the attributes that rebuild it
#: (its constructor's arguments, in order).
_DESCRIBED = {
    Constant: ("constant", ("lr",)),
    LinearDecay: ("linear_decay", ("start", "end", "n_steps")),
    StepDecay: ("step", ("lr", "factor", "every")),
    Cosine: ("cosine", ("lr", "n_steps", "warmup", "final")),
}


def schedule_to_dict(schedule):
    """A JSON-ready description of a schedule (for checkpoints)."""
    for kind, (name, fields) in _DESCRIBED.items():
        if isinstance(schedule, kind):
            return {"name": name, **{field: getattr(schedule, field) for field in fields}}
    raise ValueError(f"cannot describe schedule {schedule!r}; use one of mlp_lib.core.schedules")


def schedule_from_dict(description):
    """The schedule that ``schedule_to_dict`` described."""
    kinds = {name: kind for kind, (name, _) in _DESCRIBED.items()}
    params = dict(description)
    name = params.pop("name", None)
    if name not in kinds:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(kinds)}")
    return kinds[name](**params)
