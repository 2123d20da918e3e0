"""gltheory: the statistical-physics theory of generative diffusion as pure, jitted JAX."""

from .data import (
    AbstractData as AbstractData,
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
