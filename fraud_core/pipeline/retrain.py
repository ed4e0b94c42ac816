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
6. :func:`fraud_core.ml.promotion.decide` (the gate), then :func:`decide_and_record`: a promoted
   challenger goes through :func:`fraud_core.pipeline.promotion.promote_version`, the one promotion
   function (registry alias, warehouse alias, audit row); a rejected one keeps ``challenger``.
7. :func:`publish_to_hub` when ``HF_MODEL_REPO`` and a token are set.

Training uses only the labelled transactions: the feed labels every transaction once its delay has
passed, so before the cutoff the card histories are complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.db import repository, session_scope
from fraud_core.db.models import PromotionAuditCreate
from fraud_core.features import build_features, label_events_from_frame
from fraud_core.ml import registry
from fraud_core.ml.artifact import ModelArtifact, save_artifact
from fraud_core.ml.evaluate import evaluate_frames
from fraud_core.ml.hub import HubPublication, hub_enabled, publish_version
from fraud_core.ml.predictor import Predictor
from fraud_core.ml.promotion import PromotionDecision
from fraud_core.ml.tracking import TrackedModel, attach_mlflow_model, log_evaluation, log_training
from fraud_core.ml.train import train_model
from fraud_core.pipeline.promotion import promote_version
from fraud_core.settings import Settings

if TYPE_CHECKING:
    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    from mlflow import MlflowClient


logger = logging.getLogger(__name__)

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

    frame = repository.labelled_transactions_between(plan.train_start, plan.label_cutoff, session=session)
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


def train_challenger(
    training: pd.DataFrame,
    *,
    settings: Settings,
    work_dir: Path,
    plan: RetrainPlan,
    progress: Progress | None = None,
) -> ModelArtifact:
    """Train on the training part and save the artifact (with the MLflow model) under ``work_dir``."""

    artifact = train_model(
        training,
        kind=settings.model.kind,
        validation_weeks=settings.model.validation_weeks,
        label_delay_days=settings.features.label_delay_days,
        progress=progress,
    )
    artifact.card.trained_by = "retrain"
    artifact.card.retrain_plan = plan.to_dict()
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
    from mlflow.entities import Param  # mlflow costs seconds to import: only registrations pay it

    tracked = log_training(artifact, settings=settings, register=False, client=client, run_name="retrain")
    client.log_batch(
        tracked.run_id,
        params=[Param(f"window_{k}", str(v)) for k, v in plan.to_dict().items() if v is not None],
    )
    name = settings.mlflow.registered_model_name
    card = artifact.card
    version = registry.register_version(
        name,
        source=tracked.artifact_uri,
        run_id=tracked.run_id,
        client=client,
        tags={"model_kind": artifact.kind, "threshold": f"{artifact.threshold:.6f}", "trained_by": "retrain"},
        description=f"{artifact.kind} trained on {card.train_start} .. {card.train_end} (retrain)",
    )
    registry.set_challenger(name, version.version, client=client)
    return tracked, registry.get_version(name, version.version, client=client)


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

    def run(model: Predictor) -> dict[str, float]:
        return _decision_metrics(
            evaluate_frames(
                model, evaluation, history=history, label_delay_days=label_delay_days, progress=logger.debug
            )
        )

    return run(challenger), (run(champion) if champion is not None else None)


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


def decide_and_record(
    outcome: RetrainOutcome,
    artifact: ModelArtifact,
    *,
    engine: Engine,
    settings: Settings,
    flow_run_id: str | None = None,
) -> RetrainOutcome:
    """Apply the gate's verdict: the version's tags and run metrics, then the aliases and the audit row.

    A promoted challenger goes through :func:`fraud_core.pipeline.promotion.promote_version` (the
    same function as a promotion by hand); a rejected one keeps the ``challenger`` alias and gets its
    audit row. Either way the warehouse's ``model_versions`` row carries both sets of figures.

    Returns:
        ``outcome`` with its ``audit_id``.
    """
    client = registry.mlflow_client(settings.mlflow)
    name = settings.mlflow.registered_model_name
    decision = outcome.decision
    log_evaluation(outcome.run_id, decision, client=client)
    client.set_model_version_tag(
        name, outcome.challenger_version, "promotion", "promoted" if decision.promoted else "rejected"
    )
    client.set_model_version_tag(name, outcome.challenger_version, "promotion_reason", decision.summary[:5000])
    card = artifact.card
    audit = PromotionAuditCreate(
        model_name=name,
        challenger_version=outcome.challenger_version,
        champion_version=outcome.champion_version,
        promoted=decision.promoted,
        reason=decision.summary,
        reasons=list(decision.reasons),
        challenger_metrics=dict(decision.challenger),
        champion_metrics=dict(decision.champion) if decision.champion is not None else None,
        gate=dict(decision.gate),
        eval_start=outcome.plan.eval_start,
        eval_end=outcome.plan.label_cutoff,
        train_start=_naive(card.train_start),
        train_end=_naive(card.train_end),
        n_eval=outcome.n_eval,
        n_eval_fraud=outcome.n_eval_fraud,
        flow_run_id=flow_run_id,
    )
    with session_scope(engine) as session:
        if repository.get_model_version(name, outcome.challenger_version, session=session) is None:
            repository.insert_model_version(
                {
                    "name": name,
                    "version": outcome.challenger_version,
                    "kind": artifact.kind,
                    "threshold": artifact.threshold,
                    "metrics": {"validation": card.validation_metrics, "evaluation": decision.challenger},
                    "train_start": _naive(card.train_start),
                    "train_end": _naive(card.train_end),
                    "artifact_uri": outcome.extra.get("artifact_uri"),
                },
                session=session,
            )
        if decision.promoted:
            outcome.audit_id = promote_version(
                outcome.challenger_version, settings=settings, session=session, audit=audit, client=client
            ).audit_id
        else:
            row = repository.insert_promotion_audit(audit, session=session)
            repository.set_model_alias(name, outcome.challenger_version, registry.CHALLENGER, session=session)
            outcome.audit_id = row.id
    return outcome


