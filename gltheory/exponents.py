r"""Critical exponents of the generative bath: one function per exponent, the table, universality.

See `docs/theory/exponents.md`. Each function measures one exponent of the $N\to\infty$ bath of a
dataset (:func:`gltheory.bath.tempered_langevin` at frozen ${\rm SNR}=\beta_c(1+\varepsilon)$) at
temperatures or fields chosen by the range rule of :func:`gltheory.bath.fit_exponent_rule`, and
returns the fitted exponent with its standard error and the points it used:

- :func:`measure_beta`: $\langle|M|\rangle\propto\varepsilon^\beta$ below the transition;
- :func:`measure_gamma`: $\chi\propto|\varepsilon|^{-\gamma}$ from the fluctuations above, from the
  response to a field above (fluctuation–dissipation: the two agree) and from the in-well
  (longitudinal) fluctuations below;
- :func:`measure_delta`: $\langle M\rangle\propto h_0^{1/\delta}$ at the transition;
- :func:`measure_jump`: $\alpha=0$, the specific-heat jump against the family's own Landau value;
- :func:`measure_znu`: $\tau_r\propto|\varepsilon|^{-z\nu}$ (in-well below, or above);
- :func:`transverse_susceptibility`: for O($n$) data (the hypersphere) the longitudinal/transverse
  split and the Ward identity $\chi_\perp=\langle M_\parallel\rangle/h_0$ (a Goldstone mode);

:func:`exponent_table` builds the table with the scaling relations and :func:`universality` runs it
for the five data families of :func:`universality_families`. :func:`family_fss` measures the
finite-size scaling in $N$ at the transition of any family (the Binder value, $\langle|M|\rangle\propto
N^{-1/4}$, $\chi\propto N^{1/2}$), :func:`universality_fss` for the five.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from ._checks import DATASET, PROCESS, check_instance, check_positive_int
from .bath import (
    EPS_MAX,
    FIELD_FSS_MIN,
    FIELD_MAX,
    FSS_MIN,
    BathAxes,
    BathMoments,
    BinderCrossings,
    Estimate,
    FSSScan,
    IntLike,
    LandauJump,
    RealLike,
    ScalingRelation,
    bath_statistics,
    binder_crossings,
    critical_binder,
    curie_weiss_spins,
    fit_critical_fss,
    fit_exponent_rule,
    fit_jump,
    landau_jump,
    order_parameter_axes,
    relaxation_time,
    scaling_relations,
    tempered_langevin,
    with_negatives,
)
from .data import AbstractData, GaussianMixture, Hypersphere, TwoPoint, random_binary_images
from .processes import OU, AbstractProcess

__all__ = [
    "MEAN_FIELD",
    "RESPONSE_FIELD",
    "ExponentEstimate",
    "OnSplit",
    "TableRow",
    "ExponentTable",
    "measure_beta",
    "measure_gamma",
    "measure_delta",
    "measure_jump",
    "measure_znu",
    "transverse_susceptibility",
    "exponent_table",
    "universality_families",
    "universality",
    "FSS_SIZES",
    "FSS_X",
    "FamilyFSS",
    "family_fss",
    "universality_fss",
]

MEAN_FIELD = {"beta": 0.5, "gamma": 1.0, "delta": 3.0, "znu": 1.0, "alpha": 0.0}
"""The mean-field exponents every family's bath is measured against."""

RESPONSE_FIELD = 3e-3
r"""The response to a field is measured at $h_0=\pm{\tt RESPONSE\_FIELD}\cdot|\varepsilon|$ (paired
chains), so that $h_0\chi\approx3\times10^{-3}$: the central difference's bias, relative
$O(\chi^3h_0^2)$, stays below $10^{-3}$ at $|\varepsilon|\ge0.01$."""

_RELAX_ABOVE = 0.3  # displaced start above: M0 = 0.3 |eps|^(1/2)
_RELAX_BELOW = 0.1  # displaced start below: M0 = (1 + 0.1) M*
_ROW_NAMES = (
    "beta",
    "gamma",
    "gamma_response",
    "gamma_below",
    "delta",
    "jump",
    "znu_above",
    "znu_below",
)


class ExponentEstimate(NamedTuple):
    r"""One measured exponent (or the specific-heat jump) with the points its fit used.

    - `name`: ``"beta"``, ``"gamma"``, ``"gamma_response"``, ``"gamma_below"``, ``"delta"``,
      ``"jump"``, ``"znu_above"`` or ``"znu_below"``;
    - `theory`: the mean-field value (for ``"jump"``: the family's own Landau $\Delta C/N$);
    - `value`, `stderr`: the fitted exponent (or jump) and its standard error;
    - `x`: the fit's abscissae — $|\varepsilon|$, $h_0$ for ``"delta"``, signed $\varepsilon$ for
      ``"jump"``; `y`, `yerr`: the measured points and their standard errors;
    - `n_sites`: $N$ of the runs;
    - `allowance`: the finite-size allowance of the fit rule — how far the same fit (same points,
      same relative errors) lands from mean field on the exact $N$-site Curie–Weiss bath
      (`docs/theory/exponents.md#allowance`; for the jump relative to $\tfrac32$; 0 for $z\nu$);
    - `amplitude`: the fit's prefactor $A$ in $y\simeq A\,x^{p}$ (non-universal; NaN for the jump).
    """

    name: str
    theory: float
    value: float
    stderr: float
    x: np.ndarray
    y: np.ndarray
    yerr: np.ndarray
    n_sites: float
    allowance: float = 0.0
    amplitude: float = math.nan

    @property
    def consistent(self) -> bool:
        """``|value - theory| <= 3 stderr + allowance``."""
        return bool(abs(self.value - self.theory) <= 3 * self.stderr + self.allowance)


class OnSplit(NamedTuple):
    r"""Longitudinal/transverse split of an O($n$) order parameter in a field $h_0$ (:func:`transverse_susceptibility`).

    - `order_parameter`: $\langle M_\parallel\rangle$ along the field;
    - `longitudinal`: $\chi_\parallel=N{\rm Var}(M_\parallel)-1/\beta s^2$;
    - `transverse`: $\chi_\perp=N\langle|M_\perp|^2\rangle/(n-1)-1/\beta s^2$, per component;
    - `ward`: $\langle M_\parallel\rangle/h_0$, which equals $\chi_\perp$ at every $N$.
    """

    order_parameter: Estimate
    longitudinal: Estimate
    transverse: Estimate
    ward: Estimate


class TableRow(NamedTuple):
    """One row of an :class:`ExponentTable`: ``consistent`` is
    ``|measured - theory| <= 3 stderr + allowance`` (:class:`ExponentEstimate`)."""

    name: str
    theory: float
    measured: float
    stderr: float
    consistent: bool
    allowance: float = 0.0


class ExponentTable(NamedTuple):
    r"""The exponent table of one dataset's bath (:func:`exponent_table`).

    - `family`: a label;
    - `rows`: :class:`TableRow` s in the order ``beta, gamma, gamma_response, gamma_below, delta,
      jump, znu_above, znu_below``;
    - `relations`: Rushbrooke ($\alpha=0$ for the finite jump), Widom and $z\nu=1$ (in-well, below)
      from :func:`gltheory.bath.scaling_relations`;
    - `estimates`: the :class:`ExponentEstimate` of every row, by name (with the points);
    - `snr_c`: $\beta_c$; `landau`: the family's :class:`gltheory.bath.LandauJump`;
    - `fdt`: the weighted mean over the temperatures above of $\chi_{\rm response}/\chi_{\rm fluct}-1$
      (fluctuation–dissipation: 0);
    - `seconds`: wall time of the build;
    - `landau_amplitude`: the Landau prediction of the order parameter's amplitude,
      $\langle|M|\rangle\simeq B\varepsilon^{1/2}$ with $B^2=6(v+\beta_cv')/(\beta_c^2|\kappa_4|s^2)$
      (`docs/theory/exponents.md#universality`; compare ``estimates["beta"].amplitude``).
    """

    family: str
    rows: tuple[TableRow, ...]
    relations: tuple[ScalingRelation, ...]
    estimates: dict[str, ExponentEstimate]
    snr_c: float
    landau: LandauJump
    fdt: Estimate
    seconds: float
    landau_amplitude: float = math.nan

    @property
    def consistent(self) -> bool:
        """Every row and every scaling relation within 3 standard errors (plus allowance)."""
        return all(r.consistent for r in self.rows) and all(r.consistent for r in self.relations)


