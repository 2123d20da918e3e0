r"""Observables of the generative dynamics: cloning probability, class susceptibility, order
parameter, measured by simulation and computed by quadrature. See
`docs/theory/cloning.md#cloning-probability`, `docs/theory/guidance.md#class-susceptibility` and
`docs/theory/meanfield.md#landau`.

**Measured** (Monte Carlo, any score and process, with :func:`gltheory.sample`):

- :func:`cloning_probability` — Biroli et al.'s speciation probe: trajectories are run from
  $t_0$ to a branch time $t$, each is split into copies continued with independent noise, and
  $\phi(t)$ is the fraction whose copies all end in the same class;
- :func:`kick_response` — the class susceptibility $R(t)$: the final class fraction's response
  to a small kick of the state along a direction at time $t$, by a central difference with
  common random numbers (kicked and anti-kicked copies share their noise);
- :func:`class_fraction_response` — the response of the final class fraction to a parameter of
  the score (e.g. a bias $h$ of the data weights), with common random numbers;
- :func:`magnetization_observable` and :func:`bimodality` — the order parameter
  $M = u\cdot\mathbb E[y\mid x_t]$ along trajectories and its mean $|M|$ and Binder cumulant.

**Non-finite trajectories.** Every Monte Carlo estimator here counts the trajectories (or
samples) whose states hold a NaN or Inf and reports the count as ``n_nonfinite``; when it is
not zero the estimate and its standard error are NaN (a class label of a NaN state is
meaningless, so no estimate, and in particular no ``se = 0``, is built on them). This holds
under ``jit`` too (no error is raised, no host callback is added).

**Theory** (two symmetric clusters $\pm m$ with isotropic within-cluster variance $\sigma^2$;
$\sigma^2 = 0$ gives two deltas): along $\hat m$ the marginal is
$p_t(q) = \tfrac12[G_+(q) + G_-(q)]$, $G_\pm = \mathcal N(q;\pm\mu_t,\Gamma_t)$ with
$\mu_t = a_t\|m\|$, $\Gamma_t = b_t^2 + a_t^2\sigma^2$ (OU: $\Gamma_t = \Delta_t + \sigma^2e^{-2t}$),
and an exact sampler started at $x_t$ ends in class $+$ with probability
$P(+\mid q) = G_+/(G_++G_-) = \mathrm{sigmoid}(2\mu_tq/\Gamma_t)$. Every quantity is a 1-D
Gaussian expectation over $q = \mu_t + \sqrt{\Gamma_t}\,z$; it depends on $t$ only through
$\kappa_t = \mu_t/\sqrt{\Gamma_t}$ (and $\sqrt{\Gamma_t}$ for $R$). It is computed by a
trapezoid rule in $z$ on $[-12, 12]$ with step $0.01$ (spectrally accurate for these analytic
integrands; error below $10^{-12}$ for $\kappa\lesssim 30$, beyond which $\phi = 1$ to double
precision anyway), in log-sigmoid form, so it is jit/vmap-able and exact to round-off.

**Scaling limit** (`docs/theory/cloning.md#cloning-probability`, `docs/theory/cloning.md#kick-response`). With $\|m\|^2 = \Lambda$ and $t = t_S + \tau$,
$t_S = \tfrac12\ln\Lambda$: $\kappa \to e^{-\tau}$ and $\Gamma\to1$ as $\Lambda\to\infty$. For
$\sigma^2 = 1$ this holds *exactly at every* $\Lambda$ ($\Gamma_t\equiv1$ under OU), so
$\phi$ and $R$ plotted against $t - t_S$ collapse exactly; for deltas ($\sigma^2=0$) the
collapse is reached with $O(1/\Lambda)$ corrections. Limits: $\phi(t_S) = 0.77520$ (Biroli et
al.'s threshold 0.775), $\arg\max R = t_S + 0.20074$, $R_{\max} = 0.23366$.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ._checks import (
    DATASET,
    PROCESS,
    as_float_array,
    batch_shape,
    check_callable,
    check_indices,
    check_instance,
    check_labels,
    check_values,
    fold_keys,
    is_concrete,
    is_shape,
    precheck_labels,
    state_dtype,
)
from ._roots import bracketed_argmax
from .data import AbstractData
from .processes import OU, AbstractProcess
from .sampling import (
    METHODS,
    Indices,
    TrajectoryKeys,
    as_trajectory_keys,
    check_time_grid,
    nonfinite_rows,
    sample,
    states_at,
)
from .scores import denoiser

__all__ = [
    "CloningEstimate",
    "ResponseEstimate",
    "Bimodality",
    "cloning_probability",
    "cloning_probability_theory",
    "class_susceptibility_theory",
    "class_susceptibility_peak",
    "kick_response",
    "class_fraction_response",
    "sign_classifier",
    "magnetization_observable",
    "bimodality",
    "PHI_SPECIATION",
    "R_PEAK_SHIFT",
    "R_PEAK_VALUE",
]

PHI_SPECIATION = 0.7752002453966632
r"""$\phi(t_S)$ in the large-$\Lambda$ limit, $\mathbb E_{z}[\mathrm{sigmoid}(2+2z)]$ (`docs/theory/cloning.md#cloning-probability`)."""
R_PEAK_SHIFT = 0.20073664962323517
r"""$t^\star - t_S$ of the class susceptibility in the large-$\Lambda$ limit (`docs/theory/guidance.md#class-susceptibility`)."""
R_PEAK_VALUE = 0.23365987963579243
r"""$R_{\max}$ of the class susceptibility in the large-$\Lambda$ limit (`docs/theory/guidance.md#class-susceptibility`)."""

# trapezoid nodes and weights for E_{z ~ N(0,1)}[f(z)] (float64 NumPy constants)
_Z_HALF_WIDTH = 12.0
_Z_STEP = 0.01
_Z = np.linspace(-_Z_HALF_WIDTH, _Z_HALF_WIDTH, int(round(2 * _Z_HALF_WIDTH / _Z_STEP)) + 1)
_W = _Z_STEP * np.exp(-0.5 * _Z**2) / np.sqrt(2 * np.pi)


# ----------------------------------------------------------------------------------------------
# result types
# ----------------------------------------------------------------------------------------------


class CloningEstimate(NamedTuple):
    """Result of :func:`cloning_probability`.

    - `phi`: fraction of trajectories whose copies all end in the same class; a scalar for one
      branch index, shape ``(k,)`` for ``k`` branch indices.
    - `se`: binomial standard error $\\sqrt{\\phi(1-\\phi)/n}$, shaped like `phi`.
    - `n`: number of branched trajectories per branch time.
    - `t`: the branch times ``ts[branch_index]``, shaped like `phi`.
    - `n_nonfinite`: number of the ``n`` trajectories with a NaN/Inf state (at the branch time
      or at the end of any copy), shaped like `phi`; where it is not zero, `phi` and `se` are
      NaN.
    """

    phi: Array
    se: Array
    n: int
    t: Array
    n_nonfinite: Array | int = 0


class ResponseEstimate(NamedTuple):
    """Result of :func:`kick_response` and :func:`class_fraction_response`.

    - `response`: central finite-difference estimate of $dF/d\\epsilon$ ($F$ the final class
      fraction, $\\epsilon$ the kick size or the parameter); scalar or shape ``(k,)``.
    - `se`: its standard error from the ``n`` paired differences (common random numbers).
    - `n`: number of pairs.
    - `t`: the kick times (``None`` for :func:`class_fraction_response`).
    - `n_nonfinite`: number of pairs with a NaN/Inf state (kicked state or final state of
      either member), shaped like `response`; where it is not zero, `response` and `se` are
      NaN.
    """

    response: Array
    se: Array
    n: int
    t: Array | None
    n_nonfinite: Array | int = 0


class Bimodality(NamedTuple):
    """Result of :func:`bimodality` (all fields reduce the batch axis).

    - `mean_abs`, `mean_abs_se`: $\\langle|M|\\rangle$ and its standard error.
    - `binder`, `binder_se`: $U = 1 - \\langle M^4\\rangle/(3\\langle M^2\\rangle^2)$ and its
      delta-method standard error.
    - `n`: number of samples.
    - `n_nonfinite`: number of non-finite samples (per kept index); where it is not zero every
      estimate and standard error is NaN.
    """

    mean_abs: Array
    mean_abs_se: Array
    binder: Array
    binder_se: Array
    n: int
    n_nonfinite: Array | int = 0


# ----------------------------------------------------------------------------------------------
# theory: two symmetric clusters, by quadrature
# ----------------------------------------------------------------------------------------------


def _mu_gamma(m_norm, sigma2, t, process):
    r"""$\mu_t = a_t\|m\|$ and $\Gamma_t = b_t^2 + a_t^2\sigma^2$ (no validation)."""
    dtype = jnp.result_type(m_norm, sigma2, t)
    a = process.a(t).astype(dtype)
    return a * m_norm, process.b2(t).astype(dtype) + a**2 * sigma2


def _got(v) -> str:
    return f", got {np.asarray(v)}" if is_concrete(v) else ""


def two_cluster_params(m_norm, sigma2, t, process):
    r"""Checked $(\mu_t, \Gamma_t) = (a_t\|m\|,\ b_t^2 + a_t^2\sigma^2)$ of two clusters $\pm m$
    (``process=None``: the default OU), in the common float dtype of the inputs."""
    if process is None:
        process = OU()
    elif not isinstance(process, AbstractProcess):
        raise ValueError(
            f"process must be a gltheory process or None, got {type(process).__name__}."
        )
    m_norm = as_float_array(m_norm, "m_norm")
    sigma2 = as_float_array(sigma2, "sigma2")
    t = as_float_array(t, "t")
    dtype = jnp.result_type(m_norm, sigma2, t, float)
    m_norm = check_values(
        m_norm.astype(dtype), lambda v: (v < 0).any(), f"m_norm must be >= 0{_got(m_norm)}."
    )
    sigma2 = check_values(
        sigma2.astype(dtype), lambda v: (v < 0).any(), f"sigma2 must be >= 0{_got(sigma2)}."
    )
    t = check_values(t.astype(dtype), lambda v: (v <= 0).any(), f"t must be > 0{_got(t)}.")
    return _mu_gamma(m_norm, sigma2, t, process)


def normal_quadrature_nodes(dtype):
    r"""Nodes ``z`` and weights ``w`` of the quadrature rule for $\mathbb E_{z\sim\mathcal N(0,1)}$."""
    return jnp.asarray(_Z, dtype), jnp.asarray(_W, dtype)


@functools.partial(jax.jit, static_argnums=2)
def _phi_kernel(mu, gamma, n_copies: int):
    z, w = normal_quadrature_nodes(mu.dtype)
    kappa = (mu / jnp.sqrt(gamma))[..., None]
    log_p = jax.nn.log_sigmoid(2 * kappa * (kappa + z))
    return jnp.sum(w * jnp.exp((n_copies - 1) * log_p), axis=-1)


@jax.jit
def _r_kernel(mu, gamma):
    z, w = normal_quadrature_nodes(mu.dtype)
    kappa = (mu / jnp.sqrt(gamma))[..., None]
    logit = 2 * kappa * (kappa + z)
    pq = jnp.exp(jax.nn.log_sigmoid(logit) + jax.nn.log_sigmoid(-logit))
    return 2 * (mu / gamma) * jnp.sum(w * pq, axis=-1)


@jax.jit
def _r_fd_kernel(mu, gamma, delta):
    z, w = normal_quadrature_nodes(mu.dtype)
    kappa = (mu / jnp.sqrt(gamma))[..., None]
    logit = 2 * kappa * (kappa + z)
    shift = (2 * mu * delta / gamma)[..., None]
    diff = jax.nn.sigmoid(logit + shift) - jax.nn.sigmoid(logit - shift)
    return jnp.sum(w * diff, axis=-1) / (2 * delta)


def cloning_probability_theory(
    m_norm: ArrayLike,
    sigma2: ArrayLike,
    t: ArrayLike,
    *,
    n_copies: int = 2,
    process: AbstractProcess | Any = None,
) -> Array:
    r"""Cloning probability of two symmetric clusters by quadrature (Biroli et al.).

    $$\phi(t) = \frac12\int dq\,\frac{G_+^2 + G_-^2}{G_+ + G_-}
    = \mathbb E_{q\sim G_+}\big[P(+\mid q)\big]
    = \mathbb E_{z\sim\mathcal N(0,1)}\big[\mathrm{sigmoid}\big(2\kappa_t(\kappa_t + z)\big)\big],$$
    $G_\pm = \mathcal N(q;\pm\mu_t,\Gamma_t)$, $\mu_t = a_t\|m\|$, $\Gamma_t = b_t^2 + a_t^2\sigma^2$,
    $\kappa_t = \mu_t/\sqrt{\Gamma_t}$ (OU: $\mu_t = \|m\|e^{-t}$, $\Gamma_t = \Delta_t + \sigma^2e^{-2t}$).
    For $k$ copies, $\phi_k = \mathbb E_{p_t}[P_+^k + P_-^k] = \mathbb E_{q\sim G_+}[P(+\mid q)^{k-1}]$.
    Data $\tfrac12\mathcal N(m,\sigma^2I) + \tfrac12\mathcal N(-m,\sigma^2I)$; $\sigma^2 = 0$ gives two
    deltas. With $\|m\|^2 = d$, $\sigma^2 = 1$ under OU, $\phi(t_S = \tfrac12\ln d) = 0.7752$ for
    every $d$ (:data:`PHI_SPECIATION`).

    **Arguments:**

    - `m_norm`: $\|m\|\ge0$.
    - `sigma2`: within-cluster variance $\sigma^2\ge0$.
    - `t`: forward time(s) $>0$; `m_norm`, `sigma2` and `t` broadcast together.
    - `n_copies`: number of copies $k\ge2$ that must agree.
    - `process`: forward process (default :class:`gltheory.OU`).

    **Returns:** $\phi$, shaped like the broadcast inputs.

    Reference: `docs/theory/cloning.md#cloning-probability` ([CODE] ``src/Plots_paper.py``; the $k$-copy form is [DERIVED]).
    """
    if not isinstance(n_copies, (int, np.integer)) or n_copies < 2:
        raise ValueError(f"n_copies must be an integer >= 2, got {n_copies!r}.")
    mu, gamma = two_cluster_params(m_norm, sigma2, t, process)
    return _phi_kernel(mu, gamma, int(n_copies))


def class_susceptibility_theory(
    m_norm: ArrayLike,
    sigma2: ArrayLike,
    t: ArrayLike,
    *,
    delta: Real[ArrayLike, ""] = 0.0,
    process: AbstractProcess | Any = None,
) -> Array:
    r"""Class susceptibility $R(t)$ of two symmetric clusters by quadrature.

    $$R(t) = \mathbb E_{p_t}\Big[\partial_\delta P(+\mid x_t + \delta\hat m)\big|_{\delta=0}\Big]
    = \frac{2\mu_t}{\Gamma_t}\,\mathbb E_{q\sim G_+}\big[P_+(1-P_+)\big]
    = \frac{\kappa_t}{2\sqrt{\Gamma_t}}\,\mathbb E_z\big[\mathrm{sech}^2\big(\kappa_t(\kappa_t+z)\big)\big],$$
    with $P(+\mid q) = \tfrac12[1+\tanh(\mu_tq/\Gamma_t)]$ and $\mu_t,\Gamma_t,\kappa_t$ as in
    :func:`cloning_probability_theory` (two deltas: $\Gamma_t = b_t^2$). With ``delta > 0`` it
    returns the central difference that :func:`kick_response` measures,
    $\mathbb E_{p_t}[P(+\mid q+\delta) - P(+\mid q-\delta)]/(2\delta)$ (= $R + O(\delta^2)$).
    Large-$\Lambda$ limit: $R = \mathbb E[\tfrac c2\mathrm{sech}^2(cx)]$, $x\sim\mathcal N(c,1)$,
    $c = e^{-(t-t_S)}$, maximal at $t_S + 0.2007$ with $R_{\max} = 0.2337$.

    **Arguments:**

    - `m_norm`, `sigma2`, `t`: as in :func:`cloning_probability_theory`.
    - `delta`: kick size for the finite-difference version (0: the derivative).
    - `process`: forward process (default :class:`gltheory.OU`).

    **Returns:** $R$, shaped like the broadcast inputs.

    Reference: `docs/theory/guidance.md#class-susceptibility` [DERIVED].
    """
    delta = float(delta)
    if not np.isfinite(delta) or delta < 0:
        raise ValueError(f"delta must be a finite number >= 0, got {delta!r}.")
    mu, gamma = two_cluster_params(m_norm, sigma2, t, process)
    if delta == 0.0:
        return _r_kernel(mu, gamma)
    return _r_fd_kernel(mu, gamma, jnp.asarray(delta, mu.dtype))


def class_susceptibility_peak(
    m_norm: ArrayLike,
    sigma2: ArrayLike,
    *,
    process: AbstractProcess | Any = None,
    t_min: Real[ArrayLike, ""] = 1e-3,
    t_max: Real[ArrayLike, ""] | None = None,
    n_grid: int = 2001,
    n_refine: int = 60,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""Time $t^\star = \arg\max_t R(t)$ of the class susceptibility and $R_{\max} = R(t^\star)$.

    Maximises :func:`class_susceptibility_theory` over $t\in[t_{\min}, t_{\max}]$: a uniform grid
    of ``n_grid`` times, then the root of $\partial_tR$ on the two grid cells around the grid
    maximum by ``optimistix.Bisection`` (``n_refine`` halvings shrink them by
    $2^{-60}\approx 10^{-18}$). Derivatives of $t^\star$ in ``m_norm``, ``sigma2`` (and the
    process parameters) come from the implicit-function theorem at the root of $\partial_tR$
    (optimistix's implicit adjoint: $dt^\star = -\partial_t\partial_\theta R/\partial_t^2R\,
    d\theta$), not from the iterations; a maximum on an end of the interval does not move.
    Large-$\Lambda$ limit (OU): $t^\star = \tfrac12\ln\Lambda + 0.2007$, $R_{\max} = 0.2337$; for
    two deltas with $\Lambda\ge4$, $t_c^S < t^\star < t_c^D$ (`docs/theory/guidance.md#class-susceptibility`).

    **Arguments:**

    - `m_norm`, `sigma2`: scalars, as in :func:`cloning_probability_theory`.
    - `process`: forward process (default :class:`gltheory.OU`).
    - `t_min`, `t_max`: search interval (default ``t_max`` = the process's $T$).
    - `n_grid`, `n_refine`: grid size and bisection steps.

    **Returns:** ``(t_star, R_max)``.

    Reference: `docs/theory/guidance.md#class-susceptibility`,
    `docs/theory/critical-times.md#consistency-map` [DERIVED].
    """
    proc = OU() if process is None else process
    if not isinstance(proc, AbstractProcess):
        raise ValueError(f"process must be a gltheory process or None, got {type(proc).__name__}.")
    if jnp.ndim(m_norm) != 0 or jnp.ndim(sigma2) != 0:
        raise ValueError("m_norm and sigma2 must be scalars (vmap for several clusters).")
    t_hi = float(np.asarray(proc.T)) if t_max is None else float(t_max)
    t_min = float(t_min)
    if not (0 < t_min < t_hi):
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min}, t_max={t_hi}.")
    if not isinstance(n_grid, (int, np.integer)) or n_grid < 3:
        raise ValueError(f"n_grid must be an integer >= 3, got {n_grid!r}.")
    if not isinstance(n_refine, (int, np.integer)) or n_refine < 0:
        raise ValueError(f"n_refine must be an integer >= 0, got {n_refine!r}.")
    # validates m_norm and sigma2 (t = t_max is a valid time)
    mu, _ = two_cluster_params(m_norm, sigma2, t_hi, proc)
    dtype = mu.dtype
    m_norm = jnp.asarray(m_norm, dtype)
    sigma2 = jnp.asarray(sigma2, dtype)
    bounds = jnp.asarray([t_min, t_hi], dtype)
    return _peak_impl(m_norm, sigma2, proc, bounds, int(n_grid), int(n_refine))


