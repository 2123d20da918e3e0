r"""Report experiments for the Ginzburg–Landau field theory of the patch model (Ambrogioni, arXiv:2603.20092).

``field_gl``: rows

1. linear-response correlation length (`docs/theory/field.md#correlation-length`): $\xi$ of the JVP point response
   of the exact two-image patch score (:func:`gltheory.linear_response_length`) at
   $\bar\alpha=\bar\alpha_c/2$, k=5, against $\sqrt{k(k-1)/24}=0.9129$, and its log-log slope
   against $\bar\alpha_c-\bar\alpha$ (theory $-\tfrac12$);
2. critical times of the S and D criteria (k=5, 1-D, OU) from
   :func:`gltheory.field.patch_critical_point` against $\tfrac12\ln(1+k)$ and
   $\tfrac12\,\mathrm{arcsinh}\,k$, and the plane-wave JVP of the exact score at $q=0$,
   $t_c^S$ (theory 0);
3. domain length vs window (`docs/theory/field.md#pattern-formation`): final sign domains of exact reverse-SDE samples for
   k = 3, 5, 7, 9 on a 1-D ring; the log-log exponent of $\ell(k)$ (theory 1, fit SE) and the
   intercept of the linear fit $\ell=A+Bk$ (theory 0 for $\ell\propto k$, fit SE); the slope
   $B=\ell/k$ is in the row's note;
4. GL vs exact (`docs/theory/field.md#gl-vs-exact`): the GL (model-A) reverse SDE and the exact patch-score reverse SDE
   with the same keys (:func:`gltheory.field.compare_gl_exact`); the ratio of final domain
   lengths (window-smoothed signs at $t_{\rm end}$; theory 1, paired standard error over the
   samples) and the relative $L^2$ difference of the streamed $S(q,t)$ of the states in the
   linear regime (theory 0; tolerance: the linear-theory bound
   $2\max_q|\sum_i h_ig_i^2\,\Delta\mu(q,t_i)|$ from the GL and exact plane-wave stiffnesses).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from .. import field as F
from ..processes import OU
from ..report import Experiment, ExperimentResult, ReportConfig, Row
from ..sampling import time_grid
from ..scores import uniform_patch_score
from ..spectral import linear_response_length, mode_stiffness
from ._common import Sizes

__all__ = ["FieldConfig", "CONFIG", "EXPERIMENTS", "field_gl_experiment"]


@dataclasses.dataclass(frozen=True)
class FieldConfig(Sizes):
    """Sizes of the ``field_gl`` experiment (:meth:`default`, :meth:`quick` for ``--quick``)."""

    n_domain: int = 32
    """Reverse-SDE samples per window of the domain-length rows."""
    n_compare: int = 32
    """Trajectories of the GL vs exact comparison."""

    @classmethod
    def quick(cls) -> FieldConfig:
        """Half the samples."""
        return cls(n_domain=16, n_compare=16)


CONFIG = FieldConfig
"""This module's size configuration (``CONFIG.default()``, ``CONFIG.quick()``)."""


def _figure(cmp, scaling, snapshot_exact, snapshot_gl, t_end):

    fig = Figure(figsize=(13, 3.8))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    ts = np.asarray(cmp.saved_ts)
    ax1.plot(ts, np.asarray(cmp.xi_exact), "o-", label="exact patch score")
    ax1.plot(ts, np.asarray(cmp.xi_gl), "s--", label="GL (model A)")
    ax1.plot(ts, np.asarray(cmp.xi_theory), "k:", label=r"linear response $\xi_{\rm SDE}$")
    ax1.axvline(cmp.t_c.t_sde, color="r", lw=0.8, label=r"$t_c^D$")
    ax1.invert_xaxis()
    ax1.set_xlabel("forward time t (generation runs right)")
    ax1.set_ylabel(r"$\xi$ of the states (Lorentzian fit)")
    ax1.set_title("correlation length along the reverse SDE")
    ax1.legend(fontsize=7)
    k = np.asarray(scaling.windows)
    ax2.errorbar(k, np.asarray(scaling.length), np.asarray(scaling.length_se), fmt="o")
    kk = np.linspace(0, k.max() + 1, 50)
    ax2.plot(kk, float(scaling.intercept) + float(scaling.slope) * kk, "k--", lw=0.8)
    ax2.set_xlabel("window k")
    ax2.set_ylabel(r"final domain length $\ell$")
    ax2.set_title(
        rf"$\ell\approx{float(scaling.slope):.2f}\,k$, exponent "
        rf"{float(scaling.exponent):.2f}$\pm${float(scaling.exponent_se):.2f}"
    )
    n = snapshot_exact.shape[0]
    gap = np.zeros((1, snapshot_exact.shape[1]))
    img = np.concatenate([np.sign(snapshot_exact), gap, np.sign(snapshot_gl)])
    ax3.imshow(img, aspect="auto", cmap="coolwarm", interpolation="nearest")
    ax3.set_yticks([n / 2, 1.5 * n + 1], ["exact", "GL"])
    ax3.set_title(f"sign(Kx) at t = {t_end:.2f}, same noise")
    fig.tight_layout()
    return fig


