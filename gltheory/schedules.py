r"""Critical-window time grids: spend the sampler's steps where the outcome is decided.

See `docs/theory/schedules.md#critical-grid`. The grid itself is
``gltheory.time_grid(process, n, kind="critical", centre=, width=, weight=, base=)`` (core);
this module locates the window and measures what a grid does.

**Locating the window** (a :class:`Window`: centre and width in the process's time):

- :func:`window_from_data` — from a dataset: the class susceptibility $R(t)$ of its soft mode
  (two clusters $\pm m$ along the top principal direction of the data, within-cluster variance
  the mean variance of the other directions; `docs/theory/schedules.md#window-from-data`);
- :func:`window_from_times` — a given centre and width;
- :func:`window_from_estimate` / :func:`window_from_score` — from a black-box score through
  the detectors of :mod:`gltheory.criticality` (the growth of $\xi(t)$ of the denoised field:
  where patterns are born, which need not be $t_c^S$).

**An exact, noise-free objective** for 1-D two deltas $\pm\mu$ with weights $(w, 1-w)$
(`docs/theory/schedules.md#quadrature`): :func:`quadrature_distribution` propagates the
Euler–Maruyama chain's density on a fixed grid of cells step by step (the Gaussian transition
integrated over each cell), which gives the chain's exact law at the end of a time grid (its
distribution function, hence Wasserstein distances); :func:`quadrature_class_fraction` is its
mass on $x>0$, differentiable in the grid; :func:`class_fraction_bias` subtracts the exact one;
:func:`tune_window` minimises the squared bias over the bump's centre, width and weight with
optax; :func:`local_error_density` and :func:`sqrt_error_grid` give the step density
$\rho\propto\sqrt{e(t)}$ of `docs/theory/schedules.md#sqrt-rule` to compare with.

**Online** (:func:`online_sample`, `docs/theory/schedules.md#online`): Euler–Maruyama whose
next step is shortened by the ensemble's own susceptibility estimate, inside a fixed step
budget that it never exceeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ._checks import (
    PROCESS,
    as_float_array,
    check_callable,
    check_instance,
    check_values,
    state_dtype,
    trusted,
)
from .criticality import CriticalTimeEstimate, denoised_fields, xi_peak_time
from .data import AbstractData
from .observables import class_susceptibility_theory
from .processes import AbstractProcess
from .sampling import (
    TrajectoryKeys,
    as_trajectory_keys,
    check_time_grid,
    integrate,
    split_trajectory_keys,
    time_grid,
)
from .solvers import EulerMaruyama

__all__ = [
    "Window",
    "window_from_data",
    "window_from_times",
    "window_from_estimate",
    "window_from_score",
    "critical_grid",
    "soft_mode",
    "exact_class_fraction",
    "quadrature_distribution",
    "quadrature_class_fraction",
    "class_fraction_bias",
    "TunedWindow",
    "tune_window",
    "local_error_density",
    "sqrt_error_grid",
    "OnlineResult",
    "online_sample",
    "DEFAULT_WEIGHT",
    "DEFAULT_WIDTH_OU",
    "DEFAULT_CENTRE_SHIFT_OU",
    "DEFAULT_GAIN",
]

DEFAULT_WEIGHT = 0.6
r"""Default fraction $\beta$ of the steps in the bump (`docs/theory/schedules.md#default-weight`);
the default of ``time_grid(kind="critical", weight=)``."""
DEFAULT_WIDTH_OU = 1.1326
r"""Default bump width in OU time: the standard deviation of the large-$\Lambda$ class
susceptibility $R(\tau)$ read as a density (`docs/theory/schedules.md#default-width`)."""
DEFAULT_CENTRE_SHIFT_OU = 0.8148
r"""The mean of that density minus $t_S$, in OU time (`docs/theory/schedules.md#default-width`)."""
DEFAULT_GAIN = 10.0
r"""Default gain of :func:`online_sample` (`docs/theory/schedules.md#online`)."""


class Window(NamedTuple):
    r"""A critical window in the process's own time.

    - `centre`: the centre $c$ of the bump.
    - `width`: its width $w$ (the standard deviation of the Gaussian bump).
    - `t_peak`: the time the window was read from (peak of $R$, or a detector's estimate).
    """

    centre: Array
    width: Array
    t_peak: Array


# ----------------------------------------------------------------------------------------------
# locating the window
# ----------------------------------------------------------------------------------------------


def window_from_times(centre: Real[ArrayLike, ""], width: Real[ArrayLike, ""]) -> Window:
    """A window from a given centre and width (both in the process's time, width > 0).

    **Returns:** a :class:`Window` with ``t_peak = centre``.
    """
    centre = as_float_array(centre, "centre")
    width = as_float_array(width, "width")
    if centre.ndim or width.ndim:
        raise ValueError("centre and width must be scalars.")
    centre = check_values(centre, lambda v: ~(v > 0), f"centre must be > 0, got {centre}.")
    width = check_values(width, lambda v: ~(v > 0), f"width must be > 0, got {width}.")
    return Window(centre, width, centre)


def soft_mode(data: AbstractData) -> tuple[Array, Array, Array]:
    r"""Two-cluster reduction of a dataset along its soft mode.

    $u$ = the top eigenvector of ${\rm Cov}[y]$ (eigenvalue $\lambda$); within-cluster
    variance $\sigma^2 = ({\rm tr\,Cov}[y]-\lambda)/(d-1)$ (0 for $d=1$); separation
    $\|m\|^2 = \lambda-\sigma^2$. Exact for two deltas and for two isotropic Gaussian clusters
    (`docs/theory/schedules.md#window-from-data`).

    **Returns:** ``(u, m_norm, sigma2)``.
    """
    check_instance(data, AbstractData, "data", "a gltheory dataset")
    cov = data.covariance()
    w, v = jnp.linalg.eigh(cov)
    lam = w[-1]
    d = data.dim
    sigma2 = jnp.maximum((jnp.trace(cov) - lam) / (d - 1), 0.0) if d > 1 else jnp.zeros_like(lam)
    sigma2 = jnp.minimum(sigma2, lam)
    return v[:, -1], jnp.sqrt(jnp.maximum(lam - sigma2, 0.0)), sigma2


def window_from_data(
    data: AbstractData,
    process: AbstractProcess,
    *,
    t_min: Real[ArrayLike, ""] | None = None,
    t_max: Real[ArrayLike, ""] | None = None,
    n_grid: int = 4001,
) -> Window:
    r"""The window of a dataset from its soft mode's class susceptibility $R(t)$.

    $R(t)$ of the two-cluster reduction :func:`soft_mode`
    (:func:`gltheory.observables.class_susceptibility_theory`) on ``n_grid`` times uniform in
    $\ln{\rm SNR}$; the window is the Gaussian with the mean and standard deviation of $R$
    read as a density in $t$ (the Gaussian closest to $\rho\propto R$ in the KL sense,
    `docs/theory/schedules.md#default-width`). For two deltas $\pm\mu$ under OU with
    $\mu\gg1$: centre $\ln\mu + 0.815$, width $1.133$.

    **Arguments:**

    - `data`, `process`: the dataset and the forward process.
    - `t_min`, `t_max`: the range searched (default $10^{-3}T$ and $T$).
    - `n_grid`: grid size.

    **Returns:** a :class:`Window` (``t_peak`` = the grid maximum of $R$).
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    if not isinstance(n_grid, (int, np.integer)) or n_grid < 16:
        raise ValueError(f"n_grid must be an integer >= 16, got {n_grid!r}.")
    _, m_norm, sigma2 = soft_mode(data)
    if float(m_norm) <= 0:
        raise ValueError("data has no soft mode with two clusters (zero separation).")
    ts = time_grid(process, int(n_grid) - 1, kind="log_snr", t_min=t_min, t_max=t_max)
    r = np.asarray(class_susceptibility_theory(m_norm, sigma2, ts, process=process), np.float64)
    t = np.asarray(ts, np.float64)
    # R as a density in t (trapezoid on the decreasing grid): its mean and standard deviation
    dt = -np.diff(t)
    mass = 0.5 * (r[1:] + r[:-1]) * dt
    mid_t = 0.5 * (t[1:] + t[:-1])
    mean = np.sum(mass * mid_t) / np.sum(mass)
    var = np.sum(0.5 * (r[1:] * (t[1:] - mean) ** 2 + r[:-1] * (t[:-1] - mean) ** 2) * dt)
    dtype = jnp.asarray(ts).dtype
    centre = jnp.asarray(mean, dtype)
    width = jnp.asarray(np.sqrt(var / np.sum(mass)), dtype)
    i = int(np.argmax(r))
    return Window(centre, width, jnp.asarray(t[i], dtype))


def _ou_time_rate(process, t):
    r"""$|d\tau/dt|$ with $\tau = \tfrac12\ln(1+1/{\rm SNR}(t))$ the OU-equivalent time."""
    ell, dell = jax.jvp(process.log_snr, (t,), (jnp.ones_like(t),))
    return jnp.abs(0.5 * dell * jax.nn.sigmoid(-ell))


def window_from_estimate(
    estimate: CriticalTimeEstimate,
    process: AbstractProcess,
    *,
    width: Real[ArrayLike, ""] | None = None,
) -> Window:
    r"""A window centred on a detector's estimate (:mod:`gltheory.criticality`).

    Default width: :data:`DEFAULT_WIDTH_OU` converted to the process's time at the estimate
    ($w_t = w_\tau/|d\tau/dt|$, $\tau$ the OU-equivalent time), and at least twice the
    estimate's total error ``estimate.err``.

    **Returns:** a :class:`Window` (``t_peak`` = the estimate).
    """
    if not isinstance(estimate, CriticalTimeEstimate):
        raise ValueError(
            f"estimate must be a gltheory.criticality.CriticalTimeEstimate, got "
            f"{type(estimate).__name__}."
        )
    check_instance(process, AbstractProcess, "process", PROCESS)
    tc = jnp.asarray(estimate.t_c)
    if not bool(jnp.isfinite(tc)):
        raise ValueError("estimate.t_c is NaN: the detector found no critical time.")
    if width is None:
        width = jnp.maximum(DEFAULT_WIDTH_OU / _ou_time_rate(process, tc), 2 * estimate.err)
    return window_from_times(tc, width)._replace(t_peak=tc)


def window_from_score(
    score_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    key: PRNGKeyArray,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    n_boot: int = 100,
    width: Real[ArrayLike, ""] | None = None,
) -> Window:
    r"""The window of a black-box score: where the correlation length of the denoised field
    grows fastest during generation (:func:`gltheory.criticality.xi_peak_time` with
    ``growth=True`` on :func:`gltheory.criticality.denoised_fields`), i.e. where patterns are
    born; then :func:`window_from_estimate`. ``x``: lattice states ``(n, *lattice)`` or their
    shape.

    **Returns:** a :class:`Window`.
    """
    check_callable(score_fn, "score_fn", "score_fn(x, t)")
    k_run, k_boot = jax.random.split(key)
    saved_ts, fields = denoised_fields(score_fn, process, k_run, x, ts=ts)
    est = xi_peak_time(fields, saved_ts, k_boot, increments=False, growth=True, n_boot=n_boot)
    return window_from_estimate(est, process, width=width)


def critical_grid(
    process: AbstractProcess,
    n_steps: int | np.integer,
    window: Window,
    *,
    weight: Real[ArrayLike, ""] = DEFAULT_WEIGHT,
    base: str = "log_snr",
    t_min: Real[ArrayLike, ""] | None = None,
    t_max: Real[ArrayLike, ""] | None = None,
) -> Float[Array, " n_steps_plus_1"]:
    """``time_grid(process, n_steps, kind="critical", ...)`` for a :class:`Window`."""
    if not isinstance(window, Window):
        raise ValueError(
            f"window must be a gltheory.schedules.Window, got {type(window).__name__}."
        )
    return time_grid(
        process,
        n_steps,
        kind="critical",
        t_min=t_min,
        t_max=t_max,
        centre=window.centre,
        width=window.width,
        weight=weight,
        base=base,
    )


# ----------------------------------------------------------------------------------------------
# the exact class-fraction bias of a grid: 1-D two deltas, Euler–Maruyama, by quadrature
# ----------------------------------------------------------------------------------------------


def _check_two_deltas(process, mu, w):
    check_instance(process, AbstractProcess, "process", PROCESS)
    mu = as_float_array(mu, "mu")
    w = as_float_array(w, "w")
    if mu.ndim or w.ndim:
        raise ValueError("mu and w must be scalars.")
    mu = check_values(mu, lambda v: ~(v > 0), f"mu must be > 0, got {mu}.")
    w = check_values(w, lambda v: ~((v > 0) & (v < 1)), f"w must lie in (0, 1), got {w}.")
    return mu, w


def _posterior_plus(y, t, process, mu, w):
    r"""$P(+\mid x_t=y) = \mathrm{sigmoid}(2a_t\mu y/b_t^2 + \mathrm{logit}\,w)$."""
    a, b2 = process.a(t), process.b2(t)
    return jax.nn.sigmoid(2 * a * mu * y / b2 + jnp.log(w) - jnp.log1p(-w))


def _two_delta_score(x, t, process, mu, w):
    r"""$s = (a_t\,\mathbb E[y\mid x] - x)/b_t^2$, $\mathbb E[y\mid x] = \mu(2P_+ - 1)$."""
    a, b2 = process.a(t), process.b2(t)
    return (a * mu * (2 * _posterior_plus(x, t, process, mu, w) - 1) - x) / b2


def exact_class_fraction(
    process: AbstractProcess,
    mu: Real[ArrayLike, ""],
    w: Real[ArrayLike, ""],
    t: Real[ArrayLike, "*t"],
) -> Float[Array, "*t"]:
    r"""$P(x_t>0) = w\,\Phi(a_t\mu/b_t) + (1-w)\,\Phi(-a_t\mu/b_t)$ for data
    $w\,\delta_{+\mu} + (1-w)\,\delta_{-\mu}$: the class fraction of the exact dynamics
    stopped at $t$ (`docs/theory/schedules.md#quadrature`)."""
    mu, w = _check_two_deltas(process, mu, w)
    t = as_float_array(t, "t")
    k = process.a(t) * mu / process.b(t)
    return w * jax.scipy.special.ndtr(k) + (1 - w) * jax.scipy.special.ndtr(-k)


def _check_quadrature(process, ts, mu, w, n_cells, half_width, pad_to):
    mu, w = _check_two_deltas(process, mu, w)
    ts = check_time_grid(ts, process.T)
    if not isinstance(n_cells, (int, np.integer)) or n_cells < 8 or n_cells % 2:
        raise ValueError(f"n_cells must be an even integer >= 8, got {n_cells!r}.")
    L = mu + 8.0 if half_width is None else as_float_array(half_width, "half_width")
    L = check_values(L, lambda v: ~(v > 0), f"half_width must be > 0, got {half_width}.")
    n_steps = ts.shape[0] - 1
    if pad_to is not None:
        if not isinstance(pad_to, (int, np.integer)) or pad_to < n_steps:
            raise ValueError(
                f"pad_to must be an integer >= the number of steps ({n_steps}), got {pad_to!r}."
            )
        # zero-length steps (t_next = t) are skipped by the implementation
        ts = jnp.concatenate([ts, jnp.broadcast_to(ts[-1:], (int(pad_to) - n_steps,))])
    return mu, w, ts, L


def quadrature_distribution(
    process: AbstractProcess,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    mu: Real[ArrayLike, ""],
    w: Real[ArrayLike, ""],
    *,
    n_cells: int = 512,
    half_width: float | None = None,
    pad_to: int | None = None,
) -> tuple[Float[Array, " n_cells_plus_1"], Float[Array, " n_cells"]]:
    r"""The Euler–Maruyama chain's distribution at ``ts[-1]`` on a grid of cells, by
    propagating its density (`docs/theory/schedules.md#quadrature`).

    Data $w\,\delta_{+\mu}+(1-w)\,\delta_{-\mu}$ in 1-D, exact score, start
    $x_{t_0}\sim\mathcal N(0,b_{t_0}^2)$ (as :func:`gltheory.sample`). The line
    $[-L, L]$ ($L$ = ``half_width``, default $\mu+8$) is cut into ``n_cells`` equal cells
    (an even number: 0 is a cell edge; the two end cells extend to $\pm\infty$); the mass of
    each cell, placed at its centre $x_k$, is moved by the step's Gaussian transition
    $\mathcal N(m(x_k), g^2(t)h)$, $m(x) = x + h[g^2 s(x,t) - f x]$, integrated exactly over
    every cell ($\Phi$ differences), so mass is conserved and narrow late-time kernels are
    exact. Error: the midpoint placement, $O(\Delta x^2)$ per step. No Monte Carlo: the
    result is a smooth function of ``ts`` (and of ``mu``, ``w``) and ``jax.grad`` goes
    through it (the step is checkpointed: memory $O(\text{n\_cells})$ per step).

    **Arguments:**

    - `process`, `ts`: the forward process and the decreasing grid.
    - `mu`, `w`: the data's half-separation and the weight of $+\mu$.
    - `n_cells`, `half_width`: the cells.
    - `pad_to`: optional step count $\ge$ the grid's: the grid is padded with zero-length
      steps (skipped) to this length, so grids of different lengths share one compiled
      program.

    **Returns:** ``(edges, masses)``: the ``n_cells + 1`` cell edges (the first and last
    stand for $\mp\infty$) and the chain's mass in each cell (summing to 1); the chain's
    distribution function at the inner edges is ``cumsum(masses)[:-1]``.
    """
    mu, w, ts, L = _check_quadrature(process, ts, mu, w, n_cells, half_width, pad_to)
    p = _quadrature_impl(process, ts, mu, w, L, int(n_cells))
    edges = jnp.linspace(-L, L, int(n_cells) + 1).astype(p.dtype)
    return edges, p


def quadrature_class_fraction(
    process: AbstractProcess,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    mu: Real[ArrayLike, ""],
    w: Real[ArrayLike, ""],
    *,
    n_cells: int = 512,
    half_width: float | None = None,
    pad_to: int | None = None,
) -> Float[Array, ""]:
    r"""Exact class fraction $P(x_{t_n}>0)$ of the Euler–Maruyama chain on the grid ``ts``:
    the mass of the positive cells of :func:`quadrature_distribution` (same arguments;
    `docs/theory/schedules.md#quadrature`).

    **Returns:** the fraction, a scalar.
    """
    _, p = quadrature_distribution(
        process, ts, mu, w, n_cells=n_cells, half_width=half_width, pad_to=pad_to
    )
    return jnp.sum(p[int(n_cells) // 2 :])


@eqx.filter_jit
@trusted
def _quadrature_impl(process, ts, mu, w, L, n_cells):
    dtype = jnp.result_type(ts, mu, w, float)
    ts = ts.astype(dtype)
    edges = jnp.linspace(-L, L, n_cells + 1).astype(dtype)
    x = 0.5 * (edges[1:] + edges[:-1])
    inner = edges[1:-1]
    solver = EulerMaruyama()
    p0 = jax.scipy.special.ndtr(inner / process.b(ts[0]))
    p0 = jnp.diff(jnp.concatenate([jnp.zeros(1, dtype), p0, jnp.ones(1, dtype)]))

    def score(y, t):
        return _two_delta_score(y, t, process, mu, w)

    @jax.checkpoint
    def body(p, i, _):
        t, t_next = ts[i], ts[i + 1]
        active = t_next < t  # padded zero-length steps leave p as it is
        t_next = jnp.where(active, t_next, t - 1.0)
        m = solver.step(score, process, x, t, t_next, jnp.zeros_like(x))
        s = process.g(t) * jnp.sqrt(t - t_next)
        cdf = jax.scipy.special.ndtr((inner[None, :] - m[:, None]) / s)
        ones = jnp.ones((n_cells, 1), dtype)
        trans = jnp.diff(jnp.concatenate([0 * ones, cdf, ones], axis=1), axis=1)
        return jnp.where(active, p @ trans, p), None

    p, _ = integrate(body, p0, ts)
    return p


def class_fraction_bias(
    process: AbstractProcess,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    mu: Real[ArrayLike, ""],
    w: Real[ArrayLike, ""],
    *,
    n_cells: int = 512,
    pad_to: int | None = None,
) -> Float[Array, ""]:
    r"""Class-fraction bias of the Euler–Maruyama chain on ``ts``:
    :func:`quadrature_class_fraction` $-$ :func:`exact_class_fraction` at ``ts[-1]``.
    Differentiable in ``ts`` (`docs/theory/schedules.md#quadrature`); ``pad_to`` as in
    :func:`quadrature_distribution`."""
    ts = check_time_grid(ts, process.T)
    q = quadrature_class_fraction(process, ts, mu, w, n_cells=n_cells, pad_to=pad_to)
    return q - exact_class_fraction(process, mu, w, ts[-1])


class TunedWindow(NamedTuple):
    """Result of :func:`tune_window`: the tuned ``window`` and ``weight``, the final ``bias``
    and the ``history`` of the bias over the optimiser's steps."""

    window: Window
    weight: Array
    bias: Array
    history: Array


def tune_window(
    process: AbstractProcess,
    n_steps: int,
    mu: Real[ArrayLike, ""],
    w: Real[ArrayLike, ""],
    window: Window,
    *,
    weight: Real[ArrayLike, ""] = DEFAULT_WEIGHT,
    base: str = "log_snr",
    t_min: Real[ArrayLike, ""] | None = None,
    steps: int = 60,
    learning_rate: float = 0.05,
    n_cells: int = 256,
) -> TunedWindow:
    r"""Tune the bump (centre, width, weight) of a critical grid against the exact
    class-fraction bias (:func:`class_fraction_bias`) with ``optax.adam``.

    Parameters $\theta = (c,\ \ln w,\ \mathrm{logit}\,\beta)$, loss ${\rm bias}^2$, ``steps``
    Adam steps from ``window``/``weight`` (`docs/theory/schedules.md#tuning`). The bias is
    signed, so a zero can come from cancelling errors: compare the tuned grid with others at
    other step counts before reading much into it.

    **Returns:** a :class:`TunedWindow`.
    """
    mu, w = _check_two_deltas(process, mu, w)
    if not isinstance(window, Window):
        raise ValueError(
            f"window must be a gltheory.schedules.Window, got {type(window).__name__}."
        )
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    weight = float(weight)
    if not 0 < weight < 1:
        raise ValueError(f"weight must lie in (0, 1) to be tuned, got {weight}.")
    t_lo = 1e-3 * float(process.T) if t_min is None else float(t_min)

    def grid(theta):
        return time_grid(
            process,
            n_steps,
            kind="critical",
            base=base,
            t_min=t_lo,
            centre=theta[0],
            width=jnp.exp(theta[1]),
            weight=jax.nn.sigmoid(theta[2]),
        )

    @eqx.filter_jit
    def loss(theta):
        b = class_fraction_bias(process, grid(theta), mu, w, n_cells=n_cells)
        return b**2, b

    grad_fn = eqx.filter_jit(jax.value_and_grad(loss, has_aux=True))
    theta = jnp.stack(
        [
            jnp.asarray(window.centre),
            jnp.log(jnp.asarray(window.width)),
            jnp.asarray(np.log(weight / (1 - weight))),
        ]
    ).astype(jnp.result_type(float))
    opt = optax.adam(learning_rate)
    state = opt.init(theta)
    history = []
    for _ in range(int(steps)):
        (_, b), g = grad_fn(theta)
        history.append(b)
        updates, state = opt.update(g, state)
        theta = optax.apply_updates(theta, updates)
        theta = theta.at[0].set(jnp.clip(theta[0], 1.01 * t_lo, 0.99 * float(process.T)))
    _, b = loss(theta)
    tuned = Window(theta[0], jnp.exp(theta[1]), window.t_peak)
    return TunedWindow(tuned, jax.nn.sigmoid(theta[2]), b, jnp.stack(history + [b]))


def local_error_density(
    process: AbstractProcess,
    t: Real[ArrayLike, " n_t"],
    mu: Real[ArrayLike, ""],
    w: Real[ArrayLike, ""],
    *,
    h: Real[ArrayLike, ""] = 1e-2,
    n_nodes: int = 96,
) -> Float[Array, " n_t"]:
    r"""Local class-fraction error density $e(t)$ of one Euler–Maruyama step
    (`docs/theory/schedules.md#sqrt-rule`).

    $P_+(x, t) = P(+\mid x_t = x)$ is a martingale of the exact reverse dynamics, so the
    class-fraction error of one step of size $h$ from the exact $p_t$ is
    $\ell(t, h) = \mathbb E_{x\sim p_t}\mathbb E_z[P_+(m(x)+g\sqrt h z,\ t-h)] - \mathbb E_{p_t}[P_+(x,t)]$
    ($=O(h^2)$), computed by Gauss–Hermite quadrature (``n_nodes`` in $x$ per cluster and in
    $z$); $e(t) = \ell(t,h)/h^2$ (signed). To first order the bias of a grid is
    $\sum_i e(t_i)h_i^2 \approx \int e(t)h(t)\,dt$.

    **Returns:** $e$ at the times ``t``.
    """
    mu, w = _check_two_deltas(process, mu, w)
    t = as_float_array(t, "t")
    h = as_float_array(h, "h")
    z, wz = np.polynomial.hermite_e.hermegauss(int(n_nodes))
    wz = wz / np.sqrt(2 * np.pi)
    return _local_error_impl(process, t, mu, w, h, jnp.asarray(z), jnp.asarray(wz))


@eqx.filter_jit
@trusted
def _local_error_impl(process, t, mu, w, h, z, wz):
    solver = EulerMaruyama()

    def one(t):
        a, b = process.a(t), process.b(t)
        xs = jnp.concatenate([a * mu + b * z, -a * mu + b * z])
        px = jnp.concatenate([w * wz, (1 - w) * wz])

        def score(y, tt):
            return _two_delta_score(y, tt, process, mu, w)

        m = solver.step(score, process, xs, t, t - h, jnp.zeros_like(xs))
        y = m[:, None] + process.g(t) * jnp.sqrt(h) * z[None, :]
        after = jnp.sum(px * (_posterior_plus(y, t - h, process, mu, w) @ wz))
        before = jnp.sum(px * _posterior_plus(xs, t, process, mu, w))
        return (after - before) / h**2

    return jax.vmap(one)(t)


def sqrt_error_grid(
    process: AbstractProcess,
    n_steps: int,
    mu: Real[ArrayLike, ""],
    w: Real[ArrayLike, ""],
    *,
    t_min: Real[ArrayLike, ""] | None = None,
    n_ref: int = 2048,
    floor: float = 1e-3,
    h: Real[ArrayLike, ""] = 1e-2,
) -> Float[Array, " n_steps_plus_1"]:
    r"""The grid with step density $\rho(t)\propto\sqrt{|e(t)|} + \epsilon$
    (`docs/theory/schedules.md#sqrt-rule`), $e$ = :func:`local_error_density`,
    $\epsilon$ = ``floor`` $\times\max\sqrt{|e|}$ (keeps every region reachable). $e$ is
    evaluated on ``n_ref`` times uniform in $\ln{\rm SNR}$ (times closer than $2h$ to ``t_min``
    take the value at $t_{\min}+2h$); the cumulative density is inverted by interpolation.
    """
    mu, w = _check_two_deltas(process, mu, w)
    t_ref = time_grid(process, int(n_ref), kind="log_snr", t_min=t_min)
    t_eval = jnp.maximum(t_ref, t_ref[-1] + 2 * h)
    root = jnp.sqrt(jnp.abs(local_error_density(process, t_eval, mu, w, h=h)))
    rho = root + floor * jnp.max(root)
    # cumulative steps from t_max downwards (trapezoid in t)
    seg = 0.5 * (rho[1:] + rho[:-1]) * (t_ref[:-1] - t_ref[1:])
    cdf = jnp.concatenate([jnp.zeros(1, seg.dtype), jnp.cumsum(seg)])
    cdf = cdf / cdf[-1]
    y = jnp.linspace(0.0, 1.0, int(n_steps) + 1, dtype=cdf.dtype)
    ts = jnp.interp(y, cdf, t_ref)
    return ts.at[0].set(t_ref[0]).at[-1].set(t_ref[-1])


# ----------------------------------------------------------------------------------------------
# online: the ensemble's susceptibility drives the steps, within a fixed budget
# ----------------------------------------------------------------------------------------------


class OnlineResult(NamedTuple):
    r"""Result of :func:`online_sample`.

    - `x`: the final states.
    - `ts`: the grid actually taken, ``(budget + 1,)``, from ``t_max`` to ``t_min``.
    - `r_hat`: the dimensionless susceptibility estimate $b_t\hat R(t)$ at each step.
    - `evaluations`: score evaluations used (each one a JVP of the score), = the budget.
    """

    x: Array
    ts: Array
    r_hat: Array
    evaluations: int


def _base_time(process, u, kind, t_min, t_max):
    if kind == "uniform":
        return t_max + u * (t_min - t_max)
    lo, hi = process.log_snr(t_max), process.log_snr(t_min)
    return process.t_of_snr(jnp.exp(lo + u * (hi - lo)))


def online_sample(
    score_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    budget: int,
    direction: Real[ArrayLike, "*event"],
    scale: Real[ArrayLike, ""],
    gain: Real[ArrayLike, ""] = DEFAULT_GAIN,
    base: str = "log_snr",
    t_min: Real[ArrayLike, ""] | None = None,
    t_max: Real[ArrayLike, ""] | None = None,
) -> OnlineResult:
    r"""Euler–Maruyama whose steps shrink while the ensemble's susceptibility is large, with
    exactly ``budget`` steps (`docs/theory/schedules.md#online`).

    In the base coordinate $u\in[0,1]$ of ``base`` (``"log_snr"`` or ``"uniform"``), at step
    $i$ with $k = \text{budget}-i$ steps left: $\Delta u = \frac{1-u_i}{k}\,\frac1{1+\gamma r_i}$,
    $\gamma$ = ``gain``, and the last step lands on $t_{\min}$ — so the run ends at
    $t_{\min}$ after exactly ``budget`` steps whatever the estimates (it can never exceed the
    budget), and steps saved early are spent later. The estimate is the class susceptibility
    along ``direction`` $\hat u$ from the ensemble's posterior variance,
    $\hat R = \frac{a_t}{2\,{\rm scale}\,b_t^2}\,\overline{\hat u^\top{\rm Cov}[y\mid x_j]\hat u}$,
    ${\rm Cov}[y\mid x]\hat u = \frac{b_t^2}{a_t^2}(\hat u + b_t^2 J_s\hat u)$ (one JVP of the
    score, whose primal output the step reuses), $r = b_t\hat R$ (exact $R$ for two deltas
    $\pm$``scale``). The grid is common to the ensemble; trajectory noise as in
    :func:`gltheory.sample`.

    **Returns:** an :class:`OnlineResult`.
    """
    check_callable(score_fn, "score_fn", "score_fn(x, t)")
    check_instance(process, AbstractProcess, "process", PROCESS)
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}.")
    if base not in ("log_snr", "uniform"):
        raise ValueError(f"base must be 'log_snr' or 'uniform', got {base!r}.")
    gain = float(gain)
    if not np.isfinite(gain) or gain < 0:
        raise ValueError(f"gain must be a finite number >= 0, got {gain}.")
    scale = float(scale)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}.")
    ts0 = time_grid(process, 1, t_min=t_min, t_max=t_max)
    dtype = state_dtype(x, ts0.dtype)
    direction = as_float_array(direction, "direction").astype(dtype)
    direction = direction / jnp.linalg.norm(direction)
    n = int(x[0]) if isinstance(x, (tuple, list)) else int(jnp.shape(x)[0])
    keys = as_trajectory_keys(key, n)
    noise_keys, init_keys = split_trajectory_keys(keys)
    if isinstance(x, (tuple, list)):
        shape = tuple(int(s) for s in x)
        z0 = jax.vmap(lambda k: jax.random.normal(k, shape[1:], dtype))(init_keys)
        x0 = process.b(ts0[0]).astype(dtype) * z0
    else:
        x0 = as_float_array(x, "x").astype(dtype)
    if direction.shape != x0.shape[1:]:
        raise ValueError(
            f"direction must have the event shape {x0.shape[1:]}, got {direction.shape}."
        )
    xs, ts, r = _online_impl(
        score_fn,
        process,
        noise_keys,
        x0,
        ts0.astype(dtype),
        direction,
        jnp.asarray(scale, dtype),
        jnp.asarray(gain, dtype),
        int(budget),
        base,
    )
    return OnlineResult(xs, ts, r, int(budget))


@eqx.filter_jit
@trusted
def _online_impl(score_fn, process, noise_keys, x0, ends, direction, scale, gain, budget, base):
    t_max, t_min = ends[0], ends[1]
    solver = EulerMaruyama()
    axes = tuple(range(1, x0.ndim))

    def body(carry, i, z):
        x, u, t = carry
        k = budget - i
        s, js = jax.jvp(lambda y: score_fn(y, t), (x,), (jnp.broadcast_to(direction, x.shape),))
        a, b2 = process.a(t), process.b2(t)
        cov_uu = (b2 / a**2) * (1 + b2 * jnp.sum(direction * js, axis=axes))
        r = jnp.maximum(jnp.sqrt(b2) * a * jnp.mean(cov_uu) / (2 * scale * b2), 0.0)
        u_next = jnp.where(k == 1, 1.0, u + (1 - u) / k / (1 + gain * r))
        t_next = jnp.where(k == 1, t_min, _base_time(process, u_next, base, t_min, t_max))
        x = solver.step(lambda y, tt: s, process, x, t, t_next, z)
        return (x, u_next, t_next), (t_next, r)

    zero = jnp.zeros((), x0.dtype)
    dummy = jnp.zeros(budget + 1, x0.dtype)  # integrate reads only the grid's length
    (x, _, _), (ts, r) = integrate(
        body,
        (x0, zero, t_max),
        dummy,
        noise_keys=noise_keys,
        event_shape=x0.shape[1:],
        dtype=x0.dtype,
    )
    return x, jnp.concatenate([t_max[None], ts]), r
