r"""Data laws with exact scores.

See `docs/theory/score.md#datasets`.

Every dataset is a final ``eqx.Module`` with an ``event_shape`` and ``sample(key, n)``. The
Gaussian-channel posterior of `docs/theory/score.md#boltzmann-posterior`,

$$p(y\mid x,t)\propto p_0(y)\exp\!\Big(\frac{a_t}{b_t^2}x\cdot y - \frac{a_t^2}{2b_t^2}\|y\|^2\Big),$$

depends on the process only through $(a_t, b_t^2)$, so datasets implement the posterior in
terms of those two numbers (methods ``log_marginal``, ``posterior_mean``,
``posterior_cov``) and never import a process. Use :func:`gltheory.score`,
:func:`gltheory.denoiser`, :func:`gltheory.log_prob` and :func:`gltheory.posterior_cov`
for the process-level entry points.

Conventions for these methods: ``x`` has shape ``(*batch, d)`` with the event flattened to
``d``; ``a`` and ``b2`` are scalars or have shape ``(*batch, 1)``. Every softmax is a
log-sum-exp, so nothing overflows as $t\to0$ or at huge SNR.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ._checks import as_float_array, check_values, is_concrete

__all__ = [
    "AbstractData",
    "AbstractFiniteSet",
    "DeltaMixture",
    "TwoPoint",
    "Gaussian",
    "GaussianMixture",
    "Hypersphere",
    "LatticeImages",
    "uniform_images",
    "stripes",
    "checkerboards",
    "random_binary_images",
]

_LOG_2PI = math.log(2 * math.pi)


class AbstractData(eqx.Module):
    """A data law $p_0$ with an exact posterior under Gaussian noising."""

    event_shape: eqx.AbstractVar[tuple[int, ...]]

    @property
    def dim(self) -> int:
        """Number of scalar degrees of freedom $d$ of one sample."""
        return int(np.prod(self.event_shape, dtype=np.int64))

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, n: int | np.integer) -> Float[Array, "n ..."]:
        """Draw ``n`` samples of shape ``(n, *event_shape)``."""

    @abc.abstractmethod
    def mean(self) -> Float[Array, " d"]:
        r"""Data mean $\mathbb E[y]$ (flattened)."""

    @abc.abstractmethod
    def covariance(self) -> Float[Array, "d d"]:
        r"""Data covariance $\mathrm{Cov}[y]$ (flattened)."""

    @abc.abstractmethod
    def log_marginal(
        self,
        x: Float[Array, "*batch d"],
        a: Real[ArrayLike, ""] | Float[Array, "*batch 1"],
        b2: Real[ArrayLike, ""] | Float[Array, "*batch 1"],
    ) -> Float[Array, "*batch"]:
        r"""$\ln p_t(x)$ for $x = a y + b z$."""

    @abc.abstractmethod
    def posterior_mean(
        self,
        x: Float[Array, "*batch d"],
        a: Real[ArrayLike, ""] | Float[Array, "*batch 1"],
        b2: Real[ArrayLike, ""] | Float[Array, "*batch 1"],
    ) -> Float[Array, "*batch d"]:
        r"""Denoiser $\mathbb E[y\mid x]$."""

    @abc.abstractmethod
    def posterior_cov(
        self,
        x: Float[Array, "*batch d"],
        a: Real[ArrayLike, ""] | Float[Array, "*batch 1"],
        b2: Real[ArrayLike, ""] | Float[Array, "*batch 1"],
    ) -> Float[Array, "*batch d d"]:
        r"""$\mathrm{Cov}[y\mid x]$, shape ``(*batch, d, d)``."""


# ----------------------------------------------------------------------------------------------
# finite mixtures of deltas
# ----------------------------------------------------------------------------------------------


def _check_finite(arr: Array, name: str) -> Array:
    """``arr`` checked to hold only finite numbers (concrete: ``ValueError`` naming `name`;
    traced: :func:`check_values`'s guard). Returns the (possibly guarded) array."""
    return check_values(
        arr,
        lambda v: ~(abs(v) < float("inf")).all(),
        f"{name} must be finite (no NaN or Inf entries).",
    )


def _check_weights(weights, k: int, name: str = "weights") -> Array:
    if weights is None:
        return jnp.full((k,), 1.0 / k)
    w = as_float_array(weights, name)
    if w.shape != (k,):
        raise ValueError(f"{name} must have shape ({k},) to match the components, got {w.shape}.")
    w = check_values(
        w,
        lambda v: (v < 0).any() | ~(abs(v) < float("inf")).all(),
        f"{name} must be non-negative and finite, got {weights}.",
    )
    tol = 1e-5 if w.dtype == jnp.float32 else 1e-10
    total = float(np.sum(np.asarray(w))) if is_concrete(w) else float("nan")
    return check_values(
        w, lambda v: abs(v.sum() - 1) > tol * max(1, k), f"{name} must sum to 1, got sum {total}."
    )


def _squeeze(c):
    """Drop the trailing singleton event axis of a batch-shaped coefficient (a or b2)."""
    return c[..., 0] if jnp.ndim(c) > 0 else c


def _delta_logits(points: Array, log_w: Array, x: Array, a, b2) -> Array:
    """Posterior log-weights (unnormalised): ln w_k + (a x.y_k - a^2 |y_k|^2 / 2) / b2."""
    sq = jnp.sum(points**2, axis=-1)
    return log_w + (a * (x @ points.T) - 0.5 * a**2 * sq) / b2


def _delta_log_marginal(points, log_w, x, a, b2):
    d = points.shape[-1]
    lse = jax.nn.logsumexp(_delta_logits(points, log_w, x, a, b2), axis=-1)
    xx = jnp.sum(x**2, axis=-1)
    b2s = _squeeze(b2)
    return lse - 0.5 * xx / b2s - 0.5 * d * (_LOG_2PI + jnp.log(b2s))


def _delta_posterior_mean(points, log_w, x, a, b2):
    p = jax.nn.softmax(_delta_logits(points, log_w, x, a, b2), axis=-1)
    return p @ points


def _delta_posterior_cov(points, log_w, x, a, b2):
    p = jax.nn.softmax(_delta_logits(points, log_w, x, a, b2), axis=-1)
    m = p @ points
    dev = points - m[..., None, :]  # (*batch, K, d)
    return jnp.einsum("...k,...ki,...kj->...ij", p, dev, dev)


class AbstractFiniteSet(AbstractData):
    """Common posterior of a finite weighted set of points (delta mixture), any event shape.

    Subclasses hold the points as ``(K, *event_shape)`` and expose them through ``_stacked``.
    """

    weights: eqx.AbstractVar[Array]

    @property
    @abc.abstractmethod
    def _stacked(self) -> Array:
        """The points, shape ``(K, *event_shape)``."""

    @property
    def _flat(self):
        return self._stacked.reshape(self._stacked.shape[0], -1)

    def sample(self, key, n):
        idx = jax.random.choice(key, self._stacked.shape[0], (n,), p=self.weights)
        return self._stacked[idx]

    def mean(self):
        return self.weights @ self._flat

    def covariance(self):
        dev = self._flat - self.mean()
        return jnp.einsum("k,ki,kj->ij", self.weights, dev, dev)

    def log_marginal(self, x, a, b2):
        return _delta_log_marginal(self._flat, jnp.log(self.weights), x, a, b2)

    def posterior_mean(self, x, a, b2):
        return _delta_posterior_mean(self._flat, jnp.log(self.weights), x, a, b2)

    def posterior_cov(self, x, a, b2):
        return _delta_posterior_cov(self._flat, jnp.log(self.weights), x, a, b2)


class DeltaMixture(AbstractFiniteSet):
    r"""$p_0 = \sum_k w_k\,\delta(y - y_k)$: K points with any weights.

    The denoiser is one modern-Hopfield step, $\mathbb E[y\mid x] = \sum_k y_k\,
    \mathrm{softmax}_k\big(\ln w_k + \frac{a_t}{b_t^2}x\cdot y_k - \frac{a_t^2}{2b_t^2}\|y_k\|^2\big)$
    (`docs/theory/score.md#delta-mixture`).

    **Arguments:**

    - `points`: shape ``(K, *event_shape)``.
    - `weights`: shape ``(K,)``, non-negative, summing to 1 (default uniform).
    """

    points: Array
    weights: Array
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self, points: Real[ArrayLike, " k *event"], weights: Real[ArrayLike, " k"] | None = None
    ):
        pts = as_float_array(points, "points")
        if pts.ndim < 2:
            raise ValueError(
                f"points must have shape (K, *event_shape) with at least 2 axes, got {pts.shape}."
            )
        if pts.shape[0] == 0:
            raise ValueError("points is empty: a DeltaMixture needs at least one point.")
        self.points = _check_finite(pts, "points")
        self.event_shape = tuple(pts.shape[1:])
        self.weights = _check_weights(weights, pts.shape[0])

    @property
    def _stacked(self):
        return self.points


