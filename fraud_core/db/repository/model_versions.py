"""Model versions and quality reports as the warehouse records them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, select

from fraud_core.db.models import (
    ModelVersion,
    ModelVersionCreate,
    PromotionAudit,
    PromotionAuditCreate,
)
from fraud_core.db.repository._common import (
    jsonable,
)


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


def insert_promotion_audit(row: PromotionAuditCreate | dict[str, Any], *, session: Session) -> PromotionAudit:
    """Record one promotion decision (flushed, so the returned row has its id)."""
    data = row.model_dump() if isinstance(row, PromotionAuditCreate) else dict(row)
    audit = PromotionAudit.model_validate(data)
    session.add(audit)
    session.flush()
    session.refresh(audit)
    return audit


def set_hub_revision(name: str, version: str, revision: str, *, session: Session) -> None:
    """Record the Hugging Face Hub tag a version was published under (nothing when the row is missing)."""
    row = get_model_version(name, version, session=session)
    if row is not None:
        row.hub_revision = revision
        session.add(row)
        session.flush()
