"""Retraining: learn a challenger from true labels, judge it against the champion, promote or not.

The steps (each a task of the ``retrain`` flow):

1. :func:`plan_retraining`: the data clock ``as_of`` (the newest stored transaction), the label
   cutoff ``as_of - label_delay`` (younger transactions may still turn out to be fraud, so their
   labels are not trusted yet) and the evaluation window, the last ``eval_days`` before the cutoff.
2. :func:`load_training_data`: labelled transactions (labels from the feed, analysts or imports,
   never a prediction) before the cutoff, split into training (before the evaluation window) and
   evaluation (inside it).
3. :func:`train_challenger`: :func:`fraud_core.ml.train.train_model` on the training part, saved
   with an MLflow model (``MLmodel``, signature) beside ``model.joblib`` and ``metadata.json``.
4. :func:`register_challenger`: one MLflow run (params, metrics, windows, the artifact) and a new
   registered version, which becomes ``challenger``.
5. :func:`evaluate_pair`: challenger and champion scored on the same evaluation window, each at its
   own threshold; the champion never saw these weeks' labels at training unless it was trained on
   them (then it is favoured, never the challenger).
6. :func:`fraud_core.ml.promotion.decide`, then :func:`apply_decision` moves the aliases and
   :func:`record_decision` writes the audit row (and the warehouse's ``model_versions``).
7. :func:`publish_to_hub` when ``HF_MODEL_REPO`` and a token are set.

Training uses only the labelled transactions: the feed labels every transaction once its delay has
passed, so before the cutoff the card histories are complete.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fraud_core.ml import registry
from fraud_core.ml.promotion import PromotionDecision

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sqlmodel import Session

    from fraud_core.ml.artifact import ModelArtifact
    from fraud_core.ml.hub import HubPublication
    from fraud_core.ml.predictor import Predictor
    from fraud_core.ml.tracking import TrackedModel
    from fraud_core.settings import Settings

logger = logging.getLogger(__name__)

#: Where the MLflow model files (``MLmodel``, the pickled pipeline, requirements) sit in the artifact.
MLFLOW_MODEL_FILES = ("MLmodel", "model.pkl", "conda.yaml", "python_env.yaml", "requirements.txt")
#: Metrics the decision and the audit keep (the rest of the evaluation stays in the run).
DECISION_METRICS = ("n", "n_fraud", "pr_auc", "roc_auc", "precision", "recall", "f1", "card_precision_at_100")

Progress = Callable[[str], None]


class RetrainError(ValueError):
    """The warehouse cannot produce a fair retraining (too little labelled data). One-line message."""


def _naive(value: datetime | pd.Timestamp) -> datetime:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


@dataclass(frozen=True)
class RetrainPlan:
    """The windows of one retraining (naive UTC).

    Attributes:
        as_of: the data clock: the newest stored transaction.
        label_cutoff: only transactions before this have trusted labels (``as_of - label_delay``).
        eval_start: the evaluation window is ``[eval_start, label_cutoff)``.
        train_start: training data from here (``None``: all labelled history).
    """

    as_of: datetime
    label_cutoff: datetime
    eval_start: datetime
    train_start: datetime | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "as_of": self.as_of.isoformat(),
            "label_cutoff": self.label_cutoff.isoformat(),
            "eval_start": self.eval_start.isoformat(),
            "eval_end": self.label_cutoff.isoformat(),
            "train_start": self.train_start.isoformat() if self.train_start else None,
        }


def plan_retraining(
    as_of: datetime, *, label_delay_days: float, eval_days: float, train_days: float | None = None
) -> RetrainPlan:
    """Work out the windows (see :class:`RetrainPlan`)."""
    as_of = _naive(as_of)
    cutoff = as_of - timedelta(days=label_delay_days)
    eval_start = cutoff - timedelta(days=eval_days)
    train_start = eval_start - timedelta(days=train_days) if train_days else None
    return RetrainPlan(as_of=as_of, label_cutoff=cutoff, eval_start=eval_start, train_start=train_start)


def load_training_data(session: Session, plan: RetrainPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labelled transactions before the cutoff: ``(training, evaluation)`` split at ``eval_start``.

    Raises:
        RetrainError: no training rows, or no fraud to judge on in the evaluation window.
    """
    from fraud_core.db import quality_repo

    frame = quality_repo.labelled_transactions_between(plan.train_start, plan.label_cutoff, session=session)
    is_eval = frame["event_time"] >= pd.Timestamp(plan.eval_start)
    training, evaluation = frame[~is_eval].reset_index(drop=True), frame[is_eval].reset_index(drop=True)
    if training.empty:
        raise RetrainError(f"no labelled transaction before {plan.eval_start:%Y-%m-%d %H:%M}: nothing to learn from")
    if evaluation.empty or int(evaluation["is_fraud"].sum()) == 0:
        raise RetrainError(
            f"no labelled fraud between {plan.eval_start:%Y-%m-%d %H:%M} and {plan.label_cutoff:%Y-%m-%d %H:%M}: "
            "the challenger cannot be judged"
        )
    return training, evaluation


