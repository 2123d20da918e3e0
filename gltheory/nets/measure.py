r"""Trained networks measured with the tools of the exact theory.

:func:`compare_with_machines` calibrates the patch size $k$ per step along the network's own
DDIM trajectory (L2 and cosine, Kamb & Ganguli's ``scales_calibration``, Kamb & Ganguli, arXiv:2412.20292)
and gives $r^2$ between network and machine denoisers, and side-by-side samples;
:func:`score_criticality` measures the network's $t_c$ with the black-box detectors of
:mod:`gltheory.criticality` (mode softening by JVP probes at $x=0$ and along trajectories, the
$\xi$ peak; Ambrogioni, arXiv:2603.20092), to be compared with the patch theory for the calibrated window
(:func:`gltheory.field.patch_critical_point`, Ambrogioni, arXiv:2603.20092) and with the ideal score of the data
spectrum (:func:`data_critical_time`, `docs/theory/critical-times.md#three-criteria`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray, Real

from .. import patch
from .._checks import as_float_array, check_instance, check_positive_int
from .._roots import refuse_traced
from ..criticality import softening_time, trajectory_states, xi_peak_time
from ..data import LatticeImages
from ..field import criterion_time, patch_critical_point
from ..processes import AbstractProcess
from ..sampling import integrate, time_grid
from ..solvers import DDIM
from .datasets import data_moments, images_and_weights
from .models import ScoreNetwork

__all__ = [
    "MachineComparison",
    "compare_with_machines",
    "NetworkCriticality",
    "score_criticality",
    "data_critical_time",
]


class MachineComparison(NamedTuple):
    r"""Network vs patch machines along the network's own trajectories (:func:`compare_with_machines`).

    Shapes: ``n_t`` evaluation times (the DDIM steps), ``n`` trajectories, ``n_k`` windows.

    - `ts`: evaluation times ``(n_t,)`` (generation order); `windows`: ``(n_k,)``.
    - `l2`: relative score distance $\|s_{\rm net}-s_k\|/\|s_{\rm net}\|$, median over
      trajectories, ``(n_t, n_k)``; `cosine`: score cosine similarity, median, ``(n_t, n_k)``.
    - `best_k_l2`, `best_k_cos`: per time, the median over trajectories of each
      trajectory's best window (smallest L2 / largest cosine), ``(n_t,)`` (Kamb & Ganguli).
    - `r2`: $r^2=1-\sum(D_{\rm net}-D_k)^2/\sum(D_{\rm net}-\bar D_{\rm net})^2$ of the
      denoisers pooled over trajectories and sites, ``(n_t, n_k)``.
    - `r2_calibrated`: $r^2$ with the window nearest to ``best_k_l2`` at each time, ``(n_t,)``.
    - `x_T`: the common start ``(n, *lattice)``; `net_samples`, `machine_samples`: the final
      DDIM samples of the network and of the calibrated machine (per-step window) from
      ``x_T``; `sample_r2`: $r^2$ between them (pooled).
    """

    ts: Array
    windows: Array
    l2: Array
    cosine: Array
    best_k_l2: Array
    best_k_cos: Array
    r2: Array
    r2_calibrated: Array
    x_T: Array
    net_samples: Array
    machine_samples: Array
    sample_r2: Array


def _r2(ref: Array, pred: Array, axes) -> Array:
    ss_res = jnp.sum((ref - pred) ** 2, axis=axes)
    ss_tot = jnp.sum((ref - jnp.mean(ref, axis=axes, keepdims=True)) ** 2, axis=axes)
    return 1 - ss_res / jnp.where(ss_tot > 0, ss_tot, jnp.nan)


class _DenoiserScore(eqx.Module):
    r"""The score $s=(a_tD(x,t)-x)/b_t^2$ of a batched denoiser ``denoise(x, t)``, in ``x``'s dtype."""

    denoise: Callable[[Array, Array], Array]
    process: AbstractProcess

    def __call__(self, x, t):
        p = self.process
        return ((p.a(t) * self.denoise(x, t) - x) / p.b2(t)).astype(x.dtype)


class _Machine(eqx.Module):
    """The patch machine of window ``windows[index]`` (one of ``banks``) as a denoiser."""

    banks: tuple
    process: AbstractProcess
    index: Array

    def __call__(self, x, t):
        branches = [
            lambda z, bk=bk: patch.denoiser(bk, self.process, z, t).astype(z.dtype)
            for bk in self.banks
        ]
        return jax.lax.switch(self.index, branches, x)


