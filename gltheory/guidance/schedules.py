r"""Guidance forms, the guided score, an EDM sampler with guidance, and the perturbation size.

Ambrogioni, arXiv:2603.20092; Lehman Pavasovic et al., arXiv:2502.07849; Kynkäänniemi et al., arXiv:2404.07724.

**Guided denoiser.** With a conditional denoiser $D_c$ and an unconditional one $D_u$,
$$D_w = D_u + w\,(D_c - D_u),\qquad s_w = \frac{a_tD_w - x}{b_t^2} = s_u + w\,(s_c - s_u),$$
so guiding the denoiser and guiding the score are the same operation (:func:`guided_denoiser`,
:class:`GuidedScore`). A guidance form is a rule for the weight $w$: constant CFG, an interval in
time or in EDM step index (Kynkäänniemi et al., arXiv:2404.07724;
`docs/theory/guidance.md#guidance-interval`), a pulse (centre, width, strength; box or smooth),
or the power law $w=\max(\omega\|s_c-s_u\|^\alpha, w_{\min})$
(`docs/theory/guidance.md#cfg`). They are final
``eqx.Module``s whose numbers are arrays, so one compiled sampler serves every value.
:func:`edm_guided_sample` is the deterministic EDM Heun sampler with guidance (it counts the
evaluations that run both denoisers); :func:`count_guided_evaluations` counts them for
:func:`gltheory.sample`.

**Perturbation size** (`docs/theory/guidance.md#guidance-pulses`). For delta classes $s_c-s_u$ grows like $1/b_t^2$, so an
unnormalised late pulse flips committed samples. A pulse is therefore characterised by its
*guidance displacement*, the distance the guidance term of the reverse SDE moves a state held
at the uncommitted reference point $x_{\rm ref}$ (the symmetric point $0$):
$$\varepsilon = \int w(t)\,g^2(t)\,\nu(t)\,dt,\qquad \nu(t) = \|s_c(x_{\rm ref},t) - s_u(x_{\rm ref},t)\|,$$
evaluated as the Euler sum $\sum_i h_i\,w(t_i)g^2(t_i)\nu(t_i)$ on the sampler's grid
(:func:`guidance_displacement`, :func:`normalise_pulse`; $\nu$ by :func:`guidance_scale`,
:func:`guidance_scale_at_origin`).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, Real

from .._checks import PROCESS, as_float_array, check_instance, check_result, check_values
from ..processes import VE, AbstractProcess
from ..sampling import integrate
from ..scores import cast_floats
from ..solvers import EDMHeun
from .classes import ClassConditional, ClassScore

# Shape contracts (checked at run time in the test suite): a guidance parameter is a scalar or
# one value per trajectory; a time grid is a 1-D array (or a list of times); nu(t) is a
# callable, a scalar or its values at ts[:-1].
_PerTrajectory = Real[ArrayLike, ""] | Real[ArrayLike, " n"]
_Grid = Real[ArrayLike, " n_steps_plus_1"] | Sequence[float | int]
_Nu = Real[ArrayLike, ""] | Real[ArrayLike, " n_steps"] | Callable

__all__ = [
    "AbstractGuidance",
    "ConstantCFG",
    "IntervalCFG",
    "StepIntervalCFG",
    "Pulse",
    "PowerLawCFG",
    "GuidedScore",
    "guided_denoiser",
    "count_guided_evaluations",
    "edm_sigmas",
    "edm_guided_sample",
    "guidance_scale",
    "guidance_scale_at_origin",
    "guidance_displacement",
    "normalise_pulse",
]


def guided_denoiser(
    d_u: Real[ArrayLike, "*x"], d_c: Real[ArrayLike, "*x"], w: _PerTrajectory
) -> Float[Array, "*x"]:
    r"""$D_w = D_u + w\,(D_c - D_u)$ (``uncond.lerp(cond, w)``; Ambrogioni, arXiv:2603.20092; Kynkäänniemi et al., arXiv:2404.07724)."""
    d_u = jnp.asarray(d_u)
    w = jnp.asarray(w)
    if w.ndim == 1 and d_u.ndim > 1:
        w = w.reshape(w.shape + (1,) * (d_u.ndim - 1))
    return d_u + w * (jnp.asarray(d_c) - d_u)


class AbstractGuidance(eqx.Module):
    """A rule for the CFG weight $w$ of $D_u + w(D_c - D_u)$."""

    @abc.abstractmethod
    def weight(
        self,
        t: Real[ArrayLike, "*t"],
        *,
        step: Int[ArrayLike, ""] | None = None,
        diff_norm: Real[ArrayLike, " n"] | None = None,
    ) -> Float[Array, "*w"]:
        r"""$w$ at forward time $t$ (and EDM step index ``step``; per-sample $\|s_c-s_u\|$ for
        data-dependent forms). Scalar, or shape ``(n,)`` for per-trajectory parameters."""

    def mode(
        self, t: Real[ArrayLike, "*t"], *, step: Int[ArrayLike, ""] | None = None
    ) -> Int[Array, ""]:
        r"""Which networks an evaluation needs: 0 = $D_u$ only ($w=0$), 1 = $D_c$ only ($w=1$),
        2 = both (a *guided* evaluation). Scalar int32 (2 for per-trajectory weights)."""
        w = self.weight(t, step=step)
        if jnp.ndim(w) > 0:
            return jnp.asarray(2, jnp.int32)
        return jnp.where(w == 0, 0, jnp.where(w == 1, 1, 2)).astype(jnp.int32)


class ConstantCFG(AbstractGuidance):
    r"""Plain classifier-free guidance: $w$ at every time ($w=1$: conditional sampling)."""

    w: Float[Array, "*n"]

    def __init__(self, w: _PerTrajectory):
        self.w = as_float_array(w, "w")

    def weight(
        self,
        t: Real[ArrayLike, "*t"],
        *,
        step: Int[ArrayLike, ""] | None = None,
        diff_norm: Real[ArrayLike, " n"] | None = None,
    ) -> Float[Array, "*w"]:
        return self.w


class IntervalCFG(AbstractGuidance):
    r"""Guidance $w$ on the time window $t_{\rm lo}\le t\le t_{\rm hi}$, $w_{\rm out}$ outside.

    $w_{\rm out}=1$ (default) is Kynkäänniemi et al.'s limited-interval guidance (plain
    conditional outside, Kynkäänniemi et al., arXiv:2404.07724); $w_{\rm out}=0$ guides an unconditional sampler.
    """

    w: Float[Array, "*n"]
    t_lo: Float[Array, ""]
    t_hi: Float[Array, ""]
    w_out: Float[Array, "*n"]

    def __init__(
        self,
        w: _PerTrajectory,
        t_lo: Real[ArrayLike, ""],
        t_hi: Real[ArrayLike, ""],
        w_out: _PerTrajectory = 1.0,
    ):
        self.w = as_float_array(w, "w")
        self.t_lo = as_float_array(t_lo, "t_lo")
        self.t_hi = as_float_array(t_hi, "t_hi")
        self.w_out = as_float_array(w_out, "w_out")
        check_values(
            jnp.stack([jnp.asarray(self.t_lo, float), jnp.asarray(self.t_hi, float)]),
            lambda v: ~(v[0] <= v[1]),
            f"need t_lo <= t_hi, got t_lo={t_lo}, t_hi={t_hi}.",
        )

    def weight(
        self,
        t: Real[ArrayLike, "*t"],
        *,
        step: Int[ArrayLike, ""] | None = None,
        diff_norm: Real[ArrayLike, " n"] | None = None,
    ) -> Float[Array, "*w"]:
        inside = (t >= self.t_lo) & (t <= self.t_hi)
        return jnp.where(inside, self.w, self.w_out)


class StepIntervalCFG(AbstractGuidance):
    r"""Guidance $w$ for EDM step indices $i_{\rm lo}\le i\le i_{\rm hi}$ (inclusive, both Heun
    evaluations of those steps), $w_{\rm out}$ (default 1: plain $D_c$) elsewhere.

    Kynkäänniemi et al.'s sampler (Kynkäänniemi et al., arXiv:2404.07724); needs the step index, which
    :func:`edm_guided_sample` passes.
    """

    w: Float[Array, "*n"]
    i_lo: Int[Array, ""]
    i_hi: Int[Array, ""]
    w_out: Float[Array, "*n"]

    def __init__(
        self,
        w: _PerTrajectory,
        i_lo: int | np.integer,
        i_hi: int | np.integer,
        w_out: _PerTrajectory = 1.0,
    ):
        for name, v in (("i_lo", i_lo), ("i_hi", i_hi)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer step index, got {v!r}.")
        if i_hi < i_lo:
            raise ValueError(f"need i_lo <= i_hi, got [{i_lo}, {i_hi}].")
        self.w = as_float_array(w, "w")
        self.i_lo = jnp.asarray(i_lo, jnp.int32)
        self.i_hi = jnp.asarray(i_hi, jnp.int32)
        self.w_out = as_float_array(w_out, "w_out")

    def weight(
        self,
        t: Real[ArrayLike, "*t"],
        *,
        step: Int[ArrayLike, ""] | None = None,
        diff_norm: Real[ArrayLike, " n"] | None = None,
    ) -> Float[Array, "*w"]:
        if step is None:
            raise ValueError(
                "StepIntervalCFG needs the sampler's step index: use edm_guided_sample (or an "
                "IntervalCFG in time with gltheory.sample)."
            )
        inside = (step >= self.i_lo) & (step <= self.i_hi)
        return jnp.where(inside, self.w, self.w_out)


_SQRT12 = math.sqrt(12.0)


class Pulse(AbstractGuidance):
    r"""A guidance pulse $w(t) = w_{\rm base} + A\,\chi\big((t-t_p)/\Delta\big)$ (Ambrogioni, arXiv:2603.20092).

    - ``shape="box"``: $\chi = \mathbf 1[-\tfrac12\le u<\tfrac12]$ (full width $\Delta$);
    - ``shape="smooth"``: a Gaussian with the box's standard deviation,
      $\chi = e^{-u^2\cdot 6}$, i.e. $\mathrm{std} = \Delta/\sqrt{12}$ (differentiable in $t_p$, $\Delta$).

    ``centre``, ``width`` and ``strength`` are arrays: scalars, or shape ``(n,)`` for one pulse
    per trajectory (e.g. random pulse times). $w_{\rm base}=0$ (default) guides an unconditional
    sampler; $w_{\rm base}=1$ a conditional one. Use :func:`normalise_pulse` to set ``strength``
    from a perturbation size.
    """

    centre: Float[Array, "*n"]
    width: Float[Array, "*n"]
    strength: Float[Array, "*n"]
    base: Float[Array, "*n"]
    shape: str = eqx.field(static=True)

    def __init__(
        self,
        centre: _PerTrajectory,
        width: _PerTrajectory,
        strength: _PerTrajectory = 1.0,
        *,
        shape: str = "box",
        base: _PerTrajectory = 0.0,
    ):
        if shape not in ("box", "smooth"):
            raise ValueError(f"shape must be 'box' or 'smooth', got {shape!r}.")
        self.centre = as_float_array(centre, "centre")
        self.width = check_values(
            as_float_array(width, "width"),
            lambda v: ~(v > 0).all(),
            f"width must be > 0, got {width}.",
        )
        self.strength = as_float_array(strength, "strength")
        self.base = as_float_array(base, "base")
        for name, v in (
            ("centre", self.centre),
            ("width", self.width),
            ("strength", self.strength),
        ):
            if v.ndim > 1:
                raise ValueError(f"{name} must be a scalar or shape (n,), got shape {v.shape}.")
        self.shape = shape

    def profile(self, t: Real[ArrayLike, "*t"]) -> Float[Array, " ..."]:
        r"""$\chi((t-t_p)/\Delta)$ (broadcast over per-trajectory parameters)."""
        u = (jnp.asarray(t) - self.centre) / self.width
        if self.shape == "box":
            return ((u >= -0.5) & (u < 0.5)).astype(jnp.result_type(u, float))
        return jnp.exp(-6.0 * u**2)

    def weight(
        self,
        t: Real[ArrayLike, "*t"],
        *,
        step: Int[ArrayLike, ""] | None = None,
        diff_norm: Real[ArrayLike, " n"] | None = None,
    ) -> Float[Array, " ..."]:
        return self.base + self.strength * self.profile(t)


class PowerLawCFG(AbstractGuidance):
    r"""Power-law CFG (Lehman Pavasovic et al., arXiv:2502.07849): $w = \max(\omega\,\|s_c-s_u\|^\alpha,\ w_{\min})$ per sample.

    $\alpha=0$ is plain CFG with $w=\max(\omega,w_{\min})$. Since $\|s_c-s_u\|$ is exponentially
    small on committed trajectories (`docs/theory/guidance.md#cfg-two-clusters`), $\alpha>0$ switches guidance off after
    commitment. $\alpha$ must exceed $-1$ so that $z\,w(z)\to0$ as $z\to0$.
    """

    omega: Float[Array, ""]
    alpha: Float[Array, ""]
    w_min: Float[Array, ""]

    def __init__(
        self,
        omega: Real[ArrayLike, ""],
        alpha: Real[ArrayLike, ""],
        w_min: Real[ArrayLike, ""] = 1.0,
    ):
        self.omega = as_float_array(omega, "omega")
        self.alpha = check_values(
            as_float_array(alpha, "alpha"), lambda v: ~(v > -1), f"alpha must be > -1, got {alpha}."
        )
        self.w_min = as_float_array(w_min, "w_min")

    def weight(
        self,
        t: Real[ArrayLike, "*t"],
        *,
        step: Int[ArrayLike, ""] | None = None,
        diff_norm: Real[ArrayLike, " n"] | None = None,
    ) -> Float[Array, " n"]:
        if diff_norm is None:
            raise ValueError("PowerLawCFG needs diff_norm = |s_c - s_u| per sample.")
        z = jnp.asarray(diff_norm)
        safe = jnp.where(z > 0, z, 1.0)
        zw = jnp.where(z > 0, safe**self.alpha, 0.0)
        return jnp.maximum(self.omega * zw, self.w_min)

    def mode(
        self, t: Real[ArrayLike, "*t"], *, step: Int[ArrayLike, ""] | None = None
    ) -> Int[Array, ""]:
        return jnp.asarray(2, jnp.int32)


def _bcast_w(w, x):
    w = jnp.asarray(w, x.dtype)
    if w.ndim == 1:
        w = w.reshape(w.shape + (1,) * (x.ndim - 1))
    return w


class GuidedScore(eqx.Module):
    r"""Guided score $s_w = s_u + w\,(s_c - s_u)$, the score of $D_u + w(D_c - D_u)$.

    A pytree usable as ``score_fn`` in :func:`gltheory.sample` (``__call__(x, t)``). When the
    weight is a scalar the evaluation branches with ``lax.switch`` on :meth:`AbstractGuidance.mode`,
    so outside a pulse only $s_u$ (or only $s_c$) is computed; per-trajectory weights evaluate
    both. :func:`count_guided_evaluations` counts the evaluations that need both networks.

    **Arguments:** ``cond``, ``uncond``: score callables ``(x, t) -> array like x`` (e.g.
    :class:`ClassScore`); ``guidance``: an :class:`AbstractGuidance`.
    """

    cond: Callable
    uncond: Callable
    guidance: AbstractGuidance

    def __call__(
        self,
        x: Float[Array, " n *event"],
        t: Real[ArrayLike, ""],
        step: Int[ArrayLike, ""] | None = None,
    ) -> Float[Array, " n *event"]:
        g = self.guidance
        if isinstance(g, PowerLawCFG):
            return self._both(x, t, step)
        w = g.weight(t, step=step)
        if jnp.ndim(w) > 0:
            return self._both(x, t, step)
        return jax.lax.switch(
            g.mode(t, step=step),
            (
                lambda: self.uncond(x, t),
                lambda: self.cond(x, t),
                lambda: self._both(x, t, step),
            ),
        )

    def _both(self, x, t, step):
        s_u = self.uncond(x, t)
        s_c = self.cond(x, t)
        diff = s_c - s_u
        norm = jnp.sqrt(jnp.sum(diff.reshape(diff.shape[0], -1) ** 2, axis=-1))
        w = self.guidance.weight(t, step=step, diff_norm=norm)
        return s_u + _bcast_w(w, x) * diff


_EVAL_POINTS = {
    "euler_maruyama": ((0,),),
    "ddim": ((0,),),
    "heun": ((0,), (1,)),
    "heun_sde": ((0,), (1,)),
}


def count_guided_evaluations(
    guidance: AbstractGuidance, ts: _Grid, method: str = "euler_maruyama"
) -> Int[Array, ""]:
    r"""Number of score evaluations of :func:`gltheory.sample` that run *both* networks.

    Replays the sampler's evaluation schedule: one evaluation at $t_i$ per step for
    ``"euler_maruyama"``/``"ddim"``, two ($t_i$ and $t_{i+1}$) for ``"heun"``/``"heun_sde"``,
    and counts those with :meth:`AbstractGuidance.mode` $=2$. Per-trajectory weights count as
    guided everywhere. (:func:`edm_guided_sample` counts its own evaluations as it runs.)
    """
    if method not in _EVAL_POINTS:
        raise ValueError(f"method must be one of {tuple(_EVAL_POINTS)}, got {method!r}.")
    ts = as_float_array(ts, "ts")
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D grid with at least 2 times, got shape {ts.shape}.")
    n = ts.shape[0] - 1
    total = jnp.asarray(0, jnp.int32)
    for (off,) in _EVAL_POINTS[method]:
        tt = ts[off : off + n]
        modes = jax.vmap(lambda t: guidance.mode(t))(tt)
        total = total + jnp.sum(modes == 2).astype(jnp.int32)
    return total


# ---------------------------------------------------------------------------- EDM sampler


def edm_sigmas(
    n_steps: int | np.integer = 32,
    *,
    sigma_min: Real[ArrayLike, ""] = 0.002,
    sigma_max: Real[ArrayLike, ""] = 80.0,
    rho: Real[ArrayLike, ""] = 7.0,
) -> Float[Array, " n_steps_plus_1"]:
    r"""Karras et al.'s $\rho$-schedule $\sigma_i = (\sigma_{\max}^{1/\rho} + \tfrac{i}{N-1}
    (\sigma_{\min}^{1/\rho}-\sigma_{\max}^{1/\rho}))^\rho$, $i=0..N-1$, followed by $\sigma_N = 0$.

    **Returns:** shape ``(n_steps + 1,)`` (Kynkäänniemi et al., arXiv:2404.07724: $N=32$, $\rho=7$ gives
    $\sigma_{13}=4.9991$, $\sigma_{17}=1.6086$, $\sigma_{19}=0.8446$, $\sigma_{22}=0.2830$).
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}.")
    if not (0 < sigma_min < sigma_max) or not rho > 0:
        raise ValueError(
            f"need 0 < sigma_min < sigma_max and rho > 0, got {sigma_min}, {sigma_max}, {rho}."
        )
    i = jnp.arange(n_steps, dtype=jnp.result_type(float))
    s = (
        sigma_max ** (1 / rho)
        + i / (n_steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))
    ) ** rho
    return jnp.concatenate([s, jnp.zeros((1,), s.dtype)])


