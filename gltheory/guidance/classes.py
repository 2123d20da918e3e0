r"""Class-conditional data with exact scores: labelled mixtures and labelled lattice images.

Ambrogioni, arXiv:2603.20092. A labelled law $p_0(y) = \sum_c\pi_c\,p_0(y\mid c)$ gives the class
posterior $P(c\mid x_t)$, the class denoisers $D_c$ and the unconditional denoiser
$D_u = \sum_cP(c\mid x_t)D_c$ in closed form (:class:`ClassConditional`, built by
:func:`two_class_deltas`, :func:`two_class_gaussians`, :func:`class_deltas`,
:func:`class_gaussians`). :class:`ClassLattice` (:func:`class_lattice`) labels lattice images and
scores each class with its own patch machine, classifying in :func:`patch_features` space.
:class:`ClassScore` is the ``score_fn(x, t)`` of one class or of the unconditional law.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, Num, PRNGKeyArray, Real

from .. import patch
from .._checks import PROCESS, as_float_array, check_event_shape, check_instance, check_values
from ..data import AbstractData, DeltaMixture, GaussianMixture, LatticeImages
from ..processes import AbstractProcess
from ..scores import cast_floats, flat_coefficients

__all__ = [
    "ClassConditional",
    "ClassScore",
    "two_class_deltas",
    "two_class_gaussians",
    "class_deltas",
    "class_gaussians",
    "ClassLattice",
    "class_lattice",
    "patch_features",
]


class ClassConditional(eqx.Module):
    r"""A labelled data law $p_0(y) = \sum_c \pi_c\,p_0(y\mid c)$ with exact class-conditional scores.

    Each class is a gltheory dataset with an exact posterior (deltas, Gaussians, mixtures, ...).
    With $p_t(x\mid c)$ the class marginals, the exact class posterior and unconditional denoiser
    are (Tweedie's formula (Efron, JASA 2011); Ambrogioni, arXiv:2603.20092)
    $$P(c\mid x_t) = \mathrm{softmax}_c\big(\ln\pi_c + \ln p_t(x\mid c)\big),\qquad
    D_u(x,t) = \sum_c P(c\mid x_t)\,D_c(x,t),$$
    all in log-sum-exp form. Class ``c`` of the labels is ``classes[c]``.

    **Arguments:**

    - `classes`: a sequence of $K\ge2$ datasets with the same event shape.
    - `weights`: class weights $\pi_c$, shape ``(K,)`` (default uniform).
    """

    classes: tuple[AbstractData, ...]
    weights: Float[Array, " k"]
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self, classes: Sequence[AbstractData], weights: Real[ArrayLike, " k"] | None = None
    ):
        classes = tuple(classes)
        if len(classes) < 2:
            raise ValueError(f"ClassConditional needs at least 2 classes, got {len(classes)}.")
        for c in classes:
            if not isinstance(c, AbstractData):
                raise ValueError(f"every class must be a gltheory dataset, got {type(c).__name__}.")
        shapes = {tuple(c.event_shape) for c in classes}
        if len(shapes) != 1:
            raise ValueError(f"all classes must share one event shape, got {sorted(shapes)}.")
        k = len(classes)
        if weights is None:
            w = jnp.full((k,), 1.0 / k)
        else:
            w = as_float_array(weights, "weights")
            if w.shape != (k,):
                raise ValueError(f"weights must have shape ({k},), got {w.shape}.")
            w = check_values(
                w,
                lambda v: (v <= 0).any() | (abs(v.sum() - 1) > 1e-6),
                f"weights must be positive and sum to 1, got {weights}.",
            )
        self.classes = classes
        self.weights = w
        self.event_shape = shapes.pop()

    @property
    def n_classes(self) -> int:
        """Number of classes $K$."""
        return len(self.classes)

    @property
    def dim(self) -> int:
        """Event size $d$."""
        return int(np.prod(self.event_shape, dtype=np.int64))

    def _prep(self, process, x, t):
        check_instance(process, AbstractProcess, "process", PROCESS)
        x = as_float_array(x, "x")
        check_event_shape(x, self.event_shape, "x")
        t = jnp.asarray(t, x.dtype)
        me = cast_floats(self, x.dtype)
        proc = cast_floats(process, x.dtype)
        return me, proc, x, t

    # flat_coefficients only reads the event shape, which every class shares with self

    def _log_joint(self, process, x, t):
        xf, a, b2 = flat_coefficients(self.classes[0], process, x, t)
        lj = [c.log_marginal(xf, a, b2) for c in self.classes]
        return jnp.stack(lj, axis=-1) + jnp.log(self.weights), xf, a, b2

    def class_log_posterior(
        self, process: AbstractProcess, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]
    ) -> Float[Array, "*batch k"]:
        r"""$\ln P(c\mid x_t)$, shape ``(*batch, K)``."""
        me, proc, x, t = self._prep(process, x, t)
        return _cc_call(me, proc, x, t, None, "log_post")

    def class_posterior(
        self, process: AbstractProcess, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]
    ) -> Float[Array, "*batch k"]:
        r"""$P(c\mid x_t)$, shape ``(*batch, K)`` (the exact posterior classifier's probabilities)."""
        return jnp.exp(self.class_log_posterior(process, x, t))

    def log_prob(
        self, process: AbstractProcess, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]
    ) -> Float[Array, "*batch"]:
        r"""$\ln p_t(x) = \ln\sum_c\pi_c\,p_t(x\mid c)$, the unconditional marginal, shape ``batch``."""
        me, proc, x, t = self._prep(process, x, t)
        return _cc_call(me, proc, x, t, None, "log_prob")

    def classify(
        self, process: AbstractProcess, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]
    ) -> Int[Array, "*batch"]:
        r"""Exact posterior classifier $\arg\max_cP(c\mid x_t)$, int32 of shape ``batch``."""
        return jnp.argmax(self.class_log_posterior(process, x, t), axis=-1).astype(jnp.int32)

    def denoiser(
        self,
        process: AbstractProcess,
        x: Num[ArrayLike, "*x"],
        t: Real[ArrayLike, "*t"],
        label: int | np.integer | None = None,
    ) -> Float[Array, "*x"]:
        r"""$D_c = \mathbb E[y\mid x_t, c]$ for ``label`` $=c$, or $D_u$ for ``label=None``."""
        me, proc, x, t = self._prep(process, x, t)
        return _cc_call(me, proc, x, t, me._label(label), "denoise")

    def score(
        self,
        process: AbstractProcess,
        x: Num[ArrayLike, "*x"],
        t: Real[ArrayLike, "*t"],
        label: int | np.integer | None = None,
    ) -> Float[Array, "*x"]:
        r"""$s_c = (a_tD_c - x)/b_t^2$ for ``label`` $=c$, or $s_u$ for ``label=None``."""
        me, proc, x, t = self._prep(process, x, t)
        return _cc_call(me, proc, x, t, me._label(label), "score")

    def _label(self, label):
        if label is None:
            return None
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"label must be an int class index or None, got {label!r}.")
        if not 0 <= label < self.n_classes:
            raise ValueError(f"label must lie in 0..{self.n_classes - 1}, got {label}.")
        return int(label)

    def _denoise(self, process, x, t, label):
        if label is not None:
            xf, a, b2 = flat_coefficients(self.classes[0], process, x, t)
            return self.classes[label].posterior_mean(xf, a, b2).reshape(x.shape)
        lj, xf, a, b2 = self._log_joint(process, x, t)
        p = jax.nn.softmax(lj, axis=-1)
        means = jnp.stack([c.posterior_mean(xf, a, b2) for c in self.classes], axis=-2)
        return jnp.einsum("...k,...kd->...d", p, means).reshape(x.shape)

    def _score(self, process, x, t, label):
        xf, a, b2 = flat_coefficients(self.classes[0], process, x, t)
        m = self._denoise(process, x, t, label).reshape(xf.shape)
        return ((a * m - xf) / b2).reshape(x.shape)

    def sample(
        self, key: PRNGKeyArray, n: int | np.integer
    ) -> tuple[Float[Array, " n *event"], Int[Array, " n"]]:
        """``n`` labelled samples: ``(y, labels)`` with ``y`` of shape ``(n, *event_shape)``."""
        k1, k2 = jax.random.split(key)
        labels = jax.random.choice(k1, self.n_classes, (n,), p=self.weights)
        ys = jnp.stack([c.sample(jax.random.fold_in(k2, i), n) for i, c in enumerate(self.classes)])
        return ys[labels, jnp.arange(n)], labels.astype(jnp.int32)

    def forward_sample(
        self,
        process: AbstractProcess,
        key: PRNGKeyArray,
        n: int | np.integer,
        t: Real[ArrayLike, ""],
    ) -> Float[Array, " n *event"]:
        r"""``n`` exact samples of the unconditional marginal $x_t = a_ty + b_tz$."""
        check_instance(process, AbstractProcess, "process", PROCESS)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}.")
        return _cc_forward(self, process, key, int(n), jnp.asarray(t))