class LatticeImages(AbstractFiniteSet):
    r"""A finite set of lattice images $\{y^\mu\}$ (shape ``(N, L)``, ``(N, H, W)`` or with channels).

    As a data law it is the uniform (or weighted) delta mixture over the images, so its exact
    score is the *ideal* (whole-image, memorising) score of Kamb & Ganguli (`docs/theory/patch.md#machines`).
    Local and equivariant patch scores of the same images are built on ``images``.

    **Arguments:**

    - `images`: shape ``(N, *lattice_shape)``.
    - `weights`: optional shape ``(N,)`` weights (default uniform).
    """

    images: Array
    weights: Array
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self, images: Real[ArrayLike, " k *lattice"], weights: Real[ArrayLike, " k"] | None = None
    ):
        imgs = as_float_array(images, "images")
        if imgs.ndim < 2:
            raise ValueError(f"images must have shape (N, *lattice_shape), got {imgs.shape}.")
        if imgs.shape[0] == 0:
            raise ValueError("images is empty: a LatticeImages set needs at least one image.")
        self.images = _check_finite(imgs, "images")
        self.event_shape = tuple(imgs.shape[1:])
        self.weights = _check_weights(weights, imgs.shape[0])

    @property
    def _stacked(self):
        return self.images


class TwoPoint(AbstractData):
    r"""Two deltas $p_0 = w\,\delta(y-\mu) + (1-w)\,\delta(y+\mu)$ in $d$ dimensions.

    Closed form (`docs/theory/meanfield.md#curie-weiss`): $\mathbb E[y\mid x] = \mu\tanh(h)$ with
    $h = \frac{a_t}{b_t^2}\mu\cdot x + \tfrac12\ln\frac{w}{1-w}$. The covariance top eigenvalue
    (for $w=\tfrac12$) is $\Lambda = \|\mu\|^2$, which sets the critical times of
    `docs/theory/critical-times.md#closed-forms`.

    **Arguments:**

    - `mu`: a scalar (the point is $\mu\,\mathbf 1_d$, Raya & Ambrogioni's and Biroli et al.'s
      convention) or a vector of shape ``(dim,)``.
    - `dim`: dimension when `mu` is a scalar.
    - `weight`: $w\in(0,1)$, the weight of $+\mu$.
    """

    mu: Array
    weight: Array
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        mu: Real[ArrayLike, ""] | Real[ArrayLike, " d"],
        dim: int | np.integer | None = None,
        weight: Real[ArrayLike, ""] = 0.5,
    ):
        m = _check_finite(as_float_array(mu, "mu"), "mu")
        if m.ndim == 0:
            dim = 1 if dim is None else dim
            if not isinstance(dim, (int, np.integer)) or dim < 1:
                raise ValueError(f"dim must be a positive integer, got {dim!r}.")
            m = m * jnp.ones((int(dim),), dtype=m.dtype)
        elif m.ndim == 1:
            if dim is not None and dim != m.shape[0]:
                raise ValueError(f"mu has shape {m.shape} but dim={dim}; they must agree.")
            if m.shape[0] == 0:
                raise ValueError("mu is empty: TwoPoint needs dim >= 1.")
        else:
            raise ValueError(f"mu must be a scalar or a vector, got shape {m.shape}.")
        self.mu = m
        self.event_shape = (m.shape[0],)
        w = as_float_array(weight, "weight")
        if w.ndim != 0:
            raise ValueError(f"weight must be a scalar, got shape {w.shape}.")
        self.weight = check_values(
            w, lambda v: ~((v > 0) & (v < 1)), f"weight must lie in (0, 1), got {weight}."
        )

    @property
    def Lambda(self) -> Array:
        r"""$\Lambda = \|\mu\|^2$."""
        return jnp.sum(self.mu**2)

    def _field(self, x, a, b2):
        bias = 0.5 * (jnp.log(self.weight) - jnp.log1p(-self.weight))
        return _squeeze(a) / _squeeze(b2) * (x @ self.mu) + bias

    def sample(self, key, n):
        plus = jax.random.bernoulli(key, self.weight, (n,))
        return jnp.where(plus[:, None], self.mu, -self.mu)

    def mean(self):
        return (2 * self.weight - 1) * self.mu

    def covariance(self):
        return 4 * self.weight * (1 - self.weight) * jnp.outer(self.mu, self.mu)

    def log_marginal(self, x, a, b2):
        d = self.mu.shape[0]
        a_s, b2_s = _squeeze(a), _squeeze(b2)
        u = a_s * (x @ self.mu) / b2_s
        mix = jnp.logaddexp(jnp.log(self.weight) + u, jnp.log1p(-self.weight) - u)
        quad = (jnp.sum(x**2, axis=-1) + a_s**2 * jnp.sum(self.mu**2)) / (2 * b2_s)
        return mix - quad - 0.5 * d * (_LOG_2PI + jnp.log(b2_s))

    def posterior_mean(self, x, a, b2):
        return jnp.tanh(self._field(x, a, b2))[..., None] * self.mu

    def posterior_cov(self, x, a, b2):
        sech2 = 1 - jnp.tanh(self._field(x, a, b2)) ** 2
        return sech2[..., None, None] * jnp.outer(self.mu, self.mu)


