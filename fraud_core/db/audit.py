"""The promotion audit: every decision of the retraining's promotion gate, promoted or not.

One row per challenger judged: which version against which champion, on which evaluation window,
both sets of figures, the gate that was applied and why the decision went the way it did. The
table is ``promotion_decisions`` (migration ``0002``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from fraud_core.db.types import JSONType, UTCDateTime, utcnow


class PromotionAuditBase(SQLModel):
    """What the retraining records about one promotion decision."""

    model_name: str = Field(max_length=128)
    challenger_version: str = Field(max_length=64)
    #: The champion at decision time (``None`` for the first model).
    champion_version: str | None = Field(default=None, max_length=64)
    promoted: bool
    #: One line: the verdict and the rules' outcomes.
    reason: str
    reasons: list[Any] = Field(default_factory=list, sa_type=JSONType)
    challenger_metrics: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    champion_metrics: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    gate: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    eval_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    eval_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    train_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    train_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    n_eval: int = 0
    n_eval_fraud: int = 0
    flow_run_id: str | None = Field(default=None, max_length=64)


class PromotionAudit(PromotionAuditBase, table=True):
    __tablename__ = "promotion_decisions"
    __table_args__ = (sa.Index("ix_promotion_decisions_created_at", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"server_default": sa.func.now()}
    )


class PromotionAuditCreate(PromotionAuditBase):
    pass


class PromotionAuditPublic(PromotionAuditBase):
    id: int
    created_at: datetime
