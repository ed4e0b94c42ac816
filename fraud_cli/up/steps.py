"""The steps of ``fraud-detector up`` (``bootstrap`` and ``worker`` share some).

The ports and the pid lock, the children's environment and commands, the warehouse and the first
champion (through :mod:`fraud_core.pipeline.demo`), the Prefect server, the work pool, the
deployments and the worker (through :mod:`fraud_cli.up.prefect_api`).

Two groups of imports wait for the step that needs them, because ``up`` starts its servers first
and they boot while these load: :mod:`fraud_core.pipeline.demo` (pandas, SQLAlchemy, MLflow) and
:mod:`fraud_cli.up.prefect_api` (Prefect, which :class:`PrefectPreload` loads in a thread).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import yaml

from fraud_cli.errors import UserError
from fraud_cli.up.options import LIVE_DEPLOYMENT, REPO_ROOT, WORK_POOL, Report, UpOptions
from fraud_cli.up.supervisor import Supervisor, http_ok, port_in_use
from fraud_core.settings import Settings

# ---------------------------------------------------------------------------------------------
# ports and the lock


def check_ports(options: UpOptions) -> None:
    """Fail with one clear message listing every port that something already listens on."""
    wanted = [("web app", options.app_port, "--app-port", "FRAUD_UP_APP_PORT")]
    wanted.append(("source", options.source_port, "--source-port", "FRAUD_UP_SOURCE_PORT"))
    if options.local_prefect:
        wanted.append(("Prefect server", options.prefect_port, "--prefect-port", "FRAUD_UP_PREFECT_PORT"))
    if options.mlflow_ui:
        wanted.append(("MLflow UI", options.mlflow_port, "--mlflow-port", "FRAUD_UP_MLFLOW_PORT"))
    taken = [w for w in wanted if port_in_use(options.host, w[1])]
    if taken:
        lines = [f"{what} port {port} ({option} or {env})" for what, port, option, env in taken]
        raise UserError(
            f"port{'s' if len(taken) > 1 else ''} already in use on {options.host}: {'; '.join(lines)}. "
            "Another `fraud-detector up` (or another program) is listening there: stop it, or choose free ports."
        )


@contextlib.contextmanager
def pid_lock(var_dir: Path) -> Iterator[Path]:
    """``var/up.pid`` while ``up`` runs: a second ``up`` on the same folder is refused clearly."""
    path = var_dir / "up.pid"
    if path.exists():
        try:
            other = int(path.read_text().strip() or 0)
        except ValueError:
            other = 0
        if other and other != os.getpid() and psutil.pid_exists(other):
            raise UserError(f"`fraud-detector up` already runs on {var_dir} (pid {other}): stop it first (Ctrl-C)")
    path.write_text(f"{os.getpid()}\n")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def log_to_file(path: Path) -> None:
    """Send this process's log records to ``path`` instead of the terminal (which gets the summary)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # MLflow installs its own terminal handler on import unless told not to.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")


# ---------------------------------------------------------------------------------------------
# the environment and the commands of the children


