"""Bad inputs of the core layer (issue 16): each gets a clear error naming the argument, and the
samplers report non-finite trajectories instead of hiding them.

Everything here is cheap: the errors are raised before anything compiles (the score-shape
checks run inside the sampler's trace, by ``jax.eval_shape``, and abort it), and the few runs
use tiny batches and a handful of steps. Arguments of a wrong *type* are passed to the
functions without the suite's jaxtyping hook (``inspect.unwrap``), i.e. as users call them, so
that the library's own message is what is tested.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import sampling

NAN, INF = float("nan"), float("inf")


def _lib(fn):
    """``fn`` as users call it (without the test suite's run-time type-checking wrapper)."""
    return inspect.unwrap(fn)


def _minus_x(x, t):
    return -x


# ----------------------------------------------------------------------------------------------
# item 1: parameters of datasets and processes are finite
# ----------------------------------------------------------------------------------------------

NONFINITE_CONSTRUCTORS = [
    ("points", lambda: gl.DeltaMixture(jnp.array([[NAN, 0.0], [1.0, 1.0]]))),
    ("images", lambda: gl.data.LatticeImages(jnp.array([[INF, 1.0], [1.0, -1.0]]))),
    ("values", lambda: gl.data.uniform_images((4,), (NAN, -1.0))),
    ("mu", lambda: gl.TwoPoint(NAN, dim=2)),
    ("mu", lambda: gl.TwoPoint(jnp.array([INF, 1.0]))),
    ("mean", lambda: gl.Gaussian(jnp.array([NAN, 0.0]), 1.0)),
    ("cov", lambda: gl.Gaussian(jnp.zeros(2), NAN)),
    ("cov", lambda: gl.Gaussian(jnp.zeros(2), INF)),
    ("cov", lambda: gl.Gaussian(jnp.zeros(2), jnp.array([1.0, NAN]))),
    ("cov", lambda: gl.Gaussian(jnp.zeros(2), jnp.array([[1.0, NAN], [NAN, 1.0]]))),
    ("means", lambda: gl.GaussianMixture(jnp.array([[NAN, 0.0], [1.0, 1.0]]), 1.0)),
    ("variances", lambda: gl.GaussianMixture(jnp.zeros((2, 2)), INF)),
    ("variances", lambda: gl.GaussianMixture(jnp.zeros((2, 2)), jnp.array([NAN, 1.0]))),
    ("weights", lambda: gl.DeltaMixture(jnp.zeros((2, 1)), jnp.array([NAN, 0.5]))),
    ("weight", lambda: gl.TwoPoint(1.0, weight=NAN)),
    ("radius", lambda: gl.Hypersphere(INF, 3)),
    ("radius", lambda: gl.Hypersphere(NAN, 3)),
    ("T", lambda: gl.OU(NAN)),
    ("T", lambda: gl.OU(INF)),
    ("beta_max", lambda: gl.VP(beta_max=INF)),
    ("s", lambda: gl.VP("cosine", s=NAN)),
    ("sigma_min", lambda: gl.VE(sigma_min=NAN)),
    ("sigma_max", lambda: gl.VE("edm", sigma_max=INF)),
]


@pytest.mark.parametrize(
    "name,make",
    NONFINITE_CONSTRUCTORS,
    ids=[f"{n}-{i}" for i, (n, _) in enumerate(NONFINITE_CONSTRUCTORS)],
)
def test_constructors_refuse_nonfinite_parameters(name, make):
    with pytest.raises(ValueError, match=rf"\b{name}\b.*(finite|> 0|positive|in \(0, 1\))"):
        make()


def test_constructor_checks_a_traced_parameter_only_when_the_switch_is_on():
    make = jax.jit(lambda r: gl.Hypersphere(r, 3).radius)
    assert float(make(2.0)) == 2.0
    assert np.isinf(float(make(INF)))  # off by default: no host callback in the program
    with gl.config.check_traced_values(True):
        make_checked = jax.jit(lambda r: gl.Hypersphere(r, 3).radius)
        with pytest.raises(Exception, match="radius must be > 0 and finite"):
            jax.block_until_ready(make_checked(INF))


# ----------------------------------------------------------------------------------------------
# item 1: time grids
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [NAN, INF, 0.0, -1.0, "7"])
def test_time_grid_refuses_a_bad_rho(rho):
    with pytest.raises(ValueError, match=r"rho must be a finite number > 0"):
        _lib(gl.time_grid)(gl.OU(), 4, kind="edm", rho=rho)


@pytest.mark.parametrize("arg", ["t_min", "t_max"])
def test_time_grid_needs_scalar_bounds(arg):
    value = [1e-3, 1e-2] if arg == "t_min" else [4.0, 5.0]
    with pytest.raises(ValueError, match=rf"{arg} must be a scalar time, got shape \(2,\)"):
        _lib(gl.time_grid)(gl.OU(), 4, **{arg: value})


