"""``fraud-detector settings``: every setting as a Markdown table, printed, checked or written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fraud_cli.errors import UserError


def settings_table(
    check: Annotated[
        Path | None, typer.Option("--check", help="fail unless this file's settings table is the generated one")
    ] = None,
    write: Annotated[Path | None, typer.Option("--write", help="replace this file's settings table")] = None,
) -> None:
    """Print every setting (environment variable, default, meaning) as a Markdown table."""
    # imported when the command runs: `fraud-detector --help` stays fast
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
    """Add ``settings`` to the ``fraud-detector`` command."""
    app.command("settings")(settings_table)
