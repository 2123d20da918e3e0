r"""Step rules for the reverse-time dynamics, as small equinox modules.

A solver advances a batch of states ``x`` from forward time ``t`` to an earlier time
``t_next < t`` (generation runs the forward time downwards). With $h = t - t_{\rm next} > 0$,
reverse-SDE drift $v(x,t) = g^2(t)s(x,t) - f(t)x$ and probability-flow drift
$u(x,t) = \tfrac12 g^2(t)s(x,t) - f(t)x$:

- :class:`EulerMaruyama`: $x' = x + h\,v(x,t) + g(t)\sqrt h\,\xi$;
- :class:`LambdaEulerMaruyama`: Euler–Maruyama on the $\lambda$-family
  $x' = x + h\big[\tfrac12(1+\lambda^2)g^2(t)s(x,t) - f(t)x\big] + \lambda g(t)\sqrt h\,\xi$
  ($\lambda = 1$: :class:`EulerMaruyama`; $\lambda = 0$: Euler on the probability-flow ODE);
- :class:`PredictorCorrector`: the :class:`LambdaEulerMaruyama` step, then $n$ Langevin steps
  $x \leftarrow x + \varepsilon s(x,t_{\rm next}) + \sqrt{2\varepsilon}\,\xi_j$ with
  $\varepsilon = \tfrac12\rho g^2(t) h$ (the $\lambda$-family with $\lambda^2 + n\rho$);
- :class:`StochasticHeun`: $k_1 = h\,v(x,t) + g(t)\sqrt h\,\xi$,
  $k_2 = h\,v(x+k_1,t') + g(t')\sqrt h\,\xi$, $x' = x + (k_1+k_2)/2$ (for the additive noise
  of every process here this is the Heun scheme that diffrax's ``Heun`` applies to an SDE);
- :class:`Heun`: Heun's method on the probability-flow ODE in the time variable $t$;
- :class:`DDIM`: deterministic DDIM, Euler in $(\bar x = x/a_t,\ \sigma_t = b_t/a_t)$:
  $x' = \frac{a'}{a}x + \big(b' - \frac{a'}{a}b\big)\hat\epsilon$ with
  $\hat\epsilon = -b\,s(x,t)$ (Song, Meng and Ermon, 2021);
- :class:`EDMHeun`: Heun's method on the probability-flow ODE written in $(\bar x, \sigma)$,
  $d\bar x/d\sigma = (\bar x - D(x,t))/\sigma$ with $\bar x = x/a_t$, $\sigma = b_t/a_t$ and the
  denoiser $D = (x + b_t^2 s)/a_t = \mathbb E[y\mid x]$ — the second-order sampler of
  Karras et al. (2022, Alg. 1).

Every solver exposes :meth:`AbstractSolver.step`; the loops over time live in
:mod:`gltheory.sampling` (:func:`gltheory.sampling.integrate`, :func:`gltheory.sample`), so a
new scheme only needs a ``step``. Method strings (``"euler_maruyama"``, ``"heun_sde"``,
``"heun"``, ``"ddim"``, ``"edm_heun"``) are accepted wherever a solver is, via
:func:`as_solver`.
"""

import abc
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from ._checks import as_float_array, check_values
from .processes import AbstractProcess

__all__ = [
    "AbstractSolver",
    "EulerMaruyama",
    "LambdaEulerMaruyama",
    "PredictorCorrector",
    "StochasticHeun",
    "Heun",
    "DDIM",
    "EDMHeun",
    "METHODS",
    "as_solver",
]

ScoreFn = Callable[[Array, Array], Array]
"""``score_fn(x, t)``: the score of a batch of states ``x`` at a scalar time ``t``."""


