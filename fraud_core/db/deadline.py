"""Client-side deadlines for PostgreSQL calls: no statement, commit or COPY waits forever.

PostgreSQL's own ``statement_timeout`` and ``lock_timeout`` bound a slow query or a lock, but only
while the server runs: a frozen server (stopped, swapped out, a hung VM, a network that drops
packets without a reset) answers nothing, and libpq waits in ``poll()`` for ever. psycopg2's green
mode could bound that wait but refuses ``COPY``, which the warehouse's loads and history reads use.

So each PostgreSQL connection of :func:`fraud_core.db.make_engine` is a :class:`GuardedConnection`:
every ``execute``, ``executemany``, ``copy_expert``, ``commit`` and ``rollback`` arms a deadline
with one watchdog thread per process; when the call has not returned by then, the watchdog shuts
the connection's socket down, the blocked call returns at once with an error, and that error is
re-raised as :class:`DeadlineExceeded` naming the wait. The connection is dead afterwards, and the
pool discards it. The deadline is the role's statement time-out plus a grace, so it only fires
when the server failed to enforce its own time-out; :func:`statement_deadline` tightens it for a
block (``/predict``'s one-row read).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.extensions

log = logging.getLogger(__name__)

#: How often the watchdog looks at the armed deadlines (its resolution).
TICK_SECONDS = 0.05

_override: contextvars.ContextVar[float | None] = contextvars.ContextVar("fraud_statement_deadline", default=None)


class DeadlineExceeded(psycopg2.OperationalError):
    """The warehouse did not answer a call within its client-side deadline (the connection was cut)."""


class _Watchdog:
    """One thread that cuts the sockets of calls past their deadline."""

    def __init__(self) -> None:
        self._armed: dict[int, tuple[float, int, GuardedConnection]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def arm(self, connection: GuardedConnection, seconds: float) -> int:
        token = next(self._ids)
        fd = connection.fileno()
        with self._lock:
            self._armed[token] = (time.monotonic() + seconds, fd, connection)
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                # a forked child (uvicorn workers, Dask) has no watchdog thread of its own yet
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="db-deadline-watchdog", daemon=True)
                self._thread.start()
        return token

    def disarm(self, token: int) -> None:
        with self._lock:
            self._armed.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            now = time.monotonic()
            with self._lock:
                expired = [(t, fd, c) for t, (deadline, fd, c) in self._armed.items() if deadline <= now]
                for token, fd, connection in expired:
                    del self._armed[token]
                    # Under the lock: the caller cannot disarm, return and close the fd meanwhile.
                    connection._deadline_fired = True
                    _cut(fd)


def _cut(fd: int) -> None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:  # already closed
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def statement_deadline(seconds: float) -> Iterator[None]:
    """Give the PostgreSQL calls made in this block (this thread or task) at most ``seconds`` each."""
    token = _override.set(seconds)
    try:
        yield
    finally:
        _override.reset(token)


@contextlib.contextmanager
def _guard(connection: GuardedConnection, what: str) -> Iterator[None]:
    seconds = _override.get()
    if seconds is None:
        seconds = connection.deadline_seconds
    if seconds is None or seconds <= 0 or connection.closed:
        yield
        return
    connection._deadline_fired = False
    token = _WATCHDOG.arm(connection, seconds)
    try:
        yield
    except psycopg2.Error as exc:
        _WATCHDOG.disarm(token)
        if connection._deadline_fired:
            raise DeadlineExceeded(
                f"the warehouse did not answer {what} within {seconds:g} s "
                "(client deadline: the server is frozen or unreachable); the connection was closed"
            ) from exc
        raise
    else:
        _WATCHDOG.disarm(token)


class GuardedCursor(psycopg2.extensions.cursor):
    """A cursor whose blocking calls carry their connection's deadline."""

    connection: GuardedConnection

    def execute(self, query: Any, vars: Any = None) -> Any:
        with _guard(self.connection, "a statement"):
            return super().execute(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> Any:
        with _guard(self.connection, "a statement"):
            return super().executemany(query, vars_list)

    def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> Any:
        with _guard(self.connection, "a COPY"):
            return super().copy_expert(sql, file, size)

    def callproc(self, procname: Any, parameters: Any = None) -> Any:
        with _guard(self.connection, "a call"):
            return super().callproc(procname, parameters)


class GuardedConnection(psycopg2.extensions.connection):
    """A psycopg2 connection whose blocking calls have a deadline (``deadline_seconds``; ``None``: none)."""

    deadline_seconds: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline_fired = False
        self.cursor_factory = GuardedCursor

    def commit(self) -> None:
        with _guard(self, "a commit"):
            super().commit()

    def rollback(self) -> None:
        with _guard(self, "a rollback"):
            super().rollback()


_CLASSES: dict[float | None, type[GuardedConnection]] = {}


def connection_class(deadline_seconds: float | None) -> type[GuardedConnection]:
    """The :class:`GuardedConnection` class whose calls get ``deadline_seconds`` (one class per value)."""
    found = _CLASSES.get(deadline_seconds)
    if found is None:
        found = type(
            f"GuardedConnection_{deadline_seconds}", (GuardedConnection,), {"deadline_seconds": deadline_seconds}
        )
        _CLASSES[deadline_seconds] = found
    return found
