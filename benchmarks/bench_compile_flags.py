"""Compile time of the package's programs under XLA:CPU flag sets (the test suite's quick mode).

Each measurement is a fresh ``python -c`` subprocess (no compilation cache) that compiles and
runs a fixed workload drawn from the test suite's heaviest kinds of program, and sums the
backend compile time JAX reports (``jax.monitoring``'s ``backend_compile_duration``):

- the sampler (``gl.sample`` of a two-point score, 32 Euler–Maruyama steps, 64 trajectories);
- ``gl.critical_times(gl.TwoPoint(1.0), gl.OU())`` (root finding with optimistix);
- the patch posterior statistics of an equivariant periodic 2-D bank (6×6, 2 channels);
- ``jax.grad`` of a Gaussian-mixture score with respect to time.

Flag sets (``XLA_FLAGS``):

- ``default``: XLA's defaults, as users run (the suite's checked mode);
- ``o1``: ``--xla_backend_optimization_level=1`` (LLVM at level 1);
- ``quick``: ``o1`` plus ``--xla_cpu_use_fusion_emitters=false`` (XLA's classic elemental
  emitters instead of the MLIR fusion emitters): the suite's quick mode (``tests/conftest.py``).

Rounds interleave the flag sets (default, o1, quick, default, ...) so that load on a shared
machine hits them alike. The figure: each set's median compile time and its ratio to
``default``; also the number of programs (the same for every set) and a check that the
workload's numbers agree between the sets (they compute the same IEEE operations; the
largest relative difference is printed).

Run: ``python benchmarks/bench_compile_flags.py [--quick] [--out PATH]``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from _harness import REPO_ROOT, argument_parser, environment, format_table, save_json

FLAG_SETS = {
    "default": "",
    "o1": "--xla_backend_optimization_level=1",
    "quick": "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false",
}

CHILD = r"""
import json, time
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
tot = {"compile_s": 0.0, "programs": 0}
def listener(event, duration, **kw):
    if event == "/jax/core/compile/backend_compile_duration":
        tot["compile_s"] += duration
        tot["programs"] += 1
jax.monitoring.register_event_duration_secs_listener(listener)
import gltheory as gl
t0 = time.perf_counter()
proc = gl.OU(T=2.0)
data = gl.TwoPoint(1.0, dim=1, weight=0.8)
ts = gl.time_grid(proc, 32)
x = gl.sample(lambda x, t: gl.score(data, proc, x, t), proc, jax.random.PRNGKey(0), (64, 1),
              ts=ts).x
tc = gl.critical_times(gl.TwoPoint(1.0), gl.OU()).t_score
imgs = jax.random.normal(jax.random.PRNGKey(1), (3, 6, 6, 2))
bank = gl.patch.bank(gl.LatticeImages(imgs), window=3, equivariant=True, boundary="periodic",
                     lattice_ndim=2)
st = gl.patch.posterior_stats(bank, proc, jax.random.normal(jax.random.PRNGKey(2), (2, 6, 6, 2)),
                              jnp.array([0.3, 0.7]), chunk_size=5)
mix = gl.GaussianMixture(jax.random.normal(jax.random.PRNGKey(3), (4, 3)),
                         jnp.array([0.5, 1.0, 0.1, 2.0]))
g = jax.grad(lambda t: jnp.sum(gl.score(mix, proc, jnp.ones((5, 3)), t)))(0.5)
jax.block_until_ready((x, tc, st, g))
values = [float(jnp.sum(x)), float(tc), float(jnp.sum(st.mean)), float(jnp.sum(st.variance)),
          float(g)]
tot["wall_s"] = time.perf_counter() - t0
tot["values"] = values
print("RESULT " + json.dumps(tot))
"""


def run_child(flags: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if flags:
        env["XLA_FLAGS"] = flags
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=900,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argument_parser("bench_compile_flags", __doc__.splitlines()[0])
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    samples = {name: [] for name in FLAG_SETS}
    for _ in range(rounds):
        for name, flags in FLAG_SETS.items():
            samples[name].append(run_child(flags))
    base = statistics.median(s["compile_s"] for s in samples["default"])
    ref = samples["default"][0]["values"]
    rows, summary = [], {}
    for name, runs in samples.items():
        comp = [r["compile_s"] for r in runs]
        med = statistics.median(comp)
        diff = max(abs(a - b) / max(abs(b), 1e-300) for r in runs for a, b in zip(r["values"], ref))
        summary[name] = {
            "flags": FLAG_SETS[name],
            "compile_s": comp,
            "compile_median_s": med,
            "ratio_to_default": med / base,
            "programs": runs[0]["programs"],
            "wall_s": [r["wall_s"] for r in runs],
            "max_rel_diff_vs_default": diff,
        }
        rows.append([name, f"{med:.2f}", f"{med / base:.2f}", runs[0]["programs"], f"{diff:.1e}"])
    print(
        format_table(
            ["flags", "compile (median s)", "ratio to default", "programs", "max rel. diff"],
            rows,
        )
    )
    payload = {"environment": environment(), "rounds": rounds, "results": summary}
    print(f"wrote {save_json(args.out, payload)}")


if __name__ == "__main__":
    main()