@eqx.filter_jit
def _edm_impl(den_c, den_u, guidance, x, sigmas, process):
    n = sigmas.shape[0] - 1
    solver = EDMHeun()

    def mode(s, i):
        if isinstance(guidance, PowerLawCFG):
            return jnp.asarray(2, jnp.int32)
        return guidance.mode(s, step=i)

    def den(x, s, i):
        def both():
            du, dc = den_u(x, s), den_c(x, s)
            diff = dc - du
            norm = jnp.sqrt(jnp.sum(diff.reshape(diff.shape[0], -1) ** 2, axis=-1))
            w = guidance.weight(s, step=i, diff_norm=norm)
            return du + _bcast_w(w, x) * diff

        return jax.lax.switch(mode(s, i), (lambda: den_u(x, s), lambda: den_c(x, s), both))

    def guided(i):
        # VE("edm"): a = 1, b = sigma = t, so s = (D - x) / sigma^2; both evaluations of step i
        # receive the step index i
        return lambda y, s: (den(y, s, i) - y) / s**2

    def body(carry, i, z):
        x, count = carry
        s, s_next = sigmas[i], sigmas[i + 1]
        x = solver.step(guided(i), process, x, s, s_next, None)
        n_both = (mode(s, i) == 2).astype(jnp.int32) + (mode(s_next, i) == 2).astype(jnp.int32)
        return (x, count + n_both), None

    # the Heun steps sigma_0 -> ... -> sigma_{N-1} (the loop runs on the grid sigmas[:-1]) ...
    (x, count), _ = integrate(body, (x, jnp.asarray(0, jnp.int32)), sigmas[:-1])
    # ... then the Euler step to sigma_N = 0, which lands on the denoiser: x = D(x, sigma_{N-1})
    x = den(x, sigmas[n - 1], n - 1)
    return x, count + (mode(sigmas[n - 1], n - 1) == 2).astype(jnp.int32)


