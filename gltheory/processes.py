r"""Forward noising processes $x_t = a_t\,y + b_t\,z$.

See `docs/theory/processes.md#forward-processes` and
`docs/theory/processes.md#reverse-dynamics`.

Every process is a small final ``eqx.Module`` whose numeric parameters are JAX arrays, so a
new parameter value never retraces a jitted function. All quantities are functions of the
forward time ``t`` (noise grows with ``t``); generation runs ``t`` from ``T`` down to ``0``.

Conventions (one forward SDE $dx = f(t)\,x\,dt + g(t)\,dW$):

- $f(t) = \frac{d}{dt}\ln a_t$, $\quad g^2(t) = \frac{d b_t^2}{dt} - 2 f(t)\, b_t^2$;
- ${\rm SNR}(t) = a_t^2/b_t^2$, $\bar\alpha_t = {\rm SNR}/(1+{\rm SNR})$ (equals $a_t^2$ for VP/OU);
- reverse SDE drift "per unit forward time, integrated backwards":
  $x_{t-h} = x_t + h\,[\,g^2 s - f x\,] + g\sqrt h\,\xi$;
- probability-flow ODE drift: $g^2 s/2 - f x$.

For OU this gives $x + 2s$ (noise $\sqrt2$) and $x + s$, as in `docs/theory/processes.md#reverse-dynamics`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, Real

from ._checks import as_float_array, check_values

__all__ = [
    "AbstractProcess",
    "OU",
    "VP",
    "VE",
    "alpha_bar_from_ou_time",
    "ou_time_from_alpha_bar",
    "sigma_from_alpha_bar",
    "alpha_bar_from_sigma",
]

# Times (and SNRs, noise levels) are real scalars or arrays of any shape; every function of
# time acts elementwise, so its output has the shape of its input.
RealScalarLike = Real[ArrayLike, ""]


def _positive_param(value, name: str) -> Array:
    arr = as_float_array(value, name)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}.")
    return check_values(
        arr,
        lambda v: ~(v > 0) | ~(abs(v) < float("inf")),
        f"{name} must be a positive finite number, got {value}.",
    )


class AbstractProcess(eqx.Module):
    r"""A forward process with Gaussian transition $x_t\mid y\sim\mathcal N(a_t y, b_t^2 I)$.

    Subclasses implement ``log_a``, ``b2``, ``f``, ``g2`` and ``t_of_snr`` in closed form;
    everything else is derived here.
    """

    T: eqx.AbstractVar[Array]

    # --- primitives (closed forms in subclasses) ---------------------------------------
    @abc.abstractmethod
    def log_a(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""$\ln a_t$."""

    @abc.abstractmethod
    def b2(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""$b_t^2$, the conditional noise variance."""

    @abc.abstractmethod
    def f(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""Linear drift coefficient $f(t) = d\ln a_t/dt$ of the forward SDE."""

    @abc.abstractmethod
    def g2(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""Squared diffusion coefficient $g^2(t) = db_t^2/dt - 2f b_t^2$."""

    @abc.abstractmethod
    def t_of_snr(self, snr: Real[ArrayLike, "*snr"]) -> Float[Array, "*snr"]:
        r"""Inverse of ${\rm SNR}(t)$ (closed form); maps any criterion to this process's time."""

    # --- derived quantities --------------------------------------------------------------
    def a(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""Signal scale $a_t$."""
        return jnp.exp(self.log_a(t))

    def b(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""Noise scale $b_t$."""
        return jnp.sqrt(self.b2(t))

    def log_snr(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""$\ln{\rm SNR}(t) = 2\ln a_t - \ln b_t^2$."""
        return 2 * self.log_a(t) - jnp.log(self.b2(t))

    def snr(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""${\rm SNR}(t) = a_t^2/b_t^2$."""
        return jnp.exp(self.log_snr(t))

    def alpha_bar(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""VP-equivalent $\bar\alpha_t = {\rm SNR}/(1+{\rm SNR})$ ($=a_t^2$ for VP and OU)."""
        return jnp.exp(-jnp.logaddexp(0.0, -self.log_snr(t)))

    def sigma(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""VE-equivalent noise level $\sigma = b_t/a_t = {\rm SNR}^{-1/2}$."""
        return jnp.exp(-0.5 * self.log_snr(t))

    def g(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """Diffusion coefficient $g(t)$ of the forward (and reverse) SDE."""
        return jnp.sqrt(self.g2(t))

    def t_of_alpha_bar(self, alpha_bar: Real[ArrayLike, "*ab"]) -> Float[Array, "*ab"]:
        r"""Time at which $\bar\alpha_t$ equals ``alpha_bar`` (in $(0,1)$)."""
        ab = jnp.asarray(alpha_bar)
        return self.t_of_snr(ab / (1 - ab))

    def t_of_sigma(self, sigma: Real[ArrayLike, "*sigma"]) -> Float[Array, "*sigma"]:
        r"""Time at which $b_t/a_t$ equals ``sigma``."""
        return self.t_of_snr(1 / jnp.square(jnp.asarray(sigma)))

    def t_of_step(self, i: Real[ArrayLike, "*i"], n_steps: int) -> Float[Array, "*i"]:
        """Continuous time of the discrete step ``i`` of ``n_steps`` (DDPM convention t_i = T i/N)."""
        return self.T * jnp.asarray(i) / n_steps

    def step_of_t(self, t: Real[ArrayLike, "*t"], n_steps: int) -> Int[Array, "*t"]:
        """Nearest discrete step index (0..n_steps) of time ``t``."""
        return jnp.round(jnp.asarray(t) / self.T * n_steps).astype(jnp.int32)

    # --- generative dynamics -------------------------------------------------------------
    def forward_drift(
        self, x: Real[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]
    ) -> Float[Array, "*x"]:
        """Forward SDE drift $f(t)\\,x$."""
        return _bcast(self.f(t), x) * x

    def reverse_drift(
        self,
        x: Real[ArrayLike, "*x"],
        t: Real[ArrayLike, "*t"],
        score: Real[ArrayLike, "*x"] | Callable[[Array, Array], Array],
    ) -> Float[Array, "*x"]:
        r"""Reverse-SDE drift $g^2(t)\,s - f(t)\,x$ (per unit forward time, integrated backwards).

        ``score`` is the score value $s(x,t)$ (an array shaped like ``x``) or a callable
        ``score(x, t)``.
        """
        s = score(x, t) if callable(score) else score
        return _bcast(self.g2(t), x) * s - _bcast(self.f(t), x) * x

    def reverse_diffusion(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """Noise amplitude $g(t)$ of the reverse SDE (same as the forward one)."""
        return self.g(t)

    def pf_ode_drift(
        self,
        x: Real[ArrayLike, "*x"],
        t: Real[ArrayLike, "*t"],
        score: Real[ArrayLike, "*x"] | Callable[[Array, Array], Array],
    ) -> Float[Array, "*x"]:
        r"""Probability-flow ODE drift $\tfrac12 g^2(t)\,s - f(t)\,x$ (integrated backwards)."""
        s = score(x, t) if callable(score) else score
        return 0.5 * _bcast(self.g2(t), x) * s - _bcast(self.f(t), x) * x

    def marginal_prior_std(self) -> Float[Array, ""]:
        r"""Standard deviation $b_T$ of the Gaussian used as the generative start at $t=T$."""
        return self.b(self.T)


def _bcast(coef: Array, x) -> Array:
    coef = jnp.asarray(coef)
    if coef.ndim == 0:
        return coef
    return coef.reshape(coef.shape + (1,) * (jnp.ndim(x) - coef.ndim))


class OU(AbstractProcess):
    r"""Ornstein–Uhlenbeck process $dx = -x\,dt + \sqrt2\,dW$.

    $a_t = e^{-t}$, $b_t^2 = 1-e^{-2t}$, ${\rm SNR} = 1/(e^{2t}-1)$ (Biroli et al.; Yu & Huang).
    It is VP with $\beta\equiv2$; OU time relates to VP by $t = -\tfrac12\ln\bar\alpha$.

    **Arguments:**

    - `T`: final time (default 10, where $a_T^2 = 2\times10^{-9}$).
    """

    T: Array

    def __init__(self, T: RealScalarLike = 10.0):
        self.T = _positive_param(T, "T")

    def log_a(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return -1.0 * jnp.asarray(t)  # a float for integer t; float t keeps its (weak) dtype

    def b2(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return -jnp.expm1(-2 * jnp.asarray(t))

    def log_snr(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return -jnp.log(jnp.expm1(2 * jnp.asarray(t)))

    def f(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return -jnp.ones_like(jnp.asarray(t, dtype=jnp.result_type(t, float)))

    def g2(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return 2 * jnp.ones_like(jnp.asarray(t, dtype=jnp.result_type(t, float)))

    def t_of_snr(self, snr: Real[ArrayLike, "*snr"]) -> Float[Array, "*snr"]:
        return 0.5 * jnp.log1p(1 / jnp.asarray(snr))


class VP(AbstractProcess):
    r"""Variance-preserving process $dx = -\tfrac12\beta(t)x\,dt + \sqrt{\beta(t)}\,dW$, $t\in[0,T]$.

    $a_t = \sqrt{\bar\alpha_t}$, $b_t^2 = 1 - \bar\alpha_t$.

    - ``schedule="linear"`` (Song et al.; Raya & Ambrogioni):
      $\beta(t) = \beta_{\min} + (\beta_{\max}-\beta_{\min})\,t/T$, so with $u=t/T$,
      $\bar\alpha = \exp[-T(\beta_{\min}u + \tfrac12(\beta_{\max}-\beta_{\min})u^2)]$; the
      default $T=1$, $\beta_{\min}=0.1$, $\beta_{\max}=20$ gives $\theta_s=\sqrt{\bar\alpha_s}$ (`docs/theory/processes.md#vp`).
    - ``schedule="cosine"`` (Kamb & Ganguli's "legacy cosine", `docs/theory/processes.md#vp`):
      $\bar\alpha(t) = \cos^2\!\big(\tfrac{\pi}{2}\,\tfrac{t/T}{1+s}\big)$, $s = 0.008$.

    **Arguments:**

    - `schedule`: ``"linear"`` or ``"cosine"``.
    - `beta_min`, `beta_max`: linear schedule endpoints (per unit of $s=t/T$).
    - `s`: cosine offset.
    - `T`: final time (default 1).
    """

    T: Array
    beta_min: Array
    beta_max: Array
    s: Array
    schedule: Literal["linear", "cosine"] = eqx.field(static=True)

    def __init__(
        self,
        schedule: str = "linear",
        *,
        beta_min: RealScalarLike = 0.1,
        beta_max: RealScalarLike = 20.0,
        s: RealScalarLike = 0.008,
        T: RealScalarLike = 1.0,
    ):
        if schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {schedule!r}.")
        self.schedule = schedule
        self.T = _positive_param(T, "T")
        self.beta_min = _positive_param(beta_min, "beta_min")
        self.beta_max = _positive_param(beta_max, "beta_max")
        self.s = _positive_param(s, "s")
        check_values(
            jnp.stack([jnp.asarray(self.beta_min), jnp.asarray(self.beta_max)]),
            lambda v: v[1] < v[0],
            f"beta_max must be >= beta_min, got beta_min={beta_min}, beta_max={beta_max}.",
        )

    # integrated beta  I(t) = -ln alpha_bar(t)
    def _int_beta(self, t):
        u = jnp.asarray(t) / self.T
        if self.schedule == "linear":
            return self.T * (self.beta_min * u + 0.5 * (self.beta_max - self.beta_min) * u**2)
        phi = 0.5 * math.pi * u / (1 + self.s)
        return -2 * jnp.log(jnp.cos(phi))

    def beta(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        r"""$\beta(t) = -\frac{d}{dt}\ln\bar\alpha_t$."""
        u = jnp.asarray(t) / self.T
        if self.schedule == "linear":
            return self.beta_min + (self.beta_max - self.beta_min) * u
        c = 0.5 * math.pi / ((1 + self.s) * self.T)
        return 2 * c * jnp.tan(c * jnp.asarray(t))

    def log_a(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return -0.5 * self._int_beta(t)

    def b2(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        if self.schedule == "cosine":
            phi = 0.5 * math.pi * jnp.asarray(t) / ((1 + self.s) * self.T)
            return jnp.sin(phi) ** 2
        return -jnp.expm1(-self._int_beta(t))

    def log_snr(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        if self.schedule == "cosine":
            phi = 0.5 * math.pi * jnp.asarray(t) / ((1 + self.s) * self.T)
            return -2 * jnp.log(jnp.tan(phi))
        return -jnp.log(jnp.expm1(self._int_beta(t)))

    def f(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return -0.5 * self.beta(t)

    def g2(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return self.beta(t)

    def t_of_snr(self, snr: Real[ArrayLike, "*snr"]) -> Float[Array, "*snr"]:
        snr = jnp.asarray(snr)
        if self.schedule == "cosine":
            phi = jnp.arctan2(1.0, jnp.sqrt(snr))
            return phi * 2 * (1 + self.s) * self.T / math.pi
        big_i = jnp.log1p(1 / snr)  # = -ln alpha_bar
        db = self.beta_max - self.beta_min
        # T (beta_min u + db u^2 / 2) = I  ->  u = 2 I / T / (beta_min + sqrt(beta_min^2 + 2 db I / T))
        i_over_t = big_i / self.T
        u = 2 * i_over_t / (self.beta_min + jnp.sqrt(self.beta_min**2 + 2 * db * i_over_t))
        return u * self.T


class VE(AbstractProcess):
    r"""Variance-exploding process $dx = \sqrt{d\sigma^2/dt}\,dW$: $a_t=1$, $b_t=\sigma(t)$.

    - ``schedule="geometric"`` (Song et al.): $\sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^{t/T}$,
      $T=1$ by default. As in Song et al.'s code, $b_t=\sigma(t)$, so $t=0$ carries the small
      noise $\sigma_{\min}$.
    - ``schedule="edm"`` (Karras et al.; Kynkäänniemi et al.): $\sigma(t)=t$, $T=\sigma_{\max}$.

    **Arguments:**

    - `schedule`: ``"geometric"`` or ``"edm"``.
    - `sigma_min`, `sigma_max`: noise range (defaults 0.01 and 50 for geometric, 0.002 and 80
      for EDM).
    """

    T: Array
    sigma_min: Array
    sigma_max: Array
    schedule: Literal["geometric", "edm"] = eqx.field(static=True)

    def __init__(
        self,
        schedule: str = "geometric",
        *,
        sigma_min: RealScalarLike | None = None,
        sigma_max: RealScalarLike | None = None,
        T: RealScalarLike | None = None,
    ):
        if schedule not in ("geometric", "edm"):
            raise ValueError(f"schedule must be 'geometric' or 'edm', got {schedule!r}.")
        self.schedule = schedule
        if schedule == "geometric":
            sigma_min = 0.01 if sigma_min is None else sigma_min
            sigma_max = 50.0 if sigma_max is None else sigma_max
            T = 1.0 if T is None else T
        else:
            sigma_min = 0.002 if sigma_min is None else sigma_min
            sigma_max = 80.0 if sigma_max is None else sigma_max
            if T is not None:
                raise ValueError("VE('edm') has sigma(t) = t, so T is sigma_max; do not pass T.")
            T = sigma_max
        self.sigma_min = _positive_param(sigma_min, "sigma_min")
        self.sigma_max = _positive_param(sigma_max, "sigma_max")
        self.T = _positive_param(T, "T")
        check_values(
            jnp.stack([jnp.asarray(self.sigma_min), jnp.asarray(self.sigma_max)]),
            lambda v: v[1] <= v[0],
            f"sigma_max must exceed sigma_min, got sigma_min={sigma_min}, sigma_max={sigma_max}.",
        )

    def _log_sigma(self, t):
        t = jnp.asarray(t)
        if self.schedule == "edm":
            return jnp.log(t)
        return jnp.log(self.sigma_min) + (t / self.T) * jnp.log(self.sigma_max / self.sigma_min)

    def log_a(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return jnp.zeros_like(jnp.asarray(t, dtype=jnp.result_type(t, float)))

    def b2(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return jnp.exp(2 * self._log_sigma(t))

    def log_snr(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return -2 * self._log_sigma(t)

    def f(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return jnp.zeros_like(jnp.asarray(t, dtype=jnp.result_type(t, float)))

    def g2(self, t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        t = jnp.asarray(t)
        if self.schedule == "edm":
            return 2.0 * t
        return 2 * self.b2(t) * jnp.log(self.sigma_max / self.sigma_min) / self.T

    def t_of_snr(self, snr: Real[ArrayLike, "*snr"]) -> Float[Array, "*snr"]:
        log_sigma = -0.5 * jnp.log(jnp.asarray(snr))
        if self.schedule == "edm":
            return jnp.exp(log_sigma)
        return (
            self.T
            * (log_sigma - jnp.log(self.sigma_min))
            / jnp.log(self.sigma_max / self.sigma_min)
        )


# --- converters between time conventions (`docs/theory/processes.md#time-conversions`) ---


def ou_time_from_alpha_bar(alpha_bar: Real[ArrayLike, "*ab"]) -> Float[Array, "*ab"]:
    r"""OU time $t = -\tfrac12\ln\bar\alpha$."""
    return -0.5 * jnp.log(jnp.asarray(alpha_bar))


def alpha_bar_from_ou_time(t: Real[ArrayLike, "*t"]) -> Float[Array, "*t"]:
    r"""$\bar\alpha = e^{-2t}$."""
    return jnp.exp(-2 * jnp.asarray(t))


def sigma_from_alpha_bar(alpha_bar: Real[ArrayLike, "*ab"]) -> Float[Array, "*ab"]:
    r"""VE-equivalent noise level $\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}$."""
    ab = jnp.asarray(alpha_bar)
    return jnp.sqrt((1 - ab) / ab)


def alpha_bar_from_sigma(sigma: Real[ArrayLike, "*sigma"]) -> Float[Array, "*sigma"]:
    r"""$\bar\alpha = 1/(1+\sigma^2)$."""
    return 1 / (1 + jnp.square(jnp.asarray(sigma)))
