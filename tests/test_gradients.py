"""Gradients of the public API against central finite differences (float64), and the refusals.

- ``DIFFERENTIABLE``: one scalar function of one continuous parameter per case (a sample
  argument set of a public entry point, reduced to a scalar); ``jax.grad`` (``REVERSE``) or
  ``jax.jvp`` with a unit tangent (the closed forms and quadratures) must equal the
  central difference $(f(\\theta+h)-f(\\theta-h))/2h$ to the stated relative tolerance at each
  listed point. Root finding and 1-D optimisation inside these functions are differentiated by
  the implicit-function theorem (optimistix), so the derivatives are exact, not derivatives of
  the iterations (issue 15: the two reproducers are the first cases).
- ``REFUSING``: entry points whose output has no derivative; ``jax.grad`` must raise (never
  return a silent zero).
- ``EXEMPT``: every other public callable, with the reason it is not walked.
``test_registry_covers_public_api`` checks that the three lists cover the public API.

The suite enables float64 globally (``conftest.py``); the cases use float64 inputs. Sizes are
tiny and shapes shared so that the fast tier of this file stays near a minute of CPU; the cases
in ``SLOW`` (root finders with large compiled programs, whose claim a fast case also covers:
the implicit derivative of a bracketed maximiser) run in the slow tier (``pytest -m slow``).
"""

import inspect

import jax
import jax.numpy as jnp
import pytest

import gltheory as gl

G = gl.guidance
OU = gl.OU()
NAMESPACES = (
    "meanfield",
    "bath",
    "observables",
    "spectral",
    "field",
    "criticality",
    "thermo",
    "latestart",
    "guidance",
    "patch",
    "nets",
    "exponents",
    "spatial",
    "ornstein_zernike",
    "schedules",
    "distributed",
)
H = 1e-3  # central differences at h and h/2, Richardson-extrapolated: O(h^4) + O(eps/h)


def _ts(n=24):
    return jnp.linspace(2.0, 0.1, n + 1)


D1 = gl.TwoPoint(1.0)
X1 = jnp.array([0.3])
MIX = gl.GaussianMixture(jnp.array([[1.0], [-1.0]]), 0.2)
GLC = gl.field.gl_constants_two_image(3, 1)
PULSE_TS = _ts(8)
CLASSES = G.two_class_deltas(1.0)


def _score1(x, t):  # exact score of D1 on a 1-D lattice of 4 sites (sites independent)
    return gl.score(D1, OU, x[:, None], t)[:, 0]


X4 = jnp.array([0.3, -0.2, 0.1, 0.4])
# a Gaussian on a ring of 4 sites with nearest-neighbour correlation (a response that spreads)
RING = gl.Gaussian(
    jnp.zeros(4), jnp.eye(4) + 0.3 * (jnp.roll(jnp.eye(4), 1, 0) + jnp.roll(jnp.eye(4), -1, 0))
)


def _score_ring(x, t):
    return gl.score(RING, OU, x, t)


def _tc_jacobian(mu):
    data = gl.TwoPoint(mu)
    x0 = jnp.zeros(data.event_shape)
    return gl.spectral.jacobian_critical_time(
        lambda x, t: gl.score(data, OU, x, t), x0, OU, 0.01, 5.0
    )


def _opt_centre(m):
    c, _ = G.optimal_pulse_centre(
        m, 0.1, width=0.3, shape="smooth", process=OU, ts=_ts(), t_lo=0.15, t_hi=1.2, n_grid=15
    )
    return c


def _disc_centre(w, shape="smooth"):
    c, _, _ = G.discrete_optimal_pulse_centre(
        CLASSES, OU, width=w, eps=0.1, ts=_ts(), t_lo=0.15, t_hi=1.2, shape=shape,
        n_grid=5, n_zoom=2, n_x=81,
    )  # fmt: skip
    return c


def _curve_peak(c):
    t = jnp.linspace(0.2, 1.0, 6)
    v = -((t[:, None] - c) ** 2) * jnp.array([1.0, 1.1, 0.9]) + 0.05 * t[:, None] ** 3
    return G.alignment_curve_peak(t, v, jax.random.key(0), n_boot=8)[0]


def _pulse(c):
    return G.Pulse(c, 0.3, shape="smooth")


