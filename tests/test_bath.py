"""The generative bath model (`docs/theory/meanfield.md#generative-bath`): exact field law, N -> infinity, finite-size scaling."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gammaln

import gltheory as gl
from gltheory import bath

TWO = gl.TwoPoint(1.0)


def curie_weiss_field_moments(sigma2, n):
    """Oracle: <x^2>, <x^4> of the bath field for +-1 sites by enumerating the Curie-Weiss model.

    The sites' magnetisation m = (2k - N)/N has weight C(N, k) exp(beta N m^2 / 2); the field is
    x = m + N(0, sigma^2/N), so <x^2> = <m^2> + s2 and <x^4> = <m^4> + 6 <m^2> s2 + 3 s2^2.
    """
    beta = 1 / sigma2
    k = np.arange(n + 1)
    m = (2 * k - n) / n
    lw = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + beta * n * m**2 / 2
    w = np.exp(lw - lw.max())
    w /= w.sum()
    m2, m4 = (w * m**2).sum(), (w * m**4).sum()
    s2 = sigma2 / n
    return m2 + s2, m4 + 6 * m2 * s2 + 3 * s2**2


def cw_magnetisation(sigma2):
    """Independent oracle: the positive root of M = tanh(M / sigma^2)."""
    return brentq(lambda m: m - math.tanh(m / sigma2), 1e-9, 1.0, xtol=1e-15)


@pytest.mark.parametrize("sigma2", [0.8, 1.0, 1.5])
def test_field_law_equals_curie_weiss_enumeration(sigma2):
    # Quadrature of p_sigma^N vs exact enumeration of the N-site model: relative 1e-10.
    for n in (10, 100, 3000):
        f = bath.field(TWO, math.sqrt(sigma2), n)
        x2, x4 = curie_weiss_field_moments(sigma2, n)
        assert float(f.m2) == pytest.approx(x2, rel=1e-10)
        assert float(f.m4) == pytest.approx(x4, rel=1e-10)


def test_quadrature_normalisation():
    # The normalised density integrates to 1, and ln Z matches a brute-force fine grid.
    for sigma, n in ((0.7, 50.0), (1.0, 1e4), (1.3, 1e5)):
        f = bath.field(TWO, sigma, n)
        h = f.grid[1] - f.grid[0]
        p = jnp.exp(f.log_density)
        # ln-density round-off is ~ N * eps, hence 1e-10 rather than 1e-16
        assert float(h * (p.sum() - 0.5 * (p[0] + p[-1]))) == pytest.approx(1.0, abs=1e-10)
        g = jnp.linspace(-4.0, 4.0, 400_001)
        lp = -n * bath.action(TWO, sigma, g)
        log_z = jax.nn.logsumexp(lp) + jnp.log(g[1] - g[0])
        assert float(f.log_norm) == pytest.approx(float(log_z), abs=1e-8)


def test_vmap_over_sigma_matches_loop():
    sig = jnp.array([0.8, 1.0, 1.3])
    batched = jax.vmap(lambda s: bath.field(TWO, s, 500.0).binder)(sig)
    loop = [float(bath.field(TWO, float(s), 500.0).binder) for s in sig]
    np.testing.assert_allclose(batched, loop, rtol=1e-12)


def test_action_is_minus_log_prob_of_ve_marginal():
    proc = gl.VE("edm")
    x = jnp.linspace(-3.0, 3.0, 7)
    for sigma in (0.5, 1.0, 2.0):
        ref = -gl.log_prob(TWO, proc, x[:, None], sigma)
        np.testing.assert_allclose(bath.action(TWO, sigma, x), ref, rtol=1e-12)


@pytest.mark.parametrize("sigma2", [0.5, 0.8, 0.9])
def test_large_n_limit_is_mean_field(sigma2):
    # Below sigma_c the order parameter <|x|> -> M = tanh(M / sigma^2), with an O(1/N)
    # correction: N (<|x|> - M) is constant to 1.5% over N = 1e4..1e6 (measured -0.229, -3.03,
    # -11.1 at sigma^2 = 0.5, 0.8, 0.9) and extrapolating a + c/N from N = 1e5, 1e6 recovers M
    # to 1e-7 (measured |a - M| <= 1.3e-8).
    m_exact = cw_magnetisation(sigma2)
    assert float(bath.saddle_point(TWO, math.sqrt(sigma2))) == pytest.approx(m_exact, abs=1e-12)
    ns = np.array([1e4, 1e5, 1e6])
    ma = np.asarray(
        jax.vmap(lambda n: bath.field(TWO, math.sqrt(sigma2), n).mean_abs)(jnp.asarray(ns))
    )
    scaled = (ma - m_exact) * ns
    assert np.all(scaled < 0)
    assert np.ptp(scaled) < 0.015 * abs(scaled[-1])
    a = (ma[2] * ns[2] - ma[1] * ns[1]) / (ns[2] - ns[1])
    assert abs(a - m_exact) < 1e-7
    assert abs(ma[2] - m_exact) < 2e-5


def test_saddle_point_vanishes_above_sigma_c():
    for sigma in (1.0, 1.2, 2.0):
        assert float(bath.saddle_point(TWO, sigma)) < 1e-3
        f = bath.field(TWO, sigma, 1e6)
        assert float(f.mean_abs) < 0.05  # N^{-1/4} = 0.03 at sigma_c, N^{-1/2} above


def test_saddle_point_general_data_is_self_consistent():
    # A two-cluster Gaussian mixture: the N -> infinity field solves x = m(x).
    data = gl.GaussianMixture(
        jnp.array([[-1.5], [1.5]]), jnp.array([0.25, 0.25]), jnp.array([0.5, 0.5])
    )
    sigma = 0.8
    x = float(bath.saddle_point(data, sigma))
    m = float(gl.denoiser(data, gl.VE("edm"), jnp.array([[x]]), sigma)[0, 0])
    assert x > 0.5
    assert x == pytest.approx(m, abs=1e-10)
    f = bath.field(data, sigma, 1e5)
    assert float(f.mean_abs) == pytest.approx(x, abs=1e-4)


def test_finite_size_scaling_exponents():
    # <x^2> ~ N^{-1/2} at sigma_c (Curie-Weiss criticality) vs N^{-1} above it.
    # Measured log-log slopes over N in [1e2, 1e5]: -0.508 at sigma^2 = 1, -0.996 at 1.5;
    # <|x|> at sigma_c: -0.254.
    ns = jnp.asarray(np.logspace(2, 5, 7))

    def slope(sigma2):
        m2 = jax.vmap(lambda n: bath.field(TWO, math.sqrt(sigma2), n).m2)(ns)
        return np.polyfit(np.log(np.asarray(ns)), np.log(np.asarray(m2)), 1)[0]

    assert slope(1.0) == pytest.approx(-0.5, abs=0.05)
    # so the order parameter at sigma_c falls like N^{-1/4}
    ma = jax.vmap(lambda n: bath.field(TWO, 1.0, n).mean_abs)(ns)
    slope_abs = np.polyfit(np.log(np.asarray(ns)), np.log(np.asarray(ma)), 1)[0]
    assert slope_abs == pytest.approx(-0.25, abs=0.025)
    assert slope(1.5) == pytest.approx(-1.0, abs=0.05)
    # the amplitude: <x^2> -> sqrt(12/N) Gamma(3/4)/Gamma(1/4) (relative 2e-3 at N = 1e5)
    n = 1e5
    amp = math.sqrt(12 / n) * math.gamma(0.75) / math.gamma(0.25)
    assert float(bath.field(TWO, 1.0, n).m2) == pytest.approx(amp, rel=5e-3)
    # susceptibility N Var(x): ~ N^{1/2} at sigma_c, finite (-> sigma^2/(1-beta) = 4.5) above
    chi_hi = float(bath.field(TWO, math.sqrt(1.5), 1e5).susceptibility)
    assert chi_hi == pytest.approx(1.5 / (1 - 1 / 1.5), rel=1e-3)


def test_binder_cumulant_crossing_at_sigma_c():
    # Crossing of U_4(N) and U_4(4N): measured 1.0038 (N=100), 1.00038 (N=1000) -> sigma_c^2=1.
    c1 = float(bath.binder_crossing(TWO, 100, 400, (0.8, 1.2), iterations=30))
    c2 = float(bath.binder_crossing(TWO, 1000, 4000, (0.8, 1.2), iterations=30))
    assert abs(c1 - 1) < 1e-2
    assert abs(c2 - 1) < 1e-3
    assert abs(c2 - 1) < abs(c1 - 1) / 5  # the shift shrinks like 1/N
    u_inf = float(bath.field(TWO, 1.0, 1e8).binder)
    assert u_inf == pytest.approx(bath.CW_CRITICAL_BINDER, abs=1e-4)
    # the Binder cumulant orders the phases: ~0 above sigma_c, ~2/3 below
    assert float(bath.field(TWO, math.sqrt(1.5), 1e4).binder) < 1e-3
    assert float(bath.field(TWO, math.sqrt(0.8), 1e4).binder) == pytest.approx(2 / 3, abs=1e-3)


@pytest.mark.parametrize("sigma2", [1.0, 1.5])
def test_langevin_and_gibbs_reproduce_field_statistics(key, sigma2):
    # N = 100 sites, 500 chains: MALA on the field and the explicit N-site Gibbs sampler give
    # <x^2> and <|x|> within 4 standard errors of the quadrature (measured |z| <= 1.95).
    s, n = math.sqrt(sigma2), 100
    f = bath.field(TWO, s, n)
    x_l = np.asarray(bath.langevin(TWO, s, n, key, n_chains=500, n_steps=200, step=0.2))
    x_g, _ = bath.gibbs(s, n, key, n_chains=500, n_sweeps=60)
    for x in (x_l, np.asarray(x_g)):
        for obs, ref in ((x**2, f.m2), (np.abs(x), f.mean_abs)):
            se = obs.std() / math.sqrt(obs.size)
            assert abs(obs.mean() - float(ref)) < 4 * se


def test_errors():
    with pytest.raises(ValueError, match="one-dimensional"):
        bath.field(gl.TwoPoint(1.0, dim=2), 1.0, 10)
    with pytest.raises(ValueError, match="sigma"):
        bath.field(TWO, -1.0, 10)
    with pytest.raises(ValueError, match="n_sites"):
        bath.field(TWO, 1.0, 0)
    with pytest.raises(ValueError, match="n_grid"):
        bath.field(TWO, 1.0, 10, n_grid=3)
    with pytest.raises(ValueError, match="do not cross"):
        bath.binder_crossing(TWO, 100, 400, (1.5, 2.0), iterations=2)
    with pytest.raises(ValueError, match="step"):
        bath.langevin(TWO, 1.0, 10, jax.random.PRNGKey(0), n_chains=2, n_steps=2, step=3.0)
    with pytest.raises(ValueError, match="n_sites"):
        bath.gibbs(1.0, 0, jax.random.PRNGKey(0), n_chains=2, n_sweeps=2)
