r"""Ornstein–Zernike analysis of lattice structure factors: $\xi$, $\chi$, $\nu$, $\eta$, Fisher, hyperscaling.

See `docs/theory/lattice-exponents.md`. The estimators take a structure factor $S(q)$ on the
grid of a periodic 1-D or 2-D lattice (``fftn`` order, normalised as
:func:`gltheory.field.structure_factor`) with its standard errors, and the exponents from a
sequence of such measurements approaching the transition from the disordered side:

- :func:`oz_fit`: $S(q)=\chi/(1+\xi^2u(q))$ by weighted nonlinear least squares over the grid
  wavevectors $0<|q|\le q_{\max}$, with $u(q)$ the window's lattice $q^2$ (:func:`window_q2`);
  $\xi$, $\chi$ with standard errors;
- :func:`eta_fit`: the exponent of $S(q)=A\,(\xi^{-2}+u)^{-(2-\eta)/2}$, which at the transition
  is $S\propto q^{-(2-\eta)}$;
- :func:`fit_divergence`: $y\propto\varepsilon^{-p}$ in the reduced distance
  $\varepsilon=G_c/G-1$ with the critical coupling fitted or given: $\nu$ from $\xi$, $\gamma$
  from $\chi$;
- :func:`lattice_relations`: Fisher $\gamma=\nu(2-\eta)$ and hyperscaling $2-\alpha=D\nu$ with
  propagated errors (hyperscaling fails for mean-field values below $D=4$).

The known case: the linearised frozen-time patch model of two uniform images at temperature
$T$, whose stationary structure factor :func:`linear_structure_factor` is exactly of the lattice
Ornstein–Zernike form ($\nu=\tfrac12$, $\eta=0$, $\gamma=1$); :func:`gaussian_field` draws exact
samples of a stationary Gaussian field with any spectrum (FFT). :func:`ginzburg_distance` is the
one-loop Ginzburg distance of the tempered patch model, $\propto T$. **[DERIVED]**
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray, Real

from ._checks import as_float_array, check_positive_int, concrete_value, trusted
from .bath import Estimate, ScalingRelation

__all__ = [
    "OZFit",
    "EtaFit",
    "DivergenceFit",
    "window_q2",
    "linear_structure_factor",
    "linear_correlation_length",
    "gaussian_field",
    "ginzburg_distance",
    "hartree_coupling",
    "oz_fit",
    "eta_fit",
    "fit_divergence",
    "lattice_relations",
]

# a real number as a list element (a plain Python list of couplings, say)
_Real = float | int | np.floating | np.integer


class OZFit(NamedTuple):
    r"""Result of :func:`oz_fit`: $S(q)=\chi/(1+\xi^2u(q))$.

    - `xi`, `xi_se`: the correlation length (lattice units) and its standard error;
    - `chi`, `chi_se`: the susceptibility $S(q\to0)$ of the form and its standard error;
    - `n`: the number of independent wavevectors fitted; `chi2_dof`: $\chi^2$ per degree of
      freedom (the errors are scaled by $\max(1,\sqrt{\chi^2/{\rm dof}})$); `q_max`: the range.
    """

    xi: float
    xi_se: float
    chi: float
    chi_se: float
    n: int
    chi2_dof: float
    q_max: float


class EtaFit(NamedTuple):
    r"""Result of :func:`eta_fit`: $S(q)=A\,(m+u(q))^{-(2-\eta)/2}$, $m=\xi^{-2}$.

    - `eta`, `eta_se`: the anomalous dimension and its standard error;
    - `m`, `m_se`: the fitted mass $\xi^{-2}$ (0 at the transition) and its standard error;
    - `n`, `chi2_dof`, `q_max`: as in :class:`OZFit`.
    """

    eta: float
    eta_se: float
    m: float
    m_se: float
    n: int
    chi2_dof: float
    q_max: float


class DivergenceFit(NamedTuple):
    r"""Result of :func:`fit_divergence`: $\ln y=a-p\ln\varepsilon+c\,\varepsilon$.

    - `exponent`, `exponent_se`: $p$ ($\nu$ for $\xi$, $\gamma$ for $\chi$) and its error;
    - `critical`, `critical_se`: $G_c$ (``critical_se`` 0 when it was given);
    - `n`: points in the range; `chi2_dof`; `eps_range`: the $\varepsilon$ of the points used.
    """

    exponent: float
    exponent_se: float
    critical: float
    critical_se: float
    n: int
    chi2_dof: float
    eps_range: tuple[float, float]


# ----------------------------------------------------------------------------------------
# the lattice and the window
# ----------------------------------------------------------------------------------------


def _check_window(window) -> int | None:
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int | np.integer):
        raise ValueError(f"window must be an odd int >= 3 or None, got {window!r}.")
    k = int(window)
    if k < 3 or k % 2 == 0:
        raise ValueError(f"window must be an odd int >= 3 or None, got {window!r}.")
    return k


def _check_shape(lattice_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in lattice_shape)
    except TypeError:
        raise ValueError(f"lattice_shape must be a tuple of 1 or 2 ints, got {lattice_shape!r}.")
    if len(shape) not in (1, 2) or any(s < 2 for s in shape):
        raise ValueError(f"lattice_shape must be 1 or 2 ints >= 2, got {lattice_shape!r}.")
    return shape


def _grid(shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    comps = [2 * np.pi * np.fft.fftfreq(L) for L in shape]
    return np.meshgrid(*comps, indexing="ij")


def _dirichlet_ratio(grids: Sequence[np.ndarray], k: int) -> np.ndarray:
    """$\\hat K(q)/k^D$ on the grid (1 at q = 0)."""
    out = np.ones_like(grids[0])
    for q in grids:
        s = np.sin(q / 2)
        small = np.abs(s) < 1e-12
        out = out * np.where(small, 1.0, np.sin(k * q / 2) / (k * np.where(small, 1.0, s)))
    return out


def _u_grid(shape: tuple[int, ...], k: int | None) -> np.ndarray:
    grids = _grid(shape)
    if k is None:
        return sum(4 * np.sin(q / 2) ** 2 for q in grids)
    return 24.0 * (1.0 - _dirichlet_ratio(grids, k)) / (k * k - 1)


def window_q2(
    lattice_shape: Sequence[int | np.integer], window: int | np.integer | None = None
) -> Array:
    r"""The lattice $q^2$ of the Ornstein–Zernike form, $u(q)$, on the grid (``fftn`` order).

    With a window $k$ (`docs/theory/lattice-exponents.md#linear-model`):
    $u(q)=\frac{24}{k^2-1}\big(1-\hat K(q)/k^D\big)$, $\hat K(q)=\prod_a\frac{\sin(kq_a/2)}{\sin(q_a/2)}$
    the box kernel's transform, so that $u=|q|^2+O(q^4)$ and the linearised patch model has
    exactly $S=\chi/(1+\xi^2u)$. Without one: the nearest-neighbour $\hat q^2=\sum_a4\sin^2(q_a/2)$.

    **Arguments:**

    - `lattice_shape`: ``(L,)`` or ``(H, W)``.
    - `window`: odd $k\ge3$, or ``None``.

    **Returns:** $u(q)$, shape ``lattice_shape``.
    """
    return jnp.asarray(_u_grid(_check_shape(lattice_shape), _check_window(window)))


def _check_coupling(coupling) -> float:
    g = float(np.asarray(coupling))
    if not (0 <= g < 1):
        raise ValueError(
            f"coupling must be in [0, 1) (the linearised model is unstable for G >= 1), got {g}."
        )
    return g


def _check_temperature(temperature) -> float:
    t = float(np.asarray(temperature))
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"temperature must be a positive finite number, got {t}.")
    return t


def linear_structure_factor(
    coupling: Real[ArrayLike, ""],
    window: int | np.integer,
    lattice_shape: Sequence[int | np.integer],
    temperature: Real[ArrayLike, ""] = 1.0,
) -> Array:
    r"""Exact stationary $S(q)$ of the linearised frozen-time patch model (two uniform images).

    `docs/theory/lattice-exponents.md#linear-model`: in the reduced variables the drift at
    $\varphi=0$ is $-(1-G\hat K(q)/k^D)\hat\varphi(q)$ and the noise $\sqrt{2T}$, so
    $$S(q)=\frac T{1-G\hat K(q)/k^D}=\frac\chi{1+\xi^2u(q)},\quad\chi=\frac T{1-G},\quad
    \xi^2=\frac{k^2-1}{24}\,\frac G{1-G}.$$

    **Arguments:**

    - `coupling`: $G={\rm SNR}\cdot k^D\in[0,1)$.
    - `window`: odd $k\ge3$.
    - `lattice_shape`: ``(L,)`` or ``(H, W)``.
    - `temperature`: $T>0$.

    **Returns:** $S(q)$ on the grid (``fftn`` order), shape ``lattice_shape``.
    """
    g = _check_coupling(coupling)
    k = _check_window(window)
    if k is None:
        raise ValueError("window must be an odd int >= 3, got None.")
    t = _check_temperature(temperature)
    shape = _check_shape(lattice_shape)
    return jnp.asarray(t / (1.0 - g * _dirichlet_ratio(_grid(shape), k)))


def linear_correlation_length(
    coupling: Real[ArrayLike, ""],
    window: int | np.integer,
    temperature: Real[ArrayLike, ""] = 1.0,
) -> tuple[float, float]:
    r"""$(\xi,\chi)$ of :func:`linear_structure_factor`: $\xi=\sqrt{\frac{k^2-1}{24}\frac{G}{1-G}}$, $\chi=\frac T{1-G}$.

    With $\varepsilon=1/G-1$: $\xi=\sqrt{(k^2-1)/24}\,\varepsilon^{-1/2}$ exactly ($\nu=\tfrac12$) and
    $\chi=T(1+\varepsilon)/\varepsilon$ ($\gamma=1$).
    """
    g = _check_coupling(coupling)
    k = _check_window(window)
    if k is None:
        raise ValueError("window must be an odd int >= 3, got None.")
    t = _check_temperature(temperature)
    return math.sqrt((k * k - 1) / 24.0 * g / (1.0 - g)), t / (1.0 - g)


def gaussian_field(key: PRNGKeyArray, spectrum: ArrayLike, n_samples: int | np.integer) -> Array:
    r"""Exact samples of the stationary Gaussian lattice field with structure factor ``spectrum``.

    $\varphi={\rm ifft}\big(\sqrt{S}\,{\rm fft}(w)\big)$ with $w$ white $\mathcal N(0,1)$: Gaussian,
    translation invariant, $\langle|\hat\varphi(q)|^2\rangle/n=S(q)$ exactly (real because
    $S(q)=S(-q)$).

    **Arguments:**

    - `key`: a PRNG key.
    - `spectrum`: $S(q)\ge0$ on the grid of a 1-D or 2-D lattice (``fftn`` order), even in $q$.
    - `n_samples`: number of independent fields.

    **Returns:** shape ``(n_samples, *lattice)``.
    """
    s = as_float_array(spectrum, "spectrum")
    if s.ndim not in (1, 2):
        raise ValueError(f"spectrum must be a 1-D or 2-D lattice array, got shape {s.shape}.")
    sv = concrete_value(s)
    if sv is not None and not np.all(sv >= 0):
        raise ValueError("spectrum must be >= 0 everywhere.")
    check_positive_int(n_samples, "n_samples")
    return _gaussian_impl(key, s, int(n_samples))


@eqx.filter_jit
@trusted
def _gaussian_impl(key, s, n_samples: int):
    ax = tuple(range(-s.ndim, 0))
    w = jax.random.normal(key, (n_samples,) + s.shape, s.dtype)
    return jnp.real(jnp.fft.ifftn(jnp.sqrt(s) * jnp.fft.fftn(w, axes=ax), axes=ax))


def hartree_coupling(
    coupling: Real[ArrayLike, ""],
    temperature: Real[ArrayLike, ""],
    window: int | np.integer,
    lattice_shape: Sequence[int | np.integer],
) -> float:
    r"""Self-consistent Gaussian (Hartree) coupling $G_{\rm eff}$ of the tempered patch model.

    `docs/theory/lattice-exponents.md#mean-field-point`: $G_{\rm eff}=G\,\langle{\rm sech}^2(g\psi)\rangle$,
    $\psi\sim\mathcal N(0,v)$, $v=\frac Tn\sum_q\hat K(q)^2/(1-G_{\rm eff}\hat K(q)/k^D)$, $g^2=G/k^D$ (the
    Gaussian average by 64-point Gauss–Hermite quadrature, the root by bisection). The structure
    factor of this approximation is :func:`linear_structure_factor` at $G_{\rm eff}$; it is the
    mean-field prediction at $T>0$ ($1-G_{\rm eff}\simeq1-G+T\,c(G)$, $c$ growing like
    $\ln\frac1{1-G}$ in $D=2$). On a finite lattice a root $G_{\rm eff}<1$ always exists.

    **Arguments:**

    - `coupling`: $G>0$ (any value: the approximation does not order).
    - `temperature`: $T>0$.
    - `window`: odd $k\ge3$.
    - `lattice_shape`: ``(L,)`` or ``(H, W)``.

    **Returns:** $G_{\rm eff}$.
    """
    g_val = float(np.asarray(coupling))
    if not (g_val > 0 and math.isfinite(g_val)):
        raise ValueError(f"coupling must be a positive finite number, got {g_val}.")
    t = _check_temperature(temperature)
    k = _check_window(window)
    if k is None:
        raise ValueError("window must be an odd int >= 3, got None.")
    shape = _check_shape(lattice_shape)
    ratio = _dirichlet_ratio(_grid(shape), k).reshape(-1)
    kd = float(k ** len(shape))
    x, w = np.polynomial.hermite_e.hermegauss(64)
    w = w / w.sum()
    g2 = g_val / kd

    def excess(ge):
        v = t * kd**2 * np.mean(ratio**2 / (1.0 - ge * ratio))
        return g_val * np.sum(w / np.cosh(math.sqrt(g2 * v) * x) ** 2) - ge

    lo, hi = 0.0, 1.0 - 1e-15
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if excess(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def ginzburg_distance(
    temperature: Real[ArrayLike, ""],
    window: int | np.integer,
    lattice_ndim: int | np.integer = 2,
    coupling: Real[ArrayLike, ""] = 1.0,
) -> float:
    r"""One-loop Ginzburg distance of the tempered patch model (`docs/theory/lattice-exponents.md#ginzburg`).

    In $D=2$: ${\rm Gi}=\frac{18\,T\,G}{\pi(1-k^{-2})}$, the distance $1-G$ at which the one-loop
    correction to the quartic coupling equals the coupling. Mean field holds for
    $\varepsilon\gg{\rm Gi}$; ${\rm Gi}\propto T$ (the crossover scale). Only $D=2$ is implemented
    (in $D=1$ the criterion reads $\varepsilon^{3/2}\gg$ const $T$).
    """
    t = _check_temperature(temperature)
    k = _check_window(window)
    if k is None:
        raise ValueError("window must be an odd int >= 3, got None.")
    if lattice_ndim != 2:
        raise ValueError(f"lattice_ndim must be 2, got {lattice_ndim!r}.")
    return 18.0 * t * float(coupling) / (math.pi * (1.0 - 1.0 / (k * k)))


# ----------------------------------------------------------------------------------------
# fits of one structure factor
# ----------------------------------------------------------------------------------------


def _points(S, S_err, window, q_max):
    """Independent grid wavevectors 0 < |q| <= q_max (one of each pair q, -q)."""
    s = np.asarray(as_float_array(S, "S"), np.float64)
    e = np.asarray(as_float_array(S_err, "S_err"), np.float64)
    if s.ndim not in (1, 2) or any(n < 2 for n in s.shape):
        raise ValueError(f"S must be a 1-D or 2-D lattice array (sizes >= 2), got {s.shape}.")
    if e.shape != s.shape:
        raise ValueError(f"S_err must have the shape of S {s.shape}, got {e.shape}.")
    k = _check_window(window)
    if q_max is None:
        q_max = np.pi / k if k is not None else 0.5 * np.pi
    q_max = float(q_max)
    if not (q_max > 0 and math.isfinite(q_max)):
        raise ValueError(f"q_max must be a positive finite number, got {q_max}.")
    shape = s.shape
    grids = _grid(shape)
    qabs = np.sqrt(sum(g**2 for g in grids))
    # the index of -q for each q; keep q when its flat index is <= that of -q
    idx = np.indices(shape)
    neg = [(-i) % n for i, n in zip(idx, shape, strict=True)]
    flat = np.ravel_multi_index(tuple(idx), shape)
    flat_neg = np.ravel_multi_index(tuple(neg), shape)
    sel = (qabs > 0) & (qabs <= q_max * (1 + 1e-12)) & (flat <= flat_neg)
    u = _u_grid(shape, k)[sel]
    sv, ev = s[sel], e[sel]
    if not np.all(np.isfinite(sv) & (sv > 0) & np.isfinite(ev) & (ev > 0)):
        raise ValueError("S must be > 0 and S_err > 0 (finite) at every wavevector in the range.")
    return u, sv, ev, q_max


def _gauss_newton(resid_jac, p0, iters=60):
    p = np.asarray(p0, np.float64)
    r, j = resid_jac(p)
    cost = float(r @ r)
    lam = 1e-6
    for _ in range(iters):
        a = j.T @ j
        step = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-300), -j.T @ r)
        p_new = p + step
        try:
            r_new, j_new = resid_jac(p_new)
            cost_new = float(r_new @ r_new)
        except FloatingPointError:
            cost_new = np.inf
        if np.isfinite(cost_new) and cost_new <= cost:
            converged = cost - cost_new <= 1e-14 * max(cost, 1.0)
            p, r, j, cost = p_new, r_new, j_new, cost_new
            lam = max(lam / 10, 1e-12)
            if converged and np.max(np.abs(step) / (np.abs(p) + 1e-12)) < 1e-10:
                break
        else:
            lam *= 10
            if lam > 1e12:
                break
    cov = np.linalg.inv(j.T @ j)
    return p, cov, cost


def oz_fit(
    S: ArrayLike,
    S_err: ArrayLike,
    *,
    window: int | np.integer | None = None,
    q_max: Real[ArrayLike, ""] | None = None,
) -> OZFit:
    r"""Ornstein–Zernike fit $S(q)=\chi/(1+\xi^2u(q))$ of a lattice structure factor (`docs/theory/lattice-exponents.md#estimators`).

    Weighted nonlinear least squares on $S$ itself (not on $1/S$, whose noise is biased) over the
    grid wavevectors with $0<|q|\le q_{\max}$, one of each pair $\pm q$ (a real field has
    $|\hat\varphi(q)|=|\hat\varphi(-q)|$: the pair is one measurement). The error of each point
    is its relative error ``S_err / S`` times the fitted model (iterated): the error of a
    periodogram average is proportional to its mean, and weights from the measured values would
    favour the points that fluctuated low and bias $\chi$ down. $u(q)$ is
    :func:`window_q2`. The standard errors are the fit covariance's times
    $\max(1,\sqrt{\chi^2/{\rm dof}})$. Range rule: $q_{\max}=\pi/k$ with a window (wavelengths of
    at least two windows), $\pi/2$ without one.

    **Arguments:**

    - `S`, `S_err`: $S(q)$ and its standard errors on the grid (``fftn`` order), 1-D or 2-D.
    - `window`: the patch window $k$ (odd, $\ge3$) or ``None``.
    - `q_max`: largest $|q|$ fitted (default by the rule above).

    **Returns:** an :class:`OZFit`; ``xi`` is NaN when the fitted $\xi^2<0$ (anticorrelated).
    """
    u, s, e, qm = _points(S, S_err, window, q_max)
    if u.size < 3:
        raise ValueError(f"oz_fit needs at least 3 wavevectors with 0 < |q| <= q_max={qm:g}.")
    # start: weighted linear fit of 1/S = A + B u
    w = (s**2 / e) ** 2
    a = np.stack([np.ones_like(u), u], -1)
    coef = np.linalg.solve(a.T @ (a * w[:, None]), a.T @ (w / s))
    chi0 = 1.0 / coef[0] if coef[0] > 0 else float(np.max(s))
    x0 = coef[1] / coef[0] if coef[0] > 0 else 0.0

    rel = e / s
    p = np.array([chi0, x0])
    for _ in range(4):  # the errors: relative error of the data times the model (see above)
        sig = rel * p[0] / (1.0 + p[1] * u) if p[0] > 0 and np.all(1 + p[1] * u > 0) else e

        def resid_jac(p, sig=sig):
            chi, x2 = p
            den = 1.0 + x2 * u
            r = (s - chi / den) / sig
            jac = np.stack([-1.0 / den / sig, chi * u / den**2 / sig], -1)
            return r, jac

        p, cov, cost = _gauss_newton(resid_jac, p)
    dof = u.size - 2
    chi2_dof = cost / dof if dof > 0 else float("nan")
    birge = max(1.0, math.sqrt(chi2_dof)) if dof > 0 else 1.0
    chi, x2 = float(p[0]), float(p[1])
    chi_se = math.sqrt(cov[0, 0]) * birge
    x2_se = math.sqrt(cov[1, 1]) * birge
    xi = math.sqrt(x2) if x2 >= 0 else float("nan")
    xi_se = x2_se / (2 * xi) if xi > 0 else float("nan")
    return OZFit(xi, xi_se, chi, chi_se, int(u.size), float(chi2_dof), qm)


def eta_fit(
    S: ArrayLike,
    S_err: ArrayLike,
    *,
    window: int | np.integer | None = None,
    q_max: Real[ArrayLike, ""] | None = None,
) -> EtaFit:
    r"""$\eta$ from the $q$-dependence of $S$: $\ln S=\ln A-(1-\tfrac\eta2)\ln(m+u(q))$ (`docs/theory/lattice-exponents.md#estimators`).

    At the transition ($m=\xi^{-2}\to0$) this is $S\propto u^{-(2-\eta)/2}\simeq q^{-(2-\eta)}$; near
    it, the Fisher–Burford form $S\propto(1+\xi^2q^2)^{-(2-\eta)/2}$ with the mass fitted, so that
    a point slightly off the transition does not bias $\eta$ (for the Ornstein–Zernike form
    $\eta=0$ at every distance). Weighted nonlinear least squares on $\ln S$ (errors
    $\sigma_S/S$) over the same wavevectors and range rule as :func:`oz_fit`; use it on the
    measurement closest to the transition whose $\xi$ is still $\le L/8$.

    **Arguments:** as :func:`oz_fit`.

    **Returns:** an :class:`EtaFit`.
    """
    u, s, e, qm = _points(S, S_err, window, q_max)
    if u.size < 4:
        raise ValueError(f"eta_fit needs at least 4 wavevectors with 0 < |q| <= q_max={qm:g}.")
    ls, le = np.log(s), e / s
    oz = oz_fit(S, S_err, window=window, q_max=qm)
    x2 = oz.xi**2 if np.isfinite(oz.xi) and oz.xi > 0 else 1.0 / max(float(u.min()), 1e-12)
    m0 = 1.0 / x2
    a0 = math.log(oz.chi / x2) if oz.chi > 0 else float(np.mean(ls + np.log(u)))
    u_min = float(u.min())

    def resid_jac(p):
        la, m, eta = p
        if m + u_min <= 0:
            raise FloatingPointError
        lm = np.log(m + u)
        model = la - (1 - eta / 2) * lm
        r = (ls - model) / le
        jac = -np.stack([np.ones_like(u), -(1 - eta / 2) / (m + u), 0.5 * lm], -1) / le[:, None]
        return r, jac

    p, cov, cost = _gauss_newton(resid_jac, [a0, m0, 0.0])
    dof = u.size - 3
    chi2_dof = cost / dof
    birge = max(1.0, math.sqrt(chi2_dof))
    return EtaFit(
        float(p[2]),
        math.sqrt(cov[2, 2]) * birge,
        float(p[1]),
        math.sqrt(cov[1, 1]) * birge,
        int(u.size),
        float(chi2_dof),
        qm,
    )


# ----------------------------------------------------------------------------------------
# exponents from a sequence of measurements
# ----------------------------------------------------------------------------------------


def fit_divergence(
    coupling: Real[ArrayLike, " n"] | Sequence[_Real],
    y: Real[ArrayLike, " n"] | Sequence[_Real],
    yerr: Real[ArrayLike, " n"] | Sequence[_Real],
    *,
    critical: Real[ArrayLike, ""] | None = None,
    eps_range: Sequence[_Real] = (0.0, 0.5),
    reduced: str = "inverse",
    correction: bool = True,
) -> DivergenceFit:
    r"""$y\propto\varepsilon^{-p}$ on the disordered side, with $G_c$ fitted or given.

    Model $\ln y=a-p\ln\varepsilon+c\,\varepsilon$ (the leading analytic correction fitted, as in
    `docs/theory/exponents.md#fitting-rule`), weighted least squares with weights
    $1/\sigma_{\ln y}^2$, Gauss–Newton in $(a,p,c,G_c)$ when ``critical`` is ``None``; the
    standard errors are the covariance's times $\max(1,\sqrt{\chi^2/{\rm dof}})$ (the error of
    $p$ includes that of $G_c$). The points used are those with $\varepsilon$ in ``eps_range``
    (recomputed with the fitted $G_c$ until the set is stable). The reduced distance is
    $\varepsilon=G_c/G-1$ (``reduced="inverse"``: $1/G$ is the site temperature, and the linear
    model's $\xi\propto\varepsilon^{-1/2}$ exactly) or $\varepsilon=1-G/G_c$ (``"direct"``: its
    $\chi\propto\varepsilon^{-1}$ exactly); the two agree to first order. $\nu$: pass $\xi$
    (``"inverse"``); $\gamma$: pass $\chi$ (``"direct"``). The range rule of `docs/theory/lattice-exponents.md#fitting-range`: $\varepsilon\le0.5$,
    $\varepsilon\ge10\,{\rm Gi}(T)$ and $\xi\le L/8$ (the last two applied by the caller through the
    points it passes and ``eps_range``).

    **Arguments:**

    - `coupling`: $G$ of each point ($<G_c$).
    - `y`, `yerr`: the diverging quantity and its standard errors (positive).
    - `critical`: $G_c$, or ``None`` to fit it.
    - `eps_range`: ``(lo, hi)``, inclusive.
    - `reduced`: ``"inverse"`` or ``"direct"``.
    - `correction`: fit the analytic correction $c\,\varepsilon$ (``False``: $c=0$, one parameter
      fewer; with $G_c$ free the correction and $G_c$ are strongly correlated on a few points).

    **Returns:** a :class:`DivergenceFit`.
    """
    g, ya, ea = (
        np.asarray(as_float_array(a, n), np.float64)
        for a, n in ((coupling, "coupling"), (y, "y"), (yerr, "yerr"))
    )
    if g.ndim != 1 or g.shape != ya.shape or g.shape != ea.shape:
        raise ValueError("coupling, y and yerr must be 1-D arrays of one length.")
    if not np.all(
        np.isfinite(g) & (g > 0) & np.isfinite(ya) & (ya > 0) & np.isfinite(ea) & (ea > 0)
    ):
        raise ValueError("coupling must be > 0, y > 0 and yerr > 0 (all finite).")
    if len(eps_range) != 2 or not 0 <= eps_range[0] < eps_range[1]:
        raise ValueError(f"eps_range must be (lo, hi) with 0 <= lo < hi, got {eps_range!r}.")
    if reduced not in ("inverse", "direct"):
        raise ValueError(f"reduced must be 'inverse' or 'direct', got {reduced!r}.")
    inverse = reduced == "inverse"

    def distance(gc, gv):
        return gc / gv - 1 if inverse else 1 - gv / gc

    def d_distance(gc, gv):  # d eps / d G_c
        return 1 / gv if inverse else gv / gc**2

    ly, le = np.log(ya), ea / ya
    if not isinstance(correction, bool):
        raise ValueError(f"correction must be True or False, got {correction!r}.")
    fixed = critical is not None
    n_par = (3 if fixed else 4) - (0 if correction else 1)
    if fixed:
        gc = float(np.asarray(critical))
        if not gc > g.max():
            raise ValueError(f"critical must exceed every coupling ({g.max():g}), got {gc}.")
    else:
        # start: the best G_c of a scan (linear least squares in the other parameters)
        best = (np.inf, g.max() * 1.05)
        for trial in g.max() * (1 + np.geomspace(1e-4, 3.0, 400)):
            e = distance(trial, g)
            sel = (e >= eps_range[0]) & (e <= eps_range[1]) & (e > 0)
            if sel.sum() < n_par + 1:
                continue
            a = np.stack(
                [np.ones(sel.sum()), -np.log(e[sel])] + ([e[sel]] if correction else []), -1
            )
            w = 1 / le[sel] ** 2
            coef = np.linalg.solve(a.T @ (a * w[:, None]), a.T @ (w * ly[sel]))
            chi2 = float(np.sum(w * (ly[sel] - a @ coef) ** 2)) / (sel.sum() - n_par)
            if chi2 < best[0]:
                best = (chi2, float(trial))
        gc = best[1]
    keep = None
    for _ in range(10):
        eps = distance(gc, g)
        new_keep = (eps >= eps_range[0]) & (eps <= eps_range[1]) & (eps > 0)
        if keep is not None and np.array_equal(new_keep, keep):
            break
        keep = new_keep
        if keep.sum() < n_par + 1:
            raise ValueError(
                f"fit_divergence needs at least {n_par + 1} points with eps in {eps_range}, "
                f"got {int(keep.sum())}."
            )
        gk, lyk, lek = g[keep], ly[keep], le[keep]

        def resid_jac(p, gk=gk, lyk=lyk, lek=lek):
            gcp = gc if fixed else p[-1]
            e = distance(gcp, gk)
            if np.any(e <= 0):
                raise FloatingPointError
            c = p[2] if correction else 0.0
            model = p[0] - p[1] * np.log(e) + c * e
            cols = [np.ones_like(e), -np.log(e)] + ([e] if correction else [])
            if not fixed:
                cols.append((-p[1] / e + c) * d_distance(gcp, gk))
            return (lyk - model) / lek, -np.stack(cols, -1) / lek[:, None]

        e0 = distance(gc, gk)
        a = np.stack([np.ones_like(e0), -np.log(e0)] + ([e0] if correction else []), -1)
        w = 1 / lek**2
        lin = np.linalg.solve(a.T @ (a * w[:, None]), a.T @ (w * lyk))
        p0 = list(lin) + ([] if fixed else [gc])
        p, cov, cost = _gauss_newton(resid_jac, p0)
        if not fixed:
            gc = float(p[-1])
    eps = distance(gc, g[keep])
    dof = int(keep.sum()) - n_par
    chi2_dof = cost / dof
    birge = max(1.0, math.sqrt(chi2_dof))
    return DivergenceFit(
        float(p[1]),
        math.sqrt(cov[1, 1]) * birge,
        float(gc),
        0.0 if fixed else math.sqrt(cov[-1, -1]) * birge,
        int(keep.sum()),
        float(chi2_dof),
        (float(eps.min()), float(eps.max())),
    )


def _check_estimate(e, name: str) -> Estimate:
    if not (
        isinstance(e, Estimate)
        and math.isfinite(e.value)
        and math.isfinite(e.stderr)
        and e.stderr >= 0
    ):
        raise ValueError(
            f"{name} must be an Estimate with finite value and stderr >= 0, got {e!r}."
        )
    return e


def lattice_relations(
    gamma: Estimate,
    nu: Estimate,
    eta: Estimate,
    alpha: Estimate = Estimate(0.0, 0.0),
    lattice_ndim: int | np.integer = 2,
) -> list[ScalingRelation]:
    r"""Fisher $\gamma-\nu(2-\eta)$ and hyperscaling $2-\alpha-D\nu$ with propagated errors.

    `docs/theory/lattice-exponents.md#relations`. First-order propagation of independent
    errors; each relation is ``consistent`` when within 3 standard errors of zero (as
    :func:`gltheory.bath.scaling_relations`). Mean-field values satisfy Fisher in every $D$ and
    hyperscaling only at $D=4$: in $D=2$, $2-0-2\cdot\tfrac12=1$, the check that tells mean field
    apart. $\alpha$ defaults to the mean-field jump, ``Estimate(0.0, 0.0)``.

    **Arguments:**

    - `gamma`, `nu`, `eta`, `alpha`: :class:`gltheory.bath.Estimate` s.
    - `lattice_ndim`: $D\ge1$.

    **Returns:** ``[fisher, hyperscaling]`` as :class:`gltheory.bath.ScalingRelation` s.
    """
    g, n, e, a = (
        _check_estimate(x, name)
        for x, name in ((gamma, "gamma"), (nu, "nu"), (eta, "eta"), (alpha, "alpha"))
    )
    if (
        isinstance(lattice_ndim, bool)
        or not isinstance(lattice_ndim, int | np.integer)
        or lattice_ndim < 1
    ):
        raise ValueError(f"lattice_ndim must be an int >= 1, got {lattice_ndim!r}.")
    d = int(lattice_ndim)
    rows = [
        (
            "fisher",
            g.value - n.value * (2 - e.value),
            math.sqrt(g.stderr**2 + ((2 - e.value) * n.stderr) ** 2 + (n.value * e.stderr) ** 2),
        ),
        ("hyperscaling", 2 - a.value - d * n.value, math.hypot(a.stderr, d * n.stderr)),
    ]
    return [
        ScalingRelation(name, float(v), float(se), bool(abs(v) <= max(3 * se, 1e-12)))
        for name, v, se in rows
    ]
