"""The exponent benchmark of `gltheory.exponents` (`docs/theory/exponents.md#per-exponent`).

Fast tier (no sampler compile): bad arguments (each error names its argument), the Gaussian
negative control, and the exact Curie-Weiss reference behind the finite-size allowance against full
enumeration. Slow tier: beta on the +-1 bath at small size against exact enumeration (and OU, VP,
VE giving the same numbers by construction), every per-exponent function on the +-1 bath against
exact enumeration, the O(n) Ward identity on the hypersphere, and the five-family table.
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln

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
