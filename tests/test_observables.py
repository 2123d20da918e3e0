"""Observables: cloning probability and class susceptibility (simulation vs quadrature vs
scipy), scaling-limit numbers of `docs/theory/cloning.md#kick-response`, order parameter and Binder cumulant."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import gltheory as gl
from gltheory import observables as ob

# ----------------------------------------------------------------------------------------------
# the Monte Carlo setting: two Gaussian clusters +-m in d = 16, |m|^2 = d, sigma^2 = 1, OU
# (Biroli et al.'s setting; t_S = ln(d)/2 sits exactly on the grid at index 60)
# ----------------------------------------------------------------------------------------------

D = 16
M_NORM = math.sqrt(D)
T_S = 0.5 * math.log(D)
I_TS = 60
N_MC = 3000
BRANCH = [40, I_TS, 80]  # t = 2.61, t_S = 1.386, 0.928


class _Setting:
    def __init__(self):
        self.proc = gl.OU(T=5.0)
        self.m = jnp.ones(D)
        self.data = self.mixture(0.5)
        data, proc = self.data, self.proc
        self.score_fn = lambda x, t: gl.score(data, proc, x, t)
        self.ts = jnp.concatenate(
            [jnp.linspace(5.0, T_S, I_TS + 1), jnp.linspace(T_S, 0.01, 61)[1:]]
        )
        self.classify = ob.sign_classifier(self.m)

    def mixture(self, w_plus):
        return gl.GaussianMixture(
            jnp.stack([self.m, -self.m]), jnp.array([1.0, 1.0]), jnp.array([w_plus, 1 - w_plus])
        )


@pytest.fixture(scope="module")
def gm16():
    return _Setting()


def test_grid_puts_t_speciation_on_index(gm16):
    assert abs(float(gm16.ts[I_TS]) - T_S) < 1e-12
    assert bool(jnp.all(jnp.diff(gm16.ts) < 0))


def test_cloning_mc_matches_quadrature(gm16):
    """phi(t) from branching the exact-score sampler vs quadrature, within 3 binomial SE, at
    three branch times including t_S, where it must equal Biroli's threshold 0.7752."""
    n = N_MC
    res = ob.cloning_probability(
        gm16.score_fn,
        gm16.proc,
        jax.random.PRNGKey(101),
        (n, D),
        ts=gm16.ts,
        branch_index=BRANCH,
        classify=gm16.classify,
    )
    theory = ob.cloning_probability_theory(M_NORM, 1.0, res.t)
    assert res.n == n and res.phi.shape == (3,)
    assert abs(float(theory[1]) - ob.PHI_SPECIATION) < 1e-12
    z = (res.phi - theory) / res.se
    assert bool(jnp.all(jnp.abs(z) < 3)), (res.phi, res.se, theory)
    # phi increases towards t -> 0 (copies commit)
    assert bool(jnp.all(jnp.diff(res.phi) > 0))


def test_kick_response_matches_class_susceptibility(gm16):
    """Kick of size delta along m-hat at three times (t_S among them): the paired (common random
    numbers) central difference agrees with the quadrature R(t) within 3 SE at each.

    Same n, grid and branch indices as the cloning test, so the sampler's compilations are
    shared (the continuations from x_t +- delta m-hat form a batch of 2n, like two copies)."""
    delta = 0.25
    res = ob.kick_response(
        gm16.score_fn,
        gm16.proc,
        jax.random.PRNGKey(202),
        (N_MC, D),
        ts=gm16.ts,
        kick_index=BRANCH,
        direction=gm16.m,
        delta=delta,
        classify=gm16.classify,
    )
    r_delta = ob.class_susceptibility_theory(M_NORM, 1.0, res.t, delta=delta)
    r0 = ob.class_susceptibility_theory(M_NORM, 1.0, res.t)
    # the O(delta^2) finite-difference bias is well below the statistical error
    assert bool(jnp.all(jnp.abs(r_delta - r0) < 0.25 * res.se)), (r_delta, r0, res.se)
    z = (res.response - r_delta) / res.se
    assert bool(jnp.all(jnp.abs(z) < 3)), (res, r_delta)
    # common random numbers: a smaller SE than a difference of two independent fractions
    indep_se = math.sqrt(2 * 0.25 / res.n) / (2 * delta)
    assert bool(jnp.all(res.se < 0.6 * indep_se))