def _nu(t):
    return G.two_cluster_guidance_scale(1.0, 0.1, t, process=OU)


PHI6 = jnp.array([0.3, -0.2, 0.1, 0.4, 0.2, -0.1])  # a 1-D lattice of 6 sites (k = 3)
W6 = jnp.arange(1.0, 7.0)  # a fixed weighting: one scalar that depends on every site


# name -> list of (case id, f: float -> scalar, points, rtol)
DIFFERENTIABLE = {
    "spatial.G_of_time": [
        ("ou", lambda t: gl.spatial.G_of_time(OU, t, window=3, lattice_ndim=2), (0.5,), 1e-8),
    ],
    "spatial.time_of_G": [
        ("ou", lambda g: gl.spatial.time_of_G(OU, g, window=3, lattice_ndim=2), (6.8,), 1e-8),
    ],
    "spatial.snr_from_G": [
        ("d2", lambda g: gl.spatial.snr_from_G(g, window=3, lattice_ndim=2), (6.8,), 1e-8),
    ],
    "spatial.G_from_snr": [
        ("d2", lambda r: gl.spatial.G_from_snr(r, window=3, lattice_ndim=2), (0.7,), 1e-8),
    ],
    "spatial.reduced_drift": [
        (
            "G",
            lambda g: (gl.spatial.reduced_drift(PHI6, g, window=3, lattice_ndim=1) * W6).sum(),
            (2.0,),
            1e-8,
        ),
    ],
    "spatial.frozen_score": [
        (
            "t",
            lambda t: (gl.spatial.frozen_score(OU, PHI6, t, window=3, lattice_ndim=1) * W6).sum(),
            (0.6,),
            1e-8,
        ),
    ],
    "schedules.exact_class_fraction": [
        ("mu", lambda m: gl.schedules.exact_class_fraction(OU, m, 0.3, 0.5), (1.2,), 1e-8),
    ],
    "schedules.critical_grid": [
        (
            "weight",
            lambda w: gl.schedules.critical_grid(
                OU, 8, gl.schedules.window_from_times(0.8, 0.3), weight=w
            )[3],
            (0.6,),
            1e-6,
        ),
    ],
    "schedules.local_error_density": [
        (
            "mu",
            lambda m: gl.schedules.local_error_density(OU, jnp.array([0.5, 0.9]), m, 0.3)[0],
            (1.2,),
            1e-6,
        ),
    ],
    "schedules.quadrature_distribution": [
        (
            "mu",
            lambda m: gl.schedules.quadrature_distribution(
                OU, jnp.linspace(2.0, 0.1, 9), m, 0.3, n_cells=64
            )[1][30],
            (1.2,),
            1e-8,
        ),
    ],
    "bath.reduced_distance": [
        ("snr", lambda b: gl.bath.reduced_distance(gl.TwoPoint(1.0), b), (0.8, 1.3), 1e-8),
    ],
    "bath.field_thermo": [
        (
            "energy",
            lambda b: gl.bath.field_thermo(gl.TwoPoint(1.0), b, 50.0, n_grid=513).energy,
            (0.8, 1.3),
            1e-6,
        ),
        (
            "specific_heat",
            lambda b: gl.bath.field_thermo(gl.TwoPoint(1.0), b, 50.0, n_grid=513).specific_heat,
            (1.3,),
            1e-5,
        ),
    ],
    "guidance.pulse_response_theory": [
        (
            "flow",
            lambda e: G.pulse_response_theory(2.0, 0.1, 0.5, e, kind="flow"),
            (0.3, 0.1),
            1e-6,
        ),
    ],
    "observables.class_susceptibility_peak": [
        ("t_star", lambda m: gl.observables.class_susceptibility_peak(m, 0.1)[0], (2.0, 1.0), 1e-6),
    ],
    "guidance.optimal_pulse_centre": [("centre", _opt_centre, (1.0,), 1e-6)],
    "guidance.discrete_optimal_pulse_centre": [("centre", _disc_centre, (0.3,), 1e-6)],
    "guidance.alignment_curve_peak": [("peak", _curve_peak, (0.55,), 1e-6)],
    "spectral.jacobian_critical_time": [("two-point", _tc_jacobian, (1.5,), 1e-6)],
    "bath.binder_crossing": [
        (
            "mu",
            lambda mu: gl.bath.binder_crossing(
                gl.TwoPoint(mu), 100.0, 400.0, (0.5, 1.5), iterations=50, n_grid=65
            ),
            (1.0,),
            1e-6,
        ),
    ],
    "critical_times": [
        (
            "t_score",
            lambda mu: gl.critical_times(gl.TwoPoint(mu), OU, n_grid=32).t_score,
            (1.5,),
            1e-6,
        ),
    ],
    "observables.class_susceptibility_theory": [
        ("t", lambda t: gl.observables.class_susceptibility_theory(1.0, 0.1, t), (0.3, 1.0), 1e-6)
    ],
    "score": [("t", lambda t: gl.score(D1, OU, X1, t)[0], (0.3, 1.0), 1e-6)],
    "meanfield.curie_weiss_magnetization": [
        ("b", lambda b: gl.meanfield.curie_weiss_magnetization(b), (1.5, 3.0), 1e-6)
    ],
    "bath.saddle_point": [
        ("sigma", lambda s: gl.bath.saddle_point(gl.TwoPoint(1.0), s, n_grid=257), (0.6,), 1e-6)
    ],
    # closed forms and quadratures: one point each, tiny sizes
    "denoiser": [("t", lambda t: gl.denoiser(D1, OU, X1, t)[0], (0.5,), 1e-6)],
    "log_prob": [("t", lambda t: gl.log_prob(D1, OU, X1, t), (0.5,), 1e-6)],
    "posterior_cov": [("t", lambda t: gl.posterior_cov(D1, OU, X1, t)[0, 0], (0.5,), 1e-6)],
    "meanfield.criterion_values": [
        ("t", lambda t: gl.meanfield.criterion_values(D1, OU, t)[1], (0.5,), 1e-6)
    ],
    "meanfield.posterior_top_eigenvalue": [
        ("t", lambda t: gl.meanfield.posterior_top_eigenvalue(MIX, OU, t, n_iter=20), (0.5,), 1e-6)
    ],
    "meanfield.time_conversions": [
        ("vp_time", lambda t: gl.meanfield.time_conversions(OU, t)["vp_time"], (0.5,), 1e-6)
    ],
    "meanfield.curie_weiss_susceptibility": [
        ("b", lambda b: gl.meanfield.curie_weiss_susceptibility(b, 0.1), (1.5,), 1e-6)
    ],
    "meanfield.curie_weiss_landau": [
        ("b", lambda b: gl.meanfield.curie_weiss_landau(b)[1], (1.5,), 1e-6)
    ],
    "meanfield.generative_potential": [
        ("t", lambda t: gl.meanfield.generative_potential(D1, OU, X1, t), (0.5,), 1e-6)
    ],
    "meanfield.potential_curvature": [
        ("t", lambda t: gl.meanfield.potential_curvature(D1, OU, t), (0.5,), 1e-6)
    ],
    "meanfield.landau_coefficients": [
        ("t", lambda t: gl.meanfield.landau_coefficients(D1, OU, t)[1], (0.5,), 1e-6)
    ],
    "meanfield.fixed_points": [
        (
            "root",
            lambda t: gl.meanfield.fixed_points(D1, OU, t, n_grid=64).points[0, 0],
            (0.3,),
            1e-6,
        )
    ],
    "bath.action": [("sigma", lambda s: gl.bath.action(D1, s, 0.4), (0.6,), 1e-6)],
    "bath.field": [("m2", lambda s: gl.bath.field(D1, s, 10.0, n_grid=129).m2, (0.6,), 1e-6)],
    "spectral.score_jacobian": [
        ("t", lambda t: gl.spectral.score_jacobian(_score1, X4, t)[0, 0], (0.5,), 1e-6)
    ],
    "spectral.mode_stiffness": [
        (
            "t",
            lambda t: gl.spectral.mode_stiffness(_score1, X4, t, jnp.array([[0.0]]))[0],
            (0.5,),
            1e-6,
        )
    ],
    "spectral.linear_response_length": [
        ("t", lambda t: gl.spectral.linear_response_length(_score_ring, X4, t), (0.5,), 1e-6)
    ],
    "spectral.drift_offset": [
        ("t", lambda t: gl.spectral.drift_offset(OU, t, "sde"), (0.5,), 1e-6)
    ],
    "field.two_image_gl_coefficients": [
        ("alpha_bar", lambda a: gl.field.two_image_gl_coefficients(a, 3, 1).r, (0.5,), 1e-6)
    ],
    "field.gl_coefficients": [
        ("t", lambda t: gl.field.gl_coefficients(GLC, OU, t).u, (0.5,), 1e-6)
    ],
    "field.gl_correlation_length": [
        ("t", lambda t: gl.field.gl_correlation_length(GLC, OU, t), (1.0,), 1e-6)
    ],
    "field.gl_stable_step": [("t", lambda t: gl.field.gl_stable_step(GLC, OU, t), (0.5,), 1e-6)],
    "field.dirichlet_kernel": [("q", lambda q: gl.field.dirichlet_kernel(q, 3), (0.4,), 1e-6)],
    "field.patch_mode_spectrum": [
        (
            "t",
            lambda t: gl.field.patch_mode_spectrum(
                OU, t, jnp.array([[0.5]]), window=3, lattice_shape=(4,)
            )[0],
            (0.5,),
            1e-6,
        )
    ],
    "field.tweedie_denoiser": [
        ("t", lambda t: gl.field.tweedie_denoiser(_score1, OU)(X4, t)[0], (0.5,), 1e-6)
    ],
    "criticality.reduced_distance": [
        ("t", lambda t: gl.criticality.reduced_distance(OU, t, 0.4), (0.5,), 1e-6)
    ],
    "thermo.gaussian_entropy_production_rate": [
        (
            "t",
            lambda t: gl.thermo.gaussian_entropy_production_rate(OU, t, sigma2=0.5),
            (0.5,),
            1e-6,
        )
    ],
    "thermo.entropy_production_rate": [
        ("t", lambda t: gl.thermo.entropy_production_rate(D1, OU, t, n_nodes=41), (0.5,), 1e-6)
    ],
    "thermo.total_entropy_production": [
        (
            "t1",
            lambda t: gl.thermo.total_entropy_production(
                D1, OU, 0.2, t, n_panels=2, order=4, n_nodes=41
            ),
            (0.8,),
            1e-6,
        )
    ],
    "thermo.kl_to_normal": [
        ("t", lambda t: gl.thermo.kl_to_normal(D1, OU, t, n_nodes=41), (0.5,), 1e-6)
    ],
    "thermo.marginal_entropy": [
        ("t", lambda t: gl.thermo.marginal_entropy(D1, OU, t, n_nodes=41), (0.5,), 1e-6)
    ],
    "thermo.collapse_time": [
        ("sigma2", lambda s: gl.thermo.collapse_time(100.0, 2.0, s), (0.3,), 1e-6)
    ],
    "latestart.moments": [("t", lambda t: gl.latestart.moments(D1, OU, t)[1][0, 0], (0.5,), 1e-6)],
    "latestart.kl": [("t", lambda t: gl.latestart.kl(D1, OU, t, n_grid=401), (0.5,), 1e-6)],
    "guidance.guidance_displacement": [
        (
            "centre",
            lambda c: G.guidance_displacement(_pulse(c), OU, PULSE_TS, _nu),
            (0.6,),
            1e-6,
        )
    ],
    "guidance.guidance_scale_at_origin": [
        (
            "mu",
            lambda m: G.guidance_scale_at_origin(G.two_class_deltas(m), OU, PULSE_TS)[3],
            (1.0,),
            1e-6,
        )
    ],
    "guidance.guidance_susceptibility_theory": [
        ("t", lambda t: G.guidance_susceptibility_theory(1.0, 0.1, t, process=OU), (0.5,), 1e-6)
    ],
    "guidance.two_cluster_guidance_scale": [("t", lambda t: _nu(t), (0.5,), 1e-6)],
    "guidance.normalise_pulse": [
        (
            "centre",
            lambda c: G.normalise_pulse(_pulse(c), 0.1, OU, PULSE_TS, _nu).strength,
            (0.6,),
            1e-6,
        )
    ],
    "guidance.pulse_alignment_theory": [
        (
            "centre",
            lambda c: G.pulse_alignment_theory(1.0, 0.1, _pulse(c), process=OU, ts=PULSE_TS),
            (0.6,),
            1e-6,
        )
    ],
    "guidance.pulse_objective_quadrature": [
        (
            "centre",
            lambda c: G.pulse_objective_quadrature(
                CLASSES, OU, centre=c, width=0.3, eps=0.1, ts=PULSE_TS, n_x=81
            ),
            (0.6,),
            1e-6,
        )
    ],
    "guidance.patch_features": [("x", lambda v: G.patch_features(X4 * v, 1)[-1], (1.2,), 1e-6)],
    "observables.cloning_probability_theory": [
        ("t", lambda t: gl.observables.cloning_probability_theory(1.0, 0.1, t), (0.5,), 1e-6)
    ],
    "nets.log_snr_features": [
        ("log_snr", lambda v: gl.nets.log_snr_features(v, 4)[1], (0.7,), 1e-6)
    ],
    "nets.linear_denoiser_loss": [
        (
            "scale",
            lambda v: gl.nets.linear_denoiser_loss(
                jnp.array([[1.0, -1.0, 0.5, 0.2], [-1.0, 1.0, -0.5, 0.1]]) * v, OU, n_nodes=4
            ),
            (1.0,),
            1e-6,
        )
    ],
    "guidance.guidance_scale": [
        (
            "t",
            lambda t: G.guidance_scale(
                lambda x, t: gl.score(D1, OU, x, t), lambda x, t: -x, X1[None], t
            ),
            (0.5,),
            1e-6,
        )
    ],
    "spectral.jacobian_top_eigenvalue": [
        (
            "t",
            lambda t: gl.spectral.jacobian_top_eigenvalue(_score1, X4, t, num_iters=30).value,
            (0.5,),
            1e-6,
        )
    ],
    "spectral.band_stiffness": [
        (
            "t",
            lambda t: gl.spectral.band_stiffness(
                _score1, X4, t, jax.random.key(0), n_bands=2, n_probes=2
            ).mu[0],
            (0.5,),
            1e-6,
        )
    ],
    "latestart.fraction": [
        (
            "t1",
            lambda t: gl.latestart.fraction(D1, OU, 1.0, t1=t, threshold=0.3, n_grid=401).exact,
            (0.5,),
            1e-6,
        )
    ],
    "meanfield.bifurcation_diagram": [
        (
            "root",
            lambda t: gl.meanfield.bifurcation_diagram(D1, OU, jnp.stack([t]), n_grid=64).points[
                0, 0, 0
            ],
            (0.3,),
            1e-6,
        )
    ],
}

