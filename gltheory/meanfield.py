r"""Mean-field theory of generative diffusion: critical times, self-consistency, bifurcations,
Landau expansion and critical exponents. See `docs/theory/critical-times.md#three-criteria`,
`docs/theory/meanfield.md#self-consistency` and `docs/theory/meanfield.md#exponents`.

**The three critical times** (`docs/theory/critical-times.md#three-criteria`). At the symmetric point $x_{\rm ref}=a_t\mathbb E[y]$
(a fixed point of every field for symmetric data) the Jacobians of the three vector fields
share their eigenvectors with the posterior covariance $\mathrm{Cov}[y\mid x_{\rm ref},t]$, whose
top eigenvalue we call $\lambda(t)$ (= $\Lambda$ for constant-norm centred data). With
$r(t) = a_t^2\lambda(t)/b_t^2$ the instability conditions are the sign changes of

- score (S): $\phi_S = r - 1$,
- reverse-SDE drift (D), $g^2 s - f x$: $\phi_D = r - 1 - f\,b_t^2/g^2$,
- probability-flow ODE drift (O), $\tfrac12 g^2 s - f x$: $\phi_O = r - 1 - 2f\,b_t^2/g^2$,

each a positive multiple of the top eigenvalue of the corresponding Jacobian (positive =
unstable in the generative direction). For OU they reduce to $t_c^S = \tfrac12\ln(1+\Lambda)$,
$t_c^D = \tfrac12\mathrm{arcsinh}\,\Lambda$, $t_c^O = -\tfrac12\ln(1-\Lambda)$ ($\Lambda<1$); for VE
(no drift, $f=0$) all three coincide at $\sigma_c^2=\Lambda$.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, Real

from ._checks import (
    DATASET,
    PROCESS,
    as_float_array,
    check_instance,
    check_positive_int,
    check_time,
    check_values,
    concrete_value,
    is_concrete,
    trusted,
)
from .data import AbstractData
from .processes import OU, VP, AbstractProcess
from .scores import denoiser, log_prob, posterior_cov, score

__all__ = [
    "CriticalTimes",
    "critical_times",
    "criterion_values",
    "posterior_top_eigenvalue",
    "time_conversions",
    "curie_weiss_magnetization",
    "curie_weiss_susceptibility",
    "curie_weiss_landau",
    "FixedPoints",
    "fixed_points",
    "bifurcation_diagram",
    "generative_potential",
    "potential_curvature",
    "landau_coefficients",
    "ExponentFit",
    "fit_exponent",
    "meanfield_exponents",
]

CRITERIA = ("score", "sde", "ode")
_DENSE_MAX_DIM = 256
_LINEAR_TOL = 1e-6


class CriticalTimes(NamedTuple):
    """The three critical times of `docs/theory/critical-times.md#three-criteria` in the process's own time.

    - `t_score`, `t_sde`, `t_ode`: the score, reverse-SDE and probability-flow-ODE critical
      times (the same field names as :class:`gltheory.field.PatchCriticalPoint`).

    Each is a float, or ``None`` when that criterion has no transition on the searched range
    (under ``jit``/``vmap``/``grad`` they are arrays, NaN meaning no transition).
    """

    t_score: float | None | Array
    t_sde: float | None | Array
    t_ode: float | None | Array


# ----------------------------------------------------------------------------------------------
# the criteria at the symmetric point
# ----------------------------------------------------------------------------------------------


def _check_data_process(data, process) -> None:
    check_instance(data, AbstractData, "data", DATASET)
    check_instance(process, AbstractProcess, "process", PROCESS)


def _checked_x_ref(data: AbstractData, x_ref, name: str = "x_ref"):
    """``x_ref`` (or ``None``) as a float array of the dataset's event shape with finite entries
    (concrete values checked in Python; traced ones by :func:`check_values`'s guard)."""
    if x_ref is None:
        return None
    x_ref = as_float_array(x_ref, name)
    if tuple(x_ref.shape) != tuple(data.event_shape):
        raise ValueError(
            f"{name} must be one point of the dataset's event shape {tuple(data.event_shape)}, "
            f"got shape {tuple(x_ref.shape)}."
        )
    return check_values(
        x_ref, lambda v: ~(abs(v) < float("inf")).all(), f"{name} must be finite (no NaN/Inf)."
    )


def _scalar(value, name: str):
    """A scalar float array; ``ValueError`` naming `name` for anything else."""
    arr = as_float_array(value, name)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {tuple(arr.shape)}.")
    return arr


def _x_ref(data: AbstractData, process: AbstractProcess, t, x_ref):
    if x_ref is None:
        return (process.a(t) * data.mean()).reshape(data.event_shape)
    return x_ref


def _posterior_top_eigpair(data, process, t, x_ref, n_iter):
    x = _x_ref(data, process, t, x_ref)
    if data.dim <= _DENSE_MAX_DIM:
        w, v = jnp.linalg.eigh(posterior_cov(data, process, x, t))
        return w[-1], v[:, -1]
    a, b2 = process.a(t), process.b2(t)

    def mv(v):
        _, jv = jax.jvp(
            lambda z: denoiser(data, process, z, t), (x,), (v.reshape(data.event_shape),)
        )
        return (b2 / a) * jv.reshape(-1)

    v0 = jnp.cos(jnp.arange(data.dim, dtype=x.dtype) * 0.7 + 0.3)
    v0 = v0 / jnp.linalg.norm(v0)

    def body(v, _):
        w = mv(v)
        return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(w.dtype).tiny), None

    v, _ = jax.lax.scan(body, v0, None, length=n_iter)
    return jnp.vdot(v, mv(v)), v


