"""Input validation shared by every module (two tiers, as in equinox/diffrax).

Problems visible at trace time (shapes, dtypes, Python numbers, concrete arrays) raise
``ValueError`` naming the argument and the allowed range. Value problems that only exist
inside ``jit`` are turned into runtime errors with ``eqx.error_if`` on the returned array.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` holds a value now (not a tracer inside jit/vmap/grad)."""
    leaves = jax.tree_util.tree_leaves(x)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def check_values(
    x,
    bad: Callable[[np.ndarray], bool],
    msg: str,
):
    """Raise ``ValueError(msg)`` if ``bad(x)`` for a concrete ``x``; else guard with error_if.

    ``bad`` must work on NumPy and on JAX arrays (use ``jnp``-compatible operations via
    the array's own methods, or write it with ``np``/``jnp`` agnostic code such as
    comparisons and ``.any()``).
    Returns ``x`` (possibly wrapped in ``eqx.error_if``); use the returned value.
    """
    if is_concrete(x):
        if bool(bad(np.asarray(x))):
            raise ValueError(msg)
        return x
    return eqx.error_if(x, bad(x), msg)


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
    T_val = T
    if is_concrete(t) and is_concrete(T):
        tn = np.asarray(t, dtype=np.float64)
        Tn = float(np.asarray(T))
        if not np.all(np.isfinite(tn)):
            raise ValueError(f"{name} must be finite, got {tn}.")
        # a relative tolerance so that t == T computed in float32 is accepted
        if np.any(tn <= 0) or np.any(tn > Tn * (1 + 1e-6)):
            raise ValueError(
                f"{name} must lie in (0, T] = (0, {Tn:g}] for this process, got "
                f"{tn if tn.size < 8 else (tn.min(), tn.max())}."
            )
        return t
    return eqx.error_if(
        t, (t <= 0) | (t > T_val * (1 + 1e-6)) | ~jnp.isfinite(t), f"{name} must lie in (0, T]."
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