def edm_guided_sample(
    den_cond: Callable,
    den_uncond: Callable,
    guidance: AbstractGuidance,
    x: Real[ArrayLike, " n *event"],
    sigmas: Real[ArrayLike, " n_sigmas"] | Sequence[float | int],
) -> tuple[Float[Array, " n *event"], Int[Array, ""]]:
    r"""Deterministic EDM Heun sampler with guidance (Karras et al. Alg. 1 without churn; the
    sampler of Kynkäänniemi et al., arXiv:2404.07724).

    For $i = 0..N-1$: $d = (x - D(x,\sigma_i))/\sigma_i$, $x' = x + (\sigma_{i+1}-\sigma_i)d$ and,
    for $i<N-1$, the Heun correction with $D(x',\sigma_{i+1})$; both evaluations of step $i$
    receive the step index $i$. $D = D_u + w(D_c-D_u)$ with $w$ from ``guidance``; evaluations
    whose mode is 0 or 1 run only $D_u$ or $D_c$ (``lax.switch``), so the returned count is the
    number of evaluations that actually ran both denoisers. The Heun steps are
    :class:`gltheory.solvers.EDMHeun` steps of ``VE("edm")`` ($a_t=1$, $\sigma_t=t$) on the
    score $s = (D - x)/\sigma^2$, run by :func:`gltheory.sampling.integrate`.

    **Arguments:**

    - `den_cond`, `den_uncond`: denoisers ``(x, sigma) -> array like x`` (batched ``x``), e.g.
      ``lambda x, s: data.denoiser(VE("edm"), x, s, 0)``.
    - `guidance`: any guidance form (:class:`StepIntervalCFG` uses the step index).
    - `x`: initial states $x\sim\mathcal N(0,\sigma_0^2I)$, shape ``(n, *event)``.
    - `sigmas`: ``(N + 1,)`` decreasing noise levels ending at 0 (:func:`edm_sigmas`).

    **Returns:** ``(x_0, n_guided)``; ``n_guided`` counts per image (the batch runs together).
    """
    if not (callable(den_cond) and callable(den_uncond)):
        raise ValueError("den_cond and den_uncond must be callables (x, sigma) -> array.")
    if not isinstance(guidance, AbstractGuidance):
        raise ValueError(f"guidance must be an AbstractGuidance, got {type(guidance).__name__}.")
    x = as_float_array(x, "x")
    if x.ndim < 1:
        raise ValueError(f"x must have a batch axis, got shape {x.shape}.")
    sigmas = as_float_array(sigmas, "sigmas").astype(x.dtype)
    if sigmas.ndim != 1 or sigmas.shape[0] < 3:
        raise ValueError(f"sigmas must be 1-D with at least 3 entries, got {sigmas.shape}.")
    sn = np.asarray(sigmas)
    if not (np.all(np.diff(sn) < 0) and sn[-1] == 0 and sn[-2] > 0):
        raise ValueError("sigmas must decrease strictly and end with sigma_N = 0 (see edm_sigmas).")
    process = cast_floats(VE("edm"), x.dtype)
    return _edm_impl(den_cond, den_uncond, guidance, x, sigmas, process)


