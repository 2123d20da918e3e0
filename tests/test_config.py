"""gltheory.config: validation at the public boundary costs no compilation; the switch for
traced values; the persistent compilation cache; ``sample``'s and ``fit_exponent``'s checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl

ROOT = Path(__file__).resolve().parents[1]

# A fresh interpreter computes the three first results of benchmarks/bench_coldstart.py with a
# new, empty persistent cache, and reads JAX's compiler log: every program compiled for them
# must have been written to the cache, none refused for using host callbacks. Then, with the
# checks of traced values switched on, critical_times on new shapes (new programs): values
# the library traces itself are never re-checked, so again no callback.
_PROBE = """
import json, logging, os, sys
import jax, jax.numpy as jnp
import gltheory as gl
gl.config.enable_compilation_cache(sys.argv[1])
refused = []
class Log(logging.Handler):
    def emit(self, record):
        if "host callbacks" in record.getMessage():
            refused.append(record.getMessage())
lg = logging.getLogger("jax._src.compiler")
lg.setLevel(logging.DEBUG)
lg.addHandler(Log())
lg.propagate = False
out = {}
process = gl.OU(T=5.0)
data = gl.TwoPoint(1.0, dim=1, weight=0.8)
score_fn = lambda x, t: gl.score(data, process, x, t)
ts = gl.time_grid(process, 64, kind="log_snr")
run = jax.jit(lambda key, ts: gl.sample(score_fn, process, key, (256, 1), ts=ts,
              solver=gl.EulerMaruyama(), observe=lambda x, t: jnp.mean(x > 0), save_at=[0, 64]))
jax.block_until_ready(run(jax.random.PRNGKey(0), ts).observables)
mix = gl.DeltaMixture(jnp.array([[1.0], [-1.0]]), jnp.array([0.3, 0.7]))
jax.block_until_ready(gl.sample(lambda x, t: gl.score(mix, process, x, t), process,
                      jax.random.PRNGKey(1), (64, 1), ts=ts).x)
out["sampler"] = len(refused)
jax.block_until_ready(gl.critical_times(gl.TwoPoint(1.0), gl.OU()).t_score)
out["critical_times"] = len(refused) - out["sampler"]
els = gl.ELS(gl.data.stripes((32, 32), width=4), window=3)
jax.block_until_ready(gl.patch.score(els, gl.OU(), jnp.zeros((1, 32, 32)), 0.5))
out["els"] = len(refused) - out["sampler"] - out["critical_times"]
n_default = len(refused)
with gl.config.check_traced_values(True):
    jax.block_until_ready(gl.critical_times(gl.TwoPoint(1.0, dim=2), gl.OU()).t_score)