# ----------------------------------------------------------------------------------------------
# Gaussians
# ----------------------------------------------------------------------------------------------


class Gaussian(AbstractData):
    r"""Gaussian data $\mathcal N(\mu, C)$; never breaks symmetry (`docs/theory/critical-times.md#gaussian-control`).

    With $C = U\,\mathrm{diag}(\lambda)\,U^\top$ and $z = U^\top(x - a\mu)$:
    $\mathbb E[y\mid x] = \mu + U\,\mathrm{diag}\big(\tfrac{a\lambda}{a^2\lambda+b^2}\big)z$,
    $\mathrm{Cov}[y\mid x] = U\,\mathrm{diag}\big(\tfrac{\lambda b^2}{a^2\lambda+b^2}\big)U^\top$.

    **Arguments:**

    - `mean`: shape ``(d,)``.
    - `cov`: a scalar (isotropic), a vector ``(d,)`` (diagonal) or a symmetric positive
      semi-definite matrix ``(d, d)``.
    """

    loc: Array
    cov: Array
    evals: Array
    evecs: Array
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        mean: Real[ArrayLike, " d"],
        cov: Real[ArrayLike, ""] | Real[ArrayLike, " d"] | Real[ArrayLike, "d d"],
    ):
        mu = as_float_array(mean, "mean")
        if mu.ndim != 1 or mu.shape[0] == 0:
            raise ValueError(f"mean must be a non-empty vector (d,), got shape {mu.shape}.")
        mu = _check_finite(mu, "mean")
        d = mu.shape[0]
        c = _check_finite(as_float_array(cov, "cov"), "cov")
        if c.ndim == 0:
            c = check_values(c, lambda v: v < 0, f"cov (a variance) must be >= 0, got {cov}.")
            c = c * jnp.eye(d, dtype=c.dtype)
        elif c.ndim == 1:
            if c.shape != (d,):
                raise ValueError(f"cov as a vector must have shape ({d},), got {c.shape}.")
            c = check_values(
                c, lambda v: (v < 0).any(), f"cov (variances) must be >= 0, got {cov}."
            )
            c = jnp.diag(c)
        elif c.shape != (d, d):
            raise ValueError(f"cov must be a scalar, ({d},) or ({d}, {d}), got shape {c.shape}.")
        c = check_values(
            c,
            lambda v: (abs(v - v.T) > 1e-6 * (1 + abs(v).max())).any(),
            "cov must be symmetric.",
        )
        c = 0.5 * (c + c.T)
        evals, evecs = jnp.linalg.eigh(c)
        scale = jnp.maximum(jnp.max(jnp.abs(evals)), 1.0)
        tol = 1e-5 if evals.dtype == jnp.float32 else 1e-10
        evals = check_values(
            evals,
            lambda v: (v < -tol * scale).any(),
            "cov must be positive semi-definite (it has a negative eigenvalue).",
        )
        self.loc = mu
        self.cov = c
        self.evals = jnp.maximum(evals, 0.0)
        self.evecs = evecs
        self.event_shape = (d,)

    def sample(self, key, n):
        z = jax.random.normal(key, (n, self.dim), dtype=self.loc.dtype)
        return self.loc + (z * jnp.sqrt(self.evals)) @ self.evecs.T

    def mean(self):
        return self.loc

    def covariance(self):
        return self.cov

    def _z(self, x, a):
        return (x - a * self.loc) @ self.evecs

    def log_marginal(self, x, a, b2):
        var = a**2 * self.evals + b2
        z = self._z(x, a)
        return -0.5 * jnp.sum(z**2 / var + jnp.log(var) + _LOG_2PI, axis=-1)

    def posterior_mean(self, x, a, b2):
        var = a**2 * self.evals + b2
        return self.loc + (a * self.evals / var * self._z(x, a)) @ self.evecs.T

    def posterior_cov(self, x, a, b2):
        var = a**2 * self.evals + b2
        lam = self.evals * b2 / var  # (*batch, d) or (d,)
        lam = jnp.broadcast_to(lam, x.shape[:-1] + (self.dim,))
        return jnp.einsum("ik,...k,jk->...ij", self.evecs, lam, self.evecs)


