"""Promotion: the one way a registered version becomes champion, by the retraining's gate or by hand.

Three records move together: the MLflow registry's ``champion`` alias (what serving follows), the
warehouse's ``model_versions`` alias (what the dashboard and reports show) and one
``promotion_decisions`` row saying who or what promoted it and why. :func:`promote_version` does all
three in the caller's session; :func:`promote_by_hand` is ``fraud-detector promote`` (a rollback
too).

The registry cannot join the database transaction, so the warehouse rows are written first and the
alias moved last: if moving the alias fails, the session rolls back and nothing changed; if the
commit fails after the alias moved, serving follows the registry and the next promotion (or
``fraud-detector promote``) writes the warehouse rows again.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.db import repository, session_scope
from fraud_core.db.models import PromotionAuditCreate
from fraud_core.ml import registry
from fraud_core.settings import Settings


class PromotionError(ValueError):
    """The version cannot be promoted (unknown version, registry refused). One-line message."""


@dataclass(frozen=True, slots=True)
class Promotion:
    """What a promotion did.

    Attributes:
        name: the registered model.
        version: the new champion.
        previous: the champion before (``None``: the first one).
        audit_id: the ``promotion_decisions`` row.
    """

    name: str
    version: str
    previous: str | None
    audit_id: int


def record_version(found: registry.RegisteredVersion, *, session: Session, client: MlflowClient) -> None:
    """Make sure the warehouse knows a registered version (a row from the registry if missing).

    The kind and threshold come from the version's tags, or from its training run's ``threshold``
    metric for a version registered without them.
    """
    if repository.get_model_version(found.name, found.version, session=session) is not None:
        return
    tag = found.tags.get("threshold")
    threshold: float | None = float(tag) if tag is not None else None
    if threshold is None and found.run_id:
        threshold = client.get_run(found.run_id).data.metrics.get("threshold")
    if threshold is None:
        raise PromotionError(f"{found.name} version {found.version} records no threshold (no tag, no run metric)")
    repository.insert_model_version(
        {
            "name": found.name,
            "version": found.version,
            "kind": found.tags.get("model_kind", "unknown"),
            "threshold": threshold,
            "artifact_uri": found.source,
        },
        session=session,
    )


def promote_version(
    version: str,
    *,
    settings: Settings,
    session: Session,
    audit: PromotionAuditCreate,
    client: MlflowClient | None = None,
) -> Promotion:
    """Make ``version`` champion: the warehouse alias and audit row in ``session``, then the registry alias.

    Args:
        version: the registered version to promote.
        settings: the registered model's name and the MLflow stores.
        session: the caller's session; not committed here.
        audit: the audit row (its ``champion_version`` is filled with the previous champion).
        client: an MLflow client (defaults to one on the configured stores).

    Raises:
        PromotionError: the version does not exist.
    """
    client = client or registry.mlflow_client(settings.mlflow)
    name = settings.mlflow.registered_model_name
    try:
        found = registry.get_version(name, version, client=client)
    except MlflowException as exc:
        raise PromotionError(f"{name} has no version {version!r}") from exc
    current = registry.resolve(name, registry.CHAMPION, client=client)
    previous = current.version if current is not None else None
    record_version(found, session=session, client=client)
    repository.set_model_alias(name, found.version, registry.CHAMPION, session=session)
    row = repository.insert_promotion_audit(
        audit.model_copy(
            update={"model_name": name, "challenger_version": found.version, "champion_version": previous}
        ),
        session=session,
    )
    registry.promote(name, found.version, client=client)
    assert row.id is not None
    return Promotion(name=name, version=found.version, previous=previous, audit_id=int(row.id))


def promote_by_hand(version: str, *, reason: str, settings: Settings, engine: Engine, by: str = "cli") -> Promotion:
    """``fraud-detector promote``: make a version champion outside the gate (a rollback), audited.

    Raises:
        PromotionError: the version does not exist.
    """
    sentence = f"promoted by hand: {reason}" + (f" ({by})" if by != "cli" else "")
    audit = PromotionAuditCreate(
        model_name=settings.mlflow.registered_model_name,
        challenger_version=version,
        promoted=True,
        reason=sentence,
        reasons=[sentence],
    )
    with session_scope(engine) as session:
        return promote_version(version, settings=settings, session=session, audit=audit)
