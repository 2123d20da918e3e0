r"""Report experiment ``trained_network``: a tiny trained CNN measured against the patch theory.

Ambrogioni, arXiv:2603.20092; Kamb & Ganguli, arXiv:2412.20292. The canonical two-image patch model (two uniform images
$\pm\mathbf 1$ on a periodic 1-D lattice of 32 sites) is learned by a purely convolutional
denoiser (:class:`gltheory.nets.ConvDenoiser`, receptive field $k=5$: one 5-tap patch layer
then two pointwise layers, FiLM on the log-SNR, circular padding) trained for 1500 steps
(float32, OU). For this data the best local equivariant denoiser *is* the ELS machine of
window $k$ (Kamb & Ganguli), so a well-trained network should be calibrated to $k=5$ and
soften at the patch model's critical time rather than at the ideal score's.

Rows:

1. **calibrated window** (Kamb & Ganguli's per-step calibration along the network's own
   DDIM trajectories, :func:`gltheory.nets.compare_with_machines`, windows 3, 5, 7): the
   window at the step nearest $t_c^S$ equals the network's $k$ (an integer: tolerance 0);
2. **$r^2$ network vs calibrated ELS denoiser** at that step and the median over all steps,
   against 1 with the stated threshold $r^2\ge0.8$ (a threshold row: tolerance 0.2);
3. **network $t_c$ vs theory**: the $q=0$ mode of the network's score Jacobian at $x=0$ (JVP
   plane-wave probe, :func:`gltheory.criticality.stiffness_curves`) crosses 0 (criterion S)
   and $-\tfrac12$ (reverse SDE, D) at $t_c$, compared with
   $t_c^S=\tfrac12\ln(1+k)$ and $t_c^D=\tfrac12\,{\rm arcsinh}\,k$. The deviation is
   reported as measured: the tolerance is 3x the crossing's interpolation error on the
   40-point grid (the only uncertainty of this one network's $t_c$; a seed-to-seed spread
   would need several trainings, beyond the report's time). An approximately trained network
   is not the machine: it softens early in generation (biases +0.05 to +0.14 over
   initialisations), so these rows are "off", a finding; the ideal score of the same data
   would fire at $\tfrac12\ln(1+L)$ (noted).

``info`` keeps the per-step curves, the $r^2$ of the final samples of network and
calibrated machine from the same noise (Kamb & Ganguli's headline number; with 6 samples of
a domain mosaic it varies between about 0.7 and 0.9 with the seed, so it is not a row) and
the figure ``trained_network.png`` (r² over time, calibrated k, samples side by side).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from .. import nets
from ..criticality import first_crossing, stiffness_curves
from ..data import uniform_images
from ..field import patch_critical_point
from ..processes import OU
from ..report import Experiment, ExperimentResult, ReportConfig, Row
from ..sampling import time_grid
from ..spectral import drift_offset
from ._common import Sizes

__all__ = ["NetsConfig", "CONFIG", "EXPERIMENTS", "trained_network_experiment"]


@dataclasses.dataclass(frozen=True)
class NetsConfig(Sizes):
    """The pre-configured run (CPU, float32): the two-image patch model of Ambrogioni, arXiv:2603.20092 in 1-D.

    The quick and the normal report use the same sizes (:meth:`quick` is :meth:`default`).
    """

    lattice: tuple[int, ...] = (32,)
    """Lattice of the two uniform images $\\pm\\mathbf 1$."""
    window: int = 5
    """Receptive field k of the network (and the patch theory's window)."""
    width: int = 16
    depth: int = 3
    radii: tuple[int, ...] = (2, 0, 0)
    """Width, depth and per-layer kernel radii of the :class:`gltheory.nets.ConvDenoiser`."""
    T: float = 5.0
    """OU horizon."""
    train: nets.TrainConfig = nets.TrainConfig(
        n_steps=1500, batch_size=64, chunk=100, learning_rate=1e-2, seed=0
    )
    """Training settings."""
    windows: tuple[int, ...] = (3, 5, 7)
    """ELS windows the network is compared with."""
    n_compare: int = 6
    n_steps_compare: int = 12
    """DDIM trajectories and steps of the machine comparison."""
    n_steps_crit: int = 40
    """Log-SNR grid points of the network's stiffness curve."""
    r2_threshold: float = 0.8
    """Stated threshold of the r² rows (r² ≥ 0.8)."""


CONFIG = NetsConfig
"""This module's size configuration (``CONFIG.default()``, ``CONFIG.quick()``)."""


def _r2_figure(cmp: nets.MachineComparison, t_net, t_theory) -> Figure:
    ts = np.asarray(cmp.ts)
    fig = Figure(figsize=(11.0, 3.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for j, k in enumerate(np.asarray(cmp.windows)):
        ax1.plot(ts, np.asarray(cmp.r2[:, j]), marker=".", label=f"ELS k={int(k)}")
    ax1.plot(ts, np.asarray(cmp.r2_calibrated), "k-", lw=2, label="calibrated k")
    ax1.set_ylim(-0.5, 1.05)
    ax1.set_xscale("log")
    ax1.invert_xaxis()
    ax1.set_xlabel("t (generation →)")
    ax1.set_ylabel("r² of denoisers (network vs machine)")
    for lab, tm, c in (("net t_c", t_net, "C3"), ("patch t_c^S", t_theory, "C4")):
        if tm is not None and np.isfinite(tm):
            ax1.axvline(tm, color=c, ls="--", lw=1, label=f"{lab} = {tm:.3f}")
    ax1.legend(fontsize=7)
    ax2.plot(ts, np.asarray(cmp.best_k_l2), "o-", label="best k (L2)")
    ax2.plot(ts, np.asarray(cmp.best_k_cos), "s--", label="best k (cosine)")
    ax2.set_xscale("log")
    ax2.invert_xaxis()
    ax2.set_xlabel("t")
    ax2.set_ylabel("calibrated patch size k")
    ax2.legend(fontsize=7)
    n_show = min(6, cmp.net_samples.shape[0])
    net_s, mach_s = np.asarray(cmp.net_samples), np.asarray(cmp.machine_samples)
    if net_s.ndim == 2:  # 1-D lattices: one row per sample
        top, bot = net_s[:n_show], mach_s[:n_show]
    else:
        top = np.concatenate(list(net_s[:n_show]), axis=1)
        bot = np.concatenate(list(mach_s[:n_show]), axis=1)
    gap = np.full((1, top.shape[1]), np.nan)
    ax3.imshow(np.concatenate([top, gap, bot], axis=0), cmap="gray", vmin=-1.2, vmax=1.2)
    ax3.set_title(f"top: network, bottom: calibrated ELS (r² = {float(cmp.sample_r2):.3f})")
    ax3.set_axis_off()
    return fig


def trained_network_experiment(
    config: ReportConfig, key, sizes: NetsConfig | None = None
) -> ExperimentResult:
    """Train the tiny CNN, calibrate the machines along its trajectories, measure its t_c.

    **Arguments:**

    - `config`: the report settings (seed, ``quick``, ``z_max``).
    - `key`: the experiment's PRNG key.
    - `sizes`: the settings; by default ``NetsConfig.of(config)``.

    **Returns:** the rows, figures and details.
    """
    cfg = NetsConfig.of(config) if sizes is None else sizes
    group = "trained_network"
    process = OU(cfg.T)
    k = cfg.window
    images = uniform_images(cfg.lattice).images.astype(jnp.float32)
    k_net, k_cmp, k_crit = jax.random.split(key, 3)
    net = nets.ConvDenoiser(
        len(cfg.lattice),
        window=k,
        width=cfg.width,
        depth=cfg.depth,
        radii=cfg.radii,
        key=k_net,
        dtype=jnp.float32,
    )
    tc = cfg.train
    res = nets.train(net, images, process, tc)
    model = res.ema_model
    rows: list[Row] = []
    theory = patch_critical_point(process, window=k, images=None, lattice_ndim=len(cfg.lattice))
    t_th = theory.t_score
    t_ideal = {c: nets.data_critical_time(images, process, criterion=c) for c in ("score", "sde")}

    # 1. network vs machines along its own DDIM trajectories
    cmp = nets.compare_with_machines(
        model, images, k_cmp, windows=cfg.windows, n=cfg.n_compare, n_steps=cfg.n_steps_compare
    )
    ts_c = np.asarray(cmp.ts)
    r2c = np.asarray(cmp.r2_calibrated)
    thr = cfg.r2_threshold
    i_c = int(np.argmin(np.abs(ts_c - t_th)))
    rows.append(
        Row(
            f"calibrated window at the step nearest t_c^S (t={ts_c[i_c]:.3f}) = network window",
            float(k),
            float(cmp.best_k_l2[i_c]),
            tol=0.0,
            tol_basis="exact",
            group=group,
            note=(
                f"best ELS window in {tuple(cfg.windows)} by relative L2 score distance, median "
                "over trajectories; tol = 0 (an integer window); per step: "
                + ", ".join(f"{int(v)}" for v in np.asarray(cmp.best_k_l2))
            ),
        )
    )
    for label, idx in (("at t_c^S", i_c), ("median over all steps", None)):
        val = float(r2c[idx]) if idx is not None else float(np.nanmedian(r2c))
        rows.append(
            Row(
                f"r² network vs calibrated ELS denoiser, {label} (≥ {thr:g})",
                1.0,
                val,
                tol=1 - thr,
                tol_basis="threshold",
                group=group,
                note=(
                    f"{cfg.n_compare} DDIM trajectories of the CNN, {cfg.n_steps_compare} "
                    f"log-SNR steps; r² pooled over trajectories and sites; tol = 1 - {thr:g}: "
                    f"the row checks the stated threshold r² >= {thr:g}; per step: "
                    + ", ".join(f"{v:.2f}" for v in r2c)
                ),
            )
        )

    # 2. critical time of the network (softening of q = 0 at x = 0) vs the patch theory
    ts = time_grid(process, cfg.n_steps_crit, kind="log_snr", t_min=0.2, t_max=2.5)
    ts = ts.astype(jnp.float32)
    zeros = jnp.zeros((ts.shape[0], 1) + tuple(cfg.lattice), jnp.float32)
    q0 = jnp.zeros((1, len(cfg.lattice)), jnp.float32)
    mu = jnp.mean(stiffness_curves(model, zeros, ts, k_crit, q=q0), axis=1)  # (n_t,)
    est = {
        crit: first_crossing(ts, mu + drift_offset(process, ts, crit).astype(mu.dtype))
        for crit in ("score", "sde")
    }
    for crit, t_theory in (("score", theory.t_score), ("sde", theory.t_sde)):
        t_c, interp = est[crit]
        t_net = float(t_c)
        rows.append(
            Row(
                f"t_c^{'S' if crit == 'score' else 'D'} trained CNN (q=0 softening at x=0) "
                f"vs patch theory, k={k}",
                t_theory,
                t_net if np.isfinite(t_net) else None,
                tol=3 * float(interp) if np.isfinite(float(interp)) else 0.0,
                tol_basis="discretisation",
                group=group,
                note=(
                    f"JVP plane-wave probe of the CNN's score at x=0 on {cfg.n_steps_crit} "
                    f"log-SNR steps; theory "
                    f"{'1/2 ln(1+k)' if crit == 'score' else '1/2 arcsinh(k)'} (Ambrogioni, "
                    "arXiv:2603.20092); deviation reported as measured: tol = 3 x the "
                    f"crossing's interpolation error ({float(interp):.1g}), the uncertainty of "
                    f"this network's t_c (one training, seed {tc.seed}); offset "
                    f"{t_net - t_theory:+.3f}: an approximately trained network softens early "
                    "in generation (docs/theory/nets.md#trained-network-experiment: +0.05 to "
                    "+0.14 over initialisations), a finding; the ideal score of the same data "
                    f"fires at {t_ideal[crit]:.3f}; both criteria are linear (x = 0): they "
                    "locate the instability of the symmetric point, not a spatial transition "
                    "(none in 1-D; in 2-D it lies later in generation, at t*: "
                    "docs/theory/spatial.md#consequences)"
                ),
            )
        )
    t_net = float(est["score"][0])
    fig = _r2_figure(cmp, t_net, t_th)
    info = {
        "train_loss_last_100": float(np.nanmean(np.asarray(res.state.losses[-100:]))),
        "ts": ts_c,
        "r2_calibrated": r2c,
        "r2": np.asarray(cmp.r2),
        "l2": np.asarray(cmp.l2),
        "best_k_l2": np.asarray(cmp.best_k_l2),
        "best_k_cos": np.asarray(cmp.best_k_cos),
        "sample_r2": float(cmp.sample_r2),
        "t_c_score": t_net,
        "t_c_sde": float(est["sde"][0]),
        "t_c_patch_theory": {"score": theory.t_score, "sde": theory.t_sde},
        "t_c_data_spectrum": t_ideal,
        "settings": dataclasses.asdict(cfg),
    }
    return ExperimentResult(rows, {"trained_network.png": fig}, info)


EXPERIMENTS: list[Experiment] = [
    Experiment(
        "trained_network",
        "trained CNN vs patch machines (r², calibrated k) and its t_c vs theory",
        trained_network_experiment,
    ),
]
