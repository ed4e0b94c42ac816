"""``fraud-detector source`` as a real process on loopback: the CLI, the HTTP API, stopping by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fraud_core.data import parse_realtime_payload, read_raw

pytestmark = [pytest.mark.e2e]

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def source_url() -> Iterator[str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "fraud_cli.main", "source", "--data", str(FIXTURES / "kaggle_train_rows.csv")]
    cmd += ["--port", str(port), "--rate", "1000", "--label-delay", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "source exited"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "source did not start"
            time.sleep(0.2)
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_transactions_labels_and_current_over_http(source_url: str) -> None:
    with httpx.Client(base_url=source_url, timeout=5) as client:
        first = client.get("/transactions", params={"limit": 30}).json()
        rest = client.get("/transactions", params={"after": first["next_cursor"], "limit": 1000}).json()
        ids = [r["trans_num"] for r in first["transactions"] + rest["transactions"]]
        assert len(ids) == len(set(ids)) == 50
        assert rest["has_more"] is False and rest["next_cursor"] == "50"
        time.sleep(1.2)
        labels = client.get("/labels", params={"limit": 1000}).json()
        assert [r["trans_num"] for r in labels["labels"]] == ids
        truth = read_raw(FIXTURES / "kaggle_train_rows.csv").set_index("trans_num")["is_fraud"]
        assert [r["is_fraud"] for r in labels["labels"]] == [int(truth[i]) for i in ids]
        current = client.get("/current-transactions")
        assert current.headers["content-type"].startswith("application/json")
        frame = parse_realtime_payload(current.text)
        assert frame["trans_num"].tolist() == [ids[-1]]
        assert isinstance(json.loads(current.text), str)
        assert client.get("/transactions", params={"after": "nope"}).status_code == 400
        assert client.get("/labels", params={"limit": 0}).status_code == 400
