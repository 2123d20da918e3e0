"""Reverse samplers: statistics against theory, integrator orders, oracles, invariances."""

import math
import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl


class _ExactScore(eqx.Module):
    """score_fn(x, t) of the exact score; a pytree, so datasets of the same kind and shape (e.g.
    the two weights of test_two_point_class_fractions) share the sampler's compilation."""

    data: gl.data.AbstractData
    proc: gl.processes.AbstractProcess

    def __call__(self, x, t):
        return gl.score(self.data, self.proc, x, t)


def _score_fn(data, proc):
    return _ExactScore(data, proc)


@pytest.mark.parametrize("w", [0.5, 0.8])
@pytest.mark.parametrize("method", ["euler_maruyama", "heun_sde"])
def test_two_point_class_fractions(w, method):
    """Exact-score reverse SDE reproduces the weights: fraction of x > 0 within 3 binomial SE."""
    proc = gl.OU(T=5.0)
    data = gl.TwoPoint(1.0, weight=w)
    n = 4000
    ts = gl.time_grid(proc, 300, kind="log_snr", t_min=1e-3)
    sol = gl.sample(
        _score_fn(data, proc), proc, jax.random.PRNGKey(11), (n, 1), ts=ts, method=method
    )
    x = np.asarray(sol.x)
    frac = float(np.mean(x[:, 0] > 0))
    se = math.sqrt(w * (1 - w) / n)
    assert abs(frac - w) < 3 * se, (frac, w, se)
    # and the samples sit on the two points (within the final noise b_{t_min})
    assert float(np.max(np.abs(np.abs(x) - float(proc.a(ts[-1]))))) < 10 * float(proc.b(ts[-1]))


def test_gaussian_covariance_and_marginal_variance():
    """Gaussian data: final covariance within 3 SE of C; marginal variance along the run within
    3 SE of a_t^2 E[y^2] + b_t^2 (recorded inside the loop with observe/save_at)."""
    proc = gl.VP()
    cov = jnp.array([[1.5, 0.6], [0.6, 0.8]])
    data = gl.Gaussian(jnp.zeros(2), cov)
    n = 4000
    ts = gl.time_grid(proc, 400, t_min=1e-3)
    save_at = [100, 200, 300, 400]
    sol = gl.sample(
        _score_fn(data, proc),
        proc,
        jax.random.PRNGKey(5),
        (n, 2),
        ts=ts,
        observe=lambda x, t: x[:, 0],
        save_at=save_at,
    )
    # bookkeeping in NumPy (no one-op compilations)
    cov = np.asarray(cov)
    emp = np.cov(np.asarray(sol.x).T)
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(emp - cov) < 3 * se), (emp, cov, se)
    xs = np.asarray(sol.observables)  # (4, n)
    saved = np.asarray(sol.saved_ts)
    a2, b2 = np.asarray(proc.a(saved)) ** 2, np.asarray(proc.b2(saved))
    for k, t in enumerate(saved):
        var = float(np.var(xs[k]))
        theory = float(a2[k] * cov[0, 0] + b2[k])
        m4 = float(np.mean((xs[k] - xs[k].mean()) ** 4))
        se_v = math.sqrt((m4 - var**2) / n)
        assert abs(var - theory) < 3 * se_v, (float(t), var, theory, se_v)


def test_two_point_marginal_variance_inside_loop():
    """Two deltas +-1 under OU: Var x_t = a_t^2 + b_t^2 = 1 at every t along the reverse run."""
    proc = gl.OU(T=4.0)
    data = gl.TwoPoint(1.0)
    n = 4000
    ts = gl.time_grid(proc, 400, t_min=1e-3)
    sol = gl.sample(
        _score_fn(data, proc),
        proc,
        jax.random.PRNGKey(8),
        (n, 1),
        ts=ts,
        observe=lambda x, t: (jnp.mean(x**2), jnp.mean(x**4)),
        save_at=[150, 300, 350],
    )
    m2, m4 = sol.observables
    for k in range(3):
        se = math.sqrt((float(m4[k]) - float(m2[k]) ** 2) / n)
        assert abs(float(m2[k]) - 1.0) < 3 * se


