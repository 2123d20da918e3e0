r"""Ensembles across processes: the same results from one process or many.

A large ensemble is split along its batch axis across the processes of a JAX multi-process
run (``jax.distributed``: several GPU hosts, a TPU pod, or several local CPU processes
started by ``python -m gltheory.launch``). Nothing here is a transport of its own: processes
find each other through :func:`jax.distributed.initialize` and exchange their partial sums
with JAX's collectives (``jax.experimental.multihost_utils.process_allgather`` over the
global mesh of all processes' devices; on CPU, JAX's gloo collectives).

**Trajectories.** Trajectory ``i`` of an ensemble of ``n`` has key ``fold_in(key, i)`` and
its noise depends only on that key (:mod:`gltheory.sampling`), so a process that runs the
global index range ``[start, stop)`` (:func:`process_range`) computes exactly the rows
``start .. stop - 1`` of the single-process run: :func:`sample_split` calls
:func:`gltheory.sample` with ``trajectory_keys(key, stop - start, start)``, and, when the
process holds several devices, shards its rows over them. The run itself communicates
nothing; only the reductions do.

**Reductions, in a fixed order.** Every estimator reduces *per-trajectory values* (a
magnetisation, a structure factor $S(q)$ per sample, a class label, a 0/1 "copies agree")
in three steps:

1. the global index axis is cut into blocks of ``block`` trajectories, block ``b`` holding
   indices ``[b * block, (b + 1) * block)``; process ranges are whole blocks, so no block
   straddles two processes;
2. each process computes, on the host in float64 (NumPy), the sums of each of its blocks:
   ``count``, $\sum v^p$ for $p = 1..P$ (:class:`Moments`) or integer bin counts
   (:class:`Histogram`);
3. the per-block sums of all processes are gathered (every process receives all of them, in
   process order, which is global block order) and added **sequentially, block 0 first**, in
   float64 on every process.

So the result does not depend on the number of processes, on their devices, or on how a
long run was cut into batches (:class:`CheckpointedEnsemble`): it is bit for bit the result
of one process running the same estimator with the same ``block``. Against a plain
``jnp.mean`` over the whole batch it agrees to float round-off (a different summation order).
Integer results (histogram counts, cloning counts) are exact.

**Starting.** :func:`initialize` reads ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``
and ``JAX_PROCESS_ID`` (what the launcher sets; a SLURM batch script can set them from
``SLURM_*``), or, with ``GLTHEORY_DISTRIBUTED=auto``, lets JAX detect SLURM, Open MPI or a
Cloud TPU pod; it then checks that every process runs the same configuration
(:func:`check_same_config`). See ``docs/distributed.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Bool, Float64, Int64, PRNGKeyArray, Real

from . import _io
from .observables import CloningEstimate, cloning_probability
from .processes import AbstractProcess
from .sampling import (
    Indices,
    ScoreFn,
    Solution,
    TrajectoryKeys,
    key_batch_ndim,
    sample,
    trajectory_keys,
)

__all__ = [
    "ENV_COORDINATOR",
    "ENV_NUM_PROCESSES",
    "ENV_PROCESS_ID",
    "ENV_MODE",
    "initialize",
    "is_writer",
    "check_same_config",
    "config_digest",
    "global_mesh",
    "local_mesh",
    "allgather_bytes",
    "process_range",
    "LocalSample",
    "sample_split",
    "gather_rows",
    "Moments",
    "Histogram",
    "block_sums",
    "combine_blocks",
    "gather_blocks",
    "MeanSE",
    "HistogramResult",
    "BinderResult",
    "FractionResult",
    "mean_se",
    "binder",
    "fraction",
    "ensemble_mean",
    "ensemble_histogram",
    "ensemble_binder",
    "ensemble_fraction",
    "ensemble_cloning",
    "CheckpointedEnsemble",
]

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
"""``host:port`` of process 0's coordination service (read by JAX itself as well)."""
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
"""Number of processes of the run."""
ENV_PROCESS_ID = "JAX_PROCESS_ID"
"""This process's index, ``0 .. JAX_NUM_PROCESSES - 1``."""
ENV_MODE = "GLTHEORY_DISTRIBUTED"
"""``auto``: let :func:`jax.distributed.initialize` detect SLURM / Open MPI / a TPU pod."""

# Shape contracts of the public functions (checked at run time in the test suite). Integers the
# module validates itself (sizes, indices, blocks) may be Python or NumPy integers; per-trajectory
# values are real or boolean arrays with the batch along a given axis.
IntLike = int | np.integer
Values = Real[ArrayLike, "*values"] | Bool[ArrayLike, "*values"]
Edges = Real[ArrayLike, " n_edges"] | Sequence[float | int | np.floating | np.integer]


