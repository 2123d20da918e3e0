r"""Schedules experiment of the report: what a critical-window time grid buys.

``schedules``: Euler–Maruyama on two deltas $\pm\mu$ with weights $(0.8, 0.2)$ (OU,
$t_{\min} = 0.01$): the number of steps (= score evaluations) each grid needs to bring the
class-fraction bias below a target, from the **exact** bias of the chain
(:func:`gltheory.schedules.class_fraction_bias`, no Monte Carlo), and the ratio best standard
grid / critical grid (`docs/theory/schedules.md#measured`). Deterministic rows check the
count against the same count with twice the quadrature's cells; one Monte Carlo row checks
the quadrature itself at the critical grid's count.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from ..data import DeltaMixture
from ..processes import OU
from ..report import Experiment, ExperimentResult, ReportConfig, Row
from ..sampling import sample, time_grid
from ..schedules import (
    class_fraction_bias,
    critical_grid,
    quadrature_class_fraction,
    window_from_data,
)
from ._common import ExactScore, Sizes

__all__ = ["SchedulesConfig", "CONFIG", "EXPERIMENTS", "schedules_experiment"]

GRIDS = ("uniform", "log_snr", "edm", "critical")
STANDARD = ("uniform", "log_snr", "edm")


@dataclasses.dataclass(frozen=True)
class SchedulesConfig(Sizes):
    """Sizes of the schedules experiment (:meth:`default`, :meth:`quick` for ``--quick``)."""

    mu: float = 4.0
    r"""Half-separation of the two deltas $\pm\mu$."""
    w: float = 0.8
    """Weight of $+\\mu$ (unequal: with 1/2 the bias vanishes by symmetry)."""
    t_min: float = 0.01
    """Last time of every grid."""
    target: float = 0.005
    """Target of |class-fraction bias|."""
    steps: tuple[int, ...] = (8, 16, 32, 64, 128)
    """Step counts at which the bias is computed (the quadrature runs padded to the largest:
    one compilation per cell count)."""
    n_cells: int = 256
    """Cells of the quadrature (the check uses twice as many)."""
    n_mc: int = 100_000
    """Trajectories of the Monte Carlo check of the quadrature."""

    @classmethod
    def quick(cls) -> SchedulesConfig:
        """Up to 64 steps, a smaller Monte Carlo check."""
        return cls(steps=(8, 16, 32, 64), n_cells=256, n_mc=40_000)


CONFIG = SchedulesConfig
"""This module's size configuration (``CONFIG.default()``, ``CONFIG.quick()``)."""


def _to_target(steps, bias, target):
    """Steps to |bias| < target, log-log interpolated between the bracketing step counts:
    ``(n, i, slope)`` with ``i`` the index of the first count below the target and ``slope``
    the local d ln|bias| / d ln n; ``(None, None, None)`` if no count reaches it."""
    b = np.abs(np.asarray(bias, np.float64))
    for i, v in enumerate(b):
        if v < target:
            if i == 0:
                return float(steps[0]), 0, None
            s = (np.log(v) - np.log(b[i - 1])) / (np.log(steps[i]) - np.log(steps[i - 1]))
            n = np.exp(np.log(steps[i - 1]) + (np.log(target) - np.log(b[i - 1])) / s)
            return float(n), i, float(s)
    return None, None, None