def _linear_problem():
    """Gaussian data N(0, s2) in 1-D under VP: the reverse SDE and PF-ODE are linear."""
    proc = gl.VP()
    s2 = 2.5
    data = gl.Gaussian(jnp.zeros(1), s2)
    return proc, s2, data


def test_euler_maruyama_strong_order():
    """Strong error vs a fine-grid solution on the same Brownian path; additive noise: order 1."""
    proc, _, data = _linear_problem()
    score_fn = _score_fn(data, proc)
    t0, t1 = 1.0, 0.05
    n_fine = 2**12
    n_paths = 400
    key = jax.random.PRNGKey(0)
    dw = jax.random.normal(key, (n_fine, n_paths, 1)) * math.sqrt((t0 - t1) / n_fine)
    x0 = jax.random.normal(jax.random.PRNGKey(1), (n_paths, 1))

    # the Brownian path as prefix sums: the increment over coarse step i of n is
    # w[(i + 1) r] - w[i r], r = n_fine / n; one compiled loop serves every n (traced)
    w = np.concatenate([np.zeros((1, n_paths, 1)), np.cumsum(np.asarray(dw), 0)])

    @jax.jit
    def solve_jit(n_steps, w, x0):
        r = n_fine // n_steps
        h = (t0 - t1) / n_steps

        def body(i, x):
            z = (w[(i + 1) * r] - w[i * r]) / jnp.sqrt(h)
            t_i, t_next = t0 - i * h, t0 - (i + 1) * h
            return gl.solvers.EulerMaruyama().step(score_fn, proc, x, t_i, t_next, z)

        return jax.lax.fori_loop(0, n_steps, body, x0)

    solve = lambda n_steps: np.asarray(solve_jit(n_steps, w, x0))
    ref = solve(n_fine)
    ns = [16, 32, 64, 128, 256]
    errs = [float(np.sqrt(np.mean((solve(n) - ref) ** 2))) for n in ns]
    slope = np.polyfit(np.log(1.0 / np.array(ns)), np.log(errs), 1)[0]
    assert 0.85 < slope < 1.2, (slope, errs)


@pytest.mark.parametrize("method,order", [("heun", 2.0), ("ddim", 1.0)])
def test_ode_solver_orders(method, order):
    """PF-ODE for Gaussian data maps quantiles: x_t = sqrt(v_t / v_T) x_T, v_t = a^2 s2 + b^2."""
    proc, s2, data = _linear_problem()
    score_fn = _score_fn(data, proc)
    t0, t1 = 1.0, 0.05
    x0 = jnp.linspace(-2.0, 2.0, 9)[:, None]
    v = lambda t: proc.a(t) ** 2 * s2 + proc.b2(t)
    exact = jnp.sqrt(v(t1) / v(t0)) * x0
    ns = [8, 16, 32, 64]
    errs = []
    for n in ns:
        ts = gl.time_grid(proc, n, t_min=t1, t_max=t0)
        x = gl.sample(score_fn, proc, jax.random.PRNGKey(0), x0, ts=ts, method=method).x
        errs.append(float(jnp.max(jnp.abs(x - exact))))
    slope = np.polyfit(np.log(1.0 / np.array(ns)), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.2, (slope, errs)


@pytest.mark.parametrize("method", ["euler_maruyama", "heun_sde", "heun"])
def test_fast_sampler_equals_diffrax(method):
    """Same grid, same Brownian increments: the scan sampler == diffrax.diffeqsolve."""
    proc = gl.VP("cosine")
    data = gl.GaussianMixture(jnp.array([[1.0, 0.5], [-1.0, 0.0]]), jnp.array([0.1, 0.3]))
    score_fn = _score_fn(data, proc)
    ts = gl.time_grid(proc, 70, kind="log_snr")  # 70 = 2 full noise blocks + a remainder
    key = jax.random.PRNGKey(3)
    x0 = jax.random.normal(jax.random.PRNGKey(4), (16, 2))
    fast = gl.sample(score_fn, proc, key, x0, ts=ts, method=method).x
    ref = gl.sampling.sample_diffrax(score_fn, proc, key, x0, ts=ts, method=method)
    np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=1e-9)