def attach_mlflow_model(artifact: ModelArtifact, sample_features: pd.DataFrame) -> None:
    """Add an MLflow model (``MLmodel`` with a signature, pyfunc ``predict_proba``) to a saved artifact.

    The pipeline (preprocessing and classifier) is stored once more as MLflow's ``model.pkl`` so that
    ``mlflow.pyfunc.load_model("models:/fraud-detector@champion")`` works with a checked input
    schema; serving keeps loading ``model.joblib``.
    """
    import tempfile

    import joblib
    import mlflow.sklearn
    import numpy as np
    import sklearn
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


def train_challenger(
    training: pd.DataFrame,
    *,
    settings: Settings,
    work_dir: Path,
    plan: RetrainPlan,
    progress: Progress | None = None,
) -> ModelArtifact:
    """Train on the training part and save the artifact (with the MLflow model) under ``work_dir``."""
    from fraud_core.features import build_features, label_events_from_frame
    from fraud_core.ml.artifact import save_artifact
    from fraud_core.ml.train import train_model

    artifact = train_model(
        training,
        kind=settings.model.kind,
        validation_weeks=settings.model.validation_weeks,
        label_delay_days=settings.features.label_delay_days,
        progress=progress,
    )
    artifact.metadata["trained_by"] = "retrain"
    artifact.metadata["retrain_plan"] = plan.to_dict()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    save_artifact(artifact, work_dir / f"challenger-{stamp}")
    tail = training.tail(500)
    attach_mlflow_model(
        artifact,
        build_features(tail, label_events_from_frame(tail), label_delay_days=settings.features.label_delay_days),
    )
    return artifact


def register_challenger(
    artifact: ModelArtifact, *, plan: RetrainPlan, settings: Settings, client: MlflowClient
) -> tuple[TrackedModel, registry.RegisteredVersion]:
    """Log the training run and register the artifact as a new version holding ``challenger``."""
    from mlflow.entities import Param

    from fraud_core.ml.tracking import log_training

    tracked = log_training(artifact, settings=settings, register=False, client=client, run_name="retrain")
    client.log_batch(
        tracked.run_id,
        params=[Param(f"window_{k}", str(v)) for k, v in plan.to_dict().items() if v is not None],
    )
    name = settings.mlflow.registered_model_name
    meta = artifact.metadata
    version = registry.register_version(
        name,
        source=tracked.artifact_uri,
        run_id=tracked.run_id,
        client=client,
        tags={"model_kind": artifact.kind, "threshold": f"{artifact.threshold:.6f}", "trained_by": "retrain"},
        description=f"{artifact.kind} trained on {meta.get('train_start')} .. {meta.get('train_end')} (retrain)",
    )
    registry.set_challenger(name, version.version, client=client)
    return tracked, registry.get_version(name, version.version, client=client)


