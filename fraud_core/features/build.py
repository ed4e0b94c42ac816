"""Point-in-time features, computed for a whole frame at once (vectorised, no loop per row).

This is the reference implementation: training and evaluation call :func:`build_features` on a
whole file; the live flow, the backfill and ``/predict/batch`` call
:func:`fraud_core.features.history.build_features_with_history`, which runs this same function on the
new transactions plus their cards' recent history. ``/predict`` uses the one-row twin,
:func:`fraud_core.online.features.features_one`; a new feature is declared in
:mod:`fraud_core.features.definitions` and written here and there (the parity test checks both).

Rules every feature follows:

* **Only the card's past counts.** For a transaction at time ``t``, a card's other transaction
  counts when its event time is strictly earlier than ``t``. Times are compared at whole seconds, so
  two transactions in the same second never see each other, whatever order they arrive in.
* **Deterministic order.** Rows are ordered by ``(card_id, event_time, trans_num)``. When several
  earlier transactions share the latest time, "the previous transaction" is the one with the largest
  ``trans_num``. The output is in the input's row order, whatever that order is.
* **Windows are ``[t - w, t)``**, at whole seconds.
* **Labels are late.** Label features count the labels of transactions whose event time is at
  least ``label_delay_days`` before ``t`` (``floor(event_time) <= floor(t) - delay``).
* **Exact sums.** Amounts enter the window sums as integer cents, so a window's sum and sum of
  squares do not depend on where the frame starts: batch and online give identical values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_core.features.definitions import (
    FEATURE_COLUMNS,
    INPUT_COLUMNS,
    LABEL_RATE_PRIOR_COUNT,
    MAX_AMOUNT_WINDOW,
    MAX_WINDOW_SECONDS,
    NIGHT_HOURS,
    RELATIVE_WINDOW,
    WINDOWS,
    check_declared,
)
from fraud_core.settings import get_settings

#: Columns of a label-events frame: one row per labelled transaction (``n = 1``), or one row per
#: (merchant, category) holding the totals of many old labels (``n`` labels, ``n_fraud`` of them
#: fraud, all at or before ``event_time``). Both forms mix freely.
LABEL_EVENT_COLUMNS: tuple[str, ...] = ("event_time", "merchant", "category", "n", "n_fraud")

_EARTH_RADIUS_KM = 6371.0088
_US_PER_S = 1_000_000
_S_PER_DAY = 86_400


def label_delay_seconds(label_delay_days: float | None = None) -> int:
    """The label delay in whole seconds (``settings.features.label_delay_days`` by default)."""
    if label_delay_days is None:
        label_delay_days = get_settings().features.label_delay_days
    if label_delay_days < 0:
        raise ValueError(f"label_delay_days must be >= 0, got {label_delay_days}")
    return round(label_delay_days * _S_PER_DAY)


def empty_label_events() -> pd.DataFrame:
    """A label-events frame with no row."""
    return pd.DataFrame(
        {
            "event_time": pd.Series([], dtype="datetime64[us]"),
            "merchant": pd.Series([], dtype="str"),
            "category": pd.Series([], dtype="str"),
            "n": pd.Series([], dtype="int64"),
            "n_fraud": pd.Series([], dtype="int64"),
        }
    )


def label_events_from_frame(frame: pd.DataFrame, label_column: str = "is_fraud") -> pd.DataFrame:
    """Label events of a canonical frame that carries its labels (a training or history file).

    Rows whose label is missing are not labelled yet and do not count.
    """
    if label_column not in frame.columns:
        return empty_label_events()
    known = frame[frame[label_column].notna()]
    return pd.DataFrame(
        {
            "event_time": known["event_time"].to_numpy(dtype="datetime64[us]"),
            "merchant": known["merchant"].to_numpy(),
            "category": known["category"].to_numpy(),
            "n": np.ones(len(known), dtype=np.int64),
            "n_fraud": known[label_column].to_numpy(dtype=np.int64),
        }
    )


def _times(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Event times as int64 microseconds and as int64 whole seconds (floored)."""
    us = np.asarray(values, dtype="datetime64[us]").astype(np.int64)
    return us, np.floor_divide(us, _US_PER_S)


