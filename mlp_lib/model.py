r"""The multilayer perceptron: parameters, forward with cache, backward.

Equations, for a batch of :math:`N` rows (one sample is the case :math:`N = 1`),
layers :math:`l = 1..L`, :math:`A_0 = X`:

.. math::

    Z_l &= A_{l-1} W_l + b_l                       &\quad\text{(pre-activation, the report's } H^{(l)})\\
    A_l &= \mathrm{act}(Z_l), \quad l < L          &\quad\text{(the report's } X^{(l+1)} \text{ without its leading 1)}\\
    \hat Y &= \mathrm{softmax}(Z_L), \quad
    \mathcal L = -\tfrac{1}{N}\textstyle\sum_n \ln \hat Y_{n, y_n}

and backward, with :math:`\Delta_l = \partial \mathcal L / \partial Z_l`:

.. math::

    \Delta_L &= (\hat Y - Y) / N \\
    \partial \mathcal L / \partial W_l &= A_{l-1}^\top \Delta_l, \qquad
    \partial \mathcal L / \partial b_l = \textstyle\sum_n \Delta_{l, n} \\
    \Delta_{l-1} &= (\Delta_l W_l^\top) \odot \mathrm{act}'(A_{l-1})

Weight layout: ``weights[l]`` has shape ``(n_in, n_out)`` so that a batch of
rows computes ``X @ W + b``. The report's matrix for the same layer is
``W_report = concat(b[:, None], W.T, axis=1)`` of shape ``(n_out, n_in + 1)``.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.linalg.blas import dgemm, sgemm

from .functional import (ACTIVATIONS, cross_entropy, softmax, softmax_cross_entropy,
                         softmax_cross_entropy_grad)
from .init import INITS, initialize

__all__ = ["MLP", "as_generator"]


def as_generator(seed):
    """A ``numpy.random.Generator`` from ``None``, an int seed or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and seed >= 0):
        return np.random.default_rng(seed)
    raise ValueError(f"seed must be None, a non-negative int or a numpy Generator, "
                     f"got {seed!r}")


def _dropout_mask(shape, rate, rng, dtype):
    """Inverted-dropout mask: 0 with probability ``rate``, else 1/(1 - rate)."""
    if not rate:
        return None
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    return (rng.random(shape) >= rate).astype(dtype) / dtype.type(1 - rate)


# The model's matrix products go through scipy's BLAS ``gemm``, not numpy's
# ``@``, for two reasons. gemm adds a product into an existing matrix in place
# (C <- beta C + alpha A B), so the SGD update W <- W + A^T(-eta Delta) needs no
# weight-sized temporary and no separate pass over the weights. And numpy and
# scipy each bundle their own OpenBLAS, whose idle threads spin: a training
# loop that calls both makes the two thread pools fight over the cores
# (measured here: 1.1 s -> 12 s per epoch), so the loop uses one of them only.
_GEMM = {np.dtype(np.float32): sgemm, np.dtype(np.float64): dgemm}


def _operand(matrix, transposed):
    """A Fortran-ordered array and gemm's ``trans`` flag that together stand for
    ``matrix.T`` (``transposed``) or ``matrix``, without copying when ``matrix``
    is C- or Fortran-contiguous (BLAS is column-major; numpy is row-major)."""
    if not (matrix.flags.c_contiguous or matrix.flags.f_contiguous):
        matrix = np.ascontiguousarray(matrix)
    if matrix.flags.f_contiguous:
        return matrix, int(transposed)
    return matrix.T, int(not transposed)


def _blas_ok(*arrays):
    """gemm applies: 2-D, non-empty, one float dtype."""
    dtype = arrays[0].dtype
    return dtype in _GEMM and all(a.ndim == 2 and a.size and a.dtype == dtype for a in arrays)


