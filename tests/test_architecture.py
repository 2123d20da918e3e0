"""Guards of the package's structure (ARCHITECTURE.md): the layers, what ``import gltheory``
loads, private names, the one loop over reverse time, and the experiment registry.

These tests read the source with :mod:`ast` (no import side effects) except where they
check what an import loads, which they do in a fresh interpreter.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gltheory as gl

PKG = Path(gl.__file__).resolve().parent
REPO = PKG.parent

# layer of every module (a subpackage's modules share its layer); a module may import only
# from its own layer or lower ones, and the import graph has no cycle.
CORE = {"config": 0, "_checks": 0, "_io": 0, "_roots": 0, "lattice": 0, "processes": 1}
CORE |= {"data": 2, "solvers": 2}
CORE |= {"scores": 3, "sampling": 3}
TOPICS = [
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
    "ornstein_zernike",
    "exponents",
    "spatial",
]
LAYER = dict(CORE) | {t: 4 for t in TOPICS} | {"report": 5, "plotting": 5}
LAYER |= {"distributed": 4}  # a topic: the batch axis across processes (sampling, observables)
LAYER |= {"experiments": 6, "cli": 7, "__main__": 7, "launch": 7}

# the reverse-time loop lives here and nowhere else
SOLVER_LAYER = {"solvers.py", "sampling.py"}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


@functools.cache
def _source(path: Path) -> tuple[str, ast.Module]:
    """A module's source and syntax tree, parsed once per test process."""
    src = path.read_text(encoding="utf-8")
    return src, ast.parse(src)


