"""Warehouse reads only the tests need (the product never reads these ways).

Same rules as the repository: a keyword-only ``session``, never a commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, col, select

from fraud_core.db.models import (
    Alert,
    Label,
    LabelOrigin,
    ModelVersion,
    PipelineRun,
    Prediction,
    PromotionAudit,
    Transaction,
    TransactionKey,
    table_of,
)
from fraud_core.db.repository._common import between, jsonable
from fraud_core.db.repository.labels import ORIGIN_PRIORITY, effective_label_join, upsert_labels
from fraud_core.db.types import as_utc

_tx = table_of(Transaction)
_keys = table_of(TransactionKey)


def get_alert(kind: str, subject: str, *, session: Session) -> Alert | None:
    """The alert about this subject, if any."""
    return session.exec(select(Alert).where(Alert.kind == kind, Alert.subject == subject)).one_or_none()


def list_alerts(
    *, session: Session, kind: str | None = None, status: str | None = None, limit: int = 100
) -> list[Alert]:
    """Recent alerts, newest first, optionally of one kind or status."""
    statement = select(Alert)
    if kind is not None:
        statement = statement.where(Alert.kind == kind)
    if status is not None:
        statement = statement.where(Alert.status == status)
    statement = statement.order_by(col(Alert.created_at).desc(), col(Alert.id).desc()).limit(limit)
    return list(session.exec(statement).all())


def get_labels(trans_num: str, *, session: Session) -> list[Label]:
    """Every label of one transaction, the effective one first."""
    labels = list(session.exec(select(Label).where(Label.trans_num == trans_num)).all())
    return sorted(labels, key=lambda lab: (ORIGIN_PRIORITY.get(lab.origin, 99), -as_utc(lab.labelled_at).timestamp()))


def label_counts_between(start: datetime | None, end: datetime | None, *, session: Session) -> tuple[int, int]:
    """``(labelled, fraud)``: transactions in the window with a true label, and how many are fraud."""
    joined, label = effective_label_join(_tx, _tx.c.trans_num)
    statement = (
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((label, 1), else_=0)), 0))
        .select_from(joined)
        .where(label.is_not(None))
    )
    n, fraud = session.execute(between(statement, _tx.c.event_time, start, end)).one()
    return int(n), int(fraud)


def submit_verdicts(verdicts: pd.DataFrame, *, session: Session, analyst: str) -> int:
    """Several analyst verdicts at once (``trans_num``, ``is_fraud``, optional ``note``).

    Returns:
        How many labels were inserted or changed.
    """
    return upsert_labels(verdicts, session=session, origin=LabelOrigin.ANALYST.value, analyst=analyst)


def latest_model_version(*, session: Session, name: str | None = None, alias: str | None = None) -> ModelVersion | None:
    """The newest model version, optionally of a name and/or holding an alias (``champion``)."""
    statement = select(ModelVersion)
    if name is not None:
        statement = statement.where(ModelVersion.name == name)
    if alias is not None:
        statement = statement.where(ModelVersion.alias == alias)
    statement = statement.order_by(col(ModelVersion.created_at).desc(), col(ModelVersion.id).desc()).limit(1)
    return session.exec(statement).first()


def list_model_versions(*, session: Session, name: str | None = None, limit: int = 50) -> list[ModelVersion]:
    """Model versions, newest first."""
    statement = select(ModelVersion)
    if name is not None:
        statement = statement.where(ModelVersion.name == name)
    statement = statement.order_by(col(ModelVersion.created_at).desc(), col(ModelVersion.id).desc()).limit(limit)
    return list(session.exec(statement).all())


def list_promotion_audits(*, session: Session, model_name: str | None = None, limit: int = 20) -> list[PromotionAudit]:
    """Promotion decisions, newest first."""
    statement = select(PromotionAudit)
    if model_name is not None:
        statement = statement.where(PromotionAudit.model_name == model_name)
    statement = statement.order_by(col(PromotionAudit.created_at).desc(), col(PromotionAudit.id).desc()).limit(limit)
    return list(session.exec(statement).all())


def update_pipeline_counts(flow_run_id: str, counts: Mapping[str, Any], *, session: Session) -> PipelineRun:
    """Merge counts into a running flow's row (progress as it goes)."""
    run = session.exec(select(PipelineRun).where(PipelineRun.flow_run_id == flow_run_id)).one()
    run.counts = {**(run.counts or {}), **jsonable(dict(counts))}
    session.add(run)
    session.flush()
    return run


def latest_pipeline_runs(*, session: Session, flow_name: str | None = None, limit: int = 20) -> list[PipelineRun]:
    """The most recent runs, newest first, optionally of one flow."""
    statement = select(PipelineRun)
    if flow_name is not None:
        statement = statement.where(PipelineRun.flow_name == flow_name)
    statement = statement.order_by(col(PipelineRun.started_at).desc(), col(PipelineRun.id).desc()).limit(limit)
    return list(session.exec(statement).all())


def get_predictions(trans_num: str, *, session: Session) -> list[Prediction]:
    """Every score of one transaction (all model versions and roles), newest first."""
    statement = select(Prediction).where(Prediction.trans_num == trans_num).order_by(Prediction.scored_at.desc())  # type: ignore[attr-defined]
    return list(session.exec(statement).all())
