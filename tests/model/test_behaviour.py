"""Behavioural tests of a small model trained on the sample's training period.

Directional (a fraud-like transaction scores higher), invariance (the card token's value does not
matter), minimum functionality on the later period, and sane metadata.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_core.features import (
    FEATURE_COLUMNS,
    build_features,
    history_window,
    label_events_from_frame,
    select_card_history,
    select_label_events,
)
from fraud_core.ml.artifact import ModelArtifact, load_artifact
from fraud_core.ml.predictor import Predictor

pytestmark = pytest.mark.model

# As in tests/model/conftest.py, which trains the model.
DELAY_DAYS = 7.0
SPLIT = pd.Timestamp("2020-06-21")


def _quiet_card(train: pd.DataFrame) -> str:
    """A card that never saw fraud, with the most transactions (a long, calm history)."""
    per_card = train.groupby("card_id").agg(frauds=("is_fraud", "sum"), n=("trans_num", "size"))
    calm = per_card[per_card["frauds"] == 0]
    return str(calm["n"].idxmax())


def _variant(last: pd.Series, when: str, amount: float, category: str, trans_num: str) -> pd.DataFrame:
    row = last.copy()
    row["trans_num"] = trans_num
    row["event_time"] = pd.Timestamp(when)
    row["amount"] = amount
    row["category"] = category
    frame = pd.DataFrame([row]).drop(columns="is_fraud")
    frame["event_time"] = frame["event_time"].astype("datetime64[us]")
    return frame


def _score_online(predictor: Predictor, new: pd.DataFrame, warehouse: pd.DataFrame) -> pd.Series:
    window = history_window(new, label_delay_days=DELAY_DAYS)
    scored = predictor.score(
        new,
        history=select_card_history(warehouse, window),
        label_events=select_label_events(warehouse, window),
        reasons=3,
    )
    return scored.iloc[0]


def test_a_much_larger_amount_at_night_on_a_quiet_card_raises_the_score(
    trained: ModelArtifact, sample_train: pd.DataFrame
) -> None:
    predictor = Predictor(trained)
    card = _quiet_card(sample_train)
    history = sample_train[sample_train["card_id"] == card]
    last = history.iloc[-1]
    day = (last["event_time"] + pd.Timedelta(days=1)).normalize()
    usual_amount = float(history["amount"].tail(100).median())
    usual_category = str(history["category"].tail(100).mode().iloc[0])

    usual = _score_online(
        predictor, _variant(last, f"{day.date()} 14:00:00", usual_amount, usual_category, "usual"), sample_train
    )
    odd = _score_online(
        predictor, _variant(last, f"{day.date()} 23:30:00", 40 * usual_amount, "shopping_net", "odd"), sample_train
    )
    assert odd["score"] > usual["score"]
    assert odd["score"] > 10 * usual["score"]
    assert not usual["decision"] and usual["risk_level"] == "low"
    assert odd["risk_level"] in ("medium", "high")
    # The reasons name what is odd about it.
    suspicious = {"amount", "amount_ratio_30d", "amount_zscore_30d", "is_night", "hour", "category"}
    named = [reason["feature"] for reason in odd["reasons"]]
    assert named and set(named) & suspicious
    contributions = [reason["contribution"] for reason in odd["reasons"]]
    assert contributions == sorted(contributions, reverse=True) and min(contributions) > 0
    amount_reason = [r for r in odd["reasons"] if r["feature"] == "amount"]
    if amount_reason:
        assert amount_reason[0]["value"] == pytest.approx(40 * usual_amount)


def test_scores_do_not_depend_on_the_card_token(
    trained: ModelArtifact, sample_raw: pd.DataFrame, sample_canonical: pd.DataFrame
) -> None:
    from fraud_core.data import to_canonical

    other = to_canonical(sample_raw, token_key="a-completely-different-key", require_label=True).frame
    other = other.sort_values(["event_time", "trans_num"], kind="stable").reset_index(drop=True)
    assert (other["trans_num"].to_numpy() == sample_canonical["trans_num"].to_numpy()).all()
    assert not set(other["card_id"]) & set(sample_canonical["card_id"])

    predictor = Predictor(trained)
    scores = []
    for frame in (sample_canonical, other):
        features = build_features(frame, label_events_from_frame(frame), label_delay_days=DELAY_DAYS)
        scores.append(predictor.predict_proba(features))
    np.testing.assert_array_equal(scores[0], scores[1])


def test_minimum_performance_on_the_later_period(
    trained: ModelArtifact, sample_train: pd.DataFrame, sample_test: pd.DataFrame
) -> None:
    from fraud_core.ml.evaluate import evaluate_frames

    metrics = evaluate_frames(trained, sample_test, sample_train)
    assert metrics["n"] == len(sample_test) and metrics["n_fraud"] == int(sample_test["is_fraud"].sum())
    # Loose floors: 35 cards, ~300 training frauds, 52 to find; full-data figures: bench/bench_train.py.
    assert metrics["pr_auc"] >= 0.75
    assert metrics["roc_auc"] >= 0.95
    assert metrics["recall"] >= 0.6
    assert metrics["precision"] >= 0.7
    assert 0 < metrics["card_precision_at_100"] <= metrics["card_precision_at_100_ceiling"] <= 1


def test_metadata_is_sane(trained: ModelArtifact, trained_dir: Path, sample_train: pd.DataFrame) -> None:
    import sklearn

    card = trained.card
    assert card.model_kind == "hgb"
    assert 0.0 < trained.threshold < 1.0
    assert card.feature_columns == list(FEATURE_COLUMNS)
    assert card.risk_bands.high == trained.threshold
    assert 0.0 < card.risk_bands.medium <= trained.threshold

    val = trained.validation_metrics
    assert val["n"] == card.n_validation and val["n_fraud"] == card.n_validation_fraud > 0
    assert 0.5 < val["pr_auc"] <= 1.0 and 0.5 < val["roc_auc"] <= 1.0
    tp, fp, fn = val["tp"], val["fp"], val["fn"]
    assert val["precision"] == pytest.approx(tp / (tp + fp))
    assert val["recall"] == pytest.approx(tp / (tp + fn))
    assert val["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert val["threshold"] == trained.threshold

    assert card.n_rows == len(sample_train) == card.n_before_validation + card.n_validation
    assert card.n_fit <= card.n_before_validation and card.n_fit_fraud > 0
    assert card.n_fraud == int(sample_train["is_fraud"].sum())
    assert card.train_end < SPLIT
    assert card.train_end - card.validation_start == pd.Timedelta(weeks=4)
    assert card.train_start < card.validation_start
    assert re.fullmatch(r"[0-9a-f]{64}", card.data_hash)
    assert card.library_versions["scikit-learn"] == sklearn.__version__
    assert card.created_at.year >= 2026

    assert set(card.feature_reference) == set(FEATURE_COLUMNS)
    amount_ref = card.feature_reference["amount"]
    assert math.isclose(sum(amount_ref["proportions"]) + amount_ref["missing"], 1.0, abs_tol=1e-9)
    assert card.score_reference is not None
    assert math.isclose(sum(card.score_reference["proportions"]), 1.0, abs_tol=1e-9)
    assert card.score_histogram is not None and sum(card.score_histogram.counts) == card.n_validation


def test_saved_artifact_scores_like_the_trained_pipeline(trained_dir: Path, sample_test: pd.DataFrame) -> None:
    reloaded = load_artifact(trained_dir)
    features = build_features(sample_test, label_events_from_frame(sample_test), label_delay_days=DELAY_DAYS)
    predictor = Predictor(reloaded)
    direct = reloaded.pipeline.predict_proba(features)[:, 1]
    np.testing.assert_allclose(predictor.predict_proba(features), direct, rtol=0, atol=1e-12)
    # Small batches go through the flattened trees: the same scores to rounding.
    np.testing.assert_allclose(predictor.predict_proba(features.iloc[:300]), direct[:300], rtol=0, atol=1e-9)
    scored = predictor.score_features(features.iloc[:50], reasons=2)
    assert list(scored.columns) == ["score", "decision", "risk_level", "reasons"]
    assert (scored["decision"] == (scored["score"] >= reloaded.threshold)).all()
    assert all(len(r) <= 2 for r in scored["reasons"])