def test_weight_bias_response_is_one(gm16):
    """w_+ = 1/2 + h: the exact sampler reproduces the weights, so dF/dh = 1 (within 3 SE)."""
    res = ob.class_fraction_response(
        lambda h: lambda x, t, d=gm16.mixture(0.5 + h): gl.score(d, gm16.proc, x, t),
        gm16.proc,
        jax.random.PRNGKey(303),
        (N_MC, D),
        ts=gm16.ts,
        classify=gm16.classify,
        dh=0.05,
    )
    assert res.t is None
    assert abs(float(res.response) - 1.0) < 3 * float(res.se), res


# ----------------------------------------------------------------------------------------------
# quadrature vs scipy, in the original x-space forms
# ----------------------------------------------------------------------------------------------


def _scipy_params(m_norm, sigma2, t, process):
    a = float(process.a(t))
    gamma = float(process.b2(t)) + a**2 * sigma2
    return a * m_norm, gamma


def _log_g(x, mu, gamma):
    return -0.5 * (x - mu) ** 2 / gamma - 0.5 * np.log(2 * np.pi * gamma)


def _scipy_phi(m_norm, sigma2, t, process, k=2):
    """1/2 int (G+^k + G-^k)/(G+ + G-)^(k-1) dx, evaluated in log space."""
    mu, gamma = _scipy_params(m_norm, sigma2, t, process)

    def f(x):
        lp, lm = _log_g(x, mu, gamma), _log_g(x, -mu, gamma)
        return 0.5 * np.exp(np.logaddexp(k * lp, k * lm) - (k - 1) * np.logaddexp(lp, lm))

    s = math.sqrt(gamma)
    return integrate.quad(
        f, -mu - 15 * s, mu + 15 * s, points=[-mu, 0.0, mu], limit=200, epsabs=1e-13, epsrel=1e-12
    )[0]


def _scipy_r(m_norm, sigma2, t, process):
    """E_{p_t}[d/d delta P(+ | x + delta)], P = (1 + tanh(mu x / Gamma)) / 2."""
    mu, gamma = _scipy_params(m_norm, sigma2, t, process)

    def f(x):
        p = 0.5 * (np.exp(_log_g(x, mu, gamma)) + np.exp(_log_g(x, -mu, gamma)))
        return p * 0.5 * (mu / gamma) / np.cosh(mu * x / gamma) ** 2

    s = math.sqrt(gamma)
    return integrate.quad(
        f, -mu - 15 * s, mu + 15 * s, points=[-mu, 0.0, mu], limit=200, epsabs=1e-13, epsrel=1e-12
    )[0]


CASES = [
    (1.0, 0.0, 0.05, gl.OU()),
    (1.0, 0.0, 0.4, gl.OU()),
    (4.0, 1.0, 1.3, gl.OU()),
    (4.0, 0.3, 0.7, gl.OU()),
    (32.0, 0.0, 3.6, gl.OU()),
    (2.0, 0.5, 0.3, gl.VP()),
    (1.5, 0.2, 2.0, gl.VE()),
]


@pytest.mark.parametrize("m_norm,sigma2,t,process", CASES)
def test_quadrature_matches_scipy(m_norm, sigma2, t, process):
    phi = float(ob.cloning_probability_theory(m_norm, sigma2, t, process=process))
    assert abs(phi - _scipy_phi(m_norm, sigma2, t, process)) < 1e-9
    phi3 = float(ob.cloning_probability_theory(m_norm, sigma2, t, n_copies=3, process=process))
    assert abs(phi3 - _scipy_phi(m_norm, sigma2, t, process, k=3)) < 1e-9
    r = float(ob.class_susceptibility_theory(m_norm, sigma2, t, process=process))
    assert abs(r - _scipy_r(m_norm, sigma2, t, process)) < 1e-9 * max(1.0, r)