# name -> (f: float -> scalar, point, exception types, message fragment)
REFUSING = {
    "bath.critical_snr": (
        lambda m: gl.bath.critical_snr(gl.TwoPoint(m)),
        1.0,
        TypeError,
        "critical_snr returns Python floats",
    ),
    "bath.landau_jump": (
        lambda m: gl.bath.landau_jump(gl.TwoPoint(m)).jump,
        1.0,
        TypeError,
        "landau_jump returns Python floats",
    ),
    "bath.curie_weiss_spins": (
        lambda j: gl.bath.curie_weiss_spins(3, j).weights[0],
        0.5,
        TypeError,
        "curie_weiss_spins returns Python floats",
    ),
    "guidance.optimal_pulse_centre[box]": (
        lambda m: G.optimal_pulse_centre(
            m, 0.1, width=0.3, shape="box", process=OU, ts=_ts(), t_lo=0.15, t_hi=1.2, n_grid=15
        )[0],
        1.0,
        ValueError,
        "optimal_pulse_centre",
    ),
    "guidance.discrete_optimal_pulse_centre[box]": (
        lambda w: _disc_centre(w, shape="box"),
        0.3,
        ValueError,
        "discrete_optimal_pulse_centre",
    ),
    # Python floats (or None) out: refused by name before JAX's ConcretizationTypeError
    "field.criterion_time": (
        lambda c: gl.field.criterion_time(OU, c),
        4.0,
        TypeError,
        "criterion_time returns Python floats",
    ),
    "field.patch_critical_point": (
        lambda t: gl.field.patch_critical_point(OU, window=3, lattice_ndim=1, t_min=t).t_score,
        1e-3,
        TypeError,
        "patch_critical_point returns Python floats",
    ),
    "nets.data_critical_time": (
        lambda v: gl.nets.data_critical_time(jnp.array([[1.0, -1.0], [-1.0, 1.0]]) * v, OU),
        1.0,
        TypeError,
        "data_critical_time returns Python floats",
    ),
    "thermo.dynamical_regimes": (
        lambda s: (
            gl.thermo.dynamical_regimes(
                gl.GaussianMixture(jnp.array([[2.0, 0.0], [-2.0, 0.0]]), jnp.array([s, s])), OU, 100
            ).t_collapse
        ),
        0.5,
        TypeError,
        "dynamical_regimes returns Python floats",
    ),
}

