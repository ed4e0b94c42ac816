"""Model versions and quality reports as the warehouse records them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from fraud_core.db.models import ModelVersion, ModelVersionCreate, QualityReport, QualityReportCreate
from fraud_core.db.repository._common import jsonable


def insert_model_version(version: ModelVersionCreate | Mapping[str, Any], *, session: Session) -> ModelVersion:
    """Record a trained model version.

    Raises:
        sqlalchemy.exc.IntegrityError: the ``(name, version)`` pair exists already.
    """
    data = ModelVersionCreate.model_validate(version).model_dump()
    data["metrics"] = jsonable(data.get("metrics") or {})
    row = ModelVersion(**data)
    session.add(row)
    session.flush()
    return row


def get_model_version(name: str, version: str, *, session: Session) -> ModelVersion | None:
    """One model version by name and version."""
    return session.exec(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    ).one_or_none()


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


def set_model_alias(name: str, version: str, alias: str | None, *, session: Session) -> ModelVersion:
    """Give a version an alias (``champion``, ``challenger``), taking it from any other version of the name.

    Args:
        name: the model name.
        version: the version that gets the alias.
        alias: the alias; ``None`` clears this version's alias.
        session: the caller's session; not committed here.
    """
    target = get_model_version(name, version, session=session)
    if target is None:
        raise LookupError(f"no model version {name} {version}")
    if alias is not None:
        holders = session.exec(
            select(ModelVersion).where(
                ModelVersion.name == name, ModelVersion.alias == alias, ModelVersion.id != target.id
            )
        ).all()
        for holder in holders:
            holder.alias = None
            session.add(holder)
    target.alias = alias
    session.add(target)
    session.flush()
    return target


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


def list_quality_reports(*, session: Session, limit: int = 20) -> list[QualityReport]:
    """Quality reports, newest first."""
    statement = select(QualityReport).order_by(col(QualityReport.created_at).desc(), col(QualityReport.id).desc())
    return list(session.exec(statement.limit(limit)).all())