def child_environment(options: UpOptions, settings: Settings) -> dict[str, str]:
    """What every child gets on top of ``os.environ``: one warehouse, one registry, one Prefect API.

    Resolved values go out (absolute paths), so a flow run started by the worker in another working
    directory still finds the same SQLite files.
    """
    var_dir = settings.var_dir
    env = {
        "FRAUD_VAR_DIR": str(var_dir),
        "DATABASE_URL": settings.database.url,
        "MLFLOW_TRACKING_URI": settings.mlflow.tracking_uri,
        "API_URL": options.source_url,
        "ALERT_DASHBOARD_URL": f"{options.app_url}/dashboard",
        "PREFECT_API_URL": options.api_url,
        "PYTHONUNBUFFERED": "1",
    }
    if options.local_prefect:
        env |= {
            "PREFECT_HOME": str(var_dir / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # The demo's schedule ticks every 20 s: let the scheduler and the worker look often.
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "10",
            "PREFECT_WORKER_QUERY_SECONDS": "5",
        }
    return env


def _python(*args: str) -> list[str]:
    # The interpreter running `up` has every dependency: children do not depend on PATH.
    return [sys.executable, *args]


def fraud_detector(*args: str) -> list[str]:
    """The ``fraud-detector`` command, run by this interpreter."""
    return _python("-m", "fraud_cli.main", *args)


def prefect(*args: str) -> list[str]:
    """The ``prefect`` command, run by this interpreter."""
    return _python("-m", "prefect", *args)


def source_command(options: UpOptions, stream: Path) -> list[str]:
    """The source replaying ``stream`` at the demo's rate."""
    return fraud_detector(
        "source",
        "--data",
        str(stream),
        "--host",
        options.host,
        "--port",
        str(options.source_port),
        "--rate",
        f"{options.rate:g}",
        "--label-delay",
        f"{options.label_delay:g}",
        "--shift-to-now",
    )


def mlflow_command(options: UpOptions, settings: Settings) -> list[str]:
    """The MLflow UI on the configured tracking store."""
    return _python(
        "-m",
        "mlflow",
        "server",
        "--host",
        options.host,
        "--port",
        str(options.mlflow_port),
        "--backend-store-uri",
        settings.mlflow.tracking_uri,
        "--workers",
        "1",
    )


# ---------------------------------------------------------------------------------------------
# the warehouse and the champion


def prepare_warehouse(data: Path, settings: Settings, report: Report) -> Path:
    """Migrate the warehouse, write the demo files, import the history if the warehouse is empty.

    Returns:
        The stream file for the source.
    """
    # imported when the step runs: the servers `up` started first boot while it loads (seconds)
    from fraud_core.pipeline import demo

    prepared = demo.prepare_warehouse(data, settings)
    state = "created" if prepared.created else "schema up to date"
    report.step("database", f"{prepared.database} ({state})", prepared.migrate_seconds)
    if prepared.stored_before == 0:
        report.step(
            "history",
            f"{prepared.imported:,} transactions before the stream imported "
            f"(sample moved {prepared.files.shift_weeks} weeks forward)",
            prepared.import_seconds,
        )
    else:
        report.step("history", f"warehouse holds {prepared.stored_before:,} transactions: nothing to import")
    if prepared.replayed_all:
        report.note(
            "the bundled stream has been replayed entirely: it plays again, nothing new (`make clean` restarts)"
        )
    elif prepared.files.stream_skipped:
        report.note(
            f"resuming the stream: {prepared.files.stream_skipped:,} transactions were stored by an earlier run"
        )
    return prepared.files.stream


def ensure_champion(sup: Supervisor, settings: Settings, report: Report) -> None:
    """Train on the history and register a champion when the registry has none (and no MODEL_PATH is set)."""
    # imported when the step runs: the servers `up` started first boot while it loads (seconds)
    from fraud_core.pipeline.demo import champion_version

    if settings.model.path is not None:
        report.step("model", f"MODEL_PATH {settings.model.path} (the registry is not consulted)")
        return
    name = settings.mlflow.registered_model_name
    champion = champion_version(settings)
    if champion is not None:
        report.step("model", f"champion {name} v{champion}")
        return
    history = settings.var_dir / "demo" / "history.parquet"
    out = settings.model.artifacts_dir / time.strftime("initial-%Y%m%d-%H%M%S")
    began = time.monotonic()
    # The first version registered in MLflow becomes champion (fraud_core.ml.tracking).
    sup.run("train", fraud_detector("train", "--train", str(history), "--out", str(out)), timeout=900)
    champion = champion_version(settings)
    if champion is None:
        raise UserError(f"training finished but {name} has no champion (log: {sup.log_dir / 'train.log'})")
    report.step("model", f"champion {name} v{champion} trained on the history", time.monotonic() - began)
    # imported here: the ML package loads scikit-learn (a second), which only this step needs
    from fraud_core.ml.artifact import METADATA_FILE, read_card
    from fraud_core.ml.card import uncertainty_note

    note = uncertainty_note(read_card(out)) if (out / METADATA_FILE).is_file() else None
    if note:
        report.step("model", note)


# ---------------------------------------------------------------------------------------------
# Prefect: the server, the pool, the deployments, the worker


class PrefectPreload:
    """Imports :mod:`fraud_cli.up.prefect_api` (Prefect's client and process worker) in a thread.

    Kept because it still saves start-up time: importing Prefect takes about 2.5 s, and ``up``
    starts this thread first, so the import runs while the main thread waits on the Prefect
    server's boot (tens of seconds) and on the warehouse; the pool, the worker and the deployments
    then follow the server's readiness at once rather than 2.5 s of imports later. (What the thread
    used to compute, the process pool's default job template, costs a millisecond once Prefect is
    loaded, so :func:`~fraud_cli.up.prefect_api.create_process_pool` now computes it itself.)
    """

    def __init__(self) -> None:
        self._thread = threading.Thread(target=self._load, name="prefect-preload", daemon=True)

    @classmethod
    def start(cls) -> PrefectPreload:
        preload = cls()
        preload._thread.start()
        return preload

    def _load(self) -> None:
        with contextlib.suppress(Exception):  # the step imports it again and sees the error there
            import fraud_cli.up.prefect_api  # noqa: F401

    def wait(self, timeout: float) -> None:
        """Wait for the import to finish (at most ``timeout`` seconds)."""
        self._thread.join(timeout)


def start_prefect_server(sup: Supervisor, options: UpOptions) -> None:
    """Start the local Prefect server in the background (its database under ``PREFECT_HOME``)."""
    sup.start("prefect-server", prefect("server", "start", "--host", options.host, "--port", str(options.prefect_port)))


def deploy_arguments(prefect_file: Path) -> tuple[list[str], list[str]]:
    """``prefect deploy`` arguments for the deployments of ``prefect_file`` whose flow file exists.

    Returns:
        The arguments (``--all`` when every entrypoint exists) and the names left out.
    """
    spec = yaml.safe_load(prefect_file.read_text()) or {}
    present: list[str] = []
    missing: list[str] = []
    for deployment in spec.get("deployments") or []:
        entry = str(deployment.get("entrypoint", ""))
        path = prefect_file.parent / entry.split(":", 1)[0]
        (present if path.exists() else missing).append(str(deployment.get("name")))
    if not missing:
        return ["--all"], []
    return [arg for name in present for arg in ("--name", name)], missing


def deploy_all(sup: Supervisor, *, timeout: float, root: Path = REPO_ROOT) -> list[str]:
    """Run ``prefect deploy`` on ``root/prefect.yaml`` without prompts; the names left out."""
    arguments, missing = deploy_arguments(root / "prefect.yaml")
    if arguments:
        # prefect.yaml's pull step reads {{ $PWD }}: it must be the folder the flows live in.
        sup.run("deploy", prefect("deploy", *arguments, "--no-prompt"), timeout=timeout, env={"PWD": str(root)})
    return missing


def ensure_work_pool(api_url: str, pool: str = WORK_POOL) -> None:
    """Create the work pool (type process) unless the API has it."""
    # imported when the step runs: `up` loads Prefect in a thread while the servers boot (PrefectPreload)
    from fraud_cli.up import prefect_api

    if not prefect_api.work_pool_exists(api_url, pool):
        prefect_api.create_process_pool(api_url, pool)


def deploy(sup: Supervisor, options: UpOptions, report: Report, *, preload: PrefectPreload | None = None) -> None:
    """Create the work pool if needed, deploy ``prefect.yaml``, start a worker, run the live flow once."""
    if options.local_prefect:
        server = next(c for c in sup.children if c.name == "prefect-server")
        sup.wait_until(
            "the Prefect server", lambda: http_ok(f"{options.api_url}/health"), timeout=options.timeout, child=server
        )
        report.step("prefect", f"server on {options.ui_url}", report.elapsed())
    began = time.monotonic()
    if preload is not None:
        preload.wait(timeout=options.timeout)
    # imported when the step runs: `up` loads Prefect in a thread while the servers boot (PrefectPreload)
    from fraud_cli.up import prefect_api

    ensure_work_pool(options.api_url)
    if options.local_prefect:
        crashed = prefect_api.crash_orphaned_runs(options.api_url, WORK_POOL)
        if crashed:
            report.note(f"marked {len(crashed)} run(s) left running by the last stop as crashed: {', '.join(crashed)}")
    worker = sup.start("worker", prefect("worker", "start", "--pool", WORK_POOL, "--type", "process"))
    if (REPO_ROOT / "prefect.yaml").exists():
        missing = deploy_all(sup, timeout=options.timeout)
        report.step("deployments", ", ".join(prefect_api.deployment_names(options.api_url)), time.monotonic() - began)
        if missing:
            report.note(f"not deployed yet (no flow file): {', '.join(missing)}")
        try:
            # A first run now rather than at the schedule's next tick.
            if prefect_api.run_deployment_now(options.api_url, LIVE_DEPLOYMENT) is None:
                report.note(f"no {LIVE_DEPLOYMENT} deployment: nothing will be scored")
        except httpx.HTTPError as exc:
            report.note(f"could not start a first {LIVE_DEPLOYMENT} run ({exc}); its schedule will")
    else:
        report.note("no prefect.yaml: nothing deployed (the worker waits for deployments)")
    sup.wait_until(
        "the worker",
        lambda: bool(prefect_api.online_workers(options.api_url, WORK_POOL)),
        timeout=options.timeout,
        child=worker,
    )
    report.step("worker", f"online on pool {WORK_POOL}", time.monotonic() - began)
