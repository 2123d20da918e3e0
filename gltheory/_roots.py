"""One-dimensional maxima with exact derivatives, shared by the topic modules.

A maximiser found by iterating (a grid, a bisection, Newton steps) must not be differentiated
through its iterations: the derivative of a converged iteration is not the derivative of the
maximiser (a grid's ``argmax`` gives a silent zero). These helpers solve the stationarity
condition with ``optimistix`` and differentiate the solution by the implicit-function theorem
(``optimistix.ImplicitAdjoint``), and :func:`no_derivative` marks a value that has no
derivative, so that ``jax.grad``/``jax.jvp`` raise instead of returning a zero;
:func:`refuse_traced` does the same for functions that return Python floats.

Library code passes ``throw=False`` and gives ``Bisection`` its ``flip`` (its ``"detect"``
and ``throw=True`` add ``eqx.error_if`` host callbacks to the compiled program).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike


def bracketed_argmax(
    dfn: Callable[[Array, Any], Array],
    lo: ArrayLike,
    hi: ArrayLike,
    args: Any,
    n_steps: int,
) -> Array:
    """Maximiser of an objective on ``[lo, hi]`` from the root of its derivative.

    **Arguments:**

    - `dfn`: ``dfn(t, args)``, the derivative of the objective; > 0 at ``lo`` and < 0 at
      ``hi`` when the maximum is interior.
    - `lo`, `hi`: the bracket (not differentiated: a grid cell around a grid maximum).
    - `args`: the arrays ``dfn`` depends on (what is differentiated; closed-over arrays are
      differentiated as well).
    - `n_steps`: bisection halvings, exactly this many (``optimistix.Bisection`` with zero
      tolerances).

    **Returns:** the root, differentiated by the implicit-function theorem. Without a sign
    change the objective peaks at an end of the bracket, where the root finder ends; that end
    does not move to first order, so its derivative is zero.
    """
    lo, hi = jax.lax.stop_gradient(lo), jax.lax.stop_gradient(hi)
    interior = (dfn(lo, args) > 0) & (dfn(hi, args) < 0)
    sol = optx.root_find(
        dfn,
        optx.Bisection(rtol=0.0, atol=0.0, flip=True),  # decreasing: lower moves on dfn >= 0
        0.5 * (lo + hi),
        args=args,
        options={"lower": lo, "upper": hi},
        max_steps=n_steps,
        throw=False,
    )
    return jnp.where(interior, sol.value, jax.lax.stop_gradient(sol.value))


def polished_argmax(
    dfn: Callable[[Array, Any], Array],
    y0: ArrayLike,
    lo: ArrayLike,
    hi: ArrayLike,
    args: Any,
    n_steps: int,
) -> Array:
    """Maximiser of an objective near a good first guess, by Newton steps on its derivative.

    For objectives whose derivative is costly (a bisection would need ~50 evaluations), when
    ``y0`` is already close (the vertex of a parabola through a fine grid's maximum).

    **Arguments:**

    - `dfn`: ``dfn(t, args)``, the derivative of the objective.
    - `y0`: the first guess, inside ``[lo, hi]``.
    - `lo`, `hi`: the bracket. Should the Newton iterate leave it (a first guess too far
      away), the result is ``y0`` with the derivative the implicit-function theorem gives at
      the root, which then is not ``y0``'s: keep ``y0`` close.
    - `args`: the arrays ``dfn`` depends on (closed-over arrays are differentiated as well).
    - `n_steps`: Newton steps, exactly this many (``optimistix.Newton`` with zero tolerances).

    **Returns:** the root, differentiated by the implicit-function theorem.
    """
    lo, hi = jax.lax.stop_gradient(lo), jax.lax.stop_gradient(hi)
    y0 = jax.lax.stop_gradient(y0)
    sol = optx.root_find(
        dfn,
        optx.Newton(rtol=0.0, atol=0.0),
        y0,
        args=args,
        max_steps=n_steps,
        throw=False,
    )
    inside = (sol.value >= lo) & (sol.value <= hi) & jnp.isfinite(sol.value)
    tangent_only = sol.value - jax.lax.stop_gradient(sol.value)  # 0, with the root's derivative
    return jnp.where(inside, sol.value, y0 + tangent_only)


def refuse_traced(name: str, values: Any) -> None:
    """Refuse tracers in a function that returns Python floats (or ``None``).

    **Arguments:**

    - `name`: the public function's name, for the message.
    - `values`: its array arguments (any pytree).

    **Raises:** ``TypeError`` naming ``name`` when a leaf of ``values`` is a tracer (under
    ``jax.grad``, ``jax.jvp``, ``jax.jit``, ``jax.vmap``), instead of JAX's
    ``ConcretizationTypeError`` from deep inside.
    """
    if any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(values)):
        raise TypeError(
            f"{name} returns Python floats (or None) and cannot be traced: it is not "
            "differentiable and does not run under jax.jit/vmap/grad/jvp. Call it with concrete "
            "values; for a differentiable critical time use gltheory.critical_times or "
            "gltheory.spectral.jacobian_critical_time."
        )


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def no_derivative(x: Any, deps: Any, message: str) -> Any:
    """``x`` unchanged; it depends on the arrays ``deps`` in a way that has no derivative.

    **Arguments:**

    - `x`: the value (an array or a pytree of arrays).
    - `deps`: the arrays ``x`` was computed from.
    - `message`: the error message; it should name the public function and say what to
      differentiate instead.

    **Returns:** ``x``. A derivative with respect to any of ``deps`` (``jax.grad``,
    ``jax.jvp``) raises ``ValueError(message)``, never a silent zero.
    """
    return x


@no_derivative.defjvp
def _no_derivative_jvp(message, primals, tangents):
    raise ValueError(message)
