"""Error against score evaluations for standard and critical-window time grids.

    python benchmarks/bench_schedules.py [--quick] [--full] [--out PATH]

Issue 19, item 4. Grids: ``uniform``, ``log_snr``, ``edm`` (rho = 7), ``critical``
(``time_grid(kind="critical")``, log-SNR base, default weight 0.6, window located from the
problem), plus references that are not methods. Solvers: Euler–Maruyama (``EM``, one score
evaluation per step) and Heun on the probability-flow ODE (``heun``, ``gl.solvers.Heun``, two
evaluations per step). OU process, T = 10, float64. Three problems with a known answer:

1. **Two deltas** +-mu, weights (0.8, 0.2) (with w = 1/2 the class-fraction bias vanishes by
   symmetry), mu in {4, 10, 1}, t_min = 0.01. Figures of merit: the class-fraction bias
   P(x_{t_min} > 0) - its exact value, and the 1-D Wasserstein distance W1 to p_{t_min} (not to
   the data: stopping at t_min > 0 has its own floor). Both are **exact** (no Monte Carlo):
   EM by propagating the chain's density on cells (``schedules.quadrature_distribution``;
   W1 = int |F_chain - F_target| dx on the cell edges); Heun is a deterministic monotone map
   of the initial state, so its final quantile function is the map applied to the initial
   one: 2^16 equal-probability nodes u_i = (i + 1/2)/N pushed through the solver, class
   fraction = the fraction above 0, W1 = mean_i |Q_chain(u_i) - Q_target(u_i)| (Q_target by
   bisection on the mixture's distribution function). References: ``sqrt_e`` (step density
   proportional to sqrt|e(t)|, EM only, needs the exact problem) and ``tuned`` (the bump tuned
   with optax against the exact EM bias at one step count). A Monte Carlo cross-check of the
   EM quadrature (n = 10^5) and the **online** variant (``schedules.online_sample``, mu = 4,
   fixed budgets, n = 10^5 trajectories, binomial SE; one score JVP per step, counted as one
   evaluation) are in the same table.
2. **Gaussian mixture in d = 64**: means +-m e_1 (m = 4), within-cluster variance 0.25 in every
   direction, weights (0.8, 0.2), t_min = 0.01; window from ``schedules.window_from_data``.
   Class-fraction bias (class = sign of x_1; exact value w Phi(a m/s) + (1-w) Phi(-a m/s),
   s^2 = a^2 0.25 + b^2) and, separately, the within-class variance error: mean over the 63
   orthogonal directions of x_j^2 relative to its exact value a^2 0.25 + b^2, minus 1 (made at
   small t, where a window bump removes steps). Monte Carlo, binomial / sample SEs; common
   random numbers across grids (the same initial states for every grid and solver; EM's step
   noise is the same key's).
3. **2-D two-image patch model** (``gl.scores.uniform_patch_score``, 64x64, k = 5),
   t_min = 0.01; window from the black-box detector route (``schedules.window_from_score``:
   where the correlation length of the denoised field grows fastest). Final domain length
   (``gl.field.domain_statistics``) and radially averaged S(q) against a 4096-step log-SNR
   reference of the same solver, started from the same initial states (Heun: paired, EM:
   independent noise). Reduced ensemble by default (see CONFIGS); ``--full`` runs the larger
   ensemble.

For every (problem, metric, solver, grid): the error at each step count, and the score
evaluations needed to reach the stated target (TARGETS; log-log interpolation between the
bracketing step counts; for Monte Carlo metrics also with the error curve moved by -1 and +1
SE, which brackets the value), and the ratio best standard / critical.

Results and environment go to ``benchmarks/results/bench_schedules.json``, the figure to
``bench_schedules.png`` next to it.
"""

from __future__ import annotations

import time

import _harness as H
import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial
from scipy.special import ndtr, ndtri

import gltheory as gl
from gltheory import schedules as S

jax.config.update("jax_enable_x64", True)

