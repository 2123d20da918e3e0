"""Patch machines (LS, ELS, bbELS, IS, ES) against brute-force loops and exact oracles.

See `docs/theory/patch.md#patch-machines` (predictions 13, 14, 16 of `docs/theory/index.md#predictions`).
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory.patch import PatchBank, PatchPosterior

OU = gl.OU()


# ----------------------------------------------------------------------------------------------
# brute force: explicit loops over sites and candidate patches (NumPy, float64)
# ----------------------------------------------------------------------------------------------


def _axis_offset(i, n, r):
    """Border offset of index i along an axis of length n: ('lo', d), ('hi', d) or 'in'."""
    if i < r:
        return ("lo", i)
    if i >= n - r:
        return ("hi", n - 1 - i)
    return "in"


def _get(z, i, j, periodic):
    """z[i, j, :] with circular or zero padding (z shape (H, W, C))."""
    h, w = z.shape[:2]
    if periodic:
        return z[i % h, j % w]
    if 0 <= i < h and 0 <= j < w:
        return z[i, j]
    return np.zeros(z.shape[2])


def brute_force(x, t, images, weights, kernel, machine):
    """Posterior statistics per site by loops. x (H, W, C), images (N, H, W, C)."""
    a = float(OU.a(t))
    b2 = float(OU.b2(t))
    h, w, c = x.shape
    rh, rw = kernel[0] // 2, kernel[1] // 2
    offs = [(di, dj) for di in range(-rh, rh + 1) for dj in range(-rw, rw + 1)]
    mean = np.zeros((h, w, c))
    m2 = np.zeros((h, w, c))
    m4 = np.zeros((h, w, c))
    ent = np.zeros((h, w))
    for i, j in itertools.product(range(h), range(w)):
        logws, vals = [], []
        for n in range(images.shape[0]):
            y = images[n]
            if machine == "ls":
                d = 0.0
                for di, dj in offs:
                    if 0 <= i + di < h and 0 <= j + dj < w:
                        d += np.sum((x[i + di, j + dj] - a * y[i + di, j + dj]) ** 2)
                logws.append(math.log(weights[n]) - d / (2 * b2))
                vals.append(y[i, j])
                continue
            for p, q in itertools.product(range(h), range(w)):
                if machine == "els_valid" and not (rh <= p < h - rh and rw <= q < w - rw):
                    continue
                if machine == "bbels" and (
                    _axis_offset(p, h, rh) != _axis_offset(i, h, rh)
                    or _axis_offset(q, w, rw) != _axis_offset(j, w, rw)
                ):
                    continue
                periodic = machine in ("els", "els_valid")
                d = 0.0
                for di, dj in offs:
                    xv = _get(x, i + di, j + dj, periodic)
                    yv = _get(y, p + di, q + dj, periodic)
                    d += np.sum((xv - a * yv) ** 2)
                logws.append(math.log(weights[n]) - d / (2 * b2))
                vals.append(y[p, q])
        lw = np.array(logws)
        pw = np.exp(lw - lw.max())
        pw /= pw.sum()
        v = np.array(vals)
        mean[i, j] = pw @ v
        m2[i, j] = pw @ v**2
        m4[i, j] = pw @ v**4
        nz = pw > 0
        ent[i, j] = -np.sum(pw[nz] * np.log(pw[nz]))
    return mean, m2, m4, ent


MACHINES = {
    # name: (equivariant, boundary, training_padding)
    "ls": (False, "zero", "circular"),
    "els": (True, "periodic", "circular"),
    "els_valid": (True, "periodic", "valid"),
    "bbels": (True, "zero", "circular"),
}


def _setup(ndim, channels, n=3, seed=0):
    lattice = (7,) if ndim == 1 else (5, 6)
    shape = lattice + ((channels,) if channels > 1 else ())
    rng = np.random.default_rng(seed)  # NumPy draws: no eager JAX programs to compile per shape
    images = rng.standard_normal((n,) + shape)
    x = rng.standard_normal((2,) + shape)
    weights = rng.uniform(0.5, 1.5, n)
    return lattice, shape, images, x, weights / weights.sum()


def _to4(z, lattice, c):
    h, w = (1, lattice[0]) if len(lattice) == 1 else lattice
    return np.asarray(z).reshape(-1, h, w, c)


def _brute_batch(x, t, images, weights, lattice, c, machine):
    """Brute force for each batch element of ``x`` (times ``t``, 3-wide window): tuples
    (mean, second, fourth, entropy, score) shaped like the (1 or H, W, C) site grid."""
    kernel = (1, 3) if len(lattice) == 1 else (3, 3)
    x4, y4 = _to4(x, lattice, c), _to4(images, lattice, c)
    out = []
    for b in range(x4.shape[0]):
        mean, m2, m4, ent = brute_force(
            x4[b], float(t[b]), y4, np.asarray(weights), kernel, machine
        )
        a, b2 = float(OU.a(t[b])), float(OU.b2(t[b]))
        out.append((mean, m2, m4, ent, (a * mean - x4[b]) / b2))
    return out


# Fast tier: a pairwise cover (each machine with both lattice dimensions and both channel
# counts, every ndim x channels pair at least twice); the rest of the product is slow.
_FAST_BRUTE = {
    ("ls", 1, 2),
    ("ls", 2, 1),
    ("els", 1, 1),
    ("els", 2, 2),
    ("els_valid", 1, 2),
    ("els_valid", 2, 1),
    ("bbels", 1, 1),
    ("bbels", 2, 2),
}


@pytest.mark.parametrize(
    "channels,ndim,machine",
    [
        pytest.param(
            c, d, m, marks=() if (m, d, c) in _FAST_BRUTE else pytest.mark.slow, id=f"{c}-{d}-{m}"
        )
        for c in (1, 2)
        for d in (1, 2)
        for m in MACHINES
    ],
)
def test_fast_equals_brute_force(machine, ndim, channels):
    lattice, shape, images, x, weights = _setup(ndim, channels)
    equivariant, boundary, tp = MACHINES[machine]
    data = gl.LatticeImages(images, weights)
    bank = gl.patch.bank(
        data,
        window=3,
        equivariant=equivariant,
        boundary=boundary,
        lattice_ndim=ndim,
        training_padding=tp,
    )
    t = jnp.array([0.3, 0.7])  # one time per batch element
    st = gl.patch.posterior_stats(bank, OU, x, t, chunk_size=5)
    assert isinstance(st, PatchPosterior)
    for b, (mean, m2, m4, ent, score) in enumerate(
        _brute_batch(x, t, images, weights, lattice, channels, machine)
    ):
        got = lambda z: np.asarray(z[b]).reshape(mean.shape)
        np.testing.assert_allclose(got(st.mean), mean, atol=1e-10, rtol=0)
        np.testing.assert_allclose(got(st.variance), m2 - mean**2, atol=1e-10, rtol=0)
        np.testing.assert_allclose(got(st.fourth), m4, atol=1e-10, rtol=0)
        np.testing.assert_allclose(got(st.binder), 1 - m4 / (3 * m2**2), atol=1e-9, rtol=0)
        np.testing.assert_allclose(np.asarray(st.entropy[b]).reshape(ent.shape), ent, atol=1e-10)
        np.testing.assert_allclose(got(st.score), score, atol=1e-9, rtol=1e-10)
    if equivariant:  # candidates extracted chunk by chunk from the images: the same numbers
        streamed = gl.patch.bank(
            data,
            window=3,
            equivariant=equivariant,
            boundary=boundary,
            lattice_ndim=ndim,
            training_padding=tp,
            materialize=False,
        )
        assert streamed.streamed and streamed.num_candidates == bank.num_candidates
        for cs in (None, 2):
            got_s = gl.patch.posterior_stats(streamed, OU, x, t, chunk_size=cs)
            for f in PatchPosterior._fields:
                np.testing.assert_allclose(
                    getattr(got_s, f), getattr(st, f), atol=1e-10, rtol=1e-10, err_msg=f
                )
    # the raw-images path gives the same thing as the bank path
    if tp == "circular":
        s2 = gl.patch.score(
            data,
            OU,
            x,
            t,
            window=3,
            equivariant=equivariant,
            boundary=boundary,
            lattice_ndim=ndim,
        )
        np.testing.assert_allclose(s2, st.score, atol=1e-10, rtol=0)


@pytest.mark.parametrize("as_dot", [False, True])
def test_els_sum_forms_equal_brute_force(as_dot, monkeypatch):
    """The ELS fast pass forms its chunk sums as a fused multiply-reduce on CPU and as a GEMM on
    accelerators; both forms (forced here) agree with the explicit loops, moments included."""
    import gltheory.patch as gp

    # The form is chosen at trace time: a chunk size of its own per form (4: 23 chunks, 7: 13
    # chunks, both with a short last one) gives each form fresh traces without clearing JAX's
    # caches (which would recompile everything after this test); the count proves the traces.
    traced = []
    monkeypatch.setattr(gp, "_sums_as_dot", lambda: traced.append(as_dot) or as_dot)
    chunk = 7 if as_dot else 4
    lattice, shape, images, x, weights = _setup(2, 2)
    bank = gl.patch.bank(gl.LatticeImages(images, weights), window=3, lattice_ndim=2)
    t = jnp.array([0.3, 0.7])
    st = gl.patch.posterior_stats(bank, OU, x, t, chunk_size=chunk)
    assert traced, "posterior_stats was not traced with the forced form"
    n_traced = len(traced)
    sc = gl.patch.score(bank, OU, x, t, chunk_size=chunk)
    assert len(traced) > n_traced, "score was not traced with the forced form"
    for b, (mean, m2, m4, ent, score) in enumerate(
        _brute_batch(x, t, images, weights, lattice, 2, "els")
    ):
        got = lambda z: np.asarray(z[b]).reshape(mean.shape)
        np.testing.assert_allclose(got(st.mean), mean, atol=1e-10, rtol=0)
        np.testing.assert_allclose(got(st.second), m2, atol=1e-10, rtol=0)
        np.testing.assert_allclose(got(st.fourth), m4, atol=1e-10, rtol=0)
        np.testing.assert_allclose(np.asarray(st.entropy[b]).reshape(ent.shape), ent, atol=1e-10)
        np.testing.assert_allclose(got(sc), score, atol=1e-9, rtol=1e-10)


@pytest.mark.parametrize(
    "machine",
    [
        "ls",
        # ELS and bbELS: their multi-chunk passes (chunk_size=5 with a short last chunk, and the
        # streamed bank at chunk sizes None and 2) are checked against brute force by the fast
        # test_fast_equals_brute_force[*-els] and [*-bbels]; the full chunk-size sweep is slow
        pytest.param("els", marks=pytest.mark.slow),
        pytest.param("bbels", marks=pytest.mark.slow),
    ],
)
def test_chunked_equals_one_shot(machine):
    lattice, shape, images, x, _ = _setup(2, 2, n=4, seed=1)
    equivariant, boundary, _ = MACHINES[machine]
    bank = gl.patch.bank(
        images, window=3, equivariant=equivariant, boundary=boundary, lattice_ndim=2
    )
    m = bank.num_candidates
    ref = gl.patch.posterior_stats(bank, OU, x, 0.4, chunk_size=m)
    sizes = {1, 3, m - 1} if m > 2 else {1}
    for cs in sizes:  # 3 and m-1 do not divide m, so the last chunk is short
        got = gl.patch.posterior_stats(bank, OU, x, 0.4, chunk_size=cs)
        for f in ("mean", "second", "fourth", "entropy"):
            np.testing.assert_allclose(getattr(got, f), getattr(ref, f), atol=1e-12, rtol=0)
    # a tiny memory budget (chunk of one candidate) is still exact
    got = gl.patch.posterior_stats(bank, OU, x, 0.4, memory_budget=1)
    np.testing.assert_allclose(got.mean, ref.mean, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "dtype,tol,lattice",
    [  # fast: each dtype and each lattice dimension once; the other two pairs are slow
        (jnp.float64, 1e-10, (6,)),
        pytest.param(jnp.float64, 1e-10, (3, 4), marks=pytest.mark.slow),
        pytest.param(jnp.float32, 1e-6, (6,), marks=pytest.mark.slow),
        (jnp.float32, 1e-6, (3, 4)),
    ],
)
def test_ls_large_window_is_ideal_score(lattice, dtype, tol):
    """`docs/theory/patch.md#machines`: LS with k >= 2H - 1 equals the ideal score."""
    rng = np.random.default_rng(3)
    images = rng.choice(np.array([-1.0, 1.0]), (5,) + lattice).astype(dtype)
    w = rng.uniform(0.5, 1.5, 5)
    data = gl.LatticeImages(images, (w / w.sum()).astype(dtype))
    x = (0.5 * rng.standard_normal((3,) + lattice)).astype(dtype)
    t = 0.4
    ref = gl.score(data, OU, x, t)
    k = 2 * max(lattice) - 1
    for window in (k, k + 2, None):
        s = gl.patch.score(data, OU, x, t, window=window, equivariant=False)
        assert s.dtype == dtype
        s, r = np.asarray(s), np.asarray(ref)
        err = float(np.max(np.abs(s - r)) / np.max(np.abs(r)))
        assert err <= tol, (window, err)


@pytest.mark.parametrize("boundary", ["periodic", "zero"])
def test_els_constant_image_returns_constant(boundary):
    """`docs/theory/patch.md#machines`: one constant training image y = c gives the denoiser c everywhere."""
    images = jnp.full((1, 5, 6, 2), 0.7)
    x = np.random.default_rng(4).standard_normal((3, 5, 6, 2))
    m = gl.patch.denoiser(images, OU, x, 0.2, window=3, boundary=boundary, lattice_ndim=2)
    np.testing.assert_allclose(m, 0.7, atol=1e-12)


@pytest.mark.parametrize(
    "lattice,window",
    [
        ((9,), 3),
        ((9,), 9),
        # 2-D: the same claim on the same lattice runs fast with k = 5; k = 3 is slow
        pytest.param((5, 6), 3, marks=pytest.mark.slow),
        ((5, 6), 5),
    ],
)
def test_els_commutes_with_circular_shifts(lattice, window):
    """`docs/theory/patch.md#machines`: periodic ELS is translation equivariant (max abs error <= 1e-6)."""
    rng = np.random.default_rng(5)
    images = rng.standard_normal((2,) + lattice).astype(np.float32)
    x = rng.standard_normal((2,) + lattice).astype(np.float32)
    bank = gl.patch.bank(images, window=window)
    s = np.asarray(gl.patch.score(bank, OU, x, 0.5))
    for shift in ((1,), (3,)) if len(lattice) == 1 else ((1, 0), (0, 2), (2, 3)):
        axes = tuple(range(1, 1 + len(lattice)))
        s_shift = np.asarray(gl.patch.score(bank, OU, np.roll(x, shift, axes), 0.5))
        assert float(np.max(np.abs(s_shift - np.roll(s, shift, axes)))) <= 1e-6


@pytest.mark.parametrize(
    "lattice,window",
    [  # fast: 1-D (k = 5) and 2-D (k = 3); 1-D with k = 3 is slow
        pytest.param((8,), 3, marks=pytest.mark.slow),
        ((8,), 5),
        ((5, 6), 3),
    ],
)
def test_els_two_uniform_images_is_uniform_patch_score(lattice, window):
    """`docs/theory/patch.md#two-image-score`: ELS of {+1, -1} is the exact tanh local score."""
    data = gl.data.uniform_images(lattice)
    x = 0.3 * np.random.default_rng(6).standard_normal((3,) + lattice)
    for t in (0.1, 0.6, 1.5):
        s = gl.patch.score(data, OU, x, t, window=window)
        ref = gl.scores.uniform_patch_score(OU, x, t, window=window, lattice_ndim=len(lattice))
        np.testing.assert_allclose(s, ref, atol=1e-10, rtol=1e-10)


def test_plane_waves_are_eigenvectors():
    """`docs/theory/patch.md#mode-softening`: jvp(score, 0, e_q) = mu(q, t) e_q, mu = (SNR K(q) - 1)/b^2 (Dirichlet K)."""
    n, k, t = 12, 5, 0.7
    bank = gl.patch.bank(gl.data.uniform_images((n,)), window=k)
    snr, b2 = float(OU.snr(t)), float(OU.b2(t))
    for m in (0, 1, 3):
        q = 2 * np.pi * m / n
        e = np.cos(q * np.arange(n))
        _, jv = jax.jvp(lambda z: gl.patch.score(bank, OU, z, t), (np.zeros(n),), (e,))
        kq = k if m == 0 else np.sin(k * q / 2) / np.sin(q / 2)
        np.testing.assert_allclose(jv, (snr * kq - 1) / b2 * e, atol=1e-9)


@pytest.mark.parametrize(
    "images,ndim,boundary",
    [  # fast: every image set and both boundaries once; the other three pairs are slow
        (gl.data.stripes((6, 6), width=1), 2, "periodic"),
        pytest.param(gl.data.stripes((6, 6), width=1), 2, "zero", marks=pytest.mark.slow),
        pytest.param(gl.data.checkerboards((4, 6)), 2, "periodic", marks=pytest.mark.slow),
        (gl.data.checkerboards((4, 6)), 2, "zero"),
        pytest.param(gl.data.stripes((8,), width=2), 1, "periodic", marks=pytest.mark.slow),
        (gl.data.stripes((8,), width=2), 1, "zero"),
    ],
)
def test_merged_duplicates_equal_unmerged(images, ndim, boundary):
    x = np.random.default_rng(7).standard_normal((2,) + images.event_shape)
    merged = gl.patch.bank(images, window=3, boundary=boundary, lattice_ndim=ndim)
    plain = gl.patch.bank(images, window=3, boundary=boundary, lattice_ndim=ndim, merge=False)
    assert merged.num_candidates < plain.num_candidates
    a = gl.patch.posterior_stats(merged, OU, x, 0.3)
    b = gl.patch.posterior_stats(plain, OU, x, 0.3, chunk_size=7)
    for f in PatchPosterior._fields:
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), atol=1e-10, rtol=0)


@pytest.mark.parametrize("machine", ["ls", "els", "bbels"])
def test_float32_finite_at_small_t(machine):
    equivariant, boundary, _ = MACHINES[machine]
    images = gl.data.stripes((6, 6), width=1).images.astype(jnp.float32)
    images = np.concatenate([images, images])  # duplicated images and patches
    x = np.random.default_rng(8).standard_normal((2, 6, 6)).astype(np.float32)
    bank = gl.patch.bank(images, window=3, equivariant=equivariant, boundary=boundary, merge=False)
    for t in (1e-6, 1e-4, 1e-2, 1.0):
        st = gl.patch.posterior_stats(bank, OU, x, jnp.float32(t), chunk_size=5)
        for f in ("mean", "score", "variance", "entropy"):
            assert np.all(np.isfinite(np.asarray(getattr(st, f)))), (t, f)
        assert st.score.dtype == jnp.float32


def test_bbels_falls_back_to_ls_for_large_windows():
    _, _, images, x, _ = _setup(2, 1)
    s = gl.patch.score(images, OU, x, 0.3, window=5, boundary="zero")  # k = 5 >= H = 5
    ref = gl.patch.score(images, OU, x, 0.3, window=5, equivariant=False)
    assert gl.patch.bank(images, window=5, boundary="zero").kind == "ls"
    np.testing.assert_allclose(s, ref, atol=1e-12)


def test_jit_and_sampler():
    data = gl.data.stripes((6, 6), width=1)
    bank = gl.patch.bank(data, window=3, boundary="zero")
    assert isinstance(bank, PatchBank)
    f = jax.jit(lambda z, t: gl.patch.score(bank, OU, z, t))
    x = jax.random.normal(jax.random.PRNGKey(9), (2, 6, 6))
    np.testing.assert_allclose(f(x, 0.5), gl.patch.score(bank, OU, x, 0.5), atol=1e-12)
    # a bank built from closed-over images inside jit is still merged (eager precompute)
    g = jax.jit(lambda z: gl.patch.score(data, OU, z, 0.5, window=3, boundary="zero"))
    np.testing.assert_allclose(g(x), f(x, 0.5), atol=1e-12)
    sol = gl.sample(
        lambda z, t: gl.patch.score(bank, OU, z, t),
        OU,
        jax.random.PRNGKey(0),
        (3, 6, 6),
        ts=gl.time_grid(OU, 10, t_min=1e-2),
    )
    assert sol.x.shape == (3, 6, 6)
    assert bool(jnp.all(jnp.isfinite(sol.x)))


def test_bad_input():
    images = jnp.ones((2, 6, 6))
    x = jnp.zeros((6, 6))
    with pytest.raises(ValueError, match="odd"):
        gl.patch.score(images, OU, x, 0.5, window=4)
    with pytest.raises(ValueError, match="one size per lattice axis"):
        gl.patch.score(images, OU, x, 0.5, window=(3,))
    with pytest.raises(ValueError, match="exceeds the lattice"):
        gl.patch.score(images, OU, x, 0.5, window=7)
    with pytest.raises(ValueError, match="trailing axes"):
        gl.patch.score(images, OU, jnp.zeros((6, 6, 2)), 0.5, window=3)
    with pytest.raises(ValueError, match="trailing axes"):
        gl.patch.score(
            jnp.ones((2, 6, 6, 2)), OU, jnp.zeros((2, 6, 6, 1)), 0.5, window=3, lattice_ndim=2
        )
    with pytest.raises(ValueError, match="empty"):
        gl.patch.score(jnp.ones((0, 6, 6)), OU, x, 0.5, window=3)
    with pytest.raises(ValueError, match="lattice_ndim"):
        gl.patch.score(images, OU, x, 0.5, window=3, lattice_ndim=3)
    with pytest.raises(ValueError, match="boundary"):
        gl.patch.score(images, OU, x, 0.5, window=3, boundary="reflect")
    with pytest.raises(ValueError, match="window is required"):
        gl.patch.score(images, OU, x, 0.5)
    with pytest.raises(ValueError, match="materialize"):
        gl.patch.bank(images, window=3, materialize="yes")
    bank = gl.patch.bank(images, window=3)
    with pytest.raises(ValueError, match="disagrees"):
        gl.patch.score(bank, OU, x, 0.5, window=5)
    with pytest.raises(ValueError, match="disagrees"):
        gl.patch.score(bank, OU, x, 0.5, boundary="zero")
    with pytest.raises(ValueError, match="chunk_size"):
        gl.patch.score(bank, OU, x, 0.5, chunk_size=0)
    with pytest.raises(ValueError, match="t must lie"):
        gl.patch.score(bank, OU, x, -1.0)
    with pytest.raises(ValueError, match="training_padding"):
        gl.patch.bank(images, window=3, training_padding="reflect")


@pytest.mark.parametrize("lattice,k", [((8,), 3), ((8,), 5), ((5, 5), 3)])
def test_critical_point_of_two_uniform_images(lattice, k):
    """`docs/theory/patch.md#mode-softening`: the top eigenvalue of the ELS Jacobian at x = 0 vanishes at
    alpha_bar_c = 1/(1 + k^D), i.e. t_c^S = ln(1 + k^D)/2 under OU."""
    bank = gl.patch.bank(gl.data.uniform_images(lattice), window=k)
    d = int(np.prod(lattice))
    t_c = 0.5 * math.log(1 + k ** len(lattice))
    for dt, sign in ((0.0, 0), (-0.05, 1), (0.05, -1)):
        jac = jax.jacfwd(lambda z: gl.patch.score(bank, OU, z, t_c + dt))(jnp.zeros(lattice))
        top = float(np.max(np.linalg.eigvalsh(np.asarray(jac).reshape(d, d))))
        if sign == 0:
            assert abs(top) < 1e-9
        else:
            assert np.sign(top) == sign


def _es_brute(x, t, images, weights, lattice):
    """ES by loops over images and circular shifts: candidates y_n(. + s), whole-image distance."""
    a, b2 = float(OU.a(t)), float(OU.b2(t))
    axes = tuple(range(len(lattice)))
    logws, vals = [], []
    for n in range(images.shape[0]):
        for s in itertools.product(*(range(m) for m in lattice)):
            yr = np.roll(images[n], tuple(-v for v in s), axes)  # yr[i] = y[i + s]
            logws.append(math.log(weights[n]) - np.sum((x - a * yr) ** 2) / (2 * b2))
            vals.append(yr)
    lw = np.array(logws)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    v = np.array(vals)
    mean = np.tensordot(w, v, 1)
    return mean, np.tensordot(w, v**4, 1), -np.sum(w * np.log(w))


@pytest.mark.parametrize(
    "lattice,channels,window",
    [  # fast: 1-D and 2-D, one and two channels, window None and k = lattice; others slow
        ((6,), 1, None),
        pytest.param((5,), 2, 5, marks=pytest.mark.slow),
        pytest.param((4, 6), 1, None, marks=pytest.mark.slow),
        ((3, 5), 2, (3, 5)),
    ],
)
def test_es_fft_path_equals_brute_force(lattice, channels, window):
    """A periodic window covering the lattice (window=None, or k = lattice size): the ES
    machine by FFT cross-correlations equals loops over all circular shifts, to 1e-10."""
    ndim = len(lattice)
    shape = lattice + ((channels,) if channels > 1 else ())
    rng = np.random.default_rng(11)
    images = rng.standard_normal((3,) + shape)
    w = rng.uniform(0.5, 1.5, 3)
    data = gl.LatticeImages(images, w / w.sum())
    x = rng.standard_normal((2,) + shape)
    bank = gl.patch.bank(data, window=window, lattice_ndim=ndim)
    assert bank.kind == "es" and bank.num_candidates == 3 * int(np.prod(lattice))
    t = jnp.array([0.2, 0.9])
    for cs in (None, 2):  # 2 images per chunk: the last chunk overlaps and is masked
        st = gl.patch.posterior_stats(bank, OU, x, t, chunk_size=cs)
        for b in range(2):
            mean, m4, ent = _es_brute(
                np.asarray(x[b]), float(t[b]), np.asarray(images), np.asarray(data.weights), lattice
            )
            np.testing.assert_allclose(st.mean[b], mean, atol=1e-10, rtol=0)
            np.testing.assert_allclose(st.fourth[b], m4, atol=1e-10, rtol=0)
            np.testing.assert_allclose(st.entropy[b], ent, atol=1e-10)


def test_es_commutes_with_circular_shifts_and_matches_odd_window():
    """ES (window=None) is ELS with k = L for odd L, and commutes with circular shifts."""
    rng = np.random.default_rng(12)
    images = rng.standard_normal((4, 7))
    x = rng.standard_normal((3, 7))
    es = np.asarray(gl.patch.score(images, OU, x, 0.4, window=None))
    np.testing.assert_allclose(gl.patch.score(images, OU, x, 0.4, window=7), es, atol=1e-12)
    s = gl.patch.score(images, OU, np.roll(x, 2, 1), 0.4, window=None)
    np.testing.assert_allclose(s, np.roll(es, 2, 1), atol=1e-10)


@pytest.mark.parametrize("materialize", [True, False])
def test_far_from_data_is_exact(materialize):
    """Queries far from every training patch (huge logit gaps): the one-pass constant-shift
    path cannot certify its shift and the exact running-maximum path takes over."""
    lattice, shape, images, _, weights = _setup(2, 1, n=3, seed=13)
    x = 40.0 * np.random.default_rng(14).standard_normal((1,) + shape)
    t = 0.05
    bank = gl.patch.bank(
        gl.LatticeImages(images, weights), window=3, lattice_ndim=2, materialize=materialize
    )
    st = gl.patch.posterior_stats(bank, OU, x, t, chunk_size=4)
    assert np.all(np.isfinite(np.asarray(st.mean)))
    mean, _, _, ent = brute_force(
        _to4(x, lattice, 1)[0], t, _to4(images, lattice, 1), np.asarray(weights), (3, 3), "els"
    )
    np.testing.assert_allclose(np.asarray(st.mean[0]).reshape(mean.shape), mean, atol=1e-10)
    np.testing.assert_allclose(np.asarray(st.entropy[0]).reshape(ent.shape), ent, atol=1e-8)
    score = gl.patch.score(bank, OU, x, t, chunk_size=4)
    np.testing.assert_allclose(score, st.score, atol=1e-8, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# patch machines as values: the same numbers as the function path, wherever a dataset goes
# ----------------------------------------------------------------------------------------------

# name: (class, whether it takes a window, the function-path options of the same machine)
MACHINE_VALUES = {
    "IS": (gl.patch.IS, False, dict(window=None, equivariant=False)),
    "ES": (gl.patch.ES, False, dict(window=None, equivariant=True, boundary="periodic")),
    "LS": (gl.patch.LS, True, dict(window=3, equivariant=False)),
    "ELS": (gl.patch.ELS, True, dict(window=3)),
    "BoundaryELS": (gl.patch.BoundaryELS, True, dict(window=3, boundary="zero")),
}


# Fast tier: every machine once and both lattice configurations (the ELS-family machines on the
# 2-D lattice with channels); the other five combinations are slow.
_FAST_VALUES = {("IS", 1), ("ES", 2), ("LS", 1), ("ELS", 2), ("BoundaryELS", 2)}


@pytest.mark.parametrize(
    "ndim,channels,name",
    [
        pytest.param(
            d, d, n, marks=() if (n, d) in _FAST_VALUES else pytest.mark.slow, id=f"{d}-{d}-{n}"
        )
        for d in (1, 2)
        for n in MACHINE_VALUES
    ],
)
def test_machine_equals_function_path(name, ndim, channels):
    """gl.score / gl.denoiser of a machine == gl.patch.score / denoiser of its images (1e-12),
    also with the machine as a jit argument and under vmap over x."""
    _, shape, images, x, weights = _setup(ndim, channels)
    data = gl.LatticeImages(images, weights)
    cls, windowed, kw = MACHINE_VALUES[name]
    kw = dict(kw, lattice_ndim=ndim)
    machine = cls(data, 3, lattice_ndim=ndim) if windowed else cls(data, lattice_ndim=ndim)
    assert isinstance(machine, gl.patch.AbstractPatchMachine)
    assert isinstance(machine, gl.AbstractData)
    assert machine.event_shape == shape
    t = jnp.array([0.3, 0.7])
    ref = gl.patch.score(data, OU, x, t, **kw)  # the function path, as before
    ref_m = gl.patch.denoiser(data, OU, x, t, **kw)
    tol = dict(atol=1e-12, rtol=0)
    np.testing.assert_allclose(gl.score(machine, OU, x, t), ref, **tol)
    np.testing.assert_allclose(gl.denoiser(machine, OU, x, t), ref_m, **tol)
    np.testing.assert_allclose(gl.patch.score(machine, OU, x, t), ref, **tol)
    np.testing.assert_allclose(gl.patch.posterior_stats(machine, OU, x, t).mean, ref_m, **tol)
    np.testing.assert_allclose(machine.posterior_stats(OU, x, t).score, ref, **tol)
    f = jax.jit(lambda m, z, s: gl.score(m, OU, z, s))
    np.testing.assert_allclose(f(machine, x, t), ref, **tol)
    v = jax.vmap(lambda z, s: gl.score(machine, OU, z, s))(x, t)
    np.testing.assert_allclose(v, ref, **tol)
    vj = jax.jit(jax.vmap(gl.denoiser, in_axes=(None, None, 0, 0)))(machine, OU, x, t)
    np.testing.assert_allclose(vj, ref_m, **tol)


def test_machine_options_and_streaming_settings():
    # the images, x, t and chunk sizes (m, 3, 1) of test_chunked_equals_one_shot[els], so that
    # the materialised machines reuse its compiled programs
    _, _, images, x, _ = _setup(2, 2, n=4, seed=1)
    ref = gl.patch.posterior_stats(images, OU, x, 0.4, window=3, lattice_ndim=2).score
    for m in (
        gl.patch.ELS(images, 3, lattice_ndim=2, merge=False),
        gl.patch.ELS(images, 3, lattice_ndim=2, materialize=False),
        gl.patch.ELS(images, 3, lattice_ndim=2, chunk_size=3),
        gl.patch.ELS(images, 3, lattice_ndim=2, memory_budget=1),
    ):
        np.testing.assert_allclose(m.posterior_stats(OU, x, 0.4).score, ref, atol=1e-12, rtol=0)
    # gl.score honours the machine's settings too
    three = gl.patch.ELS(images, 3, lattice_ndim=2, chunk_size=3)
    np.testing.assert_allclose(gl.score(three, OU, x, 0.4), ref, atol=1e-12, rtol=0)
    m = gl.patch.ELS(images, 3, lattice_ndim=2, materialize=False, chunk_size=1)
    assert m.bank.streamed and m.chunk_size == 1 and m.kind == "els" and m.window == 3
    np.testing.assert_allclose(m.posterior_stats(OU, x, 0.4).score, ref, atol=1e-12, rtol=0)
    valid = gl.patch.ELS(images, 3, lattice_ndim=2, training_padding="valid")
    valid_bank = gl.patch.bank(images, window=3, lattice_ndim=2, training_padding="valid")
    np.testing.assert_allclose(
        valid.posterior_stats(OU, x, 0.4).score,
        gl.patch.posterior_stats(valid_bank, OU, x, 0.4).score,
        atol=1e-12,
        rtol=0,
    )
    # bbELS with a window as large as the lattice is LS (as for the bank)
    assert gl.patch.BoundaryELS(images, 5, lattice_ndim=2).kind == "ls"
    with pytest.raises(ValueError, match="odd"):
        gl.patch.ELS(images, 4, lattice_ndim=2)
    with pytest.raises(ValueError, match="chunk_size"):
        gl.patch.LS(images, 3, lattice_ndim=2, chunk_size=0)
    with pytest.raises(ValueError, match="memory_budget"):
        gl.patch.IS(images, lattice_ndim=2, memory_budget=-1)
    with pytest.raises(ValueError, match="disagrees"):
        gl.patch.score(gl.patch.ELS(images, 3, lattice_ndim=2), OU, x, 0.4, window=5)


def test_is_machine_is_the_training_set_law():
    """IS is the one machine with a data law: log_prob, posterior_cov and sample are those of
    the training images; the others raise a ValueError naming the machine."""
    _, _, images, x, weights = _setup(2, 1)
    data = gl.LatticeImages(images, weights)
    ideal = gl.patch.IS(data)
    t = 0.6
    np.testing.assert_allclose(gl.score(ideal, OU, x, t), gl.score(data, OU, x, t), atol=1e-12)
    np.testing.assert_allclose(gl.log_prob(ideal, OU, x, t), gl.log_prob(data, OU, x, t))
    np.testing.assert_allclose(gl.posterior_cov(ideal, OU, x, t), gl.posterior_cov(data, OU, x, t))
    key = jax.random.PRNGKey(3)
    np.testing.assert_allclose(ideal.sample(key, 4), data.sample(key, 4))
    np.testing.assert_allclose(ideal.mean(), data.mean())
    # a dataset tool: the mean-field critical times of IS are those of its training set
    two = gl.data.uniform_images((4,))
    ct, ct_ref = (
        gl.meanfield.critical_times(gl.patch.IS(two), OU),
        gl.meanfield.critical_times(two, OU),
    )
    assert ct.t_score == pytest.approx(ct_ref.t_score, abs=1e-10)
    for machine in (gl.patch.ELS(data, 3), gl.patch.LS(data, 3), gl.patch.BoundaryELS(data, 3)):
        name = type(machine).__name__
        with pytest.raises(ValueError, match=f"log_prob is not available for the {name}"):
            gl.log_prob(machine, OU, x, t)
        with pytest.raises(ValueError, match=f"posterior_cov is not available for the {name}"):
            gl.posterior_cov(machine, OU, x, t)
        with pytest.raises(ValueError, match=f"for the {name} patch machine"):
            machine.sample(key, 2)


@pytest.mark.parametrize(
    "ndim",
    [
        # 1-D: the same identity runs fast on the 2-D lattice (shifts along both axes), and the
        # 1-D ES path is checked against loops fast by test_es_fft_path_equals_brute_force
        pytest.param(1, marks=pytest.mark.slow),
        2,
    ],
)
def test_es_log_prob_is_the_shift_augmented_mixture(ndim):
    """ES log_prob == that of the delta mixture over every circular shift of every image
    (weight mu_n / S), and its gradient is the ES score."""
    lattice, shape, images, x, weights = _setup(ndim, 2)
    es = gl.patch.ES(gl.LatticeImages(images, weights), lattice_ndim=ndim)
    axes = tuple(range(1, 1 + ndim))
    shifts = list(itertools.product(*[range(n) for n in lattice]))
    points = np.concatenate([np.roll(images, s, axes) for s in shifts])
    mix = gl.DeltaMixture(points, np.concatenate([weights / len(shifts)] * len(shifts)))
    t = jnp.array([0.3, 0.7])
    np.testing.assert_allclose(gl.log_prob(es, OU, x, t), gl.log_prob(mix, OU, x, t), rtol=1e-12)
    score = gl.score(es, OU, x, t)
    np.testing.assert_allclose(score, gl.score(mix, OU, x, t), atol=1e-12)
    # per-row times: the gradient of the summed log_prob is each row's score
    g = jax.grad(lambda z: gl.log_prob(es, OU, z, t).sum())(x)
    np.testing.assert_allclose(g, score, atol=1e-12)
    with pytest.raises(ValueError, match="posterior_cov is not available for the ES"):
        gl.posterior_cov(es, OU, x, t)


def test_sampler_and_spectral_tools_take_a_machine(key):
    data = gl.data.stripes((6, 6), width=1)
    machine = gl.patch.ELS(data, 3)
    ts = gl.time_grid(OU, 10, t_min=1e-2)
    sol = gl.sample(lambda z, t: gl.score(machine, OU, z, t), OU, key, (3, 6, 6), ts=ts)
    ref = gl.sample(
        lambda z, t: gl.patch.score(data, OU, z, t, window=3), OU, key, (3, 6, 6), ts=ts
    )
    assert bool(jnp.all(jnp.isfinite(sol.x)))
    np.testing.assert_allclose(sol.x, ref.x, atol=1e-9, rtol=0)
    # plane-wave stiffness of the machine's score at x = 0 == (SNR C_3(q) - 1) / b^2, C_3 the
    # windowed patch spectrum of the training images (binary images: equal patch norms; the
    # identity test_spectral checks for the function path against a brute-force ELS)
    qs = gl.spectral.lattice_wavevectors((6, 6)).reshape(-1, 2)
    x0 = jnp.zeros((6, 6))
    mu = gl.spectral.mode_stiffness(lambda z, t: gl.score(machine, OU, z, t), x0, 0.8, qs)
    c3 = np.asarray(gl.spectral.windowed_patch_covariance(data, 3)).reshape(-1)
    mu_ref = (float(OU.snr(0.8)) * c3 - 1) / float(OU.b2(0.8))
    np.testing.assert_allclose(mu, mu_ref, atol=1e-10, rtol=0)
    # the patch-covariance tools take the ELS machine (its training images and window)
    crit = gl.spectral.critical_alpha_bar(machine)
    crit_ref = gl.spectral.critical_alpha_bar(data, 3)
    np.testing.assert_allclose(crit.alpha_bar, crit_ref.alpha_bar, rtol=1e-12)
    np.testing.assert_allclose(
        gl.spectral.windowed_patch_covariance(machine),
        gl.spectral.windowed_patch_covariance(data, 3),
    )
    with pytest.raises(ValueError, match="periodic ELS bank"):
        gl.spectral.critical_alpha_bar(gl.patch.LS(data, 3))
    with pytest.raises(ValueError, match="disagrees"):
        gl.spectral.critical_alpha_bar(machine, 5)
