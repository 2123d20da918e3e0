"""Small timing harness shared by the benchmark scripts (not part of the package).

- :func:`timeit` calls a function once as a warm-up (compilation for a ``jit``-ted function),
  then times ``repeats`` further calls, each ended by ``jax.block_until_ready``, and reports the
  best and the median.
- :func:`timeit_interleaved` does the same for several cases at once, timing them round-robin
  (case A, case B, ..., case A, ...) so that a burst of load on a shared machine hits all cases
  alike; use it for the figures that are divided by each other.
- :func:`environment` records what the numbers were measured on.
- :func:`save_json` writes a result file atomically (temp file in the same folder, ``fsync``,
  ``os.replace``), by default to ``benchmarks/results/<name>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

# Run from a checkout without installing: `python benchmarks/bench_x.py` puts benchmarks/ on
# sys.path, not the repository root.
if str(REPO_ROOT) not in sys.path:
    try:
        import gltheory  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402


def _summary(samples: list[tuple[float, float]], first_call_s: float) -> dict[str, Any]:
    times = [w for w, _ in samples]
    cpu = [c for _, c in samples]
    return {
        "best_s": min(times),
        "median_s": statistics.median(times),
        "times_s": times,
        "cpu_best_s": min(cpu),
        "cpu_median_s": statistics.median(cpu),
        "repeats": len(times),
        "first_call_s": first_call_s,
    }


def _call(fn: Callable, args: tuple) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of one blocking call."""
    c0, t0 = time.process_time(), time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0, time.process_time() - c0


def timeit(fn: Callable, *args, repeats: int = 7) -> dict[str, Any]:
    """Time ``fn(*args)``: one warm-up call, then ``repeats`` timed calls.

    Each call is ended by ``jax.block_until_ready`` (a no-op on NumPy outputs), so the time is
    that of the work, not of the asynchronous dispatch.

    **Returns:** a dict with ``best_s``, ``median_s``, ``times_s`` (wall-clock, every repeat),
    ``cpu_best_s``, ``cpu_median_s`` (CPU time of this process over all its threads: less
    sensitive than wall time to other processes on a shared machine, but it counts both cores
    when XLA runs an op on two threads), ``repeats`` and ``first_call_s`` (the warm-up, i.e.
    tracing + compilation + one run).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    first = _call(fn, args)[0]
    return _summary([_call(fn, args) for _ in range(repeats)], first)


def timeit_interleaved(
    cases: Mapping[Hashable, tuple[Callable, tuple]], *, repeats: int = 7
) -> dict[Hashable, dict[str, Any]]:
    """Time several ``name -> (fn, args)`` cases round-robin.

    Every case is warmed up first; then each of the ``repeats`` rounds times every case once.
    Returns ``{name: timeit-style dict}``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    first = {name: _call(fn, args)[0] for name, (fn, args) in cases.items()}
    times: dict[Hashable, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (fn, args) in cases.items():
            times[name].append(_call(fn, args))
    return {name: _summary(times[name], first[name]) for name in cases}


def _git_revision() -> dict[str, Any]:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "gltheory"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        return {"commit": rev, "gltheory_dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "gltheory_dirty": None}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment() -> dict[str, Any]:
    """Versions, device and machine the benchmark ran on."""
    import jaxlib

    dev = jax.devices()[0]
    env: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "device_platform": dev.platform,
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
    }
    for mod in ("diffrax", "equinox", "gltheory"):
        try:
            env[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            env[mod] = None
    env.update(_git_revision())
    return env


def default_out(name: str) -> Path:
    """``benchmarks/results/<name>.json``."""
    return RESULTS_DIR / f"{name}.json"


def save_json(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as strict JSON to ``path`` atomically (``gltheory._io``); returns the path.

    Arrays become lists and non-finite numbers ``null``; the text goes to a temporary file in
    the destination folder, is ``fsync``-ed and ``os.replace``-d over ``path``.
    """
    from gltheory._io import atomic_write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, dict(payload))


def argument_parser(name: str, description: str) -> argparse.ArgumentParser:
    """``--quick`` and ``--out`` (default ``benchmarks/results/<name>.json``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller problem, fewer repeats (< 1 min)")
    p.add_argument(
        "--out",
        type=Path,
        default=default_out(name),
        help=f"where to write the JSON results (default: benchmarks/results/{name}.json)",
    )
    return p


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table, right-aligned except the first column."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, r in enumerate(cells):
        parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(parts))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
