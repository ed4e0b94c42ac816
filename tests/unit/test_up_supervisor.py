"""The pieces of ``fraud-detector up``: the supervisor, the port check, the lock, the demo files."""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from fraud_cli.errors import UserError
from fraud_cli.up.supervisor import Interrupted, SignalGuard, Supervisor, SupervisorError, free_port, port_in_use

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "fraud_sample.parquet"


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


@pytest.fixture
def sup(tmp_path: Path):
    supervisor = Supervisor(tmp_path / "logs", echo=lambda _line: None, grace_seconds=5)
    yield supervisor
    supervisor.stop_all()


# ---------------------------------------------------------------------------------------------
# ports


def test_port_in_use_sees_a_listener_and_a_free_port() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        taken = server.getsockname()[1]
        assert port_in_use("127.0.0.1", taken)
    assert not port_in_use("127.0.0.1", free_port())


def test_check_ports_names_each_taken_port_and_how_to_move_it() -> None:
    from fraud_cli.up.options import UpOptions
    from fraud_cli.up.steps import check_ports

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        taken = server.getsockname()[1]
        options = UpOptions(app_port=taken, prefect_port=free_port(), source_port=free_port(), mlflow_ui=False)
        with pytest.raises(UserError) as error:
            check_ports(options)
    message = str(error.value)
    assert f"web app port {taken}" in message
    assert "--app-port or FRAUD_UP_APP_PORT" in message
    assert "Prefect" not in message  # the free ones are not listed


def test_check_ports_passes_when_all_are_free() -> None:
    from fraud_cli.up.options import UpOptions
    from fraud_cli.up.steps import check_ports

    check_ports(
        UpOptions(app_port=free_port(), prefect_port=free_port(), source_port=free_port(), mlflow_port=free_port())
    )


def test_a_remote_prefect_api_needs_no_local_port() -> None:
    from fraud_cli.up.options import UpOptions

    remote = UpOptions(prefect_api_url="https://api.prefect.cloud/api/accounts/a/workspaces/w")
    assert not remote.local_prefect
    assert remote.api_url.endswith("/workspaces/w")
    assert UpOptions(prefect_port=4321).api_url == "http://127.0.0.1:4321/api"


# ---------------------------------------------------------------------------------------------
# the supervisor


def test_children_log_to_their_own_files(sup: Supervisor) -> None:
    sup.run("hello", _python("print('hello from the child')"), timeout=30)
    assert "hello from the child" in (sup.log_dir / "hello.log").read_text()
    assert sup.children == []  # a finished step is forgotten


def test_a_failing_step_says_which_and_quotes_its_log(sup: Supervisor) -> None:
    with pytest.raises(SupervisorError) as error:
        sup.run("broken", _python("import sys; print('the reason it broke'); sys.exit(3)"), timeout=30)
    message = str(error.value)
    assert "broken exited 3" in message and "the reason it broke" in message
    assert str(sup.log_dir / "broken.log") in message


def test_a_dying_server_is_noticed_while_waiting(sup: Supervisor) -> None:
    sup.start("server", _python("import sys, time; time.sleep(0.3); print('out of memory'); sys.exit(1)"))
    with pytest.raises(SupervisorError, match="server exited 1") as error:
        sup.wait_until("the server", lambda: False, timeout=30)
    assert "out of memory" in str(error.value)


def test_wait_until_times_out_with_a_clear_message(sup: Supervisor) -> None:
    child = sup.start("slow", _python("import time; time.sleep(30)"))
    with pytest.raises(SupervisorError, match=r"the slow server was not ready within 0\.5 s"):
        sup.wait_until("the slow server", lambda: False, timeout=0.5, child=child)


