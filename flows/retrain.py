"""``retrain``: learn a challenger from true labels and promote it only if it beats the champion.

Monthly (``prefect.yaml``) or by hand (``prefect deployment run 'retrain/retrain'``). The work is in
:mod:`fraud_core.pipeline.retrain`; every decision, promoted or not, is stored in
``promotion_decisions`` and published as the markdown artifact ``retrain-decision``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from fraud_core.db import shared_engine
from fraud_core.ml.promotion import decide
from fraud_core.pipeline import retrain as steps
from fraud_core.settings import flow_timeout_seconds, get_settings

ARTIFACT_KEY = "retrain-decision"
_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}

plan = task(name="plan", **_TASK_OPTIONS)(steps.plan_from_warehouse)
load_data = task(name="load-labelled-data", **_TASK_OPTIONS)(steps.load_labelled)
train = task(name="train-challenger", **_TASK_OPTIONS)(steps.train_challenger)
register = task(name="register-challenger", **_TASK_OPTIONS)(steps.register)
evaluate = task(name="evaluate", **_TASK_OPTIONS)(steps.evaluate_against_champion)
decide_and_record = task(name="decide-and-record", **_TASK_OPTIONS)(steps.decide_and_record)
publish = task(name="publish-to-hub", **_TASK_OPTIONS)(steps.publish_to_hub)


@flow(name="retrain", log_prints=False, timeout_seconds=flow_timeout_seconds("retrain"))
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

    windows = plan(engine, settings, as_of=as_of, eval_days=eval_days, train_days=train_days)
    training, evaluation = load_data(engine, windows)
    n_fraud = int(evaluation["is_fraud"].sum())
    logger.info(
        "training on %d labelled transactions before %s; judging on %d (%d fraud) up to %s",
        len(training), windows.eval_start, len(evaluation), n_fraud, windows.label_cutoff,
    )  # fmt: skip
    champion = steps.current_champion(settings)
    artifact = train(training, settings=settings, work_dir=work_dir, plan=windows, progress=logger.info)
    tracked, version = register(artifact, plan=windows, settings=settings)
    challenger_metrics, champion_metrics = evaluate(
        artifact, version.version, champion, training, evaluation, settings=settings, work_dir=work_dir
    )
    decision = decide(challenger_metrics, champion_metrics, settings.promotion)
    outcome = steps.RetrainOutcome(
        plan=windows,
        decision=decision,
        challenger_version=version.version,
        champion_version=champion.version if champion else None,
        run_id=tracked.run_id,
        n_train=len(training),
        n_eval=len(evaluation),
        n_eval_fraud=n_fraud,
        extra={"artifact_uri": tracked.artifact_uri},
    )
    outcome = decide_and_record(outcome, artifact, engine=engine, settings=settings, flow_run_id=run_id)
    logger.info("version %s %s", version.version, decision.summary)
    try:
        outcome.hub = publish(
            artifact, version.version, settings=settings, engine=engine, run_id=tracked.run_id, decision=decision
        )
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
        "plan": windows.to_dict(),
        "hub": None if outcome.hub is None else {"repo": outcome.hub.repo_id, "tag": outcome.hub.tag},
    }