def load_version(version: registry.RegisteredVersion, *, settings: Settings, work_dir: Path) -> Predictor:
    """Download a registered version's artifact into ``work_dir`` and load its predictor."""
    import mlflow.artifacts

    from fraud_core.ml.artifact import METADATA_FILE
    from fraud_core.ml.predictor import Predictor

    if version.source is None:
        raise RetrainError(f"{version.name} version {version.version} has no source to load")
    target = work_dir / f"{version.name}-v{version.version}"
    if not target.exists():
        mlflow.artifacts.download_artifacts(
            artifact_uri=version.source, dst_path=str(target), tracking_uri=settings.mlflow.tracking_uri
        )
    found = sorted(p.parent for p in target.rglob(METADATA_FILE))
    if not found:
        raise RetrainError(f"{version.name} version {version.version}: no model artifact at {version.source}")
    return Predictor.load(found[0], version=version.version)


def _decision_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in DECISION_METRICS:
        value = metrics.get(key)
        if isinstance(value, int | float):
            out[key] = float(value)
    return out


def evaluate_pair(
    challenger: Predictor,
    champion: Predictor | None,
    evaluation: pd.DataFrame,
    history: pd.DataFrame,
    *,
    label_delay_days: float,
) -> tuple[dict[str, float], dict[str, float] | None]:
    """Both models' figures on the same evaluation window (features from the same history)."""
    from fraud_core.ml.evaluate import evaluate_frames

    def run(model: Predictor) -> dict[str, float]:
        return _decision_metrics(
            evaluate_frames(
                model, evaluation, history=history, label_delay_days=label_delay_days, progress=logger.debug
            )
        )

    return run(challenger), (run(champion) if champion is not None else None)


def log_evaluation(run_id: str, decision: PromotionDecision, *, client: MlflowClient) -> None:
    """Add both models' figures on the evaluation window, and the verdict, to the challenger's run."""
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(f"eval_{k}", v, now, 0) for k, v in decision.challenger.items()]
    metrics += [Metric(f"eval_champion_{k}", v, now, 0) for k, v in (decision.champion or {}).items()]
    metrics.append(Metric("promoted", 1.0 if decision.promoted else 0.0, now, 0))
    client.log_batch(run_id, metrics=metrics, tags=[RunTag("promotion", decision.summary[:5000])])


def apply_decision(
    decision: PromotionDecision, version: str, *, settings: Settings, client: MlflowClient
) -> str | None:
    """Move the aliases as decided and tag the version with the verdict; returns the previous champion."""
    name = settings.mlflow.registered_model_name
    client.set_model_version_tag(name, version, "promotion", "promoted" if decision.promoted else "rejected")
    client.set_model_version_tag(name, version, "promotion_reason", decision.summary[:5000])
    if decision.promoted:
        return registry.promote(name, version, client=client)
    return None


