"""Batch scoring: features and scores for a batch of stored transactions, shared by every batch use case.

The live flow (:mod:`fraud_core.pipeline.etl_and_predict`), the backfill, shadow scoring and the
weekly drift check all score this way. The features are the reference ones
(:func:`fraud_core.features.build_features_with_history`) over the batch's cards' history, read from
the warehouse with one query per kind (:mod:`fraud_core.db.history`), in the same session that
stored the batch: the batch's own rows are part of the history, as they are in training.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session

from fraud_core.db import history
from fraud_core.db.models import ScoringRole
from fraud_core.decisions import Policy
from fraud_core.features import build_features_with_history, history_window
from fraud_core.ml.champion import LoadedModel
from fraud_core.pipeline.decisioning import apply_policy


def features_from_warehouse(
    frame: pd.DataFrame, *, session: Session, label_delay_days: float, timings: dict[str, float] | None = None
) -> pd.DataFrame:
    """Feature frame of canonical transactions, with their cards' history from the warehouse.

    Args:
        frame: canonical transactions (already stored in ``session``'s transaction or not).
        session: the caller's session.
        label_delay_days: only labels of transactions at least this old feed the features.
        timings: filled with the seconds of ``card_history``, ``label_stats`` and ``build``.

    Returns:
        :data:`~fraud_core.features.FEATURE_COLUMNS`, with ``frame``'s index.
    """
    clock = time.perf_counter
    spent = timings if timings is not None else {}
    history.tune_for_batch(session)
    window = history_window(frame, label_delay_days=label_delay_days)
    started = clock()
    cards = history.fetch_card_history(window, session=session)
    spent["card_history"] = clock() - started
    started = clock()
    labels = history.fetch_label_stats(window, session=session)
    spent["label_stats"] = clock() - started
    started = clock()
    features = build_features_with_history(frame, cards, labels, label_delay_days=label_delay_days)
    spent["build"] = clock() - started
    return features


def latencies_ms(frame: pd.DataFrame, *, scored_at: datetime, received_at: datetime) -> np.ndarray:
    """Milliseconds from each transaction's release by the source to its score.

    ``released_at`` comes from the feed; a row without it counts from when the pipeline received
    it.
    """
    scored = pd.Timestamp(scored_at).tz_convert("UTC").tz_localize(None)
    received = pd.Timestamp(received_at).tz_convert("UTC").tz_localize(None)
    if "released_at" in frame.columns:
        start = pd.to_datetime(frame["released_at"]).astype("datetime64[us]").fillna(received)
    else:
        start = pd.Series(received, index=frame.index)
    return ((scored - start).dt.total_seconds() * 1000.0).clip(lower=0.0).to_numpy(dtype="float64")


def predict(
    features: pd.DataFrame,
    frame: pd.DataFrame,
    *,
    model: LoadedModel,
    received_at: datetime,
    reasons: int = 3,
    role: str = ScoringRole.CHAMPION.value,
    policy: Policy | None = None,
) -> pd.DataFrame:
    """Score a feature frame and shape the rows for ``predictions``, decided by ``policy`` when given.

    Reasons are worked out for the transactions at medium or high risk only (the ones an analyst
    or an alert looks at): each reason costs one more model call per feature, which for a whole
    batch of mostly legitimate transactions would take longer than everything else together. Low
    risk rows store an empty list.

    Returns:
        ``trans_num, model_version, role, score, threshold, decision, risk_level, reasons,
        scored_at, latency_ms``, one row per transaction, in ``frame``'s order; with a policy also
        ``outcome, band, rule_hits, list_hits, policy_version``
        (:func:`fraud_core.pipeline.decisioning.apply_policy`), ``decision`` then being
        ``outcome != approve``.
    """
    predictor = model.predictor
    scored = predictor.score_features(features, reasons=0)
    explained: list[list[dict[str, Any]]] = [[] for _ in range(len(scored))]
    risky = np.flatnonzero((scored["risk_level"] != "low").to_numpy())
    if reasons > 0 and len(risky):
        for position, why in zip(risky, predictor.explain(features.iloc[risky], top=reasons), strict=True):
            explained[position] = why
    now = datetime.now(UTC)
    out: dict[str, Any] = {
        "trans_num": frame["trans_num"].astype("str").to_numpy(),
        "model_version": model.version,
        "role": role,
        "score": scored["score"].astype("float64").to_numpy(),
        "threshold": float(model.threshold),
        "decision": scored["decision"].astype(bool).to_numpy(),
        "risk_level": scored["risk_level"].astype("str").to_numpy(),
        "reasons": explained,
        "scored_at": now,
        "latency_ms": latencies_ms(frame, scored_at=now, received_at=received_at),
    }
    rows = pd.DataFrame(out)
    if policy is not None:
        rows = apply_policy(rows, [frame, features], card=model.card, policy=policy)
    return rows
