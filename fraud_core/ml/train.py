"""Training: features, a time-based hold-out, the fit, the threshold, and the artifact.

The last ``validation_weeks`` of the training period are held out (by event time, never at random).
The model is fitted on the weeks before; the decision threshold is chosen on the held-out weeks
(maximum F1 by default, or a daily alert budget); the figures on those weeks go in the metadata.

Which model is shipped: the one fitted **without** the validation weeks. Refitting on every week
would learn the latest month too, but the threshold and every validation figure were measured on the
non-refitted model; a refit's scores shift (different trees, more data), so its threshold and alert
volume would be unmeasured guesses. Keeping the measured model means the threshold, the risk bands
and the drift reference in the artifact describe exactly what serves. Retraining every week or so
(the retrain flow) brings recent weeks in soon enough.

Nothing here reads the test period: evaluation on a later file is :mod:`fraud_core.ml.evaluate`.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.metrics import precision_recall_curve
from threadpoolctl import threadpool_limits

from fraud_core.data import load_canonical
from fraud_core.features import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    build_features,
    label_events_from_frame,
)
from fraud_core.ml.artifact import ModelArtifact, save_artifact
from fraud_core.ml.card import ModelCard, RiskBands, ScoreHistogram
from fraud_core.ml.estimator import HGB_PARAMS, MODEL_KINDS, RF_PARAMS, ModelKind, make_pipeline
from fraud_core.ml.metrics import bootstrap_intervals, compute_metrics
from fraud_core.quality.drift import build_reference, numeric_reference
from fraud_core.schema import LABEL_COLUMN
from fraud_core.settings import get_settings

logger = logging.getLogger(__name__)

#: Transactions among the riskiest this share of validation scores, below the threshold, are
#: ``medium`` risk: worth a look when analysts have time.
MEDIUM_RISK_TOP_SHARE = 0.02
#: Bins of the validation score histogram kept for the dashboard (scores are probabilities).
SCORE_HISTOGRAM_BINS = 20
#: At most this many legitimate transactions are fitted on (a uniform random sample; every fraud is
#: kept). Fit time then stays bounded whatever the file's size, and with balanced class weights
#: the objective is the same in expectation: each class weighs half either way. On the 1.2 M-row
#: training weeks this keeps about 40 % of the legitimate rows.
MAX_LEGIT_FIT_ROWS = 500_000

Progress = Callable[[str], None]


class TrainingError(ValueError):
    """The training data cannot produce a model (too short, one class only). One-line message."""


def data_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the training rows' content (canonical columns and labels, in row order)."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that matter to load and reproduce the model."""

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
    }


def _between(scores: np.ndarray, chosen: float) -> float:
    """A threshold half-way (in log-odds) between ``chosen`` and the next lower validation score.

    Every threshold in that gap makes the same validation decisions; the gap's middle is the
    choice least sensitive to small score shifts on new data (the gap's top edge would make the
    lowest-scored validation fraud the boundary case).
    """
    below = scores[scores < chosen]
    if below.size == 0:
        return chosen
    lo, hi = np.clip([below.max(), chosen], 1e-12, 1 - 1e-12)
    mid = (np.log(lo / (1 - lo)) + np.log(hi / (1 - hi))) / 2.0
    return float(1.0 / (1.0 + np.exp(-mid)))


