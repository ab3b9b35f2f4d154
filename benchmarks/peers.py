"""Peers for the benchmarks, each written as its own users would write it:

* ``numba_per_sample``: a hand-written numba loop with the engine's sparsity tricks
  (only the image's nonzero pixels and the active ReLU rows are touched), plain
  loops and plain sums, numba's default settings;
* ``jax_per_sample``: per-sample SGD in JAX, the whole window as one jitted
  ``lax.scan`` over the images, gradients by ``jax.grad`` (float64);
* ``jax_minibatch``: mini-batch SGD in JAX (float32, batch 128), a jitted step
  called per batch, and one ``lax.scan`` over an epoch's batches.

JAX is optional (``pip install -e .[bench]``): without it the JAX functions
return None. No peer is used by the library; the benchmarks check each against
mlp_lib's numbers before timing it.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit
def _numba_steps(weights, biases, relu, ptr, pixels, values, labels, rates):
    n_layers = len(weights)
    sizes = [w.shape[1] for w in weights]
    zs = [np.zeros(n) for n in sizes]
    acts = [np.zeros(n) for n in sizes[:-1]]
    deltas = [np.zeros(n) for n in sizes]
    for step in range(rates.size):
        i = step % labels.size
        lr = rates[step]
        # forward: layer 1 over the nonzero pixels only
        z = zs[0]
        z[:] = biases[0]
        for t in range(ptr[i], ptr[i + 1]):
            row = weights[0][pixels[t]]
            for j in range(z.size):
                z[j] += values[t] * row[j]
        for l in range(1, n_layers):
            a = acts[l - 1]
            for k in range(a.size):
                v = zs[l - 1][k]
                a[k] = max(v, 0.0) if relu else 1.0 / (1.0 + np.exp(-v))
            z = zs[l]
            z[:] = biases[l]
            for k in range(a.size):
                if a[k] != 0.0:  # an inactive ReLU unit adds nothing
                    row = weights[l][k]
                    for j in range(z.size):
                        z[j] += a[k] * row[j]
        # softmax and cross-entropy gradient
        z = zs[n_layers - 1]
        d = deltas[n_layers - 1]
        m = z.max()
        total = 0.0
        for j in range(z.size):
            d[j] = np.exp(z[j] - m)
            total += d[j]
        for j in range(z.size):
            d[j] /= total
        d[labels[i]] -= 1.0
        # backward and update, layer by layer
        for l in range(n_layers - 1, 0, -1):
            a, d, below = acts[l - 1], deltas[l], deltas[l - 1]
            w = weights[l]
            for k in range(a.size):
                if relu and a[k] == 0.0:
                    below[k] = 0.0
                    continue
                s = 0.0
                for j in range(d.size):
                    s += w[k, j] * d[j]
                below[k] = s if relu else s * a[k] * (1.0 - a[k])
                for j in range(d.size):
                    w[k, j] -= lr * a[k] * d[j]
            for j in range(d.size):
                biases[l][j] -= lr * d[j]
        d = deltas[0]
        for t in range(ptr[i], ptr[i + 1]):
            row = weights[0][pixels[t]]
            for j in range(d.size):
                row[j] -= lr * values[t] * d[j]
        for j in range(d.size):
            biases[0][j] -= lr * d[j]


def numba_per_sample(model, images, labels, rates):
    """Train a copy of ``model`` (float64) for ``len(rates)`` steps with the hand-written
    loop; returns the trained (weights, biases)."""
    from numba.typed import List

    from mlp_lib.engines.per_sample import nonzero_pixels

    ptr, pixels, values = nonzero_pixels(np.asarray(images, np.float64))
    weights = List([np.array(w, np.float64) for w in model.weights])
    biases = List([np.array(b, np.float64) for b in model.biases])
    _numba_steps(weights, biases, model.activation == "relu", ptr, pixels, values,
                 np.asarray(labels, np.int64), np.asarray(rates, np.float64))  # fmt: skip
    return list(weights), list(biases)


def _jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_enable_x64", True)
    return jax


def jax_version():
    jax = _jax()
    return None if jax is None else jax.__version__


def _loss(jnp, jax, params, x, y, activation):
    act = jax.nn.relu if activation == "relu" else jax.nn.sigmoid
    h = x
    for w, b in params[:-1]:
        h = act(h @ w + b)
    w, b = params[-1]
    logits = h @ w + b
    return (
        -jax.nn.log_softmax(logits)[..., y].mean()
        if logits.ndim == 1
        else (-jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1).mean())
    )


def jax_per_sample(model, images, labels, rates):
    """A function ``run()`` that trains a copy of ``model`` for ``len(rates)`` per-sample
    steps in one jitted ``lax.scan`` and returns the (weights, biases) as numpy
    (float64; call once to compile); None without JAX."""
    jax = _jax()
    if jax is None:
        return None
    import jax.numpy as jnp

    x = jnp.asarray(images[: len(rates)], jnp.float64)
    y = jnp.asarray(labels[: len(rates)])
    lr = jnp.asarray(rates, jnp.float64)
    start = [(jnp.asarray(w, jnp.float64), jnp.asarray(b, jnp.float64))
             for w, b in zip(model.weights, model.biases)]  # fmt: skip
    grad = jax.grad(lambda p, xi, yi: _loss(jnp, jax, p, xi, yi, model.activation))

    def step(params, sample):
        xi, yi, rate = sample
        g = grad(params, xi, yi)
        return [(w - rate * gw, b - rate * gb) for (w, b), (gw, gb) in zip(params, g)], None

    @jax.jit
    def train(params):
        return jax.lax.scan(step, params, (x, y, lr))[0]

    def run():
        trained = jax.block_until_ready(train(start))
        return [np.asarray(w) for w, _ in trained], [np.asarray(b) for _, b in trained]

    return run


def jax_minibatch(model, images, labels, lr, batch=128, scan=False):
    """A function ``run()`` that trains a copy of ``model`` for one epoch of mini-batch SGD
    in float32 (the batches in file order), by a jitted step per batch or, with
    ``scan``, one jitted ``lax.scan`` over the batches; returns the weights as numpy.
    None without JAX."""
    jax = _jax()
    if jax is None:
        return None
    import jax.numpy as jnp

    n = len(images) // batch * batch
    x = jnp.asarray(images[:n], jnp.float32).reshape(-1, batch, images.shape[1])
    y = jnp.asarray(labels[:n]).reshape(-1, batch)
    start = [(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32))
             for w, b in zip(model.weights, model.biases)]  # fmt: skip
    grad = jax.grad(lambda p, xb, yb: _loss(jnp, jax, p, xb, yb, model.activation))
    rate = jnp.float32(lr)

    def update(params, sample):
        g = grad(params, *sample)
        return [(w - rate * gw, b - rate * gb) for (w, b), (gw, gb) in zip(params, g)], None

    if scan:
        epoch = jax.jit(lambda params: jax.lax.scan(update, params, (x, y))[0])
    else:
        jitted = jax.jit(lambda params, xb, yb: update(params, (xb, yb))[0])

        def epoch(params):
            for k in range(x.shape[0]):
                params = jitted(params, x[k], y[k])
            return params

    def run():
        trained = jax.block_until_ready(epoch(start))
        return [np.asarray(w) for w, _ in trained]

    return run
