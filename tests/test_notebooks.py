"""Every notebook in ``notebooks/`` runs as a script and writes its figures.

Notebooks are kept as jupytext "percent" sources (``# %%`` cells), which are plain Python
scripts. Each is executed in a fresh interpreter with small sizes (``GLTHEORY_NB_SMALL=1``),
the non-interactive Agg backend, and its figures sent to a temporary folder
(``GLTHEORY_NB_OUT``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))

# a code cell marker: "# %%" alone or followed by a title, but not "# %% [markdown]"
_CODE_CELL = re.compile(r"^# %%(?![ \t]*\[markdown\])(?:[ \t].*)?$", re.MULTILINE)
_ANY_CELL = re.compile(r"^# %%", re.MULTILINE)


def _ids(path: Path) -> str:
    return path.name


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_ids)
def test_notebook_is_percent_format(notebook: Path):
    text = notebook.read_text(encoding="utf-8")
    assert _CODE_CELL.search(text), f"{notebook.name}: no '# %%' code cell marker"
    first = _ANY_CELL.search(text)
    # before the first cell only the (optional) jupytext header, comments or blank lines
    preamble = text[: first.start()]
    stray = [ln for ln in preamble.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert not stray, f"{notebook.name}: code before the first '# %%' cell: {stray[:3]}"
    compile(text, str(notebook), "exec")  # a valid Python script


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_ids)
def test_notebook_runs(notebook: Path, tmp_path: Path):
    out = tmp_path / "figures"
    env = dict(os.environ)
    env.update(
        MPLBACKEND="Agg",
        GLTHEORY_NB_SMALL="1",
        GLTHEORY_NB_OUT=str(out),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    try:
        proc = subprocess.run(
            [sys.executable, str(notebook)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{notebook.name} did not finish in {err.timeout} s")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-40:])
        pytest.fail(f"{notebook.name} exited with code {proc.returncode}; stderr tail:\n{tail}")
    pngs = sorted(out.glob("*.png"))
    assert pngs, f"{notebook.name} wrote no PNG into GLTHEORY_NB_OUT ({out})"
    assert all(p.stat().st_size > 0 for p in pngs), f"empty PNG among {[p.name for p in pngs]}"
