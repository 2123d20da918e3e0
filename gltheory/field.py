r"""Ginzburg–Landau field theory of the patch model: coefficients, correlation lengths, patterns.

See `docs/theory/field.md#field-theory`. Four groups of tools:

1. **Sample estimators** (any field on a periodic 1-D or 2-D lattice): the structure factor
   $S(q)=\langle|\hat y(q)|^2\rangle/n$, the correlation function $C(r)$, radial averages, and
   the correlation-length estimators of `docs/theory/field.md#xi-estimators` (second moment, integrated, $1/e$ crossing).
2. **Coarse-grained GL coefficients** $r(t),\kappa(t),u(t)$ of the free energy
   $\mathcal F[x]=\int[\tfrac r2x^2+\tfrac\kappa2(\nabla x)^2+\tfrac u4x^4]$ with
   $s\simeq-\delta\mathcal F/\delta x$: closed forms for the two uniform images $\pm\mathbf1$
   (`docs/theory/field.md#gl-coefficients`) and a general-data path from the patch bank's covariance and fourth cumulant; the
   SDE and ODE variants; the mode spectrum $\mu(q,t)$, the softening mode $q^\star$ and the
   critical times of the three criteria (`docs/theory/field.md#criterion-times`).
3. **Dynamics on the lattice**: the GL (model A) score used in the same reverse sampler as
   the exact patch score, with the same noise, and a side-by-side comparison; structure
   factors streamed inside :func:`gltheory.sample`.
4. **Pattern formation** after $t_c$: domain length and wall density of final samples, their
   scaling with the window $k$ (`docs/theory/field.md#pattern-formation`), the emergent wavelength of stripe/checkerboard data.

Lattice conventions follow :mod:`gltheory.spectral`: wavevectors $q_a=2\pi m_a/L_a$ in
``numpy.fft.fftfreq`` order, real-space displacements as minimum images. All results are
**[DERIVED]** (the paper's own formulas could not be read; see `docs/theory/field.md#field-theory`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, PRNGKeyArray, Real

from ._checks import PROCESS, as_float_array, check_instance, is_concrete
from ._roots import refuse_traced
from .data import LatticeImages
from .lattice import box_sum_periodic
from .meanfield import fit_exponent
from .patch import ELS, score as patch_score
from .processes import AbstractProcess
from .sampling import Indices, sample, trajectory_keys
from .spectral import (
    critical_alpha_bar,
    drift_offset,
    lattice_wavevectors,
    patch_covariance,
    windowed_patch_covariance,
)

__all__ = [
    # estimators
    "RadialProfile",
    "structure_factor",
    "correlation_function",
    "radial_average",
    "correlation_length",
    # GL coefficients, spectrum, critical point
    "GLConstants",
    "GLCoefficients",
    "PatchCriticalPoint",
    "gl_constants",
    "gl_constants_two_image",
    "two_image_gl_coefficients",
    "gl_coefficients",
    "gl_correlation_length",
    "dirichlet_kernel",
    "patch_mode_spectrum",
    "patch_critical_point",
    "criterion_time",
    # dynamics
    "GLScore",
    "GLComparison",
    "gl_stable_step",
    "lattice_laplacian",
    "tweedie_denoiser",
    "structure_factor_observer",
    "increment_structure_factor",
    "compare_gl_exact",
    # patterns
    "DomainStats",
    "DomainScaling",
    "domain_statistics",
    "peak_wavevector",
    "domain_length_scaling",
]

XiMethod = Literal["second_moment", "integrated", "one_over_e", "lorentzian"]


class RadialProfile(NamedTuple):
    r"""A radially averaged lattice function: bin ``radius``, bin ``value`` (mean), ``count``.

    ``value`` has the leading (batch) axes of the input followed by the bin axis; empty bins
    hold NaN (``count`` 0).
    """

    radius: Array
    value: Array
    count: Array


# ----------------------------------------------------------------------------------------
# lattice axes
# ----------------------------------------------------------------------------------------


def _lattice_axes(arr: Array, axes, name: str, *, default_batch: bool) -> tuple[int, ...]:
    """Normalise ``axes`` to a tuple of *trailing* negative axis indices (1 or 2 of them).

    Default (``axes=None``): with ``default_batch`` (fields) every axis after the first is a
    lattice axis, except that a 1-D array is one 1-D field; without it (S or C) every axis is
    a lattice axis.
    """
    nd = arr.ndim
    if axes is None:
        if nd == 0:
            raise ValueError(f"{name} must have at least one lattice axis, got a scalar.")
        if default_batch:
            n_lat = 1 if nd == 1 else nd - 1
        else:
            n_lat = nd
        if n_lat not in (1, 2):
            raise ValueError(
                f"cannot infer the lattice axes of {name} with shape {arr.shape}: pass "
                "axes=(-1,) for a 1-D lattice or axes=(-2, -1) for a 2-D lattice."
            )
        return tuple(range(-n_lat, 0))
    if isinstance(axes, int | np.integer) and not isinstance(axes, bool):
        axes = (int(axes),)
    try:
        ax = tuple(int(a) for a in axes)
    except TypeError:
        raise ValueError(f"axes must be an int or a tuple of ints, got {axes!r}.") from None
    if len(ax) not in (1, 2):
        raise ValueError(f"axes must name 1 or 2 lattice axes, got {axes!r}.")
    norm = []
    for a in ax:
        if not -nd <= a < nd:
            raise ValueError(f"axis {a} is out of range for {name} with shape {arr.shape}.")
        norm.append(a - nd if a >= 0 else a)
    if sorted(norm) != list(range(-len(norm), 0)):
        raise ValueError(
            f"the lattice axes of {name} must be its trailing axes (e.g. (-1,) or (-2, -1)), "
            f"got {axes!r} for shape {arr.shape}."
        )
    return tuple(range(-len(norm), 0))


def _check_lattice(shape: tuple[int, ...], name: str) -> None:
    if any(s < 2 for s in shape):
        raise ValueError(f"{name} needs lattice sizes >= 2, got lattice shape {shape}.")


# ----------------------------------------------------------------------------------------
# structure factor, correlation function, radial average
# ----------------------------------------------------------------------------------------


def structure_factor(
    field: ArrayLike, *, axes: int | Sequence[int | np.integer] | None = None
) -> Array:
    r"""Structure factor $S(q)=\langle|\hat y(q)|^2\rangle/n$ of a periodic lattice field (`docs/theory/field.md#xi-estimators`).

    $\hat y(q)=\sum_ry(r)e^{-iq\cdot r}$ on the lattice grid $q_a=2\pi m_a/L_a$ (``fftn``
    order), $n$ the number of sites, and $\langle\cdot\rangle$ the average over the leading
    (batch) axes. Normalisation: $\sum_qS(q)/n=\langle\overline{y^2}\rangle$ (Parseval), and
    white noise of variance $\sigma^2$ has $S\equiv\sigma^2$. No mean is subtracted:
    $S(0)=n\langle\bar y^2\rangle$ is the susceptibility of the field.

    **Arguments:**

    - `field`: shape ``(*batch, *lattice)`` with ``lattice = (L,)`` or ``(H, W)``.
    - `axes`: the lattice axes, which must be the trailing ones: ``(-1,)`` or ``(-2, -1)``
      (an int is one axis). Default: every axis after the first (one leading batch axis),
      and a 1-D array is a single 1-D field; pass ``axes`` for anything else.

    **Returns:** $S(q)$, shape ``lattice`` (real, same precision as ``field``).
    """
    y = as_float_array(field, "field")
    ax = _lattice_axes(y, axes, "field", default_batch=True)
    lattice = y.shape[y.ndim - len(ax) :]
    _check_lattice(lattice, "structure_factor")
    n = int(np.prod(lattice))
    yq = jnp.fft.fftn(y, axes=ax)
    s = (jnp.real(yq) ** 2 + jnp.imag(yq) ** 2) / n
    batch_axes = tuple(range(y.ndim - len(ax)))
    return jnp.mean(s, axis=batch_axes) if batch_axes else s


def correlation_function(
    field_or_S: ArrayLike,
    *,
    axes: int | Sequence[int | np.integer] | None = None,
    from_structure_factor: bool | Any = False,
) -> Array:
    r"""Periodic correlation function $C(r)=\langle\tfrac1n\sum_iy_iy_{i+r}\rangle$ from $S$ (Wiener–Khinchin).

    $C(r)=\tfrac1n\sum_qS(q)e^{iq\cdot r}$ (``ifftn``), indexed by the displacement $r$ in
    ``fftn`` order ($r=0$ first, negative displacements at the end).

    **Arguments:**

    - `field_or_S`: a field (as in :func:`structure_factor`) or, with
      ``from_structure_factor=True``, a structure factor of shape ``(*batch, *lattice)``.
    - `axes`: lattice axes (trailing). For a field, as in :func:`structure_factor`; for a
      structure factor the default is that every axis is a lattice axis.

    **Returns:** $C(r)$; shape ``lattice`` for a field, ``(*batch, *lattice)`` for ``S``.
    """
    s, ax = _as_structure_factor(field_or_S, axes, from_structure_factor)
    return jnp.real(jnp.fft.ifftn(s, axes=ax))


def _as_structure_factor(field_or_S, axes, from_structure_factor: bool | Any):
    if not isinstance(from_structure_factor, bool):
        raise ValueError(
            f"from_structure_factor must be True or False, got {from_structure_factor!r}."
        )
    if from_structure_factor:
        s = as_float_array(field_or_S, "S")
        ax = _lattice_axes(s, axes, "S", default_batch=False)
        _check_lattice(s.shape[s.ndim - len(ax) :], "S")
        return s, ax
    s = structure_factor(field_or_S, axes=axes)
    return s, tuple(range(-s.ndim, 0))


def _radii(lattice: tuple[int, ...], space: str) -> np.ndarray:
    if space == "fourier":
        comps = [2 * np.pi * np.fft.fftfreq(L) for L in lattice]
    else:
        comps = [((np.arange(L) + L // 2) % L - L // 2).astype(float) for L in lattice]
    grids = np.meshgrid(*comps, indexing="ij")
    return np.sqrt(sum(g**2 for g in grids))


def radial_average(
    values: ArrayLike,
    *,
    space: Literal["fourier", "real"] | str = "fourier",
    axes: int | Sequence[int | np.integer] | None = None,
    bin_width: Real[ArrayLike, ""] | None = None,
) -> RadialProfile:
    r"""Average a lattice function over shells of $|q|$ (``space="fourier"``) or $|r|$ (``"real"``).

    Sites are binned by ${\rm round}(|q|/\Delta)$ (or $|r|/\Delta$): bin $j$ holds the sites
    with $|q|\in[(j-\tfrac12)\Delta,(j+\tfrac12)\Delta)$ and its radius is the mean $|q|$ of
    those sites. In 1-D this folds $\pm q$ (or $\pm r$) together. Used for the radially
    averaged $S(|q|)$ and $C(|r|)$ of 2-D fields (`docs/theory/field.md#xi-estimators`).

    **Arguments:**

    - `values`: ``S(q)`` in ``fftn`` order (``space="fourier"``) or ``C(r)`` indexed by
      displacement in ``fftn`` order (``"real"``), shape ``(*batch, *lattice)``.
    - `space`: ``"fourier"`` or ``"real"``.
    - `axes`: lattice axes (trailing); default every axis.
    - `bin_width`: $\Delta$; default $2\pi/\max_aL_a$ (Fourier) or 1 (real space).

    **Returns:** a :class:`RadialProfile` with ``value`` of shape ``(*batch, n_bins)``.
    """
    if space not in ("fourier", "real"):
        raise ValueError(f"space must be 'fourier' or 'real', got {space!r}.")
    v = as_float_array(values, "values")
    ax = _lattice_axes(v, axes, "values", default_batch=False)
    lattice = tuple(v.shape[v.ndim - len(ax) :])
    _check_lattice(lattice, "radial_average")
    if bin_width is None:
        bin_width = 2 * np.pi / max(lattice) if space == "fourier" else 1.0
    bin_width = float(bin_width)
    if not (bin_width > 0 and np.isfinite(bin_width)):
        raise ValueError(f"bin_width must be a positive finite number, got {bin_width}.")
    rad = _radii(lattice, space).reshape(-1)
    idx = np.rint(rad / bin_width).astype(np.int64)
    n_bins = int(idx.max()) + 1
    count = np.bincount(idx, minlength=n_bins)
    rsum = np.bincount(idx, weights=rad, minlength=n_bins)
    radius = np.where(count > 0, rsum / np.maximum(count, 1), np.nan)
    batch = v.shape[: v.ndim - len(ax)]
    flat = v.reshape(batch + (-1,))
    sums = jax.ops.segment_sum(jnp.moveaxis(flat, -1, 0), jnp.asarray(idx), num_segments=n_bins)
    sums = jnp.moveaxis(sums, 0, -1)
    cnt = jnp.asarray(count, dtype=v.dtype)
    value = jnp.where(cnt > 0, sums / jnp.maximum(cnt, 1), jnp.nan)
    return RadialProfile(jnp.asarray(radius, dtype=v.dtype), value, jnp.asarray(count))


# ----------------------------------------------------------------------------------------
# correlation-length estimators
# ----------------------------------------------------------------------------------------


def _xi_second_moment(s: Array, lattice: tuple[int, ...]) -> Array:
    D = len(lattice)
    s0 = s[(Ellipsis,) + (0,) * D]
    ratios = []
    for a, L in enumerate(lattice):
        # the two smallest non-zero wavevectors along axis a: m_a = +1 and -1
        q1 = 2 * np.pi / L
        sq = 0.0
        for m in (1, L - 1):
            idx = [0] * D
            idx[a] = m
            sq = sq + s[(Ellipsis,) + tuple(idx)]
        ratios.append((s0 / (0.5 * sq) - 1.0) / q1**2)
    xi2 = sum(ratios) / D
    return jnp.sqrt(jnp.maximum(xi2, 0.0))


def _radial_c(s: Array, ax: tuple[int, ...]):
    c = jnp.real(jnp.fft.ifftn(s, axes=ax))
    prof = radial_average(c, space="real", axes=ax, bin_width=1.0)
    lattice = tuple(s.shape[s.ndim - len(ax) :])
    # keep shells inside the minimum-image box only (r <= min L / 2)
    r_max = min(lattice) // 2
    g = prof.value[..., : r_max + 1]
    return prof.radius[: r_max + 1], g / g[..., :1]


def _xi_integrated(g: Array) -> Array:
    # xi_int = 1/2 + sum_{r>=1} g(r), truncated at the first negative value
    tail = g[..., 1:]
    keep = jnp.cumprod(tail > 0, axis=-1).astype(g.dtype)
    return 0.5 + jnp.sum(jnp.where(keep > 0, tail, 0.0), axis=-1)


def _xi_one_over_e(radius: Array, g: Array) -> Array:
    # first shell with g < 1/e; log-linear interpolation between shells (exact for e^{-r/xi})
    thr = np.exp(-1.0)
    n = g.shape[-1]
    below = g < thr
    first = jnp.argmax(below, axis=-1)
    found = jnp.any(below, axis=-1)
    j = jnp.clip(first, 1, n - 1)
    g_lo = jnp.take_along_axis(g, (j - 1)[..., None], axis=-1)[..., 0]
    g_hi = jnp.take_along_axis(g, j[..., None], axis=-1)[..., 0]
    pos = (g_lo > 0) & (g_hi > 0)
    lo = jnp.log(jnp.where(pos, g_lo, 1.0))
    hi = jnp.log(jnp.where(pos, g_hi, thr / 2))
    frac_log = (lo + 1.0) / (lo - hi)
    frac_lin = (g_lo - thr) / (g_lo - g_hi)
    frac = jnp.where(pos, frac_log, frac_lin)
    r_lo, r_hi = radius[j - 1], radius[j]
    return jnp.where(found, r_lo + frac * (r_hi - r_lo), jnp.inf).astype(g.dtype)


def _xi_lorentzian(s: Array, lattice: tuple[int, ...], q_max: float) -> Array:
    comps = [2 * np.pi * np.fft.fftfreq(L) for L in lattice]
    grids = np.meshgrid(*comps, indexing="ij")
    qabs = np.sqrt(sum(g**2 for g in grids)).reshape(-1)
    qhat2 = sum(4 * np.sin(g / 2) ** 2 for g in grids).reshape(-1)
    sel = np.nonzero(qabs <= q_max)[0]
    if sel.size < 3:
        raise ValueError(f"q_max={q_max} keeps fewer than 3 wavevectors of the lattice {lattice}.")
    xq = jnp.asarray(qhat2[sel], dtype=s.dtype)
    inv = 1.0 / s.reshape(s.shape[: s.ndim - len(lattice)] + (-1,))[..., sel]
    xm = jnp.mean(xq)
    ym = jnp.mean(inv, axis=-1, keepdims=True)
    slope = jnp.sum((xq - xm) * (inv - ym), axis=-1) / jnp.sum((xq - xm) ** 2)
    intercept = ym[..., 0] - slope * xm
    xi2 = slope / intercept
    return jnp.where(intercept > 0, jnp.sqrt(jnp.maximum(xi2, 0.0)), jnp.inf)


def correlation_length(
    field_or_S: ArrayLike,
    *,
    method: XiMethod | str = "second_moment",
    axes: int | Sequence[int | np.integer] | None = None,
    from_structure_factor: bool | Any = False,
    q_max: Real[ArrayLike, ""] = 0.5 * np.pi,
) -> Array:
    r"""Correlation length of a lattice field by the estimators of `docs/theory/field.md#xi-estimators`.

    - ``"second_moment"`` (Lorentzian / Ornstein–Zernike fit at the smallest wavevector):
      $$\xi^2=\frac{S(0)/S(q_1)-1}{q_1^2},\qquad q_1=2\pi/L,$$
      with $S(q_1)$ the average of $S$ at $\pm q_1\hat e_a$; in 2-D the per-direction values
      of $\xi^2$ are averaged. Exact for $S(q)=S_0/(1+\xi^2q^2)$; anticorrelated fields
      ($S(0)<S(q_1)$) give 0, and $S(q_1)=0$ gives $\infty$.
    - ``"integrated"``: $\xi_{\rm int}=\tfrac12+\sum_{r\ge1}C(r)/C(0)$, truncated at the first
      negative value (the trapezoid rule for $\int_0^\infty C/C(0)$: $\approx\xi$ for
      $C\propto e^{-r/\xi}$).
    - ``"one_over_e"``: the first $r$ with $C(r)/C(0)<1/e$, interpolated linearly in
      $\ln C$ between neighbouring shells (exact for $C\propto e^{-r/\xi}$); $\infty$ when
      $C/C(0)$ stays above $1/e$ within $r\le\min_aL_a/2$.
    - ``"lorentzian"`` (far less noisy when $\xi\ll L$): least-squares fit of
      $1/S(q)=A+B\hat q^2$, $\hat q^2=\sum_a4\sin^2(q_a/2)$, over all grid wavevectors with
      $|q|\le$ ``q_max``, and $\xi^2=B/A$; exact for the lattice Ornstein–Zernike form
      $S=S_0/(1+\xi^2\hat q^2)$ (the equal-time spectrum of linear model-A dynamics,
      :class:`GLScore`); $\infty$ when $A\le0$.

    In 2-D the real-space estimators use the radial average of $C$ over unit-width shells of
    $|r|$ (minimum image, $|r|\le\min_aL_a/2$); in 1-D, $C(r)$ and $C(-r)$ are averaged.
    $C$ is not connected (no mean subtracted), as in :func:`structure_factor`.

    **Arguments:**

    - `field_or_S`: a field of shape ``(*batch, *lattice)`` (batch-averaged $S$ first, see
      :func:`structure_factor`), or with ``from_structure_factor=True`` a structure factor of
      shape ``(*batch, *lattice)`` in ``fftn`` order, e.g. the $S(q,t)$ stack streamed by
      :func:`structure_factor_observer` (then ``axes`` must name the lattice axes when
      there are batch axes).
    - `method`: ``"second_moment"``, ``"integrated"``, ``"one_over_e"`` or ``"lorentzian"``.
    - `q_max`: largest $|q|$ used by ``"lorentzian"``.
    - `axes`: lattice axes (trailing); defaults as in :func:`structure_factor` for a field
      and "every axis" for a structure factor.

    **Returns:** $\xi$; a scalar for a field, shape ``batch`` for a stack of structure factors.
    """
    if method not in ("second_moment", "integrated", "one_over_e", "lorentzian"):
        raise ValueError(
            "method must be 'second_moment', 'integrated', 'one_over_e' or 'lorentzian', "
            f"got {method!r}."
        )
    s, ax = _as_structure_factor(field_or_S, axes, from_structure_factor)
    lattice = tuple(s.shape[s.ndim - len(ax) :])
    if method == "second_moment":
        return _xi_second_moment(s, lattice)
    if method == "lorentzian":
        return _xi_lorentzian(s, lattice, float(q_max))
    radius, g = _radial_c(s, ax)
    if method == "integrated":
        return _xi_integrated(g)
    return _xi_one_over_e(radius, g)


# ----------------------------------------------------------------------------------------
# Ginzburg–Landau coefficients (`docs/theory/field.md#gl-coefficients`)
# ----------------------------------------------------------------------------------------

Dynamics = Literal["score", "sde", "ode"]


class GLConstants(eqx.Module):
    r"""Time-independent data constants of the GL expansion of an equal-norm patch score.

    With $c(\delta)$ the patch-bank covariance (:func:`gltheory.patch_covariance`),
    $M=\sum_{\delta\in\Omega}\phi(\delta)$ the patch sum and $\kappa_4$ the joint fourth
    cumulant over the bank (`docs/theory/field.md#gl-coefficients`, derivation in :func:`gl_constants`):

    - `c0`: $\hat C_k(0)=\sum_\delta c(\delta)=\mathrm{Cov}[\phi(0),M]$;
    - `c2`: $-\partial_{q_a^2}\hat C_k|_{0}=\tfrac1{2D}\sum_\delta c(\delta)|\delta|^2$ (isotropic
      average over the $D$ directions);
    - `c4`: $-\tfrac16\kappa_4(\phi(0),M,M,M)$;
    - `lattice_ndim`: $D$ (static).

    Two uniform images $\pm\mathbf1$: $c_0=k^D$, $c_2=k^{D-1}k(k^2-1)/24$, $c_4=k^{3D}/3$.
    """

    c0: Array
    c2: Array
    c4: Array
    lattice_ndim: int = eqx.field(static=True)


class GLCoefficients(NamedTuple):
    r"""Coefficients of $\mathcal F=\int[\tfrac r2x^2+\tfrac\kappa2(\nabla x)^2+\tfrac u4x^4]$ (`docs/theory/field.md#gl-coefficients`)."""

    r: Array
    kappa: Array
    u: Array


def _check_window(window) -> int:
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window must be an odd positive integer, got {window!r}.")
    if window % 2 == 0:
        raise ValueError(f"window must be odd (k = 2r + 1), got {window}.")
    return int(window)


def _check_ndim(lattice_ndim) -> int:
    if lattice_ndim not in (1, 2) or isinstance(lattice_ndim, bool):
        raise ValueError(f"lattice_ndim must be 1 or 2, got {lattice_ndim!r}.")
    return int(lattice_ndim)


def _check_dynamics(dynamics) -> None:
    if dynamics not in ("score", "sde", "ode"):
        raise ValueError(f"dynamics must be 'score', 'sde' or 'ode', got {dynamics!r}.")


def gl_constants_two_image(window: int, lattice_ndim: int) -> GLConstants:
    r"""Closed-form :class:`GLConstants` of the two uniform images $\pm\mathbf1$ (`docs/theory/field.md#gl-coefficients`).

    $c(\delta)\equiv1$ on the window, so $c_0=k^D$, $c_2=k^{D-1}\,k(k^2-1)/24$ (the exact $q^2$
    coefficient of the Dirichlet kernel, per direction) and, from
    $\tanh z=z-z^3/3+\dots$ with $z=a_t(Kx)_i/b_t^2$, $c_4=k^{3D}/3$.
    """
    k = _check_window(window)
    D = _check_ndim(lattice_ndim)
    dt = jnp.result_type(float)
    return GLConstants(
        c0=jnp.asarray(float(k**D), dt),
        c2=jnp.asarray(k ** (D - 1) * k * (k * k - 1) / 24.0, dt),
        c4=jnp.asarray(k ** (3 * D) / 3.0, dt),
        lattice_ndim=D,
    )


def gl_constants(images: LatticeImages | ArrayLike, window: int) -> GLConstants:
    r"""GL constants of the ELS patch score of any (equal-norm) training set (`docs/theory/field.md#gl-coefficients`).

    Derivation **[DERIVED]**. For an equal-norm bank the ELS posterior at site $i$ is
    $w_i(\phi)\propto\mu(\phi)e^{h\cdot\phi}$ with $h=(a_t/b_t^2)x_{i+\Omega}$, so the denoiser
    $m_i=\partial_{h_0}\ln\mathbb E_\mu e^{h\cdot\phi}$ is a derivative of the bank's cumulant
    generating function. For a symmetric bank (odd cumulants vanish) and a slowly varying
    $x$,
    $$m_i\simeq\frac{a}{b^2}\sum_\delta c(\delta)x_{i+\delta}
    +\frac16\Big(\frac{a}{b^2}\Big)^3\kappa_4(\phi(0),M,M,M)\,x_i^3,$$
    and with $\sum_\delta c(\delta)x_{i+\delta}\simeq c_0x_i+c_2\nabla^2x_i$ the score
    $s=(am-x)/b^2=-\delta\mathcal F/\delta x$ has
    $$r=\frac{b^2-a^2c_0}{b^4},\qquad\kappa=\frac{a^2c_2}{b^4},\qquad u=\frac{a^4c_4}{b^8}.$$
    $\kappa_4(X,Y,Y,Y)=\mathbb E[\tilde X\tilde Y^3]-3\mathbb E[\tilde X\tilde Y]\mathbb E[\tilde Y^2]$
    for the centred $\tilde X=\phi(0)-\mathbb E\phi(0)$, $\tilde Y=M-\mathbb EM$. On the two
    uniform images this reproduces :func:`gl_constants_two_image` exactly.

    **Validity.** Equal patch norms (e.g. $\pm1$ data; otherwise the bank must be tilted by
    $e^{-{\rm SNR}\|\phi\|^2/2}$, not done here) and a bank closed under $\phi\to-\phi$ (else
    $x=0$ is not a fixed point and a cubic term appears). The expansion is about $q=0$; for
    data whose softening mode is $q^\star\ne0$ (stripes) the relevant theory is an expansion
    about $q^\star$ (use :func:`patch_mode_spectrum`).

    **Arguments:**

    - `images`: a :class:`gltheory.LatticeImages` or an array ``(N, L)`` / ``(N, H, W)``.
    - `window`: odd $k\le L$.

    **Returns:** :class:`GLConstants`.
    """
    c = patch_covariance(images, window)  # validates images and window
    if isinstance(images, LatticeImages):
        y, w = images.images, images.weights
    else:
        y = as_float_array(images, "images")
        w = jnp.full((y.shape[0],), 1.0 / y.shape[0], dtype=y.dtype)
    D = y.ndim - 1
    n_sites = int(np.prod(y.shape[1:]))
    pw = (w.astype(y.dtype) / n_sites).reshape((-1,) + (1,) * D)
    big_m = box_sum_periodic(y, window, tuple(range(1, D + 1)))
    mean = lambda z: jnp.sum(pw * z)
    xt = y - mean(y)
    yt = big_m - mean(big_m)
    k4 = mean(xt * yt**3) - 3 * mean(xt * yt) * mean(yt**2)
    r = window // 2
    grids = np.meshgrid(*[np.arange(-r, r + 1)] * D, indexing="ij")
    d2 = jnp.asarray(sum(g.astype(float) ** 2 for g in grids), dtype=c.dtype)
    return GLConstants(c0=jnp.sum(c), c2=jnp.sum(c * d2) / (2 * D), c4=-k4 / 6.0, lattice_ndim=D)


def two_image_gl_coefficients(
    alpha_bar: ArrayLike, window: int, lattice_ndim: int
) -> GLCoefficients:
    r"""Closed forms in $\bar\alpha$ for the two uniform images (score functional; `docs/theory/field.md#gl-coefficients`).

    1-D: $r=\frac{1-\bar\alpha(1+k)}{(1-\bar\alpha)^2}$,
    $\kappa=\frac{\bar\alpha\,k(k^2-1)}{24(1-\bar\alpha)^2}$,
    $u=\frac{\bar\alpha^2k^3}{3(1-\bar\alpha)^4}$; 2-D square window: $k\to k^2$ in $r$ and
    $u$, $\kappa=\frac{\bar\alpha k^2(k^2-1)}{24(1-\bar\alpha)^2}$ per direction. VP/OU
    variables ($a^2=\bar\alpha$, $b^2=1-\bar\alpha$).
    """
    k = _check_window(window)
    D = _check_ndim(lattice_ndim)
    ab = as_float_array(alpha_bar, "alpha_bar")
    K = k**D
    om = 1 - ab
    return GLCoefficients(
        r=(1 - ab * (1 + K)) / om**2,
        kappa=ab * k ** (D - 1) * k * (k * k - 1) / (24 * om**2),
        u=ab**2 * K**3 / (3 * om**4),
    )


def _dynamics_factors(process: AbstractProcess, t, dynamics: str):
    """(scale, shift): the chosen drift is scale * s - f x, i.e. r_v = scale r + f."""
    if dynamics == "score":
        return jnp.ones_like(t), jnp.zeros_like(t)
    g2, f = process.g2(t), process.f(t)
    if dynamics == "sde":
        return g2, f
    return 0.5 * g2, f


def gl_coefficients(
    constants: GLConstants,
    process: AbstractProcess | Any,
    t: ArrayLike,
    *,
    dynamics: Dynamics | str = "score",
) -> GLCoefficients:
    r"""GL coefficients $r(t),\kappa(t),u(t)$ of the score or of a reverse vector field (`docs/theory/field.md#gl-dynamics`).

    Score functional ($s\simeq-\delta\mathcal F/\delta x$): $r=(b^2-a^2c_0)/b^4$,
    $\kappa=a^2c_2/b^4$, $u=a^4c_4/b^8$ (:func:`gl_constants`). Reverse dynamics per unit of
    forward time ($\dot x=-\delta\mathcal F_v/\delta x$ in reverse time):

    - ``"sde"``: drift $g^2s-fx$, so $r_v=g^2r+f$, $\kappa_v=g^2\kappa$, $u_v=g^2u$
      (OU: $2r-1$, $2\kappa$, $2u$);
    - ``"ode"``: drift $\tfrac12g^2s-fx$, so $r_v=\tfrac12g^2r+f$, $\kappa_v=\tfrac12g^2\kappa$,
      $u_v=\tfrac12g^2u$ (OU: $r-1$, $\kappa$, $u$).

    **Arguments:**

    - `constants`: :class:`GLConstants` (:func:`gl_constants_two_image` or :func:`gl_constants`).
    - `process`: forward process; `t`: forward time (any shape).
    - `dynamics`: ``"score"``, ``"sde"`` or ``"ode"``.

    **Returns:** :class:`GLCoefficients`, each shaped like ``t``.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    _check_dynamics(dynamics)
    if not isinstance(constants, GLConstants):
        raise ValueError(f"constants must be GLConstants, got {type(constants).__name__}.")
    t = as_float_array(t, "t")
    a2 = jnp.exp(2 * process.log_a(t))
    b2 = process.b2(t)
    r = (b2 - a2 * constants.c0) / b2**2
    kappa = a2 * constants.c2 / b2**2
    u = a2**2 * constants.c4 / b2**4
    scale, shift = _dynamics_factors(process, t, dynamics)
    return GLCoefficients(r=scale * r + shift, kappa=scale * kappa, u=scale * u)


