"""Exact scores: autodiff identities, independent oracles, batching and float32 behaviour."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import all_processes, closed_form_datasets
from scipy import integrate, special, stats

import gltheory as gl

DATASETS = closed_form_datasets()
PROCS = all_processes()
PIDS = ["OU", "VP-linear", "VP-cosine", "VE-geometric", "VE-edm"]
# moderate times (fraction of T) where posteriors are not saturated for every process
FRACS = [0.15, 0.4, 0.8]


def _points(data, key, n=3, scale=1.0):
    return scale * jax.random.normal(key, (n,) + data.event_shape)


# The identities depend on the process only through (a_t, b_t^2): every dataset is checked
# with OU and EDM, and every process with two datasets.
PAIRS = (
    [(n, 0) for n in DATASETS]
    + [(n, 4) for n in DATASETS]
    + [(n, i) for n in ("two_point_3d", "gaussian_mixture_diag") for i in (1, 2, 3)]
)
# The fast tier runs half of PAIRS in test_score_is_gradient_of_log_prob and
# test_float32_finite_for_all_t (every dataset once, with OU or EDM alternating, and every
# process at least once) and the other half in test_tweedie_fluctuation_response, so every pair
# stays covered by a fast autodiff-identity test. The full product runs in the slow tier.
_HALF = {n: i % 2 for i, n in enumerate(DATASETS)}
FAST_PAIRS = {
    (n, p)
    for n, p in PAIRS
    if (p in (0, 4) and (p == 0) == (_HALF[n] == 0))
    or (p in (1, 2, 3) and n == ("two_point_3d" if p != 2 else "gaussian_mixture_diag"))
}


def _pairs(fast):
    """PAIRS as pytest params: those in ``fast`` in the fast tier, the others slow."""
    return [
        pytest.param(n, i, id=f"{n}-{PIDS[i]}", marks=() if (n, i) in fast else pytest.mark.slow)
        for n, i in PAIRS
    ]


@pytest.mark.parametrize("name,pidx", _pairs(FAST_PAIRS))
def test_score_is_gradient_of_log_prob(name, pidx, key):
    """score == grad(log p_t) by autodiff, float64, <= 1e-8 relative (`docs/theory/score.md#tweedie`)."""
    data, proc = DATASETS[name], PROCS[pidx]
    xs = _points(data, key)
    ts = jnp.asarray(FRACS) * proc.T

    @jax.jit
    def both(x, t):
        return gl.score(data, proc, x, t), jax.grad(lambda z: gl.log_prob(data, proc, z, t))(x)

    for t in ts:
        s, g = (np.asarray(v) for v in jax.vmap(both, in_axes=(0, None))(xs, t))
        err = np.max(np.abs(s - g)) / np.max(np.abs(g))
        assert float(err) <= 1e-8, (name, float(t), float(err))


@pytest.mark.parametrize("name,pidx", _pairs(set(PAIRS) - FAST_PAIRS))
def test_tweedie_fluctuation_response(name, pidx, key):
    """jacfwd(denoiser) == (a_t / b_t^2) Cov[y|x] (`docs/theory/score.md#posterior-covariance`)."""
    data, proc = DATASETS[name], PROCS[pidx]
    xs = _points(data, key, n=2, scale=0.5)

    @jax.jit
    def both(x, t):
        jac = jax.jacfwd(lambda z: gl.denoiser(data, proc, z, t))(x).reshape(data.dim, data.dim)
        return jac, proc.a(t) / proc.b2(t) * gl.posterior_cov(data, proc, x, t)

    trace_cov = float(np.trace(np.asarray(data.covariance())))
    for t in jnp.asarray(FRACS) * proc.T:
        jac, rhs = (np.asarray(v) for v in jax.vmap(both, in_axes=(0, None))(xs, t))
        # relative to the unsaturated scale (a/b^2) tr Cov[y]: a saturated posterior has a
        # covariance far below round-off of that scale, where only absolute error means anything
        scale = float(proc.a(t) / proc.b2(t)) * trace_cov
        err = np.max(np.abs(jac - rhs)) / scale
        assert float(err) <= 1e-10, (name, float(t), float(err))
        # a covariance: symmetric positive semi-definite
        np.testing.assert_allclose(rhs, np.swapaxes(rhs, -1, -2), atol=1e-12 * scale)
        assert float(np.min(np.linalg.eigvalsh(rhs))) > -1e-10 * scale


def test_two_point_equals_delta_mixture_and_bruteforce(key):
    """Closed-form tanh == generic softmax == a NumPy loop over the two points."""
    mu = np.array([0.7, -0.2, 1.1])
    w = 0.3
    tp = gl.TwoPoint(mu, weight=w)
    dm = gl.DeltaMixture(np.stack([mu, -mu]), np.array([w, 1 - w]))
    proc = gl.VP()
    xs = np.asarray(jax.random.normal(key, (6, 3)))
    t = 0.45
    a, b2 = float(proc.a(t)), float(proc.b2(t))
    for x in xs:
        dens = [
            wk * stats.multivariate_normal(a * y, b2 * np.eye(3)).pdf(x)
            for wk, y in [(w, mu), (1 - w, -mu)]
        ]
        post = np.array(dens) / sum(dens)
        m_ref = post[0] * mu - post[1] * mu
        np.testing.assert_allclose(gl.denoiser(tp, proc, x, t), m_ref, rtol=1e-10)
        np.testing.assert_allclose(gl.denoiser(dm, proc, x, t), m_ref, rtol=1e-10)
        np.testing.assert_allclose(gl.log_prob(tp, proc, x, t), math.log(sum(dens)), rtol=1e-10)
        np.testing.assert_allclose(gl.log_prob(dm, proc, x, t), math.log(sum(dens)), rtol=1e-10)


def test_gaussian_against_scipy(key):
    data = DATASETS["gaussian"]
    proc = gl.OU()
    t = 0.6
    a, b2 = float(proc.a(t)), float(proc.b2(t))
    mean, cov = np.asarray(data.loc), np.asarray(data.cov)
    xs = np.asarray(jax.random.normal(key, (5, 3)))
    ref = stats.multivariate_normal(a * mean, a**2 * cov + b2 * np.eye(3)).logpdf(xs)
    np.testing.assert_allclose(gl.log_prob(data, proc, xs, t), ref, rtol=1e-12)
    # Gaussian conditioning formula written with a linear solve
    sx = a**2 * cov + b2 * np.eye(3)
    m_ref = mean + (a * cov @ np.linalg.solve(sx, (xs - a * mean).T)).T
    np.testing.assert_allclose(gl.denoiser(data, proc, xs, t), m_ref, rtol=1e-11)
    c_ref = cov - a**2 * cov @ np.linalg.solve(sx, cov)
    np.testing.assert_allclose(
        gl.posterior_cov(data, proc, xs[0], t), c_ref, rtol=1e-10, atol=1e-13
    )


def test_gaussian_mixture_reductions(key):
    """K=1 diagonal mixture == Gaussian; zero-variance mixture == delta mixture."""
    proc = gl.VP("cosine")
    t = 0.5
    xs = jax.random.normal(key, (4, 2))
    gm1 = gl.GaussianMixture(jnp.array([[0.5, -0.3]]), jnp.array([[0.8, 1.7]]))
    g = gl.Gaussian(jnp.array([0.5, -0.3]), jnp.array([0.8, 1.7]))
    np.testing.assert_allclose(
        gl.log_prob(gm1, proc, xs, t), gl.log_prob(g, proc, xs, t), rtol=1e-12
    )
    np.testing.assert_allclose(gl.score(gm1, proc, xs, t), gl.score(g, proc, xs, t), rtol=1e-11)
    pts = jnp.array([[1.0, 0.0], [-0.5, 0.7], [0.2, -1.2]])
    w = jnp.array([0.2, 0.5, 0.3])
    gm0 = gl.GaussianMixture(pts, jnp.zeros(3), w)
    dm = gl.DeltaMixture(pts, w)
    np.testing.assert_allclose(
        gl.log_prob(gm0, proc, xs, t), gl.log_prob(dm, proc, xs, t), rtol=1e-12
    )
    np.testing.assert_allclose(gl.score(gm0, proc, xs, t), gl.score(dm, proc, xs, t), rtol=1e-11)


@pytest.mark.parametrize(
    "data",
    [
        gl.TwoPoint(1.3, weight=0.8),
        gl.GaussianMixture(
            jnp.array([[1.0], [-2.0]]), jnp.array([0.3, 1.2]), jnp.array([0.4, 0.6])
        ),
        gl.Gaussian(jnp.array([0.4]), 2.0),
    ],
    ids=["two_point", "gmm", "gaussian"],
)
def test_one_dimensional_densities_normalise(data):
    """Quadrature: int p_t(x) dx = 1 and int x p_t = a E[y] (checks every constant of log p_t)."""
    proc = gl.OU()
    # one compiled log-density for every quadrature node and time (t is a traced argument)
    log_p = jax.jit(lambda x, t: gl.log_prob(data, proc, x, t))
    for t in (0.05, 0.5, 2.0):
        p = lambda x: math.exp(float(log_p(np.array([x]), t)))
        z, _ = integrate.quad(p, -30, 30, limit=400, points=[0.0])
        m1, _ = integrate.quad(lambda x: x * p(x), -30, 30, limit=400, points=[0.0])
        assert z == pytest.approx(1.0, abs=1e-9)
        assert m1 == pytest.approx(float(proc.a(t) * data.mean()[0]), abs=1e-8)


def test_hypersphere_bessel_ratio_against_scipy():
    """A_d(kappa) = I_{d/2}/I_{d/2-1} and ln E[e^{kappa s}] vs scipy.special.ive, kappa up to 1e6."""
    from gltheory.data import _sphere_tilt

    for d in (2, 3, 10, 101):
        nu = d / 2 - 1
        for kappa in (1e-4, 0.5, 3.0, 30.0, 300.0, 1e4, 1e6):
            log_e, a_over_k = _sphere_tilt(jnp.asarray(kappa**2), d)
            ratio = special.ive(nu + 1, kappa) / special.ive(nu, kappa)
            ref_log_e = (
                np.log(special.ive(nu, kappa))
                + kappa
                + special.gammaln(d / 2)
                + nu * np.log(2 / kappa)
            )
            assert float(a_over_k) * kappa == pytest.approx(ratio, rel=1e-12)
            assert float(log_e) == pytest.approx(ref_log_e, rel=1e-12, abs=1e-12)


def test_hypersphere_log_prob_against_quadrature():
    """d=3: p_t(x) = int over the sphere by scipy quadrature in the polar angle."""
    data = gl.Hypersphere(1.5, 3)
    proc = gl.OU()
    t = 0.4
    a, b2 = float(proc.a(t)), float(proc.b2(t))
    for r in (0.0, 0.7, 2.5):
        x = np.array([0.0, 0.0, r])

        def integrand(c):  # c = cos(theta); uniform on the sphere: density 1/2 in c
            y = 1.5 * np.array([math.sqrt(1 - c * c), 0.0, c])
            return 0.5 * stats.multivariate_normal(a * y, b2 * np.eye(3)).pdf(x)

        ref, _ = integrate.quad(integrand, -1, 1, epsabs=0, epsrel=1e-12)
        assert float(gl.log_prob(data, proc, x, t)) == pytest.approx(math.log(ref), rel=1e-9)


def test_hypersphere_large_kappa_is_stable():
    """Huge SNR (t -> 0) in float32 and float64: finite, and the denoiser projects on the sphere."""
    data = gl.Hypersphere(jnp.sqrt(100.0), 100)
    proc = gl.OU()
    for dtype in (jnp.float32, jnp.float64):
        x = jnp.ones((100,), dtype) * 1.0
        for t in (1e-6, 1e-3, 0.1):
            m = gl.denoiser(data, proc, x, t)
            assert bool(jnp.all(jnp.isfinite(m))) and bool(
                jnp.isfinite(gl.log_prob(data, proc, x, t))
            )
        m = gl.denoiser(data, proc, x, 1e-6)
        assert float(jnp.linalg.norm(m)) == pytest.approx(10.0, rel=1e-3)


def test_hypersphere_jacobian_at_origin():
    """Smooth at x = 0: d m / dx (0) = (a R^2 / (b^2 d)) I, the symmetric-point susceptibility."""
    data = gl.Hypersphere(2.0, 4)
    proc = gl.OU()
    t = 0.3
    jac = jax.jacfwd(lambda z: gl.denoiser(data, proc, z, t))(jnp.zeros(4))
    np.testing.assert_allclose(jac, proc.a(t) * 4.0 / (proc.b2(t) * 4) * jnp.eye(4), rtol=1e-12)


def test_batching_and_time_broadcasting(key):
    data = DATASETS["gaussian_mixture_diag"]
    proc = gl.OU()
    xs = jax.random.normal(key, (2, 3, 3))
    ts = jnp.array([[0.1, 0.5, 1.0], [2.0, 0.3, 0.05]])
    batched = gl.score(data, proc, xs, ts)
    looped = jnp.stack(
        [jnp.stack([gl.score(data, proc, xs[i, j], ts[i, j]) for j in range(3)]) for i in range(2)]
    )
    np.testing.assert_allclose(batched, looped, rtol=1e-12)
    vm = jax.vmap(lambda x, t: gl.score(data, proc, x, t))(xs.reshape(6, 3), ts.reshape(6))
    np.testing.assert_allclose(batched.reshape(6, 3), vm, rtol=1e-12)
    # lattice event shapes keep their shape
    lat = DATASETS["lattice_stripes"]
    xl = jax.random.normal(key, (5, 4, 4))
    assert gl.score(lat, proc, xl, 0.4).shape == (5, 4, 4)
    assert gl.posterior_cov(lat, proc, xl, 0.4).shape == (5, 16, 16)


@pytest.mark.parametrize("name,pidx", _pairs(FAST_PAIRS))
def test_float32_finite_for_all_t(name, pidx, key):
    """Valid input never gives NaN/Inf: t from 1e-6 T to T, float32, including huge SNR."""
    data, proc = DATASETS[name], PROCS[pidx]
    xs = _points(data, key, n=4, scale=2.0).astype(jnp.float32)
    for t in np.asarray([1e-6, 1e-3, 0.1, 0.5, 1.0], np.float32) * np.asarray(proc.T):
        for out in (
            gl.score(data, proc, xs, t),
            gl.denoiser(data, proc, xs, t),
            gl.log_prob(data, proc, xs, t),
        ):
            assert out.dtype == jnp.float32
            assert np.all(np.isfinite(np.asarray(out))), (name, float(t))


def test_float32_small_t_accuracy(key):
    """The documented FLOAT32_T_MIN: float32 score within 1e-3 relative of float64 at t >= it."""
    data = gl.TwoPoint(1.0, dim=4)
    proc = gl.OU()
    y = data.sample(key, 64)
    for t in (gl.scores.FLOAT32_T_MIN, 1e-4, 1e-2):
        x64 = proc.a(t) * y + proc.b(t) * jax.random.normal(jax.random.PRNGKey(1), y.shape)
        s64 = gl.score(data, proc, x64, t)
        s32 = gl.score(data, proc, x64.astype(jnp.float32), jnp.float32(t))
        rel = jnp.linalg.norm(s32 - s64) / jnp.linalg.norm(s64)
        assert float(rel) < 1e-3, (t, float(rel))


def test_uniform_patch_score_with_full_window_is_ideal_score(key):
    """Window covering the periodic lattice == exact score of the two uniform images (`docs/theory/patch.md#two-image-score`)."""
    proc = gl.OU()
    for shape in [(7,), (5, 5)]:
        data = gl.data.uniform_images(shape)
        x = jax.random.normal(key, (3,) + shape)
        for t in (0.2, 1.0):
            local = gl.scores.uniform_patch_score(
                proc, x, t, window=shape[0], lattice_ndim=len(shape)
            )
            np.testing.assert_allclose(local, gl.score(data, proc, x, t), rtol=1e-12)


def test_uniform_patch_score_small_window_matches_bruteforce(key):
    proc = gl.VP()
    x = np.asarray(jax.random.normal(key, (6, 6)))
    t, k = 0.3, 3
    a, b2 = float(proc.a(t)), float(proc.b2(t))
    ref = np.zeros_like(x)
    for i in range(6):
        for j in range(6):
            kx = sum(x[(i + di) % 6, (j + dj) % 6] for di in (-1, 0, 1) for dj in (-1, 0, 1))
            ref[i, j] = (a * math.tanh(a * kx / b2) - x[i, j]) / b2
    np.testing.assert_allclose(
        gl.scores.uniform_patch_score(proc, x, t, window=k, lattice_ndim=2), ref, rtol=1e-12
    )


def test_lattice_sets():
    st = gl.data.stripes((4, 6), width=1)
    assert st.images.shape == (4, 4, 6)  # two phases x two orientations
    assert set(np.unique(np.asarray(st.images))) == {-1.0, 1.0}
    cb = gl.data.checkerboards((4, 4), width=2)
    assert cb.images.shape[0] == 8 and cb.event_shape == (4, 4)  # (2w)^2 / 2 translates
    u = gl.data.uniform_images((8,))
    np.testing.assert_allclose(u.images, [np.ones(8), -np.ones(8)])
    rb = gl.data.random_binary_images(jax.random.PRNGKey(0), 10, (3, 3), p=0.5)
    assert rb.images.shape == (10, 3, 3)
    np.testing.assert_allclose(
        rb.covariance(), jnp.cov(rb.images.reshape(10, 9).T, bias=True), atol=1e-12
    )


@pytest.mark.parametrize(
    "name",
    [
        # fast: every dataset class once (TwoPoint in 3-D, Hypersphere with d = 3); the second
        # instance of the same class (1-D two-point, d = 50 sphere) is slow
        pytest.param(n, marks=pytest.mark.slow) if n in ("two_point_1d", "hypersphere_50") else n
        for n in DATASETS
    ],
)
def test_sample_moments(name):
    """sample(key, n): empirical mean and covariance within 5 standard errors of the closed forms."""
    data = DATASETS[name]
    n = 20000
    y = np.asarray(data.sample(jax.random.PRNGKey(3), n)).reshape(n, -1)
    assert y.shape == (n, data.dim)
    mean, cov = np.asarray(data.mean()).reshape(-1), np.asarray(data.covariance())
    se = np.sqrt(np.diag(cov) / n) + 1e-12
    assert np.all(np.abs(y.mean(0) - mean) < 5 * se + 1e-9)
    emp = np.cov(y.T, bias=True).reshape(data.dim, data.dim)
    se_c = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n) + 1e-12
    assert np.all(np.abs(emp - cov) < 5 * se_c + 1e-9)


def test_jit_vmap_grad_compose(key):
    data = gl.GaussianMixture(jnp.array([[1.0, 0.0], [-1.0, 0.5]]), jnp.array([0.2, 0.4]))
    proc = gl.VP()
    f = jax.jit(lambda d, p, x, t: gl.score(d, p, x, t))
    x = jax.random.normal(key, (4, 2))
    np.testing.assert_allclose(f(data, proc, x, 0.3), gl.score(data, proc, x, 0.3), rtol=1e-12)
    # gradient with respect to a dataset parameter flows
    g = jax.grad(lambda v: gl.log_prob(gl.GaussianMixture(data.means, v), proc, x, 0.3).sum())(
        jnp.array([0.2, 0.4])
    )
    assert g.shape == (2,) and bool(jnp.all(jnp.isfinite(g)))