class GaussianMixture(AbstractData):
    r"""Mixture of Gaussians with isotropic or diagonal components (Biroli et al.'s setting).

    $p_0 = \sum_k w_k\,\mathcal N(\mu_k, \mathrm{diag}(v_k))$. Responsibilities are a
    log-sum-exp softmax of $\ln w_k + \ln\mathcal N(x; a\mu_k, a^2v_k + b^2)$; within a
    component the posterior is Gaussian with mean $\mu_k + \frac{a v_k}{a^2v_k+b^2}(x-a\mu_k)$.

    **Arguments:**

    - `means`: shape ``(K, d)``.
    - `variances`: shape ``(K,)`` (isotropic) or ``(K, d)`` (diagonal), all >= 0.
    - `weights`: shape ``(K,)`` (default uniform).
    """

    means: Array
    variances: Array
    weights: Array
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        means: Real[ArrayLike, "k d"],
        variances: Real[ArrayLike, ""] | Real[ArrayLike, " k"] | Real[ArrayLike, "k d"],
        weights: Real[ArrayLike, " _"] | None = None,
    ):
        mu = as_float_array(means, "means")
        if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
            raise ValueError(f"means must have shape (K, d) with K, d >= 1, got {mu.shape}.")
        mu = _check_finite(mu, "means")
        k, d = mu.shape
        v = _check_finite(as_float_array(variances, "variances"), "variances")
        if v.ndim == 0:
            v = jnp.full((k,), v)
        if v.shape == (k,):
            v = jnp.broadcast_to(v[:, None], (k, d))
        elif v.shape != (k, d):
            raise ValueError(f"variances must have shape ({k},) or ({k}, {d}), got {v.shape}.")
        self.variances = check_values(
            v, lambda x: (x < 0).any(), f"variances must be >= 0, got {variances}."
        )
        self.means = mu
        self.weights = _check_weights(weights, k)
        self.event_shape = (d,)

    def sample(self, key, n):
        k1, k2 = jax.random.split(key)
        idx = jax.random.choice(k1, self.means.shape[0], (n,), p=self.weights)
        z = jax.random.normal(k2, (n, self.dim), dtype=self.means.dtype)
        return self.means[idx] + jnp.sqrt(self.variances[idx]) * z

    def mean(self):
        return self.weights @ self.means

    def covariance(self):
        m = self.mean()
        dev = self.means - m
        return jnp.einsum("k,ki,kj->ij", self.weights, dev, dev) + jnp.diag(
            self.weights @ self.variances
        )

    def _components(self, x, a, b2):
        # x: (*batch, d); a, b2: scalars or (*batch, 1)
        a_ = jnp.asarray(a)[..., None] if jnp.ndim(a) > 0 else a  # (*batch, 1, 1)
        b2_ = jnp.asarray(b2)[..., None] if jnp.ndim(b2) > 0 else b2
        var = a_**2 * self.variances + b2_  # (*batch?, K, d)
        diff = x[..., None, :] - a_ * self.means  # (*batch, K, d)
        loglik = -0.5 * jnp.sum(diff**2 / var + jnp.log(var) + _LOG_2PI, axis=-1)
        logr = jnp.log(self.weights) + loglik
        gain = a_ * self.variances / var
        comp_mean = self.means + gain * diff
        comp_var = self.variances * b2_ / var
        return logr, comp_mean, comp_var

    def log_marginal(self, x, a, b2):
        logr, _, _ = self._components(x, a, b2)
        return jax.nn.logsumexp(logr, axis=-1)

    def posterior_mean(self, x, a, b2):
        logr, cm, _ = self._components(x, a, b2)
        r = jax.nn.softmax(logr, axis=-1)
        return jnp.einsum("...k,...kd->...d", r, cm)

    def posterior_cov(self, x, a, b2):
        logr, cm, cv = self._components(x, a, b2)
        r = jax.nn.softmax(logr, axis=-1)
        m = jnp.einsum("...k,...kd->...d", r, cm)
        dev = cm - m[..., None, :]
        within = jnp.einsum("...k,...kd->...d", r, jnp.broadcast_to(cv, cm.shape))
        return jnp.einsum("...k,...ki,...kj->...ij", r, dev, dev) + within[..., None] * jnp.eye(
            self.dim, dtype=cm.dtype
        )


