"""Report rows: every tolerance names its basis and says how it was derived (issue 16, item 6).

Cheap: constructs rows and reads the experiment modules' source; no experiment runs.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from gltheory.report import TOL_BASES, Row, format_table

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "gltheory" / "experiments"


def _row_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
            if name == "Row":
                yield node


def test_row_refuses_a_tolerance_without_a_basis():
    note = "tol = 10 x the bisection bracket"
    with pytest.raises(ValueError, match="tol_basis"):
        Row("a", 1.0, 1.0, tol=1e-9, note=note)
    with pytest.raises(ValueError, match="tol_basis"):
        Row("a", 1.0, 1.0, tol=1e-9, tol_basis="a guess", note=note)
    with pytest.raises(ValueError, match="note"):
        Row("a", 1.0, 1.0, tol=1e-9, tol_basis="solver", note="bisection")
    with pytest.raises(ValueError, match="tol_basis"):
        Row("a", 1.0, 1.0, se=0.1, tol_basis="solver")
    with pytest.raises(ValueError, match="not both"):
        Row("a", 1.0, 1.0, se=0.1, tol=0.1, tol_basis="solver", note=note)
    for bad in (-1e-3, math.nan, math.inf):
        with pytest.raises(ValueError, match="`tol`"):
            Row("a", 1.0, 1.0, tol=bad, tol_basis="solver", note=note)
    # a stochastic row, a "none" row and a failed row need no basis
    assert Row("b", 1.0, 1.01, se=0.01).ok
    assert Row("c", None, None).ok
    assert not Row("d", None, None, failure="boom").ok


def test_row_with_a_basis_round_trips_and_prints_it():
    row = Row(
        "t_c",
        0.5,
        0.5 + 1e-13,
        tol=1e-11,
        tol_basis="solver",
        group="g",
        note="tol = 10 x the bisection bracket",
    )
    assert row.ok
    d = row.to_dict()
    assert d["tol_basis"] == "solver"
    assert Row.from_dict(d) == row
    assert "solver" in format_table([row])
    off = Row("x", 0.5, 0.6, tol=0.01, tol_basis="model", note="tol = the stated bias")
    assert not off.ok and off.status == "off"


def test_every_experiment_row_with_a_tolerance_states_its_basis():
    """Each ``Row(..., tol=...)`` in gltheory/experiments passes a ``tol_basis`` that is one of
    TOL_BASES (literally) and no row gives ``tol`` without one; a failed-experiment row in
    report.py needs none."""
    found = 0
    for path in sorted(EXPERIMENTS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _row_calls(tree):
            kw = {k.arg: k.value for k in call.keywords}
            if "tol" not in kw:
                assert "tol_basis" not in kw, f"{path.name}:{call.lineno}"
                continue
            found += 1
            assert "tol_basis" in kw, f"{path.name}:{call.lineno}: tol without tol_basis"
            basis = kw["tol_basis"]
            assert isinstance(basis, ast.Constant) and basis.value in TOL_BASES, (
                f"{path.name}:{call.lineno}: tol_basis must be a literal in TOL_BASES"
            )
            # no hand-picked tolerance: a literal tol is only 0 for an exact identity or the
            # rounding of a printed reference; every other one is computed
            tol = kw["tol"]
            if isinstance(tol, ast.Constant):
                assert (tol.value == 0 and basis.value == "exact") or basis.value == "reference", (
                    f"{path.name}:{call.lineno}: a literal tol {tol.value!r}"
                )
    assert found >= 15
