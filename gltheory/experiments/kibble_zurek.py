r"""Kibble–Zurek experiment of the report: the pattern size frozen in when the patch model's
generation crosses its spatial transition (`docs/theory/spatial.md#kibble-zurek`).

The two-uniform-image patch model ($D = 2$, window $k$, periodic lattice $L = $ ``cells``
$\cdot k$, OU process) is generated with the exact closed-form patch score
(:func:`gltheory.scores.uniform_patch_score`) by the predictor–corrector sampler
:class:`gltheory.PredictorCorrector` (reverse-SDE predictor, $n$ Langevin corrector steps of
$\varepsilon = \tfrac12\rho g^2 h$), i.e. the $\lambda$-family with
$\lambda_{\rm eff}^2 = 1 + n\rho$. The patch score is not the score of the model's own
marginals, so $\lambda_{\rm eff}^2$ sets the relaxation per unit of generation time: in the
reduced variables of :mod:`gltheory.spatial` ($\tau' = \tau/b_t^2$, $G = {\rm SNR}_t k^D$) the
distance to the transition $\epsilon = \ln(G/G^\ast)$ moves as $d\epsilon/d\tau' =
2/\lambda_{\rm eff}^2$ for the OU process, so the quench time is exactly
$\tau_Q = \lambda_{\rm eff}^2/2$ (in $\tau'$ units) at every $t$.

Measured (``kz_sweep`` + ``kz_analysis``): the correlation length $\xi(t)$ (integrated
estimator of :func:`gltheory.field.correlation_length` on the connected denoised field
$E[y\mid x_t]$) along the generation, per $\tau_Q$, with jackknife errors over blocks of
trajectories; then

- the freeze-out by the collapse $\ln\xi = a\ln\tau_Q + F(\epsilon\,\tau_Q^{\,b})$ with
  $a = \nu/(1+z\nu)$ (the KZ exponent) and $b = 1/(1+z\nu)$, so that $t^\ast-\hat t \propto
  \tau_Q^{-b}$ in generation time and the freeze-out lag is $\hat\tau' \propto
  \tau_Q^{\,1-b} = \tau_Q^{z\nu/(1+z\nu)}$ in relaxation time; and $\xi$ at the crossing
  $G = G^\ast$, $\xi(t^\ast)\propto\tau_Q^{\,a}$;
- the $\lambda$-independence of $\xi$ well above $t^\ast$ (adiabatic regime);
- the coarsening after freeze-out: $\xi$ at the last time against $\tau_Q$, reported apart
  (no KZ exponent expected there);
- $z$ from the integrated autocorrelation time of $M^2$ in frozen-time runs at $G^\ast$
  (:func:`gltheory.spatial.lattice_langevin`, :func:`gltheory.spatial.integrated_autocorrelation_time`)
  for two sizes, $\tau \propto L^z$ (``dynamic_exponent``).

Rows compare the KZ exponent with $\nu/(1+z\nu)$ of the class the finite-size scaling selects
(``KibbleZurekConfig.nu``; 2-D Ising $\nu = 1$) with the measured $z$, and with mean field
$\tfrac14$. Figure: ``kibble_zurek.png`` ($\xi(t)$ per $\tau_Q$ and the collapse). Wall time:
see :class:`KibbleZurekConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from .. import spatial
from ..field import correlation_length
from ..processes import OU
from ..report import Experiment, ExperimentResult, ReportConfig, Row
from ..sampling import sample, time_grid
from ..scores import uniform_patch_score
from ..solvers import PredictorCorrector
from ._common import Sizes

__all__ = [
    "KibbleZurekConfig",
    "CONFIG",
    "EXPERIMENTS",
    "kz_sweep",
    "kz_analysis",
    "collapse_fit",
    "dynamic_exponent",
    "kibble_zurek_experiment",
    "STUDY_Z",
]

_GROUP = "kibble_zurek"
ISING_Z = 2.17
"""Model-A dynamic exponent of the 2-D Ising class (the issue's value)."""
STUDY_Z = (2.34, 0.08)
r"""$z$ and its SE from the study (``scripts/kz_study.py``, recorded in ``scripts/kz_study.json``
``["z"]``, ``z`` and ``z_se_scaled``): $\tau_{\rm int}$ of $M^2$ at the finite-size scaling
$G^\ast$ for $L/k = 4, 8, 16$ (every series $\ge 50\,\tau_{\rm int}$), slope of $\ln\tau$
on $\ln L$; the SE from the replica-block jackknife of each size, scaled by
$\sqrt{\chi^2/{\rm dof}}$ for the drift of the local slope (2.17 from $L/k = 4\to8$, 2.50
from $8\to16$); to two decimals (a fast test keeps it equal to the JSON). Quoted in the
rows' notes beside the experiment's own two-size $z$."""


@dataclasses.dataclass(frozen=True)
class KibbleZurekConfig(Sizes):
    """Sizes of the ``kibble_zurek`` experiment (:meth:`default`, :meth:`quick`).

    Wall time on the 2-core machine shared with other jobs, measured 2026-12-04 (niced):
    default 270 s (80 s CPU) at load 10-14 (73 s wall, 82 s CPU at load 4 with $G^\\ast =
    6.84$); ``--quick`` 243 s (28 s CPU) at load 8-12.
    Most of the wall time under that load is waiting for the cores (compilation included).
    """

    window: int = 3
    """The patch window $k$."""
    cells: int = 16
    """$L/k$ of the generative runs."""
    n_traj: int = 32
    """Trajectories per $\\tau_Q$."""
    n_blocks: int = 8
    """Jackknife blocks of trajectories (divides ``n_traj``)."""
    n_steps: int = 160
    """Predictor steps, log-SNR grid from ``t_max`` to ``t_min``."""
    t_max: float = 1.5
    t_min: float = 0.1
    save_every: int = 1
    """Record $\\xi$ every this many steps (every step: the collapse needs $\\epsilon$ finely
    sampled near $t^\\ast$, where $\\epsilon\\,\\tau_Q^{\\,b}$ stretches it)."""
    n_correctors: tuple[int, ...] = (32,)
    """Corrector steps $n$ ($\\tau_Q = (1 + n\\rho)/2$); one compiled sampler each."""
    rho: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0)
    """Corrector strengths $\\rho$, vmapped (reduced step $\\rho\\,\\Delta\\ln{\\rm SNR}/2 \\le
    0.028$ per corrector): $\\tau_Q$ from 2.5 to 32.5."""
    g_star: float = 6.84
    """Frozen-time critical coupling $G^\\ast$: $6.836 \\pm 0.222$ from the finite-size scaling
    study, quoted from ``scripts/spatial_fss.json`` ``["analysis"]["G_star"]`` (Binder crossing
    of $L/k = 8$ and 16, $k = 3$; `docs/theory/spatial.md#universality-class`), to two decimals."""
    nu: float = 1.0
    """$\\nu$ of the class the finite-size scaling selects (2-D Ising)."""
    z_class: float = ISING_Z
    """$z$ of that class (2-D Ising, model A)."""
    x_window: tuple[float, float] = (-1.5, 0.5)
    """The collapse's window in the scaled variable $\\epsilon\\,\\tau_Q^{\\,b}$."""
    z_cells: tuple[int, ...] = (4, 8)
    """$L/k$ of the frozen-time runs at $G^\\ast$ for $z$."""
    z_replicas: int = 16
    z_samples: int = 2000
    z_thin: int = 40
    z_burn: int = 4000
    z_dt: float = 0.025

    @classmethod
    def quick(cls) -> KibbleZurekConfig:
        """A smaller lattice, fewer trajectories, three quench times and shorter $z$ runs."""
        return cls(
            cells=10,
            n_traj=16,
            rho=(0.125, 0.5, 2.0),
            z_replicas=8,
            z_samples=1000,
            z_thin=20,
        )