def gl_correlation_length(
    constants: GLConstants,
    process: AbstractProcess,
    t: ArrayLike,
    *,
    dynamics: Dynamics | str = "score",
) -> Array:
    r"""Linear-response (Ornstein–Zernike) length $\xi=\sqrt{\kappa_v/r_v}$ (`docs/theory/field.md#correlation-length`).

    Two images, score: $\xi^2=\frac{k(k^2-1)}{24}\frac{\bar\alpha}{1-\bar\alpha(1+k)}$ (1-D),
    diverging as $(\bar\alpha_c-\bar\alpha)^{-1/2}$ ($\nu=\tfrac12$); at $\bar\alpha=\bar\alpha_c/2$
    $\xi^2=k(k-1)/24$ (k=5: 0.9129). ``dynamics="sde"`` gives $\xi^2_{\rm SDE}=2\kappa/(2r-1)$
    (OU). Because $c_2$ is the exact $q^2$ coefficient of $\hat C_k$, this equals the lattice
    second moment of the Jacobian's response (:func:`gltheory.linear_response_length`).
    Valid before the transition in generative order; NaN where $r_v\le0$.

    **Returns:** $\xi$, shaped like ``t``.
    """
    c = gl_coefficients(constants, process, t, dynamics=dynamics)
    ok = c.r > 0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, c.kappa / jnp.where(ok, c.r, 1.0), 1.0)), jnp.nan)


