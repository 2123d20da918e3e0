"""Mean-field theory: predictions 1-8, 10, 12 of `docs/theory/index.md#predictions` and the closed forms of
`docs/theory/critical-times.md#closed-forms` and `docs/theory/meanfield.md#self-consistency`."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import meanfield as mf


def test_two_deltas_ou_items_1_2():
    tc = mf.critical_times(gl.TwoPoint(1.0), gl.OU())
    assert tc.t_score == pytest.approx(0.5 * math.log(2), abs=1e-10)  # 0.346574
    assert tc.t_sde == pytest.approx(0.5 * math.asinh(1.0), abs=1e-9)  # 0.440687
    assert tc.t_ode is None  # Lambda = 1: no ODE transition
    assert float(gl.OU().alpha_bar(tc.t_sde)) == pytest.approx(math.sqrt(2) - 1, abs=1e-9)


@pytest.mark.parametrize(
    "lam,score,sde",
    [(4.0, 0.804719, 1.047356), (100.0, 2.307560, 2.649171), (1024.0, 3.466224, 3.812310)],
)
def test_lambda_dependence_item_4(lam, score, sde):
    tc = mf.critical_times(gl.TwoPoint(math.sqrt(lam)), gl.OU())
    assert tc.t_score == pytest.approx(0.5 * math.log1p(lam), abs=1e-9)
    assert tc.t_sde == pytest.approx(0.5 * math.asinh(lam), abs=1e-9)
    assert tc.t_score == pytest.approx(score, abs=1e-6)
    assert tc.t_sde == pytest.approx(sde, abs=1e-6)


def test_ode_criterion_exists_below_lambda_one():
    lam = 0.64
    tc = mf.critical_times(gl.TwoPoint(0.8), gl.OU())
    assert tc.t_ode == pytest.approx(-0.5 * math.log1p(-lam), abs=1e-9)
    # VP: alpha_bar_c = 1/(1+L), sqrt(L^2+1)-L, 1-L
    vp = gl.VP()
    tv = mf.critical_times(gl.TwoPoint(0.8), vp)
    for t, ab in zip(tv, (1 / (1 + lam), math.sqrt(lam**2 + 1) - lam, 1 - lam)):
        assert float(vp.alpha_bar(t)) == pytest.approx(ab, rel=1e-9)


def test_ve_item_5_and_hypersphere_item_12():
    tc = mf.critical_times(gl.TwoPoint(1.0), gl.VE("edm"))
    for t in tc:
        assert t == pytest.approx(1.0, abs=1e-9)
    # radius 2 in d = 5 under OU: Lambda = R^2 / d = 4/5
    ts = mf.critical_times(gl.Hypersphere(2.0, 5), gl.OU(), n_grid=48)
    assert ts.t_score == pytest.approx(0.5 * math.log1p(0.8), abs=1e-9)
    assert ts.t_ode == pytest.approx(-0.5 * math.log1p(-0.8), abs=1e-9)


@pytest.mark.slow
def test_hypersphere_item_12_under_ve():
    """The uniform sphere of radius sqrt(d) under VE: sigma_c^2 = R^2 / d = 1 in d = 3 and 8
    (the fast cover is the OU case above: the same Lambda = R^2 / d, one program fewer each)."""
    for d in (3, 8):
        ts = mf.critical_times(gl.Hypersphere(math.sqrt(d), d), gl.VE("edm"), n_grid=48)
        assert ts.t_score == pytest.approx(1.0, abs=1e-8)


def test_gaussian_mixture_closed_form():
    """+-m with within-cluster variance s0^2: t_c^S = 1/2 ln(1 + |m|^2 - s0^2) (`docs/theory/critical-times.md#general-data`)."""
    m = jnp.array([1.5, 1.0, -0.5])
    s0 = 0.6
    gm = gl.GaussianMixture(jnp.stack([m, -m]), jnp.array([s0, s0]))
    tc = mf.critical_times(gm, gl.OU())
    assert tc.t_score == pytest.approx(0.5 * math.log1p(float(m @ m) - s0), abs=1e-9)


def test_curie_weiss_data_by_enumeration():
    """Diffused Ising data (N spins, exact enumeration): t_c^S = 1/2 ln(1 + Lambda), Lambda the
    top covariance eigenvalue (uniform mode, E[(sum s)^2]/N), growing with N towards the
    mean-field 1/(1 - beta0 J) (`docs/theory/meanfield.md#self-consistency-examples`)."""
    bj = 0.5
    lams = []
    for n in (6, 8):
        spins = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))
        logw = bj / (2 * n) * spins.sum(1) ** 2
        w = np.exp(logw - logw.max())
        w = w / w.sum()
        data = gl.DeltaMixture(spins, w)
        lam = float(np.linalg.eigvalsh(np.asarray(data.covariance()))[-1])
        assert lam == pytest.approx(float(w @ spins.sum(1) ** 2) / n, rel=1e-10)
        tc = mf.critical_times(data, gl.OU())
        assert tc.t_score == pytest.approx(0.5 * math.log1p(lam), abs=1e-9)
        lams.append(lam)
    assert 1.0 < lams[0] < lams[1] < 1 / (1 - bj)


def test_gaussian_negative_control_item_10():
    for proc in (gl.OU(), gl.VP(), gl.VE("edm")):
        for cov in (0.5, 3.0):
            tc = mf.critical_times(gl.Gaussian(jnp.zeros(3), cov), proc)
            assert tc == mf.CriticalTimes(None, None, None)


def test_asymmetric_point_is_a_clear_error():
    with pytest.raises(ValueError, match="not a fixed point"):
        mf.critical_times(gl.TwoPoint(1.0, weight=0.8), gl.OU())


def test_critical_times_large_dimension_power_iteration():
    d = 300  # above the dense limit: JVP power iteration
    tc = mf.critical_times(gl.TwoPoint(1.0, dim=d), gl.OU())
    assert tc.t_score == pytest.approx(0.5 * math.log1p(d), abs=1e-8)
    assert tc.t_sde == pytest.approx(0.5 * math.asinh(d), abs=1e-8)


def test_jit_vmap_grad():
    proc = gl.OU()
    # grad: d t_c^S / d mu = mu / (1 + mu^2) for +-mu (Lambda = mu^2)
    g = jax.grad(lambda m: mf.critical_times(gl.TwoPoint(m), proc).t_score)(1.3)
    assert float(g) == pytest.approx(1.3 / (1 + 1.3**2), rel=1e-7)
    gd = jax.grad(lambda m: mf.critical_times(gl.TwoPoint(m), proc).t_sde)(2.0)
    assert float(gd) == pytest.approx(0.5 * 2 * 2.0 / math.sqrt(1 + 16.0), rel=1e-7)
    # vmap over data parameters, and jit
    mus = jnp.array([1.0, 2.0, 3.0])
    v = jax.vmap(lambda m: mf.critical_times(gl.TwoPoint(m), proc).t_sde)(mus)
    np.testing.assert_allclose(v, 0.5 * np.arcsinh(np.asarray(mus) ** 2), atol=1e-9)
    j = jax.jit(lambda m: mf.critical_times(gl.TwoPoint(m), proc))(2.0)
    assert float(j.t_score) == pytest.approx(0.5 * math.log(5), abs=1e-9)
    assert bool(jnp.isnan(j.t_ode))
    # vmap over t of the criteria
    ts = jnp.linspace(0.1, 2.0, 7)
    phis = jax.vmap(lambda t: mf.criterion_values(gl.TwoPoint(1.0), proc, t))(ts)
    np.testing.assert_allclose(phis[:, 0], proc.snr(ts) - 1, rtol=1e-10)


def test_time_conversions():
    tc = 0.5 * math.log(2)
    conv = mf.time_conversions(gl.OU(), tc)
    assert float(conv["alpha_bar"]) == pytest.approx(0.5) and float(conv["sigma"]) == pytest.approx(
        1.0
    )
    assert float(conv["ou_time"]) == pytest.approx(tc)
    assert float(gl.VP().alpha_bar(conv["vp_time"])) == pytest.approx(0.5)
    # Raya & Ambrogioni: the SDE criterion sits at generative step 707 of 1000
    tcd = mf.critical_times(gl.TwoPoint(1.0), gl.VP()).t_sde
    assert 1000 - int(mf.time_conversions(gl.VP(), tcd)["vp_step"]) == 707


def test_order_parameter_item_6():
    ou = gl.OU()
    tc = 0.5 * math.log(2)
    m = float(mf.curie_weiss_magnetization(ou.snr(tc - 1e-4)))
    assert m == pytest.approx(0.034634, abs=2e-6)
    x_star = float(jnp.sqrt(ou.alpha_bar(tc - 1e-4))) * m
    assert x_star == pytest.approx(0.024492, abs=2e-6)


def test_susceptibility_item_7_and_isotherm_item_8():
    assert float(mf.curie_weiss_susceptibility(0.9)) == pytest.approx(9.000, abs=1e-9)
    assert float(mf.curie_weiss_susceptibility(0.99)) == pytest.approx(99.00, rel=1e-9)
    assert float(mf.curie_weiss_susceptibility(1.01)) == pytest.approx(49.60, abs=0.01)
    assert float(mf.curie_weiss_magnetization(1.0, 1e-5)) == pytest.approx(0.031072, abs=2e-5)
    # the negative branch mirrors the positive one
    assert float(mf.curie_weiss_magnetization(1.5, branch=-1)) == pytest.approx(
        -float(mf.curie_weiss_magnetization(1.5)), rel=1e-12
    )


def test_solver_exponents_within_one_percent():
    ex = mf.meanfield_exponents()
    assert float(ex["beta"].slope) == pytest.approx(0.5, rel=0.01)
    assert float(ex["gamma_below"].slope) == pytest.approx(1.0, rel=0.01)
    assert float(ex["gamma_above"].slope) == pytest.approx(1.0, rel=0.01)
    assert float(ex["amplitude_ratio"]) == pytest.approx(2.0, rel=0.01)
    assert float(ex["delta"].slope) == pytest.approx(3.0, rel=0.01)
    assert float(ex["beta"].stderr) < 1e-3


def test_fit_exponent_recovers_known_power_law():
    x = jnp.geomspace(1e-3, 1.0, 30)
    key = jax.random.PRNGKey(0)
    noise = 0.01 * jax.random.normal(key, x.shape)
    y = 2.5 * x**0.75 * jnp.exp(noise)
    fit = mf.fit_exponent(x, y)
    # the slope is within 3 standard errors and the error matches the noise level
    assert abs(float(fit.slope) - 0.75) < 3 * float(fit.stderr)
    assert 0.0005 < float(fit.stderr) < 0.005
    assert float(fit.intercept) == pytest.approx(math.log(2.5), abs=0.02)
    # weighted, with a range: only the inside points count
    w = mf.fit_exponent(x, y, yerr=0.01 * y, x_range=(1e-2, 1.0))
    assert int(w.n) == int(jnp.sum(x >= 1e-2))
    assert abs(float(w.slope) - 0.75) < 3 * float(w.stderr)
    assert float(w.x_range[0]) >= 1e-2
    with pytest.raises(ValueError, match="same length"):
        mf.fit_exponent(jnp.ones(3), jnp.ones(4))


def test_fixed_points_raya_ambrogioni_example():
    """SDE-drift zeros at theta = 0.8: stable near +-0.96, unstable 0 (`docs/theory/critical-times.md#raya-ambrogioni`)."""
    vp = gl.VP()
    t = vp.t_of_alpha_bar(0.64)
    fp = mf.fixed_points(gl.TwoPoint(1.0), vp, t, field="sde")
    ell = np.asarray(fp.ell)
    ok = np.isfinite(ell)
    roots = np.sort(ell[ok])
    assert roots.size == 3
    th = 0.8
    rhs = lambda x: (th**2 + 1) * x + 2 * th * np.tanh(th * x / (th**2 - 1))
    np.testing.assert_allclose(rhs(roots), 0.0, atol=1e-10)
    assert roots[2] == pytest.approx(0.96, abs=0.02)  # "near 0.96" in the notebook; exact 0.9470
    stable = np.asarray(fp.stable)[ok][np.argsort(ell[ok])]
    assert stable.tolist() == [True, False, True]


def test_bifurcation_diagram_pitchfork():
    """One zero of the score field before t_c^S, three after; the same for the SDE drift at t_c^D."""
    ou = gl.OU()
    data = gl.TwoPoint(1.0)
    for field, tc in (("score", 0.5 * math.log(2)), ("sde", 0.5 * math.asinh(1))):
        ts = jnp.array([tc * 1.3, tc * 0.7])
        fp = mf.bifurcation_diagram(data, ou, ts, field=field)
        counts = np.isfinite(np.asarray(fp.ell)).sum(1)
        assert counts.tolist() == [1, 3], field
        assert bool(fp.stable[0][np.isfinite(np.asarray(fp.ell[0]))].all())


def test_potential_curvature_eq8_item_3():
    vp = gl.VP()
    data = gl.TwoPoint(1.0)
    for s, expected in ((0.2, -13.1116), (0.4, 3.5538)):
        got = float(mf.potential_curvature(data, vp, s))
        th2 = float(vp.alpha_bar(s))
        closed = -float(vp.beta(s)) * (0.5 + (2 * th2 - 1) / (th2 - 1) ** 2)
        assert got == pytest.approx(closed, rel=1e-10)
        assert got == pytest.approx(expected, rel=1e-4)
    # -grad U is the reverse drift
    x = jnp.array([[0.3]])
    gu = jax.grad(lambda z: mf.generative_potential(data, vp, z, 0.3).sum())(x)
    np.testing.assert_allclose(
        -gu, vp.reverse_drift(x, 0.3, gl.score(data, vp, x, 0.3)), rtol=1e-10
    )


def test_landau_coefficients_two_deltas():
    ou = gl.OU()
    mu = 1.4
    data = gl.TwoPoint(mu)
    for t in (0.2, 0.6, 1.5):
        a, b2 = float(ou.a(t)), float(ou.b2(t))
        r, u = mf.landau_coefficients(data, ou, t)
        assert float(r) == pytest.approx((b2 - a**2 * mu**2) / b2**2, rel=1e-9)
        assert float(u) == pytest.approx((a * mu / b2) ** 4 / 3, rel=1e-7)
    r, u = mf.curie_weiss_landau(1.2)
    assert float(r) == pytest.approx(-0.2) and float(u) == pytest.approx(1.2**3 / 3)


def _biroli_phi(d, n, seed):
    """Cloning probability of Biroli et al.'s Gaussian mixture (+-1 vector, unit within-cluster
    variance, OU) branched at t_S - 0.8, t_S, t_S + 0.8: Monte Carlo vs quadrature (`docs/theory/cloning.md#cloning-monte-carlo`)."""
    m = jnp.ones(d)
    t_s = 0.5 * math.log(d)
    proc = gl.OU(T=t_s + 3.0)
    data = gl.GaussianMixture(jnp.stack([m, -m]), jnp.array([1.0, 1.0]))
    ts = jnp.concatenate(
        [
            jnp.linspace(t_s + 3.0, t_s + 0.8, 23),
            jnp.linspace(t_s + 0.8, t_s - 0.8, 17)[1:],
            jnp.linspace(t_s - 0.8, max(t_s - 3.0, 0.05), 23)[1:],
        ]
    )
    est = gl.observables.cloning_probability(
        lambda x, t: gl.score(data, proc, x, t),
        proc,
        jax.random.PRNGKey(seed),
        (n, d),
        ts=ts,
        branch_index=[22, 30, 38],
        classify=gl.observables.sign_classifier(m),
    )
    np.testing.assert_allclose(est.t, [t_s + 0.8, t_s, t_s - 0.8], rtol=1e-12)
    theory = gl.observables.cloning_probability_theory(math.sqrt(d), 1.0, est.t)
    z = (np.asarray(est.phi) - np.asarray(theory)) / np.asarray(est.se)
    assert np.all(np.abs(z) < 3), (est.phi, theory, est.se)
    # phi(t_S) is the d-independent 0.7752 of the collapse (sigma^2 = 1)
    assert float(theory[1]) == pytest.approx(0.7752, abs=1e-4)


@pytest.mark.slow
def test_biroli_cloning_probability_d1024():
    """Fast cover: tests/test_observables.py::test_cloning_mc_matches_quadrature (the same
    estimator, the same Gaussian mixture and quadrature, in d = 16, three branch times)."""
    _biroli_phi(1024, 800, 0)


@pytest.mark.slow
def test_biroli_cloning_probability_d4096():
    """Same claim as the d = 1024 test at Biroli et al.'s largest d."""
    _biroli_phi(4096, 1500, 1)