def test_stop_all_ends_children_and_the_grandchildren_that_left_their_group(sup: Supervisor, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # The grandchild starts a session of its own, as Prefect's flow runs do: killpg cannot reach it.
    sup.start(
        "parent",
        _python(f"""
            import subprocess, sys, time
            p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
            open({str(pid_file)!r}, "w").write(str(p.pid))
            time.sleep(600)
        """),
    )
    sup.start("sleeper", _python("import time; time.sleep(600)"))
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    pids = [c.pid for c in sup.children] + [grandchild]
    stopped = sup.stop_all()
    assert [name for name, _ in stopped] == ["sleeper", "parent"]  # last started, first stopped
    assert sup.children == []
    time.sleep(0.2)
    alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs", echo=lambda _line: None, grace_seconds=0.5)
    child = supervisor.start(
        "stubborn",
        _python("""
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print('ready', flush=True)
            time.sleep(600)
        """),
    )
    deadline = time.monotonic() + 30
    while "\nready" not in (tmp_path / "logs" / "stubborn.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [(name, code)] = supervisor.stop_all()
    assert name == "stubborn" and code == -signal.SIGKILL
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE


def test_signal_guard_turns_sigint_into_interrupted_then_goes_quiet() -> None:
    with SignalGuard() as guard:
        with pytest.raises(Interrupted) as received:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler interrupts this
        assert received.value.signum == signal.SIGINT
        guard.quiet()
        os.kill(os.getpid(), signal.SIGTERM)  # ignored while stopping
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------------------------------------
# the lock, the environment, the deployments


def test_pid_lock_refuses_a_second_up_on_the_same_var_dir(tmp_path: Path) -> None:
    from fraud_cli.up.steps import pid_lock

    other = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "up.pid").write_text(f"{other.pid}\n")
        with pytest.raises(UserError, match=f"already runs on {tmp_path} \\(pid {other.pid}\\)"), pid_lock(tmp_path):
            pass
    finally:
        other.kill()
        other.wait()
    # a stale file (its process is gone) is taken over, and removed at the end
    with pid_lock(tmp_path) as path:
        assert path.read_text().strip() == str(os.getpid())
    assert not (tmp_path / "up.pid").exists()


def test_children_share_one_warehouse_registry_and_prefect_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fraud_cli.up.options import UpOptions
    from fraud_cli.up.steps import child_environment
    from fraud_core.settings import Settings

    for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRAUD_VAR_DIR", str(tmp_path / "var"))
    env = child_environment(UpOptions(prefect_port=4321, source_port=8765, app_port=8123), Settings())
    assert env["DATABASE_URL"] == f"sqlite:///{tmp_path / 'var' / 'fraud.db'}"
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'var' / 'mlflow.db'}"
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"
    assert env["PREFECT_HOME"] == str(tmp_path / "var" / "prefect")
    assert env["API_URL"] == "http://127.0.0.1:8765"
    assert env["ALERT_DASHBOARD_URL"] == "http://127.0.0.1:8123/dashboard"
    remote = child_environment(UpOptions(prefect_api_url="http://prefect.example:4200/api"), Settings())
    assert remote["PREFECT_API_URL"] == "http://prefect.example:4200/api" and "PREFECT_HOME" not in remote


def test_deploy_arguments_leave_out_deployments_whose_flow_file_is_missing(tmp_path: Path) -> None:
    from fraud_cli.up.steps import deploy_arguments

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "here.py").write_text("")
    spec = tmp_path / "prefect.yaml"
    spec.write_text(
        "deployments:\n"
        "  - name: here\n    entrypoint: flows/here.py:here\n"
        "  - name: later\n    entrypoint: flows/later.py:later\n"
    )
    assert deploy_arguments(spec) == (["--name", "here"], ["later"])
    (tmp_path / "flows" / "later.py").write_text("")
    assert deploy_arguments(spec) == (["--all"], [])


def test_the_repository_prefect_yaml_deploys_every_flow() -> None:
    import yaml

    from fraud_cli.up.options import REPO_ROOT
    from fraud_cli.up.steps import deploy_arguments

    arguments, missing = deploy_arguments(REPO_ROOT / "prefect.yaml")
    assert missing == [] and arguments == ["--all"]
    names = [d["name"] for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]]
    assert len(names) == len(set(names)) and "backfill" in names


# ---------------------------------------------------------------------------------------------
# the demo files


