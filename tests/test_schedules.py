"""Critical-window time grids (gltheory.schedules and ``time_grid(kind="critical")``).

Statistical checks state their standard errors and use fixed seeds; the large ones are slow.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import schedules as S

OU = gl.OU()
T_MIN = 1e-2


def _two_deltas(mu, w):
    return gl.DeltaMixture(jnp.array([[mu], [-mu]]), jnp.array([w, 1 - w]))


@pytest.mark.parametrize("base", ["uniform", "log_snr", "edm"])
def test_critical_grid_properties(base):
    n = 24
    kw = dict(t_min=T_MIN, centre=1.5, width=0.5)
    ts = gl.time_grid(OU, n, kind="critical", base=base, weight=0.6, **kw)
    ref = gl.time_grid(OU, n, kind=base, t_min=T_MIN)
    assert ts.shape == (n + 1,)
    assert bool(jnp.all(jnp.diff(ts) < 0))
    assert float(ts[0]) == float(OU.T) and float(ts[-1]) == T_MIN and float(ts[-1]) > 0
    # the bump moves steps into the window
    inside = lambda g: int(jnp.sum((g > 1.0) & (g < 2.0)))
    assert inside(ts) >= inside(ref) + 5
    # weight 0 is the base grid
    ts0 = gl.time_grid(OU, n, kind="critical", base=base, weight=0.0, **kw)
    np.testing.assert_allclose(ts0, ref, rtol=1e-12)


def test_critical_grid_differentiable_in_its_parameters():
    def grid(th):
        return gl.time_grid(
            OU, 16, kind="critical", t_min=T_MIN, centre=th[0], width=th[1], weight=th[2]
        )

    th = jnp.array([1.3, 0.6, 0.45])
    eps = 1e-6
    # one compiled program: the Jacobian and the six shifted grids of the central differences
    shifts = jnp.concatenate([eps * jnp.eye(3), -eps * jnp.eye(3)])
    jac, shifted = jax.jit(lambda th: (jax.jacfwd(grid)(th), jax.vmap(grid)(th + shifts)))(th)
    fd = ((shifted[:3] - shifted[3:]) / (2 * eps)).T
    assert float(jnp.max(jnp.abs(jac))) > 0.5  # the grid moves with each parameter
    assert float(jnp.min(jnp.max(jnp.abs(jac), axis=0))) > 0.1
    np.testing.assert_allclose(jac, fd, atol=1e-6)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(centre=20.0, width=0.5), "centre"),
        (dict(centre=1.0, width=0.0), "width"),
        (dict(centre=1.0, width=0.5, weight=1.0), "weight"),
        (dict(centre=1.0, width=0.5, base="critical"), "base"),
        (dict(width=0.5), "centre and width"),
    ],
)
def test_critical_grid_errors_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=name):
        gl.time_grid(OU, 8, kind="critical", **kw)


def test_window_from_data_matches_the_scaling_limit():
    mu = 1e3  # Lambda = 1e6: corrections O(1/Lambda); T = 20 holds the early tail of R
    win = S.window_from_data(_two_deltas(mu, 0.5), gl.OU(T=20.0))
    assert abs(float(win.centre) - (np.log(mu) + S.DEFAULT_CENTRE_SHIFT_OU)) < 0.01
    assert abs(float(win.width) - S.DEFAULT_WIDTH_OU) < 0.01
    assert abs(float(win.t_peak) - (np.log(mu) + gl.observables.R_PEAK_SHIFT)) < 0.01
    # a two-cluster Gaussian mixture: the reduction is exact (sigma2 = within variance)
    gm = gl.GaussianMixture(jnp.array([[3.0, 0, 0], [-3.0, 0, 0]]), jnp.full((2,), 0.25))
    _, m_norm, sigma2 = S.soft_mode(gm)
    np.testing.assert_allclose([float(m_norm), float(sigma2)], [3.0, 0.25], rtol=1e-10)


def test_window_from_times_and_from_estimate():
    w = S.window_from_times(1.2, 0.3)
    assert float(w.centre) == 1.2 and float(w.width) == 0.3
    with pytest.raises(ValueError, match="width"):
        S.window_from_times(1.2, -1.0)
    z = jnp.zeros(3)
    est = gl.criticality.CriticalTimeEstimate(
        jnp.asarray(2.0), jnp.asarray(0.01), jnp.asarray(0.0), z, z, z, "test"
    )
    win = S.window_from_estimate(est, OU)
    # OU: |dtau/dt| = 1, so the default width is the OU one
    np.testing.assert_allclose(float(win.width), S.DEFAULT_WIDTH_OU, rtol=1e-3)
    assert float(win.centre) == 2.0


def test_default_weight_is_time_grids_default():
    import inspect

    default = inspect.signature(gl.time_grid).parameters["weight"].default
    assert default == S.DEFAULT_WEIGHT


MU, W = 2.0, 0.8


@pytest.fixture(scope="module")
def coarse_grid():
    return gl.time_grid(OU, 12, kind="log_snr", t_min=T_MIN)


def test_quadrature_class_fraction_agrees_with_monte_carlo(coarse_grid):
    """Euler–Maruyama on 12 log-SNR steps, two deltas +-2 with weights (0.8, 0.2):
    n = 40 000 trajectories, SE = sqrt(p(1-p)/n) ~ 0.002. The quadrature agrees within 3 SE,
    and the chain's bias (quadrature - exact) is resolved (> 5 SE), so the check can fail."""
    ts = coarse_grid
    q = float(S.quadrature_class_fraction(OU, ts, MU, W, n_cells=256))
    exact = float(S.exact_class_fraction(OU, MU, W, ts[-1]))
    data = _two_deltas(MU, W)
    n = 40_000
    sol = gl.sample(
        lambda x, t: gl.score(data, OU, x, t), OU, jax.random.PRNGKey(19), (n, 1), ts=ts
    )
    p_mc = float(jnp.mean(sol.x[:, 0] > 0))
    se = np.sqrt(p_mc * (1 - p_mc) / n)
    assert abs(q - p_mc) < 3 * se, (q, p_mc, se)
    assert abs(q - exact) > 5 * se, (q, exact, se)