# ----------------------------------------------------------------------------------------------
# uniform hypersphere
# ----------------------------------------------------------------------------------------------


@functools.cache
def _gauss_legendre_160() -> tuple[np.ndarray, np.ndarray]:
    """160-node Gauss–Legendre rule on [-1, 1], computed on first use (not at import)."""
    return np.polynomial.legendre.leggauss(160)


_SMALL_KAPPA = 1e-3


def _sphere_tilt(kappa2: Array, d: int):
    r"""$\ln\mathbb E_s[e^{\kappa s}]$ and $A(\kappa)/\kappa=\mathbb E[s\,e^{\kappa s}]/(\kappa\,\mathbb E[e^{\kappa s}])$.

    $s=\cos\theta$ is the cosine between a uniform point on $S^{d-1}$ and a fixed direction,
    with density $\propto\sin^{d-2}\theta$ on $[0,\pi]$. $A_d(\kappa)=I_{d/2}(\kappa)/I_{d/2-1}(\kappa)$.

    Gauss–Legendre quadrature (160 nodes) over a window of 12 Laplace widths around the mode
    $\theta^\ast$ of $e^{\kappa\cos\theta}\sin^{d-2}\theta$ (clipped to $[0,\pi]$), in log space:
    exact to float64 round-off for every $\kappa\ge0$ and stable for huge $\kappa$ (the window
    shrinks like $\kappa^{-1/2}$; $1-\cos\theta$ is computed as $2\sin^2(\theta/2)$). Below
    $\kappa=10^{-3}$ a 3-term series in $\kappa^2$ is used, so the functions are smooth in
    $x$ at $x=0$ (autodiff Jacobians at the symmetric point work).
    Both outputs are functions of ``kappa2`` $=\kappa^2$.
    """
    nu = 0.5 * d - 1.0
    small = kappa2 < _SMALL_KAPPA**2
    k2 = jnp.where(small, 1.0, kappa2)
    kappa = jnp.sqrt(k2)
    # mode of kappa cos(theta) + 2 nu log sin(theta): cos = kappa / (nu + sqrt(nu^2 + kappa^2))
    c = kappa / (nu + jnp.sqrt(nu**2 + k2))
    s_mode = jnp.sqrt(jnp.maximum(2 * nu * c / kappa, 0.0))
    theta_star = jnp.arctan2(s_mode, c)
    curv = jnp.where(nu > 0, kappa * (c + 1 / jnp.maximum(c, 1e-30)), kappa)
    width = 1 / jnp.sqrt(curv)
    lo = jnp.clip(theta_star - 12 * width, 0.0, math.pi)
    hi = jnp.clip(theta_star + 12 * width, 0.0, math.pi)
    gl_nodes, gl_weights = _gauss_legendre_160()
    nodes = jnp.asarray(gl_nodes, dtype=k2.dtype)
    wts = jnp.asarray(gl_weights, dtype=k2.dtype)
    half = 0.5 * (hi - lo)[..., None]
    theta = 0.5 * (hi + lo)[..., None] + half * nodes
    one_minus_cos = 2 * jnp.sin(0.5 * theta) ** 2
    log_sin = jnp.log(jnp.maximum(jnp.sin(theta), 1e-300 if k2.dtype == jnp.float64 else 1e-37))
    log_f = -kappa[..., None] * one_minus_cos + (d - 2) * log_sin
    log_int = jax.nn.logsumexp(log_f, axis=-1, b=wts * half)
    # normaliser: int_0^pi sin^{d-2} = sqrt(pi) Gamma((d-1)/2) / Gamma(d/2)
    log_norm = 0.5 * math.log(math.pi) + math.lgamma(0.5 * (d - 1)) - math.lgamma(0.5 * d)
    log_e = kappa + log_int - log_norm
    p = jax.nn.softmax(log_f + jnp.log(wts * half), axis=-1)
    one_minus_a = jnp.sum(p * one_minus_cos, axis=-1)
    a_over_k = (1 - one_minus_a) / kappa
    # series: ln E = k^2/(2d) - k^4/(4 d^2 (d+2));  A/k = 1/d - k^2/(d^2 (d+2))
    log_e_small = kappa2 / (2 * d) - kappa2**2 / (4 * d**2 * (d + 2))
    a_over_k_small = 1 / d - kappa2 / (d**2 * (d + 2))
    return jnp.where(small, log_e_small, log_e), jnp.where(small, a_over_k_small, a_over_k)


