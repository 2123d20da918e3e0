r"""The ``gltheory report`` job: theory vs measurement, row by row.

A report is a list of **experiments**. Each experiment is a function
``run(config, key) -> ExperimentResult`` returning table **rows** (a quantity, its theory
value, the measured value, a standard error or a tolerance, and the resulting status),
figures and free-form JSON details. :func:`run_report` runs a given list of them in order,
timing each one, and :func:`write_report` writes the figures and ``report.json`` atomically.
The experiments themselves live in :mod:`gltheory.experiments` (one module per topic, each
with its own size configuration; :data:`gltheory.experiments.EXPERIMENTS` is the registry the
CLI runs); this module does not import them.

A row is **ok** when

- stochastic (``se`` given): $|{\rm measured}-{\rm theory}|\le z_{\max}\,{\rm SE}$
  ($z_{\max}=3$, so a correct row is "off" by chance with probability 0.27 %);
- deterministic (``tol`` given): $|{\rm measured}-{\rm theory}|\le{\rm tol}$;
- "none" (theory ``None``): the measurement also found none.

A tolerance is never a free choice: every ``tol`` names its **basis** (one of
:data:`TOL_BASES`: round-off, a solver's stopping tolerance, a discretisation estimate, a
stated model error, the rounding of a printed reference, an exact identity, a stated
threshold) and the row's note says how the number was derived (it contains ``tol =``). A
row that disagrees with its theory under the derived tolerance stays "off": it is a finding,
explained in its note, not a reason to widen the tolerance.

Everything runs in float64: the caller (the CLI) enables ``jax_enable_x64``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import os
import platform
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from . import _io

__all__ = [
    "ReportConfig",
    "Row",
    "TOL_BASES",
    "ExperimentResult",
    "Experiment",
    "Report",
    "run_report",
    "write_report",
    "format_table",
    "environment",
    "stderr_log",
]

Log = Callable[[str], None]


def stderr_log(msg: str) -> None:
    """The default progress log: one line on stderr, flushed."""
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# configuration, rows, results
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """Settings of a report run (plain Python values, saved in the JSON).

    The sizes of each experiment are its module's own configuration in
    :mod:`gltheory.experiments` (``default()`` or, when ``quick``, ``quick()``).

    **Arguments:**

    - `seed`: the PRNG seed; experiment ``name`` gets ``fold_in(PRNGKey(seed), crc32(name))``.
    - `quick`: use each experiment's ``quick()`` sizes (``gltheory report --quick``).
    - `z_max`: stochastic rows are ok within ``z_max`` standard errors.
    """

    seed: int = 0
    quick: bool = False
    z_max: float = 3.0

    @classmethod
    def default(cls, *, seed: int = 0, quick: bool = False) -> ReportConfig:
        """The CLI settings; ``quick`` selects the experiments' smaller sizes."""
        return cls(seed=seed, quick=quick)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TOL_BASES: dict[str, str] = {
    "round-off": "floating-point round-off: a stated multiple of the float64 epsilon times the "
    "size of the quantities involved",
    "solver": "a solver's or quadrature's own stopping tolerance or error bound (e.g. the "
    "bisection bracket width atol + rtol |t|), times a stated factor",
    "discretisation": "an estimate of a discretisation or finite-range error made inside the "
    "experiment (e.g. Richardson: the same quantity at h and h/2)",
    "model": "a stated model error of the theory (its approximation order or finite-size "
    "correction), computed or bounded from a stated source",
    "reference": "the rounding of a printed reference value (half a unit of its last digit)",
    "exact": "an exact identity between integers (tol 0)",
    "threshold": "a stated acceptance threshold: the row checks a bound (e.g. r^2 >= 0.8), "
    "not an equality",
}
"""The allowed values of :attr:`Row.tol_basis`: where a deterministic row's tolerance comes from."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the report: a quantity, its theory value and its measurement.

    **Arguments:**

    - `name`: the quantity, including its convention (process, criterion, parameters).
    - `theory`, `measured`: floats, or ``None`` for "none exists" / "none found".
    - `se`: standard error of ``measured`` (stochastic rows), or
    - `tol`: absolute tolerance (deterministic rows); needs `tol_basis`.
    - `z_max`: a stochastic row is ok within ``z_max * se``.
    - `group`: the experiment that produced it.
    - `note`: how it was measured (kept in the JSON); with `tol`, it also says how the
      tolerance was derived, in a sentence containing ``tol =``.
    - `failure`: an error message; a failed row is always "off".
    - `tol_basis`: where `tol` comes from, one of :data:`TOL_BASES` (required with `tol`).

    Raises ``ValueError`` naming the argument for a row with neither `se` nor `tol` (unless
    both values are ``None`` or it failed), with both, with a negative or non-finite `tol`,
    with a `tol` whose `tol_basis` is missing or unknown or whose note does not
    state ``tol =``, and with a `tol_basis` without `tol`.
    """

    name: str
    theory: float | None
    measured: float | None
    se: float | None = None
    tol: float | None = None
    z_max: float = 3.0
    group: str = ""
    note: str = ""
    failure: str | None = None
    tol_basis: str | None = None

    def __post_init__(self):
        for f in ("theory", "measured", "se", "tol"):
            v = getattr(self, f)
            if v is not None:
                object.__setattr__(self, f, float(v))
        both_none = self.theory is None and self.measured is None
        if self.failure is None and not both_none and self.se is None and self.tol is None:
            raise ValueError(f"row {self.name!r} needs a standard error `se` or a tolerance `tol`.")
        if self.se is not None and self.tol is not None:
            raise ValueError(
                f"row {self.name!r}: give a standard error `se` or a tolerance `tol`, not both."
            )
        if self.tol is not None and not (math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"row {self.name!r}: `tol` must be finite and >= 0, got {self.tol}.")
        allowed = ", ".join(TOL_BASES)
        if self.tol is None:
            if self.tol_basis is not None:
                raise ValueError(
                    f"row {self.name!r}: `tol_basis`={self.tol_basis!r} is given without `tol`."
                )
            return
        if self.tol_basis not in TOL_BASES:
            raise ValueError(
                f"row {self.name!r}: a tolerance needs `tol_basis`, one of {allowed}; got "
                f"{self.tol_basis!r}."
            )
        if "tol =" not in self.note:
            raise ValueError(
                f"row {self.name!r}: `note` must say how the tolerance was derived (a sentence "
                f"containing 'tol = ...'), got {self.note!r}."
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        """The row of :meth:`to_dict`'s output (``report.json``); derived fields are ignored."""
        return cls(
            d["name"],
            d["theory"],
            d["measured"],
            se=d.get("se"),
            tol=d.get("tol"),
            z_max=d.get("z_max") or 3.0,
            group=d.get("group", ""),
            note=d.get("note", ""),
            failure=d.get("failure"),
            tol_basis=d.get("tol_basis"),
        )

    @property
    def error(self) -> float | None:
        """$|{\\rm measured}-{\\rm theory}|$ (``None`` when either is ``None``)."""
        if self.theory is None or self.measured is None:
            return None
        return abs(self.measured - self.theory)

    @property
    def z(self) -> float | None:
        """Error in units of the standard error (stochastic rows)."""
        err = self.error
        if err is None or self.se is None:
            return None
        return err / self.se if self.se > 0 else (0.0 if err == 0 else math.inf)

    @property
    def ok(self) -> bool:
        if self.failure is not None:
            return False
        if self.theory is None or self.measured is None:
            return self.theory is None and self.measured is None
        err = self.error
        if not math.isfinite(err):
            return False
        if self.se is not None:
            return err <= self.z_max * self.se
        return err <= self.tol

    @property
    def status(self) -> str:
        return "ok" if self.ok else "off"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "theory": self.theory,
            "measured": self.measured,
            "se": self.se,
            "tol": self.tol,
            "tol_basis": self.tol_basis,
            "error": self.error,
            "z": self.z,
            "z_max": self.z_max if self.se is not None else None,
            "status": self.status,
            "note": self.note,
            "failure": self.failure,
        }