@eqx.filter_jit
def _peak_impl(m_norm, sigma2, proc, bounds, n_grid: int, n_refine: int):
    def r_of(t, args):
        m_norm, sigma2, proc = args
        return _r_kernel(*_mu_gamma(m_norm, sigma2, t, proc))

    args = (m_norm, sigma2, proc)
    ts = jax.lax.stop_gradient(jnp.linspace(bounds[0], bounds[1], n_grid))
    i = jnp.clip(jnp.argmax(r_of(ts, args)), 1, n_grid - 2)
    t_star = bracketed_argmax(jax.grad(r_of), ts[i - 1], ts[i + 1], args, n_refine)
    return t_star, r_of(t_star, args)


# ----------------------------------------------------------------------------------------------
# Monte Carlo: branching the sampler
# ----------------------------------------------------------------------------------------------


def _check_common(score_fn, process, classify, method):
    check_callable(score_fn, "score_fn", "score_fn(x, t)")
    check_instance(process, AbstractProcess, "process", PROCESS)
    check_callable(classify, "classify", "classify(x) -> integer labels of shape (n,)")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")


def cloning_probability(
    score_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    branch_index: Indices | ArrayLike,
    classify: Callable[[Array], Array] | Any,
    n_copies: int = 2,
    method: str = "euler_maruyama",
    noise_block: int | np.integer | None = None,
) -> CloningEstimate:
    r"""Monte Carlo cloning probability: the fraction of trajectories whose copies, branched at
    $t$ = ``ts[branch_index]`` and continued with independent noise, end in the same class.

    $$\hat\phi(t) = \frac1n\sum_{i=1}^n \mathbf 1\big[c(x^{(i,1)}_{\rm end}) = \dots =
    c(x^{(i,k)}_{\rm end})\big],\qquad \mathrm{se} = \sqrt{\hat\phi(1-\hat\phi)/n},$$
    where $x^{(i,j)}$ are $k$ continuations of trajectory $i$ from its state at $t$. For an
    exact sampler and classes decided by the data, $\mathbb E\hat\phi = \mathbb E_{p_t}
    [\sum_c P(c\mid x_t)^k]$ (two clusters: :func:`cloning_probability_theory`).

    All branch times share one pre-branch run (states saved with ``observe``/``save_at``);
    trajectory $i$ runs on ``fold_in(base_i, 0)`` before the branch and copy $j$ after branch
    index $b$ on ``fold_in(fold_in(fold_in(base_i, 1), b), j)``, $\mathrm{base}_i$ the
    trajectory key (:func:`gltheory.trajectory_keys` of a single key).

    **Arguments:**

    - `score_fn`, `process`, `method`, `noise_block`: as in :func:`gltheory.sample`.
    - `key`: a single PRNG key or a batch of ``n`` per-trajectory keys.
    - `x`: initial states at ``ts[0]``, shape ``(n, *event)``, or that shape as a tuple.
    - `ts`: decreasing time grid (at least two times).
    - `branch_index`: an index or a strictly increasing sequence of indices into ``ts``, each in
      ``0 .. len(ts) - 2``.
    - `classify`: ``classify(x) -> int array (m,)`` for final states ``x`` of shape ``(m, *event)``
      (e.g. :func:`sign_classifier`).
    - `n_copies`: copies per branched trajectory ($k\ge2$).

    **Returns:** a :class:`CloningEstimate` (`phi`, `se`, `t` scalars for a single index, arrays
    for a sequence). Trajectories with a NaN/Inf state are counted in `n_nonfinite`, and then
    `phi` and `se` are NaN (module docstring).

    Reference: `docs/theory/cloning.md#cloning-monte-carlo` (Biroli et al., ``src/Plots_paper.py``).
    """
    _check_common(score_fn, process, classify, method)
    if not isinstance(n_copies, (int, np.integer)) or n_copies < 2:
        raise ValueError(f"n_copies must be an integer >= 2, got {n_copies!r}.")
    ts = check_time_grid(ts, process.T)
    n_steps = ts.shape[0] - 1
    idx, scalar = check_indices(branch_index, n_steps, "branch_index")
    shape = batch_shape(x)
    n = shape[0]
    precheck_labels(classify, n_copies * n, shape[1:], state_dtype(x, ts.dtype))
    base = as_trajectory_keys(key, n)
    states = states_at(
        score_fn,
        process,
        fold_keys(base, 0),
        x,
        ts=ts,
        indices=idx,
        solver=method,
        noise_block=noise_block,
    )
    post = fold_keys(base, 1)
    phis, bads = [], []
    for b, i in enumerate(idx):
        keys_b = fold_keys(post, i)
        copy_keys = jax.vmap(lambda j, kb=keys_b: fold_keys(kb, j))(jnp.arange(n_copies))
        copy_keys = copy_keys.reshape((n_copies * n,) + copy_keys.shape[2:])
        xb = jnp.broadcast_to(states[b], (n_copies,) + states[b].shape)
        xb = xb.reshape((n_copies * n,) + states[b].shape[1:])
        sol = sample(
            score_fn, process, copy_keys, xb, ts=ts[i:], method=method, noise_block=noise_block
        )
        lab = check_labels(classify, sol.x, n_copies * n).reshape(n_copies, n)
        agree = jnp.all(lab == lab[:1], axis=0).astype(jnp.result_type(float))
        phis.append(jnp.mean(agree))
        bad = nonfinite_rows(states[b])
        bad = bad | nonfinite_rows(sol.x).reshape(n_copies, n).any(axis=0)
        bads.append(jnp.sum(bad, dtype=jnp.int32))
    phi, n_bad = jnp.stack(phis), jnp.stack(bads)
    se = jnp.sqrt(phi * (1 - phi) / n)
    phi, se = _nan_where(n_bad, phi, se)
    t = ts[np.asarray(idx)]
    if scalar:
        phi, se, t, n_bad = phi[0], se[0], t[0], n_bad[0]
    return CloningEstimate(phi=phi, se=se, n=n, t=t, n_nonfinite=n_bad)


