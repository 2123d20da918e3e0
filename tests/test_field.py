"""Ginzburg–Landau field theory, correlation lengths and patterns (gltheory.field).

See `docs/theory/field.md#field-theory` (predictions 13–15 of `docs/theory/index.md#predictions`). Oracles: the closed forms
of `docs/theory/field.md#gl-coefficients` and `docs/theory/field.md#correlation-length`, the
plane-wave JVPs and dense Jacobians of gltheory.spectral, autodiff Taylor coefficients of the
exact patch score, brute-force NumPy sums (DFT, correlation function, radial bins), and
planted Gaussian fields with known spectra.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import field as F

OU = gl.OU()


def uniform_score(k, D, process=OU):
    return lambda x, t: gl.scores.uniform_patch_score(process, x, t, window=k, lattice_ndim=D)


# ---------------------------------------------------------------------------------------
# `docs/theory/patch.md#mode-softening`: the patch critical point
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k,D,alpha", [(3, 1, 0.25), (5, 1, 1 / 6), (7, 1, 0.125), (3, 2, 0.1)])
def test_critical_alpha_bar_item13(k, D, alpha):
    cp = F.patch_critical_point(OU, window=k, lattice_ndim=D)
    assert float(cp.alpha_bar) == pytest.approx(alpha, abs=1e-12)
    assert float(OU.alpha_bar(cp.t_score)) == pytest.approx(alpha, abs=1e-10)
    assert cp.t_ode is None  # c_max = k^D >= 1: no probability-flow transition


@pytest.mark.parametrize("k,D,ts,td", [(5, 1, 0.895880, 1.156219), (5, 2, 1.629048, 1.956211)])
def test_critical_times_item13(k, D, ts, td):
    cp = F.patch_critical_point(OU, window=k, lattice_ndim=D)
    assert cp.t_score == pytest.approx(ts, abs=1e-6)
    assert cp.t_sde == pytest.approx(td, abs=1e-6)
    assert cp.t_score == pytest.approx(0.5 * math.log(1 + k**D), abs=1e-10)
    assert cp.t_sde == pytest.approx(0.5 * math.asinh(k**D), abs=1e-10)


@pytest.mark.parametrize("criterion", ["score", "sde"])
def test_critical_time_matches_dense_jacobian(criterion):
    """Same roots as the bisection on the dense autodiff Jacobian (gltheory.spectral)."""
    k = 5
    cp = F.patch_critical_point(OU, window=k, lattice_ndim=1)
    want = cp.t_score if criterion == "score" else cp.t_sde
    got = gl.spectral.jacobian_critical_time(
        uniform_score(k, 1), jnp.zeros(12), OU, 0.3, 3.0, criterion=criterion, tol=1e-11
    )
    assert got == pytest.approx(want, abs=1e-8)


def test_critical_times_other_processes():
    """VE: the three criteria coincide (σ_c² = k); VP: closed forms in ᾱ (`docs/theory/field.md#criterion-times`)."""
    ve = gl.VE("edm")
    cp = F.patch_critical_point(ve, window=3, lattice_ndim=1)
    assert cp.t_score == pytest.approx(math.sqrt(3.0), rel=1e-10)
    assert cp.t_sde == pytest.approx(cp.t_score, rel=1e-10)
    assert cp.t_ode == pytest.approx(cp.t_score, rel=1e-10)
    vp = gl.VP()
    cp = F.patch_critical_point(vp, window=3, lattice_ndim=1)
    assert float(vp.alpha_bar(cp.t_score)) == pytest.approx(0.25, abs=1e-10)
    assert float(vp.alpha_bar(cp.t_sde)) == pytest.approx(math.sqrt(10) - 3, abs=1e-10)


def _plane_wave_spectrum_fn(score, shape, qs):
    """jit(t -> Re<e_q, J e_q>/|e_q|^2 at x=0 for every q), one compile for all t."""
    r = jnp.stack(jnp.meshgrid(*[jnp.arange(n) for n in shape], indexing="ij"), -1)

    @jax.jit
    def spec(t):
        def one(q):
            ph = r @ q
            num = 0.0
            for v in (jnp.cos(ph), jnp.sin(ph)):
                num = num + jnp.vdot(
                    v, jax.jvp(lambda y: score(y, t), (jnp.zeros(shape),), (v,))[1]
                )
            return num / ph.size

        return jax.vmap(one)(qs)

    return spec


def test_general_data_critical_point_and_spectrum():
    """General-data path (critical_alpha_bar / windowed C_k(q) of the images): two-image
    data gives the closed forms; for stripes the exact ELS Jacobian (plane-wave JVPs) has
    eigenvalues mu(q, t) on the whole grid and mu(q*, t_c) = 0 with a sign change."""
    cp2 = F.patch_critical_point(OU, window=3, images=gl.data.uniform_images((10,)))
    cp1 = F.patch_critical_point(OU, window=3, lattice_ndim=1)
    assert cp2.t_score == pytest.approx(cp1.t_score, abs=1e-12)
    assert cp2.t_sde == pytest.approx(cp1.t_sde, abs=1e-12)
    st = gl.data.stripes((8, 8), width=2)
    cp = F.patch_critical_point(OU, window=5, images=st)
    assert float(jnp.linalg.norm(cp.q_star)) == pytest.approx(np.pi / 2)
    bank = gl.patch.bank(st, window=5)
    qs = gl.spectral.lattice_wavevectors((8, 8)).reshape(-1, 2)
    spec = _plane_wave_spectrum_fn(lambda x, t: gl.patch.score(bank, OU, x, t), (8, 8), qs)
    i_star = int(jnp.argmin(jnp.linalg.norm(qs - cp.q_star, axis=1)))
    for t in (cp.t_score, cp.t_score - 0.01, cp.t_score + 0.01, 2.0):
        mu = spec(jnp.asarray(t))
        np.testing.assert_allclose(
            mu, F.patch_mode_spectrum(OU, t, qs, window=5, images=st), rtol=1e-9, atol=1e-9
        )
        if t == cp.t_score:
            assert abs(float(mu[i_star])) < 1e-9
            assert float(jnp.max(mu)) < 1e-9
    assert float(spec(jnp.asarray(cp.t_score - 0.01))[i_star]) > 0


# ---------------------------------------------------------------------------------------
# `docs/theory/patch.md#mode-softening`: plane waves, Dirichlet kernel, mode spectra of the three vector fields
# ---------------------------------------------------------------------------------------


def test_dirichlet_kernel_small_q_item14():
    k = 5
    q = 1e-3
    val = (k - float(F.dirichlet_kernel(jnp.array([q]), k))) / q**2
    assert val == pytest.approx(k * (k * k - 1) / 24, rel=1e-5)  # 5.0000
    qs = jnp.linspace(0.01, 3.0, 7)
    brute = np.array([sum(np.cos(q * d) for d in range(-2, 3)) for q in np.asarray(qs)])
    np.testing.assert_allclose(F.dirichlet_kernel(qs[:, None], k), brute, rtol=1e-12)
    q2 = jnp.array([[0.3, 1.1], [0.0, 0.0]])
    np.testing.assert_allclose(
        F.dirichlet_kernel(q2, 3), [brute3(0.3) * brute3(1.1), 9.0], rtol=1e-12
    )


def brute3(q):
    return 1 + 2 * np.cos(q)


@pytest.mark.parametrize("shape,k", [((16,), 5), ((6, 8), 3)])
@pytest.mark.parametrize("dynamics", ["score", "sde", "ode"])
def test_mode_spectrum_equals_plane_wave_jvp(shape, k, dynamics):
    t = 1.3
    q = gl.spectral.lattice_wavevectors(shape).reshape(-1, len(shape))
    score = uniform_score(k, len(shape))
    if dynamics == "score":
        field = score
    elif dynamics == "sde":
        field = lambda x, t: OU.reverse_drift(x, t, score(x, t))
    else:
        field = lambda x, t: OU.pf_ode_drift(x, t, score(x, t))
    measured = gl.spectral.mode_stiffness(field, jnp.zeros(shape), t, q)
    theory = F.patch_mode_spectrum(OU, t, q, window=k, dynamics=dynamics)
    np.testing.assert_allclose(measured, theory, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------
# GL coefficients (`docs/theory/field.md#gl-coefficients`): closed forms, general-data path, autodiff Taylor coefficients
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("D,k", [(1, 3), (1, 5), (2, 3)])
def test_general_gl_constants_equal_two_image_closed_forms(D, k):
    imgs = gl.data.uniform_images((12,) * D)
    got = F.gl_constants(imgs, k)
    want = F.gl_constants_two_image(k, D)
    for name in ("c0", "c2", "c4"):
        assert float(getattr(got, name)) == pytest.approx(float(getattr(want, name)), rel=1e-12)
    t = jnp.linspace(0.1, 3.0, 9)
    for proc in (OU, gl.VP()):
        c = F.gl_coefficients(got, proc, t)
        ref = F.two_image_gl_coefficients(proc.alpha_bar(t), k, D)
        for a, b in zip(c, ref):
            np.testing.assert_allclose(a, b, rtol=1e-10)


def test_dynamics_variants_ou():
    c = F.gl_constants_two_image(5, 1)
    t = jnp.array([0.5, 1.0, 2.0])
    s = F.gl_coefficients(c, OU, t)
    d = F.gl_coefficients(c, OU, t, dynamics="sde")
    o = F.gl_coefficients(c, OU, t, dynamics="ode")
    np.testing.assert_allclose(d.r, 2 * s.r - 1, rtol=1e-12)
    np.testing.assert_allclose(d.kappa, 2 * s.kappa, rtol=1e-12)
    np.testing.assert_allclose(d.u, 2 * s.u, rtol=1e-12)
    np.testing.assert_allclose(o.r, s.r - 1, rtol=1e-12)
    np.testing.assert_allclose(o.kappa, s.kappa, rtol=1e-12)


def test_general_gl_constants_against_the_exact_patch_score(key):
    """Uniform ±1 plus random ±1 images and their negatives (a symmetric bank with c2 > 0):

    - s(ε·1) = -r ε - u ε³ + O(ε⁵): r and u from Richardson-extrapolated central differences
      of the exact ELS score (h = 0.005; truncation O(h⁴) for r, O(h²) ~ 1e-4 for u);
    - ξ² = κ/r equals the second moment of the exact point response (one JVP,
      gltheory.spectral.linear_response_length).
    """
    shape, k, t = (7, 7), 3, 1.4
    rnd = gl.data.random_binary_images(key, 2, shape).images
    imgs = jnp.concatenate([jnp.ones((1,) + shape), rnd, -jnp.ones((1,) + shape), -rnd])
    bank = gl.patch.bank(imgs, window=k)
    consts = F.gl_constants(imgs, k)
    co = F.gl_coefficients(consts, OU, t)
    h = 0.005
    eps = jnp.array([-2 * h, -h, h, 2 * h])
    vals = jnp.mean(gl.patch.score(bank, OU, eps[:, None, None] * jnp.ones(shape), t), (1, 2))
    fm2, fm1, f1, f2 = (float(v) for v in vals)
    d1 = (8 * (f1 - fm1) - (f2 - fm2)) / (12 * h)
    d3 = (f2 - 2 * f1 + 2 * fm1 - fm2) / (2 * h**3)
    assert d1 == pytest.approx(-float(co.r), rel=1e-8)
    assert d3 == pytest.approx(-6 * float(co.u), rel=1e-3)
    assert float(consts.c2) > 0 and float(co.r) > 0
    got = gl.spectral.linear_response_length(
        lambda x, s: gl.patch.score(bank, OU, x, s), jnp.zeros(shape), t
    )
    assert float(got) == pytest.approx(float(F.gl_correlation_length(consts, OU, t)), rel=1e-9)


# ---------------------------------------------------------------------------------------
# `docs/theory/field.md#correlation-length`: linear-response correlation length
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k,xi", [(3, 0.5), (5, 0.9129), (9, 1.7321)])
def test_xi_check_values_item15(k, xi):
    c = F.gl_constants_two_image(k, 1)
    t = OU.t_of_alpha_bar(1 / (1 + k) / 2)
    assert float(F.gl_correlation_length(c, OU, t)) == pytest.approx(xi, abs=5e-5)
    assert float(F.gl_correlation_length(c, OU, t)) ** 2 == pytest.approx(k * (k - 1) / 24)


def test_xi_divergence_slope_item15():
    k = 5
    abc = 1 / (1 + k)
    eps = jnp.logspace(-6, -3, 13) * abc
    t = OU.t_of_alpha_bar(abc - eps)
    xi = F.gl_correlation_length(F.gl_constants_two_image(k, 1), OU, t)
    fit = gl.meanfield.fit_exponent(eps, xi)
    assert float(fit.slope) == pytest.approx(-0.5, abs=0.01)
    assert bool(jnp.isnan(F.gl_correlation_length(F.gl_constants_two_image(k, 1), OU, 0.5)))


@pytest.mark.parametrize("dynamics", ["score", "sde"])
def test_xi_equals_jacobian_response_length(dynamics):
    k = 5
    c = F.gl_constants_two_image(k, 1)
    for t in (1.3, 2.0):
        want = F.gl_correlation_length(c, OU, t, dynamics=dynamics)
        off = gl.spectral.drift_offset(OU, t, dynamics)
        got = gl.spectral.linear_response_length(uniform_score(k, 1), jnp.zeros(32), t, offset=off)
        assert float(got) == pytest.approx(float(want), rel=1e-10)


# ---------------------------------------------------------------------------------------
# estimators: structure factor, correlation function, radial average, ξ
# ---------------------------------------------------------------------------------------


def test_structure_factor_brute_force(key):
    y = jax.random.normal(key, (3, 5, 6))
    S = F.structure_factor(y)
    Y = np.asarray(y)
    n = 30
    brute = np.zeros((5, 6))
    for m1 in range(5):
        for m2 in range(6):
            ph = np.exp(
                -2j * np.pi * (m1 * np.arange(5)[:, None] / 5 + m2 * np.arange(6)[None, :] / 6)
            )
            brute[m1, m2] = np.mean([abs(np.sum(Y[b] * ph)) ** 2 for b in range(3)]) / n
    np.testing.assert_allclose(S, brute, rtol=1e-10)
    # Parseval: mean_q S = mean of y^2
    assert float(jnp.mean(S)) == pytest.approx(float(jnp.mean(y**2)), rel=1e-12)


def test_correlation_function_and_radial_average_brute_force(key):
    y = np.asarray(jax.random.normal(key, (4, 6, 8)))
    C = np.asarray(F.correlation_function(y))
    brute = np.zeros((6, 8))
    for a in range(6):
        for b in range(8):
            brute[a, b] = np.mean(y * np.roll(y, (-a, -b), axis=(1, 2)))
    np.testing.assert_allclose(C, brute, atol=1e-12)
    prof = F.radial_average(C, space="real")
    r = np.sqrt(
        ((np.arange(6)[:, None] + 3) % 6 - 3) ** 2 + ((np.arange(8)[None, :] + 4) % 8 - 4) ** 2
    )
    idx = np.rint(r).astype(int)
    for j in range(idx.max() + 1):
        sel = idx == j
        if sel.any():
            assert float(prof.value[j]) == pytest.approx(brute[sel].mean(), abs=1e-12)
            assert float(prof.radius[j]) == pytest.approx(r[sel].mean(), abs=1e-12)
            assert int(prof.count[j]) == sel.sum()


def _ar1_spectrum(L, xi):
    rho = math.exp(-1 / xi)
    q = 2 * np.pi * np.fft.fftfreq(L)
    return (1 - rho**2) / (1 - 2 * rho * np.cos(q) + rho**2), rho


def test_xi_estimators_exact_on_closed_form_spectra():
    L, xi = 64, 3.0
    S, rho = _ar1_spectrum(L, xi)  # C(r) = rho^|r| (+ exponentially small wrap-around)
    q1 = 2 * np.pi / L
    kw = dict(from_structure_factor=True)
    want_sm = math.sqrt(2 * rho * (1 - math.cos(q1)) / ((1 - rho) ** 2 * q1**2))
    assert float(F.correlation_length(S, method="second_moment", **kw)) == pytest.approx(
        want_sm, rel=1e-10
    )
    assert float(F.correlation_length(S, method="one_over_e", **kw)) == pytest.approx(xi, rel=1e-3)
    want_int = 0.5 / math.tanh(1 / (2 * xi))  # 1/2 + rho/(1-rho)
    assert float(F.correlation_length(S, method="integrated", **kw)) == pytest.approx(
        want_int, rel=2e-3
    )
    # lattice Ornstein–Zernike spectrum: the Lorentzian fit is exact; continuum Lorentzian in
    # 2-D: the second-moment estimator is exact
    for shape in [(32,), (16, 24)]:
        g = np.meshgrid(*[2 * np.pi * np.fft.fftfreq(n) for n in shape], indexing="ij")
        qhat2 = sum(4 * np.sin(c / 2) ** 2 for c in g)
        q2 = sum(c**2 for c in g)
        got = F.correlation_length(2.0 / (1 + 9 * qhat2), method="lorentzian", **kw)
        assert float(got) == pytest.approx(3.0, rel=1e-10)
        got = F.correlation_length(1.0 / (1 + 4 * q2), method="second_moment", **kw)
        assert float(got) == pytest.approx(2.0, rel=1e-10)


def _planted_field(key, n, shape, xi):
    g = np.meshgrid(*[2 * np.pi * np.fft.fftfreq(m) for m in shape], indexing="ij")
    S = 1.0 / (1 + xi**2 * sum(c**2 for c in g))
    z = np.asarray(jax.random.normal(key, (n,) + shape))
    ax = tuple(range(1, len(shape) + 1))
    # the filtering in NumPy (no one-op compilations per shape); a float64 NumPy array
    return np.real(np.fft.ifftn(np.fft.fftn(z, axes=ax) * np.sqrt(S), axes=ax)), S


@pytest.mark.parametrize("shape", [(32,), (24, 24)])
def test_second_moment_recovers_planted_xi(key, shape):
    """Gaussian field with S = 1/(1 + ξ²q²) generated by FFT; ξ = 4.

    Delta-method SE of the ratio R = S(0)/S(q1): S(0) is a mean of n χ²₁ (rel. SE √(2/n)),
    each S(±q1 ê_a) a mean of n exponentials (rel. SE 1/√(n·2D) over the 2D copies in 2-D);
    SE(ξ) = SE(R)/(2 ξ q1²). Test within 4 SE (fixed seed).
    """
    xi, n = 4.0, 2000
    y, S = _planted_field(key, n, shape, xi)
    D = len(shape)
    q1 = 2 * np.pi / shape[0]
    R = 1 + xi**2 * q1**2
    se_R = R * math.sqrt(2 / n + 1 / (n * D))
    se_xi = se_R / (2 * xi * q1**2)
    got = float(F.correlation_length(y))
    assert abs(got - xi) < 4 * se_xi, (got, se_xi)


def test_estimators_batch_jit_and_vmap(key):
    y, _ = _planted_field(key, 50, (16, 16), 2.0)
    S = jax.vmap(lambda z: F.structure_factor(z))(y[:30].reshape(3, 10, 16, 16))
    xi_stack = F.correlation_length(S, axes=(-2, -1), from_structure_factor=True)
    xi_each = jnp.stack([F.correlation_length(s, from_structure_factor=True) for s in S])
    np.testing.assert_allclose(xi_stack, xi_each, rtol=1e-12)
    for m in ("one_over_e",):
        a = jax.jit(
            lambda s, m=m: F.correlation_length(
                s, axes=(-2, -1), from_structure_factor=True, method=m
            )
        )(S)
        b = jnp.stack([F.correlation_length(s, from_structure_factor=True, method=m) for s in S])
        np.testing.assert_allclose(a, b, rtol=1e-12)
    g = jax.grad(lambda t: F.gl_correlation_length(F.gl_constants_two_image(5, 1), OU, t))(2.0)
    assert bool(jnp.isfinite(g)) and float(g) < 0  # ξ grows towards t_c


def test_float32_paths(key):
    y, _ = _planted_field(key, 16, (16, 16), 2.0)
    y32 = y.astype(jnp.float32)
    S = F.structure_factor(y32)
    assert S.dtype == jnp.float32
    for m in ("second_moment", "integrated", "one_over_e", "lorentzian"):
        v = F.correlation_length(y32, method=m)
        assert v.dtype == jnp.float32 and bool(jnp.isfinite(v))
    c = jax.tree.map(lambda v: v.astype(jnp.float32), F.gl_constants_two_image(3, 2))
    t = jnp.array([1e-6, 1e-3, 0.5, 3.0], jnp.float32)
    co = F.gl_coefficients(c, OU, t, dynamics="sde")
    assert all(bool(jnp.all(jnp.isfinite(v))) and v.dtype == jnp.float32 for v in co)
    ts = gl.time_grid(OU, 60, t_min=0.6, t_max=3.0).astype(jnp.float32)
    assert bool(jnp.all(-jnp.diff(ts) < F.gl_stable_step(c, OU, ts[:-1])))
    # float64 constants on a float32 state: the state's precision wins (as in the sampler)
    x0 = jax.random.normal(key, (4, 8, 8), jnp.float32)
    s = F.GLScore(F.gl_constants_two_image(3, 2), OU)(x0, ts[-1])
    assert s.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(s)))


# ---------------------------------------------------------------------------------------
# streaming S(q, t) inside the sampler
# ---------------------------------------------------------------------------------------


def test_streamed_structure_factor_equals_saved_states(key):
    """One run records the streamed S(q, t) (state and denoised field) and the states
    themselves at the same saved times; S recomputed from the saved states is identical."""
    k, shape = 3, (10, 12)
    score = uniform_score(k, 2)
    den = F.tweedie_denoiser(score, OU)
    ts = gl.time_grid(OU, 30, t_min=0.2, t_max=3.0)
    save = [0, 10, 25, 29, 30]
    stream = F.structure_factor_observer(lattice_ndim=2, denoiser=den, keep_denoised=True)
    obs = lambda x, t: (stream(x, t), x)
    sol = gl.sample(score, OU, key, (6,) + shape, ts=ts, observe=obs, save_at=save)
    streamed, states = sol.observables
    want = jnp.stack([F.structure_factor(x) for x in states])
    np.testing.assert_allclose(streamed["S"], want, rtol=1e-12, atol=1e-14)
    dens = jnp.stack([den(x, t) for x, t in zip(states, sol.saved_ts)])
    want_d = jnp.stack([F.structure_factor(m) for m in dens])
    np.testing.assert_allclose(streamed["S_denoised"], want_d, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(states[-1], sol.x, rtol=1e-14)
    inc = F.increment_structure_factor(streamed["denoised"], lattice_ndim=2)
    np.testing.assert_allclose(inc[1], F.structure_factor(dens[2] - dens[1]), rtol=1e-10)
    # the Tweedie denoiser of the two-image patch score is tanh(a Kx / b^2)
    x, t = states[2], sol.saved_ts[2]
    kx = sum(jnp.roll(x, (i, j), (1, 2)) for i in (-1, 0, 1) for j in (-1, 0, 1))
    want_m = jnp.tanh(OU.a(t) * kx / OU.b2(t))
    np.testing.assert_allclose(den(x, t), want_m, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------
# GL dynamics and the comparison with the exact patch score
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,k", [((16,), 5), ((8, 10), 3)])
def test_gl_score_linear_and_cubic_terms(shape, k):
    D = len(shape)
    c = F.gl_constants_two_image(k, D)
    gls = F.GLScore(c, OU)
    t = 1.7
    co = F.gl_coefficients(c, OU, t)
    q = gl.spectral.lattice_wavevectors(shape).reshape(-1, D)
    mu = gl.spectral.mode_stiffness(gls, jnp.zeros(shape), t, q)
    qhat2 = jnp.sum(4 * jnp.sin(q / 2) ** 2, axis=-1)
    np.testing.assert_allclose(mu, -(co.r + co.kappa * qhat2), rtol=1e-10, atol=1e-10)
    e = 0.1
    np.testing.assert_allclose(gls(e * jnp.ones(shape), t), -co.r * e - co.u * e**3, rtol=1e-12)
    # small smooth fields: GL ≈ exact score, error O(amplitude^5, q^4)
    x = 1e-2 * gl.spectral.plane_wave(shape, q[1])
    exact = uniform_score(k, D)(x, t)
    rel = float(jnp.linalg.norm(gls(x, t) - exact) / jnp.linalg.norm(exact))
    assert rel < 0.05


def test_fft_uniform_score_equals_uniform_patch_score(key):
    for shape, k in [((8, 10), 3)]:
        x = jax.random.normal(key, (3,) + shape)
        f = F._uniform_score_fft(OU, k, shape, x.dtype)
        np.testing.assert_allclose(f(x, 0.7), uniform_score(k, len(shape))(x, 0.7), rtol=1e-10)


@pytest.mark.slow  # the same claim is a row of the field_gl report experiment (test below)
def test_compare_gl_exact_small(key):
    """Same keys ⇒ identical start and noise: the two runs agree while the dynamics is linear,
    the GL length tracks the exact one, and the final domain lengths agree within 30 %."""
    ts = gl.time_grid(OU, 120, t_min=0.6, t_max=3.0)
    c = F.compare_gl_exact(
        OU, key, lattice_shape=(128,), window=5, n=16, ts=ts, save_at=[0, 10, 60, 120]
    )
    np.testing.assert_allclose(c.S_exact[0], c.S_gl[0], rtol=1e-12)
    np.testing.assert_allclose(c.S_exact[1], c.S_gl[1], rtol=0.05)
    assert c.t_c.t_sde == pytest.approx(0.5 * math.asinh(5))
    assert bool(jnp.isnan(c.xi_theory[-1])) and bool(jnp.isfinite(c.xi_theory[1]))
    ratio = float(c.domains_gl.domain_length / c.domains_exact.domain_length)
    assert 0.7 < ratio < 1.3, ratio
    assert float(c.sign_agreement) > 0.7


# ---------------------------------------------------------------------------------------
# pattern formation
# ---------------------------------------------------------------------------------------


def test_domain_statistics_exact_patterns(key):
    st = gl.data.stripes((12, 12), width=3, orientation="vertical").images
    d = F.domain_statistics(st)
    assert float(d.wall_density) == pytest.approx(1 / 6)
    assert float(d.domain_length) == pytest.approx(6.0)
    cb = gl.data.checkerboards((12, 12), width=2).images
    assert float(F.domain_statistics(cb).domain_length) == pytest.approx(2.0)
    one_d = jnp.array([[1.0, 1, 1, -1, -1, 1, 1, 1, 1, -1]])  # walls at 3 bonds ... 4 walls
    assert float(F.domain_statistics(one_d).domain_length) == pytest.approx(10 / 4)
    assert float(F.domain_statistics(jnp.ones((2, 8))).domain_length) == math.inf
    iid = jnp.where(jax.random.bernoulli(key, 0.5, (400, 32)), 1.0, -1.0)
    d = F.domain_statistics(iid)
    assert abs(float(d.wall_density) - 0.5) < 4 * float(d.wall_density_se)


@pytest.mark.slow  # the same claim is a row of the field_gl report experiment (test below)
def test_domain_length_proportional_to_window(key):
    """`docs/theory/field.md#pattern-formation`: ℓ ∝ k. Log-log exponent within 3 SE + 0.1 (systematic) of 1."""
    ts = gl.time_grid(OU, 100, t_min=1e-3, t_max=3.0)
    r = F.domain_length_scaling(OU, key, windows=[3, 5, 7], lattice_shape=(256,), n=16, ts=ts)
    assert abs(float(r.exponent) - 1) < 3 * float(r.exponent_se) + 0.1
    assert float(r.slope) > 5 * float(r.slope_se)


def test_emergent_wavelength_is_q_star(key):
    """Stripes of width 2 seen through a 5x5 window soften first at |q*| = π/2; the final
    samples' structure factor peaks there."""
    st = gl.data.stripes((8, 8), width=2)
    cp = F.patch_critical_point(OU, window=5, images=st)
    bank = gl.patch.bank(st, window=5)
    ts = gl.time_grid(OU, 40, t_min=1e-3, t_max=3.0)
    sol = gl.sample(lambda x, t: gl.patch.score(bank, OU, x, t), OU, key, (6, 8, 8), ts=ts)
    q, qa = F.peak_wavevector(sol.x)
    assert float(qa) == pytest.approx(float(jnp.linalg.norm(cp.q_star)), abs=1e-12)


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------