def _haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dp / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2.0) ** 2
    return 2.0 * _EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def row_order(keys: list[np.ndarray], t_us: np.ndarray, trans_num: pd.Series) -> np.ndarray:
    """Row positions sorted by (``*keys``, event time, ``trans_num``): the point-in-time order.

    Args:
        keys: integer arrays (card codes, category codes ...), most significant first.
        t_us: event times as int64 microseconds.
        trans_num: the rows' ids; they only break ties, which are rare, so only tied rows pay for
            sorting strings.
    """
    order = np.lexsort((t_us, *reversed(keys)))
    same = t_us[order][1:] == t_us[order][:-1]
    for key in keys:
        k = key[order]
        same &= k[1:] == k[:-1]
    if not same.any():
        return order
    in_tie = np.zeros(len(order), dtype=bool)
    in_tie[1:] |= same
    in_tie[:-1] |= same
    tied_rows = order[in_tie]
    rank = np.zeros(len(order), dtype=np.int64)
    rank[tied_rows] = pd.factorize(trans_num.iloc[tied_rows].astype("str"), sort=True)[0]
    return np.lexsort((rank, t_us, *reversed(keys)))


def _check_input(frame: pd.DataFrame) -> None:
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"features need canonical columns, missing: {', '.join(missing)}")
    for column in ("trans_num", "card_id", "event_time", "amount", "category", "merchant"):
        if frame[column].isna().any():
            raise ValueError(f"features need a value in every row of {column!r}")


def _cumulative(values: np.ndarray) -> np.ndarray:
    """Exclusive prefix sums: ``out[i]`` is the sum of ``values[:i]``.

    int64 sums may wrap around on huge frames; differences of wrapped prefix sums are still exact
    (two's complement), so window sums are right whenever the window's own sum fits in int64.
    """
    out = np.zeros(len(values) + 1, dtype=values.dtype)
    np.cumsum(values, out=out[1:])
    return out


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``max(values[lo[i]:hi[i]])`` for every ``i`` (NaN where the range is empty), without a loop per row.

    A sparse table: level ``k`` holds the maximum of each run of ``2**k`` values, and a range is
    covered by the two runs of its largest such length that start at its two ends.
    """
    out = np.full(len(lo), np.nan)
    length = hi - lo
    longest = int(length.max()) if len(length) else 0
    if longest <= 0:
        return out
    # floor(log2(length)) exactly, for length >= 1 (frexp gives 2**(e-1) <= length < 2**e).
    level = np.frexp(np.maximum(length, 1).astype(np.float64))[1].astype(np.int64) - 1
    table = np.asarray(values, dtype=np.float64)
    for k in range(int(level[length > 0].max()) + 1):
        if k:
            half = 1 << (k - 1)
            table = np.maximum(table[:-half], table[half:])
        rows = np.flatnonzero((level == k) & (length > 0))
        out[rows] = np.maximum(table[lo[rows]], table[hi[rows] - (1 << k)])
    return out


def _label_rates(
    query_t_s: np.ndarray,
    query_merchant: pd.Series,
    query_category: pd.Series,
    label_events: pd.DataFrame | None,
    delay_s: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed category and merchant fraud rates from labels at least ``delay_s`` old."""
    n = len(query_t_s)
    if label_events is None or len(label_events) == 0 or n == 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    missing = [c for c in LABEL_EVENT_COLUMNS if c not in label_events.columns]
    if missing:
        raise ValueError(f"label events need columns {', '.join(missing)}")

    cutoff = query_t_s - delay_s
    _, ev_t = _times(label_events["event_time"])
    ev_n = label_events["n"].to_numpy(dtype=np.int64)
    ev_f = label_events["n_fraud"].to_numpy(dtype=np.int64)
    t0 = min(int(cutoff.min()), int(ev_t.min()))
    span = max(int(cutoff.max()), int(ev_t.max())) - t0 + 1

    def totals(query_keys: pd.Series | None, event_keys: pd.Series | None) -> tuple[np.ndarray, np.ndarray]:
        # Count events with the query's key and floor(event_time) <= cutoff: one sorted composite
        # key (key, time), and a binary search per query row.
        if query_keys is None or event_keys is None:
            qk = np.zeros(n, dtype=np.int64)
            ek = np.zeros(len(ev_t), dtype=np.int64)
            n_keys = 1
        else:
            codes, uniques = pd.factorize(query_keys)
            qk = codes.astype(np.int64)
            # Events of keys no query row has cannot matter; they get code -1 and sort first.
            ek = pd.Index(uniques).get_indexer(event_keys).astype(np.int64)
            n_keys = len(uniques)
        order = np.lexsort((ev_t, ek))
        composite = ek[order] * span + (ev_t[order] - t0)
        cum_n = _cumulative(ev_n[order])
        cum_f = _cumulative(ev_f[order])
        key_start = np.searchsorted(composite, np.arange(n_keys, dtype=np.int64) * span, side="left")
        start = key_start[qk]
        stop = np.maximum(np.searchsorted(composite, qk * span + (cutoff - t0), side="right"), start)
        return cum_n[stop] - cum_n[start], cum_f[stop] - cum_f[start]

    all_n, all_f = totals(None, None)
    cat_n, cat_f = totals(query_category, label_events["category"])
    mer_n, mer_f = totals(query_merchant, label_events["merchant"])

    m = LABEL_RATE_PRIOR_COUNT
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = np.where(all_n > 0, all_f / np.maximum(all_n, 1), np.nan)
        category_rate = (cat_f + m * overall) / (cat_n + m)
        merchant_rate = (mer_f + m * category_rate) / (mer_n + m)
    return category_rate, merchant_rate