@eqx.filter_jit
def _cc_call(me, proc, x, t, label, what: str):
    if what == "log_post":
        lj, _, _, _ = me._log_joint(proc, x, t)
        return jax.nn.log_softmax(lj, axis=-1)
    if what == "log_prob":
        lj, _, _, _ = me._log_joint(proc, x, t)
        return jax.scipy.special.logsumexp(lj, axis=-1)
    if what == "denoise":
        return me._denoise(proc, x, t, label)
    return me._score(proc, x, t, label)


@eqx.filter_jit
def _cc_forward(data, process, key, n: int, t):
    k1, k2 = jax.random.split(key)
    y, _ = data.sample(k1, n)
    z = jax.random.normal(k2, y.shape, y.dtype)
    return process.a(t) * y + process.b(t) * z


class ClassScore(eqx.Module):
    """``score_fn(x, t)`` of one class (``label``) or of the unconditional law (``label=None``).

    A pytree: usable as ``score_fn`` in :func:`gltheory.sample` and inside :class:`GuidedScore`.
    """

    data: ClassConditional | ClassLattice
    process: AbstractProcess
    label: int | np.integer | None = eqx.field(static=True)

    def __call__(self, x: Num[ArrayLike, "*x"], t: Real[ArrayLike, "*t"]) -> Float[Array, "*x"]:
        return self.data.score(self.process, x, t, self.label)


