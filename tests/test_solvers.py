"""The solver and trajectory layer: step rules against their formulas, the loop's noise
convention, states at chosen times and branch-and-continue clones."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import sampling, solvers


def _two_point(process):
    data = gl.TwoPoint(1.0, weight=0.6)
    return data, lambda x, t: gl.score(data, process, x, t)


def _formula_step(name, score_fn, process, x, t, tn, z):
    """The update rules written out from their definitions (module docstring of solvers)."""
    h = t - tn
    g, gn = process.g(t), process.g(tn)
    f, fn = process.f(t), process.f(tn)
    v = lambda y, s: process.g2(s) * score_fn(y, s) - process.f(s) * y  # noqa: E731
    u = lambda y, s: 0.5 * process.g2(s) * score_fn(y, s) - process.f(s) * y  # noqa: E731
    del f, fn
    if name == "euler_maruyama":
        return x + h * v(x, t) + g * math.sqrt(h) * z
    if name == "heun_sde":
        k1 = h * v(x, t) + g * math.sqrt(h) * z
        k2 = h * v(x + k1, tn) + gn * math.sqrt(h) * z
        return x + (k1 + k2) / 2
    if name == "heun":
        d1 = u(x, t)
        d2 = u(x + h * d1, tn)
        return x + h * (d1 + d2) / 2
    if name == "ddim":
        a, an, b, bn = process.a(t), process.a(tn), process.b(t), process.b(tn)
        eps = -b * score_fn(x, t)
        return an / a * x + (bn - an / a * b) * eps
    # edm_heun: Karras et al. Alg. 1 in xbar = x/a, sigma = b/a, D from Tweedie
    a, an = process.a(t), process.a(tn)
    s, sn = process.sigma(t), process.sigma(tn)
    den = lambda y, tt: (y + process.b2(tt) * score_fn(y, tt)) / process.a(tt)  # noqa: E731
    xb = x / a
    d1 = (xb - den(x, t)) / s
    xe = xb + (sn - s) * d1
    d2 = (xe - den(an * xe, tn)) / sn
    return an * (xb + (sn - s) * (d1 + d2) / 2)


@pytest.mark.parametrize("name", list(solvers.METHODS))
@pytest.mark.parametrize("process", [gl.OU(), gl.VP("cosine"), gl.VE("edm")], ids=str)
def test_solver_steps_match_their_formulas(name, process):
    _, score_fn = _two_point(process)
    x = jnp.linspace(-2.0, 2.0, 7)[:, None]
    z = jnp.linspace(1.0, -1.0, 7)[:, None]
    t, tn = 0.7 * float(process.T) / 5 + 0.3, 0.25
    got = solvers.as_solver(name).step(score_fn, process, x, t, tn, z)
    want = _formula_step(name, score_fn, process, x, t, tn, z)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_edm_heun_is_heun_for_ve_edm():
    process = gl.VE("edm")
    _, score_fn = _two_point(process)
    x = jnp.linspace(-3.0, 3.0, 5)[:, None]
    a = gl.EDMHeun().step(score_fn, process, x, 2.0, 1.3, None)
    b = gl.Heun().step(score_fn, process, x, 2.0, 1.3, None)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_as_solver_aliases_and_errors():
    assert isinstance(solvers.as_solver("heun_sde"), gl.StochasticHeun)
    s = gl.DDIM()
    assert solvers.as_solver(s) is s
    with pytest.raises(ValueError, match="solver must be"):
        solvers.as_solver("rk4")
    assert gl.EulerMaruyama.stochastic and not gl.Heun.stochastic
    assert gl.StochasticHeun.evaluations == 2


@pytest.mark.parametrize("name", ["euler_maruyama", "heun_sde", "ddim"])
def test_sample_solver_object_equals_method_string(name, key):
    process = gl.OU(T=3.0)
    _, score_fn = _two_point(process)
    ts = gl.time_grid(process, 37)
    a = gl.sample(score_fn, process, key, (64, 1), ts=ts, method=name).x
    b = gl.sample(score_fn, process, key, (64, 1), ts=ts, solver=solvers.as_solver(name)).x
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not both"):
        gl.sample(score_fn, process, key, (4, 1), ts=ts, solver=gl.Heun(), method="ddim")


class _Midpoint(gl.AbstractSolver):
    """A user-defined deterministic scheme: the explicit midpoint rule on the PF-ODE."""

    stochastic = False
    evaluations = 2

    def step(self, score_fn, process, x, t, t_next, z=None):
        h = t - t_next
        d1 = process.pf_ode_drift(x, t, score_fn(x, t))
        tm = t - h / 2
        xm = x + (h / 2) * d1
        return x + h * process.pf_ode_drift(xm, tm, score_fn(xm, tm))


def test_user_solver_plugs_into_sample(key):
    """A new scheme needs only ``step``; on a Gaussian (linear score) the midpoint and Heun
    PF-ODE solutions agree to second order (difference shrinks ~4x per halving)."""
    process = gl.OU(T=2.0)
    data = gl.Gaussian(jnp.array([0.5]), jnp.array([[0.3]]))
    score_fn = lambda x, t: gl.score(data, process, x, t)  # noqa: E731
    x0 = jnp.linspace(-2.0, 2.0, 9)[:, None]
    diffs = []
    for n in (16, 32, 64):
        ts = gl.time_grid(process, n, t_min=0.05)
        a = gl.sample(score_fn, process, key, x0, ts=ts, solver=_Midpoint()).x
        b = gl.sample(score_fn, process, key, x0, ts=ts, solver="heun").x
        diffs.append(float(jnp.max(jnp.abs(a - b))))
    assert 3.0 < diffs[0] / diffs[1] < 5.0 and 3.0 < diffs[1] / diffs[2] < 5.0, diffs


def test_integrate_noise_is_aligned_on_absolute_steps(key):
    """Starting the loop at step 5 gives the same per-step noise as a run from 0 (blocks of 4,
    so step 5 sits inside a block) and equals trajectory_noise."""
    ts = jnp.linspace(1.0, 0.1, 12)
    n, ev = 6, (2,)
    keys = gl.trajectory_keys(key, n)
    nk, _ = sampling.split_trajectory_keys(keys)

    def body(c, i, z):
        return c + 1, (i, z)

    kw = dict(noise_keys=nk, event_shape=ev, dtype=jnp.float64, noise_block=4)
    c0, (i0, z0) = sampling.integrate(body, 0, ts, **kw)
    c5, (i5, z5) = sampling.integrate(body, 0, ts, start=5, **kw)
    assert int(c0) == 11 and int(c5) == 6
    np.testing.assert_array_equal(i0, np.arange(11))
    np.testing.assert_array_equal(i5, np.arange(5, 11))
    np.testing.assert_array_equal(z0[5:], z5)
    ref = sampling.trajectory_noise(keys, 11, ev, noise_block=4, dtype=jnp.float64)
    np.testing.assert_array_equal(z0, ref)
    # deterministic loop: z is None
    c, outs = sampling.integrate(lambda c, i, z: (c + (z is None), i), 0, ts, start=3)
    assert int(c) == 8 and outs.shape == (8,)
    with pytest.raises(ValueError, match="start"):
        sampling.integrate(body, 0, ts, start=12)


def test_states_at_are_the_sampler_states(key):
    process = gl.OU(T=2.0)
    _, score_fn = _two_point(process)
    ts = gl.time_grid(process, 40)
    st = sampling.states_at(score_fn, process, key, (32, 1), ts=ts, indices=[0, 7, 25])
    for b, i in enumerate([0, 7, 25]):
        ref = gl.sample(score_fn, process, key, (32, 1), ts=ts[: max(i, 1) + 1]).x if i else None
        if ref is not None:
            np.testing.assert_allclose(st[b], ref, rtol=1e-13, atol=1e-13)


def test_branch_continuation_equals_sample_with_same_keys(key):
    """A clone continued from the sampler's state at step i with the trajectory's own key
    reproduces the original trajectory exactly (noise depends on key and step index only)."""
    process = gl.OU(T=2.0)
    _, score_fn = _two_point(process)
    ts = gl.time_grid(process, 50)
    n = 16
    keys = gl.trajectory_keys(key, n)
    full = gl.sample(score_fn, process, keys, (n, 1), ts=ts, noise_block=8).x
    idx = [3, 20, 49]
    st = sampling.states_at(score_fn, process, keys, (n, 1), ts=ts, indices=idx, noise_block=8)
    kb = jnp.stack([keys] * len(idx))
    xf = sampling.branch(score_fn, process, kb, st, ts=ts, indices=idx, noise_block=8)
    for b in range(len(idx)):
        np.testing.assert_allclose(xf[b], full, rtol=1e-12, atol=1e-12)
    # other keys diverge
    other = jnp.stack([gl.trajectory_keys(jax.random.fold_in(key, 1), n)] * len(idx))
    xo = sampling.branch(score_fn, process, other, st, ts=ts, indices=idx, noise_block=8)
    assert float(jnp.max(jnp.abs(xo[0] - full))) > 1e-3
    with pytest.raises(ValueError, match="keys must hold one key per row"):
        sampling.branch(score_fn, process, keys, st, ts=ts, indices=idx)
    with pytest.raises(ValueError, match="n_branch"):
        sampling.branch(score_fn, process, kb, st[:2], ts=ts, indices=idx)


def test_branch_under_jit_and_grad(key):
    """The clone continuation composes with jit and grad (derivative w.r.t. the start states
    of a deterministic DDIM branch, checked against central differences)."""
    process = gl.OU(T=2.0)
    data = gl.Gaussian(jnp.array([0.2]), jnp.array([[0.5]]))
    score_fn = lambda x, t: gl.score(data, process, x, t)  # noqa: E731
    ts = gl.time_grid(process, 20)
    keys = jnp.stack([gl.trajectory_keys(key, 2)])

    @jax.jit
    def f(s):
        st = jnp.full((1, 2, 1), s)
        return jnp.sum(
            sampling.branch(score_fn, process, keys, st, ts=ts, indices=[4], solver="ddim")
        )

    g = jax.grad(f)(0.3)
    fd = (f(0.3 + 1e-5) - f(0.3 - 1e-5)) / 2e-5
    np.testing.assert_allclose(g, fd, rtol=1e-6)