# ----------------------------------------------------------------------------------------------
# starting, configuration check, meshes, gathering bytes
# ----------------------------------------------------------------------------------------------


def _crash_fast_excepthook(exc_type, exc, tb):
    """Print the traceback and end the process at once.

    Under several processes an uncaught exception would otherwise wait in JAX's shutdown
    barrier for processes that are themselves waiting for this one in a collective; ending at
    once lets the launcher (or ``srun --kill-on-bad-exit``) stop the others promptly.
    """
    traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
    print(
        f"gltheory.distributed: process {jax.process_index()} of {jax.process_count()} "
        f"failed ({exc_type.__name__}); exiting at once so that the others are stopped.",
        file=sys.stderr,
        flush=True,
    )
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


def _env_int(name: str) -> int:
    text = os.environ.get(name, "")
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(
            f"environment variable {name} must be a non-negative integer, got {text!r}."
        ) from None


def initialize(config: Any = None, *, timeout: int = 300, crash_fast: bool = True) -> bool:
    """Join the multi-process run described by the environment, then check the configuration.

    Reads ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` and ``JAX_COORDINATOR_ADDRESS`` (set by
    ``python -m gltheory.launch``) and calls :func:`jax.distributed.initialize` with them; with
    ``GLTHEORY_DISTRIBUTED=auto`` instead, JAX detects the cluster (SLURM, Open MPI, Cloud
    TPU). With neither (or one process) nothing is started and the run is single-process.
    Must run before any JAX computation. Calling it again is a no-op (the check still runs).

    **Arguments:**

    - `config`: anything JSON-like (or with a stable ``repr``) that must be equal on every
      process (sizes, seeds, the command line); compared by :func:`check_same_config`, together
      with the versions of gltheory and JAX and the ``jax_enable_x64`` flag. A mismatch raises
      ``ValueError`` on every process before any work starts.
    - `timeout`: seconds to wait for the other processes to join.
    - `crash_fast`: install an exception hook that ends this process at once on an uncaught
      exception (so that the others are stopped instead of waiting in a collective).

    **Returns:** whether the run spans several processes.
    """
    if not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout must be a positive integer (seconds), got {timeout!r}.")
    mode = os.environ.get(ENV_MODE, "").strip().lower()
    if mode not in ("", "auto", "env", "off"):
        raise ValueError(f"{ENV_MODE} must be 'auto', 'env', 'off' or unset, got {mode!r}.")
    if not jax.distributed.is_initialized() and mode != "off":
        if ENV_NUM_PROCESSES in os.environ:
            n = _env_int(ENV_NUM_PROCESSES)
            pid = _env_int(ENV_PROCESS_ID)
            if n < 1 or not 0 <= pid < n:
                raise ValueError(
                    f"{ENV_PROCESS_ID}={pid} must lie in 0..{ENV_NUM_PROCESSES}-1 with "
                    f"{ENV_NUM_PROCESSES}={n} >= 1."
                )
            if n > 1:
                address = os.environ.get(ENV_COORDINATOR)
                if not address:
                    raise ValueError(
                        f"{ENV_COORDINATOR} (host:port of process 0) must be set when "
                        f"{ENV_NUM_PROCESSES}={n}."
                    )
                jax.distributed.initialize(address, n, pid, initialization_timeout=timeout)
        elif mode == "auto":
            jax.distributed.initialize(initialization_timeout=timeout)
    several = jax.process_count() > 1
    if several and crash_fast:
        sys.excepthook = _crash_fast_excepthook
    with _stdout_to_stderr(several):  # gloo announces its connections on the C++ stdout
        check_same_config(config)
    return several


@contextlib.contextmanager
def _stdout_to_stderr(active: bool):
    """Send what is written to file descriptor 1 to descriptor 2 while the block runs, so that
    the collectives' first connection messages do not mix into a program's stdout (``--json``)."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def is_writer() -> bool:
    """Whether this process writes files: process 0 (always true in a single-process run)."""
    return jax.process_index() == 0


def _canonical(obj: Any) -> str:
    try:
        return json.dumps(_io.to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    except TypeError:
        return repr(obj)


def config_digest(config: Any) -> bytes:
    """SHA-256 of ``config`` (canonical JSON, else its ``repr``) and of the versions of gltheory
    and JAX and the ``jax_enable_x64`` flag: 32 bytes."""
    try:
        gl_version = version("gltheory")
    except PackageNotFoundError:  # pragma: no cover - a checkout that is not installed
        gl_version = "unknown"
    text = _canonical(
        {
            "config": _canonical(config),
            "gltheory": gl_version,
            "jax": jax.__version__,
            "x64": bool(jax.config.jax_enable_x64),
        }
    )
    return hashlib.sha256(text.encode()).digest()


def allgather_bytes(data: bytes) -> list[bytes]:
    """Every process's ``data``, in process order, on every process (a JAX all-gather of the
    bytes as ``uint8``, padded to the longest; exact whatever the float settings).

    **Arguments:**

    - `data`: this process's bytes (any length; lengths may differ between processes).

    **Returns:** a list of ``jax.process_count()`` byte strings.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"data must be bytes, got {type(data).__name__}.")
    if jax.process_count() == 1:
        return [bytes(data)]
    n = np.frombuffer(np.array([len(data)], dtype="<u8").tobytes(), dtype=np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(n))
    lengths = [int(np.frombuffer(row.tobytes(), dtype="<u8")[0]) for row in lengths]
    buf = np.zeros(max(max(lengths), 1), dtype=np.uint8)
    buf[: len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)
    rows = np.asarray(multihost_utils.process_allgather(buf))
    return [rows[p, : lengths[p]].tobytes() for p in range(len(lengths))]


