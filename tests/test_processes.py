"""Forward processes: closed forms against autodiff, the values of
`docs/theory/processes.md#predictions` and round trips."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import all_processes
from hypothesis import given, settings, strategies as st

import gltheory as gl

PROCS = all_processes()
IDS = ["OU", "VP-linear", "VP-cosine", "VE-geometric", "VE-edm"]


@pytest.mark.parametrize("proc", PROCS, ids=IDS)
def test_drift_and_diffusion_from_autodiff(proc):
    """f = d ln a / dt and g^2 = d b^2/dt - 2 f b^2, checked by jax.grad of a_t and b_t^2."""
    ts = proc.T * jnp.array([0.013, 0.2, 0.5, 0.77, 0.999])
    f_ad = jax.vmap(jax.grad(proc.log_a))(ts)
    db2 = jax.vmap(jax.grad(proc.b2))(ts)
    g2_ad = db2 - 2 * f_ad * proc.b2(ts)
    np.testing.assert_allclose(proc.f(ts), f_ad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(proc.g2(ts), g2_ad, rtol=1e-10)


@pytest.mark.parametrize("proc", PROCS, ids=IDS)
def test_snr_alpha_bar_sigma_consistency(proc):
    ts = proc.T * jnp.array([0.01, 0.3, 0.9])
    a, b2 = proc.a(ts), proc.b2(ts)
    np.testing.assert_allclose(proc.snr(ts), a**2 / b2, rtol=1e-12)
    np.testing.assert_allclose(proc.alpha_bar(ts), a**2 / (a**2 + b2), rtol=1e-12)
    np.testing.assert_allclose(proc.sigma(ts), jnp.sqrt(b2) / a, rtol=1e-12)


@pytest.mark.parametrize("proc", PROCS, ids=IDS)
@settings(max_examples=40, deadline=None)
@given(u=st.floats(min_value=1e-4, max_value=1.0))
def test_time_of_snr_round_trip(proc, u):
    t = u * float(proc.T)
    np.testing.assert_allclose(proc.t_of_snr(proc.snr(t)), t, rtol=1e-8)
    np.testing.assert_allclose(proc.t_of_alpha_bar(proc.alpha_bar(t)), t, rtol=1e-8)
    np.testing.assert_allclose(proc.t_of_sigma(proc.sigma(t)), t, rtol=1e-8)


def test_closed_forms_match_theory():
    t = 0.37
    ou = gl.OU()
    assert ou.a(t) == pytest.approx(math.exp(-t), rel=1e-14)
    assert ou.b2(t) == pytest.approx(1 - math.exp(-2 * t), rel=1e-14)
    assert ou.snr(t) == pytest.approx(1 / (math.exp(2 * t) - 1), rel=1e-13)
    # VP linear: theta_s = exp(-s^2 (bmax - bmin)/4 - s bmin / 2) (Raya & Ambrogioni's theta_fn)
    vp = gl.VP()
    theta = math.exp(-0.25 * t**2 * (20 - 0.1) - 0.5 * t * 0.1)
    assert vp.a(t) == pytest.approx(theta, rel=1e-14)
    assert vp.beta(t) == pytest.approx(0.1 + t * 19.9, rel=1e-14)
    # legacy cosine: 1 - alpha_bar = 1 - cos^2(t / 1.008 * pi / 2)
    cos = gl.VP("cosine")
    assert cos.b2(t) == pytest.approx(1 - math.cos(t / 1.008 * math.pi / 2) ** 2, rel=1e-13)
    ve = gl.VE()
    assert ve.b(t) == pytest.approx(0.01 * (50 / 0.01) ** t, rel=1e-13)
    edm = gl.VE("edm")
    assert edm.b(t) == pytest.approx(t) and edm.a(t) == 1.0 and float(edm.T) == 80.0


def test_ou_is_vp_with_constant_beta():
    ou = gl.OU(T=2.0)
    vp = gl.VP(beta_min=2.0, beta_max=2.0, T=2.0)
    ts = jnp.linspace(0.01, 2.0, 7)
    np.testing.assert_allclose(ou.a(ts), vp.a(ts), rtol=1e-13)
    np.testing.assert_allclose(ou.b2(ts), vp.b2(ts), rtol=1e-13)
    np.testing.assert_allclose(ou.g2(ts), vp.g2(ts), rtol=1e-13)


def test_raya_ambrogioni_critical_step_and_curvature():
    """`docs/theory/critical-times.md#raya-ambrogioni`: critical generative step 707/1000 (theta = 0.6429 on the grid), Eq. 8."""
    vp = gl.VP()
    t_c = vp.t_of_alpha_bar(math.sqrt(2) - 1)
    step = int(vp.step_of_t(t_c, 1000))
    assert 1000 - step == 707
    assert float(jnp.sqrt(vp.alpha_bar(vp.t_of_step(step, 1000)))) == pytest.approx(
        0.6429, abs=1e-4
    )
    data = gl.TwoPoint(1.0)
    for s, expected in [(0.2, -13.1116), (0.4, 3.5538)]:
        u = lambda x: -vp.beta(s) * (gl.log_prob(data, vp, x[None], s) + x**2 / 4)
        assert float(jax.grad(jax.grad(u))(0.0)) == pytest.approx(expected, rel=1e-4)


def test_converters():
    ab = jnp.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(
        gl.processes.alpha_bar_from_ou_time(gl.processes.ou_time_from_alpha_bar(ab)), ab
    )
    np.testing.assert_allclose(
        gl.processes.alpha_bar_from_sigma(gl.processes.sigma_from_alpha_bar(ab)), ab
    )
    # OU time of the two-point score criterion: alpha_bar = 1/2 -> t = ln(2)/2
    assert float(gl.processes.ou_time_from_alpha_bar(0.5)) == pytest.approx(
        0.5 * math.log(2), rel=1e-14
    )
    # the same criterion in every process maps to alpha_bar = 1/2
    for proc in PROCS:
        assert float(proc.alpha_bar(proc.t_of_alpha_bar(0.5))) == pytest.approx(0.5, rel=1e-10)


def test_edm_rho_schedule():
    """`docs/theory/processes.md#time-grids`: EDM 32-point rho=7 schedule."""
    ts = gl.time_grid(gl.VE("edm"), 31, kind="edm", t_min=0.002)
    np.testing.assert_allclose(
        np.asarray(ts)[[0, 13, 17, 19, 22, 31]],
        [80.0, 4.9991, 1.6086, 0.8446, 0.2830, 0.002],
        atol=1e-4,
    )


@pytest.mark.parametrize("kind", ["uniform", "log_snr", "edm"])
@pytest.mark.parametrize("proc", PROCS, ids=IDS)
def test_time_grids_are_decreasing_and_pinned(proc, kind):
    ts = gl.time_grid(proc, 50, kind=kind)
    assert ts.shape == (51,)
    assert bool(jnp.all(jnp.diff(ts) < 0))
    assert float(ts[0]) == pytest.approx(float(proc.T))
    if kind == "log_snr":
        np.testing.assert_allclose(
            jnp.diff(proc.log_snr(ts)), jnp.diff(proc.log_snr(ts))[0], rtol=1e-8
        )


@pytest.mark.parametrize("proc", PROCS, ids=IDS)
def test_small_t_is_finite(proc):
    for dtype in (jnp.float32, jnp.float64):
        t = jnp.asarray([1e-12, 1e-8, 1e-4], dtype)
        for q in (proc.a(t), proc.b2(t), proc.log_snr(t), proc.alpha_bar(t), proc.g2(t)):
            assert bool(jnp.all(jnp.isfinite(q)))
        assert bool(jnp.all(proc.b2(t) > 0))


def test_processes_are_pytrees_without_retrace():
    """New parameter values reuse the compiled function (numeric fields are arrays)."""
    calls = []

    @jax.jit
    def f(proc, t):
        calls.append(1)
        return proc.b2(t)

    f(gl.VP(beta_max=20.0), 0.3)
    f(gl.VP(beta_max=15.0), 0.4)
    assert len(calls) == 1
    grad = jax.grad(lambda bmax: gl.VP(beta_max=bmax).b2(0.3))(20.0)
    assert float(grad) == pytest.approx(
        0.5 * 0.3**2 * math.exp(-(0.1 * 0.3 + 0.5 * 19.9 * 0.09)), rel=1e-10
    )
