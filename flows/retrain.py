"""``retrain``: learn a challenger from true labels and promote it only if it beats the champion.

Monthly (``prefect.yaml``) or by hand (``prefect deployment run 'retrain/retrain'``). The work is in
:mod:`fraud_core.ml.retraining`; every decision, promoted or not, is stored in
``promotion_decisions`` and published as the markdown artifact ``retrain-decision``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from sqlalchemy.engine import Engine

from fraud_core.db import repository, session_scope, shared_engine
from fraud_core.ml import registry, retraining
from fraud_core.ml.promotion import PromotionDecision, decide
from fraud_core.settings import Settings, get_settings

ARTIFACT_KEY = "retrain-decision"
_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="plan", **_TASK_OPTIONS)
def plan(
    engine: Engine, settings: Settings, as_of: datetime | None, eval_days: float | None, train_days: float | None
) -> retraining.RetrainPlan:
    """The windows: the data clock, the label cutoff, the evaluation window."""
    if as_of is None:
        with session_scope(engine) as session:
            as_of = repository.latest_event_time(session=session)
        if as_of is None:
            raise retraining.RetrainError("the warehouse holds no transaction: nothing to retrain on")
    return retraining.plan_retraining(
        as_of,
        label_delay_days=settings.features.label_delay_days,
        eval_days=eval_days if eval_days is not None else 7.0 * settings.model.validation_weeks,
        train_days=train_days,
    )


@task(name="load-labelled-data", **_TASK_OPTIONS)
def load_data(engine: Engine, retrain_plan: retraining.RetrainPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """True-labelled transactions before the label cutoff, split into training and evaluation."""
    with session_scope(engine) as session:
        return retraining.load_training_data(session, retrain_plan)


@task(name="train-challenger", **_TASK_OPTIONS)
def train(training: pd.DataFrame, settings: Settings, work_dir: Path, retrain_plan: retraining.RetrainPlan) -> Any:
    logger = get_run_logger()
    return retraining.train_challenger(
        training, settings=settings, work_dir=work_dir, plan=retrain_plan, progress=logger.info
    )


@task(name="register-challenger", **_TASK_OPTIONS)
def register(artifact: Any, settings: Settings, retrain_plan: retraining.RetrainPlan) -> tuple[Any, Any]:
    """MLflow run + new registered version holding ``challenger``."""
    client = registry.mlflow_client(settings.mlflow)
    return retraining.register_challenger(artifact, plan=retrain_plan, settings=settings, client=client)


@task(name="evaluate", **_TASK_OPTIONS)
def evaluate(
    artifact: Any,
    version: str,
    champion: registry.RegisteredVersion | None,
    training: pd.DataFrame,
    evaluation: pd.DataFrame,
    settings: Settings,
    work_dir: Path,
) -> tuple[dict[str, float], dict[str, float] | None]:
    """Challenger and champion on the same evaluation window."""
    from fraud_core.ml.predictor import Predictor

    challenger = Predictor(artifact, version=version)
    incumbent = retraining.load_version(champion, settings=settings, work_dir=work_dir) if champion else None
    return retraining.evaluate_pair(
        challenger, incumbent, evaluation, training, label_delay_days=settings.features.label_delay_days
    )


@task(name="decide-and-record", **_TASK_OPTIONS)
def decide_and_record(
    outcome: retraining.RetrainOutcome, artifact: Any, engine: Engine, settings: Settings, run_id: str
) -> retraining.RetrainOutcome:
    """Move the aliases as the gate decided, then store the audit row (one transaction)."""
    client = registry.mlflow_client(settings.mlflow)
    retraining.log_evaluation(outcome.run_id, outcome.decision, client=client)
    retraining.apply_decision(outcome.decision, outcome.challenger_version, settings=settings, client=client)
    with session_scope(engine) as session:
        outcome.audit_id = retraining.record_decision(
            outcome, artifact, session=session, settings=settings, flow_run_id=run_id
        )
    return outcome


@task(name="publish-to-hub", **_TASK_OPTIONS)
def publish(artifact: Any, version: str, settings: Settings, run: str, decision: PromotionDecision) -> Any:
    return retraining.publish_to_hub(artifact, version, settings=settings, run_id=run, decision=decision)


@flow(name="retrain", log_prints=False)
def retrain(
    as_of: datetime | None = None,
    eval_days: float | None = None,
    train_days: float | None = None,
) -> dict[str, Any]:
    """Train a challenger on true labels, judge it against the champion, promote it or not.

    Args:
        as_of: the data clock; defaults to the newest stored transaction.
        eval_days: the evaluation window before the label cutoff; defaults to the validation weeks.
        train_days: how much labelled history to train on; defaults to all of it.

    Returns:
        The decision (promoted, reasons, both sets of figures), the versions and the windows.
    """
    logger = get_run_logger()
    settings = get_settings()
    engine = shared_engine(settings.database.url)
    run_id = str(flow_run.id or uuid.uuid4())
    work_dir = settings.ensure_var_dir() / "retrain" / run_id
    work_dir.mkdir(parents=True, exist_ok=True)

    retrain_plan = plan(engine, settings, as_of, eval_days, train_days)
    training, evaluation = load_data(engine, retrain_plan)
    logger.info(
        "training on %d labelled transactions before %s; judging on %d (%d fraud) up to %s",
        len(training),
        retrain_plan.eval_start,
        len(evaluation),
        int(evaluation["is_fraud"].sum()),
        retrain_plan.label_cutoff,
    )
    name = settings.mlflow.registered_model_name
    champion = registry.resolve(name, registry.CHAMPION, client=registry.mlflow_client(settings.mlflow))
    artifact = train(training, settings, work_dir, retrain_plan)
    tracked, version = register(artifact, settings, retrain_plan)
    challenger_metrics, champion_metrics = evaluate(
        artifact, version.version, champion, training, evaluation, settings, work_dir
    )
    decision = decide(challenger_metrics, champion_metrics, settings.promotion)
    outcome = retraining.RetrainOutcome(
        plan=retrain_plan,
        decision=decision,
        challenger_version=version.version,
        champion_version=champion.version if champion else None,
        run_id=tracked.run_id,
        n_train=len(training),
        n_eval=len(evaluation),
        n_eval_fraud=int(evaluation["is_fraud"].sum()),
        extra={"artifact_uri": tracked.artifact_uri},
    )
    outcome = decide_and_record(outcome, artifact, engine, settings, run_id)
    logger.info("version %s %s", version.version, decision.summary)
    try:
        outcome.hub = publish(artifact, version.version, settings, tracked.run_id, decision)
        if outcome.hub is not None:
            with session_scope(engine) as session:
                row = repository.get_model_version(name, version.version, session=session)
                if row is not None:
                    row.hub_revision = outcome.hub.tag
                    session.add(row)
    finally:
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=outcome.to_markdown(),
            description=f"retrain: version {version.version} {'promoted' if decision.promoted else 'not promoted'}",
        )
    return {
        "promoted": decision.promoted,
        "challenger_version": version.version,
        "champion_version": outcome.champion_version,
        "reasons": decision.reasons,
        "challenger": decision.challenger,
        "champion": decision.champion,
        "audit_id": outcome.audit_id,
        "run_id": tracked.run_id,
        "plan": retrain_plan.to_dict(),
        "hub": None if outcome.hub is None else {"repo": outcome.hub.repo_id, "tag": outcome.hub.tag},
    }
