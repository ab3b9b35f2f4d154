r"""The multilayer perceptron: parameters, forward with cache, backward.

Notation, used in every module: :math:`Z_l` is layer :math:`l`'s
pre-activation and :math:`A_l` its activation (output), for layers
:math:`l = 1..L`, with :math:`A_0 = X` the input rows. The report writes the
same quantities as :math:`H^{(l)} = Z_l^\top` and
:math:`X^{(l+1)} = \mathrm{concat}(1, A_l^\top)`: its bias is column 0 of its
weight matrix, fed by a constant 1.

Forward, for a batch of :math:`N` rows (one sample is the case :math:`N = 1`):

.. math::

    Z_l &= A_{l-1} W_l + b_l                       &\quad\text{(pre-activation)}\\
    A_l &= \mathrm{act}(Z_l), \quad l < L          &\quad\text{(activation)}\\
    \hat Y &= \mathrm{softmax}(Z_L), \quad
    \mathcal L = -\tfrac{1}{N}\textstyle\sum_n \ln \hat Y_{n, y_n}

and backward, with :math:`\Delta_l = \partial \mathcal L / \partial Z_l`:

.. math::

    \Delta_L &= (\hat Y - Y) / N \\
    \partial \mathcal L / \partial W_l &= A_{l-1}^\top \Delta_l, \qquad
    \partial \mathcal L / \partial b_l = \textstyle\sum_n \Delta_{l, n} \\
    \Delta_{l-1} &= (\Delta_l W_l^\top) \odot \mathrm{act}'(Z_{l-1})

(``act'`` is computed from :math:`A_{l-1}`: :math:`\sigma' = A(1 - A)`,
:math:`\mathrm{relu}' = [A > 0]`.)

The two weight layouts, for one layer:

======================  =======================================  ==================================
who                     array                                    computes
======================  =======================================  ==================================
the report              ``W_report``, ``(n_out, n_in + 1)``,     ``H = W_report @ concat(1, x)``
                        bias in column 0
``MLP`` (and every      ``weights[l]`` ``(n_in, n_out)``         ``Z = A @ W + b``
engine)                 and ``biases[l]`` ``(n_out,)``
======================  =======================================  ==================================

so ``W_report = concat(b[:, None], W.T, axis=1)``. The per-sample engine
trains these very arrays in place (a tuple of the weights, a tuple of the
biases); it gathers nothing into another layout.
"""

from __future__ import annotations

import numbers

import numpy as np

from .blas import matmul, zeros_like
from .functional import (
    ACTIVATIONS,
    cross_entropy,
    softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_grad,
)
from .init import INITS, initialize

__all__ = ["MLP", "as_generator", "evaluate"]


