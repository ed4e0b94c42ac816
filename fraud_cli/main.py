"""Entry point of the ``fraud-detector`` console script.

Each area registers its subcommands from its own module (``register(app)``), and imports its heavy
dependencies inside the command bodies so that ``fraud-detector --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from fraud_cli.errors import UserError, one_line
from fraud_core import __version__

app = typer.Typer(
    name="fraud-detector",
    help="Real-time credit-card fraud detection: warehouse, training, live pipeline, API and dashboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Real-time credit-card fraud detection."""


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


#: Modules that add subcommands, by area.
COMMAND_MODULES = (
    "fraud_cli.db_commands",  # init-db, import
    "fraud_cli.ml_commands",  # train, evaluate
    "fraud_cli.source_commands",  # source
    "fraud_cli.serve_commands",  # serve
    "fraud_cli.quality_commands",  # quality, retrain, models, promote
    "fraud_cli.up_commands",  # up, bootstrap
    "fraud_cli.worker_commands",  # worker
    "fraud_cli.settings_commands",  # settings
    "fraud_cli.case_commands",  # cases
    "fraud_cli.decision_commands",  # rules, lists
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def _expected_errors() -> tuple[type[BaseException], ...]:
    # imported only when an error is to be matched: `fraud-detector --help` stays fast
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError

    from fraud_core.data import DataFormatError

    return (UserError, DataFormatError, ValidationError, OperationalError, FileNotFoundError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected errors print one line on stderr and exit 2, usage errors exit 2 too."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    _register_all()
    try:
        app(args=argv)  # standalone mode: prints usage errors and raises SystemExit
    except SystemExit:
        # Caught first: the clause below imports pydantic, SQLAlchemy and pandas to match (seconds),
        # which `--help` and every command's normal exit (a SystemExit) must not pay.
        raise
    except _expected_errors() as exc:
        typer.echo(f"error: {one_line(exc)}", err=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