# ----------------------------------------------------------------------------------------
# mode spectrum, softening mode, critical times (`docs/theory/field.md#criterion-times`)
# ----------------------------------------------------------------------------------------


def dirichlet_kernel(q: ArrayLike, window: int) -> Array:
    r"""$K(q)=\prod_a\frac{\sin(kq_a/2)}{\sin(q_a/2)}$, the window's Fourier transform (`docs/theory/patch.md#mode-softening`).

    $K(0)=k^D$ (the removable singularity is evaluated by its limit). ``q`` has shape
    ``(..., D)`` ($D$ = 1 or 2); a scalar, or an array whose last axis is not 1 or 2, is read
    as $D=1$ wavevectors (pass ``q[:, None]`` to be explicit: shape ``(2,)`` is one 2-D $q$).
    Returns shape ``q.shape[:-1]``.
    """
    k = _check_window(window)
    q = as_float_array(q, "q")
    if q.ndim == 0 or q.shape[-1] not in (1, 2):
        q = q[..., None]
    half = 0.5 * q
    s = jnp.sin(half)
    small = jnp.abs(s) < 1e-6
    ratio = jnp.where(small, k * (1 - (k * k - 1) * half**2 / 6), jnp.sin(k * half))
    ratio = ratio / jnp.where(small, 1.0, s)
    return jnp.prod(ratio, axis=-1)


