r"""Gaussian late start (Raya & Ambrogioni's "gls"; `docs/theory/meanfield.md#late-start`).

Start the generative dynamics at $t_0 < T$ from the moment-matched Gaussian

$$q_{t_0} = \mathcal N\big(a_{t_0}\,\mathbb E[y],\; a_{t_0}^2\,\mathrm{Cov}[y] + b_{t_0}^2 I\big)$$

instead of running from $T$. The first two moments of $q_{t_0}$ equal those of the true marginal
$p_{t_0}$; for Gaussian data $q_{t_0} = p_{t_0}$ and the late start is exact at any $t_0$. For
data that break symmetry, $p_{t_0}$ is close to Gaussian only before the critical regime
(forward times $t_0$ well above $t_c$, `docs/theory/critical-times.md#raya-ambrogioni`), so the error grows once $t_0$ drops
below $t_c$.

Two exact diagnostics for one-dimensional data [DERIVED]:

- :func:`kl`: $\mathrm{KL}(p_t\,\|\,q_t)$ (or the reverse) by quadrature. The exact
  probability-flow ODE is a bijection, and KL is invariant under bijections, so
  $\mathrm{KL}(q_{t_0}\,\|\,p_{t_0})$ equals the KL between the law produced by the late-start
  PF-ODE and the true marginal at *every* later time.
- :func:`fraction`: in one dimension the exact PF-ODE map is the monotone
  (quantile-preserving) transport $F_t^{-1}\circ F_{t_0}$, so the probability that a late-start
  sample ends above a threshold is a Gaussian tail at the matching quantile of $p_{t_0}$.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from . import sampling
from ._checks import (
    DATASET,
    PROCESS,
    as_float_array,
    check_instance,
    check_time,
    is_concrete,
    trusted,
)
from .data import AbstractData
from .processes import AbstractProcess
from .sampling import Solution

__all__ = [
    "gaussian_late_start",
    "moments",
    "sample",
    "kl",
    "LateStartFraction",
    "fraction",
]


def _check_data_process(data, process):
    check_instance(data, AbstractData, "data", DATASET)
    check_instance(process, AbstractProcess, "process", PROCESS)


def _scalar_time(t, process, name):
    t = check_time(t, process.T, name)
    if t.ndim != 0:
        raise ValueError(f"{name} must be a scalar time, got shape {t.shape}.")
    return t


def moments(
    data: AbstractData, process: AbstractProcess | Any, t: Real[ArrayLike, ""]
) -> tuple[Float[Array, " d"], Float[Array, "d d"]]:
    r"""Mean and covariance of the forward marginal $p_t$ (flattened event).

    $$\mathbb E[x_t] = a_t\,\mathbb E[y],\qquad \mathrm{Cov}[x_t] = a_t^2\,\mathrm{Cov}[y] + b_t^2 I$$

    (`docs/theory/meanfield.md#late-start`): the parameters of the moment-matched Gaussian of the late start.

    **Arguments:**

    - `data`: any dataset with ``mean()`` and ``covariance()``.
    - `process`: the forward process.
    - `t`: forward time in $(0, T]$ (scalar).

    **Returns:** ``(mean, cov)`` of shapes ``(d,)`` and ``(d, d)``.
    """
    _check_data_process(data, process)
    return _moments(data, process, _scalar_time(t, process, "t"))


def _moments(data, process, t):
    mu = jnp.asarray(data.mean())
    c = jnp.asarray(data.covariance())
    dtype = jnp.result_type(mu, c, t, float)
    a = process.a(t).astype(dtype)
    b2 = process.b2(t).astype(dtype)
    mean = a * mu.astype(dtype)
    cov = a**2 * c.astype(dtype) + b2 * jnp.eye(data.dim, dtype=dtype)
    return mean, cov


def gaussian_late_start(
    data: AbstractData, process: AbstractProcess, key: PRNGKeyArray, n: int, t0: Real[ArrayLike, ""]
) -> Float[Array, " n *event"]:
    r"""Draw $n$ initial states $x_{t_0}$ from the moment-matched Gaussian (`docs/theory/meanfield.md#late-start`).

    $$x_{t_0}\sim\mathcal N\big(a_{t_0}\,\mathbb E[y],\; a_{t_0}^2\,\mathrm{Cov}[y] + b_{t_0}^2 I\big)$$

    Sampled as $\mu + L z$ with $L$ the Cholesky factor of the covariance (positive definite
    because $b_{t_0}^2>0$). Exact data moments are used, not an empirical estimate from
    training samples as in Raya & Ambrogioni's code.

    **Arguments:**

    - `data`: the dataset (its exact mean and covariance).
    - `process`: the forward process.
    - `key`: PRNG key.
    - `n`: number of states.
    - `t0`: the late-start time in $(0, T]$.

    **Returns:** an array of shape ``(n, *data.event_shape)``.
    """
    _check_data_process(data, process)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    mean, cov = _moments(data, process, _scalar_time(t0, process, "t0"))
    chol = jnp.linalg.cholesky(cov)
    z = jax.random.normal(key, (int(n), data.dim), dtype=mean.dtype)
    x = mean + z @ chol.T
    return x.reshape((int(n),) + tuple(data.event_shape))


def sample(
    score_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    key: PRNGKeyArray,
    data: AbstractData,
    n: int,
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    method: str = "heun",
    **sample_kwargs: Any,
) -> Solution:
    r"""Generate from a Gaussian late start: :func:`gaussian_late_start` at ``ts[0]``, then :func:`gltheory.sample`.

    The initial states are drawn from ``split(key)[0]``; the trajectories use ``split(key)[1]``
    (trajectory ``i`` gets ``fold_in(split(key)[1], i)`` as in :func:`gltheory.sample`).

    **Arguments:**

    - `score_fn`: ``score_fn(x, t)`` for a batch ``x`` of shape ``(n, *event)``.
    - `process`: forward process.
    - `key`: PRNG key.
    - `data`: the dataset whose moments define the start.
    - `n`: number of samples.
    - `ts`: decreasing times; ``ts[0]`` is the late-start time $t_0$ (e.g.
      ``time_grid(process, 50, t_max=t0)``).
    - `method`: sampler method (default ``"heun"``, the probability-flow ODE).
    - `sample_kwargs`: passed on to :func:`gltheory.sample` (``observe``, ``save_at``, ...).

    **Returns:** the :class:`gltheory.Solution`.
    """
    ts_arr = as_float_array(ts, "ts")
    if ts_arr.ndim != 1 or ts_arr.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D array of at least two times, got shape {ts_arr.shape}.")
    k_init, k_traj = jax.random.split(key)
    x0 = gaussian_late_start(data, process, k_init, n, ts_arr[0])
    return sampling.sample(score_fn, process, k_traj, x0, ts=ts_arr, method=method, **sample_kwargs)


# ----------------------------------------------------------------------------------------------
# one-dimensional exact diagnostics
# ----------------------------------------------------------------------------------------------


def _check_1d(data):
    if data.dim != 1:
        raise ValueError(
            f"this diagnostic needs one-dimensional data (dim 1), got event shape "
            f"{tuple(data.event_shape)}."
        )


def _grid(data, process, t, n_grid, width):
    """Uniform grid over the Gaussian's mean +- width std (and the data range)."""
    mean, cov = moments(data, process, t)
    m, v = mean[0], cov[0, 0]
    half = width * jnp.sqrt(v)
    grid = jnp.linspace(m - half, m + half, n_grid, dtype=mean.dtype)
    return grid, m, v


