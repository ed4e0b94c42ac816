"""Weekly quality on real parts: PostgreSQL, a trained champion, the Prefect harness, aiosmtpd.

A week of the sample (2019-10-06 → 10-13) is stored as the live pipeline would have left it: the
transactions (with the history before them), their true labels, the champion's scores and the ETL
runs. The checks pass on it as is; each kind of corruption, applied inside a transaction that is
rolled back, fails its own check; and a committed corruption makes the flow run fail, store the
report and deliver the alert by e-mail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.data import to_canonical
from fraud_core.db import make_engine, repository, session_scope
from fraud_core.ml.champion import ChampionHolder, reset_champion_holder
from fraud_core.pipeline import batch_scoring
from fraud_core.pipeline import weekly_quality as weekly
from fraud_core.quality.results import QualityReport, Status
from fraud_core.settings import Settings, get_settings, reset_settings
from tests import warehouse_reads
from tests.pipeline_support import SAMPLE_PATH, TOKEN_KEY, SmtpSink, env_setter, train_quick_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HISTORY_START = "2019-01-01"
START, END = datetime(2019, 10, 6), datetime(2019, 10, 13)
#: The sample holds 35 cards: a few hours without a transaction is normal for it, a day is not.
MAX_GAP_MINUTES = 360
ETL_EVERY = timedelta(minutes=20)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # validation weeks: 2019-09-15 → 10-13, so the checked week is drawn from the reference's population
    return train_quick_model(tmp_path_factory.mktemp("quality-model") / "model", until=END.isoformat())


@pytest.fixture(scope="module")
def env(model_dir: Path, pg_database_factory: Callable[..., str]) -> Iterator[Callable[..., None]]:
    monkeypatch = pytest.MonkeyPatch()

    configure = env_setter(monkeypatch)

    configure(
        DATABASE_URL=pg_database_factory(migrate=True),
        MODEL_PATH=model_dir,
        CARD_TOKEN_KEY=TOKEN_KEY,
        FEATURES_LABEL_DELAY_DAYS=7,
        QUALITY_MAX_GAP_MINUTES=MAX_GAP_MINUTES,
        QUALITY_WINDOW_ANCHOR="now",
        SMTP_HOST=None,
        SMTP_RECIPIENTS=None,
        ALERT_WEBHOOK_URL=None,
    )
    yield configure
    monkeypatch.undo()
    reset_settings()
    reset_champion_holder()


@pytest.fixture(scope="module")
def engine(env: Callable[..., None]) -> Iterator[Engine]:
    """The warehouse as the live pipeline leaves it after the window (module-wide, read by every test)."""
    settings = get_settings()
    engine = make_engine(settings.database.url)
    raw = pd.read_parquet(SAMPLE_PATH)
    raw = raw[(raw["trans_date_trans_time"] >= HISTORY_START) & (raw["trans_date_trans_time"] < END)]
    frame = to_canonical(raw, token_key=TOKEN_KEY, require_label=True).frame
    model = ChampionHolder(settings).get()
    with session_scope(engine) as session:
        repository.insert_transactions(frame, session=session, source="feed")
        repository.upsert_labels(frame[["trans_num", "is_fraud"]], session=session, origin="feed")
        # arrivals on the event clock: each transaction came in 2 s after it happened
        session.execute(sa.text("UPDATE transactions SET ingested_at = event_time + interval '2 seconds'"))
        week = frame[frame["event_time"] >= START - timedelta(days=7)].reset_index(drop=True)
        features = batch_scoring.features_from_warehouse(week, session=session, label_delay_days=7)
        scored = batch_scoring.predict(features, week, model=model, received_at=START.replace(tzinfo=UTC), reasons=0)
        scored["scored_at"] = (week["event_time"] + pd.Timedelta(seconds=3)).dt.tz_localize("UTC")
        scored["latency_ms"] = 1500.0
        repository.insert_predictions(scored, session=session)
        at = START - timedelta(days=7)
        i = 0
        while at < END:
            repository.start_pipeline_run(
                session=session, flow_run_id=f"etl-{i}", flow_name="etl-and-predict", started_at=at
            )
            repository.finish_pipeline_run(
                f"etl-{i}", session=session, status="completed", finished_at=at + timedelta(seconds=30)
            )
            at, i = at + ETL_EVERY, i + 1
    yield engine
    engine.dispose()


def _report(session: Session, settings: Settings | None = None) -> QualityReport:
    settings = settings or get_settings()
    model = ChampionHolder(settings).get()
    window = weekly.resolve_window(settings, start=START, end=END)

    def features(s: Session, frame: pd.DataFrame) -> pd.DataFrame:
        return batch_scoring.features_from_warehouse(frame, session=s, label_delay_days=7)

    return weekly.build_report(
        session,
        window,
        settings,
        weekly.baseline_from_card(model.version, model.card),
        build_features=features,
        compute_metrics=weekly.metrics_of_scores,
    )


def _by_name(report: QualityReport) -> dict[str, Any]:
    return {c.name: c for c in report.checks}


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose changes are always rolled back: each test corrupts the data its own way."""
    with Session(engine) as session:
        yield session
        session.rollback()