def test_quadrature_distribution_and_padding(coarse_grid):
    """The cell masses sum to 1 and give the class fraction; zero-length padding steps are
    skipped exactly (one compiled program for grids of different lengths)."""
    ts = coarse_grid
    edges, p = S.quadrature_distribution(OU, ts, MU, W, n_cells=256)
    assert edges.shape == (257,) and p.shape == (256,)
    assert abs(float(jnp.sum(p)) - 1) < 1e-12 and float(jnp.min(p)) >= 0
    q = float(S.quadrature_class_fraction(OU, ts, MU, W, n_cells=256))
    assert abs(float(jnp.sum(p[128:])) - q) < 1e-14
    q_pad = float(S.quadrature_class_fraction(OU, ts, MU, W, n_cells=256, pad_to=16))
    assert abs(q_pad - q) < 1e-13
    with pytest.raises(ValueError, match="pad_to"):
        S.quadrature_class_fraction(OU, ts, MU, W, n_cells=256, pad_to=5)


@pytest.mark.parametrize("solver", ["heun_sde", pytest.param("heun", marks=pytest.mark.slow)])
def test_critical_grid_drives_the_solver_layer(solver):
    """A critical grid is an ordinary ``ts``: ``sample`` with any solver takes exactly the
    solver's steps on it (checked against the steps taken one by one, same noise)."""
    data = _two_deltas(MU, W)
    score_fn = lambda x, t: gl.score(data, OU, x, t)
    ts = gl.time_grid(OU, 6, kind="critical", t_min=T_MIN, centre=1.0, width=0.5)
    key = jax.random.PRNGKey(11)
    x0 = OU.b(OU.T) * jax.random.normal(jax.random.PRNGKey(12), (4, 1))
    out = gl.sample(score_fn, OU, key, x0, ts=ts, solver=solver).x
    step = gl.solvers.as_solver(solver)
    z = gl.sampling.trajectory_noise(key, 6, (1,), n=4, dtype=x0.dtype)
    x = x0
    for i in range(6):
        x = step.step(score_fn, OU, x, ts[i], ts[i + 1], z[i])
    np.testing.assert_allclose(out, x, rtol=1e-10, atol=1e-12)