def choose_threshold(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    strategy: str = "f1",
    alerts_per_day: float | None = None,
    days: float | None = None,
) -> float:
    """The decision threshold (``score >= threshold`` raises an alert), chosen on validation.

    Args:
        y_true: validation labels.
        scores: validation scores.
        strategy: ``f1`` (maximum F1) or ``alert_budget`` (the ``alerts_per_day * days``
            riskiest validation transactions are alerts).
        alerts_per_day: the budget (``alert_budget`` only).
        days: how many days the validation period spans (``alert_budget`` only).

    Returns:
        A threshold half-way between the last validation score it flags and the next lower one.
    """
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if strategy == "f1":
        if y.sum() == 0:
            raise TrainingError("no fraud in the validation weeks: cannot choose a threshold by F1")
        precision, recall, thresholds = precision_recall_curve(y, s)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
        # The last point (recall 0) has no threshold.
        return _between(s, float(thresholds[int(np.argmax(f1[:-1]))]))
    if strategy == "alert_budget":
        if not alerts_per_day or alerts_per_day <= 0 or not days:
            raise TrainingError("threshold strategy alert_budget needs MODEL_ALERTS_PER_DAY > 0")
        budget = max(1, round(alerts_per_day * days))
        ordered = np.sort(s)[::-1]
        return _between(s, float(ordered[min(budget, len(ordered)) - 1]))
    raise TrainingError(f"unknown threshold strategy {strategy!r} (expected f1 or alert_budget)")


def choose_decline_threshold(
    y_true: np.ndarray, scores: np.ndarray, *, precision: float, review_threshold: float
) -> float | None:
    """The lowest score whose validation precision (of ``score >= t``) reaches ``precision``.

    Never below ``review_threshold`` (declined transactions are a subset of the reviewed ones).

    Returns:
        A threshold half-way below the lowest qualifying validation score, or ``None`` when no
        threshold reaches the precision (the decline band is then off).
    """
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.sum() == 0:
        return None
    precisions, _, thresholds = precision_recall_curve(y, s)
    # precisions[i] is the precision of ``s >= thresholds[i]``; thresholds ascend.
    good = np.flatnonzero(precisions[:-1] >= precision)
    if good.size == 0:
        return None
    return max(_between(s, float(thresholds[good[0]])), review_threshold)


def _reason_baseline(features: pd.DataFrame) -> dict[str, Any]:
    baseline: dict[str, Any] = {}
    for column in FEATURE_COLUMNS:
        values = features[column]
        if column in CATEGORICAL_FEATURES:
            mode = values.dropna().astype("str").mode()
            baseline[column] = str(mode.iloc[0]) if len(mode) else None
        else:
            median = float(np.nanmedian(values.to_numpy(dtype=np.float64))) if values.notna().any() else None
            baseline[column] = median
    return baseline


def _score_histogram(scores: np.ndarray) -> dict[str, Any]:
    counts, edges = np.histogram(scores, bins=SCORE_HISTOGRAM_BINS, range=(0.0, 1.0))
    return {"edges": edges.round(6).tolist(), "counts": counts.astype(int).tolist()}