class Hypersphere(AbstractData):
    r"""Uniform law on the sphere of radius $R$ in $d\ge2$ dimensions (`docs/theory/score.md#hypersphere`).

    $\mathbb E[y\mid x] = R\,A_d(\kappa)\,\hat x$ with $\kappa = a_tR\|x\|/b_t^2$ and the Bessel
    ratio $A_d = I_{d/2}/I_{d/2-1}$; $\ln p_t(x) = -\frac{\|x\|^2+a_t^2R^2}{2b_t^2}
    - \frac d2\ln(2\pi b_t^2) + \ln\mathbb E_s[e^{\kappa s}]$. Both use one quadrature in log
    space that is stable for $\kappa\to\infty$ (see ``_sphere_tilt``). The symmetric point
    destabilises at $\sigma_c^2 = R^2/d$ (`docs/theory/critical-times.md#general-data`).

    **Arguments:**

    - `radius`: $R>0$.
    - `dim`: $d\ge2$ (for $d=1$ the "sphere" is two points: use :class:`TwoPoint`).
    """

    radius: Array
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, radius: Real[ArrayLike, ""], dim: int | np.integer):
        if not isinstance(dim, (int, np.integer)) or dim < 2:
            raise ValueError(
                f"dim must be an integer >= 2, got {dim!r} (for dim=1 use TwoPoint(radius))."
            )
        r = as_float_array(radius, "radius")
        if r.ndim != 0:
            raise ValueError(f"radius must be a scalar, got shape {r.shape}.")
        self.radius = check_values(
            r,
            lambda v: ~(v > 0) | ~(abs(v) < float("inf")),
            f"radius must be > 0 and finite, got {radius}.",
        )
        self.event_shape = (int(dim),)

    def sample(self, key, n):
        z = jax.random.normal(key, (n, self.dim), dtype=jnp.result_type(self.radius, float))
        return self.radius * z / jnp.linalg.norm(z, axis=-1, keepdims=True)

    def mean(self):
        return jnp.zeros((self.dim,), dtype=jnp.result_type(self.radius, float))

    def covariance(self):
        return (
            self.radius**2 / self.dim * jnp.eye(self.dim, dtype=jnp.result_type(self.radius, float))
        )

    def _kappa2(self, x, a, b2):
        a_s, b2_s = _squeeze(a), _squeeze(b2)
        coup = a_s * self.radius / b2_s
        return coup**2 * jnp.sum(x**2, axis=-1), coup

    def log_marginal(self, x, a, b2):
        a_s, b2_s = _squeeze(a), _squeeze(b2)
        k2, _ = self._kappa2(x, a, b2)
        log_e, _ = _sphere_tilt(k2, self.dim)
        quad = (jnp.sum(x**2, axis=-1) + a_s**2 * self.radius**2) / (2 * b2_s)
        return log_e - quad - 0.5 * self.dim * (_LOG_2PI + jnp.log(b2_s))

    def posterior_mean(self, x, a, b2):
        k2, coup = self._kappa2(x, a, b2)
        _, a_over_k = _sphere_tilt(k2, self.dim)
        # R A(k) xhat = R (A/k) (a R / b2) x
        return (self.radius * a_over_k * coup)[..., None] * x

    def posterior_cov(self, x, a, b2):
        # Tweedie: Cov = (b2 / a) d m / dx, exact for this closed form (autodiff of the mean)
        a_s, b2_s = _squeeze(a), _squeeze(b2)
        flat_x = x.reshape(-1, self.dim)
        a_b = jnp.broadcast_to(a_s, x.shape[:-1]).reshape(-1)
        b_b = jnp.broadcast_to(b2_s, x.shape[:-1]).reshape(-1)

        def one(xi, ai, bi):
            jac = jax.jacfwd(lambda z: self.posterior_mean(z, ai, bi))(xi)
            return (bi / ai) * jac

        cov = jax.vmap(one)(flat_x, a_b, b_b)
        return cov.reshape(x.shape[:-1] + (self.dim, self.dim))