def _check_resolution(data, process, t, n_grid, width):
    """ValueError (outside jit) when the grid spacing does not resolve the noise width b_t."""
    if not is_concrete(t):
        return
    _, cov = moments(data, process, t)
    h = 2 * width * float(jnp.sqrt(cov[0, 0])) / (n_grid - 1)
    b = float(process.b(t))
    if h > b / 6:
        raise ValueError(
            f"n_grid={n_grid} is too small at t={float(t):.3g}: the grid spacing {h:.3g} must "
            f"resolve the noise width b_t={b:.3g} (spacing <= b_t/6); increase n_grid."
        )


def _log_p(data, process, grid, t):
    a = process.a(t).astype(grid.dtype)
    b2 = process.b2(t).astype(grid.dtype)
    return data.log_marginal(grid[:, None], a, b2)


def kl(
    data: AbstractData,
    process: AbstractProcess,
    t: Real[ArrayLike, ""],
    *,
    reverse: bool = False,
    n_grid: int = 8001,
    width: Real[ArrayLike, ""] = 14.0,
) -> Float[Array, ""]:
    r"""KL divergence between the marginal $p_t$ and its moment-matched Gaussian $q_t$ (1-D data).

    $$\mathrm{KL}(p_t\,\|\,q_t) = \int\Big[p_t\ln\frac{p_t}{q_t} - p_t + q_t\Big]dx$$

    by the trapezoid rule on a uniform grid of ``n_grid`` nodes over the mean $\pm$ ``width``
    standard deviations of $q_t$ (the added $-p+q$ integrates to zero and makes the integrand
    non-negative, which keeps truncation error one-signed and tiny). ``reverse=True`` gives
    $\mathrm{KL}(q_t\,\|\,p_t)$, which for the exact probability-flow ODE equals the KL of the
    late-start samples from the true marginal at every later time [DERIVED]. For two points
    $\pm1$ under OU, $q_t = \mathcal N(0,1)$ and $\mathrm{KL}(p_t\|q_t)$ = 5.09e-2 ($t=0.2$),
    9.40e-3 (0.35), 2.18e-3 (0.5), 2.39e-4 (0.75), 2.97e-5 (1.0), 5.17e-7 (1.5) (see
    `docs/theory/meanfield.md#late-start-diagnostics`).

    **Arguments:**

    - `data`: a one-dimensional dataset.
    - `process`: forward process.
    - `t`: forward time (scalar).
    - `reverse`: compute $\mathrm{KL}(q_t\|p_t)$ instead.
    - `n_grid`: quadrature nodes; must resolve $b_t$ (ValueError otherwise).
    - `width`: half-width of the grid in standard deviations of $q_t$.

    **Returns:** the KL divergence (nats), a scalar array.
    """
    _check_data_process(data, process)
    _check_1d(data)
    if not isinstance(n_grid, (int, np.integer)) or n_grid < 65:
        raise ValueError(f"n_grid must be an integer >= 65, got {n_grid!r}.")
    if not (isinstance(width, (int, float)) and width >= 6):
        raise ValueError(f"width must be a number >= 6 (standard deviations), got {width!r}.")
    t = _scalar_time(t, process, "t")
    _check_resolution(data, process, t, int(n_grid), float(width))
    return _kl_impl(data, process, t, bool(reverse), int(n_grid), float(width))


