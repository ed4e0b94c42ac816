"""``/rules``, ``/lists`` and ``POST /rules/backtest``: the decision policy over REST.

Reads and backtests need a scoring key when ``API_KEYS`` are set; changes need an admin key
(:func:`webapp.guards.require_admin`) and are recorded under it. Every change is checked by
:mod:`fraud_core.pipeline.decisioning` (a bad expression is a 422 naming ``when``, the column and
the reason) and is in force in every worker within ``DECISIONS_RELOAD_CHECK_SECONDS``. Blocking
calls (the warehouse, a backtest over a long period) run in a worker thread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
from litestar import Controller, Request, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from fraud_core.pipeline import decisioning
from fraud_core.pipeline.backtest import backtest_rule
from fraud_core.pipeline.decisioning import PolicyInputError
from webapp.dependencies import AppSettings, Warehouse
from webapp.guards import actor, require_admin
from webapp.schemas import (
    BacktestIn,
    BacktestOut,
    ErrorOut,
    ListEntryIn,
    ListEntryOut,
    RuleIn,
    RuleOut,
)
from webapp.security import api_key_guard

_ERRORS = {
    401: ResponseSpec(data_container=ErrorOut, description="Missing or invalid X-API-Key"),
    403: ResponseSpec(data_container=ErrorOut, description="No admin key is configured (changes only)"),
    404: ResponseSpec(data_container=ErrorOut, description="No such rule or list entry"),
    422: ResponseSpec(data_container=ErrorOut, description="Invalid input: which field, and why (with the column)"),
    503: ResponseSpec(data_container=ErrorOut, description="The warehouse is unavailable"),
}


def _when(text: str, field: str) -> datetime:
    """An ISO date or date-time as naive UTC, between 1990 and 2200 (so every later step can use it)."""
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise PolicyInputError(field, "not a date: give an ISO date (YYYY-MM-DD) or date-time") from None
    if value.year < 1990:
        raise PolicyInputError(field, "before 1990: no transaction is that old")
    if value.year > 2200:
        raise PolicyInputError(field, "in the future beyond 2200")
    return value


def _rule_out(view: decisioning.RuleView) -> RuleOut:
    return RuleOut(**{**view.as_dict()})


def _entry_out(view: decisioning.ListEntryView) -> ListEntryOut:
    return ListEntryOut(**view.as_dict())


class RulesController(Controller):
    path = "/rules"
    tags = ["decisions"]
    guards = [api_key_guard]

    @get("/", summary="Every rule", responses=_ERRORS)
    async def rules(self, engine: Warehouse) -> list[RuleOut]:
        """Every rule, disabled ones too, by priority."""
        views = await anyio.to_thread.run_sync(decisioning.show_rules, engine)
        return [_rule_out(v) for v in views]

    @post("/", summary="Save a rule", guards=[require_admin], status_code=HTTP_200_OK, responses=_ERRORS)
    async def save(self, data: JSONBody[RuleIn], engine: Warehouse, request: Request[Any, Any, Any]) -> RuleOut:
        """Check and save a rule (a new version when the name exists); refused with the column on a bad expression."""
        author = actor(request)

        def save() -> decisioning.RuleView:
            return decisioning.save_rule(
                engine,
                name=data.name,
                when=data.when,
                action=data.action,
                priority=data.priority,
                mode=data.mode,
                author=author,
            )

        return _rule_out(await anyio.to_thread.run_sync(save))

    @delete(
        "/{name:str}",
        summary="Disable a rule",
        guards=[require_admin],
        status_code=HTTP_204_NO_CONTENT,
        responses=_ERRORS,
    )
    async def disable(self, name: FromPath[str], engine: Warehouse, request: Request[Any, Any, Any]) -> None:
        """Disable a rule (kept in the change log; saving it again enables it)."""
        author = actor(request)
        await anyio.to_thread.run_sync(lambda: decisioning.disable_rule(engine, name, author=author))

    @post("/backtest", summary="Backtest a rule", status_code=HTTP_200_OK, responses=_ERRORS)
    async def backtest(self, data: JSONBody[BacktestIn], engine: Warehouse) -> BacktestOut:
        """What a rule (saved or not) would have caught over the stored transactions of a period."""
        start, end = _when(data.start, "start"), _when(data.end, "end")
        result = await anyio.to_thread.run_sync(
            lambda: backtest_rule(engine, when=data.when, start=start, end=end, action=data.action)
        )
        return BacktestOut(**result.as_dict())


class ListsController(Controller):
    path = "/lists"
    tags = ["decisions"]
    guards = [api_key_guard]

    @get("/", summary="Both lists", responses=_ERRORS)
    async def entries(self, engine: Warehouse) -> list[ListEntryOut]:
        """Every allow- and block-list entry (cards as tokens), expired ones too."""
        views = await anyio.to_thread.run_sync(decisioning.show_lists, engine)
        return [_entry_out(v) for v in views]

    @post("/", summary="Add a list entry", guards=[require_admin], status_code=HTTP_200_OK, responses=_ERRORS)
    async def add(
        self, data: JSONBody[ListEntryIn], engine: Warehouse, settings: AppSettings, request: Request[Any, Any, Any]
    ) -> ListEntryOut:
        """Put a card (number or token), a merchant or a category on a list."""
        author = actor(request)
        expires = _when(data.expires_at, "expires_at") if data.expires_at else None
        key = settings.security.card_token_key.get_secret_value()

        def add() -> decisioning.ListEntryView:
            return decisioning.add_list_entry(
                engine,
                kind=data.list,
                field=data.field,
                value=data.value,
                reason=data.reason,
                expires_at=expires,
                author=author,
                token_key=key,
            )

        return _entry_out(await anyio.to_thread.run_sync(add))

    @post(
        "/remove",
        summary="Remove a list entry",
        guards=[require_admin],
        status_code=HTTP_204_NO_CONTENT,
        responses=_ERRORS,
    )
    async def remove(
        self, data: JSONBody[ListEntryIn], engine: Warehouse, settings: AppSettings, request: Request[Any, Any, Any]
    ) -> None:
        """Take a value off a list (``reason`` is required by the body's shape and ignored)."""
        author = actor(request)
        key = settings.security.card_token_key.get_secret_value()
        await anyio.to_thread.run_sync(
            lambda: decisioning.remove_list_entry(
                engine, kind=data.list, field=data.field, value=data.value, author=author, token_key=key
            )
        )
