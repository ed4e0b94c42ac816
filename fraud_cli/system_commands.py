"""``fraud-detector up``: the whole system on one machine, from a fresh clone, until Ctrl-C.

What it does, in order (each step is skipped when its work is already done):

1. checks that its ports are free and that no other ``up`` uses the same ``var/``;
2. starts a local Prefect server (``PREFECT_HOME`` under ``var/``) in the background;
3. creates or upgrades the warehouse (``DATABASE_URL``, or the SQLite file under ``var/``);
4. cuts the bundled sample into history and a stream, imports the history if the warehouse is
   empty, and trains and registers a champion on it if the registry has none;
5. starts the transaction source, the web app and (optionally) the MLflow UI;
6. creates the ``fraud-process`` work pool, deploys ``prefect.yaml``, starts a worker and asks for
   a first ``etl-and-predict`` run at once rather than at the next tick of its schedule;
7. prints the URLs, then watches: a child that dies stops everything with its log's last lines;
   SIGINT or SIGTERM stops every child and waits for them.

Logs go to ``var/logs/<name>.log``; the terminal gets one line per step.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fraud_cli.errors import UserError

if TYPE_CHECKING:
    from fraud_cli.supervisor import Supervisor
    from fraud_core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_SAMPLE = REPO_ROOT / "data" / "sample" / "fraud_sample.parquet"
WORK_POOL = "fraud-process"
LIVE_DEPLOYMENT = "etl-and-predict"
CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class UpOptions:
    """What ``up`` was asked for (options or their environment variables)."""

    host: str = "127.0.0.1"
    app_port: int = 8000
    prefect_port: int = 4200
    source_port: int = 8100
    mlflow_port: int = 5000
    mlflow_ui: bool = True
    rate: float = 5.0
    label_delay: float = 120.0
    data: Path = BUNDLED_SAMPLE
    timeout: float = 180.0
    prefect_api_url: str | None = None

    @property
    def local_prefect(self) -> bool:
        """Whether ``up`` runs its own Prefect server (no remote API given)."""
        return not self.prefect_api_url

    @property
    def api_url(self) -> str:
        return self.prefect_api_url or f"http://{self.host}:{self.prefect_port}/api"

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    @property
    def app_url(self) -> str:
        return f"http://{self.host}:{self.app_port}"

    @property
    def source_url(self) -> str:
        return f"http://{self.host}:{self.source_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"


@dataclass
class Report:
    """Lines for the terminal: one per step, with how long it took."""

    started: float = field(default_factory=time.monotonic)

    def step(self, name: str, text: str, seconds: float | None = None) -> None:
        took = f"  ({seconds:.1f} s)" if seconds is not None else ""
        typer.echo(f"  ✓ {name:<12} {text}{took}")

    def note(self, text: str) -> None:
        typer.echo(f"    {text}")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


# ---------------------------------------------------------------------------------------------
# ports and the lock


def check_ports(options: UpOptions) -> None:
    """Fail with one clear message listing every port that something already listens on."""
    from fraud_cli.supervisor import port_in_use

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
    import psutil

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


# ---------------------------------------------------------------------------------------------
# the environment of the children


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


# ---------------------------------------------------------------------------------------------
# Prefect's REST API (a few calls: the CLI takes seconds to start, these take milliseconds)


def _prefect_get(api_url: str, path: str) -> Any:
    import httpx

    response = httpx.get(f"{api_url}{path}", timeout=10)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


#: First pause before trying a busy Prefect server again (then twice as long, ...).
PREFECT_RETRY_SECONDS = 2.0


def _prefect_post(api_url: str, path: str, body: dict[str, Any], *, attempts: int = 3) -> Any:
    """POST to the Prefect API, trying again (bounded) when the server is busy or not reachable yet.

    A local SQLite-backed server answers 503 while its database is locked; nothing was done then,
    so trying again cannot do anything twice. Other errors (and timeouts, after which the request
    may have been carried out) raise at once.

    Raises:
        httpx.HTTPError: the server kept refusing, or answered another error.
    """
    import httpx

    for attempt in range(attempts):
        try:
            response = httpx.post(f"{api_url}{path}", json=body, timeout=10)
            if response.status_code != 503 or attempt == attempts - 1:
                response.raise_for_status()
                return response.json()
        except httpx.ConnectError:
            if attempt == attempts - 1:
                raise
        time.sleep(PREFECT_RETRY_SECONDS * (attempt + 1))
    raise AssertionError("unreachable")


def work_pool_exists(api_url: str, name: str) -> bool:
    """Whether the Prefect API has this work pool."""
    return _prefect_get(api_url, f"/work_pools/{name}") is not None


def online_workers(api_url: str, pool: str) -> list[str]:
    """Names of the pool's workers whose status is ONLINE."""
    workers = _prefect_post(api_url, f"/work_pools/{pool}/workers/filter", {}) or []
    return [w["name"] for w in workers if str(w.get("status", "")).upper() == "ONLINE"]


