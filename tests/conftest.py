"""Shared fixtures. The suite runs with float64 enabled; float32 tests request float32 arrays
explicitly (weakly typed Python scalars follow the array dtype)."""

import contextlib
import gc
import importlib
import os
import shutil
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")

# JAX's persistent compilation cache, shared by the xdist workers of one run and by the
# subprocesses the suite starts (the CLI and the notebooks read GLTHEORY_CACHE_DIR): a program
# that one worker or one test module compiled is loaded, not compiled again, after the
# per-module cache clearing below. A fresh directory per run unless GLTHEORY_CACHE_DIR is set
# (set it to keep the cache between runs: the second run then compiles almost nothing). The
# xdist workers inherit the controller's environment, so they share its directory.
_OWN_CACHE = "GLTHEORY_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["GLTHEORY_CACHE_DIR"] = tempfile.mkdtemp(prefix="gltheory-test-cache-")

# Two ways to run the suite (README "Tests"):
# - the default, quick mode (the README test command): XLA:CPU at backend optimisation level 1
#   (compilation, which dominates the suite's time, costs about a sixth less; the programs
#   compute the same IEEE operations) and no run-time type checking;
# - the checked mode, GLTHEORY_TEST_CHECKED=1 (run by .ci/run after the quick mode): XLA's
#   default optimisation, exactly as users run it, and every call the suite makes into the
#   modules below checked against its jaxtyping annotations (beartype).
CHECKED_RUN = os.environ.get("GLTHEORY_TEST_CHECKED", "") not in ("", "0")
# The quick mode's XLA:CPU flags: LLVM at optimisation level 1, and XLA's classic elemental
# emitters instead of the newer MLIR fusion emitters. Together they compile the package's
# programs in 0.43 of the default time (level 1 alone: 0.75; benchmarks/bench_compile_flags.py),
# and the numbers agree with the default's to round-off (largest relative difference 5e-16 there).
QUICK_XLA_FLAGS = ("--xla_backend_optimization_level=1", "--xla_cpu_use_fusion_emitters=false")
if not CHECKED_RUN:
    _flags = os.environ.get("XLA_FLAGS", "")
    for _flag in QUICK_XLA_FLAGS:
        if _flag.split("=")[0] not in _flags:
            _flags += " " + _flag
    os.environ["XLA_FLAGS"] = _flags.strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402

# In the checked mode the core and topic modules' jaxtyping annotations are checked at run time
# (beartype) on every call made by the suite, as diffrax's tests do; the hook must wrap the
# first import of each module. gltheory imports most topic namespaces lazily (on first attribute access), so each
# checked module is imported here explicitly, under the hook.
CHECKED_MODULES = (
    "gltheory.processes",
    "gltheory.data",
    "gltheory.scores",
    "gltheory.solvers",
    "gltheory.sampling",
    "gltheory.meanfield",
    "gltheory.bath",
    "gltheory.exponents",
    "gltheory.observables",
    "gltheory.spectral",
    "gltheory.latestart",
    "gltheory.lattice",
    "gltheory.patch",
    "gltheory.field",
    "gltheory.criticality",
    "gltheory.thermo",
    "gltheory.schedules",
    "gltheory.distributed",
    "gltheory.spatial",
    "gltheory.ornstein_zernike",
    "gltheory.guidance.classes",
    "gltheory.guidance.schedules",
    "gltheory.guidance.theory",
    "gltheory.guidance.measure",
    "gltheory.nets.datasets",
    "gltheory.nets.models",
    "gltheory.nets.training",
    "gltheory.nets.measure",
)
_hook = (
    install_import_hook(CHECKED_MODULES, "beartype.beartype")
    if CHECKED_RUN
    else contextlib.nullcontext()
)
with _hook:
    import gltheory as gl  # noqa: E402

    for _name in CHECKED_MODULES:
        importlib.import_module(_name)

gl.config.enable_compilation_cache()  # the directory chosen above


def pytest_sessionfinish(session):
    """Remove the run's own compilation cache once every worker is done (controller only)."""
    if _OWN_CACHE and not hasattr(session.config, "workerinput"):
        shutil.rmtree(os.environ["GLTHEORY_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled executables after each test module.

    Every XLA:CPU executable keeps a few memory mappings for its code, and the suite compiles
    tens of thousands of programs: in one process that runs into the kernel's
    ``vm.max_map_count`` (65 530 by default) and the next compilation segfaults. Clearing the
    caches keeps the count (and the RSS) bounded, but it costs: every module then re-traces
    and re-compiles (or reloads) the library functions and the small eager operations it
    shares with the modules before it. So the caches are cleared only once the process holds
    more than a third of the limit in mappings (always where the count cannot be read)."""
    yield
    if _map_count() > _MAP_COUNT_CLEAR:
        jax.clear_caches()
        gc.collect()


_MAP_COUNT_CLEAR = 20_000


def _map_count() -> int:
    """Memory mappings of this process (Linux); a number above the threshold elsewhere."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return _MAP_COUNT_CLEAR + 1


@pytest.fixture
def key():
    return jax.random.PRNGKey(20261123)


def all_processes():
    return [
        gl.OU(),
        gl.VP(),
        gl.VP("cosine"),
        gl.VE(),
        gl.VE("edm"),
    ]


def closed_form_datasets():
    k = jax.random.PRNGKey(7)
    k1, k2, k3 = jax.random.split(k, 3)
    return {
        "two_point_1d": gl.TwoPoint(1.0, weight=0.7),
        "two_point_3d": gl.TwoPoint(jnp.array([0.5, -1.0, 0.8]), weight=0.35),
        "delta_mixture": gl.DeltaMixture(
            jax.random.normal(k1, (5, 3)), jnp.array([0.1, 0.2, 0.3, 0.15, 0.25])
        ),
        "gaussian": gl.Gaussian(
            jnp.array([0.3, -1.0, 2.0]),
            jnp.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]]),
        ),
        "gaussian_mixture_iso": gl.GaussianMixture(
            jax.random.normal(k2, (4, 3)), jnp.array([0.5, 1.0, 0.1, 2.0])
        ),
        "gaussian_mixture_diag": gl.GaussianMixture(
            jax.random.normal(k3, (3, 3)),
            jnp.array([[0.5, 1.0, 0.2], [1.5, 0.3, 0.7], [0.2, 0.2, 0.9]]),
            jnp.array([0.5, 0.3, 0.2]),
        ),
        "hypersphere_3": gl.Hypersphere(2.0, 3),
        "hypersphere_50": gl.Hypersphere(jnp.sqrt(50.0), 50),
        "lattice_stripes": gl.data.stripes((4, 4), width=1),
    }
