"""``fraud-detector up`` as a user runs it: everything starts, a transaction gets scored, Ctrl-C stops all.

The command runs on a temporary var folder (embedded SQLite warehouse, MLflow store, Prefect home)
and free loopback ports. The model is a quick artifact given with ``MODEL_PATH`` so the test does not
wait for a full training run (``up`` then leaves the registry alone). The test waits for the first
score in the warehouse, checks that a second ``up`` on the same ports is refused clearly, sends
SIGINT, and checks that every process ``up`` started, flow runs included, is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from fraud_cli.up.supervisor import free_port
from tests.pipeline_support import TOKEN_KEY, train_quick_model

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _processes_of(var_dir: Path) -> list[psutil.Process]:
    """Every live process whose environment names this var folder (``up`` exports it to all children)."""
    marker = str(var_dir)
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get("FRAUD_VAR_DIR") == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _scores(var_dir: Path) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{var_dir / 'fraud.db'}")
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one())
    except sa.exc.OperationalError:  # not created yet, or busy
        return 0
    finally:
        engine.dispose()


@pytest.fixture
def up_env(tmp_path: Path) -> dict[str, str]:
    model = train_quick_model(tmp_path / "model")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "DATABASE_", "MLFLOW_", "API_", "SOURCE_", "MODEL_", "HF_", "SMTP_", "FRAUD_"))
    }
    ports = {name: free_port() for name in ("APP", "PREFECT", "SOURCE", "MLFLOW")}
    env |= {f"FRAUD_UP_{name}_PORT": str(port) for name, port in ports.items()}
    env |= {
        "FRAUD_VAR_DIR": str(tmp_path / "var"),
        "FRAUD_UP_MLFLOW_UI": "false",
        "FRAUD_UP_RATE": "20",
        "MODEL_PATH": str(model),
        "CARD_TOKEN_KEY": TOKEN_KEY,
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    return env


@pytest.fixture
def up_process(up_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    out = (tmp_path / "up.out").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fraud_cli.main", "up"],
        cwd=ROOT,
        env=up_env,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:  # the test failed half-way: stop it as a user would, then for good
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for leftover in _processes_of(Path(up_env["FRAUD_VAR_DIR"])):
            leftover.kill()
        out.close()


def test_up_scores_the_first_transaction_and_ctrl_c_stops_everything(
    up_process: subprocess.Popen[str], up_env: dict[str, str], tmp_path: Path
) -> None:
    var_dir = Path(up_env["FRAUD_VAR_DIR"])
    output = tmp_path / "up.out"
    began = time.monotonic()

    def say() -> str:
        return output.read_text() + "".join(
            f"\n--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted((var_dir / "logs").glob("*.log"))
        )

    while _scores(var_dir) == 0:
        assert up_process.poll() is None, f"up exited {up_process.returncode}:\n{say()}"
        assert time.monotonic() - began < 420, f"no score after 420 s:\n{say()}"
        time.sleep(2)
    first_score_after = time.monotonic() - began

    # the URLs were printed and answer
    text = output.read_text()
    app = f"http://127.0.0.1:{up_env['FRAUD_UP_APP_PORT']}"
    for line in (
        f"Dashboard     {app}/dashboard/",
        f"Prefect UI    http://127.0.0.1:{up_env['FRAUD_UP_PREFECT_PORT']}/",
    ):
        assert line in text
    assert httpx.get(f"{app}/health", timeout=10).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{up_env['FRAUD_UP_PREFECT_PORT']}/api/health", timeout=10).status_code == 200

    # a second `up` on the same ports says so, quickly, and touches nothing
    second = subprocess.run(
        [sys.executable, "-m", "fraud_cli.main", "up", "--var-dir", str(tmp_path / "other-var")],
        cwd=ROOT,
        env=up_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 2
    assert "already in use" in second.stderr and f"web app port {up_env['FRAUD_UP_APP_PORT']}" in second.stderr
    assert up_process.poll() is None

    # every process up started carries its var folder; Ctrl-C stops them all
    children = _processes_of(var_dir)
    names = " ".join(" ".join(p.cmdline()) for p in children)
    for part in ("prefect server start", "prefect worker start", "fraud_cli.main source", "fraud_cli.main serve"):
        assert part in names, f"{part} is not running: {names}"
    os.killpg(up_process.pid, signal.SIGINT)
    assert up_process.wait(timeout=120) == 0, say()
    time.sleep(1)
    assert _processes_of(var_dir) == [], [" ".join(p.cmdline()) for p in _processes_of(var_dir)]
    assert "stopped:" in output.read_text()
    assert not (var_dir / "up.pid").exists()
    print(f"first score {first_score_after:.0f} s after start")
