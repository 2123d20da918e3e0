"""The exponent benchmark of `gltheory.exponents` (`docs/theory/exponents.md#per-exponent`).

Fast tier: bad arguments (each error names its argument), the Gaussian negative control of every
function (with snr_c given: the Landau expansion refuses), the exact Curie-Weiss reference behind
the finite-size allowance against full enumeration, and sampler covers of measure_beta,
measure_gamma (three methods), measure_jump, measure_delta, measure_znu (above) and family_fss on
the +-1 bath against exact enumeration at small sizes (one compiled MALA program shared with
tests/test_exponents.py, one unadjusted). Slow tier: beta at small size (and OU, VP, VE giving the
same numbers by construction), every per-exponent function at larger size, the Gaussian control
through critical_snr, the O(n) Ward identity on the hypersphere, the five-family table and the
five-family finite-size scaling (`docs/theory/exponents.md#family-fss`).
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln
from scipy.stats import norm

import gltheory as gl
from gltheory import bath, exponents as ex


def cw_enumeration(beta, n, h0=0.0):
    """Oracle: full enumeration of the N-site Curie-Weiss model (J = 1) with a field h0.

    Returns <m>, <|m|>, N Var m, N(<m^2> - <|m|>^2), C/N (the site energy N(1 - m^2)/2).
    """
    k = np.arange(n + 1)
    m = (2 * k - n) / n
    lw = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + 0.5 * beta * n * m**2 + h0 * n * m
    w = np.exp(lw - lw.max())
    w /= w.sum()
    m1, ma, m2 = (w * m).sum(), (w * abs(m)).sum(), (w * m * m).sum()
    heat = beta**2 * n * (w * (m * m - m2) ** 2).sum() / 4
    return np.array([m1, ma, n * (m2 - m1**2), n * (m2 - ma**2), heat])


# the fast run: +-1 at N = 1e5 (the rule's window |eps| in [0.032, 0.1]), 4 temperatures
SMALL = dict(n_sites=1e5, n_chains=16, n_steps=300, n_burn=200, n_points=4, snr_c=1.0)


def _lib(fn):
    """``fn`` as users call it (without the test suite's run-time type-checking wrapper)."""
    return inspect.unwrap(fn)


def test_errors_name_the_argument():
    data, key = gl.TwoPoint(1.0), jax.random.PRNGKey(0)
    cases = [
        # a wrong type: the function as users call it (tests/test_bad_inputs.py `_lib`)
        (lambda: _lib(ex.measure_beta)("two deltas", key), "data"),
        (lambda: _lib(ex.measure_beta)(data, 3), "key"),
        (lambda: _lib(ex.measure_beta)(data, key, process="OU"), "process"),
        (lambda: _lib(ex.exponent_table)(data, key, family=3), "family"),
        (lambda: _lib(ex.universality)(key, quick=1), "quick"),
        # a right type, a bad value: the library's ValueError (in the checked mode too)
        (lambda: ex.measure_beta(data, key, n_sites=50), "n_sites"),
        (lambda: ex.measure_beta(data, key, n_sites=-1.0), "n_sites"),
        (lambda: ex.measure_beta(data, key, n_chains=1), "n_chains"),
        (lambda: ex.measure_beta(data, key, n_steps=0), "n_steps"),
        (lambda: ex.measure_beta(data, key, n_burn=-1), "n_burn"),
        (lambda: ex.measure_beta(data, key, n_points=3), "n_points"),
        (lambda: ex.measure_beta(data, key, step=2.0), "step"),
        (lambda: ex.measure_gamma(data, key, method="susceptibility"), "method"),
        (lambda: ex.measure_delta(data, key, n_sites=1e4), "n_sites"),
        (lambda: ex.measure_jump(data, key, n_sites=1e3), "n_sites"),
        (lambda: ex.measure_znu(data, key, side="left"), "side"),
        (lambda: ex.measure_znu(data, key, eps_min=0.5), "eps_min"),
        (lambda: ex.measure_znu(data, key, n_sites=1e4, eps_min=0.01), "eps_min"),
        (lambda: ex.exponent_table(data, key, n_sites_critical=1e4), "n_sites_critical"),
        (lambda: ex.exponent_table(data, key, relax_chains=1), "relax_chains"),
        (lambda: ex.transverse_susceptibility(data, key, snr=1.0, h0=-0.1, n_sites=100), "h0"),
        (lambda: ex.transverse_susceptibility(data, key, snr=0.0, h0=0.1, n_sites=100), "snr"),
        (lambda: ex.universality(key, families={}), "families"),
        (lambda: _lib(ex.family_fss)(data, key, family=3), "family"),
        (lambda: _lib(ex.family_fss)(data, key, quick=1), "quick"),
        (lambda: ex.family_fss(data, key, sizes=(1e2, 1e3, 1e4)), "sizes"),
        (lambda: ex.family_fss(data, key, sizes=(1e3, 1e2, 1e4, 1e5)), "sizes"),
        (lambda: ex.family_fss(data, key, x=(-1.0, 1.0)), "x must"),
        (lambda: ex.family_fss(data, key, x=(-20.0, 0.0)), "x must"),
        (lambda: ex.family_fss(data, key, n_chains=1), "n_chains"),
        (lambda: ex.family_fss(data, key, n_burn=[10, 10]), "n_burn"),
        (lambda: ex.family_fss(data, key, n_steps=0), "n_steps"),
        (lambda: ex.universality_fss(key, families={}), "families"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()


def test_gaussian_data_have_no_transition():
    # The negative control: Gaussian data (a linear score) have no transition; the table and each
    # exponent say so instead of returning a number. (With snr_c given the refusal comes from the
    # Landau expansion, kappa4 = 0, the program test_exponents compiles; without it from
    # critical_snr, and for each per-exponent function: slow tier.)
    g = gl.Gaussian(jnp.zeros(2), jnp.eye(2) * 4.0)
    with pytest.raises(ValueError, match="no transition"):
        ex.exponent_table(g, jax.random.PRNGKey(2026), snr_c=0.25)


def test_curie_weiss_reference_equals_full_enumeration():
    # The windowed sector sum behind the finite-size allowance equals full enumeration (N = 1e4:
    # both phases, with and without a field) to 1e-10, and the allowance of the rule at N = 1e6
    # is the stated ~1 % for gamma (the rounding at |eps| N^(1/2) = 10), 0.1 % for beta.
    for beta, h0 in ((0.97, 0.0), (1.03, 0.0), (1.0, 0.002), (0.95, -0.001)):
        got, want = ex._cw_exact(beta, 1e4, h0), cw_enumeration(beta, 10_000, h0)
        np.testing.assert_allclose(got[:4], want[:4], rtol=1e-10, atol=1e-12)
        if h0 == 0:
            np.testing.assert_allclose(got[4], want[4], rtol=1e-10)
    eps, y = np.geomspace(0.01, 0.1, 5), np.ones(5)
    assert ex._allowance("gamma", "gamma", 1.0, eps, y, 1e-3 * y, 1e6) == pytest.approx(
        0.0097, abs=2e-4
    )
    assert ex._allowance("beta", "beta", 0.5, eps, y, 1e-3 * y, 1e6) == pytest.approx(
        0.0012, abs=2e-4
    )


@pytest.fixture(scope="module")
def small_beta():
    # (slow tier: its compile of the tempered sampler and the +-1 Landau program alone is ~5 s)
    return ex.measure_beta(gl.TwoPoint(1.0), jax.random.PRNGKey(2026), **SMALL)


@pytest.mark.slow
def test_measure_beta_small_against_enumeration(small_beta):
    # +-1 at N = 1e5, 16 chains: each <|M|> within 4 SE of exact enumeration, and the fitted
    # exponent within 3 SE of the same fit on the exact points (which is 1/2 to the allowance).
    b = small_beta
    assert b.name == "beta" and b.x.size == 4 and b.n_sites == 1e5
    assert b.x.min() >= 10 / math.sqrt(1e5) and b.x.max() <= 0.1
    exact = np.array([cw_enumeration(1 + e, 100_000)[1] for e in b.x])
    assert np.all(np.abs(b.y - exact) < 4 * b.yerr), (b.y, exact, b.yerr)
    ref = bath.fit_exponent_rule("beta", b.x, exact, b.yerr, 1e5)
    assert abs(b.value - float(ref.slope)) < 3 * b.stderr
    assert abs(float(ref.slope) - 0.5) <= b.allowance + 1e-12
    assert b.consistent


@pytest.mark.slow
def test_processes_at_equal_snr_give_identical_exponents(small_beta):
    # OU, VP and EDM VE at equal SNR are one bath (x_t / a_t is a Brownian motion in 1/SNR): the
    # exponents coincide by construction, to round-off. An implementation check, not universality.
    for proc in (gl.VP(), gl.VE("edm")):
        b = ex.measure_beta(gl.TwoPoint(1.0), jax.random.PRNGKey(2026), process=proc, **SMALL)
        np.testing.assert_allclose(b.y, small_beta.y, rtol=1e-7)
        assert b.value == pytest.approx(small_beta.value, rel=1e-6)


# ----------------------------------------------------------------------------------------------
# fast sampler covers: every per-exponent function and family_fss on the +-1 bath against exact
# enumeration, all with ONE compiled MALA program (TwoPoint data, 32 chains, 200 + 400 steps,
# step 1; the temperatures, fields, sizes, starts and mu are traced), the one test_exponents'
# `cw_runs` compiles (the suite's compilation cache serves both modules), and one unadjusted
# program (measure_znu).
# ----------------------------------------------------------------------------------------------

FAST = dict(n_chains=32, n_steps=400, n_burn=200)  # = test_exponents.RUN (step 1 by default)


def cw_field(beta, n):
    """Oracle: <|x|>, N(<x^2> - <|x|>^2) - 1/beta and 1 - <x^4>/3<x^2>^2 of the +-1 bath's field.

    Curie-Weiss sectors (k sites at +1, m = (2k - N)/N, weight C(N, k) e^(beta N m^2/2)); given
    the sites the field is x = m + s Z, s^2 = 1/(beta N) (the Hubbard-Stratonovich noise).
    """
    k = np.arange(n + 1)
    m = (2 * k - n) / n
    lw = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + beta * n * m**2 / 2
    w = np.exp(lw - lw.max())
    w /= w.sum()
    s = math.sqrt(1 / (beta * n))
    e_abs = (w * (m * (1 - 2 * norm.cdf(-m / s)) + 2 * s * norm.pdf(m / s))).sum()
    e2 = (w * (m**2 + s**2)).sum()
    e4 = (w * (m**4 + 6 * m**2 * s**2 + 3 * s**4)).sum()
    return e_abs, n * (e2 - e_abs**2) - 1 / beta, 1 - e4 / (3 * e2**2)


def _points_match(est, exact, z=4.0):
    exact = np.asarray(exact, np.float64)
    assert np.all(np.abs(est.y - exact) < z * est.yerr), (est.name, est.y, exact, est.yerr)


def _fit_matches(est, kind, exact):
    # the measured exponent within 3 SE of the same rule's fit on the exact points (same errors)
    fit = bath.fit_exponent_rule(kind, est.x, np.asarray(exact), est.yerr, est.n_sites)
    assert abs(est.value - float(fit.slope)) < 3 * est.stderr, (est.name, est, fit)
    assert est.consistent, est


def test_fast_beta_gamma_jump_against_enumeration():
    # +-1 at N = 1e5 (window |eps| in [0.032, 0.1]), 4 temperatures, 32 chains of 200 + 400 steps
    # (seed 17): each point within 4 SE of the N-site Curie-Weiss enumeration, each exponent within
    # 3 SE of the rule's fit on the exact points (1/2 or 1 to the allowance), the jump within
    # 3 SE of the exact finite-N jump under the rule (1.49).
    data, key, n = gl.TwoPoint(1.0), jax.random.PRNGKey(17), 100_000
    kw = FAST | dict(n_sites=1e5, n_points=4, snr_c=1.0)
    b = ex.measure_beta(data, key, **kw)
    _points_match(b, [cw_enumeration(1 + e, n)[1] for e in b.x])
    _fit_matches(b, "beta", [cw_enumeration(1 + e, n)[1] for e in b.x])
    g = ex.measure_gamma(data, key, method="fluctuations", **kw)
    exact = [cw_enumeration(1 - e, n)[2] for e in g.x]
    _points_match(g, exact)
    _fit_matches(g, "gamma", exact)
    r = ex.measure_gamma(data, key, method="response", **kw)
    exact = [
        (cw_enumeration(1 - e, n, 3e-3 * e)[0] - cw_enumeration(1 - e, n, -3e-3 * e)[0])
        / (6e-3 * e)
        for e in r.x
    ]
    _points_match(r, exact)
    _fit_matches(r, "gamma", exact)
    gb = ex.measure_gamma(data, key, method="below", **kw)
    exact = [cw_enumeration(1 + e, n)[3] for e in gb.x]
    _points_match(gb, exact)
    _fit_matches(gb, "gamma", exact)
    j = ex.measure_jump(data, key, **kw)
    exact = np.array([cw_enumeration(1 + e, n)[4] for e in j.x])
    _points_match(j, exact)
    ref = bath.fit_jump(j.x, exact, j.yerr / j.y * exact, n)
    assert abs(j.value - ref.value) < 3 * j.stderr and j.consistent, (j, ref)


def test_fast_delta_against_enumeration():
    # The critical isotherm of +-1 at N = 1e6 (fields h0 in [3.2e-3, 1e-2]), the same program:
    # each <M> within 4 SE of enumeration, delta within 3 SE of the rule's fit on the exact points.
    d = ex.measure_delta(
        gl.TwoPoint(1.0), jax.random.PRNGKey(17), n_sites=1e6, n_points=4, snr_c=1.0, **FAST
    )
    exact = [cw_enumeration(1.0, 1_000_000, h)[0] for h in d.x]
    _points_match(d, exact)
    _fit_matches(d, "delta", exact)


def test_fast_znu_above_against_the_linearised_rate():
    # Relaxation above the transition at N = 1e8 from M0 = 0.3 |eps|^(1/2), |eps| in [0.03, 0.1],
    # 8 chains of 700 unadjusted steps (step 0.2): each tau_r = 1/(beta (1 - beta)) (the linearised
    # rate, closed form) within 3 SE plus the stated 5 % (displaced start, Euler step), and z nu
    # within 3 SE of 1. (The in-well side, with its pre-run: slow tier.)
    z = ex.measure_znu(
        gl.TwoPoint(1.0), jax.random.PRNGKey(17), side="above", n_chains=8, n_steps=700,
        eps_min=0.03, n_points=4, snr_c=1.0,
    )  # fmt: skip
    for e, tau, se in zip(z.x, z.y, z.yerr):
        rate = (1 - e) * e
        assert abs(tau * rate - 1) < 3 * se * rate + 0.05, (e, tau, 1 / rate)
    assert z.name == "znu_above" and z.consistent, z


def _weighted_limit(ns, u, se):
    a = np.stack([np.ones_like(ns), ns**-0.5], axis=-1)
    w = 1 / se**2
    cov = np.linalg.inv(a.T @ (a * w[:, None]))
    return (cov @ (a.T @ (w * u)))[0]


def test_fast_family_fss_against_enumeration():
    # family_fss on +-1 at N = 25, 50, 100, 200 and x in [-1, 1] (5 points; the same program,
    # seed 17): every <|M|>, chi and U within 4 SE of the Curie-Weiss enumeration of the field;
    # beta/nu, gamma/nu and the N -> inf Binder value within 3 SE of the same fits on the exact
    # points (which are 1/4, 1/2 and 0.2705 up to the small sizes' corrections).
    f = ex.family_fss(
        gl.TwoPoint(1.0), jax.random.PRNGKey(17), sizes=(25, 50, 100, 200), snr_c=1.0, **FAST
    )
    sc = f.scan
    assert f.n_components == 1 and f.binder_theory == pytest.approx(0.270520, abs=1e-6)
    exact = np.array(
        [[cw_field(b, int(n)) for b in row] for n, row in zip(sc.n_sites, sc.snr)]
    )  # (size, point, observable)
    for k, name in enumerate(("order_parameter", "susceptibility", "binder")):
        z = (getattr(sc, name) - exact[..., k]) / getattr(sc, name + "_err")
        assert np.all(np.abs(z) < 4), (name, z)
    ref = bath.fit_critical_fss(
        sc._replace(order_parameter=exact[..., 0], susceptibility=exact[..., 1])
    )
    assert abs(f.beta_over_nu.value - float(ref.beta_over_nu.slope)) < 3 * f.beta_over_nu.stderr
    assert abs(f.gamma_over_nu.value - float(ref.gamma_over_nu.slope)) < 3 * f.gamma_over_nu.stderr
    u_ref = _weighted_limit(sc.n_sites, exact[:, 2, 2], f.binder_critical[:, 1])
    assert abs(f.binder_limit.value - u_ref) < 3 * f.binder_limit.stderr
    assert [r.name for r in f.rows] == [
        "binder_limit", "binder_crossing", "beta_over_nu", "gamma_over_nu"
    ]  # fmt: skip
    assert f.crossings is not None and f.crossings.binder.shape == (3,)
    assert f.n_burn == (200,) * 4 and f.consistent


def test_fast_gaussian_negative_control_every_function():
    # Gaussian data (kappa4 = 0) with a given snr_c: every exponent function and family_fss say
    # "no transition" instead of returning a number (the Landau program of the control above).
    g, key = gl.Gaussian(jnp.zeros(2), jnp.eye(2) * 4.0), jax.random.PRNGKey(0)
    calls = (
        ex.measure_beta, ex.measure_gamma, ex.measure_delta, ex.measure_jump, ex.measure_znu,
        ex.family_fss,
    )  # fmt: skip
    for f in calls:
        with pytest.raises(ValueError, match="no transition"):
            f(g, key, snr_c=0.25)


# ----------------------------------------------------------------------------------------------
# slow tier
# ----------------------------------------------------------------------------------------------

MID = dict(n_sites=1e5, n_chains=32, n_steps=1500, n_burn=500, n_points=5, snr_c=1.0)


@pytest.mark.slow
def test_each_exponent_on_the_two_delta_bath_against_enumeration():
    # +-1 at N = 1e5 (delta at N = 1e6): every measured point within 4 SE of exact enumeration
    # (the jump's heat against the quadrature of field_thermo), every exponent within 3 SE of the
    # same rule's fit on the exact points; z nu against the linearised rate 1/tau_r within 3 SE
    # plus the stated bias of the displaced start and of the Euler step (relative 5 %).
    data = gl.TwoPoint(1.0)
    n = 100_000
    g = ex.measure_gamma(data, jax.random.PRNGKey(2026), method="fluctuations", **MID)
    r = ex.measure_gamma(data, jax.random.PRNGKey(2026), method="response", **MID)
    gb = ex.measure_gamma(data, jax.random.PRNGKey(2026), method="below", **MID)
    exact = {
        "gamma": [cw_enumeration(1 - e, n)[2] for e in g.x],
        "gamma_response": [
            (cw_enumeration(1 - e, n, 3e-3 * e)[0] - cw_enumeration(1 - e, n, -3e-3 * e)[0])
            / (6e-3 * e)
            for e in r.x
        ],
        "gamma_below": [cw_enumeration(1 + e, n)[3] for e in gb.x],
    }
    for est in (g, r, gb):
        ref = np.asarray(exact[est.name])
        assert np.all(np.abs(est.y - ref) < 4 * est.yerr), (est.name, est.y, ref, est.yerr)
        fit = bath.fit_exponent_rule("gamma", est.x, ref, est.yerr, n)
        assert abs(est.value - float(fit.slope)) < 3 * est.stderr, (est.name, est, fit)
        assert est.consistent
    d = ex.measure_delta(data, jax.random.PRNGKey(2026), **(MID | dict(n_sites=1e6)))
    ref = np.array([cw_enumeration(1.0, 1_000_000, h)[0] for h in d.x])
    assert np.all(np.abs(d.y - ref) < 4 * d.yerr), (d.y, ref, d.yerr)
    fit = bath.fit_exponent_rule("delta", d.x, ref, d.yerr, 1e6)
    assert abs(d.value - float(fit.slope)) < 3 * d.stderr and d.consistent
    j = ex.measure_jump(data, jax.random.PRNGKey(2026), **MID)
    th = jax.vmap(lambda e: bath.field_thermo(data, 1 + e, float(n)))(jnp.asarray(j.x))
    exact_heat = np.asarray(th.specific_heat)
    assert np.all(np.abs(j.y - exact_heat) < 4 * j.yerr)
    np.testing.assert_allclose(exact_heat, [cw_enumeration(1 + e, n)[4] for e in j.x], rtol=1e-6)
    # the exact finite-N jump under the rule (the same relative errors): 1.49 at N = 1e5
    ref = bath.fit_jump(j.x, exact_heat, j.yerr / j.y * exact_heat, n)
    assert abs(j.value - ref.value) < 3 * j.stderr
    assert j.allowance == pytest.approx(abs(ref.value - 1.5), rel=1e-5)
    assert j.theory == pytest.approx(1.5) and j.consistent
    for side in ("above", "below"):
        z = ex.measure_znu(data, jax.random.PRNGKey(2026), side=side, n_chains=16, snr_c=1.0)
        for e, tau, se in zip(z.x, z.y, z.yerr):
            b = 1 - e if side == "above" else 1 + e
            m = 0.0 if side == "above" else cw_enumeration(b, 10**6)[1]  # N = 1e6: M* to 1e-3
            rate = b * (1 - b * (1 - m**2))
            assert abs(tau * rate - 1) < 3 * se * rate + 0.05, (side, e, tau, 1 / rate)
        assert z.consistent, z


@pytest.mark.slow
def test_gaussian_negative_control_every_function():
    g = gl.Gaussian(jnp.zeros(2), jnp.eye(2) * 4.0)
    for f in (ex.measure_beta, ex.measure_gamma, ex.measure_delta, ex.measure_jump, ex.measure_znu):
        with pytest.raises(ValueError, match="no transition"):
            f(g, jax.random.PRNGKey(2026))


@pytest.mark.slow
def test_hypersphere_transverse_susceptibility_is_a_goldstone_mode():
    # The uniform sphere (R = 2, d = 3: O(3), beta_c = 3/4) at N = 1000 in the field h0 = 0.02:
    # the Ward identity chi_perp = <M_par>/h0 holds at every N (within 3 SE) in both phases; in the
    # ordered phase (beta = 1.3 beta_c) chi_perp >> chi_par (Goldstone: chi_perp = M*/h0 -> inf as
    # h0 -> 0), in the disordered phase (0.7 beta_c) chi_perp = chi_par within 3 SE.
    sp = gl.Hypersphere(2.0, 3)
    kw = dict(h0=0.02, n_sites=1000.0, n_chains=32, n_steps=1000, n_burn=300)
    o = ex.transverse_susceptibility(sp, jax.random.PRNGKey(2026), snr=0.75 * 1.3, **kw)
    assert abs(o.transverse.value - o.ward.value) < 3 * math.hypot(
        o.transverse.stderr, o.ward.stderr
    )
    assert o.transverse.value > 5 * o.longitudinal.value
    d = ex.transverse_susceptibility(sp, jax.random.PRNGKey(2026), snr=0.75 * 0.7, **kw)
    assert abs(d.transverse.value - d.ward.value) < 3 * math.hypot(
        d.transverse.stderr, d.ward.stderr
    )
    assert abs(d.transverse.value - d.longitudinal.value) < 3 * math.hypot(
        d.transverse.stderr, d.longitudinal.stderr
    )


@pytest.mark.slow
def test_universality_five_families():
    # The table at report size for the five families (docs/theory/exponents.md#universality):
    # every exponent within 3 SE (plus the rule's finite-size allowance, stated per row) of mean
    # field, the jump within 3 SE of each family's own Landau value, and the scaling relations
    # within 3 SE. The jumps differ between families (non-universal): 3/2, 5/2, ...
    tabs = ex.universality(jax.random.PRNGKey(2026))
    assert list(tabs) == list(ex.universality_families())
    for name, tab in tabs.items():
        for row in tab.rows:
            print(name, row)
            assert row.consistent, (name, row)
        for rel in tab.relations:
            print(name, rel)
            assert rel.consistent, (name, rel)
        b = tab.estimates["beta"]
        print(name, "amplitude", b.amplitude, tab.landau_amplitude, "fdt", tab.fdt, tab.seconds)
        assert abs(tab.fdt.value) < 3 * tab.fdt.stderr, (name, tab.fdt)
    jumps = {n: t.landau.jump for n, t in tabs.items()}
    assert jumps["two_deltas"] == pytest.approx(1.5) and jumps["hypersphere"] == pytest.approx(2.5)
    assert max(jumps.values()) - min(jumps.values()) > 1


@pytest.mark.slow
def test_family_fss_five_families():
    # universality_fss at report size, seed 2026 (docs/theory/exponents.md#family-fss): for every
    # family the N -> inf Binder value at x = 0 within 3 SE of U_n* (0.2705 for the Z2 families,
    # 0.1775 for the O(3) sphere), the crossing of the two largest sizes (the 1-D families; the
    # others run at x = 0 only) within 3 SE of it, and beta/nu = 1/4, gamma/nu = 1/2 within 3 SE;
    # for the one-dimensional families every scan point within 4 SE of the exact quadrature
    # fss_field (the equilibration check of the step rule).
    res = ex.universality_fss(jax.random.PRNGKey(2026))
    assert list(res) == list(ex.universality_families())
    fams = ex.universality_families()
    for name, f in res.items():
        for row in f.rows:
            print(name, row)
            assert row.consistent, (name, row)
        assert f.n_components == (3 if name == "hypersphere" else 1)
        assert (f.crossings is None) == (fams[name].dim > 1)
        d = fams[name]
        if d.dim == 1:
            exact = bath.fss_field(d, f.scan.n_sites, f.scan.x, snr_c=f.snr_c)
            for obs in ("order_parameter", "susceptibility", "binder"):
                z = (getattr(f.scan, obs) - getattr(exact, obs)) / getattr(f.scan, obs + "_err")
                assert np.all(np.abs(z) < 4), (name, obs, z)
        print(name, f"{f.seconds:.0f} s", f.binder_critical.tolist())
