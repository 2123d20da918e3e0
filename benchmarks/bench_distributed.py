"""Weak scaling of a multi-process ensemble: 1 process vs P processes, same work per process.

Each process runs ``per_process`` trajectories of the exact-score reverse SDE (Euler–Maruyama,
``steps`` log-SNR steps, two-cluster mixture in ``d`` dimensions, OU) with
:func:`gltheory.distributed.sample_split` and reduces the final states with
:func:`gltheory.distributed.ensemble_mean` (the fixed-order gather of per-block sums over
JAX's collectives). A timed call runs from a barrier (an all-gather) to the end of the
reduction, so it includes the communication; after one warm-up call (compilation), the median
of ``repeats`` calls is taken, and the time of a P-process run is that of its slowest process.

Weak-scaling efficiency = time(1 process, n) / time(P processes, P * n): 1.0 is ideal (the
ensemble grows P-fold at no cost). Processes are started with ``python -m gltheory.launch``.
On a CPU machine each process is limited to one XLA thread (``--threads-per-process``), so
that P processes on P free cores is the fair comparison; on a shared, loaded machine the
figure mostly measures the load.

Run: ``python benchmarks/bench_distributed.py [--quick] [--processes P] [--cpu]
[--devices-per-process K] [--out PATH]`` (see benchmarks/README.md for accelerator machines).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import REPO_ROOT, argument_parser, environment, format_table, save_json


def worker(args) -> None:
    """One process of the run: time ``repeats`` calls, process 0 writes the times."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    import gltheory as gl
    from gltheory import distributed as dist

    dist.initialize(config={"bench": vars(args)})
    d = args.dim
    proc = gl.OU(T=5.0)
    means = jnp.zeros((2, d)).at[0, 0].set(2.0).at[1, 0].set(-2.0)
    data = gl.GaussianMixture(means, jnp.array([0.5, 0.5]))
    ts = gl.time_grid(proc, args.steps, kind="log_snr")
    n = args.per_process * jax.process_count()

    def score_fn(x, t):
        return gl.score(data, proc, x, t)

    def one(seed):
        dist.allgather_bytes(b"start")  # barrier: every process starts together
        t0 = time.perf_counter()
        loc = dist.sample_split(score_fn, proc, jax.random.PRNGKey(seed), (n, d), ts=ts)
        res = dist.ensemble_mean(np.asarray(loc.solution.x), loc.start)
        return time.perf_counter() - t0, res

    first, _ = one(0)
    times = [one(1 + r)[0] for r in range(args.repeats)]
    slowest = dist.allgather_bytes(json.dumps({"first": first, "times": times}).encode())
    if dist.is_writer():
        per = [json.loads(b) for b in slowest]
        payload = {
            "processes": jax.process_count(),
            "local_devices": jax.local_device_count(),
            "platform": jax.devices()[0].platform,
            "device_kind": jax.devices()[0].device_kind,
            "first_call_s": max(p["first"] for p in per),
            "times_s": [max(p["times"][r] for p in per) for r in range(args.repeats)],
        }
        payload["median_s"] = statistics.median(payload["times_s"])
        payload["best_s"] = min(payload["times_s"])
        Path(args.result).write_text(json.dumps(payload))


def launch(args, processes: int, result: Path) -> dict:
    cmd = [sys.executable, "-m", "gltheory.launch", "-n", str(processes)]
    if args.cpu:
        cmd.append("--cpu")
    if args.devices_per_process:
        cmd += ["--devices-per-process", str(args.devices_per_process)]
    cmd += [
        "--",
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--result",
        str(result),
    ]
    cmd += ["--per-process", str(args.per_process), "--steps", str(args.steps)]
    cmd += ["--dim", str(args.dim), "--repeats", str(args.repeats)]
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several processes on one GPU
    if args.threads_per_process:
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "")
            + " --xla_cpu_multi_thread_eigen=false"
            + f" intra_op_parallelism_threads={args.threads_per_process}"
        ).strip()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO_ROOT, env=env)
    out = json.loads(result.read_text())
    out["launch_wall_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    p = argument_parser("bench_distributed", __doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2, help="P of the comparison (default 2)")
    p.add_argument("--cpu", action="store_true", help="JAX_PLATFORMS=cpu in every process")
    p.add_argument("--devices-per-process", type=int, default=None, metavar="K")
    p.add_argument(
        "--threads-per-process",
        type=int,
        default=None,
        metavar="T",
        help="XLA CPU threads per process (default: 1 with --cpu, else unset)",
    )
    p.add_argument("--per-process", type=int, default=None, help="trajectories per process")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.per_process is None:
        args.per_process = 2048 if args.quick else 8192
    if args.steps is None:
        args.steps = 100 if args.quick else 400
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.worker:
        worker(args)
        return
    if args.threads_per_process is None and args.cpu:
        args.threads_per_process = 1
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for procs in (1, args.processes):
            runs[procs] = launch(args, procs, Path(tmp) / f"p{procs}.json")
    t1, tp = runs[1]["median_s"], runs[args.processes]["median_s"]
    efficiency = t1 / tp
    efficiency_best = runs[1]["best_s"] / runs[args.processes]["best_s"]
    rows = [
        [
            f"{k} process(es)",
            k * args.per_process,
            f"{r['median_s']:.3f}",
            f"{r['first_call_s']:.2f}",
        ]
        for k, r in runs.items()
    ]
    print(format_table(["run", "trajectories", "median s", "first call s"], rows))
    print(
        f"weak-scaling efficiency, 1 -> {args.processes} processes "
        f"(time 1 / time {args.processes}, same work per process): {efficiency:.3f} "
        f"(medians), {efficiency_best:.3f} (best of {args.repeats})"
    )
    payload = {
        "benchmark": "bench_distributed",
        "config": {
            k: getattr(args, k)
            for k in (
                "quick",
                "processes",
                "cpu",
                "devices_per_process",
                "threads_per_process",
                "per_process",
                "steps",
                "dim",
                "repeats",
            )
        },
        "runs": {str(k): v for k, v in runs.items()},
        "weak_scaling_efficiency": efficiency,
        "weak_scaling_efficiency_best": efficiency_best,
        "environment": environment(),
    }
    print(f"wrote {save_json(args.out, payload)}")


if __name__ == "__main__":
    main()
