"""Data-quality checks on a window of canonical transactions.

Each function takes plain values (a frame, counts, timestamps) and returns one
:class:`~fraud_core.quality.results.CheckResult`; gathering those values from the warehouse is the
job of :mod:`fraud_core.db.repository`. Thresholds come from
:class:`fraud_core.settings.QualitySettings` through the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from fraud_core.quality.results import CheckResult, Status, grade_upper
from fraud_core.schema import CANONICAL_COLUMNS, CATEGORIES, GENDERS

GROUP = "data_quality"

#: Expected type family of each canonical column.
_NUMERIC = ("amount", "merch_lat", "merch_long", "zip", "lat", "long", "city_pop")
_DATETIME = ("event_time",)
_DATE = ("dob",)
_TEXT = tuple(c for c in CANONICAL_COLUMNS if c not in _NUMERIC + _DATETIME + _DATE)
#: The same bound the reader enforces (:data:`fraud_core.data.validation.MAX_AMOUNT`).
MAX_AMOUNT = 1_000_000.0


def _type_ok(series: pd.Series, family: str) -> bool:
    if family == "numeric":
        return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if family == "datetime":
        return pd.api.types.is_datetime64_any_dtype(series)
    if family == "date":
        # the warehouse returns datetime.date objects, the reader datetime64
        if pd.api.types.is_datetime64_any_dtype(series):
            return True
        sample = series.dropna().head(100)
        return all(isinstance(v, datetime | pd.Timestamp) or hasattr(v, "isoformat") for v in sample)
    sample = series.dropna().head(100)
    return pd.api.types.is_string_dtype(series) or all(isinstance(v, str) for v in sample)


def check_schema(frame: pd.DataFrame) -> CheckResult:
    """Every canonical column is present with the expected type family.

    The value is the number of problems (missing columns plus columns of the wrong type); the
    check fails on any.
    """
    missing = [c for c in CANONICAL_COLUMNS if c not in frame.columns]
    wrong: list[str] = []
    # an empty frame has no types to judge (a query with no row gives object columns)
    families = () if frame.empty else ((_NUMERIC, "numeric"), (_DATETIME, "datetime"), (_DATE, "date"), (_TEXT, "text"))
    for columns, family in families:
        for column in columns:
            if column in frame.columns and not _type_ok(frame[column], family):
                wrong.append(f"{column} ({frame[column].dtype}, expected {family})")
    problems = len(missing) + len(wrong)
    parts = []
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if wrong:
        parts.append(f"wrong type: {', '.join(wrong)}")
    detail = "; ".join(parts) or (
        f"{len(CANONICAL_COLUMNS)} columns present"
        + (" (no rows: types not checked)" if frame.empty else " with the expected types")
    )
    return CheckResult("schema", Status.FAIL if problems else Status.PASS, float(problems), 0.0, detail, GROUP)


def check_nulls(
    frame: pd.DataFrame, *, max_null_rate: float, columns: Sequence[str] = CANONICAL_COLUMNS
) -> CheckResult:
    """The highest share of missing values in any canonical column stays within ``max_null_rate``."""
    present = [c for c in columns if c in frame.columns]
    if frame.empty or not present:
        return CheckResult("nulls", Status.PASS, 0.0, max_null_rate, "no rows in the window", GROUP)
    rates = frame[present].isna().mean()
    value = float(rates.max())
    offenders = rates[rates > max_null_rate].sort_values(ascending=False)
    if offenders.empty:
        detail = f"no column above {max_null_rate:.2%} missing over {len(frame)} rows"
    else:
        detail = "missing values: " + ", ".join(f"{c} {r:.2%}" for c, r in offenders.head(5).items())
    status = Status.FAIL if value > max_null_rate else Status.PASS
    return CheckResult("nulls", status, value, max_null_rate, detail, GROUP)


def out_of_range_mask(frame: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per rule, true where a row breaks it (missing values break no rule)."""
    rules: dict[str, pd.Series] = {}

    def num(column: str) -> pd.Series:
        return pd.to_numeric(frame[column], errors="coerce") if column in frame.columns else pd.Series(dtype=float)

    if "amount" in frame.columns:
        amount = num("amount")
        rules["amount <= 0 or > 1e6"] = (amount <= 0) | (amount > MAX_AMOUNT)
    for column, bound in (("lat", 90), ("merch_lat", 90), ("long", 180), ("merch_long", 180)):
        if column in frame.columns:
            rules[f"|{column}| > {bound}"] = num(column).abs() > bound
    if "city_pop" in frame.columns:
        rules["city_pop < 0"] = num("city_pop") < 0
    if "zip" in frame.columns:
        z = num("zip")
        rules["zip not 0-99999"] = (z < 0) | (z > 99_999)
    if "category" in frame.columns:
        rules["unknown category"] = frame["category"].notna() & ~frame["category"].isin(CATEGORIES)
    if "gender" in frame.columns:
        rules["unknown gender"] = frame["gender"].notna() & ~frame["gender"].isin(GENDERS)
    if "dob" in frame.columns and "event_time" in frame.columns:
        dob = pd.to_datetime(frame["dob"], errors="coerce")
        event = pd.to_datetime(frame["event_time"], errors="coerce")
        rules["dob after event_time"] = dob > event
    return pd.DataFrame({k: v.fillna(False).astype(bool) for k, v in rules.items()}, index=frame.index)