def _nan_where(count, *values):
    """Each value replaced by NaN where ``count > 0`` (the module's non-finite policy)."""
    return tuple(jnp.where(count > 0, jnp.nan, v) for v in values)


def _paired(lab_plus, lab_minus, target, step) -> tuple[Array, Array]:
    dtype = jnp.result_type(float)
    d = ((lab_plus == target).astype(dtype) - (lab_minus == target).astype(dtype)) / (2 * step)
    n = d.shape[0]
    return jnp.mean(d), jnp.std(d, ddof=1) / np.sqrt(n)


def _unit(direction, event_shape, name="direction") -> Array:
    u = as_float_array(direction, name)
    if tuple(u.shape) != tuple(event_shape):
        raise ValueError(f"{name} must have the event shape {tuple(event_shape)}, got {u.shape}.")
    u = check_values(u, lambda v: ~((v**2).sum() > 0), f"{name} must be nonzero.")
    return u / jnp.sqrt(jnp.sum(u**2))


def kick_response(
    score_fn: Callable[[Array, Array], Array],
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    kick_index: Indices | ArrayLike,
    direction: ArrayLike,
    delta: Real[ArrayLike, ""],
    classify: Callable[[Array], Array] | Any,
    target: int = 1,
    method: str = "euler_maruyama",
    noise_block: int | np.integer | None = None,
) -> ResponseEstimate:
    r"""Measured class susceptibility: response of the final class fraction to a kick at time $t$.

    Each trajectory is run to $t$ = ``ts[kick_index]``, then continued twice from
    $x_t \pm \delta\hat u$ ($\hat u$ = `direction` normalised) with the *same* noise (common
    random numbers), and
    $$\hat R = \frac1n\sum_i\frac{\mathbf 1[c(x^{i,+}_{\rm end}) = c^*] -
    \mathbf 1[c(x^{i,-}_{\rm end}) = c^*]}{2\delta},\qquad \mathrm{se} = \frac{\mathrm{std}(D_i)}{\sqrt n}.$$
    Only trajectories the kick flips contribute, so the estimate has far smaller variance than a
    difference of two independent fractions. For an exact sampler
    $\mathbb E\hat R = \mathbb E_{p_t}[P(c^*\mid x_t+\delta\hat u) - P(c^*\mid x_t-\delta\hat u)]/(2\delta)$
    = ``class_susceptibility_theory(..., delta=delta)`` for two clusters and $\hat u = \hat m$.

    **Arguments:**

    - `score_fn`, `process`, `key`, `x`, `ts`, `classify`, `method`, `noise_block`: as in
      :func:`cloning_probability`.
    - `kick_index`: an index or strictly increasing indices into ``ts`` (``0 .. len(ts) - 2``).
    - `direction`: kick direction, shape ``event_shape`` (normalised here).
    - `delta`: kick size $\delta>0$ (Euclidean norm of the kick).
    - `target`: the class $c^*$ whose fraction responds.

    **Returns:** a :class:`ResponseEstimate` with the kick times in `t` (pairs with a NaN/Inf
    state counted in `n_nonfinite`; then `response` and `se` are NaN).

    Reference: `docs/theory/cloning.md#kick-response` [DERIVED].
    """
    _check_common(score_fn, process, classify, method)
    delta = float(delta)
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a finite number > 0, got {delta!r}.")
    ts = check_time_grid(ts, process.T)
    n_steps = ts.shape[0] - 1
    idx, scalar = check_indices(kick_index, n_steps, "kick_index")
    shape = batch_shape(x)
    n = shape[0]
    u = _unit(direction, shape[1:])
    precheck_labels(classify, 2 * n, shape[1:], state_dtype(x, ts.dtype))
    base = as_trajectory_keys(key, n)
    states = states_at(
        score_fn,
        process,
        fold_keys(base, 0),
        x,
        ts=ts,
        indices=idx,
        solver=method,
        noise_block=noise_block,
    )
    post = fold_keys(base, 1)
    vals, ses, bads = [], [], []
    for b, i in enumerate(idx):
        keys_b = fold_keys(post, i)
        kick = (delta * u).astype(states.dtype)
        xb = jnp.concatenate([states[b] + kick, states[b] - kick])
        sol = sample(
            score_fn,
            process,
            jnp.concatenate([keys_b, keys_b]),
            xb,
            ts=ts[i:],
            method=method,
            noise_block=noise_block,
        )
        lab = check_labels(classify, sol.x, 2 * n)
        r, se = _paired(lab[:n], lab[n:], target, delta)
        vals.append(r)
        ses.append(se)
        bad = nonfinite_rows(xb) | nonfinite_rows(sol.x)
        bads.append(jnp.sum(bad[:n] | bad[n:], dtype=jnp.int32))
    r, se, n_bad = jnp.stack(vals), jnp.stack(ses), jnp.stack(bads)
    r, se = _nan_where(n_bad, r, se)
    t = ts[np.asarray(idx)]
    if scalar:
        r, se, t, n_bad = r[0], se[0], t[0], n_bad[0]
    return ResponseEstimate(response=r, se=se, n=n, t=t, n_nonfinite=n_bad)


