r"""Data augmentation for 28×28 digits, vectorised over a batch.

``distort`` moves every output pixel :math:`p` (measured from the image centre
:math:`c`) to the input position

.. math::

    q = \frac{1}{s} R(\theta)\, p + c - t + \alpha\, (G_\sigma * U)(p),

a random rotation :math:`\theta`, scale :math:`s` and shift :math:`t` per image
plus, optionally, Simard et al.'s (2003) elastic distortion: a field
:math:`U` of uniform random displacements in :math:`[-1, 1]`, smoothed by a
Gaussian of width :math:`\sigma` and scaled by :math:`\alpha`. The input is
sampled there by bilinear interpolation (0 outside the frame) with one
``scipy.ndimage.map_coordinates`` call for the whole batch.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["distort"]

_CENTRE = 13.5
_ROWS, _COLS = np.mgrid[0:28, 0:28] - _CENTRE


def distort(images, rng, max_shift=2.0, max_rotation=10.0, max_scale=0.1,
            elastic_alpha=0.0, elastic_sigma=4.0):
    """Randomly distorted copies of ``images`` (N, 784), dtype kept.

    Parameters
    ----------
    images : array (N, 784)
    rng : numpy.random.Generator
    max_shift : float
        Largest shift in pixels, drawn uniformly per image and axis.
    max_rotation : float
        Largest rotation in degrees.
    max_scale : float
        Scale drawn from ``[1 - max_scale, 1 + max_scale]``.
    elastic_alpha, elastic_sigma : float
        Elastic distortion strength and smoothness (Simard et al. used
        α ≈ 34, σ = 4); ``elastic_alpha=0`` turns it off.
    """
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != 784:
        raise ValueError(f"images must have shape (N, 784), got {images.shape}")
    n = len(images)
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n))[:, None, None]
    scale = rng.uniform(1 - max_scale, 1 + max_scale, n)[:, None, None]
    shift = rng.uniform(-max_shift, max_shift, (2, n))[:, :, None, None]
    cos, sin = np.cos(angle), np.sin(angle)
    rows = (cos * _ROWS - sin * _COLS) / scale + _CENTRE - shift[0]
    cols = (sin * _ROWS + cos * _COLS) / scale + _CENTRE - shift[1]
    if elastic_alpha:
        for grid in (rows, cols):
            field = rng.uniform(-1, 1, (n, 28, 28))
            grid += elastic_alpha * ndimage.gaussian_filter(
                field, sigma=(0, elastic_sigma, elastic_sigma), mode="constant")
    batch = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], rows.shape)
    out = ndimage.map_coordinates(images.reshape(n, 28, 28), [batch, rows, cols], order=1,
                                  mode="constant", cval=0.0)
    return out.reshape(n, 784).astype(images.dtype, copy=False)
