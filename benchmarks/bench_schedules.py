"""Class-fraction bias against score evaluations for standard and critical-window time grids.

    python benchmarks/bench_schedules.py [--quick] [--out PATH]

Issue 19, item 4, first problem (the others are not in this script yet): 1-D two deltas
+-mu with weights (0.8, 0.2) (with w = 1/2 the bias vanishes by symmetry), OU process, T = 10,
t_min = 0.01, Euler–Maruyama (one score evaluation per step), float64. For every grid and step
count the **exact** class-fraction bias of the chain, P(x_{t_min} > 0) - its exact value, by
propagating the chain's density (``gltheory.schedules.class_fraction_bias``; no Monte Carlo).
Grids: ``uniform``, ``log_snr``, ``edm`` (rho = 7), ``critical`` (``time_grid(kind="critical")``,
base log-SNR, window of ``schedules.window_from_data``, default weight) and ``sqrt_e`` (step
density proportional to the square root of the local error density,
``schedules.sqrt_error_grid``, which needs the exact problem: a reference, not a method).

Reported: the bias per grid and step count, the evaluations each grid needs to reach
|bias| < 0.005 (log-log interpolation between the bracketing step counts), the ratio best
standard / critical; a Monte Carlo cross-check of the quadrature (n = 10^5 trajectories, z-score
= (MC - quadrature) / SE); and the bump tuned with optax at one step count
(``schedules.tune_window``) with its bias at the other step counts.

Results and environment go to ``benchmarks/results/bench_schedules.json``.
"""

from __future__ import annotations

import time

import _harness as H
import jax
import jax.numpy as jnp
import numpy as np

import gltheory as gl
from gltheory import schedules as S

jax.config.update("jax_enable_x64", True)

NAME = "bench_schedules"
TARGET = 0.005
W = 0.8
T_MIN = 1e-2
CONFIGS = {
    "full": dict(
        mus=[4.0, 10.0, 1.0],
        steps=[8, 16, 32, 64, 128],
        n_cells=512,
        n_mc=100_000,
        mc_steps=32,
        tune_steps=40,
        tune_n=32,
    ),
    "quick": dict(
        mus=[4.0],
        steps=[8, 16, 32, 64],
        n_cells=256,
        n_mc=20_000,
        mc_steps=16,
        tune_steps=10,
        tune_n=16,
    ),
}
STANDARD = ("uniform", "log_snr", "edm")


def evals_to_target(steps, bias, target=TARGET):
    """Smallest step count with |bias| < target, log-log interpolated; inf if never reached."""
    b = np.abs(np.asarray(bias))
    for i, (n, v) in enumerate(zip(steps, b)):
        if v < target:
            if i == 0:
                return float(n)
            n0, v0 = steps[i - 1], b[i - 1]
            s = (np.log(v) - np.log(v0)) / (np.log(n) - np.log(n0))
            return float(np.exp(np.log(n0) + (np.log(target) - np.log(v0)) / s))
    return float("inf")


def save(out, cfg, t_start, problems, complete):
    """Write what is measured so far (after each problem: a long run keeps its finished part)."""
    payload = {
        "name": NAME,
        "complete": complete,
        "config": cfg,
        "target": TARGET,
        "environment": H.environment(),
        "wall_s": time.perf_counter() - t_start,
        "problems": problems,
        "left_out": "Heun, the d = 64 Gaussian mixture, the 2-D patch model, Wasserstein "
        "distances (issue 19 item 4): not in this script yet.",
    }
    return H.save_json(out, payload)