def check_same_config(config: Any, name: str = "config") -> None:
    """``ValueError`` naming `name` on every process unless all processes hold the same
    ``config`` (by :func:`config_digest`; a no-op in a single-process run).

    **Arguments:**

    - `config`: the configuration to compare (anything :func:`config_digest` accepts).
    - `name`: how the error message calls it.
    """
    if jax.process_count() == 1:
        return
    digests = allgather_bytes(config_digest(config))
    odd = [p for p, d in enumerate(digests) if d != digests[0]]
    if odd:
        raise ValueError(
            f"{name} differs across processes: process(es) {odd} do not match process 0 "
            f"(gltheory/JAX versions, jax_enable_x64 and the {name} itself must be equal on "
            f"all {len(digests)} processes; this is process {jax.process_index()})."
        )


def global_mesh() -> Mesh:
    """The mesh of all processes' devices, shape ``(process_count, local_device_count)``, axes
    ``("processes", "devices")`` (what the gathers run on; use it for global arrays)."""
    devices = np.array(jax.devices()).reshape(jax.process_count(), jax.local_device_count())
    return Mesh(devices, ("processes", "devices"))


def local_mesh() -> Mesh:
    """The mesh of this process's devices, axis ``("batch",)``: :func:`sample_split` shards
    its rows over it."""
    return Mesh(np.array(jax.local_devices()), ("batch",))


# ----------------------------------------------------------------------------------------------
# the split of the batch axis and sampling
# ----------------------------------------------------------------------------------------------


def _check_block(block: object) -> int:
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer (trajectories), got {block!r}.")
    return int(block)


def _who(process_index, process_count) -> tuple[int, int]:
    p = jax.process_index() if process_index is None else process_index
    c = jax.process_count() if process_count is None else process_count
    for value, name in ((c, "process_count"), (p, "process_index")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}.")
    if c < 1 or not 0 <= p < c:
        raise ValueError(
            f"process_index must lie in 0..process_count-1, got {p} with process_count={c}."
        )
    return int(p), int(c)


