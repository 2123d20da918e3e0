r"""The trajectory layer: keys, block noise, the loop over reverse time, and the samplers.

The generative dynamics runs the forward time ``t`` down a decreasing grid ``ts`` ($t_0=T$
side first); step ``i`` goes from ``ts[i]`` to ``ts[i + 1]``. How a step is taken is a solver's
business (:mod:`gltheory.solvers`: Euler–Maruyama, stochastic Heun, Heun on the
probability-flow ODE, DDIM, EDM Heun); this module owns the loop around it:

- :func:`integrate` is the one loop over reverse time in the package: it runs a user's
  ``body(carry, i, z)`` for every step with that step's trajectory noise ``z``;
- :func:`sample` integrates a score with a solver and records observables inside the loop;
- :func:`states_at` and :func:`branch` give the states at chosen times and continue clones
  of them (branch-and-continue), the building blocks of cloning and response measurements.

**Randomness.** Each trajectory has its own key (``trajectory_keys(key, n)`` =
``fold_in(key, i)``), split into a noise key and an initial-state key
(:func:`split_trajectory_keys`). Its Gaussian increments are drawn in blocks of
``noise_block`` steps, block ``j`` from ``fold_in(noise_key, j)`` (:func:`block_noise`), with
blocks aligned on absolute step indices. Drawing a block at once is several times faster than
one draw per step (see ``benchmarks/``), and a trajectory's noise at step ``i`` depends only on
its key, ``i`` and ``noise_block``: never on the batch size, chunking, the number of devices,
or where along the grid a run starts.

**Score functions** are called as ``score_fn(x, t)`` with the whole batch ``x`` of shape
``(n, *event_shape)`` and a scalar ``t``; every score in :mod:`gltheory.scores` is batched.
"""

# SOLVER-LAYER-READY

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Key, PRNGKeyArray, PyTree, Real, UInt32

from ._checks import (
    PROCESS,
    as_float_array,
    check_callable,
    check_instance,
    check_values,
    concrete_value,
    guard,
    trust,
    trusted,
)
from .processes import VE, AbstractProcess
from .solvers import METHODS as _SOLVER_METHODS, AbstractSolver, as_solver

__all__ = [
    "Solution",
    "count_nonfinite",
    "nonfinite_rows",
    "sample",
    "sample_diffrax",
    "time_grid",
    "check_time_grid",
    "trajectory_keys",
    "split_trajectory_keys",
    "block_noise",
    "trajectory_noise",
    "default_noise_block",
    "integrate",
    "states_at",
    "branch",
    "METHODS",
]

Method = Literal["euler_maruyama", "heun_sde", "heun", "ddim", "edm_heun"]
METHODS: tuple[str, ...] = tuple(_SOLVER_METHODS)
DEFAULT_NOISE_BLOCK = 32

# Shape contracts of the public functions (checked at run time in the test suite). A single
# PRNG key is jaxtyping's ``PRNGKeyArray`` (typed, or raw uint32 key data); one key per
# trajectory is a 1-D batch of them; keys of any batch shape (e.g. one per branch row):
TrajectoryKeys = Key[Array, " n_keys"] | UInt32[Array, "n_keys 2"] | UInt32[Array, "n_keys 4"]
KeyBatch = Key[Array, "*keys"] | UInt32[Array, "*keys 2"] | UInt32[Array, "*keys 4"]
ScoreFn = Callable[[Array, Array], Array]
Indices = Sequence[int | np.integer] | Int[ArrayLike, "*n_indices"]
PositiveInt = int | np.integer


