r"""Frozen-time dynamics of the two-image patch model on the lattice (`docs/theory/spatial.md`).

The model: two uniform training images $\pm\mathbf 1$, the periodic equivariant local score
(ELS) with an odd window $k$ on a periodic $D$-dimensional lattice ($D = 1, 2$) of side $L$.
Its score at forward time $t$ has the closed form

$$
s_i(x,t)=\frac{a_t\tanh\!\big(\tfrac{a_t}{b_t^2}(Kx)_i\big)-x_i}{b_t^2},
$$

$K$ the periodic $k^D$ box sum (`docs/theory/spatial.md#model`). Frozen at $t$, the Langevin
dynamics $dx=s(x,t)\,d\tau+\sqrt{2T}\,dW$ ($T = 1$ the physical noise, $T < 1$ tempered) is
written in the reduced variables $x = b_t\varphi$, $\tau = b_t^2\tau'$:

$$
d\varphi=\big[g\tanh(g\,K\varphi)-\varphi\big]\,d\tau'+\sqrt{2T}\,dW_{\tau'},\qquad
g=\sqrt{\mathrm{SNR}_t}=a_t/b_t .
$$

The field $\Psi = gK\varphi$ obeys a closed equation whose only parameters are
$G = \mathrm{SNR}_t\,k^D$, $T$ and, with lengths measured in units of $k$, $L/k$
(`docs/theory/spatial.md#reduction`): $(G, L/k)$ is this module's public parametrisation, with
converters to the forward time of each process (:func:`G_of_time`, :func:`time_of_G`).

- :func:`frozen_score` is the closed-form score evaluated through the reduced drift
  :func:`reduced_drift` (tests: equal to the ELS machine of :mod:`gltheory.patch` and to
  :func:`gltheory.scores.uniform_patch_score`).
- :func:`frozen_langevin` is the generic frozen-time sampler (any drift, replicas along the
  leading axis, streamed time averages of an observable); :func:`lattice_langevin`
  specialises it to the reduced lattice model with the magnetisation moments and $S(q)$
  streamed; :func:`lattice_statistics` turns a run into the Binder cumulant, the
  susceptibility and $S(q)$ with standard errors across replicas.
- :func:`integrated_autocorrelation_time` and :func:`equilibration_plan` give burn-in and
  thinning from a measured autocorrelation time (the rule in
  `docs/theory/spatial.md#equilibration`).
- The finite-size scaling of measured curves (host-side NumPy, the last section):
  :func:`lattice_binder_crossings` ($G^\ast$, $U^\ast$), :func:`fss_exponent` ($1/\nu$,
  $\gamma/\nu$, $\beta/\nu$), :func:`k_collapse`, :func:`universality_verdict` and
  :func:`fss_analysis` (`docs/theory/spatial.md#universality-class`).

This is frozen-time (fictitious-time) dynamics at one fixed forward time; it is not a reverse
diffusion and takes no reverse-time steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Real

from ._checks import (
    PROCESS,
    as_float_array,
    batch_time,
    check_callable,
    check_instance,
    check_positive_int,
    check_time,
    check_values,
    concrete_value,
    trusted,
)
from .criticality import binder_crossings
from .lattice import box_sum_periodic
from .processes import AbstractProcess

__all__ = [
    "snr_from_G",
    "G_from_snr",
    "G_of_time",
    "time_of_G",
    "reduced_drift",
    "frozen_score",
    "ReducedDrift",
    "FrozenRun",
    "frozen_langevin",
    "LatticeRun",
    "lattice_langevin",
    "LatticeStats",
    "lattice_statistics",
    "AutocorrelationTime",
    "integrated_autocorrelation_time",
    "EquilibrationPlan",
    "equilibration_plan",
    "BURN_IN_FACTOR",
    "NOISE_KINDS",
    "DISCRETE_NOISE_VALUES",
    # finite-size scaling of the lattice
    "UNIVERSALITY_CLASSES",
    "LatticeCrossings",
    "lattice_binder_crossings",
    "LatticeExponent",
    "fss_exponent",
    "KCollapse",
    "k_collapse",
    "ClassVerdict",
    "universality_verdict",
    "fss_analysis",
]

BURN_IN_FACTOR = 20.0
r"""Burn-in in units of the measured $\tau_{\rm int}$ of $|M|$ (:func:`equilibration_plan`)."""


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def _check_geometry(window, lattice_ndim) -> tuple[int, int]:
    if lattice_ndim not in (1, 2) or isinstance(lattice_ndim, bool):
        raise ValueError(f"lattice_ndim must be 1 or 2, got {lattice_ndim!r}.")
    if (
        isinstance(window, bool)
        or not isinstance(window, int | np.integer)
        or window < 1
        or window % 2 == 0
    ):
        raise ValueError(f"window must be an odd positive integer, got {window!r}.")
    return int(window), int(lattice_ndim)


def _positive(value, name: str):
    """A positive finite number (array) checked when concrete."""
    arr = as_float_array(value, name)
    return check_values(
        arr,
        lambda v: (~(v > 0) | ~(abs(v) < np.inf)).any(),
        f"{name} must be positive and finite, got {value!r}.",
    )


def _positive_scalar(value, name: str) -> float:
    """A positive finite Python number (a static run parameter)."""
    v = concrete_value(value)
    if v is None or np.ndim(v) != 0 or not (float(v) > 0 and math.isfinite(float(v))):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return float(v)


def _check_count(value, name: str, minimum: int) -> int:
    check_positive_int(value, name, minimum)
    return int(value)


# ----------------------------------------------------------------------------------------
# the reduced parametrisation
# ----------------------------------------------------------------------------------------


def snr_from_G(
    G: Real[ArrayLike, "*G"], *, window: int | np.integer, lattice_ndim: int | np.integer
) -> Float[Array, "*G"]:
    r"""The signal-to-noise ratio $\mathrm{SNR}=a_t^2/b_t^2=G/k^D$ of a reduced coupling $G$.

    **Arguments:**

    - `G`: the reduced coupling $G=\mathrm{SNR}\,k^D$ (positive).
    - `window`: the odd window size $k$.
    - `lattice_ndim`: $D$ (1 or 2).

    **Returns:** $G/k^D$, shaped like `G`.
    """
    k, d = _check_geometry(window, lattice_ndim)
    return _positive(G, "G") / float(k**d)


def G_from_snr(
    snr: Real[ArrayLike, "*snr"], *, window: int | np.integer, lattice_ndim: int | np.integer
) -> Float[Array, "*snr"]:
    r"""The reduced coupling $G=\mathrm{SNR}\,k^D$ (`docs/theory/spatial.md#reduction`).

    **Arguments:**

    - `snr`: $a_t^2/b_t^2$ (positive).
    - `window`: the odd window size $k$.
    - `lattice_ndim`: $D$ (1 or 2).

    **Returns:** $\mathrm{SNR}\,k^D$, shaped like `snr`.
    """
    k, d = _check_geometry(window, lattice_ndim)
    return _positive(snr, "snr") * float(k**d)


def G_of_time(
    process: AbstractProcess,
    t: Real[ArrayLike, "*t"],
    *,
    window: int | np.integer,
    lattice_ndim: int | np.integer,
) -> Float[Array, "*t"]:
    r"""$G(t)=\mathrm{SNR}_t\,k^D$ of a process at forward time $t$.

    $G$ decreases along the forward process; $G = 1$ is the linear instability of the
    symmetric point (`docs/theory/spatial.md#reduction`).

    **Arguments:**

    - `process`: a forward process (OU, VP, VE).
    - `t`: forward time(s) in $(0, T]$.
    - `window`: the odd window size $k$.
    - `lattice_ndim`: $D$ (1 or 2).

    **Returns:** $G$, shaped like `t`.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    k, d = _check_geometry(window, lattice_ndim)
    t = check_time(t, process.T, "t")
    return process.snr(t) * float(k**d)


def time_of_G(
    process: AbstractProcess,
    G: Real[ArrayLike, "*G"],
    *,
    window: int | np.integer,
    lattice_ndim: int | np.integer,
) -> Float[Array, "*G"]:
    r"""The forward time at which $\mathrm{SNR}_t\,k^D=G$ (inverse of :func:`G_of_time`).

    For OU, $t=\tfrac12\ln(1+k^D/G)$; VP and VE use their own ``t_of_snr``.

    **Arguments:**

    - `process`: a forward process (OU, VP, VE).
    - `G`: reduced coupling(s), positive; each must correspond to a time in $(0, T]$.
    - `window`: the odd window size $k$.
    - `lattice_ndim`: $D$ (1 or 2).

    **Returns:** $t$, shaped like `G`. Raises ``ValueError`` (naming `G`) when a concrete
    $G$ lies outside the process's range $[G(T), G(0^+))$.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    snr = snr_from_G(G, window=window, lattice_ndim=lattice_ndim)
    t = process.t_of_snr(snr)
    tv, Tv = concrete_value(t), concrete_value(process.T)
    if tv is not None and Tv is not None:
        if np.any(~np.isfinite(tv)) or np.any(tv <= 0) or np.any(tv > float(Tv) * (1 + 1e-6)):
            raise ValueError(
                f"G={np.asarray(concrete_value(G)).tolist()} corresponds to t={tv.tolist()}, "
                f"outside (0, T] = (0, {float(Tv):g}] for this process; G must lie in "
                f"[G(T), G(0+)) = [{float(process.snr(Tv)) * window**lattice_ndim:g}, ...)."
            )
    return t


# ----------------------------------------------------------------------------------------
# the score
# ----------------------------------------------------------------------------------------


def _drift(phi: Array, g: Array, window: int, lattice_ndim: int) -> Array:
    axes = tuple(range(phi.ndim - lattice_ndim, phi.ndim))
    return g * jnp.tanh(g * box_sum_periodic(phi, window, axes)) - phi


def _check_field(x, lattice_ndim: int, window: int, name: str) -> Array:
    x = as_float_array(x, name)
    if x.ndim < lattice_ndim:
        raise ValueError(
            f"{name} must have at least {lattice_ndim} lattice axes, got shape {x.shape}."
        )
    for ax in range(x.ndim - lattice_ndim, x.ndim):
        if window > x.shape[ax]:
            raise ValueError(
                f"window={window} exceeds the lattice size {x.shape[ax]} of {name} "
                f"along axis {ax}; window must be <= the lattice size."
            )
    return x


def reduced_drift(
    phi: Real[ArrayLike, "*phi"],
    G: Real[ArrayLike, ""],
    *,
    window: int | np.integer,
    lattice_ndim: int | np.integer,
) -> Float[Array, "*phi"]:
    r"""The drift of the reduced frozen-time dynamics, $f_i(\varphi)=g\tanh(g(K\varphi)_i)-\varphi_i$.

    $g=\sqrt{G/k^D}=a_t/b_t$ and $K$ the periodic $k^D$ box sum
    (:func:`gltheory.lattice.box_sum_periodic`). The score is $s(x,t)=f(x/b_t)/b_t$
    (`docs/theory/spatial.md#reduction`). Not a gradient field for $k<L$: its Jacobian
    $g^2\operatorname{sech}^2(h_i)K_{ij}-\delta_{ij}$ is not symmetric.

    **Arguments:**

    - `phi`: the reduced field $x/b_t$, shape ``(*batch, *lattice)`` with ``lattice_ndim``
      trailing lattice axes.
    - `G`: the reduced coupling (positive scalar).
    - `window`: the odd window size $k$ (at most the lattice size).
    - `lattice_ndim`: $D$ (1 or 2).

    **Returns:** $f(\varphi)$, shaped like `phi`.
    """
    k, d = _check_geometry(window, lattice_ndim)
    phi = _check_field(phi, d, k, "phi")
    g = jnp.sqrt(snr_from_G(G, window=k, lattice_ndim=d)).astype(phi.dtype)
    if g.ndim != 0:
        raise ValueError(f"G must be a scalar, got shape {g.shape}.")
    return _drift(phi, g, k, d)


def frozen_score(
    process: AbstractProcess,
    x: Real[ArrayLike, "*x"],
    t: Real[ArrayLike, "*t"],
    *,
    window: int | np.integer,
    lattice_ndim: int | np.integer,
) -> Float[Array, "*x"]:
    r"""The exact two-image ELS score in closed form, $s_i=\big(a\tanh(\tfrac{a}{b^2}(Kx)_i)-x_i\big)/b^2$.

    Evaluated as $s(x,t)=f(x/b_t)/b_t$ with the reduced drift $f$ of :func:`reduced_drift`
    at $G=\mathrm{SNR}_t k^D$ (the same number as :func:`gltheory.scores.uniform_patch_score`
    and as ``gltheory.score(gltheory.ELS(images, k), process, x, t)`` with the two images
    $\pm\mathbf 1$, to round-off).

    **Arguments:**

    - `process`: a forward process (OU, VP, VE).
    - `x`: shape ``(*batch, *lattice)``.
    - `t`: forward time in $(0, T]$ (scalar or batch-shaped).
    - `window`: the odd window size $k$.
    - `lattice_ndim`: $D$ (1 or 2).

    **Returns:** the score, shaped like `x`.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    k, d = _check_geometry(window, lattice_ndim)
    x = _check_field(x, d, k, "x")
    t = batch_time(check_time(t, process.T, "t"), x, d)
    b = process.b(t)
    g = jnp.exp(0.5 * process.log_snr(t))
    return _drift(x / b, g, k, d) / b