def field_gl_experiment(
    config: ReportConfig, key, sizes: FieldConfig | None = None
) -> ExperimentResult:
    """The ``field_gl`` experiment: ξ, critical times, domain length vs k, GL vs exact.

    **Arguments:**

    - `config`: the report settings (seed, ``quick``, ``z_max``).
    - `key`: the experiment's PRNG key.
    - `sizes`: the sizes; by default ``FieldConfig.of(config)``.

    **Returns:** the rows, figures and details.
    """
    cfg = FieldConfig.of(config) if sizes is None else sizes
    group = "field_gl"
    proc = OU()
    rows: list[Row] = []
    k, D = 5, 1
    cp = F.patch_critical_point(proc, window=k, lattice_ndim=D)
    score = lambda x, t: uniform_patch_score(proc, x, t, window=k, lattice_ndim=D)
    x0 = jnp.zeros(32)

    eps64 = float(np.finfo(np.float64).eps)
    # patch_critical_point's bisection: rtol = 1e-14, atol = 1e-14 T (gltheory.field)
    root_tol = lambda t: 10 * 1e-14 * (float(proc.T) + t)
    root_note = "; tol = 10 x patch_critical_point's bisection bracket 1e-14 (T + t_c)"

    # 1. linear-response xi (JVP of the exact score) vs closed form
    abc = 1.0 / (1 + k)
    xi_jvp = float(linear_response_length(score, x0, proc.t_of_alpha_bar(abc / 2)))
    rows.append(
        Row(
            f"xi linear response at alpha_bar_c/2, two images, k={k}, 1-D",
            math.sqrt(k * (k - 1) / 24),
            xi_jvp,
            tol=1000 * eps64 * math.sqrt(k * (k - 1) / 24),
            tol_basis="round-off",
            group=group,
            note=(
                "second moment of the exact score's JVP point response vs sqrt(k(k-1)/24); "
                "tol = 1000 x float64 eps x theory (exact: round-off only)"
            ),
        )
    )
    xi_of = jax.vmap(lambda t: linear_response_length(score, x0, t))

    def xi_slope(eps):
        xis = xi_of(proc.t_of_alpha_bar(jnp.asarray(abc - eps)))
        return float(np.polyfit(np.log(eps), np.log(np.asarray(xis)), 1)[0])

    slope = xi_slope(np.logspace(-6, -3, 7) * abc)
    # the same fit on the range / 10: the finite-range bias c eps_max^p changes by
    # bias (1 - 10^-p), so twice the change bounds it for any p >= 0.3 (Richardson)
    slope10 = xi_slope(np.logspace(-7, -4, 7) * abc)
    rows.append(
        Row(
            "xi divergence exponent vs alpha_bar_c - alpha_bar (JVP), k=5",
            -0.5,
            slope,
            tol=2 * abs(slope - slope10),
            tol_basis="discretisation",
            group=group,
            note=(
                "log-log slope over (alpha_bar_c - alpha_bar)/alpha_bar_c in [1e-6, 1e-3]; on "
                f"[1e-7, 1e-4] it is {slope10:.6f}; tol = 2 x that change (Richardson bound of "
                "the finite-range bias for any correction exponent p >= 0.3)"
            ),
        )
    )

    # 2. critical times and the JVP at t_c
    rows.append(
        Row(
            "t_c score (S), two images, k=5, 1-D, OU",
            0.5 * math.log(1 + k),
            cp.t_score,
            tol=root_tol(cp.t_score),
            tol_basis="solver",
            group=group,
            note="patch_critical_point (optimistix bisection) vs 1/2 ln(1+k)" + root_note,
        )
    )
    rows.append(
        Row(
            "t_c reverse SDE (D), two images, k=5, 1-D, OU",
            0.5 * math.asinh(k),
            cp.t_sde,
            tol=root_tol(cp.t_sde),
            tol_basis="solver",
            group=group,
            note="patch_critical_point vs 1/2 arcsinh(k)" + root_note,
        )
    )
    q0 = jnp.zeros((1, 1))
    mu0 = float(mode_stiffness(score, x0, cp.t_score, q0)[0])
    # propagate the root's tolerance through d mu / dt (central difference); round-off of the
    # JVP is eps times the score's scale 1/b^2
    dt_ = 1e-6
    dmu = (
        float(mode_stiffness(score, x0, cp.t_score + dt_, q0)[0])
        - float(mode_stiffness(score, x0, cp.t_score - dt_, q0)[0])
    ) / (2 * dt_)
    tol_mu = abs(dmu) * root_tol(cp.t_score) + 1000 * eps64 / float(proc.b2(cp.t_score))
    rows.append(
        Row(
            "mu(q=0, t_c^S) of the exact score (plane-wave JVP)",
            0.0,
            mu0,
            tol=tol_mu,
            tol_basis="solver",
            group=group,
            note=(
                "softening of the q=0 mode exactly at t_c^S; tol = |d mu/dt| "
                f"({abs(dmu):.3g}, central difference) x the root's tolerance 10 x 1e-14 "
                "(T + t_c) + 1000 eps / b^2 (round-off)"
            ),
        )
    )

    # 3. domain length vs window
    n_dom = cfg.n_domain
    n_steps = 150
    ts = time_grid(proc, n_steps, t_min=1e-3, t_max=3.5)
    sc = F.domain_length_scaling(
        proc,
        jax.random.fold_in(key, 1),
        windows=[3, 5, 7, 9],
        lattice_shape=(256,),
        n=n_dom,
        ts=ts,
    )
    note = (
        f"final sign domains of exact reverse-SDE samples (EM, {n_steps} steps, L=256, n={n_dom} "
        "per k); "
        f"lengths {np.round(np.asarray(sc.length), 2).tolist()}; linear fit slope "
        f"l/k = {float(sc.slope):.3f} +- {float(sc.slope_se):.3f}"
    )
    rows.append(
        Row(
            "domain length exponent d ln l / d ln k (KZ-style l ~ k)",
            1.0,
            float(sc.exponent),
            se=float(sc.exponent_se),
            z_max=config.z_max,
            group=group,
            note=note,
        )
    )
    rows.append(
        Row(
            f"domain length intercept A of l = A + B k (B = {float(sc.slope):.2f})",
            0.0,
            float(sc.intercept),
            se=float(sc.intercept_se),
            z_max=config.z_max,
            group=group,
            note=note,
        )
    )

    # 4. GL vs exact
    n_cmp = cfg.n_compare
    t_end = 0.6
    ts_c = time_grid(proc, 120, t_min=t_end, t_max=3.0)
    save = [0, 10, 30, 50, 70, 90, 110, 120]
    cmp = F.compare_gl_exact(
        proc,
        jax.random.fold_in(key, 2),
        lattice_shape=(128,),
        window=k,
        n=n_cmp,
        ts=ts_c,
        save_at=save,
    )
    le, lg = float(cmp.domains_exact.domain_length), float(cmp.domains_gl.domain_length)
    # ratio of domain lengths = rho_exact / rho_gl (wall densities); paired delta-method SE
    # over the samples (same keys and noise in both runs)
    rho_e = np.asarray(cmp.domains_exact.per_sample, dtype=np.float64)
    rho_g = np.asarray(cmp.domains_gl.per_sample, dtype=np.float64)
    ratio = float(rho_e.mean() / rho_g.mean())
    rel = rho_e / rho_e.mean() - rho_g / rho_g.mean()
    ratio_se = ratio * float(np.std(rel, ddof=1) / math.sqrt(rel.size))
    rows.append(
        Row(
            f"GL/exact final domain length ratio, k={k}, 1-D, t_end={t_end}",
            1.0,
            ratio,
            se=ratio_se,
            z_max=config.z_max,
            group=group,
            note=(
                f"same keys and noise; exact {le:.2f}, GL {lg:.2f}; sign agreement "
                f"{float(cmp.sign_agreement):.3f}; SE: paired delta method over the {rel.size} "
                "samples' wall densities"
            ),
        )
    )
    xe, xg = float(cmp.xi_exact[1]), float(cmp.xi_gl[1])
    s_e, s_g = np.asarray(cmp.S_exact[1]), np.asarray(cmp.S_gl[1])
    # model error of "S_GL = S_exact" in the linear regime: with the same noise, the two EM
    # runs differ through the stiffnesses mu(q,t) of their Jacobians at x = 0, so
    # S_GL(q)/S_exact(q) - 1 ~ 2 sum_i h_i g_i^2 (mu_GL - mu_exact)(q, t_i) over the steps run
    # (exact: patch_mode_spectrum, (SNR K(q) - 1)/b^2; GL: -r - kappa (2 - 2 cos q))
    n_lin = save[1]
    qs = 2 * jnp.pi * jnp.arange(64 + 1)[:, None] / 128.0
    t_lin = jnp.asarray(ts_c[:n_lin])[:, None]
    gl_c = F.gl_coefficients(F.gl_constants_two_image(k, D), proc, t_lin)
    mu_gl = -gl_c.r - gl_c.kappa * (2 - 2 * jnp.cos(qs[:, 0]))
    mu_ex = F.patch_mode_spectrum(proc, t_lin, qs, window=k)
    h_lin = jnp.asarray(ts_c[:n_lin] - ts_c[1 : n_lin + 1])[:, None]
    acc = jnp.sum(h_lin * proc.g2(t_lin) * (mu_gl - mu_ex), axis=0)
    tol_s = float(2 * jnp.max(jnp.abs(acc)))
    rows.append(
        Row(
            f"GL vs exact S(q,t) relative L2 difference at t={float(cmp.saved_ts[1]):.2f}",
            0.0,
            float(np.linalg.norm(s_g - s_e) / np.linalg.norm(s_e)),
            tol=tol_s,
            tol_basis="model",
            group=group,
            note=(
                "streamed structure factors of the states, same noise, linear regime "
                f"({n_lin} steps after the start); Lorentzian-fit xi: exact {xe:.3f}, GL "
                f"{xg:.3f}; tol = 2 max_q |sum_i h_i g^2 (mu_GL - mu_exact)(q, t_i)| over those "
                "steps (plane-wave stiffnesses at x=0: the linear-regime model error of GL)"
            ),
        )
    )
    box = lambda x: sum(jnp.roll(x, s, -1) for s in range(-(k // 2), k // 2 + 1))
    fig = _figure(cmp, sc, np.asarray(box(cmp.x_exact)[:8]), np.asarray(box(cmp.x_gl)[:8]), t_end)
    info = {
        "xi_t": np.asarray(cmp.saved_ts),
        "xi_exact": np.asarray(cmp.xi_exact),
        "xi_gl": np.asarray(cmp.xi_gl),
        "xi_theory": np.asarray(cmp.xi_theory),
        "windows": np.asarray(sc.windows),
        "domain_length": np.asarray(sc.length),
        "domain_length_se": np.asarray(sc.length_se),
        "slope": float(sc.slope),
        "slope_se": float(sc.slope_se),
    }
    info["sizes"] = dataclasses.asdict(cfg)
    return ExperimentResult(rows, {"field_gl.png": fig}, info)


EXPERIMENTS: list[Experiment] = [
    Experiment(
        "field_gl",
        "GL field theory: xi, critical times, domain length vs k, GL vs exact dynamics",
        field_gl_experiment,
    ),
]