def posterior_top_eigenvalue(
    data: AbstractData,
    process: AbstractProcess,
    t: Real[ArrayLike, ""],
    *,
    x_ref: ArrayLike | None = None,
    n_iter: int = 200,
) -> Float[Array, ""]:
    r"""Top eigenvalue $\lambda(t)$ of $\mathrm{Cov}[y\mid x_{\rm ref}, t]$.

    Dense ``eigh`` for $d\le256$; above, power iteration on the Jacobian-vector product of
    the denoiser ($\partial_x m = \frac{a}{b^2}\mathrm{Cov}$, Tweedie) from a fixed start vector,
    so memory stays $O(d)$.
    """
    return _posterior_top_eigpair(data, process, jnp.asarray(t), x_ref, n_iter)[0]


def _nonlinearity(data, process, t, x_ref):
    r"""$|\partial_\ell^3 u\cdot s(x_{\rm ref}+\ell u)|\,a^2\lambda_{\rm data}\,b^2$ along the soft mode.

    Zero for a linear score (Gaussian data): a sign change of a linear field's slope is not a
    bifurcation (no new fixed points), so it is not reported as a critical time.
    """
    _, u = _posterior_top_eigpair(data, process, t, x_ref, 200)
    u = u.reshape(data.event_shape)
    x0 = _x_ref(data, process, t, x_ref)
    f = lambda e: jnp.vdot(u, score(data, process, x0 + e * u, t))
    d3 = jax.grad(jax.grad(jax.grad(f)))(jnp.zeros((), u.dtype))
    lam_data = jnp.vdot(u.reshape(-1), data.covariance() @ u.reshape(-1))
    return jnp.abs(d3) * process.a(t) ** 2 * lam_data * process.b2(t)


def criterion_values(
    data: AbstractData,
    process: AbstractProcess,
    t: Real[ArrayLike, ""],
    *,
    x_ref: ArrayLike | None = None,
) -> Float[Array, " 3"]:
    r"""$(\phi_S, \phi_D, \phi_O)$ at time ``t`` (module docstring); positive = unstable."""
    t = jnp.asarray(t)
    lam = posterior_top_eigenvalue(data, process, t, x_ref=x_ref)
    b2 = process.b2(t)
    r = process.snr(t) * lam
    fb = process.f(t) * b2 / process.g2(t)
    return jnp.stack([r - 1, r - 1 - fb, r - 1 - 2 * fb])


def _fixed_point_residual(data, process, t, x_ref):
    x = _x_ref(data, process, t, x_ref)
    res = process.a(t) * denoiser(data, process, x, t) - x
    scale = process.a(t) * (jnp.linalg.norm(data.mean()) + jnp.sqrt(jnp.trace(data.covariance())))
    return jnp.linalg.norm(res) / jnp.maximum(scale, jnp.finfo(res.dtype).tiny)


