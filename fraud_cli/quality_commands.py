"""``fraud-detector quality``, ``retrain``, ``models`` and ``promote``: thin adapters over the flows.

``quality`` and ``retrain`` run the very flows the deployments run (``flows.weekly_quality``,
``flows.retrain``), in this process, against ``PREFECT_API_URL`` or a temporary local Prefect
server. ``models`` reads the MLflow registry; ``promote`` goes through
:func:`fraud_core.pipeline.promotion.promote_by_hand` (registry alias, warehouse alias, audit row).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Annotated, Any

import typer

from fraud_cli.errors import UserError
from fraud_cli.flow_context import quiet_prefect, require_migrated_warehouse, use_running_prefect_server


def _state_result(state: Any) -> Any:
    """The flow's return value, or ``None`` when the run failed (its message is printed)."""
    if state.is_completed():
        return state.result()
    typer.echo(f"flow run {state.name}: {state.message}", err=True)
    return None


def quality(
    days: Annotated[
        float | None, typer.Option("--days", min=0.001, help="window length (default: QUALITY_WINDOW_DAYS)")
    ] = None,
    end: Annotated[
        datetime | None, typer.Option("--end", help="window end, UTC (default: now or the newest transaction)")
    ] = None,
    start: Annotated[datetime | None, typer.Option("--start", help="window start, UTC")] = None,
) -> None:
    """Run the weekly quality checks now; exit 1 when a check fails (the alert goes out as usual).

    Uses the Prefect server of ``PREFECT_API_URL`` or of a running ``fraud-detector up`` (the run
    shows in its UI); prints the report only.
    """
    from fraud_core.settings import get_settings

    quiet_prefect()
    require_migrated_warehouse(get_settings().database.url)
    use_running_prefect_server()
    # imported when the command runs (and after the settings above): `fraud-detector --help` stays fast
    from flows.weekly_quality import weekly_quality
    from fraud_core.db import make_engine
    from fraud_core.pipeline.weekly_quality import latest_report

    state = weekly_quality(window_days=days, window_end=end, window_start=start, return_state=True)
    engine = make_engine(get_settings().database.url)
    try:
        report = latest_report(engine)
    finally:
        engine.dispose()
    if report is not None:
        typer.echo(report)
    if not state.is_completed():
        typer.echo(f"quality: {state.message}", err=True)
        raise typer.Exit(code=1)


def retrain(
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="data clock, UTC (default: newest transaction)")
    ] = None,
    eval_days: Annotated[float | None, typer.Option("--eval-days", min=1, help="evaluation window in days")] = None,
    train_days: Annotated[
        float | None, typer.Option("--train-days", min=1, help="labelled history to train on")
    ] = None,
) -> None:
    """Train a challenger on true labels and promote it if it passes the gate."""
    from fraud_core.settings import get_settings

    quiet_prefect()
    require_migrated_warehouse(get_settings().database.url)
    use_running_prefect_server()
    # imported when the command runs (and after the settings above): `fraud-detector --help` stays fast
    from flows.retrain import retrain as retrain_flow

    result = _state_result(retrain_flow(as_of=as_of, eval_days=eval_days, train_days=train_days, return_state=True))
    if result is None:
        raise typer.Exit(code=1)
    verdict = "promoted" if result["promoted"] else "not promoted"
    typer.echo(f"retrain: version {result['challenger_version']} {verdict}")
    for reason in result["reasons"]:
        typer.echo(f"  - {reason}")


def models() -> None:
    """Show which versions hold the champion and challenger aliases."""
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.ml import registry
    from fraud_core.settings import get_settings

    settings = get_settings()
    store = _missing_sqlite_store(settings.mlflow.tracking_uri)
    if store is not None:
        raise UserError(
            f"no MLflow store at {store} (looked there from MLFLOW_TRACKING_URI / FRAUD_VAR_DIR): "
            "run `make up` or `fraud-detector train` first, or point MLFLOW_TRACKING_URI at your store"
        )
    client = registry.mlflow_client(settings.mlflow)
    name = settings.mlflow.registered_model_name
    held = registry.aliases(name, client=client)
    if not held:
        typer.echo(f"{name}: no version holds an alias")
    for alias, version in sorted(held.items()):
        typer.echo(f"{name}@{alias}: version {version}")


def _missing_sqlite_store(uri: str) -> str | None:
    """The path of a SQLite tracking store that does not exist (MLflow would create it silently)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix) :]
    return None if path == ":memory:" or os.path.exists(path) else path


def promote(
    version: Annotated[str, typer.Argument(help="the registered version to make champion (a rollback too)")],
    reason: Annotated[str, typer.Option("--reason", help="why, for the audit trail")] = "manual promotion",
) -> None:
    """Make a version champion by hand (e.g. a rollback); recorded in the promotion audit.

    The registry's ``champion`` alias (what serving follows) and the warehouse's (what the dashboard
    and the reports show) move together, and the promotion audit gets a row.
    """
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.db import make_engine
    from fraud_core.pipeline.promotion import PromotionError, promote_by_hand
    from fraud_core.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings.database.url)
    try:
        done = promote_by_hand(version, reason=reason, settings=settings, engine=engine, by="cli")
    except PromotionError as exc:
        raise UserError(str(exc)) from exc
    finally:
        engine.dispose()
    typer.echo(f"promote: {done.name} version {done.version} is champion (was {done.previous or 'none'})")


def register(app: typer.Typer) -> None:
    """Add the quality and retraining commands to the CLI."""
    app.command(name="quality")(quality)
    app.command(name="retrain")(retrain)
    app.command(name="models")(models)
    app.command(name="promote")(promote)
