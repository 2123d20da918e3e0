r"""Batched reverse-time samplers (THEORY.md §1.3) with observables computed inside the loop.

The generative dynamics runs the forward time ``t`` down a decreasing grid ``ts`` ($t_0=T$
side first). With $h_i = t_i - t_{i+1} > 0$, drift $v(x,t) = g^2(t)s(x,t) - f(t)x$ and
probability-flow drift $u(x,t) = \tfrac12g^2(t)s(x,t) - f(t)x$:

- ``"euler_maruyama"``: $x_{i+1} = x_i + h_i v(x_i,t_i) + g(t_i)\sqrt{h_i}\,\xi_i$;
- ``"heun_sde"`` (stochastic Heun; for the additive noise of every process here it is the
  Stratonovich = Itô Heun scheme that diffrax's ``Heun`` applies to an SDE):
  $k_1 = h_iv(x_i,t_i) + g(t_i)\sqrt{h_i}\xi_i$, $k_2 = h_iv(x_i+k_1,t_{i+1}) + g(t_{i+1})\sqrt{h_i}\xi_i$,
  $x_{i+1} = x_i + (k_1+k_2)/2$;
- ``"heun"``: Heun's method on the probability-flow ODE (second order);
- ``"ddim"``: deterministic DDIM, i.e. Euler in $(\bar x = x/a, \sigma = b/a)$:
  $x_{i+1} = \frac{a_{i+1}}{a_i}x_i + \big(b_{i+1} - \frac{a_{i+1}}{a_i}b_i\big)\hat\epsilon$,
  $\hat\epsilon = -b_i s(x_i,t_i)$ (THEORY.md §7.2 item 5).

**Randomness.** Each trajectory has its own key (``trajectory_keys(key, n)`` =
``fold_in(key, i)``), and its Gaussian increments are drawn in blocks of ``noise_block``
steps from ``fold_in(noise_key_i, block)``. Drawing a block at once is several times faster
than one draw per step (see ``benchmarks/``), and a trajectory's noise depends only on its
key, the number of steps and ``noise_block``: never on the batch size, on chunking or on the
number of devices.

**Score functions** are called as ``score_fn(x, t)`` with the whole batch ``x`` of shape
``(n, *event_shape)`` and a scalar ``t``; every score in :mod:`gltheory.scores` is batched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from ._checks import as_float_array, check_values, is_concrete
from .processes import VE, AbstractProcess

__all__ = [
    "Solution",
    "sample",
    "sample_diffrax",
    "time_grid",
    "trajectory_keys",
    "trajectory_noise",
    "default_noise_block",
    "METHODS",
]

Method = Literal["euler_maruyama", "heun_sde", "heun", "ddim"]
METHODS: tuple[str, ...] = ("euler_maruyama", "heun_sde", "heun", "ddim")
_STOCHASTIC = ("euler_maruyama", "heun_sde")
DEFAULT_NOISE_BLOCK = 32


def default_noise_block(event_shape) -> int:
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
    """

    x: Array
    ts: Array
    saved_ts: Array
    observables: Any


# ----------------------------------------------------------------------------------------------
# keys and noise
# ----------------------------------------------------------------------------------------------


def _is_typed_key(key) -> bool:
    return isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)


def _key_batch_ndim(key) -> int:
    """0 for a single key, 1 for a batch of keys; ValueError otherwise."""
    if _is_typed_key(key):
        nd = key.ndim
    else:
        key = jnp.asarray(key)
        if key.dtype != jnp.uint32:
            raise ValueError(f"key must be a JAX PRNG key, got an array of dtype {key.dtype}.")
        nd = key.ndim - 1
    if nd not in (0, 1):
        raise ValueError(
            f"key must be a single PRNG key or a 1-D batch of keys (one per trajectory), got "
            f"shape {jnp.shape(key)}."
        )
    return nd


def trajectory_keys(key: PRNGKeyArray, n: int, start: int = 0) -> PRNGKeyArray:
    """Per-trajectory keys ``fold_in(key, start + i)``, ``i < n``.

    Trajectory ``i`` of a batch sampled with ``key`` uses key ``i`` of this list, so
    ``sample(..., trajectory_keys(key, n, start), ...)`` reproduces trajectories
    ``start .. start+n-1`` of a larger batch exactly (chunking).
    """
    if _key_batch_ndim(key) != 0:
        raise ValueError("trajectory_keys needs a single key, got a batch of keys.")
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(n))


def _split_keys(keys):
    both = jax.vmap(lambda k: jax.random.split(k, 2))(keys)
    return both[:, 0], both[:, 1]