CONFIG = KibbleZurekConfig
"""This module's size configuration (``CONFIG.default()``, ``CONFIG.quick()``)."""


class _BlockStructureFactor(eqx.Module):
    """``observe(x, t)``: block-averaged structure factors of the connected denoised field."""

    process: OU
    window: int = eqx.field(static=True)
    n_blocks: int = eqx.field(static=True)

    def __call__(self, x, t):
        s = uniform_patch_score(self.process, x, t, window=self.window, lattice_ndim=2)
        den = (x + self.process.b2(t) * s) / self.process.a(t)
        f = den - den.mean(axis=(-2, -1), keepdims=True)
        n_sites = f.shape[-1] * f.shape[-2]
        sq = jnp.abs(jnp.fft.fft2(f)) ** 2 / n_sites
        return sq.reshape((self.n_blocks, -1) + sq.shape[1:]).mean(axis=1)


class _PatchScore(eqx.Module):
    process: OU
    window: int = eqx.field(static=True)

    def __call__(self, x, t):
        return uniform_patch_score(self.process, x, t, window=self.window, lattice_ndim=2)


@jax.jit
def _xi_from_blocks(sq_blocks):
    """Integrated $\\xi$ of the pooled structure factor and of its leave-one-block-out means.

    ``sq_blocks``: ``(n_t, n_blocks, L, L)``; returns ``(xi (n_t,), xi_loo (n_t, n_blocks))``.
    """
    nb = sq_blocks.shape[1]
    s_all = sq_blocks.mean(axis=1)
    s_loo = (nb * s_all[:, None] - sq_blocks) / (nb - 1)
    xi = correlation_length(s_all, method="integrated", from_structure_factor=True, axes=(-2, -1))
    loo = correlation_length(s_loo, method="integrated", from_structure_factor=True, axes=(-2, -1))
    return xi, loo


