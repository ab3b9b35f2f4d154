"""Plumbing for speed, kept apart from the maths: the matrix products of the
mini-batch trainer and a cache of zero arrays.

Nothing here changes a result's meaning; each function computes a plain numpy
expression (given in its docstring).

Every product goes through numpy's ``@`` and so through one OpenBLAS, numpy's:
a training loop that called both numpy's and scipy's (each wheel bundles its
own) would make their two thread pools fight over the cores (an epoch became
many times slower). numpy's was also the faster of the two for this net's
products when measured (one thread, the wheels of pyproject.toml's newest
versions), and a temporary product added into the weights in place cost no
more than gemm's in-place form; ``benchmarks/run.py`` times an epoch of them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["matmul", "add_product", "zeros_like"]


def matmul(left, right):
    """``left @ right``."""
    return left @ right


def add_product(weights, inputs, step, keep=1.0):
    r""":math:`W \leftarrow \beta W + A^\top S` in place (``keep`` is :math:`\beta`)."""
    if keep != 1:
        weights *= keep
    weights += inputs.T @ step


_ZEROS = {}


def zeros_like(array):
    """Read-only zeros shaped like ``array``, from a cache (one per dtype), or
    the scalar 0 for arrays over 2**20 entries. numpy's ``maximum`` runs its
    vectorised loop for two arrays but not for an array and a scalar, so
    ``maximum(A, zeros)`` is several times faster than ``maximum(A, 0)`` on a
    batch of activations (README, Performance)."""
    if array.size > 2**20:
        return 0
    flat = _ZEROS.get(array.dtype)
    if flat is None or flat.size < array.size:
        flat = np.zeros(max(array.size, 2**16), array.dtype)
        flat.flags.writeable = False
        _ZEROS[array.dtype] = flat
    return flat[: array.size].reshape(array.shape)
