r"""Generative-bath experiment of the report (Ambrogioni, arXiv:2310.17467).

``bath_exponents``: β and γ from Gibbs sampling of the $N=10^8$-site generative bath with fit
standard errors, against the same fits of the exact :func:`gltheory.bath.field` quadrature
(and those against mean field, with tolerances derived from the Landau correction to scaling
and the leading finite-N correction of the Curie–Weiss saddle point).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import bath, plotting
from ..data import TwoPoint
from ..meanfield import curie_weiss_magnetization, fit_exponent
from ..report import Experiment, ExperimentResult, ReportConfig, Row
from ._common import Sizes, variance_and_se

__all__ = ["BathConfig", "CONFIG", "EXPERIMENTS", "bath_exponents_experiment"]


@dataclasses.dataclass(frozen=True)
class BathConfig(Sizes):
    """Sizes of the bath experiment (:meth:`default`, :meth:`quick` for ``--quick``)."""

    n_sites: int = 10**8
    """Sites N of the two-point generative bath simulated by Gibbs sampling (Ambrogioni, arXiv:2310.17467)."""
    eps_beta: tuple[float, float] = (0.002, 0.02)
    r"""Range of $\epsilon = 1/\sigma^2 - 1$ below $\sigma_c$ for the exponent β (N ε² ≥ 400)."""
    eps_gamma: tuple[float, float] = (0.01, 0.1)
    r"""Range of $\epsilon = 1 - 1/\sigma^2$ above $\sigma_c$ for the exponent γ (N ε² ≥ 10⁴)."""
    n_temps: int = 8
    """Temperatures per exponent (geometric in ε)."""
    chains_beta: int = 128
    sweeps_beta: int = 5000
    """Gibbs sweeps below σ_c: escape from x ≈ 0 takes ≈ ln(M√N/σ)/ε ≈ 3300 sweeps at the
    smallest ε, relaxation 1/(2ε) ≈ 250 more."""
    chains_gamma: int = 1024
    sweeps_gamma: int = 1000
    """Gibbs sweeps above σ_c: relaxation time 1/ε ≤ 100 sweeps, so 10 relaxation times."""

    @classmethod
    def quick(cls) -> BathConfig:
        """Half the chains (same sweeps)."""
        return cls(chains_beta=64, chains_gamma=512)


CONFIG = BathConfig
"""This module's size configuration (``CONFIG.default()``, ``CONFIG.quick()``)."""