def test_bad_input_raises():
    bad = [
        lambda: F.structure_factor(jnp.zeros((2, 3, 4, 5))),
        lambda: F.structure_factor(jnp.zeros((4, 8)), axes=(0,)),
        lambda: F.structure_factor(jnp.zeros((4, 1))),
        lambda: F.structure_factor(jnp.zeros((4, 8), jnp.complex64)),
        lambda: F.correlation_length(jnp.zeros((4, 8)), method="peak"),
        lambda: F.correlation_length(jnp.ones(8), from_structure_factor="yes"),
        lambda: F.correlation_length(
            jnp.ones(8), from_structure_factor=True, method="lorentzian", q_max=0.1
        ),
        lambda: F.radial_average(jnp.ones(8), space="polar"),
        lambda: F.radial_average(jnp.ones(8), bin_width=-1.0),
        lambda: F.gl_constants_two_image(4, 1),
        lambda: F.gl_constants_two_image(3, 3),
        lambda: F.gl_constants(gl.data.uniform_images((4,)), 5),
        lambda: F.gl_coefficients(F.gl_constants_two_image(3, 1), OU, 1.0, dynamics="drift"),
        lambda: F.gl_coefficients(F.gl_constants_two_image(3, 1), "OU", 1.0),
        lambda: F.patch_mode_spectrum(OU, 1.0, window=3),
        lambda: F.patch_critical_point(OU, window=3),
        lambda: F.structure_factor_observer(lattice_ndim=1, keep_denoised=True),
        lambda: F.increment_structure_factor(jnp.zeros((1, 2, 8)), lattice_ndim=1),
        lambda: F.compare_gl_exact(
            OU, jax.random.PRNGKey(0), lattice_shape=(4,), window=5, n=2, ts=jnp.array([1.0, 0.5])
        ),
        lambda: F.domain_length_scaling(
            OU,
            jax.random.PRNGKey(0),
            windows=[3, 5],
            lattice_shape=(16,),
            n=2,
            ts=jnp.array([1.0, 0.5]),
        ),
        lambda: F.lattice_laplacian(jnp.zeros(4), 2),
        # GL explicit steps beyond the stability limit
        lambda: F.compare_gl_exact(
            OU,
            jax.random.PRNGKey(0),
            lattice_shape=(16,),
            window=5,
            n=2,
            ts=gl.time_grid(OU, 5, t_min=0.1, t_max=3.0),
        ),
    ]
    for i, f in enumerate(bad):
        with pytest.raises(ValueError):
            f()
            pytest.fail(f"case {i} did not raise")


def test_gl_score_traces_once(key):
    """New times and new coefficient values reuse the compiled sampler (no retrace)."""
    c = F.gl_constants_two_image(3, 1)
    calls = []

    @eqx.filter_jit
    def run(consts, ts):
        calls.append(1)
        return gl.sample(F.GLScore(consts, OU), OU, key, jnp.zeros((2, 16)), ts=ts).x

    run(c, gl.time_grid(OU, 10, t_min=0.8, t_max=2.0))
    c2 = F.GLConstants(c.c0 * 1.1, c.c2, c.c4, lattice_ndim=1)
    run(c2, gl.time_grid(OU, 10, t_min=0.7, t_max=2.5))
    assert len(calls) == 1


def test_report_experiment_rows_ok(key):
    """The field_gl report experiment (quick config): every row ok (xi check value and slope,
    critical times, domain length vs k, GL vs exact)."""
    from gltheory.experiments.field import EXPERIMENTS
    from gltheory.report import ReportConfig

    res = EXPERIMENTS[0].run(ReportConfig.default(quick=True), key)
    bad = [(r.name, r.theory, r.measured, r.se, r.tol) for r in res.rows if not r.ok]
    assert not bad, bad
    assert len(res.rows) >= 8 and "field_gl.png" in res.figures
