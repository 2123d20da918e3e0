r"""Pulse theory for two clusters: the guidance susceptibility, the response to a pulse, the
linear-response optimum, and the exact mean of the learned-pulse objective.

Ambrogioni, arXiv:2603.20092. Two clusters $\pm m$ with within-class variance $\sigma^2$:
$\mu_t = a_t\|m\|$, $\Gamma_t = b_t^2 + a_t^2\sigma^2$, and the guidance field at the symmetric
point is $\nu = \mu_t/\Gamma_t$ (:func:`two_cluster_guidance_scale`).

**Pulse response (two clusters, exact).** Along $\hat m$ the guidance drift of class $+$ is
$w g^2\nu\,(1-\tanh(c_tq))$, $c_t = \mu_t/\Gamma_t$, and $P(+\mid q) = \mathrm{sigmoid}(2c_tq)$ is a
martingale of the unguided reverse dynamics. Hence (Dynkin) the final class probability after a
pulse is $\tfrac12 + \int dt\,\mathbb E_{\rm pert}[\partial_qP\cdot w g^2\nu(1-\tanh c_tq)]$ and to
first order in $\varepsilon$ (the perturbation size of :mod:`gltheory.guidance.schedules`)
$$P_{\rm final}(+) = \tfrac12 + \varepsilon\!\int\!\rho(t)\,R_g(t)\,dt,\qquad
R_g(t) = \mathbb E_{p_t}\big[\partial_qP(+\mid q)\,(1-\tanh c_tq)\big] = R(t),$$
$\rho = wg^2\nu/\varepsilon$ the normalised pulse profile. $R_g = R$, the class susceptibility of
:func:`gltheory.class_susceptibility_theory`, because $\partial_qP\propto\mathrm{sech}^2$ is even
and $\tanh$ odd under $q\to-q$. So the best short pulse sits at $\arg\max_tR$. For an impulsive
pulse (width $\to0$) of finite size the state is moved by the flow
$dq/ds = 1-\tanh(c_tq)$ for $s\in[0,\varepsilon]$, i.e. $u' + e^{u'} = u + e^{u} + 4c_t\varepsilon$
with $u = 2c_tq$; a one-step pulse of the Euler–Maruyama sampler moves it by the Euler map
$q + \varepsilon(1-\tanh c_tq)$. :func:`pulse_response_theory` integrates both exactly.

**Contents.** :func:`guidance_susceptibility_theory`, :func:`pulse_response_theory`,
:func:`pulse_alignment_theory`, :func:`optimal_pulse_centre`; the exact mean of the learned-pulse
objective on the sampler's own grid, :func:`pulse_objective_quadrature`,
:func:`discrete_optimal_pulse_centre`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from .._checks import PROCESS, as_float_array, check_instance, check_result, check_values
from .._roots import bracketed_argmax, no_derivative, polished_argmax
from ..observables import normal_quadrature_nodes, two_cluster_params
from ..processes import AbstractProcess
from ..sampling import check_time_grid, integrate
from ..scores import cast_floats
from .classes import ClassConditional
from .schedules import Pulse, guidance_scale_at_origin, normalise_pulse

# Shape contracts (checked at run time in the test suite): the two-cluster parameters and times
# broadcast against each other; a time grid is a 1-D array (or a list of times).
_Grid = Real[ArrayLike, " n_steps_plus_1"] | Sequence[float | int]

__all__ = [
    "two_cluster_guidance_scale",
    "guidance_susceptibility_theory",
    "pulse_response_theory",
    "pulse_alignment_theory",
    "optimal_pulse_centre",
    "pulse_objective_quadrature",
    "discrete_optimal_pulse_centre",
]


def two_cluster_guidance_scale(
    m_norm: Real[ArrayLike, " ..."],
    sigma2: Real[ArrayLike, " ..."],
    t: Real[ArrayLike, " ..."],
    *,
    process: AbstractProcess,
) -> Float[Array, " ..."]:
    r"""$\nu(t) = \|s_+(0,t)-s_u(0,t)\| = \mu_t/\Gamma_t$ for two clusters $\pm m$ (variance $\sigma^2$)."""
    mu, gamma = two_cluster_params(m_norm, sigma2, t, process)
    return mu / gamma


def _rg_kernel(mu, gamma):
    z, w = normal_quadrature_nodes(mu.dtype)
    c = (mu / gamma)[..., None]
    sg = jnp.sqrt(gamma)[..., None]
    mu_ = mu[..., None]
    tot = 0.0
    for sign in (1.0, -1.0):
        q = sign * mu_ + sg * z
        u = 2 * c * q
        dp = 2 * c * jnp.exp(jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u))
        tot = tot + 0.5 * jnp.sum(w * dp * (1 - jnp.tanh(c * q)), axis=-1)
    return tot


def guidance_susceptibility_theory(
    m_norm: Real[ArrayLike, " ..."],
    sigma2: Real[ArrayLike, " ..."],
    t: Real[ArrayLike, " ..."],
    *,
    process: AbstractProcess | None = None,
) -> Float[Array, " ..."]:
    r"""$R_g(t) = \mathbb E_{p_t}\big[\partial_qP(+\mid q)\,(1-\tanh(c_tq))\big]$ by quadrature over the
    full two-cluster marginal: the response of the final class-$+$ probability to a unit guidance
    displacement at $t$ (:mod:`gltheory.guidance.theory` docstring). Equals $R(t)$ of
    :func:`gltheory.class_susceptibility_theory` (a symmetry identity; computed independently).
    """
    mu, gamma = two_cluster_params(m_norm, sigma2, t, process)
    return _rg_kernel(mu, gamma)


@jax.custom_jvp
def _flow_shift(u, k):
    r"""$v\ge0$ with $v + e^{u}(e^{v}-1) = k$ (bisection; stable for any $u$).

    The derivative is not taken through the bisection: :func:`_flow_shift_jvp` applies the
    implicit-function theorem to $G(v,u,k) = v + e^u(e^v-1) - k = 0$.
    """

    def g(v):
        log_term = u + jnp.log(jnp.where(v > 0, jnp.expm1(v), 1.0))
        term = jnp.where(v > 0, jnp.exp(jnp.minimum(log_term, 700.0)), 0.0)
        return v + term - k

    lo = jnp.zeros_like(u + k)
    hi = jnp.broadcast_to(k, lo.shape)

    def body(_, b):
        lo, hi = b
        mid = 0.5 * (lo + hi)
        pos = g(mid) > 0
        return jnp.where(pos, lo, mid), jnp.where(pos, mid, hi)

    lo, hi = jax.lax.fori_loop(0, 100, body, (lo, hi))
    return 0.5 * (lo + hi)


@_flow_shift.defjvp
def _flow_shift_jvp(primals, tangents):
    r"""Implicit-function theorem for $G(v,u,k) = v + e^u(e^v-1) - k = 0$:
    $\partial_vG = 1+e^{u+v}$, $\partial_uG = e^u(e^v-1) = k-v$, $\partial_kG = -1$, so
    $dv = \mathrm{sigmoid}(-(u+v))\,\big(dk - (k-v)\,du\big)$ (overflow-free for any $u$)."""
    u, k = primals
    du, dk = tangents
    v = _flow_shift(u, k)
    dv = jax.nn.sigmoid(-(u + v)) * (dk - (k - v) * du)
    return v, dv


@functools.partial(jax.jit, static_argnums=3)
def _pulse_kernel(mu, gamma, eps, kind: str):
    z, w = normal_quadrature_nodes(mu.dtype)
    c = (mu / gamma)[..., None]
    sg = jnp.sqrt(gamma)[..., None]
    e = eps[..., None]
    tot = 0.0
    for sign in (1.0, -1.0):
        q = sign * mu[..., None] + sg * z
        if kind == "euler":
            q2 = q + e * (1 - jnp.tanh(c * q))
        elif kind == "flow":
            q2 = q + _flow_shift(2 * c * q, 4 * c * e) / (2 * c)
        else:  # linear
            u = 2 * c * q
            dp = 2 * c * jnp.exp(jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u))
            tot = tot + 0.5 * jnp.sum(
                w * (jax.nn.sigmoid(u) + e * dp * (1 - jnp.tanh(c * q))), axis=-1
            )
            continue
        tot = tot + 0.5 * jnp.sum(w * jax.nn.sigmoid(2 * c * q2), axis=-1)
    return tot


def pulse_response_theory(
    m_norm: Real[ArrayLike, " ..."],
    sigma2: Real[ArrayLike, " ..."],
    t: Real[ArrayLike, " ..."],
    eps: Real[ArrayLike, " ..."],
    *,
    kind: str = "flow",
    process: AbstractProcess | None = None,
) -> Float[Array, " ..."]:
    r"""Final class-$+$ probability after an impulsive guidance pulse of size $\varepsilon$ at time $t$
    (two clusters $\pm m$, exact sampler before and after), by quadrature:
    $$P_{\rm final}(+) = \mathbb E_{q\sim p_t}\big[\mathrm{sigmoid}(2c_t\,\Phi_\varepsilon(q))\big].$$

    - ``kind="flow"``: $\Phi$ is the guidance flow $dq/ds = 1-\tanh(c_tq)$, $s\in[0,\varepsilon]$
      (the width $\to0$ limit of any pulse), solved exactly: $v=2c_t(\Phi-q)$ solves
      $v + e^{2c_tq}(e^{v}-1) = 4c_t\varepsilon$;
    - ``kind="euler"``: $\Phi = q + \varepsilon(1-\tanh c_tq)$, a one-step box pulse of the
      Euler–Maruyama sampler;
    - ``kind="linear"``: $\tfrac12 + \varepsilon R_g(t)$.

    All agree to $O(\varepsilon)$ and $dP/d\varepsilon|_0 = R(t)$ (derivation: module docstring).
    The ``"flow"`` map is found by bisection (100 halvings); its derivatives (in
    $\varepsilon$, $t$, $\|m\|$, $\sigma^2$) are not taken through the bisection but from
    the implicit-function theorem applied to the equation for $v$ (a ``jax.custom_jvp``), so
    ``jax.grad``/``jax.jvp`` are exact for every ``kind``.
    """
    mu, gamma = two_cluster_params(m_norm, sigma2, t, process)
    if kind not in ("flow", "euler", "linear"):
        raise ValueError(f"kind must be 'flow', 'euler' or 'linear', got {kind!r}.")
    eps = as_float_array(eps, "eps").astype(mu.dtype)
    eps = check_values(eps, lambda v: (v < 0).any(), "eps must be >= 0.")
    mu, gamma, eps = jnp.broadcast_arrays(mu, gamma, eps)
    return _pulse_kernel(mu, gamma, eps, kind)


def pulse_alignment_theory(
    m_norm: Real[ArrayLike, ""],
    sigma2: Real[ArrayLike, ""],
    pulse: Pulse,
    *,
    process: AbstractProcess,
    ts: _Grid,
) -> Float[Array, "*pulses"]:
    r"""Linear-response class-$+$ alignment of a guided unconditional sampler on the grid ``ts``:
    $\tfrac12 + \sum_i h_i\,(w(t_i)-w_{\rm base})\,g^2(t_i)\,\nu(t_i)\,R(t_i)$, exact to $O(\varepsilon)$
    ($\nu$ of :func:`two_cluster_guidance_scale`, $R$ by quadrature). Differentiable in the pulse.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    ts = as_float_array(ts, "ts")
    t = ts[:-1]
    mu, gamma = two_cluster_params(m_norm, sigma2, t, process)
    r = _rg_kernel(mu, gamma)
    coef = (ts[:-1] - ts[1:]) * process.g2(t) * (mu / gamma) * r
    prof = jax.vmap(lambda s: pulse.strength * pulse.profile(s))(t)
    return 0.5 + jnp.tensordot(coef, prof, axes=(0, 0))


