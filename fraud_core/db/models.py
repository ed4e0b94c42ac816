"""The warehouse tables, one SQLModel family per table.

``XBase`` holds the fields a caller provides, ``X(table=True)`` is the table, ``XCreate`` what a
writer passes, ``XPublic`` what an API or the dashboard shows. Timestamps are UTC instants
(:class:`~fraud_core.db.types.UTCDateTime`); enumerations are short strings guarded by CHECK
constraints rather than native enum types, so that adding a value is a one-line migration on every
backend.

Uniqueness of ``trans_num``: on PostgreSQL ``transactions`` is range-partitioned by month on
``event_time``, and a partitioned table can only enforce unique constraints that include the
partition key, so its primary key is ``(trans_num, event_time)``. That alone would let the same
``trans_num`` in again with another ``event_time`` (a corrected timestamp, a replayed feed) into
another partition. The small, non-partitioned ``transaction_keys`` table (``trans_num`` primary key)
is the registry that makes ``trans_num`` globally unique: the only write path
(:func:`fraud_core.db.repository.insert_transactions`) inserts a key first and writes the
transaction only for keys it actually created, in the same database transaction. It also tells in
which partition a ``trans_num`` lives (its ``event_time``), so a lookup by id can prune partitions.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from fraud_core.db.types import IdentifierString, JSONType, UTCDateTime, utcnow


class LabelOrigin(StrEnum):
    FEED = "feed"
    ANALYST = "analyst"
    IMPORT = "import"


class ScoringRole(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


class AlertKind(StrEnum):
    FRAUD = "fraud"
    QUALITY = "quality"


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    GAVE_UP = "gave_up"


class QualityStatus(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CRASHED = "crashed"
    CANCELLED = "cancelled"


def _in(column: str, enum: type[StrEnum]) -> str:
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"{column} IN ({values})"


def _now_default() -> dict[str, Any]:
    return {"server_default": sa.func.now()}


# --------------------------------------------------------------------------------------------
# transactions


class TransactionBase(SQLModel):
    """A transaction in the canonical schema (no card number, no names, no street)."""

    trans_num: str = Field(max_length=64, sa_type=IdentifierString)
    card_id: str = Field(max_length=64, sa_type=IdentifierString)
    card_last4: str = Field(max_length=4)
    event_time: datetime = Field(sa_type=UTCDateTime)
    amount: float
    category: str
    merchant: str
    merch_lat: float
    merch_long: float
    gender: str = Field(max_length=1)
    dob: date
    city: str
    state: str
    zip: int
    lat: float
    long: float
    city_pop: int = Field(sa_type=sa.BigInteger)
    job: str


class Transaction(TransactionBase, table=True):
    """The ``transactions`` table, partitioned by month of ``event_time`` on PostgreSQL."""

    __tablename__ = "transactions"
    __table_args__ = (
        # The primary key leads with event_time: loads arrive in time order, so its inserts append
        # at the right edge instead of touching random pages (trans_num is a random hex id), and it
        # serves time-window scans too. Lookups by id go through transaction_keys, which gives the
        # event_time, then this key.
        sa.PrimaryKeyConstraint("event_time", "trans_num", name="pk_transactions"),
        # "Recent history of these cards": the features' main query.
        sa.Index("ix_transactions_card_id_event_time", "card_id", "event_time"),
        {"postgresql_partition_by": "RANGE (event_time)"},
    )

    trans_num: str = Field(primary_key=True, max_length=64, sa_type=IdentifierString)
    event_time: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    source: str = Field(default="import", max_length=64)
    ingested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())


class TransactionKey(SQLModel, table=True):
    """The registry that keeps ``trans_num`` unique across partitions (see the module docstring)."""

    __tablename__ = "transaction_keys"

    trans_num: str = Field(primary_key=True, max_length=64, sa_type=IdentifierString)
    event_time: datetime = Field(sa_type=UTCDateTime)


class CardCategory(SQLModel, table=True):
    """Each card's first transaction in each category: "first use of a category" without a scan.

    Kept by the only write path (:func:`fraud_core.db.repository.load_transactions`) in the same
    statement as the transactions: a row's ``(first_event_time, first_trans_num)`` is the smallest
    in ``(event_time, trans_num)`` order (code-point order for ties) of the card's stored
    transactions in the category. The online features read it instead of scanning each card's
    whole history (:func:`fraud_core.db.history.fetch_card_history`).
    """

    __tablename__ = "card_categories"

    card_id: str = Field(primary_key=True, max_length=64, sa_type=IdentifierString)
    category: str = Field(primary_key=True)
    first_event_time: datetime = Field(sa_type=UTCDateTime)
    first_trans_num: str = Field(max_length=64, sa_type=IdentifierString)


class TransactionPublic(SQLModel):
    """A transaction as people see it: the card masked, no token, no customer details."""

    trans_num: str
    card_last4: str
    event_time: datetime
    amount: float
    category: str
    merchant: str
    city: str
    state: str
    source: str


# --------------------------------------------------------------------------------------------
# labels


class LabelBase(SQLModel):
    """Whether a transaction was fraud, said by the feed, an analyst or an imported file."""

    trans_num: str = Field(max_length=64, sa_type=IdentifierString)
    is_fraud: bool
    origin: str = Field(max_length=16)
    labelled_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    analyst: str | None = Field(default=None, max_length=128)
    note: str | None = None


class Label(LabelBase, table=True):
    """One label per ``(trans_num, origin)``; a newer one from the same origin replaces it.

    The natural key is the primary key (no surrogate id): one index less to maintain on a table
    that receives a label for every imported transaction.
    """

    __tablename__ = "labels"
    __table_args__ = (
        sa.PrimaryKeyConstraint("trans_num", "origin", name="pk_labels"),
        sa.CheckConstraint(_in("origin", LabelOrigin), name="ck_labels_origin"),
        sa.Index("ix_labels_labelled_at", "labelled_at"),
    )

    trans_num: str = Field(primary_key=True, max_length=64, sa_type=IdentifierString)
    origin: str = Field(primary_key=True, max_length=16)


class LabelEpoch(SQLModel, table=True):
    """How many labels of one day's transactions (or how many of the transactions) a statement changed.

    Appended by PostgreSQL triggers on ``labels`` and ``transaction_keys`` (migration 0004), per
    UTC day of the transactions' ``event_time``, one row per statement and day (no writer updates a
    shared row, so none waits for another); the snapshot writer compacts the rows of past days. The
    sum over the days before an instant changes exactly when something the label totals before that
    instant depend on changed, which is how a :class:`LabelTotalsState` snapshot knows it is still
    valid.
    """

    __tablename__ = "label_epochs"
    __table_args__ = (sa.Index("ix_label_epochs_day", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    day: date
    changes: int = Field(sa_type=sa.BigInteger)


class LabelTotal(SQLModel, table=True):
    """Effective labels per (merchant, category) of the transactions before ``until`` (a snapshot)."""

    __tablename__ = "label_totals"

    until: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    merchant: str = Field(primary_key=True)
    category: str = Field(primary_key=True)
    n: int = Field(sa_type=sa.BigInteger)
    n_fraud: int = Field(sa_type=sa.BigInteger)


class LabelTotalsState(SQLModel, table=True):
    """One snapshot of :class:`LabelTotal`: valid while the epochs before ``until`` sum to ``changes``."""

    __tablename__ = "label_totals_state"

    until: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    changes: int = Field(sa_type=sa.BigInteger)
    computed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())


class LabelCreate(LabelBase):
    pass


class LabelPublic(LabelBase):
    pass


# --------------------------------------------------------------------------------------------
# predictions


class PredictionBase(SQLModel):
    """One model's score for one transaction."""

    trans_num: str = Field(max_length=64, sa_type=IdentifierString)
    model_version: str = Field(max_length=128)
    role: str = Field(default=ScoringRole.CHAMPION.value, max_length=16)
    score: float
    threshold: float
    decision: bool
    risk_level: str = Field(max_length=16)
    reasons: list[Any] = Field(default_factory=list, sa_type=JSONType)
    scored_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    latency_ms: float | None = None
    # the decision policy's answer (``None`` on scores stored before decisioning, and on the
    # challenger's, which never decide): ``decision`` above is ``outcome != 'approve'``
    outcome: str | None = Field(default=None, max_length=16)
    band: str | None = Field(default=None, max_length=16)
    rule_hits: list[Any] | None = Field(default=None, sa_type=JSONType)
    list_hits: list[Any] | None = Field(default=None, sa_type=JSONType)
    policy_version: int | None = None