# ----------------------------------------------------------------------------------------------
# lattice image sets
# ----------------------------------------------------------------------------------------------


def _lattice_shape(shape) -> tuple[int, ...]:
    shp = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if len(shp) not in (1, 2) or any(s < 1 for s in shp):
        raise ValueError(f"shape must be (L,) or (H, W) with positive sizes, got {shape!r}.")
    return shp


def uniform_images(
    shape: int | np.integer | Sequence[int | np.integer],
    values: Sequence[float | int] | Real[ArrayLike, " n_values"] = (1.0, -1.0),
) -> LatticeImages:
    """The uniform images $\\pm\\mathbf 1$ (or any constant values) on a 1-D or 2-D lattice.

    The canonical patch-model dataset of `docs/theory/patch.md#two-image-score`.
    """
    shp = _lattice_shape(shape)
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim != 1 or vals.size == 0:
        raise ValueError(f"values must be a non-empty sequence of numbers, got {values!r}.")
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"values must be finite (no NaN or Inf), got {values!r}.")
    return LatticeImages(jnp.asarray(vals.reshape((-1,) + (1,) * len(shp)) * np.ones(shp)))


def stripes(
    shape: int | np.integer | Sequence[int | np.integer],
    width: int | np.integer = 1,
    orientation: str = "both",
) -> LatticeImages:
    """All translates of ±1 stripes of the given ``width`` (period ``2 width``).

    For 2-D lattices ``orientation`` is ``"vertical"`` (constant along rows' axis 0, varying
    along axis 1), ``"horizontal"`` or ``"both"``. Duplicates are removed.
    """
    shp = _lattice_shape(shape)
    if not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}.")
    if orientation not in ("both", "horizontal", "vertical"):
        raise ValueError(
            f"orientation must be 'both', 'horizontal' or 'vertical', got {orientation!r}."
        )
    imgs = []
    for shift in range(2 * width):
        if len(shp) == 1:
            i = np.arange(shp[0])
            imgs.append(np.where(((i + shift) // width) % 2 == 0, 1.0, -1.0))
        else:
            ii, jj = np.meshgrid(np.arange(shp[0]), np.arange(shp[1]), indexing="ij")
            if orientation in ("both", "vertical"):
                imgs.append(np.where(((jj + shift) // width) % 2 == 0, 1.0, -1.0))
            if orientation in ("both", "horizontal"):
                imgs.append(np.where(((ii + shift) // width) % 2 == 0, 1.0, -1.0))
    return LatticeImages(jnp.asarray(np.unique(np.stack(imgs), axis=0)))


def checkerboards(
    shape: int | np.integer | Sequence[int | np.integer], width: int | np.integer = 1
) -> LatticeImages:
    """All translates of a ±1 checkerboard with squares of side ``width`` (2-D lattices)."""
    shp = _lattice_shape(shape)
    if len(shp) != 2:
        raise ValueError(f"checkerboards need a 2-D shape (H, W), got {shape!r}.")
    if not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}.")
    ii, jj = np.meshgrid(np.arange(shp[0]), np.arange(shp[1]), indexing="ij")
    imgs = [
        np.where((((ii + si) // width) + ((jj + sj) // width)) % 2 == 0, 1.0, -1.0)
        for si in range(2 * width)
        for sj in range(2 * width)
    ]
    return LatticeImages(jnp.asarray(np.unique(np.stack(imgs), axis=0)))


def random_binary_images(
    key: PRNGKeyArray,
    n: int | np.integer,
    shape: int | np.integer | Sequence[int | np.integer],
    p: float = 0.5,
) -> LatticeImages:
    """``n`` random ±1 images with $P(+1)=p$ per site, drawn from ``key``."""
    shp = _lattice_shape(shape)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1), got {p!r}.")
    bits = jax.random.bernoulli(key, p, (int(n),) + shp)
    return LatticeImages(jnp.where(bits, 1.0, -1.0))
