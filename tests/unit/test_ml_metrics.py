"""Figures, threshold choice, the feature encoder and the artifact directory, on hand-made data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from fraud_core.features import FEATURE_COLUMNS
from fraud_core.ml.artifact import ArtifactError, ModelArtifact, load_artifact, read_card, save_artifact
from fraud_core.ml.card import FORMAT_VERSION, CardError, ModelCard
from fraud_core.ml.estimator import FeatureEncoder, make_pipeline
from fraud_core.ml.metrics import card_precision_at_k, compute_metrics, metrics_from_scores
from fraud_core.ml.train import TrainingError, choose_threshold
from tests.pipeline_support import make_card

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models: OpenMP start-up and barriers would cost more than the work."""
    with threadpool_limits(1):
        yield


def test_metrics_at_the_threshold() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 0.7, 0.2, 0.05])
    m = compute_metrics(y, s, 0.5)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 4)
    assert m["confusion_matrix"] == [[4, 1], [1, 2]]
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["n"] == 8 and m["n_fraud"] == 3 and m["alerts"] == 3
    # Fraud 0.9 beats the 5 legit, 0.7 beats 4, 0.2 beats 2 and ties 1: 11.5 of 15 pairs.
    assert m["roc_auc"] == pytest.approx(11.5 / 15)
    assert m["pr_auc"] == pytest.approx((1 / 3) * (1.0 + 2 / 3 + 3 / 6))


def test_bootstrap_intervals_are_wide_with_few_frauds_and_narrow_with_many() -> None:
    from fraud_core.ml.metrics import bootstrap_intervals, compute_metrics

    rng = np.random.default_rng(3)

    def scored(n_fraud: int, n_legit: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.r_[np.ones(n_fraud, dtype=int), np.zeros(n_legit, dtype=int)]
        s = np.r_[rng.beta(5, 2, n_fraud), rng.beta(2, 5, n_legit)]  # overlapping classes
        return y, s

    widths = {}
    for n_fraud in (10, 1000):
        y, s = scored(n_fraud, 20 * n_fraud)
        intervals = bootstrap_intervals(y, s, 0.5, n_boot=200)
        point = compute_metrics(y, s, 0.5)
        assert set(intervals) == {"pr_auc", "precision", "recall", "f1"}
        for name, (low, high) in intervals.items():
            assert 0.0 <= low <= high <= 1.0
            assert low - 0.02 <= point[name] <= high + 0.02, (name, low, point[name], high)
        widths[n_fraud] = intervals["pr_auc"][1] - intervals["pr_auc"][0]
    assert widths[10] > 3 * widths[1000] and widths[10] > 0.1
    assert bootstrap_intervals(np.zeros(5, dtype=int), np.zeros(5), 0.5) == {}


def test_metrics_with_one_class_are_none_not_errors() -> None:
    m = compute_metrics(np.zeros(5), np.linspace(0, 1, 5), 0.5)
    assert m["pr_auc"] is None and m["roc_auc"] is None and m["recall"] is None
    assert m["precision"] == 0.0 and m["fp"] == 3


def test_card_precision_at_k_and_its_ceiling() -> None:
    day1, day2 = pd.Timestamp("2020-01-01 10:00"), pd.Timestamp("2020-01-02 10:00")
    frame = pd.DataFrame(
        {
            "event_time": [day1, day1, day1, day1, day1, day2, day2, day2],
            "card_id": ["a", "a", "b", "c", "d", "a", "b", "c"],
            # Day 1: a (max 0.9, compromised), b 0.8 (clean), c 0.3 (compromised), d 0.1 (clean).
            "score": [0.2, 0.9, 0.8, 0.3, 0.1, 0.5, 0.6, 0.7],
            "is_fraud": [0, 1, 0, 1, 0, 0, 0, 0],
        }
    )
    precision, ceiling, days = card_precision_at_k(
        frame["is_fraud"], frame["score"], frame["event_time"], frame["card_id"], k=2
    )
    # Day 1: top 2 cards a, b -> 1 of 2; ceiling 2 compromised -> 2/2. Day 2: no fraud -> 0, ceiling 0.
    assert days == 2
    assert precision == pytest.approx((0.5 + 0.0) / 2)
    assert ceiling == pytest.approx((1.0 + 0.0) / 2)
    frame["threshold"] = 0.5
    m = metrics_from_scores(frame)
    assert m["threshold"] == 0.5 and m["days"] == 2
    assert m["card_precision_at_100"] == pytest.approx((2 / 100 + 0) / 2)
    assert m["card_precision_at_100_ceiling"] == pytest.approx((2 / 100 + 0) / 2)


def test_threshold_maximises_f1_and_sits_in_the_gap() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1])
    s = np.array([0.01, 0.02, 0.10, 0.40, 0.50, 0.90, 0.95])
    t = choose_threshold(y, s, strategy="f1")
    # Best F1 flags the top 4 (3 frauds, 1 false alarm: F1 6/7) -> between 0.10 and 0.40.
    assert 0.10 < t < 0.40
    assert compute_metrics(y, s, t)["f1"] == pytest.approx(6 / 7)
    midpoint_logit = (np.log(0.1 / 0.9) + np.log(0.4 / 0.6)) / 2
    assert t == pytest.approx(1 / (1 + np.exp(-midpoint_logit)))


