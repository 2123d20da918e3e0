r"""Observables experiment of the report: Biroli et al.'s cloning probability.

``cloning``: the cloning probability $\phi(t)$ near $t_S$ for $\tfrac12\mathcal N(\pm m, I)$,
quadrature vs Monte Carlo clones of exact-score reverse-SDE runs (binomial SE).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import plotting
from ..observables import (
    PHI_SPECIATION,
    cloning_probability,
    cloning_probability_theory,
    sign_classifier,
)
from ..processes import OU
from ..report import Experiment, ExperimentResult, ReportConfig, Row
from ..sampling import time_grid
from ._common import ExactScore, Sizes, forward_sample, two_cluster_mixture

__all__ = ["CloningConfig", "CONFIG", "EXPERIMENTS", "cloning_experiment"]


@dataclasses.dataclass(frozen=True)
class CloningConfig(Sizes):
    """Sizes of the cloning experiment (:meth:`default`, :meth:`quick` for ``--quick``)."""

    dim: int = 16
    r"""Dimension of the two-cluster mixture $\tfrac12\mathcal N(\pm m, I)$, $\|m\|^2 = d$ (the
    class is decided by $\hat m\cdot x$ only, so d is cheap)."""
    n: int = 4000
    """Branched trajectories (pairs of clones) per branch time."""
    n_steps: int = 800
    """Euler–Maruyama steps (log-SNR grid, t from ``T`` to ``t_min``) of the cloning runs."""
    T: float = 5.0
    """OU start time of the reverse runs."""
    t_min: float = 1e-3
    """Last time of the reverse grid."""

    @classmethod
    def quick(cls) -> CloningConfig:
        """Half the pairs and half the steps."""
        return cls(n=2000, n_steps=400)


CONFIG = CloningConfig
"""This module's size configuration (``CONFIG.default()``, ``CONFIG.quick()``)."""


def cloning_experiment(
    config: ReportConfig, key, sizes: CloningConfig | None = None
) -> ExperimentResult:
    """The ``cloning`` experiment: cloning probability, quadrature vs Monte Carlo.

    **Arguments:**

    - `config`: the report settings (seed, ``quick``, ``z_max``).
    - `key`: the experiment's PRNG key.
    - `sizes`: the sizes; by default ``CloningConfig.of(config)``.

    **Returns:** the rows, figures and details.
    """
    cfg = CloningConfig.of(config) if sizes is None else sizes
    group = "cloning"
    d = cfg.dim
    data, m = two_cluster_mixture(d)
    m_norm = math.sqrt(float(m @ m))
    process = OU(cfg.T)
    ts = time_grid(process, cfg.n_steps, kind="log_snr", t_min=cfg.t_min)
    tsn = np.asarray(ts)
    t_s = 0.5 * math.log(m_norm**2)  # = 1/2 ln(1 + |m|^2 - s0^2), s0^2 = 1
    targets = (t_s + 0.5, t_s, t_s - 0.5)
    idx = sorted({int(np.argmin(np.abs(tsn - t))) for t in targets})
    k_start, k_run = jax.random.split(key)
    x_start = forward_sample(data, process, k_start, cfg.n, ts[0])
    est = cloning_probability(
        ExactScore(data, process),
        process,
        k_run,
        x_start,
        ts=ts,
        branch_index=idx,
        classify=sign_classifier(m),
    )
    t_mc = np.asarray(est.t)
    phi_mc, se_mc = np.asarray(est.phi), np.asarray(est.se)
    phi_th = np.asarray(cloning_probability_theory(m_norm, 1.0, jnp.asarray(t_mc), process=process))
    rows = []
    for t_, p_, s_, th in zip(t_mc, phi_mc, se_mc, phi_th):
        lab = "t_S" if abs(t_ - t_s) < 0.05 else f"t_S{t_ - t_s:+.2f}"
        rows.append(
            Row(
                f"phi({lab}) cloning, mixture d={d}, t={t_:.4f}",
                float(th),
                float(p_),
                se=float(s_),
                z_max=config.z_max,
                group=group,
                note=(
                    f"{est.n} pairs branched at grid time t from one exact-score reverse SDE "
                    f"(Euler-Maruyama, {cfg.n_steps} log-SNR steps), class = sign(m.x) at "
                    f"t={cfg.t_min:g}; theory cloning_probability_theory (quadrature); binomial SE"
                ),
            )
        )
    t_curve = np.linspace(max(0.05, t_s - 2.0), t_s + 2.0, 300)
    phi_curve = np.asarray(
        cloning_probability_theory(m_norm, 1.0, jnp.asarray(t_curve), process=process)
    )
    fig = plotting.cloning_figure(
        t_curve,
        phi_curve,
        t_mc,
        phi_mc,
        se_mc,
        t_marks={"t_S = ½ ln d": t_s},
        threshold=PHI_SPECIATION,
        title=f"Cloning probability, ½N(±m, I) in d = {d}, |m|² = d, OU",
    )
    info = {"t": t_mc, "phi": phi_mc, "se": se_mc, "theory": phi_th, "t_S": t_s, "d": d}
    info["sizes"] = dataclasses.asdict(cfg)
    return ExperimentResult(rows, {"cloning.png": fig}, info)


EXPERIMENTS: list[Experiment] = [
    Experiment("cloning", "cloning probability (quadrature vs Monte Carlo)", cloning_experiment),
]
"""The observables experiment."""