def publish_to_hub(
    artifact: ModelArtifact,
    version: str,
    *,
    settings: Settings,
    engine: Engine,
    run_id: str | None = None,
    decision: PromotionDecision | None = None,
) -> HubPublication | None:
    """Publish the version to the Hub when ``HF_MODEL_REPO`` and ``HF_TOKEN`` are set (else ``None``).

    The Hub tag is recorded on the version's ``model_versions`` row.
    """

    hub = settings.hub
    if not hub_enabled(hub) or artifact.path is None:
        return None
    assert hub.model_repo is not None and hub.token is not None
    extra: dict[str, Any] = {"mlflow_run_id": run_id}
    if decision is not None:
        extra["promotion"] = decision.to_dict()
    publication = publish_version(
        artifact.path,
        version=version,
        repo_id=hub.model_repo,
        token=hub.token.get_secret_value(),
        endpoint=hub.endpoint,
        registered_model=settings.mlflow.registered_model_name,
        extra_metadata=extra,
    )
    with session_scope(engine) as session:
        repository.set_hub_revision(settings.mlflow.registered_model_name, version, publication.tag, session=session)
    return publication


def plan_from_warehouse(
    engine: Engine, settings: Settings, *, as_of: datetime | None, eval_days: float | None, train_days: float | None
) -> RetrainPlan:
    """The windows, with the data clock defaulting to the newest stored transaction.

    Raises:
        RetrainError: the warehouse holds no transaction.
    """
    if as_of is None:
        with session_scope(engine) as session:
            as_of = repository.latest_event_time(session=session)
        if as_of is None:
            raise RetrainError("the warehouse holds no transaction: nothing to retrain on")
    return plan_retraining(
        as_of,
        label_delay_days=settings.features.label_delay_days,
        eval_days=eval_days if eval_days is not None else 7.0 * settings.model.validation_weeks,
        train_days=train_days,
    )


def load_labelled(engine: Engine, plan: RetrainPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`load_training_data` in a session of its own."""
    with session_scope(engine) as session:
        return load_training_data(session, plan)


def current_champion(settings: Settings) -> registry.RegisteredVersion | None:
    """The registered version holding ``champion`` now (``None``: the first model)."""
    return registry.resolve(
        settings.mlflow.registered_model_name, registry.CHAMPION, client=registry.mlflow_client(settings.mlflow)
    )


def register(
    artifact: ModelArtifact, *, plan: RetrainPlan, settings: Settings
) -> tuple[TrackedModel, registry.RegisteredVersion]:
    """:func:`register_challenger` on a client of the configured stores."""
    return register_challenger(artifact, plan=plan, settings=settings, client=registry.mlflow_client(settings.mlflow))


def evaluate_against_champion(
    artifact: ModelArtifact,
    version: str,
    champion: registry.RegisteredVersion | None,
    training: pd.DataFrame,
    evaluation: pd.DataFrame,
    *,
    settings: Settings,
    work_dir: Path,
) -> tuple[dict[str, float], dict[str, float] | None]:
    """Challenger and champion on the same evaluation window (the champion downloaded into ``work_dir``)."""
    challenger = Predictor(artifact, version=version)
    incumbent = registry.load_version(champion, settings=settings, work_dir=work_dir) if champion else None
    return evaluate_pair(
        challenger, incumbent, evaluation, training, label_delay_days=settings.features.label_delay_days
    )
