r"""Classifier-free guidance: class-conditional data, guidance forms, pulses at the critical time,
the class susceptibility of a pulse, a physics-aware sampler and learned pulse timing.

THEORY.md §4.7, §8.3, §8.4, §11 items 17-18. All results tagged **[DERIVED]** in THEORY.md.

**Guided denoiser.** With a conditional denoiser $D_c$ and an unconditional one $D_u$,
$$D_w = D_u + w\,(D_c - D_u),\qquad s_w = \frac{a_tD_w - x}{b_t^2} = s_u + w\,(s_c - s_u),$$
so guiding the denoiser and guiding the score are the same operation (:func:`guided_denoiser`,
:class:`GuidedScore`). A guidance form is a rule for the weight $w$: constant CFG, an interval in
time or in EDM step index (Kynkäänniemi et al., §8.4), a pulse (centre, width, strength; box or
smooth), or the power law $w=\max(\omega\|s_c-s_u\|^\alpha, w_{\min})$ (§8.3). They are final
``eqx.Module``s whose numbers are arrays, so one compiled sampler serves every value.

**Perturbation size** (§4.7 caveat). For delta classes $s_c-s_u$ grows like $1/b_t^2$, so an
unnormalised late pulse flips committed samples. A pulse is therefore characterised by its
*guidance displacement*, the distance the guidance term of the reverse SDE moves a state held
at the uncommitted reference point $x_{\rm ref}$ (the symmetric point $0$):
$$\varepsilon = \int w(t)\,g^2(t)\,\nu(t)\,dt,\qquad \nu(t) = \|s_c(x_{\rm ref},t) - s_u(x_{\rm ref},t)\|,$$
evaluated as the Euler sum $\sum_i h_i\,w(t_i)g^2(t_i)\nu(t_i)$ on the sampler's grid
(:func:`guidance_displacement`, :func:`normalise_pulse`). For two clusters $\pm m$ with
within-class variance $\sigma^2$, $\nu = \mu_t/\Gamma_t$, $\mu_t = a_t\|m\|$,
$\Gamma_t = b_t^2 + a_t^2\sigma^2$ (:func:`two_cluster_guidance_scale`).

**Pulse response (two clusters, exact).** Along $\hat m$ the guidance drift of class $+$ is
$w g^2\nu\,(1-\tanh(c_tq))$, $c_t = \mu_t/\Gamma_t$, and $P(+\mid q) = \mathrm{sigmoid}(2c_tq)$ is a
martingale of the unguided reverse dynamics. Hence (Dynkin) the final class probability after a
pulse is $\tfrac12 + \int dt\,\mathbb E_{\rm pert}[\partial_qP\cdot w g^2\nu(1-\tanh c_tq)]$ and to
first order in $\varepsilon$
$$P_{\rm final}(+) = \tfrac12 + \varepsilon\!\int\!\rho(t)\,R_g(t)\,dt,\qquad
R_g(t) = \mathbb E_{p_t}\big[\partial_qP(+\mid q)\,(1-\tanh c_tq)\big] = R(t),$$
$\rho = wg^2\nu/\varepsilon$ the normalised pulse profile. $R_g = R$, the class susceptibility of
:func:`gltheory.class_susceptibility_theory`, because $\partial_qP\propto\mathrm{sech}^2$ is even
and $\tanh$ odd under $q\to-q$. So the best short pulse sits at $\arg\max_tR$. For an impulsive
pulse (width $\to0$) of finite size the state is moved by the flow
$dq/ds = 1-\tanh(c_tq)$ for $s\in[0,\varepsilon]$, i.e. $u' + e^{u'} = u + e^{u} + 4c_t\varepsilon$
with $u = 2c_tq$; a one-step pulse of the Euler–Maruyama sampler moves it by the Euler map
$q + \varepsilon(1-\tanh c_tq)$. :func:`pulse_response_theory` integrates both exactly.

**Contents.** Data: :class:`ClassConditional` (:func:`two_class_deltas`, :func:`two_class_gaussians`,
:func:`class_deltas`, :func:`class_gaussians`), :class:`ClassLattice` (:func:`class_lattice`,
patch-feature classifier). Guidance: :class:`ConstantCFG`, :class:`IntervalCFG`,
:class:`StepIntervalCFG` + :func:`edm_guided_sample` (counts guided evaluations),
:class:`Pulse`, :class:`PowerLawCFG`, :class:`GuidedScore`, :func:`count_guided_evaluations`.
Theory: :func:`guidance_susceptibility_theory`, :func:`pulse_response_theory`,
:func:`pulse_alignment_theory`, :func:`optimal_pulse_centre`; the exact mean of the learned-pulse
objective on the sampler's own grid, :func:`pulse_objective_quadrature`,
:func:`discrete_optimal_pulse_centre`. Experiments:
:func:`pulse_alignment`, :func:`pulse_scan` (paired rows, indicator or martingale estimator),
:func:`alignment_curve_peak`; :func:`physics_aware_sample`; :func:`learn_pulse`.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ._checks import as_float_array, check_event_shape, check_values
from .data import AbstractData, DeltaMixture, GaussianMixture, LatticeImages
from .observables import _nodes, _two_cluster_params
from .patch import PatchBank, patch_bank, patch_score
from .processes import AbstractProcess
from .sampling import _check_ts, sample, trajectory_keys, trajectory_noise
from .scores import _cast_floats, _coefficients

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
    "two_cluster_guidance_scale",
    "guidance_displacement",
    "normalise_pulse",
    "guidance_susceptibility_theory",
    "pulse_response_theory",
    "pulse_alignment_theory",
    "optimal_pulse_centre",
    "pulse_objective_quadrature",
    "discrete_optimal_pulse_centre",
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
]


# ==============================================================================================
# 1. class-conditional data with exact scores
# ==============================================================================================


def _check_process(process):
    if not isinstance(process, AbstractProcess):
        raise ValueError(
            f"process must be a gltheory process (OU, VP, VE), got {type(process).__name__}."
        )


class ClassConditional(eqx.Module):
    r"""A labelled data law $p_0(y) = \sum_c \pi_c\,p_0(y\mid c)$ with exact class-conditional scores.

    Each class is a gltheory dataset with an exact posterior (deltas, Gaussians, mixtures, ...).
    With $p_t(x\mid c)$ the class marginals, the exact class posterior and unconditional denoiser
    are (THEORY.md §1.2, §4.7)
    $$P(c\mid x_t) = \mathrm{softmax}_c\big(\ln\pi_c + \ln p_t(x\mid c)\big),\qquad
    D_u(x,t) = \sum_c P(c\mid x_t)\,D_c(x,t),$$
    all in log-sum-exp form. Class ``c`` of the labels is ``classes[c]``.

    **Arguments:**

    - `classes`: a sequence of $K\ge2$ datasets with the same event shape.
    - `weights`: class weights $\pi_c$, shape ``(K,)`` (default uniform).
    """

    classes: tuple[AbstractData, ...]
    weights: Array
    event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, classes: Sequence[AbstractData], weights: ArrayLike | None = None):
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
        _check_process(process)
        x = as_float_array(x, "x")
        check_event_shape(x, self.event_shape, "x")
        t = jnp.asarray(t, x.dtype)
        me = _cast_floats(self, x.dtype)
        proc = _cast_floats(process, x.dtype)
        return me, proc, x, t

    def _log_joint(self, process, x, t):
        xf, a, b2 = _coefficients(self, process, x, t)
        lj = [c.log_marginal(xf, a, b2) for c in self.classes]
        return jnp.stack(lj, axis=-1) + jnp.log(self.weights), xf, a, b2

    def class_log_posterior(self, process: AbstractProcess, x: ArrayLike, t: ArrayLike) -> Array:
        r"""$\ln P(c\mid x_t)$, shape ``(*batch, K)``."""
        me, proc, x, t = self._prep(process, x, t)
        return _cc_call(me, proc, x, t, None, "log_post")

    def class_posterior(self, process: AbstractProcess, x: ArrayLike, t: ArrayLike) -> Array:
        r"""$P(c\mid x_t)$, shape ``(*batch, K)`` (the exact posterior classifier's probabilities)."""
        return jnp.exp(self.class_log_posterior(process, x, t))

    def classify(self, process: AbstractProcess, x: ArrayLike, t: ArrayLike) -> Array:
        r"""Exact posterior classifier $\arg\max_cP(c\mid x_t)$, int32 of shape ``batch``."""
        return jnp.argmax(self.class_log_posterior(process, x, t), axis=-1).astype(jnp.int32)

    def denoiser(
        self, process: AbstractProcess, x: ArrayLike, t: ArrayLike, label: int | None = None
    ) -> Array:
        r"""$D_c = \mathbb E[y\mid x_t, c]$ for ``label`` $=c$, or $D_u$ for ``label=None``."""
        me, proc, x, t = self._prep(process, x, t)
        return _cc_call(me, proc, x, t, me._label(label), "denoise")

    def score(
        self, process: AbstractProcess, x: ArrayLike, t: ArrayLike, label: int | None = None
    ) -> Array:
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
            xf, a, b2 = _coefficients(self, process, x, t)
            return self.classes[label].posterior_mean(xf, a, b2).reshape(x.shape)
        lj, xf, a, b2 = self._log_joint(process, x, t)
        p = jax.nn.softmax(lj, axis=-1)
        means = jnp.stack([c.posterior_mean(xf, a, b2) for c in self.classes], axis=-2)
        return jnp.einsum("...k,...kd->...d", p, means).reshape(x.shape)

    def _score(self, process, x, t, label):
        xf, a, b2 = _coefficients(self, process, x, t)
        m = self._denoise(process, x, t, label).reshape(xf.shape)
        return ((a * m - xf) / b2).reshape(x.shape)

    def sample(self, key: PRNGKeyArray, n: int) -> tuple[Array, Array]:
        """``n`` labelled samples: ``(y, labels)`` with ``y`` of shape ``(n, *event_shape)``."""
        k1, k2 = jax.random.split(key)
        labels = jax.random.choice(k1, self.n_classes, (n,), p=self.weights)
        ys = jnp.stack([c.sample(jax.random.fold_in(k2, i), n) for i, c in enumerate(self.classes)])
        return ys[labels, jnp.arange(n)], labels.astype(jnp.int32)

    def forward_sample(
        self, process: AbstractProcess, key: PRNGKeyArray, n: int, t: ArrayLike
    ) -> Array:
        r"""``n`` exact samples of the unconditional marginal $x_t = a_ty + b_tz$."""
        _check_process(process)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}.")
        return _cc_forward(self, process, key, int(n), jnp.asarray(t))