def _compare_step(model, banks, warr, x, xm, t, t_next):
    """One step of :func:`compare_with_machines`: metrics at the network's state ``x``,
    then DDIM steps of the network (``x``) and of the calibrated machine (``xm``, window =
    this step's median best window)."""
    process = model.process
    n = x.shape[0]
    dtype = x.dtype

    def score_of(z, den):
        return ((process.a(t) * den - z) / process.b2(t)).reshape(n, -1)

    d_net = model.denoise(x, t)
    s_net = score_of(x, d_net)
    nrm = jnp.linalg.norm(s_net, axis=-1)
    d_ks = [patch.denoiser(bk, process, x, t).astype(dtype) for bk in banks]
    s_ks = [score_of(x, d) for d in d_ks]
    l2 = jnp.stack([jnp.linalg.norm(s_net - sk, axis=-1) / nrm for sk in s_ks], -1)
    cos = jnp.stack(
        [jnp.sum(s_net * sk, -1) / (nrm * jnp.linalg.norm(sk, axis=-1)) for sk in s_ks], -1
    )
    r2 = jnp.stack([_r2(d_net.reshape(n, -1), d.reshape(n, -1), axes=(0, 1)) for d in d_ks])
    best_l2 = jnp.median(warr[jnp.argmin(l2, -1)])
    best_cos = jnp.median(warr[jnp.argmax(cos, -1)])
    k_idx = jnp.argmin(jnp.abs(best_l2 - warr))
    ddim = DDIM()
    net_score = _DenoiserScore(model.denoise, process)
    machine_score = _DenoiserScore(_Machine(tuple(banks), process, k_idx), process)
    x_next = ddim.step(net_score, process, x, t, t_next, None).astype(dtype)
    xm_next = ddim.step(machine_score, process, xm, t, t_next, None).astype(dtype)
    out = (jnp.median(l2, axis=0), jnp.median(cos, axis=0), r2, best_l2, best_cos)
    return x_next, xm_next, out


@eqx.filter_jit
def _compare_loop(model, banks, warr, x_T, ts):
    """All steps of :func:`compare_with_machines` in one :func:`gltheory.sampling.integrate` loop."""

    def body(carry, i, z):
        del z  # deterministic: no noise
        x, xm, out = _compare_step(model, banks, warr, *carry, ts[i], ts[i + 1])
        return (x, xm), out

    return integrate(body, (x_T, x_T), ts)