def crash_orphaned_runs(api_url: str, pool: str) -> list[str]:
    """Mark the pool's runs left RUNNING, PENDING or CANCELLING by an earlier stop as CRASHED.

    Only for a Prefect server that ``up`` itself runs, before its worker starts: no run can be
    alive then. A run killed with its worker (Ctrl-C mid-run) stays RUNNING on the server and holds
    ``etl-and-predict``'s concurrency slot, so every later run would be cancelled. The state is
    proposed, not forced, so that Prefect's rules release the slot.

    Returns:
        The names of the runs marked.
    """
    body = {
        "flow_runs": {"state": {"type": {"any_": ["RUNNING", "PENDING", "CANCELLING"]}}},
        "work_pools": {"name": {"any_": [pool]}},
    }
    crashed = []
    for run in _prefect_post(api_url, "/flow_runs/filter", body) or []:
        state = {"type": "CRASHED", "name": "Crashed", "message": "left running when `fraud-detector up` stopped"}
        _prefect_post(api_url, f"/flow_runs/{run['id']}/set_state", {"state": state, "force": False})
        crashed.append(str(run["name"]))
    return crashed


def deployment_names(api_url: str) -> list[str]:
    """``flow/deployment`` names of every deployment the API holds."""
    deployments = _prefect_post(api_url, "/deployments/filter", {"limit": 200}) or []
    flows = {f["id"]: f["name"] for f in _prefect_post(api_url, "/flows/filter", {"limit": 200}) or []}
    return sorted(f"{flows.get(d['flow_id'], '?')}/{d['name']}" for d in deployments)


def run_deployment_now(api_url: str, name: str) -> str | None:
    """Create a flow run of the deployment called ``name`` (any flow); its id, or None if absent.

    Raises:
        httpx.HTTPError: the server kept refusing (see :func:`_prefect_post`).
    """
    body = {"deployments": {"name": {"any_": [name]}}, "limit": 1}
    found = _prefect_post(api_url, "/deployments/filter", body)
    if not found:
        return None
    run = _prefect_post(api_url, f"/deployments/{found[0]['id']}/create_flow_run", {"tags": ["up"]})
    return str(run["id"])


# ---------------------------------------------------------------------------------------------
# the steps


