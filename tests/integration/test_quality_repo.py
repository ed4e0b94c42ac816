"""Warehouse reads of the quality checks and the retraining, on a real PostgreSQL database."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from fraud_core.data.validation import load_canonical
from fraud_core.db import repository
from fraud_core.db.models import PromotionAuditCreate
from tests import warehouse_reads

pytestmark = pytest.mark.integration

START = datetime(2020, 3, 2)
END = START + timedelta(days=7)


@pytest.fixture(scope="module")
def week(sample_path) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    frame, _ = load_canonical(sample_path, token_key="integration-test-key-0123")
    return frame[(frame["event_time"] >= START - timedelta(days=1)) & (frame["event_time"] < END)].reset_index(
        drop=True
    )


def test_labels_predictions_runs_and_rejections_come_back_per_window(db_session: Session, week: pd.DataFrame) -> None:
    session = db_session
    repository.insert_transactions(week, session=session, source="feed")
    inside = week[week["event_time"] >= START]
    # feed labels for all; an analyst overrides two legitimate ones to fraud
    repository.upsert_labels(week[["trans_num", "is_fraud"]], session=session, origin="feed")
    legit = inside[inside["is_fraud"] == 0]["trans_num"].head(2)
    repository.upsert_labels(pd.DataFrame({"trans_num": legit, "is_fraud": 1}), session=session, origin="analyst")
    scored = inside.head(100)
    repository.insert_predictions(
        pd.DataFrame(
            {
                "trans_num": scored["trans_num"],
                "model_version": "1",
                "score": 0.1,
                "threshold": 0.5,
                "decision": False,
                "risk_level": "low",
                "latency_ms": [1000.0 * (i + 1) for i in range(len(scored))],
                "scored_at": scored["event_time"] + timedelta(seconds=5),
            }
        ),
        session=session,
    )
    for i, status in enumerate(["completed", "completed", "failed"]):
        repository.start_pipeline_run(
            session=session, flow_run_id=f"run-{i}", flow_name="etl-and-predict", started_at=START + timedelta(hours=i)
        )
        repository.finish_pipeline_run(
            f"run-{i}", session=session, status=status, finished_at=START + timedelta(hours=i, minutes=1)
        )
    repository.insert_rejected(
        [
            {"row": 0, "trans_num": "x1", "field": "amt", "reason": "not a number", "payload": {}},
            {
                "row": 1,
                "trans_num": "x2",
                "field": "trans_num",
                "reason": "duplicate trans_num within the batch",
                "payload": {},
            },
        ],
        session=session,
        source="feed",
        received_at=START + timedelta(hours=3),
    )
    session.commit()

    assert repository.count_transactions_between(START, END, session=session) == len(inside)
    counts = repository.rejected_counts_between(START, END, session=session)
    assert (counts.total, counts.duplicates) == (2, 1)
    assert repository.rejected_counts_between(END, END + timedelta(days=1), session=session).total == 0

    runs = repository.pipeline_runs_between(START, END, session=session, flow_name="etl-and-predict")
    assert runs["status"].tolist() == ["completed", "completed", "failed"]
    assert runs["started_at"].iloc[1] == pd.Timestamp(START + timedelta(hours=1))

    latencies = repository.scoring_latencies_between(START, END, session=session)
    assert sorted(latencies.tolist()) == [float(i + 1) for i in range(100)]

    scores = repository.labelled_scores_between(START, END, session=session)
    assert len(scores) == 100 and set(scores.columns) >= {"card_id", "is_fraud", "score", "threshold"}
    expected = scored.set_index("trans_num")["is_fraud"].copy()
    expected[expected.index.isin(legit)] = 1
    assert scores.set_index("trans_num")["is_fraud"].sort_index().tolist() == expected.sort_index().tolist()

    labelled = repository.labelled_transactions_between(START, END, session=session)
    assert len(labelled) == len(inside)
    assert int(labelled["is_fraud"].sum()) == int(inside["is_fraud"].sum()) + 2
    assert labelled["event_time"].dtype == "datetime64[us]"
    assert warehouse_reads.label_counts_between(START, END, session=session) == (
        len(inside),
        int(inside["is_fraud"].sum()) + 2,
    )


def test_promotion_audit_round_trip(db_session: Session) -> None:
    for version, promoted in (("1", True), ("2", False)):
        repository.insert_promotion_audit(
            PromotionAuditCreate(
                model_name="fraud-detector",
                challenger_version=version,
                champion_version=None if version == "1" else "1",
                promoted=promoted,
                reason=f"decision {version}",
                reasons=["a", "b"],
                challenger_metrics={"pr_auc": 0.8},
                champion_metrics=None if version == "1" else {"pr_auc": 0.9},
                gate={"max_pr_auc_drop": 0.0},
                eval_start=START,
                eval_end=END,
                n_eval=10,
                n_eval_fraud=1,
            ),
            session=db_session,
        )
    db_session.commit()
    rows = warehouse_reads.list_promotion_audits(session=db_session, model_name="fraud-detector")
    assert [(r.challenger_version, r.promoted) for r in rows] == [("2", False), ("1", True)]
    assert rows[0].champion_metrics == {"pr_auc": 0.9} and rows[0].eval_start is not None
    assert db_session.execute(sa.text("SELECT count(*) FROM promotion_decisions")).scalar_one() == 2