def default_noise_block(event_shape: Sequence[int | np.integer]) -> int:
    r"""Default steps per noise draw: about 128 numbers per trajectory per draw, clipped to [2, 32].

    Depends only on the event size $d$ (never on the batch), so the noise stays reproducible:
    32 for $d\le4$, 2 for a 64x64 lattice. Measured in ``benchmarks/bench_sampler.py``: a
    block keeps the draw in cache while amortising one ``fold_in`` per trajectory.
    """
    d = int(np.prod(event_shape, dtype=np.int64))
    return max(2, min(DEFAULT_NOISE_BLOCK, -(-128 // max(d, 1))))


class Solution(NamedTuple):
    """Result of :func:`sample`.

    - `x`: final states, shape ``(n, *event_shape)``.
    - `ts`: the time grid used, shape ``(n_steps + 1,)``.
    - `saved_ts`: the times at which ``observe`` was recorded, shape ``(n_saved,)``.
    - `observables`: the pytree returned by ``observe``, stacked along a new leading axis
      of length ``n_saved`` (``None`` when no ``observe`` was given).
    - `n_nonfinite`: the number of trajectories whose final state holds a NaN or Inf entry,
      an int32 scalar array (``count_nonfinite(x, len(event_shape))``). The sampler never
      drops or repairs such trajectories (a NaN or Inf in the initial states, or a score that
      overflows, propagates as in ``jax.numpy``); check this count before averaging ``x``.
    """

    x: Array
    ts: Array
    saved_ts: Array
    observables: Any
    n_nonfinite: Array


def nonfinite_rows(x: Real[ArrayLike, "*x"], axis: int = 0) -> Bool[Array, " n"]:
    """Which trajectories of ``x`` (indices along ``axis``, default the leading one) hold a NaN
    or Inf anywhere in the rest of their entries: booleans of length ``x.shape[axis]``. The
    per-trajectory form of :func:`count_nonfinite`, used by the Monte Carlo estimators to pair
    or discard trajectories. Pure (works under ``jit``)."""
    v = jnp.moveaxis(jnp.asarray(x), axis, 0)
    return ~jnp.all(jnp.isfinite(v.reshape(v.shape[0], -1)), axis=1)


def count_nonfinite(x: Real[ArrayLike, "*x"], event_ndim: int = 1) -> Int[Array, ""]:
    """The number of trajectories (batch elements) of ``x`` with a NaN or Inf in their event.

    ``x`` has shape ``(*batch, *event)`` with ``event_ndim`` trailing event axes; a batch
    element counts once however many of its entries are non-finite. For states
    ``(n, *event)`` this counts the rows of the leading axis; for :func:`branch`'s output
    ``(n_branch, m, *event)`` it counts all ``n_branch * m`` clones. :func:`sample` reports
    this count as ``Solution.n_nonfinite``; :func:`branch` and :func:`sample_diffrax` return
    plain arrays, so Monte Carlo estimators built on them call this function on the final
    states. Pure (works under ``jit``).

    **Arguments:**

    - `x`: the states, any real dtype.
    - `event_ndim`: the number of trailing event axes (``0 <= event_ndim <= x.ndim``).

    **Returns:** an int32 scalar array.
    """
    if isinstance(event_ndim, bool) or not isinstance(event_ndim, int | np.integer):
        raise ValueError(f"event_ndim must be an integer >= 0, got {event_ndim!r}.")
    x = jnp.asarray(x)
    if not 0 <= event_ndim <= x.ndim:
        raise ValueError(
            f"event_ndim must lie in 0..x.ndim = 0..{x.ndim} (x has shape {x.shape}), "
            f"got {event_ndim}."
        )
    if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
        raise ValueError(f"x must be a real array, got dtype {x.dtype}.")
    bad = ~jnp.isfinite(x)
    if event_ndim:
        bad = jnp.any(bad, axis=tuple(range(x.ndim - int(event_ndim), x.ndim)))
    return jnp.sum(bad, dtype=jnp.int32)


# ----------------------------------------------------------------------------------------------
# keys and noise
# ----------------------------------------------------------------------------------------------


def _is_typed_key(key) -> bool:
    return isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)


def _check_key(key: object) -> None:
    """``ValueError`` naming `key` unless it is a typed PRNG key array or raw uint32 key data."""
    if _is_typed_key(key):
        return
    dtype = getattr(key, "dtype", None)
    if dtype is None:  # not an array: a string, a Python int, a list, None, ...
        raise ValueError(
            f"key must be a JAX PRNG key (e.g. jax.random.key(0)) or a batch of keys, got "
            f"{type(key).__name__} {key!r}."
        )
    if dtype != jnp.uint32:
        raise ValueError(
            f"key must be a JAX PRNG key (e.g. jax.random.key(0)) or a batch of keys, got "
            f"an array of dtype {dtype}."
        )


def key_batch_ndim(key: ArrayLike) -> int:
    """0 for a single PRNG key, 1 for a batch of keys; ``ValueError`` naming `key` otherwise."""
    _check_key(key)
    nd = key.ndim if _is_typed_key(key) else jnp.ndim(key) - 1
    if nd not in (0, 1):
        raise ValueError(
            f"key must be a single PRNG key or a 1-D batch of keys (one per trajectory), got "
            f"shape {jnp.shape(key)}."
        )
    return nd


def trajectory_keys(
    key: PRNGKeyArray, n: PositiveInt, start: int | Int[ArrayLike, ""] = 0
) -> TrajectoryKeys:
    """Per-trajectory keys ``fold_in(key, start + i)``, ``i < n``.

    Trajectory ``i`` of a batch sampled with ``key`` uses key ``i`` of this list, so
    ``sample(..., trajectory_keys(key, n, start), ...)`` reproduces trajectories
    ``start .. start+n-1`` of a larger batch exactly (chunking).
    """
    if key_batch_ndim(key) != 0:
        raise ValueError("trajectory_keys needs a single key, got a batch of keys.")
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(n))


def as_trajectory_keys(key: PRNGKeyArray | TrajectoryKeys, n: PositiveInt | None) -> TrajectoryKeys:
    """``trajectory_keys(key, n)`` for a single key; a batch of ``n`` keys is returned as is."""
    if key_batch_ndim(key) == 0:
        if n is None:
            raise ValueError("n is required with a single key.")
        return trajectory_keys(key, n)
    if n is not None and key.shape[0] != n:
        raise ValueError(f"key holds {key.shape[0]} trajectory keys but n={n}.")
    return key


def split_trajectory_keys(keys: TrajectoryKeys) -> tuple[TrajectoryKeys, TrajectoryKeys]:
    """Split each trajectory key into ``(noise_key, init_key)``.

    The noise key feeds :func:`block_noise`; the init key draws the initial state when
    :func:`sample` is given a shape.
    """
    both = jax.vmap(lambda k: jax.random.split(k, 2))(keys)
    return both[:, 0], both[:, 1]


def block_noise(
    noise_keys: TrajectoryKeys,
    block_index: Int[ArrayLike, ""],
    block: PositiveInt,
    event_shape: Sequence[int | np.integer],
    dtype: DTypeLike,
) -> Float[Array, "block n_keys *event"]:
    """Standard normals of block ``block_index``: shape ``(block, n, *event_shape)``.

    Row ``j`` (trajectory ``j``) is ``normal(fold_in(noise_keys[j], block_index))``: it
    depends on that trajectory's key only.
    """
    return jax.vmap(
        lambda k: jax.random.normal(
            jax.random.fold_in(k, block_index), (block,) + tuple(event_shape), dtype
        ),
        out_axes=1,
    )(noise_keys)


def trajectory_noise(
    key: PRNGKeyArray | TrajectoryKeys,
    n_steps: PositiveInt,
    event_shape: Sequence[int | np.integer],
    *,
    n: PositiveInt | None = None,
    noise_block: PositiveInt | None = None,
    dtype: DTypeLike | None = None,
) -> Float[Array, "n_steps n_keys *event"]:
    """The standard normals $\\xi_i$ that :func:`sample` uses, shape ``(n_steps, n, *event)``.

    Materialises every increment (memory ``n_steps * n * d``): meant for reference paths and
    tests (``sample_diffrax`` uses it to share increments with the fast sampler).
    """
    keys = as_trajectory_keys(key, n)
    noise_keys, _ = split_trajectory_keys(keys)
    dtype = jnp.result_type(float) if dtype is None else dtype
    if noise_block is None:
        noise_block = default_noise_block(event_shape)
    n_blocks = -(-n_steps // noise_block)
    z = jax.vmap(lambda j: block_noise(noise_keys, j, noise_block, tuple(event_shape), dtype))(
        jnp.arange(n_blocks)
    )
    return z.reshape((n_blocks * noise_block,) + z.shape[2:])[:n_steps]


# ----------------------------------------------------------------------------------------------
# time grids
# ----------------------------------------------------------------------------------------------


_BASE_KINDS = ("uniform", "log_snr", "edm")
_CRITICAL_REF_NODES = 2048  # nodes of the monotone interpolation of the critical grid's CDF
_CRITICAL_NEWTON = 2  # Newton corrections after the interpolation (unrolled: differentiable)


def _base_times(process, u, kind, t_min, t_max, rho):
    """Closed-form base grid ``t(u)``, ``u`` in [0, 1] (``t(0) = t_max``, ``t(1) = t_min``)."""
    if kind == "uniform":
        return t_max + u * (t_min - t_max)
    if kind == "log_snr":
        lo, hi = process.log_snr(t_max), process.log_snr(t_min)
        return process.t_of_snr(jnp.exp(lo + u * (hi - lo)))
    s_max, s_min = process.sigma(t_max), process.sigma(t_min)
    sig = (s_max ** (1 / rho) + u * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return process.t_of_sigma(sig)


def _critical_cdf(process, u, base, t_min, t_max, rho, centre, width, weight):
    r"""$F(u) = (1-\beta)u + \beta G(t(u))$: the fraction of steps taken by time ``t(u)``."""
    t = _base_times(process, u, base, t_min, t_max, rho)
    top = jax.scipy.special.ndtr((t_max - centre) / width)
    den = top - jax.scipy.special.ndtr((t_min - centre) / width)
    den = jnp.maximum(den, jnp.finfo(u.dtype).tiny)
    g = (top - jax.scipy.special.ndtr((t - centre) / width)) / den
    return (1 - weight) * u + weight * g


@eqx.filter_jit
def _critical_grid(process, n_steps, base, t_min, t_max, rho, centre, width, weight):
    """The inverse of :func:`_critical_cdf` at ``i / n_steps``: monotone (linear)
    interpolation on ``_CRITICAL_REF_NODES`` nodes, then unrolled Newton corrections."""
    dtype = t_min.dtype
    n_ref = max(_CRITICAL_REF_NODES, 8 * int(n_steps))
    u_ref = jnp.linspace(0.0, 1.0, n_ref + 1, dtype=dtype)

    def cdf(u):
        return _critical_cdf(process, u, base, t_min, t_max, rho, centre, width, weight)

    y = jnp.linspace(0.0, 1.0, n_steps + 1, dtype=dtype)
    u = jnp.interp(y, cdf(u_ref), u_ref)
    for _ in range(_CRITICAL_NEWTON):
        f, df = jax.jvp(cdf, (u,), (jnp.ones_like(u),))
        u = jnp.clip(u - (f - y) / df, 0.0, 1.0)
    return _base_times(process, u, base, t_min, t_max, rho)


def time_grid(
    process: AbstractProcess,
    n_steps: int | np.integer,
    *,
    kind: str = "uniform",
    t_min: Real[ArrayLike, ""] | None = None,
    t_max: Real[ArrayLike, ""] | None = None,
    rho: float | int = 7.0,
    centre: Real[ArrayLike, ""] | None = None,
    width: Real[ArrayLike, ""] | None = None,
    weight: Real[ArrayLike, ""] = 0.6,
    base: str = "log_snr",
) -> Float[Array, " n_steps_plus_1"]:
    r"""A decreasing grid of ``n_steps + 1`` forward times from ``t_max`` (default $T$) to ``t_min``.

    - ``"uniform"``: uniform in $t$;
    - ``"log_snr"``: uniform in $\ln{\rm SNR}$;
    - ``"edm"``: Karras et al.'s $\rho$-schedule in $\sigma=b/a$,
      $\sigma_i = \big(\sigma_{\max}^{1/\rho} + \tfrac{i}{n}(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho})\big)^\rho$
      (`docs/theory/processes.md#time-grids`; with ``VE("edm")``, 31 steps and $\rho=7$ it gives $\sigma_{13}=4.9991$);
    - ``"critical"``: the grid of ``base`` (one of the three above) with a fraction ``weight``
      of the steps moved into a window: the step density is
      $\rho(t) = (1-\beta)\rho_{\rm base}(t) + \beta\,\mathcal N_{[t_{\min},t_{\max}]}(t; c, w)$
      (a Gaussian bump of centre $c$ = ``centre`` and width $w$ = ``width`` in the process's
      time, truncated to the grid's range; $\beta$ = ``weight`` in $[0, 1)$), and $t_i$ solves
      $F(t_i) = i/n$ for its distribution function $F$ (the fraction of steps taken by time
      $t$). $F$ is inverted by linear interpolation on a fine grid of the base coordinate
      followed by two Newton corrections, all plain JAX operations: the grid is
      differentiable in ``centre``, ``width`` and ``weight``; it is strictly decreasing
      ($F$ is strictly increasing for $\beta<1$) and equals the base grid when $\beta = 0$.
      Locate the window with :mod:`gltheory.schedules` (from a dataset, a given window or a
      detector); the defaults are derived in `docs/theory/schedules.md#critical-grid`.

    Default ``t_min``: ``sigma_min`` for ``VE("edm")``, else $10^{-3}T$. ``centre``,
    ``width``, ``weight`` and ``base`` are used by ``kind="critical"`` only (``centre`` in
    $(t_{\min}, t_{\max})$ and ``width`` $> 0$ are then required).
    """
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}.")
    if kind not in _BASE_KINDS + ("critical",):
        raise ValueError(f"kind must be 'uniform', 'log_snr', 'edm' or 'critical', got {kind!r}.")
    if kind == "critical" and base not in _BASE_KINDS:
        raise ValueError(f"base must be 'uniform', 'log_snr' or 'edm', got {base!r}.")
    check_instance(process, AbstractProcess, "process", PROCESS)
    _check_rho(rho)
    if t_min is None:
        t_min = (
            process.sigma_min
            if isinstance(process, VE) and process.schedule == "edm"
            else 1e-3 * process.T
        )
    t_max = process.T if t_max is None else t_max
    t_min = _scalar_time(t_min, "t_min")
    t_max = _scalar_time(t_max, "t_max")
    bounds = jnp.stack([t_min, t_max, jnp.asarray(process.T, t_min.dtype)])
    check_values(
        bounds,
        lambda v: ~((v[0] > 0) & (v[0] < v[1]) & (v[1] <= v[2] * (1 + 1e-6))),
        f"need 0 < t_min < t_max <= T, got t_min={t_min}, t_max={t_max}, T={process.T}.",
    )
    if kind == "critical":
        if centre is None or width is None:
            raise ValueError(
                "kind='critical' needs centre and width (the window, in the process's time; "
                "gltheory.schedules locates it from a dataset or a detector)."
            )
        dtype = jnp.result_type(t_min, t_max, float)
        t_min, t_max = t_min.astype(dtype), t_max.astype(dtype)
        centre = as_float_array(centre, "centre").astype(dtype)
        width = as_float_array(width, "width").astype(dtype)
        weight = as_float_array(weight, "weight").astype(dtype)
        for name, v in (("centre", centre), ("width", width), ("weight", weight)):
            if jnp.ndim(v) != 0:
                raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(v)}.")
        centre = check_values(
            jnp.stack([centre, t_min, t_max]),
            lambda v: ~((v[0] > v[1]) & (v[0] < v[2])),
            f"centre must lie in (t_min, t_max) = ({t_min}, {t_max}), got {centre}.",
        )[0]
        width = check_values(width, lambda v: ~(v > 0), f"width must be > 0, got {width}.")
        weight = check_values(
            weight, lambda v: ~((v >= 0) & (v < 1)), f"weight must lie in [0, 1), got {weight}."
        )
        ts = _critical_grid(process, n_steps, base, t_min, t_max, rho, centre, width, weight)
        return ts.at[0].set(t_max).at[-1].set(t_min)
    u = jnp.linspace(0.0, 1.0, n_steps + 1, dtype=t_min.dtype)
    if kind == "uniform":
        return _base_times(process, u, kind, t_min, t_max, rho)
    ts = _base_times(process, u, kind, t_min, t_max, rho)
    # pin the end points exactly
    return ts.at[0].set(t_max).at[-1].set(t_min)


def _check_rho(rho: object) -> None:
    """``ValueError`` naming `rho` unless it is a finite number > 0 (the EDM schedule's exponent)."""
    if isinstance(rho, bool) or np.ndim(rho) != 0:
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}.")
    value = concrete_value(rho)
    if value is None:  # traced (inside a user's jit): not checked here
        return
    if not np.issubdtype(value.dtype, np.number) or not (np.isfinite(value) and value > 0):
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}.")