def _vec(mu, dim):
    m = as_float_array(mu, "mu")
    if m.ndim == 0:
        dim = 1 if dim is None else dim
        if not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}.")
        return m * jnp.ones((int(dim),), m.dtype)
    if m.ndim != 1 or m.shape[0] == 0:
        raise ValueError(f"mu must be a scalar or a non-empty vector, got shape {m.shape}.")
    return m


def two_class_deltas(
    mu: Real[ArrayLike, ""] | Real[ArrayLike, " d"], dim: int | np.integer | None = None
) -> ClassConditional:
    r"""Two delta classes: class 0 $=\delta(y-\mu)$, class 1 $=\delta(y+\mu)$ (equal weights).

    `mu` is a vector or a scalar (then $\mu\mathbf 1_d$); $\Lambda = \|\mu\|^2$.
    """
    m = _vec(mu, dim)
    return ClassConditional([DeltaMixture(m[None]), DeltaMixture(-m[None])])


def two_class_gaussians(
    mu: Real[ArrayLike, ""] | Real[ArrayLike, " d"],
    sigma2: Real[ArrayLike, ""],
    dim: int | np.integer | None = None,
) -> ClassConditional:
    r"""Two Gaussian classes $\mathcal N(\pm\mu,\sigma^2I)$ (class 0 is $+\mu$; equal weights)."""
    m = _vec(mu, dim)
    s2 = as_float_array(sigma2, "sigma2")
    return ClassConditional(
        [
            GaussianMixture(m[None], jnp.reshape(s2, (1,))),
            GaussianMixture(-m[None], jnp.reshape(s2, (1,))),
        ]
    )


def class_deltas(
    points: Real[ArrayLike, " k *event"], weights: Real[ArrayLike, " k"] | None = None
) -> ClassConditional:
    r"""$K$ delta classes $\delta(y-y_c)$, ``points`` of shape ``(K, *event_shape)``."""
    p = as_float_array(points, "points")
    if p.ndim < 2 or p.shape[0] < 2:
        raise ValueError(f"points must have shape (K >= 2, *event_shape), got {p.shape}.")
    return ClassConditional([DeltaMixture(p[k : k + 1]) for k in range(p.shape[0])], weights)


def class_gaussians(
    means: Real[ArrayLike, "k d"],
    variances: Real[ArrayLike, ""] | Real[ArrayLike, " k"],
    weights: Real[ArrayLike, " k"] | None = None,
) -> ClassConditional:
    r"""$K$ isotropic Gaussian classes $\mathcal N(\mu_c, v_c I)$: ``means`` (K, d), ``variances`` (K,)."""
    mu = as_float_array(means, "means")
    if mu.ndim != 2 or mu.shape[0] < 2:
        raise ValueError(f"means must have shape (K >= 2, d), got {mu.shape}.")
    v = jnp.broadcast_to(as_float_array(variances, "variances"), (mu.shape[0],))
    return ClassConditional(
        [GaussianMixture(mu[k : k + 1], v[k : k + 1]) for k in range(mu.shape[0])], weights
    )


# ---------------------------------------------------------------------------- lattice classes

_FEATURE_SHIFTS_2D = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2))
_FEATURE_SHIFTS_1D = ((1,), (2,), (3,))


