r"""Critical-exponent experiment of the report: the mean-field table of the generative bath.

``exponents`` (`docs/theory/exponents.md`): the $N$-site generative bath of two deltas $\pm1$
(the Curie–Weiss model with $J=\Lambda=1$), sampled by tempered Langevin dynamics
(:func:`gltheory.bath.tempered_langevin`), and every exponent of the 0-D table measured with a
standard error and compared with mean field:

- $\beta$ from $\langle|M|\rangle$ below the transition, $\gamma$ from the connected fluctuations
  above it and in one well below it, and $\gamma$ again from the response to a field $h_0$
  (paired chains), with the fluctuation–response identity $\partial\langle M\rangle/\partial h_0
  = N{\rm Var}\bar M$ checked at every temperature;
- $\delta$ from $\langle M\rangle$ against $h_0$ at the transition;
- $\alpha$: the specific-heat jump against the family's own Landau value
  (:func:`gltheory.bath.landau_jump`; $\tfrac32$ for $\pm\mu$);
- $z\nu$ from the relaxation of a displaced start (the dynamics itself, unadjusted);
- the scaling relations (Rushbrooke, Widom, $z\nu=1$) on the measured values, with propagated
  errors.

Then finite-size scaling in $N$ (`docs/theory/exponents.md#finite-size-scaling`,
:func:`gltheory.bath.fss_scan` from $N=10^3$ to $10^6$): the Binder crossing of the two largest
sizes against $U^\ast=0.2705$, the exponents read from the data collapse of $U_4$,
$\langle|M|\rangle$ and $\chi$ (against the same collapse of the exact quadrature of the same
estimators, :func:`gltheory.bath.fss_field`, which carries these sizes' $N^{-1/2}$ corrections)
and $\beta/\bar\nu$, $\gamma/\bar\nu$ at the transition; and universality
(`docs/theory/exponents.md#universality`): :func:`gltheory.exponents.exponent_table` for the five
data families, each jump against its own Landau value.

Every fit uses the range rule of `docs/theory/exponents.md#fitting-rule`
(:func:`gltheory.bath.fit_exponent_rule`); the temperature and field grids are placed inside
that window by the same constants (``FSS_MIN``, ``EPS_MAX``, ``FIELD_FSS_MIN``, ``FIELD_MAX``),
not by hand. Every row is stochastic: ok within ``z_max`` standard errors, except the family
rows with a finite-size allowance (`docs/theory/exponents.md#allowance`), whose tolerance is
``z_max`` SE plus the allowance (basis "model").

Then, for every family, finite-size scaling in $N$ at the transition
(:func:`gltheory.exponents.family_fss` at $x=0$, `docs/theory/exponents.md#family-fss`): the
Binder value extrapolated to $N\to\infty$ against its class's $U^\ast$ (0.2705 for $\mathbb Z_2$,
0.1775 for the O(3) sphere) and the $N$-exponents $\beta/\bar\nu=\tfrac14$, $\gamma/\bar\nu=\tfrac12$. And
$\nu$, $\gamma$, $\eta$ measured on the tempered $D=2$ patch lattice
(`docs/theory/lattice-exponents.md`, :mod:`gltheory.ornstein_zernike`), with Fisher
$\gamma=\nu(2-\eta)$ and hyperscaling $2-\alpha=D\nu$: mean field gives $2-\alpha-D\nu=1$ in $D=2$,
and the row's theory is that value, so "ok" there means hyperscaling fails as mean field
predicts (:func:`lattice_rows`; its note gives the distance from 0).

Figures: ``exponents_table.png`` (the ±1 table), ``exponents_fss_collapse.png`` (the scan
rescaled by the mean-field exponents, with the exact curves) and
``exponents_universality.png`` (one panel per family). Wall time on 2 idle cores: see
:class:`ExponentsConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from matplotlib.figure import Figure

from .. import bath, ornstein_zernike as oz, spatial
from ..data import Hypersphere, TwoPoint
from ..exponents import MEAN_FIELD, exponent_table, family_fss, universality_families
from ..processes import OU
from ..report import Experiment, ExperimentResult, ReportConfig, Row
from ._common import Sizes

__all__ = [
    "ExponentsConfig",
    "CONFIG",
    "EXPERIMENTS",
    "exponents_experiment",
    "lattice_rows",
    "table_rows",
]

_GROUP = "exponents"


@dataclasses.dataclass(frozen=True)
class ExponentsConfig(Sizes):
    r"""Sizes of the ``exponents`` experiment (:meth:`default`, :meth:`quick` for ``--quick``).

    Wall time of ``gltheory report --only exponents`` on the 2-core machine shared with other
    jobs, cold (``--no-cache``), 2026-12-04, with the family finite-size scaling and lattice
    rows (83 rows, all ok): ``--quick`` 234 s wall at load 0.7 rising to 5.4 (others started
    mid-run; ``uptime``), 186 s CPU (180 user + 6 system): the hypersphere's table 82 s, the
    other four tables 64 s, the five family scans 28 s, the ±1 table, scan and lattice the rest.
    The same run at load 12-18 under ``nice -n 10``: 703 s wall, 189 s CPU. Default (report)
    size: 571 s wall (load 9 falling to 0.5), 465 s CPU; the hypersphere's table 211 s, the family
    scans 86 s. Before the new rows, on idle cores, the cold ``--quick`` computation took 132 s
    wall (143 s CPU), the hypersphere's table 63 s of it (29 s compiling its
    160-node-quadrature programs, 5-6 sampler programs per family). Cuts: the hypersphere's
    $\beta_c=d/R^2$ in closed form (no ``critical_times`` program), one sampler program per
    family for its finite-size scan (integer steps shared by the sizes), one lattice program
    for the $\nu$ sweep (one burn-in for every coupling), the ±1 scan at $N\le3\cdot10^4$ in
    ``quick``, and a MALA step that evaluates the score's quadrature once
    (:func:`gltheory.bath.tempered_langevin`: about 30 % less run time of the adjusted runs,
    same numbers; the compile time is unchanged).
    """

    n_sites: float = 1e6
    r"""$N$ of the $\beta$, $\gamma$ and specific-heat runs (the rule's window is
    $|\varepsilon|\in[10N^{-1/2},0.1]$: $[0.01, 0.1]$ at $10^6$)."""
    n_field: float = 1e8
    r"""$N$ of the $\delta$ (field window $h_0\in[100N^{-3/4},10^{-2}]$) and $z\nu$ runs."""
    n_temps: int = 5
    r"""Temperatures per side of the transition, geometric over the rule's $|\varepsilon|$ window
    (and field values over the $h_0$ window)."""
    n_chains: int = 128
    """Independent chains per equilibrium run."""
    n_steps: int = 4000
    """Recorded (Metropolis-adjusted) steps per chain."""
    n_burn: int = 1500
    r"""Unadjusted burn-in steps: at step 1 the relaxation time is $\approx1/|\varepsilon|\le100$
    steps; ordered chains start at $M=\sqrt{3\varepsilon}$ (Landau), critical ones at
    $(3h_0)^{1/3}$."""
    step: float = 1.0
    r"""$\beta\,d\tau$ of the equilibrium runs."""
    response_c: float = 1e-2
    r"""The response runs use $h_0=c\,|\varepsilon|^{3/2}$: the relative non-linearity
    $\chi^3h_0^2/3=c^2/3$ is then the same at every temperature and does not bias the slope."""
    relax_steps: int = 3000
    r"""Steps of the relaxation runs ($\tau_r\approx1/(\mathtt{relax\_step}\,|\varepsilon|)$ steps)."""
    relax_step: float = 0.2
    r"""$\beta\,d\tau$ of the relaxation runs (Euler rate error relative $\tfrac12\,{\rm step}\,|\varepsilon|$)."""
    relax_m0: float = 0.3
    r"""Relaxation runs start at $M=m_0\sqrt{|\varepsilon|}$ (linear regime)."""
    fss_sizes: tuple[float, ...] = (1e3, 1e4, 1e5, 1e6)
    """Sizes $N$ of the finite-size-scaling scan (:func:`gltheory.bath.fss_scan`)."""
    fss_x: tuple[float, ...] = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)
    r"""Points of the scaling variable $x=\varepsilon N^{1/2}$ (the Binder crossings fit $|x|\le1$)."""
    fss_chains: int = 32
    """Chains per point of the scan."""
    fss_burn: float = 3.0
    fss_record: float = 10.0
    r"""Burn-in and recorded steps per point, in units of the critical relaxation time
    $\approx2.6\sqrt N$ steps at step 1 (`docs/theory/exponents.md#finite-size-scaling`)."""
    fss_boot: int = 32
    """Bootstrap replicas of each collapse's standard errors."""
    families: tuple[str, ...] = (
        "two_deltas",
        "gaussian_mixture",
        "hypersphere",
        "curie_weiss_spins",
        "binary_images",
    )
    """Families of :func:`gltheory.exponents.universality_families` in the universality table."""
    uni_chains: int = 64
    uni_steps: int = 2000
    uni_burn: int = 1000
    uni_relax_chains: int = 32
    uni_relax_steps: int = 3000
    """Sizes of each family's :func:`gltheory.exponents.exponent_table` (its defaults)."""
    lat_temperature: float = 1e-4
    r"""Noise temperature $T$ of the tempered $D=2$ patch lattice ($k=3$) of the $\nu$, $\gamma$,
    $\eta$ rows (`docs/theory/lattice-exponents.md`): ${\rm Gi}=6.4\,T$, the mean-field window
    $\varepsilon\ge10\,{\rm Gi}$."""
    lat_points: int = 7
    r"""Couplings $G=1/(1+\varepsilon)$ of the $\nu,\gamma$ sweep, $\varepsilon$ geometric from the
    rule's lower edge ($\max(10\,{\rm Gi},\ \xi_{\rm lin}=L/8)$, times 1.15) to 0.5."""
    lat_cells: int = 8
    """$L/k$ of the sweep ($L=24$)."""
    lat_replicas: int = 32
    """Independent replicas per lattice run (the standard errors of $S(q)$)."""
    lat_samples: int = 1200
    """Samples of $S(q)$ per replica (every second step); the burn-in is six relaxation times of
    the slowest ($q=0$) mode at the sweep's closest point, one value for every point (one
    compiled program)."""
    lat_eta_cells: int = 16
    r"""$L/k$ of the $\eta$ run (0: $\eta$ from the sweep's closest point), placed at the closest
    $\varepsilon$ the rule allows on that lattice (`docs/theory/lattice-exponents.md#fitting-range`)."""
    lat_eta_samples: int = 2000
    r"""Samples per replica of the $\eta$ run."""
    ffs_sizes: tuple[float, ...] = (1e2, 1e3, 3e3, 1e4, 1e5)
    r"""Sizes $N$ of each family's finite-size scaling at the transition
    (:func:`gltheory.exponents.family_fss` at $x=0$; the hypersphere stops at ``ffs_sphere_max``)."""
    ffs_sphere_max: float = 1e4
    """Largest size of the hypersphere's finite-size scaling (its score is a quadrature)."""
    ffs_chains: int = 32
    """Chains per size."""
    ffs_record: float = 40.0
    r"""Recorded steps in units of the family's critical relaxation time $r\sqrt{N_{\max}}$
    (burn-in $13\,r\sqrt{N_{\max}}$, the rule of :func:`gltheory.exponents.family_fss`), one value
    for every size of a family (one compiled program per family)."""

    @classmethod
    def quick(cls) -> ExponentsConfig:
        r"""Half the chains and a third of the steps; the scan up to $N=3\cdot10^4$ (four sizes:
        the $N^{-1/2}$ correction of the fits at $\varepsilon=0$ needs them); the families at
        the small sizes of ``universality(quick=True)``; each family's finite-size scaling at
        $N=10^2..10^3$ with 16 chains; the lattice sweep at five couplings of 600 samples, with
        $\eta$ from its closest point (no separate $L=48$ run)."""
        return cls(
            n_chains=64,
            n_steps=1500,
            n_burn=600,
            fss_sizes=(1e3, 3e3, 1e4, 3e4),
            uni_chains=16,
            uni_steps=600,
            uni_burn=400,
            uni_relax_chains=16,
            uni_relax_steps=2000,
            lat_points=5,
            lat_samples=600,
            lat_eta_cells=0,
            ffs_sizes=(1e2, 2e2, 5e2, 1e3),
            ffs_sphere_max=1e3,
            ffs_chains=16,
        )


