"""The source's HTTP API (Litestar).

* ``GET /transactions?after=CURSOR&limit=N``: released transactions after a cursor, no labels.
* ``GET /labels?after=CURSOR&limit=N``: ``is_fraud`` labels released ``label_delay`` after their
  transaction.
* ``GET /current-transactions``: the latest transaction in the real-time format.
* ``GET /health``: counts only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from litestar import Litestar, MediaType, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.params import Parameter

from simulator.feed import MAX_LIMIT, CursorError, Page, ReplayFeed

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="items per page")]
Cursor = Annotated[str | None, Parameter(description="the next_cursor of the previous page; omit to start")]


def _page(page: Callable[[str | None, int], Page], after: str | None, limit: int) -> Response[bytes]:
    try:
        return Response(page(after, limit).body, media_type=MediaType.JSON)
    except CursorError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


@get("/transactions", sync_to_thread=False)
def transactions(state: State, after: Cursor = None, limit: Limit = 1000) -> Response[bytes]:
    """Released transactions after ``after``, in event-time order, without labels."""
    return _page(state.feed.transactions_page, after, limit)


@get("/labels", sync_to_thread=False)
def labels(state: State, after: Cursor = None, limit: Limit = 1000) -> Response[bytes]:
    """Labels whose delay has passed, after ``after``, in release order."""
    return _page(state.feed.labels_page, after, limit)


@get("/current-transactions", sync_to_thread=False)
def current_transactions(state: State) -> Response[str]:
    """The latest released transaction as a real-time API sends it (a JSON string of a split frame)."""
    feed: ReplayFeed = state.feed
    return Response(feed.current_transaction(), media_type=MediaType.JSON)


@get("/health", sync_to_thread=False)
def health(state: State) -> dict[str, Any]:
    """How much the feed holds and has released."""
    feed: ReplayFeed = state.feed
    return {"status": "ok", **feed.status()}


def create_app(feed: ReplayFeed) -> Litestar:
    """The source's ASGI app serving ``feed``."""
    return Litestar(
        route_handlers=[transactions, labels, current_transactions, health],
        state=State({"feed": feed}),
        openapi_config=None,
    )
