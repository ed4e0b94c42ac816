"""The demo data of ``fraud-detector up``: the bundled sample cut in time into history and a stream.

The sample holds whole card histories over both Kaggle periods. ``up`` imports the part before the
cut as history (so every card has a past) and trains the first champion on it; the source replays
the part after the cut as the live feed. Both parts move forward by the same whole number of weeks,
so the history ends right where the stream starts, close to the wall clock, with every hour of day
and weekday kept (the features use them).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: Where Kaggle cut its files in time (train before, test after); the sample follows the same cut.
DEFAULT_SPLIT_AT = pd.Timestamp("2020-06-21 12:14:00")

_WEEK = pd.Timedelta(weeks=1)


@dataclass(frozen=True, slots=True)
class DemoFiles:
    """The two files ``up`` writes from the sample (Kaggle schema, Parquet).

    Attributes:
        history: transactions before the cut, with labels: imported and trained on.
        stream: transactions from the cut on, replayed by the source.
        shift_weeks: whole weeks both parts moved forward.
        history_rows: rows in ``history``.
        stream_rows: rows in ``stream`` (already-stored rows left out).
        stream_skipped: stream rows left out because the warehouse already holds them.
    """

    history: Path
    stream: Path
    shift_weeks: int
    history_rows: int
    stream_rows: int
    stream_skipped: int = 0


def weeks_until(first_event: pd.Timestamp, now: pd.Timestamp) -> int:
    """Whole weeks to add to ``first_event`` so that it falls in the week before ``now`` (never < 0)."""
    naive_now = now.tz_convert("UTC").tz_localize(None) if now.tzinfo is not None else now
    return max(0, int((naive_now - first_event) // _WEEK))


def shift_raw(raw: pd.DataFrame, weeks: int) -> pd.DataFrame:
    """Move a Kaggle-schema frame forward by whole weeks (event time, ``unix_time`` and ``dob``).

    ``dob`` moves too, so that ages at the time of each transaction stay true.
    """
    if weeks == 0:
        return raw.copy()
    offset = pd.Timedelta(weeks=weeks)
    out = raw.copy()
    out["trans_date_trans_time"] = pd.to_datetime(out["trans_date_trans_time"]) + offset
    if "unix_time" in out.columns:
        out["unix_time"] = out["unix_time"] + int(offset.total_seconds())
    if "dob" in out.columns:
        dob = pd.to_datetime(out["dob"], errors="coerce", format="mixed") + offset
        out["dob"] = dob.dt.date
    return out


def split_sample(
    sample: Path,
    out_dir: Path,
    *,
    now: pd.Timestamp,
    split_at: pd.Timestamp = DEFAULT_SPLIT_AT,
    already_stored: Collection[str] = (),
) -> DemoFiles:
    """Cut ``sample`` at ``split_at`` into ``history.parquet`` and ``stream.parquet`` in ``out_dir``.

    Args:
        sample: a Kaggle-schema Parquet file (the bundled sample).
        out_dir: where the two files go (created).
        now: the wall clock; the stream's first transaction lands in the week before it.
        split_at: the cut (naive UTC, in the sample's own time).
        already_stored: ``trans_num`` values the warehouse holds: the stream leaves them out, so
            a second ``up`` resumes the replay instead of sending what was scored already.

    Returns:
        The files and what they hold.

    Raises:
        ValueError: one side of the cut is empty.
    """
    raw = pd.read_parquet(sample)
    times = pd.to_datetime(raw["trans_date_trans_time"])
    before = raw[times < split_at].sort_values("trans_date_trans_time", kind="stable")
    after = raw[times >= split_at].sort_values("trans_date_trans_time", kind="stable")
    if before.empty or after.empty:
        raise ValueError(f"{sample.name}: nothing {'before' if before.empty else 'after'} {split_at}")
    weeks = weeks_until(pd.Timestamp(after["trans_date_trans_time"].iloc[0]), now)
    history = shift_raw(before, weeks)
    stream = shift_raw(after, weeks)
    skipped = 0
    if already_stored:
        stored = stream["trans_num"].isin(set(already_stored))
        skipped = int(stored.sum())
        stream = stream[~stored]
    out_dir.mkdir(parents=True, exist_ok=True)
    files = DemoFiles(
        out_dir / "history.parquet", out_dir / "stream.parquet", weeks, len(history), len(stream), skipped
    )
    history.to_parquet(files.history, index=False)
    stream.to_parquet(files.stream, index=False)
    return files