CONFIG = ExponentsConfig
"""This module's size configuration (``CONFIG.default()``, ``CONFIG.quick()``)."""


def _est(fit) -> bath.Estimate:
    return bath.Estimate(float(fit.slope), float(fit.stderr))


def table_rows(
    measured: Mapping[str, bath.Estimate],
    *,
    landau: float,
    z_max: float = 3.0,
    label: str = "+-1 bath",
    notes: Mapping[str, str] | None = None,
    theories: Mapping[str, float] | None = None,
) -> list[Row]:
    r"""The report rows of one family's exponent table, measured against mean field.

    **Arguments:**

    - `measured`: :class:`gltheory.bath.Estimate` s under the keys ``"beta"``, ``"gamma"``,
      ``"delta"``, ``"jump"`` and ``"znu"`` (each optional; missing keys give no row), and
      optionally ``"gamma_inwell"``, ``"gamma_response"``, ``"fdt"`` (the weighted mean of
      response/fluctuation − 1) and the relations ``"rushbrooke"``, ``"widom"``,
      ``"dynamic"`` (left side minus right side).
    - `landau`: the family's own Landau jump $\Delta C/N$ (theory of ``"jump"``).
    - `z_max`: rows are ok within ``z_max`` standard errors.
    - `label`: the family, put in each row's name.
    - `notes`: per-key notes (how it was measured).
    - `theories`: per-key theory values replacing mean field (e.g. the exact finite-$N$ value
      of an estimator precise enough to resolve its finite-size correction; say so in the note).

    **Returns:** a list of :class:`gltheory.report.Row` (all stochastic).
    """
    notes = dict(notes or {})
    theories = dict(theories or {})
    spec = [
        ("beta", "beta", MEAN_FIELD["beta"]),
        ("gamma", "gamma (fluctuations, eps < 0)", MEAN_FIELD["gamma"]),
        ("gamma_inwell", "gamma (in-well fluctuations, eps > 0)", MEAN_FIELD["gamma"]),
        ("gamma_response", "gamma (response dM/dh0, eps < 0)", MEAN_FIELD["gamma"]),
        ("fdt", "response / fluctuations - 1 (FDT)", 0.0),
        ("delta", "delta", MEAN_FIELD["delta"]),
        ("jump", "alpha: jump Delta C/N vs Landau", landau),
        ("znu", "z nu", MEAN_FIELD["znu"]),
        ("rushbrooke", "Rushbrooke alpha + 2 beta + gamma - 2", 0.0),
        ("widom", "Widom gamma - beta (delta - 1)", 0.0),
        ("dynamic", "z nu - 1", 0.0),
    ]
    rows = []
    for key, name, theory in spec:
        if key not in measured:
            continue
        e = measured[key]
        rows.append(
            Row(
                f"{name}, {label}",
                theories.get(key, theory),
                float(e.value),
                se=float(e.stderr),
                z_max=z_max,
                group=_GROUP,
                note=notes.get(key, ""),
            )
        )
    return rows