def test_threshold_by_alert_budget() -> None:
    rng = np.random.default_rng(0)
    s = rng.random(1000)
    y = (s > 0.99).astype(int)
    t = choose_threshold(y, s, strategy="alert_budget", alerts_per_day=2.5, days=10)
    assert int((s >= t).sum()) == 25
    with pytest.raises(TrainingError, match="ALERTS_PER_DAY"):
        choose_threshold(y, s, strategy="alert_budget", alerts_per_day=None, days=10)
    with pytest.raises(TrainingError, match="no fraud"):
        choose_threshold(np.zeros(10), s[:10], strategy="f1")


def _feature_frame(n: int, random_state: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(random_state)
    frame = pd.DataFrame({c: rng.normal(size=n) for c in FEATURE_COLUMNS if c != "category"})
    frame["category"] = rng.choice(["travel", "home", "misc_net"], size=n)
    frame = frame[list(FEATURE_COLUMNS)]
    y = ((frame["amount"] > 1.0) & (frame["category"] == "travel")).to_numpy(dtype=int)
    return frame, y


def test_encoder_codes_categories_and_tolerates_unseen_ones() -> None:
    frame, _ = _feature_frame(30)
    encoder = FeatureEncoder().fit(frame)
    assert encoder.categories_["category"] == ["home", "misc_net", "travel"]
    probe = frame.iloc[:3].copy()
    probe["category"] = ["travel", "never-seen", "home"]
    codes = encoder.transform(probe)[:, -1]
    assert codes[0] == 2.0 and np.isnan(codes[1]) and codes[2] == 0.0
    onehot = FeatureEncoder(one_hot=True).fit(frame)
    block = onehot.transform(probe)[:, -3:]
    assert block.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="lacks columns"):
        FeatureEncoder().fit(frame.drop(columns="amount"))


@pytest.mark.parametrize("kind", ["hgb", "rf"])
def test_both_model_kinds_learn_a_simple_rule(kind: str) -> None:
    frame, y = _feature_frame(3000)
    pipeline = make_pipeline(kind, n_jobs=1)
    # Small and unweighted: on fewer than 200k rows, sample weights make HistGradientBoosting's
    # binning compute 255 weighted percentiles per feature in Python, seconds of fixed cost.
    small = {"max_iter": 20, "max_leaf_nodes": 7, "class_weight": None} if kind == "hgb" else {"n_estimators": 20}
    pipeline.set_params(**{f"model__{k}": v for k, v in small.items()})
    pipeline.fit(frame, y)
    test, y_test = _feature_frame(1000, random_state=1)
    m = compute_metrics(y_test, pipeline.predict_proba(test)[:, 1], 0.5)
    assert m["roc_auc"] > 0.95


def test_model_card_reads_format_1_and_refuses_what_it_cannot_read() -> None:
    """An artifact written before the typed card still loads; an unknown format or key is a clear error."""
    card = make_card()
    old = {k: v for k, v in json.loads(card.to_json()).items() if k != "risk_bands"}
    old |= {
        "format_version": 1,
        "risk_bands": {"medium": 0.2},
        "fit_end": old["validation_start"],
        "validation_end": old["train_end"],
        "refit_on_validation": False,
        "metrics": {"validation": {}},
    }
    upgraded = ModelCard.from_data(old)
    assert upgraded.risk_bands.high == card.threshold and upgraded.validation_start == card.validation_start
    assert upgraded.format_version == FORMAT_VERSION

    with pytest.raises(CardError, match="format_version 3, which this version of fraud-detector"):
        ModelCard.from_data({**json.loads(card.to_json()), "format_version": 3})
    with pytest.raises(CardError, match="thresold: Extra inputs are not permitted"):
        ModelCard.from_data({**json.loads(card.to_json()), "thresold": 0.4})
    missing = json.loads(card.to_json())
    del missing["label_delay_days"]
    with pytest.raises(CardError, match="label_delay_days: Field required"):
        ModelCard.from_data(missing)
    with pytest.raises(CardError, match="threshold: Input should be less than or equal to 1"):
        ModelCard.from_data({**json.loads(card.to_json()), "threshold": 3.0})


def test_artifact_round_trip_and_errors(tmp_path: Path) -> None:
    frame, y = _feature_frame(500)
    pipeline = make_pipeline("hgb").set_params(model__max_iter=5, model__class_weight=None).fit(frame, y)
    card = make_card(validation_metrics={"pr_auc": float("nan")})
    target = save_artifact(ModelArtifact(pipeline, card), tmp_path / "model")
    assert sorted(p.name for p in target.iterdir()) == ["metadata.json", "model.joblib"]
    written = json.loads((target / "metadata.json").read_text())
    assert written["validation_metrics"]["pr_auc"] is None and written["format_version"] == FORMAT_VERSION
    loaded = load_artifact(target)
    np.testing.assert_array_equal(loaded.pipeline.predict_proba(frame), pipeline.predict_proba(frame))
    assert loaded.threshold == 0.5 and loaded.kind == "hgb" and loaded.card == ModelCard.from_json(card.to_json())

    # Saving again replaces the artifact whole.
    save_artifact(ModelArtifact(pipeline, card.model_copy(update={"threshold": 0.7})), target)
    assert read_card(target).threshold == 0.7

    with pytest.raises(ArtifactError, match="no model directory"):
        load_artifact(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact(tmp_path / "empty")
    (target / "model.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ArtifactError, match="cannot load"):
        load_artifact(target)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="refusing to overwrite"):
        save_artifact(ModelArtifact(pipeline, card), tmp_path / "busy")
    wrong = card.model_copy(update={"feature_columns": ["amount"]})
    save_artifact(ModelArtifact(pipeline, wrong), tmp_path / "wrong")
    with pytest.raises(ArtifactError, match="other features"):
        load_artifact(tmp_path / "wrong")
