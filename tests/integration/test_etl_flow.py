"""The etl-and-predict flow end to end, on real parts: PostgreSQL, the feed on loopback, aiosmtpd.

Prefect runs the flow against a temporary server (``prefect_test_harness``); the flow reads its
configuration from the environment like a deployed run does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fraud_core.data import to_canonical
from fraud_core.db import make_engine, repository, session_scope, shared_engine
from fraud_core.ml.champion import reset_champion_holder
from fraud_core.settings import reset_settings
from simulator.faults import Fault
from tests.pipeline_support import (
    SAMPLE_PATH,
    TOKEN_KEY,
    FeedServer,
    SmtpSink,
    ThrowawayPostgres,
    env_setter,
    free_port,
    train_quick_model,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEED_START, FEED_END = "2019-10-06", "2019-10-12"
HISTORY_START = "2019-09-01"
SOURCE = "feed"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_quick_model(tmp_path_factory.mktemp("etl-model") / "model")


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE_PATH)


@pytest.fixture(scope="module")
def feed_raw(sample: pd.DataFrame) -> pd.DataFrame:
    """A week of the sample with two broken rows, as the feed replays it."""
    raw = sample[(sample["trans_date_trans_time"] >= FEED_START) & (sample["trans_date_trans_time"] < FEED_END)]
    raw = raw.reset_index(drop=True).astype({"amt": object, "category": object})
    raw.loc[5, "amt"] = "lots"
    raw.loc[17, "category"] = "casino"
    return raw


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url_env: str, model_dir: Path) -> Iterator[Callable[..., None]]:
    """Configure the flow through the environment (as a deployment would); returns a setter."""

    configure = env_setter(monkeypatch)

    configure(
        MODEL_PATH=model_dir,
        CARD_TOKEN_KEY=TOKEN_KEY,
        SOURCE_NAME=SOURCE,
        SOURCE_TIMEOUT_SECONDS=0.5,
        SOURCE_RETRIES=1,
        SOURCE_RETRY_BACKOFF_SECONDS=0.01,
        SOURCE_PAGE_SIZE=100,
        SOURCE_MAX_PER_RUN=20_000,
        SMTP_HOST=None,
        SMTP_RECIPIENTS=None,
        ALERT_WEBHOOK_URL=None,
        FEATURES_LABEL_DELAY_DAYS=7,
    )
    yield configure
    reset_settings()
    reset_champion_holder()


def _history(engine: Engine, sample: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """Import earlier weeks (with their labels) the way ``fraud-detector import`` stores them."""
    raw = sample[(sample["trans_date_trans_time"] >= start) & (sample["trans_date_trans_time"] < end)]
    frame = to_canonical(raw, token_key=TOKEN_KEY, require_label=True).frame
    with session_scope(engine) as session:
        repository.insert_transactions(frame, session=session, source="import")
        repository.upsert_labels(frame[["trans_num", "is_fraud"]], session=session, origin="import")
    return frame


def _run(**parameters: Any) -> Any:
    from flows.etl_and_predict import etl_and_predict

    return etl_and_predict(return_state=True, **parameters)


def _scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar_one()


def _feed_counts(engine: Engine) -> dict[str, int]:
    return {
        "transactions": _scalar(engine, "SELECT count(*) FROM transactions WHERE source = :s", s=SOURCE),
        "distinct": _scalar(engine, "SELECT count(DISTINCT trans_num) FROM transactions WHERE source = :s", s=SOURCE),
        "predictions": _scalar(
            engine,
            "SELECT count(*) FROM predictions p JOIN transactions t USING (trans_num) WHERE t.source = :s",
            s=SOURCE,
        ),
        "unscored": _scalar(
            engine,
            "SELECT count(*) FROM transactions t WHERE t.source = :s AND NOT EXISTS "
            "(SELECT 1 FROM predictions p WHERE p.trans_num = t.trans_num)",
            s=SOURCE,
        ),
        "scored_twice": _scalar(
            engine,
            "SELECT count(*) FROM (SELECT trans_num FROM predictions GROUP BY trans_num HAVING count(*) > 1) x",
        ),
        "flagged": _scalar(engine, "SELECT count(*) FROM predictions WHERE decision"),
        "alerts": _scalar(engine, "SELECT count(*) FROM alerts WHERE kind = 'fraud'"),
        "flagged_without_alert": _scalar(
            engine,
            "SELECT count(*) FROM predictions p WHERE p.decision AND NOT EXISTS "
            "(SELECT 1 FROM alerts a WHERE a.kind = 'fraud' AND a.subject = p.trans_num)",
        ),
        "labels": _scalar(engine, "SELECT count(*) FROM labels WHERE origin = 'feed'"),
        "rejected": _scalar(engine, "SELECT count(*) FROM rejected_records WHERE source = :s", s=SOURCE),
    }


def test_flow_end_to_end(
    prefect: None,
    env: Callable[..., None],
    clean_db: Engine,
    sample: pd.DataFrame,
    feed_raw: pd.DataFrame,
) -> None:
    _history(clean_db, sample, HISTORY_START, FEED_START)
    n_valid = len(feed_raw) - 2
    with FeedServer(feed_raw, label_delay=0.0) as feed, SmtpSink() as smtp:
        # the mail server is unreachable at first: scoring goes on, the alerts wait
        env(API_URL=feed.url, **(smtp.env() | {"SMTP_PORT": str(free_port())}))
        state = _run()
        assert state.is_completed(), state.message
        record = state.result()
        counts = _feed_counts(clean_db)
        assert counts["transactions"] == counts["distinct"] == n_valid
        assert counts["predictions"] == n_valid and counts["unscored"] == 0 and counts["scored_twice"] == 0
        assert counts["flagged"] > 0, "the week holds frauds: something must be flagged"
        assert counts["alerts"] == counts["flagged"] and counts["flagged_without_alert"] == 0
        assert counts["labels"] == len(feed_raw) and counts["rejected"] == 2
        assert record["inserted"] == n_valid and record["rejected"] == 2 and record["flagged"] == counts["flagged"]
        assert record["alerts_failed"] == counts["alerts"] and record["alerts_sent"] == 0
        assert record["cursor"] == str(len(feed_raw)) and record["latency_ms_p50"] >= 0
        assert smtp.messages == []
        with clean_db.connect() as connection:
            reasons = dict(
                connection.execute(
                    sa.text("SELECT field, reason FROM rejected_records WHERE source = :s ORDER BY field"),
                    {"s": SOURCE},
                ).all()
            )
            alert_rows = connection.execute(sa.text("SELECT status, attempts, last_error FROM alerts")).all()
        assert reasons == {"amt": "not a number", "category": reasons["category"]}
        assert reasons["category"].startswith("unknown value")
        assert {(s, a) for s, a, _ in alert_rows} == {("failed", 1)}
        assert all("ConnectionRefusedError" in (e or "") for *_, e in alert_rows)

        # the mail server is back: the next run delivers, and stores or scores nothing twice
        env(SMTP_PORT=smtp.port)
        state = _run()
        assert state.is_completed(), state.message
        again = state.result()
        assert again["extracted"] == 0 and again.get("inserted", 0) == 0
        assert again["alerts_sent"] == counts["alerts"]
        assert _feed_counts(clean_db) == counts
        assert len(smtp.messages) == counts["alerts"]

    flagged = pd.read_sql(
        "SELECT p.trans_num, t.card_last4, t.amount FROM predictions p JOIN transactions t USING (trans_num) "
        "WHERE p.decision ORDER BY p.trans_num",
        clean_db,
    )
    subjects = sorted(m["Subject"] for m in smtp.messages)
    assert subjects == sorted(
        f"Possible fraud: ${a:,.2f} on card **** {c}" for c, a in zip(flagged.card_last4, flagged.amount, strict=True)
    )
    raw_cards = {str(c) for c in feed_raw["cc_num"]}
    bodies = "".join(m.as_string() for m in smtp.messages)
    assert not any(card in bodies for card in raw_cards)
    with clean_db.connect() as connection:
        stored = " ".join(str(r) for r in connection.execute(sa.text("SELECT payload FROM rejected_records")).all())
        runs = connection.execute(sa.text("SELECT status, counts FROM pipeline_runs ORDER BY started_at")).all()
        sent = connection.execute(sa.text("SELECT DISTINCT status, attempts FROM alerts")).all()
    assert not any(card in stored for card in raw_cards)
    assert [r.status for r in runs] == ["completed", "completed"]
    assert runs[0].counts["scored"] == n_valid
    assert set(sent) == {("sent", 2)}


def _expect_failures(runs: int, match: str) -> None:
    for _ in range(runs):
        state = _run()
        assert state.is_failed()
        assert match in str(state.message) or match in repr(state.result(raise_on_failure=False))


def test_source_faults_fail_runs_visibly_then_every_transaction_arrives_once(
    prefect: None,
    env: Callable[..., None],
    clean_db: Engine,
    feed_raw: pd.DataFrame,
) -> None:
    n_valid = len(feed_raw) - 2
    with FeedServer(feed_raw, label_delay=0.0) as feed:
        env(API_URL=feed.url, SOURCE_MAX_PER_RUN=150)
        assert _run().is_completed()
        first = _feed_counts(clean_db)
        assert first["transactions"] == 148  # 150 read, the two broken ones among them

        feed.faults.set(Fault("error", status=500))
        _expect_failures(2, "HTTP 500")
        feed.faults.set(Fault("slow", delay=1.0))
        _expect_failures(2, "ReadTimeout")
        feed.faults.set(Fault("malformed"))
        _expect_failures(2, "malformed answer")
        feed.faults.clear()
        feed.stop()
        _expect_failures(2, "ConnectError")
        assert _feed_counts(clean_db) == first  # failed runs stored nothing, not even half a batch

        feed.start()
        for _ in range(5):
            state = _run()
            assert state.is_completed(), state.message
            if state.result()["extracted"] == 0:
                break
    counts = _feed_counts(clean_db)
    assert counts["transactions"] == counts["distinct"] == n_valid
    assert counts["predictions"] == n_valid and counts["unscored"] == 0 and counts["scored_twice"] == 0
    assert counts["labels"] == len(feed_raw) and counts["rejected"] == 2
    statuses = pd.read_sql("SELECT status, error FROM pipeline_runs ORDER BY started_at", clean_db)
    assert statuses["status"].tolist()[:9] == ["completed"] + ["failed"] * 8
    assert statuses["error"].iloc[1].startswith("SourceError: source http://127.0.0.1")


def test_database_restart_in_the_middle_of_a_run_loses_and_doubles_nothing(
    prefect: None,
    env: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    feed_raw: pd.DataFrame,
) -> None:
    import fraud_core.pipeline.etl_and_predict as module
    from fraud_core.db.migrate import upgrade

    n_valid = len(feed_raw) - 2
    with ThrowawayPostgres() as pg, FeedServer(feed_raw, label_delay=0.0) as feed:
        upgrade(pg.url)
        env(API_URL=feed.url, DATABASE_URL=pg.url, SOURCE_MAX_PER_RUN=200)
        engine = make_engine(pg.url)
        try:
            assert _run().is_completed()
            before = _feed_counts(engine)
            assert before["transactions"] == 198  # 200 read, the two broken ones among them

            # The server restarts while the run is inside its transaction: rows stored, scores
            # computed and stored, alerts being created, cursor moved, nothing committed yet.
            real_route = module.route_decisions
            restarts = []

            def route_then_restart(*args: Any, **kwargs: Any) -> Any:
                if not restarts:
                    restarts.append(True)
                    pg.restart()
                return real_route(*args, **kwargs)

            monkeypatch.setattr(module, "route_decisions", route_then_restart)
            state = _run()
            assert state.is_failed() and restarts == [True]
            assert "OperationalError" in str(state.message), state.message
            assert _feed_counts(engine) == before

            for _ in range(3):
                state = _run()
                assert state.is_completed(), state.message
                if state.result()["extracted"] == 0:
                    break
            counts = _feed_counts(engine)
        finally:
            engine.dispose()
            from fraud_core.settings import get_settings

            shared_engine(get_settings().database.url).dispose()  # the flow's pool on the throwaway server
            shared_engine.cache_clear()
    assert counts["transactions"] == counts["distinct"] == n_valid
    assert counts["predictions"] == n_valid and counts["unscored"] == 0 and counts["scored_twice"] == 0
    assert counts["alerts"] == counts["flagged"] and counts["flagged_without_alert"] == 0
    assert counts["labels"] == len(feed_raw) and counts["rejected"] == 2


def test_stored_score_equals_the_offline_batch_score(
    prefect: None,
    env: Callable[..., None],
    clean_db: Engine,
    sample: pd.DataFrame,
    feed_raw: pd.DataFrame,
    model_dir: Path,
) -> None:
    from fraud_core.features import label_events_from_frame
    from fraud_core.ml.predictor import Predictor

    history = _history(clean_db, sample, HISTORY_START, FEED_START)
    with FeedServer(feed_raw, label_delay=3600.0) as feed:
        env(API_URL=feed.url)
        state = _run(ingest_label_feed=False)
        assert state.is_completed(), state.message
    stored = pd.read_sql(
        "SELECT trans_num, score, model_version, risk_level, reasons FROM predictions", clean_db
    ).set_index("trans_num")

    # offline: the whole period as one frame, batch features, the same model file
    new = to_canonical(feed_raw.drop(columns=["is_fraud"]), token_key=TOKEN_KEY).frame
    offline_frame = pd.concat([history.drop(columns=["is_fraud"]), new], ignore_index=True)
    offline_frame = offline_frame.sort_values(["event_time", "trans_num"], kind="stable").reset_index(drop=True)
    predictor = Predictor.load(model_dir)
    offline = predictor.score(
        offline_frame, history=None, label_events=label_events_from_frame(history), reasons=3
    ).set_index("trans_num")
    expected = offline.loc[stored.index]
    assert len(stored) == len(new) > 300
    assert (stored["score"] - expected["score"]).abs().max() <= 1e-9
    assert stored["model_version"].nunique() == 1
    # reasons are stored for the medium and high risk ones, and are the offline ones
    risky = stored[stored["risk_level"] != "low"]
    assert len(risky) > 0 and (stored.loc[stored["risk_level"] == "low", "reasons"].map(len) == 0).all()
    for trans_num, row in risky.iterrows():
        assert [r["feature"] for r in row["reasons"]] == [r["feature"] for r in expected.at[trans_num, "reasons"]]


def test_realtime_format_source(
    prefect: None,
    env: Callable[..., None],
    clean_db: Engine,
    feed_raw: pd.DataFrame,
) -> None:
    clock = {"now": 1_000_000.0}
    with FeedServer(feed_raw.iloc[20:40], rate=1.0, clock=lambda: clock["now"]) as feed:
        env(API_URL=feed.url)
        clock["now"] += 3.0
        assert _run(feed_format="realtime").is_completed()
        assert _run(feed_format="realtime").is_completed()  # the same row again: stored once
        clock["now"] += 1.0
        assert _run(feed_format="realtime").is_completed()
    counts = _feed_counts(clean_db)
    expected = feed_raw.iloc[20:40].sort_values("trans_date_trans_time", kind="stable").iloc[2:4]
    stored = pd.read_sql("SELECT trans_num FROM transactions ORDER BY event_time", clean_db)["trans_num"].tolist()
    assert stored == expected["trans_num"].tolist()
    assert counts["predictions"] == 2 and counts["labels"] == 2