class ReducedDrift(eqx.Module):
    r"""The reduced drift $f(\varphi)=g\tanh(gK\varphi)-\varphi$ as a value (for :func:`frozen_langevin`).

    A module, so that a sampler compiled for one $(k, D)$ is reused for every $G$ (``g`` is a
    traced array).

    **Arguments:**

    - `G`: the reduced coupling (positive scalar).
    - `window`: the odd window size $k$.
    - `lattice_ndim`: $D$ (1 or 2).
    """

    g: Array
    window: int = eqx.field(static=True)
    lattice_ndim: int = eqx.field(static=True)

    def __init__(
        self, G: Real[ArrayLike, ""], window: int | np.integer, lattice_ndim: int | np.integer
    ):
        k, d = _check_geometry(window, lattice_ndim)
        value = concrete_value(G)
        if value is not None:  # a number: no device computation (and no compilation) here
            self.g = jnp.asarray(math.sqrt(_positive_scalar(G, "G") / k**d))
        else:
            g = jnp.sqrt(snr_from_G(G, window=k, lattice_ndim=d))
            if g.ndim != 0:
                raise ValueError(f"G must be a scalar, got shape {g.shape}.")
            self.g = g
        self.window = k
        self.lattice_ndim = d

    def __call__(self, phi: Array) -> Array:
        return _drift(phi, self.g.astype(phi.dtype), self.window, self.lattice_ndim)


# ----------------------------------------------------------------------------------------
# the generic frozen-time sampler
# ----------------------------------------------------------------------------------------


class FrozenRun(NamedTuple):
    """Result of :func:`frozen_langevin`.

    - `x`: the final states ``(n_replicas, *event)``.
    - `mean`: the time average of ``observe(x)`` over the samples (per replica; a pytree
      like ``observe``'s output).
    - `trace`: ``observe(x)`` at every sample stacked on a leading axis ``(n_samples, ...)``
      when ``record=True``, else ``None``.
    """

    x: Array
    mean: Any
    trace: Any


def _identity(x):
    return x


NOISE_KINDS = ("normal", "discrete")
r"""The noise laws of the frozen-time samplers (``noise=``): ``"normal"`` (the default),
$R_n$ standard normal; ``"discrete"``, $R_n$ i.i.d. per site with the symmetric four-point
law of :data:`DISCRETE_NOISE_VALUES` (the first five moments of $N(0, 1)$, 4 random bits per
site; the weak-order statement: :func:`frozen_langevin`)."""

DISCRETE_NOISE_VALUES = (math.sqrt(1.0 + math.sqrt(6.0)), math.sqrt(1.0 - math.sqrt(2.0 / 3.0)))
r"""The magnitudes $(a, b)$ of the ``"discrete"`` noise: $|R| = a$ with probability $1/4$,
$b$ with $3/4$, a fair sign. $a^2 = 1+\sqrt6$, $b^2 = 1-\sqrt{2/3}$ solve
$\tfrac14a^2+\tfrac34b^2 = 1$, $\tfrac14a^4+\tfrac34b^4 = 3$; odd moments vanish, so the
moments 1 to 5 are those of $N(0, 1)$ (the sixth is $10.27$ against $15$)."""


def _noise(key, i, shape, dtype):
    return jax.random.normal(jax.random.fold_in(key, i), shape, dtype)


def _discrete_noise(key, i, shape, dtype):
    """The ``"discrete"`` noise: one 32-bit word of ``bits(fold_in(key, i))`` per 8 sites of a
    replica (row), nibble ``j`` of word ``w`` serving site ``j * W + w`` of its row
    (``W = ceil(sites / 8)``): bits 0-1 choose the magnitude (``a`` when both are set), bit 2
    the sign. Rows draw from their own words, so a sharding along rows needs no exchange."""
    n, e = shape[0], math.prod(shape[1:])
    w = -(-e // 8)
    words = jax.random.bits(jax.random.fold_in(key, i), (n, 1, w), jnp.uint32)
    nib = words >> (4 * jnp.arange(8, dtype=jnp.uint32))[:, None]  # (n, 8, w)
    a, b = DISCRETE_NOISE_VALUES
    mag = jnp.where((nib & 3) == 3, jnp.asarray(a, dtype), jnp.asarray(b, dtype))
    v = jnp.where((nib & 4) != 0, -mag, mag).reshape(n, 8 * w)
    return (v[:, :e] if 8 * w != e else v).reshape(shape)


def _check_noise(noise) -> str:
    if not isinstance(noise, str) or noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}.")
    return noise


def _check_sharding(sharding, shape):
    """A ``jax.sharding.Sharding`` that can lay out the states ``shape`` (or ``None``)."""
    if sharding is None:
        return None
    if not isinstance(sharding, jax.sharding.Sharding):
        raise ValueError(
            f"sharding must be a jax.sharding.Sharding (e.g. NamedSharding(mesh, "
            f"PartitionSpec('batch'))) or None, got {type(sharding).__name__}."
        )
    try:
        sharding.shard_shape(tuple(shape))
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"sharding cannot lay out the states of shape {tuple(shape)} (n_replicas, "
            f"*lattice): n_replicas must divide evenly over the devices ({err})."
        ) from None
    return sharding


def _frozen_core(
    drift, observe, key, x0, dt, temperature, n_burn, n_samples, thin, record, noise, sharding
):
    amp = jnp.sqrt(0.5 * temperature * dt)  # sqrt(2 T dt) / 2
    draw = _noise if noise == "normal" else _discrete_noise
    if sharding is None:
        put = _identity
    else:

        def put(v):
            return jax.lax.with_sharding_constraint(v, sharding)

        x0 = put(x0)
    first = observe(x0)
    acc0 = jax.tree.map(jnp.zeros_like, first)
    buf0 = jax.tree.map(lambda o: jnp.zeros((n_samples,) + o.shape, o.dtype), first)
    buf0 = buf0 if record else None

    def one(c, i):
        # Leimkuhler-Matthews: x' = x + dt f(x) + sqrt(2 T dt) (R_i + R_{i+1}) / 2
        x, r, acc, buf = c
        r_next = put(draw(key, i + 1, x.shape, x.dtype))
        x = x + dt * drift(x) + amp * (r + r_next)
        done = i + 1 - n_burn  # steps taken after the burn-in
        sample = done // thin - 1

        def take(ab):
            acc, buf = ab
            obs = observe(x)
            acc = jax.tree.map(jnp.add, acc, obs)
            if record:
                buf = jax.tree.map(
                    lambda b, o: jax.lax.dynamic_update_index_in_dim(b, o, sample, 0), buf, obs
                )
            return acc, buf

        acc, buf = jax.lax.cond((done > 0) & (done % thin == 0), take, lambda ab: ab, (acc, buf))
        return (x, r_next, acc, buf), None

    carry = (x0, put(draw(key, 0, x0.shape, x0.dtype)), acc0, buf0)
    n_total = n_burn + n_samples * thin
    (x, _, acc, buf), _ = jax.lax.scan(one, carry, jnp.arange(n_total))
    mean = jax.tree.map(lambda a: a / n_samples, acc)
    return x, mean, buf


@eqx.filter_jit
@trusted
def _frozen_impl(
    drift, observe, key, x0, dt, temperature, n_burn, n_samples, thin, record, noise, sharding
):
    return _frozen_core(
        drift, observe, key, x0, dt, temperature, n_burn, n_samples, thin, record, noise, sharding
    )


def _run_args(dt, temperature, n_burn, n_samples, thin, dtype):
    dt = _positive_scalar(dt, "dt")
    temperature = _positive_scalar(temperature, "temperature")
    n_burn = _check_count(n_burn, "n_burn", 0)
    n_samples = _check_count(n_samples, "n_samples", 1)
    thin = _check_count(thin, "thin", 1)
    return (
        jnp.asarray(dt, dtype),
        jnp.asarray(temperature, dtype),
        n_burn,
        n_samples,
        thin,
    )