def figure(json_path, png_path):
    """|bias| against score evaluations, log-log, one curve per grid, one panel per problem."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = json.loads(open(json_path).read())["problems"]
    fig, axes = plt.subplots(1, len(problems), figsize=(4.2 * len(problems), 3.6), squeeze=False)
    for ax, (name, pr) in zip(axes[0], problems.items()):
        curves = dict(pr["bias"]) | {"tuned": pr["tuned"]["bias"]}
        for kind, b in curves.items():
            style = "--" if kind in ("sqrt_e", "tuned") else "-"
            ax.loglog(pr["steps"], np.abs(b), style, marker="o", ms=3, label=kind)
        ax.axhline(TARGET, color="k", lw=0.6, ls=":")
        ax.set(
            title=f"two deltas, {name}, w = {W}",
            xlabel="score evaluations (EM steps)",
            ylabel="|class-fraction bias|",
        )
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    return png_path


def main():
    parser = H.argument_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument(
        "--figure-from",
        type=str,
        default=None,
        help="only draw the figure from an earlier JSON result",
    )
    args = parser.parse_args()
    if args.figure_from:
        print(f"wrote {figure(args.figure_from, str(args.figure_from).replace('.json', '.png'))}")
        return
    cfg = CONFIGS["quick" if args.quick else "full"]
    proc = gl.OU()
    t_start = time.perf_counter()
    problems = {}
    for mu in cfg["mus"]:
        data = gl.DeltaMixture(jnp.array([[mu], [-mu]]), jnp.array([W, 1 - W]))
        win = S.window_from_data(data, proc)

        def grid(kind, n):
            if kind == "critical":
                return S.critical_grid(proc, n, win, t_min=T_MIN)
            if kind == "sqrt_e":
                return S.sqrt_error_grid(proc, n, mu, W, t_min=T_MIN)
            return gl.time_grid(proc, n, kind=kind, t_min=T_MIN)

        kinds = STANDARD + ("critical", "sqrt_e")
        bias = {k: [] for k in kinds}
        for n in cfg["steps"]:
            for k in kinds:
                b = S.class_fraction_bias(proc, grid(k, n), mu, W, n_cells=cfg["n_cells"])
                bias[k].append(float(b))
            print(f"mu={mu:g} n={n}: " + "  ".join(f"{k} {bias[k][-1]:+.5f}" for k in kinds))
        need = {k: evals_to_target(cfg["steps"], bias[k]) for k in kinds}
        best_std = min(STANDARD, key=lambda k: need[k])
        ratio = need[best_std] / need["critical"]

        # Monte Carlo cross-check of the quadrature on the critical grid
        ts = grid("critical", cfg["mc_steps"])
        n_mc = cfg["n_mc"]
        sol = gl.sample(
            lambda x, t: gl.score(data, proc, x, t), proc, jax.random.PRNGKey(19), (n_mc, 1), ts=ts
        )
        p_mc = float(jnp.mean(sol.x[:, 0] > 0))
        se = float(np.sqrt(p_mc * (1 - p_mc) / n_mc))
        q = float(S.quadrature_class_fraction(proc, ts, mu, W, n_cells=cfg["n_cells"]))
        mc = {
            "n_steps": cfg["mc_steps"],
            "n": n_mc,
            "mc": p_mc,
            "se": se,
            "quadrature": q,
            "z": (p_mc - q) / se,
        }

        # the bump tuned against the exact bias at one step count
        tuned = S.tune_window(proc, cfg["tune_n"], mu, W, win, t_min=T_MIN, steps=cfg["tune_steps"])
        tw = tuned.window
        tuned_bias = [
            float(
                S.class_fraction_bias(
                    proc,
                    S.critical_grid(proc, n, tw, weight=tuned.weight, t_min=T_MIN),
                    mu,
                    W,
                    n_cells=cfg["n_cells"],
                )
            )
            for n in cfg["steps"]
        ]
        problems[f"mu={mu:g}"] = {
            "mu": mu,
            "w": W,
            "window": {
                "centre": float(win.centre),
                "width": float(win.width),
                "t_peak": float(win.t_peak),
            },
            "steps": cfg["steps"],
            "bias": bias,
            "evals_to_target": need,
            "best_standard": best_std,
            "ratio_best_standard_over_critical": ratio,
            "monte_carlo": mc,
            "tuned": {
                "at_steps": cfg["tune_n"],
                "centre": float(tw.centre),
                "width": float(tw.width),
                "weight": float(tuned.weight),
                "bias_history_first_last": [float(tuned.history[0]), float(tuned.history[-1])],
                "bias": tuned_bias,
                "evals_to_target": evals_to_target(cfg["steps"], tuned_bias),
            },
        }
        print(
            H.format_table(
                ["grid"] + [f"n={n}" for n in cfg["steps"]] + ["evals to 0.005"],
                [[k] + [f"{b:+.4f}" for b in bias[k]] + [f"{need[k]:.1f}"] for k in kinds]
                + [
                    ["tuned"]
                    + [f"{b:+.4f}" for b in tuned_bias]
                    + [f"{problems[f'mu={mu:g}']['tuned']['evals_to_target']:.1f}"]
                ],
            )
        )
        print(
            f"mu={mu:g}: window c={float(win.centre):.3f} w={float(win.width):.3f}; best "
            f"standard {best_std}; ratio best standard / critical = {ratio:.2f}; MC check "
            f"z = {mc['z']:+.2f} (SE {se:.4f}); tuned c={float(tw.centre):.3f} "
            f"w={float(tw.width):.3f} beta={float(tuned.weight):.3f}"
        )
        save(args.out, cfg, t_start, problems, complete=False)
    out = save(args.out, cfg, t_start, problems, complete=True)
    print(f"wrote {out} and {figure(out, str(out).replace('.json', '.png'))}")


if __name__ == "__main__":
    main()