def patch_mode_spectrum(
    process: AbstractProcess,
    t: ArrayLike,
    q: ArrayLike | None = None,
    *,
    window: int,
    images: LatticeImages | ArrayLike | None = None,
    lattice_shape: tuple[int, ...] | None = None,
    dynamics: Dynamics | str = "score",
) -> Array:
    r"""Linear growth rate of Fourier mode $q$ at the symmetric point $x=0$ (`docs/theory/patch.md#growth-rates`).

    Score: $\mu(q,t)=({\rm SNR}(t)\,\hat C_k(q)-1)/b_t^2$ (the sign of `docs/theory/patch.md#mode-softening`, positive =
    unstable), the eigenvalue of the ELS Jacobian on the plane wave $e^{iq\cdot r}$
    (:func:`gltheory.mode_stiffness` measures it by JVPs). Reverse SDE: $g^2\mu-f$; PF-ODE:
    $\tfrac12g^2\mu-f$. $\hat C_k$ is the Dirichlet kernel for the two uniform images
    (``images=None``) or :func:`gltheory.windowed_patch_covariance` of ``images``.

    **Arguments:**

    - `process`, `t`: forward process and time (scalar, or shape broadcasting to the output).
    - `q`: wavevectors ``(..., D)``; default the grid of ``lattice_shape`` (or of the images).
    - `window`: odd $k$.
    - `images`: training set, or ``None`` for the two uniform images.
    - `lattice_shape`: needed when ``images`` and ``q`` are both ``None``.
    - `dynamics`: ``"score"``, ``"sde"`` or ``"ode"``.

    **Returns:** shape ``q.shape[:-1]`` broadcast with ``t``.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    _check_dynamics(dynamics)
    k = _check_window(window)
    if images is None:
        if q is None:
            if lattice_shape is None:
                raise ValueError("pass q or lattice_shape when images is None.")
            q = lattice_wavevectors(lattice_shape)
        chat = dirichlet_kernel(q, k)
    else:
        chat = windowed_patch_covariance(images, k, q)
    t = as_float_array(t, "t")
    snr, b2 = process.snr(t), process.b2(t)
    mu = (snr * chat - 1) / b2
    scale, f = _dynamics_factors(process, t, dynamics)
    return scale * mu - f


class PatchCriticalPoint(NamedTuple):
    r"""Softening point of a patch model (`docs/theory/patch.md#mode-softening`).

    - `c_max`: $\max_q\hat C_k(q)$ (plays the role of $\Lambda$); `q_star`: its argmax.
    - `alpha_bar`: $\bar\alpha_c^S=1/(1+c_{\max})$.
    - `t_score`, `t_sde`, `t_ode`: the three critical times in the process's own time
      (``None`` where that criterion has no transition, e.g. the ODE one when $c_{\max}\ge1$).
    """

    c_max: Array
    q_star: Array
    alpha_bar: Array
    t_score: float | None
    t_sde: float | None
    t_ode: float | None


def criterion_time(
    process: AbstractProcess,
    c_max: Real[ArrayLike, ""],
    *,
    criterion: str = "score",
    t_min: Real[ArrayLike, ""] | None = None,
) -> float | None:
    r"""Time where criterion $v$ fires for a top eigenvalue $c_{\max}$ at the symmetric point.

    Solves ${\rm SNR}(t)\,c_{\max}-1+o_v(t)\,b_t^2=0$ for $t\in[t_{\min},T]$ (offsets $o_v$
    of :func:`gltheory.spectral.drift_offset`: 0, $-f/g^2$, $-2f/g^2$ for ``"score"``, ``"sde"``,
    ``"ode"``) with ``optimistix.Bisection``. :func:`patch_critical_point` uses it with
    $c_{\max}=\max_q\hat C_k(q)$; the ideal score of a dataset uses the top eigenvalue of
    its covariance.

    **Arguments:**

    - `process`: forward process.
    - `c_max`: the top eigenvalue, a positive Python float.
    - `criterion`: ``"score"``, ``"sde"`` or ``"ode"``.
    - `t_min`: lower end of the search (default $10^{-6}T$).

    **Returns:** the critical time as a float, or ``None`` when the criterion does not change
    sign on $[t_{\min},T]$. Not differentiable: under ``jax.grad``/``jit``/``vmap`` it raises
    ``TypeError`` (use :func:`gltheory.critical_times` for a differentiable critical time).
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    refuse_traced("criterion_time", (process, c_max, t_min))
    _check_dynamics(criterion)
    dynamics = criterion
    t_min = 1e-6 * float(process.T) if t_min is None else float(t_min)

    def h(t, args):
        o = drift_offset(process, t, dynamics)
        return process.snr(t) * c_max - 1 + o * process.b2(t)

    hi = float(process.T)
    dtype = jnp.result_type(float)  # float64 with x64 enabled, else float32
    lo_t, hi_t = jnp.asarray(t_min, dtype), jnp.asarray(hi, dtype)
    if not (float(h(hi_t, None)) < 0 < float(h(lo_t, None))):
        return None
    tol = max(1e-14, 8 * float(jnp.finfo(dtype).eps))
    sol = optx.root_find(
        h,
        # decreasing (checked above); flip given and throw=False: "detect" and throw=True
        # would add eqx.error_if host callbacks to the compiled program
        optx.Bisection(rtol=tol, atol=tol * hi, flip=True),
        jnp.asarray(0.5 * (t_min + hi), dtype),
        options={"lower": lo_t, "upper": hi_t},
        max_steps=400,
        throw=False,
    )
    return float(sol.value)


