"""Evaluation of a saved model on a later, labelled period.

Features of the test transactions are computed as they would have been live: from the history
(typically the training file) plus the earlier test transactions, and from labels at least the label
delay old, test labels included once old enough. Only the history the features can reach is kept
(:func:`fraud_core.features.select_card_history`: each card's last 30 days before the test period,
its last earlier transaction and its first per category), and the history's labels come as totals
(:func:`fraud_core.features.select_label_events`), so the values are exactly those of a full
recomputation at a fraction of the cost.

The figures themselves are :func:`fraud_core.ml.metrics.compute_metrics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_core.data import load_canonical
from fraud_core.features import (
    build_features_with_history,
    history_window,
    select_card_history,
    select_label_events,
)
from fraud_core.ml.artifact import ModelArtifact, load_artifact
from fraud_core.ml.metrics import compute_metrics
from fraud_core.ml.predictor import Predictor, score_many
from fraud_core.schema import LABEL_COLUMN
from fraud_core.settings import get_settings

__all__ = [
    "EvaluationError",
    "evaluate_files",
    "evaluate_frames",
]

logger = logging.getLogger(__name__)


class EvaluationError(ValueError):
    """The test data cannot be evaluated (no labels, no rows). One-line message."""


Progress = Callable[[str], None]


def evaluate_frames(
    model: ModelArtifact | Predictor,
    test: pd.DataFrame,
    history: pd.DataFrame | None = None,
    *,
    label_delay_days: float | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score a labelled test frame and compute every figure.

    Args:
        model: a loaded artifact or predictor.
        test: canonical transactions with ``is_fraud``, the period to judge.
        history: canonical transactions before (or overlapping) the test period, with or without
            labels; rows also in ``test`` are ignored.
        label_delay_days: defaults to the delay the model was trained with.
        progress: called with one line per step.

    Returns:
        :func:`compute_metrics`' figures plus ``model_kind``, ``history_rows_used`` and
        ``timings``.
    """
    say = progress or logger.info
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    delay = label_delay_days if label_delay_days is not None else predictor.card.label_delay_days
    if LABEL_COLUMN not in test.columns or test[LABEL_COLUMN].isna().any():
        raise EvaluationError("evaluation needs an is_fraud label on every test row")
    if test.empty:
        raise EvaluationError("the test data holds no transaction")
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    test = test.sort_values(["event_time", "trans_num"], kind="stable").reset_index(drop=True)
    past = history if history is not None else test.iloc[0:0]
    past = past[~past["trans_num"].isin(test["trans_num"])]
    window = history_window(test, label_delay_days=delay)
    # Labels: the history's and the test's own, as the warehouse holds them at the end of the
    # test period; each test row only counts those old enough at its own time.
    everything = pd.concat([past, test], ignore_index=True) if len(past) else test
    card_history = select_card_history(past, window)
    label_events = select_label_events(everything, window)
    say(f"building features for {len(test):,} test transactions with {len(card_history):,} history rows")
    features = build_features_with_history(test, card_history, label_events, label_delay_days=delay)
    timings["features_seconds"] = time.perf_counter() - t0

    say(f"scoring {len(features):,} transactions")
    t0 = time.perf_counter()
    scores = score_many(predictor, features)
    timings["score_seconds"] = time.perf_counter() - t0

    metrics = compute_metrics(
        test[LABEL_COLUMN].to_numpy(dtype=np.int64),
        scores,
        predictor.threshold,
        event_time=test["event_time"],
        card_id=test["card_id"],
    )
    metrics["model_kind"] = predictor.kind
    metrics["history_rows_used"] = len(card_history)
    metrics["test_start"] = test["event_time"].min().isoformat()
    metrics["test_end"] = test["event_time"].max().isoformat()
    metrics["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return metrics


def evaluate_files(
    model_dir: str | Path,
    test_path: str | Path,
    history_path: str | Path | None = None,
    *,
    token_key: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``fraud-detector evaluate``: load a model and two Kaggle-schema files, and evaluate.

    Args:
        model_dir: the artifact directory.
        test_path: the labelled test file (CSV or Parquet).
        history_path: the file before it (usually the training file), for the features' history.
        token_key: the card-token key (defaults to the settings); it must only be the same for
            both files, which it is within one call.
        progress: called with one line per step.

    Raises:
        fraud_core.ml.artifact.ArtifactError: the model directory is not usable.
        fraud_core.data.DataFormatError: a file is missing or not in the Kaggle schema.
    """

    say = progress or logger.info
    key = token_key or get_settings().security.card_token_key.get_secret_value()
    t0 = time.perf_counter()
    artifact = load_artifact(model_dir)
    say(f"loaded {artifact.kind} model from {model_dir} (threshold {artifact.threshold:.4f})")
    say(f"reading {test_path}")
    test, rejected_test = load_canonical(test_path, token_key=key, require_label=True)
    history = None
    rejected_history: list[Any] = []
    if history_path is not None:
        say(f"reading {history_path}")
        history, rejected_history = load_canonical(history_path, token_key=key, require_label=False)
    read_seconds = time.perf_counter() - t0
    metrics = evaluate_frames(artifact, test, history, progress=say)
    metrics["timings"]["read_seconds"] = round(read_seconds, 3)
    metrics["rejected_test_rows"] = len(rejected_test)
    metrics["rejected_history_rows"] = len(rejected_history)
    return metrics