def test_clean_week_passes_every_check(session: Session) -> None:
    report = _report(session)
    checks = _by_name(report)
    assert report.status is not Status.FAIL, report.to_markdown()
    expected = {
        "schema", "nulls", "value_ranges", "duplicates", "rejected_rate", "volume", "freshness",
        "labelled", "pr_auc", "precision", "recall", "f1", "card_precision_at_100", "psi:score",
        "run_success_rate", "run_gap", "latency_p50", "latency_p95",
    }  # fmt: skip
    assert expected <= set(checks)
    assert {f"psi:{f}" for f in ("amount", "category", "card_count_24h", "card_count_30d")} <= set(checks)
    assert "psi:category_fraud_rate" not in checks  # QUALITY_DRIFT_EXCLUDE
    assert checks["labelled"].value == 395 and report.figures["labelled"]["fraud"] == 14
    assert checks["volume"].value == pytest.approx(abs(395 - 376) / 376)
    assert checks["freshness"].value < MAX_GAP_MINUTES
    assert checks["run_gap"].value == pytest.approx(ETL_EVERY.total_seconds() / 60)
    assert checks["latency_p95"].value == pytest.approx(1.5)
    assert checks["psi:amount"].value < 0.25
    assert checks["pr_auc"].value > 0.5


def test_a_gap_in_arrivals_fails_freshness(session: Session) -> None:
    session.execute(
        sa.text("DELETE FROM transactions WHERE event_time >= :a AND event_time < :b"),
        {"a": START + timedelta(days=3), "b": START + timedelta(days=4)},
    )
    checks = _by_name(_report(session))
    assert checks["freshness"].status is Status.FAIL
    assert checks["freshness"].value > 24 * 60
    assert checks["nulls"].status is Status.PASS


def test_shifted_amounts_fail_drift(session: Session) -> None:
    session.execute(
        sa.text("UPDATE transactions SET amount = amount * 4 + 20 WHERE event_time >= :a AND event_time < :b"),
        {"a": START, "b": END},
    )
    checks = _by_name(_report(session))
    assert checks["psi:amount"].status is Status.FAIL and checks["psi:amount"].value > 0.25
    assert checks["psi:category"].status is not Status.FAIL
    assert checks["freshness"].status is Status.PASS