class Prediction(PredictionBase, table=True):
    __tablename__ = "predictions"
    __table_args__ = (
        sa.UniqueConstraint("trans_num", "model_version", "role", name="uq_predictions_trans_num_model_role"),
        sa.CheckConstraint(_in("role", ScoringRole), name="ck_predictions_role"),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('approve', 'review', 'decline')", name="ck_predictions_outcome"
        ),
        sa.Index("ix_predictions_scored_at", "scored_at"),
    )

    id: int | None = Field(default=None, primary_key=True)


class PredictionCreate(PredictionBase):
    pass


class PredictionPublic(PredictionBase):
    id: int


# --------------------------------------------------------------------------------------------
# the decision policy: rules, lists, and every change to them


class DecisionRuleBase(SQLModel):
    """A rule as saved: its expression is checked by :func:`fraud_core.decisions.compile_rule` first."""

    name: str = Field(max_length=64)
    expression: str = Field(max_length=2000)
    action: str = Field(max_length=16)
    priority: int = 100
    mode: str = Field(default="active", max_length=16)
    enabled: bool = True


class DecisionRule(DecisionRuleBase, table=True):
    __tablename__ = "decision_rules"
    __table_args__ = (
        sa.UniqueConstraint("name", name="uq_decision_rules_name"),
        sa.CheckConstraint("action IN ('approve', 'review', 'decline')", name="ck_decision_rules_action"),
        sa.CheckConstraint("mode IN ('active', 'shadow')", name="ck_decision_rules_mode"),
    )

    id: int | None = Field(default=None, primary_key=True)
    updated_by: str = Field(max_length=128)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DecisionListEntryBase(SQLModel):
    """One value on an allow or block list (a card as its token, never its number)."""

    kind: str = Field(max_length=8)
    field: str = Field(max_length=16)
    value: str = Field(max_length=256)
    reason: str = Field(max_length=500)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DecisionListEntry(DecisionListEntryBase, table=True):
    __tablename__ = "decision_list_entries"
    __table_args__ = (
        sa.UniqueConstraint("kind", "field", "value", name="uq_decision_list_entries_value"),
        sa.CheckConstraint("kind IN ('allow', 'block')", name="ck_decision_list_entries_kind"),
        sa.CheckConstraint("field IN ('card', 'merchant', 'category')", name="ck_decision_list_entries_field"),
    )

    id: int | None = Field(default=None, primary_key=True)
    author: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PolicyChange(SQLModel, table=True):
    """One change to a rule or a list: its id is the policy's version from then on."""

    __tablename__ = "decision_policy_changes"

    id: int | None = Field(default=None, primary_key=True)
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())
    changed_by: str = Field(max_length=128)
    subject: str = Field(max_length=16)  # rule or list
    name: str = Field(max_length=300)  # the rule's name, or "block/merchant/VALUE"
    change: str = Field(max_length=16)  # add, update, disable, remove
    before: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSONType)


