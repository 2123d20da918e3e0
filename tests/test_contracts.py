"""The core and topic modules' jaxtyping annotations are present, resolvable and run-time checked.

In the checked mode (``GLTHEORY_TEST_CHECKED=1``, run by ``.ci/run``) ``tests/conftest.py``
imports gltheory under jaxtyping's import hook with beartype, so every call the suite makes into
processes, data, scores, solvers, sampling and the topic modules (``TOPICS``) checks the shapes
and dtypes its signature promises. In the quick mode (the README command) the hook is off and
the tests below wrap the functions they need themselves, exactly as the hook would
(``jaxtyped(typechecker=beartype)``). Without the hook (what users run) the functions are the
plain functions and the library's own checks raise ``ValueError`` naming the argument.
"""

import inspect
import typing

import jax
import jax.numpy as jnp
import jaxtyping
import pytest
from beartype import beartype
from conftest import CHECKED_RUN

import gltheory as gl


def _checked(fn):
    """``fn`` as the suite's import hook wraps it (already wrapped in the checked mode)."""
    if CHECKED_RUN:
        return fn
    return jaxtyping.jaxtyped(typechecker=beartype)(inspect.unwrap(fn))


CORE = (gl.processes, gl.data, gl.scores, gl.solvers, gl.sampling)
# Topic modules whose public functions are also checked (each is in conftest's CHECKED_MODULES).
TOPICS = (
    gl.meanfield,
    gl.bath,
    gl.exponents,
    gl.observables,
    gl.spectral,
    gl.latestart,
    gl.lattice,
    gl.patch,
    gl.field,
    gl.criticality,
    gl.thermo,
    gl.schedules,
    gl.distributed,
    gl.spatial,
    gl.ornstein_zernike,
    gl.guidance.classes,
    gl.guidance.schedules,
    gl.guidance.theory,
    gl.guidance.measure,
    gl.nets.datasets,
    gl.nets.models,
    gl.nets.training,
    gl.nets.measure,
)


def _defined_here(module, obj) -> bool:
    return getattr(obj, "__module__", None) == module.__name__


def _public_callables():
    """(qualified name, function) for every signature that carries the core contracts.

    Module-level functions of each ``__all__``; the constructors of its classes; every public
    method of the processes and of the solvers (subclass overrides included); the abstract
    methods of :class:`gltheory.data.AbstractData` (the dataset protocol).
    """
    out = []
    for module in CORE + TOPICS:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) and _defined_here(module, obj):
                out.append((f"{module.__name__}.{name}", obj))
            elif inspect.isclass(obj) and _defined_here(module, obj):
                if "__init__" in vars(obj):
                    out.append((f"{module.__name__}.{name}.__init__", vars(obj)["__init__"]))
                methods = []
                if issubclass(obj, gl.processes.AbstractProcess):
                    methods = [m for m in vars(obj) if not m.startswith("_")]
                elif issubclass(obj, gl.solvers.AbstractSolver):
                    methods = ["step"]
                elif obj is gl.data.AbstractData:
                    methods = [
                        m
                        for m, f in vars(obj).items()
                        if getattr(f, "__isabstractmethod__", False) and not m.startswith("_")
                    ]
                for m in methods:
                    f = vars(obj).get(m)
                    if inspect.isfunction(f):
                        out.append((f"{module.__name__}.{name}.{m}", f))
    return out


PUBLIC = _public_callables()