def _figure(bias, need, grids_shown, steps, mu, target):
    fig = Figure(figsize=(10.5, 4.0), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for (kind, ts), c in zip(grids_shown.items(), ("C0", "C1", "C2", "C3")):
        t = np.asarray(ts)
        ax1.plot(t, np.arange(len(t)), ".-", color=c, ms=3, label=kind)
    ax1.set_xscale("log")
    ax1.set_xlabel("t (forward, OU)")
    ax1.set_ylabel("step index")
    ax1.set_title(f"24-step grids (critical: window of ±{mu:g})")
    ax1.legend(fontsize=8)
    for (kind, b), c in zip(bias.items(), ("C0", "C1", "C2", "C3")):
        lab = f"{kind}: " + ("not reached" if need[kind] is None else f"{need[kind]:.1f}")
        ax2.loglog(steps, np.maximum(np.abs(b), 1e-7), "o-", color=c, ms=3, label=lab)
    ax2.axhline(target, color="k", lw=0.7, ls=":")
    ax2.set_xlabel("Euler–Maruyama steps (score evaluations)")
    ax2.set_ylabel("|class-fraction bias| (exact quadrature)")
    ax2.set_title("bias against evaluations; legend: steps to target")
    ax2.legend(fontsize=8)
    return fig


def schedules_experiment(
    config: ReportConfig, key, sizes: SchedulesConfig | None = None
) -> ExperimentResult:
    """The ``schedules`` experiment: steps to a class-fraction-bias target per grid.

    **Arguments:**

    - `config`: the report settings (seed, ``quick``, ``z_max``).
    - `key`: the experiment's PRNG key.
    - `sizes`: the sizes; by default ``SchedulesConfig.of(config)``.

    **Returns:** the rows, figures and details.
    """
    cfg = SchedulesConfig.of(config) if sizes is None else sizes
    group = "schedules"
    process = OU()
    mu, w = cfg.mu, cfg.w
    steps = tuple(int(n) for n in cfg.steps)
    data = DeltaMixture(jnp.array([[mu], [-mu]]), jnp.array([w, 1 - w]))
    win = window_from_data(data, process)

    def grid(kind, n):
        if kind == "critical":
            return critical_grid(process, n, win, t_min=cfg.t_min)
        return time_grid(process, n, kind=kind, t_min=cfg.t_min)

    fine = 2 * cfg.n_cells

    def bias(ts, cells):
        return float(class_fraction_bias(process, ts, mu, w, n_cells=cells, pad_to=max(steps)))

    grids = {k: [grid(k, n) for n in steps] for k in GRIDS}
    coarse = {k: [bias(ts, cfg.n_cells) for ts in grids[k]] for k in GRIDS}
    need, need_fine, tol = {}, {}, {}
    for kind in GRIDS:
        n, i, slope = _to_target(steps, coarse[kind], cfg.target)
        need[kind] = n
        if n is None:
            need_fine[kind], tol[kind] = None, 0.0
            continue
        # the finer quadrature at the bracketing counts only (the rest are not used)
        b_f = list(coarse[kind])
        for j in {max(i - 1, 0), i}:
            b_f[j] = bias(grids[kind][j], fine)
        need_fine[kind] = _to_target(steps, b_f, cfg.target)[0]
        # first-order propagation of the cells' effect on the bias into the count:
        # d ln n = d ln|bias| / slope, times 2
        d_b = max(abs(abs(b_f[j]) - abs(coarse[kind][j])) for j in {max(i - 1, 0), i})
        s = abs(slope) if slope else 1.0
        tol[kind] = 2 * n * d_b / (cfg.target * s)
    std = {k: need[k] for k in STANDARD if need[k] is not None}
    best = min(std, key=std.get) if std else None
    setup = (
        f"two deltas ±{mu:g}, w={w:g}, OU, Euler-Maruyama to t_min={cfg.t_min:g}, "
        f"|class-fraction bias| < {cfg.target:g}"
    )
    rows = []
    for kind in GRIDS:
        grid_note = (
            "time_grid(kind='critical'), log-SNR base, window_from_data, default weight"
            if kind == "critical"
            else f"time_grid(kind={kind!r})"
        )
        rows.append(
            Row(
                f"EM steps to target, {kind} grid ({setup})",
                need_fine[kind],
                need[kind],
                tol=tol[kind],
                tol_basis="discretisation",
                group=group,
                note=(
                    f"exact bias of the chain by propagating its density "
                    f"(schedules.class_fraction_bias) at {list(steps)} steps, steps to target "
                    f"log-log interpolated between the bracketing counts; measured with "
                    f"{cfg.n_cells} cells, theory with {fine} cells at the bracketing counts; "
                    f"{grid_note}; none if not reached within {max(steps)} steps; tol = 2 n "
                    f"|change of the bias with the cells| / (target x |local log-log slope|), "
                    f"the cells' error propagated into the count"
                ),
            )
        )
    if best is not None and need["critical"] is not None:
        ratio = need[best] / need["critical"]
        ratio_f = need_fine[best] / need_fine["critical"]
        r_tol = ratio * (tol[best] / need[best] + tol["critical"] / need["critical"])
        rows.append(
            Row(
                f"ratio best standard ({best}) / critical, EM steps to target ({setup})",
                ratio_f,
                ratio,
                tol=r_tol,
                tol_basis="discretisation",
                group=group,
                note=(
                    f"ratio of the rows above, {cfg.n_cells} cells (measured) and {fine} "
                    f"(theory); the issue's goal is >= 2; tol = ratio x (tol_best/n_best + "
                    f"tol_critical/n_critical)"
                ),
            )
        )
    # Monte Carlo check of the quadrature on the critical grid at a step count it has built
    j = steps.index(16) if 16 in steps else 0
    ts = grids["critical"][j]
    q = float(quadrature_class_fraction(process, ts, mu, w, n_cells=fine, pad_to=max(steps)))
    sol = sample(ExactScore(data, process), process, key, (cfg.n_mc, 1), ts=ts)
    p_mc = float(jnp.mean(sol.x[:, 0] > 0))
    se = math.sqrt(p_mc * (1 - p_mc) / cfg.n_mc)
    rows.append(
        Row(
            f"P(x>0) of EM on the {steps[j]}-step critical grid ({setup.split(', |')[0]})",
            q,
            p_mc,
            se=se,
            z_max=config.z_max,
            group=group,
            note=(
                f"theory: the quadrature on {fine} cells; measured: {cfg.n_mc} exact-score "
                f"Euler-Maruyama trajectories, binomial SE"
            ),
        )
    )
    shown = {k: grid(k, 24) for k in GRIDS}
    fig = _figure(coarse, need, shown, steps, mu, cfg.target)
    info = {
        "steps": list(steps),
        "bias": coarse,
        "steps_to_target": need,
        "steps_to_target_fine": need_fine,
        "tolerance": tol,
        "best_standard": best,
        "window": {"centre": float(win.centre), "width": float(win.width)},
        "monte_carlo": {"n_steps": steps[j], "quadrature": q, "mc": p_mc, "se": se},
        "sizes": dataclasses.asdict(cfg),
    }
    return ExperimentResult(rows, {"schedules.png": fig}, info)


EXPERIMENTS: list[Experiment] = [
    Experiment(
        "schedules",
        "critical-window time grids: steps to a class-fraction-bias target",
        schedules_experiment,
    ),
]
"""The schedules experiment."""