def prepare_warehouse(data: Path, settings: Settings, report: Report) -> Path:
    """Migrate the warehouse, write the demo files, import the history if the warehouse is empty.

    Returns:
        The stream file for the source.
    """
    import pandas as pd
    from sqlalchemy.engine import make_url

    from fraud_core.db import make_engine, session_scope
    from fraud_core.db.importer import import_file
    from fraud_core.db.migrate import current_revision, upgrade
    from fraud_core.db.repository import count_transactions, get_transactions, set_cursor
    from fraud_core.data.demo import split_sample

    url = settings.database.url
    began = time.monotonic()
    before = current_revision(url)
    upgrade(url)
    label = make_url(url).render_as_string(hide_password=True)
    report.step(
        "database", f"{label} ({'created' if before is None else 'schema up to date'})", time.monotonic() - began
    )

    began = time.monotonic()
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            stored = count_transactions(session=session)
            stream_ids = pd.read_parquet(data, columns=["trans_num"])["trans_num"].tolist()
            already = set(get_transactions(stream_ids, session=session)["trans_num"]) if stored else set()
        files = split_sample(data, settings.var_dir / "demo", now=pd.Timestamp.now("UTC"), already_stored=already)
        if stored == 0:
            summary = import_file(files.history, engine=engine)
            report.step(
                "history",
                f"{summary.inserted:,} transactions before the stream imported "
                f"(sample moved {files.shift_weeks} weeks forward)",
                time.monotonic() - began,
            )
        else:
            report.step("history", f"warehouse holds {stored:,} transactions: nothing to import")
        # The source about to start is a new feed whose cursors begin at zero: the cursors stored
        # from the last feed would skip its first transactions (or wait for them to be released).
        with session_scope(engine) as session:
            set_cursor(settings.source.name, session=session, transactions=None, labels=None)
    finally:
        engine.dispose()
    if files.stream_rows == 0:
        report.note(
            "the bundled stream has been replayed entirely: it plays again, nothing new (`make clean` restarts)"
        )
        return split_sample(data, settings.var_dir / "demo", now=pd.Timestamp.now("UTC")).stream
    if files.stream_skipped:
        report.note(f"resuming the stream: {files.stream_skipped:,} transactions were stored by an earlier run")
    return files.stream


def ensure_champion(sup: Supervisor, settings: Settings, report: Report) -> None:
    """Train on the history and register a champion when the registry has none (and no MODEL_PATH is set)."""
    from fraud_core.ml.registry import CHAMPION, mlflow_client, resolve

    if settings.model.path is not None:
        report.step("model", f"MODEL_PATH {settings.model.path} (the registry is not consulted)")
        return
    name = settings.mlflow.registered_model_name
    champion = resolve(name, CHAMPION, client=mlflow_client(settings.mlflow))
    if champion is not None:
        report.step("model", f"champion {name} v{champion.version}")
        return
    history = settings.var_dir / "demo" / "history.parquet"
    out = settings.model.artifacts_dir / time.strftime("initial-%Y%m%d-%H%M%S")
    began = time.monotonic()
    # The first version registered in MLflow becomes champion (fraud_core.ml.tracking).
    sup.run("train", fraud_detector("train", "--train", str(history), "--out", str(out)), timeout=900)
    champion = resolve(name, CHAMPION, client=mlflow_client(settings.mlflow))
    if champion is None:
        raise UserError(f"training finished but {name} has no champion (log: {sup.log_dir / 'train.log'})")
    report.step("model", f"champion {name} v{champion.version} trained on the history", time.monotonic() - began)


def start_prefect_server(sup: Supervisor, options: UpOptions) -> None:
    """Start the local Prefect server in the background (its database under ``PREFECT_HOME``)."""
    sup.start("prefect-server", prefect("server", "start", "--host", options.host, "--port", str(options.prefect_port)))


def deploy_arguments(prefect_file: Path) -> tuple[list[str], list[str]]:
    """``prefect deploy`` arguments for the deployments of ``prefect_file`` whose flow file exists.

    Returns:
        The arguments (``--all`` when every entrypoint exists) and the names left out.
    """
    import yaml

    spec = yaml.safe_load(prefect_file.read_text()) or {}
    present, missing = [], []
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


