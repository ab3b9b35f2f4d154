"""Plumbing for speed, kept apart from the maths: BLAS products that work in
place and a cache of zero arrays.

Nothing here changes a result's meaning; each function computes a plain numpy
expression (given in its docstring) with fewer copies or fewer passes.

Why scipy's BLAS and not numpy's ``@``: gemm adds a product into an existing
matrix in place (C <- beta C + alpha A B), so the SGD update
W <- W + A^T(-eta Delta) needs no weight-sized temporary and no separate pass
over the weights. And numpy and scipy each bundle their own OpenBLAS, whose
idle threads spin: a training loop that calls both makes the two thread pools
fight over the cores (an epoch became many times slower), so the
mini-batch loop uses one of them only.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.blas import dgemm, sgemm

__all__ = ["GEMM", "matmul", "add_product", "zeros_like"]

GEMM = {np.dtype(np.float32): sgemm, np.dtype(np.float64): dgemm}


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
    return dtype in GEMM and all(a.ndim == 2 and a.size and a.dtype == dtype for a in arrays)


def matmul(left, right):
    r"""``left @ right`` by gemm, as :math:`(L R)^\top = R^\top L^\top` in
    column-major terms, so C-ordered inputs give a C-ordered result, no copies."""
    if not _blas_ok(left, right):
        return left @ right
    a, trans_a = _operand(right, True)
    b, trans_b = _operand(left, True)
    return GEMM[left.dtype](1.0, a, b, trans_a=trans_a, trans_b=trans_b).T


def add_product(weights, inputs, step, keep=1.0):
    r""":math:`W \leftarrow \beta W + A^\top S` in place (``keep`` is :math:`\beta`),
    in one gemm call: the matrix ``weights`` (C-ordered) is gemm's ``C``."""
    if not (_blas_ok(weights, inputs, step) and weights.flags.c_contiguous):
        if keep != 1:
            weights *= keep
        weights += matmul(inputs.T, step)
        return
    # Wᵀ ← β Wᵀ + Sᵀ A, with Wᵀ the Fortran-ordered view of the C-ordered W
    a, trans_a = _operand(step, True)
    b, trans_b = _operand(inputs, False)
    GEMM[weights.dtype](
        1.0, a, b, beta=keep, c=weights.T, trans_a=trans_a, trans_b=trans_b, overwrite_c=1
    )


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
