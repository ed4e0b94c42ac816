"""Quality reports: the weekly report of every check, newest first (``quality_reports``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from fraud_core.db.models import (
    QualityReport,
    QualityReportCreate,
)
from fraud_core.db.repository._common import (
    jsonable,
)


def insert_quality_report(report: QualityReportCreate | Mapping[str, Any], *, session: Session) -> QualityReport:
    """Record a quality report."""
    data = QualityReportCreate.model_validate(report).model_dump()
    data["checks"] = jsonable(data.get("checks") or [])
    row = QualityReport(**data)
    session.add(row)
    session.flush()
    return row


def latest_quality_report(*, session: Session) -> QualityReport | None:
    """The newest quality report."""
    statement = select(QualityReport).order_by(col(QualityReport.created_at).desc(), col(QualityReport.id).desc())
    return session.exec(statement.limit(1)).first()
