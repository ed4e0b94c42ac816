"""Repository functions: the only place that writes or queries the warehouse's tables.

One module per aggregate:

* :mod:`~fraud_core.db.repository.transactions`: transactions and their keys, card categories, reads by time;
* :mod:`~fraud_core.db.repository.labels`: labels (feed, analyst, import), the effective label, the review queue and verdicts;
* :mod:`~fraud_core.db.repository.predictions`: scores of champion and challenger, and reads of them;
* :mod:`~fraud_core.db.repository.alerts`: alerts and their delivery bookkeeping;
* :mod:`~fraud_core.db.repository.cursors`: how far each feed has been read;
* :mod:`~fraud_core.db.repository.pipeline_runs`: one row per ETL run;
* :mod:`~fraud_core.db.repository.rejected`: rows that failed validation;
* :mod:`~fraud_core.db.repository.model_versions`: model versions, their aliases, and the promotion audit;
* :mod:`~fraud_core.db.repository.quality`: weekly quality reports;
* :mod:`~fraud_core.db.repository.decisions`: the decision policy (rules, lists) and its change log;
* :mod:`~fraud_core.db.repository.analytics`: figures across tables for the dashboard's Explore view (read only);

Every function takes a keyword-only ``session`` and never commits: the caller owns the
transaction (one :func:`fraud_core.db.session_scope` per request or flow task). The names below are
the door the rest of the code uses; the feature queries are :mod:`fraud_core.db.history`.
"""

from __future__ import annotations

from fraud_core.db.repository.alerts import create_alert, pending_alerts, record_alert_attempt
from fraud_core.db.repository.analytics import amount_distribution, fraud_rate_by, volume_over_time
from fraud_core.db.repository.cursors import CursorMovedError, check_cursor, get_cursor, set_cursor
from fraud_core.db.repository.labels import record_verdict, review_queue, upsert_labels
from fraud_core.db.repository.model_versions import (
    get_model_version,
    insert_model_version,
    insert_promotion_audit,
    set_hub_revision,
    set_model_alias,
)
from fraud_core.db.repository.pipeline_runs import (
    close_stale_runs,
    finish_pipeline_run,
    heartbeat_pipeline_run,
    mark_run_committed,
    pipeline_runs_between,
    run_committed,
    start_pipeline_run,
)
from fraud_core.db.repository.predictions import (
    DailyKpis,
    champion_scores_between,
    daily_kpis,
    insert_predictions,
    labelled_predictions,
    labelled_scores_between,
    latest_scored_transactions,
    scoring_latencies_between,
    unscored_trans_nums,
)
from fraud_core.db.repository.quality import insert_quality_report, latest_quality_report
from fraud_core.db.repository.rejected import insert_rejected, rejected_counts_between
from fraud_core.db.repository.transactions import (
    LoadResult,
    count_transactions,
    count_transactions_between,
    get_transactions,
    insert_transactions,
    labelled_transactions_between,
    latest_event_time,
    load_transactions,
    transactions_between,
)

__all__ = [
    "CursorMovedError",
    "DailyKpis",
    "LoadResult",
    "amount_distribution",
    "champion_scores_between",
    "check_cursor",
    "count_transactions",
    "count_transactions_between",
    "create_alert",
    "daily_kpis",
    "close_stale_runs",
    "finish_pipeline_run",
    "heartbeat_pipeline_run",
    "mark_run_committed",
    "run_committed",
    "fraud_rate_by",
    "get_cursor",
    "get_model_version",
    "get_transactions",
    "insert_model_version",
    "insert_predictions",
    "insert_promotion_audit",
    "insert_quality_report",
    "insert_rejected",
    "insert_transactions",
    "labelled_predictions",
    "labelled_scores_between",
    "labelled_transactions_between",
    "latest_event_time",
    "latest_quality_report",
    "latest_scored_transactions",
    "load_transactions",
    "pending_alerts",
    "pipeline_runs_between",
    "record_alert_attempt",
    "record_verdict",
    "rejected_counts_between",
    "review_queue",
    "scoring_latencies_between",
    "set_cursor",
    "set_hub_revision",
    "set_model_alias",
    "start_pipeline_run",
    "transactions_between",
    "unscored_trans_nums",
    "upsert_labels",
    "volume_over_time",
]
