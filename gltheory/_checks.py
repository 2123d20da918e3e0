"""Input validation shared by every module.

Two tiers, as in equinox/diffrax, arranged so that validation costs no compilation:

- at the public boundary, arguments that hold values (Python numbers, NumPy arrays, concrete
  JAX arrays, and the primal values under an eager ``jax.grad``/``jax.jvp``) are checked in
  Python and a problem raises ``ValueError`` naming the argument and the allowed range;
- an argument that is traced at the public boundary (inside the user's own ``jit``/``vmap``)
  gets an ``eqx.error_if`` on the returned array only when :mod:`gltheory.config`'s
  ``check_traced_values`` switch is on (off by default: a host callback in a program stops
  JAX's persistent compilation cache from storing it);
- inside the package's own jitted implementations (functions wrapped with :func:`trusted`,
  inside their ``jit``) nothing is re-checked: their inputs were checked at the boundary.

Rule that keeps jit caches consistent: :func:`trusted` is applied *inside* a ``jit`` (so that
the whole cache of that function is traced trusted), and no jitted function checks its own
arguments (checks sit in the Python wrapper that calls it).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import concrete_or_error

from .config import traced_checks_enabled

_STATE = threading.local()


def in_trusted_context() -> bool:
    """True while the package traces one of its own implementations (see :func:`trusted`)."""
    return getattr(_STATE, "depth", 0) > 0


@contextlib.contextmanager
def trust(on: bool):
    """Context manager: inside it the package's checks of traced values are skipped (``on``)
    or apply as at the public boundary (``on=False``, e.g. to trace a user's function)."""
    previous = getattr(_STATE, "depth", 0)
    _STATE.depth = previous + 1 if on else 0
    try:
        yield
    finally:
        _STATE.depth = previous


def trusted(fn: Callable) -> Callable:
    """Run ``fn`` with the package's checks of traced values off (its inputs were checked).

    Apply it *under* the ``jit`` of an implementation (``@eqx.filter_jit`` above
    ``@trusted``), so that every trace of that jitted function is made in the trusted
    context and its compile cache never mixes checked and unchecked traces.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with trust(True):
            return fn(*args, **kwargs)

    return wrapper


def is_concrete(x) -> bool:
    """True when ``x`` holds a value now (not a tracer inside jit/vmap/grad)."""
    leaves = jax.tree_util.tree_leaves(x)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def concrete_value(x) -> np.ndarray | None:
    """``x`` as a NumPy array when its value is known now, else ``None``.

    Known: Python numbers, NumPy and concrete JAX arrays, and tracers of an eager
    ``jax.grad``/``jax.jvp`` (their primal value). Unknown: anything traced by ``jit``,
    ``vmap``, ``scan``, ``eval_shape``.
    """
    if not isinstance(x, jax.core.Tracer):
        return np.asarray(x)
    try:
        return np.asarray(concrete_or_error(None, x))
    except jax.errors.ConcretizationTypeError:
        return None


def checks_traced() -> bool:
    """Whether a traced value at the public boundary gets an ``eqx.error_if`` now."""
    return traced_checks_enabled() and not in_trusted_context()


def guard(x, pred, msg: str):
    """The traced tier: ``eqx.error_if(x, pred, msg)`` when :func:`checks_traced`, else ``x``.

    Use the returned value. ``pred`` may be a callable ``pred(x)`` so that nothing is computed
    when the check is off.
    """
    if not checks_traced():
        return x
    return eqx.error_if(x, pred(x) if callable(pred) else pred, msg)


def check_result(x, bad, msg: str):
    """A check on a computed result: ``ValueError(msg)`` when ``bad`` is known and true
    anywhere, :func:`guard` (``eqx.error_if`` if the switch is on) when it is traced.

    Use it instead of a bare ``eqx.error_if`` after a jitted implementation returns, so that
    concrete results cost no host callback. Returns ``x`` (use the returned value).
    """
    value = concrete_value(bad)
    if value is not None:
        if bool(np.any(value)):
            raise ValueError(msg)
        return x
    return guard(x, bad, msg)


def check_values(
    x,
    bad: Callable[[np.ndarray], bool],
    msg: str,
):
    """Raise ``ValueError(msg)`` if ``bad(x)`` for a concrete ``x``; else :func:`guard` it.

    ``bad`` must work on NumPy and on JAX arrays (use ``jnp``-compatible operations via
    the array's own methods, or write it with ``np``/``jnp`` agnostic code such as
    comparisons and ``.any()``).
    Returns ``x`` (possibly wrapped in ``eqx.error_if``); use the returned value.
    """
    if not isinstance(x, jax.core.Tracer) and is_concrete(x):
        if bool(bad(np.asarray(x))):
            raise ValueError(msg)
        return x
    value = concrete_value(x) if isinstance(x, jax.core.Tracer) else None
    if value is not None:
        if bool(bad(value)):
            raise ValueError(msg)
        return x
    return guard(x, bad, msg)


def as_float_array(x, name: str) -> jax.Array:
    """Convert to a floating JAX array (weakly typed for Python scalars)."""
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        if jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_:
            arr = arr.astype(jnp.result_type(float))
        else:
            raise ValueError(f"{name} must be a real floating array, got dtype {arr.dtype}.")
    return arr


def check_time(t, T, name: str = "t"):
    """Check ``0 < t <= T`` elementwise; return ``t`` as an array."""
    t = as_float_array(t, name)
    tn = concrete_value(t)
    Tv = concrete_value(T)
    if tn is not None and Tv is not None:
        tn = tn.astype(np.float64)
        Tn = float(Tv)
        if not np.all(np.isfinite(tn)):
            raise ValueError(f"{name} must be finite, got {tn}.")
        # a relative tolerance so that t == T computed in float32 is accepted
        if np.any(tn <= 0) or np.any(tn > Tn * (1 + 1e-6)):
            raise ValueError(
                f"{name} must lie in (0, T] = (0, {Tn:g}] for this process, got "
                f"{tn if tn.size < 8 else (tn.min(), tn.max())}."
            )
        return t
    return guard(
        t,
        lambda t: (t <= 0) | (t > T * (1 + 1e-6)) | ~jnp.isfinite(t),
        f"{name} must lie in (0, T] (a traced value, checked inside jit).",
    )


def check_event_shape(x, event_shape: tuple[int, ...], name: str = "x") -> None:
    """Check that the trailing axes of ``x`` equal ``event_shape``."""
    shape = tuple(jnp.shape(x))
    n = len(event_shape)
    if len(shape) < n or shape[len(shape) - n :] != tuple(event_shape):
        raise ValueError(
            f"{name} has shape {shape}, but its trailing axes must equal the dataset's event "
            f"shape {tuple(event_shape)} (leading axes are batch axes)."
        )


def batch_time(t: jax.Array, x: jax.Array, event_ndim: int) -> jax.Array:
    """Broadcast a scalar or batch-shaped time against ``x`` of shape (*batch, *event).

    Returns ``t`` with ``event_ndim`` trailing singleton axes appended when it is not scalar.
    """
    if t.ndim == 0:
        return t
    batch_shape = x.shape[: x.ndim - event_ndim]
    try:
        ok = jnp.broadcast_shapes(t.shape, batch_shape) == tuple(batch_shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"t has shape {t.shape}; it must be a scalar or broadcast to the batch shape "
            f"{tuple(batch_shape)} of x (without enlarging it)."
        )
    return t.reshape(t.shape + (1,) * event_ndim)


def check_positive_int(value, name: str, minimum: int = 1) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def check_instance(value, cls: type, name: str, what: str) -> None:
    """Raise ``ValueError`` ("`name` must be `what`, got <type>") unless ``isinstance(value, cls)``.

    The one type check of the package's inputs (e.g. ``check_instance(process, AbstractProcess,
    "process", PROCESS)``); the classes live above this module, so they are passed in.
    """
    if not isinstance(value, cls):
        raise ValueError(f"{name} must be {what}, got {type(value).__name__}.")


PROCESS = "a gltheory process (OU, VP, VE)"
"""What ``check_instance(process, AbstractProcess, "process", PROCESS)`` asks for."""

DATASET = "a gltheory dataset (AbstractData)"
"""What ``check_instance(data, AbstractData, "data", DATASET)`` asks for."""


def check_callable(fn, name: str, usage: str) -> None:
    """Raise ``ValueError`` ("`name` must be callable as `usage`") unless ``fn`` is callable."""
    if not callable(fn):
        raise ValueError(f"{name} must be callable as {usage}.")


def is_shape(x) -> bool:
    """True when ``x`` is a shape given as a tuple or list of Python/NumPy integers."""
    return isinstance(x, tuple | list) and all(isinstance(s, int | np.integer) for s in x)


def batch_shape(x) -> tuple[int, ...]:
    """The shape ``(n, *event)`` of states ``x`` or of a shape tuple ``x`` (``n >= 1``)."""
    shape = tuple(int(s) for s in x) if is_shape(x) else tuple(jnp.shape(x))
    if len(shape) < 1 or shape[0] < 1:
        raise ValueError(f"x must be states (n, *event) or a shape (n, *event), got {shape}.")
    return shape


def state_dtype(x, default):
    """The float dtype of states ``x``; ``default`` when ``x`` is a shape tuple."""
    if is_shape(x):
        return default
    return as_float_array(x, "x").dtype


def check_indices(index, n_steps: int, name: str) -> tuple[tuple[int, ...], bool]:
    """Branch indices into a grid of ``n_steps`` steps: ints in ``0 .. n_steps - 1``, increasing.

    **Returns:** ``(indices, scalar)``: the indices as a tuple of ints, and whether ``index``
    was a single integer.
    """
    scalar = np.ndim(index) == 0
    arr = np.atleast_1d(np.asarray(index))
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer or a 1-D sequence of integers, got {index!r}.")
    idx = tuple(int(i) for i in arr)
    if any(i < 0 or i > n_steps - 1 for i in idx):
        raise ValueError(
            f"{name} must lie in 0..{n_steps - 1} (an index into ts that leaves at least one "
            f"step after it; ts has {n_steps + 1} times), got {index!r}."
        )
    if list(idx) != sorted(set(idx)):
        raise ValueError(f"{name} must be strictly increasing, got {index!r}.")
    return idx, scalar


def fold_keys(keys, data: int):
    """``fold_in(k, data)`` for every key ``k`` of a 1-D batch of PRNG keys."""
    return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


def check_labels(classify: Callable, x, n_total: int) -> jax.Array:
    """``classify(x)`` checked to be ``n_total`` integer (or boolean) labels; as int32."""
    lab = jnp.asarray(classify(x))
    if lab.shape != (n_total,):
        raise ValueError(
            f"classify must return one label per state, shape ({n_total},), got {lab.shape}."
        )
    if not (jnp.issubdtype(lab.dtype, jnp.integer) or lab.dtype == jnp.bool_):
        raise ValueError(f"classify must return integer (or boolean) labels, got {lab.dtype}.")
    return lab.astype(jnp.int32)


def precheck_labels(classify: Callable, n_total: int, event_shape, dtype) -> None:
    """Check the shape of ``classify``'s output by abstract evaluation, before any sampling.

    A ``classify`` that cannot be traced (e.g. NumPy inside) passes here and is checked by
    :func:`check_labels` on the final states instead.
    """
    struct = jax.ShapeDtypeStruct((n_total,) + tuple(event_shape), dtype)
    try:
        out = jax.eval_shape(classify, struct)
    except ValueError:
        raise
    except Exception:  # not traceable: checked on the final states instead
        return
    if getattr(out, "shape", None) != (n_total,):
        raise ValueError(
            f"classify must return one label per state, shape ({n_total},), got "
            f"{getattr(out, 'shape', type(out).__name__)}."
        )
