r"""Activations, softmax and cross-entropy, with their derivatives.

Pure functions on NumPy arrays; they keep the dtype of their input.

Notation (as in the report): a layer computes :math:`H = W X`, the next
layer's input is :math:`X' = \mathrm{act}(H)`, the output is
:math:`\hat Y = \mathrm{softmax}(H^{(L)})` and the loss is
:math:`L = -\sum_i Y_i \ln \hat Y_i = -\ln \hat Y_{label}`.

Why the output gradient is :math:`\hat Y - Y` (report §1.4.1)
-------------------------------------------------------------
With :math:`\hat Y_k = e^{H_k} / \sum_m e^{H_m}`, the softmax Jacobian is

.. math::

    \frac{\partial \hat Y_k}{\partial H_j} = \hat Y_k (\delta_{kj} - \hat Y_j),

since differentiating the numerator gives :math:`\delta_{kj} e^{H_k}` and the
denominator gives :math:`-e^{H_k} e^{H_j} / (\sum_m e^{H_m})^2`. Then, by the
chain rule,

.. math::

    \frac{\partial L}{\partial H_j}
      = -\sum_k \frac{Y_k}{\hat Y_k} \hat Y_k (\delta_{kj} - \hat Y_j)
      = -Y_j + \hat Y_j \sum_k Y_k
      = \hat Y_j - Y_j,

because the one-hot :math:`Y` sums to 1. The :math:`1/\hat Y_k` of the log and
the :math:`\hat Y_k` of the Jacobian cancel, which is why the combined gradient
is computed directly (``softmax_cross_entropy_grad``) and never through the
two separate derivatives: it is exact even where :math:`\hat Y_k` underflows.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "sigmoid",
    "sigmoid_grad",
    "relu",
    "relu_grad",
    "tanh",
    "tanh_grad",
    "leaky_relu",
    "leaky_relu_grad",
    "ACTIVATIONS",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "softmax_cross_entropy_grad",
    "one_hot",
]


def sigmoid(x):
    r"""Logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    For very negative ``x`` :math:`e^{-x}` overflows to ``inf`` and the result is
    exactly 0, the correct limit; the overflow warning is silenced for that reason.
    """
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def sigmoid_grad(activated):
    r"""Derivative of the sigmoid from its *output*:
    :math:`\sigma'(x) = \sigma(x)\,(1 - \sigma(x))`."""
    return activated * (1 - activated)


def relu(x):
    r"""Rectified linear unit :math:`\max(0, x)`."""
    return np.maximum(x, 0)


def relu_grad(activated):
    r"""Derivative of ReLU from its *output*: 1 where :math:`\max(0, x) > 0`, else 0.

    (At :math:`x = 0` exactly the derivative is taken as 0, the usual subgradient.)
    """
    return (activated > 0).astype(activated.dtype)


def tanh(x):
    r"""Hyperbolic tangent :math:`\tanh(x) = (e^x - e^{-x}) / (e^x + e^{-x})`."""
    return np.tanh(x)


def tanh_grad(activated):
    r"""Derivative of tanh from its *output*: :math:`\tanh'(x) = 1 - \tanh^2(x)`."""
    return 1 - activated * activated


LEAKY_SLOPE = 0.01


def leaky_relu(x):
    r"""Leaky ReLU :math:`x` for :math:`x > 0`, :math:`0.01\,x` otherwise."""
    return np.where(x > 0, x, x * LEAKY_SLOPE).astype(np.result_type(x), copy=False)


def leaky_relu_grad(activated):
    r"""Derivative of leaky ReLU from its *output* (same sign as the input):
    1 where the output is positive, 0.01 elsewhere."""
    return np.where(activated > 0, 1, LEAKY_SLOPE).astype(activated.dtype)


#: Hidden activations by name: ``name -> (function, derivative from output)``.
ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "relu": (relu, relu_grad),
    "tanh": (tanh, tanh_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
}


def softmax(logits, axis=-1):
    r"""Numerically stable softmax along ``axis``.

    .. math::

        \mathrm{softmax}(H)_i = \frac{e^{H_i - m}}{\sum_j e^{H_j - m}}, \quad m = \max_j H_j

    Subtracting the maximum changes nothing mathematically and keeps every
    exponent :math:`\le 0`, so huge logits neither overflow nor give NaN.
    """
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    exps = np.exp(shifted)
    return exps / np.sum(exps, axis=axis, keepdims=True)


def log_softmax(logits, axis=-1):
    r"""Numerically stable log-softmax along ``axis``.

    .. math::

        \ln \mathrm{softmax}(H)_i = H_i - m - \ln \sum_j e^{H_j - m}

    Finite wherever the logits are finite, unlike ``log(softmax(H))``, which is
    :math:`-\infty` once a probability underflows.
    """
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def cross_entropy(logits, labels):
    r"""Mean cross-entropy of integer labels under softmax(logits).

    .. math::

        L = \frac{1}{N} \sum_{n=1}^{N} -\ln \hat Y_{n, y_n}
          = \frac{1}{N} \sum_n \left(\ln \sum_j e^{H_{nj}} - H_{n, y_n}\right)

    Parameters
    ----------
    logits : array, shape (N, C) or (C,)
        Output-layer pre-activations :math:`H^{(L)}`.
    labels : int array, shape (N,) or scalar
        True classes in ``0..C-1``.
    """
    logits = np.asarray(logits)
    if logits.ndim == 1:
        return -log_softmax(logits)[int(labels)]
    log_probs = log_softmax(logits)
    return -np.mean(log_probs[np.arange(len(logits)), labels])


def softmax_cross_entropy(logits, labels):
    r"""Softmax of each row of ``logits`` (N, C) and the mean cross-entropy of
    ``labels``, from one pass of exponentials.

    .. math::

        \hat Y_{nj} = \frac{e^{H_{nj} - m_n}}{s_n}, \qquad
        L = \frac{1}{N} \sum_n \left(\ln s_n - (H_{n, y_n} - m_n)\right), \qquad
        s_n = \sum_j e^{H_{nj} - m_n}

    The same values, bit for bit, as ``softmax(logits)`` and
    ``cross_entropy(logits, labels)``, which would compute the exponentials twice.

    Returns
    -------
    probs : ndarray (N, C)
    loss : scalar of the logits' dtype
    """
    # (ufunc reductions rather than np.max / np.sum: the same values, without
    # the wrappers' overhead, which matters once per mini-batch)
    shifted = logits - np.maximum.reduce(logits, axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = np.add.reduce(exps, axis=1, keepdims=True)
    picked = shifted[np.arange(len(logits)), labels]
    exps /= sums
    return exps, np.mean(np.log(sums[:, 0]) - picked)


def softmax_cross_entropy_grad(probs, labels):
    r"""Gradient of the mean cross-entropy with respect to the logits.

    .. math::

        \frac{\partial L}{\partial H^{(L)}} = \frac{1}{N}(\hat Y - Y)

    (derivation in this module's docstring). ``probs`` is :math:`\hat Y`, shape
    (N, C) or (C,); ``labels`` are the integer classes behind the one-hot :math:`Y`.
    """
    grad = np.array(probs, copy=True)
    if grad.ndim == 1:
        grad[int(labels)] -= 1
        return grad
    grad[np.arange(len(grad)), labels] -= 1
    grad /= len(grad)
    return grad


def one_hot(labels, n_classes=10, dtype=np.float64):
    """One-hot rows :math:`Y` for integer labels, shape (N, n_classes)."""
    labels = np.asarray(labels)
    out = np.zeros((labels.size, n_classes), dtype=dtype)
    out[np.arange(labels.size), labels.ravel()] = 1
    return out