def kz_sweep(
    key: jax.Array,
    *,
    window: int = 3,
    cells: int = 16,
    n_traj: int = 32,
    n_blocks: int = 8,
    n_steps: int = 160,
    t_max: float = 1.5,
    t_min: float = 0.1,
    save_every: int = 4,
    n_correctors: tuple[int, ...] = (2, 4, 8, 16, 32),
    rho: float | tuple[float, ...] = 2.0,
    on_result: Any = None,
) -> dict[str, Any]:
    r"""$\xi(t)$ of the two-uniform-image patch model generated at several quench times.

    One :func:`gltheory.sample` run per corrector count $n$ and strength $\rho$ (the same
    key, so the predictor noise of trajectory $j$ is shared),
    :class:`gltheory.PredictorCorrector` ``(n, 1, rho)``, $\tau_Q = (1 + n\rho)/2$,
    on the OU process with horizon ``t_max`` and a log-SNR grid to ``t_min``; the states start
    from the sampler's $N(0, b_T^2)$.

    **Arguments:**

    - `key`: PRNG key.
    - `window`, `cells`: $k$ and $L/k$.
    - `n_traj`, `n_blocks`: trajectories per run and jackknife blocks (dividing `n_traj`).
    - `n_steps`, `t_max`, `t_min`, `save_every`: the grid and the recording stride.
    - `n_correctors`: corrector counts (one compiled sampler each).
    - `rho`: corrector strength, a float or a sequence of them (vmapped over, one program
      per $n$; the reduced step per corrector is $\rho\,\Delta\ln{\rm SNR}/2$, keep it
      $\lesssim 0.05$).
    - `on_result`: optional ``callback(partial_result)`` after each $n$ (to save progress).

    **Returns:** a dict: ``t``, ``G`` (saved times and couplings ${\rm SNR}_t k^2$),
    ``tau_q``, ``n_corrector``, ``rho`` (per run, $n$ outer and $\rho$ inner), ``xi``,
    ``xi_loo`` (integrated estimator; shapes ``(n_q, n_t)``, ``(n_q, n_t, n_blocks)``,
    lattice units), ``wall_s`` per run (a vmapped group's wall time shared equally).
    """
    if n_traj % n_blocks:
        raise ValueError(f"n_blocks must divide n_traj, got {n_blocks} and {n_traj}.")
    process = OU(T=t_max)
    ts = time_grid(process, n_steps, kind="log_snr", t_min=t_min)
    save_at = list(range(0, n_steps + 1, save_every))
    if save_at[-1] != n_steps:
        save_at.append(n_steps)
    size = window * cells
    tsn = np.asarray(ts)[save_at]
    out: dict[str, Any] = {
        "t": tsn.tolist(),
        "G": (np.asarray(process.snr(jnp.asarray(tsn))) * window**2).tolist(),
        "tau_q": [],
        "n_corrector": [],
        "xi": [],
        "xi_loo": [],
        "rho": [],
        "wall_s": [],
    }
    score_fn = _PatchScore(process, window)
    observe = _BlockStructureFactor(process, window, n_blocks)
    rhos = tuple(float(r) for r in np.atleast_1d(rho))
    for n in n_correctors:
        t0 = _now()

        def run(r, n=int(n)):
            return sample(
                score_fn,
                process,
                key,
                (n_traj, size, size),
                ts=ts,
                solver=PredictorCorrector(n, 1.0, r),
                observe=observe,
                save_at=save_at,
            ).observables

        sq = jax.jit(jax.vmap(run))(jnp.asarray(rhos, dtype=jnp.result_type(float)))
        wall = (_now() - t0) / len(rhos)
        for j, r in enumerate(rhos):
            xi, loo = _xi_from_blocks(sq[j])
            out["xi"].append(np.asarray(xi).tolist())
            out["xi_loo"].append(np.asarray(loo).tolist())
            out["tau_q"].append(0.5 * (1.0 + n * r))
            out["n_corrector"].append(int(n))
            out["rho"].append(r)
            out["wall_s"].append(wall)
        if on_result is not None:
            on_result(out)
    return out


def _now() -> float:
    return time.perf_counter()


def _jack_se(values: np.ndarray) -> float:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return float("nan")
    return float(np.sqrt((v.size - 1) / v.size * np.sum((v - v.mean()) ** 2)))