# ----------------------------------------------------------------------------------------------
# the two-delta table
# ----------------------------------------------------------------------------------------------


def _runner(data, cfg: ExponentsConfig):
    process = OU()

    def run(snr, n, key, **kw):
        t = float(process.t_of_snr(snr))
        opts = dict(n_chains=cfg.n_chains, n_steps=cfg.n_steps, n_burn=cfg.n_burn, step=cfg.step)
        return bath.tempered_langevin(data, process, t, n, key, **(opts | kw))

    return run


def _two_delta(cfg: ExponentsConfig, key, z_max: float):
    data = TwoPoint(1.0)  # Lambda = 1: eps = b - 1 = snr - 1
    run = _runner(data, cfg)
    n = float(cfg.n_sites)
    n8 = float(cfg.n_field)
    lo = bath.FSS_MIN / math.sqrt(n)
    eps = np.geomspace(lo, bath.EPS_MAX, cfg.n_temps)
    keys = jax.random.split(key, 6)

    # equilibrium runs on both sides: beta, gamma (fluctuations), the jump
    stats = {}
    for i, e in enumerate(eps):
        k = jax.random.fold_in(keys[0], i)
        stats[e] = bath.bath_statistics(run(1 + e, n, k, m0=math.sqrt(3 * e)))
        stats[-e] = bath.bath_statistics(run(1 - e, n, jax.random.fold_in(keys[1], i)))

    def col(sign, field):
        return np.array([list(getattr(stats[sign * e], field)) for e in eps])

    m = col(1, "order_parameter")
    chi = col(-1, "susceptibility")
    chi_b = col(1, "susceptibility_abs")
    fit_b = bath.fit_exponent_rule("beta", eps, m[:, 0], m[:, 1], n)
    fit_g = bath.fit_exponent_rule("gamma", eps, chi[:, 0], chi[:, 1], n)
    fit_gb = bath.fit_exponent_rule("gamma", eps, chi_b[:, 0], chi_b[:, 1], n)
    all_eps = np.concatenate([eps, -eps])
    heat = np.array([list(stats[e].specific_heat) for e in all_eps])
    jump = bath.fit_jump(all_eps, heat[:, 0], heat[:, 1], n)
    landau = bath.landau_jump(data, snr_c=1.0)

    # response: paired chains at h0 = +-c |eps|^(3/2) above the transition
    resp = []
    for i, e in enumerate(eps):
        h = cfg.response_c * e**1.5
        k = jax.random.fold_in(keys[2], i)
        mp = np.asarray(run(1 - e, n, k, h0=h).m)
        mm = np.asarray(run(1 - e, n, k, h0=-h).m)
        r = (mp - mm) / (2 * h)
        resp.append([r.mean(), r.std(ddof=1) / math.sqrt(r.size)])
    resp = np.array(resp)
    fit_gr = bath.fit_exponent_rule("gamma", eps, resp[:, 0], resp[:, 1], n)
    # the exact N-site susceptibility (quadrature of the field law; N Var(x) - sigma^2 =
    # N Var(M_bar) for +-1): the same fit with the response's weights is the response row's
    # theory, since the paired chains resolve the finite-N correction (1/eps)(1 - 1/(N eps^2))
    chi_exact = np.array(
        [float(bath.field(data, 1 / math.sqrt(1 - e), n).susceptibility) - 1 / (1 - e) for e in eps]
    )
    fit_gx = bath.fit_exponent_rule("gamma", eps, chi_exact, resp[:, 1], n)
    ratio = resp[:, 0] / chi[:, 0] - 1
    ratio_se = np.hypot(resp[:, 1] / chi[:, 0], resp[:, 0] * chi[:, 1] / chi[:, 0] ** 2)
    w = 1 / ratio_se**2
    fdt = bath.Estimate(float(np.sum(w * ratio) / np.sum(w)), float(1 / math.sqrt(np.sum(w))))

    # delta: <M> against h0 at eps = 0
    hs = np.geomspace(bath.FIELD_FSS_MIN * n8**-0.75, bath.FIELD_MAX, cfg.n_temps)
    mh = np.array(
        [
            list(
                bath.bath_statistics(
                    run(1.0, n8, jax.random.fold_in(keys[3], i), h0=h, m0=(3 * h) ** (1 / 3))
                ).magnetization
            )
            for i, h in enumerate(hs)
        ]
    )
    fit_d = bath.fit_exponent_rule("delta", hs, mh[:, 0], mh[:, 1], n8)

    # z nu: relaxation of a displaced start above the transition (unadjusted dynamics)
    taus = []
    for i, e in enumerate(eps):
        mom = run(
            1 - e,
            n8,
            jax.random.fold_in(keys[4], i),
            n_burn=0,
            n_steps=cfg.relax_steps,
            step=cfg.relax_step,
            m0=cfg.relax_m0 * math.sqrt(e),
            metropolis=False,
        )
        taus.append(list(bath.relaxation_time(mom, m_eq=0.0)))
    taus = np.array(taus)
    fit_z = bath.fit_exponent_rule("znu", eps, taus[:, 0], taus[:, 1], n8)

    est = {
        "beta": _est(fit_b),
        "gamma": _est(fit_g),
        "gamma_inwell": _est(fit_gb),
        "gamma_response": _est(fit_gr),
        "fdt": fdt,
        "delta": _est(fit_d),
        "jump": jump,
        "znu": _est(fit_z),
    }
    rel = bath.scaling_relations(
        bath.Estimate(0.0, 0.0), est["beta"], est["gamma"], est["delta"], est["znu"]
    )
    est.update({r.name: bath.Estimate(r.value, r.stderr) for r in rel})

    win = f"|eps| in [{eps[0]:.3g}, {eps[-1]:.3g}] ({cfg.n_temps} temps), N={n:.0e}"
    chains = f"{cfg.n_chains} chains x {cfg.n_steps} MALA steps after {cfg.n_burn} burn-in"
    notes = {
        "beta": f"fit_exponent_rule('beta') of <|M|> over {win}; {chains}",
        "gamma": f"fit_exponent_rule('gamma') of N Var(M_bar) (disordered) over {win}",
        "gamma_inwell": f"in-well N(<M^2> - <|M|>^2) (ordered, one well) over {win}",
        "gamma_response": (
            f"[<M>(h0) - <M>(-h0)]/2h0, paired chains, h0 = {cfg.response_c:g}|eps|^1.5 "
            f"(constant relative non-linearity {cfg.response_c**2 / 3:.1e}), over {win}; "
            "theory: the same fit of the exact N-site susceptibility (bath.field quadrature), "
            f"{float(fit_gx.slope):.5f} (mean field 1 at N = inf; the paired chains resolve the "
            "finite-N correction (1/eps)(1 - 1/(N eps^2)))"
        ),
        "fdt": "inverse-variance weighted mean over the disordered temperatures of "
        "response / fluctuations - 1 (fluctuation-response identity dM/dh0 = N Var M_bar)",
        "delta": (
            f"fit_exponent_rule('delta') of <M> at eps = 0 against h0 in "
            f"[{hs[0]:.3g}, {hs[-1]:.3g}] ({cfg.n_temps} fields), N={n8:.0e}"
        ),
        "jump": (
            f"fit_jump (linear C/N on each side) over {win}; theory: landau_jump = "
            f"3 v^2/|kappa4| = {landau.jump:.6g} (alpha = 0: a finite jump)"
        ),
        "znu": (
            f"relaxation_time of <M> from M = {cfg.relax_m0:g} sqrt|eps| (unadjusted, step "
            f"{cfg.relax_step:g}, {cfg.relax_steps} steps), N={n8:.0e}, eps < 0"
        ),
        "rushbrooke": "scaling_relations on the measured beta, gamma (fluctuations) and "
        "alpha = 0 (finite jump), first-order propagated errors",
        "widom": "scaling_relations on the measured gamma, beta, delta",
        "dynamic": "scaling_relations on the measured z nu",
    }
    rows = table_rows(
        est,
        landau=landau.jump,
        z_max=z_max,
        label="+-1 bath",
        notes=notes,
        theories={"gamma_response": float(fit_gx.slope)},
    )
    info = {
        "eps": eps,
        "order_parameter": m,
        "chi_disordered": chi,
        "chi_inwell": chi_b,
        "response": resp,
        "chi_exact": chi_exact,
        "gamma_response_theory": float(fit_gx.slope),
        "heat_eps": all_eps,
        "heat": heat,
        "fields": hs,
        "m_field": mh,
        "tau": taus,
        "estimates": {k: list(v) for k, v in est.items()},
        "landau": landau._asdict(),
    }
    fits = {"beta": fit_b, "gamma": fit_g, "gamma_response": fit_gr, "delta": fit_d, "znu": fit_z}
    return rows, info, fits