def train_model(
    frame: pd.DataFrame,
    *,
    kind: ModelKind | None = None,
    validation_weeks: int | None = None,
    threshold_strategy: str | None = None,
    alerts_per_day: float | None = None,
    label_delay_days: float | None = None,
    random_state: int = 0,
    threads: int | None = None,
    max_legit_rows: int | None = MAX_LEGIT_FIT_ROWS,
    progress: Progress | None = None,
) -> ModelArtifact:
    """Train a model on a labelled canonical frame.

    Args:
        frame: canonical transactions with ``is_fraud`` (e.g. from
            :func:`fraud_core.data.load_canonical`), covering more than ``validation_weeks``.
        kind: ``hgb`` or ``rf``; defaults to ``settings.model.kind``.
        validation_weeks: the held-out last weeks; defaults to ``settings.model.validation_weeks``.
        threshold_strategy: ``f1`` or ``alert_budget``; defaults to the settings.
        alerts_per_day: the budget for ``alert_budget``; defaults to the settings.
        label_delay_days: label features only use labels this old; defaults to the settings.
        random_state: the model's random state.
        threads: cap on the model's threads (OpenMP and joblib); ``None`` uses every core. One
            thread is faster for small frames, whose parallel regions are too short to share.
        max_legit_rows: cap on legitimate rows fitted on (``None``: all of them).
        progress: called with one line per step (defaults to logging at INFO).

    Returns:
        The artifact (not saved yet: see :func:`save_artifact` or :func:`train_file`).

    Raises:
        TrainingError: no label column, one class only, or too short a period.
    """

    settings = get_settings()
    kind = kind or settings.model.kind
    if kind not in MODEL_KINDS:
        raise TrainingError(f"unknown model kind {kind!r} (expected one of {', '.join(MODEL_KINDS)})")
    validation_weeks = validation_weeks if validation_weeks is not None else settings.model.validation_weeks
    threshold_strategy = threshold_strategy or settings.model.threshold_strategy
    alerts_per_day = alerts_per_day if alerts_per_day is not None else settings.model.alerts_per_day
    label_delay_days = label_delay_days if label_delay_days is not None else settings.features.label_delay_days
    say = progress or logger.info
    timings: dict[str, float] = {}

    if LABEL_COLUMN not in frame.columns or frame[LABEL_COLUMN].isna().any():
        raise TrainingError("training needs an is_fraud label on every row")
    if validation_weeks < 1:
        raise TrainingError("validation_weeks must be at least 1")
    frame = frame.sort_values(["event_time", "trans_num"], kind="stable").reset_index(drop=True)
    y = frame[LABEL_COLUMN].to_numpy(dtype=np.int64)
    start, end = frame["event_time"].min(), frame["event_time"].max()
    cutoff = end - pd.Timedelta(weeks=validation_weeks)
    if cutoff <= start:
        raise TrainingError(
            f"the training file spans {(end - start).days} days, not more than the {validation_weeks} "
            "validation weeks it must hold out"
        )

    say(f"building features for {len(frame):,} transactions")
    t0 = time.perf_counter()
    features = build_features(frame, label_events_from_frame(frame), label_delay_days=label_delay_days)
    timings["features_seconds"] = time.perf_counter() - t0
    say(f"features built in {timings['features_seconds']:.1f} s")

    is_val = (frame["event_time"] >= cutoff).to_numpy()
    fit_rows, val_rows = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if y[fit_rows].sum() == 0 or y[fit_rows].sum() == len(fit_rows):
        raise TrainingError("the weeks before validation hold only one class: nothing to learn")
    if y[val_rows].sum() == 0:
        raise TrainingError(f"no fraud in the last {validation_weeks} weeks: cannot choose or check a threshold")

    legit = fit_rows[y[fit_rows] == 0]
    legit_rate = 1.0
    if max_legit_rows is not None and len(legit) > max_legit_rows:
        rng = np.random.default_rng(random_state)
        kept = np.sort(rng.choice(legit, size=max_legit_rows, replace=False))
        legit_rate = max_legit_rows / len(legit)
        fit_rows = np.sort(np.concatenate([fit_rows[y[fit_rows] == 1], kept]))
        say(f"fitting on {legit_rate:.0%} of the legitimate transactions (at most {max_legit_rows:,}), every fraud")

    pipeline = make_pipeline(kind, random_state=random_state, n_jobs=threads or -1)
    say(f"fitting {kind} on {len(fit_rows):,} transactions before {cutoff} ({int(y[fit_rows].sum()):,} fraud)")
    t0 = time.perf_counter()
    with threadpool_limits(limits=threads):
        pipeline.fit(features.iloc[fit_rows], y[fit_rows])
    timings["fit_seconds"] = time.perf_counter() - t0
    say(f"fitted in {timings['fit_seconds']:.1f} s")

    val_features = features.iloc[val_rows]
    val_scores = pipeline.predict_proba(val_features)[:, 1]
    val_days = (end - cutoff) / pd.Timedelta(days=1)
    threshold = choose_threshold(
        y[val_rows], val_scores, strategy=threshold_strategy, alerts_per_day=alerts_per_day, days=val_days
    )
    val_frame = frame.iloc[val_rows]
    metrics = compute_metrics(
        y[val_rows], val_scores, threshold, event_time=val_frame["event_time"], card_id=val_frame["card_id"]
    )
    say(
        f"validation ({metrics['n']:,} transactions, {metrics['n_fraud']:,} fraud): PR-AUC {metrics['pr_auc']:.4f}, "
        f"F1 {metrics['f1'] or 0:.4f} at threshold {threshold:.4f}"
    )
    uncertain = metrics["n_fraud"] < settings.model.min_validation_frauds
    intervals = (
        bootstrap_intervals(y[val_rows], val_scores, threshold, random_state=random_state) if uncertain else None
    )
    if intervals:
        low, high = intervals["pr_auc"]
        say(
            f"only {metrics['n_fraud']} validation frauds (< {settings.model.min_validation_frauds}): the figures "
            f"are uncertain, PR-AUC 95 % interval {low:.3f} to {high:.3f}"
        )
    medium = min(float(np.quantile(val_scores, 1.0 - MEDIUM_RISK_TOP_SHARE)), threshold)
    decline_precision = settings.model.decline_precision
    decline = choose_decline_threshold(y[val_rows], val_scores, precision=decline_precision, review_threshold=threshold)

    card = ModelCard(
        model_kind=kind,
        model_params=dict(HGB_PARAMS if kind == "hgb" else RF_PARAMS),
        feature_columns=list(FEATURE_COLUMNS),
        categorical_features=list(CATEGORICAL_FEATURES),
        random_state=random_state,
        threshold=threshold,
        threshold_strategy=threshold_strategy,
        decline_threshold=decline,
        decline_precision=decline_precision,
        alerts_per_day=alerts_per_day,
        risk_bands=RiskBands(medium=medium, high=threshold),
        label_delay_days=label_delay_days,
        validation_weeks=validation_weeks,
        train_start=start,
        train_end=end,
        validation_start=cutoff,
        n_rows=len(frame),
        n_fraud=int(y.sum()),
        n_before_validation=int((~is_val).sum()),
        n_fit=len(fit_rows),
        n_fit_fraud=int(y[fit_rows].sum()),
        legit_sample_rate=legit_rate,
        n_validation=len(val_rows),
        n_validation_fraud=int(y[val_rows].sum()),
        n_cards=int(frame["card_id"].nunique()),
        data_hash=data_hash(frame),
        validation_metrics=metrics,
        metrics_uncertain=uncertain,
        validation_intervals=intervals,
        reason_baseline=_reason_baseline(val_features),
        feature_reference=build_reference(val_features, list(FEATURE_COLUMNS)),
        score_reference=numeric_reference(val_scores),
        score_histogram=ScoreHistogram(**_score_histogram(val_scores)),
        created_at=datetime.now(UTC).replace(microsecond=0),
        library_versions=library_versions(),
        timings={k: round(v, 3) for k, v in timings.items()},
    )
    return ModelArtifact(pipeline=pipeline, card=card)