@dataclass
class RetrainOutcome:
    """What a retraining did (what the flow's artifact shows).

    Attributes:
        plan: the windows.
        decision: the gate's verdict with both sets of figures.
        challenger_version: the new registered version.
        champion_version: the champion it was judged against (``None``: there was none).
        run_id: the MLflow run.
        audit_id: the ``promotion_decisions`` row.
        n_train: labelled transactions trained on; ``n_eval``/``n_eval_fraud``: judged on.
        hub: the Hub publication, when configured.
    """

    plan: RetrainPlan
    decision: PromotionDecision
    challenger_version: str
    champion_version: str | None
    run_id: str
    audit_id: int | None = None
    n_train: int = 0
    n_eval: int = 0
    n_eval_fraud: int = 0
    hub: HubPublication | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The decision as Markdown: verdict, reasons, both sets of figures, windows."""
        verdict = "PROMOTED" if self.decision.promoted else "NOT PROMOTED"
        lines = [
            f"# Retraining: version {self.challenger_version} {verdict}",
            "",
            f"Champion judged against: {self.champion_version or 'none (first model: absolute minimums)'}  ",
            f"Evaluation window: {self.plan.eval_start:%Y-%m-%d %H:%M} → {self.plan.label_cutoff:%Y-%m-%d %H:%M} "
            f"({self.n_eval} labelled transactions, {self.n_eval_fraud} fraud)  ",
            f"Trained on {self.n_train} labelled transactions before {self.plan.eval_start:%Y-%m-%d %H:%M}; "
            f"labels younger than {self.plan.label_cutoff:%Y-%m-%d %H:%M} not used  ",
            f"MLflow run: `{self.run_id}`",
            "",
            "## Why",
            "",
            *[f"- {reason}" for reason in self.decision.reasons],
            "",
            "## Figures on the evaluation window",
            "",
            "| metric | challenger | champion |",
            "| --- | --- | --- |",
        ]
        champion = self.decision.champion or {}
        for key in DECISION_METRICS:
            c = self.decision.challenger.get(key)
            h = champion.get(key)
            lines.append(f"| {key} | {'n/a' if c is None else f'{c:.4f}'} | {'n/a' if h is None else f'{h:.4f}'} |")
        gate = ", ".join(f"{k}={v}" for k, v in self.decision.gate.items())
        lines += ["", f"Gate: {gate}"]
        if self.hub is not None:
            lines.append(f"Hugging Face Hub: `{self.hub.repo_id}` tag `{self.hub.tag}` ({self.hub.commit[:12]})")
        return "\n".join(lines) + "\n"


def record_decision(
    outcome: RetrainOutcome,
    artifact: ModelArtifact,
    *,
    session: Session,
    settings: Settings,
    flow_run_id: str | None = None,
) -> int:
    """Write the audit row and the warehouse's ``model_versions`` row (with its alias); returns the audit id."""
    from fraud_core.db import quality_repo, repository
    from fraud_core.db.audit import PromotionAuditCreate

    name = settings.mlflow.registered_model_name
    audit = quality_repo.insert_promotion_audit(
        PromotionAuditCreate(
            model_name=name,
            challenger_version=outcome.challenger_version,
            champion_version=outcome.champion_version,
            promoted=outcome.decision.promoted,
            reason=outcome.decision.summary,
            reasons=list(outcome.decision.reasons),
            challenger_metrics=dict(outcome.decision.challenger),
            champion_metrics=dict(outcome.decision.champion) if outcome.decision.champion is not None else None,
            gate=dict(outcome.decision.gate),
            eval_start=outcome.plan.eval_start,
            eval_end=outcome.plan.label_cutoff,
            train_start=_naive(pd.Timestamp(artifact.metadata["train_start"])),
            train_end=_naive(pd.Timestamp(artifact.metadata["train_end"])),
            n_eval=outcome.n_eval,
            n_eval_fraud=outcome.n_eval_fraud,
            flow_run_id=flow_run_id,
        ),
        session=session,
    )
    meta = artifact.metadata
    if repository.get_model_version(name, outcome.challenger_version, session=session) is None:
        repository.insert_model_version(
            {
                "name": name,
                "version": outcome.challenger_version,
                "kind": artifact.kind,
                "threshold": artifact.threshold,
                "metrics": {
                    "validation": meta.get("validation_metrics") or {},
                    "evaluation": outcome.decision.challenger,
                },
                "train_start": _naive(pd.Timestamp(meta["train_start"])),
                "train_end": _naive(pd.Timestamp(meta["train_end"])),
                "artifact_uri": outcome.extra.get("artifact_uri"),
                "hub_revision": outcome.hub.tag if outcome.hub is not None else None,
            },
            session=session,
        )
    alias = registry.CHAMPION if outcome.decision.promoted else registry.CHALLENGER
    repository.set_model_alias(name, outcome.challenger_version, alias, session=session)
    assert audit.id is not None
    return int(audit.id)


def publish_to_hub(
    artifact: ModelArtifact,
    version: str,
    *,
    settings: Settings,
    run_id: str | None = None,
    decision: PromotionDecision | None = None,
) -> HubPublication | None:
    """Publish the version to the Hub when ``HF_MODEL_REPO`` and ``HF_TOKEN`` are set (else ``None``)."""
    from fraud_core.ml.hub import hub_enabled, publish_version

    hub = settings.hub
    if not hub_enabled(hub) or artifact.path is None:
        return None
    assert hub.model_repo is not None and hub.token is not None
    extra: dict[str, Any] = {"mlflow_run_id": run_id}
    if decision is not None:
        extra["promotion"] = decision.to_dict()
    return publish_version(
        artifact.path,
        version=version,
        repo_id=hub.model_repo,
        token=hub.token.get_secret_value(),
        endpoint=hub.endpoint,
        registered_model=settings.mlflow.registered_model_name,
        extra_metadata=extra,
    )
