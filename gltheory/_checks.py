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