def process_range(
    n: IntLike,
    *,
    block: IntLike = 1,
    process_index: IntLike | None = None,
    process_count: IntLike | None = None,
) -> tuple[int, int]:
    """This process's global index range ``[start, stop)`` of an ensemble of ``n``.

    The ``ceil(n / block)`` blocks are dealt out contiguously, process ``p`` getting blocks
    ``[p * B // P, (p + 1) * B // P)``; only the last block may be short.

    **Arguments:**

    - `n`: ensemble size (``>= 1``).
    - `block`: trajectories per reduction block (:func:`block_sums`).
    - `process_index`, `process_count`: default this process's (override to simulate a split).

    **Returns:** ``(start, stop)``; ``start == stop`` when there are fewer blocks than processes.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    block = _check_block(block)
    p, c = _who(process_index, process_count)
    n_blocks = -(-int(n) // block)
    lo, hi = p * n_blocks // c, (p + 1) * n_blocks // c
    return min(lo * block, int(n)), min(hi * block, int(n))


class LocalSample(NamedTuple):
    """This process's part of an ensemble run by :func:`sample_split`.

    - `solution`: :func:`gltheory.sample`'s :class:`~gltheory.sampling.Solution` for the rows
      ``start .. stop - 1`` (observables keep their batch axis at position 1).
    - `start`, `stop`: the global index range.
    - `n`: the ensemble size.
    """

    solution: Solution
    start: int
    stop: int
    n: int


def _shard_rows(tree):
    devices = jax.local_devices()
    leaves = jax.tree.leaves(tree)
    if len(devices) == 1 or not leaves or any(v.shape[0] % len(devices) for v in leaves):
        return tree
    sharding = NamedSharding(local_mesh(), PartitionSpec("batch"))
    return jax.tree.map(lambda v: jax.device_put(v, sharding), tree)


def sample_split(
    score_fn: ScoreFn,
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    block: IntLike = 1,
    process_index: IntLike | None = None,
    process_count: IntLike | None = None,
    **sample_kwargs: Any,
) -> LocalSample:
    """Run this process's rows of the ensemble ``sample(score_fn, process, key, x, ts=ts)``.

    Rows ``start .. stop - 1`` (:func:`process_range`) use the trajectory keys
    ``fold_in(key, i)`` of their global index ``i``, so they equal those rows of the
    single-process run bit for bit. When the process holds several devices and its row count
    divides evenly, the rows are sharded over them (:func:`local_mesh`).

    **Arguments:**

    - `score_fn`, `process`, `ts`, `**sample_kwargs`: as in :func:`gltheory.sample` (`solver`,
      `method`, `observe`, `save_at`, `noise_block`).
    - `key`: a single PRNG key (the ensemble's), or the ``n`` per-trajectory keys of the whole
      ensemble (this process takes its rows).
    - `x`: the whole ensemble's initial states ``(n, *event)`` (this process takes its rows)
      or its shape tuple ``(n, *event)`` (the states are drawn from each trajectory's key).
    - `block`: reduction block size the ranges align with (give the estimators the same).
    - `process_index`, `process_count`: override to simulate a split in one process.

    **Returns:** a :class:`LocalSample`.
    """
    shaped = isinstance(x, (tuple, list)) and all(isinstance(s, (int, np.integer)) for s in x)
    if shaped:
        if len(x) < 1 or any(int(s) < 1 for s in x):
            raise ValueError(f"x as a shape must be (n, *event) with positive sizes, got {x}.")
        n = int(x[0])
    else:
        if jnp.ndim(x) < 1:
            raise ValueError(f"x must be states (n, *event) or a shape tuple, got {x!r}.")
        n = int(jnp.shape(x)[0])
    start, stop = process_range(
        n, block=block, process_index=process_index, process_count=process_count
    )
    if stop == start:
        raise ValueError(
            f"n={n} with block={block} leaves a process without rows; use "
            f"more trajectories or a smaller block than n / process_count."
        )
    if key_batch_ndim(key) == 0:
        keys = trajectory_keys(key, stop - start, start)
    else:
        if key.shape[0] != n:
            raise ValueError(f"key holds {key.shape[0]} trajectory keys but n={n}.")
        keys = key[start:stop]
    if shaped:
        keys = _shard_rows(keys)
        local_x = (stop - start, *(int(s) for s in x[1:]))
    else:
        keys, local_x = _shard_rows((keys, jnp.asarray(x)[start:stop]))
    sol = sample(score_fn, process, keys, local_x, ts=ts, **sample_kwargs)
    return LocalSample(sol, start, stop, n)


def gather_rows(local: ArrayLike, start: IntLike, n: IntLike, *, axis: int = 0) -> np.ndarray:
    """The whole ensemble's rows on every process: each process's ``local`` rows (global
    indices ``start .. start + len - 1`` along `axis`) gathered and placed, as a NumPy array.

    Meant for checks and small outputs (it holds all ``n`` rows on every host).

    **Arguments:**

    - `local`: this process's rows (any array; same dtype and trailing shape everywhere).
    - `start`: the global index of its first row.
    - `n`: the ensemble size.
    - `axis`: the batch axis.

    **Returns:** the array with ``n`` rows along `axis`.
    """
    arr = np.moveaxis(np.asarray(local), axis, 0)
    parts = allgather_bytes(_to_npz({"rows": arr, "start": np.int64(start)}))
    full = None
    for part in parts:
        d = _from_npz(part)
        rows, s = d["rows"], int(d["start"])
        if full is None:
            full = np.zeros((n,) + rows.shape[1:], rows.dtype)
        full[s : s + rows.shape[0]] = rows
    return np.moveaxis(full, 0, axis)


# ----------------------------------------------------------------------------------------------
# block sums and their fixed-order reduction
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Moments:
    r"""Statistic: per block the count and the power sums $\sum_i v_i^p$, $p = 1..$``max_power``
    (float64, elementwise over the value's trailing shape). Means and standard errors need
    ``max_power=2``; the Binder cumulant with its error needs 8."""

    max_power: int = 2

    def __post_init__(self):
        if isinstance(self.max_power, bool) or not isinstance(self.max_power, int):
            raise ValueError(f"max_power must be an integer >= 1, got {self.max_power!r}.")
        if self.max_power < 1:
            raise ValueError(f"max_power must be an integer >= 1, got {self.max_power!r}.")

    def spec(self) -> dict[str, Any]:
        return {"kind": "moments", "max_power": self.max_power}


@dataclasses.dataclass(frozen=True)
class Histogram:
    """Statistic: per block the integer counts of the values in the bins of ``edges``
    (``numpy.histogram``'s convention, last bin closed), plus below-range, above-range and
    NaN counts in three extra slots."""

    edges: tuple[float, ...]

    def __post_init__(self):
        e = np.asarray(self.edges, dtype=np.float64)
        if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
            raise ValueError(
                f"edges must be at least two finite, strictly increasing bin edges, got "
                f"{self.edges!r}."
            )
        object.__setattr__(self, "edges", tuple(float(v) for v in e))

    def spec(self) -> dict[str, Any]:
        return {"kind": "histogram", "edges": list(self.edges)}


Stat = Moments | Histogram


def _check_stat(stat: object, name: str = "stat") -> None:
    if not isinstance(stat, (Moments, Histogram)):
        raise ValueError(f"{name} must be a Moments(max_power) or Histogram(edges), got {stat!r}.")


def block_sums(
    values: Values, start: IntLike, stat: Stat, *, block: IntLike = 1, axis: int = 0
) -> Float64[np.ndarray, " n_blocks slots *value"] | Int64[np.ndarray, " n_blocks slots"]:
    """The sums of every block of this process's per-trajectory ``values`` (step 2 of the
    module docstring), on the host in float64 (``int64`` for a histogram).

    **Arguments:**

    - `values`: per-trajectory values, the batch along `axis` (global indices ``start ..``).
    - `start`: the global index of the first row; must be a multiple of `block`.
    - `stat`: :class:`Moments` or :class:`Histogram`.
    - `block`: trajectories per block.
    - `axis`: the batch axis of `values`.

    **Returns:** shape ``(n_blocks, 1 + max_power, *value_shape)`` for moments (slot 0 the
    count), ``(n_blocks, n_bins + 3)`` for a histogram.
    """
    _check_stat(stat)
    block = _check_block(block)
    if start % block:
        raise ValueError(f"start must be a multiple of block={block}, got {start}.")
    v = np.moveaxis(np.asarray(values), axis, 0).astype(np.float64)
    if v.shape[0] == 0:
        raise ValueError("values must hold at least one trajectory (batch axis of length 0).")
    out = []
    for lo in range(0, v.shape[0], block):
        rows = v[lo : lo + block]
        if isinstance(stat, Moments):
            sums = [np.full(rows.shape[1:], float(rows.shape[0]))]
            power = np.ones_like(rows)
            for _ in range(stat.max_power):
                power = power * rows
                sums.append(np.add.reduce(power, axis=0))
            out.append(np.stack(sums))
        else:
            edges = np.asarray(stat.edges)
            flat = rows.reshape(-1)
            finite = flat[~np.isnan(flat)]
            inside = finite[(finite >= edges[0]) & (finite <= edges[-1])]
            counts, _ = np.histogram(inside, bins=edges)
            extra = [
                np.sum(finite < edges[0]),
                np.sum(finite > edges[-1]),
                np.sum(np.isnan(flat)),
            ]
            out.append(np.concatenate([counts, extra]).astype(np.int64))
    return np.stack(out)


def combine_blocks(parts: Sequence[np.ndarray], total: np.ndarray | None = None) -> np.ndarray:
    """Add block sums sequentially, in the order given (step 3 of the module docstring).

    **Arguments:**

    - `parts`: arrays of block sums (:func:`block_sums`), in global block order (e.g. one per
      process, in process order).
    - `total`: a running total to continue from (``None``: start from the first block).

    **Returns:** the total, ``total + b_0 + b_1 + ...`` evaluated left to right.
    """
    for blocks in parts:
        for b in blocks:
            total = b.copy() if total is None else total + b
    if total is None:
        raise ValueError("parts must hold at least one block.")
    return total


def _to_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _from_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def gather_blocks(local: np.ndarray) -> list[np.ndarray]:
    """Every process's block sums, in process order (= global block order), on every process."""
    return [_from_npz(p)["b"] for p in allgather_bytes(_to_npz({"b": np.asarray(local)}))]


class MeanSE(NamedTuple):
    """A mean with its standard error ``sqrt(var / n)`` (``var`` with ``n - 1``), over ``n``."""

    mean: np.ndarray
    se: np.ndarray
    n: int


class HistogramResult(NamedTuple):
    """Integer bin counts (exact) and the counts below, above the range and NaN."""

    counts: np.ndarray
    edges: np.ndarray
    below: int
    above: int
    nan: int


class BinderResult(NamedTuple):
    r"""Binder cumulant $U = 1 - \langle m^4\rangle / (3\langle m^2\rangle^2)$, its delta-method
    standard error (from the sums up to $m^8$), and ``n``."""

    u: np.ndarray
    se: np.ndarray
    n: int


class FractionResult(NamedTuple):
    """A fraction ``count / n`` with its binomial standard error ``sqrt(phi (1 - phi) / n)``."""

    phi: np.ndarray
    se: np.ndarray
    count: np.ndarray
    n: int


def mean_se(total: Real[np.ndarray, " slots *value"]) -> MeanSE:
    """Mean and standard error from combined :class:`Moments` sums (``max_power >= 2``)."""
    if total.shape[0] < 3:
        raise ValueError("total must hold Moments sums with max_power >= 2.")
    n = total[0]
    mean = total[1] / n
    var = (total[2] - n * mean * mean) / (n - 1) if np.all(n > 1) else np.full_like(mean, np.nan)
    return MeanSE(mean, np.sqrt(np.maximum(var, 0.0) / n), int(np.ravel(n)[0]))


def binder(total: Real[np.ndarray, " slots *value"]) -> BinderResult:
    """Binder cumulant and its delta-method error from combined :class:`Moments` sums
    (``max_power=8``) of the order parameter ``m``."""
    if total.shape[0] < 9:
        raise ValueError("total must hold Moments sums with max_power=8 (Binder cumulant).")
    n = total[0]
    m2, m4, m6, m8 = (total[p] / n for p in (2, 4, 6, 8))
    u = 1.0 - m4 / (3.0 * m2 * m2)
    d4, d2 = -1.0 / (3.0 * m2 * m2), 2.0 * m4 / (3.0 * m2**3)
    var = d4 * d4 * (m8 - m4 * m4) + d2 * d2 * (m4 - m2 * m2) + 2 * d4 * d2 * (m6 - m4 * m2)
    return BinderResult(u, np.sqrt(np.maximum(var, 0.0) / n), int(np.ravel(n)[0]))


def fraction(total: Real[np.ndarray, " slots *value"]) -> FractionResult:
    """A fraction from combined :class:`Moments` sums of 0/1 values (exact counts)."""
    n = total[0]
    count = np.rint(total[1]).astype(np.int64)
    phi = count / n
    return FractionResult(phi, np.sqrt(phi * (1 - phi) / n), count, int(np.ravel(n)[0]))


def _reduce(values, start, stat, block, axis):
    local = block_sums(values, start, stat, block=block, axis=axis)
    return combine_blocks(gather_blocks(local))


def ensemble_mean(values: Values, start: IntLike, *, block: IntLike = 1, axis: int = 0) -> MeanSE:
    """Mean and standard error of per-trajectory values over all processes (fixed order).

    **Arguments:**

    - `values`: this process's per-trajectory values (batch along `axis`), e.g. a
      magnetisation ``(n_local,)``, or a structure factor per sample ``(n_local, *q)``.
    - `start`: the global index of its first row (``LocalSample.start``).
    - `block`: the reduction block (as given to :func:`sample_split`).
    - `axis`: the batch axis (1 for ``sample``'s observables ``(n_saved, n, ...)``).

    **Returns:** a :class:`MeanSE`, identical on every process and for any process count.
    """
    return mean_se(_reduce(values, start, Moments(2), block, axis))


def ensemble_histogram(
    values: Values, start: IntLike, *, edges: Edges, block: IntLike = 1, axis: int = 0
) -> HistogramResult:
    """Histogram of per-trajectory values (every entry counts) over all processes; exact."""
    stat = Histogram(tuple(np.asarray(edges, dtype=np.float64).tolist()))
    total = _reduce(values, start, stat, block, axis)
    k = len(stat.edges) - 1
    return HistogramResult(
        total[:k], np.asarray(stat.edges), int(total[k]), int(total[k + 1]), int(total[k + 2])
    )


def ensemble_binder(
    m: Real[ArrayLike, "*values"], start: IntLike, *, block: IntLike = 1, axis: int = 0
) -> BinderResult:
    """Binder cumulant of the per-trajectory order parameter ``m`` over all processes."""
    return binder(_reduce(m, start, Moments(8), block, axis))


def ensemble_fraction(
    flags: Values, start: IntLike, *, block: IntLike = 1, axis: int = 0
) -> FractionResult:
    """Fraction of per-trajectory 0/1 flags over all processes; exact counts."""
    return fraction(_reduce(np.asarray(flags, dtype=np.float64), start, Moments(1), block, axis))


def ensemble_cloning(
    score_fn: ScoreFn,
    process: AbstractProcess,
    key: PRNGKeyArray,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    branch_index: Indices | ArrayLike,
    classify: Callable[[Array], Array],
    n_copies: int = 2,
    method: str = "euler_maruyama",
    noise_block: IntLike | None = None,
) -> CloningEstimate:
    r""":func:`gltheory.observables.cloning_probability` with the trajectories split across
    processes: each runs its rows (global keys), the agreeing counts are added (integers, exact)
    and $\hat\phi = k / n$, ${\rm se} = \sqrt{\hat\phi(1-\hat\phi)/n}$ are formed as the
    single-process estimator forms them (so the result equals it bit for bit).

    **Arguments:** as :func:`~gltheory.observables.cloning_probability`; `key` must be a single
    key (trajectory ``i`` branches from ``fold_in(key, i)``), `x` the whole ensemble's states
    or its shape.

    **Returns:** a :class:`~gltheory.observables.CloningEstimate` (identical on every process).
    """
    if key_batch_ndim(key) != 0:
        raise ValueError("key must be a single PRNG key (the ensemble's), got a batch of keys.")
    shaped = isinstance(x, (tuple, list))
    n = int(x[0]) if shaped else int(jnp.shape(x)[0])
    start, stop = process_range(n)
    if stop == start:
        raise ValueError(f"n={n} is smaller than the number of processes.")
    local_x = (stop - start, *x[1:]) if shaped else jnp.asarray(x)[start:stop]
    est = cloning_probability(
        score_fn,
        process,
        trajectory_keys(key, stop - start, start),
        local_x,
        ts=ts,
        branch_index=branch_index,
        classify=classify,
        n_copies=n_copies,
        method=method,
        noise_block=noise_block,
    )
    m = stop - start
    phi_local = np.atleast_1d(np.asarray(est.phi, dtype=np.float64))
    bad = np.atleast_1d(np.asarray(est.n_nonfinite, dtype=np.int64))
    count = np.where(bad > 0, 0, np.rint(phi_local * m)).astype(np.int64)
    parts = [_from_npz(p) for p in allgather_bytes(_to_npz({"count": count, "bad": bad}))]
    count = sum((p["count"] for p in parts[1:]), parts[0]["count"])
    bad = sum((p["bad"] for p in parts[1:]), parts[0]["bad"])
    dtype = np.asarray(est.phi).dtype
    phi = (count / np.asarray(n, dtype)).astype(dtype)
    se = np.sqrt(phi * (1 - phi) / np.asarray(n, dtype)).astype(dtype)
    phi = np.where(bad > 0, np.nan, phi).astype(dtype)
    se = np.where(bad > 0, np.nan, se).astype(dtype)
    t = np.asarray(est.t)
    if np.ndim(est.phi) == 0:
        phi, se, bad = phi[0], se[0], bad[0]
    return CloningEstimate(phi=phi, se=se, n=n, t=t, n_nonfinite=bad)


# ----------------------------------------------------------------------------------------------
# checkpointed long runs
# ----------------------------------------------------------------------------------------------


class CheckpointedEnsemble:
    """An ensemble run batch after batch whose accumulated statistics are saved atomically
    every ``every`` batches, and that resumes from its checkpoint to the identical result.

    Batch ``b`` covers the global trajectories ``[b * batch_size, (b + 1) * batch_size)``,
    split across processes in whole blocks (:func:`process_range`). Each statistic's total is
    the sequential float64 sum of the block sums in global block order (module docstring), so
    the result does not depend on the number of processes, on the batch size (a multiple of
    ``block``), nor on where a run was interrupted: the checkpoint holds the exact float64
    totals and the index of the next batch.

    Every process writes the same checkpoint (same bytes of data) with
    :func:`gltheory._io.atomic_write`, so a reader never sees half a file and a run works with
    or without a file system shared by the hosts; on resume, the processes check that they
    read the same state (``ValueError`` naming `checkpoint` otherwise).

    **Arguments:**

    - `path`: the checkpoint file (``.npz``); its folder must exist.
    - `stats`: ``{name: Moments(...) | Histogram(...)}``.
    - `n_batches`: number of batches of the whole run.
    - `batch_size`: trajectories per batch (a multiple of `block`).
    - `block`: trajectories per reduction block.
    - `every`: save after every ``every`` batches (and after the last).
    - `meta`: the run's settings (seed, sizes, ...), part of the checkpoint's fingerprint: a
      checkpoint written with other settings is refused.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        stats: Mapping[str, Stat],
        n_batches: int,
        batch_size: int,
        block: int = 1,
        every: int = 1,
        meta: Any = None,
    ):
        for value, name in ((n_batches, "n_batches"), (batch_size, "batch_size"), (every, "every")):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        self.block = _check_block(block)
        if batch_size % self.block:
            raise ValueError(
                f"batch_size must be a multiple of block={self.block}, got {batch_size}."
            )
        if not isinstance(stats, Mapping) or not stats:
            raise ValueError("stats must be a non-empty mapping {name: Moments | Histogram}.")
        for name, stat in stats.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"stats names must be identifiers, got {name!r}.")
            _check_stat(stat, f"stats[{name!r}]")
        self.path = Path(path)
        self.stats = dict(stats)
        self.n_batches, self.batch_size, self.every = int(n_batches), int(batch_size), int(every)
        self.meta = meta
        self.fingerprint = hashlib.sha256(
            _canonical(
                {
                    "stats": {k: s.spec() for k, s in sorted(self.stats.items())},
                    "n_batches": self.n_batches,
                    "batch_size": self.batch_size,
                    "block": self.block,
                    "meta": _canonical(meta),
                }
            ).encode()
        ).digest()
        self.next_batch = 0
        self.totals: dict[str, np.ndarray] = {}
        self.resumed_from: int | None = None

    # -- the file ------------------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {
            "fingerprint": np.frombuffer(self.fingerprint, dtype=np.uint8),
            "next_batch": np.int64(self.next_batch),
        }
        out |= {f"total_{k}": v for k, v in self.totals.items()}
        return out

    def save(self) -> None:
        """Write the checkpoint atomically (every process writes the same data)."""
        arrays = self._arrays()
        _io.atomic_write(self.path, lambda f: np.savez(f, **arrays))

    def load(self) -> bool:
        """Read the checkpoint if there is one; **returns** whether a state was loaded.

        ``ValueError`` naming `checkpoint` if it was written for other settings, or if the
        processes read different states.
        """
        state = (0, b"")
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
            if data.get("fingerprint", np.zeros(0, np.uint8)).tobytes() != self.fingerprint:
                raise ValueError(
                    f"checkpoint {self.path} was written for other settings (stats, sizes, "
                    f"block or meta differ); delete it or choose another path."
                )
            self.next_batch = int(data["next_batch"])
            self.totals = {k[len("total_") :]: v for k, v in data.items() if k.startswith("total_")}
            self.resumed_from = self.next_batch
            state = (self.next_batch, hashlib.sha256(_to_npz(self._arrays())).digest())
        check_same_config({"next_batch": state[0], "state": state[1].hex()}, name="checkpoint")
        return self.resumed_from is not None

    # -- running -------------------------------------------------------------------------------

    def batch_range(self, b: int) -> tuple[int, int]:
        """This process's global index range ``[start, stop)`` in batch ``b``."""
        lo, hi = process_range(self.batch_size, block=self.block)
        return b * self.batch_size + lo, b * self.batch_size + hi

    def run(
        self,
        batch_fn: Callable[[int, int, int], Mapping[str, Any]],
        *,
        stop_after: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Run (or resume) the remaining batches.

        **Arguments:**

        - `batch_fn`: ``batch_fn(b, start, stop) -> {name: values}``, this process's
          per-trajectory values (batch on axis 0) of global trajectories ``start .. stop - 1``
          of batch ``b`` (e.g. from ``sample`` with ``trajectory_keys(key, stop - start,
          start)``), for every statistic.
        - `stop_after`: return after this many batches of this call (a planned interruption).

        **Returns:** the totals ``{name: combined block sums}`` (see :meth:`result`).
        """
        self.load()
        done = 0
        while self.next_batch < self.n_batches:
            if stop_after is not None and done >= stop_after:
                break
            b = self.next_batch
            start, stop = self.batch_range(b)
            values = batch_fn(b, start, stop)
            missing = set(self.stats) - set(values)
            if missing:
                raise ValueError(f"batch_fn must return values for {sorted(missing)}.")
            local = {
                k: block_sums(values[k], start, s, block=self.block) for k, s in self.stats.items()
            }
            parts = [_from_npz(p) for p in allgather_bytes(_to_npz(local))]
            for k in self.stats:
                self.totals[k] = combine_blocks([p[k] for p in parts], self.totals.get(k))
            self.next_batch = b + 1
            done += 1
            if self.next_batch % self.every == 0 or self.next_batch == self.n_batches:
                self.save()
        return dict(self.totals)

    def result(self, name: str) -> MeanSE | HistogramResult | BinderResult:
        """The finished statistic ``name``: :class:`MeanSE` for :class:`Moments` (with
        ``max_power >= 2``), :class:`HistogramResult` for :class:`Histogram`; use
        :func:`binder` / :func:`fraction` on ``totals[name]`` for the others."""
        if name not in self.totals:
            raise ValueError(f"name must be one of the accumulated stats {sorted(self.totals)}.")
        total, stat = self.totals[name], self.stats[name]
        if isinstance(stat, Histogram):
            k = len(stat.edges) - 1
            return HistogramResult(
                total[:k],
                np.asarray(stat.edges),
                int(total[k]),
                int(total[k + 1]),
                int(total[k + 2]),
            )
        return mean_se(total)