def _collapse_cost(a, b, eps, lnxi, var, lntq, window):
    """Mean squared pairwise mismatch (in units of the combined variance) of the curves
    $\\ln\\xi - a\\ln\\tau_Q$ against $x = \\epsilon\\tau_Q^b$ inside ``window``."""
    xs = [eps * math.exp(b * q) for q in lntq]
    ys = [y - a * q for y, q in zip(lnxi, lntq, strict=True)]
    total, count = 0.0, 0
    for i in range(len(xs)):
        inside = (xs[i] >= window[0]) & (xs[i] <= window[1])
        for j in range(len(xs)):
            if i == j:
                continue
            order = np.argsort(xs[j])
            xj, yj, vj = xs[j][order], ys[j][order], var[j][order]
            ok = inside & (xs[i] >= xj[0]) & (xs[i] <= xj[-1])
            if not ok.any():
                continue
            yi = np.interp(xs[i][ok], xj, yj)
            vi = np.interp(xs[i][ok], xj, vj)
            total += float(np.sum((ys[i][ok] - yi) ** 2 / (var[i][ok] + vi)))
            count += int(ok.sum())
    return total / count if count >= 3 * len(xs) else float("inf")


def collapse_fit(
    eps: np.ndarray,
    xi: np.ndarray,
    xi_se: np.ndarray,
    tau_q: np.ndarray,
    *,
    window: tuple[float, float] = (-1.5, 0.5),
) -> tuple[float, float, float]:
    r"""The KZ collapse $\ln\xi = a\ln\tau_Q + F(\epsilon\,\tau_Q^{\,b})$ by least pairwise
    mismatch (grid search, then a finer grid around the best point).

    **Arguments:**

    - `eps`: $\epsilon = \ln(G/G^\ast)$ at the recorded times, shape ``(n_t,)``.
    - `xi`, `xi_se`: $\xi$ and its SE, shape ``(n_q, n_t)``.
    - `tau_q`: the quench times, shape ``(n_q,)``.
    - `window`: the scaled-variable window of the fit.

    $b = 1/(1+z\nu)$ is searched in $[0.05, 1]$ ($z\nu > 0$), $a$ in $[0, 1.2]$; a result on
    the edge of the grid means the data do not constrain it.

    **Returns:** ``(a, b, cost)`` (cost: the mean squared mismatch in SE units, ~1 for a
    collapse within errors).
    """
    eps = np.asarray(eps, float)
    lnxi = np.log(np.asarray(xi, float))
    var = (np.asarray(xi_se, float) / np.asarray(xi, float)) ** 2 + 1e-12
    lntq = np.log(np.asarray(tau_q, float))
    best = (float("inf"), 0.0, 0.0)
    for a_grid, b_grid in (
        (np.linspace(0.0, 1.2, 49), np.linspace(0.05, 1.0, 39)),
        (None, None),
    ):
        if a_grid is None:
            _, a0, b0 = best
            a_grid = np.linspace(a0 - 0.03, a0 + 0.03, 25)
            b_grid = np.linspace(max(b0 - 0.03, 0.01), b0 + 0.03, 25)
        for a in a_grid:
            for b in b_grid:
                c = _collapse_cost(a, b, eps, lnxi, var, lntq, window)
                if c < best[0]:
                    best = (c, float(a), float(b))
    return best[1], best[2], best[0]