@pytest.mark.slow  # compiles the reverse pass of the quadrature (fast cover: the
# grid's own derivatives and the quadrature's Monte Carlo check)
def test_quadrature_bias_gradient_matches_finite_differences():
    def bias(c):
        ts = gl.time_grid(OU, 8, kind="critical", t_min=T_MIN, centre=c, width=0.5, weight=0.5)
        return S.class_fraction_bias(OU, ts, MU, W, n_cells=128)

    vg = jax.jit(jax.value_and_grad(bias))  # one compilation for the value and the gradient
    g = float(vg(1.0)[1])
    eps = 1e-5
    fd = float((vg(1.0 + eps)[0] - vg(1.0 - eps)[0]) / (2 * eps))
    assert abs(g) > 1e-3
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def test_online_sampler_never_exceeds_its_budget():
    data = _two_deltas(MU, W)
    score_fn = lambda x, t: gl.score(data, OU, x, t)
    budget = 10
    base = gl.time_grid(OU, budget, kind="log_snr", t_min=T_MIN)
    spans = []
    for gain in (0.0, S.DEFAULT_GAIN, 1e6):
        res = S.online_sample(
            score_fn,
            OU,
            jax.random.PRNGKey(3),
            (64, 1),
            budget=budget,
            direction=jnp.ones(1),
            scale=MU,
            gain=gain,
            t_min=T_MIN,
        )
        assert res.evaluations == budget and res.ts.shape == (budget + 1,)
        assert res.r_hat.shape == (budget,) and res.x.shape == (64, 1)
        assert bool(jnp.all(jnp.diff(res.ts) < 0))
        np.testing.assert_allclose([res.ts[0], res.ts[-1]], [OU.T, T_MIN], rtol=1e-12)
        if gain == 0.0:  # no estimate: exactly the base grid
            np.testing.assert_allclose(res.ts, base, rtol=1e-10)
        spans.append(float(jnp.max(-jnp.diff(res.ts))))
    # a huge gain stalls the steps and the last one jumps to t_min: still within the budget
    assert spans[2] > spans[0]
    # given states instead of a shape
    x0 = OU.b(OU.T) * jax.random.normal(jax.random.PRNGKey(4), (64, 1))
    res = S.online_sample(
        score_fn,
        OU,
        jax.random.PRNGKey(3),
        x0,
        budget=budget,
        direction=jnp.ones(1),
        scale=MU,
        t_min=T_MIN,
    )
    assert res.ts.shape == (budget + 1,) and bool(jnp.all(jnp.isfinite(res.x)))


@pytest.mark.slow
def test_sqrt_error_grid_is_a_grid():
    ts = S.sqrt_error_grid(OU, 20, MU, W, t_min=T_MIN, n_ref=32)
    assert ts.shape == (21,) and bool(jnp.all(jnp.diff(ts) < 0))
    # the same shape as the grid's own evaluation (one compilation): early times last
    t = jnp.linspace(0.3, 8.0, 33)
    e = S.local_error_density(OU, t, MU, W)
    # the error is made in the window, not at early times (t = 8: linear dynamics)
    assert float(jnp.abs(e[-1])) < 1e-2 * float(jnp.max(jnp.abs(e)))


@pytest.mark.slow
@pytest.mark.parametrize("mu", [1.0, 4.0, 10.0])
def test_quadrature_agrees_with_large_monte_carlo(mu):
    """n = 400 000 trajectories (SE ~ 6e-4), 16 log-SNR steps, n_cells = 512."""
    ts = gl.time_grid(OU, 16, kind="log_snr", t_min=T_MIN)
    q = float(S.quadrature_class_fraction(OU, ts, mu, W))
    data = _two_deltas(mu, W)
    n = 400_000
    sol = gl.sample(lambda x, t: gl.score(data, OU, x, t), OU, jax.random.PRNGKey(7), (n, 1), ts=ts)
    p_mc = float(jnp.mean(sol.x[:, 0] > 0))
    se = np.sqrt(p_mc * (1 - p_mc) / n)
    assert abs(q - p_mc) < 3 * se, (q, p_mc, se)


@pytest.mark.slow
def test_tuning_reduces_the_bias():
    data = _two_deltas(4.0, W)
    win = S.window_from_data(data, OU)
    ts = S.critical_grid(OU, 16, win, t_min=T_MIN)
    b0 = abs(float(S.class_fraction_bias(OU, ts, 4.0, W, n_cells=256)))
    tuned = S.tune_window(OU, 16, 4.0, W, win, t_min=T_MIN, steps=10)
    # the default is already near the best bump at 16 steps (|bias| 0.0095 -> 0.0088 measured)
    assert abs(float(tuned.history[0]) - (-b0)) < 1e-12
    assert abs(float(tuned.bias)) < 0.95 * b0


@pytest.mark.slow
def test_window_from_score_of_a_patch_model():
    """The black-box route: xi(t) growth of the denoised field of a 2-D patch score."""
    proc = gl.OU()
    score_fn = lambda x, t: gl.scores.uniform_patch_score(proc, x, t, window=3, lattice_ndim=2)
    ts = gl.time_grid(proc, 40, kind="log_snr", t_min=0.05, t_max=3.0)
    win = S.window_from_score(score_fn, proc, jax.random.PRNGKey(5), (32, 16, 16), ts=ts, n_boot=20)
    assert 0.05 < float(win.centre) < 3.0 and float(win.width) > 0
    grid = S.critical_grid(proc, 30, win, t_min=0.05, t_max=3.0)
    assert bool(jnp.all(jnp.diff(grid) < 0))