# every other public callable, with the reason it is not walked here
_DISCRETE = "no continuous parameter: integer, string or key arguments only"
_MC = "Monte Carlo/sampler driven by keys: its pathwise derivatives go through sampling.integrate"
_DATA = "a statistic of given samples or curves (differentiable in them, piecewise), not walked"
_ALIAS = "the same function as a walked top-level name"
_BUILD = "builds a dataset or its axes from a given one (differentiate the functions that use it)"
_HOST = (
    "a host-side (NumPy) table or fit of measured values, for reporting: not traceable, so "
    "jax.grad and jax.jit stop at its conversion to NumPy (JAX's concretization error)"
)
_SCHED_GRAD = (
    "its gradient is checked against central differences in tests/test_schedules.py "
    "(test_quadrature_bias_gradient_matches_finite_differences: the quadrature and the bias)"
)
_ROUGH = (
    "piecewise in its inputs (|e(t)| and an interpolated inverse CDF): the forward derivative "
    "matches central differences only at h <= 1e-4 (0.10478 against 0.10522 and 0.10382 at "
    "h = 1e-5, 1e-6; n_ref = 128, mu = 1.2), not at this walk's h = 1e-3"
)
_FIT = (
    "an optimiser's loop (optax) whose result is a fitted window: differentiate its objective "
    "(schedules.class_fraction_bias) instead"
)
_PLUMBING = "multi-process plumbing (meshes, bytes, index ranges): no continuous parameter"
_GROUPS = {
    _HOST: """bath.fss_field bath.binder_crossings bath.collapse_quality bath.fss_collapse
        bath.fss_collapse_pairs bath.fss_collapse_scan bath.fit_critical_fss
        spatial.lattice_statistics spatial.integrated_autocorrelation_time
        spatial.lattice_binder_crossings spatial.fss_exponent spatial.k_collapse
        spatial.universality_verdict spatial.fss_analysis ornstein_zernike.oz_fit
        ornstein_zernike.eta_fit ornstein_zernike.fit_divergence ornstein_zernike.lattice_relations
        ornstein_zernike.ginzburg_distance ornstein_zernike.hartree_coupling
        ornstein_zernike.linear_correlation_length ornstein_zernike.linear_structure_factor
        schedules.window_from_data distributed.gather_rows distributed.block_sums
        distributed.combine_blocks distributed.gather_blocks distributed.mean_se
        distributed.binder distributed.fraction distributed.ensemble_mean
        distributed.ensemble_histogram distributed.ensemble_binder distributed.ensemble_fraction""",
    _SCHED_GRAD: "schedules.quadrature_class_fraction schedules.class_fraction_bias",
    _ROUGH: "schedules.sqrt_error_grid",
    _FIT: "schedules.tune_window",
    _PLUMBING: """distributed.initialize distributed.is_writer distributed.check_same_config
        distributed.config_digest distributed.global_mesh distributed.local_mesh
        distributed.allgather_bytes distributed.process_range""",
    _MC: """sample bath.langevin bath.gibbs observables.cloning_probability
        observables.kick_response observables.class_fraction_response thermo.entropy_production_rate_mc
        thermo.kl_to_normal_mc thermo.marginal_entropy_mc thermo.late_start_kl_mc
        thermo.trajectory_entropy thermo.integral_fluctuation_theorem
        thermo.detailed_fluctuation_theorem thermo.franz_parisi_potential thermo.franz_parisi_scan
        thermo.franz_parisi_empirical thermo.excess_entropy thermo.collapse_time_estimate
        latestart.gaussian_late_start latestart.sample guidance.edm_guided_sample
        guidance.learn_pulse guidance.physics_aware_sample guidance.pulse_alignment
        guidance.pulse_objective_samples guidance.pulse_scan guidance.random_pulse_centres
        guidance.paired_difference criticality.trajectory_states criticality.denoised_fields
        criticality.stiffness_curves criticality.softening_time criticality.xi_peak_time
        criticality.cloning_time criticality.langevin_structure_factor field.compare_gl_exact
        field.domain_length_scaling nets.train nets.compare_with_machines nets.score_criticality
        nets.init_train_state nets.dsm_loss nets.denoising_loss bath.tempered_langevin
        bath.fss_scan exponents.measure_beta exponents.measure_gamma exponents.measure_delta
        exponents.measure_jump exponents.measure_znu exponents.transverse_susceptibility
        exponents.exponent_table exponents.universality exponents.family_fss
        exponents.universality_fss spatial.frozen_langevin spatial.lattice_langevin
        spatial.equilibration_plan ornstein_zernike.gaussian_field schedules.window_from_score
        schedules.online_sample distributed.sample_split
        distributed.ensemble_cloning""",
    _DISCRETE: """time_grid trajectory_keys spectral.lattice_wavevectors spectral.plane_wave
        field.gl_constants_two_image field.lattice_laplacian nets.digits_images
        nets.make_optimizer nets.save_checkpoint nets.load_checkpoint meanfield.meanfield_exponents
        observables.sign_classifier observables.magnetization_observable
        field.structure_factor_observer thermo.exact_score_fn thermo.exact_log_prob_fn
        guidance.guided_denoiser nets.linear_denoiser guidance.count_guided_evaluations patch.bank
        guidance.edm_sigmas guidance.class_deltas guidance.class_gaussians guidance.class_lattice
        guidance.two_class_deltas guidance.two_class_gaussians bath.critical_binder
        ornstein_zernike.window_q2""",
    _DATA: """meanfield.fit_exponent criticality.first_crossing criticality.peak_time
        criticality.fit_divergence criticality.binder_crossings criticality.scale_collapse
        criticality.collapse_quality criticality.fit_collapse field.structure_factor
        field.correlation_function field.radial_average field.correlation_length
        field.domain_statistics field.peak_wavevector field.increment_structure_factor
        observables.bimodality thermo.local_minima thermo.franz_parisi_difference
        spectral.patch_covariance spectral.windowed_patch_covariance
        spectral.critical_alpha_bar field.gl_constants patch.score patch.denoiser
        patch.posterior_stats bath.bath_statistics bath.relaxation_time bath.fit_exponent_rule
        bath.fit_jump bath.fit_scaling bath.scaling_relations""",
    _ALIAS: "meanfield.critical_times",
    _BUILD: """bath.with_negatives bath.order_parameter_axes exponents.universality_families
        schedules.soft_mode schedules.window_from_times schedules.window_from_estimate""",
}
EXEMPT = {name: reason for reason, names in _GROUPS.items() for name in names.split()}