@eqx.filter_jit
@trusted
def _critical_times_impl(data, process, x_ref, ts, rtol):
    phis = jax.vmap(lambda t: criterion_values(data, process, t, x_ref=x_ref))(ts)  # (n, 3)
    residual = jax.vmap(lambda t: _fixed_point_residual(data, process, t, x_ref))(ts).max()

    def one(c):
        ph = phis[:, c]
        # ts decreases: a transition is stable (phi < 0) at ts[i], unstable at ts[i+1]
        cross = (ph[:-1] < 0) & (ph[1:] >= 0)
        found = cross.any()
        i = jnp.argmax(cross)
        lo = jax.lax.stop_gradient(ts[i + 1])
        hi = jax.lax.stop_gradient(ts[i])

        mid = 0.5 * (lo + hi)

        def fn(t, args):
            d, p = args
            # phi >= 0 at lo, < 0 at hi: decreasing (flip=True); with no crossing, a dummy
            # decreasing linear function keeps the bracket valid
            return jnp.where(found, criterion_values(d, p, t, x_ref=x_ref)[c], mid - t)

        sol = optx.root_find(
            fn,
            # flip given (not "detect"): detection adds an eqx.error_if, i.e. a host callback
            # that keeps this program out of JAX's persistent compilation cache
            optx.Bisection(rtol=rtol, atol=rtol * ts[0], flip=True),
            mid,
            args=(data, process),
            options={"lower": lo, "upper": hi},
            max_steps=256,
            throw=False,
        )
        tc = jnp.where(found, sol.value, mid)
        nonlinear = _nonlinearity(data, process, tc, x_ref) > _LINEAR_TOL
        return jnp.where(found & nonlinear, sol.value, jnp.nan), ph[0] >= 0

    vals, unstable_at_start = jax.vmap(one)(jnp.arange(3))
    return vals, unstable_at_start, residual


def critical_times(
    data: AbstractData,
    process: AbstractProcess,
    *,
    x_ref: ArrayLike | None = None,
    t_min: Real[ArrayLike, ""] | None = None,
    t_max: Real[ArrayLike, ""] | None = None,
    n_grid: int = 256,
    rtol: Real[ArrayLike, ""] = 1e-12,
) -> CriticalTimes:
    r"""The score, reverse-SDE and probability-flow-ODE critical times of any dataset.

    Scans $\phi_S,\phi_D,\phi_O$ (module docstring) on a grid uniform in $\ln{\rm SNR}$ from
    ``t_max`` (default $T$) down to ``t_min`` (default $10^{-4}T$), takes the first sign change
    from stable to unstable in generative order, and refines it by bisection
    (``optimistix.Bisection``, relative tolerance ``rtol``). Derivatives with respect to data
    or process parameters flow through the root by implicit differentiation.

    The symmetric point ``x_ref`` defaults to $a_t\mathbb E[y]$; it must be a fixed point of the
    score ($x = a_t\,\mathbb E[y\mid x]$), otherwise a ``ValueError`` is raised (pass the actual
    fixed point). A criterion already unstable at ``t_max`` has no transition on the range:
    ``None`` for the ODE criterion (e.g. $\Lambda\ge1$), a ``ValueError`` for the score and
    SDE criteria (the range is too short). A sign change of a *linear* field (Gaussian data,
    where the reverse-SDE drift can become expanding without any new fixed point) is not a
    bifurcation and gives ``None`` (the cubic coefficient of the score along the soft mode is
    checked at the root).

    **Validation.** ``ValueError`` naming the argument for: `data`/`process` not a gltheory
    dataset/process, `n_grid` < 4, `t_min`/`t_max` not scalars with
    $0 < t_{\min} < t_{\max}\le T$, an `x_ref` that is not one finite point of the event
    shape (so ``None`` always means "no transition", never a NaN input).

    **Returns:** :class:`CriticalTimes` (floats or ``None``; arrays with NaN under tracing).
    """
    _check_data_process(data, process)
    check_positive_int(n_grid, "n_grid", 4)
    x_ref = _checked_x_ref(data, x_ref)
    t_min = _scalar(1e-4 * process.T if t_min is None else t_min, "t_min")
    t_max = _scalar(process.T if t_max is None else t_max, "t_max")
    if is_concrete((t_min, t_max)) and not 0 < float(t_min) < float(t_max) <= float(process.T) * (
        1 + 1e-6
    ):
        raise ValueError(
            f"t_min and t_max must satisfy 0 < t_min < t_max <= T = {float(process.T):g}, got "
            f"t_min={float(t_min):g}, t_max={float(t_max):g}."
        )
    # grid uniform in log SNR, decreasing from t_max to t_min
    u = jnp.linspace(0.0, 1.0, n_grid, dtype=t_min.dtype)
    lo, hi = process.log_snr(t_max), process.log_snr(t_min)
    ts = process.t_of_snr(jnp.exp(lo + u * (hi - lo))).at[0].set(t_max).at[-1].set(t_min)
    vals, unstable_at_start, residual = _critical_times_impl(data, process, x_ref, ts, rtol)
    if not is_concrete((vals, residual)):
        return CriticalTimes(*[vals[i] for i in range(3)])
    if float(residual) > 1e-6:
        raise ValueError(
            "the symmetric point x_ref = a_t E[y] is not a fixed point of the score for this "
            f"dataset (relative residual {float(residual):.2e}); pass x_ref, the fixed point to "
            "expand around (the critical times are defined at a fixed point)."
        )
    out = []
    for i, name in enumerate(CRITERIA):
        if bool(unstable_at_start[i]) and name != "ode":
            raise ValueError(
                f"the {name} criterion is already unstable at t_max = {float(ts[0]):g}: extend "
                "the range (larger T or t_max)."
            )
        v = float(vals[i])
        out.append(None if not np.isfinite(v) else v)
    return CriticalTimes(*out)