def patch_features(
    x: Real[ArrayLike, "*x"], lattice_ndim: int | np.integer
) -> Float[Array, "*batch n_features"]:
    r"""Patch statistics of lattice configurations: normalised periodic correlations
    $f_\delta = \langle x_ix_{i+\delta}\rangle/\langle x_i^2\rangle$ for the shifts
    $\delta\in\{(1,0),(0,1),(1,1),(1,-1),(2,0),(0,2)\}$ (2-D) or $\{1,2,3\}$ (1-D).

    **Returns:** shape ``(*batch, F)``.
    """
    x = as_float_array(x, "x")
    if lattice_ndim not in (1, 2):
        raise ValueError(f"lattice_ndim must be 1 or 2, got {lattice_ndim!r}.")
    axes = tuple(range(x.ndim - lattice_ndim, x.ndim))
    shifts = _FEATURE_SHIFTS_2D if lattice_ndim == 2 else _FEATURE_SHIFTS_1D
    norm = jnp.mean(x**2, axis=axes) + jnp.finfo(x.dtype).tiny
    feats = [jnp.mean(x * jnp.roll(x, s, axis=axes), axis=axes) / norm for s in shifts]
    return jnp.stack(feats, axis=-1)


class ClassLattice(eqx.Module):
    r"""Class-labelled lattice images with class-conditional patch scores (Ambrogioni, arXiv:2603.20092; Kamb & Ganguli, arXiv:2412.20292).

    Class $c$ is the patch machine (ELS by default) of the images of class $c$; the unconditional
    model is the same machine trained on all images (the union bank), as a network trained on
    the whole dataset would be. The classifier is nearest-centroid in :func:`patch_features`
    space, the centroids being the mean features of each class's training images.

    Build with :func:`class_lattice`.
    """

    banks: tuple[patch.PatchBank, ...]
    union: patch.PatchBank
    centroids: Float[Array, "k n_features"]
    lattice_ndim: int = eqx.field(static=True)
    event_shape: tuple[int, ...] = eqx.field(static=True)

    @property
    def n_classes(self) -> int:
        return len(self.banks)

    def score(
        self,
        process: AbstractProcess,
        x: Num[ArrayLike, "*x"],
        t: Real[ArrayLike, "*t"],
        label: int | np.integer | None = None,
    ) -> Float[Array, "*x"]:
        r"""Patch score of class ``label`` (or of the union bank for ``label=None``)."""
        if label is not None and not (
            isinstance(label, (int, np.integer)) and 0 <= label < self.n_classes
        ):
            raise ValueError(
                f"label must be None or an int in 0..{self.n_classes - 1}, got {label!r}."
            )
        bank = self.union if label is None else self.banks[label]
        return patch.score(bank, process, x, t)

    def classify(
        self,
        process: AbstractProcess | None,
        x: Real[ArrayLike, "*x"],
        t: Real[ArrayLike, "*t"] | None = None,
    ) -> Int[Array, "*batch"]:
        r"""Nearest-centroid class of ``x`` in patch-feature space (``process``, ``t`` unused)."""
        del process, t
        f = patch_features(x, self.lattice_ndim)
        d2 = jnp.sum((f[..., None, :] - self.centroids.astype(f.dtype)) ** 2, axis=-1)
        return jnp.argmin(d2, axis=-1).astype(jnp.int32)


def class_lattice(
    images: Sequence[LatticeImages | ArrayLike],
    *,
    window: int | np.integer,
    equivariant: bool = True,
    boundary: str = "periodic",
) -> ClassLattice:
    r"""Class-labelled lattice dataset from one image set per class (e.g. horizontal vs vertical
    stripes, stripes vs checkerboards); patch machine per class and on the union.

    **Arguments:**

    - `images`: $K\ge2$ image sets, each :class:`gltheory.LatticeImages` or ``(N_c, *lattice)``.
    - `window`, `equivariant`, `boundary`: the patch machine (:func:`gltheory.patch.bank`).
    """
    sets = []
    for im in images:
        arr = im.images if isinstance(im, LatticeImages) else as_float_array(im, "images")
        sets.append(arr)
    if len(sets) < 2:
        raise ValueError(f"class_lattice needs at least 2 image sets, got {len(sets)}.")
    shapes = {tuple(s.shape[1:]) for s in sets}
    if len(shapes) != 1:
        raise ValueError(f"all image sets must share one lattice shape, got {sorted(shapes)}.")
    lattice = shapes.pop()
    if len(lattice) not in (1, 2):
        raise ValueError(f"images must be (N, L) or (N, H, W), got lattice {lattice}.")
    kw = dict(window=window, equivariant=equivariant, boundary=boundary)
    banks = tuple(patch.bank(s, **kw) for s in sets)
    union = patch.bank(jnp.concatenate(sets), **kw)
    cents = jnp.stack([jnp.mean(patch_features(s, len(lattice)), axis=0) for s in sets])
    return ClassLattice(banks, union, cents, len(lattice), lattice)