def check_value_ranges(frame: pd.DataFrame, *, max_rate: float) -> CheckResult:
    """The share of rows with a value out of its plausible range stays within ``max_rate``."""
    if frame.empty:
        return CheckResult("value_ranges", Status.PASS, 0.0, max_rate, "no rows in the window", GROUP)
    mask = out_of_range_mask(frame)
    bad = mask.any(axis=1) if not mask.empty else pd.Series(False, index=frame.index)
    value = float(bad.mean())
    broken = mask.sum()
    broken = broken[broken > 0].sort_values(ascending=False)
    detail = (
        "rows out of range: " + ", ".join(f"{rule} ×{int(n)}" for rule, n in broken.items())
        if not broken.empty
        else f"all {len(frame)} rows within range"
    )
    return CheckResult("value_ranges", grade_upper(value, warn=None, fail=max_rate), value, max_rate, detail, GROUP)


def check_duplicates(frame: pd.DataFrame, *, max_rate: float, rejected_duplicates: int = 0) -> CheckResult:
    """Duplicate ``trans_num``: repeats within the window plus those the loader rejected as repeats.

    The warehouse refuses a second copy of a ``trans_num``, so in production duplicates show up as
    rejected records; a frame read from elsewhere may still hold them.

    Args:
        frame: the window's transactions.
        max_rate: the highest acceptable share of duplicates among received rows.
        rejected_duplicates: rows the loader rejected because their ``trans_num`` was known.
    """
    in_frame = int(frame["trans_num"].duplicated(keep="first").sum()) if "trans_num" in frame.columns else 0
    received = len(frame) + rejected_duplicates
    n_dup = in_frame + rejected_duplicates
    value = n_dup / received if received else 0.0
    detail = f"{n_dup} duplicate trans_num among {received} received rows ({in_frame} in the window, {rejected_duplicates} rejected as repeats)"
    return CheckResult("duplicates", grade_upper(value, warn=None, fail=max_rate), value, max_rate, detail, GROUP)


def check_rejected_rate(n_accepted: int, n_rejected: int, *, warn: float, fail: float) -> CheckResult:
    """The share of received rows that failed validation."""
    received = n_accepted + n_rejected
    value = n_rejected / received if received else 0.0
    detail = f"{n_rejected} of {received} received rows rejected"
    return CheckResult("rejected_rate", grade_upper(value, warn=warn, fail=fail), value, fail, detail, GROUP, warn)


def check_amended(n_received: int, n_amended: int, *, warn: float, fail: float) -> CheckResult:
    """The share of received rows that re-delivered a known ``trans_num`` with other content.

    The stored version is kept, so an amendment is never applied; a source that amends is sending
    corrections the pipeline ignores, which somebody has to look at.
    """
    value = n_amended / n_received if n_received else 0.0
    detail = f"{n_amended} of {n_received} received rows re-delivered a known trans_num with other content (kept the stored one)"
    return CheckResult(
        "amended_redeliveries", grade_upper(value, warn=warn, fail=fail), value, fail, detail, GROUP, warn
    )


def check_volume(n_current: int, n_previous: int, *, warn: float, fail: float) -> CheckResult:
    """Relative change of the number of transactions against the previous window of equal length.

    With no previous data there is nothing to compare to: the check warns rather than pass silently.
    """
    if n_previous == 0:
        status = Status.PASS if n_current == 0 else Status.WARN
        detail = f"{n_current} transactions; the previous window had none, nothing to compare"
        return CheckResult("volume", status, None, fail, detail, GROUP, warn)
    value = abs(n_current - n_previous) / n_previous
    detail = f"{n_current} transactions against {n_previous} in the previous window ({(n_current - n_previous) / n_previous:+.1%})"
    return CheckResult("volume", grade_upper(value, warn=warn, fail=fail), value, fail, detail, GROUP, warn)


def longest_gap_minutes(
    times: Sequence[datetime] | pd.Series | np.ndarray, *, start: datetime | None = None, end: datetime | None = None
) -> tuple[float, pd.Timestamp | None, pd.Timestamp | None]:
    """The longest stretch without an arrival, in minutes, and where it starts and ends.

    ``start`` and ``end`` (the window's bounds) count as arrivals so that a feed that stopped before
    the end of the window, or started late, shows a gap.
    """
    stamps = pd.to_datetime(pd.Series(times), errors="coerce").dropna()
    points = list(stamps)
    if start is not None:
        points.append(pd.Timestamp(start))
    if end is not None:
        points.append(pd.Timestamp(end))
    if len(points) < 2:
        return float("nan"), None, None
    ordered = pd.Series(sorted(points))
    gaps = ordered.diff().dt.total_seconds().iloc[1:] / 60.0
    i = int(np.argmax(gaps.to_numpy()))
    return float(gaps.iloc[i]), ordered.iloc[i], ordered.iloc[i + 1]


def check_freshness(
    times: Sequence[datetime] | pd.Series | np.ndarray,
    *,
    window_start: datetime,
    window_end: datetime,
    max_gap_minutes: float,
) -> CheckResult:
    """No stretch of the window longer than ``max_gap_minutes`` without a transaction arriving."""
    value, gap_from, gap_to = longest_gap_minutes(times, start=window_start, end=window_end)
    if gap_from is None or gap_to is None:
        detail = "no arrival in the window"
    else:
        detail = f"longest gap {value:.1f} min, {gap_from:%Y-%m-%d %H:%M:%S} → {gap_to:%Y-%m-%d %H:%M:%S}"
    return CheckResult(
        "freshness", grade_upper(value, warn=None, fail=max_gap_minutes), value, max_gap_minutes, detail, GROUP
    )