def frozen_langevin(
    drift: Callable[[Array], Array],
    key: PRNGKeyArray,
    x0: Real[ArrayLike, "*x0_shape"],
    *,
    dt: Real[ArrayLike, ""],
    n_burn: int | np.integer,
    n_samples: int | np.integer,
    thin: int | np.integer = 1,
    temperature: Real[ArrayLike, ""] = 1.0,
    observe: Callable[[Array], PyTree] | None = None,
    record: bool = False,
    noise: Literal["normal", "discrete"] = "normal",
    sharding: jax.sharding.Sharding | None = None,
) -> FrozenRun:
    r"""Frozen-time Langevin dynamics $dx=f(x)\,d\tau+\sqrt{2T}\,dW$ with streamed time averages.

    Leimkuhler–Matthews steps, $h$ = ``dt``:
    $x_{n+1}=x_n+h\,f(x_n)+\sqrt{2Th}\,\tfrac12(R_n+R_{n+1})$, $R_n$ i.i.d. standard
    normal with $R_n$ = ``normal(fold_in(key, n))`` over the whole batch. For a gradient
    drift $f=\nabla\ln p$ its stationary law is $p^{1/T}$ up to $O(h^2)$ (for a linear
    drift, exactly in the variance at any stable $h$). ``n_burn`` steps, then
    ``n_samples`` samples every ``thin`` steps; ``observe`` is evaluated at each sample and
    its time average (per replica) is accumulated in the loop, so memory does not grow with
    ``n_samples`` (unless ``record``). Replicas (the leading axis) are independent, so errors
    are standard errors across them.

    ``noise="discrete"`` replaces the normal $R_n$ by i.i.d. draws of a symmetric four-point
    law with the first five moments of $N(0, 1)$ (:data:`DISCRETE_NOISE_VALUES`; 4 random
    bits per site instead of a 32-bit word and an inverse error function): a weak
    approximation. Trajectories differ, laws agree to the order that matters here: the
    one-step expansion of $\mathbb E\,\phi(x_{n+1})$ to $O(h^2)$ involves the moments of
    $R$ up to the fourth only, so the weak order of the step and the $O(h^2)$ error of the
    stationary law are those of the normal noise (the $O(h^2)$ constant changes through the
    sixth moment). On a 2-core CPU the lattice sweep runs 2.8 times faster with it
    (1.9e8 against 6.8e7 site-updates per CPU-second, `benchmarks/bench_spatial.py`): the
    normal draw (a threefry call and an inverse error function per site) cost more than the
    drift. Its bits are ``bits(fold_in(key, n))`` of shape
    ``(n_replicas, 1, ceil(sites / 8))``: 8 sites of a replica per 32-bit word.

    With `sharding` (e.g. ``NamedSharding(gltheory.distributed.local_mesh(),
    PartitionSpec("batch"))``) the states and the noise are laid out with it; JAX's
    partitionable threefry draws the same numbers on any layout, so a sharded run equals
    the unsharded one (tests: 4 host devices). Without it the run follows `x0`'s sharding.

    With $f$ the exact score $s(\cdot,t)$ of a dataset at a fixed $t$ the stationary law is
    $p_t^{1/T}$ (tests: two deltas). For $k<L$ the patch score is not a gradient and the
    stationary state is a non-equilibrium one (`docs/theory/spatial.md#frozen-time`).

    **Arguments:**

    - `drift`: ``f(x)`` on a batch ``(n, *event)``, row by row (a function or an equinox
      module; an ``eqx.Module`` with array fields is not recompiled when its arrays change).
    - `key`: PRNG key of the noise.
    - `x0`: the initial states ``(n_replicas, *event)``.
    - `dt`: the step $h$ of fictitious time (positive).
    - `n_burn`: steps discarded before the first sample (>= 0).
    - `n_samples`: number of samples (>= 1).
    - `thin`: steps between samples (>= 1).
    - `temperature`: $T$ (positive; 1 is the physical noise).
    - `observe`: ``observe(x) -> pytree of arrays``; default the state itself.
    - `record`: also return every sample of ``observe`` (``FrozenRun.trace``).
    - `noise`: ``"normal"`` (default) or ``"discrete"`` (:data:`NOISE_KINDS`).
    - `sharding`: a ``jax.sharding.Sharding`` for the states ``(n_replicas, *event)``, or
      ``None``.

    **Returns:** a :class:`FrozenRun`.
    """
    check_callable(drift, "drift", "drift(x) -> array shaped like x")
    noise = _check_noise(noise)
    if observe is not None:
        check_callable(observe, "observe", "observe(x) -> pytree of arrays")
    x0 = as_float_array(x0, "x0")
    if x0.ndim < 1 or x0.shape[0] < 1:
        raise ValueError(f"x0 must have shape (n_replicas >= 1, *event), got {x0.shape}.")
    sharding = _check_sharding(sharding, x0.shape)
    dt, temperature, n_burn, n_samples, thin = _run_args(
        dt, temperature, n_burn, n_samples, thin, x0.dtype
    )
    x, mean, trace = _frozen_impl(
        drift,
        _identity if observe is None else observe,
        key,
        x0,
        dt,
        temperature,
        n_burn,
        n_samples,
        thin,
        bool(record),
        noise,
        sharding,
    )
    return FrozenRun(x, mean, trace if record else None)


# ----------------------------------------------------------------------------------------
# the lattice model
# ----------------------------------------------------------------------------------------


class _Moments(NamedTuple):
    m: Array
    m_abs: Array
    m2: Array
    m4: Array
    structure_factor: Array | None


class _LatticeObserver(eqx.Module):
    lattice_ndim: int = eqx.field(static=True)
    with_structure_factor: bool = eqx.field(static=True)

    def __call__(self, phi):
        axes = tuple(range(phi.ndim - self.lattice_ndim, phi.ndim))
        m = jnp.mean(phi, axis=axes)
        s = None
        if self.with_structure_factor:
            q = jnp.fft.fftn(phi, axes=axes)
            n = math.prod(phi.shape[-self.lattice_ndim :])
            s = (jnp.real(q) ** 2 + jnp.imag(q) ** 2) / n
        m2 = m * m
        return _Moments(m, jnp.abs(m), m2, m2 * m2, s)


class LatticeRun(NamedTuple):
    r"""Result of :func:`lattice_langevin` (per-replica time averages; reduced variables).

    $M=\frac1N\sum_i\varphi_i$ is the magnetisation of the reduced field ($N = L^D$ sites).

    - `phi`: final states ``(n_replicas, *lattice)`` (continue a run with ``start=phi``).
    - `m`, `m_abs`, `m2`, `m4`: time averages of $M$, $|M|$, $M^2$, $M^4$, shape
      ``(n_replicas,)``.
    - `structure_factor`: time average of $S(q)=|\hat\varphi(q)|^2/N$ (``fftn`` order),
      ``(n_replicas, *lattice)``, or ``None``.
    - `trace`: $M$ at every sample ``(n_samples, n_replicas)`` when ``record``, else ``None``.
    - `G`, `window`, `cells`, `lattice_ndim`, `temperature`, `dt`, `n_burn`, `n_samples`,
      `thin`: the run's parameters (Python numbers).
    """

    phi: Array
    m: Array
    m_abs: Array
    m2: Array
    m4: Array
    structure_factor: Array | None
    trace: Array | None
    G: float
    window: int
    cells: int
    lattice_ndim: int
    temperature: float
    dt: float
    n_burn: int
    n_samples: int
    thin: int


def _check_start(start, shape, dtype):
    """``(mode, states)``: a start mode string (states ``None``) or given states."""
    if isinstance(start, str):
        if start not in ("ordered", "disordered"):
            raise ValueError(
                f"start must be 'ordered', 'disordered' or an array of shape {shape}, "
                f"got {start!r}."
            )
        return start, None
    x0 = as_float_array(start, "start").astype(dtype)
    if x0.shape != tuple(shape):
        raise ValueError(
            f"start must have shape {tuple(shape)} (n_replicas, *lattice), got {x0.shape}."
        )
    return "given", x0


@eqx.filter_jit
@trusted
def _lattice_impl(
    drift,
    observe,
    key,
    mode,
    x0,
    shape,
    dtype,
    dt,
    temperature,
    n_burn,
    n_samples,
    thin,
    record,
    noise,
    sharding,
):
    k_start, k_noise = jax.random.split(key)
    if mode == "ordered":  # phi = +-g on every site, a random sign per replica
        sign = jnp.where(jax.random.bernoulli(k_start, 0.5, shape[:1]), 1.0, -1.0)
        sign = sign.reshape((-1,) + (1,) * (len(shape) - 1))
        x0 = jnp.broadcast_to(sign * drift.g, shape).astype(dtype)
    elif mode == "disordered":
        x0 = jnp.zeros(shape, dtype)
    return _frozen_core(
        drift,
        observe,
        k_noise,
        x0,
        dt,
        temperature,
        n_burn,
        n_samples,
        thin,
        record,
        noise,
        sharding,
    )


def lattice_langevin(
    key: PRNGKeyArray,
    G: Real[ArrayLike, ""],
    *,
    window: int | np.integer,
    cells: int | np.integer,
    lattice_ndim: int | np.integer = 2,
    n_replicas: int | np.integer,
    n_burn: int | np.integer,
    n_samples: int | np.integer,
    thin: int | np.integer = 1,
    dt: Real[ArrayLike, ""] = 0.025,
    temperature: Real[ArrayLike, ""] = 1.0,
    start: Literal["ordered", "disordered"] | str | Real[ArrayLike, "*start_shape"] = "ordered",
    structure_factor: bool = True,
    record: bool = False,
    dtype: Any = None,
    noise: Literal["normal", "discrete"] = "normal",
    sharding: jax.sharding.Sharding | None = None,
) -> LatticeRun:
    r"""Frozen-time Langevin dynamics of the two-image patch model in the reduced variables.

    $d\varphi=[g\tanh(gK\varphi)-\varphi]\,d\tau'+\sqrt{2T}\,dW$ with $g=\sqrt{G/k^D}$ on a
    periodic lattice of side $L = $ ``cells``$\cdot k$ (:func:`frozen_langevin`'s
    Leimkuhler–Matthews steps, $h$ = ``dt`` in units of $\tau'=\tau/b_t^2$). In these
    variables a run at $(G, L/k)$ describes every process and every $t$ with
    $\mathrm{SNR}_t k^D = G$ (:func:`time_of_G`); the physical state is $x=b_t\varphi$ and
    the physical time $\tau=b_t^2\tau'$. Streams $M=\overline{\varphi}$ (its moments) and
    $S(q)$ per replica; :func:`lattice_statistics` gives the Binder cumulant, $\chi$ and
    their errors. Choose ``n_burn`` and ``thin`` with :func:`equilibration_plan`. Keep
    $h\,(1+G/3)\ll 1$ ($1+G/3$ bounds the fastest linear decay rate of the drift for
    every window; $G-1$ is the growth rate of the uniform mode).

    The key is split once: ``k_start, k_noise = jax.random.split(key)``; ``k_start`` draws
    the signs of an ordered start and ``k_noise`` is :func:`frozen_langevin`'s key. The
    default (normal) noise is reproducible bit for bit by key; ``noise="discrete"`` (the
    fast option: :func:`frozen_langevin`) samples the same laws (tests: the tempered ideal
    law at window $= L$) from other numbers. `sharding` lays the replicas out over devices
    (:func:`frozen_langevin`); the results do not depend on it.

    **Arguments:**

    - `key`: PRNG key.
    - `G`: the reduced coupling $\mathrm{SNR}\,k^D$ (positive scalar).
    - `window`: the odd window size $k$.
    - `cells`: $L/k$ (a positive integer).
    - `lattice_ndim`: $D$ (1 or 2).
    - `n_replicas`: independent replicas (>= 1).
    - `n_burn`, `n_samples`, `thin`: steps before the first sample, samples, steps between
      samples.
    - `dt`: the step in $\tau'$ (positive).
    - `temperature`: $T$ (1 physical, < 1 tempered).
    - `start`: ``"ordered"`` ($\varphi=\pm g$ everywhere, a random sign per replica: the
      ordered fixed point at large $G$), ``"disordered"`` ($\varphi = 0$), or states
      ``(n_replicas, *lattice)`` (e.g. the ``phi`` of an earlier run).
    - `structure_factor`: stream $S(q)$ too (one FFT per sample).
    - `record`: keep $M$ at every sample (for :func:`integrated_autocorrelation_time`).
    - `dtype`: float dtype of the states (default JAX's default float).
    - `noise`: ``"normal"`` (default) or ``"discrete"`` (:data:`NOISE_KINDS`).
    - `sharding`: a ``jax.sharding.Sharding`` for the states ``(n_replicas, *lattice)``
      (typically ``NamedSharding(mesh, PartitionSpec("batch"))``), or ``None``.

    **Returns:** a :class:`LatticeRun`.
    """
    k, d = _check_geometry(window, lattice_ndim)
    cells = _check_count(cells, "cells", 1)
    n_replicas = _check_count(n_replicas, "n_replicas", 1)
    noise = _check_noise(noise)
    G_value = _positive_scalar(G, "G")
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dtype}.")
    drift = ReducedDrift(G_value, k, d)
    shape = (n_replicas,) + (cells * k,) * d
    mode, x0 = _check_start(start, shape, dtype)
    sharding = _check_sharding(sharding, shape)
    dt_a, temp_a, n_burn, n_samples, thin = _run_args(
        dt, temperature, n_burn, n_samples, thin, dtype
    )
    phi, mom, trace = _lattice_impl(
        drift,
        _LatticeObserver(d, bool(structure_factor)),
        key,
        mode,
        x0,
        shape,
        dtype,
        dt_a,
        temp_a,
        n_burn,
        n_samples,
        thin,
        bool(record),
        noise,
        sharding,
    )
    run = FrozenRun(phi, mom, trace)
    mom = run.mean
    return LatticeRun(
        run.x,
        mom.m,
        mom.m_abs,
        mom.m2,
        mom.m4,
        mom.structure_factor,
        run.trace.m if record else None,
        G_value,
        k,
        cells,
        d,
        _positive_scalar(temperature, "temperature"),
        _positive_scalar(dt, "dt"),
        int(n_burn),
        int(n_samples),
        int(thin),
    )