def _matmul(left, right):
    r"""``left @ right`` by gemm, as :math:`(L R)^\top = R^\top L^\top` in
    column-major terms, so C-ordered inputs give a C-ordered result, no copies."""
    if not _blas_ok(left, right):
        return left @ right
    a, trans_a = _operand(right, True)
    b, trans_b = _operand(left, True)
    return _GEMM[left.dtype](1.0, a, b, trans_a=trans_a, trans_b=trans_b).T


def _add_product(weights, inputs, step, keep=1.0):
    r""":math:`W \leftarrow \beta W + A^\top S` in place (``keep`` is :math:`\beta`),
    in one gemm call: the matrix ``weights`` (C-ordered) is gemm's ``C``."""
    if not (_blas_ok(weights, inputs, step) and weights.flags.c_contiguous):
        if keep != 1:
            weights *= keep
        weights += _matmul(inputs.T, step)
        return
    # Wᵀ ← β Wᵀ + Sᵀ A, with Wᵀ the Fortran-ordered view of the C-ordered W
    a, trans_a = _operand(step, True)
    b, trans_b = _operand(inputs, False)
    _GEMM[weights.dtype](1.0, a, b, beta=keep, c=weights.T, trans_a=trans_a,
                         trans_b=trans_b, overwrite_c=1)


_ZEROS = {}


def _zeros_like(array):
    """Read-only zeros shaped like ``array``, from a cache (one per dtype), or
    the scalar 0 for arrays over 2**20 entries. numpy's ``maximum`` runs its
    vectorised loop for two arrays but not for an array and a scalar: measured
    here, ``maximum(A, zeros)`` takes 5 µs for a 128×512 float32 batch, and
    ``maximum(A, 0)`` 33 µs."""
    if array.size > 2**20:
        return 0
    flat = _ZEROS.get(array.dtype)
    if flat is None or flat.size < array.size:
        flat = np.zeros(max(array.size, 2**16), array.dtype)
        flat.flags.writeable = False
        _ZEROS[array.dtype] = flat
    return flat[:array.size].reshape(array.shape)


