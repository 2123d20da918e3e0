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

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402

# The core and topic modules' jaxtyping annotations are checked at run time (beartype) on every
# call made by the suite, as diffrax's tests do; the hook must wrap the first import of each
# module. gltheory imports most topic namespaces lazily (on first attribute access), so each
# checked module is imported here explicitly, under the hook.
CHECKED_MODULES = (
    "gltheory.processes",
    "gltheory.data",
    "gltheory.scores",
    "gltheory.solvers",
    "gltheory.sampling",
    "gltheory.meanfield",
    "gltheory.bath",
    "gltheory.observables",
    "gltheory.spectral",
    "gltheory.latestart",
    "gltheory.lattice",
    "gltheory.patch",
    "gltheory.field",
    "gltheory.criticality",
    "gltheory.thermo",
    "gltheory.schedules",
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
    contextlib.nullcontext()
    if os.environ.get("GLTHEORY_TEST_NO_TYPECHECK")
    else install_import_hook(CHECKED_MODULES, "beartype.beartype")
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
    caches per module keeps the count (and the RSS) bounded; the cost is recompiling the few
    library functions that several modules share."""
    yield
    jax.clear_caches()
    gc.collect()


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