@eqx.filter_jit
def _cc_call(me, proc, x, t, label, what: str):
    if what == "log_post":
        lj, _, _, _ = me._log_joint(proc, x, t)
        return jax.nn.log_softmax(lj, axis=-1)
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
    label: int | None = eqx.field(static=True)

    def __call__(self, x, t):
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


def two_class_deltas(mu: ArrayLike, dim: int | None = None) -> ClassConditional:
    r"""Two delta classes: class 0 $=\delta(y-\mu)$, class 1 $=\delta(y+\mu)$ (equal weights).

    `mu` is a vector or a scalar (then $\mu\mathbf 1_d$); $\Lambda = \|\mu\|^2$.
    """
    m = _vec(mu, dim)
    return ClassConditional([DeltaMixture(m[None]), DeltaMixture(-m[None])])


def two_class_gaussians(
    mu: ArrayLike, sigma2: ArrayLike, dim: int | None = None
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


def class_deltas(points: ArrayLike, weights: ArrayLike | None = None) -> ClassConditional:
    r"""$K$ delta classes $\delta(y-y_c)$, ``points`` of shape ``(K, *event_shape)``."""
    p = as_float_array(points, "points")
    if p.ndim < 2 or p.shape[0] < 2:
        raise ValueError(f"points must have shape (K >= 2, *event_shape), got {p.shape}.")
    return ClassConditional([DeltaMixture(p[k : k + 1]) for k in range(p.shape[0])], weights)


def class_gaussians(
    means: ArrayLike, variances: ArrayLike, weights: ArrayLike | None = None
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


def patch_features(x: ArrayLike, lattice_ndim: int) -> Array:
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
    r"""Class-labelled lattice images with class-conditional patch scores (THEORY.md §4.2, §7.2).

    Class $c$ is the patch machine (ELS by default) of the images of class $c$; the unconditional
    model is the same machine trained on all images (the union bank), as a network trained on
    the whole dataset would be. The classifier is nearest-centroid in :func:`patch_features`
    space, the centroids being the mean features of each class's training images.

    Build with :func:`class_lattice`.
    """

    banks: tuple[PatchBank, ...]
    union: PatchBank
    centroids: Array
    lattice_ndim: int = eqx.field(static=True)
    event_shape: tuple[int, ...] = eqx.field(static=True)

    @property
    def n_classes(self) -> int:
        return len(self.banks)

    def score(
        self, process: AbstractProcess, x: ArrayLike, t: ArrayLike, label: int | None = None
    ) -> Array:
        r"""Patch score of class ``label`` (or of the union bank for ``label=None``)."""
        if label is not None and not (
            isinstance(label, (int, np.integer)) and 0 <= label < self.n_classes
        ):
            raise ValueError(
                f"label must be None or an int in 0..{self.n_classes - 1}, got {label!r}."
            )
        bank = self.union if label is None else self.banks[label]
        return patch_score(x, t, bank, process)

    def classify(
        self, process: AbstractProcess | None, x: ArrayLike, t: ArrayLike | None = None
    ) -> Array:
        r"""Nearest-centroid class of ``x`` in patch-feature space (``process``, ``t`` unused)."""
        del process, t
        f = patch_features(x, self.lattice_ndim)
        d2 = jnp.sum((f[..., None, :] - self.centroids.astype(f.dtype)) ** 2, axis=-1)
        return jnp.argmin(d2, axis=-1).astype(jnp.int32)


def class_lattice(
    images: Sequence[LatticeImages | ArrayLike],
    *,
    window: int,
    equivariant: bool = True,
    boundary: Literal["periodic", "zero"] = "periodic",
) -> ClassLattice:
    r"""Class-labelled lattice dataset from one image set per class (e.g. horizontal vs vertical
    stripes, stripes vs checkerboards); patch machine per class and on the union.

    **Arguments:**

    - `images`: $K\ge2$ image sets, each :class:`gltheory.LatticeImages` or ``(N_c, *lattice)``.
    - `window`, `equivariant`, `boundary`: the patch machine (:func:`gltheory.patch_bank`).
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
    banks = tuple(patch_bank(s, **kw) for s in sets)
    union = patch_bank(jnp.concatenate(sets), **kw)
    cents = jnp.stack([jnp.mean(patch_features(s, len(lattice)), axis=0) for s in sets])
    return ClassLattice(banks, union, cents, len(lattice), lattice)


# ==============================================================================================
# 2. guidance forms
# ==============================================================================================


def guided_denoiser(d_u: ArrayLike, d_c: ArrayLike, w: ArrayLike) -> Array:
    r"""$D_w = D_u + w\,(D_c - D_u)$ (``uncond.lerp(cond, w)``; THEORY.md §4.7, §8.4)."""
    d_u = jnp.asarray(d_u)
    w = jnp.asarray(w)
    if w.ndim == 1 and d_u.ndim > 1:
        w = w.reshape(w.shape + (1,) * (d_u.ndim - 1))
    return d_u + w * (jnp.asarray(d_c) - d_u)


class AbstractGuidance(eqx.Module):
    """A rule for the CFG weight $w$ of $D_u + w(D_c - D_u)$."""

    @abc.abstractmethod
    def weight(
        self, t: Array, *, step: Array | None = None, diff_norm: Array | None = None
    ) -> Array:
        r"""$w$ at forward time $t$ (and EDM step index ``step``; per-sample $\|s_c-s_u\|$ for
        data-dependent forms). Scalar, or shape ``(n,)`` for per-trajectory parameters."""

    def mode(self, t: Array, *, step: Array | None = None) -> Array:
        r"""Which networks an evaluation needs: 0 = $D_u$ only ($w=0$), 1 = $D_c$ only ($w=1$),
        2 = both (a *guided* evaluation). Scalar int32 (2 for per-trajectory weights)."""
        w = self.weight(t, step=step)
        if jnp.ndim(w) > 0:
            return jnp.asarray(2, jnp.int32)
        return jnp.where(w == 0, 0, jnp.where(w == 1, 1, 2)).astype(jnp.int32)


class ConstantCFG(AbstractGuidance):
    r"""Plain classifier-free guidance: $w$ at every time ($w=1$: conditional sampling)."""

    w: Array

    def __init__(self, w: ArrayLike):
        self.w = as_float_array(w, "w")

    def weight(self, t, *, step=None, diff_norm=None):
        return self.w


class IntervalCFG(AbstractGuidance):
    r"""Guidance $w$ on the time window $t_{\rm lo}\le t\le t_{\rm hi}$, $w_{\rm out}$ outside.

    $w_{\rm out}=1$ (default) is Kynkäänniemi et al.'s limited-interval guidance (plain
    conditional outside, THEORY.md §8.4); $w_{\rm out}=0$ guides an unconditional sampler.
    """

    w: Array
    t_lo: Array
    t_hi: Array
    w_out: Array

    def __init__(self, w: ArrayLike, t_lo: ArrayLike, t_hi: ArrayLike, w_out: ArrayLike = 1.0):
        self.w = as_float_array(w, "w")
        self.t_lo = as_float_array(t_lo, "t_lo")
        self.t_hi = as_float_array(t_hi, "t_hi")
        self.w_out = as_float_array(w_out, "w_out")
        check_values(
            jnp.stack([jnp.asarray(self.t_lo, float), jnp.asarray(self.t_hi, float)]),
            lambda v: ~(v[0] <= v[1]),
            f"need t_lo <= t_hi, got t_lo={t_lo}, t_hi={t_hi}.",
        )

    def weight(self, t, *, step=None, diff_norm=None):
        inside = (t >= self.t_lo) & (t <= self.t_hi)
        return jnp.where(inside, self.w, self.w_out)


class StepIntervalCFG(AbstractGuidance):
    r"""Guidance $w$ for EDM step indices $i_{\rm lo}\le i\le i_{\rm hi}$ (inclusive, both Heun
    evaluations of those steps), $w_{\rm out}$ (default 1: plain $D_c$) elsewhere.

    Kynkäänniemi et al.'s sampler (THEORY.md §8.4, §11 item 17); needs the step index, which
    :func:`edm_guided_sample` passes.
    """

    w: Array
    i_lo: Array
    i_hi: Array
    w_out: Array

    def __init__(self, w: ArrayLike, i_lo: int, i_hi: int, w_out: ArrayLike = 1.0):
        for name, v in (("i_lo", i_lo), ("i_hi", i_hi)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer step index, got {v!r}.")
        if i_hi < i_lo:
            raise ValueError(f"need i_lo <= i_hi, got [{i_lo}, {i_hi}].")
        self.w = as_float_array(w, "w")
        self.i_lo = jnp.asarray(i_lo, jnp.int32)
        self.i_hi = jnp.asarray(i_hi, jnp.int32)
        self.w_out = as_float_array(w_out, "w_out")

    def weight(self, t, *, step=None, diff_norm=None):
        if step is None:
            raise ValueError(
                "StepIntervalCFG needs the sampler's step index: use edm_guided_sample (or an "
                "IntervalCFG in time with gltheory.sample)."
            )
        inside = (step >= self.i_lo) & (step <= self.i_hi)
        return jnp.where(inside, self.w, self.w_out)


_SQRT12 = math.sqrt(12.0)


class Pulse(AbstractGuidance):
    r"""A guidance pulse $w(t) = w_{\rm base} + A\,\chi\big((t-t_p)/\Delta\big)$ (THEORY.md §4.7).

    - ``shape="box"``: $\chi = \mathbf 1[-\tfrac12\le u<\tfrac12]$ (full width $\Delta$);
    - ``shape="smooth"``: a Gaussian with the box's standard deviation,
      $\chi = e^{-u^2\cdot 6}$, i.e. $\mathrm{std} = \Delta/\sqrt{12}$ (differentiable in $t_p$, $\Delta$).

    ``centre``, ``width`` and ``strength`` are arrays: scalars, or shape ``(n,)`` for one pulse
    per trajectory (e.g. random pulse times). $w_{\rm base}=0$ (default) guides an unconditional
    sampler; $w_{\rm base}=1$ a conditional one. Use :func:`normalise_pulse` to set ``strength``
    from a perturbation size.
    """

    centre: Array
    width: Array
    strength: Array
    base: Array
    shape: str = eqx.field(static=True)

    def __init__(
        self,
        centre: ArrayLike,
        width: ArrayLike,
        strength: ArrayLike = 1.0,
        *,
        shape: Literal["box", "smooth"] = "box",
        base: ArrayLike = 0.0,
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

    def profile(self, t: ArrayLike) -> Array:
        r"""$\chi((t-t_p)/\Delta)$ (broadcast over per-trajectory parameters)."""
        u = (jnp.asarray(t) - self.centre) / self.width
        if self.shape == "box":
            return ((u >= -0.5) & (u < 0.5)).astype(jnp.result_type(u, float))
        return jnp.exp(-6.0 * u**2)

    def weight(self, t, *, step=None, diff_norm=None):
        return self.base + self.strength * self.profile(t)


class PowerLawCFG(AbstractGuidance):
    r"""Power-law CFG (THEORY.md §8.3): $w = \max(\omega\,\|s_c-s_u\|^\alpha,\ w_{\min})$ per sample.

    $\alpha=0$ is plain CFG with $w=\max(\omega,w_{\min})$. Since $\|s_c-s_u\|$ is exponentially
    small on committed trajectories (§11 item 18), $\alpha>0$ switches guidance off after
    commitment. $\alpha$ must exceed $-1$ so that $z\,w(z)\to0$ as $z\to0$.
    """

    omega: Array
    alpha: Array
    w_min: Array

    def __init__(self, omega: ArrayLike, alpha: ArrayLike, w_min: ArrayLike = 1.0):
        self.omega = as_float_array(omega, "omega")
        self.alpha = check_values(
            as_float_array(alpha, "alpha"), lambda v: ~(v > -1), f"alpha must be > -1, got {alpha}."
        )
        self.w_min = as_float_array(w_min, "w_min")

    def weight(self, t, *, step=None, diff_norm=None):
        if diff_norm is None:
            raise ValueError("PowerLawCFG needs diff_norm = |s_c - s_u| per sample.")
        z = jnp.asarray(diff_norm)
        safe = jnp.where(z > 0, z, 1.0)
        zw = jnp.where(z > 0, safe**self.alpha, 0.0)
        return jnp.maximum(self.omega * zw, self.w_min)

    def mode(self, t, *, step=None):
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

    def __call__(self, x, t, step=None):
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
    guidance: AbstractGuidance, ts: ArrayLike, method: str = "euler_maruyama"
) -> Array:
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
    n_steps: int = 32, *, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> Array:
    r"""Karras et al.'s $\rho$-schedule $\sigma_i = (\sigma_{\max}^{1/\rho} + \tfrac{i}{N-1}
    (\sigma_{\min}^{1/\rho}-\sigma_{\max}^{1/\rho}))^\rho$, $i=0..N-1$, followed by $\sigma_N = 0$.

    **Returns:** shape ``(n_steps + 1,)`` (THEORY.md §8.4: $N=32$, $\rho=7$ gives
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
def _edm_impl(den_c, den_u, guidance, x, sigmas):
    n = sigmas.shape[0] - 1

    def den(x, s, i):
        def both():
            du, dc = den_u(x, s), den_c(x, s)
            diff = dc - du
            norm = jnp.sqrt(jnp.sum(diff.reshape(diff.shape[0], -1) ** 2, axis=-1))
            w = guidance.weight(s, step=i, diff_norm=norm)
            return du + _bcast_w(w, x) * diff, jnp.asarray(1, jnp.int32)

        mode = (
            jnp.asarray(2, jnp.int32)
            if isinstance(guidance, PowerLawCFG)
            else guidance.mode(s, step=i)
        )
        return jax.lax.switch(
            mode,
            (
                lambda: (den_u(x, s), jnp.asarray(0, jnp.int32)),
                lambda: (den_c(x, s), jnp.asarray(0, jnp.int32)),
                both,
            ),
        )

    def heun(carry, i):
        x, count = carry
        s, s_next = sigmas[i], sigmas[i + 1]
        d1, c1 = den(x, s, i)
        dcur = (x - d1) / s
        x_e = x + (s_next - s) * dcur
        d2, c2 = den(x_e, s_next, i)
        dnext = (x_e - d2) / s_next
        return (x + (s_next - s) * (0.5 * dcur + 0.5 * dnext), count + c1 + c2), None

    (x, count), _ = jax.lax.scan(heun, (x, jnp.asarray(0, jnp.int32)), jnp.arange(n - 1))
    d1, c1 = den(x, sigmas[n - 1], n - 1)
    x = x + (sigmas[n] - sigmas[n - 1]) * (x - d1) / sigmas[n - 1]  # Euler to sigma = 0: x = D
    return x, count + c1


def edm_guided_sample(
    den_cond: Callable,
    den_uncond: Callable,
    guidance: AbstractGuidance,
    x: ArrayLike,
    sigmas: ArrayLike,
) -> tuple[Array, Array]:
    r"""Deterministic EDM Heun sampler with guidance (Karras et al. Alg. 1 without churn; the
    sampler of Kynkäänniemi et al., THEORY.md §8.4).

    For $i = 0..N-1$: $d = (x - D(x,\sigma_i))/\sigma_i$, $x' = x + (\sigma_{i+1}-\sigma_i)d$ and,
    for $i<N-1$, the Heun correction with $D(x',\sigma_{i+1})$; both evaluations of step $i$
    receive the step index $i$. $D = D_u + w(D_c-D_u)$ with $w$ from ``guidance``; evaluations
    whose mode is 0 or 1 run only $D_u$ or $D_c$ (``lax.switch``), so the returned count is the
    number of evaluations that actually ran both denoisers.

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
    return _edm_impl(den_cond, den_uncond, guidance, x, sigmas)


# ==============================================================================================
# perturbation size
# ==============================================================================================


def guidance_scale(cond: Callable, uncond: Callable, x: ArrayLike, t: ArrayLike) -> Array:
    r"""Reference magnitude of the guidance field, $\nu(t)=\big(\overline{\|s_c(x,t)-s_u(x,t)\|^2}\big)^{1/2}$
    over the batch ``x`` (one state: the norm at that state, e.g. the symmetric point $x=0$;
    forward samples of $p_t$: the RMS guidance field).
    """
    x = as_float_array(x, "x")
    diff = cond(x, t) - uncond(x, t)
    return jnp.sqrt(jnp.mean(jnp.sum(diff.reshape(diff.shape[0], -1) ** 2, axis=-1)))


def two_cluster_guidance_scale(
    m_norm: ArrayLike, sigma2: ArrayLike, t: ArrayLike, *, process: AbstractProcess
) -> Array:
    r"""$\nu(t) = \|s_+(0,t)-s_u(0,t)\| = \mu_t/\Gamma_t$ for two clusters $\pm m$ (variance $\sigma^2$)."""
    mu, gamma = _two_cluster_params(m_norm, sigma2, t, process)
    return mu / gamma


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
    guidance: AbstractGuidance, process: AbstractProcess, ts: ArrayLike, nu: ArrayLike | Callable
) -> Array:
    r"""Perturbation size $\varepsilon = \sum_i h_i\,w(t_i)\,g^2(t_i)\,\nu(t_i)$ of a guidance form on
    the Euler grid ``ts`` ($h_i = t_i - t_{i+1}$; module docstring). ``nu``: $\nu(t)$ as a callable,
    a scalar or the values at ``ts[:-1]``. Shape ``()`` or ``(n,)`` for per-trajectory pulses.
    """
    _check_process(process)
    ts = as_float_array(ts, "ts")
    nu_i = _nu_on_grid(nu, ts)
    h = ts[:-1] - ts[1:]
    w = jax.vmap(lambda t: guidance.weight(t))(ts[:-1])  # (n_steps,) or (n_steps, n)
    coef = h * process.g2(ts[:-1]) * nu_i
    return jnp.tensordot(coef, w, axes=(0, 0))


def normalise_pulse(
    pulse: Pulse, eps: ArrayLike, process: AbstractProcess, ts: ArrayLike, nu: ArrayLike | Callable
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
    size = eqx.error_if(size, ~(size > 0), "the pulse does not overlap the time grid (zero size).")
    return eqx.tree_at(lambda p: p.strength, pulse, jnp.asarray(eps, size.dtype) / size)


# ==============================================================================================
# 3. theory: pulse response of two clusters
# ==============================================================================================


@jax.jit
def _rg_kernel(mu, gamma):
    z, w = _nodes(mu.dtype)
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
    m_norm: ArrayLike, sigma2: ArrayLike, t: ArrayLike, *, process: AbstractProcess | None = None
) -> Array:
    r"""$R_g(t) = \mathbb E_{p_t}\big[\partial_qP(+\mid q)\,(1-\tanh(c_tq))\big]$ by quadrature over the
    full two-cluster marginal: the response of the final class-$+$ probability to a unit guidance
    displacement at $t$ (module docstring). Equals $R(t)$ of
    :func:`gltheory.class_susceptibility_theory` (a symmetry identity; computed independently).
    """
    mu, gamma = _two_cluster_params(m_norm, sigma2, t, process)
    return _rg_kernel(mu, gamma)


def _flow_shift(u, k):
    r"""$v\ge0$ with $v + e^{u}(e^{v}-1) = k$ (bisection; stable for any $u$)."""

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


@functools.partial(jax.jit, static_argnums=3)
def _pulse_kernel(mu, gamma, eps, kind: str):
    z, w = _nodes(mu.dtype)
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
    m_norm: ArrayLike,
    sigma2: ArrayLike,
    t: ArrayLike,
    eps: ArrayLike,
    *,
    kind: Literal["flow", "euler", "linear"] = "flow",
    process: AbstractProcess | None = None,
) -> Array:
    r"""Final class-$+$ probability after an impulsive guidance pulse of size $\varepsilon$ at time $t$
    (two clusters $\pm m$, exact sampler before and after), by quadrature:
    $$P_{\rm final}(+) = \mathbb E_{q\sim p_t}\big[\mathrm{sigmoid}(2c_t\,\Phi_\varepsilon(q))\big].$$

    - ``kind="flow"``: $\Phi$ is the guidance flow $dq/ds = 1-\tanh(c_tq)$, $s\in[0,\varepsilon]$
      (the width $\to0$ limit of any pulse), solved exactly: $v=2c_t(\Phi-q)$ solves
      $v + e^{2c_tq}(e^{v}-1) = 4c_t\varepsilon$;
    - ``kind="euler"``: $\Phi = q + \varepsilon(1-\tanh c_tq)$, a one-step box pulse of the
      Euler–Maruyama sampler;
    - ``kind="linear"``: $\tfrac12 + \varepsilon R_g(t)$.

    All agree to $O(\varepsilon)$ and $dP/d\varepsilon|_0 = R(t)$. Module docstring for the derivation.
    The ``"flow"`` map is found by bisection (100 halvings), so autodiff through it in
    $\varepsilon$ returns zero: use finite differences or ``kind="euler"`` for gradients.
    """
    mu, gamma = _two_cluster_params(m_norm, sigma2, t, process)
    if kind not in ("flow", "euler", "linear"):
        raise ValueError(f"kind must be 'flow', 'euler' or 'linear', got {kind!r}.")
    eps = as_float_array(eps, "eps").astype(mu.dtype)
    eps = check_values(eps, lambda v: (v < 0).any(), "eps must be >= 0.")
    mu, gamma, eps = jnp.broadcast_arrays(mu, gamma, eps)
    return _pulse_kernel(mu, gamma, eps, kind)


def pulse_alignment_theory(
    m_norm: ArrayLike,
    sigma2: ArrayLike,
    pulse: Pulse,
    *,
    process: AbstractProcess,
    ts: ArrayLike,
) -> Array:
    r"""Linear-response class-$+$ alignment of a guided unconditional sampler on the grid ``ts``:
    $\tfrac12 + \sum_i h_i\,(w(t_i)-w_{\rm base})\,g^2(t_i)\,\nu(t_i)\,R(t_i)$, exact to $O(\varepsilon)$
    ($\nu$ of :func:`two_cluster_guidance_scale`, $R$ by quadrature). Differentiable in the pulse.
    """
    _check_process(process)
    ts = as_float_array(ts, "ts")
    t = ts[:-1]
    mu, gamma = _two_cluster_params(m_norm, sigma2, t, process)
    r = _rg_kernel(mu, gamma)
    coef = (ts[:-1] - ts[1:]) * process.g2(t) * (mu / gamma) * r
    prof = jax.vmap(lambda s: pulse.strength * pulse.profile(s))(t)
    return 0.5 + jnp.tensordot(coef, prof, axes=(0, 0))


def optimal_pulse_centre(
    m_norm: ArrayLike,
    sigma2: ArrayLike,
    *,
    width: ArrayLike,
    shape: Literal["box", "smooth"] = "smooth",
    process: AbstractProcess,
    ts: ArrayLike,
    t_lo: float,
    t_hi: float,
    n_grid: int = 101,
    n_refine: int = 40,
) -> tuple[Array, Array]:
    r"""Centre maximising :func:`pulse_alignment_theory` at unit perturbation size (the linear-
    response optimum for a pulse of this shape and width on this grid): grid search on
    $[t_{\rm lo}, t_{\rm hi}]$ then golden section on the two cells around the grid maximum.

    **Returns:** ``(centre, dP/deps)``.
    """
    _check_process(process)
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

    cs = jnp.linspace(bounds[0], bounds[1], n_grid)
    vals = jax.lax.map(gain, cs)
    i = jnp.clip(jnp.argmax(vals), 1, n_grid - 2)
    gr = (math.sqrt(5.0) - 1) / 2

    def body(_, b):
        lo, hi = b
        c = hi - gr * (hi - lo)
        d = lo + gr * (hi - lo)
        left = gain(c) >= gain(d)
        return jnp.where(left, lo, c), jnp.where(left, d, hi)

    lo, hi = jax.lax.fori_loop(0, n_refine, body, (cs[i - 1], cs[i + 1]))
    c = 0.5 * (lo + hi)
    return c, gain(c)


@eqx.filter_jit
def _pulse_nu(data, process, target, ts):
    r"""$\nu(t_i)$ at ``ts[:-1]`` from the symmetric point $x=0$, as :func:`learn_pulse` uses it."""
    ref = jnp.zeros((1,) + tuple(data.event_shape), ts.dtype)

    def nu(t):
        return guidance_scale(
            ClassScore(data, process, target), ClassScore(data, process, None), ref, t
        )

    return jax.vmap(nu)(ts[:-1])


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
        s_u = data._score(process, col, t, None)
        s_c = data._score(process, col, t, target)
        base = col + h * process.reverse_drift(col, t, s_u)
        return base[:, 0], (h * process.g2(t) * (s_c - s_u))[:, 0], process.g2(t) * h

    base, push, var = jax.vmap(at)(ts[:-1], ts[1:])
    lj0 = data._log_joint(process, col, ts[0])[0]
    dens0 = jnp.exp(jax.scipy.special.logsumexp(lj0, axis=-1))
    post = jax.nn.softmax(data._log_joint(process, col, ts[-1])[0], axis=-1)[:, target]
    return _QuadTables(xg, base, push, var, dens0, post)


def _em_objective_quad(tab, process, centre, width, eps, ts, nu_i, shape):
    """(mean objective, fraction of the mass kept on the grid) for one pulse."""
    dx = tab.xg[1] - tab.xg[0]
    pulse = normalise_pulse(Pulse(centre, width, shape=shape), eps, process, ts, nu_i)
    w = jax.vmap(lambda t: pulse.weight(t))(ts[:-1])

    def step(d, i):
        mean = tab.base[i] + w[i] * tab.push[i]
        ker = jnp.exp(-((tab.xg[:, None] - mean[None, :]) ** 2) / (2 * tab.var[i]))
        return ker @ d * (dx / jnp.sqrt(2 * jnp.pi * tab.var[i])), None

    dens, _ = jax.lax.scan(step, tab.dens0, jnp.arange(ts.shape[0] - 1))
    return jnp.sum(dens * tab.post) * dx, jnp.sum(dens) / jnp.sum(tab.dens0)


@functools.partial(jax.jit, static_argnames=("shape", "target", "n_x"))
def _em_objective_quad_jit(data, process, centre, width, eps, ts, nu_i, x_max, shape, target, n_x):
    tab = _quad_tables(data, process, ts, x_max, target, n_x)
    return _em_objective_quad(tab, process, centre, width, eps, ts, nu_i, shape)


def pulse_objective_quadrature(
    data: ClassConditional,
    process: AbstractProcess,
    *,
    centre: ArrayLike,
    width: ArrayLike,
    eps: ArrayLike,
    ts: ArrayLike,
    target: int = 0,
    shape: Literal["box", "smooth"] = "smooth",
    x_max: float = 6.0,
    n_x: int = 241,
) -> Array:
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
    _check_process(process)
    if shape not in ("box", "smooth"):
        raise ValueError(f"shape must be 'box' or 'smooth', got {shape!r}.")
    if isinstance(n_x, bool) or not isinstance(n_x, (int, np.integer)) or n_x < 11:
        raise ValueError(f"n_x must be an integer >= 11, got {n_x!r}.")
    if not (isinstance(target, (int, np.integer)) and 0 <= target < data.n_classes):
        raise ValueError(f"target must be a class index, got {target!r}.")
    ts = _check_ts(as_float_array(ts, "ts"), process.T)
    try:  # the trapezoid rule needs the spacing well below the narrowest kernel g sqrt(h)
        kernel = float(jnp.min(jnp.sqrt(process.g2(ts[:-1]) * (ts[:-1] - ts[1:]))))
    except jax.errors.ConcretizationTypeError:  # traced grid: not checked
        kernel = math.inf
    if 2 * x_max / (n_x - 1) > 0.5 * kernel:
        raise ValueError(
            f"n_x={n_x} is too coarse for this grid: spacing {2 * x_max / (n_x - 1):.3g} must be "
            f"<= half the narrowest transition kernel ({kernel:.3g})."
        )
    data = _cast_floats(data, ts.dtype)
    process = _cast_floats(process, ts.dtype)
    return data, process, ts, _pulse_nu(data, process, int(target), ts)


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
    return eqx.error_if(
        j, jnp.abs(mass - 1) > 1e-6, "density left the quadrature grid: raise x_max."
    )


def discrete_optimal_pulse_centre(
    data: ClassConditional,
    process: AbstractProcess,
    *,
    width: ArrayLike,
    eps: ArrayLike,
    ts: ArrayLike,
    t_lo: float,
    t_hi: float,
    target: int = 0,
    shape: Literal["box", "smooth"] = "smooth",
    n_grid: int = 9,
    n_zoom: int = 3,
    x_max: float = 6.0,
    n_x: int = 241,
) -> tuple[Array, Array, Array]:
    r"""Centre maximising :func:`pulse_objective_quadrature` at fixed ``width`` and ``eps``: the
    optimum of the very objective :func:`learn_pulse` estimates (same sampler, grid, pulse shape,
    normalisation and finite $\varepsilon$). Grid search with ``n_grid`` points on
    $[t_{\rm lo},t_{\rm hi}]$, ``n_zoom`` times re-gridded on the two cells around the maximum
    (each zoom shrinks the bracket by $(n_{\rm grid}-1)/2$), then the vertex of the parabola
    through the three points around the maximum of the finest grid. The curvature
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
    c = eqx.error_if(c, bad > 1e-6, "density left the quadrature grid: raise x_max.")
    return c, val, h2


@functools.partial(jax.jit, static_argnames=("shape", "target", "n_x", "n_zoom"))
def _disc_opt_impl(data, process, width, eps, ts, nu_i, x_max, cs, shape, target, n_x, n_zoom):
    tab = _quad_tables(data, process, ts, x_max, target, n_x)
    # one traced (vmapped) objective, evaluated n_zoom + 2 times in a loop (compiles once):
    # passes 0..n_zoom grid and zoom; pass n_zoom + 1 evaluates c - d, c, c + d at the vertex c
    d = jnp.asarray(0.01, cs.dtype)
    n = cs.shape[0]

    def body(k, carry):
        cs, bad, c, stencil = carry
        vals, mass = jax.vmap(
            lambda x: _em_objective_quad(tab, process, x, width, eps, ts, nu_i, shape)
        )(cs)
        bad = jnp.maximum(bad, jnp.max(jnp.abs(mass - 1)))
        i = jnp.clip(jnp.argmax(vals), 1, n - 2)
        step = cs[1] - cs[0]
        fm, f0, fp = vals[i - 1], vals[i], vals[i + 1]
        vertex = cs[i] - 0.5 * step * (fp - fm) / (fp - 2 * f0 + fm)
        zoomed = jnp.linspace(cs[i - 1], cs[i + 1], n)
        last = k == n_zoom  # finest grid: take the parabola's vertex, then the stencil
        c = jnp.where(last, vertex, c)
        probe = jnp.concatenate([jnp.stack([c - d, c, c + d]), jnp.full((n - 3,), c)])
        nxt = jnp.where(last, probe, zoomed)
        stencil = jnp.where(k == n_zoom + 1, vals[:3], stencil)
        return nxt, bad, c, stencil

    init = (cs, jnp.zeros((), cs.dtype), cs[0], jnp.zeros((3,), cs.dtype))
    _, bad, c, (jm, jc, jp) = jax.lax.fori_loop(0, n_zoom + 2, body, init)
    return c, jc, (jp - 2 * jc + jm) / d**2, bad


# ==============================================================================================
# 4. the pulse experiment (Monte Carlo)
# ==============================================================================================


class AlignmentEstimate(NamedTuple):
    """Result of :func:`pulse_alignment`.

    - `alignment`: fraction of final samples classified as the target class.
    - `se`: binomial standard error.
    - `hits`: per-trajectory indicators (for paired comparisons), shape ``(n,)``.
    - `diversity`: mean per-coordinate variance of the aligned samples (within-class variance).
    - `n`: number of trajectories.
    - `final`: the final states; `observed`: the sampler's ``observe`` record (or ``None``).
    """

    alignment: Array
    se: Array
    hits: Array
    diversity: Array
    n: int
    final: Array
    observed: Any = None


class _RowPosterior(eqx.Module):
    """``observe`` for :func:`pulse_scan`: the exact posterior of the target class per trajectory."""

    data: ClassConditional
    process: AbstractProcess
    target: int = eqx.field(static=True)

    def __call__(self, x, t):
        return self.data.class_posterior(self.process, x, t)[..., self.target]


def random_pulse_centres(key: PRNGKeyArray, n: int, width: ArrayLike, ts: ArrayLike) -> Array:
    r"""``n`` pulse centres uniform on $[t_{\rm end}+\Delta/2,\ t_{\rm start}-\Delta/2]$ (whole pulse on the grid)."""
    ts = as_float_array(ts, "ts")
    lo = ts[-1] + 0.5 * width
    hi = ts[0] - 0.5 * width
    return lo + (hi - lo) * jax.random.uniform(key, (n,), ts.dtype)


def pulse_alignment(
    data: ClassConditional | ClassLattice,
    process: AbstractProcess,
    key: PRNGKeyArray,
    x: ArrayLike,
    guidance: AbstractGuidance,
    *,
    ts: ArrayLike,
    target: int = 0,
    method: str = "euler_maruyama",
    observe: Callable | None = None,
    save_at: Sequence[int] | None = None,
) -> AlignmentEstimate:
    r"""Class alignment of samples from the guided sampler $s_u + w(s_c - s_u)$, $c=$ ``target``.

    Runs :func:`gltheory.sample` with a :class:`GuidedScore` (same ``key`` and ``x`` for every
    guidance form: common random numbers) and classifies the final states with the exact posterior
    classifier (mixtures) or the patch-feature classifier (lattices). Diversity: the mean
    per-coordinate variance of the samples assigned to ``target`` (guidance that collapses the
    class shows up as a small value).
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
    hits = (lab == target).astype(sol.x.dtype)
    n = hits.shape[0]
    a = jnp.mean(hits)
    se = jnp.sqrt(a * (1 - a) / n)
    xf = sol.x.reshape(n, -1)
    cnt = jnp.maximum(jnp.sum(hits), 2.0)
    mean = jnp.sum(hits[:, None] * xf, axis=0) / cnt
    var = jnp.sum(hits[:, None] * (xf - mean) ** 2, axis=0) / (cnt - 1)
    return AlignmentEstimate(a, se, hits, jnp.mean(var), n, sol.x, sol.observables)


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


def paired_difference(hits_a: ArrayLike, hits_b: ArrayLike) -> tuple[Array, Array]:
    r"""Mean and standard error of the paired difference $\overline{h_a-h_b}$ (common random numbers)."""
    d = jnp.asarray(hits_a) - jnp.asarray(hits_b)
    n = d.shape[-1]
    return jnp.mean(d, axis=-1), jnp.std(d, axis=-1, ddof=1) / math.sqrt(n)


def pulse_scan(
    data: ClassConditional | ClassLattice,
    process: AbstractProcess,
    key: PRNGKeyArray,
    x: ArrayLike,
    centres: ArrayLike,
    *,
    width: ArrayLike,
    eps: ArrayLike,
    ts: ArrayLike,
    nu: ArrayLike | Callable,
    shape: Literal["box", "smooth"] = "box",
    target: int = 0,
    method: str = "euler_maruyama",
    estimator: Literal["indicator", "posterior"] = "indicator",
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

    **Returns:** a :class:`PulseScan`.
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
            raise ValueError("estimator='posterior' needs a ClassConditional dataset.")
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
    lab = data.classify(process, est.final, ts[-1]).reshape(r + 1, n)
    final_hits = (lab[1:] == target).astype(x.dtype)
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
    )


def _tile_keys(key, n, reps):
    k = trajectory_keys(key, n)
    return jnp.concatenate([k] * reps)


def alignment_curve_peak(
    t: ArrayLike, values: ArrayLike, key: PRNGKeyArray, *, degree: int = 3, n_boot: int = 400
) -> tuple[Array, Array]:
    r"""Peak time of a Monte Carlo curve from a least-squares polynomial fit, with a bootstrap SE.

    ``values`` holds per-trajectory values, shape ``(G, n)`` (row $g$ at time ``t[g]``; columns
    are paired trajectories). The estimate is the maximiser of the degree-``degree`` fit to the
    row means on $[\min t,\max t]$ (dense evaluation); its SE is the standard deviation over
    ``n_boot`` bootstrap resamples of the trajectories (columns). A cubic removes the skewness
    bias of a parabola (for $R(t)$ of two deltas, $\Lambda=1$, on $t^\star\pm0.16$: bias
    $5\times10^{-4}$ vs $2.7\times10^{-2}$ for a parabola). **Returns:** ``(t_peak, se)``.
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

    def peak(mean):
        coef = jnp.polyfit(t - t0, mean, degree)
        return t0 + dense[jnp.argmax(jnp.polyval(coef, dense))]

    n = v.shape[1]
    idx = jax.random.randint(key, (n_boot, n), 0, n)
    boots = jax.vmap(lambda i: peak(jnp.mean(v[:, i], axis=1)))(idx)
    return peak(jnp.mean(v, axis=1)), jnp.std(boots, ddof=1)


# ==============================================================================================
# 5. physics-aware sampler
# ==============================================================================================


class PhysicsAwareResult(NamedTuple):
    """Result of :func:`physics_aware_sample`.

    - `x`: final states. - `fire_index`, `fire_time`: grid index and time at which the pulse
      started (index ``-1`` / time NaN if it never fired). - `r_hat`: the online estimate of the
      guidance susceptibility at every step, shape ``(n_steps,)``. - `spread`: the ensemble
      variance of $P(c\\mid x_t)$ at every step.
    """

    x: Array
    fire_index: Array
    fire_time: Array
    r_hat: Array
    spread: Array


@eqx.filter_jit
def _pa_impl(data, process, x, z, ts, eps, n_pulse, target, drop):
    n_steps = ts.shape[0] - 1

    def post(xx, t):
        return data.class_posterior(process, xx, t)[..., target]

    def step(carry, i):
        x, r_prev, r_max, fired, fire_i = carry
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
        g2 = process.g2(t)
        w = jnp.where(on, eps / (n_pulse * h * g2 * nu), 0.0)
        drift = process.reverse_drift(x, t, s_u + w * diff)
        x = x + h * drift + (process.g(t) * jnp.sqrt(h)) * z[i]
        return (x, r_hat, jnp.maximum(r_max, r_hat), fired, fire_i), (r_hat, spread)

    init = (
        x,
        jnp.asarray(0.0, x.dtype),
        jnp.asarray(0.0, x.dtype),
        jnp.asarray(False),
        jnp.asarray(-1),
    )
    (x, _, _, fired, fire_i), (r_hat, spread) = jax.lax.scan(step, init, jnp.arange(n_steps))
    fire_t = jnp.where(fired, ts[jnp.maximum(fire_i, 0)], jnp.nan)
    return x, fire_i, fire_t, r_hat, spread


def physics_aware_sample(
    data: ClassConditional,
    process: AbstractProcess,
    key: PRNGKeyArray,
    x: ArrayLike,
    *,
    ts: ArrayLike,
    eps: float,
    n_pulse: int = 4,
    target: int = 0,
    drop: float = 0.003,
) -> PhysicsAwareResult:
    r"""Reverse SDE (Euler–Maruyama) that finds the critical window online and fires a pulse there.

    At every step the running ensemble $\{x^{(j)}_t\}$ (a sample of $p_t$) gives the guidance
    susceptibility of the denoised class posterior,
    $$\hat R(t) = \frac1n\sum_j \nabla_xP(c\mid x^{(j)}_t)\cdot\frac{s_c - s_u}{\nu(t)}(x^{(j)}_t)$$
    (one JVP), an unbiased estimate of the response of the final alignment to a unit guidance
    displacement at $t$ ($=R(t)$ for two clusters). $\hat R$ rises as the ensemble approaches the
    critical window and falls after it; the pulse fires at the first step where $\hat R$ drops
    below $(1-\text{drop})\max_{s>t}\hat R$ (just past the peak) and lasts ``n_pulse`` steps, each
    contributing $\varepsilon/$``n_pulse`` of displacement (module docstring). The sampler is never
    told $t_c$. Noise: the increments :func:`gltheory.sample` would use with the same ``key``
    (:func:`gltheory.trajectory_noise`), so the two can be compared with common random numbers.

    **Returns:** a :class:`PhysicsAwareResult`.
    """
    if not isinstance(data, ClassConditional):
        raise ValueError("physics_aware_sample needs a ClassConditional dataset (exact posterior).")
    _check_process(process)
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
    ts = _check_ts(ts, process.T).astype(x.dtype)
    z = trajectory_noise(key, ts.shape[0] - 1, x.shape[1:], n=x.shape[0], dtype=x.dtype)
    data = _cast_floats(data, x.dtype)
    process = _cast_floats(process, x.dtype)
    out = _pa_impl(
        data,
        process,
        x,
        z,
        ts,
        jnp.asarray(eps, x.dtype),
        int(n_pulse),
        int(target),
        jnp.asarray(drop, x.dtype),
    )
    return PhysicsAwareResult(*out)


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
      `grad_se` / |that curvature| is the better delta-method SE.
    """

    centre: Array
    width: Array
    centre_se: Array
    objective: Array
    history: Array
    grad_se: Array | None = None
    curvature: Array | None = None


def _surrogate(theta, data, process, x0, key, ts, eps, nu, target, width_min, shape):
    centre, log_extra = theta[0], theta[1]
    width = width_min + jnp.exp(log_extra)
    p = normalise_pulse(Pulse(centre, width, shape=shape), eps, process, ts, nu)
    gs = GuidedScore(ClassScore(data, process, target), ClassScore(data, process, None), p)
    sol = sample(gs, process, key, x0, ts=ts)
    return data.class_posterior(process, sol.x, ts[-1])[..., target]


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
    key: PRNGKeyArray,
    x: ArrayLike,
    *,
    ts: ArrayLike,
    eps: float,
    centre: float,
    width: float,
    width_min: float = 0.05,
    learn_width: bool = True,
    target: int = 0,
    n_iter: int = 60,
    learning_rate: float = 0.05,
    n_polish: int = 3,
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
    :func:`discrete_optimal_pulse_centre`.
    """
    if not isinstance(data, ClassConditional):
        raise ValueError("learn_pulse needs a ClassConditional dataset (exact posterior).")
    _check_process(process)
    x = as_float_array(x, "x")
    ts = _check_ts(ts, process.T).astype(x.dtype)
    if width <= width_min:
        raise ValueError(f"width ({width}) must exceed width_min ({width_min}).")

    if isinstance(n_polish, bool) or not isinstance(n_polish, (int, np.integer)) or n_polish < 0:
        raise ValueError(f"n_polish must be a non-negative integer, got {n_polish!r}.")
    nu_i = _pulse_nu(data, process, int(target), ts)

    args = (data, process, x, key, ts, jnp.asarray(eps, x.dtype), nu_i)
    args = args + (jnp.asarray(width_min, x.dtype),)

    def per_traj_grad(theta):
        return _per_traj_grad(theta, *args, int(target))

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
    return LearnedPulse(
        theta[0],
        width_min + jnp.exp(theta[1]),
        c_se,
        jnp.mean(vals),
        jnp.stack(hist),
        g_se,
        curv,
    )