def test_time_grid_and_samplers_name_a_process_of_the_wrong_type(key):
    ts = jnp.array([1.0, 0.5])
    msg = r"process must be a gltheory process"
    with pytest.raises(ValueError, match=msg):
        _lib(gl.time_grid)("OU", 4)
    with pytest.raises(ValueError, match=msg):
        _lib(gl.sample)(_minus_x, "OU", key, (2, 1), ts=ts)
    with pytest.raises(ValueError, match=msg):
        _lib(sampling.sample_diffrax)(_minus_x, "OU", key, jnp.zeros((2, 1)), ts=ts)
    with pytest.raises(ValueError, match=msg):
        _lib(sampling.states_at)(_minus_x, None, key, (2, 1), ts=ts, indices=[1])
    keys = jax.random.split(key, 2).reshape(1, 2, -1)
    with pytest.raises(ValueError, match=msg):
        _lib(sampling.branch)(_minus_x, "OU", keys, jnp.zeros((1, 2, 1)), ts=ts, indices=[0])
    with pytest.raises(ValueError, match=msg):
        _lib(gl.scores.uniform_patch_score)("OU", jnp.zeros((2, 5)), 0.5, window=3, lattice_ndim=1)


# ----------------------------------------------------------------------------------------------
# item 1: keys, states and score functions given to the samplers
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_key", ["0", 0, None, jnp.zeros(2, jnp.float32)])
def test_sample_names_a_key_that_is_not_a_prng_key(bad_key):
    ts = jnp.array([1.0, 0.5])
    with pytest.raises(ValueError, match=r"key must be a JAX PRNG key"):
        _lib(gl.sample)(_minus_x, gl.OU(), bad_key, (2, 1), ts=ts)
    with pytest.raises(ValueError, match=r"key must be a JAX PRNG key"):
        _lib(sampling.sample_diffrax)(_minus_x, gl.OU(), bad_key, (2, 1), ts=ts)


def test_branch_names_keys_that_are_not_prng_keys():
    ts = jnp.array([1.0, 0.5])
    with pytest.raises(ValueError, match=r"keys must be PRNG keys of shape \(n_branch, m\)"):
        _lib(sampling.branch)(_minus_x, gl.OU(), "0", jnp.zeros((1, 2, 1)), ts=ts, indices=[0])


def test_sample_diffrax_names_states_without_a_batch_axis(key):
    with pytest.raises(ValueError, match=r"x must be states with a leading batch axis"):
        _lib(sampling.sample_diffrax)(_minus_x, gl.OU(), key, 1.0, ts=jnp.array([1.0, 0.5]))


def test_samplers_name_a_score_fn_that_is_not_callable(key):
    ts = jnp.array([1.0, 0.5])
    keys = jax.random.split(key, 2).reshape(1, 2, -1)
    for call in (
        lambda: _lib(gl.sample)(None, gl.OU(), key, (2, 1), ts=ts),
        lambda: _lib(sampling.sample_diffrax)(1.0, gl.OU(), key, (2, 1), ts=ts),
        lambda: _lib(sampling.branch)(
            "score", gl.OU(), keys, jnp.zeros((1, 2, 1)), ts=ts, indices=[0]
        ),
    ):
        with pytest.raises(ValueError, match=r"score_fn must be callable as score_fn\(x, t\)"):
            call()


# score functions whose output only broadcasts against x (n = 2 = d makes (d,) broadcast)
WRONG_SCORES = {
    "n_d_plus_1": lambda x, t: jnp.zeros((x.shape[0], x.shape[1] + 1), x.dtype),
    "n_1": lambda x, t: jnp.zeros((x.shape[0], 1), x.dtype),
    "d_when_n_equals_d": lambda x, t: jnp.zeros((x.shape[1],), x.dtype),
    "wider_dtype": lambda x, t: jnp.zeros(x.shape, jnp.float64),
}


@pytest.mark.parametrize("which", list(WRONG_SCORES))
@pytest.mark.parametrize("sampler", ["sample", "branch", "sample_diffrax"])
def test_a_score_fn_of_the_wrong_shape_or_dtype_is_refused_by_every_sampler(key, sampler, which):
    """Checked once per compilation by jax.eval_shape; the trace stops there (nothing compiles)."""
    score_fn = WRONG_SCORES[which]
    proc, ts = gl.OU(), jnp.array([1.0, 0.5, 0.25], jnp.float32)
    x = jnp.zeros((2, 2), jnp.float32)  # n == d
    if sampler == "sample":
        run = lambda: gl.sample(score_fn, proc, key, x, ts=ts)  # noqa: E731
    elif sampler == "sample_diffrax":
        run = lambda: sampling.sample_diffrax(score_fn, proc, key, x, ts=ts)  # noqa: E731
    else:
        keys = gl.trajectory_keys(key, 2)[None]  # (1, 2) keys: one branch of 2 clones
        run = lambda: sampling.branch(score_fn, proc, keys, x[None], ts=ts, indices=[0])  # noqa: E731
    what = r"dtype float32" if which == "wider_dtype" else r"x's shape \(2, 2\)"
    with pytest.raises(ValueError, match=rf"score_fn must return .*{what}"):
        run()


