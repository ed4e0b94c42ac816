"""Load test of ``POST /predict``: throughput at saturation, then latency at half that rate.

What it does (all on loopback, the load generator in its own process):

1. makes a PostgreSQL database of its own and stores the bundled sample's transactions before
   ``--split`` (35 whole card histories), trains a model on them (or uses ``--model``);
2. starts ``fraud-detector serve`` with ``--workers`` processes on that database and model;
3. writes request bodies: the sample's transactions after ``--split`` (their cards' histories are in
   the warehouse), in the raw Kaggle schema;
4. runs Debian's ``wrk`` with ``bench/predict.lua`` for ``--duration`` seconds at saturation
   (requests/s), then again paced at half that rate (a rate-limited Lua script: each connection waits
   connections/rate seconds between requests) and reports p50/p95/p99 latency;
5. stops the server and drops the database.

With ``--dashboard-sessions N``, N dashboard sessions are opened first and stay open and
refreshing during both measurements (``bench/dashboard_sessions.py``, a separate process), and
the report gives the server's memory before and after.

Usage::

    uv run python bench/bench_predict.py [--workers 4] [--duration 30] [--connections 32] [--dashboard-sessions 20]

Needs ``wrk`` (``apt-get install -y wrk``) and PostgreSQL (``TEST_POSTGRES_URL`` admin URL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "fraud_sample.parquet"
LUA = REPO / "bench" / "predict.lua"
TOKEN_KEY = "bench-only-card-token-key-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database (its URL) for the length of the block, dropped afterwards."""
    admin = sa.create_engine(
        _admin_url().replace("postgresql://", "postgresql+psycopg2://", 1), isolation_level="AUTOCOMMIT"
    )
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare(
    database_url: str, split: str, model_dir: Path | None, workdir: Path, *, record: bool = True
) -> tuple[Path, Path, int]:
    """Load the history, train or reuse a model, write the request bodies."""
    from fraud_core.data import to_canonical
    from fraud_core.db import make_engine, repository, session_scope
    from fraud_core.db.migrate import upgrade

    upgrade(database_url)
    raw = pd.read_parquet(SAMPLE)
    before = raw[raw["trans_date_trans_time"] < split]
    after = raw[raw["trans_date_trans_time"] >= split]
    frame = to_canonical(before, token_key=TOKEN_KEY, require_label=True).frame
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        repository.insert_transactions(frame.drop(columns=["is_fraud"]), session=session, source="bench")
    # A steady state: statistics and visibility maps up to date, so autovacuum does not wake up on
    # the fresh tables in the middle of the measurement.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    if model_dir is None:
        from fraud_core.ml.artifact import save_artifact
        from fraud_core.ml.train import train_model

        model_dir = workdir / "model"
        ordered = frame.sort_values(["event_time", "trans_num"]).reset_index(drop=True)
        save_artifact(train_model(ordered, kind="hgb", progress=lambda _: None), model_dir)
    bodies = workdir / "bodies.jsonl"
    record_bodies = record
    with bodies.open("w") as out:
        for record in after.drop(columns=["is_fraud"]).head(5000).to_dict(orient="records"):
            record["trans_date_trans_time"] = str(record["trans_date_trans_time"])
            record["dob"] = str(record["dob"])[:10]
            if not record_bodies:
                record["record"] = False
            out.write(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}) + "\n")
    return model_dir, bodies, len(frame)


