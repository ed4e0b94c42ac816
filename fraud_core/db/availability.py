"""Is the warehouse answering? A circuit breaker for request paths that must answer fast.

When a call to the warehouse fails because the warehouse is down, frozen, locked or too slow
(:func:`is_unavailable`), :meth:`Availability.failed` marks it down: from then on
:meth:`Availability.check` refuses at once with :class:`WarehouseUnavailableError` (the web app's
503 with ``Retry-After``) instead of letting every request wait for its own time-out. One
background thread probes the warehouse every ``probe_interval`` seconds and marks it up again
after the first probe that succeeds. Each change of state is logged once, with its cause; requests
refused meanwhile log nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg2
import sqlalchemy.exc as sa_exc

log = logging.getLogger(__name__)


class WarehouseUnavailableError(RuntimeError):
    """The warehouse cannot serve this request now; try again after ``retry_after`` seconds.

    Attributes:
        reason: why, in one line (the error that marked it down).
        retry_after: seconds after which a retry may succeed.
    """

    def __init__(self, reason: str, *, retry_after: float) -> None:
        super().__init__(f"the warehouse is unavailable: {reason}")
        self.reason = reason
        self.retry_after = retry_after


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the warehouse could not answer (connection, time-out, lock), not a bug."""
    if isinstance(exc, WarehouseUnavailableError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True  # the pool's wait for a connection, or an error SQLAlchemy raised itself
    return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an error, the driver's error when SQLAlchemy wrapped one."""
    inner: BaseException = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0][:200]}" if lines else type(inner).__name__


class Availability:
    """The warehouse's state as request paths see it, with a background probe while it is down.

    Args:
        probe: raises when the warehouse cannot serve (bounded by its own time-outs).
        probe_interval: seconds between probes while down.
        retry_after: what refused requests are told to wait.
        name: what the log lines call it.
    """

    def __init__(
        self,
        probe: Callable[[], None],
        *,
        probe_interval: float = 0.5,
        retry_after: float = 1.0,
        name: str = "warehouse",
    ) -> None:
        self._probe = probe
        self.probe_interval = probe_interval
        self.retry_after = retry_after
        self.name = name
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._reason: str | None = None
        self._prober: threading.Thread | None = None
        self._closed = False

    @property
    def up(self) -> bool:
        return self._down_since is None

    @property
    def reason(self) -> str | None:
        """Why it is down (``None`` while up)."""
        return self._reason

    def check(self) -> None:
        """Refuse at once while the warehouse is down.

        Raises:
            WarehouseUnavailableError: it is down.
        """
        if self._down_since is not None:
            raise WarehouseUnavailableError(self._reason or "unavailable", retry_after=self.retry_after)

    def failed(self, exc: BaseException) -> WarehouseUnavailableError | None:
        """Record a failed call: an unavailability marks the warehouse down and returns the error to raise.

        Returns:
            The error to raise instead of ``exc`` (``raise error from exc``), or ``None`` when
            ``exc`` is not an unavailability (a bug, bad data: let it through).
        """
        if not is_unavailable(exc):
            return None
        reason = exc.reason if isinstance(exc, WarehouseUnavailableError) else one_line(exc)
        with self._lock:
            if self._down_since is None and not self._closed:
                self._down_since = time.monotonic()
                self._reason = reason
                log.warning("%s unavailable (%s): answering 503 until a probe succeeds", self.name, reason)
                self._prober = threading.Thread(target=self._probe_until_up, name=f"{self.name}-probe", daemon=True)
                self._prober.start()
        return WarehouseUnavailableError(self._reason or reason, retry_after=self.retry_after)

    def close(self) -> None:
        """Stop probing (the app is shutting down)."""
        self._closed = True

    def _probe_until_up(self) -> None:
        attempts = 0
        while not self._closed:
            time.sleep(self.probe_interval)
            attempts += 1
            try:
                self._probe()
            except Exception as exc:  # still down; say why only when the reason changes
                reason = one_line(exc)
                if reason != self._reason:
                    log.info("%s still unavailable: %s", self.name, reason)
                    self._reason = reason
                continue
            with self._lock:
                since = self._down_since or time.monotonic()
                self._down_since = None
                self._reason = None
            log.warning(
                "%s available again after %.1f s (%d probe(s)): serving", self.name, time.monotonic() - since, attempts
            )
            return
