"""Import cost of ``gltheory`` over the cost of its dependencies alone.

Each measurement is a fresh ``python -c`` subprocess (nothing cached in memory; the OS file
cache is warm after the first round, as it is for a user). Three cases are interleaved round
by round so that load on a shared machine hits them alike:

- ``deps``: ``import jax, jax.numpy, equinox, optax, diffrax, optimistix, jaxtyping`` — what
  ``import gltheory`` cannot avoid;
- ``gltheory``: the same imports followed by ``import gltheory``;
- ``gltheory+report``: ``import gltheory.report, gltheory.experiments`` (what the ``gltheory
  report`` command loads, matplotlib included), for scale.

Each subprocess times its own imports (interpreter start-up excluded), as wall time
(``time.perf_counter``) and as the process's CPU time (``time.process_time``: on a shared
machine it does not count the time spent waiting for a core). The figure of merit is
``median(gltheory) - median(deps)``, in both clocks: the target is at most 0.3 s. Also recorded: whether matplotlib or the report modules
are loaded by ``import gltheory`` (they must not be).

Run: ``python benchmarks/bench_import.py [--quick] [--out PATH]``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from _harness import REPO_ROOT, argument_parser, environment, format_table, save_json

DEPS = "import jax, jax.numpy, equinox, optax, diffrax, optimistix, jaxtyping"
CASES = {
    "deps": DEPS,
    "gltheory": DEPS + "\nimport gltheory",
    "gltheory+report": DEPS + "\nimport gltheory, gltheory.report, gltheory.experiments",
}
PROBE = (
    "import sys, gltheory\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'"
    " or m.startswith(('gltheory.report', 'gltheory.experiments', 'gltheory.plotting')))\n"
    "print(len(heavy), ' '.join(heavy[:5]))"
)


def _time_once(code: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the imports in ``code``, in a fresh interpreter."""
    prog = (
        "import time\n_t0, _c0 = time.perf_counter(), time.process_time()\n"
        + code
        + "\nprint(repr(time.perf_counter() - _t0), repr(time.process_time() - _c0))"
    )
    out = subprocess.run(
        [sys.executable, "-c", prog],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall, cpu = out.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    args = argument_parser("bench_import", __doc__.splitlines()[0]).parse_args()
    rounds = 5 if args.quick else 15
    _time_once(CASES["gltheory+report"])  # warm the OS file cache and __pycache__
    times: dict[str, list[float]] = {name: [] for name in CASES}
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, code in CASES.items():
            w, c = _time_once(code)
            times[name].append(w)
            cpu[name].append(c)
    med = {name: statistics.median(v) for name, v in times.items()}
    med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
    extra = med["gltheory"] - med["deps"]
    extra_cpu = med_cpu["gltheory"] - med_cpu["deps"]
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split(maxsplit=1)
    n_heavy = int(probe[0])
    rows = [
        [name, f"{med[name]:.3f}", f"{min(v):.3f}", f"{max(v):.3f}", f"{med_cpu[name]:.3f}"]
        for name, v in times.items()
    ]
    print(format_table(["case", "median s", "min s", "max s", "median CPU s"], rows))
    print(
        f"import gltheory over its dependencies: {extra:+.3f} s wall, {extra_cpu:+.3f} s CPU "
        "(target <= 0.300 s)"
    )
    print(f"heavy modules loaded by `import gltheory`: {n_heavy}")
    payload = {
        "environment": environment(),
        "rounds": rounds,
        "times_s": times,
        "cpu_s": cpu,
        "median_s": med,
        "median_cpu_s": med_cpu,
        "gltheory_over_deps_s": extra,
        "gltheory_over_deps_cpu_s": extra_cpu,
        "target_s": 0.3,
        "target_met": extra <= 0.3 and extra_cpu <= 0.3,
        "heavy_modules_loaded": n_heavy,
    }
    print(f"wrote {save_json(args.out, payload)}")


if __name__ == "__main__":
    main()
