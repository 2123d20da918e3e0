"""The shared preamble of the notebooks in this folder (not a notebook itself).

Every notebook starts with ``from _setup import OUT, SMALL, banner, show``. That works both
when a notebook runs as a script (``python notebooks/01_forward_and_reverse.py``: Python puts
the script's folder on ``sys.path``) and in Jupyter (the kernel starts in the notebook's
folder). Importing this module

- makes ``import gltheory`` work from a checkout that was not installed (``pip install -e .``
  is the usual way): the repository root is put on ``sys.path`` when the package is not
  importable;
- reads the two environment variables that control every notebook:
  ``GLTHEORY_NB_SMALL=1`` (small batches and few steps, seconds per notebook; the tests run the
  notebooks this way) and ``GLTHEORY_NB_OUT=<folder>`` (where the PNG figures go; default
  ``notebook_outputs/`` in the current directory, which git ignores);
- turns on JAX's persistent compilation cache (`gltheory.config.enable_compilation_cache`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import jax
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("gltheory") is None and (REPO / "gltheory" / "__init__.py").exists():
    sys.path.insert(0, str(REPO))

import gltheory  # noqa: E402

CACHE_DIR: Path = gltheory.config.enable_compilation_cache()
"""JAX's persistent compilation cache (``$GLTHEORY_CACHE_DIR``, else ``~/.cache/gltheory/jax``):
a second run of a notebook loads the programs the first one compiled."""

_NO = ("", "0", "false", "no")
SMALL: bool = os.environ.get("GLTHEORY_NB_SMALL", "0").strip().lower() not in _NO
"""Small sizes (``GLTHEORY_NB_SMALL`` set to anything but ``0``/``false``/``no``/empty)."""

OUT: Path = Path(os.environ.get("GLTHEORY_NB_OUT") or "notebook_outputs")
"""The folder the figures are written to (created on import)."""
OUT.mkdir(parents=True, exist_ok=True)

DPI: int = 80 if SMALL else 110
"""Resolution of the saved figures."""


def in_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (rather than as a plain script)."""
    return "ipykernel" in sys.modules


def banner() -> None:
    """Print the versions, the JAX backend, the size setting and the figure folder.

    Call it after the notebook's own JAX configuration (``jax_enable_x64``), since it starts
    JAX's backend.
    """
    print(
        f"gltheory {gltheory.__version__}, jax {jax.__version__} on {jax.default_backend()}; "
        f"{'SMALL' if SMALL else 'full'} sizes; figures -> {OUT.resolve()}"
    )


def show(fig, name: str) -> None:
    """Save a figure as ``OUT/<name>.png``, display it in a notebook, and close it.

    In a Jupyter kernel the saved PNG is displayed (whatever the matplotlib backend, so the
    figures also appear in notebooks executed headless, e.g. with ``nbclient`` under
    ``MPLBACKEND=Agg``); a plain script only writes the file and never blocks on a window.

    **Arguments:**

    - `fig`: a `matplotlib.figure.Figure` (from `pyplot` or built directly).
    - `name`: the file name without extension.

    Returns nothing (so that a cell ending in ``show(...)`` prints no value).
    """
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=DPI)
    if in_kernel():
        from IPython.display import Image, display  # present in every Jupyter kernel

        display(Image(filename=str(path)))
    plt.close(fig)