def _scalar_time(value: object, name: str) -> Float[Array, ""]:
    """``value`` as a float array; ``ValueError`` naming `name` unless it is a scalar."""
    arr = as_float_array(value, name)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar time, got shape {arr.shape}.")
    return arr


def check_time_grid(
    ts: Real[ArrayLike, "*ts_shape"], T: Real[ArrayLike, ""]
) -> Float[Array, "*ts_shape"]:
    """Validate a reverse-time grid: 1-D, at least two times, strictly decreasing, in ``(0, T]``.

    Concrete grids are checked in Python (``ValueError`` naming `ts`); traced grids through
    ``eqx.error_if`` when ``gl.config.check_traced_values`` is on. **Returns:** ``ts`` as a
    float array.
    """
    ts = as_float_array(ts, "ts")
    if ts.ndim != 1:
        raise ValueError(f"ts must be a 1-D time grid, got shape {ts.shape}.")
    if ts.shape[0] < 2:
        raise ValueError(
            f"ts must hold n_steps + 1 >= 2 times (a positive number of steps), got {ts.shape[0]}."
        )
    msg = "ts must be strictly decreasing (from T towards 0) and lie in (0, T]."
    tn, Tv = concrete_value(ts), concrete_value(T)
    if tn is not None and Tv is not None:
        tn = tn.astype(np.float64)
        Tn = float(Tv)
        if not (np.all(np.diff(tn) < 0) and tn[-1] > 0 and tn[0] <= Tn * (1 + 1e-6)):
            raise ValueError(f"{msg} Got ts[0]={tn[0]:g}, ts[-1]={tn[-1]:g}, T={Tn:g}.")
        return ts
    return guard(
        ts, lambda ts: (jnp.diff(ts) >= 0).any() | (ts[-1] <= 0) | (ts[0] > T * (1 + 1e-6)), msg
    )


