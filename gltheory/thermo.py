r"""Non-equilibrium thermodynamics of diffusion: entropy production,
fluctuation theorems, KL/entropy of $p_t$, the Franz–Parisi potential and the collapse time.
See `docs/theory/thermo.md#stochastic-thermodynamics` and `docs/theory/cloning.md#collapse`.

**Conventions [DERIVED].** The forward process is the overdamped Langevin equation
$dx = F\,dt + \sqrt{2D}\,dW$ with $F = f(t)\,x$ and $D = g^2(t)/2$ (notation of
:mod:`gltheory.processes`). Its probability current is $J = p_t\,v_t$ with the *forward
velocity* $v_t = f x - \tfrac12 g^2 s$, $s = \nabla\ln p_t$. The mean entropy-production rate
(Seifert; `docs/theory/thermo.md#entropy-production`) is

$$\Pi(t) = \int\frac{|J|^2}{D\,p_t}\,dx = \frac{2}{g^2}\,\mathbb E_{p_t}\big\|f x - \tfrac12 g^2 s\big\|^2
\;=\;\begin{cases}\mathbb E\|x+s\|^2 & \text{OU}\\ \tfrac{\beta}2\mathbb E\|x+s\|^2 & \text{VP}\\
\tfrac{\dot{\sigma^2}}{2}\mathbb E\|s\|^2 = \tfrac{d}{dt}H(p_t) & \text{VE (de Bruijn).}\end{cases}$$

**Reverse (generative) process.** Run in reverse time $\tau = T - t$ it has drift
$F_R = g^2 s - f x$ (per unit $\tau$) and the same $D$; its current is
$J_R = p(F_R - D\nabla\ln p) = p(\tfrac12 g^2 s - f x) = -J$, so its entropy-production rate at
$\tau$ equals $\Pi(T-\tau)$ and the **total mean entropy production of generation equals that of
noising**. What differs is the split: system entropy $\dot S_{\rm sys} = \pm\,dH(p_t)/dt$ and
medium entropy $\dot S_{\rm med} = \Pi \mp dH/dt$ (upper sign forward).

**Identity for OU/VP [DERIVED].** $F = -D\,x = D\nabla\ln\varphi$ with $\varphi = \mathcal N(0,I)$,
so $J = -D p\nabla\ln(p/\varphi)$ and $\frac{d}{dt}\mathrm{KL}(p_t\|\varphi) = \int J\cdot\nabla\ln
(p/\varphi) = -\Pi$: the total entropy production on $[t_0, t_1]$ is
$\mathrm{KL}(p_{t_0}\|\varphi) - \mathrm{KL}(p_{t_1}\|\varphi)$. Changing variables to
$u = \ln{\rm SNR}$ ($du/dt = -g^2/b^2$), $\Pi\,dt = \tfrac{b^2}{2}\,\mathbb E\|x+s\|^2\,|du|$
depends on the schedule only through the SNR: the total is **schedule independent** (the
quadrature below integrates in $u$). For VE the same computation gives
$\int\Pi\,dt = H(p_{t_1}) - H(p_{t_0})$.

**Trajectories** (:func:`trajectory_entropy`): system entropy change
$\Delta s = \ln p_{\rm start}(x_{\rm start}) - \ln p_{\rm end}(x_{\rm end})$, medium entropy
$\Delta s_m = \int D^{-1}F\circ dx$ by the Stratonovich midpoint rule, total
$\Delta s_{\rm tot} = \Delta s + \Delta s_m$, accumulated inside a ``lax.scan`` (trajectories are
never stored). Integral FT $\langle e^{-\Delta s_{\rm tot}}\rangle = 1$; detailed FT in Crooks form
(see :func:`detailed_fluctuation_theorem`).

**Franz–Parisi potential (`docs/theory/thermo.md#franz-parisi`), what it shows [DERIVED, measured].** With the reference
replica $y^*$ drawn from the posterior (planted), two separated clusters give *two* minima at
high noise (posterior = prior: the constrained replica is in the same cluster, $q\approx+q_{\rm in}$,
or in the other one, $q\approx-q_{\rm in}$, with equal odds) and *one* at low noise, where both
posterior components collapse on $x_t/a_t$. The number of minima changes at a resolution-dependent
time that is not tied to the mean-field critical times; the quantity that is, is the gap
$V_--V_+\simeq2\kappa_t^2$, equal to 2 at $t_c^S$ (:func:`franz_parisi_difference`). For $P$
nearly orthogonal points the two-level potential of :func:`franz_parisi_empirical` has the
glass-like behaviour (one uncorrelated state at high noise, the condensed state winning below
a time close to the collapse time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray, Real

from ._checks import (
    DATASET,
    PROCESS,
    as_float_array,
    check_instance,
    check_time,
    is_concrete,
    trusted,
)
from ._roots import refuse_traced
from .data import AbstractData, AbstractFiniteSet, DeltaMixture, Gaussian, GaussianMixture, TwoPoint
from .latestart import moments as late_start_moments
from .meanfield import critical_times
from .processes import OU, AbstractProcess
from .sampling import (
    TrajectoryKeys,
    as_trajectory_keys,
    default_noise_block,
    integrate,
    split_trajectory_keys,
)
from .scores import log_prob, score
from .solvers import EulerMaruyama

__all__ = [
    "MCEstimate",
    "gaussian_entropy_production_rate",
    "entropy_production_rate",
    "entropy_production_rate_mc",
    "total_entropy_production",
    "kl_to_normal",
    "marginal_entropy",
    "kl_to_normal_mc",
    "marginal_entropy_mc",
    "late_start_kl_mc",
    "exact_score_fn",
    "exact_log_prob_fn",
    "EntropyProduction",
    "trajectory_entropy",
    "integral_fluctuation_theorem",
    "DetailedFT",
    "detailed_fluctuation_theorem",
    "FranzParisi",
    "franz_parisi_potential",
    "franz_parisi_difference",
    "FranzParisiScan",
    "franz_parisi_scan",
    "FranzParisiEmpirical",
    "franz_parisi_empirical",
    "local_minima",
    "collapse_time",
    "excess_entropy",
    "collapse_time_estimate",
    "DynamicalRegimes",
    "dynamical_regimes",
]

_LOG_2PI = math.log(2 * math.pi)


class MCEstimate(NamedTuple):
    """A Monte Carlo mean and its standard error (same shapes); ``n`` samples.

    ``n_nonfinite`` (shaped like ``mean``) counts the samples whose value is NaN or Inf (a
    non-finite state or score); where it is not zero ``mean`` and ``se`` are NaN: no estimate
    is built on non-finite samples (nothing is raised, also under ``jit``).
    """

    mean: Array
    se: Array
    n: int
    n_nonfinite: Array | int = 0


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_dp(data, process):
    check_instance(data, AbstractData, "data", DATASET)
    check_instance(process, AbstractProcess, "process", PROCESS)


def _check_int(v, name, lo=1):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}.")
    return int(v)


def _dtype_of(*xs):
    return jnp.result_type(*xs, float)


# ----------------------------------------------------------------------------------------------
# 1-D mixture quadrature (trapezoid in the standardised variable of every component)
# ----------------------------------------------------------------------------------------------


def _components_1d(data: AbstractData):
    r"""(means, variances, weights) of a 1-D dataset seen as a mixture of Gaussians/deltas."""
    if data.dim != 1:
        raise ValueError(
            "quadrature needs one-dimensional data (dim 1), got event shape "
            f"{tuple(data.event_shape)}; use the Monte Carlo version (..._mc) in d dimensions."
        )
    if isinstance(data, GaussianMixture):
        return data.means[:, 0], data.variances[:, 0], data.weights
    if isinstance(data, Gaussian):
        return data.loc, data.evals, jnp.ones((1,), data.loc.dtype)
    if isinstance(data, TwoPoint):
        w = data.weight
        return jnp.stack([data.mu[0], -data.mu[0]]), jnp.zeros(2), jnp.stack([w, 1 - w])
    if isinstance(data, AbstractFiniteSet):
        flat = data._flat
        return flat[:, 0], jnp.zeros(flat.shape[0], flat.dtype), data.weights
    raise ValueError(
        f"1-D quadrature supports Gaussian, GaussianMixture, TwoPoint and finite point sets, "
        f"got {type(data).__name__}."
    )


_Z_HALF = 13.0


def _gh(n: int, dtype):
    """Trapezoid nodes/weights for E_{z~N(0,1)}[h(z)] on [-13, 13] (n nodes).

    For integrands analytic in a strip (log-sum-exp of Gaussians) the trapezoid rule converges
    geometrically; Gauss–Hermite converges only slowly on the log-sum-exp "switch" between
    mixture components, so it is not used."""
    z = np.linspace(-_Z_HALF, _Z_HALF, n)
    w = (z[1] - z[0]) * np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return jnp.asarray(z, dtype), jnp.asarray(w, dtype)


def _expect_1d(data, process, t, fn, n_nodes):
    r"""$\mathbb E_{p_t}[\mathrm{fn}(x, \ln p_t(x), s(x))]$ for 1-D mixture data (exact to round-off
    for smooth fn): $p_t = \sum_k w_k\mathcal N(a\mu_k, a^2v_k + b^2)$, trapezoid per component."""
    mu, var, w = _components_1d(data)
    dtype = _dtype_of(t, mu)
    mu, var, w = mu.astype(dtype), var.astype(dtype), w.astype(dtype)
    a = process.a(t).astype(dtype)
    b2 = process.b2(t).astype(dtype)
    z, wz = _gh(n_nodes, dtype)
    x = (a * mu)[:, None] + jnp.sqrt(a**2 * var + b2)[:, None] * z  # (K, n)
    xs = x.reshape(-1)

    def logp(xx):
        return data.log_marginal(xx.reshape(1, 1), a, b2)[0]

    lp = jax.vmap(logp)(xs)
    sc = jax.vmap(jax.grad(logp))(xs)
    vals = fn(xs, lp, sc).reshape(x.shape)
    return jnp.sum(w * jnp.sum(wz * vals, axis=-1))


def _scalar_t(t, process, name="t"):
    t = check_time(t, process.T, name)
    if t.ndim != 0:
        raise ValueError(f"{name} must be a scalar time, got shape {t.shape}.")
    return t


def _times(t, process, name="t"):
    return check_time(t, process.T, name)


# ----------------------------------------------------------------------------------------------
# entropy production rate
# ----------------------------------------------------------------------------------------------


def gaussian_entropy_production_rate(
    process: AbstractProcess, t: ArrayLike, *, sigma2: ArrayLike, dim: int = 1
) -> Array:
    r"""Closed-form $\Pi(t)$ for Gaussian data $\mathcal N(0,\sigma^2 I_d)$ (`docs/theory/thermo.md#entropy-production`).

    $p_t = \mathcal N(0, v_t I)$, $v_t = a_t^2\sigma^2 + b_t^2$, $s = -x/v_t$, hence
    $$\Pi(t) = \frac{2d}{g^2}\,v_t\Big(f + \frac{g^2}{2v_t}\Big)^2,$$
    for OU $\Pi = d\,\frac{(\sigma^2-1)^2e^{-4t}}{1+(\sigma^2-1)e^{-2t}}$, whose integral over
    $[0,\infty)$ is $\tfrac d2(\sigma^2-1-\ln\sigma^2)$.

    **Arguments:** `process`; `t` (any shape, $>0$); `sigma2` $>0$; `dim` $d$.

    **Returns:** $\Pi(t)$ shaped like ``t``.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    dim = _check_int(dim, "dim")
    t = _times(t, process)
    s2 = as_float_array(sigma2, "sigma2")
    if is_concrete(s2) and not bool(np.all(np.asarray(s2) > 0)):
        raise ValueError(f"sigma2 must be > 0, got {sigma2}.")
    v = process.a(t) ** 2 * s2 + process.b2(t)
    g2, f = process.g2(t), process.f(t)
    return 2 * dim / g2 * v * (f + g2 / (2 * v)) ** 2


