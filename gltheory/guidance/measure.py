r"""Pulse measurements (Monte Carlo): class alignment of guided samplers, paired pulse scans, the
peak of an alignment curve, a physics-aware sampler that fires a pulse online, and learned
pulse timing.

Ambrogioni, arXiv:2603.20092. Every estimator runs the reverse-time dynamics through
:mod:`gltheory.sampling` with explicit keys; rows of a scan share keys and initial states
(common random numbers), so gains are paired differences. The theory each measurement is
compared with lives in :mod:`gltheory.guidance.theory`.

**Non-finite trajectories.** Every estimator counts the trajectories whose final state holds a
NaN or Inf (``n_nonfinite`` in its result); their per-trajectory values (``hits``, posteriors,
paired gains) are NaN, so every mean, gain and standard error built on them is NaN: no estimate
(in particular no ``se = 0``) is ever built on a NaN state, whose class label would be
meaningless. Nothing is raised (the same under ``jit``, without host callbacks).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._checks import PROCESS, as_float_array, check_event_shape, check_instance
from .._roots import bracketed_argmax
from ..processes import AbstractProcess
from ..sampling import (
    Indices,
    TrajectoryKeys,
    as_trajectory_keys,
    check_time_grid,
    count_nonfinite,
    integrate,
    nonfinite_rows,
    sample,
    split_trajectory_keys,
    trajectory_keys,
)
from ..scores import cast_floats
from ..solvers import EulerMaruyama
from .classes import ClassConditional, ClassLattice, ClassScore
from .schedules import (
    AbstractGuidance,
    GuidedScore,
    Pulse,
    guidance_scale_at_origin,
    normalise_pulse,
)

# Shape contracts (checked at run time in the test suite). A key is a single PRNG key or one
# key per trajectory; a time grid is a 1-D array (or a list of times); nu(t) is a callable, a
# scalar or its values at ts[:-1]; initial states are an array or the shape (n, *event).
_Keys = PRNGKeyArray | TrajectoryKeys
_Grid = Real[ArrayLike, " n_steps_plus_1"] | Sequence[float | int]
_Nu = Real[ArrayLike, ""] | Real[ArrayLike, " n_steps"] | Callable
_States = Real[ArrayLike, " n *event"] | Sequence[int | np.integer]

__all__ = [
    "AlignmentEstimate",
    "pulse_alignment",
    "random_pulse_centres",
    "PulseScan",
    "pulse_scan",
    "paired_difference",
    "alignment_curve_peak",
    "PhysicsAwareResult",
    "physics_aware_sample",
    "LearnedPulse",
    "learn_pulse",
    "pulse_objective_samples",
]


class AlignmentEstimate(NamedTuple):
    """Result of :func:`pulse_alignment`.

    - `alignment`: fraction of final samples classified as the target class.
    - `se`: binomial standard error.
    - `hits`: per-trajectory indicators (for paired comparisons), shape ``(n,)``.
    - `diversity`: mean per-coordinate variance of the aligned samples (within-class variance).
    - `n`: number of trajectories.
    - `final`: the final states; `observed`: the sampler's ``observe`` record (or ``None``).
    - `n_nonfinite`: number of trajectories with a NaN/Inf final state; their `hits` are NaN,
      and when it is not zero `alignment`, `se` and `diversity` are NaN.
    """

    alignment: Array
    se: Array
    hits: Array
    diversity: Array
    n: int
    final: Array
    observed: Any = None
    n_nonfinite: Array | int = 0


class _RowPosterior(eqx.Module):
    """``observe`` for :func:`pulse_scan`: the exact posterior of the target class per trajectory."""

    data: ClassConditional
    process: AbstractProcess
    target: int = eqx.field(static=True)

    def __call__(self, x, t):
        return self.data.class_posterior(self.process, x, t)[..., self.target]


def random_pulse_centres(
    key: PRNGKeyArray, n: int | np.integer, width: Real[ArrayLike, ""], ts: _Grid
) -> Float[Array, " n"]:
    r"""``n`` pulse centres uniform on $[t_{\rm end}+\Delta/2,\ t_{\rm start}-\Delta/2]$ (whole pulse on the grid)."""
    ts = as_float_array(ts, "ts")
    lo = ts[-1] + 0.5 * width
    hi = ts[0] - 0.5 * width
    return lo + (hi - lo) * jax.random.uniform(key, (n,), ts.dtype)


def pulse_alignment(
    data: ClassConditional | ClassLattice,
    process: AbstractProcess,
    key: _Keys,
    x: _States,
    guidance: AbstractGuidance,
    *,
    ts: _Grid,
    target: int | np.integer = 0,
    method: str = "euler_maruyama",
    observe: Callable | None = None,
    save_at: Indices | None = None,
) -> AlignmentEstimate:
    r"""Class alignment of samples from the guided sampler $s_u + w(s_c - s_u)$, $c=$ ``target``.

    Runs :func:`gltheory.sample` with a :class:`GuidedScore` (same ``key`` and ``x`` for every
    guidance form: common random numbers) and classifies the final states with the exact posterior
    classifier (mixtures) or the patch-feature classifier (lattices). Diversity: the mean
    per-coordinate variance of the samples assigned to ``target`` (guidance that collapses the
    class shows up as a small value). Trajectories with a NaN/Inf final state are counted in
    ``n_nonfinite`` and make every estimate NaN (module docstring).
    """
    if not isinstance(guidance, AbstractGuidance):
        raise ValueError(f"guidance must be an AbstractGuidance, got {type(guidance).__name__}.")
    if not (isinstance(target, (int, np.integer)) and 0 <= target < data.n_classes):
        raise ValueError(
            f"target must be a class index in 0..{data.n_classes - 1}, got {target!r}."
        )
    gs = GuidedScore(
        ClassScore(data, process, int(target)), ClassScore(data, process, None), guidance
    )
    sol = sample(gs, process, key, x, ts=ts, method=method, observe=observe, save_at=save_at)
    lab = data.classify(process, sol.x, sol.ts[-1])
    bad = nonfinite_rows(sol.x)
    hits = jnp.where(bad, jnp.nan, (lab == target).astype(sol.x.dtype))
    n = hits.shape[0]
    n_bad = jnp.sum(bad, dtype=jnp.int32)
    a = jnp.mean(hits)
    se = jnp.sqrt(a * (1 - a) / n)
    xf = sol.x.reshape(n, -1)
    cnt = jnp.maximum(jnp.sum(hits), 2.0)
    mean = jnp.sum(hits[:, None] * xf, axis=0) / cnt
    var = jnp.sum(hits[:, None] * (xf - mean) ** 2, axis=0) / (cnt - 1)
    div = jnp.where(n_bad > 0, jnp.nan, jnp.mean(var))
    return AlignmentEstimate(a, se, hits, div, n, sol.x, sol.observables, n_bad)


class PulseScan(NamedTuple):
    """Result of :func:`pulse_scan`: one row per pulse setting, plus the unguided baseline.

    - `alignment`, `se`: target-class fraction per row and its binomial SE, shape ``(R,)``.
    - `gain`, `gain_se`: paired gain over the baseline (same keys and initial states),
      $\\overline{h_r - h_0}$ and $\\mathrm{std}(h_r-h_0)/\\sqrt n$, shape ``(R,)``.
    - `baseline`, `baseline_se`: unguided alignment.
    - `hits`: per-trajectory values (indicators, or posteriors at the read time), ``(R, n)``;
      `baseline_hits` ``(n,)`` (baseline at the latest read time); `paired`: per-trajectory paired
      gains ``(R, n)`` (for bootstrap errors, e.g. :func:`alignment_curve_peak`);
      `final_hits`: indicators of the final class (both estimators), ``(R, n)``;
      `final_states`: the final states of the guided rows, ``(R, n, *event)``.
    - `diversity`: within-class variance of the aligned samples per row, ``(R,)``.
    - `n`: trajectories per row.
    - `n_nonfinite`: per row ``(R,)``, the trajectories with a NaN/Inf final state in that row
      or in the baseline (a paired gain needs both); their per-trajectory values are NaN, and
      so are the row's estimates and standard errors when it is not zero.
    """

    alignment: Array
    se: Array
    gain: Array
    gain_se: Array
    baseline: Array
    baseline_se: Array
    hits: Array
    baseline_hits: Array
    paired: Array
    final_hits: Array
    diversity: Array
    n: int
    final_states: Array
    n_nonfinite: Array | int = 0


def paired_difference(
    hits_a: Real[ArrayLike, "... n"], hits_b: Real[ArrayLike, "... n"]
) -> tuple[Float[Array, " ..."], Float[Array, " ..."]]:
    r"""Mean and standard error of the paired difference $\overline{h_a-h_b}$ (common random numbers)."""
    d = jnp.asarray(hits_a) - jnp.asarray(hits_b)
    n = d.shape[-1]
    return jnp.mean(d, axis=-1), jnp.std(d, axis=-1, ddof=1) / math.sqrt(n)


def pulse_scan(
    data: ClassConditional | ClassLattice,
    process: AbstractProcess,
    key: PRNGKeyArray,
    x: Real[ArrayLike, " n *event"],
    centres: Real[ArrayLike, " r"] | Real[ArrayLike, "r n"],
    *,
    width: Real[ArrayLike, ""],
    eps: Real[ArrayLike, ""] | Real[ArrayLike, " r"],
    ts: _Grid,
    nu: _Nu,
    shape: str = "box",
    target: int | np.integer = 0,
    method: str = "euler_maruyama",
    estimator: str = "indicator",
) -> PulseScan:
    r"""Alignment of pulses of fixed perturbation size ``eps`` at several centres, in one run.

    Row $r$ uses the pulse centred at ``centres[r]`` (a scalar: the same time for every
    trajectory; a vector of length $n$: one time per trajectory, e.g.
    :func:`random_pulse_centres`), normalised by :func:`normalise_pulse`; a baseline row without
    guidance is added. All rows share the trajectory keys and initial states ``x`` (common random
    numbers), so gains are paired differences. The rows run as one batch of $(R+1)n$ trajectories
    with per-trajectory pulse parameters: one compiled sampler for any centres, widths, sizes.

    **Arguments:**

    - `data`, `process`, `target`, `method`: as in :func:`pulse_alignment`.
    - `key`: a single PRNG key (trajectory $j$ of every row uses ``fold_in(key, j)``).
    - `x`: initial states at ``ts[0]``, shape ``(n, *event)``.
    - `centres`: shape ``(R,)`` or ``(R, n)``.
    - `width`: pulse width (scalar); `eps`: perturbation size, a scalar or one per row ``(R,)``.
    - `ts`: the time grid; `nu`: $\nu(t)$ for :func:`guidance_displacement`.
    - `shape`: ``"box"`` or ``"smooth"``.
    - `estimator`: ``"indicator"`` (fraction of final samples in the target class) or
      ``"posterior"`` (mixtures only): the mean exact posterior $P(c\mid x_t)$ read at the first
      grid time after the pulse (box: $t<t_p-\Delta/2$; smooth: $t<t_p-2\Delta$; rows whose
      centres differ between trajectories: the last grid time). $P(c\mid x_t)$ is a martingale of the unguided dynamics, so
      both estimate the same final alignment; the posterior one has no flip noise, its paired
      gain has an SE proportional to $\varepsilon$ (usable in the linear-response regime).
      Centres must be concrete (the read times are chosen in NumPy).

    **Returns:** a :class:`PulseScan` (trajectories with a NaN/Inf final state are counted
    per row in ``n_nonfinite`` and make that row's estimates NaN).
    """
    x = as_float_array(x, "x")
    n = x.shape[0]
    c = as_float_array(centres, "centres").astype(x.dtype)
    if c.ndim == 1:
        c = jnp.broadcast_to(c[:, None], (c.shape[0], n))
    if c.ndim != 2 or c.shape[1] != n:
        raise ValueError(f"centres must have shape (R,) or (R, n={n}), got {jnp.shape(centres)}.")
    r = c.shape[0]
    ts = as_float_array(ts, "ts").astype(x.dtype)
    mid = 0.5 * (ts[0] + ts[-1])
    allc = jnp.concatenate([jnp.full((1, n), mid, x.dtype), c]).reshape(-1)
    eps_r = jnp.broadcast_to(as_float_array(eps, "eps").astype(x.dtype), (r,))
    eps_all = jnp.concatenate([jnp.ones((1,), x.dtype), eps_r])
    eps_all = jnp.repeat(eps_all, n)
    pulse = normalise_pulse(Pulse(allc, width, shape=shape), eps_all, process, ts, nu)
    on = jnp.concatenate([jnp.zeros((n,), x.dtype), jnp.ones((r * n,), x.dtype)])
    pulse = eqx.tree_at(lambda p: p.strength, pulse, pulse.strength * on)
    keys = _tile_keys(key, n, r + 1)
    xs = jnp.tile(x, (r + 1,) + (1,) * (x.ndim - 1))
    if estimator not in ("indicator", "posterior"):
        raise ValueError(f"estimator must be 'indicator' or 'posterior', got {estimator!r}.")
    if estimator == "indicator":
        est = pulse_alignment(data, process, keys, xs, pulse, ts=ts, target=target, method=method)
        hits = est.hits.reshape(r + 1, n)
        base = hits[0]
        h = hits[1:]
        align = jnp.mean(h, axis=1)
        se = jnp.sqrt(align * (1 - align) / n)
        gain, gain_se = paired_difference(h, base[None])
        paired = h - base[None]
        b = jnp.mean(base)
        b_se = jnp.sqrt(b * (1 - b) / n)
    else:
        if not isinstance(data, ClassConditional):
            raise ValueError(
                "data must be a ClassConditional dataset for estimator='posterior', got "
                f"{type(data).__name__}."
            )
        tsn = np.asarray(ts)
        reach = 0.5 * float(width) if shape == "box" else 2.0 * float(width)
        cn = np.asarray(c, dtype=np.float64)
        same = np.all(cn == cn[:, :1], axis=1)  # rows with one time for every trajectory
        read = np.searchsorted(-tsn, -(cn[:, 0] - reach), side="right")
        read = np.where(same, np.clip(read, 1, tsn.shape[0] - 1), tsn.shape[0] - 1)
        slots = sorted(set(int(i) for i in read))
        obs = _RowPosterior(data, process, int(target))
        est = pulse_alignment(
            data,
            process,
            keys,
            xs,
            pulse,
            ts=ts,
            target=target,
            method=method,
            observe=obs,
            save_at=slots,
        )
        pr = est.observed.reshape(len(slots), r + 1, n)  # P(target | x) at the read times
        slot_of = np.asarray([slots.index(int(i)) for i in read])
        h = pr[slot_of, np.arange(1, r + 1)]  # (r, n): row r at its read time
        base_r = pr[slot_of, 0]  # (r, n): baseline at the same times
        align = jnp.mean(h, axis=1)
        se = jnp.std(h, axis=1, ddof=1) / math.sqrt(n)
        gain, gain_se = paired_difference(h, base_r)
        paired = h - base_r
        base = pr[-1, 0]
        b = jnp.mean(base)
        b_se = jnp.std(base, ddof=1) / math.sqrt(n)
    bad = nonfinite_rows(est.final).reshape(r + 1, n)
    bad_rows = bad[1:] | bad[:1]
    n_bad = jnp.sum(bad_rows, axis=1, dtype=jnp.int32)
    # the posterior estimator reads states before the end: mark the whole trajectory
    h = jnp.where(bad[1:], jnp.nan, h)
    paired = jnp.where(bad_rows, jnp.nan, paired)
    align = jnp.where(n_bad > 0, jnp.nan, align)
    se = jnp.where(n_bad > 0, jnp.nan, se)
    gain = jnp.where(n_bad > 0, jnp.nan, gain)
    gain_se = jnp.where(n_bad > 0, jnp.nan, gain_se)
    base = jnp.where(bad[0], jnp.nan, base)
    b = jnp.where(bad[0].any(), jnp.nan, b)
    b_se = jnp.where(bad[0].any(), jnp.nan, b_se)
    lab = data.classify(process, est.final, ts[-1]).reshape(r + 1, n)
    final_hits = jnp.where(bad[1:], jnp.nan, (lab[1:] == target).astype(x.dtype))
    xf = est.final.reshape(r + 1, n, -1)[1:]
    cnt = jnp.maximum(jnp.sum(h, axis=1), 2.0)
    mean = jnp.einsum("rn,rnd->rd", h, xf) / cnt[:, None]
    var = jnp.einsum("rn,rnd->rd", h, (xf - mean[:, None]) ** 2) / (cnt[:, None] - 1)
    return PulseScan(
        align,
        se,
        gain,
        gain_se,
        b,
        b_se,
        h,
        base,
        paired,
        final_hits,
        jnp.mean(var, -1),
        n,
        est.final.reshape((r + 1, n) + est.final.shape[1:])[1:],
        n_bad,
    )


def _tile_keys(key, n, reps):
    k = trajectory_keys(key, n)
    return jnp.concatenate([k] * reps)


def alignment_curve_peak(
    t: Real[ArrayLike, " g"],
    values: Real[ArrayLike, "g n"],
    key: PRNGKeyArray,
    *,
    degree: int | np.integer = 3,
    n_boot: int | np.integer = 400,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""Peak time of a Monte Carlo curve from a least-squares polynomial fit, with a bootstrap SE.

    ``values`` holds per-trajectory values, shape ``(G, n)`` (row $g$ at time ``t[g]``; columns
    are paired trajectories). The estimate is the maximiser of the degree-``degree`` fit to the
    row means on $[\min t,\max t]$ (the root of the fit's derivative in the cell of the
    maximum on a 1001-point grid, differentiable in ``t`` and ``values`` by the implicit-function
    theorem); its SE is the standard deviation over
    ``n_boot`` bootstrap resamples of the trajectories (columns). A cubic removes the skewness
    bias of a parabola (for $R(t)$ of two deltas, $\Lambda=1$, on $t^\star\pm0.16$: bias
    $5\times10^{-4}$ vs $2.7\times10^{-2}$ for a parabola). A NaN/Inf anywhere in ``values``
    (e.g. the ``paired`` gains of a :class:`PulseScan` with ``n_nonfinite > 0``) makes both
    outputs NaN. **Returns:** ``(t_peak, se)``.
    """
    t = as_float_array(t, "t")
    v = as_float_array(values, "values")
    if v.ndim != 2 or v.shape[0] != t.shape[0] or t.shape[0] < degree + 2:
        raise ValueError(
            f"values must be (G, n) with G = len(t) >= degree + 2, got {v.shape}, t {t.shape}."
        )
    if degree not in (2, 3):
        raise ValueError(f"degree must be 2 or 3, got {degree!r}.")
    return _curve_peak_impl(t, v, key, int(degree), int(n_boot))


@functools.partial(jax.jit, static_argnums=(3, 4))
def _curve_peak_impl(t, v, key, degree: int, n_boot: int):
    t0 = jnp.mean(t)
    dense = jnp.linspace(jnp.min(t), jnp.max(t), 1001) - t0
    n_dense = dense.shape[0]

    def slope(s, coef):
        return jnp.polyval(jnp.polyder(coef), s)

    def peak(mean):
        # the grid finds the cell of the maximum; the root of the fit's derivative in it is
        # the maximiser, differentiated by the implicit-function theorem (a grid argmax alone
        # has a zero derivative in the values). At an end of the range the peak is that end.
        coef = jnp.polyfit(t - t0, mean, degree)
        i = jnp.argmax(jnp.polyval(coef, jax.lax.stop_gradient(dense)))
        lo = dense[jnp.maximum(i - 1, 0)]
        hi = dense[jnp.minimum(i + 1, n_dense - 1)]
        root = bracketed_argmax(slope, lo, hi, coef, 60)
        at_end = (i == 0) | (i == n_dense - 1)
        return t0 + jnp.where(at_end, dense[i], root)

    n = v.shape[1]
    idx = jax.random.randint(key, (n_boot, n), 0, n)
    boots = jax.vmap(lambda i: peak(jnp.mean(v[:, i], axis=1)))(idx)
    ok = jnp.all(jnp.isfinite(v))
    return (
        jnp.where(ok, peak(jnp.mean(v, axis=1)), jnp.nan),
        jnp.where(ok, jnp.std(boots, ddof=1), jnp.nan),
    )


# ==============================================================================================
# 5. physics-aware sampler
# ==============================================================================================


class PhysicsAwareResult(NamedTuple):
    """Result of :func:`physics_aware_sample`.

    - `x`: final states. - `fire_index`, `fire_time`: grid index and time at which the pulse
      started (index ``-1`` / time NaN if it never fired). - `r_hat`: the online estimate of the
      guidance susceptibility at every step, shape ``(n_steps,)``. - `spread`: the ensemble
      variance of $P(c\\mid x_t)$ at every step. - `n_nonfinite`: number of trajectories with a
      NaN/Inf final state (a NaN state makes $\\hat R$ NaN, so the pulse never fires: check
      this count before reading ``fire_index``).
    """

    x: Array
    fire_index: Array
    fire_time: Array
    r_hat: Array
    spread: Array
    n_nonfinite: Array | int = 0


@eqx.filter_jit
def _pa_impl(data, process, x, noise_keys, ts, eps, n_pulse, target, drop):
    solver = EulerMaruyama()

    def post(xx, t):
        return data.class_posterior(process, xx, t)[..., target]

    def body(carry, i, z):
        x, r_max, fired, fire_i = carry
        t, t_next = ts[i], ts[i + 1]
        h = t - t_next
        s_u = data.score(process, x, t, None)
        s_c = data.score(process, x, t, target)
        diff = s_c - s_u
        ref = jnp.zeros((1,) + x.shape[1:], x.dtype)
        nu = jnp.sqrt(
            jnp.sum((data.score(process, ref, t, target) - data.score(process, ref, t, None)) ** 2)
        )
        p, dp = jax.jvp(lambda y: post(y, t), (x,), (diff / nu,))
        r_hat = jnp.mean(dp)
        spread = jnp.var(p)
        trigger = (~fired) & (r_hat < (1 - drop) * r_max) & (r_max > 0)
        fire_i = jnp.where(trigger, i, fire_i)
        fired = fired | trigger
        on = fired & (i < fire_i + n_pulse)
        w = jnp.where(on, eps / (n_pulse * h * process.g2(t) * nu), 0.0)
        guided = s_u + w * diff  # the guided score at (x, t), already evaluated
        x = solver.step(lambda _x, _t: guided, process, x, t, t_next, z)
        return (x, jnp.maximum(r_max, r_hat), fired, fire_i), (r_hat, spread)

    init = (x, jnp.asarray(0.0, x.dtype), jnp.asarray(False), jnp.asarray(-1, jnp.int32))
    (x, _, fired, fire_i), (r_hat, spread) = integrate(
        body, init, ts, noise_keys=noise_keys, event_shape=x.shape[1:], dtype=x.dtype
    )
    fire_t = jnp.where(fired, ts[jnp.maximum(fire_i, 0)], jnp.nan)
    return x, fire_i, fire_t, r_hat, spread


def physics_aware_sample(
    data: ClassConditional,
    process: AbstractProcess,
    key: _Keys,
    x: Real[ArrayLike, " n *event"],
    *,
    ts: _Grid,
    eps: Real[ArrayLike, ""],
    n_pulse: int | np.integer = 4,
    target: int | np.integer = 0,
    drop: Real[ArrayLike, ""] = 0.003,
) -> PhysicsAwareResult:
    r"""Reverse SDE (Euler–Maruyama) that finds the critical window online and fires a pulse there.

    At every step the running ensemble $\{x^{(j)}_t\}$ (a sample of $p_t$) gives the guidance
    susceptibility of the denoised class posterior,
    $$\hat R(t) = \frac1n\sum_j \nabla_xP(c\mid x^{(j)}_t)\cdot\frac{s_c - s_u}{\nu(t)}(x^{(j)}_t)$$
    (one JVP), an unbiased estimate of the response of the final alignment to a unit guidance
    displacement at $t$ ($=R(t)$ for two clusters). $\hat R$ rises as the ensemble approaches the
    critical window and falls after it; the pulse fires at the first step where $\hat R$ drops
    below $(1-\text{drop})\max_{s>t}\hat R$ (just past the peak) and lasts ``n_pulse`` steps, each
    contributing $\varepsilon/$``n_pulse`` of displacement (:mod:`gltheory.guidance.schedules`). The sampler is never
    told $t_c$. The steps are :class:`gltheory.solvers.EulerMaruyama` steps on the guided score, run
    by :func:`gltheory.sampling.integrate` with the block noise of :func:`gltheory.sample` (same
    ``key``, default ``noise_block``): trajectory $j$'s increments depend only on its key and the
    step index, and the two samplers can be compared with common random numbers.

    **Returns:** a :class:`PhysicsAwareResult`.
    """
    if not isinstance(data, ClassConditional):
        raise ValueError(
            f"data must be a ClassConditional dataset (exact posterior) for physics_aware_sample, got "
            f"{type(data).__name__}."
        )
    check_instance(process, AbstractProcess, "process", PROCESS)
    if not (isinstance(target, (int, np.integer)) and 0 <= target < data.n_classes):
        raise ValueError(
            f"target must be a class index in 0..{data.n_classes - 1}, got {target!r}."
        )
    if isinstance(n_pulse, bool) or not isinstance(n_pulse, (int, np.integer)) or n_pulse < 1:
        raise ValueError(f"n_pulse must be a positive integer, got {n_pulse!r}.")
    if not (0 <= drop < 1):
        raise ValueError(f"drop must lie in [0, 1), got {drop!r}.")
    x = as_float_array(x, "x")
    check_event_shape(x, data.event_shape, "x")
    ts = check_time_grid(ts, process.T).astype(x.dtype)
    noise_keys, _ = split_trajectory_keys(as_trajectory_keys(key, x.shape[0]))
    data = cast_floats(data, x.dtype)
    process = cast_floats(process, x.dtype)
    out = _pa_impl(
        data,
        process,
        x,
        noise_keys,
        ts,
        jnp.asarray(eps, x.dtype),
        int(n_pulse),
        int(target),
        jnp.asarray(drop, x.dtype),
    )
    return PhysicsAwareResult(*out, count_nonfinite(out[0], x.ndim - 1))


# ==============================================================================================
# 6. learned pulse timing
# ==============================================================================================


class LearnedPulse(NamedTuple):
    r"""Result of :func:`learn_pulse`.

    - `centre`, `width`: optimised pulse parameters (the centre is the fixed-key stationary point
      at that width). - `centre_se`: Monte Carlo standard error of the optimum centre (delta
      method: `grad_se` / |`curvature`|). - `objective`: final smooth alignment estimate;
      `history`: ``(n_iter, 3)`` rows (centre, width, objective). - `grad_se`: standard error of
      $\partial_cJ$ over trajectories at the centre; `curvature`: $\partial_c^2J$ of the fixed-key
      objective (central difference). The fixed-key curvature is itself a noisy estimate; where
      the mean objective's curvature is known (:func:`discrete_optimal_pulse_centre`),
      `grad_se` / |that curvature| is the better delta-method SE. - `n_nonfinite`: the number
      of trajectories whose objective value or gradient was NaN/Inf, counted at the first
      evaluation that had any (after it the optimiser's parameters are NaN, and so would be
      every trajectory); when it is not zero `centre`, `width`, `centre_se`, `objective`,
      `grad_se` and `curvature` are NaN (module docstring).
    """

    centre: Array
    width: Array
    centre_se: Array
    objective: Array
    history: Array
    grad_se: Array | None = None
    curvature: Array | None = None
    n_nonfinite: Array | int = 0


def pulse_objective_samples(
    data: ClassConditional,
    process: AbstractProcess,
    key: _Keys,
    x: _States,
    *,
    centre: Real[ArrayLike, ""],
    width: Real[ArrayLike, ""],
    eps: Real[ArrayLike, ""],
    ts: _Grid,
    nu: _Nu,
    target: int | np.integer = 0,
    shape: str = "smooth",
) -> Float[Array, " n"]:
    r"""Per-trajectory values $P(c\mid x^{(j)}_{t_{\rm end}})$ of the :func:`learn_pulse` objective.

    Runs :func:`gltheory.sample` (Euler–Maruyama) from ``x`` at ``ts[0]`` with the guided score of
    the pulse (``centre``, ``width``, ``shape``) normalised to displacement ``eps`` with $\nu$
    = ``nu`` (:func:`gltheory.guidance.normalise_pulse`), and returns the exact posterior of class
    ``target`` at ``ts[-1]``; their mean is $J$. Differentiable in ``centre``, ``width`` and
    ``eps`` (fixed keys: reparameterised noise).

    **Returns:** shape ``(n,)``.
    """
    p = normalise_pulse(Pulse(centre, width, shape=shape), eps, process, ts, nu)
    gs = GuidedScore(ClassScore(data, process, target), ClassScore(data, process, None), p)
    sol = sample(gs, process, key, x, ts=ts)
    return data.class_posterior(process, sol.x, ts[-1])[..., target]


def _surrogate(theta, data, process, x0, key, ts, eps, nu, target, width_min, shape):
    width = width_min + jnp.exp(theta[1])
    return pulse_objective_samples(
        data,
        process,
        key,
        x0,
        centre=theta[0],
        width=width,
        eps=eps,
        ts=ts,
        nu=nu,
        target=target,
        shape=shape,
    )


@functools.partial(jax.jit, static_argnums=9)
def _per_traj_grad(theta, data, process, x, key, ts, eps, nu_i, width_min, target):
    def f(th):
        return _surrogate(th, data, process, x, key, ts, eps, nu_i, target, width_min, "smooth")

    # one forward pass carries the values and both tangents (jacfwd without a second primal)
    vals, jac = jax.vmap(lambda v: jax.jvp(f, (theta,), (v,)), out_axes=(None, 1))(
        jnp.eye(theta.shape[0], dtype=theta.dtype)
    )
    return vals, jac  # (n,), (n, 2)


def learn_pulse(
    data: ClassConditional,
    process: AbstractProcess,
    key: _Keys,
    x: Real[ArrayLike, " n *event"],
    *,
    ts: _Grid,
    eps: Real[ArrayLike, ""],
    centre: Real[ArrayLike, ""],
    width: Real[ArrayLike, ""],
    width_min: Real[ArrayLike, ""] = 0.05,
    learn_width: bool = True,
    target: int | np.integer = 0,
    n_iter: int | np.integer = 60,
    learning_rate: Real[ArrayLike, ""] = 0.05,
    n_polish: int | np.integer = 3,
) -> LearnedPulse:
    r"""Optimise a smooth pulse's centre (and width) with optax at a fixed perturbation size.

    Objective: the exact posterior probability of the target class at the last grid time,
    $J(\theta) = \frac1n\sum_jP(c\mid x^{(j)}_{t_{\rm end}}(\theta))$, with fixed keys and initial
    states (reparameterised noise). Since $P(c\mid x_t)$ is a martingale of the unguided dynamics,
    $J$ estimates the final alignment without the indicator's discontinuity, provided the pulse
    has ended by $t_{\rm end}$. The pulse is :class:`Pulse` ``shape="smooth"`` normalised to ``eps``
    with $\nu$ of the symmetric point; width $=$ ``width_min`` $+e^{\lambda}$. Gradients are
    forward-mode (``jax.jacfwd``) per trajectory, which also gives the gradient's standard error;
    Optimiser: ``optax.adam`` with a cosine-decayed learning rate for ``n_iter`` steps, then
    ``n_polish`` Newton steps in the centre at the final width (same keys; curvature
    $\partial_c^2J$ by a central difference), so that the returned centre is the stationary point
    $\partial_cJ=0$ of this fixed-key objective at that width (a few Adam steps with a decayed rate
    stop short of it: the centre overshoots and creeps back while the width drifts).

    **Standard error** (delta method). The fixed-key optimum $\hat c$ solves $\partial_cJ_n=0$;
    with $\bar J$ the mean objective and $c^\star$ its optimum at the same width,
    $\hat c - c^\star = -\partial_cJ_n(c^\star)/\partial_c^2\bar J + O(1/n)$ and
    $\partial_cJ_n$ is a mean of $n$ independent per-trajectory derivatives, so
    $\mathrm{SE}(\hat c) = \mathrm{sd}_j(\partial_cP_j)/(\sqrt n\,|\partial_c^2J_n|)$ at $\hat c$.
    Exact $\bar J$ and $c^\star$ for 1-D data: :func:`pulse_objective_quadrature`,
    :func:`discrete_optimal_pulse_centre`. Trajectories with a NaN/Inf value or gradient are
    counted in ``n_nonfinite`` and make every estimate NaN (:class:`LearnedPulse`).
    """
    if not isinstance(data, ClassConditional):
        raise ValueError(
            f"data must be a ClassConditional dataset (exact posterior) for learn_pulse, got "
            f"{type(data).__name__}."
        )
    check_instance(process, AbstractProcess, "process", PROCESS)
    x = as_float_array(x, "x")
    ts = check_time_grid(ts, process.T).astype(x.dtype)
    if width <= width_min:
        raise ValueError(f"width ({width}) must exceed width_min ({width_min}).")

    if isinstance(n_polish, bool) or not isinstance(n_polish, (int, np.integer)) or n_polish < 0:
        raise ValueError(f"n_polish must be a non-negative integer, got {n_polish!r}.")
    nu_i = guidance_scale_at_origin(data, process, ts, int(target))

    args = (data, process, x, key, ts, jnp.asarray(eps, x.dtype), nu_i)
    args = args + (jnp.asarray(width_min, x.dtype),)

    # trajectories with a NaN/Inf value or gradient, at the first evaluation that had any
    n_bad = jnp.zeros((), jnp.int32)

    def per_traj_grad(theta):
        nonlocal n_bad
        vals, jac = _per_traj_grad(theta, *args, int(target))
        bad = jnp.sum(nonfinite_rows(vals) | nonfinite_rows(jac), dtype=jnp.int32)
        n_bad = jnp.where(n_bad > 0, n_bad, bad)
        return vals, jac

    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, max(int(n_iter), 1), alpha=0.05))
    theta = jnp.asarray([centre, math.log(width - width_min)], x.dtype)
    state = opt.init(theta)
    hist = []
    mask = jnp.asarray([1.0, 1.0 if learn_width else 0.0], x.dtype)
    for _ in range(int(n_iter)):
        vals, jac = per_traj_grad(theta)
        g = -jnp.mean(jac, axis=0) * mask
        upd, state = opt.update(g, state, theta)
        theta = optax.apply_updates(theta, upd)
        hist.append(jnp.stack([theta[0], width_min + jnp.exp(theta[1]), jnp.mean(vals)]))
    dc = 0.02

    def curvature(th):
        _, jp = per_traj_grad(th.at[0].add(dc))
        _, jm = per_traj_grad(th.at[0].add(-dc))
        return (jnp.mean(jp[:, 0]) - jnp.mean(jm[:, 0])) / (2 * dc)

    if n_polish:
        curv = curvature(theta)
        for _ in range(int(n_polish)):
            _, jac = per_traj_grad(theta)
            g = jnp.mean(jac[:, 0])
            # Newton step on the centre; a gradient step of at most 0.1 if not concave there
            step = jnp.where(curv < 0, -g / curv, jnp.sign(g) * 0.1)
            theta = theta.at[0].add(jnp.clip(step, -0.1, 0.1))
    vals, jac = per_traj_grad(theta)
    n = jac.shape[0]
    g_se = jnp.std(jac[:, 0], ddof=1) / math.sqrt(n)
    curv = curvature(theta)
    c_se = g_se / jnp.abs(curv)
    # no estimate (in particular no standard error) built on non-finite trajectories
    estimates = (theta[0], width_min + jnp.exp(theta[1]), c_se, jnp.mean(vals), g_se, curv)
    c, w, c_se, obj, g_se, curv = (jnp.where(n_bad > 0, jnp.nan, v) for v in estimates)
    return LearnedPulse(c, w, c_se, obj, jnp.stack(hist), g_se, curv, n_bad)
