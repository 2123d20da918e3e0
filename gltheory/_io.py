"""Atomic file output for reports: a reader never sees a half-written file.

Every writer here follows the same protocol: write to a temporary file in the destination
folder (same file system, so the final rename is atomic), ``flush`` and ``fsync`` it,
``os.replace`` it onto the destination, then ``fsync`` the folder so the rename itself is
durable. If anything raises before the rename, the temporary file is removed and an existing
destination file is left untouched.

Figures are rendered to bytes in memory first (``fig.savefig(BytesIO)``), so a plotting error
never leaves a truncated PNG behind either.

A process killed during a write (``SIGKILL``, power loss) cannot remove its temporary file.
Temporary files are named ``.NAME.HOST.PID.XXXXXXXX.tmp`` (hidden, next to ``NAME``), and every
successful write to ``NAME`` removes the *stale* ones of that name: those whose writer ran on
this host and is no longer running (its process id is gone), and those of another host, or in
an older naming scheme without host and pid, once they are older than
:data:`STALE_TEMP_SECONDS`. A temporary file of a writer that is still running is never
removed, so concurrent writers of the same file do not disturb each other (the last rename
wins). A process id reused by an unrelated live process keeps its stale file until that
process ends.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "remove_stale_temp_files",
    "atomic_write_text",
    "atomic_write_json",
    "figure_to_png",
    "save_figure",
    "to_jsonable",
    "STALE_TEMP_SECONDS",
]

STALE_TEMP_SECONDS = 3600.0
"""Age (seconds) after which a temporary file whose writer cannot be checked (another host, or
the older naming scheme ``.NAME.XXXXXXXX.tmp``) counts as left behind by a killed write."""

_RANDOM_PART = re.compile(r"[a-z0-9_]{8}")  # tempfile.mkstemp's random part


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
    prefix = f".{dest.name}.{_host_tag()}.{os.getpid()}."
    if len(prefix.encode()) > 240:  # a very long name: the shorter scheme (cleaned by age)
        prefix = f".{dest.name}."
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
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
    remove_stale_temp_files(dest)
    return dest


def _host_tag() -> str:
    """This host's name as it appears in temporary file names (no dots)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32] or "host"


def _pid_running(pid: int) -> bool | None:
    """Whether process ``pid`` runs on this host; ``None`` when that cannot be told."""
    if os.name != "posix" or pid <= 0:
        return None  # (os.kill(pid, 0) would terminate the process on Windows)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return None
    return True


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed writes to ``path`` left behind (module docstring).

    Called by :func:`atomic_write` after each successful write; best effort (a file that cannot
    be removed is left).

    **Arguments:**

    - `path`: the destination file whose temporary files ``.NAME.*.tmp`` are examined.

    **Returns:** the temporary files removed.
    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    head, tail = f".{dest.name}.", ".tmp"
    host, now, removed = _host_tag(), time.time(), []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(head) and name.endswith(tail)):
            continue
        parts = name[len(head) : len(name) - len(tail)].split(".")
        if not _RANDOM_PART.fullmatch(parts[-1]):
            continue  # not a temporary file of this writer (e.g. of a file NAME.suffix)
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit():
            running = _pid_running(int(parts[1]))
        elif (len(parts) == 3 and parts[1].isdigit()) or len(parts) == 1:
            running = None  # another host, or the older naming scheme
        else:
            continue
        tmp = folder / name
        if running is None:
            try:
                if now - tmp.stat().st_mtime <= STALE_TEMP_SECONDS:
                    continue
            except OSError:
                continue
        elif running:
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


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
