r"""Exact scores, denoisers and posteriors for any dataset and any forward process.

See `docs/theory/score.md#tweedie`: $s(x,t) = \nabla_x\ln p_t(x) = \big(a_t\,\mathbb E[y\mid x,t] - x\big)/b_t^2$ and
$\partial_x\mathbb E[y\mid x,t] = \frac{a_t}{b_t^2}\mathrm{Cov}[y\mid x,t]$ (Tweedie).

All functions take ``x`` of shape ``(*batch, *data.event_shape)`` and ``t`` a scalar or an
array broadcasting against ``batch``; they are pure and work under ``jit``, ``vmap`` and
``grad``, in float32 and float64.

**float32 accuracy at small t.** The score divides $a_t m - x$ by $b_t^2$; both terms are
$O(1)$ while their difference is $O(b_t)$, so float32 round-off gives a relative score error of
about $\epsilon_{32}\|x\|/b_t\approx 6\times10^{-8}/\sqrt{2t}$ (OU). The library's own
measurement (``tests/test_scores.py::test_float32_small_t_accuracy``) keeps the float32 score
within 1e-3 relative of float64 for $t \ge$ :data:`FLOAT32_T_MIN` ($=10^{-6}$ in OU time,
i.e. $b_t^2\ge2\times10^{-6}$); below it use float64.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Num, Real

from ._checks import (
    DATASET,
    PROCESS,
    as_float_array,
    batch_time,
    check_event_shape,
    check_instance,
    check_time,
)
from .data import AbstractData
from .lattice import box_sum_periodic
from .processes import AbstractProcess

__all__ = [
    "score",
    "denoiser",
    "log_prob",
    "posterior_cov",
    "uniform_patch_score",
    "FLOAT32_T_MIN",
]

FLOAT32_T_MIN = 1e-6
"""Smallest OU time (equivalently $b_t^2\\approx2\\times10^{-6}$) at which the float32 score is
within 1e-3 relative of float64 (measured by the test suite)."""


def _cast_leaf(leaf, dtype):
    if isinstance(leaf, jax.Array | np.ndarray) and jnp.issubdtype(leaf.dtype, jnp.floating):
        return leaf.astype(dtype)
    return leaf


def cast_floats(tree, dtype):
    """Cast every floating array leaf of a dataset/process to ``dtype`` (x's precision wins)."""
    return jax.tree.map(functools.partial(_cast_leaf, dtype=dtype), tree)


def _validate(data: AbstractData, process: AbstractProcess, x, t):
    check_instance(data, AbstractData, "data", DATASET)
    check_instance(process, AbstractProcess, "process", PROCESS)
    x = as_float_array(x, "x")
    check_event_shape(x, data.event_shape, "x")
    t = check_time(t, process.T, "t")
    batch_time(t, x, len(data.event_shape))  # shape check only
    dtype = x.dtype
    return cast_floats(data, dtype), cast_floats(process, dtype), x, t.astype(dtype)


def flat_coefficients(data: AbstractData, process: AbstractProcess, x, t):
    """``(x_flat, a_t, b_t^2)``: ``x`` with its event axes flattened to ``(*batch, d)`` and the
    coefficients shaped ``()`` or ``(*batch, 1)`` (no validation: callers check the inputs)."""
    event_ndim = len(data.event_shape)
    batch_shape = x.shape[: x.ndim - event_ndim]
    if t.ndim > 0:
        t = jnp.broadcast_to(t, jnp.broadcast_shapes(t.shape, batch_shape))
        t = jnp.broadcast_to(t, batch_shape)[..., None]
    xf = x.reshape(batch_shape + (data.dim,))
    return xf, process.a(t).astype(x.dtype), process.b2(t).astype(x.dtype)


@eqx.filter_jit
def _denoiser(data, process, x, t):
    xf, a, b2 = flat_coefficients(data, process, x, t)
    return data.posterior_mean(xf, a, b2).reshape(x.shape)


@eqx.filter_jit
def _score(data, process, x, t):
    xf, a, b2 = flat_coefficients(data, process, x, t)
    m = data.posterior_mean(xf, a, b2)
    return ((a * m - xf) / b2).reshape(x.shape)


@eqx.filter_jit
def _log_prob(data, process, x, t):
    xf, a, b2 = flat_coefficients(data, process, x, t)
    return data.log_marginal(xf, a, b2)


@eqx.filter_jit
def _posterior_cov(data, process, x, t):
    xf, a, b2 = flat_coefficients(data, process, x, t)
    return data.posterior_cov(xf, a, b2)


def denoiser(
    data: AbstractData, process: AbstractProcess, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]
) -> Float[Array, "*x"]:
    r"""Posterior mean $\mathbb E[y\mid x_t = x]$ (the "magnetization" of `docs/theory/score.md#free-energy`).

    **Arguments:**

    - `data`: a dataset with an exact posterior.
    - `process`: the forward process ($a_t$, $b_t$).
    - `x`: shape ``(*batch, *event_shape)``; its dtype sets the precision of the computation.
    - `t`: forward time in $(0, T]$, scalar or broadcasting against ``batch``.

    **Returns:** an array shaped like ``x``.
    """
    return _denoiser(*_validate(data, process, x, t))