def time_conversions(
    process: AbstractProcess,
    t: ArrayLike,
    *,
    vp: AbstractProcess | None = None,
    n_steps: int = 1000,
) -> dict[str, Array]:
    r"""One time expressed in every convention: SNR, $\bar\alpha$, $\sigma$, OU time, and the
    VP step index (of ``n_steps``) and time of the process ``vp`` (default linear VP).

    Uses the closed-form ``t_of_snr`` of each process (no root finding needed).
    """
    vp = VP() if vp is None else vp
    snr = process.snr(t)
    t_vp = vp.t_of_snr(snr)
    return {
        "t": jnp.asarray(t),
        "snr": snr,
        "alpha_bar": process.alpha_bar(t),
        "sigma": process.sigma(t),
        "ou_time": 0.5 * jnp.log1p(1 / snr),
        "vp_time": t_vp,
        "vp_step": vp.step_of_t(t_vp, n_steps),
    }


# ----------------------------------------------------------------------------------------------
# Curie–Weiss self-consistency
# ----------------------------------------------------------------------------------------------


def curie_weiss_magnetization(b: ArrayLike, h: ArrayLike = 0.0, *, branch: int = 1) -> Array:
    r"""Root of $M = \tanh(b\,(M + h))$ (`docs/theory/meanfield.md#curie-weiss`) by Newton from $M_0=\pm1$.

    ``branch=+1`` returns the outermost non-negative-side root reached from $M_0=1$ (the
    ordered state for $b>1$, $h\ge0$; 0 for $b\le1$, $h=0$), ``branch=-1`` its mirror image.
    Differentiable in ``b`` and ``h`` (implicit function theorem): $\chi=\partial M/\partial h$ is
    ``jax.grad`` of this function.
    """
    if branch not in (1, -1):
        raise ValueError(f"branch must be +1 or -1, got {branch!r}.")
    b = jnp.asarray(b, dtype=jnp.result_type(b, float))
    h = jnp.asarray(h, dtype=b.dtype)

    def fn(m, args):
        bb, hh = args
        return m - jnp.tanh(bb * (m + hh))

    sol = optx.root_find(
        fn,
        optx.Newton(rtol=1e-14, atol=1e-15),
        jnp.full(jnp.broadcast_shapes(b.shape, h.shape), float(branch), b.dtype),
        args=(b, h),
        max_steps=2048,
        throw=False,
    )
    return sol.value


def curie_weiss_susceptibility(b: ArrayLike, h: ArrayLike = 0.0, *, branch: int = 1) -> Array:
    r"""$\chi = \partial M/\partial h$ of the Curie–Weiss solution (autodiff through the root).

    Closed forms (`docs/theory/meanfield.md#susceptibility`): $\chi=b/(1-b)$ for $b<1$, $\chi\simeq1/(2(b-1))$ for $b\to1^+$.
    """
    return jax.grad(lambda hh: curie_weiss_magnetization(b, hh, branch=branch))(
        jnp.asarray(h, dtype=jnp.result_type(b, h, float))
    )


def curie_weiss_landau(b: ArrayLike) -> tuple[Array, Array]:
    r"""Landau coefficients $(r, u)$ of $f(M) = \tfrac r2M^2 + \tfrac u4M^4$: $r = 1-b$, $u = b^3/3$."""
    b = jnp.asarray(b)
    return 1 - b, b**3 / 3


# ----------------------------------------------------------------------------------------------
# fixed points, bifurcation diagram, potential
# ----------------------------------------------------------------------------------------------