@eqx.filter_jit
@trusted
def _kl_impl(data, process, t, reverse, n_grid, width):
    grid, m, v = _grid(data, process, t, n_grid, width)
    log_p = _log_p(data, process, grid, t)
    log_q = -0.5 * ((grid - m) ** 2 / v + jnp.log(2 * jnp.pi * v))
    if reverse:
        log_p, log_q = log_q, log_p
    p, q = jnp.exp(log_p), jnp.exp(log_q)
    integrand = p * (log_p - log_q) - p + q
    h = grid[1] - grid[0]
    return h * (jnp.sum(integrand) - 0.5 * (integrand[0] + integrand[-1]))


class LateStartFraction(NamedTuple):
    r"""Probability mass above a threshold, exact vs Gaussian late start (PF-ODE, 1-D).

    - `exact`: $P_{p_{t_1}}(x > c)$, the true mass at the final time $t_1$.
    - `late_start`: the mass above $c$ at $t_1$ of the late-start PF-ODE samples,
      $Q_{t_0}(x > F_{t_0}^{-1}(F_{t_1}(c)))$.
    - `error`: ``late_start - exact``.
    - `boundary`: the point $F_{t_0}^{-1}(F_{t_1}(c))$ at $t_0$ that the exact flow maps to $c$.
    """

    exact: Array
    late_start: Array
    error: Array
    boundary: Array