def ensure_work_pool(
    sup: Supervisor, api_url: str, *, timeout: float, pool: str = WORK_POOL, template: dict[str, Any] | None = None
) -> None:
    """Create the work pool (type process) unless the API has it.

    With the process worker's job ``template`` at hand one REST call does it; otherwise
    ``prefect work-pool create`` (seconds slower: the CLI imports all of Prefect).
    """
    if work_pool_exists(api_url, pool):
        return
    if template is not None:
        _prefect_post(api_url, "/work_pools/", {"name": pool, "type": "process", "base_job_template": template})
    else:
        sup.run("work-pool", prefect("work-pool", "create", pool, "--type", "process"), timeout=timeout)


def deploy(sup: Supervisor, options: UpOptions, report: Report, *, template: _PoolTemplate | None = None) -> None:
    """Create the work pool if needed, deploy ``prefect.yaml`` and start a worker beside it."""
    from fraud_cli.supervisor import http_ok

    if options.local_prefect:
        server = next(c for c in sup.children if c.name == "prefect-server")
        sup.wait_until(
            "the Prefect server", lambda: http_ok(f"{options.api_url}/health"), timeout=options.timeout, child=server
        )
        report.step("prefect", f"server on {options.ui_url}", report.elapsed())
    began = time.monotonic()
    job_template = template.get(timeout=options.timeout) if template is not None else None
    ensure_work_pool(sup, options.api_url, timeout=options.timeout, template=job_template)
    if options.local_prefect:
        crashed = crash_orphaned_runs(options.api_url, WORK_POOL)
        if crashed:
            report.note(f"marked {len(crashed)} run(s) left running by the last stop as crashed: {', '.join(crashed)}")
    worker = sup.start("worker", prefect("worker", "start", "--pool", WORK_POOL, "--type", "process"))
    if (REPO_ROOT / "prefect.yaml").exists():
        import httpx

        missing = deploy_all(sup, timeout=options.timeout)
        report.step("deployments", ", ".join(deployment_names(options.api_url)), time.monotonic() - began)
        if missing:
            report.note(f"not deployed yet (no flow file): {', '.join(missing)}")
        try:
            # A first run now rather than at the schedule's next tick.
            if run_deployment_now(options.api_url, LIVE_DEPLOYMENT) is None:
                report.note(f"no {LIVE_DEPLOYMENT} deployment: nothing will be scored")
        except httpx.HTTPError as exc:
            report.note(f"could not start a first {LIVE_DEPLOYMENT} run ({exc}); its schedule will")
    else:
        report.note("no prefect.yaml: nothing deployed (the worker waits for deployments)")
    sup.wait_until(
        "the worker", lambda: bool(online_workers(options.api_url, WORK_POOL)), timeout=options.timeout, child=worker
    )
    report.step("worker", f"online on pool {WORK_POOL}", time.monotonic() - began)


def first_score_seen(settings: Settings, since_wall: float) -> bool:
    """Whether the warehouse holds a score made after ``since_wall`` (seconds since the epoch)."""
    from datetime import UTC, datetime

    import pandas as pd

    from fraud_core.db import make_engine, session_scope
    from fraud_core.db.repository import latest_scored_transactions

    engine = make_engine(settings.database.url, pool_size=1)
    try:
        with session_scope(engine) as session:
            latest = latest_scored_transactions(session=session, limit=1)
    finally:
        engine.dispose()
    if latest.empty:
        return False
    scored_at = pd.Timestamp(latest["scored_at"].iloc[0])
    since = pd.Timestamp(datetime.fromtimestamp(since_wall, UTC).replace(tzinfo=None))
    return bool(scored_at.tz_localize(None) >= since if scored_at.tzinfo else scored_at >= since)


def log_to_file(path: Path) -> None:
    """Send this process's log records to ``path`` instead of the terminal (which gets the summary)."""
    import logging

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