def test_meanfield_functions_compose_with_jit_vmap_grad():
    ou = gl.OU()
    data = gl.TwoPoint(1.0)
    ts = jnp.array([0.2, 0.5, 1.0])
    # vmap over t
    curv = jax.vmap(lambda t: mf.potential_curvature(data, ou, t))(ts)
    r, _ = jax.vmap(lambda t: mf.landau_coefficients(data, ou, t))(ts)
    np.testing.assert_allclose(curv, 2 * r - 1, rtol=1e-9)  # OU: U'' = 2 (-log p)'' - 1
    # jit, and vmap over a data parameter
    lam = jax.jit(lambda m: mf.posterior_top_eigenvalue(gl.TwoPoint(m), ou, 0.5))(1.5)
    assert float(lam) == pytest.approx(2.25, rel=1e-12)
    mags = jax.vmap(mf.curie_weiss_magnetization)(jnp.array([1.2, 1.5, 2.0]))
    np.testing.assert_allclose(
        mags, np.tanh(np.array([1.2, 1.5, 2.0]) * np.asarray(mags)), atol=1e-12
    )
    # grad: dM*/db by implicit differentiation == the analytic (1 - M^2) M / (1 - b (1 - M^2))
    b = 1.5
    m = float(mf.curie_weiss_magnetization(b))
    g = float(jax.grad(mf.curie_weiss_magnetization)(b))
    assert g == pytest.approx((1 - m**2) * m / (1 - b * (1 - m**2)), rel=1e-9)
    # fixed points under jit
    fp = jax.jit(lambda t: mf.fixed_points(data, ou, t))(0.2)
    assert int(jnp.isfinite(fp.ell).sum()) == 3