def _rate_integrand(process, t):
    f, g2 = process.f(t), process.g2(t)

    def fn(x, lp, s):
        del lp
        return (2 / g2) * (f * x - 0.5 * g2 * s) ** 2

    return fn


@eqx.filter_jit
@trusted
def _rate_quad(data, process, t, n_nodes):
    return jax.vmap(
        lambda tt: _expect_1d(data, process, tt, _rate_integrand(process, tt), n_nodes)
    )(t.reshape(-1)).reshape(t.shape)


def entropy_production_rate(
    data: AbstractData, process: AbstractProcess, t: ArrayLike, *, n_nodes: int = 401
) -> Array:
    r"""Mean entropy-production rate $\Pi(t)$ by quadrature (1-D data; module docstring).

    $\Pi(t) = \frac{2}{g^2}\int p_t\,(f x - \tfrac12 g^2\,\partial_x\ln p_t)^2\,dx$, with
    $p_t = \sum_k w_k\mathcal N(a_t\mu_k, a_t^2v_k + b_t^2)$ integrated component by component
    in the standardised variable $z$ by the trapezoid rule (``n_nodes`` nodes on
    $|z|\le13$; geometric convergence, float64 round-off at the default) and the score by
    autodiff of $\ln p_t$ (no cancellation as $t\to0$). Equal for the forward and the reverse process at the same $t$.

    **Arguments:** `data` (1-D: Gaussian, GaussianMixture, TwoPoint, finite sets); `process`;
    `t` (any shape, in $(0,T]$); `n_nodes`.

    **Returns:** $\Pi(t)$ shaped like ``t``.
    """
    _check_dp(data, process)
    _components_1d(data)
    n_nodes = _check_int(n_nodes, "n_nodes", 8)
    t = _times(t, process)
    return _rate_quad(data, process, t.astype(_dtype_of(t)), n_nodes)


def _forward_samples(data, process, key, n, t):
    ky, kz = jax.random.split(key)
    y = data.sample(ky, n)
    dtype = _dtype_of(t, y)
    y = y.astype(dtype)
    z = jax.random.normal(kz, y.shape, dtype)
    return y, process.a(t).astype(dtype) * y + process.b(t).astype(dtype) * z


class _ExactScore(eqx.Module):
    data: AbstractData
    process: AbstractProcess

    def __call__(self, x, t):
        return score(self.data, self.process, x, t)


class _ExactLogProb(eqx.Module):
    data: AbstractData
    process: AbstractProcess

    def __call__(self, x, t):
        return log_prob(self.data, self.process, x, t)


def exact_score_fn(data: AbstractData, process: AbstractProcess) -> Callable[[Array, Array], Array]:
    """``score_fn(x, t)`` of the exact score as a pytree (an ``eqx.Module``), so that jitted
    entry points (:func:`trajectory_entropy`, :func:`gltheory.sample`) compile once per dataset
    *structure* and not once per Python closure."""
    _check_dp(data, process)
    return _ExactScore(data, process)


def exact_log_prob_fn(
    data: AbstractData, process: AbstractProcess
) -> Callable[[Array, Array], Array]:
    r"""``log_prob_fn(x, t)`` $=\ln p_t(x)$ as a pytree (see :func:`exact_score_fn`)."""
    _check_dp(data, process)
    return _ExactLogProb(data, process)


def _exact_score(data, process):
    return _ExactScore(data, process)


