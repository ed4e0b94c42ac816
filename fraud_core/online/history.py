"""One card's history for one transaction, in one prepared PostgreSQL statement (``/predict``'s fast path).

Reads what :func:`fraud_core.online.features.features_one` needs (:class:`CardHistory`): the card's
transactions of the longest window before the transaction's second, the last one before that window,
and whether the card bought in the category before. The selection is
:func:`fraud_core.features.select_card_history`'s, restricted to one card; a test checks the
features it gives against the batch.

One reader per process holds one connection with the statement prepared on it, so a request costs
one round trip; it reconnects once when the connection was lost. Each read is bounded: the server
cancels it after ``timeout_ms`` (a lock, a slow plan), and the caller's client-side deadline cuts
the connection when the server does not answer at all (``deadline``, a context manager factory:
:func:`fraud_core.db.deadline.statement_deadline`, raising one of ``final_errors``); neither is
retried here, the caller answers 503.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC
from typing import Any

import numpy as np
import psycopg2
import psycopg2.errors
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from fraud_core.online.canonical import CanonicalRow
from fraud_core.online.features import CardHistory, history_bounds

log = logging.getLogger(__name__)

_STATEMENT = """
PREPARE fd_card_history (text, timestamptz, timestamptz, text) AS
(SELECT (date_part('epoch', event_time) * 1000000)::int8, trans_num, amount, merch_lat, merch_long
   FROM (SELECT event_time, trans_num, amount, merch_lat, merch_long
           FROM transactions WHERE card_id = $1 AND event_time >= $2 AND event_time < $3
         UNION ALL
         (SELECT event_time, trans_num, amount, merch_lat, merch_long
            FROM transactions WHERE card_id = $1 AND event_time < $2
           ORDER BY event_time DESC, trans_num DESC LIMIT 1)) AS history
  ORDER BY event_time, trans_num)
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL
 WHERE EXISTS (SELECT 1 FROM card_categories WHERE card_id = $1 AND category = $4 AND first_event_time < $3)
"""


class CardHistoryReader:
    """Reads :class:`CardHistory` rows from PostgreSQL over one dedicated connection.

    Not thread-safe: one reader per event loop (the web app's worker process).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        timeout_ms: int = 0,
        deadline: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
        final_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        """Args:
        engine: the warehouse (PostgreSQL).
        timeout_ms: the server's ``statement_timeout`` for a read (0: the engine's).
        deadline: entered around each read (a client-side deadline).
        final_errors: errors not worth a reconnect and a second try (the deadline's).
        """
        if engine.dialect.name != "postgresql":
            raise ValueError("the single-card history reader needs PostgreSQL")
        self.engine = engine
        self.timeout_ms = timeout_ms
        self._deadline = deadline
        self._final = (psycopg2.errors.QueryCanceled, psycopg2.errors.LockNotAvailable, *final_errors)
        self._connection: Any = None

    def _connect(self) -> Any:
        connection = self.engine.raw_connection()
        # Autocommit: a read is one round trip, with no COMMIT after it.
        driver = connection.driver_connection
        if driver is None:  # pragma: no cover - a fresh pool connection always has one
            raise RuntimeError("no database connection")
        driver.autocommit = True
        cursor = connection.cursor()
        # One plan for every call: re-planning over all monthly partitions costs more than the
        # query; the generic plan prunes partitions at execution time.
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        if self.timeout_ms > 0:
            cursor.execute(f"SET statement_timeout = {int(self.timeout_ms)}")
        cursor.execute(_STATEMENT)
        cursor.close()
        return connection

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()  # the prepared statement belongs to this session only
            except Exception:  # closing a broken connection may fail again
                log.debug("closing the history connection failed", exc_info=True)
            self._connection = None

    def read(self, row: CanonicalRow) -> CardHistory:
        """The card history of one canonical transaction."""
        start, end = history_bounds(row["event_time"])
        params = (row["card_id"], start.replace(tzinfo=UTC), end.replace(tzinfo=UTC), row["category"])
        for attempt in (1, 2):
            try:
                with self._deadline():
                    if self._connection is None:
                        self._connection = self._connect()
                    cursor = self._connection.cursor()
                    try:
                        cursor.execute("EXECUTE fd_card_history (%s, %s, %s, %s)", params)
                        rows = cursor.fetchall()
                    finally:
                        cursor.close()
                break
            except self._final:
                # the warehouse is frozen, locked or slow: waiting again would only double the wait
                if self._connection is not None and self._connection.closed:
                    self.close()
                raise
            except (psycopg2.OperationalError, psycopg2.InterfaceError, DBAPIError):  # connection lost
                self.close()
                if attempt == 2:
                    raise
                log.info("card history connection lost; reconnecting once")
        # The row of NULLs says the card bought in the category before; the others are its history,
        # in time order (event times in microseconds: the float8 epoch seconds are within 0.3 µs, and rounded).
        history = [r for r in rows if r[0] is not None]
        t_us, trans_num, amount, lat, lon = zip(*history, strict=True) if history else ((), (), (), (), ())
        return CardHistory(
            t_us=np.asarray(t_us, dtype=np.int64),
            trans_num=list(trans_num),
            amount=np.asarray(amount, dtype=np.float64),
            merch_lat=np.asarray(lat, dtype=np.float64),
            merch_long=np.asarray(lon, dtype=np.float64),
            category_seen=len(history) < len(rows),
        )
