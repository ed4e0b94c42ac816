"""The replayed feed: which transactions and labels are released at a given moment.

A :class:`ReplayFeed` holds a Kaggle-schema frame sorted by event time. The ``i``-th transaction
(0-based) is released ``(i + 1) / rate`` seconds after the feed starts (all at once without a
rate), and its label ``label_delay`` seconds after that. Cursors are opaque strings to clients; here
they are the number of items already handed out, so a page is a slice and the next cursor is its end.
Rows are sent exactly as the file holds them (bad rows included: the pipeline must reject them), with
the card number, as a bank's feed would; only the event times move with ``shift_to_now``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_core.data import read_raw
from fraud_core.schema import LABEL_COLUMN, UNIX_TIME_OFFSET_SECONDS

#: The largest page a client may ask for.
MAX_LIMIT = 50_000
WEEK = timedelta(days=7)


class CursorError(ValueError):
    """A cursor this feed never handed out (not a non-negative integer)."""


def parse_cursor(cursor: str | None) -> int:
    """The position a cursor stands for (``None`` or empty: the beginning).

    Raises:
        CursorError: the cursor is not one this feed hands out.
    """
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit():
        raise CursorError(f"invalid cursor {cursor[:40]!r}: expected a cursor returned by this feed")
    return int(cursor)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the feed, already serialised.

    Attributes:
        body: the JSON document to send.
        count: items in the page.
        next_cursor: the cursor to ask with next time.
    """

    body: bytes
    count: int
    next_cursor: str


def _iso(epoch_seconds: np.ndarray) -> list[str]:
    stamps = pd.to_datetime(np.round(epoch_seconds * 1e6).astype("int64"), unit="us", utc=True)
    return [s.isoformat().replace("+00:00", "Z") for s in stamps]


def weeks_to_now(first_event: pd.Timestamp, now: datetime) -> int:
    """Whole weeks to add so that ``first_event`` lands in the week before ``now``.

    A whole number of weeks keeps every hour of day and weekday true, which the time features of
    the model rely on.
    """
    naive_now = pd.Timestamp(now.astimezone(UTC).replace(tzinfo=None))
    return max(0, math.floor((naive_now - first_event) / pd.Timedelta(WEEK)))