@eqx.filter_jit
@trusted
def _rate_mc_impl(data, process, score_fn, key, n, t):
    _, x = _forward_samples(data, process, key, n, t)
    s = score_fn(x, t)
    f, g2 = process.f(t), process.g2(t)
    axes = tuple(range(1, x.ndim))
    vals = (2 / g2) * jnp.sum((f * x - 0.5 * g2 * s) ** 2, axis=axes)
    return _mc(vals, n)


def entropy_production_rate_mc(
    data: AbstractData,
    process: AbstractProcess,
    t: ArrayLike,
    key: PRNGKeyArray,
    n: int,
    *,
    score_fn: Callable[[Array, Array], Array] | None = None,
) -> MCEstimate:
    r"""Monte Carlo $\Pi(t) = \frac2{g^2}\mathbb E_{p_t}\|f x - \tfrac12g^2 s\|^2$ in any dimension.

    Draws $x = a_ty + b_tz$ ($y\sim p_0$) and averages; ``score_fn(x, t)`` defaults to the exact
    score (pass a learned one to measure a model's entropy production). Along generated
    trajectories the same average is returned step by step by :func:`trajectory_entropy`.

    **Returns:** :class:`MCEstimate` (mean, standard error, n, ``n_nonfinite``: samples whose
    value is NaN/Inf, e.g. from a learned score; then mean and se are NaN).
    """
    _check_dp(data, process)
    n = _check_int(n, "n", 2)
    t = _scalar_t(t, process)
    sf = _exact_score(data, process) if score_fn is None else score_fn
    return _rate_mc_impl(data, process, sf, key, n, t.astype(_dtype_of(t)))


@eqx.filter_jit
@trusted
def _total_impl(data, process, u_nodes, u_weights, n_nodes):
    ts = process.t_of_snr(jnp.exp(u_nodes))
    rates = jax.vmap(
        lambda tt: _expect_1d(data, process, tt, _rate_integrand(process, tt), n_nodes)
    )(ts)
    jac = process.b2(ts) / process.g2(ts)  # |dt/du|
    return jnp.sum(u_weights * rates * jac)


def total_entropy_production(
    data: AbstractData,
    process: AbstractProcess,
    t0: ArrayLike,
    t1: ArrayLike,
    *,
    n_panels: int = 48,
    order: int = 16,
    n_nodes: int = 401,
) -> Array:
    r"""$\int_{t_0}^{t_1}\Pi(t)\,dt$ by quadrature (1-D data), in the variable $u=\ln{\rm SNR}$.

    $dt = -(b^2/g^2)\,du$, so the integral is $\int_{u_1}^{u_0}\Pi\,\frac{b^2}{g^2}\,du$, done by
    composite Gauss–Legendre (``n_panels`` panels of ``order`` nodes, uniform in $u$) with
    $\Pi$ from :func:`entropy_production_rate`. For OU/VP it equals
    $\mathrm{KL}(p_{t_0}\|\mathcal N(0,1)) - \mathrm{KL}(p_{t_1}\|\mathcal N(0,1))$ and for VE
    $H(p_{t_1}) - H(p_{t_0})$ (module docstring); this is the total mean entropy production of
    the forward process on $[t_0,t_1]$ and, identically, of generation from $t_1$ down to $t_0$.

    **Returns:** the total (nats), a scalar array.
    """
    _check_dp(data, process)
    _components_1d(data)
    n_panels = _check_int(n_panels, "n_panels")
    order = _check_int(order, "order", 2)
    n_nodes = _check_int(n_nodes, "n_nodes", 8)
    t0 = _scalar_t(t0, process, "t0")
    t1 = _scalar_t(t1, process, "t1")
    if is_concrete((t0, t1)) and not float(t0) < float(t1):
        raise ValueError(f"need t0 < t1, got t0={float(t0)}, t1={float(t1)}.")
    dtype = _dtype_of(t0, t1)
    u_hi = process.log_snr(t0.astype(dtype))
    u_lo = process.log_snr(t1.astype(dtype))
    x, w = np.polynomial.legendre.leggauss(order)
    edges = jnp.linspace(0.0, 1.0, n_panels + 1, dtype=dtype)
    h = 1.0 / n_panels
    nodes = (edges[:-1, None] + 0.5 * h * (jnp.asarray(x, dtype) + 1)).reshape(-1)
    weights = jnp.tile(jnp.asarray(w, dtype) * 0.5 * h, n_panels)
    u_nodes = u_lo + nodes * (u_hi - u_lo)
    u_weights = weights * (u_hi - u_lo)
    return _total_impl(data, process, u_nodes, u_weights, n_nodes)


# ----------------------------------------------------------------------------------------------
# KL and entropy of p_t
# ----------------------------------------------------------------------------------------------


def _kl_fn(x, lp, s):
    del s
    return lp + 0.5 * x**2 + 0.5 * _LOG_2PI


def _ent_fn(x, lp, s):
    del x, s
    return -lp


@eqx.filter_jit
@trusted
def _quad_scalar(data, process, t, which, n_nodes):
    fn = _kl_fn if which == "kl" else _ent_fn
    return jax.vmap(lambda tt: _expect_1d(data, process, tt, fn, n_nodes))(t.reshape(-1)).reshape(
        t.shape
    )


def kl_to_normal(
    data: AbstractData, process: AbstractProcess, t: ArrayLike, *, n_nodes: int = 401
) -> Array:
    r"""$\mathrm{KL}(p_t\,\|\,\mathcal N(0,1))$ by quadrature (1-D data).

    $\mathbb E_{p_t}[\ln p_t(x) + \tfrac12x^2 + \tfrac12\ln2\pi]$ with the component-wise rule of
    :func:`entropy_production_rate`; ``t`` any shape.
    """
    _check_dp(data, process)
    _components_1d(data)
    t = _times(t, process)
    return _quad_scalar(data, process, t.astype(_dtype_of(t)), "kl", _check_int(n_nodes, "n_nodes"))


def marginal_entropy(
    data: AbstractData, process: AbstractProcess, t: ArrayLike, *, n_nodes: int = 401
) -> Array:
    r"""Differential entropy $H(p_t) = -\mathbb E_{p_t}\ln p_t$ by quadrature (1-D data)."""
    _check_dp(data, process)
    _components_1d(data)
    t = _times(t, process)
    return _quad_scalar(
        data, process, t.astype(_dtype_of(t)), "ent", _check_int(n_nodes, "n_nodes")
    )


@eqx.filter_jit
@trusted
def _logp_mc(data, process, key, n, t):
    _, x = _forward_samples(data, process, key, n, t)
    return x, log_prob(data, process, x, t)


def _delta_logits(points: Array, log_w: Array, x: Array, a, b2) -> Array:
    r"""Unnormalised posterior log-weights of the points $y_k$ given $x_t = x$.

    $\ln w_k + (a\,x\cdot y_k - a^2|y_k|^2/2)/b^2$ with $a = a_t$, $b^2 = b_t^2$.
    """
    sq = jnp.sum(points**2, axis=-1)
    return log_w + (a * (x @ points.T) - 0.5 * a**2 * sq) / b2


def _mc(vals, n):
    """:class:`MCEstimate` of the samples ``vals`` (leading axis), NaN if any is non-finite."""
    n_bad = jnp.sum(~jnp.isfinite(vals), axis=0, dtype=jnp.int32)
    mean = jnp.where(n_bad > 0, jnp.nan, jnp.mean(vals, axis=0))
    se = jnp.where(n_bad > 0, jnp.nan, jnp.std(vals, axis=0, ddof=1) / math.sqrt(n))
    return MCEstimate(mean, se, n, n_bad)


