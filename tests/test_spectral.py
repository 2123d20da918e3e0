"""Spectral probes (gltheory.spectral) against `docs/theory/patch.md#mode-softening`,
`docs/theory/patch.md#spectral-probes` and `docs/theory/field.md#correlation-length`.

Oracles: the closed-form uniform-image patch score (`docs/theory/patch.md#two-image-score`) and a brute-force equivariant local
score (ELS, circular padding, posterior over all patches of all images) written here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import spectral as sp

OU = gl.OU()


def uniform_score(k, D, process=OU):
    return lambda x, t: gl.scores.uniform_patch_score(process, x, t, window=k, lattice_ndim=D)


def dirichlet(q, k):
    q = np.atleast_2d(np.asarray(q))
    out = np.ones(q.shape[0])
    for a in range(q.shape[1]):
        qa = q[:, a]
        safe = np.where(np.abs(qa) < 1e-12, 1.0, qa)
        out *= np.where(np.abs(qa) < 1e-12, k, np.sin(k * safe / 2) / np.sin(safe / 2))
    return out


def brute_els(images, k, process=OU):
    """ELS by brute force: posterior over every circular patch of every image, at each site."""
    Y = np.asarray(images)
    N, shape = Y.shape[0], Y.shape[1:]
    D, n, r = len(shape), int(np.prod(shape)), k // 2
    ids = np.arange(n).reshape(shape)
    offs = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * D, indexing="ij"), -1).reshape(-1, D)
    nb = np.stack(
        [np.roll(ids, tuple(-d for d in off), axis=tuple(range(D))).ravel() for off in offs], 1
    )  # nb[i, j] = site i + offs[j]
    centre = int(np.flatnonzero((offs == 0).all(1))[0])
    bank = jnp.asarray(Y.reshape(N, n)[:, nb].reshape(N * n, -1))

    def score(x, t):
        a, b2 = process.a(t), process.b2(t)
        X = x.reshape(n)[nb]
        logits = -jnp.sum((X[:, None, :] - a * bank[None]) ** 2, -1) / (2 * b2)
        m = jax.nn.softmax(logits, axis=1) @ bank[:, centre]
        return ((a * m - x.reshape(n)) / b2).reshape(x.shape)

    return score


# ---------------------------------------------------------------------------------------
# `docs/theory/patch.md#mode-softening`: plane waves are eigenvectors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,k", [((16,), 5), ((6, 8), 3)])
def test_plane_waves_are_eigenvectors(shape, k):
    D = len(shape)
    score = uniform_score(k, D)
    x0 = jnp.zeros(shape)
    t = 0.6
    qs = sp.lattice_wavevectors(shape).reshape(-1, D)
    mu_th = (float(OU.snr(t)) * dirichlet(qs, k) - 1) / float(OU.b2(t))
    # one compiled probe and one compiled wave for the whole loop (eager, every jnp op of the
    # score's jvp would be a program of its own)
    jvp = jax.jit(lambda e: jax.jvp(lambda y: score(y, t), (x0,), (e,))[1])
    wave = jax.jit(lambda q, phase: sp.plane_wave(shape, q, phase))
    for q, m in zip(qs[::3], mu_th[::3]):
        for phase in (0.0, -np.pi / 2, 0.3):
            e = wave(q, phase)
            np.testing.assert_allclose(jvp(e), m * np.asarray(e), atol=1e-12)
    mu = jax.jit(lambda q: sp.mode_stiffness(score, x0, t, q))(qs)
    np.testing.assert_allclose(mu, mu_th, atol=1e-12)
    # the patch spectrum of the two uniform images is the Dirichlet kernel
    C = sp.windowed_patch_covariance(gl.data.uniform_images(shape), k)
    np.testing.assert_allclose(C.reshape(-1), dirichlet(qs, k), atol=1e-12)


def test_dirichlet_small_q():
    k, q = 5, 1e-3
    K = sp.windowed_patch_covariance(gl.data.uniform_images((16,)), k, jnp.array([q]))
    assert abs(float(K) - 5.0) < 5e-5  # "5.0000"
    np.testing.assert_allclose((k - K) / q**2, k * (k**2 - 1) / 24, rtol=1e-5)


# ---------------------------------------------------------------------------------------
# `docs/theory/patch.md#mode-softening`: patch-model critical point
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k,ab_c",
    [
        (3, 0.25),
        # k = 5 in 1-D: the Jacobian root is test_critical_times_ou's (0.895880 = ln(6)/2), the
        # patch-covariance root test_nets' detector test's (t_score, L = 16): slow tier
        pytest.param(5, 1 / 6, marks=pytest.mark.slow),
        (7, 0.125),
    ],
)
def test_critical_point_1d(k, ab_c):
    score = uniform_score(k, 1)
    t_c = sp.jacobian_critical_time(score, jnp.zeros(16), OU, 0.05, 3.0)
    assert abs(float(OU.alpha_bar(t_c)) - ab_c) < 1e-6
    sp_ab = sp.critical_alpha_bar(gl.data.uniform_images((16,)), k)
    np.testing.assert_allclose(sp_ab.alpha_bar, 1 / (1 + k), rtol=1e-12)
    np.testing.assert_allclose(sp_ab.q_star, [0.0])


def test_critical_times_ou():
    score = uniform_score(5, 1)
    x0 = jnp.zeros(16)
    assert abs(sp.jacobian_critical_time(score, x0, OU, 0.1, 3.0) - 0.895880) < 1e-6
    t_d = sp.jacobian_critical_time(score, x0, OU, 0.1, 3.0, criterion="sde")
    assert abs(t_d - 1.156219) < 1e-6
    np.testing.assert_allclose(t_d, 0.5 * np.arcsinh(5), rtol=1e-10)


@pytest.mark.parametrize(
    "k,ab_c,t_s,t_d",
    [
        # k = 3 in 2-D (alpha_bar_c = 1/(1 + k^2) = 0.1) is also test_patch's
        # test_critical_point_of_two_uniform_images[(5, 5)-3] (the ELS Jacobian at 0): slow tier
        pytest.param(3, 0.1, None, None, marks=pytest.mark.slow),
        (5, 1 / 26, 1.629048, 1.956211),
    ],
)
def test_critical_point_2d(k, ab_c, t_s, t_d):
    score = uniform_score(k, 2)
    x0 = jnp.zeros((6, 6))
    t_c = sp.jacobian_critical_time(score, x0, OU, 0.05, 4.0)
    assert abs(float(OU.alpha_bar(t_c)) - ab_c) < 1e-6
    if t_s is not None:
        assert abs(t_c - t_s) < 1e-6
        assert (
            abs(sp.jacobian_critical_time(score, x0, OU, 0.05, 4.0, criterion="sde") - t_d) < 1e-6
        )
    np.testing.assert_allclose(
        sp.critical_alpha_bar(gl.data.uniform_images((6, 6)), k).alpha_bar, ab_c, rtol=1e-12
    )


# ---------------------------------------------------------------------------------------
# Softening criterion for general binary data (brute-force ELS oracle)
# ---------------------------------------------------------------------------------------


def _circulant(c, shape, snr_over_b2, b2):
    """J_ij = (SNR/b^2) c(j - i) 1[j - i in Omega] - delta_ij / b^2 on a periodic lattice."""
    D, k = len(shape), c.shape[0]
    r = k // 2
    n = int(np.prod(shape))
    J = -np.eye(n) / float(b2)
    ids = np.arange(n).reshape(shape)
    for off in np.ndindex(*c.shape):
        d = tuple(o - r for o in off)
        j = np.roll(ids, tuple(-x for x in d), axis=tuple(range(D))).ravel()
        J[np.arange(n), j] += float(snr_over_b2) * float(c[off])
    return J


@pytest.mark.parametrize(
    "shape,k",
    [
        # 1-D: the same Jacobian == circulant and stiffness == patch spectrum checks run fast in
        # test_tilted_patch_covariance_unequal_norms (1-D, tilted bank): slow tier
        pytest.param((12,), 3, marks=pytest.mark.slow),
        ((5, 5), 3),
    ],
)
def test_brute_force_jacobian_is_patch_covariance(shape, k):
    imgs = gl.data.random_binary_images(jax.random.PRNGKey(3), 3, shape)
    score = brute_els(imgs.images, k)
    x0 = jnp.zeros(shape)
    t = 0.8
    J = sp.score_jacobian(score, x0, t)
    c = sp.patch_covariance(imgs, k)
    J_th = _circulant(np.asarray(c), shape, OU.snr(t) / OU.b2(t), OU.b2(t))
    np.testing.assert_allclose(J, J_th, atol=1e-11)
    D = len(shape)
    qs = sp.lattice_wavevectors(shape).reshape(-1, D)
    mu = sp.mode_stiffness(score, x0, t, qs)
    C = sp.windowed_patch_covariance(imgs, k, qs)
    np.testing.assert_allclose(mu, (OU.snr(t) * C - 1) / OU.b2(t), atol=1e-11)
    # dense eigenvalues = Fourier spectrum (J symmetric here)
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(J)), np.sort((OU.snr(t) * C - 1) / OU.b2(t)), atol=1e-10
    )


@pytest.mark.parametrize(
    "symmetrise,seed",
    [
        # fast tier: one dataset per case; the other seeds (more random datasets) are slow
        pytest.param(sym, seed, marks=() if seed == int(sym) else pytest.mark.slow)
        for sym in (False, True)
        for seed in (0, 1, 2)
    ],
)
def test_softening_criterion_random_binary(seed, symmetrise):
    """critical_alpha_bar == root of the top eigenvalue of the brute-force ELS Jacobian at 0.

    Binary data have equal patch norms, so the Jacobian at x = 0 is the circulant of the
    patch covariance whatever the bank mean (the unsymmetrised case, where x = 0 is not a
    fixed point). With the data closed under y -> -y the bank mean vanishes and x = 0 is a
    genuine fixed point of the score (checked)."""
    imgs = gl.data.random_binary_images(jax.random.PRNGKey(seed), 3, (12,)).images
    if symmetrise:
        imgs = jnp.concatenate([imgs, -imgs])
    score = brute_els(imgs, 3)
    x0 = jnp.zeros(12)
    if symmetrise:
        np.testing.assert_allclose(score(x0, 0.7), 0.0, atol=1e-12)
    soft = sp.critical_alpha_bar(imgs, 3)
    t_c = sp.jacobian_critical_time(score, x0, OU, 0.02, 5.0, tol=1e-11)
    assert abs(float(OU.alpha_bar(t_c)) - float(soft.alpha_bar)) < 1e-5
    # the softening mode is the top eigenvector at the critical point
    qs = sp.lattice_wavevectors((12,)).reshape(-1, 1)
    mu = sp.mode_stiffness(score, x0, t_c, qs)
    assert abs(float(jnp.max(mu))) < 1e-6
    C = sp.windowed_patch_covariance(imgs, 3, soft.q_star[None])
    np.testing.assert_allclose(C[0], soft.c_max, rtol=1e-12)


def test_tilted_patch_covariance_unequal_norms():
    """Unequal patch norms: the ELS Jacobian at 0 uses the SNR-tilted bank (`docs/theory/patch.md#tilted-bank`)."""
    imgs = jax.random.normal(jax.random.PRNGKey(5), (2, 7))
    score = brute_els(imgs, 3)
    t = 0.5
    J = sp.score_jacobian(score, jnp.zeros(7), t)
    c = sp.patch_covariance(imgs, 3, snr=OU.snr(t))
    J_th = _circulant(np.asarray(c), (7,), OU.snr(t) / OU.b2(t), OU.b2(t))
    np.testing.assert_allclose(J, J_th, atol=1e-10)
    c0 = sp.patch_covariance(imgs, 3)
    assert not np.allclose(c, c0, atol=1e-3)  # the untilted bank would be wrong here
    qs = sp.lattice_wavevectors((7,)).reshape(-1, 1)
    mu = sp.mode_stiffness(score, jnp.zeros(7), t, qs)
    C = sp.windowed_patch_covariance(imgs, 3, qs, snr=OU.snr(t))
    np.testing.assert_allclose(mu, (OU.snr(t) * C - 1) / OU.b2(t), atol=1e-10)


# ---------------------------------------------------------------------------------------
# Power iteration and band probes
# ---------------------------------------------------------------------------------------


def test_top_eigenvalue_power_iteration():
    score = uniform_score(3, 1)
    t = 0.4
    for x in (jnp.zeros(10), 0.3 * jax.random.normal(jax.random.PRNGKey(1), (10,))):
        J = sp.score_jacobian(score, x, t)
        S = 0.5 * (J + J.T)
        top = jax.jit(lambda y: sp.jacobian_top_eigenvalue(score, y, t, num_iters=1000))(x)
        np.testing.assert_allclose(top.value, np.linalg.eigvalsh(S)[-1], rtol=1e-8)
        np.testing.assert_allclose(S @ top.vector, top.value * top.vector, atol=1e-5)


def test_band_stiffness():
    # 1-D, one |q| per band: exact
    L, k, t = 16, 5, 0.7
    score = uniform_score(k, 1)
    x0 = jnp.zeros(L)
    bands = sp.band_stiffness(score, x0, t, jax.random.PRNGKey(0), n_bands=L // 2 + 1)
    q = 2 * np.pi * np.arange(L // 2 + 1) / L
    np.testing.assert_allclose(bands.mu, (OU.snr(t) * dirichlet(q[:, None], k) - 1) / OU.b2(t))
    # 2-D: converges to the band average of mu(q)
    shape = (8, 8)
    score2 = uniform_score(3, 2)
    x0 = jnp.zeros(shape)
    bands = sp.band_stiffness(score2, x0, t, jax.random.PRNGKey(1), n_bands=4, n_probes=32)
    qs = np.asarray(sp.lattice_wavevectors(shape)).reshape(-1, 2)
    mu = (OU.snr(t) * dirichlet(qs, 3) - 1) / OU.b2(t)
    qa = np.linalg.norm(qs, axis=1)
    edges = np.asarray(bands.edges)
    for b in range(4):
        sel = (qa >= edges[b]) & (qa < edges[b + 1])
        spread = mu[sel].max() - mu[sel].min()
        assert abs(float(bands.mu[b]) - mu[sel].mean()) < 0.1 * spread + 1e-12
    assert int(np.argmax(np.asarray(bands.mu))) == 0  # the lowest band is the softest


# ---------------------------------------------------------------------------------------
# `docs/theory/field.md#correlation-length`: linear-response correlation length
# ---------------------------------------------------------------------------------------


def xi_theory(k, ab):
    return np.sqrt(k * (k**2 - 1) / 24 * ab / (1 - ab * (1 + k)))


@pytest.mark.parametrize("k,xi", [(3, 0.5), (5, 0.9129), (9, 1.7321)])
def test_correlation_length(k, xi):
    score = uniform_score(k, 1)
    ab = 0.5 / (1 + k)
    t = OU.t_of_alpha_bar(ab)
    got = sp.linear_response_length(score, jnp.zeros(20), t)
    assert abs(float(got) - xi) < 1e-4
    np.testing.assert_allclose(got, xi_theory(k, ab), rtol=1e-10)


def test_correlation_length_from_mode_stiffness():
    """xi^2 = d_{q^2}[-mu] / (-mu(0)) with mu from plane-wave probes on a long lattice."""
    k, L = 5, 512
    score = uniform_score(k, 1)
    ab = 0.5 / (1 + k)
    t = OU.t_of_alpha_bar(ab)
    q1 = 2 * np.pi / L
    mu0, mu1 = sp.mode_stiffness(score, jnp.zeros(L), t, jnp.array([[0.0], [q1]]))
    xi2 = (mu0 - mu1) / q1**2 / (-mu0)
    np.testing.assert_allclose(np.sqrt(xi2), xi_theory(k, ab), rtol=1e-3)


def test_correlation_length_exponent_and_sde():
    k = 5
    score = uniform_score(k, 1)
    ab_c = 1 / (1 + k)
    eps = np.geomspace(1e-6, 1e-3, 5) * ab_c
    ts = OU.t_of_alpha_bar(ab_c - eps)
    xi = jax.vmap(lambda t: sp.linear_response_length(score, jnp.zeros(16), t))(ts)
    slope = np.polyfit(np.log(eps), np.log(np.asarray(xi)), 1)[0]
    assert abs(slope + 0.5) < 0.01
    # reverse-SDE version: xi^2 = 2 kappa / (2 r - 1) (OU), offset 1/2
    ab = 0.05
    t = OU.t_of_alpha_bar(ab)
    kappa = ab * k * (k**2 - 1) / (24 * (1 - ab) ** 2)
    r = (1 - ab * (1 + k)) / (1 - ab) ** 2
    off = sp.drift_offset(OU, t, "sde")
    np.testing.assert_allclose(off, 0.5)
    got = sp.linear_response_length(score, jnp.zeros(16), t, offset=off)
    np.testing.assert_allclose(got, np.sqrt(2 * kappa / (2 * r - 1)), rtol=1e-10)
    # beyond the transition the length is undefined
    assert np.isnan(sp.linear_response_length(score, jnp.zeros(16), OU.t_of_alpha_bar(0.3)))


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


def test_errors():
    imgs = gl.data.uniform_images((8,))
    with pytest.raises(ValueError, match="odd"):
        sp.windowed_patch_covariance(imgs, 4)
    with pytest.raises(ValueError, match="exceeds"):
        sp.critical_alpha_bar(imgs, 9)
    with pytest.raises(ValueError, match="window"):
        sp.patch_covariance(imgs, 0)
    with pytest.raises(ValueError, match="images"):
        sp.patch_covariance(jnp.ones(8), 3)
    score = uniform_score(3, 1)
    with pytest.raises(ValueError, match="qs"):
        sp.mode_stiffness(score, jnp.zeros(8), 0.5, jnp.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match="criterion"):
        sp.drift_offset(OU, 0.5, "bogus")
    with pytest.raises(ValueError, match="sign change"):
        sp.jacobian_critical_time(score, jnp.zeros(8), OU, 1.0, 2.0)
    with pytest.raises(ValueError, match="lattice shape"):
        sp.plane_wave((2, 2, 2), jnp.zeros(3))
    with pytest.raises(ValueError, match="num_iters"):
        sp.jacobian_top_eigenvalue(score, jnp.zeros(8), 0.5, num_iters=0)


def test_band_stiffness_under_jit_and_vmap():
    """band_stiffness traces (its band grid is static NumPy): jit and vmap over t equal eager."""
    f = lambda x, t: gl.scores.uniform_patch_score(gl.OU(), x, t, window=3, lattice_ndim=1)
    x, key, ts = jnp.zeros(16), jax.random.PRNGKey(0), jnp.array([0.3, 0.6])
    eager = np.stack([gl.spectral.band_stiffness(f, x, t, key, n_bands=4).mu for t in ts])
    jitted = jax.jit(lambda t: gl.spectral.band_stiffness(f, x, t, key, n_bands=4).mu)
    np.testing.assert_allclose(np.stack([jitted(t) for t in ts]), eager, rtol=1e-10)
    vm = jax.vmap(lambda t: gl.spectral.band_stiffness(f, x, t, key, n_bands=4).mu)(ts)
    np.testing.assert_allclose(vm, eager, rtol=1e-10)