def optimal_pulse_centre(
    m_norm: Real[ArrayLike, ""],
    sigma2: Real[ArrayLike, ""],
    *,
    width: Real[ArrayLike, ""],
    shape: str = "smooth",
    process: AbstractProcess,
    ts: _Grid,
    t_lo: Real[ArrayLike, ""],
    t_hi: Real[ArrayLike, ""],
    n_grid: int | np.integer = 101,
    n_refine: int | np.integer = 40,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""Centre maximising :func:`pulse_alignment_theory` at unit perturbation size (the linear-
    response optimum for a pulse of this shape and width on this grid): grid search on
    $[t_{\rm lo}, t_{\rm hi}]$, then, on the two cells around the grid maximum,

    - ``shape="smooth"``: the root of $\partial_c\,\mathrm{gain}(c)$ by ``optimistix.Bisection``
      (``n_refine`` halvings). Derivatives of the centre (in ``m_norm``, ``sigma2``,
      ``width``) come from the implicit-function theorem at that root (optimistix's implicit
      adjoint, $dc = -\partial_c\partial_\theta\mathrm{gain}/\partial_c^2\mathrm{gain}\,d\theta$),
      not from the iterations; zero when the maximum sits on an end of $[t_{\rm lo},t_{\rm hi}]$.
    - ``shape="box"``: golden section (``n_refine`` steps). On a discrete grid the gain of a box
      is piecewise constant in $c$, so the centre has no derivative: ``jax.grad``/``jax.jvp``
      through this call raise a ``ValueError`` (for the gain's derivative at fixed centre,
      differentiate :func:`pulse_alignment_theory`).

    **Returns:** ``(centre, dP/deps)``.
    """
    check_instance(process, AbstractProcess, "process", PROCESS)
    ts = as_float_array(ts, "ts")
    if not (isinstance(n_grid, (int, np.integer)) and n_grid >= 3):
        raise ValueError(f"n_grid must be an integer >= 3, got {n_grid!r}.")
    if not t_lo < t_hi:
        raise ValueError(f"need t_lo < t_hi, got {t_lo}, {t_hi}.")
    bounds = jnp.asarray([t_lo, t_hi], ts.dtype)
    return _opt_centre_impl(
        jnp.asarray(m_norm, ts.dtype),
        jnp.asarray(sigma2, ts.dtype),
        jnp.asarray(width, ts.dtype),
        shape,
        process,
        ts,
        bounds,
        int(n_grid),
        int(n_refine),
    )


@eqx.filter_jit
def _opt_centre_impl(m_norm, sigma2, width, shape, process, ts, bounds, n_grid, n_refine):
    def nu(s):
        return two_cluster_guidance_scale(m_norm, sigma2, s, process=process)

    def gain(c):
        p = normalise_pulse(Pulse(c, width, shape=shape), 1.0, process, ts, nu)
        return pulse_alignment_theory(m_norm, sigma2, p, process=process, ts=ts) - 0.5

    cs = jax.lax.stop_gradient(jnp.linspace(bounds[0], bounds[1], n_grid))
    vals = jax.lax.map(gain, cs)
    i = jnp.clip(jnp.argmax(vals), 1, n_grid - 2)
    lo, hi = cs[i - 1], cs[i + 1]
    if shape == "smooth":
        c = bracketed_argmax(
            lambda c, args: jax.grad(gain)(c), lo, hi, (m_norm, sigma2, width), n_refine
        )
        return c, gain(c)
    gr = (math.sqrt(5.0) - 1) / 2

    def body(_, b):
        lo, hi = b
        c = hi - gr * (hi - lo)
        d = lo + gr * (hi - lo)
        left = gain(c) >= gain(d)
        return jnp.where(left, lo, c), jnp.where(left, d, hi)

    lo, hi = jax.lax.fori_loop(0, n_refine, body, (lo, hi))
    c = jax.lax.stop_gradient(0.5 * (lo + hi))
    deps = (m_norm, sigma2, width, ts, eqx.filter(process, eqx.is_inexact_array))
    return no_derivative(c, deps, _BOX_CENTRE), gain(c)


_BOX_CENTRE = (
    "optimal_pulse_centre(shape='box') has no derivative: the gain of a box pulse on a discrete "
    "grid is piecewise constant in the centre. Use shape='smooth', or differentiate "
    "pulse_alignment_theory at a fixed centre."
)


class _QuadTables(NamedTuple):
    """Centre-independent pieces of the Euler–Maruyama chain on the x grid (1-D data)."""

    xg: Array  # (n_x,) grid
    base: Array  # (n_steps, n_x): x + h_i v_u(x, t_i), the unguided Euler mean
    push: Array  # (n_steps, n_x): h_i g^2(t_i) (s_c - s_u)(x, t_i), per unit guidance weight
    var: Array  # (n_steps,): g^2(t_i) h_i
    dens0: Array  # (n_x,): exact marginal at ts[0]
    post: Array  # (n_x,): P(target | x, ts[-1])


def _quad_tables(data, process, ts, x_max, target, n_x):
    xg = jnp.linspace(-x_max, x_max, n_x, dtype=ts.dtype)
    col = xg[:, None]

    def at(t, t_next):
        h = t - t_next
        s_u = data.score(process, col, t, None)
        s_c = data.score(process, col, t, target)
        base = col + h * process.reverse_drift(col, t, s_u)
        return base[:, 0], (h * process.g2(t) * (s_c - s_u))[:, 0], process.g2(t) * h

    base, push, var = jax.vmap(at)(ts[:-1], ts[1:])
    dens0 = jnp.exp(data.log_prob(process, col, ts[0]))
    post = data.class_posterior(process, col, ts[-1])[:, target]
    return _QuadTables(xg, base, push, var, dens0, post)


def _em_objective_quad(tab, process, centre, width, eps, ts, nu_i, shape):
    """(mean objective, fraction of the mass kept on the grid) for one pulse."""
    dx = tab.xg[1] - tab.xg[0]
    pulse = normalise_pulse(Pulse(centre, width, shape=shape), eps, process, ts, nu_i)
    w = jax.vmap(lambda t: pulse.weight(t))(ts[:-1])

    def step(d, i, z):  # the Euler-Maruyama transition law of step i applied to the density
        mean = tab.base[i] + w[i] * tab.push[i]
        ker = jnp.exp(-((tab.xg[:, None] - mean[None, :]) ** 2) / (2 * tab.var[i]))
        return ker @ d * (dx / jnp.sqrt(2 * jnp.pi * tab.var[i])), None

    dens, _ = integrate(step, tab.dens0, ts)
    return jnp.sum(dens * tab.post) * dx, jnp.sum(dens) / jnp.sum(tab.dens0)


@functools.partial(jax.jit, static_argnames=("shape", "target", "n_x"))
def _em_objective_quad_jit(data, process, centre, width, eps, ts, nu_i, x_max, shape, target, n_x):
    tab = _quad_tables(data, process, ts, x_max, target, n_x)
    return _em_objective_quad(tab, process, centre, width, eps, ts, nu_i, shape)


def pulse_objective_quadrature(
    data: ClassConditional,
    process: AbstractProcess,
    *,
    centre: Real[ArrayLike, ""],
    width: Real[ArrayLike, ""],
    eps: Real[ArrayLike, ""],
    ts: _Grid,
    target: int | np.integer = 0,
    shape: str = "smooth",
    x_max: Real[ArrayLike, ""] = 6.0,
    n_x: int | np.integer = 241,
) -> Float[Array, ""]:
    r"""Exact expectation of the :func:`learn_pulse` objective (1-D data), by quadrature.

    :func:`learn_pulse` maximises $J(\theta) = \frac1n\sum_jP(c\mid x^{(j)}_{t_{\rm end}})$ over
    Euler–Maruyama trajectories on the grid ``ts`` started from the exact marginal at ``ts[0]``,
    with the pulse normalised to ``eps`` (finite $\varepsilon$, not linearised). Its mean over
    keys and start states is
    $$\bar J(\theta) = \int p^{\rm EM}_{N}(x)\,P(c\mid x, t_{\rm end})\,dx,\qquad
    p^{\rm EM}_{i+1}(y) = \int p^{\rm EM}_i(x)\,\mathcal N\big(y;\,x + h_i v_\theta(x,t_i),\,
    g^2(t_i)h_i\big)\,dx,$$
    the Euler–Maruyama chain's own transition law ($v_\theta$ the guided reverse drift). The
    densities are carried on ``n_x`` equispaced points of $[-x_{\max},x_{\max}]$ (trapezoid rule;
    spectrally accurate once the spacing is well below the kernel width $g\sqrt{h}$); the mass
    kept on the grid is checked. Differentiable in ``centre`` and ``width``. This is the optimum
    that the learned centre estimates, including the $O(h)$ discretisation and $O(\varepsilon)$
    nonlinearity that the linear-response optimum (:func:`optimal_pulse_centre`) leaves out.
    """
    return _pulse_quad_checked(data, process, centre, width, eps, ts, target, shape, x_max, n_x)


def _quad_setup(data, process, ts, target, shape, n_x, x_max):
    if not isinstance(data, ClassConditional) or data.dim != 1:
        raise ValueError("the pulse-objective quadrature needs a 1-D ClassConditional dataset.")
    check_instance(process, AbstractProcess, "process", PROCESS)
    if shape not in ("box", "smooth"):
        raise ValueError(f"shape must be 'box' or 'smooth', got {shape!r}.")
    if isinstance(n_x, bool) or not isinstance(n_x, (int, np.integer)) or n_x < 11:
        raise ValueError(f"n_x must be an integer >= 11, got {n_x!r}.")
    if not (isinstance(target, (int, np.integer)) and 0 <= target < data.n_classes):
        raise ValueError(f"target must be a class index, got {target!r}.")
    ts = check_time_grid(as_float_array(ts, "ts"), process.T)
    try:  # the trapezoid rule needs the spacing well below the narrowest kernel g sqrt(h)
        kernel = float(jnp.min(jnp.sqrt(process.g2(ts[:-1]) * (ts[:-1] - ts[1:]))))
    except jax.errors.ConcretizationTypeError:  # traced grid: not checked
        kernel = math.inf
    if 2 * x_max / (n_x - 1) > 0.5 * kernel:
        raise ValueError(
            f"n_x={n_x} is too coarse for this grid: spacing {2 * x_max / (n_x - 1):.3g} must be "
            f"<= half the narrowest transition kernel ({kernel:.3g})."
        )
    data = cast_floats(data, ts.dtype)
    process = cast_floats(process, ts.dtype)
    return data, process, ts, guidance_scale_at_origin(data, process, ts, int(target))


def _pulse_quad_checked(data, process, centre, width, eps, ts, target, shape, x_max, n_x):
    data, process, ts, nu_i = _quad_setup(data, process, ts, target, shape, n_x, x_max)
    j, mass = _em_objective_quad_jit(
        data,
        process,
        jnp.asarray(centre, ts.dtype),
        jnp.asarray(width, ts.dtype),
        jnp.asarray(eps, ts.dtype),
        ts,
        nu_i,
        jnp.asarray(x_max, ts.dtype),
        shape,
        int(target),
        int(n_x),
    )
    return check_result(
        j, jnp.abs(mass - 1) > 1e-6, "density left the quadrature grid: raise x_max."
    )


def discrete_optimal_pulse_centre(
    data: ClassConditional,
    process: AbstractProcess,
    *,
    width: Real[ArrayLike, ""],
    eps: Real[ArrayLike, ""],
    ts: _Grid,
    t_lo: Real[ArrayLike, ""],
    t_hi: Real[ArrayLike, ""],
    target: int | np.integer = 0,
    shape: str = "smooth",
    n_grid: int | np.integer = 9,
    n_zoom: int | np.integer = 3,
    x_max: Real[ArrayLike, ""] = 6.0,
    n_x: int | np.integer = 241,
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    r"""Centre maximising :func:`pulse_objective_quadrature` at fixed ``width`` and ``eps``: the
    optimum of the very objective :func:`learn_pulse` estimates (same sampler, grid, pulse shape,
    normalisation and finite $\varepsilon$). Grid search with ``n_grid`` points on
    $[t_{\rm lo},t_{\rm hi}]$, ``n_zoom`` times re-gridded on the two cells around the maximum
    (each zoom shrinks the bracket by $(n_{\rm grid}-1)/2$), then the vertex of the parabola
    through the three points around the maximum of the finest grid; for ``shape="smooth"``
    five Newton steps on $\partial_c\bar J=0$ from the vertex give the maximiser itself,
    differentiable in ``width``, ``eps``, ``ts`` and the data by the implicit-function theorem
    (``shape="box"`` refuses ``jax.grad``: its objective is piecewise constant in the centre). The curvature
    $\partial_c^2\bar J$ at the optimum is a central second difference with step 0.01.

    **Returns:** ``(centre, objective, d2J/dc2)`` at the optimum.
    """
    if not t_lo < t_hi:
        raise ValueError(f"need t_lo < t_hi, got {t_lo}, {t_hi}.")
    if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 5:
        raise ValueError(f"n_grid must be an integer >= 5, got {n_grid!r}.")
    if isinstance(n_zoom, bool) or not isinstance(n_zoom, (int, np.integer)) or n_zoom < 0:
        raise ValueError(f"n_zoom must be a non-negative integer, got {n_zoom!r}.")

    data, process, ts, nu_i = _quad_setup(data, process, ts, target, shape, n_x, x_max)
    c, val, h2, bad = _disc_opt_impl(
        data,
        process,
        jnp.asarray(width, ts.dtype),
        jnp.asarray(eps, ts.dtype),
        ts,
        nu_i,
        jnp.asarray(x_max, ts.dtype),
        jnp.linspace(t_lo, t_hi, int(n_grid), dtype=ts.dtype),
        shape,
        int(target),
        int(n_x),
        int(n_zoom),
    )
    c = check_result(c, bad > 1e-6, "density left the quadrature grid: raise x_max.")
    return c, val, h2


@functools.partial(jax.jit, static_argnames=("shape", "target", "n_x", "n_zoom"))
def _disc_opt_impl(data, process, width, eps, ts, nu_i, x_max, cs, shape, target, n_x, n_zoom):
    tab = _quad_tables(data, process, ts, x_max, target, n_x)

    def objective(c):
        return _em_objective_quad(tab, process, c, width, eps, ts, nu_i, shape)

    # grid and zooms: one traced (vmapped) objective, evaluated n_zoom + 1 times in a loop; not
    # differentiated (the maximiser's derivative comes from the implicit-function theorem)
    n = cs.shape[0]

    def body(k, carry):
        cs, bad, _ = carry
        vals, mass = jax.vmap(objective)(cs)
        bad = jnp.maximum(bad, jnp.max(jnp.abs(mass - 1)))
        i = jnp.clip(jnp.argmax(vals), 1, n - 2)
        step = cs[1] - cs[0]
        fm, f0, fp = vals[i - 1], vals[i], vals[i + 1]
        vertex = cs[i] - 0.5 * step * (fp - fm) / (fp - 2 * f0 + fm)
        zoomed = jnp.linspace(cs[i - 1], cs[i + 1], n)
        return jnp.where(k == n_zoom, cs, zoomed), bad, (vertex, cs[i - 1], cs[i + 1])

    cs0 = jax.lax.stop_gradient(cs)
    init = (cs0, jnp.zeros((), cs.dtype), (cs0[0], cs0[0], cs0[-1]))
    _, bad, (vertex, lo, hi) = jax.lax.fori_loop(
        0, n_zoom + 1, lambda k, c: jax.lax.stop_gradient(body(k, c)), init
    )
    if shape == "smooth":  # Newton steps on dJ/dc from the vertex, implicit derivative
        c = polished_argmax(
            lambda c, _: jax.grad(lambda c: objective(c)[0])(c), vertex, lo, hi, None, 5
        )
    else:
        deps = (width, eps, ts, nu_i, eqx.filter((data, process), eqx.is_inexact_array))
        c = no_derivative(vertex, deps, _BOX_DISCRETE)
    # the value and the curvature (central second difference, step 0.01) at the optimum
    d = jnp.asarray(0.01, cs.dtype)
    jm, jc, jp = jax.vmap(objective)(jnp.stack([c - d, c, c + d]))[0]
    return c, jc, (jp - 2 * jc + jm) / d**2, bad


_BOX_DISCRETE = (
    "discrete_optimal_pulse_centre(shape='box') has no derivative: the objective of a box pulse "
    "on a discrete grid is piecewise constant in the centre. Use shape='smooth', or "
    "differentiate pulse_objective_quadrature at a fixed centre."
)
