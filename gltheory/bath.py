r"""The multi-site "generative bath" model [DERIVED].

See `docs/theory/meanfield.md#generative-bath`.

$N$ sites $y_1,\dots,y_N$, each with prior $p_0$, coupled through their centre of mass at
inverse temperature $\beta = 1/\sigma^2$ (VE picture):

$$\mathcal H = \tfrac12\sum_j y_j^2 - \tfrac1{2N}\Big(\sum_j y_j\Big)^2 = \tfrac12\sum_j(y_j-\bar y)^2 .$$

Hubbard–Stratonovich with an auxiliary field $x$ gives the joint law
$p(x, y)\propto\prod_j p_0(y_j)\,e^{-\frac\beta2(y_j - x)^2}$, so that

- given the field, the sites are independent draws from the diffusion posterior
  $p(y\mid x)$ (`docs/theory/score.md#boltzmann-posterior`);
- given the sites, $x\mid y\sim\mathcal N(\bar y, \sigma^2/N)$;
- the field alone has the law $P_N(x)\propto p_\sigma(x)^N$, $p_\sigma$ the forward VE
  marginal at noise $\sigma$; its saddle point is the diffusion self-consistency $x = m(x)$
  (`docs/theory/meanfield.md#self-consistency`) and the action per site, $-\ln p_\sigma$, is the generative potential.

For two points $\pm1$ the sites are Ising spins, $\mathcal H$ is the Curie–Weiss model with
$J=1$ (up to a constant), the transition is at $\sigma_c^2 = 1$ and at $\sigma_c$ the field
obeys Curie–Weiss finite-size scaling: $P_N(x)\propto e^{-Nx^4/12}$, so
$\langle x^2\rangle\simeq\sqrt{12/N}\,\Gamma(\tfrac34)/\Gamma(\tfrac14)\propto N^{-1/2}$ instead
of the $N^{-1}$ of the disordered phase, and the Binder cumulant tends to
$1-\Gamma(\tfrac14)^2/(12\,\Gamma(\tfrac34)^2) = 0.2705$.

Everything here works for a one-dimensional dataset (event shape ``(1,)``) through its
``log_marginal(x, a=1, b2=sigma**2)``; for a VP/OU process at time ``t`` use the VE-equivalent
noise ``sigma = process.sigma(t)`` (the field is then the rescaled state $x_t/a_t$).

**The bath of any dataset and its critical exponents** (`docs/theory/exponents.md`):
:func:`tempered_langevin` samples $p_t(x)^N$ for any dataset with a closed-form score
(tempered Langevin at frozen $t$, a reduced field $h_0$, streamed moments of the order
parameter along the soft mode — O($n$) for the hypersphere — and of the bath energy);
:func:`bath_statistics` turns them into the order parameter, susceptibilities (fluctuation and
response), energy and specific heat with standard errors; :func:`relaxation_time` gives
$\tau_r$; :func:`field_thermo` is the exact one-dimensional energy and specific heat;
:func:`landau_jump` the family's own Landau jump $\Delta C/N$; :func:`fit_exponent_rule` and
:func:`fit_jump` fit $\beta,\gamma,\delta,z\nu$ and the jump with the stated range rule;
:func:`critical_snr` refuses data without a transition.

**Finite-size scaling in** $N$ (`docs/theory/exponents.md#finite-size-scaling`): :func:`fss_scan`
measures $\langle|M|\rangle$, $\chi$ and the O($n$) Binder cumulant on a grid of sizes and of the
scaling variable $\varepsilon N^{1/2}$ (:func:`fss_field`: the same, exactly, for 1-D data);
:func:`binder_crossings` locates the crossings of successive sizes (the limit
:func:`critical_binder`); :func:`fss_collapse` fits $1/\bar\nu$ and the amplitude exponent by a
data collapse (:func:`collapse_quality`), :func:`fss_collapse_pairs` collapses successive sizes
and extrapolates the exponents in $N^{-1/2}$; :func:`fit_critical_fss` fits
$\langle|M|\rangle\propto N^{-1/4}$ and $\chi\propto N^{1/2}$ at the transition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from ._checks import (
    DATASET,
    PROCESS,
    as_float_array,
    check_instance,
    check_positive_int,
    check_time,
    check_values,
    is_concrete,
    trusted,
)
from ._roots import refuse_traced
from .data import AbstractData, DeltaMixture, LatticeImages
from .meanfield import ExponentFit, critical_times
from .processes import OU, AbstractProcess
from .schedules import soft_mode

__all__ = [
    "BathField",
    "action",
    "field",
    "saddle_point",
    "binder_crossing",
    "langevin",
    "gibbs",
    "CW_CRITICAL_BINDER",
    "BathAxes",
    "BathMoments",
    "BathStatistics",
    "BathThermo",
    "Estimate",
    "LandauJump",
    "order_parameter_axes",
    "critical_snr",
    "reduced_distance",
    "curie_weiss_spins",
    "with_negatives",
    "tempered_langevin",
    "bath_statistics",
    "relaxation_time",
    "field_thermo",
    "landau_jump",
    "fit_scaling",
    "fit_exponent_rule",
    "fit_jump",
    "FSS_MIN",
    "EPS_MAX",
    "FIELD_FSS_MIN",
    "FIELD_MAX",
    "ScalingRelation",
    "scaling_relations",
    "critical_binder",
    "FSSScan",
    "fss_scan",
    "fss_field",
    "BinderCrossings",
    "binder_crossings",
    "DataCollapse",
    "collapse_quality",
    "fss_collapse",
    "CriticalFSS",
    "fit_critical_fss",
    "COLLAPSE_N_MIN",
    "COLLAPSE_X_MAX",
    "fss_collapse_scan",
    "CollapseExtrapolation",
    "fss_collapse_pairs",
]

CW_CRITICAL_BINDER = 1 - math.gamma(0.25) ** 2 / (12 * math.gamma(0.75) ** 2)
r"""Binder cumulant $1-\Gamma(\frac14)^2/(12\Gamma(\frac34)^2)=0.27052$ of $e^{-cx^4}$: the
$N\to\infty$ value at $\sigma_c$ of the field of the two-point bath (Curie–Weiss) [DERIVED]."""


_INIT_STREAM = 2**31 - 1  # fold_in index of the initial-state draw (steps use 0..n_steps-1)


class BathField(NamedTuple):
    r"""Exact statistics of the bath field $x\sim P_N(x)\propto p_\sigma(x)^N$.

    Moments are of the centred field $u = x - c$ ($c$ = ``center``, the data mean by default).

    - `grid`: quadrature nodes, shape ``(n_grid,)``.
    - `log_density`: normalised $\ln P_N$ on the grid.
    - `mean`: $\langle u\rangle$.
    - `mean_abs`: the order parameter $\langle|u|\rangle$.
    - `m2`, `m4`: $\langle u^2\rangle$, $\langle u^4\rangle$.
    - `binder`: $U_4 = 1 - \langle u^4\rangle/(3\langle u^2\rangle^2)$.
    - `susceptibility`: $N\,\mathrm{Var}(x)$.
    - `susceptibility_abs`: $N(\langle u^2\rangle - \langle|u|\rangle^2)$, finite in the ordered
      phase where $N\,\mathrm{Var}(x)$ grows like $N M^2$.
    - `log_norm`: $\ln\int p_\sigma(x)^N dx$ (the bath free energy is $-\sigma^2$ times it).
    """

    grid: Array
    log_density: Array
    mean: Array
    mean_abs: Array
    m2: Array
    m4: Array
    binder: Array
    susceptibility: Array
    susceptibility_abs: Array
    log_norm: Array


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------


def _check_data_1d(data) -> None:
    check_instance(data, AbstractData, "data", DATASET)
    if tuple(data.event_shape) != (1,):
        raise ValueError(
            f"the bath model is implemented for one-dimensional data (event shape (1,)), got "
            f"event shape {tuple(data.event_shape)}."
        )


def _positive(value, name: str) -> Array:
    arr = as_float_array(value, name)
    return check_values(
        arr,
        lambda v: (~(v > 0) | ~(abs(v) < float("inf"))).any(),
        f"{name} must be positive and finite, got {value}.",
    )


def _check_n_grid(n_grid) -> int:
    if not isinstance(n_grid, (int, np.integer)) or n_grid < 65:
        raise ValueError(f"n_grid must be an integer >= 65, got {n_grid!r}.")
    return int(n_grid)


def _data_scale(data: AbstractData, dtype):
    mu = jnp.asarray(data.mean(), dtype=dtype).reshape(())
    var = jnp.asarray(data.covariance(), dtype=dtype).reshape(())
    return mu, var


# ----------------------------------------------------------------------------------------------
# action and exact field law
# ----------------------------------------------------------------------------------------------


def action(
    data: AbstractData, sigma: Real[ArrayLike, ""], x: Real[ArrayLike, "*x"]
) -> Float[Array, "*x"]:
    r"""Action per site of the bath field, the generative potential $-\ln p_\sigma(x)$.

    $$-\ln p_\sigma(x) = -\ln\int p_0(y)\,\mathcal N(x; y, \sigma^2)\,dy,$$

    so that $P_N(x)\propto e^{-N\,S(x)}$ (`docs/theory/meanfield.md#generative-bath`) [DERIVED].

    **Arguments:**

    - `data`: a one-dimensional dataset (event shape ``(1,)``).
    - `sigma`: VE noise level $\sigma = \beta^{-1/2} > 0$ (scalar).
    - `x`: field values, any shape.

    **Returns:** an array shaped like ``x``.
    """
    _check_data_1d(data)
    sigma = _positive(sigma, "sigma")
    x = as_float_array(x, "x")
    return _action(data, sigma, x)


def _action(data, sigma, x):
    dtype = jnp.result_type(x, sigma, float)
    x = jnp.asarray(x, dtype)
    a = jnp.ones((), dtype)
    return -data.log_marginal(x[..., None], a, jnp.asarray(sigma, dtype) ** 2)


def _trapezoid_log_weights(grid):
    h = grid[1] - grid[0]
    w = jnp.ones_like(grid).at[0].set(0.5).at[-1].set(0.5)
    return jnp.log(w * h)


@eqx.filter_jit
def _field_impl(data, sigma, n_sites, center, lo, hi, n_grid: int, cutoff: float):
    dtype = jnp.result_type(sigma, n_sites, float)
    # stage 1: coarse grid over [lo, hi] to locate the support of P_N
    g1 = jnp.linspace(lo, hi, n_grid, dtype=dtype)
    lp1 = -n_sites * _action(data, sigma, g1)
    keep = lp1 > jnp.max(lp1) - cutoff
    h1 = g1[1] - g1[0]
    first = jnp.argmax(keep)
    last = n_grid - 1 - jnp.argmax(keep[::-1])
    new_lo = jnp.maximum(g1[first] - h1, lo)
    new_hi = jnp.minimum(g1[last] + h1, hi)
    # stage 2: fine grid over the support (resolves widths down to (hi-lo)/n_grid^2)
    grid = jnp.linspace(new_lo, new_hi, n_grid, dtype=dtype)
    lp = -n_sites * _action(data, sigma, grid)
    lw = _trapezoid_log_weights(grid)
    log_norm = jax.nn.logsumexp(lp + lw)
    log_density = lp - log_norm
    p = jnp.exp(log_density + lw)  # quadrature weights, sum to 1
    u = grid - center
    mean = jnp.sum(p * u)
    mean_abs = jnp.sum(p * jnp.abs(u))
    m2 = jnp.sum(p * u**2)
    m4 = jnp.sum(p * u**4)
    binder = 1 - m4 / (3 * m2**2)
    return BathField(
        grid=grid,
        log_density=log_density,
        mean=mean,
        mean_abs=mean_abs,
        m2=m2,
        m4=m4,
        binder=binder,
        susceptibility=n_sites * (m2 - mean**2),
        susceptibility_abs=n_sites * (m2 - mean_abs**2),
        log_norm=log_norm,
    )


def _default_bounds(data, sigma, dtype):
    mu, var = _data_scale(data, dtype)
    half = 6 * jnp.sqrt(var) + 12 * sigma
    return mu - half, mu + half


def field(
    data: AbstractData,
    sigma: Real[ArrayLike, ""],
    n_sites: Real[ArrayLike, ""],
    *,
    center: ArrayLike | None = None,
    bounds: tuple[ArrayLike, ArrayLike] | None = None,
    n_grid: int = 4097,
    cutoff: Real[ArrayLike, ""] = 80.0,
) -> BathField:
    r"""Exact finite-$N$ law of the bath field, $P_N(x) = p_\sigma(x)^N/\int p_\sigma^N$, by quadrature.

    $$\ln P_N(x) = N\ln p_\sigma(x) - \ln\!\int p_\sigma(x')^N\,dx'$$

    (`docs/theory/meanfield.md#generative-bath`) [DERIVED]. Two trapezoid stages of ``n_grid`` nodes each: a coarse grid
    over ``bounds`` finds where $\ln P_N$ lies within ``cutoff`` of its maximum, a fine grid
    over that window integrates. The trapezoid rule on a smooth, effectively compactly
    supported integrand converges exponentially, so the moments are exact to float64
    round-off once the fine spacing is well below the width of $P_N$ (about $N^{-1/2}$, or
    $N^{-1/4}$ at $\sigma_c$). ``sigma`` and ``n_sites`` are traced: new values reuse the
    compiled code, and ``jax.vmap`` over them works.

    **Arguments:**

    - `data`: a one-dimensional dataset (event shape ``(1,)``), e.g. ``TwoPoint(1.0)``.
    - `sigma`: VE noise level, $\beta = 1/\sigma^2$ (scalar).
    - `n_sites`: number of sites $N>0$ (scalar; need not be an integer).
    - `center`: the point $c$ about which moments are taken (default: the data mean).
    - `bounds`: ``(lo, hi)`` of the coarse grid (default: data mean
      $\pm(6\sqrt{\mathrm{Var}\,y} + 12\sigma)$).
    - `n_grid`: nodes per stage (>= 65).
    - `cutoff`: log-density window kept by the fine stage.

    **Returns:** a :class:`BathField`.
    """
    _check_data_1d(data)
    n_grid = _check_n_grid(n_grid)
    if not (isinstance(cutoff, (int, float)) and cutoff > 10):
        raise ValueError(f"cutoff must be a number > 10, got {cutoff!r}.")
    sigma = _positive(sigma, "sigma")
    n_sites = _positive(n_sites, "n_sites")
    if sigma.ndim != 0 or n_sites.ndim != 0:
        raise ValueError(
            f"sigma and n_sites must be scalars (use jax.vmap for arrays), got shapes "
            f"{sigma.shape} and {n_sites.shape}."
        )
    dtype = jnp.result_type(sigma, n_sites, float)
    sigma = sigma.astype(dtype)
    n_sites = n_sites.astype(dtype)
    if bounds is None:
        lo, hi = _default_bounds(data, sigma, dtype)
    else:
        if len(bounds) != 2:
            raise ValueError(f"bounds must be a pair (lo, hi), got {bounds!r}.")
        lo, hi = (jnp.asarray(as_float_array(b, "bounds"), dtype) for b in bounds)
        if is_concrete((lo, hi)) and not float(lo) < float(hi):
            raise ValueError(f"bounds must satisfy lo < hi, got {bounds!r}.")
    if center is None:
        center = _data_scale(data, dtype)[0]
    center = jnp.asarray(as_float_array(center, "center"), dtype)
    if center.ndim != 0:
        raise ValueError(f"center must be a scalar, got shape {center.shape}.")
    return _field_impl(data, sigma, n_sites, center, lo, hi, n_grid, float(cutoff))


# ----------------------------------------------------------------------------------------------
# N -> infinity: the saddle point
# ----------------------------------------------------------------------------------------------


def saddle_point(
    data: AbstractData,
    sigma: Real[ArrayLike, ""],
    *,
    center: ArrayLike | None = None,
    n_grid: int = 4097,
    newton_steps: int = 30,
) -> Float[Array, ""]:
    r"""The $N\to\infty$ order parameter $|x^\ast - c|$, $x^\ast = \arg\max_x p_\sigma(x)$.

    The global maximiser of $p_\sigma$ is the stable solution of the self-consistency
    $x^\ast = m(x^\ast)$, $m(x)=\mathbb E[y\mid x]$ (`docs/theory/meanfield.md#generative-bath`) [DERIVED]; for two
    points $\pm1$ it is the Curie–Weiss magnetisation $M = \tanh(M/\sigma^2)$ (0 for
    $\sigma\ge1$). Found by a grid search over the default bounds of :func:`field`
    followed by Newton steps on the fixed-point equation $x - m(x) = 0$. When two maxima
    tie (a symmetric law) the one above ``center`` is returned.

    **Arguments:**

    - `data`: a one-dimensional dataset.
    - `sigma`: VE noise level (scalar).
    - `center`: reference point $c$ (default the data mean).
    - `n_grid`: grid nodes of the search.
    - `newton_steps`: Newton refinements.

    **Returns:** $|x^\ast - c|$ as a scalar array.
    """
    _check_data_1d(data)
    n_grid = _check_n_grid(n_grid)
    if not isinstance(newton_steps, (int, np.integer)) or newton_steps < 0:
        raise ValueError(f"newton_steps must be a non-negative integer, got {newton_steps!r}.")
    sigma = _positive(sigma, "sigma")
    dtype = jnp.result_type(sigma, float)
    sigma = sigma.astype(dtype)
    if center is None:
        center = _data_scale(data, dtype)[0]
    center = jnp.asarray(as_float_array(center, "center"), dtype)
    return _saddle_impl(data, sigma, center, n_grid, int(newton_steps))


@eqx.filter_jit
def _saddle_impl(data, sigma, center, n_grid, newton_steps):
    dtype = sigma.dtype
    lo, hi = _default_bounds(data, sigma, dtype)
    grid = jnp.linspace(lo, hi, n_grid, dtype=dtype)
    s = _action(data, sigma, grid)
    # prefer the maximiser above the centre when two tie to round-off
    s = s - 1e-12 * jnp.abs(s).max() * (grid > center)
    x0 = grid[jnp.argmin(s)]
    b2 = sigma**2
    a = jnp.ones((), dtype)

    def resid(x):
        return x - data.posterior_mean(jnp.reshape(x, (1,)), a, b2)[0]

    def newton(x, _):
        r, dr = jax.jvp(resid, (x,), (jnp.ones_like(x),))
        step = jnp.where(jnp.abs(dr) > 1e-12, r / dr, 0.0)
        # stay inside one grid cell of the grid maximum (never jump to another branch)
        h = grid[1] - grid[0]
        return jnp.clip(x - step, x0 - h, x0 + h), None

    x, _ = jax.lax.scan(newton, x0, None, length=newton_steps)
    # at and above sigma_c the maximum is degenerate to first order: Newton may stall; the
    # grid value is then within one cell of the exact answer, take the better of the two.
    better = _action(data, sigma, x) <= _action(data, sigma, x0)
    return jnp.abs(jnp.where(better, x, x0) - center)


# ----------------------------------------------------------------------------------------------
# finite-size scaling: Binder crossing
# ----------------------------------------------------------------------------------------------


def binder_crossing(
    data: AbstractData,
    n_small: Real[ArrayLike, ""],
    n_large: Real[ArrayLike, ""],
    sigma2_bracket: tuple[Real[ArrayLike, ""], Real[ArrayLike, ""]],
    *,
    iterations: int = 50,
    n_grid: int = 4097,
) -> Float[Array, ""]:
    r"""The noise variance $\sigma^2_\times$ where the Binder cumulants of two bath sizes cross.

    Solves $U_4(\sigma^2; N_{\rm small}) = U_4(\sigma^2; N_{\rm large})$ by bisection in
    ``sigma2_bracket``, with $U_4 = 1-\langle u^4\rangle/(3\langle u^2\rangle^2)$ from
    :func:`field`. As both sizes grow the crossing tends to $\sigma_c^2$ (for two points
    $\pm\mu$: $\sigma_c^2 = \mu^2$), the finite-size method of locating a critical point
    (`docs/theory/meanfield.md#finite-size-scaling`) [DERIVED].

    **Arguments:**

    - `data`: a one-dimensional dataset.
    - `n_small`, `n_large`: the two sizes.
    - `sigma2_bracket`: ``(lo, hi)`` in $\sigma^2$, with the curves in opposite order at the
      two ends (checked; ValueError otherwise).
    - `iterations`: bisection steps (``optimistix.Bisection``, exactly this many halvings).
    - `n_grid`: quadrature nodes (see :func:`field`).

    Derivatives (in ``n_small``, ``n_large`` and the dataset's parameters) come from the
    implicit-function theorem at the crossing (optimistix's implicit adjoint,
    $d\sigma^2_\times = -\partial_\theta\Delta U/\partial_{\sigma^2}\Delta U\,d\theta$ with
    $\Delta U = U_4(N_{\rm small}) - U_4(N_{\rm large})$), not from the iterations; the
    bracket gets no derivative.

    **Returns:** $\sigma^2_\times$ as a scalar array.
    """
    _check_data_1d(data)
    if len(sigma2_bracket) != 2 or not 0 < float(sigma2_bracket[0]) < float(sigma2_bracket[1]):
        raise ValueError(
            f"sigma2_bracket must be (lo, hi) with 0 < lo < hi, got {sigma2_bracket!r}."
        )
    if not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}.")
    n1 = _positive(n_small, "n_small")
    n2 = _positive(n_large, "n_large")
    dtype = jnp.result_type(n1, n2, float)

    lo = jnp.asarray(float(sigma2_bracket[0]), dtype)
    hi = jnp.asarray(float(sigma2_bracket[1]), dtype)
    n_grid = _check_n_grid(n_grid)
    s2_x, d_lo, d_hi = _binder_crossing_impl(
        data, n1.astype(dtype), n2.astype(dtype), lo, hi, n_grid, int(iterations)
    )
    if is_concrete((d_lo, d_hi)) and float(d_lo) * float(d_hi) > 0:
        raise ValueError(
            f"the Binder cumulants of the two sizes do not cross inside sigma2_bracket="
            f"{sigma2_bracket!r} (differences {float(d_lo):.3g} and {float(d_hi):.3g})."
        )
    return s2_x


@eqx.filter_jit
def _binder_crossing_impl(data, n1, n2, lo, hi, n_grid: int, iterations: int):
    def diff(s2, args):
        data, n1, n2 = args
        s = jnp.sqrt(s2)
        c = _data_scale(data, s.dtype)[0]
        lo_b, hi_b = _default_bounds(data, s, s.dtype)
        u1 = _field_impl(data, s, n1, c, lo_b, hi_b, n_grid, 80.0).binder
        u2 = _field_impl(data, s, n2, c, lo_b, hi_b, n_grid, 80.0).binder
        return u1 - u2

    args = (data, n1, n2)
    d_lo, d_hi = diff(lo, args), diff(hi, args)
    # orient the difference to be negative at lo: the root finder then needs no sign probe
    sign_lo = jax.lax.stop_gradient(jnp.where(d_lo > 0, -1.0, 1.0).astype(lo.dtype))
    sol = optx.root_find(
        lambda s2, a: a[0] * diff(s2, a[1]),
        optx.Bisection(rtol=0.0, atol=0.0, flip=False),  # run exactly `iterations` halvings
        0.5 * (lo + hi),
        args=(sign_lo, args),
        options={"lower": lo, "upper": hi},
        max_steps=iterations,
        throw=False,
    )
    return sol.value, d_lo, d_hi


# ----------------------------------------------------------------------------------------------
# dynamics: Langevin of the field in the bath; Gibbs of the N sites (two points)
# ----------------------------------------------------------------------------------------------


def langevin(
    data: AbstractData,
    sigma: Real[ArrayLike, ""],
    n_sites: Real[ArrayLike, ""],
    key: PRNGKeyArray,
    *,
    n_chains: int,
    n_steps: int,
    step: Real[ArrayLike, ""] = 0.1,
    x0: ArrayLike | None = None,
    metropolis: bool = True,
) -> Float[Array, " n_chains"]:
    r"""Brownian dynamics of the bath field: Langevin in the potential $N\,S(x) = -N\ln p_\sigma(x)$.

    With the sites equilibrated at every instant (their law given $x$ is the diffusion
    posterior, `docs/theory/meanfield.md#adiabatic-descent`) the force on the field is the sum of the $N$ site forces,
    $-N S'(x) = N\,s_\sigma(x) = N\beta\,(m(x) - x)$, the diffusion score times $N$. The
    overdamped dynamics $dx = N s_\sigma(x)\,dt + \sqrt2\,dW$ has stationary law
    $P_N\propto p_\sigma^N$ [DERIVED]. Discretised with the time step
    $dt = \mathtt{step}\cdot\sigma^2/N$ (so that $N\beta\,dt = \mathtt{step}$), either as
    unadjusted Langevin (``metropolis=False``, bias $O(\mathtt{step})$) or with a
    Metropolis–Hastings correction (MALA, exact stationary law).

    **Arguments:**

    - `data`: a one-dimensional dataset.
    - `sigma`: VE noise level (scalar).
    - `n_sites`: $N$ (scalar).
    - `key`: PRNG key (chain ``i`` uses ``fold_in(key, i)``).
    - `n_chains`, `n_steps`: number of independent chains and of steps.
    - `step`: dimensionless time step $N\beta\,dt$ (in $(0, 2)$).
    - `x0`: initial fields, shape ``(n_chains,)`` (default: the data mean plus
      $\mathcal N(0, \sigma^2/N)$ noise).
    - `metropolis`: apply the MALA accept/reject step.

    **Returns:** the final fields, shape ``(n_chains,)``.
    """
    _check_data_1d(data)
    for name, v in (("n_chains", n_chains), ("n_steps", n_steps)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    if not (isinstance(step, (int, float)) and 0 < step < 2):
        raise ValueError(f"step must be a number in (0, 2), got {step!r}.")
    sigma = _positive(sigma, "sigma")
    n_sites = _positive(n_sites, "n_sites")
    dtype = jnp.result_type(sigma, n_sites, float)
    sigma, n_sites = sigma.astype(dtype), n_sites.astype(dtype)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_chains))
    if x0 is None:
        mu, _ = _data_scale(data, dtype)
        init = jax.vmap(
            lambda k: jax.random.normal(jax.random.fold_in(k, _INIT_STREAM), (), dtype)
        )(keys)
        x0 = mu + sigma / jnp.sqrt(n_sites) * init
    else:
        x0 = jnp.asarray(as_float_array(x0, "x0"), dtype)
        if x0.shape != (n_chains,):
            raise ValueError(f"x0 must have shape ({n_chains},), got {x0.shape}.")
    return _langevin_impl(data, sigma, n_sites, keys, x0, int(n_steps), float(step), metropolis)


@eqx.filter_jit
def _langevin_impl(data, sigma, n_sites, keys, x0, n_steps, step, metropolis):
    dtype = x0.dtype
    dt = step * sigma**2 / n_sites

    def log_p(x):
        return -n_sites * _action(data, sigma, x)

    def drift(x):
        return jax.vmap(jax.grad(log_p))(x)

    def body(x, i):
        ks = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, i)))(keys)
        z = jax.vmap(lambda k: jax.random.normal(k, (), dtype))(ks[:, 0])
        gx = drift(x)
        prop = x + dt * gx + jnp.sqrt(2 * dt) * z
        if not metropolis:
            return prop, None
        gp = drift(prop)
        log_q_fwd = -((prop - x - dt * gx) ** 2) / (4 * dt)
        log_q_bwd = -((x - prop - dt * gp) ** 2) / (4 * dt)
        log_acc = log_p(prop) - log_p(x) + log_q_bwd - log_q_fwd
        u = jax.vmap(lambda k: jax.random.uniform(k, (), dtype))(ks[:, 1])
        accept = jnp.log(u) < log_acc
        return jnp.where(accept, prop, x), None

    x, _ = jax.lax.scan(body, x0, jnp.arange(n_steps))
    return x


def gibbs(
    sigma: Real[ArrayLike, ""],
    n_sites: int,
    key: PRNGKeyArray,
    *,
    n_chains: int,
    n_sweeps: int,
    mu: Real[ArrayLike, ""] = 1.0,
) -> tuple[Float[Array, " n_chains"], Float[Array, " n_chains"]]:
    r"""Explicit $N$-site simulation of the two-point bath, $y_j\in\{\pm\mu\}$, by Gibbs sampling.

    Alternates the two exact conditionals of the Hubbard–Stratonovich joint law
    (`docs/theory/meanfield.md#generative-bath`) [DERIVED]:
    $y_j\mid x \overset{\rm iid}{\sim} p(y\mid x)$, i.e. $P(y_j=+\mu) = \tfrac12(1+\tanh(\beta\mu x))$
    (the diffusion posterior of every site), and $x\mid y\sim\mathcal N(\bar y, \sigma^2/N)$.
    Only the number of $+$ sites matters, so a sweep draws one binomial. The stationary field
    law is $P_N(x)\propto p_\sigma(x)^N$; the sites' magnetisation is Curie–Weiss with $J=\mu^2$.

    **Arguments:**

    - `sigma`: VE noise level (scalar).
    - `n_sites`: $N$ (a positive integer).
    - `key`: PRNG key (chain ``i`` uses ``fold_in(key, i)``).
    - `n_chains`, `n_sweeps`: independent chains and Gibbs sweeps per chain.
    - `mu`: the two points are $\pm\mu$.

    **Returns:** ``(x, y_bar)``, the final field and site mean of every chain, each of shape
    ``(n_chains,)``.
    """
    for name, v in (("n_sites", n_sites), ("n_chains", n_chains), ("n_sweeps", n_sweeps)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    if not (isinstance(mu, (int, float)) and mu > 0):
        raise ValueError(f"mu must be a positive number, got {mu!r}.")
    sigma = _positive(sigma, "sigma")
    dtype = jnp.result_type(sigma, float)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_chains))
    return _gibbs_impl(sigma.astype(dtype), int(n_sites), keys, int(n_sweeps), float(mu))


@eqx.filter_jit
def _gibbs_impl(sigma, n_sites, keys, n_sweeps, mu):
    dtype = sigma.dtype
    beta = 1 / sigma**2

    def one_chain(key):
        def sweep(carry, i):
            x, _ = carry
            k1, k2 = jax.random.split(jax.random.fold_in(key, i))
            p_plus = 0.5 * (1 + jnp.tanh(beta * mu * x))
            n_plus = jax.random.binomial(k1, n_sites, p_plus).astype(dtype)
            y_bar = mu * (2 * n_plus - n_sites) / n_sites
            x_new = y_bar + sigma / math.sqrt(n_sites) * jax.random.normal(k2, (), dtype)
            return (x_new, y_bar), None

        x0 = (
            sigma
            / math.sqrt(n_sites)
            * jax.random.normal(jax.random.fold_in(key, _INIT_STREAM), (), dtype)
        )
        (x, y_bar), _ = jax.lax.scan(sweep, (x0, jnp.zeros((), dtype)), jnp.arange(n_sweeps))
        return x, y_bar

    return jax.vmap(one_chain)(keys)


# ----------------------------------------------------------------------------------------------
# the generative bath of any dataset: tempered Langevin, order parameter, energy, field
# ----------------------------------------------------------------------------------------------


class BathAxes(NamedTuple):
    r"""Where the order parameter of a dataset's bath lives (`docs/theory/exponents.md#order-parameter`).

    - `center`: the symmetric point $c=\mathbb E[y]$, shape ``(d,)``.
    - `basis`: orthonormal rows spanning the top eigenspace of ${\rm Cov}[y]$, shape
      ``(n, d)``: $n=1$ for a $\mathbb Z_2$ soft mode, $n=d$ for the uniform hypersphere (O($n$)).
    - `scale`: $M=\|{\rm basis}\,(x-c)\|/{\rm scale}$ ($n>1$) or ${\rm basis}_0\cdot(x-c)/{\rm scale}$
      ($n=1$, signed); the separation $\|m\|$ of :func:`gltheory.schedules.soft_mode` for $n=1$
      ($\mu\cdot x/\Lambda$ for $\pm\mu$), $\sqrt{n\lambda}$ ($=R$ for the sphere) for $n>1$.
    """

    center: Array
    basis: Array
    scale: Array


class BathMoments(NamedTuple):
    r"""Streamed moments of one run of :func:`tempered_langevin` (no trajectories are stored).

    Per-chain time averages over the ``n_steps`` recorded steps, each of shape ``(n_chains,)``
    (chains are independent replicas: standard errors come from their spread):

    - `m`: $M$ (signed for $n=1$; the norm for O($n$)), `m_abs`: $|M|$, `m2`: $M^2$, `m4`: $M^4$;
      $M$ is the site magnetisation's field estimator (`docs/theory/exponents.md#order-parameter`);
    - `q`, `q2`, `k`: the energy estimators $q=-\partial_\beta\ln p_\sigma(x)-h^2/2\beta^2$,
      $q^2$ and $k=\partial_\beta^2\ln p_\sigma(x)-h^2/\beta^3$ (`docs/theory/exponents.md#energy`);

    and

    - `trace`: the mean of $M$ over each of ``n_groups`` groups of chains (chain $j$ is in group
      $j\bmod G$) at every step, burn-in included, shape ``(G, n_burn + n_steps)``: the
      relaxation of the ensemble (for :func:`relaxation_time`);
    - `acceptance`: the Metropolis acceptance rate (1 without Metropolis);
    - `n_sites`, `snr`, `h0`, `dtau`: $N$, $\beta={\rm SNR}$, the reduced field, the time step;
    - `dim`, `n_components`, `scale`: $d$, $n$ and the scale of :class:`BathAxes`.
    """

    m: Array
    m_abs: Array
    m2: Array
    m4: Array
    q: Array
    q2: Array
    k: Array
    trace: Array
    acceptance: Array
    n_sites: Array
    snr: Array
    h0: Array
    dtau: Array
    dim: int
    n_components: int
    scale: Array


class Estimate(NamedTuple):
    """A measured value and its standard error (floats)."""

    value: float
    stderr: float


class BathStatistics(NamedTuple):
    r"""Equilibrium statistics of a bath run with standard errors (:func:`bath_statistics`).

    - `magnetization`: $\langle M\rangle$ (site magnetisation, signed for $n=1$);
    - `order_parameter`: $\langle|M|\rangle$;
    - `m2`: $\langle M^2\rangle$ of the field estimator; `binder`:
      $U_4=1-\langle M^4\rangle/3\langle M^2\rangle^2$ of the field estimator;
    - `susceptibility`: $\chi=N\,{\rm Var}(\bar M)=\partial\langle M\rangle/\partial h_0$ of the
      site magnetisation, $N(\langle M^2\rangle-\langle M\rangle^2)-n/(\beta s^2)$ (for O($n$):
      per component, $N\langle|M|^2\rangle/n - 1/(\beta s^2)$, the disordered phase);
    - `susceptibility_abs`: $N(\langle M^2\rangle-\langle|M|\rangle^2)-1/(\beta s^2)$, the
      in-well (ordered-phase, longitudinal) susceptibility: one component's noise is removed,
      the one along $M$ (for O($n$) the transverse noise shifts $|M|$ only at order $1/(NM)$);
    - `energy`: $\langle\mathcal H\rangle/N$; `specific_heat`: $C/N=\beta^2{\rm Var}(\mathcal H)/N$.

    (`docs/theory/exponents.md#estimators`.)
    """

    magnetization: Estimate
    order_parameter: Estimate
    m2: Estimate
    binder: Estimate
    susceptibility: Estimate
    susceptibility_abs: Estimate
    energy: Estimate
    specific_heat: Estimate


class BathThermo(NamedTuple):
    r"""Exact finite-$N$ energy and specific heat of a one-dimensional bath (:func:`field_thermo`).

    - `energy`: $\langle\mathcal H\rangle/N$; `specific_heat`: $C/N=\beta^2{\rm Var}(\mathcal H)/N$;
    - `m2`: $\langle (x-c)^2\rangle$ of the field (a cross-check with :func:`field`).
    """

    energy: Array
    specific_heat: Array
    m2: Array


class LandauJump(NamedTuple):
    r"""The Landau specific-heat jump of a dataset's bath (:func:`landau_jump`).

    - `snr_c`: the critical $\beta_c={\rm SNR}(t_c^S)$;
    - `v`, `dv`: the variance $v(\beta)$ of the soft-mode projection under the tilted site law
      $p_0(y)e^{-\beta\|y\|^2/2}$ at $\beta_c$ ($\beta_cv=1$) and $dv/d\beta$;
    - `kappa4`: its fourth cumulant (negative at a continuous transition);
    - `jump`: $\Delta C/N = 3\,(v+\beta_c\,dv/d\beta)^2/|\kappa_4|$; $3v^2/|\kappa_4|$ for data
      of constant norm: $\tfrac32$ for $\pm\mu$, $(n+2)/2$ for the uniform $n$-sphere.
    """

    snr_c: float
    v: float
    dv: float
    kappa4: float
    jump: float


def _unit_sign(v):
    """Orient a vector so that its largest-magnitude entry is positive (a fixed convention)."""
    i = jnp.argmax(jnp.abs(v))
    return v * jnp.where(v[i] < 0, -1.0, 1.0)


def order_parameter_axes(data: AbstractData, *, rtol: float = 1e-6) -> BathAxes:
    r"""The soft mode(s) of a dataset and the scale of its order parameter.

    The top eigenspace of ${\rm Cov}[y]$ (eigenvalues within a relative ``rtol`` of the top one)
    is where the symmetric point of the bath destabilises first
    (`docs/theory/exponents.md#order-parameter`): one direction (a $\mathbb Z_2$ order parameter,
    :func:`gltheory.schedules.soft_mode`) or $n>1$ degenerate ones (O($n$), the hypersphere).

    **Arguments:**

    - `data`: a gltheory dataset (concrete).
    - `rtol`: relative tolerance that counts eigenvalues as degenerate with the top one.

    **Returns:** a :class:`BathAxes`.
    """
    check_instance(data, AbstractData, "data", DATASET)
    if not (isinstance(rtol, float) and 0 < rtol < 1):
        raise ValueError(f"rtol must be a float in (0, 1), got {rtol!r}.")
    w, v, center, u, m_norm = _axes_impl(data)
    top = float(w[-1])
    if not top > 0:
        raise ValueError("data has zero covariance: no soft mode, no order parameter.")
    n = int(np.sum(np.asarray(w) >= top * (1 - rtol)))
    if n == 1:
        scale = jnp.where(m_norm > 0, m_norm, jnp.sqrt(w[-1]))
        return BathAxes(center=center, basis=u[None, :], scale=scale)
    basis = jax.vmap(_unit_sign)(v[:, -n:][:, ::-1].T)
    return BathAxes(center=center, basis=basis, scale=jnp.sqrt(n * w[-1]))


@eqx.filter_jit
def _axes_impl(data):
    w, v = jnp.linalg.eigh(data.covariance())
    u, m_norm, _ = soft_mode(data)
    return w, v, jnp.asarray(data.mean()).reshape(-1), _unit_sign(u), m_norm


def critical_snr(data: AbstractData, process: AbstractProcess | None = None) -> float:
    r"""The critical inverse temperature $\beta_c={\rm SNR}(t_c^S)$ of a dataset's bath.

    The bath at frozen $t$ depends on the process only through $\beta={\rm SNR}(t)$
    (`docs/theory/exponents.md#tempered-bath`); $t_c^S$ is
    :func:`gltheory.meanfield.critical_times`'s score criterion. Data without a transition
    (Gaussian data: a linear score, no new fixed point) raise ``ValueError`` instead of
    returning a number.

    **Arguments:**

    - `data`: a gltheory dataset.
    - `process`: the process used to locate $t_c^S$ (default :class:`gltheory.OU`); the
      answer in SNR does not depend on it.

    **Returns:** $\beta_c$ as a float.
    """
    refuse_traced("critical_snr", (data, process))
    check_instance(data, AbstractData, "data", DATASET)
    process = OU() if process is None else process
    check_instance(process, AbstractProcess, "process", PROCESS)
    tc = critical_times(data, process).t_score
    if tc is None:
        raise ValueError(
            "data has no transition: critical_times finds no score criterion (a linear score, "
            "e.g. Gaussian data, has no symmetry breaking), so the bath has no critical point "
            "and no exponents."
        )
    return float(process.snr(tc))


def reduced_distance(
    data: AbstractData, snr: Real[ArrayLike, "*s"], process: AbstractProcess | None = None
) -> Float[Array, "*s"]:
    r"""$\varepsilon=\beta/\beta_c-1$ with $\beta={\rm SNR}$: $>0$ ordered, $<0$ disordered.

    For two deltas $\varepsilon=b-1$, $b={\rm SNR}\,\Lambda$ (`docs/theory/meanfield.md#curie-weiss`).
    Raises ``ValueError`` for data without a transition (:func:`critical_snr`).

    **Arguments:**

    - `data`: a gltheory dataset.
    - `snr`: signal-to-noise ratios $\beta>0$.
    - `process`: passed to :func:`critical_snr`.

    **Returns:** $\varepsilon$, shaped like ``snr``.
    """
    snr = _positive(snr, "snr")
    return snr / critical_snr(data, process) - 1


def curie_weiss_spins(n_spins: int, coupling: Real[ArrayLike, ""]) -> DeltaMixture:
    r"""Curie–Weiss spins as a dataset: $p_0(s)\propto e^{\frac{J}{2n}(\sum_is_i)^2}$ on $\{\pm1\}^n$.

    All $2^n$ configurations with their Boltzmann weights (exact enumeration; $n\le16$). For
    $J<1$ the data are paramagnetic and the bath's soft mode is the uniform direction
    (`docs/theory/critical-times.md#general-data`).

    **Arguments:**

    - `n_spins`: $n$, an integer in $[1, 16]$.
    - `coupling`: $J$ (the data's own $\beta_0J$).

    **Returns:** a :class:`gltheory.DeltaMixture` with ``2**n_spins`` points.
    """
    refuse_traced("curie_weiss_spins", coupling)
    if isinstance(n_spins, bool) or not isinstance(n_spins, (int, np.integer)):
        raise ValueError(f"n_spins must be an integer in [1, 16], got {n_spins!r}.")
    if not 1 <= n_spins <= 16:
        raise ValueError(f"n_spins must be an integer in [1, 16], got {n_spins!r}.")
    if (
        isinstance(coupling, (str, bytes, bool))
        or np.ndim(coupling) != 0
        or not np.issubdtype(np.asarray(coupling).dtype, np.number)
        or not math.isfinite(float(coupling))
    ):
        raise ValueError(f"coupling must be a finite number, got {coupling!r}.")
    coupling = float(coupling)
    bits = (np.arange(2**n_spins)[:, None] >> np.arange(n_spins)) & 1
    spins = 2.0 * bits - 1.0
    lw = coupling / (2 * n_spins) * spins.sum(1) ** 2
    w = np.exp(lw - lw.max())
    return DeltaMixture(jnp.asarray(spins), jnp.asarray(w / w.sum()))


def with_negatives(data: AbstractData) -> DeltaMixture | LatticeImages:
    r"""A finite set together with its negatives, $\{y_k\}\cup\{-y_k\}$, each with half the weight.

    Random binary images are not $\pm$-symmetric; with their negatives the data mean is 0 and
    the bath has a $\mathbb Z_2$ symmetry (`docs/theory/exponents.md#families`).

    **Arguments:**

    - `data`: a :class:`gltheory.DeltaMixture` or :class:`gltheory.LatticeImages`.

    **Returns:** the same type with twice the points.
    """
    if isinstance(data, LatticeImages):
        pts, cls = data.images, LatticeImages
    elif isinstance(data, DeltaMixture):
        pts, cls = data.points, DeltaMixture
    else:
        raise ValueError(
            f"data must be a DeltaMixture or LatticeImages, got {type(data).__name__}."
        )
    w = jnp.concatenate([data.weights, data.weights]) / 2
    return cls(jnp.concatenate([pts, -pts]), w)


def _check_axes(data, axes) -> BathAxes:
    if axes is None:
        return order_parameter_axes(data)
    if not isinstance(axes, BathAxes):
        raise ValueError(
            f"axes must be a BathAxes (order_parameter_axes), got {type(axes).__name__}."
        )
    if axes.basis.ndim != 2 or axes.basis.shape[1] != data.dim:
        raise ValueError(
            f"axes.basis must have shape (n, {data.dim}) for this dataset, got {axes.basis.shape}."
        )
    return axes


def _log_p(data, x, beta):
    """$\\ln p_\\sigma(x)$ at $\\sigma^2 = 1/\\beta$, batched over the leading axes of ``x``."""
    return data.log_marginal(x, jnp.ones((), beta.dtype), 1 / beta)


def _energy_terms(data, x, beta, h):
    r"""Per-site energy estimators ``(q, k)`` of `docs/theory/exponents.md#energy`, and
    $\ln p_\sigma(x)$ (the primal of the same nested JVP: one quadrature pass for all three)."""
    one = jnp.ones((), beta.dtype)
    f = lambda bb: _log_p(data, x, bb)
    df = lambda bb: jax.jvp(f, (bb,), (one,))
    (log_p, d1), (_, d2) = jax.jvp(df, (beta,), (one,))
    return -d1 - h**2 / (2 * beta**2), d2 - h**2 / beta**3, log_p


def tempered_langevin(
    data: AbstractData,
    process: AbstractProcess,
    t: Real[ArrayLike, ""],
    n_sites: Real[ArrayLike, ""],
    key: PRNGKeyArray,
    *,
    n_chains: int,
    n_steps: int,
    n_burn: int = 0,
    step: float | int = 0.05,
    h0: float | int = 0.0,
    m0: float | int = 0.0,
    axes: BathAxes | None = None,
    metropolis: bool = True,
    n_groups: int = 16,
) -> BathMoments:
    r"""The generative bath of any dataset: tempered Langevin at frozen $t$, streamed moments.

    $N$ replicas of the diffusion coupled through their mean have the field law
    $P_N(x)\propto p_t(x)^N$, sampled by $dx=s(x,t)\,d\tau+\sqrt{2/N}\,dW$
    (`docs/theory/exponents.md#tempered-bath`). The run uses the rescaled field
    $\tilde x=x/a_t$ (law $\propto p_\sigma(\tilde x)^N$, $\sigma^2=1/{\rm SNR}(t)$; the same
    dynamics up to the clock $d\tilde\tau=d\tau/a_t^2$, so OU, VP and VE at equal SNR give the
    same numbers), with the exact score $\beta(m(\tilde x)-\tilde x)$ and
    $d\tau=\mathtt{step}/\beta$. A reduced field $h_0$ (a class-weight imbalance: for $\pm\mu$
    with weight $w$ on $+\mu$, $h_0=\tfrac12\ln\frac w{1-w}$) tilts the sites by
    $e^{h_0M(y)}$, which adds $h\,u\cdot\tilde x$, $h=h_0/s$, to the action per site in the shifted
    field (`docs/theory/exponents.md#field`). Nothing but per-chain sums and group means of $M$
    per step is kept.

    **Arguments:**

    - `data`: a gltheory dataset with a closed-form score.
    - `process`, `t`: the forward process and the frozen time (only ${\rm SNR}(t)$ matters).
    - `n_sites`: $N>0$ (the temperature is $1/N$).
    - `key`: PRNG key (chain $j$ uses ``fold_in(key, j)``, step $i$ ``fold_in(., i)``).
    - `n_chains`, `n_steps`: independent chains and recorded steps per chain.
    - `n_burn`: steps discarded before recording (the trace keeps them).
    - `step`: $\beta\,d\tau$ in $(0, 1]$.
    - `h0`: the reduced field along the first soft direction.
    - `m0`: every chain starts at $M=m_0$ along the first soft direction.
    - `axes`: the order parameter's :class:`BathAxes` (default :func:`order_parameter_axes`).
    - `metropolis`: Metropolis–Hastings correction of the recorded steps (MALA: the exact
      stationary law). The burn-in steps are unadjusted: far from equilibrium, where the drift
      dominates the noise $\sqrt{2d\tau/N}$, MALA at large $N$ rejects almost every move. For a
      relaxation measurement (``n_burn=0``, a displaced start) use ``metropolis=False`` and a
      small ``step`` (the Euler scheme's rate error is $O(\mathtt{step}\,|\varepsilon|)$).
    - `n_groups`: groups of chains in the trace.

    **Returns:** a :class:`BathMoments`.
    """
    check_instance(data, AbstractData, "data", DATASET)
    check_instance(process, AbstractProcess, "process", PROCESS)
    for name, v, lo in (("n_chains", n_chains, 2), ("n_steps", n_steps, 1), ("n_burn", n_burn, 0)):
        check_positive_int(v, name, lo)
    check_positive_int(n_groups, "n_groups", 1)
    if not (isinstance(step, (int, float)) and 0 < step <= 1):
        raise ValueError(f"step must be a number in (0, 1], got {step!r}.")
    for name, v in (("h0", h0), ("m0", m0)):
        if not (isinstance(v, (int, float)) and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number, got {v!r}.")
    t = check_time(t, process.T, "t")
    if t.ndim != 0:
        raise ValueError(f"t must be a scalar time, got shape {tuple(t.shape)}.")
    n_sites = _positive(n_sites, "n_sites")
    axes = _check_axes(data, axes)
    dtype = jnp.result_type(n_sites, process.snr(t), float)
    beta = jnp.asarray(process.snr(t), dtype)
    n_sites = n_sites.astype(dtype)
    groups = min(int(n_groups), int(n_chains))
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_chains))
    u, scale = axes.basis[0].astype(dtype), axes.scale.astype(dtype)
    h = jnp.asarray(h0, dtype) / scale
    x0 = axes.center.astype(dtype) + u * (scale * m0 + h / beta)
    x0 = jnp.broadcast_to(x0, (int(n_chains), data.dim))
    axes = BathAxes(*(jnp.asarray(a, dtype) for a in axes))
    out = _tempered_impl(
        data,
        beta,
        n_sites,
        h,
        axes,
        keys,
        x0,
        int(n_burn),
        int(n_steps),
        float(step),
        bool(metropolis),
        groups,
    )
    return out._replace(
        h0=jnp.asarray(h0, dtype), dim=data.dim, n_components=int(axes.basis.shape[0])
    )


@eqx.filter_jit
@trusted
def _tempered_impl(
    data, beta, n_sites, h, axes, keys, x0, n_burn, n_steps, step, metropolis, groups
):
    dtype = x0.dtype
    n_chains = x0.shape[0]
    c, basis, scale = axes.center, axes.basis, axes.scale
    u = basis[0]
    dtau = step / beta
    one = jnp.ones((), dtype)
    shift = jnp.zeros((basis.shape[0],), dtype).at[0].set(h / (beta * scale))
    onehot = (jnp.arange(n_chains)[None, :] % groups == jnp.arange(groups)[:, None]).astype(dtype)
    onehot = onehot / onehot.sum(1, keepdims=True)

    def drift(x):
        return beta * (data.posterior_mean(x, one, 1 / beta) - x) + h * u

    def observe(x):
        # the observables, the drift and the log target at x: the score's quadrature is
        # evaluated once per step (at the proposal) and carried, so a MALA step costs one
        # drift and one nested JVP of ln p instead of two drifts, two ln p and one JVP (about
        # 30 % less run time for the hypersphere's quadrature; the same numbers, same draws)
        proj = (x - c) @ basis.T / scale - shift
        mag = proj[:, 0] if basis.shape[0] == 1 else jnp.linalg.norm(proj, axis=-1)
        q, k, log_p = _energy_terms(data, x, beta, h)
        obs = jnp.stack([mag, jnp.abs(mag), mag**2, mag**4, q, q**2, k], axis=-1)
        return mag, obs, drift(x), n_sites * (log_p + h * (x @ u))

    def body(carry, i):
        x, gx, lt, obs, sums, acc = carry
        # one normal draw per chain and step; its last entry gives the Metropolis uniform
        # (Phi(z) is uniform), so each step costs a single threefry call per chain
        zz = jax.vmap(
            lambda kk: jax.random.normal(jax.random.fold_in(kk, i), (x.shape[-1] + 1,), dtype)
        )(keys)
        z = zz[:, :-1]
        prop = x + dtau * gx + jnp.sqrt(2 * dtau / n_sites) * z
        _, obs_p, gp, lt_p = observe(prop)
        if metropolis:
            log_q_fwd = -n_sites * jnp.sum((prop - x - dtau * gx) ** 2, -1) / (4 * dtau)
            log_q_bwd = -n_sites * jnp.sum((x - prop - dtau * gp) ** 2, -1) / (4 * dtau)
            log_acc = lt_p - lt + log_q_bwd - log_q_fwd
            uu = jax.scipy.special.ndtr(zz[:, -1])
            # burn-in unadjusted: far from equilibrium (drift >> noise) MALA rejects most moves
            # at large N; the recorded steps are Metropolis-corrected
            accept = (jnp.log(uu) < log_acc) | (i < n_burn)
            keep = lambda new, old: jnp.where(
                accept.reshape((-1,) + (1,) * (new.ndim - 1)), new, old
            )
            x, gx, lt, obs = keep(prop, x), keep(gp, gx), keep(lt_p, lt), keep(obs_p, obs)
            acc = acc + jnp.where(i >= n_burn, accept.astype(dtype), 0.0)
        else:
            x, gx, lt, obs = prop, gp, lt_p, obs_p
            acc = acc + jnp.where(i >= n_burn, 1.0, 0.0)
        sums = sums + jnp.where(i >= n_burn, obs, 0.0)
        return (x, gx, lt, obs, sums, acc), onehot @ obs[:, 0]

    _, obs0, g0, lt0 = observe(x0)
    zeros = jnp.zeros((n_chains,), dtype)
    init = (x0, g0, lt0, obs0, jnp.zeros((n_chains, 7), dtype), zeros)
    (*_, sums, acc), trace = jax.lax.scan(body, init, jnp.arange(n_burn + n_steps))
    mean = sums / n_steps
    return BathMoments(
        m=mean[:, 0],
        m_abs=mean[:, 1],
        m2=mean[:, 2],
        m4=mean[:, 3],
        q=mean[:, 4],
        q2=mean[:, 5],
        k=mean[:, 6],
        trace=trace.T,
        acceptance=acc.mean() / n_steps,
        n_sites=n_sites,
        snr=beta,
        h0=jnp.zeros((), dtype),
        dtau=jnp.asarray(dtau, dtype),
        dim=0,
        n_components=0,
        scale=scale,
    )


def _jackknife(columns: np.ndarray, stat) -> Estimate:
    """Jackknife over chains of ``stat(means)``, ``columns`` shape ``(n_chains, k)``."""
    n = columns.shape[0]
    total = columns.sum(0)
    full = stat(total / n)
    loo = (total[None, :] - columns) / (n - 1)
    vals = stat(loo.T)
    se = math.sqrt((n - 1) / n * float(np.sum((vals - vals.mean()) ** 2)))
    return Estimate(float(full), se)


def bath_statistics(moments: BathMoments) -> BathStatistics:
    r"""Order parameter, Binder cumulant, susceptibilities, energy and specific heat, with errors.

    Estimators of `docs/theory/exponents.md#estimators`; standard errors by the jackknife over
    chains (independent replicas; each chain's time average may be autocorrelated, which the
    spread between chains includes). The chains must be in equilibrium (enough ``n_burn``).

    **Arguments:**

    - `moments`: the output of :func:`tempered_langevin`.

    **Returns:** a :class:`BathStatistics` of :class:`Estimate` s.
    """
    if not isinstance(moments, BathMoments):
        raise ValueError(f"moments must be a BathMoments, got {type(moments).__name__}.")
    cols = np.stack(
        [
            np.asarray(getattr(moments, f), np.float64)
            for f in ("m", "m_abs", "m2", "m4", "q", "q2", "k")
        ],
        axis=-1,
    )
    n = float(moments.n_sites)
    beta = float(moments.snr)
    d, nc = moments.dim, moments.n_components
    s2 = float(moments.scale) ** 2
    noise = 1.0 / (beta * s2)  # Hubbard-Stratonovich noise of one component, times N
    if nc == 1:
        chi = lambda a: n * (a[2] - a[0] ** 2) - noise
    else:
        chi = lambda a: n * a[2] / nc - noise
    const_e = 0.5 * d * (1 - 1 / n) / beta
    const_c = 0.5 * d * (1 - 1 / n) / beta**2
    return BathStatistics(
        magnetization=_jackknife(cols, lambda a: a[0]),
        order_parameter=_jackknife(cols, lambda a: a[1]),
        m2=_jackknife(cols, lambda a: a[2]),
        binder=_jackknife(cols, lambda a: 1 - a[3] / (3 * a[2] ** 2)),
        susceptibility=_jackknife(cols, chi),
        susceptibility_abs=_jackknife(cols, lambda a: n * (a[2] - a[1] ** 2) - noise),
        energy=_jackknife(cols, lambda a: const_e + a[4]),
        specific_heat=_jackknife(
            cols, lambda a: beta**2 * (n * (a[5] - a[4] ** 2) + const_c + a[6])
        ),
    )


def relaxation_time(
    moments: BathMoments,
    *,
    m_eq: float | int | None = None,
    window: tuple[float, float] = (0.1, 0.8),
) -> Estimate:
    r"""Relaxation time of the ensemble's order parameter, in units of the bath time $\tau$.

    The normalised decay $f(\tau)=(\langle M(\tau)\rangle-M_{\rm eq})/(M(0)-M_{\rm eq})$ of the
    run's trace is fitted by $\ln f=-\tau/\tau_r+c$ over the steps from the first one with
    $f<$ ``window[1]`` to the last one before $f<$ ``window[0]`` (the rule of
    `docs/theory/exponents.md#relaxation`); the standard error is the jackknife over the
    trace's groups of chains (the fit window fixed). Start the run off equilibrium along the
    soft mode (``m0``) and record from step 0 (``n_burn=0``).

    **Arguments:**

    - `moments`: the output of :func:`tempered_langevin`.
    - `m_eq`: the equilibrium value (default: the mean of the trace's last half).
    - `window`: ``(lo, hi)`` with $0<{\rm lo}<{\rm hi}<1$.

    **Returns:** $\tau_r$ as an :class:`Estimate`.
    """
    if not isinstance(moments, BathMoments):
        raise ValueError(f"moments must be a BathMoments, got {type(moments).__name__}.")
    lo, hi = window
    if not 0 < lo < hi < 1:
        raise ValueError(f"window must be (lo, hi) with 0 < lo < hi < 1, got {window!r}.")
    tr = np.asarray(moments.trace, np.float64)
    g, n = tr.shape
    if g < 2:
        raise ValueError("relaxation_time needs a trace of at least 2 groups of chains (n_groups).")
    dtau = float(moments.dtau)

    def curve(rows):
        mean = rows.mean(0)
        eq = float(np.mean(mean[n // 2 :])) if m_eq is None else float(m_eq)
        return (mean - eq) / (mean[0] - eq)

    f = curve(tr)
    below_hi = np.flatnonzero(f < hi)
    below_lo = np.flatnonzero(f < lo)
    if below_hi.size == 0 or below_lo.size == 0:
        raise ValueError(
            f"the trace does not decay through window={window!r} (run longer or start further "
            "from equilibrium)."
        )
    i0, i1 = int(below_hi[0]), int(below_lo[0])
    if i1 - i0 < 3:
        raise ValueError(
            f"the decay crosses window={window!r} in {i1 - i0} steps: use a smaller step."
        )
    tau = np.arange(n, dtype=np.float64) * dtau

    def fit(rows):
        ff = curve(rows)[i0:i1]
        ok = ff > 0
        slope = np.polyfit(tau[i0:i1][ok], np.log(ff[ok]), 1)[0]
        return -1.0 / slope

    full = fit(tr)
    loo = np.array([fit(np.delete(tr, j, axis=0)) for j in range(g)])
    se = math.sqrt((g - 1) / g * float(np.sum((loo - loo.mean()) ** 2)))
    return Estimate(float(full), se)


# ----------------------------------------------------------------------------------------------
# exact thermodynamics of the one-dimensional bath; the Landau jump
# ----------------------------------------------------------------------------------------------


def field_thermo(
    data: AbstractData,
    snr: Real[ArrayLike, ""],
    n_sites: Real[ArrayLike, ""],
    *,
    n_grid: int = 4097,
) -> BathThermo:
    r"""Exact $\langle\mathcal H\rangle/N$ and $C/N$ of a one-dimensional bath by quadrature.

    The energy estimators of `docs/theory/exponents.md#energy` averaged over the exact field
    law of :func:`field` ($h_0=0$): $\langle\mathcal H\rangle/N=\tfrac12(1-\tfrac1N)/\beta+\langle q\rangle$,
    $C/N=\beta^2[N{\rm Var}(q)+\tfrac12(1-\tfrac1N)/\beta^2+\langle k\rangle]$, equal to the site
    model's $\beta^2{\rm Var}(\mathcal H)/N$ at every $N$ (for $\pm1$: the Curie–Weiss model).
    ``snr`` and ``n_sites`` are traced (``jax.vmap`` works).

    **Arguments:**

    - `data`: a one-dimensional dataset.
    - `snr`: $\beta = 1/\sigma^2$ (scalar).
    - `n_sites`: $N$ (scalar).
    - `n_grid`: quadrature nodes (see :func:`field`).

    **Returns:** a :class:`BathThermo`.
    """
    _check_data_1d(data)
    n_grid = _check_n_grid(n_grid)
    beta = _positive(snr, "snr")
    n_sites = _positive(n_sites, "n_sites")
    dtype = jnp.result_type(beta, n_sites, float)
    return _thermo_impl(data, beta.astype(dtype), n_sites.astype(dtype), n_grid)


@eqx.filter_jit
@trusted
def _thermo_impl(data, beta, n_sites, n_grid):
    sigma = 1 / jnp.sqrt(beta)
    c = _data_scale(data, beta.dtype)[0]
    lo, hi = _default_bounds(data, sigma, beta.dtype)
    f = _field_impl(data, sigma, n_sites, c, lo, hi, n_grid, 80.0)
    p = jnp.exp(f.log_density + _trapezoid_log_weights(f.grid))
    q, k, _ = _energy_terms(data, f.grid[:, None], beta, jnp.zeros((), beta.dtype))
    mq = jnp.sum(p * q)
    var_q = jnp.sum(p * (q - mq) ** 2)
    const = 0.5 * (1 - 1 / n_sites)
    energy = const / beta + mq
    heat = beta**2 * (n_sites * var_q + const / beta**2 + jnp.sum(p * k))
    return BathThermo(energy=energy, specific_heat=heat, m2=f.m2)


def landau_jump(
    data: AbstractData,
    process: AbstractProcess | None = None,
    *,
    snr_c: float | int | None = None,
) -> LandauJump:
    r"""The specific-heat jump of a dataset's bath predicted by its own Landau expansion.

    Along the soft mode $u$ the per-site free energy is $-\beta\ell^2/2+\varphi(\ell u,\beta)$ with
    $\varphi(x,\beta)=\ln\mathbb E_0[e^{\beta x\cdot y-\beta\|y\|^2/2}]$, whose $\ell$-expansion has the
    cumulants $v(\beta)$, $\kappa_4(\beta)$ of $u\cdot y$ under the tilted law
    $p_0(y)e^{-\beta\|y\|^2/2}$. Minimising the quartic gives
    $\Delta C/N=3(v+\beta_c v')^2/|\kappa_4|$ at $\beta_c v(\beta_c)=1$
    (`docs/theory/exponents.md#landau-jump`); the derivatives come from nested autodiff of
    ``data.log_marginal``. Data without a transition raise ``ValueError``
    (:func:`critical_snr`); so do data whose $\kappa_4\ge0$ (no continuous transition).

    **Arguments:**

    - `data`: a $\pm$-symmetric gltheory dataset (mean at the symmetric point).
    - `process`: passed to :func:`critical_snr`.
    - `snr_c`: $\beta_c$ when it is known in closed form (skips :func:`critical_snr`; checked:
      $|\beta_cv(\beta_c)-1|<10^{-6}$, else ``ValueError``).

    **Returns:** a :class:`LandauJump`.
    """
    refuse_traced("landau_jump", (data, process, snr_c))
    check_instance(data, AbstractData, "data", DATASET)
    if snr_c is None:
        beta_c = critical_snr(data, process)
    elif isinstance(snr_c, (int, float)) and math.isfinite(snr_c) and snr_c > 0:
        beta_c = float(snr_c)
    else:
        raise ValueError(f"snr_c must be a positive finite number or None, got {snr_c!r}.")
    axes = order_parameter_axes(data)
    dtype = jnp.result_type(float)
    u = axes.basis[0].astype(dtype)
    c = axes.center.astype(dtype)
    v, dv, k4 = (float(a) for a in _landau_impl(data, jnp.asarray(beta_c, dtype), u, c))
    if not k4 < -1e-12 * v**2:
        raise ValueError(
            f"the soft mode's fourth cumulant is {k4:.3g} >= 0: no transition of Landau type "
            "(Gaussian data: none at all), no specific-heat jump."
        )
    if snr_c is not None and not abs(beta_c * v - 1) < 1e-6:
        raise ValueError(
            f"snr_c={snr_c!r} is not the critical point of this dataset: snr_c * v = "
            f"{beta_c * v:.8g}, not 1 (leave snr_c=None to locate it with critical_times)."
        )
    return LandauJump(
        snr_c=beta_c, v=v, dv=dv, kappa4=k4, jump=3 * (v + beta_c * dv) ** 2 / abs(k4)
    )


@eqx.filter_jit
@trusted
def _landau_impl(data, beta_c, u, c):
    d = u.shape[0]

    def phi(ell, beta):
        x = c + ell * u
        return (
            _log_p(data, x, beta)
            + 0.5 * beta * jnp.sum(x**2)
            - 0.5 * d * jnp.log(beta / (2 * jnp.pi))
        )

    d2 = jax.grad(jax.grad(phi))
    d4 = jax.grad(jax.grad(d2))
    zero = jnp.zeros((), beta_c.dtype)
    v_of = lambda b: d2(zero, b) / b**2
    v, dv = jax.jvp(v_of, (beta_c,), (jnp.ones_like(beta_c),))
    return v, dv, d4(zero, beta_c) / beta_c**4


# ----------------------------------------------------------------------------------------------
# exponent fits with a stated range rule
# ----------------------------------------------------------------------------------------------

FSS_MIN = 10.0
r"""Smallest scaling variable $|\varepsilon|N^{1/2}$ a fit uses (finite-size rounding $\lesssim1\%$)."""
EPS_MAX = 0.1
r"""Largest $|\varepsilon|$ a fit uses (the leading analytic correction is fitted)."""
FIELD_FSS_MIN = 100.0
r"""Smallest $h_0N^{3/4}$ the $\delta$ fit uses at the transition."""
FIELD_MAX = 1e-2
r"""Largest $h_0$ the $\delta$ fit uses (the $h_0^{2/3}$ correction is fitted)."""


def fit_scaling(
    x: Real[ArrayLike, " n"],
    y: Real[ArrayLike, " n"],
    yerr: Real[ArrayLike, " n"],
    *,
    omega: float | None = None,
    x_range: tuple[float, float] | None = None,
) -> ExponentFit:
    r"""Weighted fit of $\ln|y|=\ln A+p\ln x\;[+\,c\,x^\omega]$: a power law with its leading correction.

    Weights $1/\sigma_{\ln y}^2$ with $\sigma_{\ln y}=\sigma_y/|y|$; the standard error of $p$ is the
    fit covariance's, multiplied by $\max(1,\sqrt{\chi^2/{\rm dof}})$ when the residuals exceed
    the errors (`docs/theory/exponents.md#fitting-rule`). Without ``omega`` it is
    :func:`gltheory.meanfield.fit_exponent` with known errors.

    **Arguments:**

    - `x`, `y`, `yerr`: points ($x>0$, $y\ne0$, $\sigma_y>0$), 1-D of one length.
    - `omega`: exponent of the correction term (``None``: no correction).
    - `x_range`: ``(lo, hi)``, inclusive; points outside are dropped.

    **Returns:** an :class:`gltheory.meanfield.ExponentFit` (``slope`` $=p$).
    """
    xa, ya, ea = (
        np.asarray(as_float_array(a, n), np.float64)
        for a, n in ((x, "x"), (y, "y"), (yerr, "yerr"))
    )
    if xa.ndim != 1 or xa.shape != ya.shape or xa.shape != ea.shape:
        raise ValueError(
            f"x, y and yerr must be 1-D arrays of one length, got {xa.shape}, {ya.shape}, {ea.shape}."
        )
    keep = np.ones(xa.shape, bool)
    if x_range is not None:
        if len(x_range) != 2 or not x_range[0] < x_range[1]:
            raise ValueError(f"x_range must be (lo, hi) with lo < hi, got {x_range!r}.")
        keep = (xa >= x_range[0]) & (xa <= x_range[1])
    xa, ya, ea = xa[keep], ya[keep], ea[keep]
    bad = ~(np.isfinite(xa) & (xa > 0) & np.isfinite(ya) & (ya != 0) & np.isfinite(ea) & (ea > 0))
    if bad.any():
        raise ValueError(
            f"fit_scaling: x must be > 0, y nonzero and yerr > 0 (all finite); bad at x = "
            f"{xa[bad][:8].tolist()}."
        )
    n_par = 2 if omega is None else 3
    if xa.size < n_par + 1 or np.unique(xa).size < n_par:
        raise ValueError(
            f"fit_scaling needs at least {n_par + 1} points with distinct x in the range, got "
            f"{xa.size} (x = {xa.tolist()})."
        )
    cols = [np.ones_like(xa), np.log(xa)] + ([] if omega is None else [xa**omega])
    a = np.stack(cols, axis=-1)
    w = (np.abs(ya) / ea) ** 2
    ly = np.log(np.abs(ya))
    aw = a * w[:, None]
    cov = np.linalg.inv(a.T @ aw)
    coef = cov @ (aw.T @ ly)
    resid = ly - a @ coef
    dof = xa.size - n_par
    birge = max(1.0, math.sqrt(float(np.sum(w * resid**2)) / dof))
    return ExponentFit(
        slope=jnp.asarray(coef[1]),
        stderr=jnp.asarray(math.sqrt(cov[1, 1]) * birge),
        intercept=jnp.asarray(coef[0]),
        x_range=(jnp.asarray(xa.min()), jnp.asarray(xa.max())),
        n=jnp.asarray(xa.size),
    )


def _eps_window(n_sites) -> tuple[float, float]:
    n = float(n_sites)
    if not n > 0:
        raise ValueError(f"n_sites must be positive, got {n_sites!r}.")
    lo = FSS_MIN / math.sqrt(n)
    if not lo < EPS_MAX:
        raise ValueError(
            f"n_sites={n:g} is too small for an exponent fit: the rule |eps| N^(1/2) >= "
            f"{FSS_MIN:g}, |eps| <= {EPS_MAX:g} leaves no range (needs N > {(FSS_MIN / EPS_MAX) ** 2:g})."
        )
    return lo, EPS_MAX


def fit_exponent_rule(
    kind: str,
    x: Real[ArrayLike, " n"],
    y: Real[ArrayLike, " n"],
    yerr: Real[ArrayLike, " n"],
    n_sites: float | int,
) -> ExponentFit:
    r"""One critical exponent of the bath from measured points, with the range rule of the docs.

    `docs/theory/exponents.md#fitting-rule`: $|\varepsilon|\in[10N^{-1/2},0.1]$ with a fitted
    correction $c|\varepsilon|$ for ``"beta"`` ($\langle|M|\rangle\propto\varepsilon^\beta$, $\varepsilon>0$),
    ``"gamma"`` ($\chi\propto|\varepsilon|^{-\gamma}$) and ``"znu"`` ($\tau_r\propto|\varepsilon|^{-z\nu}$);
    $h_0\in[100N^{-3/4},10^{-2}]$ with a correction $c\,h_0^{2/3}$ for ``"delta"``
    ($M\propto h_0^{1/\delta}$ at $\varepsilon=0$; the slope's error is converted to $\delta$).

    **Arguments:**

    - `kind`: ``"beta"``, ``"gamma"``, ``"delta"`` or ``"znu"``.
    - `x`: $|\varepsilon|$ (or $h_0$ for ``"delta"``), positive.
    - `y`, `yerr`: the measured values and their standard errors.
    - `n_sites`: $N$ of the measurement.

    **Returns:** an :class:`gltheory.meanfield.ExponentFit` whose ``slope`` is the exponent
    itself ($\beta$, $\gamma$, $\delta$ or $z\nu$, signs and inverses applied).
    """
    if kind in ("beta", "gamma", "znu"):
        fit = fit_scaling(x, y, yerr, omega=1.0, x_range=_eps_window(n_sites))
        if kind == "beta":
            return fit
        return fit._replace(slope=-fit.slope)
    if kind == "delta":
        lo = FIELD_FSS_MIN * float(n_sites) ** -0.75
        if not lo < FIELD_MAX:
            raise ValueError(f"n_sites={float(n_sites):g} is too small for the delta fit rule.")
        fit = fit_scaling(x, y, yerr, omega=2.0 / 3.0, x_range=(lo, FIELD_MAX))
        delta = 1 / fit.slope
        return fit._replace(slope=delta, stderr=fit.stderr * delta**2)
    raise ValueError(f"kind must be 'beta', 'gamma', 'delta' or 'znu', got {kind!r}.")


def fit_jump(
    eps: Real[ArrayLike, " n"],
    heat: Real[ArrayLike, " n"],
    heat_err: Real[ArrayLike, " n"],
    n_sites: float | int,
) -> Estimate:
    r"""The specific-heat jump $\Delta C/N=C(0^+)-C(0^-)$ from points on both sides of $\varepsilon=0$.

    On each side, $C/N=C_\pm+s_\pm\varepsilon$ is fitted by weighted least squares over
    $|\varepsilon|\in[10N^{-1/2},0.1]$ (`docs/theory/exponents.md#fitting-rule`); the jump is
    $C_+-C_-$ with the two intercepts' errors added in quadrature (each scaled by
    $\max(1,\sqrt{\chi^2/{\rm dof}})$). $\alpha=0$: a jump, no divergence.

    **Arguments:**

    - `eps`: $\varepsilon=\beta/\beta_c-1$ ($>0$ ordered), both signs.
    - `heat`, `heat_err`: $C/N$ and its standard errors.
    - `n_sites`: $N$ of the measurement.

    **Returns:** the jump as an :class:`Estimate`.
    """
    e, c, s = (
        np.asarray(as_float_array(a, n), np.float64)
        for a, n in ((eps, "eps"), (heat, "heat"), (heat_err, "heat_err"))
    )
    if e.ndim != 1 or e.shape != c.shape or e.shape != s.shape:
        raise ValueError("eps, heat and heat_err must be 1-D arrays of one length.")
    lo, hi = _eps_window(n_sites)
    out = []
    for sign, name in ((1, "ordered (eps > 0)"), (-1, "disordered (eps < 0)")):
        sel = (sign * e >= lo) & (sign * e <= hi)
        if sel.sum() < 3:
            raise ValueError(
                f"fit_jump needs at least 3 points on the {name} side with |eps| in "
                f"[{lo:.3g}, {hi:.3g}], got {int(sel.sum())}."
            )
        if not np.all(np.isfinite(c[sel]) & (s[sel] > 0)):
            raise ValueError("heat must be finite and heat_err > 0 inside the fit range.")
        a = np.stack([np.ones(sel.sum()), e[sel]], axis=-1)
        w = 1 / s[sel] ** 2
        cov = np.linalg.inv(a.T @ (a * w[:, None]))
        coef = cov @ (a.T @ (w * c[sel]))
        resid = c[sel] - a @ coef
        birge = max(1.0, math.sqrt(float(np.sum(w * resid**2)) / (sel.sum() - 2)))
        out.append((coef[0], math.sqrt(cov[0, 0]) * birge))
    return Estimate(float(out[0][0] - out[1][0]), math.hypot(out[0][1], out[1][1]))


class ScalingRelation(NamedTuple):
    r"""One scaling relation evaluated on measured exponents (:func:`scaling_relations`).

    - `name`: ``"rushbrooke"`` ($\alpha+2\beta+\gamma=2$), ``"widom"`` ($\gamma=\beta(\delta-1)$) or
      ``"dynamic"`` ($z\nu=1$);
    - `value`, `stderr`: the left side minus the right side and its propagated standard error;
    - `consistent`: $|{\rm value}|\le3\,{\rm stderr}$ (or $10^{-12}$ for exact inputs).
    """

    name: str
    value: float
    stderr: float
    consistent: bool


def scaling_relations(
    alpha: Estimate, beta: Estimate, gamma: Estimate, delta: Estimate, znu: Estimate
) -> list[ScalingRelation]:
    r"""Rushbrooke, Widom and $z\nu=1$ on measured exponents, with propagated errors.

    $\alpha+2\beta+\gamma-2$, $\gamma-\beta(\delta-1)$ and $z\nu-1$, each with the first-order error
    propagation of independent estimates (`docs/theory/exponents.md#scaling-relations`). For a
    finite specific-heat jump pass $\alpha$ = ``Estimate(0.0, 0.0)``. Fisher's $\gamma=\nu(2-\eta)$ and
    hyperscaling need $\nu,\eta$ of a spatial lattice: see
    :func:`gltheory.ornstein_zernike.lattice_relations` (`docs/theory/lattice-exponents.md`).

    **Arguments:**

    - `alpha`, `beta`, `gamma`, `delta`, `znu`: :class:`Estimate` s (value, standard error).

    **Returns:** a list of three :class:`ScalingRelation` s.
    """
    ests = {"alpha": alpha, "beta": beta, "gamma": gamma, "delta": delta, "znu": znu}
    for name, e in ests.items():
        if not (
            isinstance(e, Estimate)
            and math.isfinite(e.value)
            and math.isfinite(e.stderr)
            and e.stderr >= 0
        ):
            raise ValueError(
                f"{name} must be an Estimate with finite value and stderr >= 0, got {e!r}."
            )
    a, b, g, d, z = (ests[k] for k in ("alpha", "beta", "gamma", "delta", "znu"))
    rows = [
        (
            "rushbrooke",
            a.value + 2 * b.value + g.value - 2,
            math.sqrt(a.stderr**2 + 4 * b.stderr**2 + g.stderr**2),
        ),
        (
            "widom",
            g.value - b.value * (d.value - 1),
            math.sqrt(g.stderr**2 + ((d.value - 1) * b.stderr) ** 2 + (b.value * d.stderr) ** 2),
        ),
        ("dynamic", z.value - 1, z.stderr),
    ]
    return [
        ScalingRelation(name, float(v), float(se), bool(abs(v) <= max(3 * se, 1e-12)))
        for name, v, se in rows
    ]


# ----------------------------------------------------------------------------------------------
# finite-size scaling in N: scan, Binder crossings, data collapse, critical power laws
# ----------------------------------------------------------------------------------------------


# What the finite-size tools accept (each is converted with np.asarray and checked by the
# library, which raises ValueError naming the argument): an integer, a real number, the sizes or
# points of a scan as an array or a plain list, and a (sizes x points) table as a 2-D array or a
# list of rows.
IntLike = int | np.integer
RealLike = float | int | np.floating | np.integer
Sizes = Real[ArrayLike, " n_sizes"] | Sequence[RealLike]
Points = Real[ArrayLike, " n_points"] | Sequence[RealLike]
Table = Real[ArrayLike, "n_sizes n_points"] | Sequence[Sequence[RealLike] | Real[np.ndarray, " _"]]


def critical_binder(n_components: IntLike) -> float:
    r"""The $N\to\infty$ Binder cumulant at the transition of an O($n$) bath.

    At $\varepsilon=0$ the order parameter's law is $P(M)\propto e^{-cN|M|^4}$ in $n$ dimensions,
    so $\langle|M|^k\rangle=\Gamma(\frac{n+k}4)/\Gamma(\frac n4)\,(cN)^{-k/4}$ and, with the
    normalisation $U_n=1-\frac n{n+2}\langle|M|^4\rangle/\langle|M|^2\rangle^2$ (0 for a
    Gaussian $M$, $2/(n+2)$ for a fixed $|M|$),

    $$U_n^\ast=1-\frac{n^2\,\Gamma(n/4)^2}{4(n+2)\,\Gamma((n+2)/4)^2}$$

    (`docs/theory/exponents.md#finite-size-scaling`) [DERIVED]: $0.27052$ for $n=1$
    (:data:`CW_CRITICAL_BINDER`), $1-\pi/4$ for $n=2$, $0.17750$ for $n=3$.

    **Arguments:**

    - `n_components`: $n\ge1$, the number of order-parameter components.

    **Returns:** $U_n^\ast$ as a float.
    """
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}.")
    if n_components < 1:
        raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}.")
    n = int(n_components)
    log_ratio = 2 * math.lgamma(n / 4) - 2 * math.lgamma((n + 2) / 4)
    return 1 - n**2 / (4 * (n + 2)) * math.exp(log_ratio)


class FSSScan(NamedTuple):
    r"""A finite-size-scaling scan of a bath (:func:`fss_scan`, :func:`fss_field`).

    Sizes $N_i$ (rows) by points of the scaling variable $x_j=\varepsilon N^{1/2}$ (columns);
    every observable has shape ``(n_sizes, n_points)`` with its standard error beside it (zeros
    for the exact quadrature of :func:`fss_field`):

    - `n_sites`: $N_i$, shape ``(n_sizes,)``; `x`: $x_j$, shape ``(n_points,)``;
    - `eps`: $\varepsilon_{ij}=x_jN_i^{-1/2}$; `snr`: $\beta_{ij}=\beta_c(1+\varepsilon_{ij})$;
    - `order_parameter`: $\langle|M|\rangle$;
    - `susceptibility`: the in-well $\chi=N(\langle M^2\rangle-\langle|M|\rangle^2)-1/\beta s^2$
      (`susceptibility_abs` of :class:`BathStatistics`);
    - `binder`: $U_n=1-\frac n{n+2}\langle M^4\rangle/\langle M^2\rangle^2$ of the field estimator;
    - `snr_c`: $\beta_c$; `n_components`: $n$ (1 for $\mathbb Z_2$, $d$ for the hypersphere).
    """

    n_sites: np.ndarray
    x: np.ndarray
    eps: np.ndarray
    snr: np.ndarray
    order_parameter: np.ndarray
    order_parameter_err: np.ndarray
    susceptibility: np.ndarray
    susceptibility_err: np.ndarray
    binder: np.ndarray
    binder_err: np.ndarray
    snr_c: float
    n_components: int


def _fss_grid(n_sites, x) -> tuple[np.ndarray, np.ndarray]:
    ns = np.asarray(n_sites, np.float64)
    xs = np.asarray(x, np.float64)
    if ns.ndim != 1 or ns.size < 2 or not np.all(np.isfinite(ns) & (ns > 0)):
        raise ValueError(f"n_sites must be a 1-D array of >= 2 positive sizes, got {n_sites!r}.")
    if not np.all(np.diff(ns) > 0):
        raise ValueError(f"n_sites must be strictly increasing, got {ns.tolist()}.")
    if xs.ndim != 1 or xs.size < 3 or not np.all(np.isfinite(xs)):
        raise ValueError(f"x must be a 1-D array of >= 3 finite values, got {x!r}.")
    if not np.all(np.diff(xs) > 0):
        raise ValueError(f"x must be strictly increasing, got {xs.tolist()}.")
    if not np.all(1 + xs[0] / np.sqrt(ns) > 0):
        raise ValueError(
            f"x must satisfy x > -N^(1/2) for every size (snr > 0), got x[0] = {xs[0]:g} with "
            f"N = {ns[0]:g}."
        )
    return ns, xs


def _fss_snr_c(data, process, snr_c, axes) -> float:
    if snr_c is None:
        return critical_snr(data, process)
    if isinstance(snr_c, bool) or not isinstance(snr_c, (int, float)):
        raise ValueError(f"snr_c must be a positive finite number or None, got {snr_c!r}.")
    if not (math.isfinite(snr_c) and snr_c > 0):
        raise ValueError(f"snr_c must be a positive finite number or None, got {snr_c!r}.")
    # criterion S at the given point: the denoiser's slope along the soft mode at the
    # symmetric point, beta_c Var(u . y | x = c), must be 1 (landau_jump's beta_c v = 1)
    dtype = jnp.result_type(float)
    slope = float(
        _soft_slope(data, jnp.asarray(snr_c, dtype), axes.center.astype(dtype), axes.basis[0])
    )
    if not abs(slope - 1) < 1e-6:
        raise ValueError(
            f"snr_c={snr_c!r} is not a critical point of this dataset: the denoiser's slope along "
            f"the soft mode at the symmetric point is {slope:.8g} there, not 1 (data whose slope "
            "stays below 1 at every SNR, e.g. Gaussian data, have no transition; leave "
            "snr_c=None to locate it with critical_snr)."
        )
    return float(snr_c)


@eqx.filter_jit
@trusted
def _soft_slope(data, beta, c, u):
    one = jnp.ones((), beta.dtype)
    u = u.astype(beta.dtype)
    m = lambda x: data.posterior_mean(x, one, 1 / beta)
    return u @ jax.jvp(m, (c,), (u,))[1]


def _per_size(value, name: str, n_sizes: int, lo: int) -> list[int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        vals = [int(value)] * n_sizes
    else:
        vals = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [None]
        if len(vals) != n_sizes:
            raise ValueError(
                f"{name} must be an integer or a sequence of one integer per size ({n_sizes}), "
                f"got {value!r}."
            )
    for v in vals:
        check_positive_int(v, name, lo)
    return [int(v) for v in vals]


def _binder_n(m2, m4, n: int):
    return 1 - n / (n + 2) * m4 / m2**2


def fss_scan(
    data: AbstractData,
    n_sites: Sizes,
    x: Points,
    key: PRNGKeyArray,
    *,
    process: AbstractProcess | None = None,
    snr_c: float | int | None = None,
    n_chains: int = 64,
    n_steps: IntLike | Sequence[IntLike] | Int[np.ndarray, " _"] = 2000,
    n_burn: IntLike | Sequence[IntLike] | Int[np.ndarray, " _"] = 500,
    step: float | int = 1.0,
    axes: BathAxes | None = None,
) -> FSSScan:
    r"""Finite-size-scaling scan of a dataset's bath by the tempered sampler.

    For every size $N_i$ and scaling variable $x_j=\varepsilon N_i^{1/2}$ runs
    :func:`tempered_langevin` (MALA; moments streamed) at $\beta=\beta_c(1+x_jN_i^{-1/2})$ and
    reduces it with :func:`bath_statistics` to $\langle|M|\rangle$, the in-well susceptibility and
    the O($n$) Binder cumulant, each with its jackknife standard error over chains
    (`docs/theory/exponents.md#finite-size-scaling`). Only $|M|$-symmetric observables are
    used, so the chains need not tunnel between the ordered wells; they must relax within one:
    the critical relaxation time grows like $N^{1/2}$ (an estimate for $\pm1$:
    $\approx2.6\sqrt N/\mathtt{step}$ steps), so give ``n_burn`` and ``n_steps`` per size. Chain ``k`` of point ``(i, j)`` uses
    ``fold_in(fold_in(key, i * n_points + j), k)``.

    **Arguments:**

    - `data`: a $\pm$-symmetric dataset with a transition (any dimension).
    - `n_sites`: increasing sizes $N_i$, at least 2.
    - `x`: increasing scaling-variable points, at least 3 ($x>-N^{1/2}$).
    - `key`: PRNG key.
    - `process`: the process used to locate $\beta_c$ (default OU; only SNR matters).
    - `snr_c`: $\beta_c$ when known (checked: the denoiser's slope along the soft mode at the
      symmetric point, $\beta_c{\rm Var}(u\cdot y\mid x=c)$, must be 1 to $10^{-6}$); default
      :func:`critical_snr`. Data without a transition raise ``ValueError``.
    - `n_chains`: chains per point (>= 2).
    - `n_steps`, `n_burn`: recorded and burn-in steps, an integer or one per size.
    - `step`: $\beta\,d\tau$ in $(0, 1]$.
    - `axes`: the order parameter's :class:`BathAxes` (default :func:`order_parameter_axes`).

    **Returns:** an :class:`FSSScan`.
    """
    check_instance(data, AbstractData, "data", DATASET)
    ns, xs = _fss_grid(n_sites, x)
    process = OU() if process is None else process
    check_instance(process, AbstractProcess, "process", PROCESS)
    steps = _per_size(n_steps, "n_steps", ns.size, 1)
    burns = _per_size(n_burn, "n_burn", ns.size, 0)
    axes = _check_axes(data, axes)
    beta_c = _fss_snr_c(data, process, snr_c, axes)
    n_comp = int(axes.basis.shape[0])
    eps = xs[None, :] / np.sqrt(ns)[:, None]
    snr = beta_c * (1 + eps)
    shape = eps.shape
    out = {k: np.zeros(shape) for k in ("m", "me", "c", "ce", "u", "ue")}
    for i, n in enumerate(ns):
        for j in range(xs.size):
            t = process.t_of_snr(jnp.asarray(snr[i, j]))
            mom = tempered_langevin(
                data,
                process,
                t,
                float(n),
                jax.random.fold_in(key, i * xs.size + j),
                n_chains=n_chains,
                n_steps=steps[i],
                n_burn=burns[i],
                step=step,
                axes=axes,
            )
            st = bath_statistics(mom)
            cols = np.stack([np.asarray(mom.m2, np.float64), np.asarray(mom.m4, np.float64)], -1)
            u = _jackknife(cols, lambda a: _binder_n(a[0], a[1], n_comp))
            out["m"][i, j], out["me"][i, j] = st.order_parameter
            out["c"][i, j], out["ce"][i, j] = st.susceptibility_abs
            out["u"][i, j], out["ue"][i, j] = u
    return FSSScan(
        n_sites=ns,
        x=xs,
        eps=eps,
        snr=snr,
        order_parameter=out["m"],
        order_parameter_err=out["me"],
        susceptibility=out["c"],
        susceptibility_err=out["ce"],
        binder=out["u"],
        binder_err=out["ue"],
        snr_c=float(beta_c),
        n_components=n_comp,
    )


def fss_field(
    data: AbstractData,
    n_sites: Sizes,
    x: Points,
    *,
    process: AbstractProcess | None = None,
    snr_c: float | int | None = None,
    n_grid: IntLike = 4097,
) -> FSSScan:
    r"""The same scan as :func:`fss_scan`, exactly, by the quadrature of :func:`field` (1-D data).

    The field estimator's moments over the exact law $P_N(x)\propto p_\sigma(x)^N$ at
    $\sigma^2=1/\beta$, $\beta=\beta_c(1+xN^{-1/2})$, with $M=(x-c)/s$ ($c$, $s$ of
    :func:`order_parameter_axes`): $\langle|M|\rangle$, $N(\langle M^2\rangle-\langle|M|\rangle^2)-1/\beta s^2$
    and $1-\langle M^4\rangle/3\langle M^2\rangle^2$ — the expectations of exactly the estimators the
    sampler averages; an independent second algorithm (`docs/theory/exponents.md#finite-size-scaling`).
    The trapezoid grid is symmetric about $c$ with a node there, and $\langle|M|\rangle$ carries the
    Euler–Maclaurin term of the kink of $|M|$, so every moment converges to round-off (the
    enumeration test: relative $10^{-9}$). Standard errors are zero.

    **Arguments:**

    - `data`: a one-dimensional dataset with a transition.
    - `n_sites`, `x`: as in :func:`fss_scan`.
    - `process`, `snr_c`: as in :func:`fss_scan`.
    - `n_grid`: quadrature nodes (see :func:`field`).

    **Returns:** an :class:`FSSScan` (errors zero).
    """
    _check_data_1d(data)
    ns, xs = _fss_grid(n_sites, x)
    n_grid = _check_n_grid(n_grid)
    dtype = jnp.result_type(float)
    # one dimension: the soft mode is the axis itself, M = (x - c)/s with s = Std(y), the
    # separation of `order_parameter_axes` for d = 1 (no eigendecomposition to compile)
    mu, var = _data_scale(data, dtype)
    if not float(var) > 0:
        raise ValueError("data has zero variance: no soft mode, no order parameter.")
    axes = BathAxes(center=mu.reshape(1), basis=jnp.ones((1, 1), dtype), scale=jnp.sqrt(var))
    beta_c = _fss_snr_c(data, process, snr_c, axes)
    eps = xs[None, :] / np.sqrt(ns)[:, None]
    snr = beta_c * (1 + eps)
    nn = np.broadcast_to(ns[:, None], eps.shape)
    f = _fss_field_impl(
        data,
        jnp.asarray(snr.ravel(), dtype),
        jnp.asarray(nn.ravel(), dtype),
        jnp.asarray(axes.center, dtype).reshape(()),
        n_grid,
    )
    s = float(axes.scale)
    mean_abs, m2, m4 = (np.asarray(a, np.float64).reshape(eps.shape) for a in f)
    mean_abs, m2, m4 = mean_abs / s, m2 / s**2, m4 / s**4
    chi = nn * (m2 - mean_abs**2) - 1 / (snr * s**2)
    zero = np.zeros(eps.shape)
    return FSSScan(
        n_sites=ns,
        x=xs,
        eps=eps,
        snr=snr,
        order_parameter=mean_abs,
        order_parameter_err=zero,
        susceptibility=chi,
        susceptibility_err=zero.copy(),
        binder=_binder_n(m2, m4, 1),
        binder_err=zero.copy(),
        snr_c=float(beta_c),
        n_components=1,
    )


@eqx.filter_jit
@trusted
def _fss_field_impl(data, snr, n_sites, center, n_grid):
    def one(beta, n):
        sigma = 1 / jnp.sqrt(beta)
        lo, hi = _default_bounds(data, sigma, beta.dtype)
        # coarse stage (as in `field`): where ln P_N is within 80 of its maximum
        g1 = jnp.linspace(lo, hi, n_grid, dtype=beta.dtype)
        lp1 = -n * _action(data, sigma, g1)
        keep = lp1 > jnp.max(lp1) - 80.0
        h1 = g1[1] - g1[0]
        first = g1[jnp.argmax(keep)] - h1
        last = g1[n_grid - 1 - jnp.argmax(keep[::-1])] + h1
        # fine stage: a grid symmetric about the centre, with a node on the kink of |u|
        half = jnp.maximum(center - first, last - center)
        grid = center + half * jnp.linspace(-1.0, 1.0, n_grid | 1, dtype=beta.dtype)
        h = grid[1] - grid[0]
        lp = -n * _action(data, sigma, grid)
        lw = _trapezoid_log_weights(grid)
        log_norm = jax.nn.logsumexp(lp + lw)
        p = jnp.exp(lp + lw - log_norm)
        u = grid - center
        # Euler-Maclaurin: the trapezoid rule misses h^2 [f']/12 at the kink of f = |u| P, whose
        # derivative jumps by 2 P(c); with it the error is O(h^4)
        p_c = jnp.exp(lp[(n_grid | 1) // 2] - log_norm)
        mean_abs = jnp.sum(p * jnp.abs(u)) + h**2 * p_c / 6
        return mean_abs, jnp.sum(p * u**2), jnp.sum(p * u**4)

    return jax.vmap(one)(snr, n_sites)


def _check_scan(scan) -> FSSScan:
    if not isinstance(scan, FSSScan):
        raise ValueError(
            f"scan must be an FSSScan (fss_scan, fss_field), got {type(scan).__name__}."
        )
    return scan


def _poly_fit(x, y, e, degree: int):
    """Weighted polynomial fit, coefficients (low order first) and covariance.

    Errors all zero (exact data): equal weights, covariance from the residuals."""
    a = np.vander(x, degree + 1, increasing=True)
    exact = np.all(e == 0)
    w = np.ones_like(y) if exact else 1 / e**2
    cov = np.linalg.inv(a.T @ (a * w[:, None]))
    coef = cov @ (a.T @ (w * y))
    dof = x.size - degree - 1
    chi2 = float(np.sum(w * (y - a @ coef) ** 2))
    cov = cov * (chi2 / dof if exact else max(1.0, chi2 / dof))
    return coef, cov


class BinderCrossings(NamedTuple):
    r"""Crossings of the Binder cumulants of successive sizes (:func:`binder_crossings`).

    Arrays of shape ``(n_sizes - 1,)``: `n_small`, `n_large` (the pair), `eps` and `eps_err`
    (the crossing's reduced distance $\varepsilon_\times$), `binder` and `binder_err` (the
    cumulant there, $\to U_n^\ast$ of :func:`critical_binder` as $N\to\infty$).
    """

    n_small: np.ndarray
    n_large: np.ndarray
    eps: np.ndarray
    eps_err: np.ndarray
    binder: np.ndarray
    binder_err: np.ndarray


def binder_crossings(
    scan: FSSScan, *, x_window: float | int = 1.0, degree: int = 2
) -> BinderCrossings:
    r"""Where the Binder cumulants of successive sizes cross, with standard errors.

    For each size, $U(x)$ over $|x|\le$ ``x_window`` is fitted by a weighted polynomial of
    ``degree`` in $x=\varepsilon N^{1/2}$ (covariance scaled by $\max(1,\chi^2/{\rm dof})$;
    for an exact scan equal weights and the residual variance). The crossing of sizes
    $N_i<N_{i+1}$ is the root $\varepsilon_\times$ of $P_i(\varepsilon N_i^{1/2})=P_{i+1}(\varepsilon N_{i+1}^{1/2})$
    nearest 0 with $|\varepsilon|N_{i+1}^{1/2}\le$ ``x_window``; $\varepsilon_\times$ and
    $U_\times=P_i(\varepsilon_\times N_i^{1/2})$ get first-order errors from the two fits'
    covariances (implicit-function theorem; the sizes are independent runs)
    (`docs/theory/exponents.md#finite-size-scaling`). Raises ``ValueError`` when two curves do
    not cross in the window.

    **Arguments:**

    - `scan`: an :class:`FSSScan`.
    - `x_window`: half-width of the fitted range of $x$.
    - `degree`: polynomial degree (>= 1); each size needs ``degree + 2`` points in the window.

    **Returns:** a :class:`BinderCrossings`.
    """
    scan = _check_scan(scan)
    if not (isinstance(x_window, (int, float)) and x_window > 0):
        raise ValueError(f"x_window must be a positive number, got {x_window!r}.")
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
        raise ValueError(f"degree must be an integer >= 1, got {degree!r}.")
    sel = np.abs(scan.x) <= x_window
    if sel.sum() < degree + 2:
        raise ValueError(
            f"x_window={x_window!r} keeps {int(sel.sum())} points of x; the degree-{degree} fit "
            f"needs at least {degree + 2}."
        )
    err = np.asarray(scan.binder_err)[:, sel]
    if not (np.all(err == 0) or np.all(err > 0)):
        raise ValueError("scan.binder_err must be all positive (sampled) or all zero (exact).")
    fits = [
        _poly_fit(scan.x[sel], np.asarray(scan.binder)[i, sel], err[i], degree)
        for i in range(scan.n_sites.size)
    ]
    k = np.arange(degree + 1)
    rows = []
    for i in range(scan.n_sites.size - 1):
        (c1, v1), (c2, v2) = fits[i], fits[i + 1]
        r1, r2 = math.sqrt(scan.n_sites[i]), math.sqrt(scan.n_sites[i + 1])
        diff = c1 * r1**k - c2 * r2**k  # coefficients of D(eps), low order first
        roots = np.roots(diff[::-1]) if np.any(diff[1:] != 0) else np.array([])
        roots = roots[np.abs(roots.imag) < 1e-12 * (1 + np.abs(roots.real))].real
        roots = roots[np.abs(roots) * r2 <= x_window]
        if roots.size == 0:
            raise ValueError(
                f"the Binder cumulants of N = {scan.n_sites[i]:g} and {scan.n_sites[i + 1]:g} do "
                f"not cross within |x| <= x_window={x_window!r}."
            )
        e = float(roots[np.argmin(np.abs(roots))])
        p1, p2 = (e * r1) ** k, (e * r2) ** k
        dp1 = r1 * np.polynomial.polynomial.polyval(e * r1, np.polynomial.polynomial.polyder(c1))
        dp2 = r2 * np.polynomial.polynomial.polyval(e * r2, np.polynomial.polynomial.polyder(c2))
        d_eps = dp1 - dp2
        g1, g2 = -p1 / d_eps, p2 / d_eps  # d eps / d c1, d eps / d c2
        var_e = g1 @ v1 @ g1 + g2 @ v2 @ g2
        h1, h2 = p1 + dp1 * g1, dp1 * g2  # d U / d c1, d U / d c2
        var_u = h1 @ v1 @ h1 + h2 @ v2 @ h2
        u = float(c1 @ p1)
        rows.append(
            (scan.n_sites[i], scan.n_sites[i + 1], e, math.sqrt(var_e), u, math.sqrt(var_u))
        )
    return BinderCrossings(*(np.array(col) for col in zip(*rows)))


def _collapse_terms(params, logn, eps, y, yerr):
    b, kappa = params[0], params[1]
    s, p = eps.shape
    xs = eps * jnp.exp(b * logn)[:, None]
    f = jnp.exp(-kappa * logn)[:, None]
    ys, es = y * f, yerr * f

    def interp(xj, yj, ej):
        # bracketing index by comparisons (cheap to compile for these small arrays)
        k = jnp.clip(jnp.sum(xj <= xs[..., None], axis=-1) - 1, 0, p - 2)
        x0, x1 = xj[k], xj[k + 1]
        w = (xs - x0) / (x1 - x0)
        val = (1 - w) * yj[k] + w * yj[k + 1]
        var = (1 - w) ** 2 * ej[k] ** 2 + w**2 * ej[k + 1] ** 2
        inside = (xs >= xj[0]) & (xs <= xj[-1])
        return val, var, inside

    val, var, inside = jax.vmap(interp)(xs, ys, es)  # (size j, size i, point)
    inside = inside & ~jnp.eye(s, dtype=bool)[:, :, None]
    wts = jnp.where(inside, 1 / var, 0.0)
    wsum = wts.sum(0)
    has = wsum > 0
    safe = jnp.where(has, wsum, 1.0)
    master = (wts * val).sum(0) / safe
    r = jnp.where(has, (ys - master) ** 2 / (es**2 + 1 / safe), 0.0)
    return r.sum(), has.sum()


def _collapse_quality(params, logn, eps, y, yerr):
    total, n_used = _collapse_terms(params, logn, eps, y, yerr)
    # fewer than half the points overlapping another size: no collapse to judge
    return jnp.where(2 * n_used >= eps.size, total / jnp.maximum(n_used, 1), 1e12)


@eqx.filter_jit
def _collapse_fit(logn, eps, ys, yerr, init):
    solver = optx.NelderMead(rtol=1e-8, atol=1e-8, adelta=0.02)

    def one(y):
        sol = optx.minimise(
            lambda p, _: _collapse_quality(p, logn, eps, y, yerr),
            solver,
            init,
            max_steps=2000,
            throw=False,
        )
        return sol.value, _collapse_quality(sol.value, logn, eps, y, yerr)

    return jax.vmap(one)(ys)


class DataCollapse(NamedTuple):
    r"""Exponents read from a finite-size data collapse (:func:`fss_collapse`).

    $y\simeq N^{\kappa}F(\varepsilon N^{1/\bar\nu})$: `x_exponent` $=1/\bar\nu$, `y_exponent` $=\kappa$
    ($-\beta/\bar\nu$ for $\langle|M|\rangle$, $\gamma/\bar\nu$ for $\chi$), each an :class:`Estimate`;
    `quality`: the collapse quality at the optimum ($\approx1$ for a collapse within errors);
    `n_boot`: bootstrap replicas behind the standard errors.
    """

    x_exponent: Estimate
    y_exponent: Estimate
    quality: float
    n_boot: int


def _collapse_inputs(n_sites, eps, y, yerr):
    ns = np.asarray(n_sites, np.float64)
    e, v, s = (np.asarray(a, np.float64) for a in (eps, y, yerr))
    if ns.ndim != 1 or ns.size < 2 or not np.all(np.isfinite(ns) & (ns > 0)):
        raise ValueError(f"n_sites must be a 1-D array of >= 2 positive sizes, got {n_sites!r}.")
    if e.shape != (ns.size, e.shape[-1]) or e.ndim != 2 or e.shape[1] < 3:
        raise ValueError(
            f"eps must have shape (n_sizes, n_points) = ({ns.size}, >= 3), got {e.shape}."
        )
    if v.shape != e.shape or s.shape != e.shape:
        raise ValueError(
            f"y and yerr must have the shape of eps {e.shape}, got {v.shape}, {s.shape}."
        )
    if not np.all(np.isfinite(e)) or not np.all(np.diff(e, axis=1) > 0):
        raise ValueError("eps must be finite and strictly increasing along each size's row.")
    if not np.all(np.isfinite(v)):
        raise ValueError("y must be finite.")
    if not np.all(np.isfinite(s) & (s > 0)):
        raise ValueError("yerr must be positive and finite (a collapse weighs the points by it).")
    return ns, e, v, s


def collapse_quality(
    n_sites: Sizes,
    eps: Table,
    y: Table,
    yerr: Table,
    x_exponent: RealLike,
    y_exponent: RealLike,
) -> float:
    r"""Houdayer–Hartmann quality of the collapse $N^{-\kappa}y$ against $\varepsilon N^{1/\bar\nu}$.

    Each point $(X_p,Y_p\pm\delta_p)$ of the rescaled data is compared with the master curve
    made of the other sizes: for each other size whose $X$ range contains $X_p$, the linear
    interpolation between its two bracketing points (variance from their errors), averaged with
    inverse-variance weights into $\bar Y_p\pm\bar\delta_p$;
    $S=\frac1{\mathcal N}\sum_p(Y_p-\bar Y_p)^2/(\delta_p^2+\bar\delta_p^2)$ over the $\mathcal N$ points
    that have a master value (`docs/theory/exponents.md#finite-size-scaling`). $S\approx1$ when the
    data collapse within their errors; $10^{12}$ when fewer than half the points overlap another
    size.

    **Arguments:**

    - `n_sites`: sizes, shape ``(n_sizes,)``.
    - `eps`: reduced distances, increasing along each row, shape ``(n_sizes, n_points)``.
    - `y`, `yerr`: the observable and its (positive) standard errors, same shape.
    - `x_exponent`, `y_exponent`: $1/\bar\nu$ and $\kappa$.

    **Returns:** $S$ as a float.
    """
    ns, e, v, s = _collapse_inputs(n_sites, eps, y, yerr)
    params = jnp.asarray([float(x_exponent), float(y_exponent)])
    return float(
        _collapse_quality_jit(params, jnp.log(ns), jnp.asarray(e), jnp.asarray(v), jnp.asarray(s))
    )


_collapse_quality_jit = eqx.filter_jit(_collapse_quality)


def fss_collapse(
    n_sites: Sizes,
    eps: Table,
    y: Table,
    yerr: Table,
    *,
    init: Sequence[float | int] = (0.5, 0.0),
    n_boot: IntLike = 64,
    seed: IntLike = 0,
) -> DataCollapse:
    r"""Fit $1/\bar\nu$ and $\kappa$ of $y\simeq N^\kappa F(\varepsilon N^{1/\bar\nu})$ by a data collapse.

    Minimises :func:`collapse_quality` over $(1/\bar\nu,\kappa)$ with ``optimistix.NelderMead``
    (the quality is piecewise smooth: derivative-free); the standard errors are the spread of
    the exponents over ``n_boot`` parametric-bootstrap replicas (each point redrawn from
    $\mathcal N(y,\delta y^2)$ and refitted; the data and the replicas run under one ``vmap``), times
    $\max(1,\sqrt{S_{\min}})$ when the collapse is worse than the errors
    (`docs/theory/exponents.md#finite-size-scaling`). For the bath: $1/\bar\nu=\frac12$,
    $\kappa=-\frac14$ ($\langle|M|\rangle$) and $\frac12$ ($\chi$).

    **Arguments:**

    - `n_sites`, `eps`, `y`, `yerr`: as in :func:`collapse_quality` (e.g. from an
      :class:`FSSScan`: ``scan.n_sites, scan.eps, scan.order_parameter, scan.order_parameter_err``).
    - `init`: starting $(1/\bar\nu,\kappa)$.
    - `n_boot`: bootstrap replicas (>= 8).
    - `seed`: seed of the bootstrap draws (NumPy).

    **Returns:** a :class:`DataCollapse`.
    """
    ns, e, v, s = _collapse_inputs(n_sites, eps, y, yerr)
    if len(init) != 2 or not all(isinstance(a, (int, float)) and math.isfinite(a) for a in init):
        raise ValueError(f"init must be two finite numbers (x_exponent, y_exponent), got {init!r}.")
    check_positive_int(n_boot, "n_boot", 8)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}.")
    logn, ej, sj = jnp.log(ns), jnp.asarray(e), jnp.asarray(s)
    rng = np.random.default_rng(int(seed))
    draws = v[None] + s[None] * rng.standard_normal((int(n_boot),) + v.shape)
    # the data and its replicas in one vmapped program, all started from `init`
    ys = jnp.asarray(np.concatenate([v[None], draws]))
    fits, quality = _collapse_fit(logn, ej, ys, sj, jnp.asarray([float(a) for a in init]))
    best, boot, q = np.asarray(fits[0]), np.asarray(fits[1:]), float(quality[0])
    if not q < 1e11:
        raise ValueError(
            "the sizes do not overlap in the scaling variable: no collapse to fit (check eps, "
            "init)."
        )
    se = boot.std(0, ddof=1) * max(1.0, math.sqrt(q))
    return DataCollapse(
        x_exponent=Estimate(float(best[0]), float(se[0])),
        y_exponent=Estimate(float(best[1]), float(se[1])),
        quality=q,
        n_boot=int(n_boot),
    )


class CriticalFSS(NamedTuple):
    r"""Power laws in $N$ at the transition (:func:`fit_critical_fss`).

    - `beta_over_nu`: $\langle|M|\rangle\propto N^{-\beta/\bar\nu}$ (``slope`` $=\beta/\bar\nu$, mean field $\frac14$);
    - `gamma_over_nu`: $\chi\propto N^{\gamma/\bar\nu}$ (``slope`` $=\gamma/\bar\nu$, mean field $\frac12$);

    each an :class:`gltheory.meanfield.ExponentFit` over the sizes of the scan at $x=0$.
    """

    beta_over_nu: ExponentFit
    gamma_over_nu: ExponentFit


def fit_critical_fss(scan: FSSScan, *, omega: float | None = -0.5) -> CriticalFSS:
    r"""$\langle|M|\rangle\propto N^{-\beta/\bar\nu}$ and $\chi\propto N^{\gamma/\bar\nu}$ at $\varepsilon=0$.

    :func:`fit_scaling` of the scan's $x=0$ column against $N$ with the leading correction
    $c\,N^{\omega}$, $\omega=-\frac12$ (the relative size of the next order of the $e^{-cNM^4}$
    law and of the field's Gaussian noise; ``None``: no correction)
    (`docs/theory/exponents.md#finite-size-scaling`). An exact scan (errors zero) is fitted with
    equal weights and a residual-based standard error.

    **Arguments:**

    - `scan`: an :class:`FSSScan` whose ``x`` contains 0.
    - `omega`: the correction exponent in $N$, or ``None``.

    **Returns:** a :class:`CriticalFSS`.
    """
    scan = _check_scan(scan)
    hit = np.flatnonzero(scan.x == 0)
    if hit.size != 1:
        raise ValueError("scan.x must contain the transition x = 0 exactly once.")
    j = int(hit[0])
    fits = []
    for val, err in (
        (scan.order_parameter, scan.order_parameter_err),
        (scan.susceptibility, scan.susceptibility_err),
    ):
        y, e = np.asarray(val)[:, j], np.asarray(err)[:, j]
        if np.all(e == 0):
            # exact values: equal relative weights, the standard error from the residuals
            e = 1e-12 * np.abs(y)
        fits.append(fit_scaling(scan.n_sites, y, e, omega=omega))
    m_fit, c_fit = fits
    return CriticalFSS(beta_over_nu=m_fit._replace(slope=-m_fit.slope), gamma_over_nu=c_fit)


COLLAPSE_N_MIN = 1e4
r"""Smallest size :func:`fss_collapse_scan` uses (the $N^{-1/2}$ corrections to scaling are then
$\lesssim1\,\%$; :func:`fss_collapse_pairs` extrapolates them away instead)."""
COLLAPSE_X_MAX = 2.0
r"""Largest $|x|=|\varepsilon|N^{1/2}$ a scan's collapse uses."""


def fss_collapse_scan(
    scan: FSSScan,
    observable: str,
    *,
    n_min: RealLike = COLLAPSE_N_MIN,
    x_max: RealLike = COLLAPSE_X_MAX,
    n_boot: IntLike = 64,
    seed: IntLike = 0,
) -> DataCollapse:
    r"""The data collapse of one observable of a scan, on the points of the stated rule.

    :func:`fss_collapse` over the sizes $N\ge$ ``n_min`` and the points $|x|\le$ ``x_max``
    (`docs/theory/exponents.md#finite-size-scaling`), started from $(1/\bar\nu,\kappa)=(0.5,0)$.

    **Arguments:**

    - `scan`: an :class:`FSSScan` with positive errors (sampled).
    - `observable`: ``"order_parameter"`` ($\kappa=-\beta/\bar\nu$) or ``"susceptibility"``
      ($\kappa=\gamma/\bar\nu$).
    - `n_min`, `x_max`: the rule's window (at least 2 sizes and 3 points must remain).
    - `n_boot`, `seed`: as in :func:`fss_collapse`.

    **Returns:** a :class:`DataCollapse`.
    """
    scan = _check_scan(scan)
    if observable not in ("order_parameter", "susceptibility"):
        raise ValueError(
            f"observable must be 'order_parameter' or 'susceptibility', got {observable!r}."
        )
    rows = scan.n_sites >= n_min
    cols = np.abs(scan.x) <= x_max
    if rows.sum() < 2 or cols.sum() < 3:
        raise ValueError(
            f"n_min={n_min!r}, x_max={x_max!r} leave {int(rows.sum())} sizes and "
            f"{int(cols.sum())} points; the collapse needs at least 2 and 3."
        )
    y = np.asarray(getattr(scan, observable))[np.ix_(rows, cols)]
    e = np.asarray(getattr(scan, observable + "_err"))[np.ix_(rows, cols)]
    return fss_collapse(
        scan.n_sites[rows], scan.eps[np.ix_(rows, cols)], y, e, n_boot=n_boot, seed=seed
    )


class CollapseExtrapolation(NamedTuple):
    r"""Pairwise collapses of successive sizes and their $N\to\infty$ limit (:func:`fss_collapse_pairs`).

    - `n_small`: the smaller size of each pair, shape ``(n_sizes - 1,)``;
    - `x_exponent`, `x_exponent_err`, `y_exponent`, `y_exponent_err`, `quality`: the effective
      $1/\bar\nu$, $\kappa$ (with bootstrap errors) and the quality of each pair's collapse;
    - `x_limit`, `y_limit`: the effective exponents extrapolated linearly in $N_{\rm small}^{-1/2}$
      to $N\to\infty$, :class:`Estimate` s.
    """

    n_small: np.ndarray
    x_exponent: np.ndarray
    x_exponent_err: np.ndarray
    y_exponent: np.ndarray
    y_exponent_err: np.ndarray
    quality: np.ndarray
    x_limit: Estimate
    y_limit: Estimate


def _extrapolate(n_small, value, err) -> Estimate:
    """Weighted fit value = a + c N^(-1/2); the intercept a with a max(1, chi2/dof) scaled SE."""
    a = np.stack([np.ones_like(n_small), n_small**-0.5], axis=-1)
    w = 1 / err**2
    cov = np.linalg.inv(a.T @ (a * w[:, None]))
    coef = cov @ (a.T @ (w * value))
    chi2 = float(np.sum(w * (value - a @ coef) ** 2))
    birge = max(1.0, math.sqrt(chi2 / (n_small.size - 2)))
    return Estimate(float(coef[0]), math.sqrt(cov[0, 0]) * birge)


def fss_collapse_pairs(
    scan: FSSScan,
    observable: str,
    *,
    x_max: RealLike = COLLAPSE_X_MAX,
    n_boot: IntLike = 64,
    seed: IntLike = 0,
) -> CollapseExtrapolation:
    r"""Collapse each pair of successive sizes, then extrapolate the exponents to $N\to\infty$.

    The corrections to scaling of the bath are relative $O(N^{-1/2})$, large enough at
    $N\lesssim10^4$ to bias a collapse of all sizes beyond its statistical error. Each pair
    $(N_i,N_{i+1})$ is collapsed by :func:`fss_collapse` over $|x|\le$ ``x_max`` (one compiled
    program for all pairs), giving effective exponents that drift like $N_i^{-1/2}$; a weighted
    linear fit in $N_i^{-1/2}$ (errors scaled by $\max(1,\sqrt{\chi^2/{\rm dof}})$) gives the limit
    (`docs/theory/exponents.md#finite-size-scaling`).

    **Arguments:**

    - `scan`: an :class:`FSSScan` with positive errors and at least 4 sizes.
    - `observable`: ``"order_parameter"`` ($\kappa=-\beta/\bar\nu$) or ``"susceptibility"``
      ($\kappa=\gamma/\bar\nu$).
    - `x_max`: the window $|x|\le$ ``x_max`` (at least 3 points must remain).
    - `n_boot`, `seed`: as in :func:`fss_collapse` (pair ``i`` uses ``seed + i``).

    **Returns:** a :class:`CollapseExtrapolation`.
    """
    scan = _check_scan(scan)
    if observable not in ("order_parameter", "susceptibility"):
        raise ValueError(
            f"observable must be 'order_parameter' or 'susceptibility', got {observable!r}."
        )
    if scan.n_sites.size < 4:
        raise ValueError(
            f"fss_collapse_pairs needs a scan of at least 4 sizes (3 pairs for the extrapolation), "
            f"got {scan.n_sites.size}."
        )
    cols = np.abs(scan.x) <= x_max
    if cols.sum() < 3:
        raise ValueError(
            f"x_max={x_max!r} leaves {int(cols.sum())} points of x; at least 3 needed."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}.")
    y = np.asarray(getattr(scan, observable))[:, cols]
    e = np.asarray(getattr(scan, observable + "_err"))[:, cols]
    eps = scan.eps[:, cols]
    rows = []
    for i in range(scan.n_sites.size - 1):
        sel = [i, i + 1]
        c = fss_collapse(
            scan.n_sites[sel], eps[sel], y[sel], e[sel], n_boot=n_boot, seed=int(seed) + i
        )
        rows.append((*c.x_exponent, *c.y_exponent, c.quality))
    xv, xe, yv, ye, q = (np.array(col) for col in zip(*rows))
    n_small = scan.n_sites[:-1]
    return CollapseExtrapolation(
        n_small=n_small,
        x_exponent=xv,
        x_exponent_err=xe,
        y_exponent=yv,
        y_exponent_err=ye,
        quality=q,
        x_limit=_extrapolate(n_small, xv, xe),
        y_limit=_extrapolate(n_small, yv, ye),
    )
