"""Atomic file output for reports: a reader never sees a half-written file.

Every writer here follows the same protocol: write to a temporary file in the destination
folder (same file system, so the final rename is atomic), ``flush`` and ``fsync`` it,
``os.replace`` it onto the destination, then ``fsync`` the folder so the rename itself is
durable. If anything raises before the rename, the temporary file is removed and an existing
destination file is left untouched.

Figures are rendered to bytes in memory first (``fig.savefig(BytesIO)``), so a plotting error
never leaves a truncated PNG behind either.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "figure_to_png",
    "save_figure",
    "to_jsonable",
]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Atomically create or replace ``path`` with what ``write(f)`` writes to a binary file.

    **Arguments:**

    - `path`: destination file; its folder must exist.
    - `write`: a callback receiving an open binary file object. If it raises, the temporary
      file is deleted, the destination is not touched, and the exception propagates.

    **Returns:** the destination as a :class:`pathlib.Path`.
    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {dest}: folder {folder} does not exist.")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, dest)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)
    return dest


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Atomically write ``text`` to ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types.

    NumPy/JAX scalars and arrays become Python numbers and lists, tuples become lists, paths
    become strings, and non-finite floats become ``None`` (strict JSON has no NaN/Infinity).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    # numpy / jax arrays and scalars, without importing either here
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return to_jsonable(obj.item())
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON.")


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Atomically write ``obj`` (after :func:`to_jsonable`) as strict JSON with a final newline."""
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def figure_to_png(fig, *, dpi: int = 120) -> bytes:
    """Render a matplotlib ``Figure`` to PNG bytes in memory (no pyplot state involved)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(path: str | os.PathLike, fig, *, dpi: int = 120) -> Path:
    """Render ``fig`` to PNG bytes first, then write them atomically to ``path``."""
    return atomic_write_bytes(path, figure_to_png(fig, dpi=dpi))