def fraction(
    data: AbstractData,
    process: AbstractProcess,
    t0: Real[ArrayLike, ""],
    *,
    t1: Real[ArrayLike, ""],
    threshold: Real[ArrayLike, ""] = 0.0,
    n_grid: int = 8001,
    width: Real[ArrayLike, ""] = 14.0,
) -> LateStartFraction:
    r"""Class-fraction error of a Gaussian late start under the exact probability-flow ODE (1-D).

    In one dimension the exact PF-ODE flow from $t_0$ to $t_1 < t_0$ is increasing and carries
    $p_{t_0}$ to $p_{t_1}$, so it is the monotone transport $F_{t_1}^{-1}\circ F_{t_0}$
    ($F$ the CDFs). A late-start state $x_{t_0}\sim q_{t_0}$ therefore ends above $c$ iff
    $x_{t_0} > \xi = F_{t_0}^{-1}(F_{t_1}(c))$, and

    $$P_{\rm late}(x_{t_1} > c) = 1 - \Phi\big((\xi - \mu_{t_0})/s_{t_0}\big)$$

    [DERIVED]. For two points $\pm1$ with weight $w$ and $c=0$, $t_1\to0$ the exact fraction
    is $w$ and the error measures how much class balance the late start loses: negligible for
    $t_0$ well above $t_c$, growing once $t_0$ drops below it. Both CDFs by cumulative trapezoid
    quadrature on the grids of :func:`kl`.

    **Arguments:**

    - `data`: a one-dimensional dataset.
    - `process`: forward process.
    - `t0`: the late-start time.
    - `t1`: the final time of the flow, $0 < t_1 < t_0$.
    - `threshold`: the class boundary $c$ at $t_1$.
    - `n_grid`, `width`: quadrature grids (see :func:`kl`); the grid must resolve
      $b_{t_1}$.

    **Returns:** a :class:`LateStartFraction`.
    """
    _check_data_process(data, process)
    _check_1d(data)
    if not isinstance(n_grid, (int, np.integer)) or n_grid < 65:
        raise ValueError(f"n_grid must be an integer >= 65, got {n_grid!r}.")
    if not (isinstance(width, (int, float)) and width >= 6):
        raise ValueError(f"width must be a number >= 6 (standard deviations), got {width!r}.")
    t0 = _scalar_time(t0, process, "t0")
    t1 = _scalar_time(t1, process, "t1")
    if is_concrete((t0, t1)) and not float(t1) < float(t0):
        raise ValueError(f"t1 must be earlier than t0, got t0={float(t0)}, t1={float(t1)}.")
    c = as_float_array(threshold, "threshold")
    if c.ndim != 0:
        raise ValueError(f"threshold must be a scalar, got shape {c.shape}.")
    _check_resolution(data, process, t0, int(n_grid), float(width))
    _check_resolution(data, process, t1, int(n_grid), float(width))
    return _fraction_impl(data, process, t0, t1, c, int(n_grid), float(width))


def _cdf_on_grid(data, process, t, n_grid, width):
    grid, m, v = _grid(data, process, t, n_grid, width)
    p = jnp.exp(_log_p(data, process, grid, t))
    h = grid[1] - grid[0]
    cdf = jnp.concatenate([jnp.zeros((1,), p.dtype), jnp.cumsum(0.5 * h * (p[1:] + p[:-1]))])
    return grid, cdf / cdf[-1], m, v


@eqx.filter_jit
@trusted
def _fraction_impl(data, process, t0, t1, c, n_grid, width):
    g1, cdf1, _, _ = _cdf_on_grid(data, process, t1, n_grid, width)
    g0, cdf0, m0, v0 = _cdf_on_grid(data, process, t0, n_grid, width)
    c = c.astype(g1.dtype)
    below = jnp.interp(c, g1, cdf1)
    # invert F_{t0}: strictly increasing where the density is non-negligible
    xi = jnp.interp(below, cdf0, g0)
    late = 0.5 * jax.scipy.special.erfc((xi - m0) / jnp.sqrt(2 * v0))
    exact = 1 - below
    return LateStartFraction(exact=exact, late_start=late, error=late - exact, boundary=xi)