def marginal_entropy_mc(
    data: AbstractData, process: AbstractProcess, t: ArrayLike, key: PRNGKeyArray, n: int
) -> MCEstimate:
    r"""$H(p_t) = -\mathbb E_{p_t}\ln p_t$ by Monte Carlo in any dimension (exact $\ln p_t$)."""
    _check_dp(data, process)
    n = _check_int(n, "n", 2)
    t = _scalar_t(t, process)
    _, lp = _logp_mc(data, process, key, n, t.astype(_dtype_of(t)))
    return _mc(-lp, n)


def kl_to_normal_mc(
    data: AbstractData, process: AbstractProcess, t: ArrayLike, key: PRNGKeyArray, n: int
) -> MCEstimate:
    r"""$\mathrm{KL}(p_t\|\mathcal N(0,I_d)) = \mathbb E_{p_t}[\ln p_t + \tfrac12\|x\|^2 + \tfrac d2\ln2\pi]$
    by Monte Carlo in any dimension."""
    _check_dp(data, process)
    n = _check_int(n, "n", 2)
    t = _scalar_t(t, process)
    x, lp = _logp_mc(data, process, key, n, t.astype(_dtype_of(t)))
    xf = x.reshape(n, -1)
    vals = lp + 0.5 * jnp.sum(xf**2, axis=-1) + 0.5 * data.dim * _LOG_2PI
    return _mc(vals, n)


def late_start_kl_mc(
    data: AbstractData, process: AbstractProcess, t: ArrayLike, key: PRNGKeyArray, n: int
) -> MCEstimate:
    r"""Gaussian-late-start error $\mathrm{KL}(p_t\,\|\,q_t)$ by Monte Carlo in any dimension.

    $q_t = \mathcal N(a_t\mathbb E y, a_t^2\mathrm{Cov}\,y + b_t^2 I)$ is the moment-matched Gaussian
    of `docs/theory/meanfield.md#late-start` (:func:`gltheory.latestart.moments`); the 1-D quadrature version is
    :func:`gltheory.latestart.kl`. Zero for Gaussian data at every $t$.
    """
    _check_dp(data, process)
    n = _check_int(n, "n", 2)
    t = _scalar_t(t, process)
    mean, cov = late_start_moments(data, process, t)
    x, lp = _logp_mc(data, process, key, n, t.astype(_dtype_of(t)))
    xf = x.reshape(n, -1).astype(mean.dtype)
    chol = jnp.linalg.cholesky(cov)
    zz = jax.scipy.linalg.solve_triangular(chol, (xf - mean).T, lower=True)
    logq = (
        -0.5 * jnp.sum(zz**2, axis=0) - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * data.dim * _LOG_2PI
    )
    return _mc(lp - logq, n)


# ----------------------------------------------------------------------------------------------
# trajectory thermodynamics
# ----------------------------------------------------------------------------------------------


class EntropyProduction(NamedTuple):
    r"""Result of :func:`trajectory_entropy` (per trajectory: shape ``(n,)``).

    - `x`: final states ``(n, *event)``.
    - `ts`: the time grid.
    - `system`: $\Delta s = \ln p(x_{\rm start}) - \ln p(x_{\rm end})$.
    - `medium`: $\Delta s_m = \sum_i D^{-1}F(\bar x_i,\bar t_i)\cdot(x_{i+1}-x_i)$ (Stratonovich
      midpoint $\bar x_i$, $\bar t_i$).
    - `total`: $\Delta s_{\rm tot}$ = system + medium.
    - `rate`, `rate_se`: ensemble mean of the instantaneous $\Pi$ integrand
      $\frac2{g^2}\|f x-\tfrac12g^2s\|^2$ over the states at ``ts[:-1]`` (shape ``(n_steps,)``),
      i.e. $\Pi(t)$ by Monte Carlo along the trajectories, and its standard error (NaN at the
      steps where a state is NaN/Inf).
    - `n_nonfinite`: number of trajectories with a NaN/Inf final state or total entropy
      production (their per-trajectory values are NaN; averages over them are NaN too).
    """

    x: Array
    ts: Array
    system: Array
    medium: Array
    total: Array
    rate: Array
    rate_se: Array
    n_nonfinite: Array | int = 0


Direction = Literal["reverse", "forward", "reversed_protocol"]
_DIRECTIONS = ("reverse", "forward", "reversed_protocol")


class _FixedScore(eqx.Module):
    """The score already evaluated at the step's ``(x, t)`` (one evaluation per step)."""

    s: Array

    def __call__(self, x, t):
        return self.s


@eqx.filter_jit
@trusted
def _traj_impl(score_fn, log_prob_fn, process, keys, x0, ts, direction, noise_block):
    noise_keys, _ = split_trajectory_keys(keys)
    n = x0.shape[0]
    axes = tuple(range(1, x0.ndim))

    def body(carry, i, z):
        x, smed = carry
        t, tn = ts[i], ts[i + 1]
        s = score_fn(x, t)
        f, g2 = process.f(t), process.g2(t)
        rate = (2 / g2) * jnp.sum((f * x - 0.5 * g2 * s) ** 2, axis=axes)
        if direction == "reverse":  # the sampler's Euler-Maruyama step, score evaluated once
            xn = EulerMaruyama().step(_FixedScore(s), process, x, t, tn, z)
        elif direction == "forward":  # the exact Gaussian transition of the forward process
            ratio = jnp.exp(process.log_a(tn) - process.log_a(t))
            var = jnp.maximum(process.b2(tn) - ratio**2 * process.b2(t), 0.0)
            xn = ratio * x + jnp.sqrt(var) * z
        else:  # reversed protocol: the generative drift run forward in t (h = tn - t > 0)
            h = tn - t
            xn = x + h * process.reverse_drift(x, t, s) + (process.g(t) * jnp.sqrt(h)) * z
        xm, tm = 0.5 * (x + xn), 0.5 * (t + tn)
        fm, g2m = process.f(tm), process.g2(tm)
        if direction == "forward":
            force = (2 * fm / g2m) * xm  # D^{-1} f x
        else:
            force = 2 * score_fn(xm, tm) - (2 * fm / g2m) * xm  # D^{-1}(g^2 s - f x)
        smed = smed + jnp.sum(force * (xn - x), axis=axes)
        return (xn, smed), (jnp.mean(rate), jnp.mean(rate**2))

    (x, smed), (m1, m2) = integrate(
        body,
        (x0, jnp.zeros((n,), x0.dtype)),
        ts,
        noise_keys=noise_keys,
        event_shape=x0.shape[1:],
        dtype=x0.dtype,
        noise_block=noise_block,
    )
    system = log_prob_fn(x0, ts[0]) - log_prob_fn(x, ts[-1])
    rate_se = jnp.sqrt(jnp.maximum(m2 - m1**2, 0.0) / (n - 1))
    return x, system, smed, m1, rate_se


