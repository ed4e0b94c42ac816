"""``fraud-detector up`` and ``fraud-detector bootstrap``: thin commands over :mod:`fraud_cli.up`.

``up`` runs the whole system locally until Ctrl-C (:func:`fraud_cli.up.run.run_up`); ``bootstrap``
does its first steps alone (schema, history, a first champion), as the image's first command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from fraud_cli.errors import UserError
from fraud_cli.up.options import BUNDLED_SAMPLE, REPO_ROOT, Report, UpOptions


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
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_cli.up.run import run_up

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
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_cli.up.steps import ensure_champion, prepare_warehouse
    from fraud_cli.up.supervisor import Supervisor
    from fraud_core.settings import get_settings

    _use_var_dir(var_dir)
    if not data.exists():
        raise UserError(f"no such file: {data}")
    settings = get_settings()
    state_dir = settings.ensure_var_dir()
    report = Report()
    sup = Supervisor(state_dir / "logs", cwd=REPO_ROOT, echo=typer.echo)
    try:
        stream = prepare_warehouse(data.resolve(), settings, report)
        ensure_champion(sup, settings, report)
    finally:
        sup.stop_all()
    typer.echo(f"bootstrap: ready; the source replays {stream}")


def _use_var_dir(var_dir: Path | None) -> None:
    """``--var-dir`` wins over ``FRAUD_VAR_DIR``: the settings are read again from it."""
    if var_dir is not None:
        # imported when the command runs: `fraud-detector --help` stays fast
        from fraud_core.settings import reset_settings

        os.environ["FRAUD_VAR_DIR"] = str(var_dir.resolve())
        reset_settings()


def register(app: typer.Typer) -> None:
    """Add ``up`` and ``bootstrap`` to the ``fraud-detector`` command."""
    app.command("up")(up)
    app.command("bootstrap")(bootstrap)
