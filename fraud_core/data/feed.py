"""Reading the transaction source over HTTP: bounded retries with backoff, pages up to a cap.

The source speaks the cursor protocol of ``fraud-detector source`` (``GET /transactions`` and
``GET /labels`` with ``after`` and ``limit``, answering ``{"transactions" | "labels": [...],
"next_cursor": ..., "has_more": ...}``), or the real-time format (``GET
/current-transactions``). Anything else (a refused connection, a timeout, a 5xx, a body that is not
the expected JSON) is retried a bounded number of times and then raised as :class:`SourceError`:
the caller fails the run visibly and the next run starts again from the stored cursor.

Sources that break the protocol are bounded too:

* **stuck** (``has_more`` true, but the cursor does not move, or pages come back empty): after
  ``max_stalled_pages`` such pages the extraction stops with what it read before and says why
  (:attr:`Extracted.stalled`); repeated items are never taken twice. The caller stores the
  progress and fails the run with that reason.
* **sending more than asked** (a page longer than its ``limit``): the page is cut to the limit,
  so a run never takes more than its cap, and the stored cursor becomes a *held* cursor, the
  source's cursor plus how many of its items were taken (:func:`held_cursor`). The next run asks
  from the same source cursor again and skips what was taken: nothing is lost or taken twice.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import pandas as pd

from fraud_core.data import DataFormatError, parse_realtime_payload
from fraud_core.settings import SourceSettings

logger = logging.getLogger(__name__)

Feed = Literal["transactions", "labels"]

#: Statuses worth another try: the server is busy, restarting or behind a proxy that is.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: The longest single wait between two attempts.
MAX_BACKOFF_SECONDS = 30.0


class SourceError(RuntimeError):
    """The source could not be read (after the retries, or at once for a request it refuses).

    Attributes:
        attempts: how many requests were made.
        retryable: whether a later run may succeed without anyone changing anything.
    """

    def __init__(self, message: str, *, attempts: int, retryable: bool) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.retryable = retryable


@dataclass(slots=True)
class Extracted:
    """What one extraction read: records after ``start_cursor``, up to ``next_cursor``.

    Attributes:
        feed: ``transactions`` or ``labels``.
        records: the items as the source sent them (raw: they may hold card numbers).
        start_cursor: the cursor the extraction started from.
        next_cursor: the cursor to store once the records are stored.
        pages: pages read.
        requests: HTTP requests made (retries included).
        has_more: the source said more was released than the cap allowed.
        received_at: when the last page arrived (UTC).
        seconds: time spent reading.
        stalled: why the extraction stopped early on a stuck source (``None``: it did not).
        oversized: pages longer than asked (cut to their limit).
    """

    feed: Feed
    records: list[dict[str, Any]]
    start_cursor: str | None
    next_cursor: str | None
    pages: int = 0
    requests: int = 0
    has_more: bool = False
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0
    stalled: str | None = None
    oversized: int = 0

    def __len__(self) -> int:
        return len(self.records)


#: Prefix of a held cursor: ``fd-held:<taken>:<source cursor>`` (see the module docstring).
HELD_PREFIX = "fd-held:"


def held_cursor(cursor: str | None, taken: int) -> str:
    """A stored cursor meaning "``taken`` items after the source's ``cursor`` are already stored"."""
    return f"{HELD_PREFIX}{taken}:{cursor or ''}"


def split_cursor(stored: str | None) -> tuple[str | None, int]:
    """(the source's cursor, items after it already taken) of a stored cursor."""
    if stored is None or not stored.startswith(HELD_PREFIX):
        return stored, 0
    taken, _, cursor = stored.removeprefix(HELD_PREFIX).partition(":")
    return (cursor or None), int(taken)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


class SourceClient:
    """An HTTP client for the transaction source.

    Args:
        base_url: the source (``API_URL``).
        timeout: seconds for connecting and for each read.
        retries: extra attempts after a failed request (``0``: one attempt only).
        backoff: the first wait; it doubles on each retry (with a little jitter), capped at 30 s.
        page_size: items per request.
        max_stalled_pages: pages without progress (same cursor, or empty while ``has_more``)
            after which an extraction stops and reports the source as stuck.
        transport: an httpx transport (tests).
        sleep: how to wait (tests pass a recorder).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 1.0,
        page_size: int = 1000,
        max_stalled_pages: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0 or page_size < 1 or max_stalled_pages < 1:
            raise ValueError("retries must be >= 0, page_size and max_stalled_pages >= 1")
        self.max_stalled_pages = max_stalled_pages
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.page_size = page_size
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"accept": "application/json"},
        )

    @classmethod
    def from_settings(cls, source: SourceSettings, **kwargs: Any) -> SourceClient:
        """A client configured by the ``source`` settings group."""
        return cls(
            source.api_url,
            timeout=source.timeout_seconds,
            retries=source.retries,
            backoff=source.retry_backoff_seconds,
            page_size=source.page_size,
            max_stalled_pages=source.max_stalled_pages,
            **kwargs,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SourceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    def _wait(self, attempt: int) -> None:
        delay = min(MAX_BACKOFF_SECONDS, self.backoff * 2**attempt)
        self._sleep(delay * (1 + random.uniform(0, 0.1)) if delay > 0 else 0.0)

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, *, check: Callable[[Any], None] | None = None
    ) -> tuple[Any, int]:
        """GET a JSON document, retrying what may pass (transport errors, 408/425/429/5xx, bad JSON).

        Args:
            path: the endpoint.
            params: query parameters.
            check: raises ``ValueError`` when the document lacks the expected shape (retried too:
                a truncated body is usually a transient fault).

        Returns:
            The document and the number of requests it took.

        Raises:
            SourceError: after ``1 + retries`` failed attempts, or at once on another 4xx.
        """
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._wait(attempt - 1)
            try:
                response = self._client.get(path, params=params)
            except httpx.TransportError as exc:  # refused, reset, timed out
                last = _one_line(exc) if str(exc) else type(exc).__name__
                logger.warning("source %s%s attempt %d failed: %s", self.base_url, path, attempt + 1, last)
                continue
            if response.status_code in RETRY_STATUSES:
                last = f"HTTP {response.status_code}"
                logger.warning("source %s%s attempt %d failed: %s", self.base_url, path, attempt + 1, last)
                continue
            if response.is_error:
                raise SourceError(
                    f"source {self.base_url}{path} refused the request: HTTP {response.status_code} {response.text[:200]}",
                    attempts=attempt + 1,
                    retryable=False,
                )
            try:
                document = json.loads(response.content)
                if check is not None:
                    check(document)
            except ValueError as exc:
                last = f"malformed answer: {_one_line(exc)}"
                logger.warning("source %s%s attempt %d failed: %s", self.base_url, path, attempt + 1, last)
                continue
            return document, attempt + 1
        raise SourceError(
            f"source {self.base_url}{path} failed after {self.retries + 1} attempt(s): {last}",
            attempts=self.retries + 1,
            retryable=True,
        )

    # ------------------------------------------------------------------ feeds

    def extract(self, feed: Feed, after: str | None, *, max_items: int) -> Extracted:
        """Everything released after ``after`` (a stored cursor, maybe held), in pages, up to ``max_items``.

        Raises:
            SourceError: a page could not be read; nothing of this extraction should be stored.
        """
        started = time.perf_counter()
        out = Extracted(feed=feed, records=[], start_cursor=after, next_cursor=after)
        cursor, skip = split_cursor(after)
        stalled = 0
        while len(out.records) < max_items:
            room = min(self.page_size, max_items - len(out.records))
            # after a held cursor the items already taken come first again: ask for them too
            params: dict[str, Any] = {"limit": room + skip}
            if cursor is not None:
                params["after"] = cursor
            document, requests = self.get_json(f"/{feed}", params, check=_page_check(feed))
            out.requests += requests
            out.pages += 1
            items = document[feed]
            next_cursor = document["next_cursor"]
            out.has_more = bool(document.get("has_more", False))
            if len(items) > room + skip:
                # The source ignored the limit: take what was asked, and remember how far into its
                # page this run got; the next run resumes there.
                logger.warning(
                    "source %s/%s sent %d items when asked for %d; taking %d, the next run continues",
                    self.base_url,
                    feed,
                    len(items),
                    room + skip,
                    room,
                )
                out.oversized += 1
                out.records.extend(items[skip : skip + room])
                out.next_cursor = held_cursor(cursor, skip + room)
                out.has_more = True
                break
            items = items[skip:]
            skip = 0
            if out.has_more and (next_cursor == cursor or not items):
                # no progress: the same page again, or an empty one that says there is more
                stalled += 1
                if stalled >= self.max_stalled_pages:
                    out.stalled = (
                        f"source stuck: {stalled} pages in a row without progress after cursor {cursor!r} "
                        f"(has_more true, {'cursor unchanged' if next_cursor == cursor else 'no items'})"
                    )
                    break
                if next_cursor == cursor:
                    continue  # the items repeat the cursor's page: never take them twice
            else:
                stalled = 0
            out.records.extend(items)
            cursor = next_cursor
            out.next_cursor = cursor
            if not out.has_more:
                break
        out.received_at = datetime.now(UTC)
        out.seconds = time.perf_counter() - started
        return out

    def current_transactions(self) -> pd.DataFrame:
        """The real-time endpoint: the transaction(s) released now, as a raw frame (label included).

        Raises:
            SourceError: the endpoint could not be read or did not answer a split frame.
        """
        document, requests = self.get_json("/current-transactions", check=_realtime_check)
        try:
            return parse_realtime_payload(document)
        except DataFormatError as exc:  # pragma: no cover - _realtime_check parsed it already
            raise SourceError(str(exc), attempts=requests, retryable=True) from exc


def _page_check(feed: Feed) -> Callable[[Any], None]:
    def check(document: Any) -> None:
        if not isinstance(document, dict):
            raise ValueError(f"expected a JSON object, got {type(document).__name__}")
        items = document.get(feed)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValueError(f"'{feed}' is not a list of objects")
        cursor = document.get("next_cursor")
        if not isinstance(cursor, str) or not cursor:
            raise ValueError("no next_cursor")

    return check


def _realtime_check(document: Any) -> None:
    try:
        parse_realtime_payload(document)
    except DataFormatError as exc:
        raise ValueError(str(exc)) from exc
