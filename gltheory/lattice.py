r"""Lattice helpers shared by the score and field modules.

A lattice field has its lattice axes last (``(*batch, *lattice)``), with periodic boundaries.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Shaped

__all__ = ["box_sum_periodic"]


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