def check_noise_block(noise_block: object) -> None:
    """``ValueError`` unless `noise_block` is ``None`` or a positive integer."""
    if noise_block is not None and (
        not isinstance(noise_block, (int, np.integer)) or noise_block < 1
    ):
        raise ValueError(f"noise_block must be a positive integer, got {noise_block!r}.")


# ----------------------------------------------------------------------------------------------
# the loop over reverse time
# ----------------------------------------------------------------------------------------------


def _concat_steps(pieces):
    pieces = [p for p in pieces if p is not None]
    if not pieces:
        return None
    if len(pieces) == 1:
        return pieces[0]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *pieces)


def integrate(
    body: Callable[[PyTree, Array, Array | None], tuple[PyTree, PyTree]],
    carry: PyTree,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    *,
    noise_keys: TrajectoryKeys | None = None,
    event_shape: Sequence[int | np.integer] | None = None,
    dtype: DTypeLike | None = None,
    noise_block: PositiveInt | None = None,
    start: PositiveInt = 0,
) -> tuple[PyTree, PyTree]:
    r"""Run ``body`` over the steps of a reverse-time grid: the package's one time loop.

    For each step index ``i = start, ..., n_steps - 1`` (step ``i`` goes from ``ts[i]`` to
    ``ts[i + 1]``), ``carry, out = body(carry, i, z)``. With ``noise_keys`` (one per
    trajectory, see :func:`split_trajectory_keys`), ``z`` is the step's standard normals of
    shape ``(n, *event_shape)``, drawn in blocks of ``noise_block`` steps aligned on absolute
    step indices (block ``i // noise_block``), so trajectory ``j``'s noise at step ``i`` is the
    same whatever ``start``, the batch size or the chunking; without ``noise_keys``, ``z`` is
    ``None``. The loop is a ``lax.scan`` over blocks with an inner ``lax.scan`` over the steps
    of a block: it traces ``body`` at most three times and works under ``jit``, ``vmap`` and
    ``grad``.

    **Arguments:**

    - `body`: ``body(carry, i, z) -> (carry, out)``; ``i`` is a traced int32 scalar.
    - `carry`: the initial carry (any pytree, e.g. the states).
    - `ts`: the decreasing grid, shape ``(n_steps + 1,)`` (only its length is used here).
    - `noise_keys`, `event_shape`, `dtype`: the trajectories' noise keys and the shape and
      dtype of one trajectory's noise (needed together).
    - `noise_block`: steps per draw (default :func:`default_noise_block` of `event_shape`).
    - `start`: first step index (a Python int in ``0 .. n_steps``).

    **Returns:** ``(carry, outs)``: the final carry and the pytree of ``out`` stacked over the
    ``n_steps - start`` steps (``None`` if ``body`` returns ``None``).
    """
    n_steps = int(jnp.shape(ts)[0]) - 1
    if not isinstance(start, (int, np.integer)) or not 0 <= start <= n_steps:
        raise ValueError(f"start must be an int in 0..{n_steps}, got {start!r}.")
    start = int(start)
    if start == n_steps:
        return carry, None
    stochastic = noise_keys is not None
    if not stochastic:

        def step(c, i):
            return body(c, i, None)

        return jax.lax.scan(step, carry, jnp.arange(start, n_steps, dtype=jnp.int32))
    if event_shape is None or dtype is None:
        raise ValueError("integrate needs event_shape and dtype together with noise_keys.")
    check_noise_block(noise_block)
    event_shape = tuple(event_shape)
    B = default_noise_block(event_shape) if noise_block is None else int(noise_block)

    def run_block(c, j, lo, hi):
        zs = block_noise(noise_keys, j, B, event_shape, dtype)

        def inner(cc, ii):
            return body(cc, j * B + ii, zs[ii])

        return jax.lax.scan(inner, c, jnp.arange(lo, hi, dtype=jnp.int32))

    pieces = []
    j0, off = divmod(start, B)
    if off:  # a partial first block
        hi = min(B, n_steps - j0 * B)
        carry, out = run_block(carry, j0, off, hi)
        pieces.append(out)
        first_full = (j0 + 1) * B
    else:
        first_full = start
    if first_full < n_steps:
        n_full, rem = divmod(n_steps - first_full, B)
        jf = first_full // B
        if n_full > 0:
            carry, out = jax.lax.scan(
                lambda c, j: run_block(c, j, 0, B), carry, jf + jnp.arange(n_full, dtype=jnp.int32)
            )
            pieces.append(
                None if out is None else jax.tree.map(lambda v: v.reshape((-1,) + v.shape[2:]), out)
            )
        if rem > 0:
            carry, out = run_block(carry, jf + n_full, 0, rem)
            pieces.append(out)
    return carry, _concat_steps(pieces)


