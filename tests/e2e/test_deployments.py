"""The deployments, proven with real processes: a Prefect server, a process worker, the source.

Everything is started by this test on free loopback ports and stopped by PID: ``prefect server
start`` with a temporary ``PREFECT_HOME``, the ``fraud-process`` work pool, ``prefect deploy
--all`` from the repository root, ``prefect worker start``, ``fraud-detector source`` and a
PostgreSQL database of its own. Then scheduled runs of ``etl-and-predict`` must come every 20 s and
score what the source releases, and ``prefect deployment run`` must trigger one by hand.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.pipeline_support import SAMPLE_PATH, TOKEN_KEY, free_port, train_quick_model, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POOL = "fraud-process"


class Processes:
    """Children started by the test, each in its own process group, stopped by PID at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, proc, log))
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for _name, proc, log in reversed(self.children):
            if proc.poll() is None:
                # the whole group: the worker's flow-run processes go with it
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            log.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def _cli(args: list[str], env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _api(env: dict[str, str]) -> Callable[..., Any]:
    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, env["PREFECT_API_URL"] + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    return call


def test_scheduled_and_manual_runs_score_the_live_feed(
    processes: Processes, tmp_path: Path, pg_database_factory: Callable[..., str]
) -> None:
    database_url = pg_database_factory(migrate=True)
    model_dir = tmp_path / "model"  # trained below, while the servers start
    prefect_port, source_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SMTP_", "MODEL_", "API_", "SOURCE_"))}
    env |= {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PWD": str(ROOT),  # prefect.yaml's pull step: runs start in the repository root
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "DATABASE_URL": database_url,
        "API_URL": f"http://127.0.0.1:{source_port}",
        "MODEL_PATH": str(model_dir),
        "CARD_TOKEN_KEY": TOKEN_KEY,
        "SOURCE_TIMEOUT_SECONDS": "5",
        "SOURCE_RETRIES": "2",
        "SOURCE_RETRY_BACKOFF_SECONDS": "0.2",
    }
    api = _api(env)

    processes.start(
        "server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)], env
    )
    feed_file = tmp_path / "feed.parquet"
    raw = pd.read_parquet(SAMPLE_PATH)
    raw[(raw["trans_date_trans_time"] >= "2019-10-06") & (raw["trans_date_trans_time"] < "2019-10-20")].to_parquet(
        feed_file
    )
    processes.start(
        "source",
        [str(BIN / "fraud-detector"), "source", "--data", str(feed_file), "--port", str(source_port)]
        + ["--rate", "5", "--label-delay", "2"],
        env,
    )

    train_quick_model(model_dir)

    def up(url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    assert wait_until(lambda: up(f"{env['PREFECT_API_URL']}/health"), timeout=90), processes.log("server")
    assert wait_until(lambda: up(f"{env['API_URL']}/health"), timeout=60), processes.log("source")

    _cli([str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"], env)
    deployed = _cli([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env)
    assert "etl-and-predict/etl-and-predict" in deployed, deployed
    (deployment,) = api("POST", "/deployments/filter", json={"deployments": {"name": {"any_": ["etl-and-predict"]}}})
    assert deployment["concurrency_limit"] == 1 or deployment["global_concurrency_limit"]["limit"] == 1
    assert deployment["schedules"][0]["schedule"]["interval"] == 20.0

    processes.start("worker", [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"], env)

    def runs(state: str | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {
            "deployments": {"id": {"any_": [deployment["id"]]}},
            "sort": "EXPECTED_START_TIME_ASC",
        }
        if state:
            body["flow_runs"] = {"state": {"type": {"any_": [state]}}}
        return api("POST", "/flow_runs/filter", json=body)

    # Scheduled runs come every 20 s and score what the source released; none overlap: a run that
    # comes due while another is going is cancelled by the concurrency limit, never queued. (Each
    # run is a new process; on a loaded machine its start-up alone can exceed 20 s, so only some
    # of the scheduled runs get to start, which is the point of the limit.)
    assert wait_until(lambda: len(runs("COMPLETED")) >= 2, timeout=150, interval=2), processes.log("worker")[
        -3000:
    ] + str([(r["name"], r["state_type"]) for r in runs()])
    everything = runs()
    scheduled = [datetime.fromisoformat(r["expected_start_time"]) for r in everything if r["auto_scheduled"]]
    gaps = {(b - a).total_seconds() for a, b in zip(scheduled, scheduled[1:], strict=False)}
    assert gaps == {20.0}, gaps
    assert not runs("FAILED") and not runs("CRASHED")
    # runs that ran: a run cancelled by the limit gets a start and an end at the same instant and never ran
    finished = [r for r in everything if r["state_type"] == "COMPLETED"]
    assert len(finished) >= 2
    spans = sorted(
        (datetime.fromisoformat(r["start_time"]), datetime.fromisoformat(r["end_time"]), r["name"], r["state_type"])
        for r in finished
    )
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), "\n".join(map(str, spans))
    for cancelled in runs("CANCELLED"):
        assert "concurrency limit reached" in (cancelled["state"]["message"] or ""), cancelled["state"]

    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT count(*) FROM transactions")).scalar_one()
            unscored = connection.execute(
                sa.text(
                    "SELECT count(*) FROM transactions t WHERE NOT EXISTS "
                    "(SELECT 1 FROM predictions p WHERE p.trans_num = t.trans_num)"
                )
            ).scalar_one()
        assert stored > 0 and unscored == 0

        # one by hand, with the schedule paused so that no scheduled run collides with it
        schedule_id = deployment["schedules"][0]["id"]
        _cli(
            [str(BIN / "prefect"), "deployment", "schedule", "pause", "etl-and-predict/etl-and-predict", schedule_id],
            env,
        )

        def busy() -> list[tuple[str, str, str]]:
            # running or about to run; scheduled runs far ahead do not matter once paused
            soon = datetime.now(UTC) + timedelta(seconds=30)
            return [
                (r["name"], r["state_type"], r["expected_start_time"])
                for r in runs()
                if r["state_type"] in ("PENDING", "RUNNING")
                or (r["state_type"] == "SCHEDULED" and datetime.fromisoformat(r["expected_start_time"]) < soon)
            ]

        assert wait_until(lambda: not busy(), timeout=120, interval=1), busy()
        out = _cli([str(BIN / "prefect"), "deployment", "run", "etl-and-predict/etl-and-predict"], env)
        match = re.search(r"UUID: ([0-9a-f-]{36})", out)
        assert match, out
        run_id = match.group(1)
        assert wait_until(
            lambda: api("GET", f"/flow_runs/{run_id}")["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"),
            timeout=90,
            interval=1,
        )
        manual = api("GET", f"/flow_runs/{run_id}")
        assert manual["state_type"] == "COMPLETED", manual["state"]
        assert manual["auto_scheduled"] is False
        with engine.connect() as connection:
            recorded = connection.execute(
                sa.text("SELECT status, counts FROM pipeline_runs WHERE flow_run_id = :id"), {"id": run_id}
            ).one()
            later = connection.execute(sa.text("SELECT count(*) FROM transactions")).scalar_one()
            doubles = connection.execute(
                sa.text("SELECT count(*) FROM (SELECT trans_num FROM predictions GROUP BY 1 HAVING count(*) > 1) x")
            ).scalar_one()
        assert recorded.status == "completed" and later >= stored and doubles == 0
        artifacts = api("POST", "/artifacts/filter", json={"artifacts": {"key": {"any_": ["etl-and-predict-summary"]}}})
        assert any(a["flow_run_id"] == run_id and "scored" in a["data"] for a in artifacts)
    finally:
        engine.dispose()
