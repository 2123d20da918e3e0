"""Gaussian late start (`docs/theory/meanfield.md#late-start`, `docs/theory/meanfield.md#late-start-diagnostics`)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import latestart as ls

OU = gl.OU()
# score critical time of +-1 under OU (`docs/theory/critical-times.md#closed-forms`)
T_C = 0.5 * math.log(2)


def test_late_start_draw_has_matched_moments(key):
    data = gl.GaussianMixture(jnp.array([[1.0, -1.0], [-2.0, 0.5]]), jnp.array([0.3, 0.1]))
    t0 = 0.4
    x = ls.gaussian_late_start(data, OU, key, 20_000, t0)
    assert x.shape == (20_000, 2)
    mean, cov = ls.moments(data, OU, t0)
    a, b2 = float(OU.a(t0)), float(OU.b2(t0))
    np.testing.assert_allclose(mean, a * data.mean(), rtol=1e-12)
    np.testing.assert_allclose(cov, a**2 * data.covariance() + b2 * np.eye(2), rtol=1e-12)
    se = np.sqrt(np.diag(cov) / x.shape[0])
    assert np.all(np.abs(x.mean(0) - mean) < 4 * se)
    # event shape is restored for lattice data
    img = gl.data.uniform_images((3, 3))
    assert ls.gaussian_late_start(img, OU, key, 5, 0.5).shape == (5, 3, 3)


@pytest.mark.parametrize("t0", [0.05, 0.5, 3.0])
def test_gaussian_data_late_start_is_exact(key, t0):
    # `docs/theory/meanfield.md#late-start-diagnostics`: Gaussian data, exact PF-ODE (Heun, 40 log-SNR steps) from any t0 gives
    # the marginal p_{t1} (t1 = 1e-3) within 3 standard errors (n = 4000) for every
    # mean and covariance entry.
    data = gl.Gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.5, 0.6], [0.6, 0.8]]))
    t1 = 1e-3
    ts = gl.time_grid(OU, 40, kind="log_snr", t_max=t0, t_min=t1)
    n = 4000
    sol = ls.sample(lambda x, t: gl.score(data, OU, x, t), OU, key, data, n, ts=ts, method="heun")
    x = np.asarray(sol.x)
    mean, cov = (np.asarray(v) for v in ls.moments(data, OU, t1))
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 3 * se_mean)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(x.T) - cov) < 3 * se_cov)
    # and the data moments themselves (t1 is 1e-3 away from the data)
    assert np.all(np.abs(x.mean(0) - np.asarray(data.mean())) < 3 * se_mean + 2e-3)


def test_two_point_kl_reference_values():
    # `docs/theory/meanfield.md#late-start-diagnostics` (values given to 3 significant figures): KL(p_t || N(0,1)), +-1, OU.
    # Measured: 5.0945e-2, 9.4040e-3, 2.1808e-3, 2.3896e-4, 2.9657e-5, 5.1673e-7.
    data = gl.TwoPoint(1.0)
    ref = {0.2: 5.09e-2, 0.35: 9.40e-3, 0.5: 2.18e-3, 0.75: 2.39e-4, 1.0: 2.97e-5, 1.5: 5.17e-7}
    mean, cov = ls.moments(data, OU, 0.7)
    np.testing.assert_allclose(mean, [0.0], atol=1e-15)
    np.testing.assert_allclose(cov, [[1.0]], rtol=1e-12)  # q_t = N(0, 1) for +-1 under OU
    kls = []
    for t, r in ref.items():
        kl = float(ls.kl(data, OU, t))
        fine = float(ls.kl(data, OU, t, n_grid=16001, width=20.0))
        assert kl == pytest.approx(fine, rel=1e-9)  # quadrature converged
        assert float(f"{kl:.2e}") == pytest.approx(r, rel=1e-12) or kl == pytest.approx(r, rel=1e-3)
        kls.append(kl)
    assert np.all(np.diff(kls) < 0)


def test_kl_is_zero_for_gaussian_data_and_matches_closed_form():
    g = gl.Gaussian(jnp.array([0.3]), jnp.array([[2.0]]))
    assert abs(float(ls.kl(g, OU, 0.3))) < 1e-12
    assert abs(float(ls.kl(g, OU, 0.3, reverse=True))) < 1e-12
    # a Gaussian mixture with one component weight ~ 1 is also exact
    gm = gl.GaussianMixture(jnp.array([[0.3], [5.0]]), jnp.array([2.0, 1.0]), jnp.array([1.0, 0.0]))
    assert abs(float(ls.kl(gm, OU, 0.3))) < 1e-12


def test_late_start_error_vs_t0():
    # Two points +-1 with w = 0.8, exact PF-ODE to t1 = 1e-3: the class fraction lost by the late
    # start and KL(q_t0 || p_t0) (= the KL of the late-start samples at every later time).
    # Measured fraction errors: -2.0e-2 (t0 = 0.05), -9.7e-3 (0.2), -5.4e-3 (t_c), -1.6e-3 (2 t_c),
    # -1.2e-4 (1.5); KL: 0.97, 0.072, 0.016, 1.0e-3, 6.4e-6.
    data = gl.TwoPoint(1.0, weight=0.8)
    t0s = np.array([0.05, 0.2, T_C, 2 * T_C, 1.5])
    err = np.array([float(ls.fraction(data, OU, t0, t1=1e-3).error) for t0 in t0s])
    kl = np.array([float(ls.kl(data, OU, t0, reverse=True)) for t0 in t0s])
    frac = ls.fraction(data, OU, 0.5, t1=1e-3)
    assert float(frac.exact) == pytest.approx(0.8, abs=1e-12)
    assert np.all(err < 0) and np.all(np.diff(np.abs(err)) < 0)
    assert np.all(np.diff(kl) < 0)
    assert abs(err[-1]) < 2e-4 and kl[-1] < 1e-5  # well above t_c: negligible
    assert abs(err[0]) > 1e-2 and kl[0] > 0.5  # well below t_c: a visible bias
    assert abs(err[2]) == pytest.approx(5.4e-3, rel=0.02)


def test_late_start_fraction_matches_sampler(key):
    # Monte Carlo oracle: late-start PF-ODE samples (n = 20000) land above 0 with the predicted
    # probability within 3 SE; the predicted boundary is mapped to 0 by the flow.
    data = gl.TwoPoint(1.0, weight=0.8)
    t0, t1 = 0.05, 1e-3
    pred = ls.fraction(data, OU, t0, t1=t1)
    ts = gl.time_grid(OU, 64, kind="log_snr", t_max=t0, t_min=t1)

    def score_fn(x, t):
        return gl.score(data, OU, x, t)

    n = 20_000
    sol = ls.sample(score_fn, OU, key, data, n, ts=ts, method="heun")
    frac = float(np.mean(np.asarray(sol.x[:, 0]) > 0))
    se = math.sqrt(float(pred.late_start) * (1 - float(pred.late_start)) / n)
    assert abs(frac - float(pred.late_start)) < 3 * se
    assert abs(frac - 0.8) > 5 * se  # the late start visibly loses class balance here
    xi = float(pred.boundary)
    ends = gl.sample(
        score_fn, OU, key, jnp.array([[xi - 1e-3], [xi + 1e-3]]), ts=ts, method="heun"
    ).x
    assert float(ends[0, 0]) < 0 < float(ends[1, 0])


def test_errors(key):
    g2 = gl.Gaussian(jnp.zeros(2), jnp.eye(2))
    with pytest.raises(ValueError, match="one-dimensional"):
        ls.kl(g2, OU, 0.5)
    with pytest.raises(ValueError, match="n_grid"):
        ls.kl(gl.TwoPoint(1.0), OU, 1e-4)
    with pytest.raises(ValueError, match="t0"):
        ls.gaussian_late_start(g2, OU, key, 3, -1.0)
    with pytest.raises(ValueError, match="n must"):
        ls.gaussian_late_start(g2, OU, key, 0, 0.5)
    with pytest.raises(ValueError, match="earlier"):
        ls.fraction(gl.TwoPoint(1.0), OU, 0.5, t1=0.6)
    with pytest.raises(ValueError, match="process"):
        ls.moments(g2, "OU", 0.5)
    with pytest.raises(ValueError, match="ts"):
        ls.sample(lambda x, t: x, OU, key, g2, 3, ts=jnp.array([0.5]))