def trajectory_entropy(
    score_fn: Callable[[Array, Array], Array],
    log_prob_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    direction: Direction | str = "reverse",
    noise_block: int | np.integer | None = None,
) -> EntropyProduction:
    r"""Stochastic thermodynamics of each trajectory, accumulated inside a ``lax.scan``.

    Three dynamics on the grid ``ts`` ($h_i=|t_{i+1}-t_i|$, $\xi_i$ the sampler's noise):

    - ``"reverse"`` (generation; ``ts`` decreasing): Euler–Maruyama of the reverse SDE,
      $x_{i+1} = x_i + h_i(g^2s - fx) + g\sqrt{h_i}\xi_i$ — bit-for-bit the states of
      :func:`gltheory.sample` with ``method="euler_maruyama"`` and the same key; drift
      $F_R = g^2s - fx$;
    - ``"forward"`` (noising; ``ts`` increasing): the exact Gaussian transition
      $x_{i+1} = \frac{a_{i+1}}{a_i}x_i + \sqrt{b_{i+1}^2 - (a_{i+1}/a_i)^2b_i^2}\,\xi_i$; drift
      $F = fx$ (for VP $D^{-1}F = -x$, so $\Delta s_m = -\Delta\|x\|^2/2$ exactly);
    - ``"reversed_protocol"`` (``ts`` increasing): the generative drift $F_R(x,t)$ run with the
      protocol reversed, $x_{i+1} = x_i + h_iF_R(x_i,t_i) + g\sqrt{h_i}\xi_i$ — Seifert's
      *backward process* of generation, used by :func:`detailed_fluctuation_theorem`.

    $D = g^2/2$; $\Delta s_m = \sum_i D^{-1}(\bar t_i)F(\bar x_i,\bar t_i)\cdot(x_{i+1}-x_i)$ with the
    Stratonovich midpoints $\bar x_i = (x_i+x_{i+1})/2$, $\bar t_i = (t_i+t_{i+1})/2$;
    $\Delta s = \ln p_{t_0}(x_0) - \ln p_{t_n}(x_n)$ from ``log_prob_fn`` (the marginals of the
    forward process, also for the backward process: that is the functional entering the
    Crooks relation). For exact scores and $x_0\sim p_{t_0}$, $\langle\Delta s_{\rm tot}\rangle$
    estimates :func:`total_entropy_production` and $\langle e^{-\Delta s_{\rm tot}}\rangle = 1$
    (both up to the $O(h)$ time-discretisation error).

    **Arguments:**

    - `score_fn`: ``score_fn(x, t)`` for a batch ``(n, *event)`` and scalar ``t``.
    - `log_prob_fn`: ``log_prob_fn(x, t) -> (n,)``, $\ln p_t$ of the forward marginal.
    - `process`: forward process.
    - `key`: a single key (trajectory ``i`` uses ``fold_in(key, i)``) or ``n`` keys.
    - `x`: initial states ``(n, *event)`` (draw them from $p_{t_0}$).
    - `ts`: the grid (decreasing for ``"reverse"``, increasing otherwise).
    - `direction`: see above.
    - `noise_block`: as in :func:`gltheory.sample`.

    **Returns:** :class:`EntropyProduction`.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}.")
    check_instance(process, AbstractProcess, "process", PROCESS)
    if not callable(score_fn) or not callable(log_prob_fn):
        raise ValueError("score_fn(x, t) and log_prob_fn(x, t) must be callables.")
    x0 = as_float_array(x, "x")
    if x0.ndim < 2 or x0.shape[0] < 2:
        raise ValueError(f"x must have shape (n, *event_shape) with n >= 2, got {x0.shape}.")
    ts = as_float_array(ts, "ts")
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D grid of at least 2 times, got shape {ts.shape}.")
    ts = ts.astype(x0.dtype)
    if is_concrete(ts):
        tn = np.asarray(ts, dtype=np.float64)
        dec = direction == "reverse"
        mono = np.all(np.diff(tn) < 0) if dec else np.all(np.diff(tn) > 0)
        T = float(process.T)
        if not (mono and tn.min() > 0 and tn.max() <= T * (1 + 1e-6)):
            raise ValueError(
                f"ts must be strictly {'decreasing' if dec else 'increasing'} for "
                f"direction={direction!r} and lie in (0, T={T:g}]; got ts[0]={tn[0]:g}, "
                f"ts[-1]={tn[-1]:g}."
            )
    if noise_block is None:
        noise_block = default_noise_block(x0.shape[1:])
    noise_block = _check_int(noise_block, "noise_block")
    keys = as_trajectory_keys(key, x0.shape[0])
    xf, system, medium, rate, rate_se = _traj_impl(
        score_fn, log_prob_fn, process, keys, x0, ts, direction, noise_block
    )
    total = system + medium
    bad = ~jnp.all(jnp.isfinite(xf.reshape(xf.shape[0], -1)), axis=1) | ~jnp.isfinite(total)
    n_bad = jnp.sum(bad, dtype=jnp.int32)
    return EntropyProduction(xf, ts, system, medium, total, rate, rate_se, n_bad)


def integral_fluctuation_theorem(total: ArrayLike) -> MCEstimate:
    r"""$\langle e^{-\Delta s_{\rm tot}}\rangle$ and its standard error (should be 1).

    Non-finite values of $e^{-\Delta s_{\rm tot}}$ are counted in ``n_nonfinite`` and make the
    estimate NaN (:class:`MCEstimate`)."""
    s = as_float_array(total, "total")
    if s.ndim != 1 or s.shape[0] < 2:
        raise ValueError(f"total must be a 1-D array of >= 2 values, got shape {s.shape}.")
    return _mc(jnp.exp(-s), s.shape[0])


class DetailedFT(NamedTuple):
    r"""Histogram check of the detailed fluctuation theorem (:func:`detailed_fluctuation_theorem`).

    - `s`: bin centres; `log_ratio`: $\ln[P_F(s)/P_B(-s)]$; `se`: its standard error
      $\sqrt{1/n_F + 1/n_B}$ (Poisson counts); `counts_f`, `counts_b`: bin counts;
      `slope`, `slope_se`: weighted least-squares slope of log_ratio vs s through the origin
      (theory 1); `n_nonfinite`: NaN/Inf values in the two inputs together (the histograms
      use the finite ones; when it is not zero `slope` and `slope_se` are NaN).
    """

    s: Array
    log_ratio: Array
    se: Array
    counts_f: Array
    counts_b: Array
    slope: Array
    slope_se: Array
    n_nonfinite: int = 0


def detailed_fluctuation_theorem(
    total_forward: ArrayLike,
    total_backward: ArrayLike,
    *,
    bins: int = 12,
    s_range: tuple[Real[ArrayLike, ""], Real[ArrayLike, ""]] | None = None,
    min_count: int = 20,
) -> DetailedFT:
    r"""Detailed FT $P_F(\Delta s_{\rm tot}=s)/P_B(\Delta s_{\rm tot}=-s) = e^{s}$ by histograms.

    **Derivation [DERIVED].** For a path $\omega$ of generation (start $p_T$, drift $F_R$) and its
    time reverse $\omega^\dagger$ under the reversed protocol (start $p_0$, same $F_R(x,t)$ run
    with $t$ increasing), the Onsager–Machlup weights give
    $\mathcal P_F[\omega]/\mathcal P_B[\omega^\dagger] = \frac{p_T(x_T)}{p_0(x_0)}e^{\int D^{-1}F_R\circ dx}
    = e^{\Delta s_{\rm tot}[\omega]}$. The functional computed by :func:`trajectory_entropy` on the
    backward path satisfies $\Delta s^B_{\rm tot}[\omega^\dagger] = -\Delta s_{\rm tot}[\omega]$
    (system and Stratonovich terms both change sign), hence
    $P_F(s) = e^{s}P_B(-s)$ — Crooks' form. The same-process relation $P(s)/P(-s)=e^s$ needs a
    time-symmetric protocol or a steady state, which generation is not.
    Pass ``total_forward`` from ``direction="reverse"`` (started at $p_T$) and
    ``total_backward`` from ``direction="reversed_protocol"`` (started at $p_{t_{\min}}$).

    Bins with fewer than ``min_count`` counts on either side are dropped (NaN). NaN/Inf
    values are counted in ``n_nonfinite`` and make ``slope``/``slope_se`` NaN.

    **Returns:** :class:`DetailedFT`.
    """
    sf = np.asarray(total_forward, dtype=np.float64)
    sb = np.asarray(total_backward, dtype=np.float64)
    if sf.ndim != 1 or sb.ndim != 1:
        raise ValueError("total_forward and total_backward must be 1-D arrays.")
    bins = _check_int(bins, "bins", 2)
    n_bad = int(np.sum(~np.isfinite(sf)) + np.sum(~np.isfinite(sb)))
    sf, sb = sf[np.isfinite(sf)], sb[np.isfinite(sb)]
    if sf.size < 2 or sb.size < 2:
        raise ValueError(
            "total_forward and total_backward must each hold at least 2 finite values, got "
            f"{sf.size} and {sb.size}."
        )
    if s_range is None:
        lo = max(np.quantile(sf, 0.02), np.quantile(-sb, 0.02))
        hi = min(np.quantile(sf, 0.98), np.quantile(-sb, 0.98))
        if not lo < hi:
            raise ValueError("the forward and (negated) backward samples do not overlap.")
        s_range = (float(lo), float(hi))
    edges = np.linspace(s_range[0], s_range[1], bins + 1)
    cf, _ = np.histogram(sf, edges)
    cb, _ = np.histogram(-sb, edges)
    width = np.diff(edges)
    ok = (cf >= min_count) & (cb >= min_count)
    with np.errstate(divide="ignore", invalid="ignore"):
        pf = cf / (sf.size * width)
        pb = cb / (sb.size * width)
        lr = np.where(ok, np.log(pf / pb), np.nan)
        se = np.where(ok, np.sqrt(1.0 / cf + 1.0 / cb), np.nan)
    s = 0.5 * (edges[1:] + edges[:-1])
    w = np.where(ok, 1 / se**2, 0.0)
    slope = np.sum(w * s * np.nan_to_num(lr)) / np.sum(w * s**2)
    slope_se = 1 / math.sqrt(np.sum(w * s**2))
    if n_bad:
        slope, slope_se = np.nan, np.nan
    return DetailedFT(s, lr, se, cf, cb, np.asarray(slope), np.asarray(slope_se), n_bad)


# ----------------------------------------------------------------------------------------------
# Franz–Parisi potential (`docs/theory/thermo.md#franz-parisi`)
# ----------------------------------------------------------------------------------------------


class FranzParisi(NamedTuple):
    r"""Franz–Parisi potential on a grid: `q`, `V` (mean over the quenched disorder), `se`, `n`,
    and `values`, the per-sample $-\ln P_t(q\mid x_t, y^*)$ of shape ``(n, len(q))`` (for paired
    differences, :func:`franz_parisi_difference`). `n_nonfinite` (shaped like `V`) counts the
    samples whose value at that $q$ is NaN or Inf (e.g. a density that underflows); where it is
    not zero `V` and `se` are NaN, as in :class:`MCEstimate`."""

    q: Array
    V: Array
    se: Array
    n: int
    values: Array
    n_nonfinite: Array | int = 0


@eqx.filter_jit
@trusted
def _fp_impl(data, process, key, n, t, q):
    dtype = q.dtype
    a = process.a(t).astype(dtype)
    b2 = process.b2(t).astype(dtype)
    d = data.dim
    # Nishimori: (x_t, y*) with y* ~ p_0, x_t = a y* + b z has the law of
    # x_t ~ p_t, y* ~ p(y | x_t): the reference replica is planted.
    ys, x = _forward_samples(data, process, key, n, t.astype(dtype))
    ys, x = ys.reshape(n, d), x.reshape(n, d)
    logr, cm, cv = data._components(x, a, b2)  # (n,K), (n,K,d), (K,d)
    logr = logr - jax.nn.logsumexp(logr, axis=-1, keepdims=True)
    mq = jnp.einsum("nkd,nd->nk", cm, ys) / d
    vq = jnp.einsum("kd,nd->nk", jnp.broadcast_to(cv, cm.shape[1:]), ys**2) / d**2
    vq = jnp.maximum(vq, jnp.finfo(dtype).tiny)

    def logp(qq):
        ln = -0.5 * ((qq - mq) ** 2 / vq + jnp.log(vq) + _LOG_2PI)
        return jax.nn.logsumexp(logr + ln, axis=-1)  # (n,)

    return -jax.vmap(logp, out_axes=1)(q)  # (n, nq): -ln P(q | x, y*) per sample


def franz_parisi_potential(
    data: GaussianMixture | AbstractData,
    process: AbstractProcess,
    t: ArrayLike,
    q: ArrayLike,
    *,
    key: PRNGKeyArray,
    n: int = 2000,
) -> FranzParisi:
    r"""Franz–Parisi potential of the posterior for Gaussian-mixture data (`docs/theory/thermo.md#franz-parisi-clusters`).

    $$V_t(q) = -\mathbb E_{x_t}\mathbb E_{y^*\mid x_t}\ln P_t(q\mid x_t,y^*),\qquad
    P_t(q\mid x,y^*) = \int p(y\mid x)\,\delta\big(q-\tfrac1d y\cdot y^*\big)dy .$$

    The posterior of a mixture of (diagonal) Gaussians is a mixture of Gaussians with
    responsibilities $r_k(x)$, means $c_k(x)$ and covariances $C_k$, so
    $P_t(q\mid x,y^*) = \sum_k r_k\,\mathcal N\big(q;\,c_k\cdot y^*/d,\;\sum_i C_{k,ii}y_i^{*2}/d^2\big)$
    exactly; the quenched average over $(x_t, y^*)$ is Monte Carlo with the planted pair
    $y^*\sim p_0$, $x_t = a_ty^* + b_tz$ (same joint law as $x_t\sim p_t$, $y^*\sim p(\cdot\mid x_t)$).
    $V$ is a density-based potential (nats); common random numbers are used for every $q$ (and
    for every $t$ when the same key is reused).

    **Returns:** :class:`FranzParisi` (samples whose value at a $q$ is NaN/Inf are counted per
    $q$ in ``n_nonfinite``; there ``V`` and ``se`` are NaN).
    """
    if not isinstance(data, GaussianMixture):
        raise ValueError(
            f"franz_parisi_potential needs a GaussianMixture, got {type(data).__name__}; for "
            "finite point sets use franz_parisi_empirical."
        )
    _check_dp(data, process)
    n = _check_int(n, "n", 2)
    t = _scalar_t(t, process)
    q = as_float_array(q, "q")
    if q.ndim != 1:
        raise ValueError(f"q must be a 1-D grid of overlaps, got shape {q.shape}.")
    q = q.astype(_dtype_of(q, t))
    vals = _fp_impl(data, process, key, n, t, q)
    est = _mc(vals, n)
    return FranzParisi(q, est.mean, est.se, n, vals, est.n_nonfinite)


def franz_parisi_difference(fp: FranzParisi, i: int, j: int) -> MCEstimate:
    r"""$V_t(q_i) - V_t(q_j)$ of a :func:`franz_parisi_potential` result, with its paired
    standard error (both values come from the same samples).

    For two clusters $\tfrac12\mathcal N(\pm m,\sigma^2I)$ with well-separated states, the gap
    between the other-cluster and the same-cluster minima is [DERIVED]
    $$V_- - V_+ = \mathbb E\ln\frac{r_{\rm same}}{r_{\rm other}} + \frac{{\rm Var}\,\bar q_- - {\rm Var}\,\bar q_+}{2\,\mathbb E\,v_q}
    \simeq 2\kappa_t^2\Big(1 - \frac{2\sigma^2}{\|m\|^2+\sigma^2d}\Big),\qquad
    \kappa_t^2 = \frac{a_t^2\|m\|^2}{b_t^2+a_t^2\sigma^2},$$
    ($\bar q_\pm = c_\pm\cdot y^*/d$ the component overlaps, $v_q$ their conditional variance;
    the second term is the leading $1/d$ correction from ${\rm Cov}(m\cdot y^*, x\cdot y^*) = 2a\sigma^2\|m\|^2$).
    $2\kappa_t^2 = 2$ exactly at the score critical time $t_c^S$ (${\rm SNR}(\|m\|^2-\sigma^2)=1$):
    the posterior's two states are comparable above $t_c^S$ and the other-cluster state is lifted
    beyond 2 nats below it.
    """
    if not isinstance(fp, FranzParisi):
        raise ValueError(f"fp must be a FranzParisi result, got {type(fp).__name__}.")
    nq = fp.values.shape[1]
    for k in (i, j):
        if not isinstance(k, (int, np.integer)) or not -nq <= k < nq:
            raise ValueError(f"i and j must be integer indices into q (length {nq}), got {k!r}.")
    return _mc(fp.values[:, int(i)] - fp.values[:, int(j)], fp.n)


class FranzParisiScan(NamedTuple):
    r"""Number of local minima of $V_t(q)$ on a time grid (:func:`franz_parisi_scan`).

    - `t`: the times (as given); `n_minima`: minima per time; `bracket`: ``(t_lo, t_hi)``, two
      neighbouring grid times between which the number of minima first changes coming from
      large $t$ (``None`` if it never changes).
    """

    t: np.ndarray
    n_minima: np.ndarray
    bracket: tuple[float, float] | None


def franz_parisi_scan(
    data: GaussianMixture | AbstractData,
    process: AbstractProcess,
    ts: ArrayLike | Sequence[Any],
    q: ArrayLike,
    *,
    key: PRNGKeyArray,
    n: int = 2000,
    min_depth: Real[ArrayLike, ""] = 0.0,
) -> FranzParisiScan:
    r"""Count the minima of the Franz–Parisi potential along a time grid and bracket the time
    at which the shape changes (same samples at every time).

    For two separated clusters the potential has two minima at high noise (the same-cluster
    and the other-cluster states of the posterior) and one at low noise, where both posterior
    components collapse on $x_t/a_t$ and the other-cluster state disappears [DERIVED, measured];
    the gap between the two states is $2\kappa_t^2$ (:func:`franz_parisi_difference`).
    """
    tn = np.asarray(ts, dtype=np.float64)
    if tn.ndim != 1 or tn.size < 2:
        raise ValueError(f"ts must be a 1-D array of >= 2 times, got shape {tn.shape}.")
    counts = np.array(
        [
            len(
                local_minima(
                    franz_parisi_potential(data, process, t, q, key=key, n=n).V, min_depth=min_depth
                )
            )
            for t in tn
        ]
    )
    order = np.argsort(-tn)
    bracket = None
    for i, j in zip(order[:-1], order[1:]):
        if counts[i] != counts[j]:
            bracket = (float(tn[j]), float(tn[i]))
            break
    return FranzParisiScan(tn, counts, bracket)


class FranzParisiEmpirical(NamedTuple):
    r"""Two-level Franz–Parisi potential of a finite dataset (`docs/theory/thermo.md#franz-parisi-empirical`).

    - `t`: times; `v_self`: $V(Q_0) = -\mathbb E\ln w_{\mu^*}$; `v_other`:
      $V(0) = -\mathbb E\ln(1-w_{\mu^*})$; `se_self`, `se_other`: standard errors;
      `condensed`: $V(Q_0) < V(0)$ (the memorising state wins); `n`.
    """

    t: Array
    v_self: Array
    v_other: Array
    se_self: Array
    se_other: Array
    condensed: Array
    n: int


@eqx.filter_jit
@trusted
def _fp_emp_impl(points, log_w, process, key, n, ts):
    k1, k2 = jax.random.split(key)
    P, d = points.shape
    idx = jax.random.choice(k1, P, (n,), p=jnp.exp(log_w))
    z = jax.random.normal(k2, (n, d), points.dtype)
    onehot = jax.nn.one_hot(idx, P, dtype=bool)

    def one(t):
        a, b2 = process.a(t), process.b2(t)
        x = a * points[idx] + jnp.sqrt(b2) * z
        logits = _delta_logits(points, log_w, x, a, b2)
        lse = jax.nn.logsumexp(logits, axis=-1)
        ls = jnp.sum(jnp.where(onehot, logits, 0.0), axis=-1) - lse
        lo = jax.nn.logsumexp(jnp.where(onehot, -jnp.inf, logits), axis=-1) - lse
        return (
            -jnp.mean(ls),
            -jnp.mean(lo),
            jnp.std(ls, ddof=1) / jnp.sqrt(n),
            jnp.std(lo, ddof=1) / jnp.sqrt(n),
        )

    return jax.lax.map(one, ts)


def franz_parisi_empirical(
    data: AbstractFiniteSet | DeltaMixture,
    process: AbstractProcess,
    ts: ArrayLike | Sequence[Any],
    *,
    key: PRNGKeyArray,
    n: int = 2000,
) -> FranzParisiEmpirical:
    r"""Franz–Parisi potential of an empirical dataset of $P$ points (`docs/theory/thermo.md#franz-parisi-empirical`).

    For $P$ nearly orthogonal points the overlap $q = y\cdot y^*/d$ between a posterior sample
    and the planted reference $y^* = y_{\mu^*}$ takes two values: $Q_0$ (same point) with
    probability $w_{\mu^*}(x_t)$ and $\approx0$ otherwise, so
    $V(Q_0) = -\mathbb E\ln w_{\mu^*}$, $V(0) = -\mathbb E\ln(1-w_{\mu^*})$. The memorising
    (condensed) state wins when $V(Q_0) < V(0)$; the crossing time is the condensation time,
    comparable to Biroli et al.'s collapse time (:func:`collapse_time`). Log-weights are
    log-sum-exp stable for every $t$. The same noise is used at every time.

    **Returns:** :class:`FranzParisiEmpirical`.
    """
    if not isinstance(data, AbstractFiniteSet):
        raise ValueError(
            f"franz_parisi_empirical needs a finite point set (DeltaMixture, LatticeImages), "
            f"got {type(data).__name__}."
        )
    _check_dp(data, process)
    n = _check_int(n, "n", 2)
    ts = _times(ts, process, "ts")
    if ts.ndim != 1:
        raise ValueError(f"ts must be a 1-D array of times, got shape {ts.shape}.")
    pts = data._flat
    dtype = _dtype_of(pts, ts)
    vs, vo, ss, so = _fp_emp_impl(
        pts.astype(dtype), jnp.log(data.weights).astype(dtype), process, key, n, ts.astype(dtype)
    )
    return FranzParisiEmpirical(ts, vs, vo, ss, so, vs < vo, n)


def local_minima(V: ArrayLike, *, min_depth: Real[ArrayLike, ""] = 0.0) -> np.ndarray:
    """Indices of the interior local minima of a sampled curve ``V`` whose depth (height of the
    lower of the two neighbouring maxima above the minimum) exceeds ``min_depth``."""
    v = np.asarray(V, dtype=np.float64)
    if v.ndim != 1 or v.size < 3:
        raise ValueError(f"V must be a 1-D array of >= 3 values, got shape {v.shape}.")
    out = []
    for i in range(1, v.size - 1):
        if v[i] < v[i - 1] and v[i] <= v[i + 1]:
            j = i  # climb to the neighbouring maximum on the left ...
            while j > 0 and v[j - 1] >= v[j]:
                j -= 1
            left = v[j]
            j = i  # ... and on the right
            while j < v.size - 1 and v[j + 1] >= v[j]:
                j += 1
            right = v[j]
            if min(left, right) - v[i] > min_depth:
                out.append(i)
    return np.asarray(out, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# collapse (Biroli et al., `docs/theory/cloning.md#collapse`)
# ----------------------------------------------------------------------------------------------


def collapse_time(
    n_points: ArrayLike,
    dim: ArrayLike,
    sigma2: ArrayLike,
    process: AbstractProcess | None = None,
) -> Array:
    r"""Collapse time of $P$ training points from Gaussian(-mixture) data (Biroli et al.).

    $f(t) = \alpha + \tfrac12\ln\frac{b_t^2}{b_t^2 + a_t^2\sigma^2}$, $\alpha = \ln P/N$, vanishes at
    ${\rm SNR}_C = (P^{2/N}-1)/\sigma^2$; for OU
    $t_C = \tfrac12\ln\big(1 + \sigma^2/(P^{2/N}-1)\big)$ (`docs/theory/cloning.md#collapse`, [CODE]); any other
    process through its closed-form ``t_of_snr``. $\sigma^2$ is the within-cluster variance per
    dimension. Differentiable; broadcasts.
    """
    process = OU() if process is None else process
    check_instance(process, AbstractProcess, "process", PROCESS)
    P = as_float_array(n_points, "n_points")
    N = as_float_array(dim, "dim")
    s2 = as_float_array(sigma2, "sigma2")
    if is_concrete((P, N, s2)) and not (
        np.all(np.asarray(P) > 1) and np.all(np.asarray(N) > 0) and np.all(np.asarray(s2) > 0)
    ):
        raise ValueError(
            f"need n_points > 1, dim > 0, sigma2 > 0; got {n_points}, {dim}, {sigma2}."
        )
    snr = jnp.expm1(2 * jnp.log(P) / N) / s2
    return process.t_of_snr(snr)


@eqx.filter_jit
@trusted
def _excess_impl(points, process, key, n, ts, test):
    P, d = points.shape
    k1, k2 = jax.random.split(key)
    src = points if test is None else test
    idx = jax.random.choice(k1, src.shape[0], (n,))
    z = jax.random.normal(k2, (n, d), points.dtype)
    log_w = jnp.full((P,), -math.log(P), points.dtype)
    alpha = math.log(P) / d

    def one(t):
        a, b2 = process.a(t), process.b2(t)
        x = a * src[idx] + jnp.sqrt(b2) * z
        logits = _delta_logits(points, log_w, x, a, b2)
        lse = jax.nn.logsumexp(logits, axis=-1)
        # -ln P_emp(x) / d  minus  s_Delta = (1/2) ln(2 pi e b2)
        xx = jnp.sum(x**2, axis=-1)
        neg_logp = -(lse - 0.5 * xx / b2 - 0.5 * d * (_LOG_2PI + jnp.log(b2)))
        vals = alpha - (neg_logp / d - 0.5 * (_LOG_2PI + 1 + jnp.log(b2)))
        est = _mc(vals, n)
        return est.mean, est.se, est.n_nonfinite

    return jax.lax.map(one, ts)


def excess_entropy(
    points: ArrayLike,
    process: AbstractProcess,
    ts: ArrayLike | Sequence[Any],
    *,
    key: PRNGKeyArray,
    n: int = 1000,
    test_points: ArrayLike | None = None,
) -> MCEstimate:
    r"""Biroli et al.'s excess-entropy criterion $f(t) = \alpha - [s(t) - s_\Delta(t)]$ by Monte Carlo.

    $s(t) = -\frac1N\mathbb E\ln P^{\rm emp}_t(x)$ with $P^{\rm emp}_t = \frac1P\sum_\mu
    \mathcal N(a_ty^\mu, b_t^2I)$ the empirical marginal, $s_\Delta = \tfrac12\ln(2\pi e b_t^2)$,
    $\alpha = \ln P/N$ (`docs/theory/cloning.md#collapse`, [CODE]).

    - Without ``test_points``, $x$ is drawn from $P^{\rm emp}_t$ itself; then
      $N f(t) = H(\mu\mid x_t)$, the posterior entropy of the training index [DERIVED], which
      lies in $[0, \ln P]$ and decays to 0 after the collapse.
    - With held-out ``test_points`` (fresh samples of the data law), $x = a_ty' + b_tz$: then
      $f$ follows the large-$N$ theory $\alpha+\tfrac12\ln\frac{b^2}{b^2+a^2\sigma^2}$ above $t_C$
      and turns negative below it (the training points no longer cover fresh data), so its
      zero crossing estimates $t_C$ (:func:`collapse_time_estimate`).

    Common random numbers at every time. **Returns:** :class:`MCEstimate` with arrays over ``ts``.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    pts = as_float_array(points, "points")
    if pts.ndim != 2 or pts.shape[0] < 2:
        raise ValueError(f"points must have shape (P, N) with P >= 2, got {pts.shape}.")
    n = _check_int(n, "n", 2)
    ts = _times(ts, process, "ts")
    if ts.ndim != 1:
        raise ValueError(f"ts must be a 1-D array of times, got shape {ts.shape}.")
    dtype = _dtype_of(pts, ts)
    test = None
    if test_points is not None:
        test = as_float_array(test_points, "test_points").astype(dtype)
        if test.ndim != 2 or test.shape[1] != pts.shape[1]:
            raise ValueError(f"test_points must have shape (M, {pts.shape[1]}), got {test.shape}.")
    m, se, n_bad = _excess_impl(pts.astype(dtype), process, key, n, ts.astype(dtype), test)
    return MCEstimate(m, se, n, n_bad)