def test_split_sample_cuts_in_time_and_moves_both_parts_by_the_same_whole_weeks(tmp_path: Path) -> None:
    from fraud_core.data.demo import DEFAULT_SPLIT_AT, split_sample

    now = pd.Timestamp("2026-03-04 10:00", tz="UTC")
    files = split_sample(SAMPLE, tmp_path, now=now)
    raw = pd.read_parquet(SAMPLE)
    history, stream = pd.read_parquet(files.history), pd.read_parquet(files.stream)
    before = raw[raw["trans_date_trans_time"] < DEFAULT_SPLIT_AT]
    assert (
        (files.history_rows, files.stream_rows) == (len(before), len(raw) - len(before)) == (len(history), len(stream))
    )
    assert set(history["trans_num"]).isdisjoint(stream["trans_num"])
    shift = pd.Timedelta(weeks=files.shift_weeks)
    # the stream's first transaction lands in the week before now; hour and weekday stay true
    first = stream["trans_date_trans_time"].min()
    assert now.tz_localize(None) - pd.Timedelta(weeks=1) <= first < now.tz_localize(None)
    merged = raw.set_index("trans_num").loc[stream["trans_num"]]
    assert (stream["trans_date_trans_time"].to_numpy() == (merged["trans_date_trans_time"] + shift).to_numpy()).all()
    assert (stream["unix_time"].to_numpy() == (merged["unix_time"] + int(shift.total_seconds())).to_numpy()).all()
    assert history["trans_date_trans_time"].max() < first


def test_split_sample_leaves_out_what_the_warehouse_already_holds(tmp_path: Path) -> None:
    from fraud_core.data.demo import split_sample

    now = pd.Timestamp("2026-03-04 10:00", tz="UTC")
    full = split_sample(SAMPLE, tmp_path / "a", now=now)
    stored = pd.read_parquet(full.stream)["trans_num"].head(100).tolist()
    resumed = split_sample(SAMPLE, tmp_path / "b", now=now, already_stored=stored)
    assert (resumed.stream_skipped, resumed.stream_rows) == (100, full.stream_rows - 100)
    assert set(pd.read_parquet(resumed.stream)["trans_num"]).isdisjoint(stored)


class _Answers:
    """A local HTTP server answering every request with the given status codes in turn (then the last one).

    A 2xx answer is the list of workers a pool holds (one ONLINE, one OFFLINE); a 503 says to try
    again at once (``Retry-After: 0``), so that Prefect's back-off does not slow the test.
    """

    def __init__(self, *codes: int) -> None:
        import json
        import threading
        import uuid
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.codes, self.seen = list(codes), 0
        answers = self
        pool = str(uuid.uuid4())
        workers = [
            {"id": str(uuid.uuid4()), "name": name, "work_pool_id": pool, "status": status}
            for name, status in (("up-worker", "ONLINE"), ("gone", "OFFLINE"))
        ]

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if "csrf-token" in self.path:  # Prefect's client asks once; CSRF protection is off
                    code, body = 422, json.dumps({"detail": "CSRF protection is disabled."}).encode()
                else:
                    code = answers.codes[min(answers.seen, len(answers.codes) - 1)]
                    answers.seen += 1
                    body = json.dumps(workers if code < 300 else {"detail": "busy"}).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                if code == 503:
                    self.send_header("retry-after", "0")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815  (http.server's hook names)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_busy_prefect_server_is_asked_again_and_other_errors_raise_at_once() -> None:
    import httpx

    from fraud_cli.up import prefect_api

    busy_then_ok = _Answers(503, 503, 200)
    refused = _Answers(404)
    always_busy = _Answers(503)
    try:
        assert prefect_api.online_workers(busy_then_ok.url, "fraud-process") == ["up-worker"]
        assert busy_then_ok.seen == 3
        with pytest.raises(httpx.HTTPStatusError):
            prefect_api.online_workers(refused.url, "fraud-process")
        assert refused.seen == 1
        with pytest.raises(httpx.HTTPStatusError):
            prefect_api.online_workers(always_busy.url, "fraud-process")
        assert always_busy.seen == prefect_api.MAX_RETRIES + 1  # bounded
    finally:
        for server in (busy_then_ok, refused, always_busy):
            server.close()


def test_a_prefect_server_that_refuses_connections_is_tried_again_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    from fraud_cli.up import prefect_api

    monkeypatch.setattr(prefect_api, "CONNECT_RETRY_SECONDS", 0.01)
    attempts = []

    def refuse(_client: object) -> None:
        attempts.append(1)
        raise httpx.ConnectError("connection refused")

    with pytest.raises(httpx.ConnectError):
        prefect_api.call(f"http://127.0.0.1:{free_port()}/api", refuse)
    assert len(attempts) == prefect_api.CONNECT_ATTEMPTS

    later = iter([httpx.ConnectError("starting"), None])

    def refuse_once(_client: object) -> str:
        failure = next(later)
        if failure is not None:
            raise failure
        return "answered"

    assert prefect_api.call(f"http://127.0.0.1:{free_port()}/api", refuse_once) == "answered"