def _field(data, process, x, t, field: str):
    s = score(data, process, x, t)
    if field == "score":
        return s
    if field == "sde":
        return process.reverse_drift(x, t, s)
    if field == "ode":
        return process.pf_ode_drift(x, t, s)
    raise ValueError(f"field must be 'score', 'sde' or 'ode', got {field!r}.")


class FixedPoints(NamedTuple):
    """Zeros of a field along a line $x_{\\rm ref} + \\ell u$, padded with NaN to ``max_roots``.

    - `ell`: line coordinates of the zeros, shape ``(..., max_roots)``.
    - `points`: the zeros, shape ``(..., max_roots, *event_shape)``.
    - `stable`: whether the field's Jacobian there has only negative eigenvalues.
    - `residual`: norm of the field at each zero (non-zero if the field leaves the line).
    """

    ell: Array
    points: Array
    stable: Array
    residual: Array


def _unit_direction(data, direction):
    if direction is None:
        cov = data.covariance()
        u = jnp.linalg.eigh(cov)[1][:, -1]
    else:
        u = as_float_array(direction, "direction").reshape(-1)
        if u.shape != (data.dim,):
            raise ValueError(f"direction must have {data.dim} entries, got {u.size}.")
        u = check_values(
            u,
            lambda v: ~((abs(v) < float("inf")).all() & ((v**2).sum() > 0)),
            "direction must be a finite, nonzero vector (the line x_ref + ell * direction).",
        )
    return (u / jnp.linalg.norm(u)).reshape(data.event_shape)


def fixed_points(
    data: AbstractData,
    process: AbstractProcess,
    t: ArrayLike,
    *,
    field: str = "score",
    direction: ArrayLike | None = None,
    x_ref: ArrayLike | None = None,
    n_grid: int = 512,
    max_roots: int = 5,
) -> FixedPoints:
    r"""All zeros of the score (``x = a_t m(x)``), reverse-SDE or PF-ODE field along a line.

    The line is $x_{\rm ref} + \ell u$ with $u$ the top data-covariance eigenvector (or
    ``direction``), $|\ell| \le 1.5\,a_t\max_y|u\cdot y| + 4b_t$ (all zeros of the score lie in
    $a_t$ times the data's hull). Sign changes of $u\cdot F$ on ``n_grid`` points are refined by
    bisection; stability is the sign of the top eigenvalue of $\partial F/\partial x$ (autodiff).
    For the two-point data the SDE zeros are Raya & Ambrogioni's pitchfork branches
    $(\theta^2+1)x^* = -2\theta\tanh(\theta x^*/(\theta^2-1))$ (`docs/theory/critical-times.md#raya-ambrogioni`).

    **Validation.** ``ValueError`` naming the argument for: `data`/`process` not a gltheory
    dataset/process, `t` not a scalar in $(0, T]$, `n_grid` < 2, `max_roots` < 1, a zero or
    non-finite `direction`, an `x_ref` that is not one finite point of the event shape (traced
    values are checked only with ``gl.config.check_traced_values`` on). Unused slots (fewer
    zeros than ``max_roots``) are NaN.
    """
    _check_data_process(data, process)
    if field not in CRITERIA:
        raise ValueError(f"field must be 'score', 'sde' or 'ode', got {field!r}.")
    check_positive_int(n_grid, "n_grid", 2)
    check_positive_int(max_roots, "max_roots", 1)
    t = as_float_array(t, "t")
    if t.ndim != 0:
        raise ValueError(
            f"t must be a scalar time, got shape {tuple(t.shape)} (use bifurcation_diagram for "
            "several times)."
        )
    t = check_time(t, process.T, "t")
    u = _unit_direction(data, direction)
    x0 = _x_ref(data, process, t, _checked_x_ref(data, x_ref))
    spread = jnp.sqrt(jnp.max(jnp.linalg.eigvalsh(data.covariance()))) + jnp.linalg.norm(
        data.mean()
    )
    half = 1.5 * process.a(t) * 3 * spread + 4 * process.b(t)

    def proj(ell):
        x = x0 + ell * u
        return jnp.vdot(u, _field(data, process, x, t, field))

    ells = jnp.linspace(-half, half, n_grid)
    vals = jax.vmap(proj)(ells)
    cross = jnp.sign(vals[:-1]) * jnp.sign(vals[1:]) <= 0
    idx = jnp.nonzero(cross, size=max_roots, fill_value=-1)[0]

    def refine(i):
        lo, hi = ells[jnp.maximum(i, 0)], ells[jnp.maximum(i, 0) + 1]
        mid = 0.5 * (lo + hi)
        # orient the function to increase across the bracket, as Bisection's flip="detect"
        # would, without the eqx.error_if (a host callback) that "detect" adds
        sgn = jnp.where(vals[jnp.maximum(i, 0)] > vals[jnp.maximum(i, 0) + 1], -1.0, 1.0)
        sol = optx.root_find(
            # padding slots (i < 0) solve a dummy linear equation inside their bracket
            lambda e, _: jnp.where(i >= 0, sgn * proj(e), e - mid),
            optx.Bisection(rtol=1e-13, atol=1e-13 * half, flip=False),
            mid,
            options={"lower": lo, "upper": hi},
            max_steps=256,
            throw=False,
        )
        ell = jnp.where(i >= 0, sol.value, jnp.nan)
        x = x0 + jnp.nan_to_num(ell) * u
        jac = jax.jacfwd(lambda z: _field(data, process, z, t, field).reshape(-1))(x)
        jac = jac.reshape(data.dim, data.dim)
        top = jnp.max(jnp.linalg.eigvals(jac).real)
        res = jnp.linalg.norm(_field(data, process, x, t, field))
        nan_if = lambda v: jnp.where(i >= 0, v, jnp.nan)
        return ell, jnp.where(i >= 0, x, jnp.nan), (top < 0) & (i >= 0), nan_if(res)

    ell, pts, stable, res = jax.vmap(refine)(idx)
    return FixedPoints(ell=ell, points=pts, stable=stable, residual=res)