def run_up(options: UpOptions) -> None:
    """Start everything, print the URLs, and supervise until a signal or a child's death.

    The slow parts overlap: the Prefect server, the web app and the MLflow UI boot while the
    warehouse is prepared (and a first model trained, on a fresh install); the work pool's job
    template is computed in a thread meanwhile, so the pool, the worker and the deployments follow
    the server's readiness at once.
    """
    from fraud_cli.supervisor import Interrupted, SignalGuard, Supervisor, http_ok
    from fraud_core.settings import get_settings

    settings = get_settings()
    var_dir = settings.ensure_var_dir()
    started_wall = time.time()
    report = Report()
    typer.echo(f"fraud-detector up: state in {var_dir}, logs in {var_dir / 'logs'}")
    check_ports(options)
    log_to_file(var_dir / "logs" / "up.log")
    env = child_environment(options, settings)
    # This process talks to the same Prefect API and registry as its children.
    os.environ.update({k: v for k, v in env.items() if k.startswith(("PREFECT_", "MLFLOW_"))})
    sup = Supervisor(var_dir / "logs", env={**os.environ, **env}, cwd=REPO_ROOT, echo=typer.echo)
    with pid_lock(var_dir), SignalGuard() as guard:
        try:
            template = _PoolTemplate.start()
            if options.local_prefect:
                start_prefect_server(sup, options)
            webapp = sup.start(
                "webapp", fraud_detector("serve", "--host", options.host, "--port", str(options.app_port))
            )
            mlflow = sup.start("mlflow", mlflow_command(options, settings)) if options.mlflow_ui else None
            stream = prepare_warehouse(options.data, settings, report)
            source = sup.start("source", source_command(options, stream))
            ensure_champion(sup, settings, report)
            deploy(sup, options, report, template=template)
            sup.wait_until(
                "the source", lambda: http_ok(f"{options.source_url}/health"), timeout=options.timeout, child=source
            )
            report.step("source", f"{options.source_url} ({options.rate:g} transactions/s)")
            sup.wait_until(
                "the web app", lambda: http_ok(f"{options.app_url}/health"), timeout=options.timeout, child=webapp
            )
            report.step("web app", options.app_url, report.elapsed())
            _print_urls(options, report)
            _watch(sup, options, settings, started_wall, report, mlflow_pending=mlflow is not None)
        except Interrupted as received:
            guard.quiet()
            typer.echo(f"\n{received} received: stopping {len(sup.children)} processes ...")
        except UserError:
            raise
        except Exception as exc:
            import logging

            logging.getLogger(__name__).exception("up failed")
            raise UserError(
                f"up failed: {type(exc).__name__}: {exc} (traceback in {var_dir / 'logs' / 'up.log'})"
            ) from exc
        finally:
            guard.quiet()
            stopped = sup.stop_all()
            if stopped:
                typer.echo("stopped: " + ", ".join(f"{name} ({code})" for name, code in stopped))


class _PoolTemplate:
    """The process work pool's default job template, computed in a thread (importing Prefect is slow)."""

    def __init__(self) -> None:
        import threading

        self.value: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._compute, name="pool-template", daemon=True)

    @classmethod
    def start(cls) -> _PoolTemplate:
        template = cls()
        template._thread.start()
        return template

    def _compute(self) -> None:
        with contextlib.suppress(Exception):  # the CLI creates the pool instead
            from prefect.workers.process import ProcessWorker

            self.value = ProcessWorker.get_default_base_job_template()

    def get(self, timeout: float) -> dict[str, Any] | None:
        self._thread.join(timeout)
        return self.value


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


def _print_urls(options: UpOptions, report: Report) -> None:
    typer.echo("")
    typer.echo(f"  App           {options.app_url}/")
    typer.echo(f"  Dashboard     {options.app_url}/dashboard/")
    typer.echo(f"  API docs      {options.app_url}/docs/swagger")
    typer.echo(f"  Prefect UI    {options.ui_url}/")
    if options.mlflow_ui:
        typer.echo(f"  MLflow UI     {options.mlflow_url}/  (may take a little longer)")
    typer.echo(f"  Source        {options.source_url}/health")
    typer.echo("")
    typer.echo(f"ready after {report.elapsed():.0f} s. Ctrl-C stops everything.")


