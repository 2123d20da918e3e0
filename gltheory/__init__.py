"""gltheory: the statistical-physics theory of generative diffusion as pure, jitted JAX."""

from .data import (
    AbstractData as AbstractData,
)
from .data import (
    AbstractFiniteSet as AbstractFiniteSet,
)
from .data import (
    DeltaMixture as DeltaMixture,
)
from .data import (
    Gaussian as Gaussian,
)
from .data import (
    GaussianMixture as GaussianMixture,
)
from .data import (
    Hypersphere as Hypersphere,
)
from .data import (
    LatticeImages as LatticeImages,
)
from .data import (
    TwoPoint as TwoPoint,
)
from .data import (
    checkerboards as checkerboards,
)
from .data import (
    random_binary_images as random_binary_images,
)
from .data import (
    stripes as stripes,
)
from .data import (
    uniform_images as uniform_images,
)
from .processes import (
    OU as OU,
)
from .processes import (
    VE as VE,
)
from .processes import (
    VP as VP,
)
from .processes import (
    AbstractProcess as AbstractProcess,
)
from .processes import (
    alpha_bar_from_ou_time as alpha_bar_from_ou_time,
)
from .processes import (
    alpha_bar_from_sigma as alpha_bar_from_sigma,
)
from .processes import (
    ou_time_from_alpha_bar as ou_time_from_alpha_bar,
)
from .processes import (
    sigma_from_alpha_bar as sigma_from_alpha_bar,
)
from .scores import (
    FLOAT32_T_MIN as FLOAT32_T_MIN,
)
from .scores import (
    denoiser as denoiser,
)
from .scores import (
    log_prob as log_prob,
)
from .scores import (
    posterior_cov as posterior_cov,
)
from .scores import (
    score as score,
)
from .scores import (
    uniform_patch_score as uniform_patch_score,
)

__version__ = "0.1.0"
from .bath import (
    CW_CRITICAL_BINDER as CW_CRITICAL_BINDER,
)
from .bath import (
    BathField as BathField,
)
from .bath import (
    bath_action as bath_action,
)
from .bath import (
    bath_binder_crossing as bath_binder_crossing,
)
from .bath import (
    bath_field as bath_field,
)
from .bath import (
    bath_gibbs as bath_gibbs,
)
from .bath import (
    bath_langevin as bath_langevin,
)
from .bath import (
    bath_saddle_point as bath_saddle_point,
)
from .latestart import (
    LateStartFraction as LateStartFraction,
)
from .latestart import (
    gaussian_late_start as gaussian_late_start,
)
from .latestart import (
    late_start_fraction as late_start_fraction,
)
from .latestart import (
    late_start_kl as late_start_kl,
)
from .latestart import (
    late_start_moments as late_start_moments,
)
from .latestart import (
    late_start_sample as late_start_sample,
)
from .meanfield import (
    CriticalTimes as CriticalTimes,
)
from .meanfield import (
    ExponentFit as ExponentFit,
)
from .meanfield import (
    FixedPoints as FixedPoints,
)
from .meanfield import (
    bifurcation_diagram as bifurcation_diagram,
)
from .meanfield import (
    criterion_values as criterion_values,
)
from .meanfield import (
    critical_times as critical_times,
)
from .meanfield import (
    curie_weiss_landau as curie_weiss_landau,
)
from .meanfield import (
    curie_weiss_magnetization as curie_weiss_magnetization,
)
from .meanfield import (
    curie_weiss_susceptibility as curie_weiss_susceptibility,
)
from .meanfield import (
    fit_exponent as fit_exponent,
)
from .meanfield import (
    fixed_points as fixed_points,
)
from .meanfield import (
    generative_potential as generative_potential,
)
from .meanfield import (
    landau_coefficients as landau_coefficients,
)
from .meanfield import (
    meanfield_exponents as meanfield_exponents,
)
from .meanfield import (
    posterior_top_eigenvalue as posterior_top_eigenvalue,
)
from .meanfield import (
    potential_curvature as potential_curvature,
)
from .meanfield import (
    time_conversions as time_conversions,
)
from .sampling import (
    METHODS as METHODS,
)
from .sampling import (
    Solution as Solution,
)
from .sampling import (
    default_noise_block as default_noise_block,
)
from .sampling import (
    sample as sample,
)
from .sampling import (
    sample_diffrax as sample_diffrax,
)
from .sampling import (
    time_grid as time_grid,
)
from .sampling import (
    trajectory_keys as trajectory_keys,
)
from .sampling import (
    trajectory_noise as trajectory_noise,
)