class AbstractSolver(eqx.Module):
    """One step of a reverse-time integrator.

    Subclasses set the class variables `stochastic` (whether the step uses the Gaussian
    increment ``z``) and `evaluations` (score evaluations per step), and implement
    :meth:`step`. `noise_draws` (default 1) is the number of standard normals per state a step
    uses: with more than one, the samplers pass ``z`` of shape ``(noise_draws, *x.shape)``.
    """

    stochastic: eqx.AbstractClassVar[bool]
    evaluations: eqx.AbstractClassVar[int]
    noise_draws: ClassVar[int] = 1

    @abc.abstractmethod
    def step(
        self,
        score_fn: ScoreFn,
        process: AbstractProcess,
        x: Float[ArrayLike, "*shape"],
        t: Real[ArrayLike, ""],
        t_next: Real[ArrayLike, ""],
        z: Float[ArrayLike, "*shape"] | None,
    ) -> Float[Array, "*shape"]:
        r"""Advance ``x`` from forward time ``t`` to ``t_next < t``.

        **Arguments:**

        - `score_fn`: ``score_fn(x, t)``, batched over the leading axes of ``x``.
        - `process`: the forward process.
        - `x`: the states at ``t``.
        - `t`, `t_next`: scalar times, ``t_next < t``.
        - `z`: standard normals shaped like ``x`` (this step's trajectory noise); ignored
          (and may be ``None``) for deterministic solvers.

        **Returns:** the states at ``t_next``, shaped like ``x``.
        """


class EulerMaruyama(AbstractSolver):
    """Euler–Maruyama on the reverse SDE (one score evaluation per step)."""

    stochastic: ClassVar[bool] = True
    evaluations: ClassVar[int] = 1

    def step(
        self,
        score_fn: ScoreFn,
        process: AbstractProcess,
        x: Float[ArrayLike, "*shape"],
        t: Real[ArrayLike, ""],
        t_next: Real[ArrayLike, ""],
        z: Float[ArrayLike, "*shape"],
    ) -> Float[Array, "*shape"]:
        h = t - t_next
        drift = process.reverse_drift(x, t, score_fn(x, t))
        return x + h * drift + (process.g(t) * jnp.sqrt(h)) * z


class LambdaEulerMaruyama(AbstractSolver):
    r"""Euler–Maruyama on the $\lambda$-family of reverse dynamics with the marginals $p_t$.

    For $\lambda \ge 0$ the reverse-time SDE

    $$dx = \big[f(t)\,x - \tfrac12(1+\lambda^2)\,g^2(t)\,s(x,t)\big]\,dt
    + \lambda\,g(t)\,d\bar W$$

    has, for the exact score, the same one-time marginals $p_t$ as the forward process:
    $\lambda = 1$ is the reverse SDE (Anderson 1982), $\lambda = 0$ the probability-flow ODE,
    and the difference from the probability-flow ODE is a Langevin dynamics at rate
    $\tfrac12\lambda^2 g^2$ that leaves $p_t$ invariant
    (``docs/theory/processes.md#lambda-family``).
    With $h = t - t_{\rm next} > 0$ and $c = \tfrac12(1+\lambda^2)$, one step is

    $$x' = x + h\,\big[g^2(t)\,c\,s(x,t) - f(t)\,x\big] + \lambda\,g(t)\sqrt h\;\xi .$$

    At $\lambda = 1$ this is :class:`EulerMaruyama` operation for operation (bit for bit: the
    factors $c = 1$ and $\lambda = 1$ are exact); at $\lambda = 0$ it is Euler's method on the
    probability-flow ODE (the noise is drawn and multiplied by 0, so the trajectory noise
    convention of :mod:`gltheory.sampling` is the same for every $\lambda$).

    For a score that is not exact (the patch machines), $\lambda^2$ sets how much relaxation
    the dynamics does per unit of generation time: the quench-time knob of a Kibble–Zurek
    measurement (``docs/theory/processes.md#lambda-family``).

    **Arguments:**

    - `lam`: $\lambda \ge 0$, a finite real scalar. It is an array leaf of the module, so it
      can be traced: ``jax.vmap`` over a constructor call, ``jax.jit`` and ``jax.grad`` with
      respect to it all work (one compiled sampler serves every value).

    **Raises:** ``ValueError`` naming `lam` for a negative, non-finite or non-scalar value
    (for a traced value only when ``gltheory.config.check_traced_values`` is on).
    """

    lam: Array
    stochastic: ClassVar[bool] = True
    evaluations: ClassVar[int] = 1

    def __init__(self, lam: Real[ArrayLike, ""]):
        value = as_float_array(lam, "lam")
        if value.ndim != 0:
            raise ValueError(f"lam must be a real scalar >= 0, got shape {value.shape}.")
        self.lam = check_values(
            value,
            lambda v: ~(v >= 0) | ~(abs(v) < float("inf")),
            f"lam must be a finite real number >= 0, got {lam!r}.",
        )

    def step(
        self,
        score_fn: ScoreFn,
        process: AbstractProcess,
        x: Float[ArrayLike, "*shape"],
        t: Real[ArrayLike, ""],
        t_next: Real[ArrayLike, ""],
        z: Float[ArrayLike, "*shape"],
    ) -> Float[Array, "*shape"]:
        h = t - t_next
        lam = jnp.asarray(self.lam, dtype=jnp.result_type(x))  # x's precision wins
        c = 0.5 * (1 + lam * lam)
        drift = process.reverse_drift(x, t, c * score_fn(x, t))
        return x + h * drift + (lam * (process.g(t) * jnp.sqrt(h))) * z