def test_finite_difference_susceptibility_converges():
    r0 = ob.class_susceptibility_theory(4.0, 1.0, 1.5)
    errs = [
        abs(float(ob.class_susceptibility_theory(4.0, 1.0, 1.5, delta=d) - r0))
        for d in (0.2, 0.1, 0.05)
    ]
    assert errs[0] > 0
    assert errs[0] / errs[1] == pytest.approx(4.0, rel=0.05)  # O(delta^2)
    assert errs[1] / errs[2] == pytest.approx(4.0, rel=0.05)


def test_theory_limits_and_jit_vmap():
    # far before speciation the copies are independent coin flips: phi_k = 2^(1-k)
    assert float(ob.cloning_probability_theory(4.0, 1.0, 9.0)) == pytest.approx(0.5, abs=1e-6)
    assert float(ob.cloning_probability_theory(4.0, 1.0, 9.0, n_copies=3)) == pytest.approx(
        0.25, abs=1e-6
    )
    # separated clusters are committed at t -> 0
    assert float(ob.cloning_probability_theory(4.0, 0.0, 1e-3)) > 1 - 1e-12
    ts = jnp.linspace(0.1, 4.0, 7)
    direct = ob.cloning_probability_theory(4.0, 1.0, ts)
    mapped = jax.jit(jax.vmap(lambda t: ob.cloning_probability_theory(4.0, 1.0, t)))(ts)
    assert jnp.allclose(direct, mapped, atol=1e-14)
    r_direct = ob.class_susceptibility_theory(jnp.array([2.0, 4.0])[:, None], 1.0, ts)
    assert r_direct.shape == (2, 7)
    r_mapped = jax.vmap(lambda m: ob.class_susceptibility_theory(m, 1.0, ts))(jnp.array([2.0, 4.0]))
    assert jnp.allclose(r_direct, r_mapped, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# scaling limit (`docs/theory/cloning.md#kick-response`)
# ----------------------------------------------------------------------------------------------


def test_phi_at_speciation_large_d():
    """phi(t_S) -> 0.7752 as d -> infinity (|m|^2 = d, t_S = ln(d)/2): exact at every d for
    sigma^2 = 1 (Gamma_t = 1 under OU), O(1/d) corrections for two deltas."""
    assert ob.PHI_SPECIATION == pytest.approx(0.7752, abs=1e-4)
    for d in (1e4, 1e6):
        t_s = 0.5 * math.log(d)
        assert abs(float(ob.cloning_probability_theory(math.sqrt(d), 1.0, t_s)) - 0.7752) < 1e-3
        assert abs(float(ob.cloning_probability_theory(math.sqrt(d), 0.0, t_s)) - 0.7752) < 1e-3


def test_collapse_against_t_minus_t_speciation():
    """phi(t) for d in {64, 1024, 4096} collapses when plotted against t - t_S (exactly for
    sigma^2 = 1, up to O(1/d) for deltas), not against t / t_S."""
    ds = np.array([64.0, 1024.0, 4096.0])
    t_s = 0.5 * np.log(ds)
    tau = jnp.linspace(-1.0, 1.5, 11)
    curves = ob.cloning_probability_theory(np.sqrt(ds)[:, None], 1.0, t_s[:, None] + tau)
    assert float(jnp.max(jnp.abs(curves - curves[0]))) < 1e-12
    # two deltas: phi(t_S) approaches 0.7752 monotonically, the gap shrinking ~ 1/d
    at_ts = ob.cloning_probability_theory(np.sqrt(ds), 0.0, t_s)
    gaps = np.asarray(at_ts) - ob.PHI_SPECIATION
    assert np.all(gaps > 0) and np.all(np.diff(gaps) < 0)
    assert gaps[-1] < 1e-4
    ratio = gaps[0] / gaps[1]
    assert 0.5 * (1024 / 64) < ratio < 2 * (1024 / 64)
    curves0 = ob.cloning_probability_theory(np.sqrt(ds)[:, None], 0.0, t_s[:, None] + tau)
    assert float(jnp.max(jnp.abs(curves0[1:] - curves0[-1]))) < 3e-3
    # ... while against t / t_S the curves do not collapse
    scaled = ob.cloning_probability_theory(np.sqrt(ds)[:, None], 1.0, t_s[:, None] * 1.1)
    assert float(jnp.max(scaled) - jnp.min(scaled)) > 0.05


def test_class_susceptibility_peak_large_lambda():
    """argmax R = t_S + 0.2007 and R_max = 0.2337 in the large-Lambda limit."""
    for m_norm, sigma2 in [(100.0, 1.0), (1e3, 0.0)]:
        t_star, r_max = ob.class_susceptibility_peak(m_norm, sigma2, process=gl.OU(T=12.0))
        t_s = math.log(m_norm)
        assert abs(float(t_star) - t_s - 0.2007) < 1e-3
        assert abs(float(r_max) - 0.2337) < 1e-3
    assert ob.R_PEAK_SHIFT == pytest.approx(0.2007, abs=1e-4)
    assert ob.R_PEAK_VALUE == pytest.approx(0.2337, abs=1e-4)


@pytest.mark.parametrize("lam", [4.0, 16.0, 100.0])
def test_class_susceptibility_peak_between_critical_times(lam):
    """Two deltas, Lambda >= 4: t_c^S = ln(1+Lambda)/2 < t* < t_c^D = arcsinh(Lambda)/2."""
    t_star, r_max = ob.class_susceptibility_peak(math.sqrt(lam), 0.0)
    assert 0.5 * math.log1p(lam) < float(t_star) < 0.5 * math.asinh(lam)
    # it is a maximum
    for dt in (-1e-2, 1e-2):
        assert float(ob.class_susceptibility_theory(math.sqrt(lam), 0.0, t_star + dt)) < float(
            r_max
        )


# ----------------------------------------------------------------------------------------------
# order parameter along trajectories
# ----------------------------------------------------------------------------------------------


def test_magnetization_observable_two_points():
    """M = tanh(a_t x / b_t^2) recorded in the loop: <|M|> matches quadrature within 3 SE at
    the saved times; at the end the population is bimodal with Binder U = 2/3."""
    proc = gl.OU(T=4.0)
    data = gl.TwoPoint(1.0)
    ts = gl.time_grid(proc, 150, kind="log_snr", t_min=0.01)
    save_at = [50, 90, 110, 150]
    n = 3000
    sol = gl.sample(
        lambda x, t: gl.score(data, proc, x, t),
        proc,
        jax.random.PRNGKey(404),
        (n, 1),
        ts=ts,
        method="heun_sde",
        observe=ob.magnetization_observable(data, proc, jnp.ones(1)),
        save_at=save_at,
    )
    assert sol.observables.shape == (len(save_at), n)
    b = ob.bimodality(sol.observables)
    z = np.linspace(-12, 12, 4801)
    w = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi) * (z[1] - z[0])
    for k, t in enumerate(np.asarray(sol.saved_ts)):
        kappa = math.exp(-t) / math.sqrt(-math.expm1(-2 * t))
        theory = np.sum(w * np.abs(np.tanh(kappa * (kappa + z))))
        assert abs(float(b.mean_abs[k]) - theory) < 3 * float(b.mean_abs_se[k]) + 1e-9, (
            t,
            b,
            theory,
        )
    assert abs(float(b.binder[-1]) - 2 / 3) < 1e-6
    assert float(b.binder[0]) < float(b.binder[-1])