def kz_analysis(
    sweep: dict[str, Any],
    *,
    g_star: float,
    window: tuple[float, float] = (-1.5, 0.5),
    collapse_jackknife: bool = True,
) -> dict[str, Any]:
    r"""Freeze-out, adiabatic and coarsening measures of a :func:`kz_sweep` result.

    **Arguments:**

    - `sweep`: :func:`kz_sweep`'s dict.
    - `g_star`: $G^\ast$.
    - `window`: the collapse window in $\epsilon\,\tau_Q^{\,b}$.
    - `collapse_jackknife`: also refit the collapse per left-out block (its SE).

    **Returns:** a dict with ``kz_crossing`` ($d\ln\xi(t^\ast)/d\ln\tau_Q$ and SE),
    ``collapse`` ($a$, $b$, cost, SEs), ``adiabatic`` (slope at the time of largest
    $G \le G^\ast/4$, i.e. $\epsilon \le -1.39$, beyond the freeze-out distance
    $\tau_Q^{-b}$ of every $\tau_Q \ge 2$), ``kz_crossing_excess`` (the slope of
    $\xi(t^\ast) - \xi_0$, $\xi_0$ the short-range $\xi$ of the initial states at ``t_max``),
    ``coarsening`` (slope at the last time, and $\xi_{\rm end}/\xi(t^\ast)$
    per $\tau_Q$), each slope a weighted least-squares fit in $\ln\tau_Q$ with jackknife SE.
    """
    G = np.asarray(sweep["G"], float)
    eps = np.log(G / g_star)
    lntq = np.log(np.asarray(sweep["tau_q"], float))
    xi = np.asarray(sweep["xi"], float)
    loo = np.asarray(sweep["xi_loo"], float)  # (n_q, n_t, n_blocks)
    nb = loo.shape[-1]

    def slope_at(vals):  # vals: (n_q,) of ln xi
        return float(np.polyfit(lntq, vals, 1)[0])

    def interp_at(lnx, e0):  # ln xi at eps = e0 along t (eps increasing along the run)
        return np.array([np.interp(e0, eps, row) for row in lnx])

    i_ad = int(np.nonzero(G <= 0.25 * g_star)[0][-1])

    def measures(x):
        lnx = np.log(x)
        cross = slope_at(interp_at(lnx, 0.0))
        # the short-range part: xi of the initial states (t_max, the same for every tau_Q)
        excess = np.exp(interp_at(lnx, 0.0)) - x[:, :1].mean()
        sub = slope_at(np.log(excess)) if np.all(excess > 0) else float("nan")
        return cross, slope_at(lnx[:, i_ad]), slope_at(lnx[:, -1]), sub

    cross, adi, coarse, sub = measures(xi)
    loo_m = [measures(loo[:, :, j]) for j in range(nb)]
    se = [_jack_se([m[k] for m in loo_m]) for k in range(4)]
    xi_se = np.array(
        [[_jack_se(loo[q, i]) for i in range(xi.shape[1])] for q in range(xi.shape[0])]
    )
    a, b, cost = collapse_fit(eps, xi, xi_se, sweep["tau_q"], window=window)
    a_se = b_se = float("nan")
    if collapse_jackknife:
        fits = [
            collapse_fit(eps, loo[:, :, j], xi_se, sweep["tau_q"], window=window) for j in range(nb)
        ]
        a_se = _jack_se([f[0] for f in fits])
        b_se = _jack_se([f[1] for f in fits])
    xi_cross = np.exp(interp_at(np.log(xi), 0.0))
    return {
        "t_star": float(np.interp(0.0, eps, np.asarray(sweep["t"], float))),
        "kz_crossing": {"slope": cross, "se": se[0], "xi_at_t_star": xi_cross.tolist()},
        "kz_crossing_excess": {"slope": sub, "se": se[3], "xi_0": float(xi[:, 0].mean())},
        "collapse": {
            "a": a,
            "a_se": a_se,
            "b": b,
            "b_se": b_se,
            "cost": cost,
            "lag_exponent_1_minus_b": 1.0 - b,
            "nu_from_a_over_b": a / b if b > 0 else float("nan"),
            "window": list(window),
        },
        "adiabatic": {"slope": adi, "se": se[1], "t": float(sweep["t"][i_ad]), "G": float(G[i_ad])},
        "coarsening": {
            "slope": coarse,
            "se": se[2],
            "t_end": float(sweep["t"][-1]),
            "xi_end": xi[:, -1].tolist(),
            "growth_after_t_star": (xi[:, -1] / xi_cross).tolist(),
        },
    }