def _watch(
    sup: Supervisor,
    options: UpOptions,
    settings: Settings,
    started_wall: float,
    report: Report,
    *,
    mlflow_pending: bool,
) -> None:
    from fraud_cli.supervisor import http_ok

    scored = False
    while True:
        sup.check_children()
        if not scored:
            with contextlib.suppress(Exception):  # the warehouse may be busy: look again
                scored = first_score_seen(settings, started_wall)
            if scored:
                typer.echo(f"  ✓ first transaction scored {report.elapsed():.0f} s after start: see the dashboard")
        if mlflow_pending and http_ok(f"{options.mlflow_url}/health", timeout=1.0):
            mlflow_pending = False
            typer.echo(f"  ✓ MLflow UI ready at {options.mlflow_url}/")
        time.sleep(2.0)


# ---------------------------------------------------------------------------------------------
# the commands


def up(
    host: Annotated[str, typer.Option(envvar="FRAUD_UP_HOST", help="interface every server listens on")] = "127.0.0.1",
    app_port: Annotated[int, typer.Option(envvar="FRAUD_UP_APP_PORT", help="web app and dashboard")] = 8000,
    prefect_port: Annotated[int, typer.Option(envvar="FRAUD_UP_PREFECT_PORT", help="local Prefect server")] = 4200,
    source_port: Annotated[int, typer.Option(envvar="FRAUD_UP_SOURCE_PORT", help="transaction source")] = 8100,
    mlflow_port: Annotated[int, typer.Option(envvar="FRAUD_UP_MLFLOW_PORT", help="MLflow UI")] = 5000,
    mlflow_ui: Annotated[
        bool, typer.Option("--mlflow-ui/--no-mlflow-ui", envvar="FRAUD_UP_MLFLOW_UI", help="start the MLflow UI")
    ] = True,
    rate: Annotated[
        float, typer.Option(min=0.1, envvar="FRAUD_UP_RATE", help="transactions per second from the source")
    ] = 5.0,
    label_delay: Annotated[
        float, typer.Option(min=0.0, envvar="FRAUD_UP_LABEL_DELAY", help="seconds before a transaction's label arrives")
    ] = 120.0,
    data: Annotated[
        Path, typer.Option(envvar="FRAUD_UP_DATA", help="Kaggle-schema Parquet file with whole card histories")
    ] = BUNDLED_SAMPLE,
    var_dir: Annotated[
        Path | None, typer.Option(envvar="FRAUD_VAR_DIR", help="local state: SQLite files, models, logs")
    ] = None,
    prefect_api_url: Annotated[
        str | None,
        typer.Option(
            envvar="FRAUD_UP_PREFECT_API_URL",
            help="use this Prefect API (Prefect Cloud or a remote server) instead of starting a local server",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(min=1.0, help="seconds each server gets to become ready")] = 180.0,
) -> None:
    """Run the whole system locally (warehouse, model, Prefect server and worker, source, web app) until Ctrl-C."""
    _use_var_dir(var_dir)
    if not data.exists():
        raise UserError(f"no such file: {data}")
    run_up(
        UpOptions(
            host=host,
            app_port=app_port,
            prefect_port=prefect_port,
            source_port=source_port,
            mlflow_port=mlflow_port,
            mlflow_ui=mlflow_ui,
            rate=rate,
            label_delay=label_delay,
            data=data.resolve(),
            timeout=timeout,
            prefect_api_url=prefect_api_url,
        )
    )


def _use_var_dir(var_dir: Path | None) -> None:
    if var_dir is not None:
        from fraud_core.settings import reset_settings

        os.environ["FRAUD_VAR_DIR"] = str(var_dir.resolve())
        reset_settings()


def bootstrap(
    data: Annotated[
        Path, typer.Option(envvar="FRAUD_UP_DATA", help="Kaggle-schema Parquet file with whole card histories")
    ] = BUNDLED_SAMPLE,
    var_dir: Annotated[Path | None, typer.Option(envvar="FRAUD_VAR_DIR", help="local state and the demo files")] = None,
) -> None:
    """Prepare a fresh installation: schema, the sample's history, a first champion (what `up` does first).

    Writes the stream for the source to ``var/demo/stream.parquet``. Safe to run again: each part is
    skipped when done.
    """
    from fraud_cli.supervisor import Supervisor
    from fraud_core.settings import get_settings

    _use_var_dir(var_dir)
    if not data.exists():
        raise UserError(f"no such file: {data}")
    settings = get_settings()
    var_dir = settings.ensure_var_dir()
    report = Report()
    sup = Supervisor(var_dir / "logs", cwd=REPO_ROOT, echo=typer.echo)
    try:
        stream = prepare_warehouse(data.resolve(), settings, report)
        ensure_champion(sup, settings, report)
    finally:
        sup.stop_all()
    typer.echo(f"bootstrap: ready; the source replays {stream}")


def worker(
    pool: Annotated[str, typer.Option(help="work pool to poll (created, type process, if missing)")] = WORK_POOL,
    deploy_first: Annotated[
        bool, typer.Option("--deploy/--no-deploy", help="deploy prefect.yaml before starting (idempotent)")
    ] = False,
    name: Annotated[str | None, typer.Option(help="worker name (default: Prefect's, from the host)")] = None,
    timeout: Annotated[float, typer.Option(min=1.0, help="seconds to wait for the Prefect API")] = 120.0,
) -> None:
    """Start a Prefect worker on the work pool (the image's worker command). Needs PREFECT_API_URL.

    More workers on the same pool, on any machine, share its runs: each flow run goes to one worker.
    """
    from fraud_cli.supervisor import Supervisor, http_ok

    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        raise UserError("PREFECT_API_URL is not set: point it at the Prefect server (http://HOST:4200/api) or Cloud")
    sup = Supervisor(Path(os.environ.get("FRAUD_VAR_DIR", "var")).resolve() / "logs", cwd=REPO_ROOT, echo=typer.echo)
    sup.wait_until("the Prefect API", lambda: http_ok(f"{api_url}/health"), timeout=timeout)
    ensure_work_pool(sup, api_url, timeout=timeout, pool=pool)
    if deploy_first:
        missing = deploy_all(sup, timeout=timeout)
        typer.echo(f"worker: deployed prefect.yaml{f' (left out: {missing})' if missing else ''}")
    argv = prefect("worker", "start", "--pool", pool, "--type", "process", *(("--name", name) if name else ()))
    typer.echo(f"worker: {' '.join(argv[1:])}")
    # The worker replaces this process: signals and the exit status are the worker's own.
    os.execv(argv[0], argv)


def settings_table(
    check: Annotated[
        Path | None, typer.Option("--check", help="fail unless this file's settings table is the generated one")
    ] = None,
    write: Annotated[Path | None, typer.Option("--write", help="replace this file's settings table")] = None,
) -> None:
    """Print every setting (environment variable, default, meaning) as a Markdown table."""
    from fraud_cli.settings_table import markdown_table, replace_table

    table = markdown_table()
    target = check or write
    if target is None:
        typer.echo(table)
        return
    document = target.read_text()
    try:
        updated = replace_table(document, table)
    except ValueError as exc:
        raise UserError(f"{target}: {exc}") from exc
    if check is not None:
        if updated != document:
            raise UserError(
                f"{target}: the settings table is out of date: run `fraud-detector settings --write {target}`"
            )
        typer.echo(f"{target}: settings table up to date")
    else:
        target.write_text(updated)
        typer.echo(f"{target}: settings table written")


def register(app: typer.Typer) -> None:
    """Add ``up``, ``bootstrap``, ``worker`` and ``settings`` to the ``fraud-detector`` command."""
    app.command("up")(up)
    app.command("bootstrap")(bootstrap)
    app.command("worker")(worker)
    app.command("settings")(settings_table)
