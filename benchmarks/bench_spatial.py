"""Speed of the frozen-time lattice sampler (gltheory.spatial) against its noise floor.

    python benchmarks/bench_spatial.py [--quick] [--out PATH]

The two-image patch model in the reduced variables, D = 2, k = 3, L/k = 16 (a 48x48 periodic
lattice), G = 6, float32, many replicas, timed after a warm-up call (compilation excluded):

1. ``sweep``: ``gltheory.spatial.lattice_langevin`` with the default normal noise, every step
   a burn-in step and one sample (no observables in the loop): box sum, tanh,
   Leimkuhler–Matthews update and one Gaussian draw (a threefry call and an inverse error
   function) per site and step. The old path, reproducible bit for bit by key.
2. ``sweep_discrete``: the same with ``noise="discrete"`` (the four-point law with the first
   five moments of N(0, 1), 4 random bits per site: one threefry call per 8 sites).
3. ``sweep_observed_discrete``: as 2 with M's moments and S(q) streamed at every 10th step (one
   FFT of every replica per sample).
4. ``noise_floor``: a ``lax.scan`` of the same length that only draws the normal noise
   (``normal(fold_in(key, i))`` for the whole (replicas, 48, 48) array) and adds it to the
   state: what any Langevin sweep with this noise convention costs at least.
5. ``noise_floor_discrete``: the same with the discrete noise (its own floor).

The cases are timed round-robin (a burst of load on the shared machine hits all alike).
Reported: site-updates per second (replicas x sites x steps / best wall time) of each case,
and per CPU-second of this process (best CPU time: the fairer figure when the machine is
shared); the ratios of the discrete sweep to its own noise floor, to the normal noise floor
(the floor of the old path) and to the old sweep, all measured in this process. The target
is 1e8 site-updates per second (issue 18); the 1-minute load average is recorded before and
after.

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

    def sweep(noise="normal"):
        run = sp.lattice_langevin(
            key,
            cfg["G"],
            n_burn=steps - 1,
            n_samples=1,
            structure_factor=False,
            noise=noise,
            **common,
        )
        return run.phi

    def sweep_observed(noise="normal"):
        run = sp.lattice_langevin(
            key, cfg["G"], n_burn=0, n_samples=steps // every, thin=every, noise=noise, **common
        )
        return run.phi, run.structure_factor

    def floor(draw):
        @jax.jit
        def run(x0):
            def one(c, i):
                x, r = c
                r_next = draw(jax.random.fold_in(key, i + 1))
                return (x + 0.1 * (r + r_next), r_next), None

            r0 = draw(jax.random.fold_in(key, 0))
            return jax.lax.scan(one, (x0, r0), jnp.arange(steps))[0][0]

        return run

    noise_floor = floor(lambda k: jax.random.normal(k, shape, jnp.float32))
    # the sampler's own draw (a private helper: this is its floor, not a public API)
    noise_floor_discrete = floor(lambda k: sp._discrete_noise(k, 0, shape, jnp.float32))

    x0 = jnp.zeros(shape, jnp.float32)
    load_before = os.getloadavg()[0]
    res = H.timeit_interleaved(
        {
            "sweep": (sweep, ("normal",)),
            "sweep_discrete": (sweep, ("discrete",)),
            "sweep_observed_discrete": (sweep_observed, ("discrete",)),
            "noise_floor": (noise_floor, (x0,)),
            "noise_floor_discrete": (noise_floor_discrete, (x0,)),
        },
        repeats=cfg["repeats"],
    )
    load_after = os.getloadavg()[0]
    work = R * L * L * steps
    rate = {name: work / r["best_s"] for name, r in res.items()}
    cpu_rate = {name: work / r["cpu_best_s"] for name, r in res.items()}
    fast = "sweep_discrete"
    result = {
        "site_updates_per_s": rate,
        "site_updates_per_cpu_s": cpu_rate,
        "fast_path": fast,
        "ratio_fast_to_its_noise_floor": rate[fast] / rate["noise_floor_discrete"],
        "ratio_fast_to_normal_noise_floor": rate[fast] / rate["noise_floor"],
        "ratio_fast_to_old_sweep": rate[fast] / rate["sweep"],
        "ratio_old_sweep_to_noise_floor": rate["sweep"] / rate["noise_floor"],
        "ratio_observed_to_its_noise_floor": (
            rate["sweep_observed_discrete"] / rate["noise_floor_discrete"]
        ),
        "target_site_updates_per_s": TARGET,
        "meets_target": rate[fast] >= TARGET,
        "meets_target_per_cpu_s": cpu_rate[fast] >= TARGET,
        "load_average_1min": [load_before, load_after],
        "cases": res,
    }
    print(
        H.format_table(
            ["case", "best s", "median s", "site-updates/s", "per CPU-s"],
            [
                [
                    name,
                    f"{r['best_s']:.3f}",
                    f"{r['median_s']:.3f}",
                    f"{rate[name]:.3g}",
                    f"{cpu_rate[name]:.3g}",
                ]
                for name, r in res.items()
            ],
        )
    )
    print(
        f"discrete sweep / its noise floor = {result['ratio_fast_to_its_noise_floor']:.3f}; "
        f"/ normal noise floor = {result['ratio_fast_to_normal_noise_floor']:.3f}; / old "
        f"sweep = {result['ratio_fast_to_old_sweep']:.3f}; old sweep / normal noise floor = "
        f"{result['ratio_old_sweep_to_noise_floor']:.3f}; target {TARGET:.0e} site-updates/s "
        f"{'met' if result['meets_target'] else 'not met'} (per CPU-second: "
        f"{'met' if result['meets_target_per_cpu_s'] else 'not met'}; load average "
        f"{load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores: shared)"
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