def dynamic_exponent(
    key: jax.Array,
    *,
    g_star: float,
    window: int = 3,
    cells: tuple[int, ...] = (4, 8),
    n_replicas: int = 16,
    n_burn: int = 4000,
    n_samples: int = 2000,
    thin: int = 20,
    dt: float = 0.025,
    n_blocks: int = 4,
    on_result: Any = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    r"""$z$ from $\tau_{\rm int}$ of $M^2$ at $G^\ast$: $\tau\propto L^z$ between sizes.

    Frozen-time runs (:func:`gltheory.spatial.lattice_langevin`, disordered start, recorded
    $M$) per size; $\tau_{\rm int}$ of the series $M^2$ (Sokal window, $c = 6$) in units of
    $\tau'$; $z$ = the least-squares slope of $\ln\tau$ against $\ln L$; each $\tau$'s SE
    by jackknife over blocks of replicas, propagated to $z$ (the sizes are independent
    runs). The estimator's ``reliable`` flag needs a series of at least $50\,\tau$
    (``n_samples * thin * dt``; ``series_over_tau`` records the ratio), and the burn-in
    should be several $\tau$ of the largest size (``burn_over_tau``).

    **Arguments:** `on_result`: optional ``callback(partial_result)`` after each size (the
    same dict as the return value, over the sizes done so far; ``z`` once two are done).
    `previous`: such a partial result; its sizes are reused (not rerun) when its run
    parameters equal these (each size's key is ``fold_in(key, L/k)``, so a resumed study is
    the uninterrupted one); otherwise a ``ValueError``.

    **Returns:** a dict with ``z``, ``z_se``, ``z_pairwise`` (successive sizes: a drift is a
    correction or a too-short series), ``tau`` and ``tau_se`` (per size, $\tau'$ units),
    ``reliable`` flags, ``series_over_tau``, ``burn_over_tau``, ``wall_s`` and the run
    parameters (``g_star``, ``n_replicas``, ``n_burn``, ``n_samples``, ``thin``, ``dt``).
    """
    out: dict[str, Any] = {
        "g_star": float(g_star),
        "window": int(window),
        "n_replicas": int(n_replicas),
        "n_burn": int(n_burn),
        "n_samples": int(n_samples),
        "thin": int(thin),
        "dt": float(dt),
        "n_blocks": int(n_blocks),
    }
    taus, taus_loo, reliable, wall = [], [], [], []
    if previous is not None:
        diff = {k: (previous.get(k), v) for k, v in out.items() if previous.get(k) != v}
        done = list(previous.get("cells", []))
        if diff or done != list(cells[: len(done)]):
            raise ValueError(f"previous was run with other parameters or sizes: {diff}, {done}.")
        taus = list(previous["tau"])
        taus_loo = [list(r) for r in previous["tau_loo"]]
        reliable = list(previous["reliable"])
        wall = list(previous["wall_s"])
    unit = thin * dt
    for c in cells[len(taus) :]:
        t0 = _now()
        run = spatial.lattice_langevin(
            jax.random.fold_in(key, int(c)),
            g_star,
            window=window,
            cells=int(c),
            n_replicas=n_replicas,
            n_burn=n_burn,
            n_samples=n_samples,
            thin=thin,
            dt=dt,
            start="disordered",
            structure_factor=False,
            record=True,
        )
        m2 = np.asarray(run.trace, np.float64) ** 2  # (n_samples, n_replicas)
        res = spatial.integrated_autocorrelation_time(m2, c=6.0)
        taus.append(res.tau_int * unit)
        reliable.append(bool(res.reliable))
        blocks = np.array_split(np.arange(m2.shape[1]), n_blocks)
        taus_loo.append(
            [
                spatial.integrated_autocorrelation_time(np.delete(m2, blk, axis=1), c=6.0).tau_int
                * unit
                for blk in blocks
            ]
        )
        wall.append(_now() - t0)
        done = list(cells[: len(taus)])
        out.update(_z_fit(done, taus, taus_loo))
        out.update(
            {
                "reliable": list(reliable),
                "series_over_tau": [n_samples * unit / t for t in taus],
                "burn_over_tau": [n_burn * dt / t for t in taus],
                "wall_s": list(wall),
            }
        )
        if on_result is not None:
            on_result(dict(out))
    return out


def _z_fit(cells, taus, taus_loo) -> dict[str, Any]:
    r"""The slope of ln tau against ln L (unweighted least squares) and its SE (see
    :func:`dynamic_exponent`); with one size only the taus.

    Each size is an independent run, so the SE propagates each size's jackknife SE of
    $\ln\tau$ (over its replica blocks) through the linear fit, $\sigma_z^2 = \sum_i
    c_i^2\sigma_i^2$; the paired jackknife (block $j$ left out of every size at once, the
    rule of the session-6 record) is kept as ``z_se_paired_jackknife``: with a few blocks
    the cross terms it adds are noise. With three sizes or more, ``z_chi2`` (residuals of
    $\ln\tau$ in units of their SEs, ``z_dof`` = sizes - 2) measures a drift of the local
    slope, and ``z_se_scaled`` = ``z_se`` $\cdot\sqrt{\max(1, \chi^2/{\rm dof})}$ (the
    rule of the class study's fits) is the SE to quote.
    """
    loo = np.log(np.asarray(taus_loo, float))  # (n_sizes, n_blocks)
    ln_se = np.array([_jack_se(row) for row in loo])
    out: dict[str, Any] = {
        "cells": [int(c) for c in cells],
        "tau": [float(t) for t in taus],
        "tau_se": [_jack_se(row) for row in taus_loo],
        "ln_tau_se": ln_se.tolist(),
        "tau_loo": [[float(v) for v in row] for row in taus_loo],
    }
    if len(cells) < 2:
        return out
    lnl = np.log(np.asarray(cells, float))
    z = float(np.polyfit(lnl, np.log(taus), 1)[0])
    coef = (lnl - lnl.mean()) / np.sum((lnl - lnl.mean()) ** 2)  # z = sum_i coef_i ln tau_i
    z_loo = [float(np.polyfit(lnl, loo[:, j], 1)[0]) for j in range(loo.shape[1])]
    pairwise = np.diff(np.log(taus)) / np.diff(lnl)
    z_se = float(np.sqrt(np.sum(coef**2 * ln_se**2)))
    resid = np.log(taus) - np.polyval(np.polyfit(lnl, np.log(taus), 1), lnl)
    chi2 = float(np.sum((resid / ln_se) ** 2)) if len(cells) > 2 else float("nan")
    dof = len(cells) - 2
    out.update(
        {
            "z": z,
            "z_se": z_se,
            "z_chi2": chi2,
            "z_dof": dof,
            "z_se_scaled": z_se * math.sqrt(max(1.0, chi2 / dof)) if dof > 0 else z_se,
            "z_se_paired_jackknife": _jack_se(z_loo),
            "z_pairwise": pairwise.tolist(),
            "z_pairwise_se": (np.hypot(ln_se[1:], ln_se[:-1]) / np.diff(lnl)).tolist(),
        }
    )
    return out


def _figure(sweep, analysis, g_star) -> Figure:
    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    t = np.asarray(sweep["t"])
    eps = np.log(np.asarray(sweep["G"]) / g_star)
    a, b = analysis["collapse"]["a"], analysis["collapse"]["b"]
    for tq, row in zip(sweep["tau_q"], sweep["xi"], strict=True):
        ax1.plot(t, row, marker=".", label=f"tau_Q = {tq:g}")
        ax2.plot(eps * tq**b, np.asarray(row) / tq**a, marker=".")
    ax1.axvline(analysis["t_star"], color="k", lw=0.8, ls="--")
    ax1.set(xlabel="t", ylabel="xi (sites)", yscale="log", title="xi(t) along generation")
    ax1.invert_xaxis()
    ax1.legend(fontsize=7)
    lo, hi = analysis["collapse"]["window"]
    ax2.axvspan(lo, hi, color="0.9")
    ax2.set(
        xlabel="ln(G/G*) tau_Q^b",
        ylabel="xi / tau_Q^a",
        yscale="log",
        title=f"collapse a = {a:.3f}, b = {b:.3f}",
    )
    fig.tight_layout()
    return fig


def kibble_zurek_experiment(config: ReportConfig, key: jax.Array) -> ExperimentResult:
    """The ``kibble_zurek`` experiment (see the module docstring)."""
    cfg = CONFIG.of(config)
    k_sweep, k_z = jax.random.split(key)
    sweep = kz_sweep(
        k_sweep,
        window=cfg.window,
        cells=cfg.cells,
        n_traj=cfg.n_traj,
        n_blocks=cfg.n_blocks,
        n_steps=cfg.n_steps,
        t_max=cfg.t_max,
        t_min=cfg.t_min,
        save_every=cfg.save_every,
        n_correctors=cfg.n_correctors,
        rho=cfg.rho,
    )
    ana = kz_analysis(sweep, g_star=cfg.g_star, window=cfg.x_window)
    dyn = dynamic_exponent(
        k_z,
        g_star=cfg.g_star,
        window=cfg.window,
        cells=cfg.z_cells,
        n_replicas=cfg.z_replicas,
        n_burn=cfg.z_burn,
        n_samples=cfg.z_samples,
        thin=cfg.z_thin,
        dt=cfg.z_dt,
    )
    return ExperimentResult(
        rows=kz_rows(ana, dyn, nu=cfg.nu, z_class=cfg.z_class, cells=cfg.cells, g_star=cfg.g_star),
        figures={"kibble_zurek.png": _figure(sweep, ana, cfg.g_star)},
        info={"config": dataclasses.asdict(cfg), "sweep": sweep, "analysis": ana, "z": dyn},
    )


def kz_rows(
    ana: dict, dyn: dict, *, nu: float, z_class: float, cells: int, g_star: float
) -> list[Row]:
    r"""The report rows from :func:`kz_analysis` and :func:`dynamic_exponent` results.

    The KZ rows compare with $\nu/(1+z\nu)$ of the class (``nu``, ``z_class``); the measured
    $z$ is its own row (its prediction is in the notes).
    """
    pred = nu / (1 + z_class * nu)
    z, z_se = dyn["z"], dyn.get("z_se_scaled", dyn["z_se"])
    pred_z = nu / (1 + z * nu)
    zs, zs_se = STUDY_Z
    pred_s = nu / (1 + zs * nu)
    pred_s_se = zs_se * nu**2 / (1 + zs * nu) ** 2
    col, cr, ex = ana["collapse"], ana["kz_crossing"], ana["kz_crossing_excess"]
    where = f"D = 2, L/k = {cells}, G* = {g_star:g}"
    cls = f"class nu = {nu:g}, z = {z_class:g}"
    common = (
        "xi: integrated correlation length of the connected denoised field; tau_Q = "
        "(1 + n rho)/2 (PredictorCorrector, reduced relaxation time); jackknife SE over "
        f"trajectory blocks. With the measured z = {z:.2f} the class would predict "
        f"{pred_z:.3f}; with the study's z = {zs:.2f} +- {zs_se:.2f} (L/k = 4, 8, 16, "
        f"scripts/kz_study.json) {pred_s:.3f} +- {pred_s_se:.3f}; mean field 1/4."
    )
    tq = ", ".join(f"{x:.2f}" for x in cr["xi_at_t_star"])
    return [
        Row(
            f"KZ exponent: xi(t*) - xi_0 vs tau_Q ({where}) vs {cls}",
            pred,
            ex["slope"],
            se=ex["se"],
            group=_GROUP,
            note=(
                f"xi_0 = {ex['xi_0']:.3f} sites, the short-range xi of the initial states at "
                "t_max, measured (not fitted; the box kernel correlates the denoised field over "
                "~k even without order), subtracted as an additive background. " + common
            ),
        ),
        Row(
            f"KZ exponent: xi(t*) vs tau_Q, no background ({where}) vs {cls}",
            pred,
            cr["slope"],
            se=cr["se"],
            group=_GROUP,
            note=(
                f"xi(t*) = {tq} sites: about one window k, so the short-range part dominates "
                "and the raw slope is diluted (a finding: pre-asymptotic, not a third class). "
                + common
            ),
        ),
        Row(
            f"KZ exponent: collapse a of ln xi = a ln tau_Q + F(ln(G/G*) tau_Q^b) ({where})",
            pred,
            col["a"],
            se=col["a_se"],
            group=_GROUP,
            note=(
                f"b = {col['b']:.3f} +- {col['b_se']:.3f} (class: {pred:.3f}, mean field 0.5); "
                f"freeze-out lag exponent 1 - b = {col['lag_exponent_1_minus_b']:.3f} (class "
                f"z nu/(1+z nu) = {1 - pred:.3f}); collapse cost {col['cost']:.2f}; window "
                f"{col['window']}. The raw xi carries the background xi_0 (see the first row), "
                "so a is diluted like the raw crossing slope. " + common
            ),
        ),
        Row(
            f"dynamic exponent z (tau_int of M^2 at G* = {g_star:g}, L/k = {dyn['cells']})",
            z_class,
            z,
            se=z_se,
            group=_GROUP,
            note=(
                "frozen-time Langevin (gltheory.spatial.lattice_langevin), disordered start; "
                f"tau' = {', '.join(f'{t:.3g}' for t in dyn['tau'])}; successive-size z = "
                f"{', '.join(f'{v:.2f}' for v in dyn.get('z_pairwise', []))}; reliable (series >= 50 "
                f"tau) = {dyn['reliable']}; slope of ln tau vs ln L, SE from each size's "
                f"jackknife over replica blocks. The study (L/k = 4, 8, 16, every series >= 50 tau; "
                f"scripts/kz_study.json): z = {zs:.2f} +- {zs_se:.2f}, the SE scaled for the "
                "drift of the local slope (2.17 for L/k 4 to 8, 2.50 for 8 to 16). 2-D Ising "
                "model A: 2.17."
            ),
        ),
        Row(
            f"adiabatic: d ln xi / d ln tau_Q at G = {ana['adiabatic']['G']:.2f} "
            f"(t = {ana['adiabatic']['t']:.2f}, well above t* = {ana['t_star']:.3f})",
            0.0,
            ana["adiabatic"]["slope"],
            se=ana["adiabatic"]["se"],
            group=_GROUP,
            note=(
                "xi follows the frozen-time law, independent of the quench time; jackknife SE. "
                "The coarsening after freeze-out (no KZ exponent expected, no theory value) is "
                f"in info['analysis']['coarsening']: d ln xi / d ln tau_Q = "
                f"{ana['coarsening']['slope']:.3f} +- {ana['coarsening']['se']:.3f} at "
                f"t = {ana['coarsening']['t_end']:g}, xi_end / xi(t*) = "
                + ", ".join(f"{g:.2f}" for g in ana["coarsening"]["growth_after_t_star"])
            ),
        ),
    ]


EXPERIMENTS = [
    Experiment(
        "kibble_zurek",
        "Kibble–Zurek: the pattern size frozen in at the spatial transition",
        kibble_zurek_experiment,
    )
]
