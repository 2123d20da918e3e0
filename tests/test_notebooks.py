"""The notebooks in ``notebooks/`` open in Jupyter and run.

Notebooks are kept as jupytext "percent" sources (``# %%`` cells), which are plain Python
scripts; ``notebooks/_setup.py`` is the preamble they share (not a notebook). Fast tier: every
notebook is a valid percent script, and jupytext converts it to an ``.ipynb`` that nbformat
accepts, with the Python kernel and its cells intact (what ``jupyter lab`` does when it opens
one). Slow tier (``-m slow``): each notebook runs as a script in a fresh interpreter, and the
first one, converted, runs in a Jupyter kernel with nbclient. Both run at small sizes
(``GLTHEORY_NB_SMALL=1``) and send the figures to a temporary folder (``GLTHEORY_NB_OUT``).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


class _Lazy:
    """A module imported on first use: jupytext and nbformat take seconds to import, and
    every xdist worker imports every test module while collecting."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        # pytest's collection probes every module-level object for private and pytest-specific
        # attributes (``__test__``, ``pytestmark``, mock markers...); answering those would import
        # the module in every worker after all
        if attr.startswith("_") or "pytest" in attr:
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)


jupytext = _Lazy("jupytext")
nbformat = _Lazy("nbformat")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))

# a code cell marker: "# %%" alone or followed by a title, but not "# %% [markdown]"
_CODE_CELL = re.compile(r"^# %%(?![ \t]*\[markdown\])(?:[ \t].*)?$", re.MULTILINE)
_ANY_CELL = re.compile(r"^# %%", re.MULTILINE)


def _ids(path: Path) -> str:
    return path.name


def test_the_nine_notebooks_are_found():
    assert [p.name[:2] for p in NOTEBOOKS] == [
        "01", "02", "03", "04", "05", "06", "07", "08", "09"
    ]  # fmt: skip
    assert (NOTEBOOK_DIR / "_setup.py").exists()
    assert (NOTEBOOK_DIR / "jupytext.toml").exists()


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
def test_notebook_converts_to_ipynb(notebook: Path, tmp_path: Path):
    text = notebook.read_text(encoding="utf-8")
    nb = jupytext.reads(text, fmt="py:percent")
    ipynb = tmp_path / f"{notebook.stem}.ipynb"
    jupytext.write(nb, ipynb, fmt="ipynb")
    nb = nbformat.read(ipynb, as_version=4)
    nbformat.validate(nb)  # raises on an invalid notebook

    spec = nb.metadata.get("kernelspec", {})
    assert spec.get("name") == "python3" and spec.get("language") == "python", spec
    kinds = [cell.cell_type for cell in nb.cells]
    assert kinds[0] == "markdown", f"{notebook.name}: starts with a {kinds[0]} cell, not the title"
    assert nb.cells[0].source.startswith("# "), f"{notebook.name}: no title in the first cell"
    n_code = kinds.count("code")
    assert n_code == len(_CODE_CELL.findall(text)), "a '# %%' code cell was lost or split"
    assert kinds.count("markdown") >= 2 and n_code >= 3, f"{notebook.name}: {kinds}"
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
    # the first code cell loads the shared preamble (before gltheory, which it makes importable)
    setup_src = next(cell.source for cell in nb.cells if cell.cell_type == "code")
    assert "from _setup import" in setup_src and "import gltheory as gl" in setup_src
    assert setup_src.index("from _setup import") < setup_src.index("import gltheory as gl")

    # saving from Jupyter writes the same cells back to the percent script
    back = jupytext.reads(jupytext.writes(nb, fmt="py:percent"), fmt="py:percent")
    assert [(c.cell_type, c.source) for c in back.cells] == [
        (c.cell_type, c.source) for c in nb.cells
    ]


def _small_env(out: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MPLBACKEND="Agg",
        GLTHEORY_NB_SMALL="1",
        GLTHEORY_NB_OUT=str(out),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    return env


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_ids)
def test_notebook_runs(notebook: Path, tmp_path: Path):
    out = tmp_path / "figures"
    try:
        proc = subprocess.run(
            [sys.executable, str(notebook)],
            cwd=tmp_path,
            env=_small_env(out),
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


@pytest.mark.slow
def test_converted_notebook_executes_in_a_kernel(tmp_path: Path, monkeypatch):
    """``01``, converted by jupytext, runs cell by cell in a python3 kernel (nbclient)."""
    from nbclient import NotebookClient

    notebook = NOTEBOOKS[0]
    out = tmp_path / "figures"
    for name, value in _small_env(out).items():
        monkeypatch.setenv(name, value)  # the kernel inherits this environment
    nb = jupytext.read(notebook)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # the kernel's working directory
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code), "a code cell was not executed"
    outputs = [o for cell in code for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    pngs = sorted(out.glob("*.png"))
    assert pngs, f"{notebook.name} wrote no PNG into GLTHEORY_NB_OUT ({out})"
    assert len(shown) == len(pngs), f"{len(shown)} figures displayed, {len(pngs)} saved"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "SMALL sizes" in text and "notebook finished" in text, text[-2000:]
