"""Repository functions: the only place that writes or queries the warehouse.

Every function takes a keyword-only ``session`` and never commits: the caller owns the
transaction (one :func:`fraud_core.db.session_scope` per request or flow task).
"""

from __future__ import annotations

from fraud_core.db.repository.alerts import create_alert, get_alert, list_alerts, pending_alerts, record_alert_attempt
from fraud_core.db.repository.dashboard import (
    DEFAULT_AMOUNT_EDGES,
    DailyKpis,
    amount_distribution,
    daily_kpis,
    fraud_rate_by,
    labelled_predictions,
    latest_scored_transactions,
    review_queue,
    submit_verdicts,
    volume_over_time,
)
from fraud_core.db.repository.labels import (
    ORIGIN_PRIORITY,
    effective_label_expr,
    effective_label_join,
    get_labels,
    record_verdict,
    upsert_labels,
)
from fraud_core.db.repository.operations import (
    UNSET,
    finish_pipeline_run,
    get_cursor,
    insert_rejected,
    latest_pipeline_runs,
    rejected_between,
    scrub_payload,
    set_cursor,
    start_pipeline_run,
    update_pipeline_counts,
)
from fraud_core.db.repository.predictions import get_predictions, insert_predictions, unscored_trans_nums
from fraud_core.db.repository.registry import (
    get_model_version,
    insert_model_version,
    insert_quality_report,
    latest_model_version,
    latest_quality_report,
    list_model_versions,
    list_quality_reports,
    set_model_alias,
)
from fraud_core.db.repository.transactions import (
    LoadResult,
    count_transactions,
    get_transactions,
    insert_transactions,
    latest_event_time,
    load_transactions,
    transactions_between,
)

__all__ = [
    "DEFAULT_AMOUNT_EDGES",
    "ORIGIN_PRIORITY",
    "UNSET",
    "DailyKpis",
    "LoadResult",
    "amount_distribution",
    "count_transactions",
    "create_alert",
    "daily_kpis",
    "effective_label_expr",
    "effective_label_join",
    "finish_pipeline_run",
    "fraud_rate_by",
    "get_alert",
    "get_cursor",
    "get_labels",
    "get_model_version",
    "get_predictions",
    "get_transactions",
    "insert_model_version",
    "insert_predictions",
    "insert_quality_report",
    "insert_rejected",
    "insert_transactions",
    "labelled_predictions",
    "latest_event_time",
    "latest_model_version",
    "latest_pipeline_runs",
    "latest_quality_report",
    "latest_scored_transactions",
    "list_alerts",
    "list_model_versions",
    "list_quality_reports",
    "load_transactions",
    "pending_alerts",
    "record_alert_attempt",
    "record_verdict",
    "rejected_between",
    "review_queue",
    "scrub_payload",
    "set_cursor",
    "set_model_alias",
    "start_pipeline_run",
    "submit_verdicts",
    "transactions_between",
    "unscored_trans_nums",
    "update_pipeline_counts",
    "upsert_labels",
    "volume_over_time",
]
