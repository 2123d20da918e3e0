"""Cold start: a fresh process's time to its first result, with an empty and a warm cache.

Each measurement is a fresh ``python -c`` subprocess that imports ``gltheory``, enables the
persistent compilation cache (``gltheory.config.enable_compilation_cache(DIR)``) and computes
one first result, ended by ``jax.block_until_ready``:

- ``sampler``: the README's sampler (``jax.jit`` of ``gl.sample`` with ``gl.score`` of
  ``TwoPoint(1.0, dim=1, weight=0.8)`` on ``OU(T=5)``, 4096 trajectories, 500 Euler–Maruyama
  steps on a log-SNR grid, an in-loop observable at 3 saved times);
- ``critical_times``: ``gl.critical_times(gl.TwoPoint(1.0), gl.OU())``;
- ``els_score``: ``gl.score`` of ``gl.ELS(gl.data.stripes((32, 32), width=4), window=3)`` on
  one 32×32 state at t = 0.5 (``gl.patch.score``).

Every round runs, for each case in turn, an ``empty`` process (a new, empty cache directory)
and then a ``warm`` process (the same directory, second process): cases and states are
interleaved so that load on a shared machine hits them alike. Each subprocess reports, in wall
time (``time.perf_counter``) and in its own CPU time (``time.process_time``: user + sys of all
its threads, which does not count time spent waiting for a core), the import (``import jax,
gltheory``) and the first result (everything after the import: tracing, compiling or loading
from the cache, running). It also counts the programs JAX refused to store because they use
host callbacks (read from JAX's compiler log): it must be 0. Target: first result <= 2 s with
a warm cache, for each case.

Run: ``python benchmarks/bench_coldstart.py [--quick] [--out PATH]``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import REPO_ROOT, argument_parser, environment, format_table, save_json

CASES = {
    "sampler": """
process = gl.OU(T=5.0)
data = gl.TwoPoint(1.0, dim=1, weight=0.8)
score_fn = lambda x, t: gl.score(data, process, x, t)
ts = gl.time_grid(process, 500, kind="log_snr")
run = jax.jit(lambda key, ts: gl.sample(score_fn, process, key, (4096, 1), ts=ts,
              solver=gl.EulerMaruyama(), observe=lambda x, t: jnp.mean(x > 0),
              save_at=[0, 250, 500]))
out = run(jax.random.PRNGKey(0), ts).observables
""",
    "critical_times": """
out = gl.critical_times(gl.TwoPoint(1.0), gl.OU()).t_score
""",
    "els_score": """
els = gl.ELS(gl.data.stripes((32, 32), width=4), window=3)
out = gl.score(els, gl.OU(), jnp.zeros((1, 32, 32)), 0.5)
""",
}

CHILD = """
import time
_t0, _c0 = time.perf_counter(), time.process_time()
import logging, json, os, sys
import jax, jax.numpy as jnp
import gltheory as gl
_t1, _c1 = time.perf_counter(), time.process_time()
gl.config.enable_compilation_cache(sys.argv[1])
_refused = []
class _Log(logging.Handler):
    def emit(self, record):
        if "host callbacks" in record.getMessage():
            _refused.append(record.getMessage())
_lg = logging.getLogger("jax._src.compiler")
_lg.setLevel(logging.DEBUG)
_lg.addHandler(_Log())
_lg.propagate = False
{code}
jax.block_until_ready(out)
_t2, _c2 = time.perf_counter(), time.process_time()
print(json.dumps(dict(import_s=_t1 - _t0, import_cpu_s=_c1 - _c0, first_s=_t2 - _t1,
                      first_cpu_s=_c2 - _c1, refused=len(_refused),
                      entries=len(os.listdir(sys.argv[1])))))
"""

STATES = ("empty", "warm")
FIGURES = ("import_s", "import_cpu_s", "first_s", "first_cpu_s")


def _run_once(case: str, cache_dir: Path) -> dict:
    """One fresh interpreter computing ``case``'s first result with ``cache_dir`` as cache."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(code=CASES[case]), str(cache_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    args = argument_parser("bench_coldstart", __doc__.splitlines()[0]).parse_args()
    rounds = 1 if args.quick else 3
    runs: dict[str, dict[str, list[dict]]] = {c: {s: [] for s in STATES} for c in CASES}
    with tempfile.TemporaryDirectory(prefix="gltheory-coldstart-") as tmp:
        _run_once("critical_times", Path(tmp) / "warmup")  # OS file cache and __pycache__
        for r in range(rounds):
            for case in CASES:
                cache_dir = Path(tmp) / f"{case}-{r}"
                for state in STATES:  # empty: a new directory; warm: the same one, again
                    runs[case][state].append(_run_once(case, cache_dir))
    med = {
        c: {s: {f: statistics.median(x[f] for x in runs[c][s]) for f in FIGURES} for s in STATES}
        for c in CASES
    }
    rows = [
        [case, state]
        + [f"{med[case][state][f]:.2f}" for f in FIGURES]
        + [max(x["refused"] for x in runs[case][state]), runs[case][state][-1]["entries"]]
        for case in CASES
        for state in STATES
    ]
    headers = ["case", "cache", "import s", "import CPU s", "first s", "first CPU s"]
    print(format_table(headers + ["refused (callbacks)", "cache entries"], rows))
    met = {c: med[c]["warm"]["first_s"] <= 2.0 for c in CASES}
    print(
        "target first result <= 2 s with a warm cache: "
        + ", ".join(f"{c} {m}" for c, m in met.items())
    )
    payload = {
        "environment": environment(),
        "rounds": rounds,
        "runs": runs,
        "median": med,
        "target_first_s": 2.0,
        "target_met": met,
        "refused_for_host_callbacks": {
            c: max(x["refused"] for s in STATES for x in runs[c][s]) for c in CASES
        },
    }
    print(f"wrote {save_json(args.out, payload)}")


if __name__ == "__main__":
    main()
