r"""Optimisers: how a gradient :math:`g` becomes a parameter update.

Each optimiser keeps its own state per parameter array and updates the arrays
in place with ``step(params, grads, lr)``.

==================  ==========================================================
``SGD()``           :math:`\theta \leftarrow \theta - \eta g`
``SGD(momentum)``   :math:`v \leftarrow \mu v - \eta g,\ \theta \leftarrow \theta + v`
``SGD(nesterov)``   :math:`v \leftarrow \mu v - \eta g,\ \theta \leftarrow \theta + \mu v - \eta g`
``Adam()``          :math:`m \leftarrow \beta_1 m + (1-\beta_1) g,\
                    s \leftarrow \beta_2 s + (1-\beta_2) g^2,\
                    \theta \leftarrow \theta - \eta\,\hat m / (\sqrt{\hat s} + \epsilon)`
                    with :math:`\hat m = m / (1-\beta_1^t)`, :math:`\hat s = s / (1-\beta_2^t)`
==================  ==========================================================

(Nesterov's form is the one of Sutskever et al. 2013 rewritten for the
parameters at the look-ahead point; Adam is Kingma & Ba 2015.)
"""

from __future__ import annotations

import numpy as np

__all__ = ["SGD", "Adam", "OPTIMIZERS", "make_optimizer"]


class SGD:
    """Stochastic gradient descent, optionally with (Nesterov) momentum."""

    def __init__(self, momentum=0.0, nesterov=False):
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and not momentum:
            raise ValueError("nesterov=True needs a momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.velocity = self.scratch = None

    def step(self, params, grads, lr):
        if not self.momentum:
            for p, g in zip(params, grads):
                p -= lr * g
            return
        if self.velocity is None:
            self.velocity = [np.zeros_like(p) for p in params]
            self.scratch = [np.empty_like(p) for p in params]
        # in place, through one reused scratch array per parameter: no
        # weight-sized temporaries are allocated per step
        momentum = params[0].dtype.type(self.momentum)
        # fmt: off
        for p, g, v, scaled in zip(params, grads, self.velocity, self.scratch):
            np.multiply(g, lr, out=scaled)               # η g
            v *= momentum
            v -= scaled                                  # v = μ v - η g
            if self.nesterov:
                p -= scaled                              # θ += μ v - η g
                np.multiply(v, momentum, out=scaled)
                p += scaled
            else:
                p += v                                   # θ += v
        # fmt: on

    def state(self):
        """What ``step`` has accumulated, to resume bit for bit: a JSON-ready
        dict of settings and a dict of arrays (the velocities, once made)."""
        arrays = (
            {}
            if self.velocity is None
            else {f"velocity_{i}": v for i, v in enumerate(self.velocity)}
        )
        return {"kind": "sgd", "momentum": self.momentum, "nesterov": self.nesterov}, arrays

    def load_state(self, meta, arrays, params):
        """Continue from ``state()``'s output; the settings must be the same."""
        _check_same(
            self, meta, {"kind": "sgd", "momentum": self.momentum, "nesterov": self.nesterov}
        )
        if arrays:
            self.velocity = _arrays_like(arrays, "velocity", params)
            self.scratch = [np.empty_like(p) for p in params]

    def __repr__(self):
        return (
            f"SGD(momentum={self.momentum:g}" + (", nesterov=True" if self.nesterov else "") + ")"
        )


class Adam:
    """Adam with bias-corrected first and second moments."""

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-8):
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.t = 0
        self.m = self.s = None

    def step(self, params, grads, lr):
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.s = [np.zeros_like(p) for p in params]
        self.t += 1
        correction1 = 1 - self.beta1**self.t
        correction2 = 1 - self.beta2**self.t
        # fmt: off
        for p, g, m, s in zip(params, grads, self.m, self.s):
            m *= self.beta1
            m += (1 - self.beta1) * g                    # m = β1 m + (1-β1) g
            s *= self.beta2
            s += (1 - self.beta2) * g * g                # s = β2 s + (1-β2) g²
            p -= (lr / correction1) * m / (np.sqrt(s / correction2) + self.eps)
        # fmt: on

    def state(self):
        """What ``step`` has accumulated, to resume bit for bit: a JSON-ready
        dict of settings and step count, and a dict of arrays (the moments)."""
        arrays = {}
        if self.m is not None:
            arrays = {
                **{f"m_{i}": m for i, m in enumerate(self.m)},
                **{f"s_{i}": s for i, s in enumerate(self.s)},
            }
        return {
            "kind": "adam",
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "t": self.t,
        }, arrays

    def load_state(self, meta, arrays, params):
        """Continue from ``state()``'s output; the settings must be the same."""
        _check_same(
            self,
            {k: v for k, v in meta.items() if k != "t"},
            {"kind": "adam", "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps},
        )
        self.t = int(meta["t"])
        if arrays:
            self.m = _arrays_like(arrays, "m", params)
            self.s = _arrays_like(arrays, "s", params)

    def __repr__(self):
        return f"Adam(beta1={self.beta1:g}, beta2={self.beta2:g}, eps={self.eps:g})"


def _check_same(optimizer, saved, expected):
    if saved != expected:
        raise ValueError(
            f"resume: the optimiser {optimizer!r} differs from the checkpoint's {saved}"
        )


def _arrays_like(arrays, name, params):
    """``arrays[name_0], arrays[name_1], ...`` as fresh copies shaped like ``params``."""
    out = []
    for i, p in enumerate(params):
        array = arrays.get(f"{name}_{i}")
        if array is None or array.shape != p.shape:
            raise ValueError(
                f"resume: optimiser state {name}_{i} is missing or has the wrong shape"
            )
        out.append(np.array(array, dtype=p.dtype))
    return out


OPTIMIZERS = {
    "sgd": SGD,
    "momentum": lambda: SGD(0.9),
    "nesterov": lambda: SGD(0.9, True),
    "adam": Adam,
}


def make_optimizer(name):
    """An optimiser by name: ``sgd``, ``momentum`` (0.9), ``nesterov`` (0.9), ``adam``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimiser {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]()