# ----------------------------------------------------------------------------------------------
# validation and runs
# ----------------------------------------------------------------------------------------------


class _Sizes(NamedTuple):
    n_sites: float
    n_chains: int
    n_steps: int
    n_burn: int
    n_points: int
    step: float


def _check_sites(n_sites, name: str = "n_sites") -> float:
    if (
        isinstance(n_sites, bool)
        or not isinstance(n_sites, (int, float, np.integer, np.floating))
        or not math.isfinite(float(n_sites))
        or not n_sites > 0
    ):
        raise ValueError(f"{name} must be a positive finite number, got {n_sites!r}.")
    return float(n_sites)


def _check_step(step, data, *, default_1d: float = 1.0, default_nd: float = 0.5) -> float:
    if step is None:
        return default_1d if data.dim == 1 else default_nd
    if isinstance(step, bool) or not (isinstance(step, (int, float)) and 0 < step <= 1):
        raise ValueError(f"step must be a number in (0, 1] or None, got {step!r}.")
    return float(step)


def _sizes(data, n_sites, n_chains, n_steps, n_burn, n_points, step) -> _Sizes:
    n = _check_sites(n_sites)
    check_positive_int(n_chains, "n_chains", 2)
    check_positive_int(n_steps, "n_steps", 1)
    check_positive_int(n_burn, "n_burn", 0)
    check_positive_int(n_points, "n_points", 4)
    return _Sizes(
        n, int(n_chains), int(n_steps), int(n_burn), int(n_points), _check_step(step, data)
    )


def _check_common(data, key, process) -> AbstractProcess:
    check_instance(data, AbstractData, "data", DATASET)
    if not (isinstance(key, jax.Array) and key.shape in ((2,), ())):
        raise ValueError(f"key must be a JAX PRNG key (jax.random.PRNGKey(seed)), got {key!r}.")
    process = OU() if process is None else process
    check_instance(process, AbstractProcess, "process", PROCESS)
    return process


def _critical(data, process, snr_c) -> LandauJump:
    """beta_c and the Landau jump; data without a transition raise ``ValueError`` here."""
    return landau_jump(data, process, snr_c=snr_c)


def _eps_points(n_sites: float, n_points: int, eps_min: float | int | None = None) -> np.ndarray:
    """|eps| geometric over the rule's window [10 N^-1/2, 0.1] (or [eps_min, 0.1])."""
    lo = FSS_MIN / math.sqrt(n_sites)
    if eps_min is not None:
        if not (isinstance(eps_min, (int, float)) and lo <= eps_min < EPS_MAX):
            raise ValueError(
                f"eps_min must be a number in [{lo:.3g}, {EPS_MAX:g}) (the fit rule's window at "
                f"n_sites={n_sites:g}), got {eps_min!r}."
            )
        lo = float(eps_min)
    if not lo < EPS_MAX:
        raise ValueError(
            f"n_sites={n_sites:g} is too small for an exponent fit: the rule |eps| N^(1/2) >= "
            f"{FSS_MIN:g}, |eps| <= {EPS_MAX:g} leaves no range (needs n_sites > "
            f"{(FSS_MIN / EPS_MAX) ** 2:g})."
        )
    # a hair inside the window: the rule's edges are inclusive, round-off must not drop a point
    return np.geomspace(lo * (1 + 1e-9), EPS_MAX * (1 - 1e-9), n_points)


def _run(data, process, snr, n_sites, key, axes, **kw) -> BathMoments:
    t = float(process.t_of_snr(snr))
    return tempered_langevin(data, process, t, n_sites, key, axes=axes, **kw)


def _parallel(axes: BathAxes) -> BathAxes:
    """The first soft direction alone (M along the field; the same dynamics as ``axes``)."""
    return BathAxes(axes.center, axes.basis[:1], axes.scale)


def _arr(rows) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(rows, np.float64).reshape(-1, 2)
    return a[:, 0], a[:, 1]


def _jackknife(cols: np.ndarray, stat) -> Estimate:
    """Jackknife over chains (rows of ``cols``) of ``stat(column means)``."""
    n = cols.shape[0]
    total = cols.sum(0)
    full = float(stat(total / n))
    loo = np.array([stat((total - cols[j]) / (n - 1)) for j in range(n)], np.float64)
    return Estimate(full, math.sqrt((n - 1) / n * float(np.sum((loo - loo.mean()) ** 2))))


def _fit(kind, name, theory, x, y, yerr, n_sites) -> ExponentEstimate:
    f = fit_exponent_rule(kind, x, y, yerr, n_sites)
    return ExponentEstimate(
        name,
        float(theory),
        float(f.slope),
        float(f.stderr),
        x,
        y,
        yerr,
        float(n_sites),
        _allowance(kind, name, theory, x, y, yerr, n_sites),
        float(np.exp(float(f.intercept))),
    )


def _log_factorial(k: IntLike | np.ndarray) -> np.ndarray:
    """ln k! for integer arrays (Stirling's series above 20, exact table below; float64)."""
    k = np.asarray(k, np.float64)
    table = np.array([math.lgamma(i + 1) for i in range(21)])
    kk = np.maximum(k, 20.0)
    big = (
        kk * np.log(kk) - kk + 0.5 * np.log(2 * math.pi * kk)
        + 1 / (12 * kk) - 1 / (360 * kk**3) + 1 / (1260 * kk**5)
    )  # fmt: skip
    return np.where(k > 20, big, table[np.clip(k, 0, 20).astype(int)])


def _cw_exact(beta: RealLike, n_sites: RealLike, h0: RealLike = 0.0) -> np.ndarray:
    """Exact N-site Curie-Weiss (J = 1) site statistics by enumeration of the sectors.

    Returns ``[<m>, <|m|>, N Var m, N (<m^2> - <|m|>^2), C/N]`` (the site energy
    $H/N=(1-m^2)/2$, $C/N=\beta^2{\rm Var}(H)/N$, with $h_0=0$ only); only the sectors within 40 of the
    largest log-weight are summed (located on a coarse grid first), so N = 1e8 costs ~1e5 terms.
    """
    n = int(round(n_sites))

    def logw(k):
        m = (2 * k - n) / n
        return (
            _log_factorial(n)
            - _log_factorial(k)
            - _log_factorial(n - k)
            + 0.5 * beta * n * m**2
            + h0 * n * m
        )

    coarse = np.unique(np.linspace(0, n, min(n + 1, 20_001)).round())
    lc = logw(coarse)
    keep = coarse[lc > lc.max() - 40]
    step = coarse[1] - coarse[0] if coarse.size > 1 else 1
    # contiguous runs of kept coarse nodes, each widened by one coarse cell
    cut = np.flatnonzero(np.diff(keep) > step)
    starts, ends = keep[np.r_[0, cut + 1]], keep[np.r_[cut, keep.size - 1]]
    pieces = [np.arange(max(0, a - step), min(n, b + step) + 1) for a, b in zip(starts, ends)]
    k = np.unique(np.concatenate(pieces))
    lw = logw(k)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    m = (2 * k - n) / n
    m1, ma, m2 = (w * m).sum(), (w * np.abs(m)).sum(), (w * m * m).sum()
    heat = beta**2 * n * (w * (m * m - m2) ** 2).sum() / 4  # H/N = (1 - m^2)/2
    return np.array([m1, ma, n * (m2 - m1**2), n * (m2 - ma**2), heat])


def _allowance(kind, name, theory, x, y, yerr, n_sites) -> float:
    """|fit - theory| of the same rule on the exact Curie-Weiss bath (same x, relative errors)."""
    if name not in ("beta", "gamma", "gamma_response", "gamma_below", "delta", "jump"):
        return 0.0
    rel = np.asarray(yerr, np.float64) / np.abs(np.asarray(y, np.float64))
    if name == "jump":  # relative to the Curie-Weiss 3/2, scaled to the family's own jump
        heat = np.array([_cw_exact(1 + e, n_sites)[4] for e in x])
        j = fit_jump(x, heat, rel * heat, n_sites)
        return abs(j.value / 1.5 - 1) * float(theory)
    if name == "beta":
        ref = [_cw_exact(1 + e, n_sites)[1] for e in x]
    elif name == "gamma":
        ref = [_cw_exact(1 - e, n_sites)[2] for e in x]
    elif name == "gamma_response":
        ref = [
            (_cw_exact(1 - e, n_sites, RESPONSE_FIELD * e)[0]
             - _cw_exact(1 - e, n_sites, -RESPONSE_FIELD * e)[0]) / (2 * RESPONSE_FIELD * e)
            for e in x
        ]  # fmt: skip
    elif name == "gamma_below":
        ref = [_cw_exact(1 + e, n_sites)[3] for e in x]
    else:
        ref = [_cw_exact(1.0, n_sites, h)[0] for h in x]
    ref = np.asarray(ref)
    f = fit_exponent_rule(kind, x, ref, rel * np.abs(ref), n_sites)
    return abs(float(f.slope) - float(theory))