def class_fraction_response(
    score_family: Callable[[float], Callable[[Array, Array], Array]],
    process: AbstractProcess,
    key: PRNGKeyArray | TrajectoryKeys,
    x: Real[ArrayLike, " n *event"] | Sequence[int | np.integer],
    *,
    ts: Real[ArrayLike, " n_steps_plus_1"],
    classify: Callable[[Array], Array] | Any,
    h: Real[ArrayLike, ""] = 0.0,
    dh: Real[ArrayLike, ""] = 0.05,
    target: int = 1,
    method: str = "euler_maruyama",
    noise_block: int | np.integer | None = None,
) -> ResponseEstimate:
    r"""Response $dF/dh$ of the final class fraction to a parameter $h$ of the score.

    Runs the sampler with ``score_family(h + dh)`` and ``score_family(h - dh)`` from the same
    initial states with the same noise (common random numbers) and returns
    $$\widehat{dF/dh} = \frac1n\sum_i\frac{\mathbf 1[c(x^{i}_{h+dh}) = c^*] -
    \mathbf 1[c(x^{i}_{h-dh}) = c^*]}{2\,dh},\qquad \mathrm{se} = \frac{\mathrm{std}(D_i)}{\sqrt n}.$$
    Example: a bias of the data weights, $w_\pm = \tfrac12\pm h$; an exact sampler reproduces the
    weights, $F(h) = \tfrac12 + h$, so $dF/dh = 1$ exactly (a check of the sampler's class
    statistics at linear order).

    **Arguments:**

    - `score_family`: ``score_family(h) -> score_fn`` (called with two Python floats).
    - `process`, `key`, `x`, `ts`, `classify`, `method`, `noise_block`: as in
      :func:`cloning_probability`.
    - `h`, `dh`: centre and half-step of the central difference ($dh>0$).
    - `target`: the class $c^*$ whose fraction responds.

    **Returns:** a :class:`ResponseEstimate` (``t`` is ``None``; pairs with a NaN/Inf final
    state counted in `n_nonfinite`, and then `response` and `se` are NaN).

    Reference: `docs/theory/guidance.md#class-susceptibility` (linear response of the class fraction)
    [DERIVED].
    """
    if not callable(score_family):
        raise ValueError("score_family must be callable as score_family(h) -> score_fn.")
    dh = float(dh)
    if not (np.isfinite(dh) and dh > 0):
        raise ValueError(f"dh must be a finite number > 0, got {dh!r}.")
    h = float(h)
    s_plus, s_minus = score_family(h + dh), score_family(h - dh)
    _check_common(s_plus, process, classify, method)
    _check_common(s_minus, process, classify, method)
    ts = check_time_grid(ts, process.T)
    shape = batch_shape(x)
    n = shape[0]
    precheck_labels(classify, 2 * n, shape[1:], state_dtype(x, ts.dtype))
    base = as_trajectory_keys(key, n)

    def both(xx, t):
        return jnp.concatenate([s_plus(xx[:n], t), s_minus(xx[n:], t)])

    if is_shape(x):
        x2: Any = (2 * n,) + shape[1:]
    else:
        xa = as_float_array(x, "x")
        x2 = jnp.concatenate([xa, xa])
    sol = sample(
        both,
        process,
        jnp.concatenate([base, base]),
        x2,
        ts=ts,
        method=method,
        noise_block=noise_block,
    )
    lab = check_labels(classify, sol.x, 2 * n)
    r, se = _paired(lab[:n], lab[n:], target, dh)
    bad = nonfinite_rows(sol.x)
    n_bad = jnp.sum(bad[:n] | bad[n:], dtype=jnp.int32)
    r, se = _nan_where(n_bad, r, se)
    return ResponseEstimate(response=r, se=se, n=n, t=None, n_nonfinite=n_bad)