# --------------------------------------------------------------------------------------------
# alerts


class AlertBase(SQLModel):
    """Something to tell people about: a flagged transaction or a failing quality report."""

    kind: str = Field(max_length=16)
    #: What the alert is about: a trans_num (fraud) or a report id (quality). One alert per subject.
    subject: str = Field(max_length=128)
    card_last4: str | None = Field(default=None, max_length=4)
    amount: float | None = None
    score: float | None = None
    message: str = ""


class Alert(AlertBase, table=True):
    __tablename__ = "alerts"
    __table_args__ = (
        sa.UniqueConstraint("kind", "subject", name="uq_alerts_kind_subject"),
        sa.CheckConstraint(_in("kind", AlertKind), name="ck_alerts_kind"),
        sa.CheckConstraint(_in("status", AlertStatus), name="ck_alerts_status"),
        sa.Index("ix_alerts_status_created_at", "status", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default=AlertStatus.PENDING.value, max_length=16)
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: Per-channel outcome, e.g. ``{"email": "sent", "webhook": "failed"}``.
    channels: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class AlertCreate(AlertBase):
    pass


class AlertPublic(AlertBase):
    id: int
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    channels: dict[str, Any]


# --------------------------------------------------------------------------------------------
# model versions


class ModelVersionBase(SQLModel):
    """A trained model, as the registry and the dashboard know it."""

    name: str = Field(max_length=128)
    version: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    threshold: float
    metrics: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    train_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    train_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    artifact_uri: str | None = None
    hub_revision: str | None = Field(default=None, max_length=128)
    #: ``champion``, ``challenger`` or none; at most one version of a name holds an alias.
    alias: str | None = Field(default=None, max_length=32)


class ModelVersion(ModelVersionBase, table=True):
    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())


