"""Run-time settings of the package: checks of traced values, and the compilation cache.

**Validation.** Every public function checks its arguments at the public boundary, in
Python, when they hold values (Python numbers, NumPy arrays, concrete JAX arrays, and the
primal values under an eager ``jax.grad``/``jax.jvp``): a bad value raises ``ValueError``
naming the argument before anything is compiled. Inside the package's own jitted
implementations nothing is checked again, so the programs compiled for such inputs contain no
host callback and JAX's persistent compilation cache can store them.

A value that is *traced* at the public boundary (the function is called inside your own
``jax.jit``, ``jax.vmap`` or ``lax.scan``) has no value to check in Python. Such values are
checked only when :func:`check_traced_values` is on (or the environment variable
``GLTHEORY_CHECK_TRACED=1`` is set before import): then the check becomes an
``equinox.error_if`` in your program, which raises at run time. It is **off by default**: an
``error_if`` is a host callback, and one host callback anywhere in a program stops JAX's
persistent cache from storing it (the README's own ``jax.jit(lambda key, ts: gl.sample(...))``
traces ``ts``), and it costs a device-to-host round trip per call. Switch it on while
developing or debugging a new pipeline.

Under a plain ``jax.jit``, JAX composes the run-time error itself (``JaxRuntimeError:
INTERNAL: CpuCallback error calling callback: Traceback …``) and the library's message is the
last line of the traceback text it embeds; under ``equinox.filter_jit`` the error is an
``EquinoxRuntimeError`` that shows the message with the stack inside the jit.

**Compilation cache.** :func:`enable_compilation_cache` turns on JAX's persistent compilation
cache, so that a new process loads the programs an earlier one compiled instead of compiling
them again (seconds per entry point on a CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = [
    "check_traced_values",
    "traced_checks_enabled",
    "enable_compilation_cache",
    "default_cache_dir",
    "CHECK_TRACED_ENV",
    "CACHE_DIR_ENV",
]

CHECK_TRACED_ENV = "GLTHEORY_CHECK_TRACED"
"""Environment variable: ``1``/``true``/``on`` switches the checks of traced values on at import."""

CACHE_DIR_ENV = "GLTHEORY_CACHE_DIR"
"""Environment variable: the directory :func:`enable_compilation_cache` uses by default."""


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "off", "no"):
        return False
    if value in ("1", "true", "on", "yes"):
        return True
    raise ValueError(f"{name} must be one of 1/true/on/yes or 0/false/off/no, got {value!r}.")


_CHECK_TRACED = [_env_flag(CHECK_TRACED_ENV)]


class check_traced_values:
    """Switch the checks of traced values on or off; also a context manager.

    ``gl.config.check_traced_values(True)`` switches them on for the rest of the process;
    ``with gl.config.check_traced_values(True): ...`` switches them on inside the block and
    restores the previous setting after it. The setting is read when a function is *traced*:
    a program that was already compiled keeps the checks it was traced with.

    **Arguments:**

    - `enabled`: whether a value that is traced at the public boundary (inside your own
      ``jit``/``vmap``/``scan``) gets an ``equinox.error_if`` check. Default at import: off,
      or the value of ``GLTHEORY_CHECK_TRACED``.
    """

    def __init__(self, enabled: bool):
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled must be True or False, got {enabled!r}.")
        self._previous = _CHECK_TRACED[0]
        _CHECK_TRACED[0] = enabled

    def __enter__(self) -> check_traced_values:
        return self

    def __exit__(self, *exc) -> None:
        _CHECK_TRACED[0] = self._previous


def traced_checks_enabled() -> bool:
    """Whether traced values are checked (see :func:`check_traced_values`)."""
    return _CHECK_TRACED[0]


def default_cache_dir() -> Path:
    """The compilation cache's directory: ``$GLTHEORY_CACHE_DIR`` if set, else
    ``$XDG_CACHE_HOME/gltheory/jax`` (``~/.cache/gltheory/jax`` when ``XDG_CACHE_HOME`` is
    unset)."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gltheory" / "jax"


def enable_compilation_cache(
    directory: str | os.PathLike | None = None, *, min_compile_time_s: float = 0.0
) -> Path:
    """Turn on JAX's persistent compilation cache for this process.

    Every program that takes at least ``min_compile_time_s`` to compile is written to
    ``directory``; a later process that compiles the same program (same function, shapes,
    dtypes, JAX version and backend) loads it from there instead. Call it once near the top of
    a script, before the first computation (the command-line tool, the notebooks and the test
    suite do). Equivalent to setting JAX's ``jax_compilation_cache_dir``,
    ``jax_persistent_cache_min_compile_time_secs`` and
    ``jax_persistent_cache_min_entry_size_bytes`` yourself.

    The cache is trusted code: do not point it at a directory others can write to.

    **Arguments:**

    - `directory`: where to keep the cache; default :func:`default_cache_dir`
      (``$GLTHEORY_CACHE_DIR``, else ``~/.cache/gltheory/jax``). Created if missing.
    - `min_compile_time_s`: programs that compile faster than this are not stored (JAX's own
      default is 1 s, which leaves out most of the package's programs on a fast machine).

    **Returns:** the cache directory.
    """
    if not (isinstance(min_compile_time_s, int | float) and min_compile_time_s >= 0):
        raise ValueError(f"min_compile_time_s must be a number >= 0, got {min_compile_time_s!r}.")
    path = Path(directory).expanduser() if directory is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