def _hs_noise(mom: BathMoments) -> float:
    """1/(beta s^2): N times the Hubbard-Stratonovich noise variance of one component of M."""
    return 1.0 / (float(mom.snr) * float(mom.scale) ** 2)


# ----------------------------------------------------------------------------------------------
# sweeps (shared by the per-exponent functions and the table)
# ----------------------------------------------------------------------------------------------


class _Below(NamedTuple):
    eps: np.ndarray
    order: np.ndarray  # (n, 2) value, se
    chi: np.ndarray  # in-well longitudinal
    heat: np.ndarray


class _Above(NamedTuple):
    eps: np.ndarray  # |eps|
    chi: np.ndarray  # fluctuations at +h0
    resp: np.ndarray  # paired central difference
    heat: np.ndarray
    ratio: np.ndarray  # response / fluctuations - 1, jackknifed


def _sweep_below(data, key, lj, process, s: _Sizes) -> _Below:
    axes = order_parameter_axes(data)
    eps = _eps_points(s.n_sites, s.n_points)
    rows = []
    for i, e in enumerate(eps):
        # start in the + well at the +-1 value sqrt(3 eps) (capped at 1): an in-well approach
        mom = _run(
            data, process, lj.snr_c * (1 + e), s.n_sites, jax.random.fold_in(key, i), axes,
            n_chains=s.n_chains, n_steps=s.n_steps, n_burn=s.n_burn, step=s.step,
            m0=min(1.0, math.sqrt(3 * e)),
        )  # fmt: skip
        st = bath_statistics(mom)
        # longitudinal in-well susceptibility: N Var|M| minus one component's HS noise (the
        # noise along M; the transverse noise only shifts |M| by O(1/N M))
        rows.append([*st.order_parameter, *st.susceptibility_abs, *st.specific_heat])
    a = np.asarray(rows, np.float64)
    return _Below(eps, a[:, 0:2], a[:, 2:4], a[:, 4:6])


def _sweep_above(data, key, lj, process, s: _Sizes) -> _Above:
    axes = _parallel(order_parameter_axes(data))
    eps = _eps_points(s.n_sites, s.n_points)
    rows = []
    for i, e in enumerate(eps):
        h = RESPONSE_FIELD * e
        k = jax.random.fold_in(key, 100 + i)  # the same key at +h0 and -h0: paired chains
        kw = dict(n_chains=s.n_chains, n_steps=s.n_steps, n_burn=s.n_burn, step=s.step)
        mp = _run(data, process, lj.snr_c * (1 - e), s.n_sites, k, axes, h0=h, **kw)
        mm = _run(data, process, lj.snr_c * (1 - e), s.n_sites, k, axes, h0=-h, **kw)
        st = bath_statistics(mp)
        n, noise = float(mp.n_sites), _hs_noise(mp)
        cols = np.stack([np.asarray(a, np.float64) for a in (mp.m, mm.m, mp.m2)], axis=-1)
        resp = _jackknife(cols, lambda a: (a[0] - a[1]) / (2 * h))
        ratio = _jackknife(
            cols, lambda a: ((a[0] - a[1]) / (2 * h)) / (n * (a[2] - a[0] ** 2) - noise) - 1
        )
        rows.append([*st.susceptibility, *resp, *st.specific_heat, *ratio])
    a = np.asarray(rows, np.float64)
    return _Above(eps, a[:, 0:2], a[:, 2:4], a[:, 4:6], a[:, 6:8])


def _delta_points(data, key, lj, process, s: _Sizes):
    axes = _parallel(order_parameter_axes(data))
    lo = FIELD_FSS_MIN * s.n_sites**-0.75
    if not lo < FIELD_MAX:
        raise ValueError(
            f"n_sites={s.n_sites:g} is too small for the delta fit rule (h0 N^(3/4) >= "
            f"{FIELD_FSS_MIN:g} and h0 <= {FIELD_MAX:g} need n_sites > "
            f"{(FIELD_FSS_MIN / FIELD_MAX) ** (4 / 3):.3g})."
        )
    hs = np.geomspace(lo * (1 + 1e-9), FIELD_MAX * (1 - 1e-9), s.n_points)
    rows = []
    for i, h in enumerate(hs):
        # start near the critical isotherm of +-1, M = (3 h0)^(1/3); the burn-in does the rest
        mom = _run(
            data, process, lj.snr_c, s.n_sites, jax.random.fold_in(key, 200 + i), axes,
            n_chains=s.n_chains, n_steps=s.n_steps, n_burn=s.n_burn, step=s.step, h0=float(h),
            m0=float((3 * h) ** (1 / 3)),
        )  # fmt: skip
        rows.append(list(bath_statistics(mom).magnetization))
    m, se = _arr(rows)
    return hs, m, se


