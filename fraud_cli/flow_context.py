"""What the commands that run a flow in this process (``quality``, ``retrain``) set up first.

* The Prefect server: ``PREFECT_API_URL`` when set; else the one ``fraud-detector up`` runs, when it
  answers on its default address (so the run appears in the UI that is open); else Prefect's own
  temporary server, said in one line (its runs vanish with it).
* A quiet terminal: the report or the outcome is what the command prints. Prefect's run logs and
  any traceback still go to the server (the UI shows them); here only warnings of our own code.
* The warehouse: migrated to this code's schema, or a clear line saying what to run.
"""

from __future__ import annotations

import logging
import os

import httpx
import typer

from fraud_cli.errors import UserError

#: Where ``fraud-detector up`` serves Prefect's API by default (fraud_cli/up/options.py).
UP_PREFECT_API = "http://127.0.0.1:4200/api"


def use_running_prefect_server(*, timeout: float = 0.5) -> str | None:
    """Point Prefect at ``up``'s server when nothing else is configured; the API URL used, if any."""
    if configured := os.environ.get("PREFECT_API_URL"):
        return configured
    try:
        up = httpx.get(f"{UP_PREFECT_API}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        up = False
    if up:
        os.environ["PREFECT_API_URL"] = UP_PREFECT_API
        return UP_PREFECT_API
    typer.echo(
        "no Prefect server is running (PREFECT_API_URL unset, none at 127.0.0.1:4200): "
        "the run goes to a temporary one and will not appear in a UI",
        err=True,
    )
    return None


def quiet_prefect() -> None:
    """Keep Prefect's per-request and per-run logging off the terminal (the server keeps the run logs)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    for name in ("httpx", "prefect", "docket", "uvicorn", "alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def require_migrated_warehouse(url: str) -> None:
    """Refuse to run against a warehouse that is not at this code's schema, naming the fix."""
    # imported when the command runs: `fraud-detector --help` stays fast
    from sqlalchemy.engine import make_url

    from fraud_core.db.migrate import current_revision, head_revision

    label = make_url(url).render_as_string(hide_password=True)
    current, head = current_revision(url), head_revision()
    if current is None:
        raise UserError(f"the warehouse {label} has no schema yet: run `fraud-detector init-db` (or `make up`)")
    if current != head:
        raise UserError(
            f"the warehouse {label} is at revision {current}, this code needs {head}: run `fraud-detector init-db`"
        )
