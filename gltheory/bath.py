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
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ._checks import DATASET, as_float_array, check_instance, check_values, is_concrete
from .data import AbstractData

__all__ = [
    "BathField",
    "action",
    "field",
    "saddle_point",
    "binder_crossing",
    "langevin",
    "gibbs",
    "CW_CRITICAL_BINDER",
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