def patch_critical_point(
    process: AbstractProcess,
    *,
    window: int,
    images: LatticeImages | ArrayLike | None = None,
    lattice_ndim: int | None = None,
    t_min: Real[ArrayLike, ""] | None = None,
) -> PatchCriticalPoint:
    r"""Critical times of the S, D and O criteria of a patch model at $x=0$ (`docs/theory/field.md#criterion-times`).

    The first unstable mode is $q^\star=\arg\max_q\hat C_k(q)$ and criterion $v$ fires where
    $\mu(q^\star,t)+o_v(t)=0$, i.e. ${\rm SNR}\,c_{\max}-1+o_v\,b_t^2=0$ with the offsets of
    :func:`gltheory.drift_offset` (0, $-f/g^2$, $-2f/g^2$), solved by
    ``optimistix.Bisection`` in $t$. Two uniform images: $c_{\max}=k^D$ at $q^\star=0$, so OU
    gives $t_c^S=\tfrac12\ln(1+k^D)$ and $t_c^D=\tfrac12\,\mathrm{arcsinh}(k^D)$. The general
    case wraps :func:`gltheory.critical_alpha_bar` (same validity: equal-norm patches).

    **Arguments:**

    - `process`: forward process.
    - `window`: odd $k$.
    - `images`: training set, or ``None`` for the two uniform images (then ``lattice_ndim``
      is required).
    - `t_min`: lower end of the search (default $10^{-6}T$).

    **Returns:** :class:`PatchCriticalPoint` (times as Python floats; under ``jax.grad``/
    ``jit``/``vmap`` it raises ``TypeError``).
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    refuse_traced("patch_critical_point", (process, images, t_min))
    k = _check_window(window)
    if images is None:
        D = _check_ndim(lattice_ndim)
        c_max = jnp.asarray(float(k**D))
        q_star = jnp.zeros((D,))
        alpha_bar = 1.0 / (1.0 + c_max)
    else:
        sp = critical_alpha_bar(images, k)
        c_max, q_star, alpha_bar = sp.c_max, sp.q_star, sp.alpha_bar
    t_min = 1e-6 * float(process.T) if t_min is None else float(t_min)
    cm = float(c_max)
    times = [
        criterion_time(process, cm, criterion=v, t_min=t_min) if cm > 0 else None for v in _CRITERIA
    ]
    return PatchCriticalPoint(c_max, q_star, alpha_bar, *times)


_CRITERIA = ("score", "sde", "ode")


# ----------------------------------------------------------------------------------------
# dynamics: GL (model A) score, streamed structure factors, GL vs exact (`docs/theory/field.md#gl-vs-exact`)
# ----------------------------------------------------------------------------------------


def lattice_laplacian(x: ArrayLike, lattice_ndim: int) -> Array:
    r"""Periodic nearest-neighbour Laplacian $(\Delta x)_i=\sum_a(x_{i+e_a}+x_{i-e_a}-2x_i)$ on the trailing axes.

    Its Fourier symbol is $-\hat q^2=-\sum_a4\sin^2(q_a/2)$.
    """
    D = _check_ndim(lattice_ndim)
    x = as_float_array(x, "x")
    if x.ndim < D:
        raise ValueError(f"x must have at least {D} lattice axes, got shape {x.shape}.")
    out = jnp.zeros_like(x)
    for ax in range(-D, 0):
        out = out + jnp.roll(x, 1, axis=ax) + jnp.roll(x, -1, axis=ax) - 2 * x
    return out


class GLScore(eqx.Module):
    r"""The GL (model-A) approximation of the patch score as a score function (`docs/theory/field.md#gl-vs-exact`).

    $$s^{\rm GL}_i(x,t)=-r(t)\,x_i+\kappa(t)\,(\Delta x)_i-u(t)\,x_i^3,$$
    with the *score* coefficients of :func:`gl_coefficients` and the lattice Laplacian
    (:func:`lattice_laplacian`). Plugged into :func:`gltheory.sample` the reverse SDE drift
    $g^2s^{\rm GL}-fx$ is exactly time-dependent GL (model A) relaxation with the SDE
    coefficients $r_v=g^2r+f$, $\kappa_v=g^2\kappa$, $u_v=g^2u$, and the noise is the sampler's
    ($g\sqrt h\,\xi$, same keys as the exact run): the GL field simulation of `docs/theory/field.md#gl-vs-exact`.

    **Stiffness.** $u\propto b_t^{-8}$ and the GL minimum $x^2=-r/u\to0$ as $t\to0$: the GL
    model is an expansion near $t_c$ and explicit steps become unstable deep in the ordered
    phase (rate $\sim2|r_v|$); stop its runs at a moderate $t$ and keep the steps below
    :func:`gl_stable_step` (:func:`compare_gl_exact` checks this).

    Called as ``score(x, t)`` with ``x`` of shape ``(*batch, *lattice)``, scalar ``t``.
    """

    constants: GLConstants
    process: AbstractProcess

    def __call__(self, x, t):
        x = as_float_array(x, "x")
        r, kappa, u = (v.astype(x.dtype) for v in gl_coefficients(self.constants, self.process, t))
        lap = lattice_laplacian(x, self.constants.lattice_ndim)
        return -r * x + kappa * lap - u * x**3


def tweedie_denoiser(
    score_fn: Callable[[Array, Array], Array], process: AbstractProcess
) -> Callable[[Array, Array], Array]:
    r"""The denoiser implied by a score, $\hat x_0(x,t)=(x+b_t^2s(x,t))/a_t$ (Tweedie, `docs/theory/score.md#tweedie`).

    Exact for an exact score; for :class:`GLScore` it defines the GL model's own denoised
    field. Returns a callable ``denoiser(x, t)``.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    if not callable(score_fn):
        raise ValueError("score_fn must be callable as score_fn(x, t).")

    def denoise(x, t):
        return (x + process.b2(t) * score_fn(x, t)) / process.a(t)

    return denoise


