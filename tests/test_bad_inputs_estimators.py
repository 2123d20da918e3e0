"""Issue 16, analysis/estimator layer: bad inputs get a clear error naming the argument, and the
Monte Carlo estimators count non-finite trajectories (``n_nonfinite``) instead of building an
estimate (in particular ``se = 0``) on them.

The policy of every estimator (documented in each result type): non-finite trajectories are
counted, their per-trajectory values are NaN, and the estimate and its standard error are NaN
when the count is not zero. Sizes are tiny (4-8 trajectories, 3-4 time steps): every test is
about the contract, not the statistics.

The bad-input checks call the functions unwrapped (``inspect.unwrap``), as users run them: the
suite's jaxtyping hook would otherwise answer first for arguments of a wrong type or rank.
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gltheory as gl
from gltheory import criticality as cr, guidance as G, meanfield as mf, observables as ob, thermo

NAN = float("nan")
OU = gl.OU()
TWO = gl.TwoPoint(jnp.array([1.0, 0.5]))


def _raw(fn):
    """``fn`` without the suite's run-time type checker (what users call)."""
    return inspect.unwrap(fn)


def _exact(data, process):
    return lambda x, t: gl.score(data, process, x, t)


def _with_nan_row(x, row=1):
    return jnp.asarray(x).at[row].set(NAN)


# ----------------------------------------------------------------------------------------------
# meanfield: critical_times, fixed_points, fit_exponent
# ----------------------------------------------------------------------------------------------


def test_critical_times_bad_inputs():
    with pytest.raises(ValueError, match="x_ref must be finite"):
        _raw(mf.critical_times)(
            TWO, OU, x_ref=[NAN, 0.0]
        )  # was (None, None, None): "no transition"
    with pytest.raises(ValueError, match="x_ref must be one point"):
        _raw(mf.critical_times)(TWO, OU, x_ref=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="t_max must be a scalar"):
        _raw(mf.critical_times)(TWO, OU, t_max=[4.0, 5.0])
    with pytest.raises(ValueError, match="t_min must be a scalar"):
        _raw(mf.critical_times)(TWO, OU, t_min=[1e-3, 1e-2])
    with pytest.raises(ValueError, match="t_min and t_max"):
        _raw(mf.critical_times)(TWO, OU, t_max=NAN)
    with pytest.raises(ValueError, match="n_grid"):
        _raw(mf.critical_times)(TWO, OU, n_grid=2)
    with pytest.raises(ValueError, match="process must be a gltheory process"):
        _raw(mf.critical_times)(TWO, "OU")
    with pytest.raises(ValueError, match="data must be a gltheory dataset"):
        _raw(mf.critical_times)("two_point", OU)


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
            _raw(mf.fixed_points)(TWO, OU, 0.5, **kwargs)
    with pytest.raises(ValueError, match="t must be a scalar time"):
        _raw(mf.fixed_points)(TWO, OU, [0.5, 0.6])
    with pytest.raises(ValueError, match=r"t must lie in \(0, T\]"):
        _raw(mf.fixed_points)(TWO, OU, -0.5)
    with pytest.raises(ValueError, match="process must be a gltheory process"):
        _raw(mf.fixed_points)(TWO, "OU", 0.5)
    with pytest.raises(ValueError, match="data must be a gltheory dataset"):
        _raw(mf.fixed_points)("two_point", OU, 0.5)
    with pytest.raises(ValueError, match="ts must be a 1-D"):
        _raw(mf.bifurcation_diagram)(TWO, OU, [[0.5, 0.6]])
    with pytest.raises(ValueError, match="x must be finite"):
        _raw(mf.potential_curvature)(TWO, OU, 0.5, x=[NAN, 0.0])
    with pytest.raises(ValueError, match="direction must be a finite, nonzero"):
        _raw(mf.landau_coefficients)(TWO, OU, 0.5, direction=[0.0, 0.0])


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
        _raw(mf.fit_exponent)(x, y, **kwargs)


def test_fit_exponent_still_fits_good_points():
    x = jnp.array([1.0, 2.0, 4.0, 8.0])
    fit = _raw(mf.fit_exponent)(x, 3.0 * x**1.5)
    assert abs(float(fit.slope) - 1.5) < 1e-12 and int(fit.n) == 4


# ----------------------------------------------------------------------------------------------
# observables: cloning probability, kick / class-fraction responses, bimodality
# ----------------------------------------------------------------------------------------------

TS = jnp.linspace(1.0, 0.05, 4)
X0 = jax.random.normal(jax.random.PRNGKey(0), (6, 2))
CLASSIFY = ob.sign_classifier(jnp.array([1.0, 0.5]))


def test_cloning_probability_counts_nonfinite_states(key):
    # one compiled program for the three calls (same shapes and branch index)
    kw = dict(ts=TS, branch_index=1, classify=CLASSIFY)
    good = ob.cloning_probability(_exact(TWO, OU), OU, key, X0, **kw)
    assert int(good.n_nonfinite) == 0
    assert math.isfinite(float(good.phi)) and math.isfinite(float(good.se))
    # one NaN initial state: counted, and no estimate is built on it
    bad = ob.cloning_probability(_exact(TWO, OU), OU, key, _with_nan_row(X0), **kw)
    assert int(bad.n_nonfinite) == 1
    assert math.isnan(float(bad.phi)) and math.isnan(float(bad.se))
    # all NaN: was phi = 1.0, se = 0 (every NaN state got label 0)
    all_nan = ob.cloning_probability(_exact(TWO, OU), OU, key, jnp.full_like(X0, NAN), **kw)
    assert int(all_nan.n_nonfinite) == X0.shape[0]
    assert math.isnan(float(all_nan.phi)) and math.isnan(float(all_nan.se))


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
# guidance.measure: alignment, pulse scans, curve peak, physics-aware sampler
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


# ----------------------------------------------------------------------------------------------
# thermo: Monte Carlo means, trajectory entropy, fluctuation theorems
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
# criticality detectors: no bootstrap se = 0 built on NaN trajectories
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
