r"""Spectral probes of any score: Jacobians, plane-wave mode stiffness, patch covariances.

See `docs/theory/patch.md#spectral-probes`. Every function here works with **any** score callable
``score_fn(x, t)`` that maps a lattice configuration ``x`` of shape ``lattice_shape`` (no batch
axes) to an array of the same shape and is traceable by JAX (exact scores, the uniform-image
patch score, patch scores of any dataset, trained networks).

Conventions.

- Jacobian $J_{ij} = \partial s_i/\partial x_j$ (row = output site, column = input site).
- Plane waves on the periodic lattice $\mathbb Z_{L_1}\times\dots\times\mathbb Z_{L_D}$ use the
  grid $q_a = 2\pi m_a/L_a$ (``numpy.fft.fftfreq`` order, $q_a\in[-\pi,\pi)$).
- **Sign of the mode stiffness.** `docs/theory/patch.md#mode-softening` calls the eigenvalue of $J$ on a Fourier mode
  $\mu(q,t)$; for the patch model at the symmetric point
  $$\mu(q,t) = \frac{{\rm SNR}(t)\,\hat C_k(q) - 1}{b_t^2},$$
  and the *stiffness* is $-\mu$. :func:`mode_stiffness` returns $\mu$ (the sign of `docs/theory/patch.md#mode-softening`, positive =
  unstable along the score), so mode $q$ softens when $\mu$ crosses zero from below.
- Dynamics-specific fields (`docs/theory/patch.md#growth-rates`): the linear growth rate of a mode under the
  reverse SDE is $g^2\mu - f$ and under the probability-flow ODE $\tfrac12 g^2\mu - f$; both change
  sign where $\mu + {\rm offset} = 0$ with the offset of :func:`drift_offset`
  ($0$ score, $-f/g^2$ SDE, $-2f/g^2$ ODE; VP/OU: $0, \tfrac12, 1$; VE: $0, 0, 0$).

All results are **[DERIVED]** (the paper's own formulas could not be read; see `docs/theory/patch.md#patch-machines`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ._checks import as_float_array, check_result, is_concrete
from .data import LatticeImages
from .patch import AbstractPatchMachine
from .processes import AbstractProcess

__all__ = [
    "TopEigen",
    "BandStiffness",
    "SofteningPoint",
    "score_jacobian",
    "jacobian_top_eigenvalue",
    "lattice_wavevectors",
    "plane_wave",
    "mode_stiffness",
    "band_stiffness",
    "patch_covariance",
    "windowed_patch_covariance",
    "critical_alpha_bar",
    "drift_offset",
    "linear_response_length",
    "jacobian_critical_time",
]

ScoreFn = Callable[[Array, Array], Array]


class TopEigen(NamedTuple):
    """Largest eigenvalue of the symmetric part of a Jacobian and its unit eigenvector."""

    value: Array
    vector: Array


class BandStiffness(NamedTuple):
    """Radially binned mode stiffness: band centres ``q`` (|q|), ``mu`` per band, ``edges``."""

    q: Array
    mu: Array
    edges: Array


class SofteningPoint(NamedTuple):
    r"""First softening mode of a patch model: $\bar\alpha_c$, $q^\star$ and $\max_q\hat C_k$."""

    alpha_bar: Array
    q_star: Array
    c_max: Array


# ----------------------------------------------------------------------------------------
# Jacobians
# ----------------------------------------------------------------------------------------


def _as_point(x) -> Array:
    x = as_float_array(x, "x")
    if x.ndim == 0:
        raise ValueError("x must be a lattice configuration with at least one axis, got a scalar.")
    return x


def _jvp(score_fn: ScoreFn, x: Array, t, v: Array) -> Array:
    return jax.jvp(lambda y: score_fn(y, t), (x,), (v.astype(x.dtype),))[1]


def score_jacobian(
    score_fn: ScoreFn, x: Real[ArrayLike, "*lattice"], t: Real[ArrayLike, ""]
) -> Float[Array, "n n"]:
    r"""Dense Jacobian $J_{ij}=\partial s_i(x,t)/\partial x_j$ of any score, by JVPs.

    One forward-mode JVP per lattice site (``jax.jacfwd``), so use it for small lattices
    ($n\lesssim 10^3$ sites); for large ones use :func:`jacobian_top_eigenvalue`,
    :func:`mode_stiffness` or :func:`band_stiffness`, which need only a few JVPs.

    **Arguments:**

    - `score_fn`: callable ``score_fn(x, t)`` returning an array shaped like ``x``.
    - `x`: the point, shape ``lattice_shape`` (no batch axes).
    - `t`: forward time.

    **Returns:** the flattened Jacobian, shape ``(n, n)`` with ``n = x.size`` (C order).
    """
    x = _as_point(x)
    n = x.size
    f = lambda y: score_fn(y.reshape(x.shape), t).reshape(n)
    return jax.jit(jax.jacfwd(f))(x.reshape(n))


def jacobian_top_eigenvalue(
    score_fn: ScoreFn,
    x: Real[ArrayLike, "*lattice"],
    t: Real[ArrayLike, ""],
    *,
    num_iters: int = 300,
    key: PRNGKeyArray | None = None,
) -> TopEigen:
    r"""Largest eigenvalue of the symmetric part $S=\tfrac12(J+J^\top)$ by shifted power iteration.

    Matrix-free: each step costs one JVP and one VJP ($Sv=\tfrac12(Jv+J^\top v)$). Power
    iteration converges to the eigenvalue of largest *modulus*, which for a score is usually
    the most negative one ($\approx-1/b_t^2$). So two passes are run:

    1. power iteration on $S$ gives $\lambda_{\rm abs}$ (largest $|\lambda|$);
    2. power iteration on $S - \lambda_{\rm abs}I$ when $\lambda_{\rm abs}<0$ (all eigenvalues
       $\ge0$, the top one is $\lambda_{\max}-\lambda_{\rm abs}$); the result is the Rayleigh
       quotient $v^\top Sv$.

    Convergence is geometric with ratio $(\lambda_2-\lambda_{\rm abs})/(\lambda_{\max}-
    \lambda_{\rm abs})$, slow when the top two eigenvalues are close (long-wavelength modes on
    a large lattice); increase ``num_iters`` and compare with :func:`score_jacobian` on a
    small lattice. The symmetric part decides the growth of $\|\delta x\|$; at the symmetric
    point of an equal-norm patch model $J$ is symmetric (`docs/theory/patch.md#linearisation`), elsewhere the local
    score is not a gradient field (`docs/theory/field.md#non-gradient`) and $S\ne J$.

    **Arguments:**

    - `score_fn`, `x`, `t`: as in :func:`score_jacobian`.
    - `num_iters`: iterations of each pass (static).
    - `key`: PRNG key for the start vector (default a fixed key).

    **Returns:** a :class:`TopEigen` ``(value, vector)``, ``vector`` shaped like ``x``.
    """
    x = _as_point(x)
    if not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"num_iters must be a positive integer, got {num_iters!r}.")
    if key is None:
        key = jax.random.PRNGKey(0)
    f = lambda y: score_fn(y, t)
    _, vjp_fn = jax.vjp(f, x)

    def sym(v):
        return 0.5 * (_jvp(score_fn, x, t, v) + vjp_fn(v)[0])

    def power(shift, v0):
        def body(_, v):
            w = sym(v) - shift * v
            return w / jnp.linalg.norm(w)

        v = jax.lax.fori_loop(0, num_iters, body, v0)
        return v, jnp.vdot(v, sym(v))

    v0 = jax.random.normal(key, x.shape, dtype=x.dtype)
    v0 = v0 / jnp.linalg.norm(v0)
    v1, lam_abs = power(jnp.zeros((), x.dtype), v0)
    shift = jnp.minimum(lam_abs, 0.0)
    v2, lam2 = power(shift, v0)
    use_first = lam_abs >= 0
    value = jnp.where(use_first, lam_abs, lam2)
    vector = jnp.where(use_first, v1, v2)
    return TopEigen(value, vector)


# ----------------------------------------------------------------------------------------
# Plane waves and mode stiffness
# ----------------------------------------------------------------------------------------


def _lattice_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or any(s < 1 for s in shape):
        raise ValueError(f"lattice shape must be (L,) or (H, W) with positive sizes, got {shape}.")
    return shape


def lattice_wavevectors(shape: Sequence[int | np.integer]) -> Float[Array, "*lattice D"]:
    r"""The periodic lattice's wavevector grid $q_a = 2\pi m_a/L_a$ (``fftfreq`` order).

    **Returns:** shape ``(*shape, D)``; entry ``[m_1, .., m_D]`` is the wavevector of the
    ``numpy.fft.fftn`` coefficient with that index.
    """
    return jnp.asarray(_wavevectors_np(_lattice_shape(shape)))


def _wavevectors_np(shape) -> np.ndarray:
    """:func:`lattice_wavevectors` as a NumPy array (static under ``jit``)."""
    axes = [2 * np.pi * np.fft.fftfreq(L) for L in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def _positions(shape) -> Array:
    grids = np.meshgrid(*[np.arange(L) for L in shape], indexing="ij")
    return jnp.asarray(np.stack(grids, axis=-1), dtype=jnp.result_type(float))


def _as_wavevectors(q, D: int) -> Array:
    q = as_float_array(q, "q")
    if D == 1 and (q.ndim == 0 or q.shape[-1] != 1):
        q = q[..., None]
    if q.shape[-1] != D:
        raise ValueError(f"q must have trailing axis of size D={D}, got shape {q.shape}.")
    return q


def plane_wave(
    shape: Sequence[int | np.integer], q: ArrayLike, phase: ArrayLike = 0.0
) -> Float[Array, "*lattice"]:
    r"""Real plane wave $e_q(r) = \cos(q\cdot r + \varphi)$ on the lattice sites $r$.

    For $q$ on the grid of :func:`lattice_wavevectors` it is periodic, and together with its
    quadrature partner ($\varphi=-\pi/2$, i.e. $\sin$) it spans the two-dimensional
    eigenspace $\{e^{\pm iq\cdot r}\}$ of every translation-invariant Jacobian.

    **Arguments:**

    - `shape`: lattice shape ``(L,)`` or ``(H, W)``.
    - `q`: wavevector, shape ``(D,)`` (a scalar is accepted in 1-D).
    - `phase`: $\varphi$.

    **Returns:** shape ``shape``.
    """
    shape = _lattice_shape(shape)
    q = _as_wavevectors(q, len(shape))
    if q.ndim != 1:
        raise ValueError(f"plane_wave takes one wavevector of shape (D,), got {q.shape}.")
    r = _positions(shape)
    return jnp.cos(r @ q + phase)


def mode_stiffness(
    score_fn: ScoreFn, x: Real[ArrayLike, "*lattice"], t: Real[ArrayLike, ""], qs: ArrayLike
) -> Float[Array, " n_q"]:
    r"""Plane-wave Rayleigh quotients $\mu(q,t)={\rm Re}\langle e_q,Je_q\rangle/\|e_q\|^2$ (`docs/theory/patch.md#spectral-probes`).

    With the complex probe $e_q=e^{iq\cdot r}=c+is$ ($c=\cos q\cdot r$, $s=\sin q\cdot r$),
    $$\mu(q) = \frac{c^\top Jc + s^\top Js}{\|c\|^2+\|s\|^2},$$
    two real JVPs per wavevector, vectorised over ``qs`` with ``vmap``. For a
    translation-invariant Jacobian ($J_{ij}=g(j-i)$, e.g. any equivariant patch score at a
    uniform point) and $q$ on the lattice grid this is exactly the real part of the
    eigenvalue $\sum_\delta g(\delta)e^{iq\cdot\delta}$; for the patch model at $x=0$,
    $\mu(q,t)=({\rm SNR}\,\hat C_k(q)-1)/b_t^2$. Sign: the $\mu$ of `docs/theory/patch.md#mode-softening` (positive = growing along
    the score); the stiffness is $-\mu$.

    **Arguments:**

    - `score_fn`, `x`, `t`: as in :func:`score_jacobian`; ``x`` has shape ``(L,)`` or ``(H, W)``.
    - `qs`: wavevectors, shape ``(n_q, D)`` (or ``(n_q,)`` in 1-D).

    **Returns:** $\mu$, shape ``(n_q,)``.
    """
    x = _as_point(x)
    shape = _lattice_shape(x.shape)
    qs = _as_wavevectors(qs, len(shape))
    if qs.ndim != 2:
        raise ValueError(f"qs must have shape (n_q, D), got {qs.shape}.")
    r = _positions(shape).astype(x.dtype)

    def one(q):
        phase = r @ q.astype(x.dtype)
        c, s = jnp.cos(phase), jnp.sin(phase)
        num = jnp.vdot(c, _jvp(score_fn, x, t, c)) + jnp.vdot(s, _jvp(score_fn, x, t, s))
        return num / (jnp.vdot(c, c) + jnp.vdot(s, s))

    return jax.jit(jax.vmap(one))(qs)


def band_stiffness(
    score_fn: ScoreFn,
    x: Real[ArrayLike, "*lattice"],
    t: Real[ArrayLike, ""],
    key: PRNGKeyArray,
    *,
    n_bands: int = 8,
    n_probes: int = 8,
) -> BandStiffness:
    r"""Radially binned mode stiffness from random-phase Fourier probes (`docs/theory/patch.md#spectral-probes`).

    Band $b$ holds the grid wavevectors with $|q|\in[q_b, q_{b+1})$ (equal-width bands from 0
    to the largest $|q|$ on the grid). A probe is $e=\mathrm{Re}\,\mathcal F^{-1}[\mathbf 1_b\,
    e^{i\varphi_q}]$ with independent uniform phases, and
    $$\hat\mu_b = \frac{\sum_p\langle e_p, Je_p\rangle}{\sum_p\|e_p\|^2}$$
    (ratio of sums, one JVP per probe). Each grid mode of the band has expected weight
    $\tfrac12$ in both sums, so for a translation-invariant $J$ with real symmetric spectrum
    $\hat\mu_b$ converges to the plain band average of $\mu(q)$; a band holding a single $|q|$
    in 1-D gives it exactly. Works in 1-D and 2-D; empty bands give NaN.

    **Arguments:**

    - `score_fn`, `x`, `t`: as in :func:`mode_stiffness`.
    - `key`: PRNG key for the phases.
    - `n_bands`: number of radial bands (static).
    - `n_probes`: probes per band (static).

    **Returns:** a :class:`BandStiffness` ``(q, mu, edges)``: band centres, $\hat\mu_b$ (shape
    ``(n_bands,)``) and the ``n_bands + 1`` edges.
    """
    x = _as_point(x)
    shape = _lattice_shape(x.shape)
    if not isinstance(n_bands, int) or n_bands < 1:
        raise ValueError(f"n_bands must be a positive integer, got {n_bands!r}.")
    if not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes must be a positive integer, got {n_probes!r}.")
    qabs = np.linalg.norm(_wavevectors_np(_lattice_shape(shape)), axis=-1)
    edges = np.linspace(0.0, qabs.max() * (1 + 1e-9) + 1e-12, n_bands + 1)
    band_of = np.clip(np.searchsorted(edges, qabs, side="right") - 1, 0, n_bands - 1)
    masks = jnp.asarray(np.stack([band_of == b for b in range(n_bands)]), dtype=x.dtype)
    phases = 2 * jnp.pi * jax.random.uniform(key, (n_bands, n_probes) + shape, dtype=x.dtype)

    def probe(mask, phi):
        e = jnp.real(jnp.fft.ifftn(mask * jnp.exp(1j * phi)))
        return jnp.vdot(e, _jvp(score_fn, x, t, e)), jnp.vdot(e, e)

    num, den = jax.jit(jax.vmap(jax.vmap(probe, in_axes=(None, 0)), in_axes=(0, 0)))(masks, phases)
    mu = jnp.sum(num, axis=1) / jnp.sum(den, axis=1)
    mu = jnp.where(jnp.sum(masks.reshape(n_bands, -1), axis=1) > 0, mu, jnp.nan)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return BandStiffness(jnp.asarray(centres), mu, jnp.asarray(edges))


# ----------------------------------------------------------------------------------------
# Patch-bank covariance and the softening criterion
# ----------------------------------------------------------------------------------------


def _images_and_weights(images, window: int | None):
    if isinstance(images, AbstractPatchMachine):
        if images.kind != "els" or images.bank.training_padding != "circular":
            raise ValueError(
                f"images is a {type(images).__name__} patch machine of kind {images.kind!r}: the "
                "patch-bank covariance is that of the periodic ELS bank (use an ELS machine, "
                "or pass its training images and a window)."
            )
        if window is None:
            window = images.window
        elif window != images.window:
            raise ValueError(f"window={window!r} disagrees with the machine's {images.window!r}.")
        images = images.training
    if isinstance(images, LatticeImages):
        y, w = images.images, images.weights
    else:
        y = as_float_array(images, "images")
        w = None
    if y.ndim not in (2, 3):
        raise ValueError(
            f"images must have shape (N, L) or (N, H, W) (one channel), got {y.shape}."
        )
    if w is None:
        w = jnp.full((y.shape[0],), 1.0 / y.shape[0], dtype=y.dtype)
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window must be an odd positive integer, got {window!r}.")
    if window % 2 == 0:
        raise ValueError(f"window must be odd (k = 2r + 1), got {window}.")
    for L in y.shape[1:]:
        if window > L:
            raise ValueError(f"window={window} exceeds the lattice size {L}.")
    return y, w.astype(y.dtype), window


def _offsets(window: int, D: int) -> np.ndarray:
    r = window // 2
    grids = np.meshgrid(*[np.arange(-r, r + 1)] * D, indexing="ij")
    return np.stack(grids, axis=-1).reshape(-1, D)


def _shift(y: Array, delta) -> Array:
    """``out[..., i] = y[..., i + delta]`` (periodic) on the lattice axes."""
    D = len(delta)
    return jnp.roll(y, tuple(-int(d) for d in delta), axis=tuple(range(-D, 0)))


def _box(y: Array, window: int, D: int) -> Array:
    r = window // 2
    for ax in range(-D, 0):
        acc = y
        for s in range(1, r + 1):
            acc = acc + jnp.roll(y, s, axis=ax) + jnp.roll(y, -s, axis=ax)
        y = acc
    return y


def patch_covariance(
    images: LatticeImages | AbstractPatchMachine | ArrayLike,
    window: int | None = None,
    *,
    snr: ArrayLike | None = None,
) -> Array:
    r"""Patch-bank covariance $c(\delta)=\mathrm{Cov}_{\phi\in\mathcal P}[\phi(0),\phi(\delta)]$, $\delta\in\Omega$ (`docs/theory/patch.md#linearisation`).

    The bank $\mathcal P$ holds every circularly padded $k^D$ patch of every image (the ELS
    bank of `docs/theory/patch.md#patch-posterior`), weighted by the image weights of a :class:`LatticeImages` (uniform
    for an array) and uniformly over positions. With ``snr`` the average is tilted,
    $w(\phi)\propto e^{-{\rm SNR}\|\phi\|^2/2}$: the exact weights of the ELS posterior at
    $x=0$, needed when patch norms differ (`docs/theory/patch.md#tilted-bank`). The tilted $c$ need not be symmetric
    in $\delta$.

    **Arguments:**

    - `images`: a :class:`LatticeImages`, an array ``(N, L)`` / ``(N, H, W)``, or an
      :class:`gltheory.patch.ELS` machine (its training images and window).
    - `window`: odd $k\le L$ (default: the machine's window; required otherwise).
    - `snr`: optional ${\rm SNR}(t)$ for the tilted bank.

    **Returns:** $c(\delta)$, shape ``(k,)`` or ``(k, k)``, index ``r + δ``.
    """
    y, w, window = _images_and_weights(images, window)
    D = y.ndim - 1
    if snr is None:
        pw = jnp.broadcast_to(w.reshape((-1,) + (1,) * D), y.shape)
    else:
        norms = _box(y * y, window, D)
        logw = jnp.log(w).reshape((-1,) + (1,) * D) - 0.5 * jnp.asarray(snr, y.dtype) * norms
        pw = jnp.exp(logw - jax.scipy.special.logsumexp(logw))
    pw = pw / jnp.sum(pw)
    offs = _offsets(window, D)
    m0 = jnp.sum(pw * y)
    cs = []
    for d in offs:
        yd = _shift(y, d)
        cs.append(jnp.sum(pw * y * yd) - m0 * jnp.sum(pw * yd))
    return jnp.stack(cs).reshape((window,) * D)


def windowed_patch_covariance(
    images: LatticeImages | AbstractPatchMachine | ArrayLike,
    window: int | None = None,
    q: ArrayLike | None = None,
    *,
    snr: ArrayLike | None = None,
) -> Array:
    r"""Windowed patch spectrum $\hat C_k(q)=\sum_{\delta\in\Omega}c(\delta)e^{-iq\cdot\delta}$ (`docs/theory/patch.md#mode-softening`).

    $c$ from :func:`patch_covariance`. For an untilted bank $c(\delta)=c(-\delta)$ and
    $\hat C_k$ is real; with ``snr`` the real part $\sum_\delta c(\delta)\cos(q\cdot\delta)$ is
    returned, which is what :func:`mode_stiffness` measures. At the symmetric point of an
    equal-norm bank the ELS Jacobian has the Fourier eigenvalues
    $\mu(q,t)=({\rm SNR}\,\hat C_k(q)-1)/b_t^2$. Two uniform images $\pm\mathbf 1$ give the
    Dirichlet kernel $K(q)=\prod_a\sin(kq_a/2)/\sin(q_a/2)$.

    **Arguments:**

    - `images`, `window`, `snr`: as in :func:`patch_covariance`.
    - `q`: wavevectors, shape ``(..., D)`` (or ``(...,)`` in 1-D); default the lattice grid
      of :func:`lattice_wavevectors`.

    **Returns:** $\hat C_k(q)$, shape ``q.shape[:-1]`` (``lattice_shape`` by default).
    """
    y, _, window = _images_and_weights(images, window)
    D = y.ndim - 1
    c = patch_covariance(images, window, snr=snr).reshape(-1)
    if q is None:
        q = lattice_wavevectors(y.shape[1:])
    q = _as_wavevectors(q, D)
    offs = jnp.asarray(_offsets(window, D), dtype=y.dtype)
    return jnp.cos(q.astype(y.dtype) @ offs.T) @ c


def critical_alpha_bar(
    images: LatticeImages | AbstractPatchMachine | ArrayLike, window: int | None = None
) -> SofteningPoint:
    r"""Score (S) softening point of the equal-norm patch model, $\bar\alpha_c=1/(1+\max_q\hat C_k(q))$.

    `docs/theory/patch.md#mode-softening`: mode $q$ of the ELS Jacobian at $x=0$ changes sign when
    ${\rm SNR}\,\hat C_k(q)=1$; the first is $q^\star=\arg\max_q\hat C_k(q)$ over the lattice
    grid. Any process: $t_c^S$ = ``process.t_of_alpha_bar(alpha_bar)``.

    **Validity.** The Jacobian at $x=0$ equals $\frac{a^2}{b^4}c(j-i)\mathbf 1[j-i\in\Omega]
    -\delta_{ij}/b^2$ exactly whenever all patches have the same norm (e.g. ±1 data), whatever
    the bank mean; $x=0$ is a *fixed point* of the score only if the bank mean vanishes (e.g.
    data closed under $y\to-y$). For unequal norms the correct statement uses the tilted bank
    (``snr`` in :func:`windowed_patch_covariance`) and is a self-consistency in SNR, which is
    **not** solved here.

    **Arguments:**

    - `images`: a :class:`LatticeImages`, an array ``(N, L)`` / ``(N, H, W)``, or an
      :class:`gltheory.patch.ELS` machine (its training images and window).
    - `window`: odd $k\le L$ (default: the machine's window; required otherwise).

    **Returns:** :class:`SofteningPoint` ``(alpha_bar, q_star, c_max)``; ``alpha_bar`` is 1
    (never unstable) when $\max_q\hat C_k\le0$ (constant data).
    """
    y, _, window = _images_and_weights(images, window)
    spec = windowed_patch_covariance(images, window)
    qgrid = lattice_wavevectors(y.shape[1:])
    idx = jnp.argmax(spec.reshape(-1))
    c_max = spec.reshape(-1)[idx]
    q_star = qgrid.reshape(-1, y.ndim - 1)[idx]
    alpha_bar = 1.0 / (1.0 + jnp.maximum(c_max, 0.0))
    return SofteningPoint(alpha_bar, q_star, c_max)


# ----------------------------------------------------------------------------------------
# Criteria, correlation length, critical time
# ----------------------------------------------------------------------------------------

Criterion = Literal["score", "sde", "ode"]


def drift_offset(
    process: AbstractProcess, t: ArrayLike, criterion: Criterion | str = "score"
) -> Array:
    r"""Offset $o$ such that mode $q$ of the chosen vector field grows iff $\mu(q,t)+o>0$.

    Reverse-SDE drift $g^2s-fx$ has rate $g^2(\mu+o)$ with $o=-f/g^2$; PF-ODE drift
    $\tfrac12g^2s-fx$ has $o=-2f/g^2$; the score itself $o=0$ (`docs/theory/patch.md#growth-rates`). VP/OU:
    $\tfrac12$ and $1$; VE: 0.
    """
    if criterion == "score":
        return jnp.zeros(jnp.shape(t))
    if criterion == "sde":
        return -process.f(t) / process.g2(t)
    if criterion == "ode":
        return -2 * process.f(t) / process.g2(t)
    raise ValueError(f"criterion must be 'score', 'sde' or 'ode', got {criterion!r}.")


def linear_response_length(
    score_fn: ScoreFn,
    x: Real[ArrayLike, "*lattice"],
    t: Real[ArrayLike, ""],
    *,
    offset: Real[ArrayLike, ""] = 0.0,
    site: tuple[int, ...] | None = None,
) -> Float[Array, ""]:
    r"""Ornstein–Zernike length $\xi^2=\partial_{q^2}[-\mu]/(-\mu(0))$ from the point response (`docs/theory/field.md#correlation-length`).

    For a translation-invariant Jacobian $J_{ij}=g(j-i)$ the mode function is
    $\mu(q)=\sum_\delta g(\delta)\cos(q\cdot\delta)$ for *every* $q$, so its $q^2$ derivative at
    0 is the second moment of the response $R(r)=(Je_{\rm site})(r)$ to a unit kick (one JVP):
    $$\xi^2 = \frac{\sum_r |r|^2R(r)}{2D\,\big(-\sum_rR(r)-o\big)},$$
    with $r$ the minimum-image displacement from the site, $D$ the lattice dimension
    (isotropic average of the per-direction lengths) and $o$ the offset of
    :func:`drift_offset` (0: score field; VP SDE $\tfrac12$ gives $\xi^2_{\rm SDE}=2\kappa/(2r-1)$
    in OU units). Valid before the transition in generative order ($-\mu(0)-o>0$); for the
    two-image patch model $\xi^2=\frac{k(k^2-1)}{24}\frac{\bar\alpha}{1-\bar\alpha(1+k)}$ (1-D).

    **Arguments:**

    - `score_fn`, `x`, `t`: as in :func:`mode_stiffness`.
    - `offset`: $o$ (default 0, the score criterion).
    - `site`: the kicked site (default the origin).

    **Returns:** $\xi$ (NaN when $-\mu(0)-o\le0$ or the moment is negative).
    """
    x = _as_point(x)
    shape = _lattice_shape(x.shape)
    D = len(shape)
    site = (0,) * D if site is None else tuple(int(s) for s in site)
    if len(site) != D:
        raise ValueError(f"site must have {D} coordinates, got {site}.")
    kick = jnp.zeros(shape, x.dtype).at[site].set(1.0)
    R = _jvp(score_fn, x, t, kick)
    disp = []
    for a, L in enumerate(shape):
        d = (np.arange(L) - site[a] + L // 2) % L - L // 2
        disp.append(d)
    grids = np.meshgrid(*disp, indexing="ij")
    r2 = jnp.asarray(sum(g.astype(float) ** 2 for g in grids), dtype=x.dtype)
    stiff0 = -jnp.sum(R) - offset
    xi2 = jnp.sum(r2 * R) / (2 * D * stiff0)
    return jnp.where((stiff0 > 0) & (xi2 >= 0), jnp.sqrt(jnp.abs(xi2)), jnp.nan)


def jacobian_critical_time(
    score_fn: ScoreFn,
    x: Real[ArrayLike, "*lattice"],
    process: AbstractProcess,
    t_min: Real[ArrayLike, ""],
    t_max: Real[ArrayLike, ""],
    *,
    criterion: Criterion | str = "score",
    tol: Real[ArrayLike, ""] = 1e-12,
    max_iter: int = 200,
) -> Float[Array, ""]:
    r"""Time where the top eigenvalue of the (symmetrised) Jacobian at ``x`` crosses $-o$, by bisection.

    Finds $t_c\in(t_{\min},t_{\max})$ with $\lambda_{\max}(S(t_c))+o(t_c)=0$, $S$ the symmetric
    part of the dense :func:`score_jacobian` at the fixed point ``x`` and $o$ from
    :func:`drift_offset` (`docs/theory/critical-times.md#three-criteria`: ``"score"`` → $t_c^S$, ``"sde"`` → $t_c^D$, ``"ode"`` →
    $t_c^O$). Requires a sign change: unstable ($>0$) at $t_{\min}$, stable at $t_{\max}$.
    Dense, so for small lattices. The bisection is ``optimistix.Bisection`` inside one jitted
    program, so the function can be jitted and vmapped. Derivatives (in ``x``, the process's
    parameters, or anything ``score_fn`` closes over) come from the implicit-function theorem at
    the root (optimistix's implicit adjoint:
    $dt_c = -\partial_\theta F/\partial_tF\,d\theta$, $F = \lambda_{\max}+o$), not from the
    iterations; the bracket ends have no effect on $t_c$ and get no derivative.

    **Arguments:**

    - `score_fn`: score callable; `x`: the (symmetric) point; `process`: forward process.
    - `t_min`, `t_max`: bracket in forward time.
    - `criterion`: ``"score"``, ``"sde"`` or ``"ode"``.
    - `tol`: bracket width at which to stop (once the field is below ``tol`` too);
      `max_iter`: at most this many halvings.

    **Returns:** $t_c$ as a scalar array.
    """
    x = _as_point(x)
    drift_offset(process, 1.0, criterion)  # validates criterion
    if not isinstance(process, AbstractProcess):
        raise ValueError(f"process must be a gltheory process, got {type(process).__name__}.")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}.")
    bracket = (t_min, t_max, tol)
    if is_concrete(bracket) and not (0 < float(t_min) < float(t_max) and float(tol) > 0):
        raise ValueError(
            f"need 0 < t_min < t_max and tol > 0, got t_min={t_min}, t_max={t_max}, tol={tol}."
        )
    lo, hi, tol = (jax.lax.stop_gradient(jnp.asarray(v, x.dtype)) for v in bracket)
    t_c, f_lo, f_hi = _jacobian_critical_time_impl(
        score_fn, x, process, lo, hi, tol, criterion, int(max_iter)
    )
    if is_concrete((f_lo, f_hi)):
        if not float(f_lo) > 0 > float(f_hi):
            raise ValueError(
                f"no sign change of the top eigenvalue on [{float(lo)}, {float(hi)}]: "
                f"{float(f_lo):.3g} at t_min, {float(f_hi):.3g} at t_max (need > 0 then < 0)."
            )
        return t_c
    return check_result(
        t_c,
        ~((f_lo > 0) & (f_hi < 0)),
        "jacobian_critical_time: no sign change of the top eigenvalue on [t_min, t_max].",
    )


@eqx.filter_jit
def _jacobian_critical_time_impl(score_fn, x, process, lo, hi, tol, criterion, max_iter):
    def field(t, args):
        x, process = args
        n = x.size
        J = jax.jacfwd(lambda y: score_fn(y.reshape(x.shape), t).reshape(n))(x.reshape(n))
        lam = jnp.linalg.eigvalsh(0.5 * (J + J.T))[-1]
        return lam + drift_offset(process, t, criterion)

    args = (x, process)
    sol = optx.root_find(
        field,
        optx.Bisection(rtol=0.0, atol=tol, flip=True),  # unstable (> 0) at lo, stable at hi
        0.5 * (lo + hi),
        args=args,
        options={"lower": lo, "upper": hi},
        max_steps=max_iter,
        throw=False,
    )
    return sol.value, field(lo, args), field(hi, args)