# ----------------------------------------------------------------------------------------------
# the sampler
# ----------------------------------------------------------------------------------------------


def _save_slots(n_steps: int, save_at) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if save_at is None:
        idx = tuple(range(n_steps + 1))
    else:
        idx = tuple(int(i) for i in np.atleast_1d(np.asarray(save_at)))
        if any(i < 0 or i > n_steps for i in idx) or list(idx) != sorted(set(idx)):
            raise ValueError(
                f"save_at must be strictly increasing indices into ts (0..{n_steps}), got {save_at!r}."
            )
        if len(idx) == 0:
            raise ValueError("save_at is empty; pass None to save at every time.")
    slots = -np.ones(n_steps + 1, dtype=np.int64)
    slots[list(idx)] = np.arange(len(idx))
    return tuple(int(s) for s in slots), idx


@eqx.filter_jit
@trusted
def _sample_impl(
    score_fn, process, key, x0, shape, ts, solver, observe, slots, n_saved, noise_block
):
    # once per compilation (never on a cached call); outside the trusted context, so that the
    # trace of score_fn made here is the one a user's own jit of it would make
    with trust(False):
        _check_score_fn(score_fn, shape, ts.dtype if x0 is None else x0.dtype, ts.dtype)
    keys = as_trajectory_keys(key, shape[0])
    noise_keys, init_keys = split_trajectory_keys(keys)
    if x0 is None:
        x0 = _draw_initial(process, init_keys, shape, ts)
    first_slot = slots[0]
    slots = jnp.asarray(slots, dtype=jnp.int32)

    if observe is not None:
        first = observe(x0, ts[0])
        buf = jax.tree.map(
            lambda v: jnp.zeros((n_saved,) + jnp.shape(v), jnp.result_type(v)), first
        )
        if first_slot == 0:
            buf = jax.tree.map(lambda b_, v: b_.at[0].set(v), buf, first)
    else:
        buf = None

    def record(buf, x, i):
        if observe is None:
            return buf
        slot = slots[i]

        def write(b):
            vals = observe(x, ts[i])
            return jax.tree.map(lambda bb, v: bb.at[slot].set(v), b, vals)

        return jax.lax.cond(slot >= 0, write, lambda b: b, buf)

    def body(carry, i, z):
        x, buf = carry
        x = solver.step(score_fn, process, x, ts[i], ts[i + 1], _draws_first(solver, z))
        return (x, record(buf, x, i + 1)), None

    (x, buf), _ = integrate(
        body,
        (x0, buf),
        ts,
        noise_keys=noise_keys if solver.stochastic else None,
        event_shape=_noise_event(solver, x0.shape[1:]),
        dtype=x0.dtype,
        noise_block=noise_block,
    )
    return x, buf, count_nonfinite(x, len(shape) - 1)


def _noise_event(solver, event_shape):
    """One trajectory's noise per step: ``event_shape``, or ``(noise_draws, *event_shape)`` for
    a solver that uses several normals per step (the single-draw case is unchanged)."""
    draws = solver.noise_draws
    return tuple(event_shape) if draws == 1 else (draws,) + tuple(event_shape)


def _draws_first(solver, z):
    """``z`` as the solver takes it: ``(n, draws, *event)`` -> ``(draws, n, *event)``."""
    return z if z is None or solver.noise_draws == 1 else jnp.moveaxis(z, 1, 0)


def _draw_initial(process, init_keys, shape, ts):
    """``x_{t_0} ~ N(0, b_{t_0}^2 I)`` from each trajectory's own init key, in ``ts``'s dtype."""
    z0 = jax.vmap(lambda k: jax.random.normal(k, shape[1:], ts.dtype))(init_keys)
    return process.b(ts[0]).astype(ts.dtype) * z0


