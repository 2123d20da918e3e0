"""Ornstein–Zernike estimators (`docs/theory/lattice-exponents.md`): xi, chi, eta, nu, Fisher.

Fast tier: the closed-form structure factor of the linearised patch model (nu = 1/2, eta = 0,
gamma = 1 exactly), exact Gaussian fields drawn by FFT as the stochastic check (fixed seeds,
3-SE tolerances), negative controls (a non-Ornstein–Zernike spectrum, an Ising-like divergence)
and the relations. Slow tier: the frozen-time patch sampler, see ``scripts/lattice_exponents.py``.
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gltheory import ornstein_zernike as oz, spatial
from gltheory.bath import Estimate

K = 3


def _sampled_S(key, S, n):
    """Mean and standard error of the periodogram of n exact Gaussian fields."""
    x = oz.gaussian_field(key, S, n)
    ax = tuple(range(-S.ndim, 0))
    per = np.asarray(jnp.abs(jnp.fft.fftn(x, axes=ax)) ** 2 / S.size)
    return per.mean(0), per.std(0, ddof=1) / math.sqrt(n)


@pytest.mark.parametrize("shape", [(24, 24), (20, 28), (64,)])
@pytest.mark.parametrize("window", [3, 5])
def test_linear_structure_factor_is_exactly_ornstein_zernike(shape, window):
    u = np.asarray(oz.window_q2(shape, window))
    q2 = sum(
        np.asarray(q) ** 2
        for q in np.meshgrid(*[2 * np.pi * np.fft.fftfreq(n) for n in shape], indexing="ij")
    )
    small = (q2 > 0) & (q2 < 0.05)
    # u = q^2 + O(q^4): the window's lattice q^2
    np.testing.assert_allclose(u[small], q2[small], rtol=0.02)
    for G, T in ((0.3, 1.0), (0.9, 1e-2), (0.99, 1e-3)):
        S = oz.linear_structure_factor(G, window, shape, T)
        xi, chi = oz.linear_correlation_length(G, window, T)
        np.testing.assert_allclose(np.asarray(S), chi / (1 + xi**2 * u), rtol=1e-12)
        fit = oz.oz_fit(S, 1e-3 * S, window=window)
        assert fit.xi == pytest.approx(xi, rel=1e-6)
        assert fit.chi == pytest.approx(chi, rel=1e-6)
        assert fit.q_max == pytest.approx(np.pi / window)
        # one of each pair +-q: a 24 x 24 lattice has 24 independent q with |q| <= pi/3
        if shape == (24, 24) and window == 3:
            assert fit.n == 24


def test_eta_is_zero_for_ornstein_zernike_and_seen_when_not():
    shape = (48, 48)
    S = oz.linear_structure_factor(0.99, K, shape, 1e-3)
    e = oz.eta_fit(S, 1e-3 * S, window=K)
    assert abs(e.eta) < 1e-5 and e.m == pytest.approx(1 / 33.0, rel=1e-4)
    # negative control: a spectrum with eta = 1/4 (2-D Ising) near the transition
    u = np.array(oz.window_q2(shape, K))
    u[0, 0] = 1.0  # q = 0 is not fitted
    S_ising = (0.01 + u) ** (-(2 - 0.25) / 2)
    e = oz.eta_fit(S_ising, 1e-3 * S_ising, window=K)
    assert e.eta == pytest.approx(0.25, abs=1e-5) and e.m == pytest.approx(0.01, rel=1e-4)


def test_nu_gamma_from_the_exact_linear_model():
    G = np.array([0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
    xi, chi = np.array([oz.linear_correlation_length(g, K, 1e-2) for g in G]).T
    f = oz.fit_divergence(G, xi, 1e-3 * xi)  # G_c fitted
    assert f.exponent == pytest.approx(0.5, abs=1e-4) and f.critical == pytest.approx(1.0, abs=1e-4)
    assert f.n == 6 and f.eps_range[1] <= 0.5  # G = 0.6 (eps = 2/3) is outside the rule
    f = oz.fit_divergence(G, chi, 1e-3 * chi, reduced="direct")
    assert f.exponent == pytest.approx(1.0, abs=1e-4) and f.critical == pytest.approx(1.0, abs=1e-4)
    f = oz.fit_divergence(G, xi, 1e-3 * xi, critical=1.0)
    assert f.exponent == pytest.approx(0.5, abs=1e-6) and f.critical_se == 0.0
    f = oz.fit_divergence(G, xi, 1e-3 * xi, correction=False)  # exact power: no correction
    assert f.exponent == pytest.approx(0.5, abs=1e-6) and f.critical == pytest.approx(1.0, abs=1e-6)
    # negative control: an Ising-like xi ~ eps^-1 is not read as mean field
    f = oz.fit_divergence(G, xi**2, 1e-3 * xi**2)
    assert abs(f.exponent - 0.5) > 20 * f.exponent_se and f.exponent == pytest.approx(1.0, abs=1e-4)


def test_exact_gaussian_field_oz_and_eta_within_errors():
    """FFT-sampled Gaussian fields of the linear model: the spectrum; xi, chi and eta = 0 within 3 SE."""
    shape, T, G = (32, 32), 1e-2, 0.97
    S = oz.linear_structure_factor(G, K, shape, T)
    x = oz.gaussian_field(jax.random.key(17), S, 256)
    assert x.shape == (256, *shape)
    per = np.abs(np.fft.fft2(np.asarray(x))) ** 2 / S.size  # = field.structure_factor per field
    Sm, Se = per.mean(0), per.std(0, ddof=1) / math.sqrt(256)
    ratio = Sm / np.asarray(S)
    # the periodogram average: mean 1, relative SE 1/16 per q (sqrt(2)/16 on the 4 real q)
    assert abs(ratio.mean() - 1) < 3 * math.sqrt(2 / 256 / ratio.size)
    assert np.abs(ratio - 1).max() < 6 * math.sqrt(2 / 256)
    f = oz.oz_fit(Sm, Se, window=K)
    xi, chi = oz.linear_correlation_length(G, K, T)
    assert abs(f.xi - xi) < 3 * f.xi_se < 0.3 * xi and abs(f.chi - chi) < 3 * f.chi_se
    assert f.xi <= shape[0] / 8
    eta = oz.eta_fit(Sm, Se, window=K)
    assert abs(eta.eta) < 3 * eta.eta_se < 0.5


@pytest.mark.slow
def test_exact_gaussian_fields_give_the_exponents_within_errors():
    """FFT-sampled Gaussian fields of the linear model at 8 couplings: nu, gamma, eta, Fisher (~11 s)."""
    shape, T, n = (48, 48), 1e-2, 1024
    G = np.array([0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97])
    keys = jax.random.split(jax.random.key(17), G.size)
    fits, spectra = [], []
    for g, key in zip(G, keys, strict=True):
        Sm, Se = _sampled_S(key, oz.linear_structure_factor(g, K, shape, T), n)
        f = oz.oz_fit(Sm, Se, window=K)
        xi, chi = oz.linear_correlation_length(g, K, T)
        assert abs(f.xi - xi) < 3 * f.xi_se and abs(f.chi - chi) < 3 * f.chi_se
        assert f.xi <= shape[0] / 8
        fits.append(f)
        spectra.append((Sm, Se))
    xi, xse, chi, cse = (
        np.array([getattr(f, a) for f in fits]) for a in ("xi", "xi_se", "chi", "chi_se")
    )
    nu = oz.fit_divergence(G, xi, xse)  # G_c fitted
    gamma = oz.fit_divergence(G, chi, cse, reduced="direct")
    assert abs(nu.exponent - 0.5) < 3 * nu.exponent_se < 0.3
    assert abs(nu.critical - 1.0) < 3 * nu.critical_se < 0.05
    assert abs(gamma.exponent - 1.0) < 3 * gamma.exponent_se < 0.5
    nu_known = oz.fit_divergence(G, xi, xse, critical=1.0)  # the mean-field G_c
    assert abs(nu_known.exponent - 0.5) < 3 * nu_known.exponent_se < 0.1
    eta = oz.eta_fit(*spectra[-1], window=K)  # closest to the transition with xi <= L / 8
    assert abs(eta.eta) < 3 * eta.eta_se < 0.3
    rel = oz.lattice_relations(
        Estimate(gamma.exponent, gamma.exponent_se),
        Estimate(nu.exponent, nu.exponent_se),
        Estimate(eta.eta, eta.eta_se),
    )
    assert rel[0].name == "fisher" and rel[0].consistent
    assert rel[1].name == "hyperscaling" and not rel[1].consistent


def test_lattice_relations_tell_mean_field_apart():
    mf = oz.lattice_relations(Estimate(1.0, 0.01), Estimate(0.5, 0.01), Estimate(0.0, 0.01))
    assert [r.name for r in mf] == ["fisher", "hyperscaling"]
    assert mf[0].consistent and not mf[1].consistent and mf[1].value == pytest.approx(1.0)
    assert mf[1].stderr == pytest.approx(0.02)
    d4 = oz.lattice_relations(
        Estimate(1.0, 0.01), Estimate(0.5, 0.01), Estimate(0.0, 0.01), lattice_ndim=4
    )
    assert d4[1].consistent
    ising = oz.lattice_relations(Estimate(1.75, 0.0), Estimate(1.0, 0.0), Estimate(0.25, 0.0))
    assert all(r.consistent for r in ising)
    wrong = oz.lattice_relations(Estimate(1.0, 0.01), Estimate(1.0, 0.01), Estimate(0.0, 0.01))
    assert not wrong[0].consistent


def test_hartree_coupling_first_order_shift_and_no_ordering():
    shape = (24, 24)
    q = 2 * np.pi * np.fft.fftfreq(24)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(q == 0, K, np.sin(K * q / 2) / np.sin(q / 2))
    kh = np.multiply.outer(d, d)
    for G in (0.5, 0.9, 0.99):
        # first order in T: 1 - G_eff = 1 - G + T G^2 <(K phi)^2>_T=1 / k^D
        c = G**2 * np.mean(kh**2 / (1 - G * kh / K**2)) / K**2
        ge = oz.hartree_coupling(G, 1e-7, K, shape)
        assert (G - ge) / 1e-7 == pytest.approx(c, rel=1e-3)
    assert oz.hartree_coupling(0.9, 1e-7, K, shape) > oz.hartree_coupling(0.9, 1e-2, K, shape)
    assert oz.hartree_coupling(3.0, 1.0, K, shape) < 1  # the approximation never orders


def test_ginzburg_distance_is_linear_in_temperature():
    g1 = oz.ginzburg_distance(1.0, 3)
    assert g1 == pytest.approx(18 / (math.pi * (8 / 9)))
    assert oz.ginzburg_distance(1e-3, 3) == pytest.approx(1e-3 * g1)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: oz.linear_structure_factor(1.0, 3, (8, 8)), "coupling"),
        (lambda: oz.linear_structure_factor(0.5, 4, (8, 8)), "window"),
        (lambda: oz.linear_structure_factor(0.5, 3, (8, 8), 0.0), "temperature"),
        (lambda: oz.window_q2((8, 8, 8), 3), "lattice_shape"),
        (lambda: oz.oz_fit(np.ones((8, 8)), np.ones((8, 7))), "S_err"),
        (lambda: oz.oz_fit(np.ones((8, 8)), np.ones((8, 8)), q_max=-1.0), "q_max"),
        (lambda: oz.oz_fit(np.ones((8, 8)), np.ones((8, 8)), window=3, q_max=0.1), "oz_fit"),
        (lambda: oz.fit_divergence([0.5, 0.6], [1.0, 2.0], [0.1, 0.1], critical=0.55), "critical"),
        (lambda: oz.fit_divergence([0.5, 0.6], [1.0, 2.0], [0.1, 0.1], reduced="x"), "reduced"),
        (lambda: oz.fit_divergence([0.5, 0.6], [1.0, -2.0], [0.1, 0.1]), "coupling"),
        # a wrong type: the library as users call it (without the suite's type checker)
        (
            lambda: inspect.unwrap(oz.lattice_relations)(1.0, Estimate(0.5, 0.1), Estimate(0, 0)),
            "gamma",
        ),
        (lambda: oz.gaussian_field(jax.random.key(0), -np.ones(8), 2), "spectrum"),
    ],
)
def test_bad_arguments_name_themselves(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.slow
@pytest.mark.parametrize("G, T", [(0.9, 1e-4), (0.94, 1e-2)])
def test_patch_sampler_at_small_temperature_is_ornstein_zernike(G, T):
    """lattice_langevin at L = 24 (k = 3): xi, chi of the Hartree coupling within 3 SE and eta = 0
    within 3 SE. At T = 1e-4 that is the linear model (the shift of 1 - G is 2.8 T, 0.3 % of chi);
    at T = 1e-2 the linear model is 35 % off and rejected (5-10 s each)."""
    run = spatial.lattice_langevin(
        jax.random.key(5),
        G,
        window=K,
        cells=8,
        n_replicas=32,
        n_burn=500,
        n_samples=1500,
        thin=2,
        dt=0.1,
        temperature=T,
        start="disordered",
    )
    st = spatial.lattice_statistics(run)
    f = oz.oz_fit(st.structure_factor, st.structure_factor_se, window=K)
    xi, chi = oz.linear_correlation_length(oz.hartree_coupling(G, T, K, (24, 24)), K, T)
    assert abs(f.xi - xi) < 3 * f.xi_se < 0.1 * xi
    assert abs(f.chi - chi) < 3 * f.chi_se < 0.1 * chi
    xi_lin, chi_lin = oz.linear_correlation_length(G, K, T)
    if T >= 1e-2:
        assert abs(f.chi - chi_lin) > 10 * f.chi_se
    else:
        assert abs(f.chi - chi_lin) < 3 * f.chi_se
    eta = oz.eta_fit(st.structure_factor, st.structure_factor_se, window=K)
    assert abs(eta.eta) < 3 * eta.eta_se