def sign_classifier(direction: ArrayLike) -> Callable[[Array], Array]:
    r"""Two-class labels by the side of a hyperplane: $c(x) = \mathbf 1[u\cdot x > 0]$ (1 or 0).

    **Arguments:**

    - `direction`: $u$, shape ``event_shape`` (e.g. the cluster centre $m$).

    **Returns:** ``classify(x) -> int32 array (n,)`` for ``x`` of shape ``(n, *event_shape)``.
    """
    u = as_float_array(direction, "direction")

    def classify(x):
        x = jnp.asarray(x)
        flat = x.reshape(x.shape[: x.ndim - u.ndim] + (-1,))
        return (flat @ u.reshape(-1).astype(flat.dtype) > 0).astype(jnp.int32)

    return classify


# ----------------------------------------------------------------------------------------------
# order parameter along trajectories
# ----------------------------------------------------------------------------------------------


def magnetization_observable(
    data: AbstractData, process: AbstractProcess, direction: ArrayLike
) -> Callable[[Array, Array], Array]:
    r"""An ``observe`` function for :func:`gltheory.sample` recording the order parameter
    $M(x_t) = u\cdot\mathbb E[y\mid x_t]$ of every trajectory.

    $\mathbb E[y\mid x_t]$ is the exact denoiser (the "magnetization" of `docs/theory/score.md#free-energy`).
    `direction` is used as given: pass $u = \mu/\|\mu\|^2$ for two points $\pm\mu$ to get
    $M = \tanh(a_t\mu\cdot x/b_t^2)\in[-1,1]$, the Curie–Weiss order parameter of `docs/theory/meanfield.md#curie-weiss`.

    **Arguments:**

    - `data`: a dataset with an exact posterior.
    - `process`: the forward process.
    - `direction`: $u$, shape ``data.event_shape``.

    **Returns:** ``observe(x, t) -> array (n,)``; with ``save_at`` of length $k$ the sampler
    stacks these into ``Solution.observables`` of shape ``(k, n)`` (see :func:`bimodality`).

    Reference: `docs/theory/cloning.md#order-parameter`, `docs/theory/meanfield.md#landau`.
    """
    check_instance(data, AbstractData, "data", DATASET)
    check_instance(process, AbstractProcess, "process", PROCESS)
    u = as_float_array(direction, "direction")
    if tuple(u.shape) != tuple(data.event_shape):
        raise ValueError(
            f"direction must have the dataset's event shape {tuple(data.event_shape)}, got "
            f"{u.shape}."
        )
    u_flat = u.reshape(-1)

    def observe(x, t):
        m = denoiser(data, process, x, t)
        return m.reshape(m.shape[0], -1) @ u_flat.astype(m.dtype)

    return observe