out["critical_times_checks_on"] = len(refused) - n_default
out["entries"] = len(os.listdir(sys.argv[1]))
print(json.dumps(out))
"""


def test_programs_for_concrete_inputs_hold_no_host_callback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != gl.config.CHECK_TRACED_ENV}
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["sampler"] == 0, out
    assert out["critical_times"] == 0, out
    assert out["els"] == 0, out
    assert out["critical_times_checks_on"] == 0, out
    assert out["entries"] >= 10, out  # the programs were written to the cache


def _readme_sampler():
    process = gl.OU(T=5.0)
    data = gl.TwoPoint(1.0, dim=1, weight=0.8)
    ts = gl.time_grid(process, 8, kind="log_snr")
    run = jax.jit(
        lambda key, ts: gl.sample(
            lambda x, t: gl.score(data, process, x, t),
            process,
            key,
            (16, 1),
            ts=ts,
            observe=lambda x, t: jnp.mean(x > 0),
            save_at=[0, 8],
        )
    )
    return run, ts


def _has_callback(text: str) -> bool:
    return "callback" in text.lower()


def test_switch_decides_callbacks_in_a_users_jit():
    assert not gl.config.traced_checks_enabled()  # the default (GLTHEORY_CHECK_TRACED unset)
    run, ts = _readme_sampler()
    key = jax.random.PRNGKey(0)
    assert not _has_callback(run.lower(key, ts).as_text())
    with gl.config.check_traced_values(True):
        assert gl.config.traced_checks_enabled()
        run_checked, _ = _readme_sampler()
        # ts is traced by the user's jit: checked at the boundary, so one error_if
        assert _has_callback(run_checked.lower(key, ts).as_text())
    assert not gl.config.traced_checks_enabled()
    gl.config.check_traced_values(True)  # a plain call sets it for good ...
    try:
        assert gl.config.traced_checks_enabled()
    finally:
        gl.config.check_traced_values(False)  # ... until set again
    assert not gl.config.traced_checks_enabled()
    with pytest.raises(ValueError, match="enabled must be True or False"):
        gl.config.check_traced_values(1)


def test_traced_bad_value_raises_with_the_library_message():
    data, proc = gl.TwoPoint(1.0), gl.OU(T=2.0)
    x = jnp.zeros((3, 1))
    msg = r"t must lie in \(0, T\]"
    # eager grad: the primal value is known, so the check is the Python one (ValueError first)
    with pytest.raises(ValueError, match="^" + msg):
        jax.grad(lambda t: gl.score(data, proc, x, t).sum())(3.0)
    with gl.config.check_traced_values(True):
        # equinox's jit re-raises the error_if as its own error, with the message
        f = eqx.filter_jit(lambda t: gl.score(data, proc, x, t))
        with pytest.raises(eqx.EquinoxRuntimeError, match=msg):
            jax.block_until_ready(f(jnp.asarray(3.0)))
        # under a plain jax.jit the text is JAX's own ("INTERNAL: CpuCallback error ...",
        # composed in jaxlib); the library's message is its exception line
        g = jax.jit(lambda t: gl.score(data, proc, x, t))
        with pytest.raises(Exception, match=msg) as info:
            jax.block_until_ready(g(3.0))
        lines = str(info.value).splitlines()
        assert any(line.split(": ", 1)[-1].startswith("t must lie in (0, T]") for line in lines)
    # off (default): no check, no callback, and the jitted function runs
    h = jax.jit(lambda t: gl.score(data, proc, x, t))
    assert not _has_callback(h.lower(3.0).as_text())


def test_library_impls_are_trusted_even_with_the_switch_on():
    data, proc = gl.TwoPoint(1.0), gl.OU()
    ts = gl.time_grid(proc, 8)
    with gl.config.check_traced_values(True):
        # concrete arguments: checked in Python; inside the sampler's own jit, gl.score's
        # check of the traced t is skipped
        lowered = jax.jit(
            lambda key: gl.sample(lambda x, t: gl.score(data, proc, x, t), proc, key, (4, 1), ts=ts)
        ).lower(jax.random.PRNGKey(0))
        assert not _has_callback(lowered.as_text())
        with pytest.raises(ValueError, match=r"\bts\b"):
            gl.sample(lambda x, t: x, proc, jax.random.PRNGKey(0), (4, 1), ts=ts[::-1])


def test_enable_compilation_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(gl.config.CACHE_DIR_ENV, str(tmp_path / "env"))
    assert gl.config.default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv(gl.config.CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gl.config.default_cache_dir() == tmp_path / "xdg" / "gltheory" / "jax"
    old = {
        k: getattr(jax.config, k)
        for k in (
            "jax_compilation_cache_dir",
            "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes",
        )
    }
    try:
        path = gl.config.enable_compilation_cache(tmp_path / "c", min_compile_time_s=0.5)
        assert path == tmp_path / "c" and path.is_dir()
        assert jax.config.jax_compilation_cache_dir == str(path)
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.5
    finally:
        for k, v in old.items():
            jax.config.update(k, v)
    with pytest.raises(ValueError, match="min_compile_time_s"):
        gl.config.enable_compilation_cache(tmp_path, min_compile_time_s=-1.0)


def test_env_flag(monkeypatch):
    code = "import gltheory as gl; print(gl.config.traced_checks_enabled())"
    for value, expected in (("1", "True"),):  # the default (unset) is tested above
        env = dict(os.environ, **{gl.config.CHECK_TRACED_ENV: value})
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.stdout.strip() == expected, out.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# sample checks the score function's output once, by abstract evaluation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "score_fn", "match"),
    [
        ((10, 2), lambda x, t: x[:, :1], r"score_fn .*shape \(10, 2\).*returned shape \(10, 1\)"),
        # n == d: a (d,) output broadcasts against (n, d) and would pass silently
        ((3, 3), lambda x, t: x[0], r"returned shape \(3,\) for x of shape \(3, 3\)"),
        ((4, 1), lambda x, t: x.astype(jnp.int32), r"score_fn must return a floating array"),
        ((4, 1), lambda x, t: (x, x), r"score_fn must return one array"),
    ],
)
def test_sample_checks_score_output(shape, score_fn, match):
    proc = gl.OU()
    with pytest.raises(ValueError, match=match):
        gl.sample(score_fn, proc, jax.random.PRNGKey(0), shape, ts=gl.time_grid(proc, 4))


def test_sample_accepts_a_narrower_score_dtype():
    proc = gl.OU()
    sol = gl.sample(
        lambda x, t: -x.astype(jnp.bfloat16),
        proc,
        jax.random.PRNGKey(0),
        (4, 2),
        ts=gl.time_grid(proc, 4),
    )
    assert sol.x.shape == (4, 2) and sol.x.dtype == sol.ts.dtype != jnp.bfloat16


# ---------------------------------------------------------------------------------------------
# fit_exponent refuses points it cannot fit (nothing dropped silently)
# ---------------------------------------------------------------------------------------------


def test_fit_exponent_refuses_bad_points():
    fit = gl.meanfield.fit_exponent
    with pytest.raises(ValueError, match=r"x must be finite and > 0; bad at indices \[0\]"):
        fit(jnp.array([0.0, 1.0, 2.0]), jnp.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"y must be finite and nonzero.*indices \[2\]"):
        fit(jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([1.0, 2.0, 0.0, 3.0]))
    with pytest.raises(ValueError, match=r"yerr must be finite and > 0"):
        fit(jnp.arange(1.0, 5.0), jnp.arange(1.0, 5.0), yerr=jnp.array([0.1, 0.1, -0.1, 0.1]))
    with pytest.raises(ValueError, match=r"at least 3 points in x_range"):
        fit(jnp.arange(1.0, 6.0), jnp.arange(1.0, 6.0), x_range=(10.0, 20.0))
    with pytest.raises(ValueError, match=r"lo < hi"):
        fit(jnp.arange(1.0, 6.0), jnp.arange(1.0, 6.0), x_range=(3.0, 2.0))
    # a bad point outside x_range is not used, so it is allowed
    x = jnp.array([0.0, 1.0, 2.0, 4.0, 8.0])
    y = jnp.array([5.0, 1.0, 4.0, 16.0, 64.0])
    res = fit(x, y, x_range=(1.0, 8.0))
    np.testing.assert_allclose(float(res.slope), 2.0, rtol=1e-5)
    assert int(res.n) == 4
    # under jit the points are masked and n says how many were fitted
    res = jax.jit(lambda x, y: fit(x, y))(jnp.array([0.0, 1.0, 2.0, 4.0]), y[1:])
    assert int(res.n) == 3
