r"""Training sets of the networks: lattice images with weights, their moments, 8x8 digits.

The networks of :mod:`gltheory.nets` train on one-channel lattice images, shape ``(N, L)``
or ``(N, H, W)``, given as a :class:`gltheory.data.LatticeImages` (images with weights) or
as a plain array (equal weights). :func:`images_and_weights` is the one place that accepts
both; :func:`data_moments` gives the weighted mean and covariance that the linear (Wiener)
baseline and the ideal-score critical time are built from.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from .._checks import as_float_array, check_positive_int, concrete_value, guard
from ..data import LatticeImages

__all__ = ["images_and_weights", "data_moments", "digits_images"]


def images_and_weights(
    images: LatticeImages | Real[ArrayLike, " n *lattice"],
) -> tuple[Float[Array, " n *lattice"], Float[Array, " n"]]:
    """The images and their weights of a training set.

    **Arguments:**

    - `images`: a :class:`gltheory.data.LatticeImages`, or an array of shape ``(N, L)`` or
      ``(N, H, W)`` (one channel, no channel axis; equal weights $1/N$); at least one image,
      every pixel finite (``ValueError`` otherwise; checked inside a ``jit`` only when
      ``gl.config.check_traced_values`` is on).

    **Returns:** ``(y, w)``: images of shape ``(N, *lattice)`` and weights of shape ``(N,)``.
    """
    if isinstance(images, LatticeImages):
        y, w = images.images, images.weights
    else:
        y = as_float_array(images, "images")
        w = None
    if y.ndim not in (2, 3):
        raise ValueError(
            "images must have shape (N, L) or (N, H, W) (one channel, no channel axis), "
            f"got {y.shape}."
        )
    if y.shape[0] == 0:
        raise ValueError(f"images is empty (shape {y.shape}): at least one image is needed.")
    if w is None:
        w = jnp.full((y.shape[0],), 1.0 / y.shape[0], y.dtype)
    value = concrete_value(y)
    if value is None:
        y = guard(y, lambda v: ~jnp.all(jnp.isfinite(v)), "images must be finite (traced check).")
    else:
        bad = ~np.isfinite(value).reshape(value.shape[0], -1).all(axis=1)
        if bad.any():
            raise ValueError(
                f"images must be finite: NaN or Inf pixels in {int(bad.sum())} of "
                f"{value.shape[0]} images (the first at index {int(np.argmax(bad))})."
            )
    return y, w


def data_moments(
    images: LatticeImages | Real[ArrayLike, " n *lattice"],
) -> tuple[Float[Array, " d"], Float[Array, "d d"]]:
    r"""Weighted mean $m=\sum_nw_ny_n$ and covariance $C=\sum_nw_n(y_n-m)(y_n-m)^\top$.

    **Arguments:**

    - `images`: as in :func:`images_and_weights`.

    **Returns:** ``(m, C)`` over the flattened lattice: shapes ``(d,)`` and ``(d, d)``,
    $d=\prod$ ``lattice``.
    """
    y, w = images_and_weights(images)
    yf = y.reshape(y.shape[0], -1)
    m = w @ yf
    return m, (yf - m).T @ (w[:, None] * (yf - m))


def digits_images(*, n: int | np.integer | None = None, binarize: bool = False) -> LatticeImages:
    """scikit-learn's bundled 8x8 digits (1797 images) as ``LatticeImages`` in $[-1, 1]$.

    Needs the optional extra ``digits`` (``pip install gltheory[digits]``, i.e.
    scikit-learn); nothing is downloaded (the data ship with the package). Pixel values
    0..16 are mapped to $2v/16-1$; ``binarize`` maps them to $\\pm1$ at the midpoint; ``n``
    keeps the first ``n`` images.
    """
    if n is not None:
        check_positive_int(n, "n")
    try:  # an optional extra: imported on use only, so that `import gltheory` stays light
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "digits_images needs scikit-learn (the optional extra 'digits': "
            "pip install 'gltheory[digits]' or pip install scikit-learn)."
        ) from err
    imgs = load_digits().images.astype(np.float64) / 16.0 * 2 - 1
    if binarize:
        imgs = np.where(imgs > 0, 1.0, -1.0)
    if n is not None:
        imgs = imgs[:n]
    return LatticeImages(jnp.asarray(imgs))