def start_server(database_url: str, model_dir: Path, port: int, workers: int, server: str) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        MODEL_PATH=str(model_dir),
        CARD_TOKEN_KEY=TOKEN_KEY,
        API_KEYS="",
        FRAUD_ENVIRONMENT="production",
    )
    command = [sys.executable, "-m", "fraud_cli.main", "serve", "--port", str(port), "--workers", str(workers)]
    if server != "uvicorn":
        command += ["--server", server]
    process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        time.sleep(0.5)
    stop(process)  # never leave it running
    raise RuntimeError("the server did not become ready in 240 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server's processes and by the PostgreSQL backends serving it.

    Wall-clock throughput depends on what else runs on the machine; CPU per request does not, so
    the report gives both.
    """
    import psutil

    server = psutil.Process(server_pid)
    procs = [server, *server.children(recursive=True)]
    app = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            app += times.user + times.system
        except psutil.Error:
            continue
    backends = 0.0
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "postgres: " in cmdline and "fraud_bench_web_" in cmdline:
            try:
                times = proc.cpu_times()
                backends += times.user + times.system
            except psutil.Error:
                continue
    return {"app": app, "postgres": backends}


def rss_mb(server_pid: int) -> float:
    """Resident memory of the server and its worker processes (MB)."""
    import psutil

    server = psutil.Process(server_pid)
    total = 0
    for proc in (server, *server.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return round(total / 2**20, 1)


def open_dashboards(url: str, count: int) -> subprocess.Popen[bytes]:
    """``count`` dashboard sessions held open by ``bench/dashboard_sessions.py`` (returns once they are)."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "dashboard_sessions.py"), url, str(count)],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if "sessions open" not in line:
        raise RuntimeError(f"the dashboard sessions did not open: {line!r}")
    print(line.strip())
    return process


def _spin(_: int = 0) -> float:
    started = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.perf_counter() - started


def cpu_check() -> dict[str, float]:
    """Seconds of a fixed Python loop alone and on every core at once.

    On a virtual machine whose cores are shared with other tenants the second figure grows; the
    saturation figures are only comparable between runs with similar checks.
    """
    from concurrent.futures import ProcessPoolExecutor

    cores = os.cpu_count() or 1
    alone = _spin()
    with ProcessPoolExecutor(cores) as pool:
        together = list(pool.map(_spin, range(cores)))
    return {"one_core_s": round(alone, 3), "all_cores_slowest_s": round(max(together), 3)}


def wrk(
    url: str, bodies: Path, *, duration: int, connections: int, threads: int, rate: float = 0.0
) -> dict[str, float]:
    env = dict(os.environ, BODIES=str(bodies), RATE=str(rate), CONNECTIONS=str(connections))
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(LUA), url]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    summary["requests_per_s"] = summary["requests"] / (summary["duration_us"] / 1e6)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workers",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="server processes (default two per core: each waits on its card-history query)",
    )
    parser.add_argument("--server", default="uvicorn")
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--half-connections", type=int, default=16)
    parser.add_argument("--split", default="2020-10-01")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--no-record", action="store_true", help='send "record": false (a dry run: the decision log off)'
    )
    parser.add_argument("--dashboard-sessions", type=int, default=0, help="dashboard sessions open meanwhile")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    process = None
    dashboards: subprocess.Popen[bytes] | None = None
    try:
        with scratch_database("fraud_bench_web_") as database_url, tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            model_dir, bodies, n_history = prepare(
                database_url, args.split, args.model, Path(tmp), record=not args.no_record
            )
            print(
                f"history: {n_history:,} transactions stored, model at {model_dir} ({time.perf_counter() - started:.0f} s)"
            )
            port = _free_port()
            process = start_server(database_url, model_dir, port, args.workers, args.server)
            url = f"http://127.0.0.1:{port}/predict"
            sample = httpx.post(url, content=bodies.open().readline(), headers={"content-type": "application/json"})
            assert sample.status_code == 200, sample.text
            print("one answer:", sample.text[:300])
            rss_before = rss_mb(process.pid)
            if args.dashboard_sessions:
                dashboards = open_dashboards(f"http://127.0.0.1:{port}/dashboard/", args.dashboard_sessions)
            load_before = os.getloadavg()
            machine = cpu_check()
            wrk(url, bodies, duration=args.warmup, connections=args.connections, threads=args.threads)
            cpu_before = cpu_seconds(process.pid)
            full = wrk(url, bodies, duration=args.duration, connections=args.connections, threads=args.threads)
            cpu_after = cpu_seconds(process.pid)
            cpu_ms = {k: 1000 * (cpu_after[k] - cpu_before[k]) / max(full["requests"], 1) for k in cpu_after}
            half_rate = full["requests_per_s"] / 2
            half = wrk(
                url,
                bodies,
                duration=args.duration,
                connections=args.half_connections,
                threads=args.threads,
                rate=half_rate,
            )
            report = {
                "server": f"fraud-detector serve ({args.server}, {args.workers} workers)",
                "dashboard_sessions": args.dashboard_sessions,
                "decision_log": not args.no_record,
                "server_rss_mb": {"start": rss_before, "end": rss_mb(process.pid)},
                "cpus": os.cpu_count(),
                "load_average_before": [round(v, 2) for v in load_before],
                "cpu_check": machine,
                "saturation": {
                    "connections": args.connections,
                    "requests_per_s": round(full["requests_per_s"], 1),
                    "non_2xx": full["non_2xx"],
                    "p50_ms": full["p50_us"] / 1000,
                    "p99_ms": full["p99_us"] / 1000,
                    "cpu_ms_per_request": {k: round(v, 3) for k, v in cpu_ms.items()},
                    "requests_per_s_if_2_cores_were_ours": round(2000 / max(sum(cpu_ms.values()), 1e-9), 1),
                },
                "half_rate": {
                    "target_rps": round(half_rate, 1),
                    "achieved_rps": round(half["requests_per_s"], 1),
                    "connections": args.half_connections,
                    "non_2xx": half["non_2xx"],
                    "p50_ms": half["p50_us"] / 1000,
                    "p95_ms": half["p95_us"] / 1000,
                    "p99_ms": half["p99_us"] / 1000,
                    "max_ms": half["max_us"] / 1000,
                },
            }
            print(json.dumps(report, indent=2))
    finally:
        if dashboards is not None:
            dashboards.terminate()
            dashboards.wait(timeout=30)
        if process is not None:
            stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
