"""Model figures: ranking quality, the decision at a threshold, and card precision@k per day.

Used at training (validation figures kept in the artifact), by ``fraud-detector evaluate``, and by
the weekly performance check on transactions whose labels arrived.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

#: Cards an analyst team can review per day: "card precision@100".
CARDS_PER_DAY = 100


def _safe(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def card_precision_at_k(
    y_true: np.ndarray | pd.Series,
    scores: np.ndarray | pd.Series,
    event_time: np.ndarray | pd.Series,
    card_id: np.ndarray | pd.Series,
    *,
    k: int = CARDS_PER_DAY,
) -> tuple[float | None, float | None, int]:
    """Mean daily card precision@k and its ceiling.

    Each day, a card's risk is its highest score that day; of the ``k`` riskiest cards, the share
    that really had a fraud that day is the day's precision. The ceiling is what a perfect ranking
    reaches: ``min(k, compromised cards that day) / k``, averaged the same way. On days with fewer
    than ``k`` active cards, all of them are "reviewed" and the divisor stays ``k``.

    Returns:
        ``(mean precision, mean ceiling, number of days)``; ``None`` figures without data.
    """
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(np.asarray(event_time)).floor("D"),
            "card": np.asarray(card_id),
            "score": np.asarray(scores, dtype=np.float64),
            "fraud": np.asarray(y_true, dtype=np.int64),
        }
    )
    if frame.empty:
        return None, None, 0
    per_card = frame.groupby(["day", "card"], sort=False).agg(score=("score", "max"), fraud=("fraud", "max"))
    per_card = per_card.reset_index()
    # Ties in score are broken by card id so the figure is deterministic.
    per_card = per_card.sort_values(["day", "score", "card"], ascending=[True, False, True], kind="stable")
    top = per_card.groupby("day", sort=True).head(k)
    hits = top.groupby("day")["fraud"].sum()
    compromised = per_card.groupby("day")["fraud"].sum()
    precision = (hits / k).mean()
    ceiling = (np.minimum(compromised, k) / k).mean()
    return _safe(precision), _safe(ceiling), int(len(compromised))


def compute_metrics(
    y_true: np.ndarray | pd.Series,
    scores: np.ndarray | pd.Series,
    threshold: float,
    *,
    event_time: np.ndarray | pd.Series | None = None,
    card_id: np.ndarray | pd.Series | None = None,
) -> dict[str, Any]:
    """Every figure we report for one set of scored, labelled transactions.

    Args:
        y_true: 0/1 labels.
        scores: fraud scores (higher is riskier).
        threshold: the model's decision threshold (``score >= threshold`` is an alert).
        event_time: for card precision@100 (with ``card_id``).
        card_id: for card precision@100.

    Returns:
        ``n``, ``n_fraud``, ``pr_auc`` (average precision), ``roc_auc``, ``precision``, ``recall``,
        ``f1`` and the confusion matrix (``tp``, ``fp``, ``tn``, ``fn``) at the threshold, ``alerts``,
        and, with times and cards, ``card_precision_at_100``, its ``_ceiling`` and ``days``.
        Figures that cannot be computed (one class only) are ``None``.
    """
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n, n_fraud = len(y), int(y.sum())
    both_classes = 0 < n_fraud < n
    pred = s >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    tn = int((~pred & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    out: dict[str, Any] = {
        "n": n,
        "n_fraud": n_fraud,
        "fraud_rate": n_fraud / n if n else None,
        "pr_auc": _safe(average_precision_score(y, s)) if both_classes else None,
        "roc_auc": _safe(roc_auc_score(y, s)) if both_classes else None,
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "alerts": int(pred.sum()),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }
    if event_time is not None and card_id is not None:
        cp, ceiling, days = card_precision_at_k(y, s, event_time, card_id, k=CARDS_PER_DAY)
        out["card_precision_at_100"] = cp
        out["card_precision_at_100_ceiling"] = ceiling
        out["days"] = days
    return out


#: Figures given an interval when the validation holds few frauds.
INTERVAL_METRICS = ("pr_auc", "precision", "recall", "f1")


def bootstrap_intervals(
    y_true: np.ndarray | pd.Series,
    scores: np.ndarray | pd.Series,
    threshold: float,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    random_state: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of PR-AUC, precision, recall and F1 at ``threshold``.

    Frauds and legitimate rows are resampled separately (a stratified bootstrap), so every
    resample has the frauds the figures need; with ten frauds the interval of PR-AUC is wide, which
    is the point. The threshold stays fixed: it was chosen on these rows, so the intervals are, if
    anything, optimistic.

    Returns:
        ``{metric: [low, high]}`` for the figures that could be computed (both classes present).
    """
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    fraud, legit = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(fraud) == 0 or len(legit) == 0:
        return {}
    rng = np.random.default_rng(random_state)
    draws: dict[str, list[float]] = {name: [] for name in INTERVAL_METRICS}
    for _ in range(n_boot):
        rows = np.concatenate([rng.choice(fraud, len(fraud)), rng.choice(legit, len(legit))])
        yb, sb = y[rows], s[rows]
        pred = sb >= threshold
        tp = int((pred & (yb == 1)).sum())
        fp = int((pred & (yb == 0)).sum())
        fn = len(fraud) - tp
        draws["pr_auc"].append(float(average_precision_score(yb, sb)))
        draws["precision"].append(tp / (tp + fp) if tp + fp else 0.0)
        draws["recall"].append(tp / (tp + fn))
        draws["f1"].append(2 * tp / (2 * tp + fp + fn))
    tail = (1.0 - level) / 2.0 * 100.0
    return {
        name: [float(np.percentile(values, tail)), float(np.percentile(values, 100.0 - tail))]
        for name, values in draws.items()
    }


def metrics_from_scores(frame: pd.DataFrame, threshold: float | None = None) -> dict[str, Any]:
    """:func:`compute_metrics` on a frame of scored, labelled transactions.

    Args:
        frame: columns ``is_fraud`` and ``score``; ``event_time`` and ``card_id`` for card
            precision@100; ``threshold`` (per row, as stored with predictions) when the argument
            is not given.
        threshold: the decision threshold; defaults to the frame's ``threshold`` column (its
            most frequent value).
    """
    if threshold is None:
        if "threshold" not in frame.columns or frame["threshold"].dropna().empty:
            raise ValueError("no threshold given and no threshold column")
        threshold = float(frame["threshold"].mode().iloc[0])
    has_cards = {"event_time", "card_id"} <= set(frame.columns)
    return compute_metrics(
        frame["is_fraud"],
        frame["score"],
        threshold,
        event_time=frame["event_time"] if has_cards else None,
        card_id=frame["card_id"] if has_cards else None,
    )