def bath_exponents_experiment(
    config: ReportConfig, key, sizes: BathConfig | None = None
) -> ExperimentResult:
    """The ``bath_exponents`` experiment: β and γ of the simulated generative bath.

    **Arguments:**

    - `config`: the report settings (seed, ``quick``, ``z_max``).
    - `key`: the experiment's PRNG key.
    - `sizes`: the sizes; by default ``BathConfig.of(config)``.

    **Returns:** the rows, figures and details.
    """
    cfg = BathConfig.of(config) if sizes is None else sizes
    group = "bath_exponents"
    data = TwoPoint(1.0)
    n_sites = int(cfg.n_sites)
    k_beta, k_gamma = jax.random.split(key)
    rows: list[Row] = []
    info: dict[str, Any] = {"N": n_sites}

    # beta: <|x|> below sigma_c, eps = 1/sigma^2 - 1
    eps_b = np.geomspace(*cfg.eps_beta, cfg.n_temps)
    mabs, mabs_se, mabs_exact = [], [], []
    for i, e in enumerate(eps_b):
        sig = 1 / math.sqrt(1 + e)
        x, _ = bath.gibbs(
            sig,
            n_sites,
            jax.random.fold_in(k_beta, i),
            n_chains=cfg.chains_beta,
            n_sweeps=cfg.sweeps_beta,
        )
        ax_ = np.abs(np.asarray(x))
        mabs.append(ax_.mean())
        mabs_se.append(ax_.std(ddof=1) / math.sqrt(ax_.size))
        mabs_exact.append(float(bath.field(data, sig, n_sites).mean_abs))
    mabs, mabs_se, mabs_exact = map(np.asarray, (mabs, mabs_se, mabs_exact))
    fb = fit_exponent(eps_b, mabs, yerr=mabs_se)
    # the theory of the MC fit is the same estimator (same weights) on the exact expectations
    fb_exact = fit_exponent(eps_b, mabs_exact, yerr=mabs_se)
    m_inf = np.asarray(curie_weiss_magnetization(jnp.asarray(1 + eps_b)))
    fb_inf = fit_exponent(eps_b, m_inf, yerr=mabs_se)
    rng = f"eps=1/s^2-1 in [{eps_b[0]:g}, {eps_b[-1]:g}] ({len(eps_b)} temps)"
    # model error of "slope = 1/2": (i) the N = inf local slope d ln M / d ln eps of
    # M = tanh(bM), b = 1 + eps, is eps(1-M^2)/(1-b(1-M^2)) -> 1/2, its deviation largest at
    # the range's largest eps (a weighted log-log fit averages local slopes); (ii) finite N:
    # the saddle point of N(-eps m^2/2 + m^4/12) shifts <|m|> by -M/(4 N eps^2), changing the
    # local slope by 1/(2 N eps^2), largest at the smallest eps
    e_hi, m_hi = float(eps_b[-1]), float(m_inf[-1])
    local_hi = e_hi * (1 - m_hi**2) / (1 - (1 + e_hi) * (1 - m_hi**2))
    landau = abs(local_hi - 0.5)
    finite_n = 1 / (2 * n_sites * float(eps_b[0]) ** 2)
    tol_beta = landau + finite_n
    rows.append(
        Row(
            f"beta_eff bath Gibbs MC, N={n_sites:.0e}",
            float(fb_exact.slope),
            float(fb.slope),
            se=float(fb.stderr),
            z_max=config.z_max,
            group=group,
            note=(
                f"fit_exponent of <|x|> ({cfg.chains_beta} chains x "
                f"{cfg.sweeps_beta} sweeps, weights from MC SE) vs {rng}; theory: the same "
                "weighted fit of the exact bath.field quadrature <|x|> at the same N and sigma "
                "(includes the finite-eps correction, see next row)"
            ),
        )
    )
    rows.append(
        Row(
            "beta_eff exact bath quadrature vs mean field",
            0.5,
            float(fb_exact.slope),
            tol=tol_beta,
            tol_basis="model",
            group=group,
            note=(
                f"same weighted fit on bath.field at N={n_sites:.0e}; N->inf (M = tanh(bM)) gives "
                f"{float(fb_inf.slope):.4f} over this {rng}; finite-N rounding "
                f"{abs(float(fb_exact.slope) - float(fb_inf.slope)):.1e} (N eps^2 >= "
                f"{n_sites * eps_b[0] ** 2:.0f}); tol = |local slope of M = tanh((1+eps)M) at "
                f"the largest eps - 1/2| ({landau:.2e}, Landau correction to scaling) + "
                f"1/(2 N eps_min^2) ({finite_n:.1e}, finite-N saddle-point shift)"
            ),
        )
    )
    info["beta"] = {
        "eps": eps_b,
        "mean_abs": mabs,
        "se": mabs_se,
        "exact": mabs_exact,
        "N_inf": m_inf,
        "slope": float(fb.slope),
        "stderr": float(fb.stderr),
        "slope_exact": float(fb_exact.slope),
        "slope_N_inf": float(fb_inf.slope),
    }

    # gamma: N Var(y_bar) above sigma_c, eps = 1 - 1/sigma^2; = 1/eps exactly at N = inf
    eps_g = np.geomspace(*cfg.eps_gamma, cfg.n_temps)
    chi, chi_se, chi_exact = [], [], []
    for i, e in enumerate(eps_g):
        sig = 1 / math.sqrt(1 - e)
        _, yb = bath.gibbs(
            sig,
            n_sites,
            jax.random.fold_in(k_gamma, i),
            n_chains=cfg.chains_gamma,
            n_sweeps=cfg.sweeps_gamma,
        )
        v, s = variance_and_se(np.asarray(yb))
        chi.append(n_sites * v)
        chi_se.append(n_sites * s)
        bf = bath.field(data, sig, n_sites)
        chi_exact.append(float(bf.susceptibility) - sig**2)  # N Var(x) - s^2 = N Var(y_bar)
    chi, chi_se, chi_exact = map(np.asarray, (chi, chi_se, chi_exact))
    fg = fit_exponent(eps_g, chi, yerr=chi_se)
    fg_exact = fit_exponent(eps_g, chi_exact)
    rng_g = f"eps=1-1/s^2 in [{eps_g[0]:g}, {eps_g[-1]:g}] ({len(eps_g)} temps)"
    # model error: N Var(y_bar) = 1/eps exactly at N = inf; the quartic term of
    # N(eps m^2/2 + m^4/12) gives (1/eps)(1 - 1/(N eps^2)), a local-slope change 2/(N eps^2)
    tol_gamma = 2 / (n_sites * float(eps_g[0]) ** 2)
    rows.append(
        Row(
            f"gamma bath Gibbs MC, N={n_sites:.0e}",
            1.0,
            -float(fg.slope),
            se=float(fg.stderr),
            z_max=config.z_max,
            group=group,
            note=(
                f"minus the fit_exponent slope of N Var(y_bar) ({cfg.chains_gamma} chains x "
                f"{cfg.sweeps_gamma} sweeps, SE sqrt((m4-m2^2)/n)) vs {rng_g}; N Var(y_bar) "
                "= N Var(x) - s^2 = 1/eps exactly at N = inf (no correction to scaling); the "
                f"exact quadrature fit at this N gives {-float(fg_exact.slope):.5f}"
            ),
        )
    )
    rows.append(
        Row(
            "gamma exact bath quadrature vs mean field",
            1.0,
            -float(fg_exact.slope),
            tol=tol_gamma,
            tol_basis="model",
            group=group,
            note=(
                f"fit of N Var(x) - s^2 from bath.field at N={n_sites:.0e} vs {rng_g}; finite-N "
                "bias only; tol = 2/(N eps_min^2), the local-slope change of the leading "
                "finite-N correction (1/eps)(1 - 1/(N eps^2)) of the Curie-Weiss integral"
            ),
        )
    )
    info["gamma"] = {
        "eps": eps_g,
        "chi": chi,
        "se": chi_se,
        "exact": chi_exact,
        "slope": float(fg.slope),
        "stderr": float(fg.stderr),
        "slope_exact": float(fg_exact.slope),
    }

    def fit3(f):
        return (float(f.slope), float(f.stderr), float(f.intercept))

    panels = [
        {
            "title": f"β: ⟨|x|⟩ below σ_c (bath, N = {n_sites:.0e})",
            "xlabel": "ε = 1/σ² − 1",
            "ylabel": "⟨|x|⟩",
            "series": [
                {
                    "x": eps_b,
                    "y": mabs,
                    "yerr": mabs_se,
                    "label": "Gibbs MC ± 1 SE",
                    "fit": fit3(fb),
                },
                {"x": eps_b, "y": mabs_exact, "label": "exact quadrature", "style": "line"},
                {
                    "x": eps_b,
                    "y": np.sqrt(3 * eps_b),
                    "label": "√(3ε) (slope 1/2)",
                    "style": "line",
                },
            ],
        },
        {
            "title": f"γ: N Var(ȳ) above σ_c (bath, N = {n_sites:.0e})",
            "xlabel": "ε = 1 − 1/σ²",
            "ylabel": "N Var(ȳ)",
            "series": [
                {"x": eps_g, "y": chi, "yerr": chi_se, "label": "Gibbs MC ± 1 SE", "fit": fit3(fg)},
                {"x": eps_g, "y": chi_exact, "label": "exact quadrature", "style": "line"},
                {"x": eps_g, "y": 1 / eps_g, "label": "1/ε (slope −1)", "style": "line"},
            ],
        },
    ]
    fig = plotting.exponents_figure(
        panels, title="Exponents from the simulated generative bath (Gibbs sampling of N sites)"
    )
    info["sizes"] = dataclasses.asdict(cfg)
    return ExperimentResult(rows, {"exponents_bath.png": fig}, info)


EXPERIMENTS: list[Experiment] = [
    Experiment(
        "bath_exponents", "exponents from the simulated generative bath", bath_exponents_experiment
    ),
]
"""The bath experiment."""