def test_trajectory_independent_of_batch_size_and_chunking():
    proc = gl.OU(T=3.0)
    data = gl.TwoPoint(1.0, dim=2)
    score_fn = _score_fn(data, proc)
    ts = gl.time_grid(proc, 50)
    key = jax.random.PRNGKey(9)
    full = gl.sample(score_fn, proc, key, (8, 2), ts=ts).x
    # the smaller runs all have batch 3 (one compiled program besides the batch of 8)
    small = gl.sample(score_fn, proc, key, (3, 2), ts=ts).x
    np.testing.assert_allclose(small, full[:3], rtol=1e-12)
    tail = gl.sample(score_fn, proc, gl.trajectory_keys(key, 3, start=5), (3, 2), ts=ts).x
    np.testing.assert_allclose(tail, full[5:], rtol=1e-12)
    # typed keys work the same way
    typed = gl.sample(score_fn, proc, jax.random.key(1), (3, 2), ts=ts).x
    assert typed.shape == (3, 2) and bool(jnp.all(jnp.isfinite(typed)))


def test_entry_point_traces_once_across_time_grids():
    """New ts values (same length) and a new process parameter reuse the compiled sampler."""
    data = gl.TwoPoint(1.0)
    traces = []

    def score_fn(x, t):
        traces.append(1)
        return gl.score(data, gl.OU(T=3.0), x, t)

    proc = gl.OU(T=3.0)
    x0 = jnp.zeros((4, 1))
    gl.sample(score_fn, proc, jax.random.PRNGKey(0), x0, ts=gl.time_grid(proc, 40))
    n_first = len(traces)
    assert n_first > 0
    gl.sample(score_fn, proc, jax.random.PRNGKey(1), x0, ts=gl.time_grid(proc, 40, kind="log_snr"))
    gl.sample(score_fn, gl.OU(T=2.5), jax.random.PRNGKey(2), x0, ts=gl.time_grid(gl.OU(T=2.5), 40))
    assert len(traces) == n_first


def test_observables_and_saved_times():
    proc = gl.OU(T=2.0)
    data = gl.TwoPoint(1.0)
    ts = gl.time_grid(proc, 40)
    sol = gl.sample(
        _score_fn(data, proc),
        proc,
        jax.random.PRNGKey(2),
        (6, 1),
        ts=ts,
        observe=lambda x, t: {"x": x, "t": t},
        save_at=[0, 17, 32, 40],
    )
    np.testing.assert_allclose(sol.saved_ts, ts[jnp.array([0, 17, 32, 40])])
    np.testing.assert_allclose(sol.observables["t"], sol.saved_ts)
    np.testing.assert_allclose(sol.observables["x"][-1], sol.x)
    # the state at index 17 equals a run stopped at ts[17]
    part = gl.sample(
        _score_fn(data, proc), proc, jax.random.PRNGKey(2), sol.observables["x"][0], ts=ts[:18]
    )
    np.testing.assert_allclose(part.x, sol.observables["x"][1], rtol=1e-12)


