"""Start a multi-process JAX run on one machine: ``python -m gltheory.launch -n 2 -- COMMAND``.

Starts ``n`` copies of ``COMMAND``, each with the environment that
:func:`gltheory.distributed.initialize` (and so ``gltheory report``) reads:

- ``JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT`` (a free port unless ``--port`` is given),
- ``JAX_NUM_PROCESSES=n`` and ``JAX_PROCESS_ID=i``,
- optionally ``JAX_PLATFORMS=cpu`` (``--cpu``), ``--xla_force_host_platform_device_count=K``
  in ``XLA_FLAGS`` (``--host-devices K``: K CPU devices per process), or
  ``JAX_LOCAL_DEVICE_IDS`` (``--devices-per-process K``: process ``i`` gets accelerators
  ``i*K .. i*K+K-1``).

A command starting with ``gltheory`` runs as ``python -m gltheory`` with this interpreter.

Supervision: SIGINT, SIGTERM and SIGHUP sent to the launcher are forwarded to every process
(each runs in its own session, so a terminal's Ctrl-C reaches them once, through the launcher).
When a process exits with a non-zero status or is killed, the launcher prints which one and
how, waits ``--grace`` seconds for the others to end by themselves, then sends them SIGTERM
and, ``--kill-after`` seconds later, SIGKILL: a run never hangs on a dead peer. The exit status
is 0 when every process succeeded, else that of the first process that failed (``128 + N``
for a signal ``N``); 2 for bad arguments. This module imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

__all__ = ["build_parser", "parse_args", "child_env", "free_port", "main"]

POLL_SECONDS = 0.05


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number), got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(
            f"expected a port in 0..65535 (0: a free one), got {value}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gltheory.launch",
        description=(
            "Run COMMAND as n processes of one JAX multi-process run on this machine "
            "(e.g. python -m gltheory.launch -n 2 -- gltheory report --only cloning)."
        ),
    )
    parser.add_argument(
        "-n",
        "--num-processes",
        type=_positive_int,
        required=True,
        metavar="N",
        help="number of processes",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=0,
        help="coordinator port on 127.0.0.1 (default: a free one)",
    )
    parser.add_argument("--cpu", action="store_true", help="run JAX on the CPU (JAX_PLATFORMS=cpu)")
    parser.add_argument(
        "--host-devices",
        type=_positive_int,
        default=None,
        metavar="K",
        help="K CPU devices per process (XLA_FLAGS=--xla_force_host_platform_device_count=K)",
    )
    parser.add_argument(
        "--devices-per-process",
        type=_positive_int,
        default=None,
        metavar="K",
        help="give process i the accelerators i*K..i*K+K-1 (JAX_LOCAL_DEVICE_IDS)",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="after a process fails, seconds the others get to end by themselves (default 10)",
    )
    parser.add_argument(
        "--kill-after",
        type=_seconds,
        default=5.0,
        metavar="S",
        help="seconds between SIGTERM and SIGKILL of the remaining processes (default 5)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the launcher's arguments; ``args.command`` is the command without the ``--``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("COMMAND is missing: python -m gltheory.launch -n N -- COMMAND [ARGS...]")
    if command[0] == "gltheory":
        command = [sys.executable, "-m", "gltheory", *command[1:]]
    args.command = command
    return args


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def child_env(
    base: dict[str, str], args: argparse.Namespace, index: int, address: str
) -> dict[str, str]:
    """The environment of process ``index``: ``base`` plus the variables of the module docstring."""
    env = dict(base)
    env["JAX_COORDINATOR_ADDRESS"] = address
    env["JAX_NUM_PROCESSES"] = str(args.num_processes)
    env["JAX_PROCESS_ID"] = str(index)
    env.pop("GLTHEORY_DISTRIBUTED", None)
    if args.cpu:
        env["JAX_PLATFORMS"] = "cpu"
    if args.host_devices is not None:
        flags = [
            f
            for f in env.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")
        ]
        flags.append(f"--xla_force_host_platform_device_count={args.host_devices}")
        env["XLA_FLAGS"] = " ".join(flags)
    if args.devices_per_process is not None:
        k = args.devices_per_process
        env["JAX_LOCAL_DEVICE_IDS"] = ",".join(str(index * k + j) for j in range(k))
    return env


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _log(msg: str) -> None:
    print(f"gltheory.launch: {msg}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the launcher; **returns** its exit status (module docstring)."""
    args = parse_args(argv)
    port = args.port or free_port()
    address = f"127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    forwarded: list[int] = []

    def forward(signum, frame):
        forwarded.append(signum)
        for p in procs:
            if p.poll() is None:
                _signal_group(p, signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for i in range(args.num_processes):
            try:
                procs.append(
                    subprocess.Popen(
                        args.command,
                        env=child_env(dict(os.environ), args, i, address),
                        start_new_session=True,
                    )
                )
            except OSError as e:
                _log(f"cannot start {args.command[0]!r}: {e.strerror or e}")
                for p in procs:
                    _signal_group(p, signal.SIGKILL)
                return 127
        return _supervise(procs, args, forwarded)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _supervise(procs: list[subprocess.Popen], args: argparse.Namespace, forwarded) -> int:
    failed: tuple[int, int] | None = None  # (index, return code) of the first failure
    deadline_term = deadline_kill = None
    while True:
        codes = [p.poll() for p in procs]
        now = time.monotonic()
        if failed is None:
            for i, rc in enumerate(codes):
                if rc is not None and rc != 0:
                    failed = (i, rc)
                    alive = [j for j, c in enumerate(codes) if c is None]
                    if alive and not forwarded:
                        _log(
                            f"process {i} (pid {procs[i].pid}) {_describe(rc)}; stopping the "
                            f"other {len(alive)} process(es) {alive} if they have not ended "
                            f"within {args.grace:g}s."
                        )
                    elif not forwarded:
                        _log(f"process {i} (pid {procs[i].pid}) {_describe(rc)}.")
                    deadline_term = now + args.grace
                    deadline_kill = deadline_term + args.kill_after
                    break
        if all(c is not None for c in codes):
            break
        if failed is not None and deadline_term is not None and now >= deadline_term:
            for j, c in enumerate(codes):
                if c is None:
                    _log(f"terminating process {j} (pid {procs[j].pid}).")
                    _signal_group(procs[j], signal.SIGTERM)
            deadline_term = None
        if failed is not None and deadline_kill is not None and now >= deadline_kill:
            for j, c in enumerate(codes):
                if c is None:
                    _log(f"killing process {j} (pid {procs[j].pid}).")
                    _signal_group(procs[j], signal.SIGKILL)
            deadline_kill = None
        time.sleep(POLL_SECONDS)
    if failed is None:
        return 0
    i, rc = failed
    status = 128 - rc if rc < 0 else rc
    if not forwarded:
        _log(f"run failed: process {i} {_describe(rc)} (exit status {status}).")
    return status


if __name__ == "__main__":
    sys.exit(main())
