"""Command-line interface: ``gltheory report [--out DIR] [--json] [--quick] [--seed N]``.

Exit codes: 0 when every row of the report is ok, 1 when any row is off (they are listed on
stderr), 2 for bad arguments (argparse's convention; also an ``--out`` folder that cannot be
created or written: it is checked, by creating and removing a file in it, before any experiment
runs), 130 after Ctrl-C (one line on stderr; files are written atomically, so none is partial,
and an ``--out`` folder this run created and left empty is removed).

Heavy imports (the report, the experiments, matplotlib) happen only when a command runs, so
``--help`` is quick. Float64 is switched on here, in the program's entry point, never at
``import gltheory``; so is JAX's persistent compilation cache
(:func:`gltheory.config.enable_compilation_cache`, in ``--cache-dir``, default
``$GLTHEORY_CACHE_DIR`` or ``~/.cache/gltheory/jax``; ``--no-cache`` leaves it off). The experiments come from the registry
:data:`gltheory.experiments.EXPERIMENTS`, passed to :func:`gltheory.report.run_report`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

DEFAULT_OUT = "gltheory-report"


def _nonneg_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0 or value >= 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gltheory",
        description="Statistical physics of diffusion models: theory vs measurement.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rep = sub.add_parser(
        "report",
        help="run the default experiments and compare them with theory",
        description=(
            "Run the default experiment set (critical times of two deltas under OU/VP/VE; class "
            "fractions and forward-marginal variances from the exact-score reverse SDE; a 2-D "
            "Gaussian) in float64, print a 'theory vs measurement' table, and write figures and "
            "report.json into --out. Stochastic rows are ok within 3 standard errors (so a "
            "correct row is off by chance 0.27% of the time; the default seed passes). "
            "Exit status: 0 all rows ok, 1 some row off, 2 bad arguments."
        ),
    )
    rep.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output folder, created if needed (default: ./{DEFAULT_OUT})",
    )
    rep.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON on stdout (the table goes to stderr)",
    )
    rep.add_argument(
        "--quick", action="store_true", help="smaller ensembles and grids (~3x faster)"
    )
    rep.add_argument(
        "--seed", type=_nonneg_int, default=0, metavar="N", help="PRNG seed (default 0)"
    )
    rep.add_argument(
        "--only",
        default=None,
        metavar="NAMES",
        help="run only these experiments (comma-separated names, in the default order; see --list)",
    )
    rep.add_argument("--list", action="store_true", help="list the experiment names and exit")
    rep.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="JAX's persistent compilation cache (default: $GLTHEORY_CACHE_DIR, else "
        "~/.cache/gltheory/jax); a second run loads the programs the first one compiled",
    )
    rep.add_argument(
        "--no-cache", action="store_true", help="do not use the persistent compilation cache"
    )
    rep.set_defaults(func=_cmd_report)
    return parser


def _cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # lazy: the report and the experiments (and through them matplotlib) load only here
    from . import experiments as registry, report as rep

    if args.list:
        for e in registry.EXPERIMENTS:
            print(f"{e.name:22s} {e.title}")
        return 0
    experiments = list(registry.EXPERIMENTS)
    if args.only is not None:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        names = [e.name for e in experiments]
        unknown = [w for w in wanted if w not in names]
        if unknown or not wanted:
            parser.error(
                f"--only {args.only!r}: unknown experiment(s) {unknown}; "
                f"allowed (comma-separated): {', '.join(names)}"
            )
        experiments = [e for e in experiments if e.name in wanted]
    out = os.path.abspath(args.out)
    created = _prepare_out(args.out, out, parser)
    try:
        return _run_report(args, parser, rep, experiments, out)
    except KeyboardInterrupt:
        if created:  # leave no empty folder behind either
            try:
                os.rmdir(out)
            except OSError:
                pass
        raise


def _fail(parser: argparse.ArgumentParser, message: str) -> None:
    """Exit with status 2 and one line on stderr (no usage block)."""
    parser.exit(2, f"gltheory report: error: {message}\n")


def _prepare_out(given: str, out: str, parser: argparse.ArgumentParser) -> bool:
    """Create ``out`` if needed and prove it writable by creating and removing a file in it.

    Runs before any experiment; a problem exits with status 2 and one line. **Returns:**
    whether the folder was created here.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        _fail(parser, f"--out {given!r} exists and is not a folder")
    created = not os.path.exists(out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        _fail(parser, f"cannot create --out folder {given!r}: {e.strerror or e}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".gltheory-write-test-", dir=out)
        try:
            os.close(fd)
        finally:
            os.unlink(probe)
    except OSError as e:
        if created:
            try:
                os.rmdir(out)
            except OSError:
                pass
        _fail(parser, f"--out folder {given!r} is not writable: {e.strerror or e}")
    return created


def _run_report(args, parser, rep, experiments, out: str) -> int:
    t_start = time.perf_counter()
    import jax

    jax.config.update("jax_enable_x64", True)
    # under `python -m gltheory.launch` (or JAX_NUM_PROCESSES=...): join the other processes
    # and check that they run the same command; a single process starts nothing
    from .distributed import initialize

    try:
        initialize(config={k: v for k, v in vars(args).items() if k != "func"})
    except ValueError as e:  # e.g. another process runs other arguments
        _fail(parser, str(e))
    if not args.no_cache:
        from .config import enable_compilation_cache

        try:
            enable_compilation_cache(args.cache_dir)
        except OSError as e:
            _fail(parser, f"cannot use --cache-dir {args.cache_dir!r}: {e.strerror or e}")
    import matplotlib

    matplotlib.use("Agg")  # figures use the Agg canvas; never open a window

    log = rep.stderr_log
    only = f" only={','.join(e.name for e in experiments)}" if args.only is not None else ""
    log(f"gltheory report: out={out} seed={args.seed}{' quick' if args.quick else ''}{only}")
    config = rep.ReportConfig.default(seed=args.seed, quick=args.quick)
    result = rep.run_report(config, experiments, log=log)
    obj = rep.write_report(result, out, log=log)

    table = rep.format_table(result.rows)
    summary = (
        f"{len(result.rows) - len(result.off)}/{len(result.rows)} rows ok in "
        f"{time.perf_counter() - t_start:.1f}s; files in {out}"
    )
    if jax.process_index() != 0:
        pass  # several processes: process 0 prints (and writes) the report
    elif args.json:
        print(table, file=sys.stderr)
        print(summary, file=sys.stderr)
        json.dump(obj, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(table)
        print()
        print(summary)
    sys.stdout.flush()
    if result.off:
        print(f"OFF ({len(result.off)} rows):", file=sys.stderr)
        for r in result.off:
            detail = r.failure or f"theory {r.theory}, measured {r.measured}, " + (
                f"{r.z:.2f} SE" if r.z is not None else f"error {r.error} > tol {r.tol}"
            )
            print(f"  {r.name}: {detail}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gltheory`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args, parser)
    except KeyboardInterrupt:
        print(
            "gltheory: interrupted (Ctrl-C); no partial files were left.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
