r"""Detecting $t_c$ in a black-box score, spatial exponents and finite-size scaling.

See `docs/theory/nets.md#detecting-critical-time` and `docs/theory/field.md#exponents`. Two groups of tools.

**1. Critical-time detectors** for any score callable ``score_fn(x, t)`` (batched, as in
:func:`gltheory.sample`: ``x`` of shape ``(n, *lattice)``, scalar ``t``; exact scores, patch
scores, trained networks). Each returns a :class:`CriticalTimeEstimate`: the estimate, its
statistical standard error ``se`` (bootstrap, stated per detector), an interpolation/grid
error ``interp_err`` (stated per detector), and the curve it was read from.

- :func:`softening_time` (`docs/theory/nets.md#detecting-critical-time`, item 1): random-phase plane-wave JVP probes of the band
  stiffness $\hat\mu(q,t)$ (:func:`gltheory.band_stiffness`) or exact plane-wave Rayleigh
  quotients (:func:`gltheory.mode_stiffness`) at given states, averaged over trajectories;
  $t_c$ is where $\hat\mu(q_{\min},t)+o(t)$ first turns positive in generation order, with
  the offset $o$ of :func:`gltheory.drift_offset` (0: score criterion S; VP/OU reverse SDE:
  $\tfrac12$, i.e. OU $1+2\hat\mu$; PF-ODE: 1). SE: bootstrap over trajectories (each with its
  own probe phases), so it covers the probe noise too.
- :func:`xi_peak_time` (`docs/theory/nets.md#detecting-critical-time`, item 2): the time of the maximum of $\xi(t)$ of the increments
  (or values) of the denoised field $\hat x_0(x_t)$ along reverse trajectories, with
  :func:`gltheory.field.structure_factor` / :func:`gltheory.field.correlation_length`. SE:
  bootstrap over trajectories; ``interp_err``: half the local grid spacing (parabolic
  vertex on a grid that resolves the peak).
- :func:`cloning_time` (`docs/theory/nets.md#detecting-critical-time`, item 3; `docs/theory/cloning.md#cloning-time`): the crossing of the cloning probability
  $\phi(t)$ (:func:`gltheory.cloning_probability`) through a level (0.7752, the large-$d$
  calibration of Biroli et al.) or the time of $\max|d\phi/dt|$. SE: parametric bootstrap
  from the binomial SEs of $\phi$ at each branch time (treated as independent).

**What each detector recovers on the patch model** (two uniform images $\pm\mathbf1$,
window $k$, `docs/theory/patch.md#mode-softening`; $t_c^S=\tfrac12\ln(1+k^D)$, $t_c^D=\tfrac12{\rm arcsinh}\,k^D$ under
OU). The three are *different definitions* of "the" critical time:

- the stiffness at the symmetric point $x=0$ (``states`` all zero, ``q`` = 0 or the lowest
  band holding only $q=0$) is exactly the linear criterion: it recovers $t_c^S$ (``"score"``)
  and $t_c^D$ (``"sde"``) up to the interpolation error;
- averaged along reverse trajectories the Jacobian is $\frac{a^2}{b^4}\,{\rm sech}^2(u_i)K
  -\frac1{b^2}$ with $u=a(Kx)/b^2=O(1)$ noise, so $\langle{\rm sech}^2\rangle<1$: the
  averaged $\hat\mu(0,t)$ never turns positive (measured, $k=5$), but it has a maximum (the
  softest moment, ``mode="peak"``) *later in generation* than $t_c^S$: measured offset
  $\approx-0.2$ in $t$ for $k=5$, 1-D (``gltheory.experiments.criticality``);
- the cloning crossing $\phi=0.775$ recovers Biroli's $t_S$ for two clusters in high
  dimension (its calibration, tested); on the patch model with the class = the sign of one
  site it fires at about the same time as the softest moment (offset $\approx-0.2$, $k=5$);
- the $\xi$ peak of the denoised-field increments is *not* resolved on the 1-D patch model
  with $k=5$ (the increment $\xi$ is largest early, set by the window; `docs/theory/field.md#pattern-formation`: the
  growth is smooth for small $k$): the detector is validated on planted fields only.

**2. Exponents and finite-size scaling.**

- :func:`fit_divergence`: $y\propto|\epsilon|^{-\theta}$ by weighted log-log least squares
  (:func:`gltheory.meanfield.fit_exponent`); $\theta=\nu$ for $\xi$, $\gamma$ for $S(0)$.
- :func:`reduced_distance`: $\epsilon=\sigma^2(t)/\sigma_c^2-1={\rm SNR}_c/{\rm SNR}(t)-1$,
  the distance in the VE "temperature" $T=\sigma^2$ (`docs/theory/score.md#free-energy`) in which the linear-response
  length of the patch model is an exact power law, $\xi^2=\frac{k^2-1}{24}\epsilon^{-1}$
  (1-D; `docs/theory/field.md#correlation-length`), so $\nu=\tfrac12$.
- :func:`langevin_structure_factor`: Monte Carlo structure factor of the score field frozen
  at time $t$, sampled by Langevin dynamics $dx=s(x,t)\,d\tau+\sqrt{2\theta}\,dW$ at a small
  temperature $\theta$. For a symmetric Jacobian $J$ at the fixed point its stationary law is
  Gaussian with $S(q)=\theta/(-\mu(q,t))$ (fluctuation–dissipation), whose second-moment
  length is the linear-response $\xi$: the "measured" $\nu$ and $\gamma$ of `docs/theory/field.md#exponents`.
- :func:`binder_crossings`: crossings of Binder cumulant curves of successive sizes.
- :func:`collapse_quality` / :func:`fit_collapse`: Houdayer–Hartmann data collapse (the
  algorithm of pyfssa, written in JAX): $x=L^{1/\nu}(\rho-\rho_c)$, $y=L^{-\zeta/\nu}a$, the
  master curve at each point estimated by a weighted linear fit to the two bracketing points
  of every *other* size, quality $S=$ mean of $(y-Y)^2/(dy^2+dY^2)$; minimised with
  ``optimistix.BFGS``; errors from the Hessian (``jax.hessian``) at the minimum,
  ${\rm Cov}=2S_{\min}H^{-1}$ (pyfssa's Nelder–Mead-simplex formula, i.e. the parameter
  change that raises $S$ by $S_{\min}$).

All results are **[DERIVED]** (the paper's own estimators could not be read; see `docs/theory/nets.md#detecting-critical-time`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, PRNGKeyArray, Real

from ._checks import (
    PROCESS,
    as_float_array,
    batch_shape,
    check_callable,
    check_indices,
    check_instance,
    check_labels,
    fold_keys,
    precheck_labels,
    state_dtype,
    trusted,
)
from .field import correlation_length, structure_factor
from .meanfield import ExponentFit, fit_exponent
from .observables import PHI_SPECIATION
from .processes import AbstractProcess
from .sampling import (
    METHODS,
    Indices,
    TrajectoryKeys,
    as_trajectory_keys,
    branch,
    check_time_grid,
    nonfinite_rows,
    sample,
    states_at,
)
from .spectral import drift_offset, mode_stiffness

__all__ = [
    "CriticalTimeEstimate",
    "DivergenceFit",
    "BinderCrossings",
    "CollapseFit",
    "first_crossing",
    "peak_time",
    "trajectory_states",
    "denoised_fields",
    "stiffness_curves",
    "softening_time",
    "xi_peak_time",
    "cloning_time",
    "reduced_distance",
    "fit_divergence",
    "langevin_structure_factor",
    "binder_crossings",
    "scale_collapse",
    "collapse_quality",
    "fit_collapse",
]

ScoreFn = Callable[[Array, Array], Array]
Criterion = Literal["score", "sde", "ode"]
# Arrays or plain Python lists of numbers (the finite-size tools take tables of either kind).
ArrayOrList = ArrayLike | Sequence[Any]


# ----------------------------------------------------------------------------------------
# result types
# ----------------------------------------------------------------------------------------


class CriticalTimeEstimate(NamedTuple):
    r"""A critical-time estimate with its uncertainty and the curve it was read from.

    - `t_c`: the estimate (NaN when the curve never crosses / has no interior peak).
    - `se`: statistical standard error (bootstrap; how, is stated by each detector).
    - `interp_err`: interpolation / grid error estimate (stated by each detector).
    - `t`: times of the curve, in generation order (decreasing).
    - `curve`, `curve_se`: the statistic and its pointwise bootstrap SE.
    - `method`: which detector and criterion produced it.
    - `n_nonfinite`: number of trajectories with a NaN/Inf state or per-trajectory value; when
      it is not zero `t_c`, `se` and `interp_err` are NaN (no estimate, and no bootstrap
      ``se = 0``, is built on non-finite trajectories; nothing is raised, also under ``jit``).

    The total uncertainty is :attr:`err` $=\sqrt{{\rm se}^2+{\rm interp\_err}^2}$.
    """

    t_c: Array
    se: Array
    interp_err: Array
    t: Array
    curve: Array
    curve_se: Array
    method: str
    n_nonfinite: Array | int = 0

    @property
    def err(self) -> Array:
        return jnp.sqrt(self.se**2 + self.interp_err**2)


class DivergenceFit(NamedTuple):
    r"""$y\simeq A\,\epsilon^{-\theta}$: `exponent` $\theta$, its `se`, and the underlying log-log `fit`."""

    exponent: Array
    se: Array
    fit: ExponentFit


class BinderCrossings(NamedTuple):
    r"""Crossings of Binder curves of successive sizes $(L_i, L_{i+1})$.

    - `t`: crossing points, shape ``(n_sizes - 1,)`` (NaN where the curves do not cross).
    - `se`: delta-method SE, $\sqrt{{\rm se}_{U_i}^2+{\rm se}_{U_{i+1}}^2}/|d(U_i-U_{i+1})/dt|$
      at the crossing (0 without ``U_se``).
    - `interp_err`: |linear - quadratic| interpolation of the crossing.
    - `sizes`: the pairs, shape ``(n_sizes - 1, 2)``.
    """

    t: Array
    se: Array
    interp_err: Array
    sizes: Array


class CollapseFit(NamedTuple):
    r"""Result of :func:`fit_collapse`.

    - `rho_c`, `nu`, `zeta`: the optimum of the Houdayer–Hartmann quality.
    - `errors`: standard errors of ``(rho_c, nu, zeta)`` (0 for a fixed ``zeta``).
    - `cov`: $2S_{\min}H^{-1}$ (free parameters; zero row/column for a fixed ``zeta``).
    - `quality`: $S_{\min}$ (about 1 for a good collapse with correct error bars).
    - `n_points`: points with a master-curve estimate at the optimum.
    """

    rho_c: Array
    nu: Array
    zeta: Array
    errors: Array
    cov: Array
    quality: Array
    n_points: Array


# ----------------------------------------------------------------------------------------
# curves: crossings and peaks
# ----------------------------------------------------------------------------------------


def _check_curve(t, y, name="y"):
    t = as_float_array(t, "t")
    y = as_float_array(y, name)
    if t.ndim != 1 or t.shape[0] < 3:
        raise ValueError(f"t must be a 1-D grid of at least 3 times, got shape {t.shape}.")
    if y.shape[-1:] != t.shape:
        raise ValueError(
            f"{name} must end with the time axis of length {t.shape[0]}, got {y.shape}."
        )
    dtype = jnp.result_type(t, y)
    return t.astype(dtype), y.astype(dtype)


def _quad_root(tt, dd, t_start):
    """Root near ``t_start`` of the quadratic through three points (Newton, 8 steps)."""

    def p(s):
        l0 = (s - tt[1]) * (s - tt[2]) / ((tt[0] - tt[1]) * (tt[0] - tt[2]))
        l1 = (s - tt[0]) * (s - tt[2]) / ((tt[1] - tt[0]) * (tt[1] - tt[2]))
        l2 = (s - tt[0]) * (s - tt[1]) / ((tt[2] - tt[0]) * (tt[2] - tt[1]))
        return dd[0] * l0 + dd[1] * l1 + dd[2] * l2

    dp = jax.grad(p)

    def body(_, s):
        g = dp(s)
        return jnp.where(jnp.abs(g) > 0, s - p(s) / jnp.where(g == 0, 1.0, g), s)

    return jax.lax.fori_loop(0, 8, body, t_start)


def _crossing_impl(t, y, level):
    n = t.shape[0]
    d = y - level
    finite = jnp.isfinite(d)
    s0 = jnp.sign(d[0])
    flips = finite[1:] & ((jnp.sign(d[1:]) != s0) | (d[1:] == 0)) & (s0 != 0)
    has = jnp.any(flips) & finite[0]
    i = jnp.argmax(flips) + 1
    t0, t1, d0, d1 = t[i - 1], t[i], d[i - 1], d[i]
    denom = jnp.where(d0 == d1, 1.0, d0 - d1)
    lin = t0 + (t1 - t0) * d0 / denom
    j = jnp.clip(i, 1, n - 2)  # three points j-1, j, j+1 containing the bracket
    j = jnp.where(i == n - 1, n - 2, jnp.where(i - 1 == 0, 1, j))
    tt = jax.lax.dynamic_slice(t, (j - 1,), (3,))
    dd = jax.lax.dynamic_slice(d, (j - 1,), (3,))
    quad = _quad_root(tt, jnp.where(jnp.isfinite(dd), dd, 0.0), lin)
    lo, hi = jnp.minimum(t0, t1), jnp.maximum(t0, t1)
    ok_quad = (quad >= lo) & (quad <= hi) & jnp.all(jnp.isfinite(dd))
    err = jnp.where(ok_quad, jnp.abs(quad - lin), 0.5 * (hi - lo))
    nan = jnp.asarray(jnp.nan, t.dtype)
    return jnp.where(has, lin, nan), jnp.where(has, err, nan)


def first_crossing(t: ArrayLike, y: ArrayLike, level: ArrayLike = 0.0) -> tuple[Array, Array]:
    r"""First crossing of ``level`` by a sampled curve, scanning ``t`` in the given order.

    Finds the first index $i$ where $y_i-\ell$ changes sign with respect to $y_0-\ell$ and
    interpolates linearly between $t_{i-1}$ and $t_i$. The interpolation error is estimated as
    the distance to the root of the quadratic through the three grid points around the
    bracket (half the bracket when that root leaves it). Pass ``t`` in generation order
    (decreasing) to get the first crossing *during generation*. Jit- and vmap-able.

    **Arguments:**

    - `t`: grid, shape ``(n,)``, $n\ge3$.
    - `y`: values, shape ``(..., n)`` (leading axes are vectorised).
    - `level`: $\ell$.

    **Returns:** ``(t_cross, interp_err)``, NaN where there is no crossing.
    """
    t, y = _check_curve(t, y)
    return _crossing_jit(t, y, jnp.asarray(level, t.dtype))


@jax.jit
@trusted
def _crossing_jit(t, y, level):
    flat = y.reshape(-1, t.shape[0])
    tc, err = jax.vmap(lambda yy: _crossing_impl(t, yy, level))(flat)
    return tc.reshape(y.shape[:-1]), err.reshape(y.shape[:-1])


@jax.jit
@trusted
def _peak_jit(t, y):
    flat = y.reshape(-1, t.shape[0])
    tp, err = jax.vmap(lambda yy: _peak_impl(t, yy))(flat)
    return tp.reshape(y.shape[:-1]), err.reshape(y.shape[:-1])


def _peak_impl(t, y):
    n = t.shape[0]
    yf = jnp.where(jnp.isfinite(y), y, -jnp.inf)
    i = jnp.argmax(yf)
    interior = (i > 0) & (i < n - 1) & jnp.isfinite(yf[i])
    j = jnp.clip(i, 1, n - 2)
    t0, t1, t2 = t[j - 1], t[j], t[j + 1]
    y0, y1, y2 = y[j - 1], y[j], y[j + 1]
    f01 = (y1 - y0) / (t1 - t0)
    f12 = (y2 - y1) / (t2 - t1)
    f012 = (f12 - f01) / (t2 - t0)
    vertex = 0.5 * (t0 + t1) - f01 / (2 * jnp.where(f012 == 0, -1.0, f012))
    lo, hi = jnp.minimum(t0, t2), jnp.maximum(t0, t2)
    vertex = jnp.where(f012 < 0, jnp.clip(vertex, lo, hi), t1)
    nan = jnp.asarray(jnp.nan, t.dtype)
    return jnp.where(interior, vertex, nan), jnp.where(interior, 0.25 * (hi - lo), nan)


def peak_time(t: ArrayLike, y: ArrayLike) -> tuple[Array, Array]:
    r"""Location of the maximum of a sampled curve: parabolic vertex through the grid maximum.

    The vertex of the parabola through the grid maximum and its two neighbours (any grid
    spacing). ``interp_err`` is half the local grid spacing, a bound on the error when the
    grid resolves the peak. A maximum on the first or last grid point is not a peak: NaN.

    **Arguments:** `t` ``(n,)``, $n\ge3$; `y` ``(..., n)``.

    **Returns:** ``(t_peak, interp_err)``.
    """
    t, y = _check_curve(t, y)
    return _peak_jit(t, y)


def _check_key(key):
    if key is None:
        raise ValueError("key must be a PRNG key (jax.random.PRNGKey(...)).")
    return key


def _nanstd(v):
    ok = jnp.isfinite(v)
    m = jnp.sum(jnp.where(ok, v, 0.0)) / jnp.maximum(jnp.sum(ok), 1)
    var = jnp.sum(jnp.where(ok, (v - m) ** 2, 0.0)) / jnp.maximum(jnp.sum(ok) - 1, 1)
    return jnp.sqrt(var)


def _refuse_nonfinite(est: CriticalTimeEstimate, bad) -> CriticalTimeEstimate:
    """``est`` with its count of non-finite trajectories, and NaN estimates if it is not 0."""
    n_bad = jnp.sum(bad, dtype=jnp.int32)
    nan_if = lambda v: jnp.where(n_bad > 0, jnp.nan, v)  # noqa: E731
    return est._replace(
        t_c=nan_if(est.t_c), se=nan_if(est.se), interp_err=nan_if(est.interp_err), n_nonfinite=n_bad
    )


def _check_n_boot(n_boot):
    if not isinstance(n_boot, int | np.integer) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}.")
    return int(n_boot)


# ----------------------------------------------------------------------------------------
# states along reverse trajectories
# ----------------------------------------------------------------------------------------


def _identity(x, t):
    del t
    return x


def trajectory_states(
    score_fn: ScoreFn,
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    save_at: Indices | None = None,
    method: str = "euler_maruyama",
) -> tuple[Array, Array]:
    r"""States of reverse trajectories at saved grid times, for the detectors.

    Runs :func:`gltheory.sample` with an identity ``observe`` and returns
    ``(saved_ts, states)``, ``states`` of shape ``(n_saved, n, *lattice)``.
    """
    sol = sample(
        score_fn, process, key, x, ts=ts, method=method, observe=_identity, save_at=save_at
    )
    return sol.saved_ts, sol.observables


class _DenoisedObserver(eqx.Module):
    score_fn: Callable
    process: AbstractProcess

    def __call__(self, x, t):
        a, b2 = self.process.a(t), self.process.b2(t)
        return (x + b2 * self.score_fn(x, t)) / a


def denoised_fields(
    score_fn: ScoreFn,
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    save_at: Indices | None = None,
    method: str = "euler_maruyama",
) -> tuple[Array, Array]:
    r"""Denoised fields $\hat x_0(x_t)=(x_t+b_t^2s(x_t,t))/a_t$ (Tweedie) along reverse trajectories.

    Computed inside the sampler's loop at the saved times (the score is the only model
    access: works for a black-box network). Returns ``(saved_ts, fields)``, ``fields`` of
    shape ``(n_saved, n, *lattice)``.
    """
    sol = sample(
        score_fn,
        process,
        key,
        x,
        ts=ts,
        method=method,
        observe=_DenoisedObserver(score_fn, process),
        save_at=save_at,
    )
    return sol.saved_ts, sol.observables


# ----------------------------------------------------------------------------------------
# detector 1: mode softening
# ----------------------------------------------------------------------------------------


def _check_states(ts, states):
    ts = as_float_array(ts, "ts")
    states = as_float_array(states, "states")
    if ts.ndim != 1 or ts.shape[0] < 3:
        raise ValueError(f"ts must be a 1-D grid of at least 3 times, got shape {ts.shape}.")
    if states.ndim not in (3, 4) or states.shape[0] != ts.shape[0]:
        raise ValueError(
            "states must have shape (n_times, n_traj, *lattice) with a 1-D or 2-D lattice and "
            f"n_times = len(ts) = {ts.shape[0]}, got {states.shape}."
        )
    if _concrete(ts) and not bool(np.all(np.diff(np.asarray(ts)) < 0)):
        raise ValueError("ts must be strictly decreasing (generation order).")
    return ts.astype(states.dtype), states


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _axes(lattice) -> tuple[int, ...]:
    return tuple(range(-len(lattice), 0))


def _band_masks(lattice, n_bands: int, dtype) -> Array:
    """Radial band indicator masks on the lattice grid, exactly as in ``band_stiffness``."""
    axes = [2 * np.pi * np.fft.fftfreq(L) for L in lattice]
    grids = np.meshgrid(*axes, indexing="ij")
    qabs = np.sqrt(sum(g**2 for g in grids))
    edges = np.linspace(0.0, qabs.max() * (1 + 1e-9) + 1e-12, n_bands + 1)
    band_of = np.clip(np.searchsorted(edges, qabs, side="right") - 1, 0, n_bands - 1)
    return jnp.asarray(np.stack([band_of == b for b in range(n_bands)]), dtype=dtype)


def stiffness_curves(
    score_fn: ScoreFn,
    states: ArrayLike,
    ts: ArrayLike,
    key: PRNGKeyArray,
    *,
    q: ArrayLike | None = None,
    n_bands: int = 8,
    band: int = 0,
    n_probes: int = 4,
) -> Array:
    r"""Per-trajectory stiffness $\hat\mu(q,t)$ at the given states, shape ``(n_times, n_traj)``.

    With ``q=None``: band ``band`` of :func:`gltheory.band_stiffness` (random-phase probes,
    ``n_probes`` per point, fresh phases for every time and trajectory; the same probes and
    estimator as ``band_stiffness(..., key=k).mu[band]`` with the point's key ``k``, computed
    for one band and vectorised over points, which ``band_stiffness`` itself is not). Band 0
    holds only $q=0$ when ``n_bands > max(L) / 2`` (bands are equal-width in $|q|$ up to
    $\max|q|$). With ``q`` (shape
    ``(n_q, D)`` or ``(n_q,)`` in 1-D): the mean over the listed wavevectors of the exact
    plane-wave Rayleigh quotient :func:`gltheory.mode_stiffness`. ``score_fn`` is batched
    (as for the sampler); it is evaluated on one configuration at a time as
    ``score_fn(x[None], t)[0]``.
    """
    ts, states = _check_states(ts, states)
    if not isinstance(band, int | np.integer) or not 0 <= band < n_bands:
        raise ValueError(f"band must be an integer in [0, n_bands={n_bands}), got {band!r}.")
    if not isinstance(n_probes, int | np.integer) or n_probes < 1:
        raise ValueError(f"n_probes must be a positive integer, got {n_probes!r}.")
    qs = None
    if q is not None:
        qs = as_float_array(q, "q").astype(states.dtype)
        if qs.ndim == 1 and states.ndim == 3:
            qs = qs[:, None]
    return _stiffness_impl(score_fn, states, ts, key, qs, int(n_bands), int(band), int(n_probes))


@eqx.filter_jit
@trusted
def _stiffness_impl(score_fn, states, ts, key, qs, n_bands, band, n_probes):
    single = lambda y, t: score_fn(y[None], t)[0]  # noqa: E731
    n_t, n = states.shape[:2]
    if qs is None:
        lattice = tuple(states.shape[2:])
        masks = _band_masks(lattice, n_bands, states.dtype)
        shape = (n_bands, n_probes) + lattice

        def point(x, t, k):
            # the probes of gltheory.band_stiffness(single, x, t, k), band `band` only
            phi = 2 * jnp.pi * jax.random.uniform(k, shape, dtype=x.dtype)[band]
            e = jnp.real(jnp.fft.ifftn(masks[band] * jnp.exp(1j * phi), axes=_axes(lattice)))
            je = jax.vmap(lambda v: jax.jvp(lambda y: single(y, t), (x,), (v,))[1])(e)
            return jnp.sum(e * je) / jnp.sum(e * e)

    else:

        def point(x, t, k):
            del k
            return jnp.mean(mode_stiffness(single, x, t, qs))

    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(key, i), n))(jnp.arange(n_t))

    def at_time(args):
        xs, t, ks = args
        return jax.vmap(lambda x, k: point(x, t, k))(xs, ks)

    return jax.lax.map(at_time, (states, ts, keys))


def softening_time(
    score_fn: ScoreFn,
    process: AbstractProcess,
    states: ArrayLike,
    ts: ArrayLike,
    key: PRNGKeyArray,
    *,
    criterion: Criterion | str = "score",
    q: ArrayLike | None = None,
    n_bands: int = 8,
    band: int = 0,
    n_probes: int = 4,
    mode: Literal["crossing", "peak"] | str = "crossing",
    n_boot: int = 200,
) -> CriticalTimeEstimate:
    r"""Critical time from mode softening: first zero of $\hat\mu(q_{\min},t)+o(t)$ in generation order.

    See `docs/theory/nets.md#detecting-critical-time`, item 1. $\hat\mu$ is the trajectory average of :func:`stiffness_curves` at
    ``states`` (e.g. from :func:`trajectory_states`; all-zero states give the linearisation
    at the symmetric point), $o$ the offset of :func:`gltheory.drift_offset` for
    ``criterion`` (``"score"`` S, ``"sde"`` reverse-SDE D, ``"ode"`` O). The curve is
    negative (stable) at large $t$; $t_c$ is where it first turns positive
    (:func:`first_crossing` on the decreasing grid).

    ``mode="peak"`` returns instead the time where the curve is *maximal* (the softest
    moment, :func:`peak_time`): along trajectories of the patch model the averaged $q=0$
    stiffness of the score never turns positive (the ${\rm sech}^2$ factor, module
    docstring) but has a sharp maximum after $t_c^S$, which this mode locates.

    **Uncertainty:** ``se`` = standard deviation of $t_c$ over ``n_boot`` bootstrap resamples
    of the trajectories (probe phases resampled with them); ``interp_err`` = linear vs
    quadratic interpolation of the crossing (``"peak"``: half the local grid spacing).

    **Calibration** (patch model, module docstring): at $x=0$ with the band holding only
    $q=0$ (or ``q=[0]``) it returns $t_c^S$ / $t_c^D$ / $t_c^O$ exactly up to interpolation;
    averaged along trajectories it crosses later in generation (documented offset).

    **Arguments:**

    - `score_fn`: batched score; `process`: forward process (for the offset).
    - `states`: shape ``(n_times, n_traj, *lattice)``; `ts`: their times, strictly decreasing.
    - `key`: PRNG key for probes and bootstrap.
    - `criterion`, `q`, `n_bands`, `band`, `n_probes`: as above / :func:`stiffness_curves`.
    - `n_boot`: bootstrap resamples.

    **Returns:** a :class:`CriticalTimeEstimate` (curve = $\hat\mu+o$; trajectories with a
    NaN/Inf state counted in ``n_nonfinite``, which makes the estimate NaN).
    """
    n_boot = _check_n_boot(n_boot)
    ts, states = _check_states(ts, states)
    off = drift_offset(process, ts, criterion).astype(states.dtype)
    k_probe, k_boot = jax.random.split(_check_key(key))
    mu = stiffness_curves(
        score_fn, states, ts, k_probe, q=q, n_bands=n_bands, band=band, n_probes=n_probes
    )
    if mode not in ("crossing", "peak"):
        raise ValueError(f"mode must be 'crossing' or 'peak', got {mode!r}.")
    curve_pt = mu + off[:, None]
    est = _estimate_from_per_traj(
        ts, curve_pt, k_boot, n_boot, mode, f"softening/{criterion}/{mode}"
    )
    return _refuse_nonfinite(est, nonfinite_rows(states, 1) | nonfinite_rows(curve_pt, 1))


def _estimate_from_per_traj(ts, per_traj, key, n_boot, kind, method, level=0.0):
    t_c, interp, se, curve, curve_se = _per_traj_impl(
        ts, per_traj, key, jnp.asarray(level, ts.dtype), n_boot, kind
    )
    return CriticalTimeEstimate(t_c, se, interp, ts, curve, curve_se, method)


@functools.partial(jax.jit, static_argnums=(4, 5))
@trusted
def _per_traj_impl(ts, per_traj, key, level, n_boot, kind):
    curve = jnp.mean(per_traj, axis=1)
    n = per_traj.shape[1]
    if kind == "crossing":
        one = lambda c: _crossing_impl(ts, c, level)  # noqa: E731
    else:
        one = lambda c: _peak_impl(ts, c)  # noqa: E731
    t_c, interp = one(curve)
    if n > 1:
        idx = jax.random.randint(key, (n_boot, n), 0, n)
        boots = jax.vmap(lambda ix: one(jnp.mean(per_traj[:, ix], axis=1))[0])(idx)
        se = _nanstd(boots)
        curve_se = jnp.std(per_traj, axis=1, ddof=1) / np.sqrt(n)
    else:
        se = jnp.zeros((), ts.dtype)
        curve_se = jnp.zeros_like(curve)
    return t_c, interp, se, curve, curve_se


# ----------------------------------------------------------------------------------------
# detector 2: correlation-length peak
# ----------------------------------------------------------------------------------------


def xi_peak_time(
    fields: ArrayLike,
    ts: ArrayLike,
    key: PRNGKeyArray,
    *,
    increments: bool = True,
    growth: bool = False,
    method: Literal["second_moment", "integrated", "one_over_e"] | str = "second_moment",
    n_boot: int = 200,
) -> CriticalTimeEstimate:
    r"""Critical time as the peak of the correlation length $\xi(t)$ of the denoised field (`docs/theory/nets.md#detecting-critical-time`, item 2).

    ``fields`` are denoised fields along reverse trajectories (:func:`denoised_fields`). With
    ``increments`` the field at time $\bar t_i=\tfrac12(t_i+t_{i+1})$ is the increment
    $\hat x_0(x_{t_{i+1}})-\hat x_0(x_{t_i})$ (what changes during that step), else the
    field itself at $t_i$. At each time $S(q)$ is averaged over trajectories
    (:func:`gltheory.field.structure_factor`) and $\xi$ is
    :func:`gltheory.field.correlation_length` with ``method``; $t_c$ is the parabolic vertex
    at the maximum (:func:`peak_time`). With ``growth`` the curve is instead the growth rate
    $-d\xi/dt$ (finite differences at midpoints, i.e. $d\xi/d(-t)$ of `docs/theory/nets.md#detecting-critical-time`, item 2): the time
    where correlations build up fastest during generation.

    **Uncertainty:** ``se`` = bootstrap over trajectories of the whole procedure;
    ``interp_err`` = half the local grid spacing.

    **Calibration:** recovers a planted peak of $\xi(t)$ (Gaussian fields with an
    Ornstein–Zernike $S(q,t)$, tested); not the linear $t_c$. On the 1-D patch model with
    $k=5$ no peak is resolved (module docstring).

    **Returns:** a :class:`CriticalTimeEstimate` (curve = $\xi$; ``curve_se`` bootstrap;
    trajectories with a NaN/Inf field counted in ``n_nonfinite``, which makes the estimate NaN).
    """
    n_boot = _check_n_boot(n_boot)
    ts, f = _check_states(ts, fields)
    if method not in ("second_moment", "integrated", "one_over_e"):
        raise ValueError(
            f"method must be 'second_moment', 'integrated' or 'one_over_e', got {method!r}."
        )
    n_t = ts.shape[0] - bool(increments) - bool(growth)
    if n_t < 3:
        raise ValueError(
            f"the curve needs at least 3 times, got {n_t} (increments/growth use one each)."
        )
    out = _xi_impl(f, ts, _check_key(key), n_boot, bool(increments), bool(growth), method)
    name = f"xi_{'growth' if growth else 'peak'}/{method}/{'increments' if increments else 'field'}"
    return _refuse_nonfinite(CriticalTimeEstimate(*out, name), nonfinite_rows(f, 1))


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
@trusted
def _xi_impl(f, ts, key, n_boot, increments, growth, method):
    D = f.ndim - 2
    ax = tuple(range(-D, 0))
    if increments:
        f = f[1:] - f[:-1]
        ts = 0.5 * (ts[1:] + ts[:-1])
    per = jax.vmap(jax.vmap(lambda y: structure_factor(y, axes=ax)))(f)  # (n_t, n, *lattice)

    def xi_of(s_mean):
        return correlation_length(s_mean, method=method, axes=ax, from_structure_factor=True)

    if growth:
        tc_grid = 0.5 * (ts[1:] + ts[:-1])

        def curve_of(s_stack):
            xi = xi_of(s_stack)
            return -jnp.diff(xi) / jnp.diff(ts)

    else:
        tc_grid = ts
        curve_of = xi_of
    curve = curve_of(jnp.mean(per, axis=1))
    t_c, interp = _peak_impl(tc_grid, curve)
    n = per.shape[1]
    idx = jax.random.randint(key, (n_boot, n), 0, n)

    def one(ix):
        c_b = curve_of(jnp.mean(per[:, ix], axis=1))
        return _peak_impl(tc_grid, c_b)[0], c_b

    tb, cb = jax.lax.map(one, idx)
    return t_c, _nanstd(tb), interp, tc_grid, curve, jnp.std(cb, axis=0, ddof=1)


# ----------------------------------------------------------------------------------------
# detector 3: cloning
# ----------------------------------------------------------------------------------------


def cloning_time(
    score_fn: ScoreFn,
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    branch_index: Indices | ArrayLike,
    classify: Callable[[Array], Array] | Any,
    mode: Literal["level", "max_slope"] | str = "level",
    level: Real[ArrayLike, ""] = PHI_SPECIATION,
    n_boot: int = 400,
    method: str = "euler_maruyama",
) -> CriticalTimeEstimate:
    r"""Critical time from the cloning probability $\phi(t)$ (`docs/theory/nets.md#detecting-critical-time`, item 3; `docs/theory/cloning.md#cloning-time`).

    $\phi$ at the branch times ``ts[branch_index]``: the estimator of
    :func:`gltheory.cloning_probability` (two copies), with all branches continued in one
    compiled, masked scan (one compilation instead of one per branch time).
    ``mode="level"``: the first time in generation order where $\phi$ reaches ``level``
    (default 0.7752 = $\phi(t_S)$ of two clusters at large $d$, Biroli et al.'s
    calibration); ``mode="max_slope"``: the peak of $|d\phi/dt|$ (finite differences at
    midpoints, parabolic vertex).

    **Uncertainty:** ``se`` = parametric bootstrap, $\phi_b=\phi+{\rm se}_\phi z$ with
    independent normal $z$ per branch time (the copies after each branch are independent;
    the shared pre-branch states are ignored); ``interp_err`` as in :func:`first_crossing` /
    :func:`peak_time`.

    **Calibration:** the 0.775 level recovers Biroli's speciation time $t_S$ of two clusters
    in high dimension (tested in ``test_criticality``); on the patch model, with ``classify``
    the sign of one site, it is a different (local) definition with a measured offset.

    **Returns:** a :class:`CriticalTimeEstimate` (curve = $\phi$ or $|d\phi/dt|$; $\phi$ is
    NaN at branch times where a trajectory or copy has a NaN/Inf state, and such trajectories,
    counted in ``n_nonfinite``, make the estimate NaN).
    """
    if mode not in ("level", "max_slope"):
        raise ValueError(f"mode must be 'level' or 'max_slope', got {mode!r}.")
    n_boot = _check_n_boot(n_boot)
    k_run, k_boot = jax.random.split(_check_key(key))
    t, phi, se, bad = _cloning_curve(
        score_fn, process, k_run, x, ts, branch_index, classify, method
    )
    if t.shape[0] < 3 + (mode == "max_slope"):
        raise ValueError("cloning_time needs at least 3 branch times (4 for max_slope).")
    z = jax.random.normal(k_boot, (n_boot,) + phi.shape, phi.dtype)
    phib = phi + se * z
    if mode == "level":
        t_c, interp = first_crossing(t, phi, level)
        tb, _ = first_crossing(t, phib, level)
        est = CriticalTimeEstimate(t_c, _nanstd(tb), interp, t, phi, se, "cloning/level")
        return _refuse_nonfinite(est, bad)
    tm = 0.5 * (t[1:] + t[:-1])
    slope = lambda p: jnp.abs(jnp.diff(p, axis=-1) / jnp.diff(t))
    t_c, interp = peak_time(tm, slope(phi))
    tb, _ = peak_time(tm, slope(phib))
    est = CriticalTimeEstimate(
        t_c,
        _nanstd(tb),
        interp,
        tm,
        slope(phi),
        jnp.std(slope(phib), axis=0, ddof=1),
        "cloning/max_slope",
    )
    return _refuse_nonfinite(est, bad)


def _cloning_curve(score_fn, process, key, x, ts, branch_index, classify, method):
    """phi(t) at every branch time with one compiled continuation for all branches.

    Same estimator as :func:`gltheory.cloning_probability` (two copies, independent noise
    after the branch, phi = fraction of agreeing pairs, se = binomial), but the copies of
    every branch are continued together by :func:`gltheory.sampling.branch` (one masked loop
    from the earliest branch index, compiled once instead of once per branch time).
    Noise: copy ``j`` of trajectory ``m`` after branch ``b`` has the trajectory key
    ``fold_in(fold_in(fold_in(key_m, 1), b), j)`` and the block noise of
    :func:`gltheory.sampling.integrate` (aligned on absolute step indices).
    """
    check_callable(score_fn, "score_fn", "score_fn(x, t)")
    check_instance(process, AbstractProcess, "process", PROCESS)
    check_callable(classify, "classify", "classify(x) -> integer labels of shape (n,)")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    ts = check_time_grid(ts, process.T)
    n_steps = ts.shape[0] - 1
    idx, _ = check_indices(branch_index, n_steps, "branch_index")
    shape = batch_shape(x)
    n = shape[0]
    precheck_labels(classify, 2 * n, shape[1:], state_dtype(x, ts.dtype))
    base = as_trajectory_keys(key, n)
    states = states_at(
        score_fn, process, fold_keys(base, 0), x, ts=ts, indices=idx, solver=method
    )  # (n_branch, n, *event)
    post = fold_keys(base, 1)
    keys = jnp.stack(
        [
            jnp.concatenate([fold_keys(fold_keys(post, b), j) for j in range(2)])
            for b in range(len(idx))
        ]
    )  # (n_branch, 2 n): copy j of trajectory m is row j * n + m
    copies = jnp.concatenate([states, states], axis=1)  # (n_branch, 2 n, *event)
    xf = branch(score_fn, process, keys, copies, ts=ts, indices=idx, solver=method)
    lab = jnp.stack([check_labels(classify, xb, 2 * n) for xb in xf])
    lab = lab.reshape(len(idx), 2, n)
    phi = jnp.mean((lab[:, 0] == lab[:, 1]).astype(jnp.result_type(float)), axis=1)
    # (n_branch, n): trajectory m is non-finite at branch b (its state or either copy's end)
    bad = jax.vmap(
        lambda sb, xb: nonfinite_rows(sb, 0) | nonfinite_rows(xb, 0).reshape(2, n).any(0)
    )(states, xf)
    phi = jnp.where(bad.any(axis=1), jnp.nan, phi)
    return ts[np.asarray(idx)], phi, jnp.sqrt(phi * (1 - phi) / n), bad.any(axis=0)


# ----------------------------------------------------------------------------------------
# exponents
# ----------------------------------------------------------------------------------------


def reduced_distance(
    process: AbstractProcess,
    t: ArrayLike,
    t_c: ArrayLike,
    *,
    variable: Literal["temperature", "snr"] | str = "temperature",
) -> Array:
    r"""Reduced distance to the transition in the VE temperature $T=\sigma^2=1/{\rm SNR}$ (`docs/theory/score.md#free-energy`).

    $$\epsilon(t)=\frac{\sigma^2(t)}{\sigma^2(t_c)}-1=\frac{{\rm SNR}(t_c)}{{\rm SNR}(t)}-1,$$
    positive before the transition in generation order ($t>t_c$). For the patch model the
    linear-response length is an exact power law in it, $\xi^2=\frac{k^2-1}{24\,\epsilon}$
    in 1-D (`docs/theory/field.md#correlation-length`, with $\bar\alpha_c=1/(1+k)$), so $\nu=\tfrac12$ exactly,
    without the $O(\epsilon)$ curvature of a log-log plot against $\bar\alpha_c-\bar\alpha$.
    """
    t = as_float_array(t, "t")
    t_c = as_float_array(t_c, "t_c")
    if variable == "temperature":
        return jnp.exp(process.log_snr(t_c) - process.log_snr(t)) - 1.0
    if variable == "snr":
        return 1.0 - jnp.exp(process.log_snr(t) - process.log_snr(t_c))
    raise ValueError(f"variable must be 'temperature' or 'snr', got {variable!r}.")


def fit_divergence(
    distance: ArrayLike,
    y: ArrayLike,
    *,
    yerr: ArrayLike | None = None,
    x_range: tuple[Real[ArrayLike, ""], Real[ArrayLike, ""]] | None = None,
) -> DivergenceFit:
    r"""Exponent $\theta$ of a divergence $y\simeq A\,\epsilon^{-\theta}$ (weighted log-log fit).

    :func:`gltheory.meanfield.fit_exponent` of $y$ against $\epsilon$ = ``distance`` (> 0) with
    optional errors ``yerr``; $\theta=-$slope and its standard error (from the fit covariance
    with ``yerr``, from the residuals without). $\xi$ gives $\nu$; $S(0)$ gives $\gamma$.
    """
    fit = fit_exponent(distance, y, yerr=yerr, x_range=x_range)
    return DivergenceFit(-fit.slope, fit.stderr, fit)


class _LangevinState(NamedTuple):
    x: Array
    s_sum: Array


def langevin_structure_factor(
    score_fn: ScoreFn,
    t: ArrayLike,
    key: PRNGKeyArray,
    x0: ArrayLike,
    *,
    dt: Real[ArrayLike, ""],
    n_burn: int,
    n_samples: int,
    thin: int = 1,
    temperature: Real[ArrayLike, ""] = 1e-3,
) -> Array:
    r"""Per-chain structure factor of the score field frozen at time $t$, by Langevin sampling.

    Leimkuhler–Matthews steps for $dx=s(x,t)\,d\tau+\sqrt{2\theta}\,dW$ (fixed $t$,
    fictitious time $\tau$, $h$ = ``dt``),
    $x_{i+1}=x_i+h\,s(x_i,t)+\sqrt{2\theta h}\,\tfrac12(R_i+R_{i+1})$, $R_i$ i.i.d. normal:
    ``n_burn`` steps, then ``n_samples`` samples every ``thin`` steps, each chain's
    $S(q)=|\hat x(q)|^2/n$ (:func:`gltheory.field.structure_factor`) averaged over its
    samples. For a linear drift $-\lambda x$ this scheme has the *exact* stationary variance
    $\theta/\lambda$ at any stable step ($h\lambda<2$), where Euler–Maruyama gives
    $\theta/(\lambda(1-h\lambda/2))$. If $s$ linearises at a fixed point to a symmetric
    $J=\sum_q\mu(q)|q\rangle\langle q|$ with all $\mu<0$ (before the transition), the
    stationary law for small $\theta$ is therefore Gaussian with
    $$S(q)=\frac{\theta}{-\mu(q,t)},$$
    so the second-moment length of $S$ is the linear-response $\xi$ of `docs/theory/field.md#correlation-length` and $S(0)/\theta$
    the static susceptibility $1/(-\mu(0))$. Chains are independent: bootstrap over them for
    errors. The slowest mode relaxes in $1/|\mu(0)|$: ``n_burn * dt`` must exceed a few of it.

    **Arguments:**

    - `score_fn`: batched score; `t`: the frozen forward time (traced).
    - `key`: PRNG key; `x0`: initial states ``(n_chains, *lattice)`` (e.g. zeros).
    - `dt`, `n_burn`, `n_samples`, `thin`, `temperature`: as above.

    **Returns:** shape ``(n_chains, *lattice)``.
    """
    x0 = as_float_array(x0, "x0")
    if x0.ndim not in (2, 3):
        raise ValueError(f"x0 must have shape (n_chains, *lattice), got {x0.shape}.")
    for name, v in (("n_burn", n_burn), ("n_samples", n_samples), ("thin", thin)):
        if not isinstance(v, int | np.integer) or v < (0 if name == "n_burn" else 1):
            raise ValueError(
                f"{name} must be a non-negative integer (thin, n_samples >= 1), got {v!r}."
            )
    if not (float(dt) > 0 and float(temperature) > 0):
        raise ValueError(f"dt and temperature must be positive, got {dt!r}, {temperature!r}.")
    return _langevin_impl(
        score_fn,
        as_float_array(t, "t").astype(x0.dtype),
        key,
        x0,
        jnp.asarray(dt, x0.dtype),
        jnp.asarray(temperature, x0.dtype),
        int(n_burn),
        int(n_samples),
        int(thin),
    )


@eqx.filter_jit
@trusted
def _langevin_impl(score_fn, t, key, x0, dt, temperature, n_burn, n_samples, thin):
    D = x0.ndim - 1
    ax = tuple(range(-D, 0))
    amp = jnp.sqrt(0.5 * temperature * dt)  # sqrt(2 theta dt) / 2

    def noise(i):
        return jax.random.normal(jax.random.fold_in(key, i), x0.shape, x0.dtype)

    def step(carry, i):
        # Leimkuhler-Matthews: x' = x + dt s(x) + sqrt(2 theta dt) (R_i + R_{i+1}) / 2
        x, r = carry
        r_next = noise(i + 1)
        return (x + dt * score_fn(x, t) + amp * (r + r_next), r_next), None

    carry, _ = jax.lax.scan(step, (x0, noise(0)), jnp.arange(n_burn))

    def sample_block(c, j):
        c, acc = c
        c, _ = jax.lax.scan(step, c, n_burn + j * thin + jnp.arange(thin))
        s = jax.vmap(lambda y: structure_factor(y, axes=ax))(c[0])
        return (c, acc + s), None

    acc0 = jnp.zeros_like(x0)
    (_, acc), _ = jax.lax.scan(sample_block, (carry, acc0), jnp.arange(n_samples))
    return acc / n_samples


# ----------------------------------------------------------------------------------------
# finite-size scaling
# ----------------------------------------------------------------------------------------


def binder_crossings(
    t: ArrayLike,
    binder: ArrayLike,
    binder_se: ArrayLike | None = None,
    *,
    sizes: ArrayOrList | None = None,
) -> BinderCrossings:
    r"""Crossing points of Binder cumulant curves $U_L(t)$ of successive sizes (finite-size scaling, `docs/theory/meanfield.md#finite-size-scaling`).

    For each pair $(L_i,L_{i+1})$ the first sign change of $d=U_{L_i}-U_{L_{i+1}}$ along
    ``t`` is interpolated linearly (:func:`first_crossing`, which also gives the
    interpolation error). With ``binder_se`` the SE is the delta method,
    $\sqrt{{\rm se}_i^2+{\rm se}_{i+1}^2}/|\partial_td|$ with SEs and slope linearly
    interpolated at the crossing. For a continuous transition the crossings converge to
    $t_c$ with corrections $\propto L^{-1/\nu-\omega}$.

    **Arguments:**

    - `t`: control-parameter grid ``(n,)`` (monotone).
    - `binder`: shape ``(n_sizes, n)``, sizes in increasing order.
    - `binder_se`: optional SEs, same shape.
    - `sizes`: optional sizes (for the ``sizes`` field; default ``0..n_sizes-1``).

    **Returns:** :class:`BinderCrossings`.
    """
    t, u = _check_curve(t, binder, "binder")
    if u.ndim != 2 or u.shape[0] < 2:
        raise ValueError(f"binder must have shape (n_sizes >= 2, n), got {u.shape}.")
    d = u[:-1] - u[1:]
    tc, interp = first_crossing(t, d, 0.0)
    if binder_se is None:
        se = jnp.zeros_like(tc)
    else:
        e = as_float_array(binder_se, "binder_se").astype(t.dtype)
        if e.shape != u.shape:
            raise ValueError(f"binder_se must have the shape of binder {u.shape}, got {e.shape}.")
        ed = jnp.sqrt(e[:-1] ** 2 + e[1:] ** 2)
        slope = jnp.gradient(d, t, axis=-1)
        at = lambda v, tt: (
            jnp.interp(tt, t, v) if bool(t[-1] > t[0]) else jnp.interp(tt, t[::-1], v[::-1])
        )
        se = jnp.stack([at(ed[i], tc[i]) / jnp.abs(at(slope[i], tc[i])) for i in range(d.shape[0])])
    sz = jnp.arange(u.shape[0]) if sizes is None else jnp.asarray(sizes)
    pairs = jnp.stack([sz[:-1], sz[1:]], axis=-1)
    return BinderCrossings(tc, se, interp, pairs)


def _check_fss(sizes, rho, a, da):
    sizes = as_float_array(sizes, "sizes")
    rho = as_float_array(rho, "rho")
    a = as_float_array(a, "a")
    da = as_float_array(da, "da")
    if sizes.ndim != 1 or rho.ndim != 1:
        raise ValueError(f"sizes and rho must be 1-D, got {sizes.shape} and {rho.shape}.")
    if a.shape != (sizes.shape[0], rho.shape[0]) or da.shape != a.shape:
        raise ValueError(
            f"a and da must have shape (len(sizes), len(rho)) = {(sizes.shape[0], rho.shape[0])}, "
            f"got {a.shape} and {da.shape}."
        )
    if sizes.shape[0] < 2:
        raise ValueError("a data collapse needs at least 2 sizes.")
    if _concrete(da) and not bool(np.all(np.asarray(da) > 0)):
        raise ValueError("da must be positive (standard errors of a).")
    if _concrete(rho) and not bool(np.all(np.diff(np.asarray(rho)) > 0)):
        raise ValueError("rho must be strictly increasing.")
    dtype = jnp.result_type(sizes, rho, a, da, float)
    return sizes.astype(dtype), rho.astype(dtype), a.astype(dtype), da.astype(dtype)


def scale_collapse(
    sizes: ArrayOrList,
    rho: ArrayOrList,
    a: ArrayOrList,
    da: ArrayOrList,
    rho_c: ArrayLike,
    nu: ArrayLike,
    zeta: ArrayLike,
) -> tuple[Array, Array, Array]:
    r"""Scaled data $x=L^{1/\nu}(\rho-\rho_c)$, $y=L^{-\zeta/\nu}a$, $dy=L^{-\zeta/\nu}da$ (pyfssa's ``scaledata``).

    Shapes: `sizes` ``(k,)``, `rho` ``(n,)``, `a`, `da` ``(k, n)``; returns three ``(k, n)``.
    """
    L = sizes[:, None]
    x = L ** (1 / nu) * (rho[None, :] - rho_c)
    f = L ** (-zeta / nu)
    return x, f * a, f * da


def _quality_impl(x, y, dy):
    k, n = x.shape
    w = dy**-2
    stack = jnp.stack([w, w * x, w * y, w * x * x, w * x * y])  # (5, k, n)
    # j'(i', i, j): x[i', j'] <= x[i, j] < x[i', j' + 1]
    jp = jax.vmap(lambda row: jnp.searchsorted(row, x, side="right") - 1)(x)  # (k, k, n)
    other = jnp.arange(k)[:, None, None] != jnp.arange(k)[None, :, None]
    valid = (jp >= 0) & (jp < n - 1) & other
    jc = jnp.clip(jp, 0, n - 2)
    ip = jnp.broadcast_to(jnp.arange(k)[:, None, None], jc.shape)
    pair = stack[:, ip, jc] + stack[:, ip, jc + 1]  # (5, k', k, n)
    sums = jnp.sum(jnp.where(valid[None], pair, 0.0), axis=1)
    K, Kx, Ky, Kxx, Kxy = sums
    has = K > 0
    delta = K * Kxx - Kx**2
    dsafe = jnp.where(has & (delta > 0), delta, 1.0)
    m = (K * Kxy - Kx * Ky) / dsafe
    b = (Kxx * Ky - Kx * Kxy) / dsafe
    Y = b + m * x
    dY2 = (Kxx - 2 * Kx * x + K * x * x) / dsafe
    ok = has & (delta > 0)
    r = jnp.where(ok, (y - Y) ** 2 / (dy**2 + dY2), 0.0)
    n_ok = jnp.sum(ok)
    return jnp.sum(r) / jnp.maximum(n_ok, 1), n_ok


def collapse_quality(
    sizes: ArrayOrList,
    rho: ArrayOrList,
    a: ArrayOrList,
    da: ArrayOrList,
    rho_c: ArrayLike,
    nu: ArrayLike,
    zeta: ArrayLike,
) -> Array:
    r"""Houdayer–Hartmann quality $S$ of the collapse of $a_L(\rho)$ (pyfssa's ``quality``), in JAX.

    With the scaled data of :func:`scale_collapse`: for every point $(i,j)$ and every other
    size $i'\neq i$, the two points $j',j'+1$ of size $i'$ with
    $x_{i'j'}\le x_{ij}<x_{i'j'+1}$ are selected; a weighted ($w=dy^{-2}$) straight line through
    all selected points gives the master-curve value $Y_{ij}$ and its variance $dY_{ij}^2$
    (the fit's covariance), and
    $$S=\frac1{\mathcal N}\sum_{ij}\frac{(y_{ij}-Y_{ij})^2}{dy_{ij}^2+dY_{ij}^2},$$
    over the $\mathcal N$ points that have at least one bracketing pair. $S\approx1$ for a
    perfect collapse within the error bars. Differentiable in $(\rho_c,\nu,\zeta)$ (piecewise:
    the selection changes discretely). Houdayer & Hartmann, PRB 70, 014418 (2004).
    """
    sizes, rho, a, da = _check_fss(sizes, rho, a, da)
    return _quality_impl(*scale_collapse(sizes, rho, a, da, rho_c, nu, zeta))[0]


def fit_collapse(
    sizes: ArrayOrList,
    rho: ArrayOrList,
    a: ArrayOrList,
    da: ArrayOrList,
    *,
    rho_c0: Real[ArrayLike, ""],
    nu0: Real[ArrayLike, ""],
    zeta0: Real[ArrayLike, ""] = 0.0,
    fix_zeta: bool = False,
    rtol: Real[ArrayLike, ""] = 1e-7,
    atol: Real[ArrayLike, ""] = 1e-9,
    max_steps: int = 4000,
) -> CollapseFit:
    r"""Optimal data collapse $a=L^{\zeta/\nu}f\big((\rho-\rho_c)L^{1/\nu}\big)$ with error estimates.

    Minimises :func:`collapse_quality` over $(\rho_c,\nu,\zeta)$ (or $(\rho_c,\nu)$ with
    ``fix_zeta``) with ``optimistix.BFGS`` from the initial guess (pyfssa uses Nelder–Mead;
    on this piecewise-smooth surface its shrinking simplex stalls on the small jumps), then estimates the
    covariance from the Hessian $H$ of $S$ at the minimum (``jax.hessian``):
    $${\rm Cov}=2S_{\min}H^{-1},$$
    the formula pyfssa applies to its final Nelder–Mead simplex (Nelder & Mead 1965 on the
    reduced $\chi^2$): the parameter change that raises $S$ by $S_{\min}$. The Hessian is the
    curvature within the current neighbour selection; the selection's discrete changes are
    not differentiated (they are small for densely sampled curves).

    **Arguments:**

    - `sizes` ``(k,)``, `rho` ``(n,)`` (increasing), `a`, `da` ``(k, n)`` (``da > 0``).
    - `rho_c0`, `nu0`, `zeta0`: initial guess; `fix_zeta`: keep $\zeta=$ ``zeta0``.
    - `rtol`, `atol`, `max_steps`: BFGS settings.

    **Returns:** a :class:`CollapseFit`.
    """
    sizes, rho, a, da = _check_fss(sizes, rho, a, da)
    dtype = a.dtype
    p0 = jnp.asarray([rho_c0, nu0] + ([] if fix_zeta else [zeta0]), dtype)
    # BFGS in scaled coordinates u (p = p0 + steps * u): steps of 5 % of the rho range, 10 % of
    # nu and 0.1 in zeta. S is piecewise smooth (the neighbour selection changes discretely);
    # its gradient exists almost everywhere and BFGS follows the smooth basin, whereas
    # Nelder-Mead's shrinking simplex stalls on the small jumps (seen on planted data).
    steps = jnp.asarray(
        [0.05 * float(rho[-1] - rho[0]), 0.1 * abs(float(nu0))] + ([] if fix_zeta else [0.1]),
        dtype,
    )
    return _fit_collapse_impl(
        sizes,
        rho,
        a,
        da,
        p0,
        steps,
        jnp.asarray(zeta0, dtype),
        bool(fix_zeta),
        float(rtol),
        float(atol),
        int(max_steps),
    )


@functools.partial(jax.jit, static_argnums=(7, 8, 9, 10))
@trusted
def _fit_collapse_impl(sizes, rho, a, da, p0, steps, zeta0, fix_zeta, rtol, atol, max_steps):
    dtype = a.dtype

    def params(p):
        return (p[0], p[1], p[2]) if not fix_zeta else (p[0], p[1], zeta0)

    def S(p):
        rc, nu, ze = params(p)
        return _quality_impl(*scale_collapse(sizes, rho, a, da, rc, nu, ze))[0]

    sol = optx.minimise(
        lambda u, _: S(p0 + steps * u),
        optx.BFGS(rtol=rtol, atol=atol),
        jnp.zeros_like(p0),
        max_steps=max_steps,
        throw=False,
    )
    p = p0 + steps * sol.value
    s_min = S(p)
    H = jax.hessian(S)(p)
    cov_free = 2 * s_min * jnp.linalg.inv(H)
    rc, nu, ze = params(p)
    n_ok = _quality_impl(*scale_collapse(sizes, rho, a, da, rc, nu, ze))[1]
    if fix_zeta:
        cov = jnp.zeros((3, 3), dtype).at[:2, :2].set(cov_free)
    else:
        cov = cov_free
    errors = jnp.sqrt(jnp.abs(jnp.diag(cov)))
    errors = jnp.where(jnp.diag(cov) > 0, errors, jnp.nan)
    if fix_zeta:
        errors = errors.at[2].set(0.0)
    return CollapseFit(rc, nu, ze, errors, cov, s_min, n_ok)