def as_generator(seed):
    """A ``numpy.random.Generator`` from ``None``, an int seed or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and seed >= 0):
        return np.random.default_rng(seed)
    raise ValueError(f"seed must be None, a non-negative int or a numpy Generator, got {seed!r}")


def _dropout_mask(shape, rate, rng, dtype):
    """Inverted-dropout mask: 0 with probability ``rate``, else 1/(1 - rate)."""
    if not rate:
        return None
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    return (rng.random(shape) >= rate).astype(dtype) / dtype.type(1 - rate)


def _activate(name, pre):
    """``act(pre)``; ReLU overwrites ``pre`` (it is not kept), saving a temporary."""
    if name == "relu":
        return np.maximum(pre, zeros_like(pre), out=pre)
    return ACTIVATIONS[name][0](pre)


def _times_act_grad(name, grad, activated):
    """``grad ⊙ act'(A)`` in place, from the activation's output ``A``."""
    if name == "relu":
        return np.multiply(grad, activated > 0, out=grad)
    grad *= ACTIVATIONS[name][1](activated)
    return grad


class MLP:
    """A fully connected network: hidden layers with one activation, softmax output.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_input, n_hidden..., n_classes]``, at least two entries, all positive;
        e.g. the report's 4-layer net ``[784, 512, 256, 64, 10]``.
    activation : {"relu", "sigmoid", "tanh", "leaky_relu"}
        Hidden activation.
    init : {"he", "xavier", "normal", "uniform"}
        Initialiser (``mlp_lib.core.init``); biases start at 0.
    seed : None, int or numpy.random.Generator
        Source of the initial weights.
    dtype : numpy float dtype
        float64 (default, exact reproduction) or float32 (speed).
    init_std : float
        Standard deviation for ``init="normal"`` (the report's 0.1).

    Attributes
    ----------
    weights : list of ndarray, ``weights[l]`` of shape ``(n_in, n_out)``
    biases : list of ndarray, ``biases[l]`` of shape ``(n_out,)``
    """

    def __init__(
        self, layer_sizes, activation="relu", init="he", seed=None, dtype=np.float64, init_std=0.1
    ):
        sizes = list(layer_sizes)
        if len(sizes) < 2 or not all(isinstance(s, numbers.Integral) and s > 0 for s in sizes):
            raise ValueError(f"layer_sizes must be at least two positive ints, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.layer_sizes = [int(s) for s in sizes]
        self.activation = activation
        self.init = init
        self.dtype = dtype
        self.weights, self.biases = initialize(
            self.layer_sizes, init, as_generator(seed), dtype, std=init_std
        )

    # ------------------------------------------------------------------ helpers
    @property
    def n_layers(self):
        """Number of weight layers :math:`L` (the report's "4-layer" net has 4)."""
        return len(self.weights)

    def __repr__(self):
        return (
            f"MLP({self.layer_sizes}, activation={self.activation!r}, "
            f"init={self.init!r}, dtype={self.dtype.name})"
        )

    def copy(self):
        """A deep copy (same architecture, copied parameters)."""
        clone = object.__new__(MLP)
        clone.__dict__.update(self.__dict__)
        clone.weights = [w.copy() for w in self.weights]
        clone.biases = [b.copy() for b in self.biases]
        return clone

    def as_batch(self, x):
        """``x`` as a 2-D array of the model's dtype; validates shape and values."""
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"inputs must be numeric, got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.layer_sizes[0]:
            raise ValueError(
                f"inputs must have shape (N, {self.layer_sizes[0]}) or "
                f"({self.layer_sizes[0]},), got {np.shape(x)}"
            )
        arr = arr.astype(self.dtype, copy=False)
        # min and max propagate NaN and reach ±inf, without the temporary of
        # isfinite(arr).all(), which costs 0.1 s on MNIST's 47M values
        if arr.size and not (np.isfinite(arr.min()) and np.isfinite(arr.max())):
            raise ValueError("inputs contain NaN or inf")
        return arr

    def check_labels(self, labels, n_rows):
        """``labels`` as ``n_rows`` class indices in ``0..n_classes-1``; else ValueError."""
        labels = np.asarray(labels)
        if labels.ndim == 0:
            labels = labels[None]
        if labels.shape != (n_rows,) or labels.dtype.kind not in "iu":
            raise ValueError(
                f"labels must be {n_rows} integers, got shape {labels.shape} dtype {labels.dtype}"
            )
        n_classes = self.layer_sizes[-1]
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(
                f"labels must lie in 0..{n_classes - 1}, got values in "
                f"{labels.min()}..{labels.max()}"
            )
        return labels

    # ------------------------------------------------------------------ forward
    def forward_cache(self, x, dropout=0.0, input_dropout=0.0, rng=None, labels=None):
        r"""Forward pass that keeps what backward needs.

        With ``dropout`` (hidden units) or ``input_dropout`` (pixels), each unit
        is kept with probability :math:`1 - p` and scaled by :math:`1/(1 - p)`
        ("inverted" dropout, so nothing changes at test time): the next layer
        reads :math:`\mathrm{act}(Z_l) \odot M_l` with :math:`M_l \in \{0, 1/(1-p)\}`
        drawn from ``rng``.

        Returns
        -------
        probs : ndarray (N, n_classes)
            :math:`\hat Y`.
        cache : dict
            ``A``: :math:`[A_0, ..., A_{L-1}]`, what each layer reads (after
            dropout); ``A_undropped``: the same before dropout, from which
            :math:`\mathrm{act}'` is computed; ``M``: the masks :math:`M_l`
            (``None`` without dropout); ``Z_L``: the logits; with ``labels``
            (ints, one per row), ``loss``: the mean cross-entropy, computed
            with the softmax (``functional.softmax_cross_entropy``).
        """
        if (dropout or input_dropout) and rng is None:
            raise ValueError("dropout needs a numpy Generator: pass rng=")
        masks = [_dropout_mask(x.shape, input_dropout, rng, x.dtype)]
        A = [x if masks[0] is None else x * masks[0]]
        # fmt: off
        A_undropped = [A[0]]
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            Z = matmul(A[-1], W)                                   # Z_l = A_{l-1} W_l + b_l
            Z += b
            A_undropped.append(_activate(self.activation, Z))      # A_l = act(Z_l)
            masks.append(_dropout_mask(A_undropped[-1].shape, dropout, rng, A_undropped[-1].dtype))
            A.append(A_undropped[-1] if masks[-1] is None else A_undropped[-1] * masks[-1])
        Z_L = matmul(A[-1], self.weights[-1])                      # Z_L = A_{L-1} W_L + b_L
        Z_L += self.biases[-1]
        cache = {"A": A, "A_undropped": A_undropped, "M": masks, "Z_L": Z_L}
        if labels is None:
            return softmax(Z_L), cache                             # Ŷ = softmax(Z_L)
        probs, cache["loss"] = softmax_cross_entropy(Z_L, labels)
        return probs, cache
        # fmt: on

    def backward(self, probs, cache, labels, weight_decay=0.0):
        r"""Gradients of the mean cross-entropy from ``forward_cache``'s output.

        Returns ``(weight_grads, bias_grads)``, lists shaped like ``weights`` and
        ``biases``; each line below is one equation of the module docstring.
        With dropout, :math:`\Delta_{l-1}` is also multiplied by the mask
        :math:`M_{l-1}`; with ``weight_decay`` :math:`\lambda`, the loss has the
        extra term :math:`\tfrac{\lambda}{2}\sum_l \lVert W_l\rVert^2` and each
        weight gradient gains :math:`\lambda W_l` (biases are not decayed).
        """
        A = cache["A"]
        weight_grads = [None] * self.n_layers
        bias_grads = [None] * self.n_layers
        # fmt: off
        delta = softmax_cross_entropy_grad(probs, labels)         # Δ_L = (Ŷ - Y)/N
        for layer in reversed(range(self.n_layers)):
            weight_grads[layer] = matmul(A[layer].T, delta)        # A_{l-1}ᵀ Δ_l
            if weight_decay:
                weight_grads[layer] += weight_decay * self.weights[layer]   # + λ W_l
            bias_grads[layer] = delta.sum(axis=0)                  # Σ_n Δ_l
            if layer > 0:
                delta = self.delta_below(layer, delta, cache)      # Δ_{l-1}
        return weight_grads, bias_grads
        # fmt: on

    def delta_below(self, layer, delta, cache):
        r""":math:`\Delta_{l-1} = (\Delta_l W_l^\top) \odot \mathrm{act}'(Z_{l-1})`,
        times the dropout mask :math:`M_{l-1}` if there is one. ``layer`` is the
        0-based index of :math:`W_l` in ``weights``; ``W_l`` must not have been
        updated yet."""
        below = _times_act_grad(
            self.activation, matmul(delta, self.weights[layer].T), cache["A_undropped"][layer]
        )
        if cache["M"][layer] is not None:
            below *= cache["M"][layer]
        return below

    def gradients(self, x, labels, weight_decay=0.0, dropout=0.0, input_dropout=0.0, rng=None):
        """Mean loss and its gradients over the rows of ``x``.

        ``weight_decay`` adds :math:`\\tfrac{\\lambda}{2}\\sum_l\\lVert W_l\\rVert^2` to the
        loss; ``dropout`` / ``input_dropout`` draw masks from ``rng``.

        Returns
        -------
        loss : float
        weight_grads, bias_grads : lists of arrays shaped like ``weights``, ``biases``
        """
        x = self.as_batch(x)
        labels = self.check_labels(labels, len(x))
        probs, cache = self.forward_cache(x, dropout, input_dropout, rng, labels)
        loss = cache["loss"] + self.weight_penalty(weight_decay)
        weight_grads, bias_grads = self.backward(probs, cache, labels, weight_decay)
        return float(loss), weight_grads, bias_grads

    def weight_penalty(self, weight_decay):
        """:math:`\\tfrac{\\lambda}{2}\\sum_l \\lVert W_l\\rVert^2` (0 when λ = 0)."""
        if not weight_decay:
            return 0.0
        return 0.5 * weight_decay * float(sum(np.sum(w * w) for w in self.weights))

    def logits(self, x, batch_size=10000):
        """Output pre-activations :math:`Z_L` for ``x`` (N, n_input), in chunks."""
        x = self.as_batch(x)
        out = np.empty((len(x), self.layer_sizes[-1]), dtype=self.dtype)
        for start in range(0, len(x), batch_size):
            A = x[start : start + batch_size]
            for W, b in zip(self.weights[:-1], self.biases[:-1]):
                Z = matmul(A, W)
                Z += b
                A = _activate(self.activation, Z)
            out[start : start + batch_size] = matmul(A, self.weights[-1]) + self.biases[-1]
        return out

    def forward(self, x):
        """Class probabilities :math:`\\hat Y`: shape (N, n_classes) for a batch,
        (n_classes,) for one sample."""
        probs = softmax(self.logits(x))
        return probs[0] if np.ndim(x) == 1 else probs

    predict_proba = forward

    def predict(self, x):
        """Most probable class: ints of shape (N,), or one int for one sample."""
        labels = np.argmax(self.logits(x), axis=1)
        return int(labels[0]) if np.ndim(x) == 1 else labels

    def loss(self, x, labels):
        """Mean cross-entropy over the rows of ``x``."""
        logits = self.logits(x)
        labels = self.check_labels(labels, len(logits))
        return float(cross_entropy(logits, labels))


def evaluate(model, images, labels):
    """Mean cross-entropy and accuracy of ``model`` on a labelled set.

    Returns
    -------
    (mean_loss, accuracy) : tuple of float
    """
    logits = model.logits(images)
    labels = model.check_labels(labels, len(logits))
    mean_loss = cross_entropy(logits, labels)
    accuracy = np.mean(np.argmax(logits, axis=1) == labels)
    return float(mean_loss), float(accuracy)