def bifurcation_diagram(
    data: AbstractData,
    process: AbstractProcess,
    ts: Real[ArrayLike, " n_ts"],
    *,
    field: str = "score",
    direction: ArrayLike | None = None,
    n_grid: int = 512,
    max_roots: int = 5,
) -> FixedPoints:
    """:func:`fixed_points` at every time of ``ts`` (vmapped): the pitchfork diagram."""
    _check_data_process(data, process)
    ts = as_float_array(ts, "ts")
    if ts.ndim != 1:
        raise ValueError(f"ts must be a 1-D array of times, got shape {tuple(ts.shape)}.")
    return jax.vmap(
        lambda t: fixed_points(
            data, process, t, field=field, direction=direction, n_grid=n_grid, max_roots=max_roots
        )
    )(ts)


def generative_potential(
    data: AbstractData, process: AbstractProcess, x: ArrayLike, t: ArrayLike
) -> Array:
    r"""Raya–Ambrogioni potential $U(x,t) = -g^2(t)\ln p_t(x) + \tfrac12 f(t)\|x\|^2$.

    The reverse-SDE drift is $-\nabla U$ (`docs/theory/processes.md#generative-potential`); for VP,
    $U = -\beta(t)[\ln p_t(x) + \|x\|^2/4]$, up to an $x$-independent constant.
    """
    x = as_float_array(x, "x")
    n = len(data.event_shape)
    sq = jnp.sum(x**2, axis=tuple(range(x.ndim - n, x.ndim)))
    return -process.g2(t) * log_prob(data, process, x, t) + 0.5 * process.f(t) * sq


def potential_curvature(
    data: AbstractData,
    process: AbstractProcess,
    t: ArrayLike,
    *,
    x: ArrayLike | None = None,
    direction: ArrayLike | None = None,
) -> Array:
    r"""$\partial_\ell^2 U(x + \ell u, t)$ at $\ell=0$ (autodiff); Raya & Ambrogioni's Eq. 8 at $x=0$."""
    _check_data_process(data, process)
    u = _unit_direction(data, direction)
    t = jnp.asarray(t)
    x0 = _x_ref(data, process, t, _checked_x_ref(data, x, "x"))
    return jax.grad(jax.grad(lambda e: generative_potential(data, process, x0 + e * u, t)))(
        jnp.zeros((), u.dtype)
    )


def landau_coefficients(
    data: AbstractData,
    process: AbstractProcess,
    t: ArrayLike,
    *,
    direction: ArrayLike | None = None,
    x_ref: ArrayLike | None = None,
) -> tuple[Array, Array]:
    r"""Landau coefficients $(r, u)$ of $-\ln p_t(x_{\rm ref} + \ell u) = c + \tfrac r2\ell^2 +
    \tfrac u4\ell^4 + O(\ell^6)$ (symmetric data), by nested autodiff.

    Two deltas $\pm\mu$: $r = (b^2 - a^2\Lambda)/b^4$, $u = \tfrac13 (a\sqrt\Lambda/b^2)^4$.
    """
    _check_data_process(data, process)
    u_dir = _unit_direction(data, direction)
    t = jnp.asarray(t)
    x0 = _x_ref(data, process, t, _checked_x_ref(data, x_ref))
    f = lambda e: -log_prob(data, process, x0 + e * u_dir, t)
    d2 = jax.grad(jax.grad(f))
    d4 = jax.grad(jax.grad(d2))
    zero = jnp.zeros((), u_dir.dtype)
    return d2(zero), d4(zero) / 6