class ModelVersionCreate(ModelVersionBase):
    pass


class ModelVersionPublic(ModelVersionBase):
    id: int
    created_at: datetime


# --------------------------------------------------------------------------------------------
# quality reports


class QualityReportBase(SQLModel):
    window_start: datetime = Field(sa_type=UTCDateTime)
    window_end: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(max_length=8)
    checks: list[Any] = Field(default_factory=list, sa_type=JSONType)
    markdown: str = ""


class QualityReport(QualityReportBase, table=True):
    __tablename__ = "quality_reports"
    __table_args__ = (
        sa.CheckConstraint(_in("status", QualityStatus), name="ck_quality_reports_status"),
        sa.Index("ix_quality_reports_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())


class QualityReportCreate(QualityReportBase):
    pass


class QualityReportPublic(QualityReportBase):
    id: int
    created_at: datetime


# --------------------------------------------------------------------------------------------
# source cursors, rejected records, pipeline runs


class SourceCursor(SQLModel, table=True):
    """How far the pipeline has read a source's transactions and labels (opaque cursor strings)."""

    __tablename__ = "source_cursors"

    source: str = Field(primary_key=True, max_length=64)
    transactions_cursor: str | None = None
    labels_cursor: str | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())


class RejectedRecord(SQLModel, table=True):
    """A row that failed validation, kept for the quality report. The payload never holds cc_num."""

    __tablename__ = "rejected_records"
    __table_args__ = (sa.Index("ix_rejected_records_received_at", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    row_number: int | None = None
    trans_num: str | None = None
    field: str
    reason: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class PipelineRunBase(SQLModel):
    flow_run_id: str = Field(max_length=64)
    flow_name: str = Field(max_length=128)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default=RunStatus.RUNNING.value, max_length=16)
    #: ``extracted``, ``loaded``, ``scored``, ``flagged`` ... whatever the flow counts.
    counts: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    error: str | None = None
    #: Renewed while the run lives; a ``running`` row with an old heartbeat died (its lease ran out).
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: Set in the same transaction as the run's stored work: it was committed.
    committed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PipelineRun(PipelineRunBase, table=True):
    __tablename__ = "pipeline_runs"
    __table_args__ = (
        sa.UniqueConstraint("flow_run_id", name="uq_pipeline_runs_flow_run_id"),
        sa.CheckConstraint(_in("status", RunStatus), name="ck_pipeline_runs_status"),
        sa.Index("ix_pipeline_runs_flow_name_started_at", "flow_name", "started_at"),
        sa.Index("ix_pipeline_runs_status", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)


class PipelineRunPublic(PipelineRunBase):
    id: int


#: Every table this module defines, children first where it matters for truncation order.
TABLES: tuple[type[SQLModel], ...] = (
    Transaction,
    TransactionKey,
    Label,
    Prediction,
    Alert,
    ModelVersion,
    QualityReport,
    SourceCursor,
    RejectedRecord,
    PipelineRun,
)


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table behind a table model (typed, for statements built with SQLAlchemy Core)."""
    return cast(sa.Table, cast(Any, model).__table__)


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


# --------------------------------------------------------------------------------------------
# cases: what an analyst works (one per card at a time), its transactions and its timeline


class CaseState(StrEnum):
    OPEN = "open"
    IN_REVIEW = "in_review"
    RESOLVED_FRAUD = "resolved_fraud"
    RESOLVED_LEGITIMATE = "resolved_legitimate"


#: A card has at most one case in these states; an alert on it joins that case.
ACTIVE_CASE_STATES = (CaseState.OPEN, CaseState.IN_REVIEW)


class CaseEventKind(StrEnum):
    OPENED = "opened"
    ALERT = "alert"
    ASSIGNED = "assigned"
    VERDICT = "verdict"
    LIST = "list"
    NOTE = "note"
    RESOLVED = "resolved"


_ACTIVE = "state IN ('open', 'in_review')"


class CaseBase(SQLModel):
    card_id: str = Field(max_length=64, sa_type=IdentifierString)
    card_last4: str = Field(max_length=4)
    state: str = Field(default=CaseState.OPEN.value, max_length=24)
    assignee: str | None = Field(default=None, max_length=64)
    #: The money at risk: the sum of score × amount over the case's transactions without a verdict.
    priority: float = 0.0
    n_transactions: int = 0
    amount_at_risk: float = 0.0


class Case(CaseBase, table=True):
    __tablename__ = "cases"
    __table_args__ = (
        sa.CheckConstraint(_in("state", CaseState), name="ck_cases_state"),
        # one active case per card, enforced by the database (two runs alerting at once join one case)
        sa.Index(
            "uq_cases_active_card",
            "card_id",
            unique=True,
            postgresql_where=sa.text(_ACTIVE),
            sqlite_where=sa.text(_ACTIVE),
        ),
        # the queue: active cases by priority
        sa.Index("ix_cases_state_priority", "state", "priority"),
        sa.Index("ix_cases_assignee_state", "assignee", "state"),
        sa.Index("ix_cases_card_last4", "card_last4"),
    )

    id: int | None = Field(default=None, primary_key=True)
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CasePublic(CaseBase):
    id: int
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class CaseTransaction(SQLModel, table=True):
    """A flagged transaction of a case (a transaction is in at most one case)."""

    __tablename__ = "case_transactions"
    __table_args__ = (sa.Index("ix_case_transactions_case_id", "case_id"),)

    trans_num: str = Field(primary_key=True, max_length=64, sa_type=IdentifierString)
    case_id: int = Field(foreign_key="cases.id")
    score: float
    amount: float
    added_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())
    #: The analyst's verdict given in this case (the label itself is in ``labels``).
    verdict: bool | None = None
    verdict_by: str | None = Field(default=None, max_length=64)
    verdict_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CaseEvent(SQLModel, table=True):
    """The case's timeline, append-only: what happened, who did it, when."""

    __tablename__ = "case_events"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", CaseEventKind), name="ck_case_events_kind"),
        sa.Index("ix_case_events_case_id_at", "case_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs=_now_default())
    actor: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
