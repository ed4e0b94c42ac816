"""The warehouse on a real PostgreSQL server: loads, partitions, labels, reads for the dashboard."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from fraud_core.data import read_raw, to_canonical
from fraud_core.db import repository as repo
from fraud_core.db import session_scope
from fraud_core.db.importer import import_file
from fraud_core.db.models import (
    AlertCreate,
    Label,
    ModelVersionCreate,
    QualityReportCreate,
    RejectedRecord,
    Transaction,
    TransactionKey,
)
from fraud_core.db.partitions import DEFAULT_PARTITION, ensure_partitions, partition_bounds, partition_name
from fraud_core.db.repository.rejected import scrub_payload
from tests import warehouse_reads

pytestmark = pytest.mark.integration

KEY = "warehouse-test-key-0123456789"


@pytest.fixture(scope="module")
def raw_sample(sample_path: Path) -> pd.DataFrame:
    return read_raw(sample_path)


@pytest.fixture(scope="module")
def canonical(raw_sample: pd.DataFrame) -> pd.DataFrame:
    batch = to_canonical(raw_sample, token_key=KEY)
    assert not batch.rejected
    return batch.frame.sort_values(["event_time", "trans_num"]).reset_index(drop=True)


def _partition_counts(session: Session) -> dict[str, int]:
    rows = session.execute(sa.text("SELECT tableoid::regclass::text, count(*) FROM transactions GROUP BY 1"))
    return {name: int(n) for name, n in rows}


# ---------------------------------------------------------------------------------------------
# loading


def test_insert_is_idempotent_on_trans_num(db_session: Session, canonical: pd.DataFrame) -> None:
    rows = canonical.iloc[:500]
    first = repo.insert_transactions(rows, session=db_session, source="test")
    assert sorted(first) == sorted(rows["trans_num"])
    second = repo.insert_transactions(rows, session=db_session, source="test")
    assert second == []
    assert repo.count_transactions(session=db_session) == 500
    assert db_session.execute(sa.text("SELECT count(*) FROM transactions")).scalar_one() == 500


def test_same_trans_num_in_another_month_is_skipped(db_session: Session, canonical: pd.DataFrame) -> None:
    row = canonical.iloc[[0]].copy()
    assert repo.insert_transactions(row, session=db_session, source="test") == [row["trans_num"].iloc[0]]
    moved = row.copy()
    moved["event_time"] = moved["event_time"] + pd.Timedelta(days=75)  # another month, another partition
    moved["amount"] = 999.0
    assert repo.insert_transactions(moved, session=db_session, source="test") == []
    stored = db_session.execute(sa.text("SELECT event_time, amount FROM transactions")).all()
    assert len(stored) == 1
    assert stored[0].amount == row["amount"].iloc[0]
    assert stored[0].event_time.replace(tzinfo=None) == row["event_time"].iloc[0].to_pydatetime()


def test_duplicate_within_one_frame_keeps_the_first(db_session: Session, canonical: pd.DataFrame) -> None:
    rows = pd.concat([canonical.iloc[[3]], canonical.iloc[[3]].assign(amount=1.0)], ignore_index=True)
    assert len(repo.insert_transactions(rows, session=db_session, source="test")) == 1
    assert db_session.execute(sa.text("SELECT amount FROM transactions")).scalar_one() == canonical["amount"].iloc[3]


def test_round_trip_keeps_values_and_utc_times(db_session: Session, canonical: pd.DataFrame) -> None:
    rows = canonical.iloc[100:140].reset_index(drop=True)
    repo.insert_transactions(rows, session=db_session, source="test")
    # The session's time zone must not matter: values are instants.
    db_session.execute(sa.text("SET TIME ZONE 'America/New_York'"))
    back = repo.get_transactions(list(rows["trans_num"]), session=db_session)
    back = back.set_index("trans_num").loc[rows["trans_num"]].reset_index()
    expected = rows.loc[:, list(back.columns[:18])]
    pd.testing.assert_frame_equal(back.loc[:, expected.columns], expected, check_dtype=False)
    assert (back["source"] == "test").all()
    window = repo.transactions_between(
        rows["event_time"].min().to_pydatetime(),
        rows["event_time"].max().to_pydatetime() + timedelta(microseconds=1),
        session=db_session,
    )
    assert list(window["trans_num"]) == list(rows.sort_values(["event_time", "trans_num"])["trans_num"])
    assert repo.latest_event_time(session=db_session) == rows["event_time"].max().to_pydatetime().replace(tzinfo=UTC)


def test_partitions_are_created_for_the_months_loaded(db_session: Session, canonical: pd.DataFrame) -> None:
    jan = canonical[canonical["event_time"] < "2019-02-01"].iloc[:50]
    mar = canonical[(canonical["event_time"] >= "2019-03-01") & (canonical["event_time"] < "2019-04-01")].iloc[:30]
    repo.insert_transactions(pd.concat([jan, mar]), session=db_session, source="test")
    bounds = partition_bounds(db_session.connection())
    assert set(bounds) == {DEFAULT_PARTITION, "transactions_y2019m01", "transactions_y2019m03"}
    assert bounds["transactions_y2019m01"] == (
        "FOR VALUES FROM ('2019-01-01 00:00:00+00') TO ('2019-02-01 00:00:00+00')"
    )
    assert _partition_counts(db_session) == {"transactions_y2019m01": 50, "transactions_y2019m03": 30}


def test_default_partition_catches_rows_outside_every_partition(db_session: Session, canonical: pd.DataFrame) -> None:
    # A write that bypasses the loader (no partition for 2031-05) still succeeds ...
    values = canonical.iloc[0].to_dict()
    values.update(trans_num="outlier-1", event_time=datetime(2031, 5, 17, 3, 0), dob=values["dob"].date())
    db_session.add(Transaction(**values, source="test"))
    db_session.flush()
    assert _partition_counts(db_session) == {DEFAULT_PARTITION: 1}
    # ... and creating the month's partition later moves the row out of DEFAULT.
    assert ensure_partitions(db_session.connection(), [date(2031, 5, 1)]) == [partition_name(date(2031, 5, 1))]
    assert _partition_counts(db_session) == {"transactions_y2031m05": 1}
    db_session.commit()


def test_import_of_the_sample_twice_stores_each_row_once(clean_db: Engine, sample_path: Path) -> None:
    first = import_file(sample_path, engine=clean_db, token_key=KEY, chunk_rows=20_000)
    assert (first.read, first.inserted, first.duplicates, first.rejected) == (49_136, 49_136, 0, 0)
    assert first.labels == 49_136
    second = import_file(sample_path, engine=clean_db, token_key=KEY, chunk_rows=20_000)
    assert (second.read, second.inserted, second.duplicates, second.rejected) == (49_136, 0, 49_136, 0)
    assert second.labels == 0
    with session_scope(clean_db) as session:
        assert session.execute(sa.text("SELECT count(*), count(DISTINCT trans_num) FROM transactions")).one() == (
            49_136,
            49_136,
        )
        fraud = session.execute(
            sa.text("SELECT count(*) FROM labels WHERE origin = 'import' AND is_fraud")
        ).scalar_one()
        assert fraud == 354
        months = {name for name in partition_bounds(session.connection()) if name != DEFAULT_PARTITION}
        assert months == {f"transactions_y{y}m{m:02d}" for y in (2019, 2020) for m in range(1, 13)}
        assert DEFAULT_PARTITION not in _partition_counts(session)


# ---------------------------------------------------------------------------------------------
# labels


def test_labels_upsert_per_origin(db_session: Session) -> None:
    feed = pd.DataFrame({"trans_num": ["a", "b", "c"], "is_fraud": [0, 1, None]})
    assert repo.upsert_labels(feed, session=db_session, origin="feed") == 2  # c has no label yet
    assert repo.upsert_labels(feed, session=db_session, origin="feed") == 0  # nothing new
    changed = pd.DataFrame({"trans_num": ["a"], "is_fraud": [True]})
    assert repo.upsert_labels(changed, session=db_session, origin="feed") == 1
    verdict = repo.record_verdict("a", False, session=db_session, analyst="ana", note="customer confirmed")
    assert (verdict.origin, verdict.is_fraud, verdict.analyst) == ("analyst", False, "ana")
    labels = warehouse_reads.get_labels("a", session=db_session)
    assert [(lab.origin, lab.is_fraud) for lab in labels] == [("analyst", False), ("feed", True)]
    stored = db_session.exec(select(Label).order_by(Label.trans_num, Label.origin)).all()
    assert [(lab.trans_num, lab.origin, lab.is_fraud) for lab in stored] == [
        ("a", "analyst", False),
        ("a", "feed", True),
        ("b", "feed", True),
    ]
    with pytest.raises(ValueError, match="unknown label origin"):
        repo.upsert_labels(feed, session=db_session, origin="model")


def test_bulk_labels_use_the_copy_path_and_stay_idempotent(db_session: Session) -> None:
    many = pd.DataFrame(
        {"trans_num": [f"t{i:05d}" for i in range(3_000)], "is_fraud": [i % 7 == 0 for i in range(3_000)]}
    )
    assert repo.upsert_labels(many, session=db_session, origin="import") == 3_000
    assert repo.upsert_labels(many, session=db_session, origin="import") == 0
    flipped = many.assign(is_fraud=~many["is_fraud"])
    assert repo.upsert_labels(flipped.iloc[:10], session=db_session, origin="import") == 10
    assert repo.upsert_labels(flipped, session=db_session, origin="import") == 2_990
    fraud = db_session.execute(sa.text("SELECT count(*) FROM labels WHERE is_fraud")).scalar_one()
    assert fraud == int(flipped["is_fraud"].sum())


# ---------------------------------------------------------------------------------------------
# rejected rows


def test_rejected_rows_never_contain_the_card_number(
    clean_db: Engine, raw_sample: pd.DataFrame, tmp_path: Path
) -> None:
    raw = raw_sample.iloc[:200].copy()
    raw["amt"] = raw["amt"].astype(object)
    raw.loc[raw.index[:5], "amt"] = "not-a-number"
    raw["category"] = raw["category"].astype(object)
    raw.loc[raw.index[5:8], "category"] = "casino"
    raw.loc[raw.index[8], "trans_num"] = raw.loc[raw.index[9], "trans_num"]  # duplicate in the file
    path = tmp_path / "with_bad_rows.csv"
    raw.to_csv(path, index=False)
    card_numbers = {str(c) for c in raw["cc_num"]}

    summary = import_file(path, engine=clean_db, token_key=KEY, source="bad-file")
    assert summary.read == 200
    assert summary.rejected == 9
    assert summary.inserted == 191
    with session_scope(clean_db) as session:
        stored = session.exec(select(RejectedRecord).order_by(RejectedRecord.row_number)).all()
        assert [r.row_number for r in stored][:8] == list(range(8))
        assert {r.field for r in stored[:5]} == {"amt"}
        assert all(r.source == "bad-file" for r in stored)
        for record in stored:
            text = json.dumps(record.payload)
            assert not any(number in text for number in card_numbers)
            assert not {"cc_num", "first", "last", "street"} & set(record.payload)
        assert stored[0].payload["card_last4"] == str(raw["cc_num"].iloc[0])[-4:]
        every_column = session.execute(sa.text("SELECT r::text FROM rejected_records r")).scalars().all()
        assert not any(number in row for row in every_column for number in card_numbers)


def test_scrub_payload_masks_card_numbers_anywhere() -> None:
    clean = scrub_payload(
        {
            "cc_num": "4874913829548337",
            "first": "Dylan",
            "merchant": "4874 9138 2954 8337",
            "zip": 1440,
            "trans_num": "1" * 32,
        }
    )
    assert clean == {"card_last4": "8337", "merchant": "****8337", "zip": 1440, "trans_num": "1" * 32}


# ---------------------------------------------------------------------------------------------
# predictions and the dashboard


@pytest.fixture
def scored(db_session: Session, canonical: pd.DataFrame) -> pd.DataFrame:
    """Two days of transactions, scored by v1 (champion) and v2 (challenger), partly labelled."""
    day = canonical[(canonical["event_time"] >= "2019-03-10") & (canonical["event_time"] < "2019-03-12")]
    day = day.reset_index(drop=True)
    repo.insert_transactions(day, session=db_session, source="feed")
    score = (day.index % 10) / 10 + 0.05
    base = datetime(2024, 1, 1, tzinfo=UTC)
    preds = pd.DataFrame(
        {
            "trans_num": day["trans_num"],
            "model_version": "v1",
            "score": score,
            "threshold": 0.7,
            "decision": score >= 0.7,
            "risk_level": ["high" if s >= 0.7 else "low" for s in score],
            "reasons": [[{"feature": "amount", "value": float(a)}] for a in day["amount"]],
            "scored_at": [base + timedelta(seconds=i) for i in range(len(day))],
            "latency_ms": 3.5,
        }
    )
    assert repo.insert_predictions(preds, session=db_session) == len(day)
    assert repo.insert_predictions(preds, session=db_session) == 0
    challenger = preds.assign(model_version="v2", role="challenger", score=1 - score, decision=(1 - score) >= 0.7)
    assert repo.insert_predictions(challenger, session=db_session) == len(day)
    labelled = day.iloc[::2]
    repo.upsert_labels(labelled.loc[:, ["trans_num", "is_fraud"]], session=db_session, origin="feed")
    return day.assign(score=score, decision=score >= 0.7, labelled=day.index % 2 == 0)


def test_latest_scored_transactions_masks_the_card(db_session: Session, scored: pd.DataFrame) -> None:
    latest = repo.latest_scored_transactions(session=db_session, limit=5)
    expected = scored.iloc[::-1].iloc[:5]
    assert list(latest["trans_num"]) == list(expected["trans_num"])
    assert list(latest["card"]) == [f"**** {c}" for c in expected["card_last4"]]
    assert "card_id" not in latest.columns and "card_last4" not in latest.columns
    assert latest["model_version"].eq("v1").all()
    assert list(latest["score"]) == pytest.approx(list(expected["score"]))
    assert latest["event_time"].dtype == "datetime64[us]"


def test_daily_kpis(db_session: Session, scored: pd.DataFrame) -> None:
    day = scored[scored["event_time"] < "2019-03-11"]
    kpis = repo.daily_kpis(date(2019, 3, 10), session=db_session)
    labelled = day[day["labelled"]]
    assert kpis.transactions == len(day)
    assert kpis.scored == len(day)
    assert kpis.flagged == int(day["decision"].sum())
    assert kpis.alert_rate == pytest.approx(day["decision"].mean())
    assert kpis.labelled == len(labelled)
    assert kpis.fraud == int(labelled["is_fraud"].sum())
    assert kpis.amount == pytest.approx(day["amount"].sum())
    empty = repo.daily_kpis(date(2030, 1, 1), session=db_session)
    assert (empty.transactions, empty.alert_rate, empty.fraud_rate) == (0, 0.0, None)


def test_labelled_predictions_per_model_version(db_session: Session, scored: pd.DataFrame) -> None:
    both = repo.labelled_predictions(session=db_session)
    assert len(both) == 2 * int(scored["labelled"].sum())
    v1 = repo.labelled_predictions(session=db_session, model_version="v1")
    expected = scored[scored["labelled"]].set_index("trans_num")
    assert set(v1["trans_num"]) == set(expected.index)
    got = v1.set_index("trans_num")
    assert (got["is_fraud"] == expected.loc[got.index, "is_fraud"].astype(bool)).all()
    assert got["score"].to_numpy() == pytest.approx(expected.loc[got.index, "score"].to_numpy())
    window = repo.labelled_predictions(
        session=db_session, start=datetime(2019, 3, 11), end=datetime(2019, 3, 12), role="challenger"
    )
    assert len(window) == int(scored[scored["labelled"] & (scored["event_time"] >= "2019-03-11")].shape[0])
    # An analyst overrides the feed's label.
    first = v1["trans_num"].iloc[0]
    repo.record_verdict(first, not bool(v1["is_fraud"].iloc[0]), session=db_session, analyst="ana")
    again = repo.labelled_predictions(session=db_session, model_version="v1").set_index("trans_num")
    assert again.loc[first, "is_fraud"] == (not bool(v1["is_fraud"].iloc[0]))


def test_review_queue_and_verdicts(db_session: Session, scored: pd.DataFrame) -> None:
    queue = repo.review_queue(session=db_session, limit=1_000)
    flagged = scored[scored["decision"]]
    assert set(queue["trans_num"]) == set(flagged["trans_num"])
    assert list(queue["score"]) == sorted(queue["score"], reverse=True)
    assert queue["card"].str.startswith("**** ").all()
    done = queue["trans_num"].iloc[:3]
    verdicts = pd.DataFrame({"trans_num": done, "is_fraud": [1, 0, 1], "note": ["x", None, "y"]})
    assert warehouse_reads.submit_verdicts(verdicts, session=db_session, analyst="ana") == 3
    after = repo.review_queue(session=db_session, limit=1_000)
    assert set(after["trans_num"]) == set(flagged["trans_num"]) - set(done)


def test_explore_aggregates(db_session: Session, scored: pd.DataFrame) -> None:
    labelled = scored[scored["labelled"]]
    by_category = repo.fraud_rate_by("category", session=db_session).set_index("category")
    expected = scored.groupby("category").agg(transactions=("trans_num", "size"))
    assert by_category["transactions"].to_dict() == expected["transactions"].to_dict()
    fraud = labelled.groupby("category")["is_fraud"].sum()
    assert by_category["fraud"].to_dict() == {k: int(fraud.get(k, 0)) for k in by_category.index}

    by_hour = repo.fraud_rate_by("hour", session=db_session).set_index("hour")
    assert by_hour["transactions"].to_dict() == scored.groupby(scored["event_time"].dt.hour).size().to_dict()

    volume = repo.volume_over_time(session=db_session, freq="day")
    assert list(volume["period"]) == [pd.Timestamp("2019-03-10"), pd.Timestamp("2019-03-11")]
    assert volume["transactions"].sum() == len(scored)
    assert volume["flagged"].sum() == int(scored["decision"].sum())
    assert volume["amount"].sum() == pytest.approx(scored["amount"].sum())
    hourly = repo.volume_over_time(
        session=db_session, freq="hour", start=datetime(2019, 3, 10), end=datetime(2019, 3, 11)
    )
    assert hourly["transactions"].sum() == int((scored["event_time"] < "2019-03-11").sum())

    amounts = repo.amount_distribution(session=db_session)
    assert amounts.groupby("label")["transactions"].sum().to_dict() == {
        "fraud": int(labelled["is_fraud"].sum()),
        "legit": int((labelled["is_fraud"] == 0).sum()),
    }
    legit = amounts[amounts["label"] == "legit"]
    assert legit["share"].sum() == pytest.approx(1.0)
    low = legit[legit["bin_low"] == 0]["transactions"].iloc[0]
    assert low == int(((labelled["is_fraud"] == 0) & (labelled["amount"] < 10)).sum())


# ---------------------------------------------------------------------------------------------
# alerts, cursors, runs, registry


def test_alert_lifecycle(db_session: Session) -> None:
    alert = repo.create_alert(
        AlertCreate(kind="fraud", subject="t1", card_last4="1234", amount=912.5, score=0.97, message="flagged"),
        session=db_session,
    )
    assert alert is not None and alert.status == "pending" and alert.attempts == 0
    assert repo.create_alert({"kind": "fraud", "subject": "t1", "message": "again"}, session=db_session) is None
    assert [a.subject for a in repo.pending_alerts(session=db_session)] == ["t1"]

    failed = repo.record_alert_attempt(
        alert.id, session=db_session, channels={"email": "failed"}, error="SMTP down", max_attempts=2
    )
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 1, "SMTP down")
    assert len(repo.pending_alerts(session=db_session, max_attempts=2)) == 1
    gave_up = repo.record_alert_attempt(
        alert.id, session=db_session, channels={"email": "failed"}, error="x", max_attempts=2
    )
    assert gave_up.status == "gave_up"
    assert repo.pending_alerts(session=db_session, max_attempts=2) == []

    other = repo.create_alert({"kind": "quality", "subject": "report-7", "message": "fail"}, session=db_session)
    assert other is not None
    sent = repo.record_alert_attempt(other.id, session=db_session, channels={"webhook": "sent"})
    assert sent.status == "sent" and sent.delivered_at is not None and sent.channels == {"webhook": "sent"}
    db_session.commit()
    assert [a.subject for a in warehouse_reads.list_alerts(session=db_session, status="sent")] == ["report-7"]


def test_cursors(db_session: Session) -> None:
    assert repo.get_cursor("feed", session=db_session) is None
    repo.set_cursor("feed", session=db_session, transactions="100")
    cursor = repo.set_cursor("feed", session=db_session, labels="40")
    assert (cursor.transactions_cursor, cursor.labels_cursor) == ("100", "40")
    cursor = repo.set_cursor("feed", session=db_session, transactions=None)
    assert (cursor.transactions_cursor, cursor.labels_cursor) == (None, "40")


def test_pipeline_runs(db_session: Session) -> None:
    run = repo.start_pipeline_run(session=db_session, flow_run_id="r1", flow_name="ingest")
    assert run.status == "running"
    warehouse_reads.update_pipeline_counts("r1", {"extracted": 10}, session=db_session)
    done = repo.finish_pipeline_run("r1", session=db_session, status="completed", counts={"loaded": 9, "scored": 9})
    assert done.counts == {"extracted": 10, "loaded": 9, "scored": 9}
    assert done.finished_at is not None
    repo.start_pipeline_run(session=db_session, flow_run_id="r2", flow_name="ingest")
    repo.finish_pipeline_run("r2", session=db_session, status="failed", error="feed unreachable")
    runs = warehouse_reads.latest_pipeline_runs(session=db_session, flow_name="ingest")
    assert [(r.flow_run_id, r.status) for r in runs] == [("r2", "failed"), ("r1", "completed")]
    with pytest.raises(sa.exc.IntegrityError):
        repo.finish_pipeline_run("r1", session=db_session, status="exploded")


def test_model_versions_and_quality_reports(db_session: Session) -> None:
    for version in ("1", "2"):
        repo.insert_model_version(
            ModelVersionCreate(
                name="fraud-detector",
                version=version,
                kind="hgb",
                threshold=0.6,
                metrics={"pr_auc": 0.8 + int(version) / 100},
                train_start=datetime(2019, 1, 1),
                train_end=datetime(2020, 5, 1),
            ),
            session=db_session,
        )
    repo.set_model_alias("fraud-detector", "1", "champion", session=db_session)
    repo.set_model_alias("fraud-detector", "2", "champion", session=db_session)
    champion = warehouse_reads.latest_model_version(session=db_session, alias="champion")
    assert champion is not None and champion.version == "2"
    assert repo.get_model_version("fraud-detector", "1", session=db_session).alias is None  # type: ignore[union-attr]
    assert champion.train_start == datetime(2019, 1, 1, tzinfo=UTC)

    repo.insert_quality_report(
        QualityReportCreate(
            window_start=datetime(2020, 1, 1),
            window_end=datetime(2020, 1, 8),
            status="warn",
            checks=[{"name": "psi", "value": 0.12}],
        ),
        session=db_session,
    )
    latest = repo.latest_quality_report(session=db_session)
    assert latest is not None and latest.status == "warn" and latest.checks == [{"name": "psi", "value": 0.12}]


def test_predictions_need_known_roles(db_session: Session) -> None:
    bad = [
        {
            "trans_num": "x",
            "model_version": "v1",
            "role": "shadow",
            "score": 0.1,
            "threshold": 0.5,
            "decision": False,
            "risk_level": "low",
        }
    ]
    with pytest.raises(sa.exc.IntegrityError):
        repo.insert_predictions(bad, session=db_session)


def test_keys_registry_matches_transactions(db_session: Session, canonical: pd.DataFrame) -> None:
    repo.insert_transactions(canonical.iloc[:300], session=db_session, source="test")
    keys = db_session.exec(select(TransactionKey)).all()
    assert len(keys) == 300
    mismatched = db_session.execute(
        sa.text(
            "SELECT count(*) FROM transaction_keys k LEFT JOIN transactions t "
            "ON t.trans_num = k.trans_num AND t.event_time = k.event_time WHERE t.trans_num IS NULL"
        )
    ).scalar_one()
    assert mismatched == 0


def test_partition_names_and_months() -> None:
    from fraud_core.db.partitions import months_of, next_month

    assert partition_name(date(2019, 12, 31)) == "transactions_y2019m12"
    assert next_month(date(2019, 12, 1)) == date(2020, 1, 1)
    stamps = pd.Series(pd.to_datetime(["2019-12-31 23:59:59", "2020-01-01 00:00:00", "2019-12-01 00:00:00"]))
    assert months_of(stamps) == [date(2019, 12, 1), date(2020, 1, 1)]


def test_aware_times_are_stored_as_the_same_instant(db_session: Session) -> None:
    from datetime import timezone

    paris = timezone(timedelta(hours=2))
    repo.upsert_labels(
        pd.DataFrame({"trans_num": ["z"], "is_fraud": [1]}),
        session=db_session,
        origin="feed",
        labelled_at=datetime(2020, 6, 1, 12, 0, tzinfo=paris),
    )
    stored = db_session.execute(sa.text("SELECT labelled_at AT TIME ZONE 'UTC' FROM labels")).scalar_one()
    assert stored == datetime(2020, 6, 1, 10, 0)
    label = warehouse_reads.get_labels("z", session=db_session)[0]
    assert label.labelled_at == datetime(2020, 6, 1, 10, 0, tzinfo=UTC)