def test_the_contract_list_covers_the_core():
    names = {n for n, _ in PUBLIC}
    for expected in (
        "gltheory.processes.OU.__init__",
        "gltheory.processes.AbstractProcess.reverse_drift",
        "gltheory.processes.VP.g2",
        "gltheory.data.Gaussian.__init__",
        "gltheory.data.AbstractData.posterior_mean",
        "gltheory.scores.score",
        "gltheory.solvers.EDMHeun.step",
        "gltheory.sampling.sample",
        "gltheory.sampling.branch",
        "gltheory.sampling.trajectory_keys",
        "gltheory.meanfield.critical_times",
        "gltheory.bath.gibbs",
        "gltheory.observables.cloning_probability",
        "gltheory.spectral.mode_stiffness",
        "gltheory.latestart.kl",
        "gltheory.lattice.box_sum_periodic",
        "gltheory.patch.score",
        "gltheory.patch.ELS.__init__",
        "gltheory.field.structure_factor",
        "gltheory.criticality.softening_time",
        "gltheory.thermo.trajectory_entropy",
        "gltheory.guidance.schedules.Pulse.__init__",
        "gltheory.guidance.measure.pulse_scan",
        "gltheory.guidance.theory.optimal_pulse_centre",
        "gltheory.nets.models.ConvDenoiser.__init__",
        "gltheory.nets.training.train",
        "gltheory.nets.measure.score_criticality",
    ):
        assert expected in names
    assert len(PUBLIC) > 80


@pytest.mark.parametrize("name,fn", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_every_public_parameter_is_annotated(name, fn):
    sig = inspect.signature(fn)
    missing = [
        p.name
        for p in sig.parameters.values()
        if p.name != "self" and p.annotation is inspect.Parameter.empty
    ]
    assert not missing, f"{name}: parameters without annotation: {missing}"
    if not name.endswith("__init__"):
        assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return type"
    # string annotations (``from __future__ import annotations``) resolve at module level,
    # which is what beartype needs to check them
    typing.get_type_hints(inspect.unwrap(fn))


def test_core_functions_are_wrapped_by_the_hook():
    """Under the test suite's import hook (checked mode) each public function is a checking
    wrapper; in the quick mode each can be wrapped (beartype resolves every annotation)."""
    for name, fn in PUBLIC:
        # walk down the (sub)packages to the module, then take its top-level attribute
        parts = iter(name.split(".")[1:])
        top = gl
        while inspect.ismodule(top):
            top = getattr(top, next(parts))
        if inspect.isfunction(top):
            if CHECKED_RUN:
                assert inspect.unwrap(top) is not top, f"{name} is not checked at run time"
            else:
                assert _checked(top) is not inspect.unwrap(top), name


def test_hook_rejects_a_wrong_rank_key_before_the_body_runs():
    key = jax.random.PRNGKey(0)
    keys = gl.trajectory_keys(key, 3)
    assert keys.shape == (3, 2)
    typed = gl.trajectory_keys(jax.random.key(0), 3)
    assert typed.shape == (3,)
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 'key'"):
        _checked(gl.sampling.trajectory_keys)(keys, 2)
    # without the hook (as users run it) the library's own check answers, naming the argument
    with pytest.raises(ValueError, match="single key"):
        inspect.unwrap(gl.sampling.trajectory_keys)(keys, 2)


def test_hook_checks_shapes_shared_between_arguments():
    """A solver step promises z shaped like x and returns that shape; the hook enforces it."""
    process = gl.OU(T=2.0)
    data = gl.TwoPoint(1.0, dim=2)
    score_fn = lambda x, t: gl.score(data, process, x, t)  # noqa: E731
    x = jnp.zeros((4, 2))
    step = _checked(gl.EulerMaruyama.step)
    em = gl.EulerMaruyama()
    y = step(em, score_fn, process, x, 1.0, 0.9, jnp.ones((4, 2)))
    assert y.shape == (4, 2)
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 'z'"):
        step(em, score_fn, process, x, 1.0, 0.9, jnp.ones((4, 3)))
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 't'"):
        step(em, score_fn, process, x, jnp.ones(2), 0.9, jnp.ones((4, 2)))


def test_library_value_errors_still_come_first_for_checked_arguments():
    """Arguments the library validates itself keep annotations wide enough for its ValueError."""
    with pytest.raises(ValueError, match="schedule must be"):
        gl.VP("sigmoid")
    with pytest.raises(ValueError, match="x must be a real floating array"):
        gl.score(gl.TwoPoint(1.0), gl.OU(), jnp.zeros((1, 1), jnp.complex64), 0.5)
    with pytest.raises(ValueError, match="ts must be a 1-D time grid"):
        gl.sampling.check_time_grid(jnp.ones((2, 2)), 1.0)