def _cast_grid(ts, dtype):
    """``ts`` cast to the states' dtype and checked again: a narrow dtype (float16) can round
    neighbouring times of a fine grid to one value, or the last time to 0."""
    if ts.dtype == dtype:
        return ts
    cast = ts.astype(dtype)
    hint = "use fewer steps, a larger t_min, or a wider float dtype for x"
    tn = concrete_value(cast)
    if tn is not None:
        tn = tn.astype(np.float64)
        bad = np.flatnonzero(np.diff(tn) >= 0)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"ts must stay strictly decreasing in x's dtype {jnp.dtype(dtype)}, but "
                f"ts[{i}] = {float(ts[i]):.8g} and ts[{i + 1}] = {float(ts[i + 1]):.8g} both "
                f"round to {tn[i]:.8g} ({bad.size} repeated time(s) after the cast); {hint}."
            )
        if not tn[-1] > 0:
            raise ValueError(
                f"ts[-1] = {float(ts[-1]):.3g} rounds to 0 in x's dtype {jnp.dtype(dtype)}; {hint}."
            )
        return cast
    return guard(
        cast,
        lambda v: (jnp.diff(v) >= 0).any() | (v[-1] <= 0),
        f"ts must stay strictly decreasing and > 0 in x's dtype {jnp.dtype(dtype)}; {hint}.",
    )


def _initial_states(x, ts):
    """``(x0 or None, shape, ts)`` from states or a shape tuple; x's dtype wins."""
    if isinstance(x, (tuple, list)) and all(isinstance(s, (int, np.integer)) for s in x):
        shape = tuple(int(s) for s in x)
        if len(shape) < 1 or any(s < 1 for s in shape):
            raise ValueError(
                f"x as a shape must be (n, *event_shape) with positive sizes, got {shape}."
            )
        return None, shape, ts
    x0 = as_float_array(x, "x")
    if x0.ndim < 1 or x0.shape[0] < 1:
        raise ValueError(
            f"x must be states with a leading batch axis (n, *event_shape) or a shape tuple "
            f"(n, *event_shape), got an array of shape {x0.shape}."
        )
    return x0, x0.shape, _cast_grid(ts, x0.dtype)  # x's precision wins (as in gltheory.scores)


def _check_score_fn(score_fn: Callable, shape: tuple[int, ...], dtype, t_dtype) -> None:
    """Check ``score_fn(x, t)``'s output by abstract evaluation (``jax.eval_shape``: it traces
    ``score_fn`` once and runs nothing).

    The output must be one floating array of exactly ``x``'s shape ``(n, *event)`` (a shape that
    merely broadcasts, such as ``(n, 1)`` or ``(d,)`` when ``n == d``, is refused) whose dtype
    does not widen ``x``'s.
    """
    x = jax.ShapeDtypeStruct(tuple(shape), dtype)
    t = jax.ShapeDtypeStruct((), t_dtype)
    out = jax.eval_shape(score_fn, x, t)
    out_shape = getattr(out, "shape", None)
    out_dtype = getattr(out, "dtype", None)
    if out_shape is None or out_dtype is None:
        raise ValueError(
            f"score_fn must return one array shaped like x {tuple(shape)}; score_fn(x, t) "
            f"returned {type(out).__name__}."
        )
    if tuple(out_shape) != tuple(shape):
        raise ValueError(
            f"score_fn must return an array of x's shape {tuple(shape)} (one score per state); "
            f"score_fn(x, t) returned shape {tuple(out_shape)} for x of shape {tuple(shape)}."
        )
    if not jnp.issubdtype(out_dtype, jnp.floating) or jnp.promote_types(out_dtype, dtype) != dtype:
        raise ValueError(
            f"score_fn must return a floating array of x's dtype {jnp.dtype(dtype)} (or a "
            f"narrower float); score_fn(x, t) returned dtype {out_dtype}."
        )


def _resolve_solver(solver, method):
    if method is not None:
        if solver is not None and as_solver(solver) != as_solver(method):
            raise ValueError("pass either solver= or its alias method=, not both.")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        return as_solver(method)
    return as_solver("euler_maruyama" if solver is None else solver)


def sample(
    score_fn: ScoreFn,
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    solver: AbstractSolver | str | None = None,
    method: str | None = None,
    observe: Callable[[Array, Array], PyTree] | None = None,
    save_at: Indices | None = None,
    noise_block: PositiveInt | None = None,
) -> Solution:
    r"""Integrate the reverse SDE or probability-flow ODE from ``ts[0]`` down to ``ts[-1]``.

    **Arguments:**

    - `score_fn`: ``score_fn(x, t) -> array like x`` for a batch ``x`` of shape ``(n, *event)``
      and scalar ``t`` (e.g. ``lambda x, t: gltheory.score(data, process, x, t)``). Checked
      when the sampler compiles, by abstract evaluation (``jax.eval_shape``, nothing runs): it
      must return exactly ``x``'s shape (not one that broadcasts), in a float dtype no wider
      than ``x``'s.
    - `process`: the forward process whose reverse dynamics is integrated.
    - `key`: a single PRNG key (trajectory ``i`` uses ``fold_in(key, i)``) or a batch of ``n``
      per-trajectory keys (see :func:`trajectory_keys`).
    - `x`: the initial states $x_{t_0}$, shape ``(n, *event)``, or a shape tuple
      ``(n, *event)``: then $x_{t_0}\sim\mathcal N(0, b_{t_0}^2 I)$ is drawn from each
      trajectory's key. The dtype of ``x`` (else of ``ts``) sets the precision.
    - `ts`: decreasing times in $(0, T]$, shape ``(n_steps + 1,)`` (see :func:`time_grid`).
      New values with the same length reuse the compiled sampler.
    - `solver`: a :class:`gltheory.solvers.AbstractSolver` (default
      :class:`~gltheory.solvers.EulerMaruyama`) or a method string (``"euler_maruyama"``,
      ``"heun_sde"``, ``"heun"``, ``"ddim"``, ``"edm_heun"``).
    - `method`: alias of `solver` for a method string (kept for compatibility).
    - `observe`: optional ``observe(x, t) -> pytree`` evaluated on the batch at the saved
      times inside the loop, so long runs never store trajectories.
    - `save_at`: indices into ``ts`` where ``observe`` is recorded (default: every index).
    - `noise_block`: number of steps whose noise is drawn at once (part of the noise's
      definition: keep it fixed to reproduce trajectories). Default
      :func:`default_noise_block` of the event shape.

    **Returns:** a :class:`Solution` (its `n_nonfinite` counts the trajectories that ended
    with a NaN or Inf entry).
    """
    solver = _resolve_solver(solver, method)
    check_instance(process, AbstractProcess, "process", PROCESS)
    check_callable(score_fn, "score_fn", "score_fn(x, t)")
    if observe is not None and not callable(observe):
        raise ValueError("observe must be callable as observe(x, t) or None.")
    check_noise_block(noise_block)
    ts = check_time_grid(ts, process.T)
    n_steps = ts.shape[0] - 1
    x0, shape, ts = _initial_states(x, ts)
    _check_key(key)
    if key_batch_ndim(key) == 1 and key.shape[0] != shape[0]:
        raise ValueError(f"key holds {key.shape[0]} trajectory keys but n={shape[0]}.")
    slots, idx = _save_slots(n_steps, save_at)
    if noise_block is None:
        noise_block = default_noise_block(shape[1:])
    x_final, obs, n_bad = _sample_impl(
        score_fn, process, key, x0, shape, ts, solver, observe, slots, len(idx), int(noise_block)
    )
    return Solution(
        x=x_final, ts=ts, saved_ts=ts[np.asarray(idx)], observables=obs, n_nonfinite=n_bad
    )


