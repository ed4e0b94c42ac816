"""Faults against real servers: PostgreSQL frozen, locked and killed under ``/predict``; a source that
is stuck, ignores ``limit`` or amends what it re-delivers; a run that died without recording its end.

The warehouse that is frozen or killed is a throwaway cluster the test starts on a port of its own
(:class:`tests.pipeline_support.ThrowawayPostgres`): the shared server is never stopped. Freezing is
SIGSTOP of the postmaster and every backend, as a hung VM would look; the test always sends SIGCONT.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fraud_core.data import to_canonical
from fraud_core.db import make_engine, repository, session_scope, shared_engine
from simulator.faults import Fault
from tests.integration.test_etl_flow import _feed_counts, _run, env, feed_raw, model_dir, sample  # noqa: F401
from tests.pipeline_support import SAMPLE_PATH, TOKEN_KEY, FeedServer, ThrowawayPostgres, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# ------------------------------------------------------------------------------------- helpers


def _server_pids(pg: ThrowawayPostgres) -> list[int]:
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False)
    return [postmaster, *(int(p) for p in children.stdout.split())]


@contextlib.contextmanager
def frozen(pg: ThrowawayPostgres) -> Iterator[None]:
    """The whole cluster stopped (SIGSTOP) for the block, continued afterwards whatever happens."""
    pids = _server_pids(pg)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _store_history(url: str, until: str) -> pd.Series:
    raw = pd.read_parquet(SAMPLE_PATH)
    history = raw[raw["trans_date_trans_time"] < until]
    frame = to_canonical(history, token_key=TOKEN_KEY, require_label=True).frame
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            repository.insert_transactions(frame.drop(columns=["is_fraud"]), session=session, source="import")
    finally:
        engine.dispose()
    later = raw[raw["trans_date_trans_time"] >= until].iloc[0]
    return later


def _body(row: pd.Series) -> dict[str, Any]:
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.to_dict().items()}
    record["trans_date_trans_time"] = str(row["trans_date_trans_time"])
    record["dob"] = str(row["dob"])[:10]
    record.pop("is_fraud", None)
    return record


class ServedApp:
    """``create_app()`` served by uvicorn on loopback in a thread, on a warehouse URL."""

    def __init__(self, url: str, model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import uvicorn

        from fraud_core.ml.champion import ChampionHolder, reset_champion_holder
        from fraud_core.settings import Settings
        from webapp.app import create_app

        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("MODEL_PATH", str(model))
        monkeypatch.setenv("CARD_TOKEN_KEY", TOKEN_KEY)
        monkeypatch.setenv("EDGE_MAX_EVENT_AGE_DAYS", "36500")
        monkeypatch.delenv("API_KEYS", raising=False)
        settings = Settings()
        reset_champion_holder(ChampionHolder(settings))
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(settings, dashboard=False), host="127.0.0.1", port=self.port, log_level="error")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the app did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        from fraud_core.ml.champion import reset_champion_holder

        self.server.should_exit = True
        self.thread.join(timeout=20)
        reset_champion_holder()


def _catch_up(runs: int) -> None:
    """Run the flow until a run finds nothing new (at most ``runs`` runs), each one completing."""
    for _ in range(runs):
        state = _run()
        assert state.is_completed(), state.message
        if state.result()["extracted"] == 0:
            return
    raise AssertionError(f"still extracting after {runs} runs")


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def _until_ok(call: Callable[[], httpx.Response], timeout: float) -> float:
    """Seconds until ``call`` answers 200 (fails past ``timeout``)."""
    started = time.perf_counter()
    while True:
        response = call()
        if response.status_code == 200:
            return time.perf_counter() - started
        assert time.perf_counter() - started < timeout, f"still {response.status_code}: {response.text[:200]}"
        time.sleep(0.05)


def _assert_503_fast(http: httpx.Client, body: dict[str, Any], *, requests: int = 20) -> list[float]:
    seconds = []
    for _ in range(requests):
        response, took = _timed(lambda: http.post("/predict", json=body))
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"].isdigit()
        assert "warehouse" in response.json()["detail"]
        seconds.append(took)
    health, took = _timed(lambda: http.get("/health"))
    assert health.status_code == 503 and health.headers["retry-after"] and health.json()["database"]["ok"] is False
    seconds.append(took)
    live, took = _timed(lambda: http.get("/health/live"))
    assert live.status_code == 200 and took < 0.1
    assert max(seconds) < 1.0, seconds
    return seconds


@pytest.fixture(scope="module")
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    from fraud_core.db.migrate import upgrade

    with ThrowawayPostgres() as pg:
        upgrade(pg.url)
        yield pg


# ------------------------------------------------------------------------------------- the API


def test_predict_and_health_answer_503_within_a_second_while_the_warehouse_is_frozen_then_recover(
    throwaway_pg: ThrowawayPostgres,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    later = _store_history(throwaway_pg.url, "2019-10-01")
    body = _body(later)
    with ServedApp(throwaway_pg.url, model_dir, monkeypatch) as app, httpx.Client(base_url=app.url, timeout=10) as http:
        assert http.post("/predict", json=body).status_code == 200
        with frozen(throwaway_pg):
            seconds = _assert_503_fast(http, body)
        recovered = _until_ok(lambda: http.post("/predict", json=body), timeout=2.0)
        assert http.get("/health").status_code == 200
    assert recovered < 2.0 and seconds[0] < 1.0


def test_predict_answers_503_while_the_warehouse_is_killed_and_serves_again_after_restart(
    throwaway_pg: ThrowawayPostgres,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = pd.read_parquet(SAMPLE_PATH)  # the history is stored by the frozen test, on the same cluster
    body = _body(raw[raw["trans_date_trans_time"] >= "2019-10-01"].iloc[1])
    with ServedApp(throwaway_pg.url, model_dir, monkeypatch) as app, httpx.Client(base_url=app.url, timeout=10) as http:
        assert http.post("/predict", json=body).status_code == 200
        throwaway_pg._run("pg_ctl", "-D", str(throwaway_pg.data), "-m", "immediate", "-w", "stop")
        try:
            _assert_503_fast(http, body)
        finally:
            throwaway_pg.start()
        _until_ok(lambda: http.post("/predict", json=body), timeout=5.0)


def test_predict_answers_503_within_a_second_while_its_tables_are_locked(
    pg_url: str,
    clean_db: Engine,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    later = _store_history(pg_url, "2019-10-01")
    body = _body(later)
    with ServedApp(pg_url, model_dir, monkeypatch) as app, httpx.Client(base_url=app.url, timeout=10) as http:
        assert http.post("/predict", json=body).status_code == 200
        locker = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg2://", 1))
        try:
            with locker.connect() as connection:
                connection.execute(sa.text("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE"))
                _assert_503_fast(http, body, requests=10)
                connection.rollback()  # the lock goes
            recovered = _until_ok(lambda: http.post("/predict", json=body), timeout=2.0)
        finally:
            locker.dispose()
    assert recovered < 2.0


# ------------------------------------------------------------------------------------- the flows

#: Seconds the warehouse stays frozen under a flow run.
FREEZE = 12.0


def test_a_frozen_warehouse_fails_the_run_within_its_deadline_and_the_next_run_loses_nothing(
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
        env(
            API_URL=feed.url,
            DATABASE_URL=pg.url,
            SOURCE_MAX_PER_RUN=200,
            DATABASE_FLOW_STATEMENT_TIMEOUT_MS=2000,
            DATABASE_FLOW_CONNECT_TIMEOUT_SECONDS=2,
            DATABASE_DEADLINE_GRACE_SECONDS=1,
            PREFECT_FLOWS_ETL_LEASE_SECONDS=3,
        )
        engine = make_engine(pg.url)
        try:
            real_route = module.route_decisions
            froze: list[float] = []

            def route_while_frozen(*args: Any, **kwargs: Any) -> Any:
                if not froze:
                    pids = _server_pids(pg)
                    for pid in pids:
                        os.kill(pid, signal.SIGSTOP)
                    threading.Timer(FREEZE, lambda: [os.kill(p, signal.SIGCONT) for p in pids]).start()
                    froze.append(time.monotonic())
                return real_route(*args, **kwargs)

            monkeypatch.setattr(module, "route_decisions", route_while_frozen)
            state = _run()
            took = time.monotonic() - froze[0]
            assert state.is_failed(), state.message
            assert "did not answer" in str(state.message) or "DeadlineExceeded" in str(state.message), state.message
            # bounded by the deadline (3 s per call) and the connect time-out (2 s), not by the freeze
            assert took < FREEZE - 2, took
            time.sleep(max(0.0, FREEZE + 0.5 - (time.monotonic() - froze[0])))
            time.sleep(3.5)  # the failed run could not record its end: its 3 s lease runs out
            monkeypatch.setattr(module, "route_decisions", real_route)
            _catch_up(4)
            counts = _feed_counts(engine)
            runs = pd.read_sql("SELECT status, error FROM pipeline_runs ORDER BY started_at", engine)
        finally:
            engine.dispose()
            from fraud_core.settings import get_settings

            shared_engine(get_settings().database.url).dispose()
            shared_engine.cache_clear()
    assert counts["transactions"] == counts["distinct"] == n_valid
    assert counts["predictions"] == n_valid and counts["unscored"] == 0 and counts["scored_twice"] == 0
    assert "running" not in set(runs["status"])  # every run's final state is recorded
    # the frozen run could not record its end; the next run closed it as failed, saying so
    assert runs["status"].iloc[0] == "failed" and "without recording its end" in runs["error"].iloc[0]


def test_a_stuck_source_fails_the_run_with_the_reason_and_stores_no_junk(
    prefect: None,
    env: Callable[..., None],
    clean_db: Engine,
    feed_raw: pd.DataFrame,
) -> None:
    n_valid = len(feed_raw) - 2
    with FeedServer(feed_raw, label_delay=0.0) as feed:
        env(API_URL=feed.url, SOURCE_MAX_PER_RUN=20_000, SOURCE_PAGE_SIZE=100)
        feed.faults.set(Fault("stuck", paths=("/transactions",)))
        started = time.monotonic()
        state = _run()
        assert state.is_failed() and "source stuck" in str(state.message), state.message
        assert time.monotonic() - started < 30
        # the first page (100 rows, two broken) was progress and is kept; nothing after it, no junk
        assert _feed_counts(clean_db)["transactions"] == 98 and _feed_counts(clean_db)["rejected"] == 2
        feed.faults.clear()
        _catch_up(3)
    counts = _feed_counts(clean_db)
    assert counts["transactions"] == counts["distinct"] == n_valid and counts["rejected"] == 2
    runs = pd.read_sql("SELECT status, error FROM pipeline_runs ORDER BY started_at", clean_db)
    assert runs["status"].iloc[0] == "failed" and "source stuck" in runs["error"].iloc[0]


def test_a_source_that_ignores_limit_is_cut_to_the_cap_and_loses_nothing(
    prefect: None,
    env: Callable[..., None],
    clean_db: Engine,
    feed_raw: pd.DataFrame,
) -> None:
    n_valid = len(feed_raw) - 2
    with FeedServer(feed_raw, label_delay=0.0) as feed:
        env(API_URL=feed.url, SOURCE_PAGE_SIZE=50, SOURCE_MAX_PER_RUN=120)
        feed.faults.set(Fault("ignores_limit", factor=100, paths=("/transactions",)))
        extracted = []
        for _ in range(40):
            state = _run()
            assert state.is_completed(), state.message
            extracted.append(state.result()["extracted"])
            if extracted[-1] == 0:
                break
    assert max(extracted) <= 120 and sum(extracted) == len(feed_raw)
    counts = _feed_counts(clean_db)
    assert counts["transactions"] == counts["distinct"] == n_valid and counts["rejected"] == 2
    assert counts["predictions"] == n_valid and counts["scored_twice"] == 0


def test_amended_redeliveries_are_rejected_with_the_difference_counted_and_alerted(
    prefect: None,
    env: Callable[..., None],
    clean_db: Engine,
    feed_raw: pd.DataFrame,
) -> None:
    from fraud_core.pipeline import weekly_quality
    from fraud_core.settings import get_settings

    n_valid = len(feed_raw) - 2
    with FeedServer(feed_raw, label_delay=0.0) as feed:
        env(API_URL=feed.url)
        assert _run(ingest_label_feed=False).is_completed()
        before = pd.read_sql("SELECT trans_num, amount FROM transactions ORDER BY trans_num", clean_db)
        with session_scope(clean_db) as session:  # the source re-delivers everything, amounts changed
            repository.set_cursor("feed", session=session, transactions="0")
        feed.faults.set(Fault("amends", delta=5.0, paths=("/transactions",)))
        state = _run(ingest_label_feed=False)
        assert state.is_completed(), state.message
        assert state.result()["amended"] == n_valid
    after = pd.read_sql("SELECT trans_num, amount FROM transactions ORDER BY trans_num", clean_db)
    pd.testing.assert_frame_equal(before, after)  # never applied
    rejected = pd.read_sql(
        "SELECT trans_num, field, reason, payload FROM rejected_records WHERE reason LIKE 'amended re-delivery%%'",
        clean_db,
    )
    assert len(rejected) == n_valid and set(rejected["field"]) == {"amount"}
    one = rejected.iloc[0]
    stored = before.set_index("trans_num").loc[one["trans_num"], "amount"]
    assert one["payload"]["amended"]["amount"]["stored"] == pytest.approx(stored)
    assert one["payload"]["amended"]["amount"]["received"] == pytest.approx(round(stored + 5.0, 2))
    alerts = pd.read_sql("SELECT kind, subject FROM alerts WHERE kind = 'quality'", clean_db)
    assert alerts["subject"].str.startswith("amended-redeliveries-").sum() == 1

    settings = get_settings()
    window = weekly_quality.resolve_window(settings, days=3650)
    with session_scope(clean_db) as session:
        checks = weekly_quality.data_quality_checks(
            session, window, repository.transactions_between(window.start, window.end, session=session), settings
        )
    amended = next(c for c in checks if c.name == "amended_redeliveries")
    assert amended.status.value == "fail" and "re-delivered a known trans_num" in amended.detail


def test_a_run_that_died_without_recording_its_end_is_closed_by_the_next_run(
    prefect: None,
    env: Callable[..., None],
    clean_db: Engine,
    feed_raw: pd.DataFrame,
) -> None:
    from datetime import UTC, datetime, timedelta

    from fraud_core.quality.pipeline_health import check_success_rate

    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    with session_scope(clean_db) as session:
        for run_id in ("died-before-commit", "died-after-commit"):
            repository.start_pipeline_run(
                session=session, flow_run_id=run_id, flow_name="etl-and-predict", started_at=long_ago
            )
        session.execute(sa.text("UPDATE pipeline_runs SET heartbeat_at = :t, committed_at = NULL"), {"t": long_ago})
        session.execute(
            sa.text("UPDATE pipeline_runs SET committed_at = :t WHERE flow_run_id = 'died-after-commit'"),
            {"t": long_ago},
        )
    with FeedServer(feed_raw.head(30), label_delay=0.0) as feed:
        env(API_URL=feed.url)
        assert _run().is_completed()
    runs = pd.read_sql("SELECT flow_run_id, status, error, finished_at FROM pipeline_runs", clean_db)
    by_id = runs.set_index("flow_run_id")
    assert by_id.loc["died-before-commit", "status"] == "failed"
    assert "no heartbeat since" in by_id.loc["died-before-commit", "error"]
    assert by_id.loc["died-after-commit", "status"] == "completed"
    assert runs["finished_at"].notna().all() and "running" not in set(runs["status"])
    rate = check_success_rate(runs, warn=0.95, fail=0.8)
    assert rate.value == pytest.approx(2 / 3)  # the dead run counts against the success rate
