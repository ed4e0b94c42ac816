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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fraud_core.ml.artifact import ModelArtifact

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from fraud_core.settings import Settings

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


def _experiment_id(client: MlflowClient, settings: Settings) -> str:
    name = settings.mlflow.experiment_name
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = settings.mlflow.artifact_location
    if location is None and settings.mlflow.tracking_uri.startswith("sqlite:"):
        # A SQLite store has no artifact root of its own: keep artifacts beside it, not in the CWD.
        location = (settings.ensure_var_dir() / "mlartifacts").resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _flat_params(metadata: dict[str, Any]) -> dict[str, str]:
    params = {key: metadata.get(key) for key in _PARAM_KEYS}
    for key, value in (metadata.get("model_params") or {}).items():
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
    from mlflow.entities import Metric, Param, RunTag

    from fraud_core.ml import registry

    if artifact.path is None:
        raise ValueError("save the artifact before logging it (its directory is what MLflow stores)")
    if settings is None:
        from fraud_core.settings import get_settings

        settings = get_settings()
    if client is None:
        if settings.mlflow.tracking_uri.startswith("sqlite:"):
            settings.ensure_var_dir()
        client = registry.mlflow_client(settings.mlflow)
    meta = artifact.metadata
    experiment_id = _experiment_id(client, settings)
    tags = {
        "data_hash": str(meta.get("data_hash", "")),
        "model_kind": artifact.kind,
        "training_file": str(meta.get("training_file", "")),
    }
    run = client.create_run(experiment_id, run_name=run_name or f"train-{artifact.kind}", tags=tags)
    run_id = run.info.run_id
    try:
        metrics = meta.get("validation_metrics") or {}
        client.log_batch(
            run_id,
            metrics=[
                Metric(f"val_{key}", float(metrics[key]), 0, 0)
                for key in _METRIC_KEYS
                if isinstance(metrics.get(key), int | float)
            ]
            + [Metric("threshold", float(artifact.threshold), 0, 0)],
            params=[Param(k, v) for k, v in _flat_params(meta).items()],
            tags=[RunTag("created_at", str(meta.get("created_at", "")))],
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
        description=f"{artifact.kind} trained on {meta.get('train_start')} .. {meta.get('train_end')}",
    ).version
    if registry.resolve(name, registry.CHAMPION, client=client) is None:
        # Nothing serves yet: the first model is the champion (later ones go through the gate).
        registry.promote(name, number, client=client)
    held = registry.get_version(name, number, client=client).aliases
    logger.info("registered %s version %s%s", name, number, f" ({', '.join(held)})" if held else "")
    return TrackedModel(run_id, experiment_id, artifact_uri, name, number, tuple(held))