# ----------------------------------------------------------------------------------------------
# exponents
# ----------------------------------------------------------------------------------------------


class ExponentFit(NamedTuple):
    """Log-log least-squares fit $y \\simeq A x^{\\rm slope}$.

    - `slope`, `stderr`: the exponent and its standard error;
    - `intercept`: $\\ln A$;
    - `x_range`: (min, max) of the x values used; `n`: how many points were used.
    """

    slope: Array
    stderr: Array
    intercept: Array
    x_range: tuple[Array, Array]
    n: Array


def _check_fit_points(x, y, yerr, x_range) -> None:
    """``ValueError`` for concrete inputs that :func:`fit_exponent` cannot fit (see there)."""
    xv, yv = concrete_value(x), concrete_value(y)
    ev = None if yerr is None else concrete_value(yerr)
    rv = None if x_range is None else [concrete_value(r) for r in x_range]
    if xv is None or yv is None or (yerr is not None and ev is None):
        return
    if rv is not None and any(r is None for r in rv):
        return
    if ev is not None and ev.shape != yv.shape:
        raise ValueError(f"yerr must have the shape of y {yv.shape}, got {ev.shape}.")
    inside = np.ones(xv.shape, bool)
    if rv is not None:
        lo, hi = float(rv[0]), float(rv[1])
        if not lo < hi:
            raise ValueError(f"x_range must be (lo, hi) with lo < hi, got {x_range!r}.")
        inside = (xv >= lo) & (xv <= hi)
    bad = {
        "x must be finite and > 0": ~(np.isfinite(xv) & (xv > 0)),
        "y must be finite and nonzero (the fit uses ln|y|)": ~(np.isfinite(yv) & (yv != 0)),
    }
    if ev is not None:
        bad["yerr must be finite and > 0"] = ~(np.isfinite(ev) & (ev > 0))
    for what, b in bad.items():
        idx = np.flatnonzero(b & inside)
        if idx.size:
            raise ValueError(
                f"fit_exponent: {what}; bad at indices {idx[:8].tolist()} "
                f"(x = {xv[idx[:8]].tolist()}). Remove these points or narrow x_range."
            )
    if inside.sum() < 3:
        raise ValueError(
            f"fit_exponent needs at least 3 points in x_range {x_range!r}, got "
            f"{int(inside.sum())} (x spans [{xv.min():g}, {xv.max():g}])."
        )
    if np.unique(xv[inside]).size < 2:
        raise ValueError(
            "fit_exponent: x must take at least 2 distinct values in x_range (a slope needs a "
            f"spread in ln x), got x = {np.unique(xv[inside])[:8].tolist()}."
        )


