"""``fraud-detector worker``: a Prefect worker on the work pool (the image's worker command)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from fraud_cli.errors import UserError
from fraud_cli.up.options import REPO_ROOT, WORK_POOL
from fraud_core.settings import default_var_dir


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
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_cli.up.steps import deploy_all, ensure_work_pool, prefect
    from fraud_cli.up.supervisor import Supervisor, http_ok

    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        raise UserError("PREFECT_API_URL is not set: point it at the Prefect server (http://HOST:4200/api) or Cloud")
    sup = Supervisor(default_var_dir() / "logs", cwd=REPO_ROOT, echo=typer.echo)
    sup.wait_until("the Prefect API", lambda: http_ok(f"{api_url}/health"), timeout=timeout)
    ensure_work_pool(api_url, pool)
    if deploy_first:
        missing = deploy_all(sup, timeout=timeout)
        typer.echo(f"worker: deployed prefect.yaml{f' (left out: {missing})' if missing else ''}")
    argv = prefect("worker", "start", "--pool", pool, "--type", "process", *(("--name", name) if name else ()))
    typer.echo(f"worker: {' '.join(argv[1:])}")
    # The worker replaces this process: signals and the exit status are the worker's own.
    os.execv(argv[0], argv)


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the ``fraud-detector`` command."""
    app.command("worker")(worker)