class LatticeStats(NamedTuple):
    r"""Estimates from a :class:`LatticeRun`, each with its standard error across replicas.

    Averages $\langle\cdot\rangle$ are over time and replicas. Errors: for means, the
    standard deviation of the replicas' time averages over $\sqrt R$; for the Binder
    cumulant and $\chi$ (ratios of means) the jackknife over replicas.

    - `binder`, `binder_se`: $U=1-\langle M^4\rangle/(3\langle M^2\rangle^2)$.
    - `chi`, `chi_se`: $\chi=N(\langle M^2\rangle-\langle|M|\rangle^2)$, $N=L^D$.
    - `m`, `m_se`; `m_abs`, `m_abs_se`; `m2`, `m2_se`; `m4`, `m4_se`: the moments.
    - `structure_factor`, `structure_factor_se`: $S(q)$ ``(*lattice)`` (or ``None``).
    - `n_sites`: $N$; `n_replicas`: $R$.
    """

    binder: float
    binder_se: float
    chi: float
    chi_se: float
    m: float
    m_se: float
    m_abs: float
    m_abs_se: float
    m2: float
    m2_se: float
    m4: float
    m4_se: float
    structure_factor: np.ndarray | None
    structure_factor_se: np.ndarray | None
    n_sites: int
    n_replicas: int


def _mean_se(v: np.ndarray) -> tuple[np.ndarray | np.floating, np.ndarray | np.floating]:
    """Mean over the leading (replica) axis and its SE: NumPy scalars for ``(R,)``."""
    r = v.shape[0]
    se = np.std(v, axis=0, ddof=1) / np.sqrt(r) if r > 1 else np.full(v.shape[1:], np.nan)
    return np.mean(v, axis=0), se


def _jackknife(fn, *cols: np.ndarray) -> tuple[float, float]:
    """``fn`` of the replica means and its delete-one jackknife SE."""
    r = cols[0].shape[0]
    full = float(fn(*(np.mean(c) for c in cols)))
    if r < 2:
        return full, float("nan")
    loo = [(np.sum(c) - c) / (r - 1) for c in cols]
    vals = fn(*loo)
    return full, float(np.sqrt((r - 1) / r * np.sum((vals - np.mean(vals)) ** 2)))


def lattice_statistics(run: LatticeRun) -> LatticeStats:
    r"""Binder cumulant, susceptibility, moments and $S(q)$ of a run, with standard errors.

    $U=1-\langle M^4\rangle/(3\langle M^2\rangle^2)$ ($0$ for a Gaussian $M$, the
    disordered phase; $2/3$ for $M=\pm m_0$, the ordered one) and
    $\chi=N(\langle M^2\rangle-\langle|M|\rangle^2)$, $N=L^D$; in the reduced variables both
    depend on $(G, L/k, T)$ only (`docs/theory/spatial.md#estimators`). Standard errors come
    from the independent replicas (jackknife for $U$ and $\chi$). With ``structure_factor``,
    $S(q)$ is averaged over replicas (a radial average: :func:`gltheory.field.radial_average`).
    Computed on the host in float64 (NumPy): no compilation.

    **Arguments:**

    - `run`: a :class:`LatticeRun`.

    **Returns:** a :class:`LatticeStats` (NumPy values).
    """
    if not isinstance(run, LatticeRun):
        raise ValueError(f"run must be a LatticeRun, got {type(run).__name__}.")
    n = (run.cells * run.window) ** run.lattice_ndim
    col = lambda v: np.asarray(v, np.float64)  # noqa: E731
    m1, ma, m2, m4 = col(run.m), col(run.m_abs), col(run.m2), col(run.m4)
    r = int(m1.shape[0])
    binder, binder_se = _jackknife(lambda m2, m4: 1 - m4 / (3 * m2**2), m2, m4)
    chi, chi_se = _jackknife(lambda m2, ma: n * (m2 - ma**2), m2, ma)
    m, m_se = _mean_se(m1)
    ma_mean, ma_se = _mean_se(ma)
    m2_mean, m2_se = _mean_se(m2)
    m4_mean, m4_se = _mean_se(m4)
    s = s_se = None
    if run.structure_factor is not None:
        s, s_se = _mean_se(col(run.structure_factor))
    return LatticeStats(
        binder,
        binder_se,
        chi,
        chi_se,
        float(m),
        float(m_se),
        float(ma_mean),
        float(ma_se),
        float(m2_mean),
        float(m2_se),
        float(m4_mean),
        float(m4_se),
        s,
        s_se,
        n,
        r,
    )


# ----------------------------------------------------------------------------------------
# autocorrelation times and the equilibration rule
# ----------------------------------------------------------------------------------------


class AutocorrelationTime(NamedTuple):
    r"""Integrated autocorrelation time (in samples) from :func:`integrated_autocorrelation_time`.

    - `tau_int`: $\tau_{\rm int}=\tfrac12+\sum_{s=1}^{W}\rho(s)$.
    - `window`: the summation window $W$ chosen by the self-consistent rule.
    - `reliable`: whether the series is long enough for it (length $\ge 50\,\tau_{\rm int}$
      and a window found before the end).
    """

    tau_int: float
    window: int
    reliable: bool


def integrated_autocorrelation_time(
    series: Real[ArrayLike, "*series_shape"], *, c: float | int = 5.0
) -> AutocorrelationTime:
    r"""Integrated autocorrelation time with Sokal's self-consistent window.

    The autocorrelation $\rho(s)$ is computed by FFT for each chain (column) about its own
    mean and averaged over chains; $\tau_{\rm int}(W)=\tfrac12+\sum_{s=1}^W\rho(s)$ and $W$ is
    the smallest window with $W\ge c\,\tau_{\rm int}(W)$. With this convention the variance
    of a time average of $n$ samples is $2\tau_{\rm int}\,\sigma^2/n$.

    **Arguments:**

    - `series`: shape ``(n,)`` (one chain) or ``(n, n_chains)``; at least 4 samples.
    - `c`: the window factor (positive; 5 is customary, 6-8 for slowly decaying $\rho$).

    **Returns:** an :class:`AutocorrelationTime` (units: samples).
    """
    y = np.asarray(as_float_array(series, "series"), np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] < 4 or y.shape[1] < 1:
        raise ValueError(f"series must have shape (n >= 4,) or (n >= 4, n_chains), got {y.shape}.")
    c = _positive_scalar(c, "c")
    if not np.all(np.isfinite(y)):
        raise ValueError("series must be finite.")
    n = y.shape[0]
    y = y - y.mean(axis=0)
    f = np.fft.rfft(y, n=2 * n, axis=0)
    acf = np.fft.irfft(np.abs(f) ** 2, axis=0)[:n].mean(axis=1)
    if acf[0] <= 0:  # a constant series: no correlation to measure
        return AutocorrelationTime(0.5, 0, True)
    rho = acf / acf[0]
    tau = 0.5 + np.cumsum(rho[1:])
    ok = np.nonzero(np.arange(1, n) >= c * tau)[0]
    if ok.size == 0:
        return AutocorrelationTime(float(max(tau[-1], 0.5)), n - 1, False)
    w = int(ok[0]) + 1
    t = float(max(tau[w - 1], 0.5))
    return AutocorrelationTime(t, w, bool(n >= 50 * t))


class EquilibrationPlan(NamedTuple):
    r"""Burn-in and thinning for :func:`lattice_langevin` from a pilot run.

    - `tau_int`: $\tau_{\rm int}$ of $|M|$ in units of $\tau'$ (steps times ``dt``).
    - `n_burn`: ``ceil(burn_factor * tau_int / dt)`` steps.
    - `thin`: ``max(1, floor(tau_int / (2 dt)))`` steps (samples half a $\tau_{\rm int}$ apart).
    - `reliable`: :class:`AutocorrelationTime`'s flag (pilot long enough).
    - `phi`: the pilot's final states (continue from them with ``start=phi``).
    """

    tau_int: float
    n_burn: int
    thin: int
    reliable: bool
    phi: Array


