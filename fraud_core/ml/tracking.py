"""MLflow tracking of a training run and registration of its model version.

One run per training: parameters, validation metrics, tags (data hash, training period) and the
artifact directory (logged under ``model/``). The artifact is then registered as a new version of
``settings.mlflow.registered_model_name``; the very first version becomes ``champion`` (MLflow 3
aliases, no stages). Later versions are candidates: the retrain flow makes them ``challenger`` and
the promotion gate decides (:mod:`fraud_core.ml.registry`, :mod:`fraud_core.ml.promotion`).

The default tracking store is a SQLite file under ``var/`` (``MLFLOW_TRACKING_URI``), with
artifacts in ``var/mlartifacts`` unless ``MLFLOW_ARTIFACT_LOCATION`` says otherwise.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import numpy as np
import pandas as pd
import sklearn

from fraud_core.ml import registry
from fraud_core.ml.artifact import ModelArtifact
from fraud_core.ml.card import ModelCard
from fraud_core.ml.promotion import PromotionDecision
from fraud_core.settings import Settings, get_settings

if TYPE_CHECKING:
    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    from mlflow import MlflowClient


logger = logging.getLogger(__name__)

#: Where the artifact directory goes inside the run's artifacts.
ARTIFACT_PATH = "model"
_PARAM_KEYS = (
    "model_kind",
    "threshold_strategy",
    "alerts_per_day",
    "validation_weeks",
    "label_delay_days",
    "random_state",
    "n_rows",
    "n_fit",
    "n_validation",
    "train_start",
    "train_end",
    "validation_start",
)
_METRIC_KEYS = (
    "pr_auc",
    "roc_auc",
    "precision",
    "recall",
    "f1",
    "card_precision_at_100",
    "card_precision_at_100_ceiling",
    "alerts",
    "tp",
    "fp",
    "fn",
    "tn",
)


@dataclass(frozen=True)
class TrackedModel:
    """What MLflow knows about a logged training.

    Attributes:
        run_id: the MLflow run.
        experiment_id: its experiment.
        artifact_uri: where the artifact directory was logged.
        registered_model: the registered model name (``None`` when not registered).
        version: the new model version (``None`` when not registered).
        aliases: the aliases the version holds after registration.
    """

    run_id: str
    experiment_id: str
    artifact_uri: str
    registered_model: str | None
    version: str | None
    aliases: tuple[str, ...]


#: MLflow 3's UI opens an experiment in its GenAI mode (traces, no "Models") unless told its kind.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def _experiment_id(client: MlflowClient, settings: Settings) -> str:
    name = settings.mlflow.experiment_name
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.tags.get(EXPERIMENT_KIND_TAG) is None:  # made by an older version of this code
            client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return str(existing.experiment_id)
    location = settings.mlflow.artifact_location
    if location is None and settings.mlflow.tracking_uri.startswith("sqlite:"):
        # A SQLite store has no artifact root of its own: keep artifacts beside it, not in the CWD.
        location = (settings.ensure_var_dir() / "mlartifacts").resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}))


def _flat_params(card: ModelCard) -> dict[str, str]:
    data = card.model_dump(mode="json")
    params = {key: data.get(key) for key in _PARAM_KEYS}
    for key, value in card.model_params.items():
        params[f"model__{key}"] = value
    return {k: str(v)[:500] for k, v in params.items() if v is not None}


def log_training(
    artifact: ModelArtifact,
    *,
    settings: Settings | None = None,
    register: bool = True,
    run_name: str | None = None,
    client: MlflowClient | None = None,
) -> TrackedModel:
    """Log a saved artifact as an MLflow run and register it as a new model version.

    Args:
        artifact: a saved artifact (``artifact.path`` set by :func:`save_artifact`).
        settings: defaults to :func:`fraud_core.settings.get_settings`.
        register: also create a registered model version (the first one becomes ``champion``).
        run_name: the run's name; defaults to ``train-<kind>``.
        client: an MLflow client (defaults to one on the configured stores).

    Returns:
        The run and, when registered, the version and its aliases.
    """
    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    from mlflow.entities import Metric, Param, RunTag

    if artifact.path is None:
        raise ValueError("save the artifact before logging it (its directory is what MLflow stores)")
    if settings is None:
        settings = get_settings()
    if client is None:
        if settings.mlflow.tracking_uri.startswith("sqlite:"):
            settings.ensure_var_dir()
        client = registry.mlflow_client(settings.mlflow)
    card = artifact.card
    experiment_id = _experiment_id(client, settings)
    tags = {
        "data_hash": card.data_hash,
        "model_kind": artifact.kind,
        "training_file": card.training_file or "",
    }
    run = client.create_run(experiment_id, run_name=run_name or f"train-{artifact.kind}", tags=tags)
    run_id = run.info.run_id
    try:
        metrics = card.validation_metrics
        client.log_batch(
            run_id,
            metrics=[
                Metric(f"val_{key}", float(metrics[key]), 0, 0)
                for key in _METRIC_KEYS
                if isinstance(metrics.get(key), int | float)
            ]
            + [Metric("threshold", float(artifact.threshold), 0, 0)]
            + [
                Metric(f"val_{key}_{end}", float(value), 0, 0)
                for key, bounds in (card.validation_intervals or {}).items()
                for end, value in zip(("low", "high"), bounds, strict=True)
            ],
            params=[Param(k, v) for k, v in _flat_params(card).items()],
            tags=[
                RunTag("created_at", card.created_at.isoformat()),
                RunTag("metrics_uncertain", str(card.metrics_uncertain).lower()),
            ],
        )
        client.log_artifacts(run_id, str(artifact.path), artifact_path=ARTIFACT_PATH)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    artifact_uri = f"{run.info.artifact_uri}/{ARTIFACT_PATH}"
    logger.info("logged MLflow run %s (experiment %s)", run_id, settings.mlflow.experiment_name)
    if not register:
        return TrackedModel(run_id, experiment_id, artifact_uri, None, None, ())

    name = settings.mlflow.registered_model_name
    number = registry.register_version(
        name,
        source=artifact_uri,
        run_id=run_id,
        client=client,
        tags={"model_kind": artifact.kind, "threshold": f"{artifact.threshold:.6f}"},
        description=f"{artifact.kind} trained on {card.train_start} .. {card.train_end}",
    ).version
    if registry.resolve(name, registry.CHAMPION, client=client) is None:
        # Nothing serves yet: the first model is the champion (later ones go through the gate).
        registry.promote(name, number, client=client)
    held = registry.get_version(name, number, client=client).aliases
    logger.info("registered %s version %s%s", name, number, f" ({', '.join(held)})" if held else "")
    return TrackedModel(run_id, experiment_id, artifact_uri, name, number, tuple(held))


#: Where the MLflow model files (``MLmodel``, the pickled pipeline, requirements) sit in the artifact.
MLFLOW_MODEL_FILES = ("MLmodel", "model.pkl", "conda.yaml", "python_env.yaml", "requirements.txt")


def attach_mlflow_model(artifact: ModelArtifact, sample_features: pd.DataFrame) -> None:
    """Add an MLflow model (``MLmodel`` with a signature, pyfunc ``predict_proba``) to a saved artifact.

    The pipeline (preprocessing and classifier) is stored once more as MLflow's ``model.pkl`` so that
    ``mlflow.pyfunc.load_model("models:/fraud-detector@champion")`` works with a checked input
    schema; serving keeps loading ``model.joblib``.
    """

    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    import mlflow.sklearn
    from mlflow.models import infer_signature

    if artifact.path is None:
        raise ValueError("save the artifact before attaching the MLflow model")
    sample = sample_features[artifact.feature_columns].head(100)
    signature = infer_signature(sample, artifact.pipeline.predict_proba(sample))
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "mlflow-model"
        mlflow.sklearn.save_model(
            artifact.pipeline,
            str(target),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            signature=signature,
            pyfunc_predict_fn="predict_proba",
            # Pinned here rather than inferred: inference imports the model in a subprocess (slow).
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"pandas=={pd.__version__}",
                f"numpy=={np.__version__}",
                f"joblib=={joblib.__version__}",
                "fraud-detector",
            ],
            metadata={"threshold": artifact.threshold, "feature_columns": artifact.feature_columns},
        )
        for item in target.iterdir():
            destination = artifact.path / item.name
            if destination.exists():
                continue  # metadata.json and model.joblib stay ours
            shutil.move(str(item), destination)


def log_evaluation(run_id: str, decision: PromotionDecision, *, client: MlflowClient) -> None:
    """Add both models' figures on the evaluation window, and the verdict, to the challenger's run."""

    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(f"eval_{k}", v, now, 0) for k, v in decision.challenger.items()]
    metrics += [Metric(f"eval_champion_{k}", v, now, 0) for k, v in (decision.champion or {}).items()]
    metrics.append(Metric("promoted", 1.0 if decision.promoted else 0.0, now, 0))
    client.log_batch(run_id, metrics=metrics, tags=[RunTag("promotion", decision.summary[:5000])])