def gl_stable_step(constants: GLConstants, process: AbstractProcess, t: ArrayLike) -> Array:
    r"""Largest explicit (Euler–Maruyama) reverse step that keeps the GL dynamics stable.

    The stiffest linear rate of the GL reverse-SDE drift is bounded by
    $\lambda=g^2(t)\,(3|r|+4D\kappa)+|f|$: $4D$ is the largest eigenvalue of $-\Delta$, and the
    curvature at the ordered minimum $x^2=-r/u$ is $-2r$ (for $r<0$, $3|r|$ bounds
    $|r+3ux^2|$ exactly when $x^2\le\tfrac43|r|/u$, a range that includes the ordered minimum
    $x^2=|r|/u$). Explicit Euler needs $h\lambda<2$; returns $2/\lambda$.
    """
    c = gl_coefficients(constants, process, t)
    t = as_float_array(t, "t")
    lam = process.g2(t) * (3 * jnp.abs(c.r) + 4 * constants.lattice_ndim * c.kappa)
    return 2.0 / (lam + jnp.abs(process.f(t)))


def structure_factor_observer(
    *,
    lattice_ndim: int,
    denoiser: Callable[[Array, Array], Array] | None = None,
    keep_denoised: bool = False,
) -> Callable[[Array, Array], dict[str, Array]]:
    r"""An ``observe(x, t)`` for :func:`gltheory.sample` that streams $S(q,t)$ (`docs/theory/field.md#xi-estimators`).

    Returns a dict with ``"S"``: :func:`structure_factor` of the batch of states $x_t$
    (averaged over the batch), and with a ``denoiser(x, t)`` also ``"S_denoised"``: the same
    for the denoised field $\hat x_0=\mathbb E[y\mid x_t]$, and with ``keep_denoised=True``
    ``"denoised"``: the denoised batch itself (for increments, :func:`increment_structure_factor`).
    Only $O(n_{\rm saved}\times{\rm sites})$ numbers are stored (unless ``keep_denoised``).

    **Arguments:**

    - `lattice_ndim`: 1 or 2 (the state has shape ``(n, *lattice)``).
    - `denoiser`: optional callable ``denoiser(x, t)`` (e.g. a patch denoiser).
    - `keep_denoised`: also store the denoised batch.
    """
    D = _check_ndim(lattice_ndim)
    if denoiser is not None and not callable(denoiser):
        raise ValueError("denoiser must be callable as denoiser(x, t) or None.")
    if keep_denoised and denoiser is None:
        raise ValueError("keep_denoised=True needs a denoiser.")
    axes = tuple(range(-D, 0))

    def observe(x, t):
        out = {"S": structure_factor(x, axes=axes)}
        if denoiser is not None:
            m = denoiser(x, t)
            out["S_denoised"] = structure_factor(m, axes=axes)
            if keep_denoised:
                out["denoised"] = m
        return out

    return observe