def test_sample_diffrax_accepts_a_shape(key):
    """Fast cover: a shape tuple gives states of that shape (abstract evaluation, no compile)."""
    proc = gl.OU(T=2.0)
    ts = jnp.array([2.0, 1.0, 0.5])
    out = jax.eval_shape(
        lambda k: sampling.sample_diffrax(_minus_x, proc, k, (8, 2), ts=ts, method="heun"), key
    )
    assert out.shape == (8, 2)


@pytest.mark.slow
def test_sample_diffrax_draws_the_initial_states_of_sample(key):
    """A shape tuple draws x_{t_0} ~ N(0, b^2 I) from each trajectory's key, as in sample, so
    the two samplers agree to round-off (float64 here)."""
    proc = gl.OU(T=2.0)
    data = gl.TwoPoint(1.0, dim=2)
    score_fn = lambda x, t: gl.score(data, proc, x, t)  # noqa: E731
    ts = gl.time_grid(proc, 4)
    ref = gl.sample(score_fn, proc, key, (3, 2), ts=ts)
    out = sampling.sample_diffrax(score_fn, proc, key, (3, 2), ts=ts)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, ref.x, rtol=0, atol=1e-12)


def test_a_grid_that_repeats_times_in_the_states_dtype_is_refused(key):
    """Near t = 1 float16 has spacing 4.9e-4, so 0.9996 and 0.9993 both round to 0.99951 (a
    256-step log-SNR grid of the cosine VP has such neighbours): the grid is checked again
    after the cast to x's dtype, before anything runs."""
    ts = np.array([1.0, 0.9996, 0.9993, 0.5])
    proc = gl.VP("cosine")
    x = jnp.zeros((2, 1), jnp.float16)
    msg = r"ts must stay strictly decreasing in x's dtype float16, but ts\[1\]"
    with pytest.raises(ValueError, match=msg):
        gl.sample(_minus_x, proc, key, x, ts=ts)
    with pytest.raises(ValueError, match=msg):
        sampling.sample_diffrax(_minus_x, proc, key, x, ts=ts)
    keys = gl.trajectory_keys(key, 2)[None]
    with pytest.raises(ValueError, match=msg):
        sampling.branch(_minus_x, proc, keys, x[None], ts=ts, indices=[0])
    with pytest.raises(ValueError, match=r"ts\[-1\] = 1e-08 rounds to 0 in x's dtype float16"):
        gl.sample(_minus_x, gl.OU(), key, x, ts=np.array([1.0, 1e-8]))


# ----------------------------------------------------------------------------------------------
# item 2: non-finite trajectories are counted and reported
# ----------------------------------------------------------------------------------------------


def test_count_nonfinite_counts_batch_elements():
    x = np.zeros((4, 3))
    x[1, 0], x[1, 2], x[3, 1] = np.nan, np.inf, -np.inf
    n = sampling.count_nonfinite(x)
    assert n.dtype == jnp.int32 and n.shape == () and int(n) == 2
    assert int(sampling.count_nonfinite(x, 0)) == 3  # scalar events: every entry is one
    clones = np.zeros((2, 3, 2, 2))
    clones[0, 1, 1, 0] = clones[1, 2, 0, 1] = np.nan
    assert int(sampling.count_nonfinite(clones, 2)) == 2  # (n_branch, m) clones of 2x2 images
    for bad in (-1, 3, 1.0, True):
        with pytest.raises(ValueError, match=r"event_ndim must"):
            _lib(sampling.count_nonfinite)(np.zeros((2, 2)), bad)


def test_sample_reports_nonfinite_trajectories(key):
    """A NaN or Inf initial state propagates (pure arithmetic) and is counted, per row."""
    proc = gl.OU(T=2.0)
    ts = np.array([2.0, 1.0, 0.5])
    x0 = np.zeros((4, 2))
    x0[1, 0], x0[3] = np.nan, np.inf
    sol = gl.sample(_minus_x, proc, key, x0, ts=ts)
    assert sol.n_nonfinite.dtype == jnp.int32 and sol.n_nonfinite.shape == ()
    assert int(sol.n_nonfinite) == 2
    assert int(sol.n_nonfinite) == int(sampling.count_nonfinite(sol.x))
    assert bool(jnp.all(jnp.isfinite(sol.x[np.array([0, 2])])))
    clean = gl.sample(_minus_x, proc, key, np.zeros((4, 2)), ts=ts)  # same program
    assert int(clean.n_nonfinite) == 0
