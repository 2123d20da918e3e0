"""Speed of the frozen-time lattice sampler (gltheory.spatial) against its noise floor.

    python benchmarks/bench_spatial.py [--quick] [--out PATH]

The two-image patch model in the reduced variables, D = 2, k = 3, L/k = 16 (a 48x48 periodic
lattice), G = 6, float32, many replicas, timed after a warm-up call (compilation excluded):

1. ``sweep``: ``gltheory.spatial.lattice_langevin`` with every step a burn-in step and one
   sample (no observables in the loop): box sum, tanh, Leimkuhler–Matthews update and one
   Gaussian draw per site and step.
2. ``sweep_observed``: the same number of steps with M's moments and S(q) streamed at every
   10th step (one FFT of every replica per sample).
3. ``noise_floor``: a ``lax.scan`` of the same length that only draws the same Gaussian noise
   (``normal(fold_in(key, i))`` for the whole (replicas, 48, 48) array) and adds it to the
   state: what any Langevin sweep with this noise convention costs at least.

The three cases are timed round-robin (a burst of load on the shared machine hits all alike).
Reported: site-updates per second (replicas x sites x steps / best time) of each case, and the
ratios sweep / noise floor; the target is 1e8 site-updates per second. The machine is shared by
several processes: the 1-minute load average is recorded before and after.

Results and environment go to ``benchmarks/results/bench_spatial.json``.
"""

from __future__ import annotations

import os

import _harness as H
import jax
import jax.numpy as jnp

from gltheory import spatial as sp

NAME = "bench_spatial"
TARGET = 1e8  # site-updates per second
CONFIGS = {
    "full": dict(k=3, cells=16, replicas=256, steps=200, every=10, G=6.0, repeats=5),
    "quick": dict(k=3, cells=16, replicas=64, steps=100, every=10, G=6.0, repeats=3),
}


def main():
    args = H.argument_parser(NAME, __doc__.splitlines()[0]).parse_args()
    cfg = CONFIGS["quick" if args.quick else "full"]
    k, cells, R, steps, every = cfg["k"], cfg["cells"], cfg["replicas"], cfg["steps"], cfg["every"]
    L = k * cells
    shape = (R, L, L)
    key = jax.random.key(0)
    common = dict(window=k, cells=cells, lattice_ndim=2, n_replicas=R, dtype=jnp.float32)

    def sweep():
        run = sp.lattice_langevin(
            key, cfg["G"], n_burn=steps - 1, n_samples=1, structure_factor=False, **common
        )
        return run.phi

    def sweep_observed():
        run = sp.lattice_langevin(
            key, cfg["G"], n_burn=0, n_samples=steps // every, thin=every, **common
        )
        return run.phi, run.structure_factor

    @jax.jit
    def noise_floor(x0):
        def one(c, i):
            x, r = c
            r_next = jax.random.normal(jax.random.fold_in(key, i + 1), shape, jnp.float32)
            return (x + 0.1 * (r + r_next), r_next), None

        r0 = jax.random.normal(jax.random.fold_in(key, 0), shape, jnp.float32)
        return jax.lax.scan(one, (x0, r0), jnp.arange(steps))[0][0]

    x0 = jnp.zeros(shape, jnp.float32)
    load_before = os.getloadavg()[0]
    res = H.timeit_interleaved(
        {
            "sweep": (sweep, ()),
            "sweep_observed": (sweep_observed, ()),
            "noise_floor": (noise_floor, (x0,)),
        },
        repeats=cfg["repeats"],
    )
    load_after = os.getloadavg()[0]
    work = R * L * L * steps
    rate = {name: work / r["best_s"] for name, r in res.items()}
    result = {
        "site_updates_per_s": rate,
        "ratio_sweep_to_noise_floor": rate["sweep"] / rate["noise_floor"],
        "ratio_observed_to_noise_floor": rate["sweep_observed"] / rate["noise_floor"],
        "target_site_updates_per_s": TARGET,
        "meets_target": rate["sweep"] >= TARGET,
        "load_average_1min": [load_before, load_after],
        "cases": res,
    }
    print(
        H.format_table(
            ["case", "best s", "median s", "site-updates/s"],
            [
                [name, f"{r['best_s']:.3f}", f"{r['median_s']:.3f}", f"{rate[name]:.3g}"]
                for name, r in res.items()
            ],
        )
    )
    print(
        f"sweep / noise floor = {result['ratio_sweep_to_noise_floor']:.3f}; observed / noise "
        f"floor = {result['ratio_observed_to_noise_floor']:.3f}; target {TARGET:.0e} "
        f"site-updates/s {'met' if result['meets_target'] else 'not met'} "
        f"(load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores: shared)"
    )
    payload = {
        "name": NAME,
        "config": cfg,
        "environment": H.environment(),
        "result": result,
    }
    print(f"wrote {H.save_json(args.out, payload)}")


if __name__ == "__main__":
    main()