def collapse_time_estimate(
    ts: ArrayLike | Sequence[Any], f: ArrayLike | Sequence[Any]
) -> float | None:
    r"""First zero crossing of $f(t)$ coming from large $t$ (linear interpolation), or ``None``.

    Use with the held-out version of :func:`excess_entropy`.
    """
    t = np.asarray(ts, dtype=np.float64)
    v = np.asarray(f, dtype=np.float64)
    if t.ndim != 1 or t.shape != v.shape or t.size < 2:
        raise ValueError("ts and f must be 1-D arrays of the same length >= 2.")
    order = np.argsort(-t)
    t, v = t[order], v[order]
    for i in range(t.size - 1):
        if v[i] > 0 >= v[i + 1]:
            return float(t[i] + (t[i + 1] - t[i]) * v[i] / (v[i] - v[i + 1]))
    return None


class DynamicalRegimes(NamedTuple):
    r"""The three regimes of generation on one time axis (Biroli et al., `docs/theory/cloning.md#dynamical-regimes`).

    Noise for $t > t_S$, speciation regime $t_C < t < t_S$, collapse for $t < t_C$.
    `t_score`: the speciation time, i.e. the mean-field score critical time $t_c^S$
    (:func:`gltheory.critical_times`); `t_sde`: $t_c^D$; `t_collapse`: :func:`collapse_time`.
    (Field names as in :class:`gltheory.CriticalTimes`.)
    """

    t_score: float | None
    t_sde: float | None
    t_collapse: float


def dynamical_regimes(
    data: GaussianMixture | AbstractData, process: AbstractProcess, n_points: int
) -> DynamicalRegimes:
    r"""Speciation and collapse times of a Gaussian mixture with $P$ training points.

    $t_S$ from the mean-field critical times of the mixture (criterion S, and D for the
    reverse SDE), $t_C$ from :func:`collapse_time` with the mean within-component variance.
    Returns Python floats, so it does not run under ``jax.grad``/``jit``/``vmap`` (a clear
    ``TypeError``); differentiate :func:`collapse_time` and ``gltheory.critical_times`` instead.
    """
    if not isinstance(data, GaussianMixture):
        raise ValueError(f"data must be a GaussianMixture, got {type(data).__name__}.")
    refuse_traced("dynamical_regimes", (data, process))
    ct = critical_times(data, process)
    s2 = float(jnp.mean(data.variances))
    tc = float(collapse_time(_check_int(n_points, "n_points", 2), data.dim, s2, process))
    return DynamicalRegimes(ct.t_score, ct.t_sde, tc)