class PredictorCorrector(AbstractSolver):
    r"""Predictor–corrector: a :class:`LambdaEulerMaruyama` step followed by ``n_corrector``
    Langevin corrector steps at the new time — the discrete relative of the $\lambda$-family.

    With $h = t - t_{\rm next}$, the predictor is the $\lambda$-family step with $\lambda =$
    ``lam`` and noise $\xi_0$; then, for $j = 1, \dots, n$,

    $$x \leftarrow x + \varepsilon\, s(x, t_{\rm next}) + \sqrt{2\varepsilon}\;\xi_j,
    \qquad \varepsilon = \tfrac12\,\rho\, g^2(t)\, h$$

    (the step rule: a fixed fraction $\rho$ = ``rho`` of the step's own diffusion,
    $\varepsilon \propto g^2 h$, not Song et al.'s signal-to-noise rule). Each corrector step
    leaves $p_{t_{\rm next}}$ invariant for the exact score up to $O(\varepsilon^2)$, and $n$
    of them add $n\varepsilon = \tfrac12 n\rho\, g^2 h$ of Langevin time per step, the extra
    Langevin term of the $\lambda$-family: to first order in $h$ the sampler is the
    $\lambda$-family with $\lambda_{\rm eff}^2 = \lambda^2 + n\rho$
    (``docs/theory/processes.md#lambda-family``), so for a non-exact score $n$ is a quench-time
    knob, $\tau_Q \propto \lambda_{\rm eff}^2$, at a cost of $1 + n$ score evaluations per step
    whose size stays fixed (a large $\lambda$ in :class:`LambdaEulerMaruyama` needs ever finer
    grids instead). Stability of the corrector needs $\varepsilon$ small against the score's
    stiffness (e.g. $\varepsilon \ll b_t^2$ for the patch scores).

    Noise: the step uses $1 + n$ standard normals per state (:attr:`noise_draws`); the
    samplers of :mod:`gltheory.sampling` then pass ``z`` of shape ``(1 + n, *x.shape)``
    (``z[0]`` the predictor's, ``z[j]`` corrector $j$'s). With ``n_corrector = 0`` the step
    is :class:`LambdaEulerMaruyama` (``lam``) bit for bit, ``z`` shaped like ``x``.

    **Arguments:**

    - `n_corrector`: corrector steps per step, a Python int ``>= 0`` (static).
    - `lam`: the predictor's $\lambda \ge 0$ (1: reverse-SDE Euler–Maruyama, 0: probability
      flow), a finite real scalar (an array leaf, traceable).
    - `rho`: the corrector strength $\rho > 0$, a finite real scalar (an array leaf).

    **Raises:** ``ValueError`` naming `n_corrector`, `lam` or `rho` for a value outside
    these ranges.
    """

    predictor: LambdaEulerMaruyama
    rho: Array
    n_corrector: int = eqx.field(static=True)
    stochastic: ClassVar[bool] = True
    evaluations: ClassVar[int] = 1  # per predictor; the step makes 1 + n_corrector

    def __init__(
        self,
        n_corrector: int | np.integer,
        lam: Real[ArrayLike, ""] = 1.0,
        rho: Real[ArrayLike, ""] = 1.0,
    ):
        if isinstance(n_corrector, bool) or not isinstance(n_corrector, (int, np.integer)):
            raise ValueError(f"n_corrector must be a Python int >= 0, got {n_corrector!r}.")
        if n_corrector < 0:
            raise ValueError(f"n_corrector must be a Python int >= 0, got {n_corrector!r}.")
        self.n_corrector = int(n_corrector)
        self.predictor = LambdaEulerMaruyama(lam)
        value = as_float_array(rho, "rho")
        if value.ndim != 0:
            raise ValueError(f"rho must be a real scalar > 0, got shape {value.shape}.")
        self.rho = check_values(
            value,
            lambda v: ~(v > 0) | ~(abs(v) < float("inf")),
            f"rho must be a finite real number > 0, got {rho!r}.",
        )

    @property
    def noise_draws(self) -> int:
        """Standard normals per state and step: ``1 + n_corrector``."""
        return 1 + self.n_corrector

    @property
    def score_evaluations(self) -> int:
        """Score evaluations per step: ``1 + n_corrector``."""
        return 1 + self.n_corrector

    def step(
        self,
        score_fn: ScoreFn,
        process: AbstractProcess,
        x: Float[ArrayLike, "*shape"],
        t: Real[ArrayLike, ""],
        t_next: Real[ArrayLike, ""],
        z: Float[ArrayLike, "*zshape"],
    ) -> Float[Array, "*shape"]:
        if self.n_corrector == 0:
            return self.predictor.step(score_fn, process, x, t, t_next, z)
        z = jnp.asarray(z)
        if z.shape != (self.noise_draws,) + jnp.shape(x):
            raise ValueError(
                f"z must have shape (1 + n_corrector, *x.shape) = "
                f"{(self.noise_draws,) + jnp.shape(x)} for PredictorCorrector, got {z.shape} "
                "(a caller that draws one normal per state cannot drive the correctors)."
            )
        x = self.predictor.step(score_fn, process, x, t, t_next, z[0])
        h = t - t_next
        rho = jnp.asarray(self.rho, dtype=jnp.result_type(x))
        eps = 0.5 * rho * process.g(t) ** 2 * h
        amp = jnp.sqrt(2 * eps)

        def correct(y, zj):
            return y + eps * score_fn(y, t_next) + amp * zj, None

        return jax.lax.scan(correct, x, z[1:])[0]