def score(
    data: AbstractData, process: AbstractProcess, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]
) -> Float[Array, "*x"]:
    r"""Exact score $\nabla_x\ln p_t(x) = (a_t\,\mathbb E[y\mid x] - x)/b_t^2$.

    Same arguments as :func:`denoiser`; returns an array shaped like ``x``.
    """
    return _score(*_validate(data, process, x, t))


def log_prob(
    data: AbstractData, process: AbstractProcess, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]
) -> Float[Array, "*batch"]:
    r"""Log density $\ln p_t(x)$ of the forward marginal; shape ``batch``."""
    return _log_prob(*_validate(data, process, x, t))


def posterior_cov(
    data: AbstractData, process: AbstractProcess, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]
) -> Float[Array, "*batch d d"]:
    r"""Posterior covariance $\mathrm{Cov}[y\mid x_t=x]$, shape ``(*batch, d, d)`` (event flattened)."""
    return _posterior_cov(*_validate(data, process, x, t))


def uniform_patch_score(
    process: AbstractProcess,
    x: Num[ArrayLike, "*x"],
    t: Real[ArrayLike, "*t"],
    *,
    window: int,
    lattice_ndim: int,
) -> Float[Array, "*x"]:
    r"""Exact local equivariant score of the two uniform images $\pm\mathbf 1$ (`docs/theory/patch.md#two-image-score`).

    $s_i = \big(a_t\tanh(a_t(Kx)_i/b_t^2) - x_i\big)/b_t^2$ with $(Kx)_i$ the periodic box sum
    over the $k^D$ window around site $i$. Its symmetric point destabilises at
    $\bar\alpha_c = 1/(1+k^D)$ (`docs/theory/patch.md#mode-softening`).

    **Arguments:**

    - `process`: forward process.
    - `x`: shape ``(*batch, *lattice)`` with ``lattice_ndim`` lattice axes (1 or 2).
    - `t`: forward time (scalar or batch-shaped).
    - `window`: odd window size $k$.
    - `lattice_ndim`: $D$.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    if lattice_ndim not in (1, 2):
        raise ValueError(f"lattice_ndim must be 1 or 2, got {lattice_ndim!r}.")
    if not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd positive integer, got {window!r}.")
    x = as_float_array(x, "x")
    if x.ndim < lattice_ndim:
        raise ValueError(f"x must have at least {lattice_ndim} lattice axes, got shape {x.shape}.")
    for ax in range(x.ndim - lattice_ndim, x.ndim):
        if window > x.shape[ax]:
            raise ValueError(
                f"window={window} exceeds the lattice size {x.shape[ax]} along axis {ax}."
            )
    t = batch_time(check_time(t, process.T, "t"), x, lattice_ndim)
    a = process.a(t)
    b2 = process.b2(t)
    axes = tuple(range(x.ndim - lattice_ndim, x.ndim))
    kx = box_sum_periodic(x, window, axes)
    return (a * jnp.tanh(a * kx / b2) - x) / b2