def train_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    kind: ModelKind | None = None,
    token_key: str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> ModelArtifact:
    """Read a Kaggle-schema file (CSV or Parquet), train, and save the artifact to ``out_dir``.

    Args:
        path: the training file.
        out_dir: the artifact directory to write.
        kind: ``hgb`` or ``rf`` (defaults to the settings).
        token_key: the card-token key; defaults to ``settings.security.card_token_key``. Features
            only compare tokens, so any key gives the same model.
        progress: called with one line per step.
        **options: passed to :func:`train_model`.

    Raises:
        fraud_core.data.DataFormatError: the file is missing or not in the Kaggle schema.
        TrainingError: the data cannot produce a model.
    """

    say = progress or logger.info
    key = token_key or get_settings().security.card_token_key.get_secret_value()
    say(f"reading {path}")
    t0 = time.perf_counter()
    frame, rejected = load_canonical(path, token_key=key, require_label=True)
    read_seconds = time.perf_counter() - t0
    say(f"read {len(frame):,} valid rows in {read_seconds:.1f} s ({len(rejected):,} rejected)")
    if frame.empty:
        raise TrainingError(f"{path} holds no valid row")
    artifact = train_model(frame, kind=kind, progress=say, **options)
    artifact.card.training_file = Path(path).name
    artifact.card.n_rejected_rows = len(rejected)
    artifact.card.timings = {**artifact.card.timings, "read_seconds": round(read_seconds, 3)}
    save_artifact(artifact, out_dir)
    say(f"saved the model to {out_dir}")
    return artifact