NAME = "bench_schedules"
W = 0.8
T_MIN = 1e-2
STANDARD = ("uniform", "log_snr", "edm")
GRIDS = STANDARD + ("critical",)
SOLVERS = {"EM": (gl.solvers.EulerMaruyama(), 1), "heun": (gl.solvers.Heun(), 2)}
TARGETS = {
    "class_bias": 0.005,
    "w1": 0.05,
    "gm_class_bias": 0.01,
    "gm_var_error": 0.1,
    "patch_domain_error": 0.05,
    "patch_sq_error": 0.15,
}
"""Targets of |error| (class biases: absolute; W1: absolute, in units of x; the relative
errors of the mixture's within-class variance, the patch model's domain length and its S(q)
(relative L2 distance of the radial profile))."""
CONFIGS = {
    "full": dict(
        mus=[4.0, 10.0, 1.0],
        steps=[4, 8, 16, 32, 64, 128],
        n_cells=512,
        n_quantiles=2**16,
        n_mc=100_000,
        mc_steps=32,
        tune_steps=20,
        tune_n=32,
        online_budgets=[8, 16, 32, 64],
        online_n=100_000,
        gm=dict(d=64, m=4.0, var=0.25, n=20_000, steps=[4, 8, 16, 32, 64, 128]),
        patch=dict(L=64, k=5, n=16, steps=[4, 8, 16, 32, 64, 128], ref_steps=4096, n_window=16),
    ),
    "quick": dict(
        mus=[4.0],
        steps=[8, 16, 32, 64],
        n_cells=256,
        n_quantiles=2**14,
        n_mc=20_000,
        mc_steps=16,
        tune_steps=5,
        tune_n=16,
        online_budgets=[8, 16, 32],
        online_n=20_000,
        gm=dict(d=64, m=4.0, var=0.25, n=4_000, steps=[8, 16, 32]),
        patch=dict(L=32, k=5, n=4, steps=[8, 16, 32], ref_steps=512, n_window=8),
    ),
}
FULL_PATCH = dict(L=64, k=5, n=128, steps=[4, 8, 16, 32, 64, 128, 256], ref_steps=4096, n_window=64)
"""``--full``: the patch model with a 128-member ensemble (about 8x the reduced run's cost)."""


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def evals_to_target(evals, err, target):
    """Smallest evaluation count with |err| < target, log-log interpolated between the
    bracketing points; inf if never reached."""
    b = np.abs(np.asarray(err, np.float64))
    for i, (n, v) in enumerate(zip(evals, b)):
        if v < target:
            if i == 0:
                return float(n)
            n0, v0 = evals[i - 1], b[i - 1]
            if v <= 0:
                return float(n)
            s = (np.log(v) - np.log(v0)) / (np.log(n) - np.log(n0))
            return float(np.exp(np.log(n0) + (np.log(target) - np.log(v0)) / s))
    return float("inf")


def evals_with_range(evals, err, se, target):
    """(central, low, high): the evaluations to target of |err|, of |err| - se and |err| + se
    (floored at 1e-12); without SEs low = high = central."""
    c = evals_to_target(evals, err, target)
    if se is None:
        return c, c, c
    a, s = np.abs(np.asarray(err)), np.asarray(se)
    lo = evals_to_target(evals, np.maximum(a - s, 1e-12), target)
    hi = evals_to_target(evals, a + s, target)
    return c, lo, hi


def summarise(evals_by_solver, curves, targets_by_metric):
    """Evaluations to target and the best standard / critical ratio for every metric/solver.

    ``curves[metric][solver][grid] = (err list, se list or None)``.
    """
    out = {}
    for metric, per_solver in curves.items():
        tgt = targets_by_metric[metric]
        out[metric] = {}
        for solver, per_grid in per_solver.items():
            ev = evals_by_solver[solver]
            need = {g: evals_with_range(ev, e, se, tgt) for g, (e, se) in per_grid.items()}
            std = {g: need[g] for g in STANDARD if g in need}
            best = min(std, key=lambda g: std[g][0])
            c = need["critical"]
            ratio = std[best][0] / c[0]
            # range: best standard's low over critical's high .. its high over critical's low
            r_lo = min(v[1] for v in std.values()) / c[2]
            r_hi = min(v[2] for v in std.values()) / c[1]
            out[metric][solver] = {
                "target": tgt,
                "first_evals": ev[0],
                "evals_to_target": {g: list(v) for g, v in need.items()},
                "best_standard": best,
                "ratio": ratio,
                "ratio_range": [r_lo, r_hi],
            }
    return out