def _registered_name(case_name):
    return case_name.split("[")[0]


def _public_callables():
    out = {}
    for ns in ("",) + NAMESPACES:
        mod = gl if not ns else getattr(gl, ns)
        names = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
        for n in names:
            obj = getattr(mod, n)
            if callable(obj) and not inspect.ismodule(obj):
                out[f"{ns}.{n}" if ns else n] = obj
    return out


# slow tier (``pytest -m slow``): cases with large compiled programs (5-35 s each on a CPU)
# whose claim a fast case also makes. Root finders and grid + zoom maximisers: the implicit
# derivative of an iterated maximiser or root is tested fast by class_susceptibility_peak and
# pulse_response_theory (the issue's two cases); the others by the fast case named.
SLOW = {
    "guidance.discrete_optimal_pulse_centre": "class_susceptibility_peak",
    "guidance.optimal_pulse_centre": "class_susceptibility_peak",
    "guidance.alignment_curve_peak": "class_susceptibility_peak",
    "bath.binder_crossing": "class_susceptibility_peak",
    "critical_times": "class_susceptibility_peak",
    "spectral.jacobian_critical_time": "class_susceptibility_peak",
    "meanfield.fixed_points": "class_susceptibility_peak",
    "meanfield.bifurcation_diagram": "class_susceptibility_peak",
    "meanfield.landau_coefficients": "meanfield.potential_curvature",
    "meanfield.curie_weiss_susceptibility": "meanfield.curie_weiss_magnetization",
    "spectral.jacobian_top_eigenvalue": "meanfield.posterior_top_eigenvalue (power iteration)",
    "spectral.band_stiffness": "spectral.mode_stiffness",
    "latestart.fraction": "latestart.kl (the same quadrature)",
    "thermo.total_entropy_production": "thermo.entropy_production_rate",
    "bath.field": "bath.saddle_point (the same quadrature)",
    "guidance.pulse_objective_quadrature": "guidance.guidance_displacement, normalise_pulse",
    "guidance.discrete_optimal_pulse_centre[box]": "optimal_pulse_centre[box] (no_derivative)",
    "guidance.guidance_susceptibility_theory": "observables.class_susceptibility_theory",
    "guidance.guidance_scale_at_origin": "guidance.two_cluster_guidance_scale",
    "guidance.pulse_alignment_theory": "guidance.pulse_response_theory",
}