def _relax_points(
    data, key, lj, process, side, n_sites, n_chains, n_steps, eps_min, n_points, step
):
    eps = _eps_points(n_sites, n_points, eps_min)
    full = order_parameter_axes(data)
    kw = dict(n_chains=n_chains, n_burn=0, metropolis=False, n_groups=min(16, n_chains))
    rows = []
    for i, e in enumerate(eps):
        if side == "above":
            mom = _run(
                data, process, lj.snr_c * (1 - e), n_sites, jax.random.fold_in(key, 300 + i),
                _parallel(full), n_steps=n_steps, step=step, m0=_RELAX_ABOVE * math.sqrt(e), **kw,
            )  # fmt: skip
            tau = relaxation_time(mom, m_eq=0.0)
        else:
            snr = lj.snr_c * (1 + e)
            k = jax.random.fold_in(key, 400 + i)
            # the well's bottom M*: an unadjusted pre-run from M0 = 1 at a 5x faster clock
            pre = _run(
                data, process, snr, n_sites, jax.random.fold_in(k, 1), full,
                n_steps=n_steps, step=min(1.0, 5 * step), m0=1.0,
                **(kw | dict(n_chains=2, n_groups=2)),
            )  # fmt: skip
            tr = np.asarray(pre.trace, np.float64)
            m_star = float(tr[:, -max(1, tr.shape[1] // 10) :].mean())
            mom = _run(
                data, process, snr, n_sites, k, full, n_steps=n_steps, step=step,
                m0=(1 + _RELAX_BELOW) * m_star, **kw,
            )  # fmt: skip
            tr = np.asarray(mom.trace, np.float64)
            m_eq = float(tr[:, -max(1, tr.shape[1] // 3) :].mean())
            tau = relaxation_time(mom, m_eq=m_eq)
        rows.append(list(tau))
    tau, se = _arr(rows)
    return eps, tau, se


# ----------------------------------------------------------------------------------------------
# one public function per exponent
# ----------------------------------------------------------------------------------------------


def measure_beta(
    data: AbstractData,
    key: PRNGKeyArray,
    *,
    n_sites: RealLike = 1e6,
    n_chains: IntLike = 64,
    n_steps: IntLike = 2000,
    n_burn: IntLike = 1000,
    n_points: IntLike = 5,
    step: float | int | None = None,
    process: AbstractProcess | None = None,
    snr_c: float | int | None = None,
) -> ExponentEstimate:
    r"""$\beta$: the order parameter $\langle|M|\rangle\propto\varepsilon^\beta$ below the transition.

    Runs at $\varepsilon=\beta/\beta_c-1>0$ geometric over $[10N^{-1/2},0.1]$ (temperature $i$ uses
    ``fold_in(key, i)``; chains start in the $+$ well), fitted by
    :func:`gltheory.bath.fit_exponent_rule` (`docs/theory/exponents.md#per-exponent`). Data without a
    transition raise ``ValueError`` ("no transition").

    **Arguments:**

    - `data`: a $\pm$-symmetric dataset with a continuous transition.
    - `key`: PRNG key.
    - `n_sites`: $N$ of the bath (default $10^6$: the rule's window is $|\varepsilon|\in[0.01,0.1]$).
    - `n_chains`, `n_steps`, `n_burn`: chains, recorded (MALA) and burn-in (unadjusted) steps per
      temperature.
    - `n_points`: temperatures, geometric over the rule's window (at least 4).
    - `step`: $\beta\,d\tau$ (default 1 for one-dimensional data, 0.5 otherwise).
    - `process`: the forward process (default OU; at equal SNR OU, VP and VE give the same numbers).
    - `snr_c`: $\beta_c$ when known in closed form (checked by :func:`gltheory.bath.landau_jump`);
      default :func:`gltheory.bath.critical_snr`.

    **Returns:** an :class:`ExponentEstimate` (theory $\tfrac12$).
    """
    process = _check_common(data, key, process)
    s = _sizes(data, n_sites, n_chains, n_steps, n_burn, n_points, step)
    _eps_points(s.n_sites, s.n_points)
    lj = _critical(data, process, snr_c)
    b = _sweep_below(data, key, lj, process, s)
    return _fit("beta", "beta", MEAN_FIELD["beta"], b.eps, *b.order.T, s.n_sites)


def measure_gamma(
    data: AbstractData,
    key: PRNGKeyArray,
    *,
    method: str = "fluctuations",
    n_sites: RealLike = 1e6,
    n_chains: IntLike = 64,
    n_steps: IntLike = 2000,
    n_burn: IntLike = 1000,
    n_points: IntLike = 5,
    step: float | int | None = None,
    process: AbstractProcess | None = None,
    snr_c: float | int | None = None,
) -> ExponentEstimate:
    r"""$\gamma$: the susceptibility $\chi\propto|\varepsilon|^{-\gamma}$.

    ``method``:

    - ``"fluctuations"``: $\chi=N{\rm Var}(\bar M)$ above the transition ($\varepsilon<0$), at the
      field $h_0={\tt RESPONSE\_FIELD}\,|\varepsilon|$ (bias relative $O(\chi^3h_0^2)<10^{-3}$);
    - ``"response"``: $[\langle M\rangle_{h_0}-\langle M\rangle_{-h_0}]/2h_0$ from the same runs and
      their partners at $-h_0$ (paired chains: temperature $i$ uses ``fold_in(key, 100 + i)`` at
      both signs); equal to the fluctuations (fluctuation–dissipation, exact at every $N$);
    - ``"below"``: the in-well (longitudinal) $N{\rm Var}|\bar M|$ of the runs of
      :func:`measure_beta`.

    For O($n$) data the order parameter above is the component along the field.
    (`docs/theory/exponents.md#per-exponent`.)

    **Arguments:**

    - `data`: a $\pm$-symmetric dataset with a continuous transition.
    - `key`: PRNG key.
    - `method`: ``"fluctuations"``, ``"response"`` or ``"below"``.

    - `n_sites`: $N$ of the bath (default $10^6$: the rule's window is $|\varepsilon|\in[0.01,0.1]$).
    - `n_chains`, `n_steps`, `n_burn`: chains, recorded (MALA) and burn-in (unadjusted) steps per
      temperature.
    - `n_points`: temperatures, geometric over the rule's window (at least 4).
    - `step`: $\beta\,d\tau$ (default 1 for one-dimensional data, 0.5 otherwise).
    - `process`: the forward process (default OU; at equal SNR OU, VP and VE give the same numbers).
    - `snr_c`: $\beta_c$ when known in closed form (checked by :func:`gltheory.bath.landau_jump`);
      default :func:`gltheory.bath.critical_snr`.

    **Returns:** an :class:`ExponentEstimate` named ``"gamma"``, ``"gamma_response"`` or
    ``"gamma_below"`` (theory 1).
    """
    if method not in ("fluctuations", "response", "below"):
        raise ValueError(f"method must be 'fluctuations', 'response' or 'below', got {method!r}.")
    process = _check_common(data, key, process)
    s = _sizes(data, n_sites, n_chains, n_steps, n_burn, n_points, step)
    _eps_points(s.n_sites, s.n_points)
    lj = _critical(data, process, snr_c)
    if method == "below":
        b = _sweep_below(data, key, lj, process, s)
        return _fit("gamma", "gamma_below", 1.0, b.eps, *b.chi.T, s.n_sites)
    a = _sweep_above(data, key, lj, process, s)
    if method == "fluctuations":
        return _fit("gamma", "gamma", 1.0, a.eps, *a.chi.T, s.n_sites)
    return _fit("gamma", "gamma_response", 1.0, a.eps, *a.resp.T, s.n_sites)


def measure_delta(
    data: AbstractData,
    key: PRNGKeyArray,
    *,
    n_sites: RealLike = 1e8,
    n_chains: IntLike = 64,
    n_steps: IntLike = 2000,
    n_burn: IntLike = 1000,
    n_points: IntLike = 5,
    step: float | int | None = None,
    process: AbstractProcess | None = None,
    snr_c: float | int | None = None,
) -> ExponentEstimate:
    r"""$\delta$: the critical isotherm $\langle M\rangle\propto h_0^{1/\delta}$ at $\varepsilon=0$.

    Fields $h_0$ geometric over the rule's window $[100N^{-3/4},10^{-2}]$ (field $i$ uses
    ``fold_in(key, 200 + i)``; $N=10^8$ by default, the window $[10^{-4},10^{-2}]$), $M$ along the
    field (`docs/theory/exponents.md#per-exponent`). The transition must be located precisely:
    $\langle M\rangle$ at $h_0=10^{-4}$ moves by 1 % for $|\varepsilon|\approx10^{-4}$.

    **Arguments:**

    - `data`: a $\pm$-symmetric dataset with a continuous transition.
    - `key`: PRNG key.
    - `n_sites`: $N$ of the bath (default $10^8$).
    - `n_chains`, `n_steps`, `n_burn`: chains, recorded (MALA) and burn-in (unadjusted) steps per
      field.
    - `n_points`: fields, geometric over the rule's window (at least 4).
    - `step`: $\beta\,d\tau$ (default 1 for one-dimensional data, 0.5 otherwise).
    - `process`: the forward process (default OU; at equal SNR OU, VP and VE give the same numbers).
    - `snr_c`: $\beta_c$ when known in closed form (checked by :func:`gltheory.bath.landau_jump`);
      default :func:`gltheory.bath.critical_snr`.

    **Returns:** an :class:`ExponentEstimate` (theory 3; `x` are the fields $h_0$).
    """
    process = _check_common(data, key, process)
    s = _sizes(data, n_sites, n_chains, n_steps, n_burn, n_points, step)
    lo = FIELD_FSS_MIN * s.n_sites**-0.75
    if not lo < FIELD_MAX:
        raise ValueError(
            f"n_sites={s.n_sites:g} is too small for the delta fit rule (needs n_sites > "
            f"{(FIELD_FSS_MIN / FIELD_MAX) ** (4 / 3):.3g})."
        )
    lj = _critical(data, process, snr_c)
    hs, m, se = _delta_points(data, key, lj, process, s)
    return _fit("delta", "delta", 3.0, hs, m, se, s.n_sites)


def measure_jump(
    data: AbstractData,
    key: PRNGKeyArray,
    *,
    n_sites: RealLike = 1e6,
    n_chains: IntLike = 64,
    n_steps: IntLike = 2000,
    n_burn: IntLike = 1000,
    n_points: IntLike = 5,
    step: float | int | None = None,
    process: AbstractProcess | None = None,
    snr_c: float | int | None = None,
) -> ExponentEstimate:
    r"""$\alpha=0$: the specific-heat jump $\Delta C/N$ against the family's own Landau value.

    $C/N=\beta^2{\rm Var}(\mathcal H)/N$ on both sides (the runs of :func:`measure_beta` below and of
    :func:`measure_gamma` above), fitted by :func:`gltheory.bath.fit_jump`; the theory is
    :func:`gltheory.bath.landau_jump` (`docs/theory/exponents.md#landau-jump`). The jump is not
    universal; its finiteness ($\alpha=0$) is.

    **Arguments:**

    - `data`: a $\pm$-symmetric dataset with a continuous transition.
    - `key`: PRNG key.
    - `n_sites`: $N$ of the bath (default $10^6$: the rule's window is $|\varepsilon|\in[0.01,0.1]$).
    - `n_chains`, `n_steps`, `n_burn`: chains, recorded (MALA) and burn-in (unadjusted) steps per
      temperature.
    - `n_points`: temperatures, geometric over the rule's window (at least 4).
    - `step`: $\beta\,d\tau$ (default 1 for one-dimensional data, 0.5 otherwise).
    - `process`: the forward process (default OU; at equal SNR OU, VP and VE give the same numbers).
    - `snr_c`: $\beta_c$ when known in closed form (checked by :func:`gltheory.bath.landau_jump`);
      default :func:`gltheory.bath.critical_snr`.

    **Returns:** an :class:`ExponentEstimate` named ``"jump"`` (`x` signed $\varepsilon$, `y` $C/N$).
    """
    process = _check_common(data, key, process)
    s = _sizes(data, n_sites, n_chains, n_steps, n_burn, n_points, step)
    _eps_points(s.n_sites, s.n_points)
    lj = _critical(data, process, snr_c)
    b = _sweep_below(data, key, lj, process, s)
    a = _sweep_above(data, key, lj, process, s)
    return _jump_estimate(lj, b, a, s.n_sites)


def _jump_estimate(lj, b: _Below, a: _Above, n_sites) -> ExponentEstimate:
    eps = np.concatenate([b.eps, -a.eps])
    heat = np.concatenate([b.heat, a.heat])
    j = fit_jump(eps, heat[:, 0], heat[:, 1], n_sites)
    allow = _allowance("jump", "jump", lj.jump, eps, heat[:, 0], heat[:, 1], n_sites)
    return ExponentEstimate(
        "jump",
        float(lj.jump),
        j.value,
        j.stderr,
        eps,
        heat[:, 0],
        heat[:, 1],
        float(n_sites),
        allow,
    )


def measure_znu(
    data: AbstractData,
    key: PRNGKeyArray,
    *,
    side: str = "below",
    n_sites: RealLike = 1e8,
    n_chains: IntLike = 32,
    n_steps: IntLike = 3000,
    eps_min: float | int = 0.01,
    n_points: IntLike = 5,
    step: float | int = 0.2,
    process: AbstractProcess | None = None,
    snr_c: float | int | None = None,
) -> ExponentEstimate:
    r"""$z\nu$: the relaxation time $\tau_r\propto|\varepsilon|^{-z\nu}$ of the order parameter.

    The dynamics itself (unadjusted Langevin, ``metropolis=False``) from a start displaced along the
    soft mode, timed by :func:`gltheory.bath.relaxation_time`
    (`docs/theory/exponents.md#relaxation`):

    - ``side="above"`` ($\varepsilon<0$): from $M_0=0.3|\varepsilon|^{1/2}$ to $M_{\rm eq}=0$
      (temperature $i$ uses ``fold_in(key, 300 + i)``);
    - ``side="below"`` ($\varepsilon>0$): the in-well time, not the tunnelling time
      $\sim e^{cN\varepsilon^2}$: the well's bottom $M^*$ from an unadjusted pre-run (2 chains from
      $M_0=1$), then the relaxation from $M_0=1.1M^*$, $M_{\rm eq}$ the mean of the trace's last
      third (``fold_in(key, 400 + i)``).

    The relative displacement is the same at every $\varepsilon$, so the nonlinear part of the decay
    changes the amplitude, not the exponent.

    **Arguments:**

    - `data`: a $\pm$-symmetric dataset with a continuous transition.
    - `key`: PRNG key.
    - `side`: ``"below"`` or ``"above"``.
    - `n_sites`: $N$ (default $10^8$: the chains follow the mean dynamics, fluctuations $N^{-1/2}$).
    - `n_chains`, `n_steps`: chains (16 groups in the trace) and steps per temperature; the run must
      last several $\tau_r\approx1/(\beta_c|\varepsilon|)$ at ``eps_min``.
    - `eps_min`: the smallest $|\varepsilon|$ (inside the rule's window at ``n_sites``); the points
      are geometric over $[\varepsilon_{\min},0.1]$.
    - `n_points`: temperatures (at least 4).
    - `step`: $\beta\,d\tau$ (the Euler scheme's rate error is relative $\tfrac12{\tt step}|\varepsilon|$).
    - `process`, `snr_c`: as in :func:`measure_beta`.

    **Returns:** an :class:`ExponentEstimate` named ``"znu_below"`` or ``"znu_above"`` (theory 1).
    """
    if side not in ("below", "above"):
        raise ValueError(f"side must be 'below' or 'above', got {side!r}.")
    process = _check_common(data, key, process)
    n = _check_sites(n_sites)
    check_positive_int(n_chains, "n_chains", 2)
    check_positive_int(n_steps, "n_steps", 4)
    check_positive_int(n_points, "n_points", 4)
    st = _check_step(step, data)
    _eps_points(n, int(n_points), eps_min)
    lj = _critical(data, process, snr_c)
    eps, tau, se = _relax_points(
        data, key, lj, process, side, n, int(n_chains), int(n_steps), eps_min, int(n_points), st
    )
    return _fit("znu", f"znu_{side}", 1.0, eps, tau, se, n)


def transverse_susceptibility(
    data: AbstractData,
    key: PRNGKeyArray,
    *,
    snr: float | int,
    h0: float | int,
    n_sites: RealLike,
    n_chains: IntLike = 64,
    n_steps: IntLike = 2000,
    n_burn: IntLike = 1000,
    step: float | int | None = None,
    process: AbstractProcess | None = None,
) -> OnSplit:
    r"""Longitudinal and transverse susceptibilities of an O($n$) order parameter in a field $h_0$.

    For rotation-invariant data (the uniform hypersphere, $n=d$) the site law in a field
    $h_0\hat e$ gives $\langle\bar M\rangle=m(h_0)\hat e$, so rotating the field rotates the
    magnetisation: $\partial\langle\bar M_\perp\rangle/\partial h_\perp=\langle\bar M_\parallel\rangle/h_0$,
    and by fluctuation–dissipation this is $N{\rm Var}(\bar M_\perp)$ per component — the Ward
    identity $\chi_\perp=\langle M_\parallel\rangle/h_0$, exact at every $N$
    (`docs/theory/exponents.md#goldstone`). In the ordered phase $\chi_\perp\to M^*/h_0$ diverges as
    $h_0\to0$ (a Goldstone mode; at $h_0=0$ it is $N\langle|\bar M|^2\rangle/n\propto N$) while
    $\chi_\parallel$ stays finite ($\propto1/\varepsilon$); above the transition both equal $\chi$.

    Two runs with the same key and the same dynamics (the field along the first soft direction),
    observed along the field and as the O($n$) norm: $|M_\perp|^2=|M|^2-M_\parallel^2$ per chain.
    Standard errors by the jackknife over chains.

    **Arguments:**

    - `data`: a dataset with an $n\ge2$ dimensional top eigenspace (:func:`gltheory.bath.order_parameter_axes`).
    - `key`: PRNG key.
    - `snr`: $\beta$ (positive).
    - `h0`: the reduced field (positive).
    - `n_sites`: $N$.
    - `n_chains`, `n_steps`, `n_burn`, `step`, `process`: as in :func:`measure_beta`; chains start at
      $M_\parallel=1$.

    **Returns:** an :class:`OnSplit`.
    """
    process = _check_common(data, key, process)
    s = _sizes(data, n_sites, n_chains, n_steps, n_burn, 4, step)
    for name, v in (("snr", snr), ("h0", h0)):
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}.")
    full = order_parameter_axes(data)
    nc = int(full.basis.shape[0])
    if nc < 2:
        raise ValueError(
            "data must have an O(n) order parameter (n >= 2 degenerate soft directions, e.g. "
            f"Hypersphere); this dataset has n = {nc}."
        )
    kw = dict(
        n_chains=s.n_chains, n_steps=s.n_steps, n_burn=s.n_burn, step=s.step, h0=float(h0), m0=1.0
    )
    par = _run(data, process, float(snr), s.n_sites, key, _parallel(full), **kw)
    nrm = _run(data, process, float(snr), s.n_sites, key, full, **kw)
    n, noise = s.n_sites, _hs_noise(par)
    cols = np.stack([np.asarray(a, np.float64) for a in (par.m, par.m2, nrm.m2)], axis=-1)
    return OnSplit(
        order_parameter=_jackknife(cols, lambda a: a[0]),
        longitudinal=_jackknife(cols, lambda a: n * (a[1] - a[0] ** 2) - noise),
        transverse=_jackknife(cols, lambda a: n * (a[2] - a[1]) / (nc - 1) - noise),
        ward=_jackknife(cols, lambda a: a[0] / h0),
    )


# ----------------------------------------------------------------------------------------------
# the table and universality
# ----------------------------------------------------------------------------------------------


def exponent_table(
    data: AbstractData,
    key: PRNGKeyArray,
    *,
    family: str = "",
    n_sites: RealLike = 1e6,
    n_sites_critical: RealLike = 1e8,
    n_chains: IntLike = 64,
    n_steps: IntLike = 2000,
    n_burn: IntLike = 1000,
    n_points: IntLike = 5,
    step: float | int | None = None,
    relax_chains: IntLike = 32,
    relax_steps: IntLike = 3000,
    process: AbstractProcess | None = None,
    snr_c: float | int | None = None,
) -> ExponentTable:
    r"""The exponent table of a dataset's bath: every exponent, the jump, the scaling relations.

    Runs the sweeps once and reads every row from them, with the same keys as the per-exponent
    functions (so each row equals the function's answer for the same ``key`` and sizes):
    $\beta$, $\gamma$ (fluctuations above, response above, in-well below) and the jump at
    ``n_sites``; $\delta$ and $z\nu$ (above and in-well below, ``relax_chains`` $\times$
    ``relax_steps``, ``step`` 0.2, $|\varepsilon|\ge10N^{-1/2}$ of ``n_sites``) at
    ``n_sites_critical``. Rushbrooke (with $\alpha=0$: a finite jump), Widom and $z\nu=1$ (below)
    from :func:`gltheory.bath.scaling_relations` (`docs/theory/exponents.md#per-exponent`). Data
    without a transition (Gaussian) raise ``ValueError`` ("no transition").

    **Arguments:**

    - `data`: a $\pm$-symmetric dataset with a continuous transition.
    - `key`: PRNG key.
    - `family`: a label stored in the table.
    - `n_sites`, `n_chains`, `n_steps`, `n_burn`, `n_points`, `step`, `process`, `snr_c`: as in
      :func:`measure_beta`.
    - `n_sites_critical`: $N$ of the $\delta$ and $z\nu$ runs.
    - `relax_chains`, `relax_steps`: the relaxation runs of :func:`measure_znu`.

    **Returns:** an :class:`ExponentTable`.
    """
    t0 = time.perf_counter()
    process = _check_common(data, key, process)
    if not isinstance(family, str):
        raise ValueError(f"family must be a string, got {family!r}.")
    s = _sizes(data, n_sites, n_chains, n_steps, n_burn, n_points, step)
    sc = s._replace(n_sites=_check_sites(n_sites_critical, "n_sites_critical"))
    check_positive_int(relax_chains, "relax_chains", 2)
    check_positive_int(relax_steps, "relax_steps", 4)
    eps_min = float(_eps_points(s.n_sites, s.n_points)[0])
    if sc.n_sites < s.n_sites or not FIELD_FSS_MIN * sc.n_sites**-0.75 < FIELD_MAX:
        raise ValueError(
            f"n_sites_critical must be >= n_sites and large enough for the delta fit rule (> "
            f"{(FIELD_FSS_MIN / FIELD_MAX) ** (4 / 3):.3g}), got {n_sites_critical!r}."
        )
    lj = _critical(data, process, snr_c)
    b = _sweep_below(data, key, lj, process, s)
    a = _sweep_above(data, key, lj, process, s)
    est = {
        "beta": _fit("beta", "beta", 0.5, b.eps, *b.order.T, s.n_sites),
        "gamma": _fit("gamma", "gamma", 1.0, a.eps, *a.chi.T, s.n_sites),
        "gamma_response": _fit("gamma", "gamma_response", 1.0, a.eps, *a.resp.T, s.n_sites),
        "gamma_below": _fit("gamma", "gamma_below", 1.0, b.eps, *b.chi.T, s.n_sites),
    }
    hs, m, se = _delta_points(data, key, lj, process, sc)
    est["delta"] = _fit("delta", "delta", 3.0, hs, m, se, sc.n_sites)
    est["jump"] = _jump_estimate(lj, b, a, s.n_sites)
    for side in ("above", "below"):
        eps, tau, tse = _relax_points(
            data, key, lj, process, side, sc.n_sites, int(relax_chains), int(relax_steps),
            eps_min, s.n_points, 0.2,
        )  # fmt: skip
        est[f"znu_{side}"] = _fit("znu", f"znu_{side}", 1.0, eps, tau, tse, sc.n_sites)
    rows = tuple(
        TableRow(n, est[n].theory, est[n].value, est[n].stderr, est[n].consistent, est[n].allowance)
        for n in _ROW_NAMES
    )
    as_est = lambda e: Estimate(e.value, e.stderr)
    rel = scaling_relations(
        Estimate(0.0, 0.0),
        as_est(est["beta"]),
        as_est(est["gamma"]),
        as_est(est["delta"]),
        as_est(est["znu_below"]),
    )
    r, rse = a.ratio[:, 0], a.ratio[:, 1]
    w = 1 / rse**2
    fdt = Estimate(float(np.sum(w * r) / np.sum(w)), float(1 / math.sqrt(np.sum(w))))
    scale = float(order_parameter_axes(data).scale)
    b2 = 6 * (lj.v + lj.snr_c * lj.dv) / (lj.snr_c**2 * abs(lj.kappa4) * scale**2)
    return ExponentTable(
        landau_amplitude=math.sqrt(b2),
        family=family,
        rows=rows,
        relations=tuple(rel),
        estimates=est,
        snr_c=float(lj.snr_c),
        landau=lj,
        fdt=fdt,
        seconds=time.perf_counter() - t0,
    )


def universality_families() -> dict[str, AbstractData]:
    r"""The five data families of the universality benchmark (`docs/theory/exponents.md#families`).

    - ``"two_deltas"``: ``TwoPoint(1.0)`` ($\pm1$; Curie–Weiss, $\beta_c=1$, jump $\tfrac32$);
    - ``"gaussian_mixture"``: $\tfrac12\mathcal N(\pm1,0.2)$ in one dimension;
    - ``"hypersphere"``: the uniform sphere of radius 2 in $d=3$ (O(3); $\beta_c=\tfrac34$, jump $\tfrac52$);
    - ``"curie_weiss_spins"``: ``curie_weiss_spins(6, 0.5)`` (all 64 configurations);
    - ``"binary_images"``: two random $3\times3$ binary images (``PRNGKey(3)``) with their negatives.

    **Returns:** a dict of datasets, in this order.
    """
    images = random_binary_images(jax.random.PRNGKey(3), 2, (3, 3))
    return {
        "two_deltas": TwoPoint(1.0),
        "gaussian_mixture": GaussianMixture(np.array([[-1.0], [1.0]]), np.array([0.2, 0.2])),
        "hypersphere": Hypersphere(2.0, 3),
        "curie_weiss_spins": curie_weiss_spins(6, 0.5),
        "binary_images": with_negatives(images),
    }


_QUICK = dict(n_chains=16, n_steps=600, n_burn=400, relax_chains=16, relax_steps=2000)
# report size per family: the hypersphere's score is a 160-node quadrature (~30x a point's cost)
_FAMILY_SIZES = {"hypersphere": dict(n_chains=32, n_steps=1000, n_burn=600, relax_chains=16)}


def universality(
    key: PRNGKeyArray,
    *,
    families: dict[str, AbstractData] | None = None,
    quick: bool = False,
    **sizes: int | float | None,
) -> dict[str, ExponentTable]:
    r"""The exponent table for each data family: universality, measured.

    Family $i$ (in the dict's order) uses ``fold_in(key, i)``. The exponents agree with mean field
    within errors in every family; the jump is compared with each family's own Landau value
    (`docs/theory/exponents.md#universality`).

    **Arguments:**

    - `key`: PRNG key.
    - `families`: datasets by name (default :func:`universality_families`).
    - `quick`: smaller runs (16 chains of 600 steps, 16 relaxation chains of 2000 steps) for a quick look.
    - `sizes`: keyword arguments passed to :func:`exponent_table` (override ``quick``). At report
      size (``quick=False``) the hypersphere, whose score costs a 160-node quadrature, runs 32
      chains of 1000 steps after 600 burn-in steps and 16 relaxation chains.

    **Returns:** a dict of :class:`ExponentTable` s by family name.
    """
    if not isinstance(quick, bool):
        raise ValueError(f"quick must be a bool, got {quick!r}.")
    if families is not None and (not isinstance(families, dict) or not families):
        raise ValueError(f"families must be a non-empty dict of datasets, got {families!r}.")
    fams = universality_families() if families is None else families
    base = _QUICK if quick else {}
    return {
        name: exponent_table(
            d,
            jax.random.fold_in(key, i),
            family=name,
            **(base | ({} if quick else _FAMILY_SIZES.get(name, {})) | sizes),
        )
        for i, (name, d) in enumerate(fams.items())
    }


# ----------------------------------------------------------------------------------------------
# finite-size scaling in N for every family
# ----------------------------------------------------------------------------------------------

FSS_SIZES = (1e2, 1e3, 1e4, 1e5, 1e6)
r"""Default sizes of :func:`family_fss` (``quick``: the first four)."""
FSS_X = (-1.0, -0.5, 0.0, 0.5, 1.0)
r"""Default points of the scaling variable $x=\varepsilon N^{1/2}$ of :func:`family_fss`
(``quick``: $x=0$ alone)."""
_FSS_BURN = 13.0  # burn-in, in units of r sqrt(N) steps
_FSS_RECORD = {False: 100.0, True: 40.0}  # recorded steps, in units of r sqrt(N) (full, quick)


class FamilyFSS(NamedTuple):
    r"""Finite-size scaling in $N$ of one dataset's bath at its transition (:func:`family_fss`).

    - `family`: a label;
    - `scan`: the sampler's :class:`gltheory.bath.FSSScan` (sizes by points of
      $x=\varepsilon N^{1/2}$: $\langle|M|\rangle$, the in-well $\chi$, the Binder cumulant $U_n$, with
      jackknife errors over chains);
    - `n_components`: $n$ of the order parameter (1 for $\mathbb Z_2$, 3 for the O(3) sphere);
    - `binder_theory`: $U_n^\ast$ of :func:`gltheory.bath.critical_binder` (0.27052 for $n=1$,
      0.17750 for $n=3$);
    - `binder_critical`: shape ``(n_sizes, 2)``, $U_n$ at $x=0$ per size and its standard error;
    - `binder_limit`: $U_n(x=0)$ extrapolated to $N\to\infty$ (weighted fit $U^\ast+aN^{-1/2}$);
    - `crossings`: the crossings of successive sizes (:func:`gltheory.bath.binder_crossings`,
      quadratic fits over $|x|\le1$), ``None`` when the scan has fewer than 4 points there;
    - `beta_over_nu`, `gamma_over_nu`: the slopes of $\langle|M|\rangle\propto N^{-\beta/\bar\nu}$ and
      $\chi\propto N^{\gamma/\bar\nu}$ at $x=0$ (:func:`gltheory.bath.fit_critical_fss`, with the
      $N^{-1/2}$ correction), :class:`gltheory.bath.Estimate` s (mean field $\tfrac14$, $\tfrac12$);
    - `rows`: :class:`TableRow` s ``binder_limit``, ``binder_crossing`` (the largest pair; only with
      `crossings`; NaN when two curves do not cross), ``beta_over_nu``, ``gamma_over_nu`` (allowance
      0: each within 3 SE);
    - `snr_c`: $\beta_c$; `n_burn`, `n_steps`: the steps used per size; `seconds`: wall time.
    """

    family: str
    scan: FSSScan
    n_components: int
    binder_theory: float
    binder_critical: np.ndarray
    binder_limit: Estimate
    crossings: BinderCrossings | None
    beta_over_nu: Estimate
    gamma_over_nu: Estimate
    rows: tuple[TableRow, ...]
    snr_c: float
    n_burn: tuple[int, ...]
    n_steps: tuple[int, ...]
    seconds: float

    @property
    def consistent(self) -> bool:
        """Every row within 3 standard errors of its mean-field value."""
        return all(r.consistent for r in self.rows)


def _fss_sizes(sizes) -> np.ndarray:
    ns = np.asarray(sizes, np.float64) if isinstance(sizes, (list, tuple, np.ndarray)) else None
    if ns is None or ns.ndim != 1 or ns.size < 4 or not np.all(np.isfinite(ns) & (ns > 0)):
        raise ValueError(
            f"sizes must be a sequence of at least 4 positive sizes (the N^(-1/2)-corrected fits "
            f"need 4), got {sizes!r}."
        )
    if not np.all(np.diff(ns) > 0):
        raise ValueError(f"sizes must be strictly increasing, got {ns.tolist()}.")
    return ns


def _fss_x(x, n_min: float) -> np.ndarray:
    xs = np.asarray(x, np.float64) if isinstance(x, (list, tuple, np.ndarray)) else None
    if xs is None or xs.ndim != 1 or xs.size < 1 or not np.all(np.isfinite(xs)):
        raise ValueError(f"x must be a sequence of finite scaling-variable points, got {x!r}.")
    if not np.all(np.diff(xs) > 0) or np.count_nonzero(xs == 0) != 1:
        raise ValueError(
            f"x must be strictly increasing and contain the transition x = 0, got {xs.tolist()}."
        )
    if not 1 + xs[0] / math.sqrt(n_min) > 0:
        raise ValueError(f"x must satisfy x > -N^(1/2) at every size, got x[0] = {xs[0]:g}.")
    return xs


def _fss_steps(value, name: str, n_sizes: int, lo: int) -> list[int] | None:
    """``None`` (the rule's default, filled in later) or one checked integer per size."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        vals = [value] * n_sizes
    elif isinstance(value, (list, tuple)) and len(value) == n_sizes:
        vals = list(value)
    else:
        raise ValueError(
            f"{name} must be None, an integer or one integer per size ({n_sizes}), got {value!r}."
        )
    for v in vals:
        check_positive_int(v, name, lo)
    return [int(v) for v in vals]


def _fss_rule(per_sqrt_n: float, r: float, ns: np.ndarray, lo: int) -> list[int]:
    return [max(lo, math.ceil(per_sqrt_n * r * math.sqrt(n))) for n in ns]


def _binder_limit(ns: np.ndarray, u: np.ndarray, se: np.ndarray) -> Estimate:
    """Weighted fit u = a + c N^(-1/2); the intercept a, its SE scaled by max(1, chi2/dof)."""
    a = np.stack([np.ones_like(ns), ns**-0.5], axis=-1)
    w = 1 / se**2
    cov = np.linalg.inv(a.T @ (a * w[:, None]))
    coef = cov @ (a.T @ (w * u))
    chi2 = float(np.sum(w * (u - a @ coef) ** 2))
    birge = max(1.0, math.sqrt(chi2 / (ns.size - 2)))
    return Estimate(float(coef[0]), math.sqrt(cov[0, 0]) * birge)


def _row(name: str, theory: float, est: Estimate) -> TableRow:
    ok = math.isfinite(est.value) and abs(est.value - theory) <= 3 * est.stderr
    return TableRow(name, float(theory), float(est.value), float(est.stderr), bool(ok))


def family_fss(
    data: AbstractData,
    key: PRNGKeyArray,
    *,
    family: str = "",
    sizes: Sequence[RealLike] | np.ndarray | None = None,
    x: Sequence[RealLike] | np.ndarray | None = None,
    quick: bool = False,
    n_chains: IntLike | None = None,
    n_burn: IntLike | Sequence[IntLike] | None = None,
    n_steps: IntLike | Sequence[IntLike] | None = None,
    step: float | int | None = None,
    process: AbstractProcess | None = None,
    snr_c: float | int | None = None,
) -> FamilyFSS:
    r"""Finite-size scaling in $N$ of a dataset's bath: the Binder value and the $N$-exponents at $\beta_c$.

    For each size $N_i$ and point $x_j=\varepsilon N_i^{1/2}$, :func:`gltheory.bath.tempered_langevin`
    (MALA, chains from $M=0$; point $(i,j)$ uses ``fold_in(key, i * len(x) + j)`` as
    :func:`gltheory.bath.fss_scan` does) at $\beta=\beta_c(1+\varepsilon)$, reduced to
    $\langle|M|\rangle$, the in-well $\chi$ and the O($n$) Binder cumulant $U_n$ with jackknife errors
    over chains. From the scan (`docs/theory/exponents.md#family-fss`):

    - $U_n$ at $x=0$ per size and its $N\to\infty$ limit by a weighted fit $U^\ast+aN^{-1/2}$ (the
      leading correction; on the exact $\pm1$ bath this fit of $N=10^2..10^6$ gives $U_1^\ast$ to
      $10^{-6}$), against :func:`gltheory.bath.critical_binder` ($0.27052$ for a scalar
      $\mathbb Z_2$ order parameter, $0.17750$ for O(3));
    - the crossings of successive sizes' $U_n(x)$ (with at least 4 points in $|x|\le1$);
    - $\beta/\bar\nu$ and $\gamma/\bar\nu$ from $\langle|M|\rangle\propto N^{-1/4}$ and $\chi\propto N^{1/2}$ at
      $x=0$ (:func:`gltheory.bath.fit_critical_fss`, correction $N^{-1/2}$).

    The critical relaxation time grows like $N^{1/2}$: the default steps per size are
    $13\,r\sqrt N$ (burn-in) and $100\,r\sqrt N$ ($40\,r\sqrt N$ quick), with the family's factor
    $r=\sqrt2/(\beta_c|\kappa_4|^{1/2}\,{\tt step})$ from its Landau expansion (the linearised rate of
    the quartic drift at $\langle M^2\rangle$ relative to $\pm1$ at ``step`` 1; $r=1$ there). Each
    distinct ``(n_burn, n_steps)`` compiles the sampler once; integers share one program.
    Data without a transition (Gaussian) raise ``ValueError`` ("no transition").

    **Arguments:**

    - `data`: a $\pm$-symmetric dataset with a continuous transition (any dimension; O($n$) for
      the hypersphere).
    - `key`: PRNG key.
    - `family`: a label stored in the result.
    - `sizes`: increasing sizes, at least 4 (default :data:`FSS_SIZES`, $10^2..10^6$; ``quick``
      $10^2..10^5$).
    - `x`: increasing points of $x=\varepsilon N^{1/2}$ containing 0 (default :data:`FSS_X`;
      ``quick``: ``(0,)``, no crossings).
    - `quick`: the smaller defaults above (32 chains).
    - `n_chains`: chains per point (default 64, ``quick`` 32).
    - `n_burn`, `n_steps`: burn-in and recorded steps, ``None`` (the rule above), an integer, or
      one per size.
    - `step`: $\beta\,d\tau$ (default 1 for one-dimensional data, 0.5 otherwise).
    - `process`: the forward process (default OU; only SNR matters).
    - `snr_c`: $\beta_c$ when known in closed form (checked by :func:`gltheory.bath.landau_jump`).

    **Returns:** a :class:`FamilyFSS`.
    """
    t0 = time.perf_counter()
    process = _check_common(data, key, process)
    if not isinstance(family, str):
        raise ValueError(f"family must be a string, got {family!r}.")
    if not isinstance(quick, bool):
        raise ValueError(f"quick must be a bool, got {quick!r}.")
    ns = _fss_sizes(FSS_SIZES[: 4 if quick else 5] if sizes is None else sizes)
    xs = _fss_x(((0.0,) if quick else FSS_X) if x is None else x, float(ns[0]))
    chains = (32 if quick else 64) if n_chains is None else n_chains
    check_positive_int(chains, "n_chains", 2)
    st = _check_step(step, data)
    burns = _fss_steps(n_burn, "n_burn", ns.size, 0)
    steps = _fss_steps(n_steps, "n_steps", ns.size, 1)
    lj = _critical(data, process, snr_c)
    r = math.sqrt(2.0) / (float(lj.snr_c) * math.sqrt(abs(float(lj.kappa4))) * st)
    burns = _fss_rule(_FSS_BURN, r, ns, 0) if burns is None else burns
    steps = _fss_rule(_FSS_RECORD[quick], r, ns, 1) if steps is None else steps
    axes = order_parameter_axes(data)
    nc = int(axes.basis.shape[0])
    eps = xs[None, :] / np.sqrt(ns)[:, None]
    snr = float(lj.snr_c) * (1 + eps)
    out = np.zeros((6,) + eps.shape)
    for i, n in enumerate(ns):
        for j in range(xs.size):
            mom = _run(
                data, process, float(snr[i, j]), float(n), jax.random.fold_in(key, i * xs.size + j),
                axes, n_chains=int(chains), n_steps=steps[i], n_burn=burns[i], step=st,
            )  # fmt: skip
            stats = bath_statistics(mom)
            cols = np.stack([np.asarray(mom.m2, np.float64), np.asarray(mom.m4, np.float64)], -1)
            u = _jackknife(cols, lambda a: 1 - nc / (nc + 2) * a[1] / a[0] ** 2)
            out[:, i, j] = [*stats.order_parameter, *stats.susceptibility_abs, *u]
    scan = FSSScan(
        n_sites=ns,
        x=xs,
        eps=eps,
        snr=snr,
        order_parameter=out[0],
        order_parameter_err=out[1],
        susceptibility=out[2],
        susceptibility_err=out[3],
        binder=out[4],
        binder_err=out[5],
        snr_c=float(lj.snr_c),
        n_components=nc,
    )
    j0 = int(np.flatnonzero(xs == 0)[0])
    u_star = critical_binder(nc)
    crit = np.stack([out[4][:, j0], out[5][:, j0]], axis=-1)
    limit = _binder_limit(ns, crit[:, 0], crit[:, 1])
    rows = [_row("binder_limit", u_star, limit)]
    crossings = None
    if np.count_nonzero(np.abs(xs) <= 1.0) >= 4:
        try:
            crossings = binder_crossings(scan, x_window=1.0, degree=2)
            last = Estimate(float(crossings.binder[-1]), float(crossings.binder_err[-1]))
        except ValueError:  # two curves do not cross in the window: a finding, not a number
            last = Estimate(math.nan, math.nan)
        rows.append(_row("binder_crossing", u_star, last))
    fits = fit_critical_fss(scan)
    b = Estimate(float(fits.beta_over_nu.slope), float(fits.beta_over_nu.stderr))
    g = Estimate(float(fits.gamma_over_nu.slope), float(fits.gamma_over_nu.stderr))
    rows += [_row("beta_over_nu", 0.25, b), _row("gamma_over_nu", 0.5, g)]
    return FamilyFSS(
        family=family,
        scan=scan,
        n_components=nc,
        binder_theory=float(u_star),
        binder_critical=crit,
        binder_limit=limit,
        crossings=crossings,
        beta_over_nu=b,
        gamma_over_nu=g,
        rows=tuple(rows),
        snr_c=float(lj.snr_c),
        n_burn=tuple(burns),
        n_steps=tuple(steps),
        seconds=time.perf_counter() - t0,
    )


# the report size per family: the d > 1 families run at step 0.5 (r = 2-3.3) and the
# hypersphere's score is a 160-node quadrature (~30x a point's cost): sizes to 1e5, x = 0 only
_FSS_FAMILY = {
    "hypersphere": dict(sizes=FSS_SIZES[:4], x=(0.0,), n_chains=32),
    "curie_weiss_spins": dict(sizes=FSS_SIZES[:4], x=(0.0,)),
    "binary_images": dict(sizes=FSS_SIZES[:4], x=(0.0,)),
}
_FSS_FAMILY_QUICK = {"hypersphere": dict(n_chains=16)}


def universality_fss(
    key: PRNGKeyArray,
    *,
    families: dict[str, AbstractData] | None = None,
    quick: bool = False,
    **kwargs: object,
) -> dict[str, FamilyFSS]:
    r"""Finite-size scaling of each data family's bath (:func:`family_fss` per family).

    Family $i$ (in the dict's order) uses ``fold_in(key, i)``
    (`docs/theory/exponents.md#family-fss`). At report size (``quick=False``) the one-dimensional
    families run :func:`family_fss`'s defaults ($N=10^2..10^6$, five $x$: with crossings); the
    others ($d>1$: ``step`` 0.5 and $r=2..3.3$) $N=10^2..10^5$ at $x=0$ only (no crossings), the
    ``hypersphere`` (a 160-node quadrature per score) with 32 chains. ``quick``: every family at
    the quick defaults (the hypersphere with 16 chains).

    **Arguments:**

    - `key`: PRNG key.
    - `families`: datasets by name (default :func:`universality_families`).
    - `quick`: :func:`family_fss`'s quick defaults.
    - `kwargs`: keyword arguments passed to :func:`family_fss` (sizes, x, n_chains, ...; they
      override the per-family sizes above).

    **Returns:** a dict of :class:`FamilyFSS` by family name.
    """
    if families is not None and (not isinstance(families, dict) or not families):
        raise ValueError(f"families must be a non-empty dict of datasets, got {families!r}.")
    if not isinstance(quick, bool):
        raise ValueError(f"quick must be a bool, got {quick!r}.")
    fams = universality_families() if families is None else families
    per = _FSS_FAMILY_QUICK if quick else _FSS_FAMILY
    return {
        name: family_fss(
            d, jax.random.fold_in(key, i), family=name, quick=quick, **(per.get(name, {}) | kwargs)
        )
        for i, (name, d) in enumerate(fams.items())
    }