def _table_figure(info: Mapping[str, Any], fits) -> Figure:
    fig = Figure(figsize=(14.0, 7.6), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    eps = np.asarray(info["eps"])

    def loglog(ax, x, yv, fit, label, color, *, invert=False):
        ax.errorbar(x, yv[:, 0], yerr=yv[:, 1], fmt="o", ms=4, capsize=3, color=color, label=label)
        if fit is not None:
            p = float(fit.slope)
            xf = np.geomspace(x.min(), x.max(), 50)
            # the plain power law through the geometric middle of the points (the fit itself
            # carries a fitted analytic correction)
            mid = np.exp(np.mean(np.log(np.abs(yv[:, 0])))) / np.exp(
                np.mean(np.log(x)) * (-p if invert else p)
            )
            ax.plot(
                xf,
                mid * xf ** (-p if invert else p),
                "--",
                lw=1,
                color=color,
                label=f"slope {'-' if invert else ''}{p:.3f} ± {float(fit.stderr):.3f}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")

    ax = axes[0]
    loglog(ax, eps, np.asarray(info["order_parameter"]), fits["beta"], "⟨|M|⟩", "C0")
    ax.set(xlabel="ε = b − 1 (ordered)", ylabel="⟨|M|⟩", title="β: order parameter (mean field ½)")
    ax.legend(fontsize=7)
    ax = axes[1]
    loglog(ax, eps, np.asarray(info["chi_disordered"]), fits["gamma"], "N Var M̄", "C1", invert=True)
    loglog(
        ax, eps, np.asarray(info["response"]), fits["gamma_response"], "∂⟨M⟩/∂h₀", "C2", invert=True
    )
    ax.set(
        xlabel="|ε| (disordered)", ylabel="χ", title="γ: fluctuations and response (mean field 1)"
    )
    ax.legend(fontsize=7)
    ax = axes[2]
    loglog(ax, np.asarray(info["fields"]), np.asarray(info["m_field"]), None, "⟨M⟩ at ε = 0", "C3")
    d = float(fits["delta"].slope)
    ax.set(xlabel="h₀", ylabel="⟨M⟩", title=f"δ: critical isotherm, δ = {d:.3f} (mean field 3)")
    ax.legend(fontsize=7)
    ax = axes[3]
    he, hv = np.asarray(info["heat_eps"]), np.asarray(info["heat"])
    ax.errorbar(he, hv[:, 0], yerr=hv[:, 1], fmt="o", ms=4, capsize=3, color="C4", label="C/N")
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xticks([-0.1, -0.05, 0.0, 0.05, 0.1])
    lj = info["landau"]["jump"]
    ax.set(xlabel="ε", ylabel="C/N", title=f"α = 0: a jump (Landau {lj:.3g})")
    ax.legend(fontsize=7)
    ax = axes[4]
    loglog(ax, eps, np.asarray(info["tau"]), fits["znu"], "τ_r", "C5", invert=True)
    ax.set(
        xlabel="|ε| (disordered)", ylabel="τ_r (bath time)", title="zν: relaxation (mean field 1)"
    )
    ax.legend(fontsize=7)
    ax = axes[5]
    names = ["beta", "gamma", "gamma_response", "delta", "znu", "jump"]
    theory = [0.5, 1.0, info["gamma_response_theory"], 3.0, 1.0, lj]
    est = info["estimates"]
    ratio = [est[k][0] / t - 1 for k, t in zip(names, theory)]
    err = [est[k][1] / t for k, t in zip(names, theory)]
    ax.errorbar(range(len(names)), ratio, yerr=err, fmt="o", capsize=3, color="k")
    ax.axhline(0, color="C0", lw=0.8)
    ax.set_xticks(range(len(names)), ["β", "γ", "γ resp\n(exact N)", "δ", "zν", "ΔC"])
    ax.set(ylabel="measured / theory − 1 (± 1 SE)", title="the table against mean field")
    fig.suptitle("Critical exponents of the ±1 generative bath (tempered Langevin)")
    return fig


# ----------------------------------------------------------------------------------------------
# finite-size scaling in N
# ----------------------------------------------------------------------------------------------


def _fss(cfg: ExponentsConfig, key, z_max: float):
    data = TwoPoint(1.0)
    ns = np.asarray(cfg.fss_sizes, np.float64)
    x = np.asarray(cfg.fss_x, np.float64)
    tau = 2.6 * np.sqrt(ns)  # critical relaxation time in steps at step 1
    burn = [int(math.ceil(cfg.fss_burn * t)) for t in tau]
    steps = [int(math.ceil(cfg.fss_record * t)) for t in tau]
    scan = bath.fss_scan(
        data, ns, x, key, snr_c=1.0, n_chains=cfg.fss_chains, n_steps=steps, n_burn=burn
    )
    exact = bath.fss_field(data, ns, np.linspace(x[0], x[-1], 41), snr_c=1.0)
    cross = bath.binder_crossings(scan)
    exact_pts = bath.fss_field(data, ns, x, snr_c=1.0)  # the same points, exactly
    exact_cross = bath.binder_crossings(exact_pts)
    u_star = bath.critical_binder(1)

    def collapse(name, init):
        # the sampled scan's collapse, and the same collapse (same weights) of the exact
        # expectations of the same estimators: the theory of the finite-size collapse, which
        # carries the N^(-1/2) corrections to scaling of these sizes
        err = getattr(scan, name + "_err")
        args = dict(init=init, n_boot=cfg.fss_boot)
        mc = bath.fss_collapse(scan.n_sites, scan.eps, getattr(scan, name), err, **args)
        ex = bath.fss_collapse(ns, exact_pts.eps, getattr(exact_pts, name), err, **args)
        return mc, ex

    col_u, ex_u = collapse("binder", (0.5, 0.0))
    col_m, ex_m = collapse("order_parameter", (0.5, -0.25))
    col_c, ex_c = collapse("susceptibility", (0.5, 0.5))
    crit = bath.fit_critical_fss(scan)
    sizes = f"N in {{{', '.join(f'{n:.0e}' for n in ns)}}}"
    run_note = (
        f"fss_scan of +-1: {sizes}, x = eps N^(1/2) in [{x[0]:g}, {x[-1]:g}] ({x.size} points), "
        f"{cfg.fss_chains} chains, {cfg.fss_burn:g} + {cfg.fss_record:g} critical relaxation "
        "times (2.6 N^(1/2) steps) of burn-in + record"
    )
    lab = f"N={ns[-2]:.0e}/{ns[-1]:.0e}"
    exact_note = (
        "theory: the same collapse, same weights, of the exact expectations of the same "
        "estimators at the same sizes and points (fss_field quadrature), which carry the "
        "N^(-1/2) corrections to scaling of these sizes; mean field (N -> inf):"
    )
    rows = [
        Row(
            f"Binder crossing U_4 ({lab}), +-1 bath",
            u_star,
            float(cross.binder[-1]),
            se=float(cross.binder_err[-1]),
            z_max=z_max,
            group=_GROUP,
            note=(
                f"binder_crossings (quadratic fit of U over |x| <= 1 per size) of the largest pair; "
                f"theory critical_binder(1) = 1 - Gamma(1/4)^2/(12 Gamma(3/4)^2); the exact "
                f"quadrature's crossing of the same pair: {float(exact_cross.binder[-1]):.5f}; "
                + run_note
            ),
        ),
        Row(
            f"Binder crossing eps_x ({lab}), +-1 bath",
            0.0,
            float(cross.eps[-1]),
            se=float(cross.eps_err[-1]),
            z_max=z_max,
            group=_GROUP,
            note=f"where U_4 of the largest pair cross; exact quadrature "
            f"{float(exact_cross.eps[-1]):.2e}",
        ),
        Row(
            "collapse of U_4: 1/nu_bar, +-1 bath",
            ex_u.x_exponent.value,
            col_u.x_exponent.value,
            se=col_u.x_exponent.stderr,
            z_max=z_max,
            group=_GROUP,
            note=f"fss_collapse (Nelder-Mead on the Houdayer-Hartmann quality, {cfg.fss_boot} "
            f"bootstrap replicas), quality {col_u.quality:.2f}; scaling variable eps N^(1/nu_bar); "
            f"{exact_note} 1/2",
        ),
        Row(
            "collapse of <|M|>: y exponent -beta/nu_bar, +-1 bath",
            ex_m.y_exponent.value,
            col_m.y_exponent.value,
            se=col_m.y_exponent.stderr,
            z_max=z_max,
            group=_GROUP,
            note=f"fss_collapse of <|M|> N^(-kappa) against eps N^(1/nu_bar); 1/nu_bar = "
            f"{col_m.x_exponent.value:.4f} +- {col_m.x_exponent.stderr:.4f} (exact "
            f"{ex_m.x_exponent.value:.4f}), quality {col_m.quality:.2f}; {exact_note} -1/4",
        ),
        Row(
            "collapse of chi: y exponent gamma/nu_bar, +-1 bath",
            ex_c.y_exponent.value,
            col_c.y_exponent.value,
            se=col_c.y_exponent.stderr,
            z_max=z_max,
            group=_GROUP,
            note=f"fss_collapse of the in-well chi; 1/nu_bar = {col_c.x_exponent.value:.4f} +- "
            f"{col_c.x_exponent.stderr:.4f} (exact {ex_c.x_exponent.value:.4f}), quality "
            f"{col_c.quality:.2f}; {exact_note} 1/2",
        ),
        Row(
            "<|M|> at eps = 0: beta/nu_bar, +-1 bath",
            0.25,
            float(crit.beta_over_nu.slope),
            se=float(crit.beta_over_nu.stderr),
            z_max=z_max,
            group=_GROUP,
            note="fit_critical_fss: <|M|> ~ N^(-beta/nu_bar) (1 + c N^(-1/2)) over the scan's sizes",
        ),
        Row(
            "chi at eps = 0: gamma/nu_bar, +-1 bath",
            0.5,
            float(crit.gamma_over_nu.slope),
            se=float(crit.gamma_over_nu.stderr),
            z_max=z_max,
            group=_GROUP,
            note="fit_critical_fss: chi ~ N^(gamma/nu_bar) (1 + c N^(-1/2)) over the scan's sizes",
        ),
    ]
    info = {
        "scan": scan._asdict(),
        "exact": exact._asdict(),
        "crossings": cross._asdict(),
        "exact_crossings": exact_cross._asdict(),
        "collapse": {
            "binder": col_u._asdict(),
            "order_parameter": col_m._asdict(),
            "susceptibility": col_c._asdict(),
            "exact_binder": ex_u._asdict(),
            "exact_order_parameter": ex_m._asdict(),
            "exact_susceptibility": ex_c._asdict(),
        },
        "steps": steps,
        "burn": burn,
    }
    return rows, info, scan, exact


def _fss_figure(scan, exact) -> Figure:
    fig = Figure(figsize=(14.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    ns = np.asarray(scan.n_sites)
    panels = (
        ("order_parameter", -0.25, r"$\langle|M|\rangle\,N^{1/4}$"),
        ("susceptibility", 0.5, r"$\chi\,N^{-1/2}$"),
        ("binder", 0.0, "U_4"),
    )
    for ax, (name, kappa, ylabel) in zip(axes, panels):
        for i, (n, c) in enumerate(zip(ns, ("C0", "C1", "C2", "C3", "C4", "C5"))):
            f = n**-kappa
            y = np.asarray(getattr(scan, name))[i] * f
            e = np.asarray(getattr(scan, name + "_err"))[i] * f
            ax.errorbar(scan.x, y, yerr=e, fmt="o", ms=4, capsize=2, color=c, label=f"N = {n:.0e}")
            ax.plot(exact.x, np.asarray(getattr(exact, name))[i] * f, "-", lw=0.8, color=c)
        ax.set_xlabel(r"$x=\varepsilon N^{1/2}$")
        ax.set_ylabel(ylabel)
        ax.axvline(0, color="k", lw=0.5)
    axes[2].axhline(bath.critical_binder(1), color="k", ls=":", lw=1, label="U* = 0.2705")
    axes[0].set_title("order parameter, mean-field scaling")
    axes[1].set_title("in-well susceptibility")
    axes[2].set_title("Binder cumulant: crossing at U*")
    axes[2].legend(fontsize=7)
    fig.suptitle(
        "Finite-size scaling of the ±1 bath: points = tempered Langevin (± 1 SE), "
        "lines = exact quadrature"
    )
    return fig


# ----------------------------------------------------------------------------------------------
# universality: the table for each data family
# ----------------------------------------------------------------------------------------------


def _family_rows(tables, z_max: float, sizes: str) -> list[Row]:
    """The report rows of the universality tables (one block per family)."""
    rows = []
    for fam, tab in tables.items():
        for r in tab.rows:
            what = (
                f"theory: the family's own Landau jump 3 (v + beta_c v')^2/|kappa4| = {r.theory:.5g}"
                if r.name == "jump"
                else "theory: mean field"
            )
            note = f"{what}; beta_c = {tab.snr_c:.6g}; {sizes}"
            allowance = float(r.allowance)
            if allowance > 0:
                # the fit rule's finite-size allowance (docs/theory/exponents.md#allowance):
                # ok within z_max SE plus the distance from mean field of the same fit on the
                # exact N-site Curie-Weiss bath, so the row carries that bound as its tolerance
                row = Row(
                    f"{fam}: {r.name}",
                    r.theory,
                    r.measured,
                    tol=z_max * r.stderr + allowance,
                    tol_basis="model",
                    group=_GROUP,
                    note=(
                        f"{note}; a stochastic row with a finite-size allowance: tol = {z_max:g} "
                        f"SE ({r.stderr:.3g}) + allowance {allowance:.3g}, the distance from mean "
                        "field of the same fit (same points, same relative errors) on the exact "
                        "N-site Curie-Weiss bath (exponents.exponent_table)"
                    ),
                )
            else:
                row = Row(
                    f"{fam}: {r.name}",
                    r.theory,
                    r.measured,
                    se=r.stderr,
                    z_max=z_max,
                    group=_GROUP,
                    note=note,
                )
            rows.append(row)
        rows.append(
            Row(
                f"{fam}: response / fluctuations - 1 (FDT)",
                0.0,
                tab.fdt.value,
                se=tab.fdt.stderr,
                z_max=z_max,
                group=_GROUP,
                note="weighted mean over the temperatures above the transition",
            )
        )
    return rows


def _closed_form_snr_c(data) -> float | None:
    """beta_c where it is known in closed form: d / R^2 for the uniform sphere, else None."""
    if isinstance(data, Hypersphere):
        return float(data.dim) / float(data.radius) ** 2
    return None


def _universality(cfg: ExponentsConfig, key, z_max: float):
    every = universality_families()
    unknown = [f for f in cfg.families if f not in every]
    if unknown:
        raise ValueError(f"families: unknown {unknown}; allowed: {', '.join(every)}.")
    # gltheory.exponents.universality's keys (family i: fold_in(key, i)); the hypersphere's
    # beta_c = d / R^2 in closed form (checked by landau_jump; spares the critical_times program)
    tables = {
        f: exponent_table(
            every[f],
            jax.random.fold_in(key, i),
            family=f,
            n_chains=cfg.uni_chains,
            n_steps=cfg.uni_steps,
            n_burn=cfg.uni_burn,
            relax_chains=cfg.uni_relax_chains,
            relax_steps=cfg.uni_relax_steps,
            snr_c=_closed_form_snr_c(every[f]),
        )
        for i, f in enumerate(cfg.families)
    }
    sizes = (
        f"exponent_table: {cfg.uni_chains} chains x {cfg.uni_steps} steps after {cfg.uni_burn} "
        f"burn-in (N = 1e6; delta and z nu at N = 1e8, {cfg.uni_relax_chains} relaxation chains "
        f"x {cfg.uni_relax_steps} steps)"
    )
    rows = _family_rows(tables, z_max, sizes)
    info = {
        fam: {
            "rows": [r._asdict() for r in tab.rows],
            "relations": [r._asdict() for r in tab.relations],
            "snr_c": tab.snr_c,
            "landau": tab.landau._asdict(),
            "fdt": list(tab.fdt),
            "seconds": tab.seconds,
        }
        for fam, tab in tables.items()
    }
    return rows, info, tables


def _universality_figure(tables) -> Figure:
    n = len(tables)
    fig = Figure(figsize=(3.3 * n, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    for ax, (fam, tab) in zip(axes, tables.items()):
        names = [r.name for r in tab.rows]
        ratio = np.array([r.measured / r.theory - 1 for r in tab.rows])
        err = np.array([r.stderr / abs(r.theory) for r in tab.rows])
        ok = np.array([r.consistent for r in tab.rows])
        pos = np.arange(len(names))
        ax.errorbar(pos[ok], ratio[ok], yerr=err[ok], fmt="o", capsize=3, color="C0")
        if (~ok).any():
            ax.errorbar(pos[~ok], ratio[~ok], yerr=err[~ok], fmt="s", capsize=3, color="C3")
        ax.axhline(0, color="k", lw=0.7)
        ax.set_xticks(pos, names, fontsize=7, rotation=90)
        jump = next(r for r in tab.rows if r.name == "jump")
        ax.set_title(
            f"{fam}\nβ_c = {tab.snr_c:.4g}; ΔC/N = {jump.measured:.3f} ± {jump.stderr:.3f}"
            f"\n(Landau {jump.theory:.4g})",
            fontsize=8,
        )
    axes[0].set_ylabel("measured / theory − 1 (± 1 SE)")
    fig.suptitle(
        "Universality: exponents against mean field, the jump against each family's own Landau "
        "value (red: beyond 3 SE + the finite-size allowance)"
    )
    return fig


# ----------------------------------------------------------------------------------------------
# finite-size scaling in N at the transition, for every family
# ----------------------------------------------------------------------------------------------


def _family_fss_rows(f, z_max: float, run: str) -> list[Row]:
    """The report rows of one :class:`gltheory.exponents.FamilyFSS` (Binder value, N-exponents)."""
    by = {r.name: r for r in f.rows}
    u = by["binder_limit"]
    rows = [
        Row(
            f"{f.family}: Binder value at the transition, N -> inf (U* of O({f.n_components}))",
            u.theory,
            u.measured,
            se=u.stderr,
            z_max=z_max,
            group=_GROUP,
            note=(
                f"U_{f.n_components} at eps = 0 per size, extrapolated by the weighted fit "
                "U* + a N^(-1/2) (the value where the U(eps N^(1/2)) curves cross); per size: "
                + ", ".join(f"{v:.4f} +- {e:.4f}" for v, e in np.asarray(f.binder_critical))
                + f"; theory critical_binder({f.n_components}) = {f.binder_theory:.5f}; "
                + run
            ),
        )
    ]
    for key, name, kind in (
        ("beta_over_nu", "<|M|> ~ N^(-beta/nu_bar) at eps = 0: beta/nu_bar", "<|M|>"),
        ("gamma_over_nu", "chi ~ N^(gamma/nu_bar) at eps = 0: gamma/nu_bar", "in-well chi"),
    ):
        r = by[key]
        rows.append(
            Row(
                f"{f.family}: {name}",
                r.theory,
                r.measured,
                se=r.stderr,
                z_max=z_max,
                group=_GROUP,
                note=f"fit_critical_fss of {kind} over the sizes with the N^(-1/2) correction; "
                + run,
            )
        )
    return rows


def _family_fss(cfg: ExponentsConfig, key, tables, z_max: float):
    """One :func:`gltheory.exponents.family_fss` per family at x = 0, one program per family."""
    every = universality_families()
    rows, info = [], {}
    for i, fam in enumerate(cfg.families):
        data = every[fam]
        lj = tables[fam].landau
        step = 1.0 if data.dim == 1 else 0.5  # exponent_table's and family_fss's default
        # the family's critical relaxation factor (family_fss's rule), at the largest size
        r = math.sqrt(2.0) / (lj.snr_c * math.sqrt(abs(lj.kappa4)) * step)
        cap = cfg.ffs_sphere_max if isinstance(data, Hypersphere) else math.inf
        ns = tuple(n for n in cfg.ffs_sizes if n <= cap)
        root = r * math.sqrt(ns[-1])
        burn, steps = math.ceil(13 * root), math.ceil(cfg.ffs_record * root)
        f = family_fss(
            data,
            jax.random.fold_in(key, i),
            family=fam,
            sizes=ns,
            x=(0.0,),
            n_chains=cfg.ffs_chains,
            n_burn=burn,
            n_steps=steps,
            snr_c=float(lj.snr_c),
        )
        run = (
            f"family_fss at x = 0: N in {{{', '.join(f'{n:.0e}' for n in ns)}}}, "
            f"{cfg.ffs_chains} chains x {steps} MALA steps after {burn} burn-in at every size "
            f"({cfg.ffs_record:g} and 13 critical relaxation times r N_max^(1/2), r = {r:.3g}); "
            f"{f.seconds:.0f} s"
        )
        rows += _family_fss_rows(f, z_max, run)
        info[fam] = {
            "sizes": list(ns),
            "n_burn": burn,
            "n_steps": steps,
            "binder_critical": f.binder_critical.tolist(),
            "rows": [r_._asdict() for r_ in f.rows],
            "seconds": f.seconds,
        }
    return rows, info


# ----------------------------------------------------------------------------------------------
# nu and eta on the tempered D = 2 patch lattice
# ----------------------------------------------------------------------------------------------

_LAT_K = 3
_LAT_DT = 0.1  # h (1 + G/3) = 0.13; Leimkuhler-Matthews: exact stationary variance of linear modes


def _lattice_eps_min(cfg: ExponentsConfig, cells: int) -> float:
    """The rule's lower edge of eps (10 Gi and linear xi <= L/8), with a 15 % margin."""
    gi = oz.ginzburg_distance(cfg.lat_temperature, _LAT_K)
    # linear OZ: xi^2 = (k^2 - 1)/24 * G/(1 - G) = (k^2 - 1)/(24 eps) <= (L/8)^2
    size = (_LAT_K**2 - 1) / (24 * (cells * _LAT_K / 8) ** 2)
    return 1.15 * max(10 * gi, size)


def _lattice_point(cfg: ExponentsConfig, key, G: float, cells: int, n_samples: int, n_burn: int):
    run = spatial.lattice_langevin(
        key,
        G,
        window=_LAT_K,
        cells=cells,
        n_replicas=cfg.lat_replicas,
        n_burn=n_burn,
        n_samples=n_samples,
        thin=2,
        dt=_LAT_DT,
        temperature=cfg.lat_temperature,
        start="disordered",
    )
    st = spatial.lattice_statistics(run)
    f = oz.oz_fit(st.structure_factor, st.structure_factor_se, window=_LAT_K)
    e = oz.eta_fit(st.structure_factor, st.structure_factor_se, window=_LAT_K)
    return [G, f.xi, f.xi_se, f.chi, f.chi_se, e.eta, e.eta_se]


def _burn(eps_min: float) -> int:
    """Six relaxation times of the q = 0 mode (rate 1 - G) at the closest point, in steps."""
    return int(max(500, math.ceil(6 / (_LAT_DT * (1 - 1 / (1 + eps_min))))))


def lattice_rows(
    nu: bath.Estimate,
    gamma: bath.Estimate,
    eta: bath.Estimate,
    *,
    z_max: float = 3.0,
    label: str = "D = 2 lattice",
    notes: Mapping[str, str] | None = None,
) -> list[Row]:
    r"""The report rows of the lattice exponents $\nu$, $\gamma$, $\eta$ and their relations.

    Fisher $\gamma-\nu(2-\eta)$ (theory 0) and hyperscaling $2-\alpha-D\nu$ with $\alpha=0$,
    $D=2$ (:func:`gltheory.ornstein_zernike.lattice_relations`). The hyperscaling row's theory is
    the mean-field value 1, not 0: it is "ok" when hyperscaling fails as mean field predicts,
    and its note gives the distance from 0 in standard errors (the finding;
    `docs/theory/lattice-exponents.md#relations`).

    **Arguments:**

    - `nu`, `gamma`, `eta`: measured :class:`gltheory.bath.Estimate` s.
    - `z_max`: rows are ok within ``z_max`` standard errors.
    - `label`: put in each row's name.
    - `notes`: per-key notes (``"nu"``, ``"gamma"``, ``"eta"``).

    **Returns:** five :class:`gltheory.report.Row` s (all stochastic).
    """
    notes = dict(notes or {})
    fisher, hyper = oz.lattice_relations(gamma, nu, eta)
    hyper_z = hyper.value / hyper.stderr if hyper.stderr > 0 else math.inf
    rows = [
        Row(f"nu (xi ~ eps^-nu), {label}", 0.5,
            nu.value, se=nu.stderr, z_max=z_max, group=_GROUP, note=notes.get("nu", "")),
        Row(f"gamma (chi ~ eps^-gamma), {label}", MEAN_FIELD["gamma"], gamma.value,
            se=gamma.stderr, z_max=z_max, group=_GROUP, note=notes.get("gamma", "")),
        Row(f"eta (S(q) ~ (m + q^2)^-(1 - eta/2)), {label}", 0.0, eta.value, se=eta.stderr,
            z_max=z_max, group=_GROUP, note=notes.get("eta", "")),
        Row(
            f"Fisher gamma - nu (2 - eta), {label}", 0.0, fisher.value, se=fisher.stderr,
            z_max=z_max, group=_GROUP,
            note="lattice_relations on the measured gamma, nu, eta (first-order propagated "
            "errors); holds for mean field in every D",
        ),
        Row(
            f"hyperscaling 2 - alpha - D nu (alpha = 0), {label}: mean field 1, not 0",
            1.0, hyper.value, se=hyper.stderr, z_max=z_max, group=_GROUP,
            note=(
                "the check that tells mean field apart: hyperscaling 2 - alpha = D nu would make "
                "this 0; mean field in D = 2 gives 1 (it holds only at D = 4). Status "
                "convention: theory = the mean-field value 1, so 'ok' means hyperscaling FAILS "
                f"as mean field predicts; the measured value is {hyper_z:.1f} SE from 0 (the "
                "violation is the finding). lattice_relations on the measured nu, alpha = 0 "
                "(the mean-field jump, not measured on the lattice)"
            ),
        ),
    ]  # fmt: skip
    return rows


def _lattice(cfg: ExponentsConfig, key, z_max: float):
    r"""nu, gamma, eta, Fisher and hyperscaling on the tempered D = 2 patch lattice."""
    T = cfg.lat_temperature
    lo = _lattice_eps_min(cfg, cfg.lat_cells)
    eps = np.geomspace(lo, 0.5, cfg.lat_points)
    burn = _burn(lo)
    k_sweep, k_eta = jax.random.split(key)
    pts = np.array(
        [
            _lattice_point(
                cfg,
                jax.random.fold_in(k_sweep, j),
                float(1 / (1 + e)),
                cfg.lat_cells,
                cfg.lat_samples,
                burn,
            )  # fmt: skip
            for j, e in enumerate(eps)
        ]
    )
    G, xi, xse, chi, cse = pts[:, 0], pts[:, 1], pts[:, 2], pts[:, 3], pts[:, 4]
    keep = xi <= cfg.lat_cells * _LAT_K / 8  # the rule's finite-size bound on the measured xi
    nu = oz.fit_divergence(G[keep], xi[keep], xse[keep], correction=False)
    ga = oz.fit_divergence(G[keep], chi[keep], cse[keep], reduced="direct", correction=False)
    if cfg.lat_eta_cells:
        e_eta = _lattice_eps_min(cfg, cfg.lat_eta_cells)
        eta_pt = _lattice_point(
            cfg, k_eta, float(1 / (1 + e_eta)), cfg.lat_eta_cells, cfg.lat_eta_samples,
            _burn(e_eta),
        )  # fmt: skip
        eta_where = f"L = {cfg.lat_eta_cells * _LAT_K}, eps = {e_eta:.3g}, {cfg.lat_eta_samples}"
    else:
        j = int(np.flatnonzero(keep)[0])
        e_eta, eta_pt = float(eps[j]), list(pts[j])
        eta_where = f"the sweep's closest point (L = {cfg.lat_cells * _LAT_K}, eps = {e_eta:.3g}), "
        eta_where += f"{cfg.lat_samples}"
    eta = bath.Estimate(float(eta_pt[5]), float(eta_pt[6]))
    nu_e = bath.Estimate(nu.exponent, nu.exponent_se)
    ga_e = bath.Estimate(ga.exponent, ga.exponent_se)
    fisher, hyper = oz.lattice_relations(ga_e, nu_e, eta)  # (again in lattice_rows) for details
    gi = oz.ginzburg_distance(T, _LAT_K)
    sweep = (
        f"lattice_langevin (k = 3, L = {cfg.lat_cells * _LAT_K}, dt {_LAT_DT:g}, "
        f"{cfg.lat_replicas} replicas x {cfg.lat_samples} samples every 2nd step after {burn} "
        f"burn-in, disordered start) at {cfg.lat_points} couplings, eps = 1/G - 1 geometric in "
        f"[{eps[0]:.3g}, 0.5] (rule: eps >= 10 Gi = {10 * gi:.3g}, xi <= L/8: "
        f"{int(keep.sum())} points kept); oz_fit per point"
    )
    notes = {
        "nu": f"fit_divergence of the OZ xi, G_c fitted ({nu.critical:.4f} +- "
        f"{nu.critical_se:.4f}), no analytic correction; {sweep}",
        "gamma": f"fit_divergence (reduced 'direct') of the OZ chi, G_c fitted "
        f"({ga.critical:.4f} +- {ga.critical_se:.4f}); the same sweep",
        "eta": f"eta_fit (Fisher-Burford, mass fitted) at {eta_where} samples x "
        f"{cfg.lat_replicas} replicas; rule: the closest eps with xi <= L/8 and eps >= 10 Gi",
    }
    rows = lattice_rows(
        nu_e, ga_e, eta, z_max=z_max, label=f"D = 2 lattice, T = {T:g}", notes=notes
    )
    info = {
        "temperature": T,
        "ginzburg": gi,
        "eps": eps,
        "points": pts,
        "keep": keep,
        "burn": burn,
        "nu": nu._asdict(),
        "gamma": ga._asdict(),
        "eta": {"eps": e_eta, "point": list(eta_pt)},
        "fisher": fisher._asdict(),
        "hyperscaling": hyper._asdict(),
    }
    return rows, info


def exponents_experiment(
    config: ReportConfig, key, sizes: ExponentsConfig | None = None
) -> ExperimentResult:
    """The ``exponents`` experiment: the mean-field exponent table of the generative bath.

    **Arguments:**

    - `config`: the report settings (seed, ``quick``, ``z_max``).
    - `key`: the experiment's PRNG key.
    - `sizes`: the sizes; by default ``ExponentsConfig.of(config)``.

    **Returns:** the rows, figures and details.
    """
    cfg = ExponentsConfig.of(config) if sizes is None else sizes
    k_table, k_fss, k_fam = jax.random.split(key, 3)
    rows, info, fits = _two_delta(cfg, k_table, config.z_max)
    figures = {"exponents_table.png": _table_figure(info, fits)}
    fss_rows, fss_info, scan, exact = _fss(cfg, k_fss, config.z_max)
    rows += fss_rows
    figures["exponents_fss_collapse.png"] = _fss_figure(scan, exact)
    uni_rows, uni_info, tables = _universality(cfg, k_fam, config.z_max)
    rows += uni_rows
    figures["exponents_universality.png"] = _universality_figure(tables)
    # new keys from fold_in, so the three parts above keep their numbers
    ffs_rows, ffs_info = _family_fss(cfg, jax.random.fold_in(key, 17), tables, config.z_max)
    rows += ffs_rows
    lat_rows, lat_info = _lattice(cfg, jax.random.fold_in(key, 18), config.z_max)
    rows += lat_rows
    details = {
        "two_deltas": info,
        "fss": fss_info,
        "universality": uni_info,
        "family_fss": ffs_info,
        "lattice": lat_info,
        "sizes": dataclasses.asdict(cfg),
    }
    return ExperimentResult(rows, figures, details)


EXPERIMENTS: list[Experiment] = [
    Experiment(
        "exponents",
        "critical exponents of the generative bath: table, scaling relations, universality",
        exponents_experiment,
    ),
]
"""The exponents experiment."""
