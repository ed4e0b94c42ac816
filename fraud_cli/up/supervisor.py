"""A small process supervisor for ``fraud-detector up``: children, logs, readiness and a clean stop.

Every child runs in its own session (so its own process group): Ctrl-C in the terminal reaches the
supervisor alone, which then stops the children in the reverse order of their start. Stopping a
child means SIGTERM to its whole process group, a grace period, then SIGKILL; descendants that left
the group (Prefect starts each flow run in a session of its own) are found beforehand with
``psutil`` and stopped the same way, so nothing outlives ``up``.

Each child writes stdout and stderr to ``<log_dir>/<name>.log``; when one dies, the error names it
and quotes the end of its log.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from fraud_cli.errors import UserError

#: Seconds a child gets between SIGTERM and SIGKILL.
DEFAULT_GRACE_SECONDS = 20.0
#: Lines of a dead child's log quoted in the error.
LOG_TAIL_LINES = 15


class SupervisorError(UserError):
    """A child failed to start, died, or a step failed: the message says which and why."""


class Interrupted(Exception):  # noqa: N818  (a signal, not an error)
    """SIGINT or SIGTERM arrived: stop everything."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (binding there fails).

    ``SO_REUSEADDR`` is set as servers set it, so a port left in TIME_WAIT by a server that just
    stopped counts as free, and a listening socket (on this address or on 0.0.0.0) does not.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on right now (tests and examples)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def http_ok(url: str, *, timeout: float = 2.0) -> bool:
    """Whether ``GET url`` answers 2xx (connection errors and time-outs count as no)."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.is_success


@dataclass
class Child:
    """A process the supervisor started.

    Attributes:
        name: short name, also the log file's stem.
        argv: the command.
        log_path: where its stdout and stderr go.
        process: the running process.
        started: ``time.monotonic()`` at start.
        long_running: a server or worker (its exit is a failure) rather than a one-shot step.
    """

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes]
    started: float
    long_running: bool = True
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def describe_exit(self) -> str:
        code = self.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited {code}"
        last = tail(self.log_path)
        quoted = "\n".join(f"    {line}" for line in last.splitlines())
        return f"{self.name} {how} (log: {self.log_path})" + (f"; its log ends with:\n{quoted}" if quoted else "")


class Supervisor:
    """Start, watch and stop child processes.

    Args:
        log_dir: where ``<name>.log`` files go (created).
        env: the environment every child gets (``os.environ`` plus what ``up`` exports).
        cwd: the children's working directory.
        echo: where progress lines go (the terminal).
        grace_seconds: between SIGTERM and SIGKILL.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        echo: Callable[[str], None] = print,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.echo = echo
        self.grace_seconds = grace_seconds
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ starting

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        long_running: bool = True,
    ) -> Child:
        """Start ``argv`` in a new session, its output appended to ``<log_dir>/<name>.log``."""
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("ab")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        command = shlex.join(argv).replace("\n", "\\n")  # one line, whatever the arguments hold
        log.write(f"\n==== {stamp} {command}\n".encode())
        log.flush()
        child_env = {**self.env, **(env or {})}
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            raise SupervisorError(f"cannot start {name} ({argv[0]}): {exc}") from exc
        child = Child(name, list(argv), log_path, process, time.monotonic(), long_running, log)
        self.children.append(child)
        return child

    def run(self, name: str, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> Child:
        """Run a one-shot step to completion (logged like a child); fail if it exits non-zero.

        While it runs the long-running children are watched too: one of them dying fails the step.
        """
        child = self.start(name, argv, env=env, long_running=False)
        deadline = time.monotonic() + timeout
        try:
            while child.alive():
                self.check_children()
                if time.monotonic() > deadline:
                    raise SupervisorError(f"{name} did not finish within {timeout:g} s (log: {child.log_path})")
                time.sleep(0.1)
        finally:
            if child.alive():
                self._stop(child)
            self._forget(child)
        if child.process.returncode != 0:
            raise SupervisorError(f"step {child.describe_exit()}")
        return child

    def _forget(self, child: Child) -> None:
        if child._log is not None:
            child._log.close()
            child._log = None
        if child in self.children:
            self.children.remove(child)

    # ------------------------------------------------------------------ watching

    def check_children(self) -> None:
        """Raise :class:`SupervisorError` if a long-running child has exited."""
        for child in self.children:
            if child.long_running and not child.alive():
                raise SupervisorError(child.describe_exit())

    def wait_until(
        self, what: str, probe: Callable[[], bool], *, timeout: float, child: Child | None = None, every: float = 0.25
    ) -> float:
        """Poll ``probe`` until it answers true; fail on time-out or if a child dies meanwhile.

        Returns:
            Seconds waited.
        """
        began = time.monotonic()
        while True:
            self.check_children()
            if probe():
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                where = f" (log: {child.log_path})" if child is not None else ""
                raise SupervisorError(f"{what} was not ready within {timeout:g} s{where}")
            time.sleep(every)

    def watch(self, *, every: float = 0.5) -> None:
        """Block until a child dies (raises :class:`SupervisorError`) or a signal interrupts."""
        while True:
            self.check_children()
            time.sleep(every)

    # ------------------------------------------------------------------ stopping

    def stop_all(self) -> list[tuple[str, int | None]]:
        """Stop every child, last started first, and wait for each.

        Returns:
            ``(name, return code)`` of each child, in stopping order.
        """
        stopped: list[tuple[str, int | None]] = []
        for child in reversed(list(self.children)):
            self._stop(child)
            stopped.append((child.name, child.process.returncode))
            self._forget(child)
        return stopped

    def _stop(self, child: Child) -> None:
        descendants = _descendants(child.pid)
        if child.alive():
            _signal_group(child.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=self.grace_seconds)
        if child.alive():
            self.echo(f"  {child.name} did not stop within {self.grace_seconds:g} s: killing it")
            _signal_group(child.pid, signal.SIGKILL)
            child.process.wait(timeout=10)
        else:
            # The leader has gone: whatever is left of its group goes too.
            _signal_group(child.pid, signal.SIGKILL)
        _stop_processes(descendants + _descendants(child.pid), self.grace_seconds)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _stop_processes(pids: Sequence[int], grace_seconds: float) -> None:
    """SIGTERM the processes that still run, wait, then SIGKILL the rest."""
    procs: list[psutil.Process] = []
    for pid in dict.fromkeys(pids):
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            proc.terminate()
            procs.append(proc)
    _, alive = psutil.wait_procs(procs, timeout=grace_seconds)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


class SignalGuard:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` inside a ``with`` block.

    Call :meth:`quiet` before stopping the children: from then on signals are ignored, so a second
    Ctrl-C cannot interrupt the stop half-way. The previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._quiet = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: object) -> None:
        self.received.append(signum)
        if self._quiet or len(self.received) > 1:
            return
        raise Interrupted(signum)

    def quiet(self) -> None:
        """Ignore further signals (the stop is under way)."""
        self._quiet = True

    def __enter__(self) -> SignalGuard:
        self._previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
