r"""Lattice helpers shared by the score and field modules.

A lattice field has its lattice axes last (``(*batch, *lattice)``), with periodic boundaries.

:func:`map_batch_blocks` evaluates a per-row computation on fixed-shape blocks of the batch, so
that what one row gets never depends on the batch size (see its docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Shaped

__all__ = ["box_sum_periodic", "map_batch_blocks"]


def box_sum_periodic(
    x: Shaped[Array, "*x"], window: int | np.integer, axes: tuple[int | np.integer, ...]
) -> Shaped[Array, "*x"]:
    r"""Periodic box sum $(Kx)_i=\sum_{\delta\in\{-r..r\}^D}x_{i+\delta}$, $r$ = ``window // 2``.

    Separable: one pass of $2r$ rolls per lattice axis.

    **Arguments:**

    - `x`: the field.
    - `window`: the odd window size $k = 2r + 1$.
    - `axes`: the lattice axes of `x` to sum over.

    **Returns:** an array shaped like `x`.
    """
    r = window // 2
    for ax in axes:
        acc = x
        for s in range(1, r + 1):
            acc = acc + jnp.roll(x, s, axis=ax) + jnp.roll(x, -s, axis=ax)
        x = acc
    return x


def map_batch_blocks(fn: Callable[[Any], Any], args: Any, block: int | np.integer) -> Any:
    r"""``fn`` applied to fixed-shape blocks of ``block`` rows: batch-size independent, bitwise.

    XLA compiles an elementwise or row-wise computation differently for different shapes
    (vectorised loops and their scalar remainders, GEMM tiling, fusion of a scalar coefficient
    into a batch loop), so row ``i`` of ``fn(x)`` may differ in the last bits between batch
    sizes. Here the leading axis of every leaf of ``args`` is padded (by repeating row 0) to a
    multiple of ``block`` and ``fn`` runs on one ``(block, ...)`` slice at a time
    (``lax.map``), behind optimisation barriers, so row ``i`` always sits at position
    ``i % block`` of a block with the same shape and the same compiled code, whatever the batch
    size: its result is bitwise the same. ``fn`` must treat rows independently (its row ``j``
    may depend only on row ``j`` of its inputs).

    **Arguments:**

    - `fn`: maps a pytree of ``(block, ...)`` arrays to a pytree of ``(block, ...)`` arrays.
    - `args`: a pytree of arrays sharing their leading (batch) axis of length ``n``.
    - `block`: rows per block (a positive integer, fixed by the caller, never derived from
      ``n``).

    **Returns:** ``fn``'s output pytree with leading axis ``n`` (empty arrays when ``n = 0``).
    """
    leaves = jax.tree.leaves(args)
    n = int(leaves[0].shape[0])
    block = int(block)
    if n == 0:
        shapes = jax.eval_shape(
            fn, jax.tree.map(lambda v: jax.ShapeDtypeStruct((block,) + v.shape[1:], v.dtype), args)
        )
        return jax.tree.map(lambda sd: jnp.zeros((0,) + sd.shape[1:], sd.dtype), shapes)
    n_blocks = -(-n // block)
    extra = n_blocks * block - n

    def split(v):
        if extra:
            v = jnp.concatenate([v, jnp.broadcast_to(v[:1], (extra,) + v.shape[1:])], axis=0)
        return v.reshape((n_blocks, block) + v.shape[1:])

    def body(blk):
        blk = jax.lax.optimization_barrier(blk)
        return jax.lax.optimization_barrier(fn(blk))

    out = jax.lax.map(body, jax.tree.map(split, args))
    return jax.tree.map(lambda v: v.reshape((n_blocks * block,) + v.shape[2:])[:n], out)
