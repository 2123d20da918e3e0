"""gltheory: the statistical-physics theory of generative diffusion as pure, jitted JAX.

The top level holds the everyday names (processes, datasets, exact scores, the sampler and
its solvers, critical times, the patch machines); every topic is a namespace:
``gl.processes``, ``gl.data``, ``gl.scores``, ``gl.solvers``, ``gl.sampling``,
``gl.meanfield``, ``gl.bath``, ``gl.observables``, ``gl.patch``, ``gl.spectral``,
``gl.field``, ``gl.criticality``, ``gl.thermo``, ``gl.latestart``, ``gl.schedules``, ``gl.guidance``,
``gl.nets``, ``gl.distributed``, ``gl.exponents``, ``gl.spatial``, ``gl.ornstein_zernike``.
``import gltheory`` loads neither the report, its experiments, the plotting
helpers nor matplotlib (``gltheory.report`` and ``gltheory.experiments`` are imported
explicitly, as the ``gltheory`` command does).
"""

import importlib
import importlib.metadata
from typing import TYPE_CHECKING

from . import (
    config as config,
    data as data,
    meanfield as meanfield,
    patch as patch,
    processes as processes,
    sampling as sampling,
    scores as scores,
    solvers as solvers,
)
from .data import (
    AbstractData as AbstractData,
    DeltaMixture as DeltaMixture,
    Gaussian as Gaussian,
    GaussianMixture as GaussianMixture,
    Hypersphere as Hypersphere,
    LatticeImages as LatticeImages,
    TwoPoint as TwoPoint,
)
from .meanfield import CriticalTimes as CriticalTimes, critical_times as critical_times
from .patch import (
    ELS as ELS,
    ES as ES,
    IS as IS,
    LS as LS,
    BoundaryELS as BoundaryELS,
)
from .processes import OU as OU, VE as VE, VP as VP, AbstractProcess as AbstractProcess
from .sampling import (
    Solution as Solution,
    sample as sample,
    time_grid as time_grid,
    trajectory_keys as trajectory_keys,
)
from .scores import (
    denoiser as denoiser,
    log_prob as log_prob,
    posterior_cov as posterior_cov,
    score as score,
)
from .solvers import (
    DDIM as DDIM,
    AbstractSolver as AbstractSolver,
    EDMHeun as EDMHeun,
    EulerMaruyama as EulerMaruyama,
    Heun as Heun,
    LambdaEulerMaruyama as LambdaEulerMaruyama,
    PredictorCorrector as PredictorCorrector,
    StochasticHeun as StochasticHeun,
)

# Topic namespaces that no top-level name needs are imported on first access (PEP 562), so
# that `import gltheory` costs little more than its dependencies (benchmarks/bench_import.py);
# `gl.thermo`, `from gltheory import thermo` and `import gltheory.thermo` all work as usual.
_LAZY_TOPICS = (
    "bath",
    "criticality",
    "distributed",
    "exponents",
    "field",
    "guidance",
    "latestart",
    "nets",
    "observables",
    "ornstein_zernike",
    "schedules",
    "spatial",
    "spectral",
    "thermo",
)

if TYPE_CHECKING:  # static tools see the namespaces as ordinary imports
    from . import (  # noqa: F401
        bath,
        criticality,
        distributed,
        exponents,
        field,
        guidance,
        latestart,
        nets,
        observables,
        ornstein_zernike,
        schedules,
        spatial,
        spectral,
        thermo,
    )


def __getattr__(name: str):
    if name in _LAZY_TOPICS:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_TOPICS))


__version__ = importlib.metadata.version("gltheory")
"""The installed version (one source: ``pyproject.toml``)."""

__all__ = [
    # processes
    "OU",
    "VP",
    "VE",
    "AbstractProcess",
    # datasets
    "AbstractData",
    "DeltaMixture",
    "TwoPoint",
    "Gaussian",
    "GaussianMixture",
    "Hypersphere",
    "LatticeImages",
    # exact scores
    "score",
    "denoiser",
    "log_prob",
    "posterior_cov",
    # sampling and solvers
    "sample",
    "time_grid",
    "trajectory_keys",
    "Solution",
    "AbstractSolver",
    "EulerMaruyama",
    "LambdaEulerMaruyama",
    "PredictorCorrector",
    "StochasticHeun",
    "Heun",
    "DDIM",
    "EDMHeun",
    # critical times
    "critical_times",
    "CriticalTimes",
    # patch machines
    "IS",
    "ES",
    "LS",
    "ELS",
    "BoundaryELS",
    # namespaces
    "config",
    "processes",
    "data",
    "scores",
    "solvers",
    "sampling",
    "meanfield",
    "bath",
    "observables",
    "patch",
    "spectral",
    "field",
    "criticality",
    "thermo",
    "latestart",
    "schedules",
    "guidance",
    "nets",
    "distributed",
    "ornstein_zernike",
    "exponents",
    "spatial",
    "__version__",
]
