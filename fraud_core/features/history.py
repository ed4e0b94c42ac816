"""Online features: new transactions scored against their cards' history from the warehouse.

Parity with the batch features holds by construction: :func:`build_features_with_history` puts the
history rows and the new rows in one frame, runs the very same :func:`build_features`, and keeps
the new rows. What makes every value exact is which history rows it gets (:class:`HistoryWindow`):

* each card's transactions with ``start <= event_time < end``, where ``start`` is the earliest new
  transaction's second minus the longest window and ``end`` the latest new transaction's time: every
  window of every new row lies inside;
* each card's last transaction before ``start``: the "previous transaction" when the window is
  empty;
* each (card, category)'s first transaction before ``start``: whether a category is new to a card.

Label features need every label of the warehouse, not only these cards'; they come as label events
(:data:`~fraud_core.features.build.LABEL_EVENT_COLUMNS`): the totals of labels up to
``label_base_until`` per (merchant, category), plus the individual labels after it up to
``label_until``. :func:`fraud_core.db.history.fetch_card_history` and
:func:`fraud_core.db.history.fetch_label_stats` read exactly that from the warehouse;
:func:`select_card_history` and :func:`select_label_events` are the same selections on a frame, used
by tests and by anyone holding history in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraud_core.features.build import (
    LABEL_EVENT_COLUMNS,
    build_features,
    empty_label_events,
    label_delay_seconds,
    row_order,
)
from fraud_core.features.definitions import INPUT_COLUMNS, MAX_WINDOW_SECONDS


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    """What the warehouse must return to compute exact features for a batch of new transactions.

    Attributes:
        card_ids: the distinct cards of the batch, sorted.
        start: card history from this instant (inclusive).
        end: card history until this instant (exclusive).
        label_base_until: labels of transactions with ``event_time < label_base_until + 1 s`` may
            come as totals per (merchant, category), stamped at ``label_base_until``. It is the
            last second of a UTC day, so that the totals stay the same for a whole day of batches
            (the warehouse keeps them: :func:`fraud_core.db.history.fetch_label_stats`); the labels
            after it come one by one.
        label_until: labels of transactions with ``event_time < label_until + 1 s`` are all that
            the batch may use.
    """

    card_ids: tuple[str, ...]
    start: pd.Timestamp
    end: pd.Timestamp
    label_base_until: pd.Timestamp
    label_until: pd.Timestamp


def history_window(new: pd.DataFrame, *, label_delay_days: float | None = None) -> HistoryWindow:
    """The history a batch of new canonical transactions needs (see :class:`HistoryWindow`).

    Raises:
        ValueError: the batch is empty.
    """
    if len(new) == 0:
        raise ValueError("no transaction to build a history window for")
    times = pd.to_datetime(new["event_time"]).astype("datetime64[us]")
    first_second = times.min().floor("s")
    last_second = times.max().floor("s")
    delay = pd.Timedelta(seconds=label_delay_seconds(label_delay_days))
    return HistoryWindow(
        card_ids=tuple(sorted(pd.unique(new["card_id"].astype("str")))),
        start=first_second - pd.Timedelta(seconds=MAX_WINDOW_SECONDS),
        end=times.max(),
        label_base_until=(first_second - delay).floor("D") - pd.Timedelta(seconds=1),
        label_until=last_second - delay,
    )


def select_card_history(transactions: pd.DataFrame, window: HistoryWindow) -> pd.DataFrame:
    """The card-history selection of :func:`fraud_core.db.history.fetch_card_history`, on a frame.

    Args:
        transactions: canonical transactions (the "warehouse").
        window: from :func:`history_window`.

    Returns:
        The selected rows, canonical columns, ordered by (card_id, event_time, trans_num), no
        duplicate ``trans_num``.
    """
    ours = transactions[transactions["card_id"].isin(window.card_ids)]
    times = ours["event_time"].to_numpy(dtype="datetime64[us]")
    in_window = ours[(times >= window.start.to_datetime64()) & (times < window.end.to_datetime64())]
    before = ours[times < window.start.to_datetime64()]
    picked = [in_window]
    if len(before):
        # Vectorised "last per card" and "first per (card, category)" in (event_time, trans_num)
        # order: sort once per grouping, keep the group edges.
        t_us = before["event_time"].to_numpy(dtype="datetime64[us]").astype(np.int64)
        card = pd.factorize(before["card_id"])[0].astype(np.int64)
        category = pd.factorize(before["category"])[0].astype(np.int64)
        by_card = row_order([card], t_us, before["trans_num"])
        c = card[by_card]
        last = by_card[np.append(c[1:] != c[:-1], True)]
        by_pair = row_order([card, category], t_us, before["trans_num"])
        c, k = card[by_pair], category[by_pair]
        first = by_pair[np.insert((c[1:] != c[:-1]) | (k[1:] != k[:-1]), 0, True)]
        picked = [before.iloc[np.union1d(last, first)], in_window]
    out = pd.concat(picked).drop_duplicates("trans_num")
    return out.sort_values(["card_id", "event_time", "trans_num"], kind="stable").reset_index(drop=True)


def select_label_events(
    transactions: pd.DataFrame, window: HistoryWindow, label_column: str = "is_fraud"
) -> pd.DataFrame:
    """The label selection of :func:`fraud_core.db.history.fetch_label_stats`, on a frame.

    Args:
        transactions: canonical transactions with their labels (missing label: not labelled).
        window: from :func:`history_window`.

    Returns:
        Label events: one row per (merchant, category) with the totals of labels up to
        ``window.label_base_until``, then one row per later label up to ``window.label_until``.
    """
    if label_column not in transactions.columns:
        return empty_label_events()
    known = transactions[transactions[label_column].notna()]
    one_second = pd.Timedelta(seconds=1)
    old = known[known["event_time"] < window.label_base_until + one_second]
    recent = known[
        (known["event_time"] >= window.label_base_until + one_second)
        & (known["event_time"] < window.label_until + one_second)
    ]
    base = (
        old.assign(n=1, n_fraud=old[label_column].astype("int64"))
        .groupby(["merchant", "category"], as_index=False)[["n", "n_fraud"]]
        .sum()
    )
    base.insert(0, "event_time", window.label_base_until)
    rows = pd.DataFrame(
        {
            "event_time": recent["event_time"].to_numpy(),
            "merchant": recent["merchant"].to_numpy(),
            "category": recent["category"].to_numpy(),
            "n": np.ones(len(recent), dtype=np.int64),
            "n_fraud": recent[label_column].to_numpy(dtype=np.int64),
        }
    )
    return normalise_label_events(pd.concat([base[list(LABEL_EVENT_COLUMNS)], rows], ignore_index=True))


def normalise_label_events(events: pd.DataFrame) -> pd.DataFrame:
    """Give a label-events frame (from the warehouse or a frame) the dtypes the features expect."""
    if len(events) == 0:
        return empty_label_events()
    return pd.DataFrame(
        {
            "event_time": pd.to_datetime(events["event_time"]).astype("datetime64[us]").to_numpy(),
            "merchant": events["merchant"].astype("str").to_numpy(),
            "category": events["category"].astype("str").to_numpy(),
            "n": events["n"].astype("int64").to_numpy(),
            "n_fraud": events["n_fraud"].astype("int64").to_numpy(),
        }
    )


def build_features_with_history(
    new: pd.DataFrame,
    history: pd.DataFrame,
    label_events: pd.DataFrame | None = None,
    *,
    label_delay_days: float | None = None,
) -> pd.DataFrame:
    """Features of new transactions, computed with their cards' history.

    Args:
        new: the canonical transactions to score.
        history: the cards' history as :func:`select_card_history` or
            :func:`fraud_core.db.history.fetch_card_history` return it. Rows that are also in
            ``new`` (same ``trans_num``) are taken from ``new``.
        label_events: as :func:`select_label_events` or
            :func:`fraud_core.db.history.fetch_label_stats` return them; ``None`` leaves the
            label features missing.
        label_delay_days: defaults to ``settings.features.label_delay_days``.

    Returns:
        :data:`~fraud_core.features.definitions.FEATURE_COLUMNS` for the rows of ``new``, with
        ``new``'s index and order; identical to what :func:`build_features` gives on a full history.
    """
    columns: Sequence[str] = INPUT_COLUMNS
    old = history[~history["trans_num"].isin(new["trans_num"])] if len(history) else history
    if len(old):
        combined = pd.concat([old[list(columns)], new[list(columns)]], ignore_index=True)
    else:
        combined = new[list(columns)].reset_index(drop=True)
    features = build_features(combined, label_events, label_delay_days=label_delay_days)
    out = features.iloc[len(combined) - len(new) :]
    out.index = new.index
    return out
