"""``fraud-detector rules ...`` and ``fraud-detector lists ...``: the decision policy from the shell.

Changes are checked by the pipeline (a bad expression is refused with its column and reason) and
recorded in the change log under ``--author`` (default: ``cli:<login name>``). A running web app or
flow picks them up within ``DECISIONS_RELOAD_CHECK_SECONDS``.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fraud_cli.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

rules_app = typer.Typer(help="Decision rules: add, list, disable, backtest.", no_args_is_help=True)
lists_app = typer.Typer(help="Allow and block lists of cards, merchants and categories.", no_args_is_help=True)

DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: DATABASE_URL)")]
Author = Annotated[str | None, typer.Option("--author", help="who makes the change (default: cli:<login name>)")]


def _author(author: str | None) -> str:
    if author:
        return author
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _engine(url: str | None) -> Engine:
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.db.engine import make_engine
    from fraud_core.settings import get_settings

    return make_engine(url or get_settings().database.url, role="flow")


def _date(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option}: {text!r} is not a date (YYYY-MM-DD or an ISO date-time)") from None


def _run(function: Any, *args: Any, **kwargs: Any) -> Any:
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.pipeline.decisioning import PolicyInputError, PolicyNotFoundError

    try:
        return function(*args, **kwargs)
    except PolicyInputError as exc:
        where = f" (column {exc.column})" if exc.column is not None else ""
        raise UserError(f"{exc.field}: {exc.reason}{where}") from None
    except PolicyNotFoundError as exc:
        raise UserError(str(exc)) from None


@rules_app.command("add")
def rules_add(
    name: Annotated[str, typer.Option("--name", help="the rule's unique name")],
    when: Annotated[str, typer.Option("--when", help='the condition, e.g. "amount > 800 and score > 0.2"')],
    action: Annotated[str, typer.Option("--action", help="approve, review or decline")],
    shadow: Annotated[bool, typer.Option("--shadow", help="evaluate and record only, never act")] = False,
    priority: Annotated[int, typer.Option("--priority", help="smaller is evaluated first")] = 100,
    author: Author = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a rule, or save a new version of the rule of that name."""
    from fraud_core.pipeline import decisioning

    engine = _engine(database_url)
    try:
        rule = _run(
            decisioning.save_rule,
            engine,
            name=name,
            when=when,
            action=action,
            priority=priority,
            mode="shadow" if shadow else "active",
            author=_author(author),
        )
    finally:
        engine.dispose()
    typer.echo(f"rules add: {rule.name} ({rule.mode}, {rule.action}, priority {rule.priority}): {rule.when}")


@rules_app.command("list")
def rules_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show every rule, disabled ones too."""
    from fraud_core.pipeline import decisioning

    engine = _engine(database_url)
    try:
        rules = decisioning.show_rules(engine)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rules], indent=2))
        return
    if not rules:
        typer.echo("no rules")
    for r in rules:
        state = r.mode if r.enabled else "disabled"
        typer.echo(f"{r.priority:>6}  {r.name:<24} {state:<8} {r.action:<8} {r.when}")


@rules_app.command("disable")
def rules_disable(
    name: Annotated[str, typer.Argument(help="the rule's name")],
    author: Author = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Disable a rule (it is kept, and a later `rules add` of that name enables it again)."""
    from fraud_core.pipeline import decisioning

    engine = _engine(database_url)
    try:
        _run(decisioning.disable_rule, engine, name, author=_author(author))
    finally:
        engine.dispose()
    typer.echo(f"rules disable: {name} disabled")


@rules_app.command("backtest")
def rules_backtest(
    when: Annotated[str, typer.Option("--when", help="the condition to try (saved or not)")],
    start: Annotated[str, typer.Option("--from", help="first day (YYYY-MM-DD, UTC), inclusive")],
    end: Annotated[str, typer.Option("--to", help="last day (YYYY-MM-DD, UTC), exclusive")],
    action: Annotated[str, typer.Option("--action", help="review or decline")] = "review",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """What a rule would have caught over the stored transactions of a period."""
    from fraud_core.pipeline.backtest import backtest_rule

    first, last = _date(start, "--from"), _date(end, "--to")
    assert first is not None and last is not None
    engine = _engine(database_url)
    try:
        result = _run(backtest_rule, engine, when=when, start=first, end=last, action=action)
    finally:
        engine.dispose()
    figures = result.as_dict()
    if as_json:
        typer.echo(json.dumps(figures))
        return
    for key, value in figures.items():
        typer.echo(f"{key:<20} {value if not isinstance(value, float) else round(value, 4)}")


@lists_app.command("add")
def lists_add(
    kind: Annotated[str, typer.Argument(help="allow or block")],
    field: Annotated[str, typer.Argument(help="card, merchant or category")],
    value: Annotated[str, typer.Argument(help="a card number (tokenised at once) or token, a merchant, a category")],
    reason: Annotated[str, typer.Option("--reason", help="why it is on the list")],
    expires: Annotated[str | None, typer.Option("--expires", help="when it stops applying (YYYY-MM-DD, UTC)")] = None,
    author: Author = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Put a card, a merchant or a category on the allow or block list."""
    from fraud_core.pipeline import decisioning
    from fraud_core.settings import get_settings

    until = _date(expires, "--expires")
    engine = _engine(database_url)
    try:
        entry = _run(
            decisioning.add_list_entry,
            engine,
            kind=kind,
            field=field,
            value=value,
            reason=reason,
            expires_at=until,
            author=_author(author),
            token_key=get_settings().security.card_token_key.get_secret_value(),
        )
    finally:
        engine.dispose()
    shown = entry.value if entry.field != "card" else f"token {entry.value[:12]}…"
    typer.echo(f"lists add: {entry.field} {shown} on the {entry.list} list")


@lists_app.command("remove")
def lists_remove(
    kind: Annotated[str, typer.Argument(help="allow or block")],
    field: Annotated[str, typer.Argument(help="card, merchant or category")],
    value: Annotated[str, typer.Argument(help="a card number or token, a merchant, a category")],
    author: Author = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Take a value off a list."""
    from fraud_core.pipeline import decisioning
    from fraud_core.settings import get_settings

    engine = _engine(database_url)
    try:
        _run(
            decisioning.remove_list_entry,
            engine,
            kind=kind,
            field=field,
            value=value,
            author=_author(author),
            token_key=get_settings().security.card_token_key.get_secret_value(),
        )
    finally:
        engine.dispose()
    typer.echo(f"lists remove: {field} removed from the {kind} list")


@lists_app.command("show")
def lists_show(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show both lists (cards as tokens; expired entries too, marked)."""
    from fraud_core.pipeline import decisioning

    engine = _engine(database_url)
    try:
        entries = decisioning.show_lists(engine)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    if not entries:
        typer.echo("both lists are empty")
    now = decisioning.naive_utc_now()
    for e in entries:
        expired = e.expires_at is not None and e.expires_at.replace(tzinfo=None) <= now
        until = f" until {e.expires_at:%Y-%m-%d}" if e.expires_at else ""
        typer.echo(
            f"{e.list:<6} {e.field:<9} {e.value:<40} {e.reason} ({e.author}{until}){' EXPIRED' if expired else ''}"
        )


def register(app: typer.Typer) -> None:
    """Add ``rules`` and ``lists`` to the ``fraud-detector`` command."""
    app.add_typer(rules_app, name="rules")
    app.add_typer(lists_app, name="lists")