@dataclasses.dataclass
class ExperimentResult:
    """What an experiment returns: rows, figures (``{file name: Figure}``) and JSON details."""

    rows: list[Row]
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A named experiment: ``run(config, key) -> ExperimentResult``.

    Its key is ``fold_in(PRNGKey(seed), crc32(name))``, so adding or reordering experiments
    never changes another experiment's random numbers.
    """

    name: str
    title: str
    run: Callable[[ReportConfig, jax.Array], ExperimentResult]


# ----------------------------------------------------------------------------------------------
# running and writing
# ----------------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Versions, device and platform, for the JSON."""
    devices = jax.devices()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "gltheory": _version("gltheory"),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "numpy": np.__version__,
        "equinox": _version("equinox"),
        "optimistix": _version("optimistix"),
        "diffrax": _version("diffrax"),
        "matplotlib": _version("matplotlib"),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind if devices else None,
        "x64": bool(jax.config.jax_enable_x64),
    }


@dataclasses.dataclass
class Report:
    """The outcome of :func:`run_report`."""

    config: ReportConfig
    rows: list[Row]
    figures: dict[str, Any]
    info: dict[str, Any]
    timings: dict[str, float]
    environment: dict[str, Any]

    @property
    def off(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.off

    def to_dict(self, files: Sequence[str] = ()) -> dict[str, Any]:
        return {
            "report": "gltheory report",
            "schema_version": 2,
            "status": "ok" if self.ok else "off",
            "n_rows": len(self.rows),
            "n_off": len(self.off),
            "off": [r.name for r in self.off],
            "rows": [r.to_dict() for r in self.rows],
            "config": self.config.to_dict(),
            "environment": self.environment,
            "timings_s": self.timings,
            "files": list(files),
            "experiments": self.info,
        }


def run_report(
    config: ReportConfig,
    experiments: Sequence[Experiment],
    *,
    log: Log | None = stderr_log,
) -> Report:
    """Run the experiments in order and collect their rows, figures, details and timings.

    Needs float64 (``jax.config.update("jax_enable_x64", True)`` before calling). An
    experiment that raises becomes one "off" row carrying the error; the others still run.

    **Arguments:**

    - `config`: seed, ``quick`` and ``z_max`` (:class:`ReportConfig`).
    - `experiments`: the experiments to run, in order (the full list is
      :data:`gltheory.experiments.EXPERIMENTS`).
    - `log`: receives one progress line per stage (``None`` for silence).

    **Returns:** the :class:`Report`.
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            "run_report needs float64: call jax.config.update('jax_enable_x64', True) first "
            "(the gltheory CLI does)."
        )
    log = log or (lambda msg: None)
    t0 = time.perf_counter()
    root = jax.random.PRNGKey(config.seed)
    rows: list[Row] = []
    figures: dict[str, Any] = {}
    info: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for k, exp in enumerate(experiments, 1):
        log(f"[{time.perf_counter() - t0:6.1f}s] ({k}/{len(experiments)}) {exp.title} ...")
        start = time.perf_counter()
        try:
            res = exp.run(config, jax.random.fold_in(root, zlib.crc32(exp.name.encode())))
        except Exception as e:  # noqa: BLE001 - a report reports failures as rows
            tb = traceback.format_exc()
            log(tb)
            res = ExperimentResult(
                [
                    Row(
                        f"{exp.name}: failed",
                        None,
                        None,
                        group=exp.name,
                        failure=f"{type(e).__name__}: {e}",
                    )
                ],
                info={"traceback": tb},
            )
        dt = time.perf_counter() - start
        timings[exp.name] = dt
        rows.extend(res.rows)
        figures.update(res.figures)
        info[exp.name] = res.info
        n_off = sum(not r.ok for r in res.rows)
        log(
            f"[{time.perf_counter() - t0:6.1f}s] ({k}/{len(experiments)}) {exp.name}: "
            f"{len(res.rows)} rows, {n_off} off, {dt:.1f}s"
        )
    timings["experiments_total"] = time.perf_counter() - t0
    return Report(config, rows, figures, info, timings, environment())


def write_report(
    report: Report, out_dir: str | os.PathLike, *, log: Log | None = stderr_log
) -> dict[str, Any]:
    """Write every figure (PNG) and ``report.json`` atomically into ``out_dir`` (created).

    In a multi-process run (``python -m gltheory.launch``) only process 0 writes; the others
    build and return the same JSON object without touching the folder.

    **Returns:** the JSON object written (the same that ``--json`` prints).
    """
    log = log or (lambda msg: None)
    writer = jax.process_index() == 0
    out = Path(out_dir)
    if writer:
        out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    files = []
    for name, fig in report.figures.items():
        if writer:
            _io.save_figure(out / name, fig)
        files.append(name)
    report.timings["figures"] = time.perf_counter() - start
    report.timings["total"] = report.timings["experiments_total"] + report.timings["figures"]
    files.append("report.json")
    obj = _io.to_jsonable(report.to_dict(files))
    if writer:
        _io.atomic_write_json(out / "report.json", obj)
        log(f"wrote {len(files)} files to {out} ({report.timings['figures']:.1f}s for figures)")
    return obj


# ----------------------------------------------------------------------------------------------
# the table
# ----------------------------------------------------------------------------------------------


def _fmt_value(v: float | None) -> str:
    if v is None:
        return "none"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.6f}" if 1e-3 <= abs(v) < 1e4 or v == 0 else f"{v:.4e}"


def _fmt_error(row: Row) -> str:
    if row.failure is not None:
        return "failed"
    if row.error is None:
        return "-" if row.theory is None and row.measured is None else "n/a"
    if row.se is not None:
        return f"{row.z:.2f} SE (SE {row.se:.1e})"
    return f"{row.error:.1e} (tol {row.tol:.0e}, {row.tol_basis})"


def format_table(rows: Sequence[Row]) -> str:
    """The human-readable "theory vs measurement" table."""
    header = ("quantity", "theory", "measured", "error/SE", "status")
    body = [
        (r.name, _fmt_value(r.theory), _fmt_value(r.measured), _fmt_error(r), r.status)
        for r in rows
    ]
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)
    ]
    align = ("<", ">", ">", ">", "<")

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    group = None
    for r, b in zip(rows, body):
        if group is not None and r.group != group:
            out.append("")
        group = r.group
        out.append(line(b))
    return "\n".join(out)