def bimodality(m: ArrayLike, axis: int = -1) -> Bimodality:
    r"""Mean $|M|$ and Binder cumulant of samples of an order parameter, with standard errors.

    $$\langle|M|\rangle,\qquad U = 1 - \frac{\langle M^4\rangle}{3\langle M^2\rangle^2},$$
    $U = 0$ for a centred Gaussian, $2/3$ for two symmetric deltas (a committed, bimodal
    population). Standard errors: $\mathrm{std}(|M|)/\sqrt n$ and the delta method,
    $\mathrm{se}_U^2 = g^\top\,\mathrm{Cov}(M^2, M^4)\,g/n$ with
    $g = \big(\tfrac{2\langle M^4\rangle}{3\langle M^2\rangle^3}, -\tfrac1{3\langle M^2\rangle^2}\big)$.

    **Arguments:**

    - `m`: samples; `axis` is the sample axis (other axes, e.g. saved times, are kept).
    - `axis`: the sample axis (default last, as in ``Solution.observables`` of shape ``(k, n)``).

    **Returns:** a :class:`Bimodality` (non-finite samples counted in `n_nonfinite`; where
    there are any, the estimates are NaN).

    Reference: `docs/theory/meanfield.md#landau` (order parameter); Binder cumulant as in
    `docs/theory/meanfield.md#finite-size-scaling`.
    """
    m = as_float_array(m, "m")
    if m.ndim == 0:
        raise ValueError("m must hold samples along `axis`, got a scalar.")
    m = jnp.moveaxis(m, axis, -1)
    n = m.shape[-1]
    if n < 2:
        raise ValueError(f"bimodality needs at least 2 samples, got {n}.")
    n_bad = jnp.sum(~jnp.isfinite(m), axis=-1, dtype=jnp.int32)
    return Bimodality(*_nan_where(n_bad, *_bimodality_impl(m)), n=n, n_nonfinite=n_bad)


@jax.jit
def _bimodality_impl(m):
    n = m.shape[-1]
    absm = jnp.abs(m)
    mean_abs = jnp.mean(absm, axis=-1)
    mean_abs_se = jnp.std(absm, axis=-1, ddof=1) / np.sqrt(n)
    a2, a4 = m**2, m**4
    m2, m4 = jnp.mean(a2, axis=-1), jnp.mean(a4, axis=-1)
    binder = 1 - m4 / (3 * m2**2)
    g2 = 2 * m4 / (3 * m2**3)
    g4 = -1 / (3 * m2**2)
    d2 = a2 - m2[..., None]
    d4 = a4 - m4[..., None]
    v22 = jnp.sum(d2 * d2, axis=-1) / (n - 1)
    v44 = jnp.sum(d4 * d4, axis=-1) / (n - 1)
    v24 = jnp.sum(d2 * d4, axis=-1) / (n - 1)
    var = (g2**2 * v22 + g4**2 * v44 + 2 * g2 * g4 * v24) / n
    binder_se = jnp.sqrt(jnp.maximum(var, 0.0))
    return mean_abs, mean_abs_se, binder, binder_se
