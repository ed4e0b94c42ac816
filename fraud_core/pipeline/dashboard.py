"""The dashboard's only door to the warehouse: one method per view, each one repository call.

Views never hold SQL; they call these methods, which open one short :func:`session_scope` each and
call :mod:`fraud_core.db.repository`. Everything here is synchronous; the views run it in a worker
thread so that a slow query never stalls the server's event loop (and ``/predict`` with it).

Reads are shared by every session for ``cache_seconds`` (:class:`SharedReads`): twenty analysts
whose Live tabs refresh every three seconds cost the warehouse one query per period, not twenty.
An action (a verdict) forgets the shared reads, so its author sees it at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeVar

import pandas as pd
from sqlalchemy.engine import Engine

from fraud_core.db import repository, session_scope
from fraud_core.db.repository import DailyKpis


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What the Live view shows: the day's KPIs and the latest scored transactions."""

    day: date | None
    kpis: DailyKpis | None
    latest: pd.DataFrame


@dataclass(frozen=True, slots=True)
class QualitySnapshot:
    """The latest quality report (``None`` fields: no report yet)."""

    created_at: datetime | None
    status: str | None
    window_start: datetime | None
    window_end: datetime | None
    markdown: str
    checks: list[Any]


T = TypeVar("T")


class SharedReads:
    """Results of reads kept for ``ttl`` seconds, shared by every caller; one load per key at a time."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._values: dict[Hashable, tuple[float, Any]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self.loads = 0

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        if self.ttl <= 0:
            return load()
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # callers of the same key wait for one load instead of each running it
            found = self._values.get(key)
            if found is not None and self._clock() - found[0] < self.ttl:
                return found[1]
            value = load()
            self.loads += 1
            self._values[key] = (self._clock(), value)
            return value

    def clear(self) -> None:
        with self._guard:
            self._values.clear()


class DashboardData:
    """Repository reads for the views, against one engine, shared between sessions for a moment."""

    def __init__(self, engine_getter: Any, *, cache_seconds: float = 0.0) -> None:
        """Args:
        engine_getter: a callable returning the (started) app's engine.
        cache_seconds: how long a read's result is shared by every session (0: not at all).
        """
        self._engine_getter = engine_getter
        self.shared = SharedReads(cache_seconds)

    @property
    def engine(self) -> Engine:
        return self._engine_getter()

    def _session(self) -> Any:

        return session_scope(self.engine)

    # live -----------------------------------------------------------------------------------
    def today(self) -> date | None:
        """The data's "today": the UTC day of the newest transaction (replays run in the past)."""
        return self.shared.get(("today",), self._today)

    def _today(self) -> date | None:
        with self._session() as session:
            latest = repository.latest_event_time(session=session)
        return latest.date() if latest is not None else None

    def live(self, *, limit: int = 25) -> LiveSnapshot:
        return self.shared.get(("live", limit), lambda: self._live(limit))

    def _live(self, limit: int) -> LiveSnapshot:
        with self._session() as session:
            latest_time = repository.latest_event_time(session=session)
            day = latest_time.date() if latest_time is not None else None
            kpis = repository.daily_kpis(day, session=session) if day is not None else None
            latest = repository.latest_scored_transactions(session=session, limit=limit)
        return LiveSnapshot(day=day, kpis=kpis, latest=latest)

    # performance ------------------------------------------------------------------------------
    def labelled_predictions(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        return self.shared.get(("labelled", start, end), lambda: self._labelled(start, end))

    def _labelled(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        with self._session() as session:
            return repository.labelled_predictions(session=session, start=start, end=end)

    # explore ----------------------------------------------------------------------------------
    def explore(self, start: datetime | None, end: datetime | None) -> dict[str, pd.DataFrame]:
        return self.shared.get(("explore", start, end), lambda: self._explore(start, end))

    def _explore(self, start: datetime | None, end: datetime | None) -> dict[str, pd.DataFrame]:
        with self._session() as session:
            out: dict[str, pd.DataFrame] = {
                "amounts": repository.amount_distribution(session=session, start=start, end=end),
                "volume": repository.volume_over_time(session=session, start=start, end=end, freq="day"),
            }
            for dimension in ("category", "hour", "state"):
                out[dimension] = repository.fraud_rate_by(dimension, session=session, start=start, end=end)
        return out

    # review -----------------------------------------------------------------------------------
    def review_queue(self, *, limit: int = 100) -> pd.DataFrame:
        return self.shared.get(("review", limit), lambda: self._review(limit))

    def _review(self, limit: int) -> pd.DataFrame:
        with self._session() as session:
            return repository.review_queue(session=session, limit=limit)

    def record_verdict(self, trans_num: str, is_fraud: bool, *, analyst: str, note: str | None = None) -> None:

        with self._session() as session:
            repository.record_verdict(trans_num, is_fraud, session=session, analyst=analyst, note=note)
        self.shared.clear()

    # quality ----------------------------------------------------------------------------------
    def quality(self) -> QualitySnapshot:
        return self.shared.get(("quality",), self._quality)

    def _quality(self) -> QualitySnapshot:
        with self._session() as session:
            report = repository.latest_quality_report(session=session)
            if report is None:
                return QualitySnapshot(None, None, None, None, "", [])
            return QualitySnapshot(
                created_at=report.created_at,
                status=report.status,
                window_start=report.window_start,
                window_end=report.window_end,
                markdown=report.markdown or "",
                checks=list(report.checks or []),
            )


def default_window(today: date | None, days: int = 30) -> tuple[datetime, datetime] | None:
    """The last ``days`` days up to the end of ``today`` (naive UTC)."""
    if today is None:
        return None
    end = datetime.combine(today + timedelta(days=1), datetime.min.time())
    return end - timedelta(days=days), end


Freq = Literal["hour", "day"]