def _activate(name, pre):
    """``act(pre)``; ReLU overwrites ``pre`` (it is not kept), saving a temporary."""
    if name == "relu":
        return np.maximum(pre, _zeros_like(pre), out=pre)
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
        Initialiser (``mlp_lib.init``); biases start at 0.
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

    def __init__(self, layer_sizes, activation="relu", init="he", seed=None,
                 dtype=np.float64, init_std=0.1):
        sizes = list(layer_sizes)
        if len(sizes) < 2 or not all(isinstance(s, numbers.Integral) and s > 0
                                     for s in sizes):
            raise ValueError(f"layer_sizes must be at least two positive ints, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: "
                             f"{', '.join(ACTIVATIONS)}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.layer_sizes = [int(s) for s in sizes]
        self.activation = activation
        self.init = init
        self.dtype = dtype
        self.weights, self.biases = initialize(self.layer_sizes, init, as_generator(seed),
                                               dtype, std=init_std)

    # ------------------------------------------------------------------ helpers
    @property
    def n_layers(self):
        """Number of weight layers :math:`L` (the report's "4-layer" net has 4)."""
        return len(self.weights)

    def __repr__(self):
        return (f"MLP({self.layer_sizes}, activation={self.activation!r}, "
                f"init={self.init!r}, dtype={self.dtype.name})")

    def copy(self):
        """A deep copy (same architecture, copied parameters)."""
        clone = object.__new__(MLP)
        clone.__dict__.update(self.__dict__)
        clone.weights = [w.copy() for w in self.weights]
        clone.biases = [b.copy() for b in self.biases]
        return clone

    def _as_batch(self, x):
        """``x`` as a 2-D array of the model's dtype; validates shape and values."""
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"inputs must be numeric, got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"inputs must have shape (N, {self.layer_sizes[0]}) or "
                             f"({self.layer_sizes[0]},), got {np.shape(x)}")
        arr = arr.astype(self.dtype, copy=False)
        # min and max propagate NaN and reach ±inf, without the temporary of
        # isfinite(arr).all(), which costs 0.1 s on MNIST's 47M values
        if arr.size and not (np.isfinite(arr.min()) and np.isfinite(arr.max())):
            raise ValueError("inputs contain NaN or inf")
        return arr

    def _check_labels(self, labels, n_rows):
        labels = np.asarray(labels)
        if labels.ndim == 0:
            labels = labels[None]
        if labels.shape != (n_rows,) or labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be {n_rows} integers, got shape "
                             f"{labels.shape} dtype {labels.dtype}")
        n_classes = self.layer_sizes[-1]
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"labels must lie in 0..{n_classes - 1}, got values in "
                             f"{labels.min()}..{labels.max()}")
        return labels

    # ------------------------------------------------------------------ forward
    def forward_cache(self, x, dropout=0.0, input_dropout=0.0, rng=None, labels=None):
        """Forward pass that keeps what backward needs.

        With ``dropout`` (hidden units) or ``input_dropout`` (pixels), each unit
        is kept with probability :math:`1 - p` and scaled by :math:`1/(1 - p)`
        ("inverted" dropout, so nothing changes at test time): :math:`A_l = \\mathrm{act}
        (Z_l) \\odot M_l` with :math:`M_l \\in \\{0, 1/(1-p)\\}` drawn from ``rng``.

        Returns
        -------
        probs : ndarray (N, n_classes)
            :math:`\\hat Y`.
        cache : dict
            ``activations``: :math:`[A_0, ..., A_{L-1}]` (after dropout);
            ``hidden``: the same before dropout; ``masks``: the :math:`M_l`
            (``None`` without dropout); ``logits``: :math:`Z_L`; with ``labels``
            (ints, one per row), ``loss``: the mean cross-entropy, computed
            with the softmax (``functional.softmax_cross_entropy``).
        """
        if (dropout or input_dropout) and rng is None:
            raise ValueError("dropout needs a numpy Generator: pass rng=")
        masks = [_dropout_mask(x.shape, input_dropout, rng, x.dtype)]
        activations = [x if masks[0] is None else x * masks[0]]
        hidden = [activations[0]]
        for weights, bias in zip(self.weights[:-1], self.biases[:-1]):
            pre = _matmul(activations[-1], weights)             # Z_l = A_{l-1} W_l + b_l
            pre += bias
            hidden.append(_activate(self.activation, pre))
            masks.append(_dropout_mask(hidden[-1].shape, dropout, rng, hidden[-1].dtype))
            activations.append(hidden[-1] if masks[-1] is None else hidden[-1] * masks[-1])
        logits = _matmul(activations[-1], self.weights[-1])
        logits += self.biases[-1]
        cache = {"activations": activations, "hidden": hidden, "masks": masks,
                 "logits": logits}
        if labels is None:
            return softmax(logits), cache
        probs, cache["loss"] = softmax_cross_entropy(logits, labels)
        return probs, cache

    def backward(self, probs, cache, labels, weight_decay=0.0):
        """Gradients of the mean cross-entropy from ``forward_cache``'s output.

        Returns ``(weight_grads, bias_grads)``, lists shaped like ``weights`` and
        ``biases``; each line below is one equation of the module docstring.
        With dropout, :math:`\\Delta_{l-1}` is also multiplied by the mask
        :math:`M_{l-1}`; with ``weight_decay`` :math:`\\lambda`, the loss has the
        extra term :math:`\\tfrac{\\lambda}{2}\\sum_l \\lVert W_l\\rVert^2` and each
        weight gradient gains :math:`\\lambda W_l` (biases are not decayed).
        """
        activations = cache["activations"]
        grad_logits = softmax_cross_entropy_grad(probs, labels)   # Δ_L = (Ŷ - Y)/N
        weight_grads = [None] * self.n_layers
        bias_grads = [None] * self.n_layers
        grad_pre = grad_logits
        for layer in reversed(range(self.n_layers)):
            weight_grads[layer] = _matmul(activations[layer].T, grad_pre)  # A_{l-1}ᵀ Δ_l
            if weight_decay:
                weight_grads[layer] += weight_decay * self.weights[layer]   # + λ W_l
            bias_grads[layer] = grad_pre.sum(axis=0)               # Σ_n Δ_l
            if layer > 0:                                          # Δ_{l-1}
                grad_pre = self._delta_below(layer, grad_pre, cache)
        return weight_grads, bias_grads

    def _delta_below(self, layer, grad_pre, cache):
        r""":math:`\Delta_{l-1} = (\Delta_l W_l^\top) \odot \mathrm{act}'(A_{l-1})`,
        times the dropout mask :math:`M_{l-1}` if there is one."""
        grad_below = _times_act_grad(self.activation, _matmul(grad_pre, self.weights[layer].T),
                                     cache["hidden"][layer])
        if cache["masks"][layer] is not None:
            grad_below *= cache["masks"][layer]
        return grad_below

    def backward_sgd(self, probs, cache, labels, lr, weight_decay=0.0):
        r"""``backward`` fused with the plain SGD update (no momentum), for speed.

        The same equations, applied layer by layer from the top as soon as each
        gradient is known:

        .. math::

            W_l \leftarrow (1 - \eta\lambda)\, W_l + A_{l-1}^\top (-\eta \Delta_l),
            \qquad b_l \leftarrow b_l - \eta \textstyle\sum_n \Delta_{l, n}

        (with :math:`\lambda` = ``weight_decay``). The weight line is a single
        BLAS gemm that scales :math:`W_l` and adds the product into it in place,
        so no weight gradient is ever stored; scaling the small :math:`\Delta_l`
        by :math:`-\eta` first costs less than scaling the product.
        :math:`\Delta_{l-1}` is computed from :math:`W_l` before it changes, so
        the result equals ``backward`` followed by ``SGD().step`` up to rounding.
        """
        activations = cache["activations"]
        lr = self.dtype.type(lr)
        keep = 1 - lr * self.dtype.type(weight_decay)              # 1 - ηλ
        grad_pre = softmax_cross_entropy_grad(probs, labels)      # Δ_L = (Ŷ - Y)/N
        for layer in reversed(range(self.n_layers)):
            if layer > 0:                                          # Δ_{l-1}, from W_l
                grad_below = self._delta_below(layer, grad_pre, cache)
            step = grad_pre * -lr                                  # -η Δ_l
            _add_product(self.weights[layer], activations[layer], step, keep)
            self.biases[layer] += step.sum(axis=0)                 # b_l - η Σ_n Δ_l
            if layer > 0:
                grad_pre = grad_below

    def gradients(self, x, labels, weight_decay=0.0, dropout=0.0, input_dropout=0.0,
                  rng=None):
        """Mean loss and its gradients over the rows of ``x``.

        ``weight_decay`` adds :math:`\\tfrac{\\lambda}{2}\\sum_l\\lVert W_l\\rVert^2` to the
        loss; ``dropout`` / ``input_dropout`` draw masks from ``rng``.

        Returns
        -------
        loss : float
        weight_grads, bias_grads : lists of arrays shaped like ``weights``, ``biases``
        """
        x = self._as_batch(x)
        labels = self._check_labels(labels, len(x))
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
        x = self._as_batch(x)
        out = np.empty((len(x), self.layer_sizes[-1]), dtype=self.dtype)
        for start in range(0, len(x), batch_size):
            hidden = x[start:start + batch_size]
            for weights, bias in zip(self.weights[:-1], self.biases[:-1]):
                hidden = _matmul(hidden, weights)
                hidden += bias
                hidden = _activate(self.activation, hidden)
            out[start:start + batch_size] = _matmul(hidden, self.weights[-1]) + self.biases[-1]
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
        labels = self._check_labels(labels, len(logits))
        return float(cross_entropy(logits, labels))
