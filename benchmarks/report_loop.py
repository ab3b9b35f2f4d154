"""The report's per-sample training loop, written here from its description
(report §1.2-§1.4: prepend 1 with ``concatenate``, ``np.matmul``, full outer
products, float64). Used only as the baseline of the benchmark and tests."""

import numpy as np


def report_weights(model):
    """The model's parameters in the report's layout: W = [b | weightsᵀ]."""
    return [np.concatenate((b[:, None], w.T), axis=1)
            for w, b in zip(model.weights, model.biases)]


def report_train(matrices, images, labels, rates, activation="relu"):
    """Train the report's matrices in place for ``len(rates)`` steps, in order.

    ``rates[s]`` is the learning rate of step ``s``; images wrap around."""
    if activation == "relu":
        act = lambda h: np.maximum(h, 0)            # noqa: E731
        dact = lambda h: (h > 0).astype(h.dtype)    # noqa: E731
    else:
        act = lambda h: 1 / (1 + np.exp(-h))        # noqa: E731
        dact = lambda h: act(h) * (1 - act(h))      # noqa: E731
    one = np.array([1.0])
    n_layers = len(matrices)
    for step in range(len(rates)):
        img = images[step % len(images)]
        label = labels[step % len(images)]
        xs, hs = [], []
        x = np.concatenate((one, img))
        for n in range(n_layers):
            xs.append(x)
            h = np.matmul(matrices[n], x)
            hs.append(h)
            if n < n_layers - 1:
                x = np.concatenate((one, act(h)))
        exp_h = np.exp(h - h.max())
        y_hat = exp_h / exp_h.sum()
        d_h = y_hat.copy()
        d_h[label] -= 1
        grads = [None] * n_layers
        for n in reversed(range(n_layers)):
            grads[n] = np.matmul(d_h.reshape(-1, 1), xs[n].reshape(1, -1))
            d_x = np.matmul(d_h, matrices[n])
            if n > 0:
                d_h = d_x[1:] * dact(hs[n - 1])
        for n in range(n_layers):
            matrices[n] -= rates[step] * grads[n]
    return matrices
