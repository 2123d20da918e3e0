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


def _noise(key, i, shape, dtype):
    return jax.random.normal(jax.random.fold_in(key, i), shape, dtype)


def _frozen_core(drift, observe, key, x0, dt, temperature, n_burn, n_samples, thin, record):
    amp = jnp.sqrt(0.5 * temperature * dt)  # sqrt(2 T dt) / 2
    first = observe(x0)
    acc0 = jax.tree.map(jnp.zeros_like, first)
    buf0 = jax.tree.map(lambda o: jnp.zeros((n_samples,) + o.shape, o.dtype), first)
    buf0 = buf0 if record else None

    def one(c, i):
        # Leimkuhler-Matthews: x' = x + dt f(x) + sqrt(2 T dt) (R_i + R_{i+1}) / 2
        x, r, acc, buf = c
        r_next = _noise(key, i + 1, x.shape, x.dtype)
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

    carry = (x0, _noise(key, 0, x0.shape, x0.dtype), acc0, buf0)
    n_total = n_burn + n_samples * thin
    (x, _, acc, buf), _ = jax.lax.scan(one, carry, jnp.arange(n_total))
    mean = jax.tree.map(lambda a: a / n_samples, acc)
    return x, mean, buf


@eqx.filter_jit
@trusted
def _frozen_impl(drift, observe, key, x0, dt, temperature, n_burn, n_samples, thin, record):
    return _frozen_core(drift, observe, key, x0, dt, temperature, n_burn, n_samples, thin, record)


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

    **Returns:** a :class:`FrozenRun`.
    """
    check_callable(drift, "drift", "drift(x) -> array shaped like x")
    if observe is not None:
        check_callable(observe, "observe", "observe(x) -> pytree of arrays")
    x0 = as_float_array(x0, "x0")
    if x0.ndim < 1 or x0.shape[0] < 1:
        raise ValueError(f"x0 must have shape (n_replicas >= 1, *event), got {x0.shape}.")
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
    drift, observe, key, mode, x0, shape, dtype, dt, temperature, n_burn, n_samples, thin, record
):
    k_start, k_noise = jax.random.split(key)
    if mode == "ordered":  # phi = +-g on every site, a random sign per replica
        sign = jnp.where(jax.random.bernoulli(k_start, 0.5, shape[:1]), 1.0, -1.0)
        sign = sign.reshape((-1,) + (1,) * (len(shape) - 1))
        x0 = jnp.broadcast_to(sign * drift.g, shape).astype(dtype)
    elif mode == "disordered":
        x0 = jnp.zeros(shape, dtype)
    return _frozen_core(
        drift, observe, k_noise, x0, dt, temperature, n_burn, n_samples, thin, record
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
    the signs of an ordered start and ``k_noise`` is :func:`frozen_langevin`'s key.

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

    **Returns:** a :class:`LatticeRun`.
    """
    k, d = _check_geometry(window, lattice_ndim)
    cells = _check_count(cells, "cells", 1)
    n_replicas = _check_count(n_replicas, "n_replicas", 1)
    G_value = _positive_scalar(G, "G")
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dtype}.")
    drift = ReducedDrift(G_value, k, d)
    shape = (n_replicas,) + (cells * k,) * d
    mode, x0 = _check_start(start, shape, dtype)
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
      `dtype`: as in :func:`lattice_langevin`.
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