def equilibration_plan(
    key: PRNGKeyArray,
    G: Real[ArrayLike, ""],
    *,
    window: int | np.integer,
    cells: int | np.integer,
    lattice_ndim: int | np.integer = 2,
    n_replicas: int | np.integer,
    n_pilot: int | np.integer,
    dt: Real[ArrayLike, ""] = 0.025,
    temperature: Real[ArrayLike, ""] = 1.0,
    start: Literal["ordered", "disordered"] | str | Real[ArrayLike, "*start_shape"] = "ordered",
    burn_factor: float | int = BURN_IN_FACTOR,
    dtype: Any = None,
    noise: Literal["normal", "discrete"] = "normal",
    sharding: jax.sharding.Sharding | None = None,
) -> EquilibrationPlan:
    r"""Measure $\tau_{\rm int}$ of $|M|$ in a pilot run and derive burn-in and thinning.

    The rule (`docs/theory/spatial.md#equilibration`): a pilot of ``n_pilot`` steps records
    $M$ at every step; its first half is discarded and $\tau_{\rm int}$ of $|M|$ is measured
    on the second half (:func:`integrated_autocorrelation_time`, averaged over replicas).
    Then burn-in $=$ ``burn_factor`` $\cdot\,\tau_{\rm int}$ (default 20) and thinning
    $\tau_{\rm int}/2$. $|M|$ rather than $M$: the Binder cumulant and $\chi$ are even in
    $M$, and in the ordered phase $M$'s own correlation time is the (irrelevant, possibly
    astronomically long) time between sign flips. If the pilot is too short the plan says
    ``reliable=False``: lengthen it.

    **Arguments:**

    - `key`: PRNG key of the pilot.
    - `G`, `window`, `cells`, `lattice_ndim`, `n_replicas`, `dt`, `temperature`, `start`,
      `dtype`, `noise`, `sharding`: as in :func:`lattice_langevin`.
    - `n_pilot`: pilot steps (>= 16).
    - `burn_factor`: burn-in in units of $\tau_{\rm int}$ (positive).

    **Returns:** an :class:`EquilibrationPlan`.
    """
    n_pilot = _check_count(n_pilot, "n_pilot", 16)
    burn_factor = _positive_scalar(burn_factor, "burn_factor")
    dt_value = _positive_scalar(dt, "dt")
    run = lattice_langevin(
        key,
        G,
        window=window,
        cells=cells,
        lattice_ndim=lattice_ndim,
        n_replicas=n_replicas,
        n_burn=n_pilot // 2,
        n_samples=n_pilot - n_pilot // 2,
        thin=1,
        dt=dt,
        temperature=temperature,
        start=start,
        structure_factor=False,
        record=True,
        dtype=dtype,
        noise=noise,
        sharding=sharding,
    )
    ac = integrated_autocorrelation_time(jnp.abs(run.trace))
    tau = ac.tau_int * dt_value
    return EquilibrationPlan(
        tau,
        int(math.ceil(burn_factor * ac.tau_int)),
        max(1, int(ac.tau_int // 2)),
        ac.reliable,
        run.phi,
    )


# ---- finite-size scaling of the lattice ----
# Host-side (NumPy, float64) analysis of Binder/susceptibility/magnetisation curves measured with
# lattice_langevin at several lattice sizes (`docs/theory/spatial.md#universality-class`).

UNIVERSALITY_CLASSES: dict[str, dict[str, float]] = {
    "2d_ising": dict(nu=1.0, gamma_over_nu=1.75, beta_over_nu=0.125, binder_star=0.6107),
    "mean_field": dict(nu=1.0, gamma_over_nu=1.0, beta_over_nu=0.5, binder_star=0.2705),
}
r"""Finite-size-scaling values of the two candidate classes in $D=2$
(`docs/theory/spatial.md#universality-class`). For mean field with $N=L^2$ sites the scaling
variable is $\varepsilon N^{1/2}=\varepsilon L$, so its effective $\nu$ is 1 like Ising's (the
Binder slope alone cannot tell them apart), $\chi\propto N^{1/2}=L$ and $M\propto L^{-1/2}$;
$U^\ast$ is the periodic-square Ising value and the Curie–Weiss value
$1-\Gamma(1/4)^4/(24\pi^2)$."""


def _host_array(value, name: str) -> np.ndarray:
    """A float64 NumPy array (host-side analysis: no float32 round trip through JAX)."""
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real array, got {type(value).__name__}.") from None
    return out


def _fss_curves(G, values, values_se, sizes, name: str):
    G = _host_array(G, "G")
    y = _host_array(values, name)
    e = _host_array(values_se, f"{name}_se")
    s = _host_array(sizes, "sizes")
    if G.ndim != 1 or G.size < 2 or not np.all(np.isfinite(G)):
        raise ValueError(f"G must be a finite 1-D grid of >= 2 points, got shape {G.shape}.")
    if np.any(np.diff(G) <= 0):
        raise ValueError("G must be strictly increasing.")
    if s.ndim != 1 or s.size < 2 or np.any(~(s > 0)) or np.any(np.diff(s) <= 0):
        raise ValueError(f"sizes must be >= 2 positive increasing sizes, got {s.tolist()}.")
    if y.shape != (s.size, G.size):
        raise ValueError(
            f"{name} must have shape (len(sizes), len(G)) = {(s.size, G.size)}, got {y.shape}."
        )
    if e.shape != y.shape:
        raise ValueError(f"{name}_se must have the shape of {name} {y.shape}, got {e.shape}.")
    m = ~np.isnan(y)  # NaN: not measured at that (size, G)
    if not (np.all(e[m] == 0) or np.all(e[m] > 0)) or not np.all(np.isfinite(y[m])):
        raise ValueError(
            f"{name} must be finite (NaN where not measured) and {name}_se all positive "
            "(sampled) or all zero (exact)."
        )
    return G, y, e, s


def _check_degree(degree) -> int:
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 1:
        raise ValueError(f"degree must be an integer >= 1, got {degree!r}.")
    return int(degree)


def _select(G, G_range):
    if G_range is None:
        return np.ones(G.shape, bool)
    lo, hi = (float(v) for v in G_range)
    if not lo < hi:
        raise ValueError(f"G_range must be (lo, hi) with lo < hi, got {G_range!r}.")
    return (G >= lo) & (G <= hi)


def _wpoly(x, y, e, degree: int, centre: float):
    """Weighted polynomial fit in ``x - centre``: coefficients (low order first), covariance,
    chi^2 and dof. Covariance scaled by max(1, chi^2/dof); exact data (e = 0): equal weights
    and the residual variance."""
    a = np.vander(x - centre, degree + 1, increasing=True)
    exact = bool(np.all(e == 0))
    w = np.ones_like(y) if exact else 1 / e**2
    cov = np.linalg.inv(a.T @ (a * w[:, None]))
    coef = cov @ (a.T @ (w * y))
    dof = x.size - degree - 1
    chi2 = float(np.sum(w * (y - a @ coef) ** 2))
    if dof > 0:
        cov = cov * (chi2 / dof if exact else max(1.0, chi2 / dof))
    return coef, cov, chi2, dof


def _basis(x, degree: int, centre: float, derivative: int = 0) -> np.ndarray:
    """Row vector v with P^(derivative)(x) = v @ coef."""
    j = np.arange(degree + 1)
    u = x - centre
    if derivative == 0:
        return u**j
    return np.where(j >= 1, j * np.where(j >= 1, u ** np.maximum(j - 1, 0), 0.0), 0.0)


def _fits(G, y, e, degree, sel, name):
    """Per-size fits over the measured (non-NaN) points in ``sel``, a common centre, and each
    size's fitted range ``(lo, hi)``."""
    rows = [sel & ~np.isnan(y[i]) for i in range(y.shape[0])]
    n = min(int(r.sum()) for r in rows)
    if n < degree + 1:
        raise ValueError(
            f"the degree-{degree} fit of {name} needs >= {degree + 1} measured points of G in "
            f"G_range for every size, got {n}."
        )
    centre = float(np.mean(G[sel & np.any(~np.isnan(y), axis=0)]))
    fits = [_wpoly(G[r], y[i, r], e[i, r], degree, centre) for i, r in enumerate(rows)]
    ranges = [(float(G[r].min()), float(G[r].max())) for r in rows]
    return fits, centre, ranges


class LatticeCrossings(NamedTuple):
    r"""Binder crossings of successive sizes (:func:`lattice_binder_crossings`).

    Arrays of shape ``(n_sizes - 1,)``:

    - `size_small`, `size_large`: the pair.
    - `G_star`, `G_star_se`: the crossing coupling (NaN where the fitted curves do not cross
      inside the fitted range).
    - `binder_star`, `binder_star_se`: $U$ there.
    - `G_star_linear`, `G_star_linear_se`: the same crossing from
      :func:`gltheory.criticality.binder_crossings` (linear interpolation of neighbouring grid
      points, delta-method SE): a cross-check of the polynomial rule (NaN unless
      ``linear=True``).
    - `chi2_dof`: $\chi^2/{\rm dof}$ of each size's fit, shape ``(n_sizes,)`` (NaN for
      ``dof = 0``).
    """

    size_small: np.ndarray
    size_large: np.ndarray
    G_star: np.ndarray
    G_star_se: np.ndarray
    binder_star: np.ndarray
    binder_star_se: np.ndarray
    G_star_linear: np.ndarray
    G_star_linear_se: np.ndarray
    chi2_dof: np.ndarray


def lattice_binder_crossings(
    G: Real[ArrayLike, "*G"],
    binder: Real[ArrayLike, "*binder"],
    binder_se: Real[ArrayLike, "*binder_se"],
    sizes: Real[ArrayLike, "*sizes"],
    *,
    degree: int | np.integer = 2,
    G_range: tuple[float, float] | None = None,
    linear: bool = False,
) -> LatticeCrossings:
    r"""Crossings $G^\ast$ of Binder curves $U_L(G)$ of successive sizes, and $U^\ast$, with SEs.

    The rule: each $U_L(G)$ is fitted on the grid points in ``G_range`` by a weighted polynomial
    of ``degree`` (weights $1/{\rm se}^2$, covariance scaled by $\max(1,\chi^2/{\rm dof})$);
    the crossing of sizes $L_i<L_{i+1}$ is the root of $P_i-P_{i+1}$ inside the fitted range
    nearest its centre. First-order errors from the two fits' covariances (the sizes are
    independent runs): ${\rm var}\,G^\ast=v^{\mathsf T}(C_i+C_{i+1})v/d'^2$ and
    ${\rm var}\,U^\ast=(P'_{i+1}/d')^2v^{\mathsf T}C_iv+(P'_i/d')^2v^{\mathsf T}C_{i+1}v$, with
    $v=(1,G^\ast,\dots)$ and $d'=P'_i-P'_{i+1}$. The polynomial uses every point in the range,
    so noise in one grid point moves the crossing less than in linear interpolation of two
    neighbours (which is reported alongside, from
    :func:`gltheory.criticality.binder_crossings`).

    **Arguments:**

    - `G`: the coupling grid ``(n_G,)``, increasing.
    - `binder`, `binder_se`: $U$ and its SE, shape ``(n_sizes, n_G)`` (SEs all positive, or all
      zero for exact curves; NaN where a size was not measured: each size is fitted on its
      own points, and a pair's crossing is sought where both were measured).
    - `sizes`: $L$ (or $L/k$: only ratios matter), increasing, ``(n_sizes,)``.
    - `degree`: polynomial degree (>= 1).
    - `G_range`: ``(lo, hi)``: fit only grid points in it (default: all).
    - `linear`: also compute the linear-interpolation cross-check (compiles
      :func:`gltheory.criticality.binder_crossings` once per shape; NaN without it).

    **Returns:** a :class:`LatticeCrossings` (NumPy, float64).
    """
    G, u, e, s = _fss_curves(G, binder, binder_se, sizes, "binder")
    degree = _check_degree(degree)
    sel = _select(G, G_range)
    fits, c, ranges = _fits(G, u, e, degree, sel, "binder")
    rows = []
    for i in range(s.size - 1):
        (c1, v1, _, _), (c2, v2, _, _) = fits[i], fits[i + 1]
        lo, hi = max(ranges[i][0], ranges[i + 1][0]), min(ranges[i][1], ranges[i + 1][1])
        diff = c1 - c2
        roots = np.roots(diff[::-1]) if np.any(diff[1:] != 0) else np.array([])
        roots = roots[np.abs(roots.imag) <= 1e-9 * (1 + np.abs(roots.real))].real + c
        roots = roots[(roots >= lo - 1e-12) & (roots <= hi + 1e-12)]
        if roots.size == 0:
            rows.append((np.nan,) * 4)
            continue
        g = float(roots[np.argmin(np.abs(roots - c))])
        v = _basis(g, degree, c)
        dv = _basis(g, degree, c, 1)
        p1, p2 = float(dv @ c1), float(dv @ c2)
        dd = p1 - p2
        var_g = float(v @ (v1 + v2) @ v) / dd**2
        var_u = (p2 / dd) ** 2 * float(v @ v1 @ v) + (p1 / dd) ** 2 * float(v @ v2 @ v)
        rows.append((g, math.sqrt(var_g), float(v @ c1), math.sqrt(var_u)))
    rows = np.array(rows, np.float64)
    lin_t = lin_se = np.full(s.size - 1, np.nan)
    if linear:
        cols = sel & np.all(~np.isnan(u), axis=0)
        lin = binder_crossings(
            G[cols], u[:, cols], e[:, cols] if np.all(e[:, cols] > 0) else None, sizes=s
        )
        lin_t, lin_se = np.asarray(lin.t, np.float64), np.asarray(lin.se, np.float64)
    chi2_dof = np.array([ch / dof if dof > 0 else np.nan for _, _, ch, dof in fits])
    return LatticeCrossings(
        s[:-1],
        s[1:],
        rows[:, 0],
        rows[:, 1],
        rows[:, 2],
        rows[:, 3],
        lin_t,
        lin_se,
        chi2_dof,
    )


class LatticeExponent(NamedTuple):
    r"""A power law $y_L\propto L^{x}$ across sizes at one coupling (:func:`fss_exponent`).

    - `exponent`, `exponent_se`: $x$ and its SE (`exponent_se_stat` and `exponent_se_G`
      combined in quadrature).
    - `exponent_se_stat`: from the weighted straight-line fit of $\ln y_L$ on $\ln L$
      (scaled by $\sqrt{\max(1,\chi^2/{\rm dof})}$).
    - `exponent_se_G`: from the uncertainty of the coupling: half the spread of $x$
      evaluated at $G^\ast\pm{\rm se}(G^\ast)$.
    - `values`, `values_se`: $y_L(G^\ast)$ per size (from the per-size polynomial fits).
    - `pairwise`: the exponents of successive pairs, $\ln(y_{i+1}/y_i)/\ln(L_{i+1}/L_i)$
      (a drift shows corrections to scaling).
    - `chi2_dof`: of the straight-line fit (NaN with two sizes).
    """

    exponent: float
    exponent_se: float
    exponent_se_stat: float
    exponent_se_G: float
    values: np.ndarray
    values_se: np.ndarray
    pairwise: np.ndarray
    chi2_dof: float


def _loglog(s, y, ye, exact: bool):
    x = np.log(s)
    ly = np.log(y)
    le = ye / y
    a = np.stack([np.ones_like(x), x], axis=1)
    w = np.ones_like(ly) if exact else 1 / le**2
    cov = np.linalg.inv(a.T @ (a * w[:, None]))
    coef = cov @ (a.T @ (w * ly))
    dof = x.size - 2
    chi2 = float(np.sum(w * (ly - a @ coef) ** 2))
    if dof > 0:
        cov = cov * (chi2 / dof if exact else max(1.0, chi2 / dof))
    return float(coef[1]), math.sqrt(max(float(cov[1, 1]), 0.0)), (chi2 / dof if dof else np.nan)


def fss_exponent(
    G: Real[ArrayLike, "*G"],
    values: Real[ArrayLike, "*values"],
    values_se: Real[ArrayLike, "*values_se"],
    sizes: Real[ArrayLike, "*sizes"],
    G_star: float | Real[ArrayLike, ""],
    G_star_se: float | Real[ArrayLike, ""] = 0.0,
    *,
    derivative: bool = False,
    degree: int | np.integer = 2,
    G_range: tuple[float, float] | None = None,
) -> LatticeExponent:
    r"""The finite-size exponent $x$ of $y_L(G^\ast)\propto L^x$ (or of $dy_L/dG$ at $G^\ast$).

    The rule: each size's curve is fitted on the grid points in ``G_range`` by a weighted
    polynomial of ``degree`` in $G$ (as :func:`lattice_binder_crossings`; with
    ``derivative=False`` the fit is of $\ln y$, which varies slowly, with SEs ${\rm se}/y$);
    $y_L(G^\ast)$ (or $P'_L(G^\ast)$) and its SE come from the fit; then $\ln y_L$ is fitted
    by a weighted straight line in $\ln L$. The coupling's uncertainty enters as half the
    spread of $x$ between $G^\ast\pm{\rm se}(G^\ast)$, added in quadrature.

    Uses: $\nu$ from the Binder slope, $dU_L/dG|_{G^\ast}\propto L^{1/\nu}$ (``values`` $=U$,
    ``derivative=True``; $\nu=1/x$, ${\rm se}_\nu={\rm se}_x/x^2$); $\gamma/\nu$ from
    $\chi_L(G^\ast)\propto L^{\gamma/\nu}$; $\beta/\nu$ from
    $\langle|M|\rangle_L(G^\ast)\propto L^{-\beta/\nu}$ ($x=-\beta/\nu$)
    (`docs/theory/spatial.md#universality-class`).

    **Arguments:**

    - `G`: the coupling grid ``(n_G,)``, increasing.
    - `values`, `values_se`: $y$ and its SE, shape ``(n_sizes, n_G)`` (positive values unless
      ``derivative``; SEs all positive or all zero; NaN where not measured).
    - `sizes`: $L$ (or $L/k$), increasing.
    - `G_star`, `G_star_se`: where to evaluate, and its SE (inside every size's fitted range).
    - `derivative`: use the slope $dy/dG$ instead of $y$.
    - `degree`: polynomial degree (>= 1; >= 2 is needed for a slope that varies with $G$).
    - `G_range`: ``(lo, hi)``: fit only grid points in it (default: all).

    **Returns:** a :class:`LatticeExponent`.
    """
    G, y, e, s = _fss_curves(G, values, values_se, sizes, "values")
    degree = _check_degree(degree)
    g0 = _positive_scalar(G_star, "G_star")
    gse = concrete_value(G_star_se)
    if gse is None or np.ndim(gse) != 0 or not (float(gse) >= 0 and math.isfinite(float(gse))):
        raise ValueError(f"G_star_se must be a finite number >= 0, got {G_star_se!r}.")
    gse = float(gse)
    sel = _select(G, G_range)
    measured = ~np.isnan(y)
    exact = bool(np.all(e[measured] == 0))
    if not derivative:
        if np.any(~(y[:, sel][measured[:, sel]] > 0)):
            raise ValueError("values must be positive (their logarithm is fitted).")
        y, e = np.log(y), e / y
    fits, c, ranges = _fits(G, y, e, degree, sel, "values")
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if not lo <= g0 <= hi:
        raise ValueError(f"G_star={g0:g} must lie inside the fitted range [{lo:g}, {hi:g}].")

    def at(g):
        out, out_se = [], []
        for coef, cov, _, _ in fits:
            v = _basis(g, degree, c, 1 if derivative else 0)
            val = float(v @ coef)
            se = math.sqrt(max(float(v @ cov @ v), 0.0))
            if derivative:
                out.append(val)
                out_se.append(se)
            else:  # back from the logarithm
                out.append(math.exp(val))
                out_se.append(math.exp(val) * se)
        out, out_se = np.array(out), np.array(out_se)
        if np.any(~(out > 0)):
            raise ValueError(
                f"the fitted {'slopes' if derivative else 'values'} at G={g:g} are not all "
                f"positive ({out.tolist()}); no power law can be fitted."
            )
        return out, out_se

    vals, vals_se = at(g0)
    x, x_se, chi2_dof = _loglog(s, vals, vals_se, exact)
    x_se_g = 0.0
    if gse > 0:
        ends = []
        for g in (max(g0 - gse, lo), min(g0 + gse, hi)):
            v, ve = at(g)
            ends.append(_loglog(s, v, ve, exact)[0])
        x_se_g = 0.5 * abs(ends[1] - ends[0])
    pair = np.log(vals[1:] / vals[:-1]) / np.log(s[1:] / s[:-1])
    return LatticeExponent(
        x,
        math.hypot(x_se, x_se_g),
        x_se,
        x_se_g,
        vals,
        vals_se,
        pair,
        float(chi2_dof),
    )


class KCollapse(NamedTuple):
    r"""Agreement of one observable across windows $k$ at equal $(G, L/k)$ (:func:`k_collapse`).

    - `mean`, `mean_se`: the inverse-variance weighted mean over $k$.
    - `chi2`, `dof`, `p_value`: $\sum_k (y_k-\bar y)^2/{\rm se}_k^2$, its degrees of freedom
      ($n_k-1$) and the $\chi^2$ tail probability (large: compatible with no $k$-dependence).
    - `max_pair_z`: the largest $|y_i-y_j|/\sqrt{{\rm se}_i^2+{\rm se}_j^2}$ over pairs.
    - `max_rel_spread`: $(\max y-\min y)/|\bar y|$.
    """

    mean: float
    mean_se: float
    chi2: float
    dof: int
    p_value: float
    max_pair_z: float
    max_rel_spread: float


def _chi2_sf(x: float, dof: int) -> float:
    """The chi^2 survival function for an integer number of degrees of freedom (closed form)."""
    if dof <= 0:
        return float("nan")
    h = 0.5 * x
    if dof % 2 == 0:
        return float(math.exp(-h) * sum(h**j / math.factorial(j) for j in range(dof // 2)))
    tail = sum(h ** (j - 0.5) / math.gamma(j + 0.5) for j in range(1, (dof - 1) // 2 + 1))
    return float(math.erfc(math.sqrt(h)) + math.exp(-h) * tail)


def k_collapse(
    values: Real[ArrayLike, "*values"], values_se: Real[ArrayLike, "*values_se"]
) -> KCollapse:
    r"""How well one observable (e.g. $U$, $\chi$ or $\langle|M|\rangle$ at equal $(G, L/k)$)
    agrees across windows $k$: the $\chi^2$ test of a common value.

    The reduction (`docs/theory/spatial.md#reduction`) predicts $k$-independence up to the
    lattice resolution $1/k$; a small ``p_value`` measures that correction in SEs.

    **Arguments:**

    - `values`, `values_se`: one value and its (positive) SE per window, shape ``(n_k,)``,
      $n_k\ge2$.

    **Returns:** a :class:`KCollapse`.
    """
    y = _host_array(values, "values")
    e = _host_array(values_se, "values_se")
    if y.ndim != 1 or y.size < 2 or e.shape != y.shape:
        raise ValueError(
            f"values and values_se must have equal shapes (n_k >= 2,), got {y.shape} and {e.shape}."
        )
    if np.any(~(e > 0)) or np.any(~np.isfinite(y)):
        raise ValueError("values must be finite and values_se positive.")
    w = 1 / e**2
    mean = float(np.sum(w * y) / np.sum(w))
    chi2 = float(np.sum(w * (y - mean) ** 2))
    i, j = np.triu_indices(y.size, 1)
    z = np.abs(y[i] - y[j]) / np.hypot(e[i], e[j])
    return KCollapse(
        mean,
        float(1 / math.sqrt(np.sum(w))),
        chi2,
        int(y.size - 1),
        _chi2_sf(chi2, y.size - 1),
        float(z.max()),
        float((y.max() - y.min()) / abs(mean)) if mean != 0 else float("inf"),
    )


class ClassVerdict(NamedTuple):
    r"""Measured exponents against candidate classes (:func:`universality_verdict`).

    - `verdict`: the class name, ``"undecided"`` (several compatible) or ``"neither"``.
    - `z`: ``{class: {estimate: (measured - class value) / se}}``.
    - `max_abs_z`: ``{class: max |z|}``.
    - `chi2`, `p_value`: ``{class: sum z^2}`` and its $\chi^2$ tail probability with
      ``dof`` = the number of estimates (the estimates treated as independent).
    - `compatible`: classes with every $|z|\le$ ``threshold``.
    - `confidence`: a sentence: the verdict and by how many SEs the other classes are excluded.
    """

    verdict: str
    z: dict
    max_abs_z: dict
    chi2: dict
    p_value: dict
    dof: int
    compatible: list
    confidence: str


def universality_verdict(
    estimates: dict,
    *,
    classes: dict | None = None,
    threshold: float | int = 3.0,
) -> ClassVerdict:
    r"""Which universality class the measured exponents select, and how confidently.

    The rule: for each class and each estimate, $z=(\text{measured}-\text{class value})/{\rm
    se}$. A class is compatible when every $|z|\le$ ``threshold`` (3 SE by default) and
    excluded otherwise; the verdict is the single compatible class when every other class is
    excluded (``"undecided"`` with several, ``"neither"`` with none). The confidence names the
    largest $|z|$ of the verdict's own class and the estimate that excludes each other class by
    the most SEs; $\chi^2=\sum z^2$ and its tail probability summarise each class (the
    estimates are treated as independent, which they are not quite: they come from the same
    runs). Estimates whose key is not in a class are skipped for that class.

    **Arguments:**

    - `estimates`: ``{name: (value, se)}``, names as in :data:`UNIVERSALITY_CLASSES`
      (``"nu"``, ``"gamma_over_nu"``, ``"beta_over_nu"``, ``"binder_star"``); SEs positive.
    - `classes`: ``{class: {name: value}}`` (default :data:`UNIVERSALITY_CLASSES`).
    - `threshold`: the compatibility bound in SEs (positive).

    **Returns:** a :class:`ClassVerdict`.
    """
    if not isinstance(estimates, dict) or not estimates:
        raise ValueError(
            f"estimates must be a non-empty dict {{name: (value, se)}}, got {estimates!r}."
        )
    classes = UNIVERSALITY_CLASSES if classes is None else classes
    if not isinstance(classes, dict) or not classes:
        raise ValueError(
            f"classes must be a non-empty dict {{class: {{name: value}}}}, got {classes!r}."
        )
    threshold = _positive_scalar(threshold, "threshold")
    est = {}
    for name, pair in estimates.items():
        try:
            v, se = (float(u) for u in pair)
        except (TypeError, ValueError):
            raise ValueError(f"estimates[{name!r}] must be a pair (value, se), got {pair!r}.")
        if not (math.isfinite(v) and se > 0 and math.isfinite(se)):
            raise ValueError(
                f"estimates[{name!r}] must have a finite value and a positive SE, got {pair!r}."
            )
        est[name] = (v, se)
    z, max_z, chi2, p = {}, {}, {}, {}
    dof = 0
    for cname, ref in classes.items():
        zc = {n: (v - float(ref[n])) / se for n, (v, se) in est.items() if n in ref}
        if not zc:
            raise ValueError(f"classes[{cname!r}] shares no estimate name with estimates.")
        z[cname] = zc
        max_z[cname] = max(abs(u) for u in zc.values())
        chi2[cname] = float(sum(u * u for u in zc.values()))
        p[cname] = _chi2_sf(chi2[cname], len(zc))
        dof = max(dof, len(zc))
    compatible = [c for c in classes if max_z[c] <= threshold]
    if len(compatible) == 1:
        verdict = compatible[0]
        others = []
        for c in classes:
            if c == verdict:
                continue
            worst = max(z[c], key=lambda n: abs(z[c][n]))
            others.append(f"{c} excluded by {worst} at {abs(z[c][worst]):.1f} SE")
        confidence = (
            f"{verdict}: every estimate within {max_z[verdict]:.1f} SE "
            f"(p = {p[verdict]:.2g}); " + "; ".join(others) + f" (threshold {threshold:g} SE)"
        )
    elif compatible:
        verdict = "undecided"
        confidence = (
            f"undecided: {', '.join(compatible)} all within {threshold:g} SE "
            f"(max |z|: {', '.join(f'{c} {max_z[c]:.1f}' for c in compatible)})"
        )
    else:
        verdict = "neither"
        confidence = "neither: every class has an estimate beyond {:g} SE ({})".format(
            threshold, ", ".join(f"{c} {max_z[c]:.1f}" for c in classes)
        )
    return ClassVerdict(verdict, z, max_z, chi2, p, dof, compatible, confidence)


_FSS_ESTIMATES = ("nu", "gamma_over_nu", "beta_over_nu", "binder_star")


def _curves(points, D, k, key):
    """Union grid, sizes and (value, se) arrays (NaN: not measured) of the ordered-start
    points of one (D, k)."""
    pts = [p for p in points if p["D"] == D and p["k"] == k and p.get("start") == "ordered"]
    sizes = sorted({int(p["cells"]) for p in pts})
    grids = [sorted(float(p["G"]) for p in pts if p["cells"] == c) for c in sizes]
    common = sorted(set().union(*(set(g) for g in grids))) if grids else []
    if len(sizes) < 2 or min(len(g) for g in grids) < 3:
        return None
    val = np.full((len(sizes), len(common)), np.nan)
    se = np.full_like(val, np.nan)
    for p in pts:
        if p["cells"] in sizes and float(p["G"]) in common:
            i, j = sizes.index(int(p["cells"])), common.index(float(p["G"]))
            val[i, j], se[i, j] = p[key], p[key + "_se"]
    return np.array(common), np.array(sizes, np.float64), val, se


def _crossing_rows(cr: LatticeCrossings) -> list[dict]:
    return [
        dict(
            sizes=[float(cr.size_small[i]), float(cr.size_large[i])],
            G_star=float(cr.G_star[i]),
            G_star_se=float(cr.G_star_se[i]),
            binder_star=float(cr.binder_star[i]),
            binder_star_se=float(cr.binder_star_se[i]),
            G_star_linear=float(cr.G_star_linear[i]),
            G_star_linear_se=float(cr.G_star_linear_se[i]),
        )
        for i in range(cr.G_star.size)
    ]


def _exponent_row(fit: LatticeExponent) -> dict:
    return dict(
        exponent=fit.exponent,
        se=fit.exponent_se,
        se_stat=fit.exponent_se_stat,
        se_G=fit.exponent_se_G,
        values=fit.values.tolist(),
        values_se=fit.values_se.tolist(),
        pairwise=fit.pairwise.tolist(),
        chi2_dof=fit.chi2_dof,
    )


def fss_analysis(
    points: list,
    *,
    window: int | np.integer = 3,
    degree: int | np.integer = 2,
    threshold: float | int = 3.0,
    linear: bool = True,
) -> dict:
    r"""The finite-size-scaling analysis of a lattice study (``scripts/spatial_fss.py``'s points).

    From the ordered-start points of $D=2$, $k=$ ``window`` (the sizes $L/k$ and the common
    $G$ grid): the Binder crossings of successive sizes (:func:`lattice_binder_crossings`);
    $G^\ast$ and $U^\ast$ from the largest pair; $1/\nu$ from the Binder slope, $\gamma/\nu$
    from $\chi'_L=N\langle M^2\rangle$ (and, as a check, the connected
    $\chi_L=N(\langle M^2\rangle-\langle|M|\rangle^2)$), $-\beta/\nu$ from
    $\langle|M|\rangle_L$, all at $G^\ast$ (:func:`fss_exponent`); the class verdict
    (:func:`universality_verdict`). Also: the $k$-collapse at every $(G, L/k)$ measured for
    several windows (:func:`k_collapse` of $U$, $\chi$ and the $k$-free magnetisation
    $k^{D/2}\langle|M|\rangle$, with the steps between successive windows and the weighted fit
    $y_k=y_\infty+c/k^2$ of the lattice-resolution correction; for $U$ also the shift of $G$
    that maps each window's value onto the fitted ``window`` curve of the same $L/k$, relative
    to the ``window``'s own point, pooled per window in ``coupling_shift`` with the fit
    ${\rm shift}_k=d\,(1/k_{\rm w}^2-1/k^2)$); ordered against disordered starts; the two
    halves of each run; the $D=1$ control's crossings (none expected).

    **Arguments:**

    - `points`: a list of dicts with keys ``D, k, cells, G, start`` (``"ordered"`` or
      ``"disordered"``), ``binder, chi, chi_full, m_abs`` each with ``_se``, and optionally
      ``binder_first_half(_se)``, ``binder_second_half(_se)``, ``tau_int_production``,
      ``n_burn``, ``dt``.
    - `window`: the $k$ of the $D=2$ finite-size scaling.
    - `degree`, `threshold`: as in :func:`lattice_binder_crossings` and
      :func:`universality_verdict`.
    - `linear`: include the linear-interpolation cross-check of the crossings (compiles
      :func:`gltheory.criticality.binder_crossings`).

    **Returns:** a JSON-ready dict (keys ``crossings, G_star, G_star_se, binder_star,
    binder_star_se, exponents, estimates, verdict, verdict_discriminating, k_collapse,
    coupling_shift, starts, halves, control_d1``, those that the points allow). ``verdict``
    uses every estimate; ``verdict_discriminating`` only those on which the classes differ
    ($\nu$ is 1 in both $D=2$ classes, so it tests the scaling, not the class).
    """
    if not isinstance(points, list | tuple) or not all(isinstance(p, dict) for p in points):
        raise ValueError("points must be a list of dicts (the study's JSON points).")
    need = ("D", "k", "cells", "G", "start", "binder", "binder_se", "chi", "chi_se", "m_abs")
    for p in points:
        missing = [n for n in need if n not in p]
        if missing:
            raise ValueError(f"points: a point lacks the keys {missing}.")
    k = int(window)
    out: dict = {}

    def _lattice_correction(ks, y, e):
        # successive steps y(k_{i+1}) - y(k_i), and the weighted fit y = y_inf + c / k^2 (the
        # resolution correction of the rescaled lattice; exact for two windows)
        steps = [
            dict(k=[int(ks[i]), int(ks[i + 1])], diff=float(y[i + 1] - y[i]), se=float(h))
            for i, h in enumerate(np.hypot(e[:-1], e[1:]))
        ]
        a = np.stack([np.ones_like(ks), ks**-2.0], axis=1) / e[:, None]
        cov = np.linalg.inv(a.T @ a)
        coef = cov @ a.T @ (y / e)
        chi2 = float(np.sum((a @ coef - y / e) ** 2)) if ks.size > 2 else 0.0
        return dict(
            steps=steps,
            continuum=dict(
                value=float(coef[0]),
                se=float(math.sqrt(cov[0, 0])),
                slope=float(coef[1]),
                slope_se=float(math.sqrt(cov[1, 1])),
                chi2=chi2,
                dof=int(ks.size - 2),
                p_value=_chi2_sf(chi2, ks.size - 2) if ks.size > 2 else float("nan"),
            ),
        )

    cur = _curves(points, 2, k, "binder")
    if cur is not None:
        G, sizes, u, u_se = cur
        cr = lattice_binder_crossings(G, u, u_se, sizes, degree=degree, linear=linear)
        out["crossings"] = _crossing_rows(cr)
        ok = np.isfinite(cr.G_star)
        if ok[-1]:
            g, gse, us, us_se = (
                cr.G_star[-1],
                cr.G_star_se[-1],
                cr.binder_star[-1],
                cr.binder_star_se[-1],
            )
        elif ok.any():
            w = 1 / cr.G_star_se[ok] ** 2
            g = float(np.sum(w * cr.G_star[ok]) / w.sum())
            gse = float(1 / math.sqrt(w.sum()))
            us, us_se = cr.binder_star[ok][-1], cr.binder_star_se[ok][-1]
        else:
            g = None
        if g is not None:
            out.update(
                G_star=float(g),
                G_star_se=float(gse),
                binder_star=float(us),
                binder_star_se=float(us_se),
                sizes=sizes.tolist(),
                G=G.tolist(),
            )
            ex = {}
            ex["inverse_nu"] = fss_exponent(
                G, u, u_se, sizes, g, gse, derivative=True, degree=degree
            )
            for name, key in (("chi_full", "chi_full"), ("chi", "chi"), ("m_abs", "m_abs")):
                c = _curves(points, 2, k, key)
                if c is not None and np.all(c[2][~np.isnan(c[2])] > 0):
                    ex[name] = fss_exponent(c[0], c[2], c[3], c[1], g, gse, degree=degree)
            out["exponents"] = {n: _exponent_row(f) for n, f in ex.items()}
            inv = ex["inverse_nu"]
            est = dict(
                nu=(1 / inv.exponent, inv.exponent_se / inv.exponent**2),
                binder_star=(float(us), float(us_se)),
            )
            if "chi_full" in ex:
                est["gamma_over_nu"] = (ex["chi_full"].exponent, ex["chi_full"].exponent_se)
            if "m_abs" in ex:
                est["beta_over_nu"] = (-ex["m_abs"].exponent, ex["m_abs"].exponent_se)
            out["estimates"] = {n: list(v) for n, v in est.items()}
            if all(se > 0 for _, se in est.values()):
                # all estimates, and those on which the classes differ (nu is 1 in both
                # D = 2 classes: it tests finite-size scaling, it cannot pick the class)
                cls = UNIVERSALITY_CLASSES
                disc = {
                    n: e for n, e in est.items() if len({c[n] for c in cls.values() if n in c}) > 1
                }
                for key, e in (("verdict", est), ("verdict_discriminating", disc)):
                    v = universality_verdict(e, threshold=threshold)
                    out[key] = dict(
                        estimates=sorted(e),
                        verdict=v.verdict,
                        z=v.z,
                        max_abs_z=v.max_abs_z,
                        chi2=v.chi2,
                        p_value=v.p_value,
                        compatible=v.compatible,
                        confidence=v.confidence,
                    )
    # the k-collapse at equal (G, L/k)
    ref_fits = {}  # the window's U(G) fit per L/k (>= degree + 1 points), for the G shifts
    if cur is not None:
        for i, c in enumerate(cur[1]):
            m = ~np.isnan(cur[2][i])
            if m.sum() >= degree + 1:
                x = cur[0][m]
                fit = _wpoly(x, cur[2][i][m], cur[3][i][m], degree, float(x.mean()))
                ref_fits[int(c)] = (fit, float(x.mean()), (float(x.min()), float(x.max())))
    rows = []
    keys = sorted(
        {(p["cells"], float(p["G"])) for p in points if p["D"] == 2 and p["start"] == "ordered"}
    )
    for cells, G in keys:
        pts = sorted(
            (
                p
                for p in points
                if p["D"] == 2
                and p["start"] == "ordered"
                and p["cells"] == cells
                and float(p["G"]) == G
            ),
            key=lambda p: p["k"],
        )
        if len({p["k"] for p in pts}) < 2:
            continue
        row = dict(cells=cells, G=G, k=[p["k"] for p in pts])
        ks = np.array(row["k"], np.float64)
        for name, f in (
            ("binder", lambda p, n: p[n]),
            ("chi", lambda p, n: p[n]),
            ("m_abs", lambda p, n: p[n] * p["k"]),  # k^{D/2} <|M|>, D = 2
        ):
            y = np.array([f(p, name) for p in pts])
            e = np.array([f(p, name + "_se") for p in pts])
            kc = k_collapse(y, e)
            row[name] = dict(
                values=y.tolist(), se=e.tolist(), **kc._asdict(), **_lattice_correction(ks, y, e)
            )
        ref = ref_fits.get(cells)
        if ref is not None and k in row["k"]:
            # the k-dependence read as a shift of the coupling: G_k at which the window's fitted
            # U curve (same L/k) takes window k's U; shift = G_k - G_window (the window's own
            # point, so the fit's residual there cancels), SE from the two points' SEs
            (coef, _, _, _), centre, (lo, hi) = ref
            eq = {}
            for kk, y, e in zip(row["k"], row["binder"]["values"], row["binder"]["se"]):
                c0 = coef.copy()
                c0[0] -= y
                r = np.roots(c0[::-1])
                r = r[np.abs(r.imag) <= 1e-9 * (1 + np.abs(r.real))].real + centre
                r = r[(r >= lo - 0.2 * (hi - lo)) & (r <= hi + 0.2 * (hi - lo))]
                if r.size:
                    g = float(r[np.argmin(np.abs(r - G))])
                    slope = abs(float(_basis(g, coef.size - 1, centre, 1) @ coef))
                    eq[int(kk)] = (g, e / slope)
            if k in eq:
                row["binder"]["coupling_shift"] = dict(
                    window=k,
                    shifts=[
                        dict(
                            k=kk,
                            G_equivalent=g,
                            shift=g - eq[k][0],
                            se=math.hypot(se, eq[k][1]) if kk != k else 0.0,
                        )
                        for kk, (g, se) in eq.items()
                    ],
                )
        rows.append(row)
    out["k_collapse"] = rows
    # the coupling shifts pooled per window (over G and L/k, and per L/k), and the fit
    # shift_k = d (1/window^2 - 1/k^2) (a 1/k^2 correction of the coupling): shift_inf =
    # d/window^2. The windows' shifts share the window's points: the fit's chi^2 ignores that.
    by_k: dict = {}
    for row in rows:
        for sh in row["binder"].get("coupling_shift", {}).get("shifts", []):
            if sh["k"] != k:
                by_k.setdefault(sh["k"], []).append((row["cells"], sh["shift"], sh["se"]))
    if by_k:

        def _pool(vals):
            y = np.array([v for _, v, _ in vals])
            w = 1 / np.array([e for _, _, e in vals]) ** 2
            m = float(np.sum(w * y) / w.sum())
            chi2 = float(np.sum(w * (y - m) ** 2))
            return dict(
                shift=m,
                se=float(1 / math.sqrt(w.sum())),
                n=int(y.size),
                chi2=chi2,
                p_value=_chi2_sf(chi2, y.size - 1),
            )

        pooled = {
            kk: dict(
                **_pool(v),
                by_cells={
                    int(c): _pool([q for q in v if q[0] == c]) for c in sorted({q[0] for q in v})
                },
            )
            for kk, v in sorted(by_k.items())
        }
        x = np.array([1 / k**2 - 1 / kk**2 for kk in pooled])
        y = np.array([pooled[kk]["shift"] for kk in pooled])
        w = 1 / np.array([pooled[kk]["se"] for kk in pooled]) ** 2
        d = float(np.sum(w * x * y) / np.sum(w * x**2))
        d_se = float(1 / math.sqrt(np.sum(w * x**2)))
        chi2 = float(np.sum(w * (y - d * x) ** 2))
        out["coupling_shift"] = dict(
            window=k,
            by_window={int(kk): v for kk, v in pooled.items()},
            inverse_k2_fit=dict(
                d=d,
                d_se=d_se,
                shift_continuum=d / k**2,
                shift_continuum_se=d_se / k**2,
                chi2=chi2,
                dof=int(x.size - 1),
                p_value=_chi2_sf(chi2, x.size - 1),
            ),
        )
    # ordered vs disordered starts
    starts = []
    for p in points:
        if p["start"] != "disordered":
            continue
        q = [
            o
            for o in points
            if o["start"] == "ordered"
            and all(o[n] == p[n] for n in ("D", "k", "cells"))
            and float(o["G"]) == float(p["G"])
        ]
        if not q:
            continue
        o = q[0]
        row = dict(D=p["D"], k=p["k"], cells=p["cells"], G=float(p["G"]))
        for n in ("binder", "chi", "m_abs"):
            d = o[n] - p[n]
            se = math.hypot(o[n + "_se"], p[n + "_se"])
            row[n] = dict(
                ordered=o[n], disordered=p[n], diff=d, se=se, z=d / se if se > 0 else None
            )
        starts.append(row)
    out["starts"] = starts
    # halves of each run
    zs = []
    for p in points:
        if "binder_first_half" in p:
            se = math.hypot(p["binder_first_half_se"], p["binder_second_half_se"])
            if se > 0:
                zs.append((p["binder_second_half"] - p["binder_first_half"]) / se)
    if zs:
        zs = np.array(zs)
        out["halves"] = dict(
            n=int(zs.size),
            max_abs_z=float(np.max(np.abs(zs))),
            mean_z=float(zs.mean()),
            rms_z=float(np.sqrt(np.mean(zs**2))),
        )
    # D = 1 control
    c1 = _curves(points, 1, k, "binder")
    if c1 is not None:
        G1, s1, u1, e1 = c1
        cr1 = lattice_binder_crossings(
            G1, u1, e1, s1, degree=1 if G1.size < 4 else degree, linear=linear
        )
        z_order = (u1[:-1] - u1[1:]) / np.hypot(e1[:-1], e1[1:])
        out["control_d1"] = dict(
            G=G1.tolist(),
            sizes=s1.tolist(),
            binder=u1.tolist(),
            binder_se=e1.tolist(),
            crossings=_crossing_rows(cr1),
            min_z_smaller_above_larger=float(np.nanmin(z_order)),
        )
    return out