def test_bimodality_values_and_standard_errors(key):
    # two symmetric deltas: U = 2/3 exactly, zero error
    b = ob.bimodality(jnp.array([1.0, -1.0, -1.0, 1.0, 1.0]))
    assert float(b.binder) == pytest.approx(2 / 3) and float(b.binder_se) == 0.0
    assert float(b.mean_abs) == 1.0 and b.n == 5
    # Gaussian: U = 0; the delta-method SE matches the spread over replicates
    m = jax.random.normal(key, (400, 500))
    b = ob.bimodality(m)
    spread_u = float(jnp.std(b.binder, ddof=1))
    spread_a = float(jnp.std(b.mean_abs, ddof=1))
    assert float(jnp.mean(b.binder_se)) == pytest.approx(spread_u, rel=0.15)
    assert float(jnp.mean(b.mean_abs_se)) == pytest.approx(spread_a, rel=0.15)
    assert abs(float(jnp.mean(b.binder))) < 3 * spread_u / math.sqrt(400)
    assert abs(float(jnp.mean(b.mean_abs)) - math.sqrt(2 / math.pi)) < 3 * spread_a / 20
    # axis argument
    b0 = ob.bimodality(m.T, axis=0)
    assert jnp.allclose(b0.binder, b.binder)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


def test_errors():
    proc = gl.OU(T=2.0)
    data = gl.TwoPoint(1.0)
    sf = lambda x, t: gl.score(data, proc, x, t)  # noqa: E731
    ts = jnp.linspace(2.0, 0.1, 5)
    cls = ob.sign_classifier(jnp.ones(1))
    key = jax.random.PRNGKey(0)
    kw = dict(ts=ts, classify=cls)
    with pytest.raises(ValueError, match="branch_index must lie in 0..3"):
        ob.cloning_probability(sf, proc, key, (4, 1), branch_index=4, **kw)
    with pytest.raises(ValueError, match="branch_index must lie"):
        ob.cloning_probability(sf, proc, key, (4, 1), branch_index=-1, **kw)
    with pytest.raises(ValueError, match="strictly increasing"):
        ob.cloning_probability(sf, proc, key, (4, 1), branch_index=[2, 1], **kw)
    with pytest.raises(ValueError, match="integer"):
        ob.cloning_probability(sf, proc, key, (4, 1), branch_index=1.5, **kw)
    with pytest.raises(ValueError, match="n_copies"):
        ob.cloning_probability(sf, proc, key, (4, 1), branch_index=1, n_copies=1, **kw)
    with pytest.raises(ValueError, match="classify must be callable"):
        ob.cloning_probability(sf, proc, key, (4, 1), ts=ts, branch_index=1, classify=None)
    with pytest.raises(ValueError, match="trajectory keys"):
        ob.cloning_probability(sf, proc, gl.trajectory_keys(key, 3), (4, 1), branch_index=1, **kw)
    with pytest.raises(ValueError, match="delta must be"):
        ob.kick_response(
            sf, proc, key, (4, 1), kick_index=1, direction=jnp.ones(1), delta=0.0, **kw
        )
    with pytest.raises(ValueError, match="direction must have"):
        ob.kick_response(
            sf, proc, key, (4, 1), kick_index=1, direction=jnp.ones(2), delta=0.1, **kw
        )
    with pytest.raises(ValueError, match="nonzero"):
        ob.kick_response(
            sf, proc, key, (4, 1), kick_index=1, direction=jnp.zeros(1), delta=0.1, **kw
        )
    with pytest.raises(ValueError, match="dh must be"):
        ob.class_fraction_response(lambda h: sf, proc, key, (4, 1), dh=-1.0, **kw)
    with pytest.raises(ValueError, match="m_norm must be >= 0"):
        ob.cloning_probability_theory(-1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="sigma2 must be >= 0"):
        ob.class_susceptibility_theory(1.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="t must be > 0"):
        ob.cloning_probability_theory(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="n_copies"):
        ob.cloning_probability_theory(1.0, 1.0, 1.0, n_copies=1)
    with pytest.raises(ValueError, match="process must be"):
        ob.cloning_probability_theory(1.0, 1.0, 1.0, process="OU")
    with pytest.raises(ValueError, match="t_min < t_max"):
        ob.class_susceptibility_peak(1.0, 0.0, t_min=3.0, t_max=2.0)
    with pytest.raises(ValueError, match="direction must have"):
        ob.magnetization_observable(data, proc, jnp.ones(3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        ob.bimodality(jnp.ones(1))


def test_classify_shape_is_checked():
    proc = gl.OU(T=2.0)
    data = gl.TwoPoint(1.0)
    ts = jnp.linspace(2.0, 0.1, 3)
    with pytest.raises(ValueError, match="one label per state"):
        ob.cloning_probability(
            lambda x, t: gl.score(data, proc, x, t),
            proc,
            jax.random.PRNGKey(0),
            (4, 1),
            ts=ts,
            branch_index=1,
            classify=lambda x: jnp.zeros((1,), jnp.int32),
        )