def fit_exponent(
    x: ArrayLike,
    y: ArrayLike,
    *,
    yerr: ArrayLike | None = None,
    x_range: tuple[Real[ArrayLike, ""], Real[ArrayLike, ""]] | None = None,
) -> ExponentFit:
    r"""Fit $\ln|y| = \text{slope}\cdot\ln x + c$ by (weighted) least squares.

    Without ``yerr`` the standard error uses the residual variance ($n-2$ degrees of freedom);
    with ``yerr`` the weights are $1/\sigma_{\ln y}^2$, $\sigma_{\ln y} = \sigma_y/|y|$, and the
    standard error is the fit covariance's (errors taken as known). Points outside
    ``x_range`` (inclusive) get weight 0, so the function is jit-able.

    **Validation.** With concrete inputs, every point inside ``x_range`` (all points when it is
    ``None``) must have a finite $x > 0$, a finite $y \ne 0$ and (with ``yerr``) a finite
    $\sigma_y > 0$, at least 3 points must lie in the range and their $x$ must take at least
    2 distinct values: otherwise ``ValueError`` names the offending points; nothing is dropped
    silently. Under ``jit`` such points get weight 0 and ``n`` says how many points the fit
    used (a degenerate fit then returns NaN).

    **Returns:** an :class:`ExponentFit` (``n``: the number of points fitted).
    """
    x = as_float_array(x, "x")
    y = as_float_array(y, "y")
    if x_range is not None and (not isinstance(x_range, tuple | list) or len(x_range) != 2):
        raise ValueError(f"x_range must be a pair (lo, hi) with lo < hi, got {x_range!r}.")
    if x.ndim != 1 or x.shape != y.shape or x.shape[0] < 3:
        raise ValueError(
            f"x and y must be 1-D arrays of the same length >= 3, got {x.shape} and {y.shape}."
        )
    _check_fit_points(x, y, yerr, x_range)
    lx, ly = jnp.log(x), jnp.log(jnp.abs(y))
    mask = jnp.isfinite(lx) & jnp.isfinite(ly) & (x > 0)
    if x_range is not None:
        mask = mask & (x >= x_range[0]) & (x <= x_range[1])
    if yerr is None:
        w = jnp.ones_like(lx)
    else:
        yerr = as_float_array(yerr, "yerr")
        if yerr.shape != y.shape:
            raise ValueError(f"yerr must have the shape of y {y.shape}, got {yerr.shape}.")
        w = (jnp.abs(y) / yerr) ** 2
    w = jnp.where(mask, w, 0.0)
    lx0, ly0 = jnp.where(mask, lx, 0.0), jnp.where(mask, ly, 0.0)
    sw = w.sum()
    mx, my = (w * lx0).sum() / sw, (w * ly0).sum() / sw
    sxx = (w * (lx0 - mx) ** 2).sum()
    slope = (w * (lx0 - mx) * (ly0 - my)).sum() / sxx
    intercept = my - slope * mx
    n = mask.sum()
    resid = jnp.where(mask, ly0 - intercept - slope * lx0, 0.0)
    if yerr is None:
        s2 = (resid**2).sum() / jnp.maximum(n - 2, 1)
        stderr = jnp.sqrt(s2 / sxx)
    else:
        stderr = jnp.sqrt(1 / sxx)
    big = jnp.finfo(x.dtype).max
    xr = (jnp.min(jnp.where(mask, x, big)), jnp.max(jnp.where(mask, x, -big)))
    return ExponentFit(slope=slope, stderr=stderr, intercept=intercept, x_range=xr, n=n)


def meanfield_exponents(n_points: int = 40) -> dict[str, ExponentFit | Array]:
    r"""Critical exponents measured on the self-consistency solver (`docs/theory/meanfield.md#exponents`).

    - ``beta``: slope of $M^*(t)$ from $M=\tanh({\rm SNR}(t)M)$ (OU, $\pm1$) against
      $t_c^S - t\in[10^{-5},10^{-3}]$;
    - ``gamma_below`` / ``gamma_above``: minus the slopes of $\chi = \partial M/\partial h$ against
      $|1-b|\in[10^{-5},10^{-3}]$ for $b<1$ and $b>1$; ``amplitude_ratio``: $\chi(b<1)/\chi(b>1)$ at
      equal $|1-b|$ (theory 2);
    - ``delta``: $1/$slope of $M(h)$ at $b=1$ for $h\in[10^{-7},10^{-4}]$ (theory 3; the fit's
      slope estimates $1/\delta$, its ``stderr`` is converted to $\delta$).
    """
    ou = OU()
    tc = 0.5 * jnp.log(2.0)
    dts = jnp.geomspace(1e-5, 1e-3, n_points)
    m_star = curie_weiss_magnetization(ou.snr(tc - dts))
    beta = fit_exponent(dts, m_star)
    eps = jnp.geomspace(1e-5, 1e-3, n_points)
    chi_lo = jax.vmap(curie_weiss_susceptibility)(1 - eps)
    chi_hi = jax.vmap(curie_weiss_susceptibility)(1 + eps)
    g_lo = fit_exponent(eps, chi_lo)
    g_hi = fit_exponent(eps, chi_hi)
    hs = jnp.geomspace(1e-7, 1e-4, n_points)
    m_h = curie_weiss_magnetization(jnp.ones_like(hs), hs)
    inv_delta = fit_exponent(hs, m_h)
    delta = 1 / inv_delta.slope
    return {
        "beta": beta,
        "gamma_below": g_lo._replace(slope=-g_lo.slope),
        "gamma_above": g_hi._replace(slope=-g_hi.slope),
        "amplitude_ratio": jnp.median(chi_lo / chi_hi),
        "delta": inv_delta._replace(slope=delta, stderr=inv_delta.stderr * delta**2),
    }
