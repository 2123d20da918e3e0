"""Bad input raises ValueError naming the argument (trace time) or an error_if (inside jit)."""

import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import gltheory as gl

ROOT = Path(__file__).resolve().parents[1]


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


def test_time_outside_range():
    data, proc = gl.TwoPoint(1.0), gl.OU(T=2.0)
    x = jnp.zeros((3, 1))
    for t in (0.0, -0.1, 2.5, float("nan")):
        _raises(r"\bt\b.*\(0, T\]|t must be finite", gl.score, data, proc, x, t)
    _raises(r"\bt\b", gl.denoiser, data, proc, x, jnp.array([0.5, 0.0, 1.0]))
    # a value traced by the user's jit is checked (an error_if) when the switch is on
    with gl.config.check_traced_values(True):
        f = jax.jit(lambda t: gl.score(data, proc, x, t))
        assert bool(jnp.all(jnp.isfinite(f(0.5))))
        with pytest.raises(Exception, match=r"t must lie in \(0, T\]"):
            jax.block_until_ready(f(3.0))


def test_negative_variances_and_bad_weights():
    _raises(
        r"variances must be >= 0", gl.GaussianMixture, jnp.zeros((2, 1)), jnp.array([1.0, -0.1])
    )
    _raises(r"cov", gl.Gaussian, jnp.zeros(2), jnp.array([1.0, -1.0]))
    _raises(
        r"cov must be positive semi-definite",
        gl.Gaussian,
        jnp.zeros(2),
        jnp.array([[1.0, 2.0], [2.0, 1.0]]),
    )
    _raises(
        r"cov must be symmetric", gl.Gaussian, jnp.zeros(2), jnp.array([[1.0, 0.5], [0.0, 1.0]])
    )
    _raises(r"weights must sum to 1", gl.DeltaMixture, jnp.zeros((2, 1)), jnp.array([0.5, 0.6]))
    _raises(
        r"weights must be non-negative", gl.DeltaMixture, jnp.zeros((2, 1)), jnp.array([1.5, -0.5])
    )
    _raises(
        r"weights must have shape \(2,\)",
        gl.GaussianMixture,
        jnp.zeros((2, 1)),
        1.0,
        jnp.ones(3) / 3,
    )
    _raises(r"weight must lie in \(0, 1\)", gl.TwoPoint, 1.0, weight=1.0)
    _raises(r"radius must be > 0", gl.Hypersphere, -1.0, 3)
    _raises(r"dim must be an integer >= 2", gl.Hypersphere, 1.0, 1)
    _raises(r"beta_min must be a positive", gl.VP, beta_min=-0.1)
    _raises(r"beta_max must be >= beta_min", gl.VP, beta_min=5.0, beta_max=1.0)
    _raises(r"schedule must be", gl.VP, "sigmoid")
    _raises(r"sigma_max must exceed sigma_min", gl.VE, sigma_min=2.0, sigma_max=1.0)
    _raises(r"T must be a positive", gl.OU, T=0.0)


def test_empty_datasets():
    _raises(r"points is empty", gl.DeltaMixture, jnp.zeros((0, 2)))
    _raises(r"images is empty", gl.LatticeImages, jnp.zeros((0, 4, 4)))
    _raises(
        r"means must have shape \(K, d\) with K, d >= 1",
        gl.GaussianMixture,
        jnp.zeros((0, 2)),
        jnp.zeros(0),
    )
    _raises(r"mean must be a non-empty vector", gl.Gaussian, jnp.zeros(0), 1.0)


def test_shape_mismatch_between_data_and_x():
    data, proc = gl.TwoPoint(1.0, dim=3), gl.OU()
    _raises(
        r"x has shape \(4, 2\).*event shape \(3,\)", gl.score, data, proc, jnp.zeros((4, 2)), 0.5
    )
    _raises(r"x has shape", gl.log_prob, gl.data.stripes((4, 4)), proc, jnp.zeros((2, 4, 5)), 0.5)
    _raises(r"t has shape \(3,\)", gl.score, data, proc, jnp.zeros((4, 3)), jnp.ones(3) * 0.5)
    _raises(
        r"t has shape \(2, 1\)",
        gl.log_prob,
        data,
        proc,
        jnp.zeros((1, 3, 3)),
        jnp.full((2, 1), 0.5),
    )
    _raises(r"mu has shape \(2,\) but dim=3", gl.TwoPoint, jnp.ones(2), dim=3)
    _raises(r"points must have shape \(K, \*event_shape\)", gl.DeltaMixture, jnp.zeros(3))
    _raises(
        r"x must be a real floating array",
        gl.score,
        data,
        proc,
        jnp.zeros((1, 3), jnp.complex64),
        0.5,
    )


def test_sampler_arguments():
    data, proc = gl.TwoPoint(1.0), gl.OU(T=2.0)
    sf = lambda x, t: gl.score(data, proc, x, t)
    key = jax.random.PRNGKey(0)
    ts = gl.time_grid(proc, 10)
    _raises(r"n_steps must be a positive integer", gl.time_grid, proc, 0)
    _raises(r"n_steps must be a positive integer", gl.time_grid, proc, -3)
    _raises(r"a positive number of steps", gl.sample, sf, proc, key, (4, 1), ts=ts[:1])
    _raises(r"strictly decreasing", gl.sample, sf, proc, key, (4, 1), ts=ts[::-1])
    _raises(r"lie in \(0, T\]", gl.sample, sf, proc, key, (4, 1), ts=jnp.linspace(3.0, 0.1, 5))
    _raises(r"lie in \(0, T\]", gl.sample, sf, proc, key, (4, 1), ts=jnp.linspace(1.0, 0.0, 5))
    _raises(r"method must be one of", gl.sample, sf, proc, key, (4, 1), ts=ts, method="rk4")
    _raises(
        r"save_at must be strictly increasing indices",
        gl.sample,
        sf,
        proc,
        key,
        (4, 1),
        ts=ts,
        observe=lambda x, t: x,
        save_at=[3, 2],
    )
    _raises(
        r"save_at", gl.sample, sf, proc, key, (4, 1), ts=ts, observe=lambda x, t: x, save_at=[11]
    )
    _raises(
        r"key holds 3 trajectory keys but n=4",
        gl.sample,
        sf,
        proc,
        gl.trajectory_keys(key, 3),
        jnp.zeros((4, 1)),
        ts=ts,
    )
    _raises(
        r"noise_block must be a positive integer",
        gl.sample,
        sf,
        proc,
        key,
        (4, 1),
        ts=ts,
        noise_block=0,
    )
    _raises(r"need 0 < t_min < t_max <= T", gl.time_grid, proc, 10, t_min=3.0)
    _raises(
        r"window must be an odd positive integer",
        gl.scores.uniform_patch_score,
        proc,
        jnp.zeros((8,)),
        0.5,
        window=4,
        lattice_ndim=1,
    )
    _raises(
        r"window=9 exceeds the lattice size 8",
        gl.scores.uniform_patch_score,
        proc,
        jnp.zeros((8,)),
        0.5,
        window=9,
        lattice_ndim=1,
    )


def test_readme_api_example_runs():
    """The README's 15-line example runs and prints t_c^S on the grid next to ln(2)/2."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## API in 15 lines\s+```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 15
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert res.returncode == 0, res.stderr[-2000:]
    last = res.stdout.strip().splitlines()[-1].split()
    assert abs(float(last[0]) - float(last[1])) < 0.02