def _noise_block(noise_keys, block_index, block: int, event_shape, dtype):
    """Standard normals of shape ``(block, n, *event)`` for block ``block_index``."""
    return jax.vmap(
        lambda k: jax.random.normal(
            jax.random.fold_in(k, block_index), (block,) + event_shape, dtype
        ),
        out_axes=1,
    )(noise_keys)


def trajectory_noise(
    key: PRNGKeyArray,
    n_steps: int,
    event_shape: tuple[int, ...],
    *,
    n: int | None = None,
    noise_block: int | None = None,
    dtype=None,
) -> Array:
    """The standard normals $\\xi_i$ that :func:`sample` uses, shape ``(n_steps, n, *event)``.

    Materialises every increment (memory ``n_steps * n * d``): meant for reference paths and
    tests (``sample_diffrax`` uses it to share increments with the fast sampler).
    """
    keys = _as_trajectory_keys(key, n)
    noise_keys, _ = _split_keys(keys)
    dtype = jnp.result_type(float) if dtype is None else dtype
    if noise_block is None:
        noise_block = default_noise_block(event_shape)
    n_blocks = -(-n_steps // noise_block)
    z = jax.vmap(lambda j: _noise_block(noise_keys, j, noise_block, tuple(event_shape), dtype))(
        jnp.arange(n_blocks)
    )
    return z.reshape((n_blocks * noise_block,) + z.shape[2:])[:n_steps]


def _as_trajectory_keys(key, n):
    if _key_batch_ndim(key) == 0:
        if n is None:
            raise ValueError("n is required with a single key.")
        return trajectory_keys(key, n)
    if n is not None and key.shape[0] != n:
        raise ValueError(f"key holds {key.shape[0]} trajectory keys but n={n}.")
    return key


# ----------------------------------------------------------------------------------------------
# time grids
# ----------------------------------------------------------------------------------------------


def time_grid(
    process: AbstractProcess,
    n_steps: int,
    *,
    kind: Literal["uniform", "log_snr", "edm"] = "uniform",
    t_min: ArrayLike | None = None,
    t_max: ArrayLike | None = None,
    rho: float = 7.0,
) -> Array:
    r"""A decreasing grid of ``n_steps + 1`` forward times from ``t_max`` (default $T$) to ``t_min``.

    - ``"uniform"``: uniform in $t$;
    - ``"log_snr"``: uniform in $\ln{\rm SNR}$;
    - ``"edm"``: Karras et al.'s $\rho$-schedule in $\sigma=b/a$,
      $\sigma_i = \big(\sigma_{\max}^{1/\rho} + \tfrac{i}{n}(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho})\big)^\rho$
      (THEORY.md §8.4; with ``VE("edm")``, 31 steps and $\rho=7$ it gives $\sigma_{13}=4.9991$).

    Default ``t_min``: ``sigma_min`` for ``VE("edm")``, else $10^{-3}T$.
    """
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}.")
    if kind not in ("uniform", "log_snr", "edm"):
        raise ValueError(f"kind must be 'uniform', 'log_snr' or 'edm', got {kind!r}.")
    if t_min is None:
        t_min = (
            process.sigma_min
            if isinstance(process, VE) and process.schedule == "edm"
            else 1e-3 * process.T
        )
    t_max = process.T if t_max is None else t_max
    t_min = as_float_array(t_min, "t_min")
    t_max = as_float_array(t_max, "t_max")
    bounds = jnp.stack([t_min, t_max, jnp.asarray(process.T, t_min.dtype)])
    check_values(
        bounds,
        lambda v: ~((v[0] > 0) & (v[0] < v[1]) & (v[1] <= v[2] * (1 + 1e-6))),
        f"need 0 < t_min < t_max <= T, got t_min={t_min}, t_max={t_max}, T={process.T}.",
    )
    u = jnp.linspace(0.0, 1.0, n_steps + 1, dtype=t_min.dtype)
    if kind == "uniform":
        return t_max + u * (t_min - t_max)
    if kind == "log_snr":
        lo, hi = process.log_snr(t_max), process.log_snr(t_min)
        ts = process.t_of_snr(jnp.exp(lo + u * (hi - lo)))
    else:
        s_max, s_min = process.sigma(t_max), process.sigma(t_min)
        sig = (s_max ** (1 / rho) + u * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
        ts = process.t_of_sigma(sig)
    # pin the end points exactly
    return ts.at[0].set(t_max).at[-1].set(t_min)


def _check_ts(ts, T) -> Array:
    ts = as_float_array(ts, "ts")
    if ts.ndim != 1:
        raise ValueError(f"ts must be a 1-D time grid, got shape {ts.shape}.")
    if ts.shape[0] < 2:
        raise ValueError(
            f"ts must hold n_steps + 1 >= 2 times (a positive number of steps), got {ts.shape[0]}."
        )
    msg = "ts must be strictly decreasing (from T towards 0) and lie in (0, T]."
    if is_concrete(ts) and is_concrete(T):
        tn = np.asarray(ts, dtype=np.float64)
        Tn = float(np.asarray(T))
        if not (np.all(np.diff(tn) < 0) and tn[-1] > 0 and tn[0] <= Tn * (1 + 1e-6)):
            raise ValueError(f"{msg} Got ts[0]={tn[0]:g}, ts[-1]={tn[-1]:g}, T={Tn:g}.")
        return ts
    bad = (jnp.diff(ts) >= 0).any() | (ts[-1] <= 0) | (ts[0] > T * (1 + 1e-6))
    return eqx.error_if(ts, bad, msg)


# ----------------------------------------------------------------------------------------------
# the fast sampler
# ----------------------------------------------------------------------------------------------


def _step(method, score_fn, process, x, z, t, t_next):
    h = t - t_next
    if method == "euler_maruyama":
        drift = process.reverse_drift(x, t, score_fn(x, t))
        return x + h * drift + (process.g(t) * jnp.sqrt(h)) * z
    if method == "heun_sde":
        sq = jnp.sqrt(h)
        k1 = h * process.reverse_drift(x, t, score_fn(x, t)) + (process.g(t) * sq) * z
        x1 = x + k1
        k2 = (
            h * process.reverse_drift(x1, t_next, score_fn(x1, t_next))
            + (process.g(t_next) * sq) * z
        )
        return x + 0.5 * (k1 + k2)
    if method == "heun":
        d1 = process.pf_ode_drift(x, t, score_fn(x, t))
        x1 = x + h * d1
        d2 = process.pf_ode_drift(x1, t_next, score_fn(x1, t_next))
        return x + 0.5 * h * (d1 + d2)
    # ddim
    a, a_next = process.a(t), process.a(t_next)
    b, b_next = process.b(t), process.b(t_next)
    eps = -b * score_fn(x, t)
    ratio = a_next / a
    return ratio * x + (b_next - ratio * b) * eps


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
def _sample_impl(
    score_fn, process, key, x0, shape, ts, method, observe, slots, n_saved, noise_block
):
    keys = _as_trajectory_keys(key, shape[0])
    noise_keys, init_keys = _split_keys(keys)
    if x0 is None:  # x_{t_0} ~ N(0, b_{t_0}^2 I) from each trajectory's own key
        z0 = jax.vmap(lambda k: jax.random.normal(k, shape[1:], ts.dtype))(init_keys)
        x0 = process.b(ts[0]).astype(ts.dtype) * z0
    event_shape = x0.shape[1:]
    n_steps = ts.shape[0] - 1
    stochastic = method in _STOCHASTIC
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

    def one_step(carry, i, z):
        x, buf = carry
        x = _step(method, score_fn, process, x, z, ts[i], ts[i + 1])
        return (x, record(buf, x, i + 1))

    def run_block(carry, j, n_in_block):
        if stochastic:
            zs = _noise_block(noise_keys, j, noise_block, event_shape, x0.dtype)
        else:
            zs = jnp.zeros((noise_block, 1), x0.dtype)

        def inner(c, ii):
            return one_step(c, j * noise_block + ii, zs[ii] if stochastic else None), None

        carry, _ = jax.lax.scan(inner, carry, jnp.arange(n_in_block))
        return carry

    n_full, rem = divmod(n_steps, noise_block)
    carry = (x0, buf)
    if n_full > 0:
        carry, _ = jax.lax.scan(
            lambda c, j: (run_block(c, j, noise_block), None), carry, jnp.arange(n_full)
        )
    if rem > 0:
        carry = run_block(carry, n_full, rem)
    x, buf = carry
    return x, buf


def sample(
    score_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    key: PRNGKeyArray,
    x: ArrayLike | Sequence[int],
    *,
    ts: ArrayLike,
    method: Method = "euler_maruyama",
    observe: Callable[[Array, Array], PyTree] | None = None,
    save_at: Sequence[int] | None = None,
    noise_block: int | None = None,
) -> Solution:
    r"""Integrate the reverse SDE or probability-flow ODE from ``ts[0]`` down to ``ts[-1]``.

    **Arguments:**

    - `score_fn`: ``score_fn(x, t) -> array like x`` for a batch ``x`` of shape ``(n, *event)``
      and scalar ``t`` (e.g. ``lambda x, t: gltheory.score(data, process, x, t)``).
    - `process`: the forward process whose reverse dynamics is integrated.
    - `key`: a single PRNG key (trajectory ``i`` uses ``fold_in(key, i)``) or a batch of ``n``
      per-trajectory keys (see :func:`trajectory_keys`).
    - `x`: the initial states $x_{t_0}$, shape ``(n, *event)``, or a shape tuple
      ``(n, *event)``: then $x_{t_0}\sim\mathcal N(0, b_{t_0}^2 I)$ is drawn from each
      trajectory's key. The dtype of ``x`` (else of ``ts``) sets the precision.
    - `ts`: decreasing times in $(0, T]$, shape ``(n_steps + 1,)`` (see :func:`time_grid`).
      New values with the same length reuse the compiled sampler.
    - `method`: ``"euler_maruyama"``, ``"heun_sde"``, ``"heun"`` (PF-ODE) or ``"ddim"``.
    - `observe`: optional ``observe(x, t) -> pytree`` evaluated on the batch at the saved
      times inside the loop, so long runs never store trajectories.
    - `save_at`: indices into ``ts`` where ``observe`` is recorded (default: every index).
    - `noise_block`: number of steps whose noise is drawn at once (part of the noise's
      definition: keep it fixed to reproduce trajectories). Default
      :func:`default_noise_block` of the event shape.

    **Returns:** a :class:`Solution`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if not isinstance(process, AbstractProcess):
        raise ValueError(f"process must be a gltheory process, got {type(process).__name__}.")
    if not callable(score_fn):
        raise ValueError("score_fn must be callable as score_fn(x, t).")
    if observe is not None and not callable(observe):
        raise ValueError("observe must be callable as observe(x, t) or None.")
    if noise_block is not None and (
        not isinstance(noise_block, (int, np.integer)) or noise_block < 1
    ):
        raise ValueError(f"noise_block must be a positive integer, got {noise_block!r}.")
    ts = _check_ts(ts, process.T)
    n_steps = ts.shape[0] - 1

    if isinstance(x, (tuple, list)) and all(isinstance(s, (int, np.integer)) for s in x):
        shape = tuple(int(s) for s in x)
        if len(shape) < 1 or any(s < 1 for s in shape):
            raise ValueError(
                f"x as a shape must be (n, *event_shape) with positive sizes, got {shape}."
            )
        x0 = None
    else:
        x0 = as_float_array(x, "x")
        if x0.ndim < 1 or x0.shape[0] < 1:
            raise ValueError(f"x must have a leading batch axis (n, *event_shape), got {x0.shape}.")
        shape = x0.shape
        ts = ts.astype(x0.dtype)  # x's precision wins (as in gltheory.scores)
    if _key_batch_ndim(key) == 1 and key.shape[0] != shape[0]:
        raise ValueError(f"key holds {key.shape[0]} trajectory keys but n={shape[0]}.")
    slots, idx = _save_slots(n_steps, save_at)
    if noise_block is None:
        noise_block = default_noise_block(shape[1:])
    x_final, obs = _sample_impl(
        score_fn, process, key, x0, shape, ts, method, observe, slots, len(idx), int(noise_block)
    )
    return Solution(x=x_final, ts=ts, saved_ts=ts[np.asarray(idx)], observables=obs)


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
    score_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    key: PRNGKeyArray,
    x: ArrayLike,
    *,
    ts: ArrayLike,
    method: Literal["euler_maruyama", "heun_sde", "heun"] = "euler_maruyama",
    brownian: Literal["grid", "unsafe"] = "grid",
    noise_block: int | None = None,
) -> Array:
    r"""Reference solution with ``diffrax.diffeqsolve`` on the same grid (``StepTo``).

    Integrates in reverse time $\tau = t_0 - t$ with ``diffrax.Euler`` (EM) or
    ``diffrax.Heun`` (stochastic Heun / PF-ODE Heun). With ``brownian="grid"`` the Brownian
    increments are exactly those of :func:`sample` (same keys, same ``noise_block``), so the
    two agree to float round-off; ``brownian="unsafe"`` uses ``diffrax.UnsafeBrownianPath``
    (the fastest diffrax configuration, independent noise), for benchmarks.

    **Returns:** the final states, shape ``(n, *event)``.
    """
    if method not in ("euler_maruyama", "heun_sde", "heun"):
        raise ValueError(f"method must be 'euler_maruyama', 'heun_sde' or 'heun', got {method!r}.")
    if brownian not in ("grid", "unsafe"):
        raise ValueError(f"brownian must be 'grid' or 'unsafe', got {brownian!r}.")
    ts = _check_ts(ts, process.T)
    x0 = as_float_array(x, "x")
    ts = ts.astype(x0.dtype)
    keys = _as_trajectory_keys(key, x0.shape[0])
    if noise_block is None:
        noise_block = default_noise_block(x0.shape[1:])
    return _diffrax_impl(score_fn, process, keys, x0, ts, method, brownian, int(noise_block))


@eqx.filter_jit
def _diffrax_impl(score_fn, process, keys, x0, ts, method, brownian, noise_block):
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