def _identity_observe(x, t):
    return x


def states_at(
    score_fn: ScoreFn,
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    indices: Indices,
    solver: AbstractSolver | str = "euler_maruyama",
    noise_block: PositiveInt | None = None,
) -> Float[Array, "n_saved n_traj *event"]:
    """The states of :func:`sample`'s trajectories at ``ts[indices]``.

    Runs the sampler only as far as the last index (the trajectories are those of
    ``sample(score_fn, process, key, x, ts=ts, ...)``, step for step).

    **Returns:** an array of shape ``(len(indices), n, *event)``.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    ts = check_time_grid(ts, process.T)
    idx = tuple(int(i) for i in np.atleast_1d(np.asarray(indices)))
    if not idx:
        raise ValueError("indices must hold at least one index into ts.")
    last = max(max(idx), 1)
    sol = sample(
        score_fn,
        process,
        key,
        x,
        ts=ts[: last + 1],
        solver=solver,
        observe=_identity_observe,
        save_at=idx,
        noise_block=noise_block,
    )
    return sol.observables


@eqx.filter_jit
@trusted
def _branch_impl(score_fn, process, keys, states, ts, starts, first, solver, noise_block):
    lead = states.shape[:2]
    ev = states.shape[2:]
    with trust(False):  # once per compilation, as in _sample_impl
        _check_score_fn(score_fn, (lead[0] * lead[1],) + ev, states.dtype, ts.dtype)
    x = states.reshape((-1,) + ev)
    kf = keys.reshape((-1,) + keys.shape[2:])
    noise_keys, _ = split_trajectory_keys(kf)
    row_start = jnp.repeat(jnp.asarray(starts, jnp.int32), lead[1]).reshape((-1,) + (1,) * len(ev))

    def body(x, i, z):
        xn = solver.step(score_fn, process, x, ts[i], ts[i + 1], _draws_first(solver, z))
        return jnp.where(i >= row_start, xn, x), None

    x, _ = integrate(
        body,
        x,
        ts,
        noise_keys=noise_keys if solver.stochastic else None,
        event_shape=_noise_event(solver, ev),
        dtype=x.dtype,
        noise_block=noise_block,
        start=first,
    )
    return x.reshape(states.shape)


def branch(
    score_fn: ScoreFn,
    process: AbstractProcess,
    keys: KeyBatch,
    states: Real[ArrayLike, "*states"],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    indices: Indices,
    solver: AbstractSolver | str = "euler_maruyama",
    noise_block: PositiveInt | None = None,
) -> Float[Array, "*states"]:
    r"""Continue clones of given states from ``ts[indices[b]]`` to ``ts[-1]`` (branch-and-continue).

    Row ``(b, j)`` starts from ``states[b, j]`` at ``ts[indices[b]]`` and runs with its own
    key ``keys[b, j]``: its noise at step ``i`` is that of a :func:`sample` trajectory with
    this key at step ``i`` (block noise aligned on absolute step indices), so two clones of one
    state with different keys diverge only through their noise. Typical use: take
    :func:`states_at`, repeat each state ``k`` times along axis 1, give each copy its own
    key, and compare the copies' outcomes (cloning probability).

    **Arguments:**

    - `score_fn`, `process`, `solver`, `noise_block`: as in :func:`sample`.
    - `keys`: PRNG keys of shape ``(n_branch, m)`` (one per row).
    - `states`: the states to continue, shape ``(n_branch, m, *event)``.
    - `ts`: the full decreasing grid.
    - `indices`: ``n_branch`` start indices into ``ts`` (each ``<= len(ts) - 2``).

    **Returns:** the final states at ``ts[-1]``, shape ``(n_branch, m, *event)``. Rows whose
    state is or becomes non-finite are returned as they are; count them with
    :func:`count_nonfinite` (``count_nonfinite(out, len(event))``).
    """
    solver = as_solver(solver)
    check_instance(process, AbstractProcess, "process", PROCESS)
    check_callable(score_fn, "score_fn", "score_fn(x, t)")
    check_noise_block(noise_block)
    ts = check_time_grid(ts, process.T)
    states = as_float_array(states, "states")
    ts = _cast_grid(ts, states.dtype)
    n_steps = ts.shape[0] - 1
    idx = tuple(int(i) for i in np.atleast_1d(np.asarray(indices)))
    if states.ndim < 2 or states.shape[0] != len(idx):
        raise ValueError(
            f"states must have shape (n_branch, m, *event) with n_branch = len(indices) = "
            f"{len(idx)}, got {states.shape}."
        )
    if any(i < 0 or i > n_steps - 1 for i in idx):
        raise ValueError(f"indices must lie in 0..{n_steps - 1}, got {indices!r}.")
    if not _is_typed_key(keys) and getattr(keys, "dtype", None) != jnp.uint32:
        got = getattr(keys, "dtype", type(keys).__name__)
        raise ValueError(
            f"keys must be PRNG keys of shape (n_branch, m) (e.g. from jax.random.split), got {got}."
        )
    kshape = keys.shape if _is_typed_key(keys) else keys.shape[:-1]
    if tuple(kshape) != tuple(states.shape[:2]):
        raise ValueError(
            f"keys must hold one key per row, shape {tuple(states.shape[:2])}, got {tuple(kshape)}."
        )
    if noise_block is None:
        noise_block = default_noise_block(states.shape[2:])
    return _branch_impl(
        score_fn, process, keys, states, ts, idx, min(idx), solver, int(noise_block)
    )


# ----------------------------------------------------------------------------------------------
# diffrax reference path
# ----------------------------------------------------------------------------------------------


class _GridNoisePath(diffrax.AbstractPath):
    """A Brownian path on a fixed grid whose increment over step i is sqrt(h_i) * z[i]."""

    taus: Array
    z: Array

    @property
    def t0(self):
        return self.taus[0]

    @property
    def t1(self):
        return self.taus[-1]

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is None:
            raise ValueError("_GridNoisePath only provides increments evaluate(t0, t1).")
        i = jnp.clip(jnp.searchsorted(self.taus, t0, side="right") - 1, 0, self.z.shape[0] - 1)
        return jnp.sqrt(t1 - t0) * self.z[i]


class _AdditiveNoise(diffrax.AbstractTerm):
    """g(t) dW for a scalar, state-independent diffusion g."""

    g: Callable
    control: diffrax.AbstractPath

    def vf(self, t, y, args):
        return self.g(t)

    def contr(self, t0, t1, **kwargs):
        return self.control.evaluate(t0, t1)

    def prod(self, vf, control):
        return vf * control


def sample_diffrax(
    score_fn: ScoreFn,
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    method: str = "euler_maruyama",
    brownian: str = "grid",
    noise_block: PositiveInt | None = None,
) -> Float[Array, " n *event"]:
    r"""Reference solution with ``diffrax.diffeqsolve`` on the same grid (``StepTo``).

    Integrates in reverse time $\tau = t_0 - t$ with ``diffrax.Euler`` (EM) or
    ``diffrax.Heun`` (stochastic Heun / PF-ODE Heun). With ``brownian="grid"`` the Brownian
    increments are exactly those of :func:`sample` (same keys, same ``noise_block``), so the
    two agree to float round-off; ``brownian="unsafe"`` uses ``diffrax.UnsafeBrownianPath``
    (the fastest diffrax configuration, independent noise), for benchmarks.

    The arguments are those of :func:`sample`: `x` holds the initial states ``(n, *event)``
    or is a shape tuple ``(n, *event)`` (then $x_{t_0}\sim\mathcal N(0, b_{t_0}^2 I)$ is drawn
    from each trajectory's key exactly as :func:`sample` draws it), and `score_fn`'s output is
    checked once by abstract evaluation.

    **Returns:** the final states, shape ``(n, *event)``; trajectories that end non-finite are
    returned as they are (count them with :func:`count_nonfinite`).
    """
    if method not in ("euler_maruyama", "heun_sde", "heun"):
        raise ValueError(f"method must be 'euler_maruyama', 'heun_sde' or 'heun', got {method!r}.")
    if brownian not in ("grid", "unsafe"):
        raise ValueError(f"brownian must be 'grid' or 'unsafe', got {brownian!r}.")
    check_instance(process, AbstractProcess, "process", PROCESS)
    check_callable(score_fn, "score_fn", "score_fn(x, t)")
    check_noise_block(noise_block)
    ts = check_time_grid(ts, process.T)
    x0, shape, ts = _initial_states(x, ts)
    _check_key(key)
    if key_batch_ndim(key) == 1 and key.shape[0] != shape[0]:
        raise ValueError(f"key holds {key.shape[0]} trajectory keys but n={shape[0]}.")
    keys = as_trajectory_keys(key, shape[0])
    if noise_block is None:
        noise_block = default_noise_block(shape[1:])
    return _diffrax_impl(score_fn, process, keys, x0, shape, ts, method, brownian, int(noise_block))


@eqx.filter_jit
@trusted
def _diffrax_impl(score_fn, process, keys, x0, shape, ts, method, brownian, noise_block):
    with trust(False):  # once per compilation, as in _sample_impl
        _check_score_fn(score_fn, shape, ts.dtype if x0 is None else x0.dtype, ts.dtype)
    if x0 is None:
        x0 = _draw_initial(process, split_trajectory_keys(keys)[1], shape, ts)
    t_start = ts[0]
    taus = t_start - ts
    solver = diffrax.Euler() if method == "euler_maruyama" else diffrax.Heun()
    if method == "heun":
        drift = diffrax.ODETerm(
            lambda tau, y, args: process.pf_ode_drift(y, t_start - tau, score_fn(y, t_start - tau))
        )
        terms = drift
    else:
        drift = diffrax.ODETerm(
            lambda tau, y, args: process.reverse_drift(y, t_start - tau, score_fn(y, t_start - tau))
        )
        if brownian == "grid":
            z = trajectory_noise(
                keys, ts.shape[0] - 1, x0.shape[1:], noise_block=noise_block, dtype=x0.dtype
            )
            path = _GridNoisePath(taus, z)
        else:
            path = diffrax.UnsafeBrownianPath(
                shape=x0.shape, key=keys[0], levy_area=diffrax.BrownianIncrement
            )
        terms = diffrax.MultiTerm(drift, _AdditiveNoise(lambda tau: process.g(t_start - tau), path))
    sol = diffrax.diffeqsolve(
        terms,
        solver,
        t0=taus[0],
        t1=taus[-1],
        dt0=None,
        y0=x0,
        stepsize_controller=diffrax.StepTo(ts=taus),
        saveat=diffrax.SaveAt(t1=True),
        max_steps=ts.shape[0] - 1,
        # UnsafeBrownianPath cannot be checkpointed (diffrax >= 0.7 raises under the default
        # RecursiveCheckpointAdjoint); this reference path is never differentiated.
        adjoint=diffrax.ForwardMode()
        if brownian == "unsafe"
        else diffrax.RecursiveCheckpointAdjoint(),
    )
    return sol.ys[0]
