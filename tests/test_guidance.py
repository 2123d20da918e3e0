"""Guidance: class-conditional scores, guidance forms (CFG, intervals, pulses, power law), the
pulse susceptibility theory, and the pulse experiment (`docs/theory/guidance.md#guidance`,
`docs/theory/processes.md#time-grids`).

The Monte Carlo must-show claims (argmax R vs the measured pulse-time curve, critical vs random
pulses, physics-aware firing, learned pulse centre) are checked on one run of the report
experiment (module fixture), so the sampler compiles once for all of them."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import gltheory as gl
from gltheory import guidance as G, observables as ob
from gltheory.experiments import guidance as eg
from gltheory.report import ReportConfig

PROC = gl.OU(2.0)


# ----------------------------------------------------------------------------------------------
# the report experiment (quick sizes): one run for every Monte Carlo claim
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exp_result():
    return eg.guidance_pulses_experiment(ReportConfig.default(quick=True), jax.random.PRNGKey(11))


@pytest.mark.slow  # a report experiment at --quick size: the slow tier
def test_report_rows_all_ok(exp_result):
    bad = [(r.name, r.theory, r.measured, r.z) for r in exp_result.rows if not r.ok]
    assert not bad, bad
    assert "guidance_pulses.png" in exp_result.figures
    assert eg.EXPERIMENTS[0].name == "guidance_pulses"


@pytest.mark.slow  # a report experiment at --quick size: the slow tier
def test_argmax_R_equals_mc_peak_of_alignment_curve(exp_result):
    """Must-show: argmax of R(t) by quadrature == peak of the MC alignment-vs-pulse-time curve
    (two deltas, one-step pulses of size 0.01) within 3 bootstrap SE; the SE is small enough
    to separate argmax R from the critical times t_c^S and t_c^D."""
    info = exp_result.info
    t_star, t_peak, se = info["t_star"], info["t_peak"], info["t_peak_se"]
    assert abs(t_peak - t_star) <= 3 * se
    assert se < 0.02
    assert abs(0.5 * math.asinh(1.0) - t_star) > 5 * se  # t_c^D is resolvably different


@pytest.mark.slow  # a report experiment at --quick size: the slow tier
def test_critical_pulses_beat_random_pulses(exp_result):
    """Must-show: at fixed perturbation size, pulses at argmax R beat random-time pulses in class
    alignment by more than 3 SE (paired over the same trajectories)."""
    info = exp_result.info
    assert info["diff_critical_random"] > 3 * info["diff_se"]
    assert info["align_critical"] > info["align_random"]


@pytest.mark.slow  # a report experiment at --quick size: the slow tier
def test_learned_pulse_centre_matches_theory(exp_result):
    """Must-show: the optax-learned centre lies within 3 MC SE of the optimum of the same
    objective (its expectation over the Euler-Maruyama chain by quadrature: same shape, width,
    grid and eps), which itself sits near argmax R."""
    info = exp_result.info
    c, se, c_opt = info["learned_centre"], info["learned_centre_se"], info["optimum_centre"]
    assert abs(c - c_opt) <= 3 * se
    assert se < 0.05
    assert abs(c_opt - info["t_star"]) < 0.1


def test_physics_aware_sampler_fires_near_peak_small():
    """Fast form of the report's claim: the online estimate of R(t) from 1000 trajectories makes
    the sampler fire within 0.06 of argmax R (it is never told t_c), and its pulse aligns more
    trajectories with the target than no pulse does (paired: same keys, 3 binomial SE)."""
    st = eg.two_delta_setup(1000, jax.random.PRNGKey(3))
    key = jax.random.PRNGKey(4)
    pa = G.physics_aware_sample(
        st["data"], st["proc"], key, st["x0"], ts=st["ts"], eps=eg.EPS_PULSE, n_pulse=3
    )
    assert abs(float(pa.fire_time) - st["t_star"]) < 0.06
    t_end = st["ts"][-1]
    base = gl.sample(
        lambda x, t: st["data"].score(st["proc"], x, t), st["proc"], key, st["x0"], ts=st["ts"]
    ).x
    align_pa = float(jnp.mean(st["data"].classify(st["proc"], pa.x, t_end) == 0))
    align_0 = float(jnp.mean(st["data"].classify(st["proc"], base, t_end) == 0))
    assert align_pa - align_0 > 3 * math.sqrt(0.25 / 1000), (align_pa, align_0)


@pytest.mark.slow  # a report experiment at --quick size: the slow tier
def test_physics_aware_sampler_fires_near_peak(exp_result):
    info = exp_result.info
    assert abs(info["physics_aware_fire_time"] - info["t_star"]) < 0.06
    # its alignment is that of a pulse at the peak, far above random-time pulses
    assert info["physics_aware_alignment"] > info["align_random"] + 3 * info["diff_se"]


# ----------------------------------------------------------------------------------------------
# class-conditional data
# ----------------------------------------------------------------------------------------------


def test_class_conditional_scores_match_closed_forms(key):
    x = jax.random.normal(key, (7, 3))
    mu = jnp.array([0.5, -1.0, 0.8])
    t = 0.37
    d2 = G.two_class_deltas(mu)
    np.testing.assert_allclose(
        d2.score(PROC, x, t), gl.score(gl.TwoPoint(mu), PROC, x, t), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(d2.denoiser(PROC, x, t, 0), jnp.broadcast_to(mu, x.shape))
    g2 = G.two_class_gaussians(mu, 0.3)
    gm = gl.GaussianMixture(jnp.stack([mu, -mu]), jnp.array([0.3, 0.3]))
    np.testing.assert_allclose(g2.score(PROC, x, t), gl.score(gm, PROC, x, t), rtol=1e-11)
    pts = jax.random.normal(jax.random.fold_in(key, 1), (3, 3))
    w = jnp.array([0.2, 0.5, 0.3])
    k3 = G.class_deltas(pts, w)
    np.testing.assert_allclose(
        k3.score(PROC, x, t), gl.score(gl.DeltaMixture(pts, w), PROC, x, t), rtol=1e-11
    )
    # class posterior: normalised, and the score is the gradient of log sum_c pi_c p_t(x|c)
    post = k3.class_posterior(PROC, x, t)
    np.testing.assert_allclose(post.sum(-1), 1.0, rtol=1e-12)
    kg = G.class_gaussians(pts, jnp.array([0.1, 0.4, 0.2]))

    def logp(xx):
        return gl.log_prob(gl.GaussianMixture(pts, jnp.array([0.1, 0.4, 0.2])), PROC, xx[None], t)[
            0
        ]

    np.testing.assert_allclose(kg.score(PROC, x[:1], t)[0], jax.grad(logp)(x[0]), rtol=1e-10)
    y, lab = kg.sample(key, 4000)
    assert y.shape == (4000, 3) and lab.shape == (4000,)
    np.testing.assert_allclose(np.bincount(np.asarray(lab), minlength=3) / 4000, 1 / 3, atol=0.03)


def test_item_18_cfg_acts_before_commitment():
    """`docs/theory/guidance.md#cfg-two-clusters`: |s_c - s_u| / |a m / b^2| = 1 - tanh 5 at a m.x/b^2 = 5, and 1 at x = 0."""
    mu = jnp.array([1.0, 2.0])
    data = G.two_class_deltas(mu)
    t = 0.8
    a, b2 = PROC.a(t), PROC.b2(t)
    u = mu / jnp.linalg.norm(mu)
    x = jnp.stack([5 * b2 / (a * jnp.linalg.norm(mu)) * u, jnp.zeros(2)])
    diff = data.score(PROC, x, t, 0) - data.score(PROC, x, t, None)
    ratio = jnp.linalg.norm(diff, axis=-1) / (a * jnp.linalg.norm(mu) / b2)
    np.testing.assert_allclose(ratio, [1 - math.tanh(5.0), 1.0], rtol=1e-9)
    assert abs(float(ratio[0]) - 9.08e-5) < 1e-7


# ----------------------------------------------------------------------------------------------
# guidance forms, bookkeeping, retracing
# ----------------------------------------------------------------------------------------------


def _edm_denoisers():
    data = G.two_class_deltas(1.0)
    ve = gl.VE("edm")
    return (lambda x, s: data.denoiser(ve, x, s, 0)), (lambda x, s: data.denoiser(ve, x, s, None))


def test_item_17_interval_bookkeeping(key):
    sig = G.edm_sigmas(32)
    np.testing.assert_allclose(
        sig[np.array([13, 17, 19, 22])], [4.9991, 1.6086, 0.8446, 0.2830], atol=1e-4
    )
    assert float(sig[-1]) == 0.0
    np.testing.assert_allclose(sig[:-1], gl.time_grid(gl.VE("edm"), 31, kind="edm"), rtol=1e-12)
    dc, du = _edm_denoisers()
    x = 80.0 * jax.random.normal(key, (3, 1))
    _, n_int = G.edm_guided_sample(dc, du, G.StepIntervalCFG(2.0, 17, 22), x, sig)
    assert int(n_int) == 12  # 6 steps x 2 Heun evaluations
    x_c, n_c = G.edm_guided_sample(dc, du, G.ConstantCFG(1.0), x, sig)
    x_1, n_1 = G.edm_guided_sample(dc, du, G.StepIntervalCFG(1.0, 17, 22), x, sig)
    assert int(n_c) == 0 and int(n_1) == 0  # w = 1: the conditional net only
    np.testing.assert_allclose(x_1, x_c, rtol=0, atol=0)
    np.testing.assert_allclose(x_c, 1.0, atol=1e-6)  # conditional sampling of delta(y - 1)
    _, n_all = G.edm_guided_sample(dc, du, G.ConstantCFG(2.0), x, sig)
    assert int(n_all) == 2 * 31 + 1


def _edm_reference(den_c, den_u, guidance, x, sigmas):
    """Karras et al.'s Alg. 1 (no churn) with guidance, as a plain Python loop in NumPy: the
    oracle of edm_guided_sample (which runs EDMHeun steps through sampling.integrate)."""
    x = np.asarray(x, np.float64)
    sig = np.asarray(sigmas, np.float64)
    n = sig.shape[0] - 1
    count = 0

    def den(y, s, i):
        nonlocal count
        du = np.asarray(den_u(jnp.asarray(y), jnp.asarray(s)))
        dc = np.asarray(den_c(jnp.asarray(y), jnp.asarray(s)))
        diff = dc - du
        norm = np.sqrt(np.sum(diff.reshape(diff.shape[0], -1) ** 2, axis=-1))
        w = np.asarray(guidance.weight(jnp.asarray(s), step=jnp.asarray(i), diff_norm=norm))
        if w.ndim == 1:
            w = w.reshape(w.shape + (1,) * (y.ndim - 1))
        count += int(isinstance(guidance, G.PowerLawCFG) or np.ndim(w) > 0 or w not in (0, 1))
        return du + w * diff

    for i in range(n):
        d_cur = (x - den(x, sig[i], i)) / sig[i]
        x_next = x + (sig[i + 1] - sig[i]) * d_cur
        if i < n - 1:
            d_next = (x_next - den(x_next, sig[i + 1], i)) / sig[i + 1]
            x_next = x + (sig[i + 1] - sig[i]) * (0.5 * d_cur + 0.5 * d_next)
        x = x_next
    return x, count


@pytest.mark.parametrize(
    "guidance",
    [
        G.ConstantCFG(2.0),
        G.StepIntervalCFG(2.5, 3, 6),
        G.PowerLawCFG(2.0, 0.5),
        G.IntervalCFG(3.0, 0.5, 5.0, w_out=0.0),
    ],
)
def test_edm_sampler_through_solver_layer_matches_python_loop(key, guidance):
    """edm_guided_sample (EDMHeun steps run by sampling.integrate, last step x = D) equals a
    direct NumPy loop of Karras et al.'s Heun sampler with guidance, and counts the same
    evaluations that run both denoisers."""
    data = G.two_class_gaussians(1.0, 0.05)
    ve = gl.VE("edm")

    def dc(x, s):
        return data.denoiser(ve, x, s, 0)

    def du(x, s):
        return data.denoiser(ve, x, s, None)

    sig = G.edm_sigmas(10)
    x = 80.0 * jax.random.normal(key, (16, 1))
    got, n_got = G.edm_guided_sample(dc, du, guidance, x, sig)
    ref, n_ref = _edm_reference(dc, du, guidance, x, sig)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
    assert int(n_got) == n_ref


def test_count_guided_evaluations_replays_the_sampler():
    ts = gl.time_grid(PROC, 50)
    g = G.IntervalCFG(3.0, 0.4, 1.1, w_out=0.0)
    tn = np.asarray(ts)
    inside = (tn >= 0.4) & (tn <= 1.1)
    assert int(G.count_guided_evaluations(g, ts, "euler_maruyama")) == int(inside[:-1].sum())
    assert int(G.count_guided_evaluations(g, ts, "heun")) == int(
        inside[:-1].sum() + inside[1:].sum()
    )
    p = G.Pulse(0.7, 0.2, 5.0)
    box = (tn - 0.7 >= -0.1) & (tn - 0.7 < 0.1)
    assert int(G.count_guided_evaluations(p, ts, "ddim")) == int(box[:-1].sum())
    assert int(G.count_guided_evaluations(G.ConstantCFG(1.0), ts)) == 0


def test_guided_score_is_the_score_of_the_guided_denoiser(key):
    data = G.two_class_gaussians(1.3, 0.2)
    x = jax.random.normal(key, (6, 1))
    t = jnp.asarray(0.5)
    cond, unc = G.ClassScore(data, PROC, 0), G.ClassScore(data, PROC, None)
    for w in (0.0, 1.0, 2.5):
        gs = G.GuidedScore(cond, unc, G.ConstantCFG(w))
        d = G.guided_denoiser(data.denoiser(PROC, x, t), data.denoiser(PROC, x, t, 0), w)
        np.testing.assert_allclose(gs(x, t), (PROC.a(t) * d - x) / PROC.b2(t), rtol=1e-12)
    # power law: alpha = 0 is constant CFG max(omega, w_min); committed states -> w_min
    pl = G.GuidedScore(cond, unc, G.PowerLawCFG(2.5, 0.0))
    np.testing.assert_allclose(pl(x, t), G.GuidedScore(cond, unc, G.ConstantCFG(2.5))(x, t))
    w = G.PowerLawCFG(3.0, 1.0, w_min=1.0).weight(t, diff_norm=jnp.array([0.0, 1e-3, 2.0]))
    np.testing.assert_allclose(w, [1.0, 1.0, 6.0])


def test_pulse_parameters_never_retrace(key):
    """New pulse centre/width/strength values reuse the compiled sampler (trace counter)."""
    data = G.two_class_deltas(1.0)
    traces = []

    class Counting(eqx.Module):
        inner: G.GuidedScore

        def __call__(self, x, t):
            traces.append(1)
            return self.inner(x, t)

    ts = jnp.linspace(2.0, 0.05, 21)
    outs, counts = [], []
    for c, wd, s in ((0.3, 0.2, 1.0), (0.9, 0.1, 4.0), (0.5, 0.4, 0.0), (0.7, 0.3, 2.0)):
        p = G.Pulse(c, wd, s, shape="smooth")
        gs = Counting(G.GuidedScore(G.ClassScore(data, PROC, 0), G.ClassScore(data, PROC, None), p))
        outs.append(gl.sample(gs, PROC, key, (64, 1), ts=ts).x)
        counts.append(len(traces))
    assert counts[0] > 0
    assert counts == [counts[0]] * 4  # only the first call traced the score
    assert not np.allclose(outs[0], outs[1])
    np.testing.assert_allclose(
        outs[2], gl.sample(G.ClassScore(data, PROC, None), PROC, key, (64, 1), ts=ts).x, rtol=1e-12
    )


def test_displacement_normalisation_and_linear_theory():
    ts = jnp.linspace(2.0, 0.02, 129)

    def nu(t):
        return G.two_cluster_guidance_scale(1.0, 0.0, t, process=PROC)

    centres = jnp.array([0.3, 0.8, 1.5])
    p = G.normalise_pulse(G.Pulse(centres, 0.25), 0.2, PROC, ts, nu)
    np.testing.assert_allclose(G.guidance_displacement(p, PROC, ts, nu), 0.2, rtol=1e-12)
    # nu is |s_c - s_u| at the symmetric point
    data = G.two_class_deltas(1.0)
    ref = G.guidance_scale(
        G.ClassScore(data, PROC, 0), G.ClassScore(data, PROC, None), jnp.zeros((1, 1)), 0.4
    )
    np.testing.assert_allclose(ref, nu(0.4), rtol=1e-12)
    # a one-step box pulse at grid time t_i: linear theory = 1/2 + eps R(t_i)
    i = 100
    h = float(ts[0] - ts[1])
    one = G.normalise_pulse(G.Pulse(ts[i], h), 0.05, PROC, ts, nu)
    lin = G.pulse_alignment_theory(1.0, 0.0, one, process=PROC, ts=ts)
    r = ob.class_susceptibility_theory(1.0, 0.0, ts[i], process=PROC)
    np.testing.assert_allclose(lin - 0.5, 0.05 * r, rtol=1e-10)
    # differentiable in the centre
    g = jax.grad(
        lambda c: G.pulse_alignment_theory(
            1.0,
            0.0,
            G.normalise_pulse(G.Pulse(c, 0.2, shape="smooth"), 0.1, PROC, ts, nu),
            process=PROC,
            ts=ts,
        )
    )(0.8)
    assert np.isfinite(float(g)) and float(g) < 0  # past the peak: moving later (larger t) hurts


# ----------------------------------------------------------------------------------------------
# pulse response theory
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma2", [0.0, 0.3])
def test_guidance_susceptibility_equals_class_susceptibility(sigma2):
    t = jnp.array([0.05, 0.2, 0.35, 0.7, 1.5])
    rg = G.guidance_susceptibility_theory(1.2, sigma2, t, process=PROC)
    r = ob.class_susceptibility_theory(1.2, sigma2, t, process=PROC)
    np.testing.assert_allclose(rg, r, rtol=1e-10)
    # slope of the exact finite-eps responses at eps = 0 is R (central differences)
    e = 1e-5
    for kind in ("flow", "euler"):
        up = G.pulse_response_theory(1.2, sigma2, t, e, kind=kind, process=PROC)
        dn = G.pulse_response_theory(1.2, sigma2, t, 0.0, kind=kind, process=PROC)
        np.testing.assert_allclose((up - dn) / e, r, rtol=2e-4)


def test_flow_response_against_brute_force():
    """Impulsive pulse: the closed-form flow map vs many small Euler sub-steps, and the
    expectation vs scipy.integrate.quad over the two-delta marginal."""
    t, eps = 0.4, 0.6
    a, b2 = float(PROC.a(t)), float(PROC.b2(t))
    c = a / b2

    def phi(q, n=4000):
        for _ in range(n):
            q = q + eps / n * (1 - np.tanh(c * q))
        return q

    def integrand(q):
        dens = 0.5 * (np.exp(-((q - a) ** 2) / (2 * b2)) + np.exp(-((q + a) ** 2) / (2 * b2)))
        return dens / math.sqrt(2 * math.pi * b2) / (1 + np.exp(-2 * c * phi(q)))

    ref, _ = integrate.quad(integrand, -a - 9 * math.sqrt(b2), a + 9 * math.sqrt(b2), limit=200)
    got = G.pulse_response_theory(1.0, 0.0, t, eps, kind="flow", process=PROC)
    assert abs(float(got) - ref) < 2e-4  # sub-step error O(eps/n)
    eu = G.pulse_response_theory(1.0, 0.0, t, eps, kind="euler", process=PROC)
    assert float(eu) > float(got)  # the Euler map overshoots the flow (1 - tanh decreases)


def test_large_lambda_limit_of_the_pulse_optimum():
    """For large Lambda the argmax of R_g is t_S + 0.2007 (reusing the observables constant)."""
    lam = 1e4
    t_s = 0.5 * math.log(lam)
    t = jnp.linspace(t_s - 0.3, t_s + 0.7, 2001)
    rg = G.guidance_susceptibility_theory(math.sqrt(lam), 0.0, t, process=gl.OU(10.0))
    assert abs(float(t[jnp.argmax(rg)]) - (t_s + ob.R_PEAK_SHIFT)) < 2e-3
    assert abs(float(rg.max()) - ob.R_PEAK_VALUE) < 2e-3


def test_pulse_objective_quadrature_matches_paired_monte_carlo():
    """The quadrature of the Euler-Maruyama chain's transition densities is the mean of the
    learn_pulse objective: unguided it is 1/2 (symmetry) and the pulse's gain agrees with a
    paired MC estimate (same keys and start states, eps = 0 vs 0.1) within 4 SE."""
    data = G.two_class_deltas(1.0)
    ts = jnp.linspace(2.0, 0.1, 97)
    kw = dict(centre=0.38, width=0.3, ts=ts)
    j1 = float(G.pulse_objective_quadrature(data, PROC, eps=0.1, **kw))
    j0 = float(G.pulse_objective_quadrature(data, PROC, eps=0.0, **kw))
    assert abs(j0 - 0.5) < 1e-7
    j1_fine = float(G.pulse_objective_quadrature(data, PROC, eps=0.1, x_max=8.0, n_x=641, **kw))
    assert abs(j1 - j1_fine) < 1e-7  # grid converged
    n = 4000
    x = data.forward_sample(PROC, jax.random.PRNGKey(3), n, ts[0])
    nu_i = G.guidance_scale_at_origin(data, PROC, ts, 0)

    def mc(eps):
        return G.pulse_objective_samples(
            data, PROC, jax.random.PRNGKey(4), x, centre=0.38, width=0.3, eps=eps, ts=ts, nu=nu_i
        )

    d = mc(0.1) - mc(0.0)
    se = float(jnp.std(d, ddof=1)) / math.sqrt(n)
    assert abs(float(jnp.mean(d)) - (j1 - j0)) < 4 * se
    assert se < 0.2 * (j1 - j0)


@pytest.mark.parametrize(
    "grids", [(48, 96), pytest.param((96, 192), marks=pytest.mark.slow)], ids=["48-96", "96-192"]
)
def test_discrete_pulse_optimum_tends_to_linear_response(grids):
    """The optimum of the discretised objective is a maximum of the quadrature and, for eps -> 0
    and a finer grid, approaches the linear-response optimum (exact sampler) at O(h).

    Fast tier: grids of 48 and 96 steps (96 is the grid of the paired Monte Carlo test above,
    whose quadrature program the checks at dc = +-0.01 reuse; gaps 0.0133 and 0.0071); the slow
    tier repeats the halving once more, 96 -> 192 steps."""
    data = G.two_class_deltas(1.0)
    gaps = []
    for n_steps in grids:
        ts = jnp.linspace(2.0, 0.1, n_steps + 1)
        c, j, h2 = G.discrete_optimal_pulse_centre(
            data, PROC, width=0.3, eps=1e-4, ts=ts, t_lo=0.15, t_hi=1.2
        )
        for dc in (-0.01, 0.01):
            jd = G.pulse_objective_quadrature(data, PROC, centre=c + dc, width=0.3, eps=1e-4, ts=ts)
            assert float(jd) < float(j)
        assert float(h2) < 0
        c_lin, _ = G.optimal_pulse_centre(
            1.0, 0.0, width=0.3, shape="smooth", process=PROC, ts=ts, t_lo=0.15, t_hi=1.2
        )
        gaps.append(float(c - c_lin))
    assert abs(gaps[1]) < 0.6 * abs(gaps[0])  # shrinks like h
    assert abs(gaps[grids.index(96)]) < 0.02  # at 96 steps


def test_float32_paths(key):
    t = jnp.array([0.1, 0.4, 1.0], jnp.float32)
    p32 = G.pulse_response_theory(jnp.float32(1.0), jnp.float32(0.0), t, 0.3, process=PROC)
    p64 = G.pulse_response_theory(1.0, 0.0, t.astype(jnp.float64), 0.3, process=PROC)
    assert p32.dtype == jnp.float32
    np.testing.assert_allclose(p32, p64, rtol=1e-4)
    data = G.two_class_deltas(1.0)
    gs = G.GuidedScore(
        G.ClassScore(data, PROC, 0), G.ClassScore(data, PROC, None), G.Pulse(0.4, 0.3, 3.0)
    )
    ts = jnp.linspace(2.0, 1e-3, 41).astype(jnp.float32)
    x = gl.sample(gs, PROC, key, jnp.zeros((32, 1), jnp.float32), ts=ts).x
    assert x.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(x)))


# ----------------------------------------------------------------------------------------------
# lattice classes
# ----------------------------------------------------------------------------------------------


def test_class_lattice_scores_and_classifier(key):
    vert = gl.data.stripes((6, 6), width=1, orientation="vertical")
    horiz = gl.data.stripes((6, 6), width=1, orientation="horizontal")
    lat = G.class_lattice([vert, horiz], window=3)
    y = jnp.concatenate([vert.images, horiz.images])
    np.testing.assert_array_equal(
        lat.classify(None, y), [0] * vert.images.shape[0] + [1] * horiz.images.shape[0]
    )
    x = jax.random.normal(key, (3, 6, 6))
    np.testing.assert_allclose(
        lat.score(PROC, x, 0.6, 0), gl.patch.score(vert, PROC, x, 0.6, window=3), rtol=1e-12
    )
    np.testing.assert_allclose(
        lat.score(PROC, x, 0.6),
        gl.patch.score(jnp.concatenate([vert.images, horiz.images]), PROC, x, 0.6, window=3),
        rtol=1e-12,
    )
    # guided lattice sampling is exercised (with timing) in notebook 05


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


def test_bad_inputs_raise():
    data = G.two_class_deltas(1.0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        G.ClassConditional([gl.TwoPoint(1.0)])
    with pytest.raises(ValueError, match="event shape"):
        G.ClassConditional([gl.TwoPoint(1.0), gl.TwoPoint(1.0, dim=2)])
    with pytest.raises(ValueError, match="label"):
        data.score(PROC, jnp.zeros((1, 1)), 0.3, 2)
    with pytest.raises(ValueError, match="shape"):
        G.Pulse(0.3, 0.1, shape="triangle")
    with pytest.raises(ValueError, match="width"):
        G.Pulse(0.3, -0.1)
    with pytest.raises(ValueError, match="i_lo <= i_hi"):
        G.StepIntervalCFG(2.0, 22, 17)
    with pytest.raises(ValueError, match="step index"):
        G.StepIntervalCFG(2.0, 17, 22).weight(jnp.asarray(1.0))
    with pytest.raises(ValueError, match="alpha"):
        G.PowerLawCFG(1.0, -1.5)
    with pytest.raises(ValueError, match="kind"):
        G.pulse_response_theory(1.0, 0.0, 0.3, 0.1, kind="rk4")
    with pytest.raises(ValueError, match="sigma_N = 0"):
        G.edm_guided_sample(
            *_edm_denoisers(), G.ConstantCFG(1.0), jnp.ones((2, 1)), [3.0, 2.0, 1.0]
        )
    with pytest.raises(ValueError, match="target"):
        G.pulse_alignment(
            data, PROC, jax.random.PRNGKey(0), (4, 1), G.ConstantCFG(1.0), ts=[1.0, 0.5], target=3
        )
    with pytest.raises(ValueError, match="method"):
        G.count_guided_evaluations(G.ConstantCFG(2.0), [1.0, 0.5], "rk4")
    with pytest.raises(ValueError, match="1-D ClassConditional"):
        G.pulse_objective_quadrature(
            G.two_class_deltas(1.0, dim=2), PROC, centre=0.4, width=0.3, eps=0.1, ts=[1.0, 0.5]
        )
    with pytest.raises(ValueError, match="t_lo < t_hi"):
        G.discrete_optimal_pulse_centre(
            data, PROC, width=0.3, eps=0.1, ts=[1.0, 0.5], t_lo=0.5, t_hi=0.2
        )


def test_jit_vmap_grad_on_public_functions(key):
    data = G.two_class_deltas(1.0)
    f = jax.jit(lambda t: G.guidance_susceptibility_theory(1.0, 0.0, t, process=PROC))
    ts = jnp.array([0.2, 0.4, 0.9])
    np.testing.assert_allclose(
        jax.vmap(f)(ts), G.guidance_susceptibility_theory(1.0, 0.0, ts), rtol=1e-12
    )
    x = jax.random.normal(key, (5, 1))
    s_jit = jax.jit(lambda x, t: data.score(PROC, x, t, 0))(x, 0.3)
    np.testing.assert_allclose(s_jit, data.score(PROC, x, 0.3, 0), rtol=1e-12)
    g = jax.grad(lambda e: G.pulse_response_theory(1.0, 0.0, 0.35, e, kind="euler"))(0.0)
    np.testing.assert_allclose(g, ob.class_susceptibility_theory(1.0, 0.0, 0.35), rtol=1e-10)
