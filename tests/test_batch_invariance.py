"""Batch-size independence: what trajectory ``i`` gets never depends on how many run with it.

The noise is bitwise batch-size independent (``tests/test_sampling.py``). The patch machines
(LS, ELS, bbELS, IS, ES) evaluate their score on fixed-shape blocks of trajectories with a
candidate chunk that does not depend on the batch (:func:`gltheory.lattice.map_batch_blocks`),
so their scores, and the trajectories sampled with them, are bitwise the same for every batch
size, float32 and float64. The closed-form scores are not (yet) evaluated in blocks: XLA
compiles them for the batch's shape (vectorised loops and scalar remainders, matrix-vector
versus matrix-matrix products), so they differ in the last bits between batch sizes (the
README says so; the strict xfail sweep below reports when that changes);
:func:`gltheory.lattice.map_batch_blocks` removes the difference.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import all_processes, closed_form_datasets

import gltheory as gl
from gltheory import patch
from gltheory.lattice import map_batch_blocks

BATCHES = (1, 8, 13)  # each compared with the first rows of a batch of 64
BIG = 64


def _machines(dtype, names=None):
    """Small patch machines of every kind (2-D 6x6 lattice unless named otherwise)."""
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    imgs = jnp.where(jax.random.bernoulli(k1, 0.5, (6, 6, 6)), 1.0, -1.0).astype(dtype)
    build = {
        "ELS": lambda: patch.ELS(imgs, 3),
        "ELS_valid": lambda: patch.ELS(imgs, 3, training_padding="valid"),
        "ELS_streamed": lambda: patch.ELS(imgs, 3, materialize=False),
        "ELS_channels": lambda: patch.ELS(
            jax.random.normal(k2, (5, 5, 6, 2), dtype), 3, lattice_ndim=2
        ),
        "ELS_1d": lambda: patch.ELS(jax.random.normal(k3, (4, 9), dtype), 3),
        "bbELS": lambda: patch.BoundaryELS(imgs, 3),
        "LS": lambda: patch.LS(imgs, 3),
        "IS": lambda: patch.IS(imgs),
        "ES": lambda: patch.ES(imgs),
    }
    return {n: f() for n, f in build.items() if names is None or n in names}


def _max_diff_rows(fn, x, batches=BATCHES):
    """Largest |fn(x[:n]) - fn(x)[:n]| over the batch sizes ``batches`` (leaves of a pytree)."""
    full = jax.tree.leaves(fn(x))
    worst = 0.0
    for n in batches:
        for a, b in zip(jax.tree.leaves(fn(x[:n])), full):
            worst = max(worst, float(np.max(np.abs(np.asarray(a) - np.asarray(b)[:n]))))
    return worst


def _trajectory_diff(score_fn, process, event_shape, dtype, n_steps=4, batches=BATCHES):
    """Largest state difference between the first trajectories of batches ``batches`` and BIG."""
    ts = gl.time_grid(process, n_steps, t_min=1e-2).astype(dtype)
    key = jax.random.PRNGKey(3)
    run = lambda n: np.asarray(gl.sample(score_fn, process, key, (n, *event_shape), ts=ts).x)
    big = run(BIG)
    return max(float(np.max(np.abs(run(n) - big[:n]))) for n in batches)


def _queries(m, dtype):
    """BIG queries; query 5 is far from every training patch, so at small t the ELS one-pass
    shift is not certified at its sites (they take the online pass, site by site): the other
    queries' results must not depend on whether it shares their batch (before the fix one
    batch-wide switch sent every query to the online pass)."""
    x = jax.random.normal(jax.random.PRNGKey(1), (BIG, *m.event_shape), dtype)
    return x.at[5].multiply(400.0)


def test_patch_score_bitwise_fast():
    """Fast cover: the ELS score (machine form, through gltheory.score; one-pass shift and
    per-site fallback) is bitwise equal for batches 1, 13 and 64 (float32)."""
    m = _machines(jnp.float32, ("ELS",))["ELS"]
    x, t = _queries(m, jnp.float32), jnp.float32(0.05)
    fn = lambda y: gl.score(m, gl.OU(), y, t)
    assert np.all(np.isfinite(np.asarray(fn(x))))
    assert _max_diff_rows(fn, x, (1, 13)) == 0.0


def test_patch_trajectories_bitwise_fast():
    """ELS trajectories (float32, 3 Euler-Maruyama steps under OU) bitwise equal for batches 13
    and 64: the headline failure of the issue (5.6e-5 after 12 steps before the fix)."""
    m = _machines(jnp.float32, ("ELS",))["ELS"]
    proc = gl.OU()
    fn = lambda x, t: patch.score(m, proc, x, t)
    assert _trajectory_diff(fn, proc, m.event_shape, jnp.float32, 3, (13,)) == 0.0


@pytest.mark.parametrize("form", ["function", "machine"])
def test_patch_empty_batch(form):
    """An empty batch gives empty results (as gltheory.score does), not ZeroDivisionError."""
    m = _machines(jnp.float64, ("ELS",))["ELS"]
    x = jnp.zeros((0, *m.event_shape))
    if form == "function":
        s = patch.score(m, gl.OU(), x, 0.5)
        d = patch.denoiser(m, gl.OU(), x, 0.5)
        st = patch.posterior_stats(m, gl.OU(), x, 0.5)
        assert st.entropy.shape == (0, *m.bank.lattice)
    else:
        s = gl.score(m, gl.OU(), x, 0.5)
        d = gl.denoiser(m, gl.OU(), x, 0.5)
    assert s.shape == d.shape == x.shape


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_patch_machines_bitwise_sweep(dtype):
    """Every machine kind, both dtypes: every statistic (function form) and the score (machine
    form) at two times, and trajectories under OU and VE-edm, bitwise equal for batches 1, 8,
    13 and 64."""
    for name, m in _machines(dtype).items():
        x = _queries(m, dtype)
        for t in (0.5, 0.05):
            t = jnp.asarray(t, dtype)
            fn = lambda y, t=t: gl.score(m, gl.OU(), y, t)
            assert _max_diff_rows(fn, x) == 0.0, (name, t)
            stats = lambda y, t=t: patch.posterior_stats(m, gl.OU(), y, t)
            assert _max_diff_rows(stats, x) == 0.0, (name, t)
        # two processes (a VP-type and a VE-type clock: the process only sets the scalars
        # a(t), b(t)); the fast cover is test_patch_trajectories_bitwise_fast (ELS, OU)
        for proc in (gl.OU(), gl.VE("edm")):
            fn = lambda x, t, m=m, proc=proc: patch.score(m, proc, x, t)
            assert _trajectory_diff(fn, proc, m.event_shape, dtype) == 0.0, (name, proc)
        jax.clear_caches()  # hundreds of programs: keep under vm.max_map_count (see conftest)


def _closed_form_diff(data, proc, dtype, ts, batches=BATCHES, block=None):
    """Largest |score(x[:n]) - score(x)[:n]|, optionally evaluated in fixed-shape blocks."""
    x = jax.random.normal(jax.random.PRNGKey(5), (BIG, *data.event_shape), dtype)
    worst = 0.0
    for t in ts:
        t = jnp.asarray(t, dtype)
        fn = lambda y, t=t: gl.score(data, proc, y, t)
        if block is not None:
            fn = lambda y, f=fn: map_batch_blocks(f, y, block)
        worst = max(worst, _max_diff_rows(fn, x, batches))
    return worst


def test_map_batch_blocks_makes_a_closed_form_score_bitwise():
    """gltheory.lattice.map_batch_blocks (the patch machines' mechanism) makes any row-wise
    score bitwise batch-size independent: Hypersphere under VE (float32), one of the cases the
    issue found, evaluated in blocks of 8 rows for batches 13 and 64; and an empty batch."""
    data = closed_form_datasets()["hypersphere_3"]
    assert _closed_form_diff(data, gl.VE(), jnp.float32, (0.5,), (13,), block=8) == 0.0
    empty = map_batch_blocks(lambda y: 2 * y, jnp.zeros((0, 3)), 8)
    assert empty.shape == (0, 3)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="closed-form scores are compiled for the batch's shape (not yet evaluated in "
    "fixed-shape blocks in gltheory.scores): last-bit differences across batch sizes",
)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_closed_form_scores_bitwise_sweep(dtype):
    """Every closed-form dataset x every process: one score call bitwise equal across batch
    sizes 1, 8, 13 and 64 (known to fail today, see the README: strict, so it reports when the
    scores become batch-size independent)."""
    for name, data in closed_form_datasets().items():
        for proc in all_processes():
            assert _closed_form_diff(data, proc, dtype, (0.5, 0.05)) == 0.0, (name, proc)


# The closed-form scores' documented guarantee (README, "Batch size"): one score call at a
# batch size n agrees with the first n rows of a batch of 64 within ULP_BOUND units of the
# dtype's eps times the batch's largest |score|. The difference is round-off of the same formula
# evaluated in another order, amplified by the conditioning of the dataset's formula (the worst
# case measured on 2026-12-03: 662 for the full-covariance Gaussian mixture in float32 under
# the EDM VE process at t = 0.05, where the eigenbasis rotation amplifies it by the covariance's
# condition number; 50 or less for every other dataset and process).
ULP_BOUND = 1000.0


def _closed_form_rel_diff(data, proc, dtype, ts):
    """Largest |score(x[:n]) - score(x)[:n]| / (eps * max |score(x)|) over n in BATCHES."""
    x = jax.random.normal(jax.random.PRNGKey(5), (BIG, *data.event_shape), dtype)
    eps = float(jnp.finfo(dtype).eps)
    worst = 0.0
    for t in ts:
        t = jnp.asarray(t, dtype)
        full = np.asarray(gl.score(data, proc, x, t))
        scale = float(np.max(np.abs(full)))
        for n in BATCHES:
            part = np.asarray(gl.score(data, proc, x[:n], t))
            worst = max(worst, float(np.max(np.abs(part - full[:n]))) / (eps * scale))
    return worst


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_closed_form_score_batch_difference_is_round_off_fast(dtype):
    """Fast cover of the sweep below: the full-covariance Gaussian (the worst family) under OU."""
    data = closed_form_datasets()["gaussian"]
    assert _closed_form_rel_diff(data, gl.OU(), dtype, (0.5,)) <= ULP_BOUND


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_closed_form_scores_batch_difference_is_round_off(dtype):
    """Every closed-form dataset x every process, two times: within the documented bound."""
    for name, data in closed_form_datasets().items():
        for proc in all_processes():
            rel = _closed_form_rel_diff(data, proc, dtype, (0.5, 0.05))
            assert rel <= ULP_BOUND, (name, proc, rel)
        jax.clear_caches()
