"""One error shape for every 4xx and 5xx: ``{"status_code", "detail", "errors": [{field, reason, row}]}``.

Bad input is always a 4xx that names the field: Litestar's decoding errors (wrong type, missing
field, out-of-range value) become 422 with the field's name, row rejections from
:func:`fraud_core.data.to_canonical` (:class:`InvalidRecordsError`) become 422 with row and field, an oversized body 413,
a body that is not JSON (or not UTF-8, or nested too deep: :mod:`webapp.body_guard`) 400.

A warehouse that is down, frozen or locked, a busy scoring pool or a missing model is a 503 with
``Retry-After``, never a 500: :class:`~fraud_core.db.availability.WarehouseUnavailableError` and
:class:`~fraud_core.pipeline.online_scoring.ScoringBusyError` from the scorer, and any database
error that says the warehouse could not answer (:func:`~fraud_core.db.availability.is_unavailable`)
from anywhere else. Those are logged once per cause and minute (:class:`LogLimiter`), not as a
traceback per request. Anything else unexpected is a 500 whose body says nothing about internals
(the log has the traceback, also rate-limited).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from fraud_core.db.availability import WarehouseUnavailableError, is_unavailable, one_line
from fraud_core.ml.champion import ModelUnavailableError
from fraud_core.pipeline.decisioning import PolicyInputError, PolicyNotFoundError
from fraud_core.pipeline.online_scoring import InvalidRecordsError, ScoringBusyError
from webapp.schemas import ErrorOut, FieldError

log = logging.getLogger(__name__)

#: ``Retry-After`` of a 503 whose cause gives none.
DEFAULT_RETRY_AFTER_SECONDS = 1


class LogLimiter:
    """At most one log line per key and period; the next one says how many were left out.

    Args:
        period: seconds between two lines of the same key.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, period: float = 60.0, clock: Any = time.monotonic) -> None:
        self.period = period
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, int]:
        """(log this one?, how many of this key were suppressed since the last line)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)


_LIMITER = LogLimiter()


def _unavailable(detail: str, retry_after: float) -> Response[ErrorOut]:
    seconds = max(1, round(retry_after))
    return Response(
        ErrorOut(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail=detail),
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        media_type=MediaType.JSON,
        headers={"Retry-After": str(seconds)},
    )


_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_ROW_RE = re.compile(r"^\.transactions\[(?P<row>\d+)\](?P<rest>.*)$")


class ServiceUnavailable(HTTPException):
    status_code = 503


def _field_error(message: str, key: str | None) -> FieldError:
    """Turn a msgspec/Litestar message (``Expected `float`, got `str` - at `$.amt```) into a field error."""
    reason = message
    path = None
    match = _PATH_RE.search(message)
    if match:
        path = match.group("path")
        reason = message[: match.start()]
    elif key and key not in ("body", "data"):
        path = "." + key
    row = None
    field = "body"
    if path:
        rowmatch = _ROW_RE.match(path)
        if rowmatch:
            row = int(rowmatch.group("row"))
            path = rowmatch.group("rest")
        field = path.lstrip(".") or "body"
    missing = re.match(r"^Object missing required field `(?P<name>[^`]+)`$", reason)
    if missing:
        name = missing.group("name")
        field = f"{field}.{name}" if field != "body" else name
        reason = "missing"
    return FieldError(field=field, reason=reason, row=row)


def _validation_handler(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorOut]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [_field_error(str(item.get("message", "")), item.get("key")) for item in extra if isinstance(item, dict)]
    # Litestar words an empty body as the KeyError of its "data" argument
    errors = [
        FieldError(field="body", reason="missing: a JSON object is required") if e.reason == "'data'" else e
        for e in errors
    ]
    if not errors:
        detail = str(exc.detail or "")
        if "JSON" in detail or "decode" in detail.lower() or "malformed" in detail.lower():
            errors = [FieldError(field="body", reason="not valid JSON")]
        else:
            errors = [FieldError(field="body", reason=detail or "invalid request")]
    return Response(
        ErrorOut(status_code=HTTP_422_UNPROCESSABLE_ENTITY, detail="invalid request body", errors=errors),
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        media_type=MediaType.JSON,
    )


def _invalid_records_handler(_: Request[Any, Any, Any], exc: InvalidRecordsError) -> Response[ErrorOut]:
    errors = [
        FieldError(field=field, reason=reason, row=rejection.row)
        for rejection in exc.rejections
        for field, reason in (rejection.errors or ((rejection.field, rejection.reason),))
    ]
    return Response(
        ErrorOut(status_code=HTTP_422_UNPROCESSABLE_ENTITY, detail="invalid transaction", errors=errors),
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        media_type=MediaType.JSON,
    )


def _no_model_handler(_: Request[Any, Any, Any], exc: ModelUnavailableError) -> Response[ErrorOut]:
    return _unavailable(f"no model loaded: {exc}", DEFAULT_RETRY_AFTER_SECONDS)


def _warehouse_handler(_: Request[Any, Any, Any], exc: WarehouseUnavailableError) -> Response[ErrorOut]:
    # the warehouse's state changes are logged where it is tracked, once each
    return _unavailable(str(exc), exc.retry_after)


def _busy_handler(request: Request[Any, Any, Any], exc: ScoringBusyError) -> Response[ErrorOut]:
    allowed, suppressed = _LIMITER.allow("busy")
    if allowed:
        log.warning("503 on %s %s: %s (%d more like it not logged)", request.method, request.url.path, exc, suppressed)
    return _unavailable(str(exc), exc.retry_after)


def _http_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorOut]:
    errors: list[FieldError] = []
    if exc.status_code == 413:
        errors = [FieldError(field="body", reason="request body too large")]
    elif exc.status_code == 400:
        errors = [FieldError(field="body", reason=f"not valid JSON ({exc.detail})")]
    elif exc.status_code == 503:
        headers = {"Retry-After": str(DEFAULT_RETRY_AFTER_SECONDS), **(exc.headers or {})}
        return Response(
            ErrorOut(status_code=exc.status_code, detail=str(exc.detail)),
            status_code=exc.status_code,
            media_type=MediaType.JSON,
            headers=headers,
        )
    return Response(
        ErrorOut(status_code=exc.status_code, detail=str(exc.detail), errors=errors),
        status_code=exc.status_code,
        media_type=MediaType.JSON,
        headers=exc.headers,
    )


def _internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorOut]:
    if "client disconnected" in str(exc):  # nobody is listening for this answer; not our fault
        log.debug("client went away during %s %s", request.method, request.url.path)
        return Response(
            ErrorOut(status_code=HTTP_500_INTERNAL_SERVER_ERROR, detail="internal server error"),
            status_code=HTTP_500_INTERNAL_SERVER_ERROR,
            media_type=MediaType.JSON,
        )
    if is_unavailable(exc):
        cause = one_line(exc)
        allowed, suppressed = _LIMITER.allow(f"db:{type(exc).__name__}")
        if allowed:
            log.warning(
                "503 on %s %s, the warehouse could not answer: %s (%d more like it not logged)",
                request.method,
                request.url.path,
                cause,
                suppressed,
            )
        return _unavailable(f"the warehouse is unavailable: {cause}", DEFAULT_RETRY_AFTER_SECONDS)
    allowed, suppressed = _LIMITER.allow(f"500:{type(exc).__name__}:{request.url.path}")
    if allowed:
        log.error(
            "unhandled error on %s %s (%d more like it not logged)",
            request.method,
            request.url.path,
            suppressed,
            exc_info=exc,
        )
    return Response(
        ErrorOut(status_code=HTTP_500_INTERNAL_SERVER_ERROR, detail="internal server error"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
        media_type=MediaType.JSON,
    )


def _policy_input_handler(_: Request[Any, Any, Any], exc: PolicyInputError) -> Response[ErrorOut]:
    where = f" (column {exc.column})" if exc.column is not None else ""
    return Response(
        ErrorOut(
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            detail="invalid rule or list entry",
            errors=[FieldError(field=exc.field, reason=f"{exc.reason}{where}")],
        ),
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        media_type=MediaType.JSON,
    )


def _policy_missing_handler(_: Request[Any, Any, Any], exc: PolicyNotFoundError) -> Response[ErrorOut]:
    return Response(ErrorOut(status_code=404, detail=str(exc)), status_code=404, media_type=MediaType.JSON)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    PolicyInputError: _policy_input_handler,
    PolicyNotFoundError: _policy_missing_handler,
    ValidationException: _validation_handler,
    InvalidRecordsError: _invalid_records_handler,
    ModelUnavailableError: _no_model_handler,
    WarehouseUnavailableError: _warehouse_handler,
    ScoringBusyError: _busy_handler,
    HTTPException: _http_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: _internal_handler,
}
