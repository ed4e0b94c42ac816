"""``fraud-detector cases``: the case queue from the terminal (read-only; analysts act in the dashboard)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from fraud_cli.errors import UserError

cases_app = typer.Typer(help="Cases: the analysts' queue.", no_args_is_help=True)

STATES = ("active", "open", "in_review", "resolved_fraud", "resolved_legitimate")


@cases_app.command("list")
def list_cases(
    state: Annotated[
        str | None, typer.Option("--state", help=f"one of {', '.join(STATES)} (default: every state)")
    ] = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="only this analyst's cases")] = None,
    card_last4: Annotated[str | None, typer.Option("--card-last4", help="only cards ending in these 4 digits")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="at most this many")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Cases by money at risk, highest first."""
    if state is not None and state not in STATES:
        raise UserError(f"--state must be one of {', '.join(STATES)}, not {state!r}")
    if card_last4 is not None and not (len(card_last4) == 4 and card_last4.isascii() and card_last4.isdigit()):
        raise UserError(f"--card-last4 must be 4 digits, not {card_last4!r}")
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.db import make_engine
    from fraud_core.pipeline.cases import list_cases as read_cases
    from fraud_core.settings import get_settings

    engine = make_engine(get_settings().database.url)
    try:
        found = read_cases(engine, state=state, assignee=assignee, card_last4=card_last4, limit=limit)
    finally:
        engine.dispose()
    if as_json:
        for case in found:
            sys.stdout.write(json.dumps(case.model_dump(mode="json")) + "\n")
        return
    if not found:
        typer.echo("no case")
        return
    typer.echo(
        f"{'id':>6}  {'state':<19} {'card':<9} {'txns':>4} {'at risk':>12} {'priority':>10}  {'assignee':<12} opened"
    )
    for c in found:
        typer.echo(
            f"{c.id:>6}  {c.state:<19} ****{c.card_last4:<5} {c.n_transactions:>4} {c.amount_at_risk:>12,.2f} "
            f"{c.priority:>10,.2f}  {c.assignee or '-':<12} {c.opened_at:%Y-%m-%d %H:%M}"
        )


def register(app: typer.Typer) -> None:
    """Add ``cases`` to the ``fraud-detector`` command."""
    app.add_typer(cases_app, name="cases")