def mixture_cdf(x, a, b, mu, w):
    return w * ndtr((x - a * mu) / b) + (1 - w) * ndtr((x + a * mu) / b)


def mixture_quantile(u, a, b, mu, w):
    """Quantile function of w N(a mu, b^2) + (1-w) N(-a mu, b^2), by bisection."""
    lo = np.full_like(u, -a * mu - 40 * b)
    hi = np.full_like(u, a * mu + 40 * b)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        below = mixture_cdf(mid, a, b, mu, w) < u
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def w1_from_cells(edges, masses, a, b, mu, w):
    """W1 between a histogram's distribution function (known at the inner edges) and the
    mixture: trapezoid rule for int |F1 - F2| dx."""
    x = np.asarray(edges)[1:-1]
    f = np.cumsum(np.asarray(masses))[:-1]
    d = np.abs(f - mixture_cdf(x, a, b, mu, w))
    return float(np.sum(0.5 * (d[1:] + d[:-1]) * np.diff(x)))


def grid_of(kind, proc, n, win, t_min, t_max=None):
    if kind == "critical":
        return S.critical_grid(proc, n, win, t_min=t_min, t_max=t_max)
    return gl.time_grid(proc, n, kind=kind, t_min=t_min, t_max=t_max)


# ----------------------------------------------------------------------------------------------
# problem 1: two deltas
# ----------------------------------------------------------------------------------------------