# ---------------------------------------------------------------------------- perturbation size


def guidance_scale(
    cond: Callable, uncond: Callable, x: Real[ArrayLike, " n *event"], t: Real[ArrayLike, ""]
) -> Float[Array, ""]:
    r"""Reference magnitude of the guidance field, $\nu(t)=\big(\overline{\|s_c(x,t)-s_u(x,t)\|^2}\big)^{1/2}$
    over the batch ``x`` (one state: the norm at that state, e.g. the symmetric point $x=0$;
    forward samples of $p_t$: the RMS guidance field).
    """
    x = as_float_array(x, "x")
    diff = cond(x, t) - uncond(x, t)
    return jnp.sqrt(jnp.mean(jnp.sum(diff.reshape(diff.shape[0], -1) ** 2, axis=-1)))


def _nu_on_grid(nu, ts):
    n = ts.shape[0] - 1
    if callable(nu):
        return jax.vmap(nu)(ts[:n])
    v = as_float_array(nu, "nu")
    if v.ndim == 0:
        return jnp.broadcast_to(v, (n,))
    if v.shape != (n,):
        raise ValueError(
            f"nu must be a scalar, a callable or shape ({n},) (values at ts[:-1]), got {v.shape}."
        )
    return v


def guidance_displacement(
    guidance: AbstractGuidance, process: AbstractProcess, ts: _Grid, nu: _Nu
) -> Float[Array, "*pulses"]:
    r"""Perturbation size $\varepsilon = \sum_i h_i\,w(t_i)\,g^2(t_i)\,\nu(t_i)$ of a guidance form on
    the Euler grid ``ts`` ($h_i = t_i - t_{i+1}$; module docstring). ``nu``: $\nu(t)$ as a callable,
    a scalar or the values at ``ts[:-1]``. Shape ``()`` or ``(n,)`` for per-trajectory pulses.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    ts = as_float_array(ts, "ts")
    nu_i = _nu_on_grid(nu, ts)
    h = ts[:-1] - ts[1:]
    w = jax.vmap(lambda t: guidance.weight(t))(ts[:-1])  # (n_steps,) or (n_steps, n)
    coef = h * process.g2(ts[:-1]) * nu_i
    return jnp.tensordot(coef, w, axes=(0, 0))


def normalise_pulse(
    pulse: Pulse, eps: _PerTrajectory, process: AbstractProcess, ts: _Grid, nu: _Nu
) -> Pulse:
    r"""The pulse with ``strength`` set so that its displacement (:func:`guidance_displacement` of
    the pulse part $A\chi$) equals ``eps``; differentiable in centre and width."""
    if not isinstance(pulse, Pulse):
        raise ValueError(f"pulse must be a Pulse, got {type(pulse).__name__}.")
    unit = eqx.tree_at(
        lambda p: (p.strength, p.base),
        pulse,
        (jnp.ones_like(pulse.strength), jnp.zeros_like(pulse.base)),
    )
    size = guidance_displacement(unit, process, ts, nu)
    size = check_result(size, ~(size > 0), "the pulse does not overlap the time grid (zero size).")
    return eqx.tree_at(lambda p: p.strength, pulse, jnp.asarray(eps, size.dtype) / size)


def guidance_scale_at_origin(
    data: ClassConditional, process: AbstractProcess, ts: _Grid, target: int | np.integer = 0
) -> Float[Array, " n_steps"]:
    r"""$\nu(t_i) = \|s_c(0,t_i) - s_u(0,t_i)\|$ at ``ts[:-1]``: the guidance field of class
    ``target`` at the symmetric point $x=0$ (the $\nu$ that :func:`gltheory.guidance.learn_pulse`
    and :func:`gltheory.guidance.pulse_objective_quadrature` normalise pulses with).

    **Returns:** shape ``(len(ts) - 1,)``.
    """
    if not isinstance(data, ClassConditional):
        raise ValueError(f"data must be a ClassConditional, got {type(data).__name__}.")
    check_instance(process, AbstractProcess, "process", PROCESS)
    if not (isinstance(target, (int, np.integer)) and 0 <= target < data.n_classes):
        raise ValueError(
            f"target must be a class index in 0..{data.n_classes - 1}, got {target!r}."
        )
    ts = as_float_array(ts, "ts")
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a 1-D grid with at least 2 times, got shape {ts.shape}.")
    return _nu_at_origin(data, process, int(target), ts)


@eqx.filter_jit
def _nu_at_origin(data, process, target, ts):
    ref = jnp.zeros((1,) + tuple(data.event_shape), ts.dtype)

    def nu(t):
        return guidance_scale(
            ClassScore(data, process, target), ClassScore(data, process, None), ref, t
        )

    return jax.vmap(nu)(ts[:-1])
