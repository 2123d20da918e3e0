"""Issue 16: every bad input gets a clear error naming the argument and what is allowed, and
every Monte Carlo result reports its non-finite trajectories instead of hiding them.

The module has two layers, in three sections (core / estimators / io):

- ``CASES``: one :class:`Case` per case the issue names (silently wrong, unclear, silent NaN,
  the invariants of files and Ctrl-C), each a thunk with the error it must raise (its message
  must match, and names the argument), or, for a behaviour that is not an error, the report it
  must produce (a string the thunk returns: a count of non-finite trajectories, a shape, the
  one line the CLI prints). ``test_issue_case`` runs them; ``/work/notes/bad_inputs_table.py``
  prints the issue's closing table (case -> message now shown) from the same list.
- further tests, next to the cases of their section, check the variants and the behaviour
  around each case (every constructor and process parameter, every ``TrainConfig`` field, every
  kind of damaged checkpoint, the estimators' non-finite policy, ...).

Everything is cheap: the errors are raised before anything compiles (the score-shape checks run
inside the sampler's trace, by ``jax.eval_shape``, and abort it), the few runs use tiny batches
and a handful of steps, the networks are tiny and never train more than two steps; Monte Carlo
tests that compile a sampler of their own are in the slow tier (fast cover: the cloning
probability, the sampler's own count). Arguments of a wrong *type* are passed to the functions
without the suite's run-time type checker (``inspect.unwrap``), i.e. as users call them, so
that the library's own message is what is tested.

The policy of every estimator (documented in each result type): non-finite trajectories are
counted (``n_nonfinite``), their per-trajectory values are NaN, and the estimate and its
standard error are NaN when the count is not zero.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import (
    _io,
    cli,
    criticality as cr,
    guidance as G,
    meanfield as mf,
    nets,
    observables as ob,
    patch,
    report as rep,
    sampling,
    thermo,
)

REPO = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")
KEY = jax.random.PRNGKey(20261123)  # the suite's `key` fixture, for the cases


def _lib(fn):
    """``fn`` as users call it (without the test suite's run-time type-checking wrapper)."""
    return inspect.unwrap(fn)


class Case(NamedTuple):
    """One case of the issue.

    - `id`: short name (the test id).
    - `issue`: the case as the issue states it.
    - `run`: a thunk that exercises it.
    - `raises`: the exception it must raise, or ``None`` when the case is not an error (then
      `run` returns the report shown to the user, as a string).
    - `match`: a regular expression the message (or the returned report) must match; for
      errors it contains the argument's name.
    """

    id: str
    issue: str
    run: Callable[[], object]
    raises: type[BaseException] | None
    match: str


def check_case(case: Case) -> None:
    if case.raises is None:
        shown = case.run()
        assert isinstance(shown, str) and re.search(case.match, shown), shown
    else:
        with pytest.raises(case.raises, match=case.match):
            case.run()


def _minus_x(x, t):
    return -x


def _exact(data, process):
    return lambda x, t: gl.score(data, process, x, t)


def _with_nan_row(x, row=1):
    return jnp.asarray(x).at[row].set(NAN)


# ==============================================================================================
# core: datasets, processes, time grids, samplers
# ==============================================================================================

SAMPLE_TS = jnp.array([1.0, 0.5])


def _sample_ou(x0):
    """A 2-step OU sample from ``x0`` (4, 2), the score -x (one program for every call)."""
    return gl.sample(_minus_x, gl.OU(T=2.0), KEY, x0, ts=np.array([2.0, 1.0, 0.5]))


def _nan_rows(n, rows, d=2, value=NAN):
    x0 = np.zeros((n, d))
    x0[list(rows), 0] = value
    return x0


def _sample_nan_inf():
    n_bad = int(_sample_ou(_nan_rows(4, [1]) + _nan_rows(4, [3], value=INF)).n_nonfinite)
    return f"n_nonfinite = {n_bad} of 4 trajectories (x0 rows 1 NaN, 3 Inf)"


def _sample_diffrax_shape():
    out = jax.eval_shape(
        lambda k: sampling.sample_diffrax(
            _minus_x, gl.OU(T=2.0), k, (8, 2), ts=jnp.array([2.0, 1.0, 0.5]), method="heun"
        ),
        KEY,
    )
    return f"states of shape {tuple(out.shape)} (the tuple is a shape, as in sample)"


def _nonfinite_x_per_row():
    """score, denoiser and log_prob of three 2-D states, the middle one NaN (Inf for the
    score): which rows come out non-finite."""
    data, proc = gl.TwoPoint(1.0, dim=2), gl.OU()
    x = _with_nan_row(jnp.array([[0.3, -0.2], [0.0, 0.0], [1.0, 0.5]]))
    shown = []
    for name, out in (
        ("score", gl.score(data, proc, x.at[1].set(INF), 0.5)),
        ("denoiser", gl.denoiser(data, proc, x, 0.5)),
        ("log_prob", gl.log_prob(data, proc, x, 0.5)),
    ):
        bad = np.flatnonzero(~np.all(np.isfinite(np.asarray(out).reshape(3, -1)), axis=1))
        shown.append(f"{name}: rows {bad.tolist()}")
    return f"non-finite {', '.join(shown)} of 3 (row by row, as jax.numpy; documented)"


# the first times of gl.time_grid(VP("cosine"), 256, kind="log_snr") (computing the grid costs a
# compile): ts[1] and ts[2] both round to 0.99951 in float16
COSINE_LOG_SNR_256 = np.array([1.0, 0.99965373, 0.99929247, 0.99891558, 0.5])


def _float16_log_snr_grid():
    x = jnp.zeros((2, 1), jnp.float16)
    sampling.sample_diffrax(_minus_x, gl.VP("cosine"), KEY, x, ts=COSINE_LOG_SNR_256)


_PATCH_IMAGES = jnp.array([[1.0, -1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, -1.0, 1.0]])


def _patch_empty(fn):
    x = jnp.zeros((0, 5))
    out = fn(_PATCH_IMAGES, gl.OU(), x, 0.5, window=None, lattice_ndim=1)
    return f"an empty result of shape {tuple(out.shape)} (as gltheory.score)"


CORE_CASES = [
    # silently wrong
    Case(
        "sample_diffrax-shape-tuple",
        "sample_diffrax(score, OU(), key, (8, 2), ts=ts) treated the shape tuple as initial "
        "values (returned shape (2,))",
        _sample_diffrax_shape,
        None,
        r"shape \(8, 2\)",
    ),
    Case(
        "score-shape-n-equals-d",
        "a score function returning the wrong shape was broadcast silently by sample (n == d)",
        lambda: gl.sample(
            lambda x, t: jnp.zeros((x.shape[1],), x.dtype),
            gl.OU(),
            KEY,
            jnp.zeros((2, 2), jnp.float32),
            ts=SAMPLE_TS,
        ),
        ValueError,
        r"score_fn must return .*x's shape \(2, 2\)",
    ),
    # unclear
    Case(
        "sample-key-string",
        "sample(..., key='0') (TypeError on dtype <U1)",
        lambda: _lib(gl.sample)(_minus_x, gl.OU(), "0", (2, 1), ts=SAMPLE_TS),
        ValueError,
        r"key must be a JAX PRNG key",
    ),
    Case(
        "score-n-d-plus-1",
        "a score returning (n, d+1) (broadcast TypeError)",
        lambda: gl.sample(
            lambda x, t: jnp.zeros((x.shape[0], x.shape[1] + 1), x.dtype),
            gl.OU(),
            KEY,
            jnp.zeros((2, 2), jnp.float32),
            ts=SAMPLE_TS,
        ),
        ValueError,
        r"score_fn must return .*x's shape \(2, 2\)",
    ),
    Case(
        "sample_diffrax-x-scalar",
        "sample_diffrax(..., x=1.0) (IndexError)",
        lambda: _lib(sampling.sample_diffrax)(_minus_x, gl.OU(), KEY, 1.0, ts=SAMPLE_TS),
        ValueError,
        r"x must be states with a leading batch axis",
    ),
    Case(
        "sample_diffrax-process-string",
        "sample_diffrax given a string for the process (AttributeError)",
        lambda: _lib(sampling.sample_diffrax)(_minus_x, "OU", KEY, jnp.zeros((2, 1)), ts=SAMPLE_TS),
        ValueError,
        r"process must be a gltheory process",
    ),
    Case(
        "time_grid-process-string",
        "time_grid given a string for the process (AttributeError)",
        lambda: _lib(gl.time_grid)("OU", 4),
        ValueError,
        r"process must be a gltheory process",
    ),
    Case(
        "sample_diffrax-float16-log-snr",
        "float16 x in sample_diffrax with a log-SNR grid (64 steps in the issue; the cosine VP's "
        "at 256 steps today) was checked before the cast that makes repeated times",
        _float16_log_snr_grid,
        ValueError,
        r"ts must stay strictly decreasing in x's dtype float16",
    ),
    Case(
        "time_grid-t_min-vector",
        "time_grid(t_min=[1e-3, 1e-2])",
        lambda: _lib(gl.time_grid)(gl.OU(), 4, t_min=[1e-3, 1e-2]),
        ValueError,
        r"t_min must be a scalar time",
    ),
    Case(
        "time_grid-edm-rho-0",
        'time_grid(kind="edm", rho=0.) (ZeroDivisionError)',
        lambda: _lib(gl.time_grid)(gl.OU(), 4, kind="edm", rho=0.0),
        ValueError,
        r"rho must be a finite number > 0",
    ),
    Case(
        "patch-score-empty-batch",
        "patch score with an empty batch (ZeroDivisionError; score handles empty batches); "
        "a full-window machine here, ELS in test_batch_invariance",
        lambda: _patch_empty(patch.score),
        None,
        r"shape \(0, 5\)",
    ),
    Case(
        "patch-denoiser-empty-batch",
        "patch denoiser with an empty batch (ZeroDivisionError)",
        lambda: _patch_empty(patch.denoiser),
        None,
        r"shape \(0, 5\)",
    ),
    # silent NaN
    Case(
        "DeltaMixture-points-nan",
        "a NaN point in DeltaMixture (every score NaN)",
        lambda: gl.DeltaMixture(jnp.array([[NAN, 0.0], [1.0, 1.0]])),
        ValueError,
        r"\bpoints\b.*finite",
    ),
    Case(
        "TwoPoint-mu-nan",
        "TwoPoint with a NaN mu",
        lambda: gl.TwoPoint(NAN, dim=2),
        ValueError,
        r"\bmu\b.*finite",
    ),
    Case(
        "Gaussian-mean-nan",
        "Gaussian with a NaN mean",
        lambda: gl.Gaussian(jnp.array([NAN, 0.0]), 1.0),
        ValueError,
        r"\bmean\b.*finite",
    ),
    Case(
        "Gaussian-cov-inf",
        "Gaussian with an Inf cov",
        lambda: gl.Gaussian(jnp.zeros(2), INF),
        ValueError,
        r"\bcov\b.*finite",
    ),
    Case(
        "GaussianMixture-means-nan",
        "GaussianMixture with a NaN mean",
        lambda: gl.GaussianMixture(jnp.array([[NAN, 0.0], [1.0, 1.0]]), 1.0),
        ValueError,
        r"\bmeans\b.*finite",
    ),
    Case(
        "GaussianMixture-variances-nan",
        "GaussianMixture with a NaN variance",
        lambda: gl.GaussianMixture(jnp.zeros((2, 2)), jnp.array([NAN, 1.0])),
        ValueError,
        r"\bvariances\b.*finite",
    ),
    Case(
        "DeltaMixture-weights-nan",
        "DeltaMixture with a NaN weight",
        lambda: gl.DeltaMixture(jnp.zeros((2, 1)), jnp.array([NAN, 0.5])),
        ValueError,
        r"\bweights\b.*finite",
    ),
    Case(
        "Hypersphere-radius-inf",
        "Hypersphere with an Inf radius",
        lambda: gl.Hypersphere(INF, 3),
        ValueError,
        r"\bradius\b.*finite",
    ),
    Case(
        "LatticeImages-pixels-inf",
        "LatticeImages with an Inf pixel",
        lambda: gl.data.LatticeImages(jnp.array([[INF, 1.0], [1.0, -1.0]])),
        ValueError,
        r"\bimages\b.*finite",
    ),
    Case(
        "uniform_images-values-nan",
        "uniform_images with a NaN value",
        lambda: gl.data.uniform_images((4,), (NAN, -1.0)),
        ValueError,
        r"\bvalues\b.*finite",
    ),
    Case(
        "time_grid-rho-nan",
        "time_grid(rho=nan) returned NaN times",
        lambda: _lib(gl.time_grid)(gl.OU(), 4, kind="edm", rho=NAN),
        ValueError,
        r"rho must be a finite number > 0",
    ),
    Case(
        "score-denoiser-log_prob-nonfinite-x",
        "NaN or Inf in x through score/denoiser/log_prob",
        _nonfinite_x_per_row,
        None,
        r"score: rows \[1\], denoiser: rows \[1\], log_prob: rows \[1\] of 3",
    ),
    Case(
        "sample-nan-inf-x",
        "NaN or Inf in x propagates through the samplers",
        _sample_nan_inf,
        None,
        r"n_nonfinite = 2 of 4",
    ),
]


@pytest.mark.parametrize("case", CORE_CASES, ids=[c.id for c in CORE_CASES])
def test_core_issue_case(case):
    check_case(case)


# ----------------------------------------------------------------------------------------------
# core, item 1: parameters of datasets and processes are finite
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
# core, item 1: time grids
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


def test_time_grid_and_samplers_name_a_process_of_the_wrong_type():
    ts = SAMPLE_TS
    msg = r"process must be a gltheory process"
    with pytest.raises(ValueError, match=msg):
        _lib(gl.time_grid)("OU", 4)
    with pytest.raises(ValueError, match=msg):
        _lib(gl.sample)(_minus_x, "OU", KEY, (2, 1), ts=ts)
    with pytest.raises(ValueError, match=msg):
        _lib(sampling.sample_diffrax)(_minus_x, "OU", KEY, jnp.zeros((2, 1)), ts=ts)
    with pytest.raises(ValueError, match=msg):
        _lib(sampling.states_at)(_minus_x, None, KEY, (2, 1), ts=ts, indices=[1])
    keys = jax.random.split(KEY, 2).reshape(1, 2, -1)
    with pytest.raises(ValueError, match=msg):
        _lib(sampling.branch)(_minus_x, "OU", keys, jnp.zeros((1, 2, 1)), ts=ts, indices=[0])
    with pytest.raises(ValueError, match=msg):
        _lib(gl.scores.uniform_patch_score)("OU", jnp.zeros((2, 5)), 0.5, window=3, lattice_ndim=1)


# ----------------------------------------------------------------------------------------------
# core, item 1: keys, states and score functions given to the samplers
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_key", ["0", 0, None, jnp.zeros(2, jnp.float32)])
def test_sample_names_a_key_that_is_not_a_prng_key(bad_key):
    with pytest.raises(ValueError, match=r"key must be a JAX PRNG key"):
        _lib(gl.sample)(_minus_x, gl.OU(), bad_key, (2, 1), ts=SAMPLE_TS)
    with pytest.raises(ValueError, match=r"key must be a JAX PRNG key"):
        _lib(sampling.sample_diffrax)(_minus_x, gl.OU(), bad_key, (2, 1), ts=SAMPLE_TS)


def test_branch_names_keys_that_are_not_prng_keys():
    with pytest.raises(ValueError, match=r"keys must be PRNG keys of shape \(n_branch, m\)"):
        _lib(sampling.branch)(
            _minus_x, gl.OU(), "0", jnp.zeros((1, 2, 1)), ts=SAMPLE_TS, indices=[0]
        )


def test_samplers_name_a_score_fn_that_is_not_callable():
    ts = SAMPLE_TS
    keys = jax.random.split(KEY, 2).reshape(1, 2, -1)
    for call in (
        lambda: _lib(gl.sample)(None, gl.OU(), KEY, (2, 1), ts=ts),
        lambda: _lib(sampling.sample_diffrax)(1.0, gl.OU(), KEY, (2, 1), ts=ts),
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
def test_a_score_fn_of_the_wrong_shape_or_dtype_is_refused_by_every_sampler(sampler, which):
    """Checked once per compilation by jax.eval_shape; the trace stops there (nothing compiles)."""
    score_fn = WRONG_SCORES[which]
    proc, ts = gl.OU(), jnp.array([1.0, 0.5, 0.25], jnp.float32)
    x = jnp.zeros((2, 2), jnp.float32)  # n == d
    if sampler == "sample":
        run = lambda: gl.sample(score_fn, proc, KEY, x, ts=ts)  # noqa: E731
    elif sampler == "sample_diffrax":
        run = lambda: sampling.sample_diffrax(score_fn, proc, KEY, x, ts=ts)  # noqa: E731
    else:
        keys = gl.trajectory_keys(KEY, 2)[None]  # (1, 2) keys: one branch of 2 clones
        run = lambda: sampling.branch(score_fn, proc, keys, x[None], ts=ts, indices=[0])  # noqa: E731
    what = r"dtype float32" if which == "wider_dtype" else r"x's shape \(2, 2\)"
    with pytest.raises(ValueError, match=rf"score_fn must return .*{what}"):
        run()


@pytest.mark.slow
def test_sample_diffrax_draws_the_initial_states_of_sample(key):
    """A shape tuple draws x_{t_0} ~ N(0, b^2 I) from each trajectory's key, as in sample, so
    the two samplers agree to round-off (float64 here). Fast cover: the case
    sample_diffrax-shape-tuple (abstract evaluation, no compile)."""
    proc = gl.OU(T=2.0)
    data = gl.TwoPoint(1.0, dim=2)
    score_fn = lambda x, t: gl.score(data, proc, x, t)  # noqa: E731
    ts = gl.time_grid(proc, 4)
    ref = gl.sample(score_fn, proc, key, (3, 2), ts=ts)
    out = sampling.sample_diffrax(score_fn, proc, key, (3, 2), ts=ts)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, ref.x, rtol=0, atol=1e-12)


@pytest.mark.slow  # computing the grid costs a compile (~1.6 s)
def test_the_cosine_log_snr_grid_of_the_float16_case():
    ts = np.asarray(gl.time_grid(gl.VP("cosine"), 256, kind="log_snr"))
    np.testing.assert_allclose(ts[:4], COSINE_LOG_SNR_256[:4], rtol=1e-8)
    assert np.sum(np.diff(ts.astype(np.float16)) >= 0) == 1  # the one repeat: ts[1], ts[2]


def test_a_grid_that_repeats_times_in_the_states_dtype_is_refused():
    """Near t = 1 float16 has spacing 4.9e-4, so 0.9996 and 0.9993 both round to 0.99951 (a
    256-step log-SNR grid of the cosine VP has such neighbours): the grid is checked again
    after the cast to x's dtype, before anything runs."""
    ts = np.array([1.0, 0.9996, 0.9993, 0.5])
    proc = gl.VP("cosine")
    x = jnp.zeros((2, 1), jnp.float16)
    msg = r"ts must stay strictly decreasing in x's dtype float16, but ts\[1\]"
    with pytest.raises(ValueError, match=msg):
        gl.sample(_minus_x, proc, KEY, x, ts=ts)
    with pytest.raises(ValueError, match=msg):
        sampling.sample_diffrax(_minus_x, proc, KEY, x, ts=ts)
    keys = gl.trajectory_keys(KEY, 2)[None]
    with pytest.raises(ValueError, match=msg):
        sampling.branch(_minus_x, proc, keys, x[None], ts=ts, indices=[0])
    with pytest.raises(ValueError, match=r"ts\[-1\] = 1e-08 rounds to 0 in x's dtype float16"):
        gl.sample(_minus_x, gl.OU(), KEY, x, ts=np.array([1.0, 1e-8]))


# ----------------------------------------------------------------------------------------------
# core, item 2: non-finite trajectories are counted and reported
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


def test_sample_reports_nonfinite_trajectories():
    """A NaN or Inf initial state propagates (pure arithmetic) and is counted, per row."""
    x0 = np.zeros((4, 2))
    x0[1, 0], x0[3] = np.nan, np.inf
    sol = _sample_ou(x0)
    assert sol.n_nonfinite.dtype == jnp.int32 and sol.n_nonfinite.shape == ()
    assert int(sol.n_nonfinite) == 2
    assert int(sol.n_nonfinite) == int(sampling.count_nonfinite(sol.x))
    assert bool(jnp.all(jnp.isfinite(sol.x[np.array([0, 2])])))
    clean = _sample_ou(np.zeros((4, 2)))  # same program
    assert int(clean.n_nonfinite) == 0


# ==============================================================================================
# estimators: meanfield, observables, guidance, thermo, criticality
# ==============================================================================================

OU = gl.OU()
TWO = gl.TwoPoint(jnp.array([1.0, 0.5]))
TS = jnp.linspace(1.0, 0.05, 4)
X0 = jax.random.normal(jax.random.PRNGKey(0), (6, 2))
CLASSIFY = ob.sign_classifier(jnp.array([1.0, 0.5]))


EXACT_TWO = _exact(TWO, OU)  # one function object: the compiled cloning program is reused


def _cloning(x0):
    """One compiled program for every call (same score function, shapes and branch index)."""
    return ob.cloning_probability(EXACT_TWO, OU, KEY, x0, ts=TS, branch_index=1, classify=CLASSIFY)


def _cloning_all_nan():
    est = _cloning(jnp.full_like(X0, NAN))
    return (
        f"n_nonfinite = {int(est.n_nonfinite)} of {X0.shape[0]}, phi = {float(est.phi)}, "
        f"se = {float(est.se)} (no estimate built on NaN states)"
    )


ESTIMATOR_CASES = [
    # silently wrong
    Case(
        "critical_times-x_ref-nan",
        'critical_times(..., x_ref=[nan, 0]) returned (None, None, None), read as "no transition"',
        lambda: _lib(mf.critical_times)(TWO, OU, x_ref=[NAN, 0.0]),
        ValueError,
        r"x_ref must be finite",
    ),
    Case(
        "fixed_points-direction-zero",
        "fixed_points reported 0 zeros for direction=[0, 0]",
        lambda: _lib(mf.fixed_points)(TWO, OU, 0.5, direction=[0.0, 0.0]),
        ValueError,
        r"direction must be a finite, nonzero",
    ),
    Case(
        "fixed_points-max_roots-0",
        "fixed_points reported 0 zeros for max_roots=0",
        lambda: _lib(mf.fixed_points)(TWO, OU, 0.5, max_roots=0),
        ValueError,
        r"max_roots",
    ),
    Case(
        "fixed_points-x_ref-nan",
        "fixed_points reported 0 zeros for a NaN x_ref",
        lambda: _lib(mf.fixed_points)(TWO, OU, 0.5, x_ref=[NAN, 0.0]),
        ValueError,
        r"x_ref must be finite",
    ),
    Case(
        "fit_exponent-x-nan",
        "fit_exponent([1e-3, 1e-2, nan], [1, 2, 3]) fitted 2 points, stderr 1.6e-7",
        lambda: _lib(mf.fit_exponent)([1e-3, 1e-2, NAN], [1.0, 2.0, 3.0]),
        ValueError,
        r"x must be finite",
    ),
    Case(
        "cloning_probability-nan-states",
        "cloning_probability with NaN initial states gave phi = 1.0, se = 0",
        _cloning_all_nan,
        None,
        r"n_nonfinite = 6 of 6, phi = nan, se = nan",
    ),
    # unclear
    Case(
        "fixed_points-process-string",
        "fixed_points given a string for the process (AttributeError)",
        lambda: _lib(mf.fixed_points)(TWO, "OU", 0.5),
        ValueError,
        r"process must be a gltheory process",
    ),
    Case(
        "fixed_points-data-string",
        "fixed_points given a string for the data (AttributeError)",
        lambda: _lib(mf.fixed_points)("two_point", OU, 0.5),
        ValueError,
        r"data must be a gltheory dataset",
    ),
    Case(
        "critical_times-t_max-vector",
        "critical_times(t_max=[4., 5.])",
        lambda: _lib(mf.critical_times)(TWO, OU, t_max=[4.0, 5.0]),
        ValueError,
        r"t_max must be a scalar",
    ),
    Case(
        "fixed_points-t-vector",
        "fixed_points with a vector t",
        lambda: _lib(mf.fixed_points)(TWO, OU, [0.5, 0.6]),
        ValueError,
        r"t must be a scalar time",
    ),
    Case(
        "fixed_points-n_grid-1",
        "fixed_points with n_grid=1",
        lambda: _lib(mf.fixed_points)(TWO, OU, 0.5, n_grid=1),
        ValueError,
        r"n_grid",
    ),
    Case(
        "fixed_points-x_ref-wrong-dim",
        "fixed_points with an x_ref of the wrong dimension",
        lambda: _lib(mf.fixed_points)(TWO, OU, 0.5, x_ref=[0.0, 0.0, 0.0]),
        ValueError,
        r"x_ref must be one point",
    ),
    # silent NaN
    Case(
        "fit_exponent-x-negative",
        "fit_exponent returned NaN for all-negative x",
        lambda: _lib(mf.fit_exponent)([-1.0, -2.0, -3.0], [1.0, 2.0, 3.0]),
        ValueError,
        r"x must be finite and > 0",
    ),
    Case(
        "fit_exponent-x-constant",
        "fit_exponent returned NaN for constant x",
        lambda: _lib(mf.fit_exponent)([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]),
        ValueError,
        r"x must take at least 2 distinct",
    ),
    Case(
        "fit_exponent-y-zero",
        "fit_exponent returned NaN for y all zero",
        lambda: _lib(mf.fit_exponent)([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]),
        ValueError,
        r"y must be finite and nonzero",
    ),
    Case(
        "fit_exponent-yerr-zero",
        "fit_exponent returned NaN for zero yerr",
        lambda: _lib(mf.fit_exponent)([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], yerr=[0.0, 0.0, 0.0]),
        ValueError,
        r"yerr must be finite",
    ),
    Case(
        "fit_exponent-x_range-reversed",
        "fit_exponent returned NaN for a reversed x_range",
        lambda: _lib(mf.fit_exponent)([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], x_range=(3.0, 1.0)),
        ValueError,
        r"x_range must be",
    ),
    Case(
        "fit_exponent-x_range-empty",
        "fit_exponent returned NaN for an empty x_range",
        lambda: _lib(mf.fit_exponent)([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], x_range=(5.0, 6.0)),
        ValueError,
        r"3 points in x_range",
    ),
]


@pytest.mark.parametrize("case", ESTIMATOR_CASES, ids=[c.id for c in ESTIMATOR_CASES])
def test_estimator_issue_case(case):
    check_case(case)


# ----------------------------------------------------------------------------------------------
# estimators: meanfield (critical_times, fixed_points, fit_exponent)
# ----------------------------------------------------------------------------------------------


def test_critical_times_bad_inputs():
    with pytest.raises(ValueError, match="x_ref must be finite"):
        _lib(mf.critical_times)(TWO, OU, x_ref=[NAN, 0.0])  # was (None, None, None)
    with pytest.raises(ValueError, match="x_ref must be one point"):
        _lib(mf.critical_times)(TWO, OU, x_ref=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="t_max must be a scalar"):
        _lib(mf.critical_times)(TWO, OU, t_max=[4.0, 5.0])
    with pytest.raises(ValueError, match="t_min must be a scalar"):
        _lib(mf.critical_times)(TWO, OU, t_min=[1e-3, 1e-2])
    with pytest.raises(ValueError, match="t_min and t_max"):
        _lib(mf.critical_times)(TWO, OU, t_max=NAN)
    with pytest.raises(ValueError, match="n_grid"):
        _lib(mf.critical_times)(TWO, OU, n_grid=2)
    with pytest.raises(ValueError, match="process must be a gltheory process"):
        _lib(mf.critical_times)(TWO, "OU")
    with pytest.raises(ValueError, match="data must be a gltheory dataset"):
        _lib(mf.critical_times)("two_point", OU)


def test_fixed_points_bad_inputs():
    cases = [
        (dict(direction=[0.0, 0.0]), "direction must be a finite, nonzero"),  # was 0 zeros
        (dict(direction=[NAN, 1.0]), "direction must be a finite, nonzero"),
        (dict(max_roots=0), "max_roots"),  # was 0 zeros
        (dict(x_ref=[NAN, 0.0]), "x_ref must be finite"),  # was a TypeError
        (dict(x_ref=[0.0, 0.0, 0.0]), "x_ref must be one point"),
        (dict(n_grid=1), "n_grid"),  # was 5 copies of one "zero"
        (dict(field="drift"), "field"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            _lib(mf.fixed_points)(TWO, OU, 0.5, **kwargs)
    with pytest.raises(ValueError, match="t must be a scalar time"):
        _lib(mf.fixed_points)(TWO, OU, [0.5, 0.6])
    with pytest.raises(ValueError, match=r"t must lie in \(0, T\]"):
        _lib(mf.fixed_points)(TWO, OU, -0.5)
    with pytest.raises(ValueError, match="process must be a gltheory process"):
        _lib(mf.fixed_points)(TWO, "OU", 0.5)
    with pytest.raises(ValueError, match="data must be a gltheory dataset"):
        _lib(mf.fixed_points)("two_point", OU, 0.5)
    with pytest.raises(ValueError, match="ts must be a 1-D"):
        _lib(mf.bifurcation_diagram)(TWO, OU, [[0.5, 0.6]])
    with pytest.raises(ValueError, match="x must be finite"):
        _lib(mf.potential_curvature)(TWO, OU, 0.5, x=[NAN, 0.0])
    with pytest.raises(ValueError, match="direction must be a finite, nonzero"):
        _lib(mf.landau_coefficients)(TWO, OU, 0.5, direction=[0.0, 0.0])


@pytest.mark.parametrize(
    "x,y,kwargs,msg",
    [
        ([1e-3, 1e-2, NAN], [1.0, 2.0, 3.0], {}, "x must be finite"),  # was 2 points, se 1.6e-7
        ([-1.0, -2.0, -3.0], [1.0, 2.0, 3.0], {}, "x must be finite and > 0"),
        ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], {}, "x must take at least 2 distinct"),
        ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], {}, "y must be finite and nonzero"),
        ([1.0, 2.0, 3.0], [1.0, NAN, 3.0], {}, "y must be finite"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], dict(yerr=[0.0, 0.0, 0.0]), "yerr must be finite"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], dict(yerr=[1.0, 1.0]), "yerr must have the shape"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], dict(x_range=(3.0, 1.0)), "x_range must be"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], dict(x_range=(5.0, 6.0)), "3 points in x_range"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], dict(x_range=(1.5, 3.0)), "3 points in x_range"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], dict(x_range=(1.0,)), "x_range must be a pair"),
        ([1.0, 2.0], [1.0, 2.0], {}, "length >= 3"),
    ],
)
def test_fit_exponent_refuses_degenerate_fits(x, y, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        _lib(mf.fit_exponent)(x, y, **kwargs)


def test_fit_exponent_still_fits_good_points():
    x = jnp.array([1.0, 2.0, 4.0, 8.0])
    fit = _lib(mf.fit_exponent)(x, 3.0 * x**1.5)
    assert abs(float(fit.slope) - 1.5) < 1e-12 and int(fit.n) == 4


# ----------------------------------------------------------------------------------------------
# estimators: observables (cloning probability, kick / class-fraction responses, bimodality)
# ----------------------------------------------------------------------------------------------


def test_cloning_probability_counts_nonfinite_states():
    good = _cloning(X0)
    assert int(good.n_nonfinite) == 0
    assert math.isfinite(float(good.phi)) and math.isfinite(float(good.se))
    # one NaN initial state: counted, and no estimate is built on it
    bad = _cloning(_with_nan_row(X0))
    assert int(bad.n_nonfinite) == 1
    assert math.isnan(float(bad.phi)) and math.isnan(float(bad.se))
    # all NaN (was phi = 1.0, se = 0: every NaN state got label 0): the case of CASES


@pytest.mark.slow  # compiles samplers (10-40 s on 2 busy cores); fast cover: cloning
def test_kick_and_class_fraction_responses_count_nonfinite(key):
    x = _with_nan_row(X0, 2)
    kr = ob.kick_response(
        _exact(TWO, OU),
        OU,
        key,
        x,
        ts=TS,
        kick_index=1,
        direction=jnp.array([1.0, 0.5]),
        delta=0.1,
        classify=CLASSIFY,
    )
    assert int(kr.n_nonfinite) == 1
    assert math.isnan(float(kr.response)) and math.isnan(float(kr.se))

    def family(h):
        data = gl.TwoPoint(jnp.array([1.0, 0.5]), weight=0.5 + h)
        return _exact(data, OU)

    fr = ob.class_fraction_response(family, OU, key, x, ts=TS, classify=CLASSIFY, dh=0.1)
    assert int(fr.n_nonfinite) == 1
    assert math.isnan(float(fr.response)) and math.isnan(float(fr.se))
    fr_ok = ob.class_fraction_response(family, OU, key, X0, ts=TS, classify=CLASSIFY, dh=0.1)
    assert int(fr_ok.n_nonfinite) == 0 and math.isfinite(float(fr_ok.se))


def test_bimodality_counts_nonfinite_samples():
    m = jnp.array([[0.5, -0.4, 0.9, -1.0], [0.5, NAN, 0.9, -1.0]])
    b = ob.bimodality(m)
    np.testing.assert_array_equal(b.n_nonfinite, [0, 1])
    assert np.all(np.isfinite([b.mean_abs[0], b.mean_abs_se[0], b.binder[0], b.binder_se[0]]))
    assert np.all(np.isnan([b.mean_abs[1], b.mean_abs_se[1], b.binder[1], b.binder_se[1]]))


# ----------------------------------------------------------------------------------------------
# estimators: guidance (alignment, pulse scans, curve peak, physics-aware sampler, learn_pulse)
# ----------------------------------------------------------------------------------------------

GPROC = gl.OU(2.0)
GTS = jnp.linspace(1.5, 0.05, 4)


@pytest.mark.slow  # compiles samplers (10-40 s on 2 busy cores); fast cover: cloning
def test_pulse_alignment_and_scan_count_nonfinite(key):
    data = G.two_class_deltas(1.0)
    x = _with_nan_row(jnp.linspace(-1.0, 1.0, 6)[:, None], 3)
    est = G.pulse_alignment(data, GPROC, key, x, G.ConstantCFG(1.0), ts=GTS)
    assert int(est.n_nonfinite) == 1 and math.isnan(float(est.hits[3]))
    assert math.isnan(float(est.alignment)) and math.isnan(float(est.se))
    assert math.isnan(float(est.diversity))
    scan = G.pulse_scan(
        data, GPROC, key, x, jnp.array([0.8, 0.5]), width=0.6, eps=0.05, ts=GTS, nu=1.0
    )
    np.testing.assert_array_equal(scan.n_nonfinite, [1, 1])
    for v in (scan.alignment, scan.se, scan.gain, scan.gain_se, scan.baseline, scan.baseline_se):
        assert np.all(np.isnan(v))
    assert np.all(np.isnan(scan.paired[:, 3])) and np.all(np.isfinite(scan.paired[:, 0]))


def test_alignment_curve_peak_refuses_nonfinite_values(key):
    t_peak, se = G.alignment_curve_peak(
        jnp.array([0.2, 0.4, 0.6, 0.8, 1.0]), jnp.ones((5, 6)).at[2, 3].set(NAN), key, n_boot=4
    )
    assert math.isnan(float(t_peak)) and math.isnan(float(se))
    t_ok, se_ok = G.alignment_curve_peak(
        jnp.array([0.2, 0.4, 0.6, 0.8, 1.0]), jnp.ones((5, 6)).at[2].set(2.0), key, n_boot=4
    )
    assert abs(float(t_ok) - 0.6) < 0.05 and math.isfinite(float(se_ok))


@pytest.mark.slow  # compiles samplers (10-40 s on 2 busy cores); fast cover: cloning
def test_physics_aware_sample_counts_nonfinite(key):
    data = G.two_class_deltas(1.0)
    x = _with_nan_row(jnp.linspace(-1.0, 1.0, 6)[:, None], 0)
    pa = G.physics_aware_sample(data, GPROC, key, x, ts=GTS, eps=0.1, n_pulse=1)
    assert int(pa.n_nonfinite) == 1


@pytest.mark.slow  # compiles the forward-mode sampler (~18 s on 2 busy cores); fast cover: cloning
def test_learn_pulse_counts_nonfinite_trajectories(key):
    """One NaN start state of four: counted once (not four times after the optimiser's
    parameters turn NaN), and no centre, objective or standard error is built on it; the same
    program with finite starts gives finite values and a count of 0."""
    data = G.two_class_deltas(1.0)
    kw = dict(ts=GTS, eps=0.05, centre=0.7, width=0.3, width_min=0.1, n_iter=1, n_polish=0)
    x = jnp.linspace(-1.0, 1.0, 4)[:, None]
    ok = G.learn_pulse(data, GPROC, key, x, **kw)
    assert int(ok.n_nonfinite) == 0
    assert np.all(np.isfinite([ok.centre, ok.width, ok.centre_se, ok.objective, ok.grad_se]))
    bad = G.learn_pulse(data, GPROC, key, _with_nan_row(x, 2), **kw)
    assert int(bad.n_nonfinite) == 1
    for v in (bad.centre, bad.width, bad.centre_se, bad.objective, bad.grad_se, bad.curvature):
        assert math.isnan(float(v))


# ----------------------------------------------------------------------------------------------
# estimators: thermo (Monte Carlo means, trajectory entropy, fluctuation theorems, Franz-Parisi)
# ----------------------------------------------------------------------------------------------


def test_thermo_fluctuation_theorems_count_nonfinite():
    ift = thermo.integral_fluctuation_theorem(jnp.array([0.1, NAN, -0.2, 0.3]))
    assert int(ift.n_nonfinite) == 1 and math.isnan(float(ift.mean))
    assert math.isnan(float(ift.se))
    ok = thermo.integral_fluctuation_theorem(jnp.array([0.1, 0.0, -0.2, 0.3]))
    assert int(ok.n_nonfinite) == 0 and math.isfinite(float(ok.se))
    rng = np.random.default_rng(0)
    sf, sb = rng.normal(0.5, 1.0, 400), rng.normal(-0.5, 1.0, 400)
    dft = thermo.detailed_fluctuation_theorem(np.append(sf, np.nan), sb, bins=4, min_count=5)
    assert dft.n_nonfinite == 1 and np.isnan(dft.slope) and np.isnan(dft.slope_se)
    assert np.isfinite(thermo.detailed_fluctuation_theorem(sf, sb, bins=4, min_count=5).slope)
    with pytest.raises(ValueError, match="total_forward and total_backward"):
        thermo.detailed_fluctuation_theorem(np.full(4, np.nan), sb)


@pytest.mark.slow  # compiles the Franz-Parisi program (~10 s on 2 busy cores); fast cover:
# the integral fluctuation theorem above (the same MCEstimate counting, _mc)
def test_franz_parisi_counts_nonfinite_samples():
    """Zero-variance clusters +-m, |m|^2 = 3d: the posterior overlap is exactly q = +-3 and its
    density a delta, so -ln P(q) overflows to +Inf for every sample at the q more than 2 from
    both (|q| < 1: counted, V and se NaN there) and is finite (if huge) nearer. With unit
    variances nothing is counted. Same shapes as test_thermo's Franz-Parisi test (d = 64, 251
    q, n = 2000, OU(10), a typed key): the suite compiles the program once (persistent cache)."""
    m = jnp.sqrt(3.0) * jnp.ones(64)
    q = jnp.linspace(-2.5, 2.5, 251)
    far = np.abs(np.asarray(q)) < 0.97
    near = np.abs(np.asarray(q)) > 1.03

    def fp(var):
        data = gl.GaussianMixture(jnp.stack([m, -m]), jnp.array([var, var]))
        return thermo.franz_parisi_potential(data, gl.OU(10.0), 1.5, q, key=jax.random.key(11))

    delta = fp(0.0)
    n_bad = np.asarray(delta.n_nonfinite)
    assert np.all(n_bad[far] == 2000) and np.all(n_bad[near] == 0)
    assert np.all(np.isnan(np.asarray(delta.V)[n_bad > 0]))
    assert np.all(np.isnan(np.asarray(delta.se)[n_bad > 0]))
    ok = fp(1.0)
    assert int(np.max(ok.n_nonfinite)) == 0 and np.all(np.isfinite(np.asarray(ok.se)))


@pytest.mark.slow  # compiles samplers (10-40 s on 2 busy cores); fast cover: cloning
def test_thermo_mc_estimators_count_nonfinite(key):
    # a learned score that returns NaN for part of the batch
    nan_score = lambda x, t: jnp.where(x > 1.0, NAN, -x)  # noqa: E731
    data = gl.TwoPoint(1.0)
    rate = thermo.entropy_production_rate_mc(data, OU, 0.5, key, 64, score_fn=nan_score)
    assert 0 < int(rate.n_nonfinite) < 64 and math.isnan(float(rate.mean))
    te = thermo.trajectory_entropy(
        _exact(data, OU),
        lambda x, t: gl.log_prob(data, OU, x, t),
        OU,
        key,
        _with_nan_row(jnp.linspace(-1.0, 1.0, 4)[:, None], 2),
        ts=TS,
    )
    assert int(te.n_nonfinite) == 1 and math.isnan(float(te.total[2]))
    assert np.all(np.isfinite(te.total[np.array([0, 1, 3])]))
    assert math.isnan(float(thermo.integral_fluctuation_theorem(te.total).mean))


# ----------------------------------------------------------------------------------------------
# estimators: criticality detectors (no bootstrap se = 0 built on NaN trajectories)
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow  # compiles samplers (10-40 s on 2 busy cores); fast cover: cloning
def test_xi_peak_time_counts_nonfinite_trajectories(key):
    ts = jnp.linspace(1.6, 0.2, 5)
    fields = jax.random.normal(key, (5, 4, 8)) * (1 + ts[:, None, None])
    est = cr.xi_peak_time(fields.at[2, 1, 3].set(NAN), ts, key, increments=False, n_boot=4)
    assert int(est.n_nonfinite) == 1
    assert math.isnan(float(est.t_c)) and math.isnan(float(est.se))
    assert int(cr.xi_peak_time(fields, ts, key, increments=False, n_boot=4).n_nonfinite) == 0


@pytest.mark.slow  # compiles samplers (10-40 s on 2 busy cores); fast cover: cloning
def test_cloning_time_counts_nonfinite_trajectories(key):
    est = cr.cloning_time(
        _exact(TWO, OU),
        OU,
        key,
        _with_nan_row(X0),
        ts=TS,
        branch_index=[0, 1, 2],
        classify=CLASSIFY,
        n_boot=4,
    )
    assert int(est.n_nonfinite) == 1
    assert np.all(np.isnan(est.curve))
    assert math.isnan(float(est.t_c)) and math.isnan(float(est.se))


# ==============================================================================================
# io: training, checkpoints, atomic files, the CLI (items 1, 3 and 5)
# ==============================================================================================

TRAIN_OU = gl.OU(5.0)
CFG = nets.TrainConfig(n_steps=2, batch_size=4, chunk=1, log_snr_min=-2.0, log_snr_max=4.0)
IMAGES = jnp.asarray(np.sign(np.random.default_rng(0).normal(size=(6, 8))))
_STOP_LINE = "gltheory: interrupted (Ctrl-C); no partial files were left."


def _net():
    return nets.ConvDenoiser(1, window=3, width=2, depth=1, key=jax.random.PRNGKey(0))


def _config_with(field, value):
    """``CFG`` with one field replaced, validated as a user's ``TrainConfig(...)`` is (the
    suite's run-time type checker would catch the wrong types first)."""
    cfg = object.__new__(nets.TrainConfig)
    for f in dataclasses.fields(nets.TrainConfig):
        object.__setattr__(cfg, f.name, value if f.name == field else getattr(CFG, f.name))
    cfg.__post_init__()
    return cfg


def _saved_checkpoint(folder: Path):
    """A checkpoint of a fresh state that records CFG, IMAGES and TRAIN_OU (nothing compiles)."""
    state = nets.init_train_state(_net(), CFG)
    path = folder / "run.ckpt"
    nets.save_checkpoint(path, state, config=CFG, images=IMAGES, process=TRAIN_OU)
    return path, state


def _flip(blob: bytes, i: int, bit: int = 0) -> bytes:
    return blob[:i] + bytes([blob[i] ^ (1 << bit)]) + blob[i + 1 :]


def _header_end(blob: bytes) -> int:
    return blob.index(b"\n", blob.index(b"{")) + 1  # end of the JSON record line


def _in_a_checkpoint_folder(use):
    """``use(path, state)`` on a fresh checkpoint in a temporary folder."""

    def run():
        with tempfile.TemporaryDirectory() as folder:
            return use(*_saved_checkpoint(Path(folder)))

    return run


def _load_damaged(damage):
    def use(path, state):
        bad = path.with_name("damaged.ckpt")
        bad.write_bytes(damage(path.read_bytes()))
        return nets.load_checkpoint(bad, state)

    return _in_a_checkpoint_folder(use)


def _resume_other_run(path, state):
    other = dataclasses.replace(CFG, seed=1, learning_rate=1e-2)
    return nets.train(_net(), IMAGES, TRAIN_OU, other, checkpoint=path)


def _cli(argv, *, denied=False, interrupted=False):
    """``gltheory report ...`` in-process: (exit status, what it printed on stderr). No
    experiment runs (``run_report`` raises, or is interrupted at once)."""

    def never(*args, **kwargs):
        if interrupted:
            raise KeyboardInterrupt
        raise AssertionError("an experiment ran before --out was checked")

    def no_write(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    err = io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(rep, "run_report", never))
        if denied:
            stack.enter_context(mock.patch.object(tempfile, "mkstemp", no_write))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = cli.main(argv)
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


def _report_argv(out):
    return ["report", "--only", "critical_times", "--no-cache", "--out", str(out)]


def _cli_out_not_writable():
    with tempfile.TemporaryDirectory() as folder:
        code, err = _cli(_report_argv(Path(folder) / "out"), denied=True)
    return f"exit {code}: {err.strip()}"


def _cli_ctrl_c():
    with tempfile.TemporaryDirectory() as folder:
        code, err = _cli(_report_argv(Path(folder) / "out"), interrupted=True)
    return f"exit {code}: {err.strip().splitlines()[-1]}"


_KILLED_WRITER = textwrap.dedent(
    """
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("_io", sys.argv[1])
    io_ = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(io_)

    def write(f):
        f.write(b"half a file")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)

    io_.atomic_write(sys.argv[2], write)
    """
)


def _temps(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def _kill_a_save(dest: Path) -> int:
    """Start an atomic save of ``dest`` in a subprocess and SIGKILL it mid-write; its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, _io.__file__, str(dest)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.kill()  # SIGKILL: no clean-up code runs
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    return proc.pid


def _killed_save_then_save():
    with tempfile.TemporaryDirectory() as folder:
        dest = Path(folder) / "state.ckpt"
        dest.write_bytes(b"old")
        _kill_a_save(dest)
        before = _temps(Path(folder), dest.name)
        _io.atomic_write_bytes(dest, b"new")
        after = _temps(Path(folder), dest.name)
    return f"{len(before)} hidden temp file after the kill, {len(after)} after the next save"


IO_CASES = [
    # silently wrong
    Case(
        "TrainConfig-clip_norm-negative",
        "train(..., TrainConfig(clip_norm=-1)) was accepted and the loss rose",
        lambda: _config_with("clip_norm", -1),
        ValueError,
        r"TrainConfig\.clip_norm must be",
    ),
    Case(
        "train-resume-other-run",
        "train(..., TrainConfig(seed=1, lr=1e-2), checkpoint=<checkpoint of a seed-0, other-lr "
        "run>) resumed without complaint",
        _in_a_checkpoint_folder(_resume_other_run),
        ValueError,
        r"run\.ckpt.*different run.*config\.seed",
    ),
    Case(
        "load_checkpoint-bit-flipped",
        "a checkpoint with one bit flipped in its data loaded without error (no checksum)",
        _load_damaged(lambda b: _flip(b, (_header_end(b) + len(b)) // 2, 6)),
        ValueError,
        r"damaged\.ckpt.*checksum does not match",
    ),
    Case(
        "load_checkpoint-like-None",
        "load_checkpoint(path, like=None) returned None",
        _in_a_checkpoint_folder(lambda path, state: _lib(nets.load_checkpoint)(path, None)),
        ValueError,
        r"like must be a TrainState",
    ),
    # unclear
    Case(
        "train-zero-images",
        "train on zero images",
        lambda: nets.train(_net(), jnp.zeros((0, 8)), TRAIN_OU, CFG),
        ValueError,
        r"images is empty",
    ),
    Case(
        "load_checkpoint-truncated",
        "load_checkpoint on a truncated file (TreePathError, file not named)",
        _load_damaged(lambda b: b[:-7]),
        ValueError,
        r"damaged\.ckpt.*is truncated",
    ),
    Case(
        "load_checkpoint-empty",
        "load_checkpoint on an empty file",
        _load_damaged(lambda b: b""),
        ValueError,
        r"damaged\.ckpt.*is empty",
    ),
    Case(
        "load_checkpoint-garbage",
        "load_checkpoint on a garbage file",
        _load_damaged(lambda b: b"\x00garbage" * 64),
        ValueError,
        r"damaged\.ckpt.*not a gltheory checkpoint",
    ),
    Case(
        "load_checkpoint-header-corrupted",
        "load_checkpoint on a header-corrupted file",
        _load_damaged(lambda b: b.replace(b"sha256:", b"sha265:", 1)),
        ValueError,
        r"damaged\.ckpt.*header is corrupted",
    ),
    Case(
        "report-out-not-writable",
        "gltheory report --out a directory that cannot be written (the experiment ran, then a "
        "raw PermissionError traceback)",
        _cli_out_not_writable,
        None,
        r"^exit 2: gltheory report: error: --out folder .* is not writable: Permission denied$",
    ),
    # silent NaN
    Case(
        "train-nan-image",
        "a NaN image made every training loss NaN",
        lambda: nets.train(_net(), IMAGES.at[2, 3].set(NAN), TRAIN_OU, CFG),
        ValueError,
        r"images must be finite: .* 1 of 6 images .*index 2",
    ),
    # invariants
    Case(
        "killed-save-temp-file",
        "each killed save left a hidden .NAME.*.tmp that later saves never removed",
        _killed_save_then_save,
        None,
        r"^1 hidden temp file after the kill, 0 after the next save$",
    ),
    Case(
        "ctrl-c",
        "Ctrl-C printed a raw KeyboardInterrupt traceback",
        _cli_ctrl_c,
        None,
        rf"^exit 130: {re.escape(_STOP_LINE)}$",
    ),
]


@pytest.mark.parametrize("case", IO_CASES, ids=[c.id for c in IO_CASES])
def test_io_issue_case(case):
    check_case(case)


CASES = CORE_CASES + ESTIMATOR_CASES + IO_CASES


def test_case_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES)


# ----------------------------------------------------------------------------------------------
# io: TrainConfig, every field is validated
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("clip_norm", -1),  # was accepted: the loss rose (1.892 -> 2.509)
        ("clip_norm", 0.0),
        ("clip_norm", float("nan")),
        ("learning_rate", 0.0),
        ("learning_rate", float("inf")),
        ("learning_rate", "1e-3"),
        ("end_lr_factor", -0.1),
        ("end_lr_factor", 2.0),
        ("weight_decay", -1e-4),
        ("weight_decay", float("nan")),
        ("ema_decay", 1.0),
        ("log_snr_min", float("nan")),
        ("log_snr_max", float("inf")),
        ("sigma_data", 0.0),
        ("sigma_data", float("nan")),
        ("n_steps", 0),
        ("batch_size", 2.5),
        ("chunk", 0),
        ("warmup_steps", -1),
        ("seed", -1),
        ("seed", 1.5),
        ("seed", True),
        ("weighting", "linear"),
        ("parametrisation", "score"),
    ],
)
def test_train_config_rejects_bad_field(field, value):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field} must be"):
        _config_with(field, value)


def test_train_config_accepts_its_documented_range():
    cfg = dataclasses.replace(CFG, clip_norm=float("inf"), end_lr_factor=0, weight_decay=0, seed=7)
    assert cfg.clip_norm == float("inf")
    with pytest.raises(ValueError, match="log_snr_min < log_snr_max"):
        dataclasses.replace(CFG, log_snr_min=4.0, log_snr_max=4.0)


# ----------------------------------------------------------------------------------------------
# io: train, the images
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "images, match",
    [
        (jnp.zeros((0, 8)), "images is empty"),
        (IMAGES.at[2, 3].set(jnp.nan), r"images must be finite: .* 1 of 6 images .*index 2"),
        (IMAGES.at[4, 0].set(-jnp.inf), r"images must be finite: .* 1 of 6 images .*index 4"),
    ],
)
def test_train_rejects_empty_or_nonfinite_images(images, match):
    with pytest.raises(ValueError, match=match):
        nets.train(_net(), images, TRAIN_OU, CFG)
    with pytest.raises(ValueError, match=match):  # the losses share the check
        nets.linear_denoiser_loss(images, TRAIN_OU)


# ----------------------------------------------------------------------------------------------
# io: checkpoints, the run record, the checksum, damaged files
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def ckpt(tmp_path):
    return _saved_checkpoint(tmp_path)


def _same_leaves(a, b):
    la = jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree_util.tree_leaves(eqx.filter(b, eqx.is_array))
    return len(la) == len(lb) and all(
        x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(config=dataclasses.replace(CFG, seed=1, learning_rate=1e-2)), None),
        (dict(images=IMAGES[::-1]), "the training images"),
        (dict(process=gl.OU(4.0)), "the process"),
    ],
)
def test_resume_with_another_run_raises(ckpt, kwargs, match):
    path, _ = ckpt
    args = dict(config=CFG, images=IMAGES, process=TRAIN_OU) | kwargs
    with pytest.raises(ValueError, match="different run") as err:
        nets.train(_net(), args["images"], args["process"], args["config"], checkpoint=path)
    msg = str(err.value)
    assert str(path) in msg and "allow_config_change=True" in msg
    if match is None:  # both differing fields are named, with their values
        assert "config.seed (checkpoint 0, now 1)" in msg
        assert "config.learning_rate (checkpoint 0.003, now 0.01)" in msg
    else:
        assert match in msg and "config." not in msg
    with pytest.raises(ValueError, match="different run"):  # load_checkpoint checks the same
        nets.load_checkpoint(path, ckpt[1], **args)


def test_resume_override_and_chunk_is_not_a_difference(tmp_path):
    # a finished run (step == n_steps): resuming it runs no step, so nothing is compiled here
    state = nets.init_train_state(_net(), CFG)
    losses = jnp.asarray([0.5, 0.25], state.losses.dtype)
    done = eqx.tree_at(lambda s: (s.step, s.losses), state, (jnp.asarray(2, jnp.int32), losses))
    path = nets.save_checkpoint(
        tmp_path / "done.ckpt", done, config=CFG, images=IMAGES, process=TRAIN_OU
    )
    # the chunking does not change the result, so it is not compared
    res = nets.train(_net(), IMAGES, TRAIN_OU, dataclasses.replace(CFG, chunk=2), checkpoint=path)
    assert _same_leaves(res.state, done)
    other = dataclasses.replace(CFG, seed=1, learning_rate=1e-2)
    with pytest.raises(ValueError, match="different run"):
        nets.train(_net(), IMAGES, TRAIN_OU, other, checkpoint=path)
    res = nets.train(_net(), IMAGES, TRAIN_OU, other, checkpoint=path, allow_config_change=True)
    assert _same_leaves(res.state, done)
    back = nets.load_checkpoint(path, state, config=other, allow_config_change=True)
    assert _same_leaves(back, done)


def test_checkpoint_without_record_is_refused_for_resuming(tmp_path):
    state = nets.init_train_state(_net(), CFG)
    path = nets.save_checkpoint(tmp_path / "bare.ckpt", state)
    assert _same_leaves(nets.load_checkpoint(path, state), state)  # no comparison asked
    with pytest.raises(ValueError, match="records no training configuration"):
        nets.train(_net(), IMAGES, TRAIN_OU, CFG, checkpoint=path)


def test_damaged_checkpoints_raise_naming_the_file(ckpt):
    path, state = ckpt
    blob = path.read_bytes()
    header_end = _header_end(blob)
    cases = {
        "empty": (b"", "is empty"),
        "truncated_data": (blob[:-7], "is truncated"),
        "truncated_header": (blob[:30], "truncated or its header is corrupted"),
        "garbage": (b"\x00garbage" * 64, "not a gltheory checkpoint"),
        "magic_flipped": (_flip(blob, 3, 5), "not a gltheory checkpoint"),
        "sha_line_damaged": (blob.replace(b"sha256:", b"sha265:", 1), "header is corrupted"),
        "record_bit": (_flip(blob, header_end - 20, 1), "checksum does not match"),
        "data_first_bit": (_flip(blob, header_end), "checksum does not match"),
        "data_middle_bit": (_flip(blob, (header_end + len(blob)) // 2, 6), "checksum does not"),
        "data_last_bit": (_flip(blob, len(blob) - 1, 7), "checksum does not match"),
        "older_format": (None, "not a gltheory checkpoint"),
    }
    for name, (data, match) in cases.items():
        bad = path.with_name(name)
        if data is None:  # the format before checksums: eqx.tree_serialise_leaves alone
            with open(bad, "wb") as f:
                eqx.tree_serialise_leaves(f, state)
        else:
            bad.write_bytes(data)
        with pytest.raises(ValueError, match=match) as err:
            nets.load_checkpoint(bad, state)
        assert str(bad) in str(err.value), name
    # the undamaged file still loads, bit for bit (the checks above can pass)
    assert _same_leaves(nets.load_checkpoint(path, state), state)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        nets.load_checkpoint(path.with_name("missing"), state)


def test_checkpoint_like_must_be_a_matching_train_state(ckpt):
    path, _ = ckpt
    with pytest.raises(ValueError, match="like must be a TrainState"):
        _lib(nets.load_checkpoint)(path, None)
    longer = nets.init_train_state(_net(), dataclasses.replace(CFG, n_steps=3))
    with pytest.raises(ValueError, match=rf"{path.name} does not fit `like`.*losses"):
        nets.load_checkpoint(path, longer)
    # another structure: one leaf more, or no optimiser state
    state = nets.init_train_state(_net(), CFG)
    more = eqx.tree_at(lambda s: s.step, state, (state.step, state.step))
    less = eqx.tree_at(lambda s: s.opt_state, state, ())
    for like, match in ((more, "does not fit `like`"), (less, "does not fit `like`")):
        with pytest.raises(ValueError, match=match) as err:
            nets.load_checkpoint(path, like)
        assert str(path) in str(err.value)


# ----------------------------------------------------------------------------------------------
# io: atomic writes, the temporary files of killed saves
# ----------------------------------------------------------------------------------------------


def test_killed_save_leaves_a_temp_file_the_next_save_removes(tmp_path):
    dest = tmp_path / "state.ckpt"
    dest.write_bytes(b"old")
    pid = _kill_a_save(dest)
    left = _temps(tmp_path, dest.name)
    assert len(left) == 1 and left[0].endswith(".tmp") and f".{pid}." in left[0]
    assert dest.read_bytes() == b"old"  # the destination was never touched
    _io.atomic_write_bytes(dest, b"new")
    assert dest.read_bytes() == b"new" and _temps(tmp_path, dest.name) == []


def test_stale_temp_rules_spare_live_writers(tmp_path):
    dest = tmp_path / "r.json"
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32]  # as in the file names
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = finished.pid
    old = time.time() - 2 * _io.STALE_TEMP_SECONDS
    files = {
        # name: (age, removed?)
        f".r.json.{host}.{dead}.abcdefgh.tmp": (None, True),  # writer gone
        f".r.json.{host}.{os.getpid()}.abcdefgh.tmp": (old, False),  # writer alive (this one)
        ".r.json.otherhost.12345.abcdefgh.tmp": (None, False),  # cannot tell, recent
        ".r.json.otherhost.12346.abcdefgh.tmp": (old, True),  # cannot tell, old
        ".r.json.abc_1234.tmp": (None, False),  # older naming scheme, recent
        ".r.json.abc_5678.tmp": (old, True),  # older naming scheme, old
        f".r.json.bak.{host}.{dead}.abcdefgh.tmp": (old, False),  # of r.json.bak
        ".r.json.backup.tmp": (old, False),  # not a temporary-file name of the writer
    }
    for name, (age, _) in files.items():
        (tmp_path / name).write_bytes(b"x")
        if age is not None:
            os.utime(tmp_path / name, (age, age))
    _io.atomic_write_text(dest, "{}")
    kept = set(_temps(tmp_path, dest.name))
    assert kept == {n for n, (_, removed) in files.items() if not removed}
    assert dest.read_text() == "{}"


# ----------------------------------------------------------------------------------------------
# io: the CLI, --out writability before anything runs; Ctrl-C
# ----------------------------------------------------------------------------------------------


def test_out_not_writable_fails_before_any_experiment(tmp_path):
    out = tmp_path / "new" / "out"
    code, err = _cli(_report_argv(out), denied=True)
    assert code == 2
    assert err.count("\n") == 1 and "--out folder" in err and "not writable" in err
    assert "Permission denied" in err and "Traceback" not in err
    assert not out.exists()  # the folder this run created is removed again


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write a read-only folder"
)
def test_out_read_only_folder(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, err = _cli(_report_argv(out))
    finally:
        out.chmod(0o755)
    assert code == 2 and "not writable" in err
    assert list(out.iterdir()) == []


def test_out_writable_probe_leaves_nothing(tmp_path, monkeypatch):
    """The probe file is created and removed; the run then starts (here: Ctrl-C at once)."""
    out = tmp_path / "out"
    out.mkdir()
    seen = []

    def interrupted(*args, **kwargs):
        seen.append(sorted(p.name for p in out.iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(rep, "run_report", interrupted)
    assert cli.main(_report_argv(out)) == 130
    assert seen == [[]] and list(out.iterdir()) == []  # an existing folder is kept


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    out = tmp_path / "out"
    code, err = _cli(_report_argv(out), interrupted=True)
    assert code == 130
    assert err.strip().splitlines()[-1] == _STOP_LINE
    assert "Traceback" not in err and not out.exists()  # the empty folder it made is removed


@pytest.mark.slow
def test_sigint_to_the_cli_process(tmp_path):
    """A real SIGINT to ``python -m gltheory report`` while an experiment runs (about 10 s)."""
    out = tmp_path / "out"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gltheory", "report", "--quick", "--only", "critical_times"]
        + ["--no-cache", "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr.readline().startswith("gltheory report: out=")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == _STOP_LINE
    assert "Traceback" not in err
    assert not out.exists() or not any(p.name.endswith(".tmp") for p in out.iterdir())
