r"""Foundation experiments of the report: critical times by root finding, the two-point
reverse SDE, and a Gaussian in 2-D (Raya & Ambrogioni, arXiv:2305.19693; Ambrogioni, arXiv:2310.17467).

1. ``critical_times``: zeros of the slopes at $x=0$ of the score $s$ (criterion S), the
   reverse-SDE drift $g^2s-fx$ (D; for OU $1+2\partial_xs$) and the probability-flow drift
   $\tfrac12g^2s-fx$ (O; for OU $1+\partial_xs$) for two deltas $\pm\mu$
   ($\Lambda=\mu^2=1,4$) under OU, linear VP and EDM VE; slopes by ``jax.grad``, roots by
   ``optimistix.Bisection`` in float64, closed forms from `docs/theory/critical-times.md#closed-forms`.
2. ``two_point_sde``: exact-score reverse SDE (Euler–Maruyama, OU) for $\pm1$ with weights
   $w$: the fraction of samples with $x>0$ vs $w$, and the ensemble variance along the run vs
   the forward marginal $a_t^2{\rm Var}[y]+b_t^2$, plus the same from direct forward samples.
3. ``gaussian_2d``: the mean and covariance of the reverse-SDE samples for $\mathcal N(\mu,C)$
   in 2-D vs the exact marginal at the last grid time, $a^2C+b^2I$ ($\approx C$).

The reverse runs start from the **exact** forward marginal $p_T$ (a forward sample
$a_Ty+b_Tz$), so the only approximations measured are the time discretisation and the Monte
Carlo error. Everything runs in float64: the caller (the CLI) enables ``jax_enable_x64``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.scipy.special import ndtr

from .. import plotting
from ..data import AbstractData, Gaussian, TwoPoint
from ..processes import OU, VE, VP, AbstractProcess
from ..report import Experiment, ExperimentResult, ReportConfig, Row
from ..sampling import sample, time_grid
from ..scores import score
from ._common import ExactScore, Moments1D, Sizes, fmt_t, forward_sample, variance_and_se

__all__ = [
    "FoundationConfig",
    "CONFIG",
    "EXPERIMENTS",
    "CRITERIA",
    "find_critical_time",
    "linear_fields_at_origin",
    "critical_times_experiment",
    "two_point_sde_experiment",
    "gaussian_2d_experiment",
]


@dataclasses.dataclass(frozen=True)
class FoundationConfig(Sizes):
    """Sizes of the foundation experiments (plain Python values, saved in the JSON).

    :meth:`default` for the normal report, :meth:`quick` for ``--quick``.
    """

    n_traj: int = 10000
    """Trajectories per reverse-SDE run (and forward samples per direct check)."""
    n_steps: int = 2000
    r"""Euler–Maruyama steps on a log-SNR grid from ``T`` to ``t_min``.

    The Euler–Maruyama bias of the ensemble variance is about $h/2$ relative (the stationary
    variance of the discretised OU relaxation is $1/(1-h/2)$); with 2000 steps $h\approx0.004$,
    a bias of 0.2-0.3 %, below a quarter of the standard error at 10 000 trajectories. The
    sampler runs in well under a second at these sizes: compilation dominates the run time."""
    T: float = 5.0
    """OU start time of the reverse runs ($a_T^2=e^{-10}$)."""
    t_min: float = 1e-3
    """Last time of the reverse grid."""
    weights: tuple[float, ...] = (0.5, 0.8)
    """Weights $w$ of $+1$ in the two-point runs."""
    check_times: tuple[float, ...] = (0.3, 0.7, 1.5)
    """Times at which the marginal variance is checked."""
    n_show: int = 32
    """Trajectories recorded in full for the trajectory figure."""
    n_grid: int = 400
    """Grid size for sign-change detection of the critical-time fields."""
    bisection_tol: float = 1e-12
    """``optimistix.Bisection`` rtol = atol of the critical-time roots; a row's tolerance is
    10x the final bracket width ``atol + rtol |t_c|`` (the factor covers the round-off shift
    of the computed slope's zero)."""
    gaussian_mean: tuple[float, ...] = (0.5, -1.0)
    gaussian_cov: tuple[tuple[float, ...], ...] = ((1.0, 0.6), (0.6, 0.5))

    @classmethod
    def quick(cls) -> FoundationConfig:
        """Smaller ensembles and grids (same bias/SE ratio)."""
        return cls(n_traj=4000, n_steps=1000, n_grid=200)


# ----------------------------------------------------------------------------------------------
# experiment 1: critical times
# ----------------------------------------------------------------------------------------------


CONFIG = FoundationConfig
"""This module's size configuration (``CONFIG.default()``, ``CONFIG.quick()``)."""


CRITERIA = ("S", "D", "O")
_CRITERION_FIELD = {
    "S": "ds/dx(0,t)",
    "D": "d/dx SDE drift",
    "O": "d/dx ODE drift",
}


def linear_fields_at_origin(data: AbstractData, process: AbstractProcess, t) -> jax.Array:
    r"""Slopes at $x=0$ of the three fields of Raya & Ambrogioni, arXiv:2305.19693; Ambrogioni, arXiv:2310.17467 for one-dimensional data.

    Returns ``[ds/dx, d/dx(g^2 s - f x), d/dx(g^2 s/2 - f x)]`` at $(0, t)$, each by
    ``jax.grad`` through :func:`gltheory.score` (for OU: $s'$, $1+2s'$, $1+s'$).
    """
    if data.event_shape != (1,):
        raise ValueError(
            f"linear_fields_at_origin needs 1-D data, got event shape {data.event_shape}."
        )
    t = jnp.asarray(t)
    x0 = jnp.zeros((), dtype=jnp.result_type(t, float))
    s_fn = lambda x, tt: score(data, process, x, tt)

    def slope(field):
        return jax.grad(lambda u: field(jnp.reshape(u, (1,)))[0])(x0)

    return jnp.stack(
        [
            slope(lambda x: s_fn(x, t)),
            slope(lambda x: process.reverse_drift(x, t, s_fn)),
            slope(lambda x: process.pf_ode_drift(x, t, s_fn)),
        ]
    )


@eqx.filter_jit
def _fields_on_grid(data, process, ts):
    return jax.vmap(lambda t: linear_fields_at_origin(data, process, t))(ts)


@eqx.filter_jit
def _bisect(data, process, criterion, lower, upper, rtol, atol, flip):
    def fn(t, args):
        d, p, c = args
        return linear_fields_at_origin(d, p, t)[c]

    sol = optx.root_find(
        fn,
        optx.Bisection(rtol=rtol, atol=atol, flip=flip),
        0.5 * (lower + upper),
        args=(data, process, criterion),
        options={"lower": lower, "upper": upper},
        max_steps=512,
        throw=False,
    )
    return sol.value, sol.result == optx.RESULTS.successful, sol.stats["num_steps"]


def find_critical_time(
    data: AbstractData,
    process: AbstractProcess,
    criterion: str,
    *,
    t_lo: float,
    t_hi: float,
    n_grid: int = 400,
    tol: float = 1e-12,
) -> tuple[float | None, dict[str, Any]]:
    """Zero in $t$ of the criterion's slope at $x=0$ (``"S"``, ``"D"`` or ``"O"``), or ``None``.

    Scans a geometric grid on ``[t_lo, t_hi]`` for sign changes; if there is one, refines the
    first by ``optimistix.Bisection`` (rtol = atol = ``tol``) inside the bracketing cell.

    **Returns:** ``(t_c or None, details)`` with the number of sign changes, the bracket, the
    bisection's step count and success flag.
    """
    c = CRITERIA.index(criterion)
    dtype = jnp.result_type(float)
    ts = jnp.geomspace(t_lo, t_hi, n_grid, dtype=dtype)
    vals = np.asarray(_fields_on_grid(data, process, ts))[:, c]
    tsn = np.asarray(ts)
    sign = np.sign(vals)
    changes = np.nonzero(sign[:-1] * sign[1:] <= 0)[0]
    info: dict[str, Any] = {
        "criterion": criterion,
        "grid": [t_lo, t_hi, n_grid],
        "sign_changes": int(changes.size),
        "finite": bool(np.all(np.isfinite(vals))),
    }
    if changes.size == 0:
        return None, info
    i = int(changes[0])
    lo, hi = tsn[i], tsn[i + 1]
    # the sign at the bracket ends is known from the grid: a static `flip` saves tracing
    flip = bool(vals[i] > vals[i + 1])
    value, success, steps = _bisect(
        data,
        process,
        jnp.asarray(c),
        jnp.asarray(lo, dtype),
        jnp.asarray(hi, dtype),
        tol,
        tol,
        flip,
    )
    info.update(bracket=[float(lo), float(hi)], bisection_steps=int(steps), converged=bool(success))
    if not bool(success):
        return math.nan, info
    return float(value), info


def _critical_theory(
    process_name: str, process: AbstractProcess, lam: float
) -> dict[str, float | None]:
    """Closed forms of Raya & Ambrogioni, arXiv:2305.19693; Ambrogioni, arXiv:2310.17467 for the three criteria."""
    if process_name == "OU":
        return {
            "S": 0.5 * math.log1p(lam),
            "D": 0.5 * math.asinh(lam),
            "O": -0.5 * math.log1p(-lam) if lam < 1 else None,
        }
    if process_name.startswith("VP"):
        ab = {
            "S": 1 / (1 + lam),
            "D": math.sqrt(lam**2 + 1) - lam,
            "O": 1 - lam if lam < 1 else None,
        }
        return {k: (None if v is None else float(process.t_of_alpha_bar(v))) for k, v in ab.items()}
    # VE: no drift, all three coincide at sigma_c^2 = Lambda
    tc = float(process.t_of_sigma(math.sqrt(lam)))
    return {"S": tc, "D": tc, "O": tc}


_THEORY_TEXT = {
    ("OU", "S"): "1/2 ln(1+L)",
    ("OU", "D"): "1/2 arcsinh L",
    ("OU", "O"): "-1/2 ln(1-L), none for L>=1",
    ("VP", "S"): "t_of_alpha_bar(1/(1+L))",
    ("VP", "D"): "t_of_alpha_bar(sqrt(L^2+1)-L)",
    ("VP", "O"): "t_of_alpha_bar(1-L), none for L>=1",
    ("VE", "S"): "t_of_sigma(sqrt L)",
    ("VE", "D"): "t_of_sigma(sqrt L)",
    ("VE", "O"): "t_of_sigma(sqrt L)",
}


def critical_times_experiment(
    config: ReportConfig, key, sizes: FoundationConfig | None = None
) -> ExperimentResult:
    """The ``critical_times`` experiment: root finding vs the closed forms of
    `docs/theory/critical-times.md#closed-forms`.

    **Arguments:**

    - `config`: the report settings (seed, ``quick``, ``z_max``).
    - `key`: the experiment's PRNG key.
    - `sizes`: the sizes; by default ``FoundationConfig.of(config)``.

    **Returns:** the rows, figures and details.
    """
    cfg = FoundationConfig.of(config) if sizes is None else sizes
    del key
    processes = [
        # (label, process, detection range); OU stops at t=5: beyond it the ODE slope for
        # Lambda=1, (1-b^2)^2/b^4 = a^4/b^4 < 1e-8, drowns in round-off and can change sign.
        ("OU", OU(), (1e-3, 5.0)),
        ("VP-linear", VP("linear"), (1e-3, 1.0)),
        ("VE-edm", VE("edm"), (2e-3, 80.0)),
    ]
    rows: list[Row] = []
    info: dict[str, Any] = {}
    panels = []
    for lam, mu in ((1.0, 1.0), (4.0, 2.0)):
        data = TwoPoint(mu)
        for pname, process, (t_lo, t_hi) in processes:
            theory = _critical_theory(pname, process, lam)
            for crit in CRITERIA:
                measured, details = find_critical_time(
                    data,
                    process,
                    crit,
                    t_lo=t_lo,
                    t_hi=t_hi,
                    n_grid=cfg.n_grid,
                    tol=cfg.bisection_tol,
                )
                t_ref = theory[crit] if theory[crit] is not None else t_hi
                tol = 10 * (cfg.bisection_tol + cfg.bisection_tol * abs(t_ref))
                tol_note = (
                    f"; tol = 10 x the bisection bracket atol + rtol |t_c| "
                    f"(atol = rtol = {cfg.bisection_tol:g})"
                )
                field = _CRITERION_FIELD[crit]
                closed_form = _THEORY_TEXT[(pname.split("-")[0], crit)]
                if measured is None:
                    note = (
                        f"no sign change of {field} on {cfg.n_grid} points, "
                        f"t in [{t_lo:g}, {t_hi:g}]; theory {closed_form}"
                    )
                else:
                    steps = details.get("bisection_steps")
                    note = (
                        f"root of {field} (jax.grad of score; optimistix bisection, {steps} "
                        f"steps); theory {closed_form}"
                    )
                note += tol_note
                name = f"t_c^{crit} {pname} L={lam:g}"
                rows.append(
                    Row(
                        name,
                        theory[crit],
                        measured,
                        tol=tol,
                        tol_basis="solver",
                        group="critical_times",
                        note=note,
                    )
                )
                info[name] = details | {"theory": theory[crit], "measured": measured}
            if (pname, lam) in (("OU", 1.0), ("OU", 4.0), ("VP-linear", 1.0), ("VE-edm", 4.0)):
                t_plot = {"OU": (0.02, 2.0), "VP-linear": (0.02, 0.8), "VE-edm": (0.1, 4.0)}[pname]
                ts = jnp.linspace(*t_plot, cfg.n_grid)
                vals = np.asarray(_fields_on_grid(data, process, ts))
                if pname == "OU":
                    labels = (
                        "ds/dx (S)",
                        "1 + 2 ds/dx: SDE drift slope (D)",
                        "1 + ds/dx: ODE drift slope (O)",
                    )
                else:
                    # divide the drift slopes by g^2 and g^2/2 (same zeros, readable scale)
                    g2 = np.asarray(process.g2(ts))
                    vals = vals / np.stack([np.ones_like(g2), g2, 0.5 * g2], axis=1)
                    labels = (
                        "ds/dx (S)",
                        "SDE drift slope / g² (D)",
                        "ODE drift slope / (g²/2) (O)",
                    )
                measured_by_crit = {r.name.split()[0][-1]: r.measured for r in rows[-3:]}
                panels.append(
                    {
                        "title": f"{pname}, two deltas ±{mu:g} (Λ = {lam:g})"
                        + (": no drift, S = D = O" if pname.startswith("VE") else ""),
                        "t": np.asarray(ts),
                        "curves": dict(zip(labels, vals.T)),
                        "roots": {
                            f"t_c^{c}": (theory[c], measured_by_crit[c])
                            for c in CRITERIA
                            if theory[c] is not None or measured_by_crit[c] is not None
                        },
                    }
                )
    fig = plotting.critical_times_figure(panels)
    info["sizes"] = dataclasses.asdict(cfg)
    return ExperimentResult(rows, {"critical_times.png": fig}, info)


# ----------------------------------------------------------------------------------------------
# experiment 2: two-point reverse SDE (class fractions, marginal variance)
# ----------------------------------------------------------------------------------------------


def two_point_sde_experiment(
    config: ReportConfig, key, sizes: FoundationConfig | None = None
) -> ExperimentResult:
    """The ``two_point_sde`` experiment: class fractions and marginal variances.

    **Arguments:**

    - `config`: the report settings (seed, ``quick``, ``z_max``).
    - `key`: the experiment's PRNG key.
    - `sizes`: the sizes; by default ``FoundationConfig.of(config)``.

    **Returns:** the rows, figures and details.
    """
    cfg = FoundationConfig.of(config) if sizes is None else sizes
    process = OU(cfg.T)
    ts = time_grid(process, cfg.n_steps, kind="log_snr", t_min=cfg.t_min)
    observe = Moments1D(cfg.n_show)
    rows: list[Row] = []
    info: dict[str, Any] = {
        "process": "OU",
        "T": cfg.T,
        "grid": f"log-SNR, {cfg.n_steps} steps, t from {cfg.T:g} to {cfg.t_min:g}",
        "method": "euler_maruyama",
        "start": "exact p_T (forward sample a_T y + b_T z)",
    }
    curves = {"var": [], "se": [], "theory": [], "frac": [], "frac_theory": []}
    checks = {"t": [], "var": [], "se": []}
    fr_w, fr_m, fr_se = [], [], []
    saved_ts = None
    head = None
    for i, w in enumerate(cfg.weights):
        data = TwoPoint(1.0, weight=w)
        var_y = float(data.covariance()[0, 0])
        k_start, k_noise, k_fwd = jax.random.split(jax.random.fold_in(key, i), 3)
        x_start = forward_sample(data, process, k_start, cfg.n_traj, ts[0])
        sol = sample(ExactScore(data, process), process, k_noise, x_start, ts=ts, observe=observe)
        xf = np.asarray(sol.x[:, 0])
        n = xf.shape[0]
        frac = float(np.mean(xf > 0))
        se = math.sqrt(w * (1 - w) / n)
        rows.append(
            Row(
                f"P(x>0) reverse SDE, w={w:g}",
                w,
                frac,
                se=se,
                z_max=config.z_max,
                group="two_point_sde",
                note=f"fraction of {n} samples at t={cfg.t_min:g} with x>0; SE sqrt(w(1-w)/n)",
            )
        )
        fr_w.append(w)
        fr_m.append(frac)
        fr_se.append(se)

        obs = jax.tree.map(np.asarray, sol.observables)
        saved_ts = np.asarray(sol.saved_ts)
        a2 = np.asarray(process.a(saved_ts)) ** 2
        b2 = np.asarray(process.b2(saved_ts))
        var_theory = a2 * var_y + b2
        var_se = np.sqrt(np.maximum(obs["m4"] - obs["m2"] ** 2, 0.0) / n)
        curves["var"].append(obs["var"])
        curves["se"].append(var_se)
        curves["theory"].append(var_theory)
        curves["frac"].append(obs["frac_pos"])
        snr_sqrt = np.sqrt(a2 / b2)
        curves["frac_theory"].append(
            w * np.asarray(ndtr(snr_sqrt)) + (1 - w) * np.asarray(ndtr(-snr_sqrt))
        )
        if i == 0:
            head = obs["head"]

        ct, cv, cs = [], [], []
        for j, t in enumerate(cfg.check_times):
            k = int(np.argmin(np.abs(saved_ts - t)))
            tk = float(saved_ts[k])
            rows.append(
                Row(
                    f"Var[x_t] reverse SDE, w={w:g}, t={fmt_t(t)}",
                    float(var_theory[k]),
                    float(obs["var"][k]),
                    se=float(var_se[k]),
                    z_max=config.z_max,
                    group="two_point_sde",
                    note=(
                        f"ensemble variance (observe) at grid t={tk:.5f}; theory "
                        f"a_t^2 Var[y] + b_t^2, Var[y]={var_y:g}; SE sqrt((m4-m2^2)/n)"
                    ),
                )
            )
            xt = np.asarray(forward_sample(data, process, jax.random.fold_in(k_fwd, j), n, t)[:, 0])
            v, s = variance_and_se(xt)
            theory_t = float(process.a(t) ** 2 * var_y + process.b2(t))
            rows.append(
                Row(
                    f"Var[x_t] forward samples, w={w:g}, t={fmt_t(t)}",
                    theory_t,
                    v,
                    se=s,
                    z_max=config.z_max,
                    group="two_point_sde",
                    note=f"{n} direct samples a_t y + b_t z; SE sqrt((m4-m2^2)/n)",
                )
            )
            ct.append(t)
            cv.append(v)
            cs.append(s)
        checks["t"].append(ct)
        checks["var"].append(cv)
        checks["se"].append(cs)

    t_s = 0.5 * math.log(2.0)
    t_d = 0.5 * math.asinh(1.0)
    figures = {
        "class_fractions.png": plotting.class_fractions_figure(
            fr_w,
            fr_m,
            fr_se,
            t=saved_ts,
            frac_t=np.stack(curves["frac"]),
            frac_t_theory=np.stack(curves["frac_theory"]),
            t_marks={"t_c^S": t_s, "t_c^D": t_d},
        ),
        "marginal_variance.png": plotting.marginal_variance_figure(
            saved_ts,
            np.stack(curves["var"]),
            np.stack(curves["se"]),
            np.stack(curves["theory"]),
            labels=[f"w={w:g}" for w in cfg.weights],
            check_t=checks["t"],
            check_var=checks["var"],
            check_se=checks["se"],
        ),
        "trajectories.png": plotting.trajectories_figure(
            saved_ts,
            head,
            t_marks={"t_c^S (OU, Λ=1)": t_s, "t_c^D (OU, Λ=1)": t_d},
            centres=np.asarray(process.a(saved_ts)),
            t_max=2.0,
        ),
    }
    info["sizes"] = dataclasses.asdict(cfg)
    return ExperimentResult(rows, figures, info)


# ----------------------------------------------------------------------------------------------
# experiment 3: Gaussian data in 2-D
# ----------------------------------------------------------------------------------------------


def gaussian_2d_experiment(
    config: ReportConfig, key, sizes: FoundationConfig | None = None
) -> ExperimentResult:
    """The ``gaussian_2d`` experiment: mean and covariance of reverse-SDE samples.

    **Arguments:**

    - `config`: the report settings (seed, ``quick``, ``z_max``).
    - `key`: the experiment's PRNG key.
    - `sizes`: the sizes; by default ``FoundationConfig.of(config)``.

    **Returns:** the rows, figures and details.
    """
    cfg = FoundationConfig.of(config) if sizes is None else sizes
    process = OU(cfg.T)
    ts = time_grid(process, cfg.n_steps, kind="log_snr", t_min=cfg.t_min)
    mu = np.asarray(cfg.gaussian_mean, dtype=np.float64)
    cov = np.asarray(cfg.gaussian_cov, dtype=np.float64)
    data = Gaussian(mu, cov)
    k_start, k_noise = jax.random.split(key)
    x_start = forward_sample(data, process, k_start, cfg.n_traj, ts[0])
    sol = sample(ExactScore(data, process), process, k_noise, x_start, ts=ts)
    x = np.asarray(sol.x)
    n = x.shape[0]
    t_end = float(ts[-1])
    a = float(process.a(t_end))
    b2 = float(process.b2(t_end))
    mean_th = a * mu
    cov_th = a**2 * cov + b2 * np.eye(2)
    rows: list[Row] = []
    m = x.mean(0)
    dev = x - m
    for i in range(2):
        rows.append(
            Row(
                f"Gaussian 2D mean[{i}]",
                mean_th[i],
                m[i],
                se=math.sqrt(np.var(x[:, i], ddof=1) / n),
                z_max=config.z_max,
                group="gaussian_2d",
                note=f"reverse SDE, {n} samples at t={t_end:g}; theory a_t mu",
            )
        )
    for i, j in ((0, 0), (0, 1), (1, 1)):
        prod = dev[:, i] * dev[:, j]
        c_ij = float(prod.sum() / (n - 1))
        se = math.sqrt(np.var(prod) / n)
        rows.append(
            Row(
                f"Gaussian 2D Cov[{i},{j}]",
                cov_th[i, j],
                c_ij,
                se=se,
                z_max=config.z_max,
                group="gaussian_2d",
                note=(
                    f"C[{i},{j}]={cov[i, j]:g}; theory a^2 C + b^2 I at t={t_end:g} "
                    "(differs from C by < 1e-2 C); SE sqrt(Var[(x_i-m_i)(x_j-m_j)]/n)"
                ),
            )
        )
    fig = plotting.gaussian_covariance_figure(x, cov_th, mean_th)
    info = {
        "mean": mu,
        "cov": cov,
        "t_end": t_end,
        "cov_theory": cov_th,
        "cov_measured": np.cov(x.T),
    }
    info["sizes"] = dataclasses.asdict(cfg)
    return ExperimentResult(rows, {"gaussian_2d.png": fig}, info)


EXPERIMENTS: list[Experiment] = [
    Experiment(
        "critical_times",
        "critical times (root finding vs closed forms)",
        critical_times_experiment,
    ),
    Experiment(
        "two_point_sde",
        "two-point reverse SDE (class fractions, marginals)",
        two_point_sde_experiment,
    ),
    Experiment("gaussian_2d", "Gaussian 2D reverse SDE (mean, covariance)", gaussian_2d_experiment),
]
"""The foundation experiments, in report order."""