def two_deltas(cfg, proc, mu):
    data = gl.DeltaMixture(jnp.array([[mu], [-mu]]), jnp.array([W, 1 - W]))
    win = S.window_from_data(data, proc)
    a, b = float(proc.a(T_MIN)), float(proc.b(T_MIN))
    exact = float(S.exact_class_fraction(proc, mu, W, T_MIN))
    score = Partial(gl.score, data, proc)  # a pytree: new data reuse the compiled sampler
    nq = cfg["n_quantiles"]
    u = (np.arange(nq) + 0.5) / nq
    q_target = mixture_quantile(u, a, b, mu, W)
    x0 = jnp.asarray(float(proc.b(proc.T)) * ndtri(u))[:, None]
    steps = cfg["steps"]

    def grid(kind, n):
        if kind == "sqrt_e":
            return S.sqrt_error_grid(proc, n, mu, W, t_min=T_MIN)
        return grid_of(kind, proc, n, win, T_MIN)

    bias = {"EM": {}, "heun": {}}
    w1 = {"EM": {}, "heun": {}}
    monotone = True
    for kind in GRIDS + ("sqrt_e",):
        for solver in ("EM", "heun"):
            if solver == "heun" and kind == "sqrt_e":
                continue
            bias[solver][kind], w1[solver][kind] = [], []
            for n in steps:
                ts = grid(kind, n)
                if solver == "EM":
                    edges, p = S.quadrature_distribution(proc, ts, mu, W, n_cells=cfg["n_cells"])
                    frac = float(jnp.sum(p[cfg["n_cells"] // 2 :]))
                    dist = w1_from_cells(edges, p, a, b, mu, W)
                else:
                    xf = np.asarray(
                        gl.sample(score, proc, jax.random.PRNGKey(0), x0, ts=ts, solver="heun").x[
                            :, 0
                        ]
                    )
                    monotone &= bool(np.all(np.diff(xf) >= 0))
                    frac = float(np.mean(xf > 0))
                    dist = float(np.mean(np.abs(np.sort(xf) - q_target)))
                bias[solver][kind].append(frac - exact)
                w1[solver][kind].append(dist)
        print(
            f"mu={mu:g} {kind:9s} EM bias "
            + " ".join(f"{v:+.4f}" for v in bias["EM"][kind])
            + " | W1 "
            + " ".join(f"{v:.4f}" for v in w1["EM"][kind]),
            flush=True,
        )

    # Monte Carlo cross-check of the quadrature on the critical grid
    ts = grid("critical", cfg["mc_steps"])
    n_mc = cfg["n_mc"]
    sol = gl.sample(score, proc, jax.random.PRNGKey(19), (n_mc, 1), ts=ts)
    p_mc = float(jnp.mean(sol.x[:, 0] > 0))
    se = float(np.sqrt(p_mc * (1 - p_mc) / n_mc))
    q = float(S.quadrature_class_fraction(proc, ts, mu, W, n_cells=cfg["n_cells"]))
    mc = {"n_steps": cfg["mc_steps"], "n": n_mc, "mc": p_mc, "se": se, "quadrature": q}
    mc["z"] = (p_mc - q) / se

    # the bump tuned against the exact EM bias at one step count
    tuned = S.tune_window(proc, cfg["tune_n"], mu, W, win, t_min=T_MIN, steps=cfg["tune_steps"])
    tw = tuned.window
    t_bias, t_w1 = [], []
    for n in steps:
        ts = S.critical_grid(proc, n, tw, weight=tuned.weight, t_min=T_MIN)
        edges, p = S.quadrature_distribution(proc, ts, mu, W, n_cells=cfg["n_cells"])
        t_bias.append(float(jnp.sum(p[cfg["n_cells"] // 2 :])) - exact)
        t_w1.append(w1_from_cells(edges, p, a, b, mu, W))
    bias["EM"]["tuned"], w1["EM"]["tuned"] = t_bias, t_w1

    out = {
        "mu": mu,
        "w": W,
        "exact_class_fraction": exact,
        "window": {"centre": float(win.centre), "width": float(win.width)},
        "steps": steps,
        "evals": {s: [n * SOLVERS[s][1] for n in steps] for s in SOLVERS},
        "class_bias": bias,
        "w1": w1,
        "heun_map_monotone": monotone,
        "monte_carlo_check": mc,
        "tuned": {
            "at_steps": cfg["tune_n"],
            "centre": float(tw.centre),
            "width": float(tw.width),
            "weight": float(tuned.weight),
        },
    }
    curves = {
        "class_bias": {s: {g: (v, None) for g, v in bias[s].items()} for s in bias},
        "w1": {s: {g: (v, None) for g, v in w1[s].items()} for s in w1},
    }
    out["summary"] = summarise(
        out["evals"], curves, {"class_bias": TARGETS["class_bias"], "w1": TARGETS["w1"]}
    )
    return out


def online(cfg, proc, mu=4.0):
    """The online variant on the two-delta problem: Monte Carlo class bias and W1."""
    data = gl.DeltaMixture(jnp.array([[mu], [-mu]]), jnp.array([W, 1 - W]))
    score = lambda x, t: gl.score(data, proc, x, t)  # noqa: E731
    a, b = float(proc.a(T_MIN)), float(proc.b(T_MIN))
    exact = float(S.exact_class_fraction(proc, mu, W, T_MIN))
    n = cfg["online_n"]
    u = (np.arange(n) + 0.5) / n
    q_target = mixture_quantile(u, a, b, mu, W)
    # the Monte Carlo floor of W1: n exact samples of p_{t_min}
    k1, k2 = jax.random.split(jax.random.PRNGKey(23))
    y = np.where(np.asarray(jax.random.uniform(k1, (n,))) < W, mu, -mu)
    xs = a * y + b * np.asarray(jax.random.normal(k2, (n,)))
    floor = float(np.mean(np.abs(np.sort(xs) - q_target)))
    bias, se, w1 = [], [], []
    for budget in cfg["online_budgets"]:
        res = S.online_sample(
            score,
            proc,
            jax.random.PRNGKey(29),
            (n, 1),
            budget=budget,
            direction=jnp.ones(1),
            scale=mu,
            t_min=T_MIN,
        )
        x = np.asarray(res.x[:, 0])
        p = float(np.mean(x > 0))
        bias.append(p - exact)
        se.append(float(np.sqrt(p * (1 - p) / n)))
        w1.append(float(np.mean(np.abs(np.sort(x) - q_target))))
    print(
        f"online mu={mu:g}: bias "
        + " ".join(f"{v:+.4f}" for v in bias)
        + f" (SE {se[0]:.4f}); W1 (MC, floor {floor:.4f}) "
        + " ".join(f"{v:.4f}" for v in w1),
        flush=True,
    )
    return {
        "mu": mu,
        "n": n,
        "budgets": cfg["online_budgets"],
        "class_bias": bias,
        "class_bias_se": se,
        "w1_mc": w1,
        "w1_mc_floor": floor,
        "evals_to_target_class_bias": list(
            evals_with_range(cfg["online_budgets"], bias, se, TARGETS["class_bias"])
        ),
    }


# ----------------------------------------------------------------------------------------------
# problem 2: Gaussian mixture in d = 64
# ----------------------------------------------------------------------------------------------


def gaussian_mixture(cfg, proc):
    c = cfg["gm"]
    d, m, var, n = c["d"], c["m"], c["var"], c["n"]
    means = jnp.zeros((2, d)).at[0, 0].set(m).at[1, 0].set(-m)
    data = gl.GaussianMixture(means, jnp.full((2,), var), jnp.array([W, 1 - W]))
    win = S.window_from_data(data, proc)
    score = lambda x, t: gl.score(data, proc, x, t)  # noqa: E731
    a, b2 = float(proc.a(T_MIN)), float(proc.b2(T_MIN))
    s_par = np.sqrt(a * a * var + b2)
    exact_frac = W * ndtr(a * m / s_par) + (1 - W) * ndtr(-a * m / s_par)
    exact_var = a * a * var + b2
    key = jax.random.PRNGKey(64)
    x0 = float(proc.b(proc.T)) * jax.random.normal(jax.random.PRNGKey(65), (n, d))
    res = {
        "class_bias": {s: {} for s in SOLVERS},
        "var_error": {s: {} for s in SOLVERS},
    }
    for solver in SOLVERS:
        for kind in GRIDS:
            cb, cb_se, ve, ve_se = [], [], [], []
            for k in c["steps"]:
                ts = grid_of(kind, proc, k, win, T_MIN)
                x = np.asarray(gl.sample(score, proc, key, x0, ts=ts, solver=SOLVERS[solver][0]).x)
                p = float(np.mean(x[:, 0] > 0))
                cb.append(p - exact_frac)
                cb_se.append(float(np.sqrt(p * (1 - p) / n)))
                v = np.mean(x[:, 1:] ** 2, axis=1) / exact_var
                ve.append(float(np.mean(v) - 1))
                ve_se.append(float(np.std(v, ddof=1) / np.sqrt(n)))
            res["class_bias"][solver][kind] = (cb, cb_se)
            res["var_error"][solver][kind] = (ve, ve_se)
            print(
                f"GM d={d} {solver:4s} {kind:9s} bias "
                + " ".join(f"{v:+.4f}" for v in cb)
                + f" (SE {cb_se[-1]:.4f}) | var err "
                + " ".join(f"{v:+.4f}" for v in ve),
                flush=True,
            )
    evals = {s: [k * SOLVERS[s][1] for k in c["steps"]] for s in SOLVERS}
    out = {
        "config": c,
        "window": {"centre": float(win.centre), "width": float(win.width)},
        "exact_class_fraction": float(exact_frac),
        "exact_within_variance": exact_var,
        "steps": c["steps"],
        "evals": evals,
        "class_bias": res["class_bias"],
        "var_error": res["var_error"],
    }
    out["summary"] = summarise(
        evals,
        {"class_bias": res["class_bias"], "var_error": res["var_error"]},
        {"class_bias": TARGETS["gm_class_bias"], "var_error": TARGETS["gm_var_error"]},
    )
    return out


# ----------------------------------------------------------------------------------------------
# problem 3: 2-D two-image patch model
# ----------------------------------------------------------------------------------------------


def _radial_s(x):
    """Per-sample radially averaged S(q), shape (n, n_bins), and the radii (q = 0, which is
    the net magnetisation, and empty bins left out)."""
    s = jnp.abs(jnp.fft.fft2(x)) ** 2 / (x.shape[-1] * x.shape[-2])
    prof = gl.field.radial_average(s, axes=(-2, -1))
    keep = (np.asarray(prof.count) > 0) & (np.asarray(prof.radius) > 0)
    return np.asarray(prof.value)[:, keep], np.asarray(prof.radius)[keep]


def patch_model(pc, proc, window="detector"):
    L, k, n = pc["L"], pc["k"], pc["n"]
    score = lambda x, t: gl.scores.uniform_patch_score(proc, x, t, window=k, lattice_ndim=2)  # noqa: E731
    if window == "detector":
        ts_w = gl.time_grid(proc, 64, kind="log_snr", t_min=T_MIN)
        win = S.window_from_score(
            score, proc, jax.random.PRNGKey(31), (pc["n_window"], L, L), ts=ts_w, n_boot=50
        )
    else:  # the mode-softening time of the two-image model, 1/2 ln(1 + k^2), default width
        win = S.window_from_times(0.5 * np.log(1 + k**2), S.DEFAULT_WIDTH_OU)
    key = jax.random.PRNGKey(37)
    x0 = float(proc.b(proc.T)) * jax.random.normal(jax.random.PRNGKey(38), (n, L, L))

    def final(ts, solver):
        return gl.sample(score, proc, key, x0, ts=ts, solver=SOLVERS[solver][0]).x

    out = {
        "config": pc,
        "window_source": window,
        "window": {"centre": float(win.centre), "width": float(win.width)},
    }
    dom, dom_se, sq, sq_floor = ({s: {} for s in SOLVERS} for _ in range(4))
    ref = {}
    for solver in SOLVERS:
        t0 = time.perf_counter()
        xr = final(gl.time_grid(proc, pc["ref_steps"], kind="log_snr", t_min=T_MIN), solver)
        st = gl.field.domain_statistics(xr)
        rho_r = np.asarray(st.per_sample)
        s_r, radius = _radial_s(xr)
        ref[solver] = {
            "domain_length": float(st.domain_length),
            "domain_length_se": float(st.domain_length_se),
            "wall_s": time.perf_counter() - t0,
        }
        s_r_mean = s_r.mean(0)
        for kind in GRIDS:
            e_l, e_se, e_s, e_f = [], [], [], []
            for steps in pc["steps"]:
                x = final(grid_of(kind, proc, steps, win, T_MIN), solver)
                rho = np.asarray(gl.field.domain_statistics(x).per_sample)
                ell, ell_r = 1 / rho.mean(), 1 / rho_r.mean()
                # relative error of the domain length, delta method; paired for Heun (same
                # initial states, deterministic), independent for EM
                if solver == "heun":
                    diff = rho / rho.mean() - rho_r / rho_r.mean()
                    rel_se = float(np.std(diff, ddof=1) / np.sqrt(n))
                else:
                    rel_se = float(
                        np.hypot(
                            np.std(rho, ddof=1) / rho.mean(), np.std(rho_r, ddof=1) / rho_r.mean()
                        )
                        / np.sqrt(n)
                    )
                e_l.append(float(ell / ell_r - 1))
                e_se.append(rel_se)
                s_g, _ = _radial_s(x)
                num = np.sum((s_g.mean(0) - s_r_mean) ** 2)
                den = np.sum(s_r_mean**2)
                noise = np.sum(s_g.var(0, ddof=1) / n + s_r.var(0, ddof=1) / n)
                e_s.append(float(np.sqrt(num / den)))
                e_f.append(float(np.sqrt(noise / den)))
            dom[solver][kind], dom_se[solver][kind] = e_l, e_se
            sq[solver][kind], sq_floor[solver][kind] = e_s, e_f
            print(
                f"patch {L}x{L} k={k} {solver:4s} {kind:9s} domain-length err "
                + " ".join(f"{v:+.3f}" for v in e_l)
                + f" (SE {e_se[-1]:.3f}) | S(q) err "
                + " ".join(f"{v:.3f}" for v in e_s)
                + f" (floor {e_f[-1]:.3f})",
                flush=True,
            )
    evals = {s: [k_ * SOLVERS[s][1] for k_ in pc["steps"]] for s in SOLVERS}
    out.update(
        {
            "steps": pc["steps"],
            "evals": evals,
            "reference": ref,
            "radius": radius,
            "domain_error": {s: {g: (dom[s][g], dom_se[s][g]) for g in GRIDS} for s in SOLVERS},
            "sq_error": {s: {g: (sq[s][g], sq_floor[s][g]) for g in GRIDS} for s in SOLVERS},
        }
    )
    out["summary"] = summarise(
        evals,
        {"domain_error": out["domain_error"], "sq_error": out["sq_error"]},
        {"domain_error": TARGETS["patch_domain_error"], "sq_error": TARGETS["patch_sq_error"]},
    )
    return out


# ----------------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------------


def save(out, cfg, t_start, problems, complete, full):
    """Write what is measured so far (after each problem: a long run keeps its finished part)."""
    payload = {
        "name": NAME,
        "complete": complete,
        "patch_full": full,
        "config": cfg,
        "targets": TARGETS,
        "environment": H.environment(),
        "wall_s": time.perf_counter() - t_start,
        "problems": problems,
    }
    return H.save_json(out, payload)


COLORS = {
    "uniform": "C0",
    "log_snr": "C1",
    "edm": "C2",
    "critical": "C3",
    "sqrt_e": "C4",
    "tuned": "C5",
    "online": "k",
}


def figure(json_path, png_path):
    """Error against score evaluations, log-log, one curve per grid (solid EM, dashed Heun)."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pr = json.loads(open(json_path).read())["problems"]
    panels = []
    for name, p in pr.items():
        if name.startswith("two_deltas"):
            panels.append(
                (p, "class_bias", f"two deltas mu={p['mu']:g}: |class bias|", "class_bias")
            )
            panels.append((p, "w1", f"two deltas mu={p['mu']:g}: W1 to p_tmin", "w1"))
    if "gaussian_mixture" in pr:
        p = pr["gaussian_mixture"]
        panels.append((p, "class_bias", "mixture d=64: |class bias|", "gm_class_bias"))
        panels.append((p, "var_error", "mixture d=64: |within-class var err|", "gm_var_error"))
    if "patch" in pr:
        p = pr["patch"]
        panels.append((p, "domain_error", "patch 2-D: |domain length err|", "patch_domain_error"))
        panels.append((p, "sq_error", "patch 2-D: S(q) rel. L2 err", "patch_sq_error"))
    ncol = 4
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.3 * ncol, 3.5 * nrow), squeeze=False)
    for ax, (p, metric, title, tkey) in zip(axes.flat, panels):
        curves = {}
        for solver, per_grid in p[metric].items():
            curves[solver] = {
                g: (v[0] if isinstance(v[0], list) else v) for g, v in per_grid.items()
            }
        for solver, per_grid in curves.items():
            for kind, err in per_grid.items():
                ls = "-" if solver == "EM" else "--"
                y = np.maximum(np.abs(np.asarray(err, float)), 1e-6)
                ax.loglog(
                    p["evals"][solver],
                    y,
                    ls,
                    color=COLORS[kind],
                    marker="o",
                    ms=3,
                    label=f"{kind} ({solver})",
                )
        if metric == "class_bias" and "online" in pr and p.get("mu") == pr["online"]["mu"]:
            o = pr["online"]
            ax.errorbar(
                o["budgets"],
                np.abs(o["class_bias"]),
                yerr=o["class_bias_se"],
                fmt="s",
                color=COLORS["online"],
                ms=4,
                label="online (EM, MC)",
            )
        ax.axhline(TARGETS[tkey], color="k", lw=0.6, ls=":")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("score evaluations")
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    return png_path


def table(problems):
    """Markdown rows: problem, metric, solver, evaluations to target per grid, ratio."""
    lines = [
        "| problem | metric (target) | solver | uniform | log_snr | edm | critical | "
        "best std / critical |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]

    def num(v):  # the JSON stores non-finite numbers as null
        return float("inf") if v is None else float(v)

    def fmt(v, first):
        c, lo, hi = (num(x) for x in v)
        s = "> max" if not np.isfinite(c) else f"{c:.1f}"
        if c == first:
            s = f"<= {c:.0f}"
        if lo != hi:
            s += f" [{lo:.0f}, {hi:.0f}]" if np.isfinite(hi) else f" [{lo:.0f}, >max]"
        return s

    for name, p in problems.items():
        if "summary" not in p:
            continue
        for metric, per_solver in p["summary"].items():
            for solver, s in per_solver.items():
                need = s["evals_to_target"]
                r, (rlo, rhi) = num(s["ratio"]), (num(x) for x in s["ratio_range"])
                b_n, c_n = num(need[s["best_standard"]][0]), num(need["critical"][0])
                if not (np.isfinite(b_n) or np.isfinite(c_n)):
                    rs = "neither reaches it"
                elif not np.isfinite(c_n):
                    rs = "< 1 (critical > max)"
                elif not np.isfinite(b_n):
                    rs = "> 1 (standard > max)"
                else:
                    rs = f"{r:.2f}"
                    if rlo != rhi:
                        rs += f" [{rlo:.2f}, {rhi:.2f}]" if np.isfinite(rhi) else f" [{rlo:.2f}, -]"
                lines.append(
                    f"| {name} | {metric} ({s['target']}) | {solver} | "
                    + " | ".join(fmt(need[g], s["first_evals"]) for g in GRIDS)
                    + f" | {rs} ({s['best_standard']}) |"
                )
    return "\n".join(lines)


def main():
    parser = H.argument_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the patch model's larger ensemble")
    parser.add_argument(
        "--figure-from", type=str, default=None, help="only draw the figure from a JSON result"
    )
    parser.add_argument(
        "--only", type=str, default=None, help="comma-separated: two_deltas,online,gm,patch"
    )
    parser.add_argument(
        "--patch-window",
        choices=("detector", "theory"),
        default="detector",
        help="the patch model's window: the black-box detector (default) or t_c^S",
    )
    args = parser.parse_args()
    if args.figure_from:
        print(f"wrote {figure(args.figure_from, str(args.figure_from).replace('.json', '.png'))}")
        return
    cfg = dict(CONFIGS["quick" if args.quick else "full"])
    if args.full:
        cfg["patch"] = FULL_PATCH
    only = set(args.only.split(",")) if args.only else {"two_deltas", "online", "gm", "patch"}
    proc = gl.OU()
    t_start = time.perf_counter()
    problems = {}
    timings = {}

    def done(name):
        timings[name] = time.perf_counter() - t_start - sum(timings.values())
        print(f"[{name}: {timings[name]:.0f} s]", flush=True)
        save(args.out, cfg | {"timings_s": timings}, t_start, problems, False, args.full)

    if "two_deltas" in only:
        for mu in cfg["mus"]:
            problems[f"two_deltas_mu={mu:g}"] = two_deltas(cfg, proc, mu)
            done(f"two_deltas_mu={mu:g}")
    if "online" in only:
        problems["online"] = online(cfg, proc)
        done("online")
    if "gm" in only:
        problems["gaussian_mixture"] = gaussian_mixture(cfg, proc)
        done("gaussian_mixture")
    if "patch" in only:
        problems["patch"] = patch_model(cfg["patch"], proc, args.patch_window)
        done("patch")
    out = save(args.out, cfg | {"timings_s": timings}, t_start, problems, True, args.full)
    print(table(problems))
    print(f"wrote {out} and {figure(out, str(out).replace('.json', '.png'))}")


if __name__ == "__main__":
    main()
