"""``fraud-detector up`` from start to stop: :func:`run_up` runs the steps, prints the URLs and watches."""

from __future__ import annotations

import contextlib
import logging
import os
import time

import typer

from fraud_cli.errors import UserError
from fraud_cli.up.options import REPO_ROOT, Report, UpOptions
from fraud_cli.up.steps import (
    PrefectPreload,
    check_ports,
    child_environment,
    deploy,
    ensure_champion,
    fraud_detector,
    log_to_file,
    mlflow_command,
    pid_lock,
    prepare_warehouse,
    source_command,
    start_prefect_server,
)
from fraud_cli.up.supervisor import Interrupted, SignalGuard, Supervisor, http_ok
from fraud_core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: Seconds between two looks of the watch loop.
WATCH_SECONDS = 2.0


def run_up(options: UpOptions) -> None:
    """Start everything, print the URLs, and supervise until a signal or a child's death.

    The slow parts overlap: the Prefect server, the web app and the MLflow UI boot while the
    warehouse is prepared (and a first model trained, on a fresh install); Prefect's client is
    imported in a thread meanwhile, so the pool, the worker and the deployments follow the
    server's readiness at once.
    """
    settings = get_settings()
    var_dir = settings.ensure_var_dir()
    started_wall = time.time()
    report = Report()
    typer.echo(f"fraud-detector up: state in {var_dir}, logs in {var_dir / 'logs'}")
    check_ports(options)
    log_to_file(var_dir / "logs" / "up.log")
    env = child_environment(options, settings)
    # This process talks to the same Prefect API and registry as its children (set before Prefect loads).
    os.environ.update({k: v for k, v in env.items() if k.startswith(("PREFECT_", "MLFLOW_"))})
    sup = Supervisor(var_dir / "logs", env={**os.environ, **env}, cwd=REPO_ROOT, echo=typer.echo)
    with pid_lock(var_dir), SignalGuard() as guard:
        try:
            preload = PrefectPreload.start()
            if options.local_prefect:
                start_prefect_server(sup, options)
            webapp = sup.start(
                "webapp", fraud_detector("serve", "--host", options.host, "--port", str(options.app_port))
            )
            mlflow = sup.start("mlflow", mlflow_command(options, settings)) if options.mlflow_ui else None
            stream = prepare_warehouse(options.data, settings, report)
            source = sup.start("source", source_command(options, stream))
            ensure_champion(sup, settings, report)
            deploy(sup, options, report, preload=preload)
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
            logger.exception("up failed")
            raise UserError(
                f"up failed: {type(exc).__name__}: {exc} (traceback in {var_dir / 'logs' / 'up.log'})"
            ) from exc
        finally:
            guard.quiet()
            stopped = sup.stop_all()
            if stopped:
                typer.echo("stopped: " + ", ".join(f"{name} ({code})" for name, code in stopped))


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
    """Until a signal or a child's death: say when the first transaction is scored and the MLflow UI is up."""
    # loaded by the warehouse step already (imported there for the servers' sake, see fraud_cli.up.steps)
    from fraud_core.pipeline.demo import scored_since

    scored = False
    while True:
        sup.check_children()
        if not scored:
            with contextlib.suppress(Exception):  # the warehouse may be busy: look again
                scored = scored_since(settings, started_wall)
            if scored:
                typer.echo(f"  ✓ first transaction scored {report.elapsed():.0f} s after start: see the dashboard")
        if mlflow_pending and http_ok(f"{options.mlflow_url}/health", timeout=1.0):
            mlflow_pending = False
            typer.echo(f"  ✓ MLflow UI ready at {options.mlflow_url}/")
        time.sleep(WATCH_SECONDS)
