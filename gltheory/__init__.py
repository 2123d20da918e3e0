"""gltheory: the statistical-physics theory of generative diffusion as pure, jitted JAX."""

from .data import (
    AbstractData as AbstractData,
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
from .scores import (
    FLOAT32_T_MIN as FLOAT32_T_MIN,
    denoiser as denoiser,
    log_prob as log_prob,
    posterior_cov as posterior_cov,
    score as score,
    uniform_patch_score as uniform_patch_score,
)

__version__ = "0.1.0"
from .sampling import (
    METHODS as METHODS,
    Solution as Solution,
    sample as sample,
    sample_diffrax as sample_diffrax,
    time_grid as time_grid,
    trajectory_keys as trajectory_keys,
    trajectory_noise as trajectory_noise,
)
