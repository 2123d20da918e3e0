"""The generative bath of any dataset and its critical exponents (`docs/theory/exponents.md`).

Fast tier: the energy estimator against exact Curie-Weiss enumeration (the +-mu bath is
Curie-Weiss with J = Lambda), the tempered sampler against enumeration (moments, susceptibility,
field response, specific heat), the Landau jumps, each exponent fit on a curve with a known
exponent, and the Gaussian negative control. Slow tier: the exponents measured by simulation.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln

import gltheory as gl
from gltheory import bath


def cw_mean_field(b, h0=0.0):
    """Oracle: the ordered root of M = tanh(b M + h0) (Newton from M = 1, NumPy) and the site
    susceptibility dM/dh0 = (1 - M^2) / (1 - b (1 - M^2))."""
    b, h0 = np.broadcast_arrays(np.asarray(b, float), np.asarray(h0, float))
    m = np.ones_like(b)
    for _ in range(200):
        th = np.tanh(b * m + h0)
        m = m - (m - th) / (1 - b * (1 - th**2))
    return m, (1 - m**2) / (1 - b * (1 - m**2))


def cw_enumeration(beta, n, mu=1.0, h0=0.0):
    """Oracle: the N-site bath of two points +-mu is Curie-Weiss with J = mu^2.

    Sector k (k sites at +mu) has magnetisation m = (2k - N)/N, energy
    H = (N mu^2 / 2)(1 - m^2) and weight C(N, k) exp(-beta H + h0 N m).
    Returns <m>, N Var(m), <m^2>, <H>/N, beta^2 Var(H)/N.
    """
    k = np.arange(n + 1)
    m = (2 * k - n) / n
    energy = 0.5 * n * mu**2 * (1 - m**2)
    lw = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) - beta * energy + h0 * n * m
    w = np.exp(lw - lw.max())
    w /= w.sum()
    mean_m = (w * m).sum()
    e1 = (w * energy).sum()
    var_e = (w * (energy - e1) ** 2).sum()
    return dict(
        m=mean_m,
        chi=n * ((w * m**2).sum() - mean_m**2),
        m2=(w * m**2).sum(),
        energy=e1 / n,
        heat=beta**2 * var_e / n,
    )


@pytest.mark.parametrize("mu", [1.0, 1.5])
def test_energy_estimator_equals_curie_weiss_enumeration(mu):
    # <H>/N and C/N from the field law alone (quadrature of the energy estimators) equal the
    # N-site Curie-Weiss model's, J = mu^2, at every N: relative 1e-9.
    data = gl.TwoPoint(mu)
    lam = mu**2
    bs = np.array([0.8, 0.9, 1.0, 1.1, 1.25, 1.5])  # b = beta * Lambda
    for n in (10, 200):
        th = jax.vmap(lambda b: bath.field_thermo(data, b / lam, float(n)))(jnp.asarray(bs))
        for i, b in enumerate(bs):
            ref = cw_enumeration(b / lam, n, mu)
            assert float(th.energy[i]) == pytest.approx(ref["energy"], rel=1e-9)
            assert float(th.specific_heat[i]) == pytest.approx(ref["heat"], rel=1e-9)


# the program test_universality.py's fast sampler covers use too (one compile for both modules,
# through the suite's compilation cache): 32 chains, 200 + 400 steps, step 1
RUN = dict(n_chains=32, n_steps=400, n_burn=200, step=1.0)


@pytest.fixture(scope="module")
def cw_runs():
    """Tempered-Langevin runs of the +-1.5 bath at N = 100 (one compiled program, shared)."""
    data = gl.TwoPoint(1.5)
    proc = gl.VE("edm")
    lam = 2.25
    out = {}
    for b, h0 in ((0.9, 0.0), (0.9, 0.005), (0.9, -0.005), (1.2, 0.0)):
        sigma = math.sqrt(lam / b)  # VE time t = sigma, SNR = 1/sigma^2 = b / Lambda
        mom = bath.tempered_langevin(data, proc, sigma, 100, jax.random.PRNGKey(7), h0=h0, **RUN)
        out[(b, h0)] = mom
    return out


def test_tempered_langevin_matches_enumeration(cw_runs):
    # <M^2>, N Var(M), <H>/N, C/N and <M>(h0) within 4 SE of exact enumeration (N = 100,
    # Curie-Weiss J = 2.25; the field estimator's <M^2> carries the HS noise 1/(N beta s^2)).
    lam, n = 2.25, 100
    for (b, h0), mom in cw_runs.items():
        assert float(mom.acceptance) > 0.9
        st = bath.bath_statistics(mom)
        ref = cw_enumeration(b / lam, n, 1.5, h0)
        noise = 1 / (n * (b / lam) * lam)
        checks = [
            (st.m2, ref["m2"] + noise),
            (st.magnetization, ref["m"]),
            (st.susceptibility, ref["chi"]),
            (st.energy, ref["energy"]),
            (st.specific_heat, ref["heat"]),
        ]
        for est, exact in checks:
            assert abs(est.value - exact) < 4 * est.stderr, (b, h0, est, exact)


def test_fluctuation_response(cw_runs):
    # d<M>/dh0 by a central difference at h0 = +-0.005 (the same keys: paired chains, so the SE
    # is that of the per-chain differences) equals N Var(M) at h0 = 0 within 3 combined SE (the
    # difference's own curvature bias is 0.15% here, by enumeration), and the fluctuations are
    # within 4 SE of the exact 6.571 of enumeration (not 1/(1-b) = 10: N = 100 is small).
    st0 = bath.bath_statistics(cw_runs[(0.9, 0.0)])
    diff = (np.asarray(cw_runs[(0.9, 0.005)].m) - np.asarray(cw_runs[(0.9, -0.005)].m)) / 0.01
    resp, resp_se = diff.mean(), diff.std(ddof=1) / math.sqrt(diff.size)
    fluct = st0.susceptibility
    assert abs(resp - fluct.value) < 3 * math.hypot(resp_se, fluct.stderr)
    ref = cw_enumeration(0.9 / 2.25, 100, 1.5)["chi"]
    assert abs(fluct.value - ref) < 4 * fluct.stderr
    assert abs(resp - ref) < 4 * resp_se + 0.002 * ref


def test_processes_at_equal_snr_give_the_same_bath(cw_runs):
    # OU, VP and VE are one process up to a rescaling and a clock: at equal SNR the bath run is
    # the same computation (an implementation property, not a universality statement).
    ve = cw_runs[(0.9, 0.0)]
    for proc in (gl.OU(), gl.VP()):
        t = float(proc.t_of_snr(0.9 / 2.25))
        mom = bath.tempered_langevin(gl.TwoPoint(1.5), proc, t, 100, jax.random.PRNGKey(7), **RUN)
        np.testing.assert_allclose(np.asarray(mom.m2), np.asarray(ve.m2), rtol=1e-8)


@pytest.mark.slow
def test_landau_jump_two_deltas():
    # 3 v^2/|kappa4| = 3/2 for +-mu at any Lambda (beta_c = 1/Lambda given, and checked). Slow
    # tier (its compile); the fast cover is the exact jump below and the Gaussian control.
    for mu in (1.0, 2.0):
        lj = bath.landau_jump(gl.TwoPoint(mu), snr_c=1 / mu**2)
        assert lj.jump == pytest.approx(1.5, rel=1e-9)
        assert lj.kappa4 == pytest.approx(-2 * mu**4, rel=1e-9)
    with pytest.raises(ValueError, match="not the critical point"):
        bath.landau_jump(gl.TwoPoint(1.0), snr_c=0.9)


def test_jump_of_the_exact_bath_equals_landau():
    # The exact finite-N specific heat of +-1 (quadrature) on both sides of beta_c = 1, fitted by
    # the stated rule at N = 1e6: the jump equals the Landau 3/2 (measured 1.5001), and the
    # disordered side is O(1/N) small.
    n = 1e6
    eps = np.concatenate([-np.geomspace(0.01, 0.1, 3), np.geomspace(0.01, 0.1, 3)])
    th = jax.vmap(lambda e: bath.field_thermo(gl.TwoPoint(1.0), 1 + e, n))(jnp.asarray(eps))
    heat = np.asarray(th.specific_heat)
    jump = bath.fit_jump(eps, heat, np.full_like(heat, 1e-4), n)
    assert jump.value == pytest.approx(1.5, abs=0.01)
    assert heat[eps < 0].max() < 0.01


def test_exponent_fits_on_known_curves():
    # The N -> infinity Curie-Weiss curves (b = 1 + eps): <|M|> ~ eps^(1/2), chi = 1/(1-b)
    # exactly above, ~1/(2 eps) below; M(h0) at b = 1 ~ h0^(1/3); relaxation 1/(1 - b). With 0.1%
    # errors the rule's fits (with the leading correction) recover 1/2, 1, 3, 1 within 3 SE.
    n = 1e8
    eps = np.geomspace(1e-3, 0.1, 12)
    m, chi_below = cw_mean_field(1 + eps)
    fit = bath.fit_exponent_rule("beta", eps, m, 1e-3 * m, n)
    assert abs(float(fit.slope) - 0.5) < 3 * float(fit.stderr)
    chi_above = 1 / eps
    fit = bath.fit_exponent_rule("gamma", eps, chi_above, 1e-3 * chi_above, n)
    assert abs(float(fit.slope) - 1) < 3 * float(fit.stderr)
    fit = bath.fit_exponent_rule("gamma", eps, chi_below, 1e-3 * chi_below, n)
    assert abs(float(fit.slope) - 1) < 3 * float(fit.stderr)
    hs = np.geomspace(1e-5, 1e-2, 12)
    mh, _ = cw_mean_field(1.0, hs)
    fit = bath.fit_exponent_rule("delta", hs, mh, 1e-3 * mh, n)
    assert abs(float(fit.slope) - 3) < 3 * float(fit.stderr)
    tau = 1 / (eps * (1 - eps))
    fit = bath.fit_exponent_rule("znu", eps, tau, 1e-3 * tau, n)
    assert abs(float(fit.slope) - 1) < 3 * float(fit.stderr)
    # the fit can fail: a wrong exponent is far outside 3 SE
    fit = bath.fit_exponent_rule("beta", eps, eps**0.6, 1e-3 * eps**0.6, n)
    assert abs(float(fit.slope) - 0.5) > 10 * float(fit.stderr)


def test_scaling_relations():
    # Mean-field values satisfy Rushbrooke, Widom and z nu = 1 exactly; a set with beta = 0.4
    # (SE 0.01) breaks Rushbrooke and Widom by 10 SE.
    E = bath.Estimate
    mf = bath.scaling_relations(E(0.0, 0.0), E(0.5, 0.0), E(1.0, 0.0), E(3.0, 0.0), E(1.0, 0.0))
    assert [r.name for r in mf] == ["rushbrooke", "widom", "dynamic"]
    assert all(r.consistent and r.value == 0 for r in mf)
    bad = bath.scaling_relations(
        E(0.0, 0.0), E(0.4, 0.01), E(1.0, 0.01), E(3.0, 0.01), E(1.0, 0.01)
    )
    assert not bad[0].consistent and not bad[1].consistent and bad[2].consistent
    assert bad[0].stderr == pytest.approx(math.sqrt(4e-4 + 1e-4))
    with pytest.raises(ValueError, match="beta"):
        bath.scaling_relations(
            E(0.0, 0.0), E(float("nan"), 0.1), E(1.0, 0.0), E(3.0, 0.0), E(1.0, 0.0)
        )


def test_gaussian_data_have_no_transition():
    # The negative control (fast cover; critical_snr itself in the slow tier): Gaussian data have
    # a linear score, kappa4 = 0: no transition, an error instead of a number.
    g = gl.Gaussian(jnp.zeros(2), jnp.eye(2) * 4.0)
    with pytest.raises(ValueError, match="no transition"):
        bath.landau_jump(g, snr_c=0.25)


def test_data_families_and_axes():
    # The families' constructors: CW spins' Boltzmann weights, images with their negatives (mean
    # 0). (Their order-parameter axes, and the hypersphere's O(n) ones: slow tier.)
    spins = bath.curie_weiss_spins(4, 0.5)
    s = np.asarray(spins.points)
    w = np.exp(0.5 / 8 * s.sum(1) ** 2)
    np.testing.assert_allclose(np.asarray(spins.weights), w / w.sum(), rtol=1e-12)
    imgs = bath.with_negatives(gl.data.random_binary_images(jax.random.PRNGKey(0), 3, (4, 4)))
    assert imgs.images.shape == (6, 4, 4)
    np.testing.assert_allclose(np.asarray(imgs.mean()), 0.0, atol=1e-12)


def test_errors():
    data = gl.TwoPoint(1.0)
    key = jax.random.PRNGKey(0)
    kw = dict(n_chains=4, n_steps=2)
    A3, E3, A4 = np.array([1.0, 2.0, 3.0]), np.full(3, 0.1), np.array([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="n_sites"):
        bath.tempered_langevin(data, gl.OU(), 0.3, 0, key, **kw)
    with pytest.raises(ValueError, match="step"):
        bath.tempered_langevin(data, gl.OU(), 0.3, 10, key, step=2.0, **kw)
    with pytest.raises(ValueError, match="n_chains"):
        bath.tempered_langevin(data, gl.OU(), 0.3, 10, key, n_chains=1, n_steps=2)
    with pytest.raises(ValueError, match="h0"):
        bath.tempered_langevin(data, gl.OU(), 0.3, 10, key, h0=float("nan"), **kw)
    with pytest.raises(ValueError, match="kind"):
        bath.fit_exponent_rule("eta", A3, A3, E3, 1e6)
    with pytest.raises(ValueError, match="n_sites"):
        bath.fit_exponent_rule("beta", A3, A3, E3, 50)
    with pytest.raises(ValueError, match="n_spins"):
        bath.curie_weiss_spins(40, 0.5)
    with pytest.raises(ValueError, match="data"):
        bath.with_negatives(gl.TwoPoint(1.0))
    with pytest.raises(ValueError, match="yerr"):
        bath.fit_scaling(A4, A4, np.array([0.1, 0.1, 0.0, 0.1]))


# ----------------------------------------------------------------------------------------------
# slow tier: the exponents measured by simulation of the two-delta bath; other families
# ----------------------------------------------------------------------------------------------

SLOW_RUN = dict(n_chains=128, n_steps=4000, n_burn=1500, step=1.0)


def _run(data, snr, n, key, **kw):
    t = float(gl.OU().t_of_snr(snr))
    return bath.tempered_langevin(data, gl.OU(), t, n, key, **(SLOW_RUN | kw))


@pytest.mark.slow
def test_two_delta_exponents_by_simulation():
    # The +-1 bath at N = 1e6 (fit window |eps| in [0.01, 0.1] by the rule), 5 temperatures per
    # side, 128 chains of 4000 recorded steps: beta, gamma (fluctuations above, in-well below,
    # and the response), the specific-heat jump against Landau 3/2, all within 3 SE of mean field;
    # delta at eps = 0 and N = 1e8; z nu from the relaxation of a displaced start at N = 1e8.
    data = gl.TwoPoint(1.0)
    n = 1e6
    eps = np.geomspace(0.01, 0.1, 5)
    key = jax.random.PRNGKey(2026)
    stats = {}
    for i, e in enumerate(np.concatenate([eps, -eps])):
        stats[e] = bath.bath_statistics(_run(data, 1 + e, n, jax.random.fold_in(key, i)))
    m = np.array([[stats[e].order_parameter.value, stats[e].order_parameter.stderr] for e in eps])
    beta = bath.fit_exponent_rule("beta", eps, m[:, 0], m[:, 1], n)
    assert abs(float(beta.slope) - 0.5) < 3 * float(beta.stderr)
    chi = np.array([[stats[-e].susceptibility.value, stats[-e].susceptibility.stderr] for e in eps])
    gamma = bath.fit_exponent_rule("gamma", eps, chi[:, 0], chi[:, 1], n)
    assert abs(float(gamma.slope) - 1) < 3 * float(gamma.stderr)
    chi_b = np.array([list(stats[e].susceptibility_abs) for e in eps])
    gamma_b = bath.fit_exponent_rule("gamma", eps, chi_b[:, 0], chi_b[:, 1], n)
    assert abs(float(gamma_b.slope) - 1) < 3 * float(gamma_b.stderr)
    all_eps = np.concatenate([eps, -eps])
    heat = np.array([list(stats[e].specific_heat) for e in all_eps])
    jump = bath.fit_jump(all_eps, heat[:, 0], heat[:, 1], n)
    assert abs(jump.value - 1.5) < 3 * jump.stderr
    print(
        f"beta {float(beta.slope):.4f}+-{float(beta.stderr):.4f}  gamma above "
        f"{float(gamma.slope):.4f}+-{float(gamma.stderr):.4f}  gamma below "
        f"{float(gamma_b.slope):.4f}+-{float(gamma_b.stderr):.4f}  jump {jump.value:.4f}+-"
        f"{jump.stderr:.4f}"
    )

    # response = fluctuations at eps = -0.02 (paired chains, h0 = +-1e-4 so h0 chi << 1e-2)
    e, h = -0.02, 1e-4
    k = jax.random.fold_in(key, 99)
    mp = np.asarray(_run(data, 1 + e, n, k, h0=h).m)
    mm = np.asarray(_run(data, 1 + e, n, k, h0=-h).m)
    resp = (mp - mm) / (2 * h)
    fl = stats[-0.02] if -0.02 in stats else bath.bath_statistics(_run(data, 1 + e, n, k))
    r_se = resp.std(ddof=1) / math.sqrt(resp.size)
    assert abs(resp.mean() - fl.susceptibility.value) < 3 * math.hypot(
        r_se, fl.susceptibility.stderr
    )
    print(f"response {resp.mean():.3f}+-{r_se:.3f}  fluctuations {fl.susceptibility}")

    # delta: <M> against h0 at eps = 0, N = 1e8 (window h0 in [1e-4, 1e-2])
    n8 = 1e8
    hs = np.geomspace(1e-4, 1e-2, 5)
    mh = np.array(
        [
            list(
                bath.bath_statistics(
                    _run(data, 1.0, n8, jax.random.fold_in(key, 200 + i), h0=h)
                ).magnetization
            )
            for i, h in enumerate(hs)
        ]
    )
    delta = bath.fit_exponent_rule("delta", hs, mh[:, 0], mh[:, 1], n8)
    assert abs(float(delta.slope) - 3) < 3 * float(delta.stderr)
    print(f"delta {float(delta.slope):.4f}+-{float(delta.stderr):.4f}")

    # z nu: relaxation from M = 0.3 sqrt|eps| (linear regime) above the transition, N = 1e8,
    # unadjusted Langevin (the dynamics itself, not only its stationary law)
    taus = []
    for i, e in enumerate(eps):
        mom = _run(
            data,
            1 - e,
            n8,
            jax.random.fold_in(key, 300 + i),
            n_burn=0,
            m0=0.3 * math.sqrt(e),
            metropolis=False,
            step=0.2,
            n_steps=3000,
        )
        tau = bath.relaxation_time(mom, m_eq=0.0)
        # the amplitude too: 1/tau_r = S''(0) = beta (1 - beta), within 3 SE plus the Euler
        # scheme's rate bias (relative step * eps / 2)
        exact = 1 / ((1 - e) * e)
        assert abs(tau.value - exact) < 3 * tau.stderr + 0.1 * e * exact, (e, tau, exact)
        taus.append(list(tau))
    taus = np.array(taus)
    znu = bath.fit_exponent_rule("znu", eps, taus[:, 0], taus[:, 1], n8)
    assert abs(float(znu.slope) - 1) < 3 * float(znu.stderr)
    print(f"znu {float(znu.slope):.4f}+-{float(znu.stderr):.4f}")

    # the scaling relations on the measured exponents (alpha = 0: the jump is finite, 160 SE)
    assert jump.value > 10 * jump.stderr
    est = lambda f: bath.Estimate(float(f.slope), float(f.stderr))
    rel = bath.scaling_relations(
        bath.Estimate(0.0, 0.0), est(beta), est(gamma), est(delta), est(znu)
    )
    for r in rel:
        print(r)
        assert r.consistent


@pytest.mark.slow
def test_critical_points_and_jumps_of_the_families():
    # critical_snr (through critical_times) against closed forms, and each family's Landau jump:
    # +-mu: 1/Lambda and 3/2; the uniform 3-sphere of radius 2: beta_c = d/R^2 = 3/4, jump 5/2;
    # CW spins (n = 8, J = 0.5): beta_c = 1/Lambda, Lambda = E[(sum s)^2]/n; two 3x3 images with
    # their negatives; a 1-D Gaussian mixture, whose exact jump (quadrature, N = 1e6, the rule's fit)
    # equals its own Landau value with the (v + beta v')^2 term (0.9600; not 3/2).
    assert bath.critical_snr(gl.TwoPoint(2.0)) == pytest.approx(0.25, rel=1e-8)
    lj = bath.landau_jump(gl.Hypersphere(2.0, 3), snr_c=0.75)
    assert lj.jump == pytest.approx(2.5, rel=1e-6)
    ax = bath.order_parameter_axes(gl.Hypersphere(2.0, 4))  # O(n): n = d, scale R
    assert ax.basis.shape == (4, 4) and float(ax.scale) == pytest.approx(2.0)
    spins = bath.curie_weiss_spins(8, 0.5)
    ax = bath.order_parameter_axes(spins)
    np.testing.assert_allclose(np.asarray(ax.basis[0]), np.full(8, 8**-0.5), atol=1e-12)
    lam = float(np.linalg.eigvalsh(np.asarray(spins.covariance()))[-1])
    assert bath.critical_snr(spins) == pytest.approx(1 / lam, rel=1e-6)
    assert bath.landau_jump(spins).jump > 0
    imgs = bath.with_negatives(gl.data.random_binary_images(jax.random.PRNGKey(3), 2, (3, 3)))
    lam = float(np.linalg.eigvalsh(np.asarray(imgs.covariance()))[-1])
    assert bath.critical_snr(imgs) == pytest.approx(1 / lam, rel=1e-6)
    # constant norm: 3 v^2 / |kappa4| of the projections u . y_k (values +-a, +-b: not 3/2)
    u = np.asarray(bath.order_parameter_axes(imgs).basis[0])
    proj = np.asarray(imgs.images).reshape(4, -1) @ u
    v, k4 = np.mean(proj**2), np.mean(proj**4) - 3 * np.mean(proj**2) ** 2
    assert bath.landau_jump(imgs).jump == pytest.approx(3 * v**2 / abs(k4), rel=1e-6)
    mix = gl.GaussianMixture(jnp.array([[-1.0], [1.0]]), jnp.array([0.2, 0.2]))
    lj = bath.landau_jump(mix)
    n = 1e6
    eps = np.concatenate([-np.geomspace(0.01, 0.1, 6), np.geomspace(0.01, 0.1, 6)])
    th = jax.vmap(lambda e: bath.field_thermo(mix, lj.snr_c * (1 + e), n))(jnp.asarray(eps))
    heat = np.asarray(th.specific_heat)
    jump = bath.fit_jump(eps, heat, np.full_like(heat, 1e-4), n)
    assert jump.value == pytest.approx(lj.jump, abs=0.01)
    assert abs(lj.jump - 1.5) > 0.1  # the v' term matters: the jump is not universal
    with pytest.raises(ValueError, match="no transition"):
        bath.critical_snr(gl.Gaussian(jnp.zeros(2), jnp.eye(2) * 4.0))
