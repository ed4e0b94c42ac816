"""Row validation and the raw → canonical conversion.

Validation is vectorised (one pass per column, no Python loop per row) so that the same code checks
a single ``/predict`` body and a 1.3 M-row import. Every rejected row says which row, which field and
why; valid rows go on regardless of bad neighbours.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_core.data.errors import DataFormatError
from fraud_core.data.readers import check_raw_columns, read_raw
from fraud_core.data.tokens import last4, tokenise
from fraud_core.schema import CANONICAL_COLUMNS, CATEGORIES, GENDERS, LABEL_COLUMN, UNIX_TIME_OFFSET_SECONDS

_TRANS_NUM_RE = r"^[A-Za-z0-9_\-]{1,64}$"
#: Card numbers: ASCII digits only. Python's ``\d`` also matches fullwidth, Arabic-Indic or
#: Devanagari digits, which would tokenise the same card as another one with no history.
CARD_RE = r"^[0-9]{8,19}$"
#: What a card number may be written with besides its digits (stripped before the check).
CARD_SEPARATORS_RE = r"[ \-]"
#: Date-times as text: ISO 8601 with ASCII digits ("2020-06-21 12:14:25", "T", fractions, "Z" or an
#: offset). Words that parsers take for dates ("now", "today") and locale formats are refused.
DATETIME_TEXT_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
DATE_TEXT_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T]00:00(?::00(?:\.0+)?)?)?$"
#: A sanity bound: card-present amounts above this are data errors, not purchases.
MAX_AMOUNT = 1_000_000.0
EARLIEST_EVENT = pd.Timestamp("1990-01-01")


@dataclass(frozen=True, slots=True)
class EventWindow:
    """The event times accepted at the edge (the API, the feed): ``[now - max_age, now + max_lead]``.

    Attributes:
        max_age: how far in the past an event may lie.
        max_lead: how far ahead of the clock (clock skew; a replay's shifted clock runs ahead).
        now: the clock, naive UTC; ``None``: the wall clock when the check runs.
    """

    max_age: timedelta
    max_lead: timedelta
    now: datetime | None = None

    @classmethod
    def around_now(cls, *, max_age_days: float, max_lead_minutes: float) -> EventWindow:
        return cls(max_age=timedelta(days=max_age_days), max_lead=timedelta(minutes=max_lead_minutes))

    def bounds(self) -> tuple[datetime, datetime]:
        """(earliest, latest) accepted event time, naive UTC."""
        now = self.now if self.now is not None else datetime.now(UTC).replace(tzinfo=None)
        return now - self.max_age, now + self.max_lead


def normalise_card_text(text: str) -> str:
    """A card number as written (``"4111 1111-1111 1111"``) to its digits: spaces and dashes removed."""
    return re.sub(CARD_SEPARATORS_RE, "", text)


@dataclass(frozen=True, slots=True)
class Rejection:
    """One row that failed validation.

    Attributes:
        row: position of the row in the input (0-based).
        trans_num: the row's transaction id, when it had a usable one.
        field: the first field that failed.
        reason: why, in words.
        errors: every (field, reason) that failed for this row.
        payload: the row as received, with the card number reduced to its last four digits.
    """

    row: int
    trans_num: str | None
    field: str
    reason: str
    errors: tuple[tuple[str, str], ...] = ()
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)

    def message(self) -> str:
        return f"row {self.row}: {self.field}: {self.reason}"


@dataclass(slots=True)
class NormalisedBatch:
    """The result of :func:`to_canonical`: the valid rows, canonical, and the rejected ones."""

    frame: pd.DataFrame
    rejected: list[Rejection]

    @property
    def n_valid(self) -> int:
        return len(self.frame)


def _as_text(series: pd.Series) -> pd.Series:
    """Strings with missing values kept missing (ints become their decimal text)."""
    if pd.api.types.is_integer_dtype(series):
        return series.astype("int64").astype("str")
    if pd.api.types.is_float_dtype(series):
        # a float card number or zip read from a loose CSV: 1234.0 -> "1234"
        out = series.map(lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
        return out.astype("str").where(series.notna(), None)
    # pandas' "str" dtype keeps missing values missing (object None would become "None")
    return series.astype("str").str.strip()


def _numeric(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return pd.Series(np.nan, index=series.index)
    if pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    # JSON true/false must not pass as 1/0 for a number field
    cleaned = series.map(lambda v: None if isinstance(v, bool) else v)
    return pd.to_numeric(cleaned, errors="coerce").astype("float64")


def _datetime(series: pd.Series, pattern: str = DATETIME_TEXT_RE) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        out = series
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        return out.astype("datetime64[us]")
    mask = series.isna()
    # numbers are not dates (pandas would read them as epoch nanoseconds); text must be ISO 8601
    # with ASCII digits: "now", "today" or "１２/０１/２０２０" are not event times
    text = series.astype("object").astype("str").where(~mask, None).str.strip()
    text = text.where(text.str.fullmatch(pattern).fillna(False).astype(bool), None)
    parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
    return parsed.dt.tz_localize(None).astype("datetime64[us]")


class _Checker:
    """Collects (row mask, field, reason) failures column by column."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.failures: list[tuple[np.ndarray, str, str]] = []

    def fail(self, mask: pd.Series | np.ndarray, column: str, reason: str) -> None:
        arr = np.asarray(mask, dtype=bool)
        if arr.any():
            self.failures.append((arr, column, reason))

    def bad_rows(self) -> np.ndarray:
        bad = np.zeros(self.n, dtype=bool)
        for mask, _, _ in self.failures:
            bad |= mask
        return bad

    def errors_for(self, row: int) -> list[tuple[str, str]]:
        return [(column, reason) for mask, column, reason in self.failures if mask[row]]


def _safe_payload(raw: pd.DataFrame, row: int) -> dict[str, Any]:
    record: dict[str, Any] = {str(k): v for k, v in raw.iloc[row].to_dict().items()}
    if "cc_num" in record:
        digits = re.sub(r"\D", "", str(record.pop("cc_num") or ""))
        record["card_last4"] = digits[-4:] if digits else None
    for key, value in list(record.items()):
        if isinstance(value, pd.Timestamp | np.datetime64):
            record[key] = str(value)
        elif isinstance(value, np.generic):
            record[key] = value.item()
        elif isinstance(value, float) and np.isnan(value):
            record[key] = None
    return record


def to_canonical(
    raw: pd.DataFrame,
    *,
    token_key: str,
    source: str | None = None,
    generate_trans_num: bool = False,
    require_label: bool = False,
    row_offset: int = 0,
    seen: set[str] | None = None,
    event_window: EventWindow | None = None,
) -> NormalisedBatch:
    """Validate raw rows and convert the valid ones to the canonical frame.

    Args:
        raw: a frame in the Kaggle schema (typed, from a file, or ``object`` values from JSON).
        token_key: the card-token key (``settings.security.card_token_key``).
        source: stored with each row when given (a ``source`` column is added).
        generate_trans_num: give rows without ``trans_num`` a fresh id (``/predict``) instead of
            rejecting them.
        require_label: reject rows without a valid ``is_fraud`` (training files).
        row_offset: added to the row numbers of rejections (``raw`` is a slice of a larger input).
        seen: ``trans_num`` values of the earlier slices of the same input: rows repeating one
            are rejected as duplicates, and this slice's values are added. Normalising an input
            slice by slice with one ``seen`` set gives the same rows and rejections as all at once.
        event_window: reject event times outside it (the edge: the API, the feed); files and
            imports of history pass ``None``.

    Returns:
        The canonical frame (``CANONICAL_COLUMNS`` + ``is_fraud`` when the input had it, and
        ``released_at`` when the feed said when it released the row), in input order, and the
        rejections. Duplicate ``trans_num`` within the input: the first one wins, later ones are
        rejected.

    Raises:
        DataFormatError: required columns are missing altogether.
    """
    check_raw_columns(raw, what="input")
    raw = raw.reset_index(drop=True)
    n = len(raw)
    check = _Checker(n)
    out: dict[str, pd.Series] = {}

    # trans_num
    trans_num = _as_text(raw["trans_num"]) if "trans_num" in raw.columns else pd.Series([None] * n, dtype="object")
    missing_tn = trans_num.isna() | (trans_num == "")
    if generate_trans_num and missing_tn.any():
        trans_num = trans_num.where(~missing_tn, pd.Series([uuid.uuid4().hex for _ in range(n)]))
        missing_tn = pd.Series(False, index=trans_num.index)
    check.fail(missing_tn, "trans_num", "missing")
    check.fail(
        ~missing_tn & ~trans_num.fillna("").str.fullmatch(_TRANS_NUM_RE),
        "trans_num",
        "must be 1-64 letters, digits, '-' or '_'",
    )
    dup = trans_num.duplicated(keep="first") & ~missing_tn
    if seen is not None:
        # A set lookup per row: pandas' isin would hash the whole (growing) set for every slice.
        earlier = np.fromiter((value in seen for value in trans_num.tolist()), dtype=bool, count=n)
        dup |= pd.Series(earlier, index=trans_num.index) & ~missing_tn
        seen.update(trans_num[~missing_tn].tolist())
    check.fail(dup, "trans_num", "duplicate trans_num within the batch")
    out["trans_num"] = trans_num

    # card
    cc = _as_text(raw["cc_num"])
    cc = cc.where(cc.isna(), cc.str.replace(CARD_SEPARATORS_RE, "", regex=True))
    cc_missing = cc.isna() | (cc == "")
    check.fail(cc_missing, "cc_num", "missing")
    check.fail(
        ~cc_missing & ~cc.fillna("").str.fullmatch(CARD_RE),
        "cc_num",
        "must be 8 to 19 ASCII digits (spaces and dashes allowed between them)",
    )
    cc_ok = cc.fillna("0000000000000")

    # event time: trans_date_trans_time wins; else Kaggle's shifted unix_time
    if "trans_date_trans_time" in raw.columns:
        event_time = _datetime(raw["trans_date_trans_time"])
        given = raw["trans_date_trans_time"].notna()
    else:
        event_time = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
        given = pd.Series(False, index=raw.index)
    if "unix_time" in raw.columns:
        unix = _numeric(raw["unix_time"])
        from_unix = pd.to_datetime(unix + UNIX_TIME_OFFSET_SECONDS, unit="s", errors="coerce").astype("datetime64[us]")
        use_unix = ~given & unix.notna()
        event_time = event_time.where(~use_unix, from_unix)
        check.fail(~given & raw["unix_time"].notna() & unix.isna(), "unix_time", "not a number")
        given = given | raw["unix_time"].notna()
    check.fail(~given, "trans_date_trans_time", "missing (give trans_date_trans_time or unix_time)")
    check.fail(given & event_time.isna(), "trans_date_trans_time", "not a date-time")
    check.fail(
        event_time.notna() & (event_time < EARLIEST_EVENT), "trans_date_trans_time", f"before {EARLIEST_EVENT.date()}"
    )
    if event_window is not None:
        earliest, latest = event_window.bounds()
        check.fail(
            event_time.notna() & (event_time >= EARLIEST_EVENT) & (event_time < earliest),
            "trans_date_trans_time",
            f"more than {_days(event_window.max_age)} in the past (before {earliest:%Y-%m-%d %H:%M:%S} UTC)",
        )
        check.fail(
            event_time.notna() & (event_time > latest),
            "trans_date_trans_time",
            f"in the future (after {latest:%Y-%m-%d %H:%M:%S} UTC: more than {_days(event_window.max_lead)} ahead)",
        )
    out["event_time"] = event_time

    # numbers
    def number(column: str, *, lo: float, hi: float, lo_open: bool = False, integer: bool = False) -> pd.Series:
        values = _numeric(raw[column])
        present = raw[column].notna()
        check.fail(~present, column, "missing")
        check.fail(present & values.isna(), column, "not a number")
        if integer:
            check.fail(values.notna() & (values % 1 != 0), column, "must be a whole number")
        below = (values <= lo) if lo_open else (values < lo)
        bound = f"> {lo:g}" if lo_open else f">= {lo:g}"
        check.fail(values.notna() & (below | (values > hi)), column, f"out of range (must be {bound} and <= {hi:g})")
        return values

    out["amount"] = number("amt", lo=0.0, hi=MAX_AMOUNT, lo_open=True)
    out["lat"] = number("lat", lo=-90, hi=90)
    out["long"] = number("long", lo=-180, hi=180)
    out["merch_lat"] = number("merch_lat", lo=-90, hi=90)
    out["merch_long"] = number("merch_long", lo=-180, hi=180)
    out["city_pop"] = number("city_pop", lo=0, hi=1e9, integer=True)
    zip_text = _as_text(raw["zip"])
    check.fail(zip_text.isna(), "zip", "missing")
    check.fail(
        zip_text.notna() & ~zip_text.fillna("").str.fullmatch(r"[0-9]{1,5}"), "zip", "must be up to 5 ASCII digits"
    )

    # categorical text
    def text(
        column: str,
        *,
        allowed: tuple[str, ...] | None = None,
        transform: Callable[[pd.Series], pd.Series] | None = None,
    ) -> pd.Series:
        values = _as_text(raw[column])
        if transform is not None:
            values = transform(values)
        empty = values.isna() | (values == "")
        check.fail(empty, column, "missing")
        if allowed is not None:
            check.fail(~empty & ~values.isin(allowed), column, f"unknown value (expected one of {', '.join(allowed)})")
        return values

    out["category"] = text("category", allowed=CATEGORIES)
    out["gender"] = text("gender", allowed=GENDERS, transform=lambda s: s.str.upper())
    out["merchant"] = text("merchant")
    out["city"] = text("city")
    out["state"] = text("state", transform=lambda s: s.str.upper())
    out["job"] = text("job")

    dob = _datetime(raw["dob"], DATE_TEXT_RE)
    check.fail(raw["dob"].isna(), "dob", "missing")
    check.fail(raw["dob"].notna() & dob.isna(), "dob", "not a date")
    check.fail(dob.notna() & event_time.notna() & (dob > event_time), "dob", "after the transaction")
    out["dob"] = dob.dt.normalize()

    has_label = LABEL_COLUMN in raw.columns
    if has_label:
        label = _numeric(raw[LABEL_COLUMN])
        bad_label = raw[LABEL_COLUMN].notna() & ~label.isin([0.0, 1.0])
        check.fail(bad_label, LABEL_COLUMN, "must be 0 or 1")
        if require_label:
            check.fail(raw[LABEL_COLUMN].isna(), LABEL_COLUMN, "missing")
    elif require_label:
        raise DataFormatError("input has no is_fraud column, which training needs")

    bad = check.bad_rows()
    good = ~bad
    frame = pd.DataFrame(index=raw.index[good])
    ok_cc = cc_ok[good]
    frame["trans_num"] = out["trans_num"][good].astype("str")
    frame["card_id"] = tokenise(ok_cc, token_key)
    frame["card_last4"] = last4(ok_cc)
    frame["event_time"] = out["event_time"][good]
    frame["amount"] = out["amount"][good]
    for column in ("category", "merchant"):
        frame[column] = out[column][good].astype("str")
    frame["merch_lat"] = out["merch_lat"][good]
    frame["merch_long"] = out["merch_long"][good]
    frame["gender"] = out["gender"][good].astype("str")
    frame["dob"] = out["dob"][good]
    frame["city"] = out["city"][good].astype("str")
    frame["state"] = out["state"][good].astype("str")
    frame["zip"] = zip_text[good].astype("int64")
    frame["lat"] = out["lat"][good]
    frame["long"] = out["long"][good]
    frame["city_pop"] = out["city_pop"][good].astype("int64")
    frame["job"] = out["job"][good].astype("str")
    if has_label:
        frame[LABEL_COLUMN] = label[good].astype("Int8") if not require_label else label[good].astype("int8")
    if "released_at" in raw.columns:
        frame["released_at"] = _datetime(raw["released_at"])[good]
    if source is not None:
        frame["source"] = source
    frame = frame.reset_index(drop=True)
    assert list(frame.columns[: len(CANONICAL_COLUMNS)]) == list(CANONICAL_COLUMNS)

    rejected: list[Rejection] = []
    for row in np.flatnonzero(bad):
        errors = check.errors_for(int(row))
        tn = out["trans_num"].iloc[row]
        rejected.append(
            Rejection(
                row=int(row) + row_offset,
                trans_num=str(tn) if isinstance(tn, str) and tn else None,
                field=errors[0][0],
                reason=errors[0][1],
                errors=tuple(errors),
                payload=_safe_payload(raw, int(row)),
            )
        )
    return NormalisedBatch(frame=frame, rejected=rejected)


def _days(span: timedelta) -> str:
    days = span.total_seconds() / 86_400
    if days >= 1:
        return f"{days:g} days"
    return f"{span.total_seconds() / 60:g} minutes"


def load_canonical(
    path: str | Path, *, token_key: str, require_label: bool = True
) -> tuple[pd.DataFrame, list[Rejection]]:
    """Read a Kaggle-schema file and return its valid rows as a canonical frame (with ``is_fraud``).

    Rows are sorted by ``(event_time, trans_num)``, the order every point-in-time computation uses.
    """
    batch = to_canonical(read_raw(path), token_key=token_key, require_label=require_label)
    frame = batch.frame.sort_values(["event_time", "trans_num"], kind="stable").reset_index(drop=True)
    return frame, batch.rejected


def coerce_canonical_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Give a canonical frame read from elsewhere (the warehouse) the reader's dtypes.

    Batch and online features must see the same dtypes to give identical values.
    """
    out = frame.copy()
    for column in ("trans_num", "card_id", "card_last4", "category", "merchant", "gender", "city", "state", "job"):
        if column in out.columns:
            out[column] = out[column].astype("str")
    for column in ("event_time", "dob"):
        if column in out.columns:
            values = pd.to_datetime(out[column], utc=True).dt.tz_localize(None)
            out[column] = values.astype("datetime64[us]")
    if "dob" in out.columns:
        out["dob"] = out["dob"].dt.normalize()
    for column in ("amount", "merch_lat", "merch_long", "lat", "long"):
        if column in out.columns:
            out[column] = out[column].astype("float64")
    for column in ("zip", "city_pop"):
        if column in out.columns:
            out[column] = out[column].astype("int64")
    return out