def compare_with_machines(
    model: ScoreNetwork,
    images: LatticeImages | Real[ArrayLike, " n_images *lattice"],
    key: PRNGKeyArray,
    *,
    windows: Sequence[int | np.integer] = (1, 3, 5, 7),
    n: int | np.integer = 8,
    ts: Real[ArrayLike, " n_steps_plus_1"] | Sequence[float | int] | None = None,
    n_steps: int | np.integer = 20,
    equivariant: bool = True,
    boundary: str = "periodic",
) -> MachineComparison:
    r"""Calibrate the patch size per step along the network's DDIM trajectories (Kamb & Ganguli, arXiv:2412.20292).

    From $x_T\sim\mathcal N(0,b_{t_0}^2I)$ (``key``) the network's deterministic DDIM
    trajectory is run (:class:`gltheory.solvers.DDIM` steps with the score
    $s=(a_tD-x)/b_t^2$ of each denoiser, in one :func:`gltheory.sampling.integrate` loop); at
    every step's $(x_i,t_i)$ the network score is compared with the patch machines (ELS by
    default; ``equivariant=False`` gives LS) of every window $k$ in ``windows``: relative L2
    distance and cosine similarity of the scores, per trajectory; the best $k$ per trajectory
    and its median over trajectories (Kamb & Ganguli take the median over about 10 samples);
    $r^2$ between the denoisers $D_{\rm net}$ and $D_k$. Alongside, the calibrated machine
    (the machine with this step's median best $k$) is run from the same $x_T$ on the same DDIM
    grid, for samples side by side and their $r^2$.

    **Arguments:**

    - `model`: a :class:`ScoreNetwork`; `images`: its training set.
    - `key`: PRNG key of the start noise.
    - `windows`: odd patch sizes to compare.
    - `n`: trajectories; `ts`: decreasing time grid (default: ``n_steps`` log-SNR steps over
      $\lambda\in[-6, 8]$ of the model's process, clipped to $(0,T]$).
    - `equivariant`, `boundary`: the machine family (see :func:`gltheory.patch.bank`).

    **Returns:** a :class:`MachineComparison`.
    """
    check_instance(model, ScoreNetwork, "model", "a ScoreNetwork")
    y, _ = images_and_weights(images)
    ws = [int(k) for k in windows]
    if not ws or any(k < 1 or k % 2 == 0 for k in ws):
        raise ValueError(f"windows must be a non-empty list of odd positive ints, got {windows!r}.")
    check_positive_int(n, "n")
    process = model.process
    dtype = y.dtype
    if ts is None:
        ts = _default_grid(process, n_steps, dtype)
    ts = as_float_array(ts, "ts").astype(dtype)
    lattice = y.shape[1:]
    banks = [patch.bank(y, window=k, equivariant=equivariant, boundary=boundary) for k in ws]
    warr = jnp.asarray(ws, dtype)
    x_T = process.b(ts[0]).astype(dtype) * jax.random.normal(key, (n,) + lattice, dtype)

    (x, xm), (l2, cos, r2, best_l2, best_cos) = _compare_loop(model, tuple(banks), warr, x_T, ts)
    k_idx = jnp.argmin(jnp.abs(best_l2[:, None] - warr[None]), axis=1)
    r2_cal = jnp.take_along_axis(r2, k_idx[:, None], axis=1)[:, 0]
    net_final = x
    sample_r2 = _r2(net_final.reshape(n, -1), xm.reshape(n, -1), axes=(0, 1))
    return MachineComparison(
        ts=ts[:-1],
        windows=warr,
        l2=l2,
        cosine=cos,
        best_k_l2=best_l2,
        best_k_cos=best_cos,
        r2=r2,
        r2_calibrated=r2_cal,
        x_T=x_T,
        net_samples=net_final,
        machine_samples=xm,
        sample_r2=sample_r2,
    )


def _default_grid(process: AbstractProcess, n_steps: int, dtype, lo=-6.0, hi=8.0) -> Array:
    t_max = min(float(process.t_of_snr(math.exp(lo))), float(process.T))
    t_min = float(process.t_of_snr(math.exp(hi)))
    return time_grid(process, n_steps, kind="log_snr", t_min=t_min, t_max=t_max).astype(dtype)


# ----------------------------------------------------------------------------------------------
# criticality of a trained network (Ambrogioni, arXiv:2603.20092) vs the patch theory and the data's ideal score
# ----------------------------------------------------------------------------------------------


class NetworkCriticality(NamedTuple):
    r"""Critical times of a score (network or exact) and the theory values they are compared with.

    - `origin`: mode softening of the plane wave $q^\star$ at the symmetric point $x=0$
      (:func:`gltheory.criticality.softening_time` with zero states; the linear criterion of
      Ambrogioni, arXiv:2603.20092, exact for the patch model up to interpolation).
    - `trajectory`: the same stiffness averaged along reverse trajectories, read at its
      maximum (``mode="peak"``, the softest moment; along trajectories the patch model's
      curve need not cross zero, see :mod:`gltheory.criticality`).
    - `xi_peak`: peak of the correlation length of the denoised-field increments
      (:func:`gltheory.criticality.xi_peak_time`).
    - `patch_theory`: :func:`gltheory.field.patch_critical_point` for ``window`` (its
      ``t_score``/``t_sde``/``t_ode``, $q^\star$ and $\max_q\hat C_k$).
    - `data_theory`: the ideal-score time of the same criterion from the top eigenvalue
      $\Lambda$ of the data covariance (:func:`data_critical_time`).
    - `window`, `q_star`, `criterion`.
    """

    origin: Any
    trajectory: Any
    xi_peak: Any
    patch_theory: Any
    data_theory: float | None
    window: int
    q_star: Array
    criterion: str