class ReplayFeed:
    """A Kaggle-schema frame replayed as a live feed.

    Args:
        raw: the rows, Kaggle schema (as :func:`fraud_core.data.read_raw` returns them).
        rate: transactions released per second; ``None`` or ``0`` releases everything at once.
        label_delay: seconds between a transaction's release and its label's.
        shift_to_now: move event times (and ``unix_time``, ``dob``) by whole weeks so that the first
            transaction falls in the week before the feed starts; ``dob`` moves too so ages stay true.
        clock: seconds since the epoch (tests pass a fake one).
    """

    def __init__(
        self,
        raw: pd.DataFrame,
        *,
        rate: float | None = None,
        label_delay: float = 0.0,
        shift_to_now: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rate is not None and rate < 0:
            raise ValueError("rate must be positive (or 0 for everything at once)")
        if label_delay < 0:
            raise ValueError("label_delay must be >= 0")
        self.rate = rate or None
        self.label_delay = float(label_delay)
        self.clock = clock
        self.started_at = clock()
        self.shift_weeks = 0
        self._wire, self._labels = self._prepare(raw, shift_to_now)
        self.total = len(self._wire)
        # the position of each row, for release times
        self._transaction_columns = [c for c in self._wire.columns if c != LABEL_COLUMN]

    @classmethod
    def from_path(cls, path: str | Path, **kwargs: object) -> ReplayFeed:
        """Read a CSV or Parquet file in the Kaggle schema and replay it (see the class arguments)."""
        return cls(read_raw(path), **kwargs)  # type: ignore[arg-type]

    def _prepare(self, raw: pd.DataFrame, shift_to_now: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
        frame = raw.reset_index(drop=True).copy()
        if "trans_date_trans_time" in frame.columns:
            event = pd.to_datetime(frame["trans_date_trans_time"], errors="coerce", format="mixed")
        else:
            unix = pd.to_numeric(frame["unix_time"], errors="coerce")
            event = pd.to_datetime(unix + UNIX_TIME_OFFSET_SECONDS, unit="s", errors="coerce")
        if getattr(event.dt, "tz", None) is not None:
            event = event.dt.tz_convert("UTC").dt.tz_localize(None)
        # Stable: rows at the same second keep their file order. Unparsable times go last, untouched.
        order = np.lexsort((np.arange(len(frame)), event.isna().to_numpy(), event.fillna(pd.Timestamp.max)))
        frame = frame.iloc[order].reset_index(drop=True)
        event = event.iloc[order].reset_index(drop=True)
        valid = event.notna()

        if shift_to_now and valid.any():
            first = event[valid].iloc[0]
            self.shift_weeks = weeks_to_now(first, datetime.fromtimestamp(self.started_at, UTC))
        offset = pd.Timedelta(weeks=self.shift_weeks)

        if "trans_date_trans_time" in frame.columns:
            shifted = (event + offset).dt.strftime("%Y-%m-%d %H:%M:%S")
            original = frame["trans_date_trans_time"].astype("object")
            frame["trans_date_trans_time"] = shifted.astype("object").where(valid, original)
        if "unix_time" in frame.columns and self.shift_weeks:
            unix = pd.to_numeric(frame["unix_time"], errors="coerce")
            moved = (unix + offset.total_seconds()).round()
            frame["unix_time"] = moved.astype("Int64").astype("object").where(unix.notna(), frame["unix_time"])
        if "dob" in frame.columns:
            dob = pd.to_datetime(frame["dob"], errors="coerce", format="mixed")
            text = (dob + offset).dt.strftime("%Y-%m-%d")
            frame["dob"] = text.astype("object").where(dob.notna(), frame["dob"].astype("object"))

        if LABEL_COLUMN in frame.columns:
            labels = frame[["trans_num", LABEL_COLUMN]].copy()
        else:
            labels = pd.DataFrame({"trans_num": frame["trans_num"], LABEL_COLUMN: pd.NA})
        return frame, labels

    # ------------------------------------------------------------------ release schedule

    def released(self, now: float | None = None) -> int:
        """How many transactions are released at ``now`` (default: the clock)."""
        if self.rate is None:
            return self.total
        elapsed = (self.clock() if now is None else now) - self.started_at
        # a hair of tolerance so that (i + 1) / rate seconds in releases exactly i + 1 rows
        return max(0, min(self.total, math.floor(elapsed * self.rate + 1e-9)))

    def labels_released(self, now: float | None = None) -> int:
        """How many labels are released at ``now``: those of transactions released ``label_delay`` ago."""
        now = self.clock() if now is None else now
        return self.released(now - self.label_delay)

    def release_times(self, start: int, stop: int) -> np.ndarray:
        """Epoch seconds at which rows ``start`` to ``stop - 1`` were (or will be) released."""
        positions = np.arange(start, stop, dtype="float64")
        if self.rate is None:
            return np.full(len(positions), self.started_at)
        return self.started_at + (positions + 1) / self.rate

    # ------------------------------------------------------------------ pages

    def transactions_page(self, after: str | None, limit: int) -> Page:
        """Released transactions after a cursor, without labels, as a JSON document.

        The document is ``{"transactions": [...], "next_cursor": str, "has_more": bool,
        "released": int, "count": int}``. Each transaction has the Kaggle fields (no ``is_fraud``)
        and ``released_at`` (ISO 8601, UTC).

        Raises:
            CursorError: a cursor this feed did not hand out.
        """
        return self._page("transactions", after, limit, self.released(), 0.0)

    def labels_page(self, after: str | None, limit: int) -> Page:
        """Released labels after a cursor: ``{"labels": [{"trans_num", "is_fraud", "labelled_at"}], ...}``.

        Raises:
            CursorError: a cursor this feed did not hand out.
        """
        return self._page("labels", after, limit, self.labels_released(), self.label_delay)

    def _page(self, key: str, after: str | None, limit: int, released: int, delay: float) -> Page:
        start = parse_cursor(after)
        limit = max(1, min(int(limit), MAX_LIMIT))
        stop = min(released, start + limit) if start < released else start
        if key == "transactions":
            rows = self._wire.iloc[start:stop][self._transaction_columns].copy()
            rows["released_at"] = _iso(self.release_times(start, stop))
        else:
            rows = self._labels.iloc[start:stop].copy()
            rows["labelled_at"] = _iso(self.release_times(start, stop) + delay)
        records = rows.to_json(orient="records", date_format="iso", date_unit="s")
        head = {"next_cursor": str(stop), "has_more": stop < released, "released": released, "count": stop - start}
        return Page(body=_envelope(head, key, records), count=stop - start, next_cursor=str(stop))

    def current_transaction(self) -> str:
        """The latest released transaction in the real-time format.

        A JSON string whose content is a pandas ``orient="split"`` frame of one row (none before the
        first release): the Kaggle fields without ``unix_time``, with ``is_fraud`` and
        ``current_time`` (release time, epoch milliseconds).
        """
        released = self.released()
        start = max(0, released - 1)
        row = self._wire.iloc[start:released].drop(columns=["unix_time"], errors="ignore").copy()
        row["current_time"] = np.round(self.release_times(start, released) * 1000).astype("int64")
        return json.dumps(row.to_json(orient="split", date_format="iso"))

    def status(self) -> dict[str, object]:
        """What the feed holds and has released (no transaction data)."""
        return {
            "total": self.total,
            "released": self.released(),
            "labels_released": self.labels_released(),
            "rate": self.rate,
            "label_delay_seconds": self.label_delay,
            "shift_weeks": self.shift_weeks,
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
        }


def _envelope(head: dict[str, object], key: str, records_json: str) -> bytes:
    # The records are serialised by pandas (fast, C); the envelope around them by hand.
    prefix = json.dumps(head)[:-1]
    return f'{prefix}, "{key}": {records_json}}}'.encode()