def test_flipped_labels_fail_performance(session: Session) -> None:
    # the window's frauds labelled legitimate, and as many legitimate ones labelled fraud
    session.execute(
        sa.text(
            "WITH w AS (SELECT l.trans_num, l.is_fraud, row_number() OVER (PARTITION BY l.is_fraud "
            "ORDER BY l.trans_num) AS k FROM labels l JOIN transactions t USING (trans_num) "
            "WHERE t.event_time >= :a AND t.event_time < :b), "
            "n AS (SELECT count(*) AS frauds FROM w WHERE is_fraud) "
            "UPDATE labels SET is_fraud = NOT labels.is_fraud FROM w, n "
            "WHERE labels.trans_num = w.trans_num AND (w.is_fraud OR w.k <= n.frauds)"
        ),
        {"a": START, "b": END},
    )
    report = _report(session)
    checks = _by_name(report)
    assert report.figures["labelled"]["fraud"] == 14  # same fraud rate, other transactions
    assert checks["pr_auc"].status is Status.FAIL and checks["pr_auc"].value < 0.2
    assert checks["recall"].status is Status.FAIL
    assert checks["psi:amount"].status is not Status.FAIL


def test_duplicates_and_rejections_fail_their_checks(session: Session) -> None:
    repository.insert_rejected(
        [
            {"row": i, "trans_num": f"dup-{i}", "field": "trans_num", "reason": "duplicate trans_num within the batch"}
            for i in range(30)
        ],
        session=session,
        source="feed",
        received_at=START + timedelta(days=2),
    )
    checks = _by_name(_report(session))
    assert checks["duplicates"].status is Status.FAIL and checks["duplicates"].value == pytest.approx(30 / (395 + 30))
    assert checks["rejected_rate"].status is Status.FAIL


def _fail_two_days_of_etl_runs(connection: Session | sa.Connection) -> None:
    connection.execute(
        sa.text("UPDATE pipeline_runs SET status = 'failed' WHERE started_at >= :a AND started_at < :b"),
        {"a": START + timedelta(days=1), "b": START + timedelta(days=3)},
    )


def test_failed_etl_runs_fail_pipeline_health(session: Session) -> None:
    _fail_two_days_of_etl_runs(session)
    checks = _by_name(_report(session))
    assert checks["run_success_rate"].status is Status.FAIL
    assert checks["run_success_rate"].value == pytest.approx(5 / 7, abs=0.01)
    assert checks["run_gap"].status is Status.FAIL and checks["run_gap"].value >= 2 * 24 * 60


def _flow(**parameters: Any) -> Any:
    from flows.weekly_quality import weekly_quality

    return weekly_quality(return_state=True, **parameters)


def test_flow_stores_and_publishes_the_report_then_fails_and_alerts_on_a_failing_check(
    prefect: None, engine: Engine, env: Callable[..., None]
) -> None:
    from prefect.artifacts import Artifact

    clean = _flow(window_start=START, window_end=END)
    assert clean.is_completed(), clean.message
    result = clean.result()
    with session_scope(engine) as s:
        stored = repository.latest_quality_report(session=s)
        assert stored is not None and stored.id == result["report_id"] and stored.status in ("pass", "warn")
        assert stored.checks[0]["name"] == "schema" and "threshold" in stored.checks[0]
    artifact = Artifact.get("weekly-quality-report")
    assert artifact is not None and "# Weekly quality report" in str(artifact.data)

    with SmtpSink() as smtp:
        env(**smtp.env("quality-team@example.com"))
        with engine.begin() as connection:  # the ETL failed for two days
            _fail_two_days_of_etl_runs(connection)
        failed = _flow(window_start=START, window_end=END)
        assert failed.is_failed()
        assert "run_success_rate" in str(failed.message)
        with session_scope(engine) as s:
            stored = repository.latest_quality_report(session=s)
            assert stored is not None and stored.status == "fail"
            alert = warehouse_reads.get_alert("quality", f"quality-report-{stored.id}", session=s)
            assert alert is not None and alert.status == "sent" and alert.channels == {"email": "sent"}
        assert len(smtp.messages) == 1
        message = smtp.messages[0]
        assert "quality" in message["Subject"] and smtp.envelopes[0][1] == ["quality-team@example.com"]
        body = message.get_payload(decode=True).decode()
        assert "run_success_rate" in body and "limit 0.8" in body
