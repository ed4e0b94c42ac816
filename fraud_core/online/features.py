"""One transaction's features from its card's history: the online twin of :mod:`fraud_core.features.build`.

:func:`features_one` computes every declared feature (:data:`fraud_core.features.FEATURES`) of one
transaction of one card from a :class:`CardHistory`: the card's transactions of the longest window
before the transaction, the last one before that window, and whether the card bought in the category
before. The arithmetic is the batch code's, operation for operation (integer-cent window sums, the
same haversine, the same label-rate formula), so values are identical, not merely close; the parity
test enumerates the declarations and compares both paths on random histories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from fraud_core.features.build import _haversine_km, _label_rates, label_delay_seconds
from fraud_core.features.definitions import (
    FEATURE_COLUMNS,
    LABEL_RATE_PRIOR_COUNT,
    MAX_AMOUNT_WINDOW,
    MAX_WINDOW_SECONDS,
    NIGHT_HOURS,
    RELATIVE_WINDOW,
    WINDOWS,
    check_declared,
)
from fraud_core.online.canonical import CanonicalRow

_US = 1_000_000
_DAY = 86_400
_EPOCH = datetime(1970, 1, 1)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch of a naive-UTC (or aware) datetime, exactly."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    delta = value - _EPOCH
    return (delta.days * _DAY + delta.seconds) * _US + delta.microseconds


@dataclass(frozen=True, slots=True)
class CardHistory:
    """What one transaction's features need from its card's past.

    Attributes:
        t_us: event times (µs since the epoch) of the card's transactions in the longest window
            before the transaction's second, plus the last one before that window; any order
            (in time and ``trans_num`` order they skip a sort).
        trans_num: their ids (break ties of equal times, as the batch order does).
        amount: their amounts.
        merch_lat: their merchants' latitudes.
        merch_long: their merchants' longitudes.
        category_seen: whether the card has a transaction in the transaction's category before the
            transaction's second.
    """

    t_us: np.ndarray
    trans_num: list[str]
    amount: np.ndarray
    merch_lat: np.ndarray
    merch_long: np.ndarray
    category_seen: bool


def history_bounds(event_time: datetime) -> tuple[datetime, datetime]:
    """``(start, end)``: a card's rows with ``start <= event_time < end`` feed the windows.

    ``end`` is the transaction's whole second (rows in the same second are never its past), ``start``
    that second minus the longest window.
    """
    second = event_time.replace(microsecond=0)
    return second - timedelta(seconds=MAX_WINDOW_SECONDS), second


def features_one(
    row: CanonicalRow,
    history: CardHistory,
    label_events: pd.DataFrame | LabelIndex | None = None,
    *,
    label_delay_days: float | None = None,
) -> dict[str, Any]:
    """The features of one transaction (``FEATURE_COLUMNS`` → value), as the batch code computes them.

    Args:
        row: the canonical transaction (:func:`canonical_one`).
        history: its card's past (:class:`CardHistory`).
        label_events: as :func:`fraud_core.features.build_features_with_history` takes them, or a
            :class:`LabelIndex` built from them (the same values, without a pass over the events).
        label_delay_days: defaults to ``settings.features.label_delay_days``.
    """
    t_us = to_us(row["event_time"])
    t_s = t_us // _US
    out: dict[str, Any] = {"amount": row["amount"], "category": row["category"]}

    # The card's strict past at whole seconds, in the batch order (time, then trans_num).
    all_us = np.asarray(history.t_us, dtype=np.int64)
    sel = np.flatnonzero(all_us // _US < t_s)
    if len(sel) > 1 and not bool(np.all(np.diff(all_us[sel]) > 0)):  # out of order, or tied times
        sel = np.asarray(sorted(sel.tolist(), key=lambda i: (int(all_us[i]), history.trans_num[i])), dtype=np.int64)
    times = all_us[sel]
    seconds = times // _US
    amounts = np.asarray(history.amount, dtype=np.float64)[sel]

    cents = np.rint(amounts * 100.0).astype(np.int64)
    relative: tuple[float, float] | None = None
    for name, window in WINDOWS.items():
        inside = seconds >= t_s - window
        c = cents[inside]
        count = float(len(c))
        total = float(np.int64(c.sum()))
        total_sq = float(np.int64((c * c).sum()))
        mean = (total / count if count > 0 else math.nan) / 100.0
        var = (total_sq - total * total / count) / (count - 1) if count > 1 else math.nan
        std = float(np.sqrt(np.maximum(var, 0.0))) / 100.0
        out[f"card_count_{name}"] = count
        out[f"card_amount_sum_{name}"] = total / 100.0
        out[f"card_amount_mean_{name}"] = mean
        out[f"card_amount_std_{name}"] = std
        if name == RELATIVE_WINDOW:
            relative = (mean, std)
        if name == MAX_AMOUNT_WINDOW:
            out[f"card_amount_max_{name}"] = float(amounts[inside].max()) if count > 0 else math.nan
    assert relative is not None
    mean_rel, std_rel = relative
    amount = row["amount"]
    out["amount_ratio_30d"] = amount / mean_rel if mean_rel > 0 else math.nan
    out["amount_zscore_30d"] = (amount - mean_rel) / std_rel if std_rel > 0 else math.nan

    # Home to merchant, and the previous merchant to this one, in one call (element-wise).
    last = int(sel[-1]) if len(sel) else -1
    home_km, prev_km = _haversine_km(
        np.asarray([row["lat"], history.merch_lat[last] if last >= 0 else 0.0], dtype=np.float64),
        np.asarray([row["long"], history.merch_long[last] if last >= 0 else 0.0], dtype=np.float64),
        np.full(2, row["merch_lat"], dtype=np.float64),
        np.full(2, row["merch_long"], dtype=np.float64),
    ).tolist()
    if last >= 0:
        secs = (t_us - int(history.t_us[last])) / _US
        km = float(prev_km)
        out["secs_since_prev"] = secs
        out["prev_merchant_km"] = km
        with np.errstate(invalid="ignore", divide="ignore"):
            out["prev_speed_kmh"] = float(np.float64(km) / (np.float64(secs) / 3600.0))
    else:
        out["secs_since_prev"] = math.nan
        out["prev_merchant_km"] = math.nan
        out["prev_speed_kmh"] = math.nan

    out["is_new_category"] = 0.0 if history.category_seen else 1.0
    hour = (t_s // 3600) % 24
    out["hour"] = float(hour)
    out["weekday"] = float((t_s // _DAY + 3) % 7)
    out["is_night"] = 1.0 if hour in NIGHT_HOURS else 0.0
    dob_days = (row["dob"] - _EPOCH).days
    out["age_years"] = (t_s // _DAY - dob_days) / 365.25
    out["home_merchant_km"] = float(home_km)
    if isinstance(label_events, LabelIndex):
        rates = label_events.rates(t_s, row["merchant"], row["category"], label_delay_seconds(label_delay_days))
        out["category_fraud_rate"], out["merchant_fraud_rate"] = rates
    elif label_events is None or len(label_events) == 0:
        out["category_fraud_rate"] = math.nan
        out["merchant_fraud_rate"] = math.nan
    else:
        category_rate, merchant_rate = _label_rates(
            np.asarray([t_s], dtype=np.int64),
            pd.Series([row["merchant"]]),
            pd.Series([row["category"]]),
            label_events,
            label_delay_seconds(label_delay_days),
        )
        out["category_fraud_rate"] = float(category_rate[0])
        out["merchant_fraud_rate"] = float(merchant_rate[0])
    check_declared(out, where="features_one")
    return {name: out[name] for name in FEATURE_COLUMNS}


def history_from_frame(history: pd.DataFrame, row: CanonicalRow) -> CardHistory:
    """A :class:`CardHistory` from a canonical history frame (tests, and callers holding frames)."""
    start, end = history_bounds(row["event_time"])
    mine = history[(history["card_id"] == row["card_id"]) & (history["trans_num"] != row["trans_num"])]
    times = pd.to_datetime(mine["event_time"]).astype("datetime64[us]")
    before_end = mine[times < end]
    t = times[times < end]
    in_window = before_end[t >= start]
    earlier = before_end[t < start]
    if len(earlier):
        keys = list(
            zip(pd.to_datetime(earlier["event_time"]).astype("datetime64[us]"), earlier["trans_num"], strict=True)
        )
        last = max(range(len(keys)), key=lambda i: (keys[i][0], keys[i][1]))
        picked = pd.concat([in_window, earlier.iloc[[last]]])
    else:
        picked = in_window
    return CardHistory(
        t_us=pd.to_datetime(picked["event_time"]).astype("datetime64[us]").to_numpy().astype(np.int64),
        trans_num=[str(v) for v in picked["trans_num"]],
        amount=picked["amount"].to_numpy(dtype=np.float64),
        merch_lat=picked["merch_lat"].to_numpy(dtype=np.float64),
        merch_long=picked["merch_long"].to_numpy(dtype=np.float64),
        category_seen=bool((before_end["category"] == row["category"]).any()),
    )


class LabelIndex:
    """Label counts at any cutoff, for the label features of single transactions.

    Built once from label events (one row per labelled transaction, e.g. from
    :func:`fraud_core.db.history.fetch_label_stats` over all time) and then asked, per transaction,
    how many labels (and frauds) overall, in its category and at its merchant have
    ``floor(event_time) <= t - delay``: three binary searches instead of an aggregate query. The
    rates are :func:`fraud_core.features.build._label_rates`' formula, operation for operation.
    """

    def __init__(self, label_events: pd.DataFrame) -> None:
        self.prior = LABEL_RATE_PRIOR_COUNT
        self.size = len(label_events)
        if self.size == 0:
            self._all = (np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
            self._by_category: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
            self._by_merchant: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
            return
        t_s = np.floor_divide(np.asarray(label_events["event_time"], dtype="datetime64[us]").astype(np.int64), _US)
        n = label_events["n"].to_numpy(dtype=np.int64)
        f = label_events["n_fraud"].to_numpy(dtype=np.int64)
        self._all = self._cumulative(t_s, n, f)
        self._by_category = self._grouped(label_events["category"].astype("str").to_numpy(), t_s, n, f)
        self._by_merchant = self._grouped(label_events["merchant"].astype("str").to_numpy(), t_s, n, f)

    @staticmethod
    def _cumulative(t_s: np.ndarray, n: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(t_s, kind="stable")
        cum_n = np.zeros(len(order) + 1, dtype=np.int64)
        cum_f = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(n[order], out=cum_n[1:])
        np.cumsum(f[order], out=cum_f[1:])
        return t_s[order], cum_n, cum_f

    @classmethod
    def _grouped(
        cls, keys: np.ndarray, t_s: np.ndarray, n: np.ndarray, f: np.ndarray
    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        codes, uniques = pd.factorize(keys)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        out = {}
        for i, key in enumerate(uniques):
            part = order[bounds[i] : bounds[i + 1]]
            out[str(key)] = cls._cumulative(t_s[part], n[part], f[part])
        return out

    @staticmethod
    def _counts(table: tuple[np.ndarray, np.ndarray, np.ndarray] | None, cutoff: int) -> tuple[int, int]:
        if table is None:
            return 0, 0
        times, cum_n, cum_f = table
        i = int(np.searchsorted(times, cutoff, side="right"))
        return int(cum_n[i]), int(cum_f[i])

    def rates(self, t_s: int, merchant: str, category: str, delay_s: int) -> tuple[float, float]:
        """(category fraud rate, merchant fraud rate) of a transaction at second ``t_s``."""
        if self.size == 0:
            return math.nan, math.nan
        cutoff = t_s - delay_s
        all_n, all_f = self._counts(self._all, cutoff)
        cat_n, cat_f = self._counts(self._by_category.get(category), cutoff)
        mer_n, mer_f = self._counts(self._by_merchant.get(merchant), cutoff)
        m = self.prior
        a_n, a_f = np.int64(all_n), np.int64(all_f)
        with np.errstate(invalid="ignore", divide="ignore"):
            overall = a_f / np.maximum(a_n, 1) if all_n > 0 else np.float64(np.nan)
            category_rate = (np.int64(cat_f) + m * overall) / (np.int64(cat_n) + m)
            merchant_rate = (np.int64(mer_f) + m * category_rate) / (np.int64(mer_n) + m)
        return float(category_rate), float(merchant_rate)