def data_critical_time(
    images: LatticeImages | Real[ArrayLike, " n_images *lattice"],
    process: AbstractProcess,
    *,
    criterion: str = "score",
) -> float | None:
    r"""Critical time of the ideal (memorising) score at $x=0$ from the data spectrum (Raya & Ambrogioni, arXiv:2305.19693; Ambrogioni, arXiv:2310.17467).

    $\Lambda$ = top eigenvalue of the (weighted) data covariance; for centred equal-norm data
    the posterior covariance at $x=0$ is the data covariance, so criterion $v$ fires where
    ${\rm SNR}\,\Lambda-1+o_v b_t^2=0$ (the patch formula with $\hat C_k\to\Lambda$).
    Solved by :func:`gltheory.field.patch_critical_point`'s bisection. ``None`` if no root.
    A Python float: under ``jax.grad``/``jit``/``vmap`` it raises ``TypeError``.
    """
    refuse_traced("data_critical_time", (images, process))
    if criterion not in ("score", "sde", "ode"):
        raise ValueError(f"criterion must be 'score', 'sde' or 'ode', got {criterion!r}.")
    _, C = data_moments(images)
    lam = float(jnp.linalg.eigvalsh(C)[-1])
    if lam <= 0:
        return None
    return criterion_time(process, lam, criterion=criterion)


@eqx.filter_jit
def _tweedie_fields(score_fn, process, states, ts):
    def one(x, t):
        return (x + process.b2(t) * score_fn(x, t)) / process.a(t)

    return jax.lax.map(lambda args: one(*args), (states, ts))


def score_criticality(
    score_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    images: LatticeImages | Real[ArrayLike, " n_images *lattice"],
    key: PRNGKeyArray,
    *,
    window: int | np.integer,
    n: int | np.integer = 16,
    ts: Real[ArrayLike, " n_steps_plus_1"] | Sequence[float | int] | None = None,
    n_steps: int | np.integer = 40,
    criterion: str = "score",
    q: Real[ArrayLike, " lattice_ndim"] | Sequence[float | int] | None = None,
    n_boot: int | np.integer = 200,
    method: str = "euler_maruyama",
) -> NetworkCriticality:
    r"""Measure $t_c$ of any batched score (a trained network or an exact machine) three ways.

    Ambrogioni, arXiv:2603.20092 with the detectors of :mod:`gltheory.criticality`: (1) softening of mode
    $q^\star$ at $x=0$, (2) the same along ``n`` reverse trajectories (``method``, from
    $\mathcal N(0,b_{t_0}^2I)$), (3) the $\xi$ peak of the denoised-field increments; and the
    theory: the patch model with ``window`` (`docs/theory/patch.md#mode-softening`; $q^\star=\arg\max_q\hat C_k(q)$ of the
    training data unless ``q`` is given) and the ideal score of the data spectrum (`docs/theory/critical-times.md#three-criteria`).

    **Uncertainty:** each estimate carries ``se`` (bootstrap over trajectories; 0 at $x=0$,
    which is deterministic) and ``interp_err`` (grid), see
    :class:`gltheory.criticality.CriticalTimeEstimate`.

    **Returns:** a :class:`NetworkCriticality`.
    """
    y, _ = images_and_weights(images)
    lattice = y.shape[1:]
    dtype = y.dtype
    theory = patch_critical_point(process, window=int(window), images=images)
    q_star = jnp.asarray(theory.q_star if q is None else q, dtype).reshape(1, len(lattice))
    if ts is None:
        ts = _default_grid(process, n_steps, dtype, lo=-8.0, hi=8.0)
    ts = as_float_array(ts, "ts").astype(dtype)
    k_o, k_s, k_t, k_x, k_b = jax.random.split(key, 5)
    zeros = jnp.zeros((ts.shape[0], 1) + lattice, dtype)
    origin = softening_time(score_fn, process, zeros, ts, k_o, criterion=criterion, q=q_star)
    t_s, states = trajectory_states(score_fn, process, k_s, (n,) + lattice, ts=ts, method=method)
    traj = softening_time(
        score_fn,
        process,
        states,
        t_s,
        k_t,
        criterion=criterion,
        q=q_star,
        mode="peak",
        n_boot=n_boot,
    )
    # Tweedie denoised fields (x + b^2 s) / a at the saved states (same as denoised_fields)
    fields = _tweedie_fields(score_fn, process, states, t_s)
    xi = xi_peak_time(fields, t_s, k_x, n_boot=n_boot)
    return NetworkCriticality(
        origin=origin,
        trajectory=traj,
        xi_peak=xi,
        patch_theory=theory,
        data_theory=data_critical_time(images, process, criterion=criterion),
        window=int(window),
        q_star=q_star[0],
        criterion=criterion,
    )