def _dotted(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _top(dotted: str) -> str | None:
    """The first-level module of ``gltheory.x.y`` (``x``), None for the package itself."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    """Absolute dotted name of the module an ``ImportFrom`` reads from."""
    if node.level == 0:
        return node.module or ""
    pkg = _dotted(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    base = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path):
    """(line, target dotted module, imported names) for every gltheory-internal import."""
    _, tree = _source(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = _resolve(path, node)
            if mod == "gltheory" or mod.startswith("gltheory."):
                names = [a.name for a in node.names]
                if mod == "gltheory":  # from . import x
                    for n in names:
                        yield node.lineno, f"gltheory.{n}", []
                else:
                    yield node.lineno, mod, names
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("gltheory"):
                    yield node.lineno, a.name, []


def test_every_module_has_a_layer():
    missing = sorted({_top(_dotted(p)) for p in _modules()} - set(LAYER) - {None})
    assert not missing, f"modules without a layer in ARCHITECTURE.md / this test: {missing}"


def test_no_module_imports_upward():
    bad = []
    for path in _modules():
        me = _top(_dotted(path))
        if me is None:  # gltheory/__init__.py exports the public API
            continue
        for line, target, _ in _imports(path):
            other = _top(target)
            if other is None or other == me:
                continue
            if LAYER[other] > LAYER[me]:
                bad.append(
                    f"{path.relative_to(REPO)}:{line} ({me}, layer {LAYER[me]}) imports "
                    f"{target} (layer {LAYER[other]})"
                )
    assert not bad, "\n".join(bad)


def test_import_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for path in _modules():
        me = _top(_dotted(path))
        if me is None:
            continue
        for _, target, _ in _imports(path):
            other = _top(target)
            if other is not None and other != me:
                graph.setdefault(me, set()).add(other)
    state: dict[str, int] = {}

    def visit(n, stack):
        if state.get(n) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(stack + [n])}")
        if state.get(n) == 2:
            return
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            visit(m, stack + [n])
        state[n] = 2

    for n in sorted(graph):
        visit(n, [])


def test_no_private_name_crosses_a_module_boundary():
    bad = []
    for path in _modules():
        me = _dotted(path)
        for line, target, names in _imports(path):
            if target == me:
                continue
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{path.relative_to(REPO)}:{line}: from {target} import {n}")
    assert not bad, "\n".join(bad)


# lazy imports allowed inside functions: the command line keeps `--help` fast and loads the
# report, JAX's configuration and matplotlib only when a command runs
LAZY_IMPORT_OK = {"cli.py"}
# optional extras are imported where they are used, so that the package works without them
OPTIONAL_DEPS = {"sklearn"}


def _imported_roots(node) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names}
    return {(node.module or "").split(".")[0]} if node.level == 0 else {"gltheory"}


def test_imports_at_module_top_level():
    bad = []
    for path in _modules():
        if path.name in LAZY_IMPORT_OK:
            continue
        _, tree = _source(path)
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        if _imported_roots(node) <= OPTIONAL_DEPS:
                            continue
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno} in {fn.name}()")
    assert not bad, "imports inside functions:\n" + "\n".join(bad)


_LOOPS = {"scan", "fori_loop", "while_loop"}
_REVERSE_MARKERS = re.compile(r"reverse_drift|pf_ode_drift|\.step\(")


def test_no_reverse_time_loop_outside_the_solver_layer():
    """A ``lax.scan``/``fori_loop``/``while_loop`` that runs over the time grid ``ts`` or whose
    function takes reverse-dynamics steps is only allowed in solvers.py/sampling.py."""
    bad = []
    for path in _modules():
        if path.name in SOLVER_LAYER and path.parent == PKG:
            continue
        src, tree = _source(path)
        lines = src.splitlines(keepends=True)

        def segment(node):  # ast.get_source_segment without re-splitting the file per call
            first, last = node.lineno - 1, node.end_lineno - 1
            if first == last:
                return lines[first][node.col_offset : node.end_col_offset]
            return "".join(
                [lines[first][node.col_offset :], *lines[first + 1 : last]]
                + [lines[last][: node.end_col_offset]]
            )

        parents = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name not in _LOOPS:
                continue
            over_grid = re.search(r"\bts\b", segment(node)) is not None
            fn = parents.get(node)
            while fn is not None:  # every enclosing function
                if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    over_grid or _REVERSE_MARKERS.search(segment(fn))
                ):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno} in {fn.name}()")
                fn = parents.get(fn)
    assert not bad, "reverse-time loops outside the solver layer:\n" + "\n".join(bad)


def test_import_gltheory_is_light():
    code = (
        "import sys, gltheory\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' or "
        "m.startswith(('gltheory.report', 'gltheory.experiments', 'gltheory.plotting', "
        "'gltheory.cli')))\n"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert out.strip() == "[]", out


def test_importing_the_experiments_touches_no_jax_backend():
    """`gltheory report` under the launcher calls jax.distributed.initialize after importing
    the experiments; that fails once any backend exists, so no module-level JAX computation
    (e.g. a process instance built at import)."""
    code = (
        "import jax._src.xla_bridge as xb, gltheory.cli, gltheory.experiments\n"
        "print(sorted(xb._backends))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert out.strip() == "[]", out


def test_version_has_one_source():
    assert gl.__version__ == importlib.metadata.version("gltheory")
    init = (PKG / "__init__.py").read_text(encoding="utf-8")
    assert re.search(r"__version__\s*=\s*['\"]", init) is None


def test_top_level_is_small_and_topics_are_namespaces():
    public = [n for n in gl.__all__ if n not in TOPICS and n not in CORE]
    assert 25 <= len(public) <= 40, public
    for t in TOPICS + ["processes", "data", "scores", "solvers", "sampling"]:
        assert hasattr(gl, t), t
    for n in gl.__all__:
        assert hasattr(gl, n), n


def test_registry_lists_every_experiment_module():
    from gltheory import experiments

    mods = sorted(
        p.stem
        for p in (PKG / "experiments").glob("*.py")
        if p.stem != "__init__" and not p.stem.startswith("_")
    )
    registry = {e.name for e in experiments.EXPERIMENTS}
    assert len(registry) == len(experiments.EXPERIMENTS), "duplicate experiment names"
    for m in mods:
        mod = __import__(f"gltheory.experiments.{m}", fromlist=["EXPERIMENTS"])
        names = {e.name for e in mod.EXPERIMENTS}
        assert names, f"experiments/{m}.py exports no experiment"
        assert names <= registry, f"experiments/{m}.py: {sorted(names - registry)} not registered"
        cfg = getattr(mod, "CONFIG", None)
        assert cfg is not None, f"experiments/{m}.py has no size configuration CONFIG"
        assert isinstance(cfg.quick(), cfg) and isinstance(cfg.default(), cfg), m


@pytest.mark.parametrize("name", ["report", "plotting", "cli"])
def test_report_layer_is_not_imported_by_lower_layers(name):
    for path in _modules():
        me = _top(_dotted(path))
        if me is None or LAYER[me] >= LAYER[name]:
            continue
        for _, target, _ in _imports(path):
            assert _top(target) != name, f"{path.relative_to(REPO)} imports gltheory.{name}"
