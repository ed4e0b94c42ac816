"""The pipeline's database steps without Prefect: cursor discipline, idempotent loads, labels."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from fraud_core.db import repository, session_scope
from fraud_core.db.repository import CursorMovedError, unscored_trans_nums
from fraud_core.pipeline.etl_and_predict import store_labels, store_transactions, validate_labels, validate_transactions
from tests import warehouse_reads
from tests.pipeline_support import FIXTURES, TOKEN_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def records() -> list[dict]:
    raw = pd.read_csv(FIXTURES / "kaggle_train_rows.csv", dtype={"cc_num": str}).drop(
        columns=["Unnamed: 0", "is_fraud"]
    )
    return raw.to_dict("records")


def test_cursor_moves_with_the_rows_and_refuses_an_overlapping_run(clean_db: Engine, records: list[dict]) -> None:
    batch = validate_transactions(records[:30], token_key=TOKEN_KEY, source="feed")
    with session_scope(clean_db) as session:
        loaded = store_transactions(batch, session=session, source="feed", start_cursor=None, next_cursor="30")
    assert len(loaded.inserted) == 30 and loaded.duplicates == 0 and len(loaded.to_score) == 30
    with session_scope(clean_db) as session:
        cursor = repository.get_cursor("feed", session=session)
        assert cursor is not None and cursor.transactions_cursor == "30"

    # a second run that read the same range from the old cursor is refused, and stores nothing
    again = validate_transactions(records[:40], token_key=TOKEN_KEY, source="feed")
    with pytest.raises(CursorMovedError, match="moved from None to '30'"), session_scope(clean_db) as session:
        store_transactions(again, session=session, source="feed", start_cursor=None, next_cursor="40")
    with session_scope(clean_db) as session:
        assert repository.count_transactions(session=session) == 30

    # a replay from the right cursor stores only the new rows; all 40 are still to score (none is)
    with session_scope(clean_db) as session:
        loaded = store_transactions(again, session=session, source="feed", start_cursor="30", next_cursor="40")
        assert (len(loaded.inserted), loaded.duplicates, len(loaded.to_score)) == (10, 30, 40)
        repository.insert_predictions(
            [
                {
                    "trans_num": t,
                    "model_version": "1",
                    "score": 0.1,
                    "threshold": 0.5,
                    "decision": False,
                    "risk_level": "low",
                }
                for t in loaded.to_score["trans_num"][:25]
            ],
            session=session,
        )
        assert len(unscored_trans_nums(loaded.to_score["trans_num"].tolist(), session=session)) == 15


def test_a_failed_transaction_leaves_the_cursor_where_it_was(clean_db: Engine, records: list[dict]) -> None:
    batch = validate_transactions(records[:10], token_key=TOKEN_KEY, source="feed")
    with pytest.raises(RuntimeError, match="scoring blew up"), session_scope(clean_db) as session:
        store_transactions(batch, session=session, source="feed", start_cursor=None, next_cursor="10")
        raise RuntimeError("scoring blew up")
    with session_scope(clean_db) as session:
        assert repository.get_cursor("feed", session=session) is None
        assert repository.count_transactions(session=session) == 0


def test_labels_are_validated_and_stored_with_their_cursor(clean_db: Engine) -> None:
    feed = [
        {"trans_num": "a1", "is_fraud": 1, "labelled_at": "2026-01-01T00:00:00Z"},
        {"trans_num": "a2", "is_fraud": 0, "labelled_at": "2026-01-01T00:00:01Z"},
        {"trans_num": "a3", "is_fraud": 7, "labelled_at": "2026-01-01T00:00:02Z"},
        {"trans_num": None, "is_fraud": 1, "labelled_at": "2026-01-01T00:00:03Z"},
        {"trans_num": "a5", "is_fraud": True, "labelled_at": "2026-01-01T00:00:04Z"},
    ]
    good, rejected = validate_labels(feed)
    assert good["trans_num"].tolist() == ["a1", "a2"]
    assert [(r.row, r.field) for r in rejected] == [(2, "is_fraud"), (3, "trans_num"), (4, "is_fraud")]
    with session_scope(clean_db) as session:
        assert store_labels(feed, session=session, source="feed", start_cursor=None, next_cursor="5") == (2, 3)
    with session_scope(clean_db) as session:
        labels = [lab for t in ("a1", "a2", "a3") for lab in warehouse_reads.get_labels(t, session=session)]
        cursor = repository.get_cursor("feed", session=session)
    assert [(lab.trans_num, lab.is_fraud, lab.origin) for lab in labels] == [
        ("a1", True, "feed"),
        ("a2", False, "feed"),
    ]
    assert cursor is not None and cursor.labels_cursor == "5" and cursor.transactions_cursor is None


def test_bulk_predictions_match_the_repository_insert(clean_db: Engine) -> None:
    from datetime import UTC, datetime

    reasons = [{"feature": "amount", "label": 'Amount, "quoted"', "value": 512.3, "typical": None, "contribution": 0.4}]
    frame = pd.DataFrame(
        {
            "trans_num": ["p1", "p2", "p3"],
            "model_version": "7",
            "role": "champion",
            "score": [0.1234567890123456, 0.97, 0.5],
            "threshold": 0.8,
            "decision": [False, True, False],
            "risk_level": ["low", "high", "medium"],
            "reasons": [[], reasons, reasons[:0]],
            "scored_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            "latency_ms": [12.5, float("nan"), 3.0],
        }
    )
    with session_scope(clean_db) as session:
        # a frame goes through COPY on PostgreSQL, records through row-wise parameters
        assert repository.insert_predictions(frame, session=session) == 3
        assert repository.insert_predictions(frame, session=session) == 0
        other = frame.assign(model_version="8")
        assert repository.insert_predictions(other.to_dict(orient="records"), session=session) == 3
    with session_scope(clean_db) as session:
        bulk = [warehouse_reads.get_predictions(t, session=session) for t in ("p1", "p2", "p3")]
    for pair in bulk:
        eight, seven = sorted(pair, key=lambda p: p.model_version, reverse=True)
        fields = ("score", "threshold", "decision", "risk_level", "reasons", "scored_at", "latency_ms", "role")
        assert {f: getattr(seven, f) for f in fields} == {f: getattr(eight, f) for f in fields}
    assert bulk[1][0].reasons == reasons and bulk[0][0].score == 0.1234567890123456 and bulk[1][0].latency_ms is None