# reverse mode (jax.grad) for the iterated maximisers and roots, whose implicit adjoints must
# transpose; forward mode (jax.jvp, one tangent: one compiled program instead of two) for the
# closed forms and quadratures
REVERSE = {
    "guidance.pulse_response_theory",
    "observables.class_susceptibility_peak",
    "score",
} | {name for name in SLOW if name in DIFFERENTIABLE}

CASES = [
    pytest.param(
        f,
        x,
        rtol,
        name in REVERSE,
        id=f"{name}-{cid}-{x}",
        marks=[pytest.mark.slow] if name in SLOW else [],
    )
    for name, cases in DIFFERENTIABLE.items()
    for cid, f, points, rtol in cases
    for x in points
]


@pytest.mark.parametrize("f,x,rtol,reverse", CASES)
def test_gradient_matches_central_difference(f, x, rtol, reverse):
    assert jax.config.jax_enable_x64
    x = jnp.float64(x)
    if reverse:
        g = float(jax.grad(f)(x))
    else:
        g = float(jax.jvp(f, (x,), (jnp.float64(1.0),))[1])

    def central(h):
        return (f(x + h) - f(x - h)) / (2 * h)

    fd = float((4 * central(H / 2) - central(H)) / 3)
    assert g == pytest.approx(fd, rel=rtol, abs=1e-10)