class StochasticHeun(AbstractSolver):
    """Stochastic Heun on the reverse SDE (two score evaluations, one increment per step)."""

    stochastic: ClassVar[bool] = True
    evaluations: ClassVar[int] = 2

    def step(
        self,
        score_fn: ScoreFn,
        process: AbstractProcess,
        x: Float[ArrayLike, "*shape"],
        t: Real[ArrayLike, ""],
        t_next: Real[ArrayLike, ""],
        z: Float[ArrayLike, "*shape"],
    ) -> Float[Array, "*shape"]:
        h = t - t_next
        sq = jnp.sqrt(h)
        k1 = h * process.reverse_drift(x, t, score_fn(x, t)) + (process.g(t) * sq) * z
        x1 = x + k1
        k2 = (
            h * process.reverse_drift(x1, t_next, score_fn(x1, t_next))
            + (process.g(t_next) * sq) * z
        )
        return x + 0.5 * (k1 + k2)


class Heun(AbstractSolver):
    """Heun's method (second order) on the probability-flow ODE, in the time variable ``t``."""

    stochastic: ClassVar[bool] = False
    evaluations: ClassVar[int] = 2

    def step(
        self,
        score_fn: ScoreFn,
        process: AbstractProcess,
        x: Float[ArrayLike, "*shape"],
        t: Real[ArrayLike, ""],
        t_next: Real[ArrayLike, ""],
        z: Float[ArrayLike, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        h = t - t_next
        d1 = process.pf_ode_drift(x, t, score_fn(x, t))
        x1 = x + h * d1
        d2 = process.pf_ode_drift(x1, t_next, score_fn(x1, t_next))
        return x + 0.5 * h * (d1 + d2)


class DDIM(AbstractSolver):
    r"""Deterministic DDIM: Euler in $(x/a_t, \sigma_t)$ (exact for a Gaussian at a point)."""

    stochastic: ClassVar[bool] = False
    evaluations: ClassVar[int] = 1

    def step(
        self,
        score_fn: ScoreFn,
        process: AbstractProcess,
        x: Float[ArrayLike, "*shape"],
        t: Real[ArrayLike, ""],
        t_next: Real[ArrayLike, ""],
        z: Float[ArrayLike, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        a, a_next = process.a(t), process.a(t_next)
        b, b_next = process.b(t), process.b(t_next)
        eps = -b * score_fn(x, t)
        ratio = a_next / a
        return ratio * x + (b_next - ratio * b) * eps


class EDMHeun(AbstractSolver):
    r"""Karras et al.'s Heun step: Heun on $d\bar x/d\sigma = -\sigma\,a_t s(x,t)$ in $\bar x = x/a_t$.

    For ``VE("edm")`` ($a_t = 1$, $\sigma_t = t$) this is Algorithm 1 of Karras et al. (2022)
    and coincides with :class:`Heun`; for other processes it differs from :class:`Heun` by the
    change of variables.
    """

    stochastic: ClassVar[bool] = False
    evaluations: ClassVar[int] = 2

    def step(
        self,
        score_fn: ScoreFn,
        process: AbstractProcess,
        x: Float[ArrayLike, "*shape"],
        t: Real[ArrayLike, ""],
        t_next: Real[ArrayLike, ""],
        z: Float[ArrayLike, "*shape"] | None = None,
    ) -> Float[Array, "*shape"]:
        a, a_next = process.a(t), process.a(t_next)
        s, s_next = process.sigma(t), process.sigma(t_next)
        xb = x / a
        d1 = -s * a * score_fn(x, t)  # (xbar - D/a) / sigma
        xb1 = xb + (s_next - s) * d1
        d2 = -s_next * a_next * score_fn(a_next * xb1, t_next)
        return a_next * (xb + (s_next - s) * 0.5 * (d1 + d2))


METHODS: dict[str, AbstractSolver] = {
    "euler_maruyama": EulerMaruyama(),
    "heun_sde": StochasticHeun(),
    "heun": Heun(),
    "ddim": DDIM(),
    "edm_heun": EDMHeun(),
}
"""The method strings accepted as aliases of the solvers."""


def as_solver(solver: AbstractSolver | str) -> AbstractSolver:
    """The solver named by a method string, or ``solver`` itself.

    **Raises:** ``ValueError`` naming the allowed strings for anything else.
    """
    if isinstance(solver, AbstractSolver):
        return solver
    if isinstance(solver, str) and solver in METHODS:
        return METHODS[solver]
    raise ValueError(
        f"solver must be an AbstractSolver or one of {tuple(METHODS)}, got {solver!r}."
    )
