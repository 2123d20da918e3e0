"""gltheory: the statistical-physics theory of generative diffusion as pure, jitted JAX."""

from .bath import (
    CW_CRITICAL_BINDER as CW_CRITICAL_BINDER,
    BathField as BathField,
    bath_action as bath_action,
    bath_binder_crossing as bath_binder_crossing,
    bath_field as bath_field,
    bath_gibbs as bath_gibbs,
    bath_langevin as bath_langevin,
    bath_saddle_point as bath_saddle_point,
)
from .data import (
    AbstractData as AbstractData,
    AbstractFiniteSet as AbstractFiniteSet,
    DeltaMixture as DeltaMixture,
    Gaussian as Gaussian,
    GaussianMixture as GaussianMixture,
    Hypersphere as Hypersphere,
    LatticeImages as LatticeImages,
    TwoPoint as TwoPoint,
    checkerboards as checkerboards,
    random_binary_images as random_binary_images,
    stripes as stripes,
    uniform_images as uniform_images,
)
from .latestart import (
    LateStartFraction as LateStartFraction,
    gaussian_late_start as gaussian_late_start,
    late_start_fraction as late_start_fraction,
    late_start_kl as late_start_kl,
    late_start_moments as late_start_moments,
    late_start_sample as late_start_sample,
)
from .meanfield import (
    CriticalTimes as CriticalTimes,
    ExponentFit as ExponentFit,
    FixedPoints as FixedPoints,
    bifurcation_diagram as bifurcation_diagram,
    criterion_values as criterion_values,
    critical_times as critical_times,
    curie_weiss_landau as curie_weiss_landau,
    curie_weiss_magnetization as curie_weiss_magnetization,
    curie_weiss_susceptibility as curie_weiss_susceptibility,
    fit_exponent as fit_exponent,
    fixed_points as fixed_points,
    generative_potential as generative_potential,
    landau_coefficients as landau_coefficients,
    meanfield_exponents as meanfield_exponents,
    posterior_top_eigenvalue as posterior_top_eigenvalue,
    potential_curvature as potential_curvature,
    time_conversions as time_conversions,
)
from .observables import (
    PHI_SPECIATION as PHI_SPECIATION,
    R_PEAK_SHIFT as R_PEAK_SHIFT,
    R_PEAK_VALUE as R_PEAK_VALUE,
    Bimodality as Bimodality,
    CloningEstimate as CloningEstimate,
    ResponseEstimate as ResponseEstimate,
    bimodality as bimodality,
    class_fraction_response as class_fraction_response,
    class_susceptibility_peak as class_susceptibility_peak,
    class_susceptibility_theory as class_susceptibility_theory,
    cloning_probability as cloning_probability,
    cloning_probability_theory as cloning_probability_theory,
    kick_response as kick_response,
    magnetization_observable as magnetization_observable,
    sign_classifier as sign_classifier,
)
from .processes import (
    OU as OU,
    VE as VE,
    VP as VP,
    AbstractProcess as AbstractProcess,
    alpha_bar_from_ou_time as alpha_bar_from_ou_time,
    alpha_bar_from_sigma as alpha_bar_from_sigma,
    ou_time_from_alpha_bar as ou_time_from_alpha_bar,
    sigma_from_alpha_bar as sigma_from_alpha_bar,
)
from .sampling import (
    METHODS as METHODS,
    Solution as Solution,
    default_noise_block as default_noise_block,
    sample as sample,
    sample_diffrax as sample_diffrax,
    time_grid as time_grid,
    trajectory_keys as trajectory_keys,
    trajectory_noise as trajectory_noise,
)
from .scores import (
    FLOAT32_T_MIN as FLOAT32_T_MIN,
    denoiser as denoiser,
    log_prob as log_prob,
    posterior_cov as posterior_cov,
    score as score,
    uniform_patch_score as uniform_patch_score,
)

__version__ = "0.1.0"
