"""Speed of the patch-score reverse SDE with S(q, t) streamed, and of the GL-vs-exact comparison.

    python benchmarks/bench_field.py [--quick] [--out PATH]

float32, OU process, Euler–Maruyama, every case called as a user calls it
(``gltheory.sample`` is ``filter_jit``-ted inside), timed after a warm-up call.

1. ``stream``: two-image patch score (``gltheory.scores.uniform_patch_score``, 5x5 window) on
   a 2-D 64x64 periodic lattice, batch 64, 500 steps from t = 3 to 1e-3, with the structure factor
   S(q, t) of the states streamed by ``gltheory.field.structure_factor_observer`` at every 10th
   step (51 saved S arrays, no trajectories stored). Reported: trajectory-site-steps per
   second (batch x sites x steps / time) and the fraction of the time spent in the score,
   1 - t(zero score) / t(patch score), where the zero-cost score ``lambda x, t: 0 * x`` runs
   the identical loop (noise, drift, observer). The two cases are timed round-robin.
2. ``gl_vs_exact``: ``gltheory.field.compare_gl_exact`` for one full setting (2-D 64x64, k = 3,
   batch 64, 500 steps from t = 3 to 0.6, S(q, t) saved every 10 steps): wall time of one call
   including compilation (the figure a user waits for), against the 10-minute target.

Results and environment go to ``benchmarks/results/bench_field.json``.
"""

from __future__ import annotations

import time

import _harness as H
import jax
import jax.numpy as jnp

import gltheory as gl
from gltheory import field as F

NAME = "bench_field"
TARGETS = {"gl_vs_exact_s_max": 600.0}
CONFIGS = {
    "full": dict(size=64, batch=64, steps=500, k=5, every=10, repeats=3, gl_k=3),
    "quick": dict(size=32, batch=16, steps=100, k=5, every=10, repeats=2, gl_k=3),
}


def main():
    args = H.argument_parser(NAME, __doc__.splitlines()[0]).parse_args()
    cfg = CONFIGS["quick" if args.quick else "full"]
    proc = gl.OU()
    shape = (cfg["size"], cfg["size"])
    n, steps, k = cfg["batch"], cfg["steps"], cfg["k"]
    ts = gl.time_grid(proc, steps, t_min=1e-3, t_max=3.0).astype(jnp.float32)
    save = list(range(0, steps + 1, cfg["every"]))
    x0 = jnp.zeros((n,) + shape, jnp.float32)
    key = jax.random.PRNGKey(0)
    observe = F.structure_factor_observer(lattice_ndim=2)
    patch = lambda x, t: gl.scores.uniform_patch_score(proc, x, t, window=k, lattice_ndim=2)
    zero = lambda x, t: 0.0 * x

    def run(score):
        return lambda: gl.sample(score, proc, key, x0, ts=ts, observe=observe, save_at=save)

    res = H.timeit_interleaved(
        {"patch": (run(patch), ()), "zero": (run(zero), ())}, repeats=cfg["repeats"]
    )
    work = n * shape[0] * shape[1] * steps
    t_patch, t_zero = res["patch"]["best_s"], res["zero"]["best_s"]
    stream = {
        "trajectory_site_steps_per_s": work / t_patch,
        "trajectory_site_steps_per_s_zero_score": work / t_zero,
        "score_fraction": 1 - t_zero / t_patch,
        "patch": res["patch"],
        "zero": res["zero"],
        "saved_S": len(save),
    }

    gk = cfg["gl_k"]
    ts_gl = gl.time_grid(proc, steps, t_min=0.6, t_max=3.0).astype(jnp.float32)
    t0 = time.perf_counter()
    cmp = F.compare_gl_exact(proc, key, lattice_shape=shape, window=gk, n=n, ts=ts_gl, save_at=save)
    jax.block_until_ready(cmp.S_gl)
    t_cmp = time.perf_counter() - t0
    gl_res = {
        "wall_s_including_compile": t_cmp,
        "domain_length_exact": float(cmp.domains_exact.domain_length),
        "domain_length_gl": float(cmp.domains_gl.domain_length),
        "sign_agreement": float(cmp.sign_agreement),
        "target_s_max": TARGETS["gl_vs_exact_s_max"],
        "meets_target": t_cmp < TARGETS["gl_vs_exact_s_max"],
    }
    print(
        H.format_table(
            ["case", "best s", "median s", "site-steps/s"],
            [
                [name, f"{r['best_s']:.3f}", f"{r['median_s']:.3f}", f"{work / r['best_s']:.3g}"]
                for name, r in res.items()
            ],
        )
    )
    print(f"fraction of the time in the score: {stream['score_fraction']:.3f}")
    print(
        f"GL vs exact ({shape}, k={gk}, n={n}, {steps} steps): {t_cmp:.1f} s incl. compile; "
        f"domain length exact {gl_res['domain_length_exact']:.2f}, GL "
        f"{gl_res['domain_length_gl']:.2f}, sign agreement {gl_res['sign_agreement']:.3f}"
    )
    payload = {
        "name": NAME,
        "config": cfg,
        "environment": H.environment(),
        "stream": stream,
        "gl_vs_exact": gl_res,
    }
    print(f"wrote {H.save_json(args.out, payload)}")


if __name__ == "__main__":
    main()