def increment_structure_factor(denoised: ArrayLike, *, lattice_ndim: int) -> Array:
    r"""$S(q)$ of the increments $\hat x_0(t_{j+1})-\hat x_0(t_j)$ between consecutive saved times (`docs/theory/field.md#xi-estimators`).

    ``denoised`` has shape ``(n_saved, n, *lattice)`` (``observe`` output with
    ``keep_denoised=True``); returns shape ``(n_saved - 1, *lattice)``.
    """
    D = _check_ndim(lattice_ndim)
    m = as_float_array(denoised, "denoised")
    if m.ndim != D + 2 or m.shape[0] < 2:
        raise ValueError(
            f"denoised must have shape (n_saved >= 2, n, *lattice) with {D} lattice axes, "
            f"got {m.shape}."
        )
    inc = m[1:] - m[:-1]
    return jax.vmap(lambda z: structure_factor(z, axes=tuple(range(-D, 0))))(inc)


# ----------------------------------------------------------------------------------------
# pattern formation (`docs/theory/field.md#pattern-formation`)
# ----------------------------------------------------------------------------------------


class DomainStats(NamedTuple):
    r"""Domain statistics of a batch of final samples (`docs/theory/field.md#pattern-formation`).

    - `wall_density`: fraction of nearest-neighbour bonds whose two sites have different signs,
      averaged over the bonds of the lattice and the batch ($\rho_w$).
    - `wall_density_se`: its standard error over the batch (samples independent).
    - `domain_length`: $\ell=1/\rho_w$ (1-D: the mean domain length; 2-D: the side of square
      domains, $2w$ for stripes of width $w$); $\infty$ when no sample has a wall.
    - `domain_length_se`: delta-method SE, $\mathrm{SE}(\rho_w)/\rho_w^2$.
    - `per_sample`: $\rho_w$ of each sample, shape ``batch``.
    """

    wall_density: Array
    wall_density_se: Array
    domain_length: Array
    domain_length_se: Array
    per_sample: Array


def domain_statistics(
    samples: ArrayLike, *, axes: int | Sequence[int | np.integer] | None = None
) -> DomainStats:
    r"""Wall density and domain length of sign domains on a periodic lattice (`docs/theory/field.md#pattern-formation`).

    A bond $(i,i+e_a)$ is a wall when ${\rm sign}\,x_i\ne{\rm sign}\,x_{i+e_a}$ (zeros count
    as positive). Works for any amplitude (exact samples near $\pm1$, GL fields near
    $\pm\sqrt{-r/u}$).

    **Arguments:**

    - `samples`: shape ``(*batch, *lattice)`` (lattice axes as in :func:`structure_factor`).
    - `axes`: lattice axes (trailing).

    **Returns:** :class:`DomainStats`.
    """
    x = as_float_array(samples, "samples")
    ax = _lattice_axes(x, axes, "samples", default_batch=True)
    lattice = x.shape[x.ndim - len(ax) :]
    _check_lattice(lattice, "domain_statistics")
    sgn = x >= 0
    walls = sum(
        jnp.mean((sgn != jnp.roll(sgn, 1, axis=a)).astype(x.dtype), axis=ax) for a in ax
    ) / len(ax)
    walls = jnp.reshape(walls, x.shape[: x.ndim - len(ax)])
    flat = walls.reshape(-1)
    n = flat.shape[0]
    rho = jnp.mean(flat)
    se = jnp.std(flat, ddof=1) / np.sqrt(n) if n > 1 else jnp.full((), jnp.nan, x.dtype)
    has = rho > 0
    ell = jnp.where(has, 1.0 / jnp.where(has, rho, 1.0), jnp.inf)
    ell_se = jnp.where(has, se / jnp.where(has, rho, 1.0) ** 2, jnp.inf)
    return DomainStats(rho, se, ell, ell_se, walls)


def peak_wavevector(
    field_or_S: ArrayLike,
    *,
    axes: int | Sequence[int | np.integer] | None = None,
    from_structure_factor: bool | Any = False,
) -> tuple[Array, Array]:
    r"""Wavevector $q_{\rm peak}=\arg\max_{q\ne0}S(q)$ and its modulus (the emergent pattern, `docs/theory/field.md#pattern-formation`).

    For stripe or checkerboard training data the final samples' structure factor peaks at the
    softening mode $q^\star$ of :func:`patch_critical_point` (up to the symmetry-related copies
    $\pm q^\star$ and rotations).

    **Returns:** ``(q, |q|)`` with ``q`` of shape ``(D,)`` (lattice grid, ``fftfreq`` order).
    """
    s, ax = _as_structure_factor(field_or_S, axes, from_structure_factor)
    if s.ndim != len(ax):
        raise ValueError(f"peak_wavevector needs a single structure factor, got shape {s.shape}.")
    qgrid = lattice_wavevectors(s.shape).reshape(-1, s.ndim)
    flat = s.reshape(-1).at[0].set(-jnp.inf)
    i = jnp.argmax(flat)
    q = qgrid[i]
    return q, jnp.linalg.norm(q)


# ----------------------------------------------------------------------------------------
# drivers: GL vs exact, domain length vs window
# ----------------------------------------------------------------------------------------


class GLComparison(NamedTuple):
    r"""Exact patch-score vs GL reverse SDE on the same lattice, keys and time grid.

    - `saved_ts`: the saved forward times.
    - `S_exact`, `S_gl`: streamed $S(q,t)$ of the states, shape ``(n_saved, *lattice)``.
    - `xi_exact`, `xi_gl`: $\xi(t)$ of the states by the ``"lorentzian"`` estimator of
      :func:`correlation_length`.
    - `xi_theory`: quasi-static linear theory for the states, the reverse-SDE length
      $\xi_{\rm SDE}=\sqrt{\kappa_v/r_v}$ (:func:`gl_correlation_length` with
      ``dynamics="sde"``; NaN after $t_c^D$). Linear model-A dynamics relaxes mode $q$ to
      variance $\propto1/(r_v+\kappa_v\hat q^2)$, so the states' $S$ is Ornstein–Zernike with
      this length as long as the relaxation keeps up with the quench.
    - `domains_exact`, `domains_gl`: :class:`DomainStats` of the *window-smoothed* final
      states ${\rm sign}(Kx)$ ($K$ the periodic box sum over the window; the raw state still
      carries noise of size $b_t$ at ``ts[-1]``, and the GL amplitude $\sqrt{-r/u}$ is small).
    - `sign_agreement`: fraction of sites where the two smoothed final fields agree in sign.
    - `x_exact`, `x_gl`: the final states.
    - `t_c`: the :class:`PatchCriticalPoint`.
    """

    saved_ts: Array
    S_exact: Array
    S_gl: Array
    xi_exact: Array
    xi_gl: Array
    xi_theory: Array
    domains_exact: DomainStats
    domains_gl: DomainStats
    sign_agreement: Array
    x_exact: Array
    x_gl: Array
    t_c: PatchCriticalPoint


class _UniformPatchScoreFFT(eqx.Module):
    """Two-image patch score with the box sum done by FFT against the Dirichlet kernel.

    The window enters only through the kernel array, so runs over several windows share one
    compiled sampler (tests: equals :func:`gltheory.scores.uniform_patch_score`).
    """

    process: AbstractProcess
    kernel: Array  # Dirichlet kernel on the lattice grid
    lattice_ndim: int = eqx.field(static=True)

    def __call__(self, x, t):
        axes = tuple(range(-self.lattice_ndim, 0))
        kx = jnp.real(jnp.fft.ifftn(jnp.fft.fftn(x, axes=axes) * self.kernel, axes=axes))
        a, b2 = self.process.a(t), self.process.b2(t)
        return (a * jnp.tanh(a * kx / b2) - x) / b2


def _uniform_score_fft(process, window: int, lattice_shape, dtype):
    kern = dirichlet_kernel(lattice_wavevectors(lattice_shape), window).astype(dtype)
    return _UniformPatchScoreFFT(process, kern, len(lattice_shape))


def _exact_score_fn(process, window, lattice_shape, images, dtype):
    if images is None:
        return _uniform_score_fft(process, window, lattice_shape, dtype)
    machine = ELS(images, window)
    return lambda x, t: patch_score(machine, process, x, t)