def build_features(
    frame: pd.DataFrame,
    label_events: pd.DataFrame | None = None,
    *,
    label_delay_days: float | None = None,
) -> pd.DataFrame:
    """Compute :data:`FEATURE_COLUMNS` for every row of a canonical frame.

    Each row's features use only the card's earlier transactions in ``frame`` and labels old enough
    in ``label_events``; the row itself and anything later never count. To get exact values for a
    transaction, ``frame`` must hold the card's transactions of the previous 30 days, the card's
    last transaction before them, and the card's first transaction in each category (a whole
    history file does; :func:`fraud_core.features.history.build_features_with_history` arranges it).

    Args:
        frame: canonical transactions (at least :data:`INPUT_COLUMNS`), any row order, unique
            ``trans_num``.
        label_events: labels the label features may use (:data:`LABEL_EVENT_COLUMNS`; build them
            with :func:`label_events_from_frame`). ``None``: label features are missing (NaN).
        label_delay_days: only labels of transactions at least this old count; defaults to
            ``settings.features.label_delay_days``.

    Returns:
        A frame with the columns :data:`FEATURE_COLUMNS`, aligned with ``frame`` (same index, same
        order). ``category`` is text; the others are float64, NaN where undefined (no history).
    """
    _check_input(frame)
    delay_s = label_delay_seconds(label_delay_days)
    n = len(frame)

    t_us, t_s = _times(frame["event_time"])
    card, _ = pd.factorize(frame["card_id"])
    card = card.astype(np.int64)
    amount = frame["amount"].to_numpy(dtype=np.float64)

    order = row_order([card], t_us, frame["trans_num"])
    c_s, ts_s, tus_s = card[order], t_s[order], t_us[order]

    # One sorted int64 key per row: (card, whole seconds). Cards sit `span` apart, more than the
    # longest window, so a window's search never leaves its card.
    t0 = int(t_s.min()) if n else 0
    span = (int(t_s.max()) - t0 if n else 0) + MAX_WINDOW_SECONDS + 2
    if n and int(c_s.max()) + 1 > np.iinfo(np.int64).max // span:
        raise ValueError("too many cards over too long a period for one feature frame; split it by card")
    key = c_s * span + (ts_s - t0)
    card_start = np.searchsorted(key, c_s * span, side="left")
    # First row of the same card at the same second or later: rows before it are the strict past.
    hi = np.searchsorted(key, key, side="left")

    sorted_out: dict[str, np.ndarray] = {}

    # Rolling windows over [t - w, t), from exact integer-cent prefix sums.
    cents = np.rint(amount[order] * 100.0).astype(np.int64)
    cum_c = _cumulative(cents)
    cum_c2 = _cumulative(cents * cents)
    relative: tuple[np.ndarray, np.ndarray] | None = None
    for name, seconds in WINDOWS.items():
        lo = np.searchsorted(key, key - seconds, side="left")
        count = (hi - lo).astype(np.float64)
        total = (cum_c[hi] - cum_c[lo]).astype(np.float64)
        total_sq = (cum_c2[hi] - cum_c2[lo]).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / count, np.nan) / 100.0
            var = np.where(count > 1, (total_sq - total * total / count) / (count - 1), np.nan)
            std = np.sqrt(np.maximum(var, 0.0)) / 100.0
        sorted_out[f"card_count_{name}"] = count
        sorted_out[f"card_amount_sum_{name}"] = total / 100.0
        sorted_out[f"card_amount_mean_{name}"] = mean
        sorted_out[f"card_amount_std_{name}"] = std
        if name == RELATIVE_WINDOW:
            relative = (mean, std)
        if name == MAX_AMOUNT_WINDOW:
            sorted_out[f"card_amount_max_{name}"] = _range_max(amount[order], lo, hi)
    assert relative is not None
    mean_rel, std_rel = relative
    amount_sorted = amount[order]
    with np.errstate(invalid="ignore", divide="ignore"):
        sorted_out["amount_ratio_30d"] = np.where(mean_rel > 0, amount_sorted / mean_rel, np.nan)
        sorted_out["amount_zscore_30d"] = np.where(std_rel > 0, (amount_sorted - mean_rel) / std_rel, np.nan)

    # The previous transaction: the last row strictly before, in (event_time, trans_num) order.
    has_prev = hi > card_start
    prev = np.where(has_prev, hi - 1, 0)
    merch_lat = frame["merch_lat"].to_numpy(dtype=np.float64)[order]
    merch_long = frame["merch_long"].to_numpy(dtype=np.float64)[order]
    secs = np.where(has_prev, (tus_s - tus_s[prev]) / _US_PER_S, np.nan)
    km = np.where(has_prev, _haversine_km(merch_lat[prev], merch_long[prev], merch_lat, merch_long), np.nan)
    sorted_out["secs_since_prev"] = secs
    sorted_out["prev_merchant_km"] = km
    with np.errstate(invalid="ignore", divide="ignore"):
        sorted_out["prev_speed_kmh"] = km / (secs / 3600.0)

    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    unsorted = {name: values[inverse] for name, values in sorted_out.items()}

    # First use of a category: no earlier transaction of the card in it. The minimum over all rows
    # is safe: it is earlier than t exactly when an earlier row exists.
    cat_code, _ = pd.factorize(frame["category"])
    pair = card * (int(cat_code.max()) + 1 if n else 1) + cat_code
    first_s = pd.Series(t_s).groupby(pair).transform("min").to_numpy()
    unsorted["is_new_category"] = (first_s >= t_s).astype(np.float64)

    hour = np.floor_divide(t_s, 3600) % 24
    unsorted["hour"] = hour.astype(np.float64)
    # 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
    unsorted["weekday"] = ((np.floor_divide(t_s, _S_PER_DAY) + 3) % 7).astype(np.float64)
    unsorted["is_night"] = np.isin(hour, list(NIGHT_HOURS)).astype(np.float64)

    dob = np.asarray(frame["dob"], dtype="datetime64[D]")
    event_day = np.floor_divide(t_s, _S_PER_DAY)
    with np.errstate(invalid="ignore"):
        age_days = np.where(np.isnat(dob), np.nan, event_day - dob.astype(np.int64))
    unsorted["age_years"] = age_days / 365.25

    unsorted["home_merchant_km"] = _haversine_km(
        frame["lat"].to_numpy(dtype=np.float64),
        frame["long"].to_numpy(dtype=np.float64),
        frame["merch_lat"].to_numpy(dtype=np.float64),
        frame["merch_long"].to_numpy(dtype=np.float64),
    )

    category_rate, merchant_rate = _label_rates(t_s, frame["merchant"], frame["category"], label_events, delay_s)
    unsorted["category_fraud_rate"] = category_rate
    unsorted["merchant_fraud_rate"] = merchant_rate
    unsorted["amount"] = amount
    check_declared([*unsorted, "category"], where="build_features")

    columns: dict[str, object] = {
        c: frame["category"].astype("str").to_numpy() if c == "category" else unsorted[c] for c in FEATURE_COLUMNS
    }
    return pd.DataFrame(columns, index=frame.index)