def test_float32_sampler_runs_and_matches_float64():
    proc = gl.OU(T=3.0)
    data = gl.TwoPoint(1.0)
    ts = gl.time_grid(proc, 60)
    x0 = jax.random.normal(jax.random.PRNGKey(0), (32, 1))
    s64 = gl.sample(_score_fn(data, proc), proc, jax.random.PRNGKey(1), x0, ts=ts, method="heun").x
    s32 = gl.sample(
        _score_fn(data, proc),
        proc,
        jax.random.PRNGKey(1),
        x0.astype(jnp.float32),
        ts=ts,
        method="heun",
    ).x
    assert s32.dtype == jnp.float32
    np.testing.assert_allclose(s32, s64, atol=1e-4)


def test_lattice_sampler_with_local_score():
    """2-D lattice with the uniform-image local score: runs batched, finite, ends near +-1 sites."""
    proc = gl.OU(T=4.0)
    ts = gl.time_grid(proc, 100, kind="log_snr", t_min=1e-3)
    score_fn = lambda x, t: gl.scores.uniform_patch_score(proc, x, t, window=3, lattice_ndim=2)
    sol = gl.sample(score_fn, proc, jax.random.PRNGKey(0), (4, 16, 16), ts=ts)
    assert sol.x.shape == (4, 16, 16)
    assert float(jnp.mean(jnp.abs(jnp.abs(sol.x) - 1.0) < 0.2)) > 0.95


def test_sharded_equals_unsharded(tmp_path):
    """Batch axis sharded over 4 host devices gives identical trajectories (subprocess)."""
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_enable_x64", True)
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import gltheory as gl
        assert len(jax.devices()) == 4, jax.devices()
        proc = gl.OU(T=3.0)
        data = gl.GaussianMixture(jnp.array([[1.0, 0.0], [-1.0, 0.0]]), jnp.array([0.2, 0.2]))
        score_fn = lambda x, t: gl.score(data, proc, x, t)
        ts = gl.time_grid(proc, 50)
        key = jax.random.PRNGKey(0)
        n = 16
        x0 = jax.random.normal(jax.random.PRNGKey(1), (n, 2))
        keys = gl.trajectory_keys(key, n)
        ref = gl.sample(score_fn, proc, keys, x0, ts=ts, method="heun_sde").x
        mesh = Mesh(np.array(jax.devices()), ("batch",))
        sh = NamedSharding(mesh, P("batch"))
        xs = jax.device_put(x0, sh)
        ks = jax.device_put(keys, sh)
        out = gl.sample(score_fn, proc, ks, xs, ts=ts, method="heun_sde").x
        assert len(out.sharding.device_set) == 4, out.sharding
        np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-12, atol=1e-12)
        print("SHARDED_OK")
        """
    )
    path = tmp_path / "sharded.py"
    path.write_text(script)
    root = os.path.dirname(os.path.dirname(os.path.abspath(gl.__file__)))
    env = dict(
        os.environ,
        # keep the run's XLA flags (the quick mode's optimisation level) and add the devices
        XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"),
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    )
    res = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0 and "SHARDED_OK" in res.stdout, res.stderr[-3000:]


def test_diffrax_unsafe_brownian_runs_and_samples_the_data():
    """The benchmark's diffrax configuration (UnsafeBrownianPath, StepTo) is a valid sampler."""
    proc = gl.OU(T=4.0)
    data = gl.TwoPoint(1.0, weight=0.8)
    n = 2000
    ts = gl.time_grid(proc, 200, kind="log_snr")
    x0 = jax.random.normal(jax.random.PRNGKey(0), (n, 1))
    x = gl.sampling.sample_diffrax(
        _score_fn(data, proc), proc, jax.random.PRNGKey(1), x0, ts=ts, brownian="unsafe"
    )
    frac = float(jnp.mean(x[:, 0] > 0))
    assert abs(frac - 0.8) < 3 * math.sqrt(0.8 * 0.2 / n)


def test_default_noise_block_depends_only_on_event_size():
    assert gl.sampling.default_noise_block((1,)) == 32
    assert gl.sampling.default_noise_block((64, 64)) == 2
    assert gl.sampling.default_noise_block((16,)) == 8