def compare_gl_exact(
    process: AbstractProcess,
    key: PRNGKeyArray,
    *,
    lattice_shape: tuple[int, ...],
    window: int,
    n: int,
    ts: ArrayLike,
    save_at: Indices | None = None,
    images: LatticeImages | ArrayLike | None = None,
    method: str = "euler_maruyama",
) -> GLComparison:
    r"""Run the exact patch-score reverse SDE and its GL (model-A) approximation side by side.

    Both runs use :func:`gltheory.sample` with the same per-trajectory keys, the same initial
    states $x_{t_0}\sim\mathcal N(0,b_{t_0}^2I)$ and hence the **same Brownian increments**, so
    their differences are due to the score alone. The exact score is the two-image patch
    score (``images=None``; :func:`gltheory.scores.uniform_patch_score`, evaluated by FFT) or the
    score of the :class:`gltheory.ELS` machine of ``images``; the GL score is :class:`GLScore`
    with :func:`gl_constants` of the same data. $S(q,t)$ of the states is streamed
    (:func:`structure_factor_observer`). Choose ``ts[-1]`` in the ordered phase but not so
    late that the explicit GL steps become unstable (:class:`GLScore`).

    **Arguments:**

    - `process`: forward process; `key`: PRNG key (trajectory ``i`` uses ``fold_in(key, i)``).
    - `lattice_shape`: ``(L,)`` or ``(H, W)``; `window`: odd $k$; `n`: batch size.
    - `ts`: decreasing time grid; `save_at`: indices of ``ts`` to record (default all).
    - `images`: training set or ``None`` (two uniform images).
    - `method`: sampler method.

    **Returns:** :class:`GLComparison`.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    k = _check_window(window)
    lattice_shape = tuple(int(s) for s in lattice_shape)
    D = _check_ndim(len(lattice_shape))
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if any(k > L for L in lattice_shape):
        raise ValueError(f"window={k} exceeds the lattice {lattice_shape}.")
    constants = gl_constants_two_image(k, D) if images is None else gl_constants(images, k)
    ts = as_float_array(ts, "ts")
    dtype = ts.dtype
    constants = jax.tree.map(lambda v: v.astype(dtype), constants)
    if is_concrete(ts) and ts.ndim == 1 and ts.shape[0] >= 2:
        h = -np.diff(np.asarray(ts, dtype=np.float64))
        h_max = np.asarray(gl_stable_step(constants, process, ts[:-1]), dtype=np.float64)
        bad = np.nonzero(h > h_max)[0]
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"the GL reverse SDE is unstable on this grid: step {i} (t={float(ts[i]):.4g}) has "
                f"h={h[i]:.3g} > the explicit stability limit {h_max[i]:.3g} "
                "(gl_stable_step); use more steps or stop at a larger t."
            )
    exact = _exact_score_fn(process, k, lattice_shape, images, dtype)
    gl_fn = GLScore(constants, process)
    x0 = process.b(ts[0]).astype(dtype) * jax.vmap(
        lambda kk: jax.random.normal(kk, lattice_shape, dtype)
    )(trajectory_keys(jax.random.fold_in(key, 1), n))
    axes = tuple(range(-D, 0))
    observe = structure_factor_observer(lattice_ndim=D)
    kw = dict(ts=ts, method=method, observe=observe, save_at=save_at)
    sol_e = sample(exact, process, key, x0, **kw)
    sol_g = sample(gl_fn, process, key, x0, **kw)
    m_e = box_sum_periodic(sol_e.x, k, axes)
    m_g = box_sum_periodic(sol_g.x, k, axes)
    xi = lambda s: correlation_length(s, axes=axes, from_structure_factor=True, method="lorentzian")
    return GLComparison(
        saved_ts=sol_e.saved_ts,
        S_exact=sol_e.observables["S"],
        S_gl=sol_g.observables["S"],
        xi_exact=xi(sol_e.observables["S"]),
        xi_gl=xi(sol_g.observables["S"]),
        xi_theory=gl_correlation_length(constants, process, sol_e.saved_ts, dynamics="sde"),
        domains_exact=domain_statistics(m_e, axes=axes),
        domains_gl=domain_statistics(m_g, axes=axes),
        sign_agreement=jnp.mean((m_e >= 0) == (m_g >= 0)),
        x_exact=sol_e.x,
        x_gl=sol_g.x,
        t_c=patch_critical_point(process, window=k, images=images, lattice_ndim=D),
    )


class DomainScaling(NamedTuple):
    r"""Final domain length versus window $k$ (`docs/theory/field.md#pattern-formation`).

    - `windows`, `length`, `length_se`: $k$, $\ell(k)$ and its SE (:class:`DomainStats`).
    - `slope`, `slope_se`, `intercept`, `intercept_se`: weighted linear fit
      $\ell=\text{intercept}+\text{slope}\cdot k$ (weights $1/\mathrm{SE}^2$, SEs from the
      fit covariance scaled by the reduced $\chi^2$ when it exceeds 1).
    - `exponent`, `exponent_se`: log-log exponent of $\ell$ vs $k$
      (:func:`gltheory.meanfield.fit_exponent`; the KZ-style claim is $\approx1$).
    """

    windows: Array
    length: Array
    length_se: Array
    slope: Array
    slope_se: Array
    intercept: Array
    intercept_se: Array
    exponent: Array
    exponent_se: Array


def _linear_fit(x, y, se):
    w = 1.0 / se**2
    A = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    beta = cov @ (A.T @ (w * y))
    dof = len(x) - 2
    if dof > 0:
        chi2 = float(np.sum(w * (y - A @ beta) ** 2)) / dof
        cov = cov * max(chi2, 1.0)
    return beta, np.sqrt(np.diag(cov))


def domain_length_scaling(
    process: AbstractProcess,
    key: PRNGKeyArray,
    *,
    windows: Sequence[int | np.integer],
    lattice_shape: tuple[int, ...],
    n: int,
    ts: ArrayLike,
) -> DomainScaling:
    r"""Domain length of exact two-image patch-score samples versus the window $k$ (`docs/theory/field.md#pattern-formation`).

    For each $k$ runs the reverse SDE (Euler–Maruyama, :func:`gltheory.scores.uniform_patch_score`)
    from $\mathcal N(0,b_T^2I)$ with the trajectory keys of ``fold_in(key, k)``, measures
    :func:`domain_statistics` of the final samples, and fits $\ell$ against $k$ (linear and
    log-log). The scaling argument of `docs/theory/field.md#pattern-formation` ($\kappa\propto k^2$ at a nearly $k$-independent
    quench rate) predicts $\ell\propto k$.

    **Arguments:**

    - `process`, `key`: forward process and PRNG key.
    - `windows`: odd window sizes (at least 3 of them).
    - `lattice_shape`: ``(L,)`` or ``(H, W)`` (choose $L\gg\ell$).
    - `n`: samples per window; `ts`: the time grid.

    **Returns:** :class:`DomainScaling`.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    ks = [_check_window(k) for k in windows]
    if len(ks) < 3:
        raise ValueError(f"windows needs at least 3 window sizes for a fit, got {windows!r}.")
    lattice_shape = tuple(int(s) for s in lattice_shape)
    D = _check_ndim(len(lattice_shape))
    if max(ks) > min(lattice_shape):
        raise ValueError(f"windows {ks} must fit in the lattice {lattice_shape}.")
    ts = as_float_array(ts, "ts")
    lengths, ses = [], []
    for k in ks:  # one compiled sampler: the window is an array leaf of the score
        score_fn = _uniform_score_fft(process, k, lattice_shape, ts.dtype)
        sol = sample(score_fn, process, jax.random.fold_in(key, k), (n,) + lattice_shape, ts=ts)
        st = domain_statistics(sol.x, axes=tuple(range(-D, 0)))
        lengths.append(float(st.domain_length))
        ses.append(float(st.domain_length_se))
    x = np.asarray(ks, dtype=float)
    y, se = np.asarray(lengths), np.asarray(ses)
    beta, beta_se = _linear_fit(x, y, se)
    ef = fit_exponent(jnp.asarray(x), jnp.asarray(y), yerr=jnp.asarray(se))
    return DomainScaling(
        windows=jnp.asarray(x),
        length=jnp.asarray(y),
        length_se=jnp.asarray(se),
        slope=jnp.asarray(beta[1]),
        slope_se=jnp.asarray(beta_se[1]),
        intercept=jnp.asarray(beta[0]),
        intercept_se=jnp.asarray(beta_se[0]),
        exponent=ef.slope,
        exponent_se=ef.stderr,
    )