def test_issue_15_reproducers():
    """The two cases of issue 15 against their central differences (0.27517, 0.4884; here to
    7 digits, from h = 1e-3..1e-6), 1e-5 relative. Before the fix: 0.3250 and 0.0."""
    g = jax.grad(lambda e: G.pulse_response_theory(2, 0.1, 0.5, e, kind="flow"))(0.3)
    assert float(g) == pytest.approx(0.2751744, rel=1e-5)
    g = jax.grad(lambda m: gl.observables.class_susceptibility_peak(m, 0.1)[0])(2.0)
    assert float(g) == pytest.approx(0.4883483, rel=1e-5)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in sorted(REFUSING)],
)
def test_non_differentiable_entry_points_refuse(name):
    f, x, exc, fragment = REFUSING[name]
    f(jnp.float64(x))  # the value itself is available
    with pytest.raises(exc, match=fragment):
        jax.grad(f)(jnp.float64(x))


def test_registry_covers_public_api():
    listed = set(DIFFERENTIABLE) | {_registered_name(n) for n in REFUSING} | set(EXEMPT)
    # classes (processes, datasets, solvers, result containers) are differentiated through the
    # functions that use them
    public = {n for n, obj in _public_callables().items() if not inspect.isclass(obj)}
    assert not sorted(public - listed), "public callables missing from the gradient registry"
    assert not sorted(listed - public), "registry names that are not public callables"
    assert not sorted(set(SLOW) - set(DIFFERENTIABLE) - set(REFUSING))
    for name, reason in EXEMPT.items():
        assert isinstance(reason, str) and len(reason) > 10, name
