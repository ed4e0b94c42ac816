"""One error shape for every 4xx and 5xx: ``{"status_code", "detail", "errors": [{field, reason, row}]}``.

Bad input is always a 4xx that names the field: Litestar's decoding errors (wrong type, missing
field, out-of-range value) become 422 with the field's name, row rejections from
:func:`fraud_core.data.to_canonical` (:class:`InvalidRecordsError`) become 422 with row and field, an oversized body 413. Anything
unexpected is a 500 whose body says nothing about internals (the log has the traceback).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from fraud_core.ml.champion import ModelUnavailableError
from fraud_core.pipeline.online_scoring import InvalidRecordsError
from webapp.schemas import ErrorOut, FieldError

log = logging.getLogger(__name__)

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
    return Response(
        ErrorOut(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail=f"no model loaded: {exc}"),
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        media_type=MediaType.JSON,
    )


def _http_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorOut]:
    errors: list[FieldError] = []
    if exc.status_code == 413:
        errors = [FieldError(field="body", reason="request body too large")]
    elif exc.status_code == 400:
        errors = [FieldError(field="body", reason=f"not valid JSON ({exc.detail})")]
    return Response(
        ErrorOut(status_code=exc.status_code, detail=str(exc.detail), errors=errors),
        status_code=exc.status_code,
        media_type=MediaType.JSON,
        headers=exc.headers,
    )


def _internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorOut]:
    if "client disconnected" in str(exc):  # nobody is listening for this answer; not our fault
        log.debug("client went away during %s %s", request.method, request.url.path)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(
        ErrorOut(status_code=HTTP_500_INTERNAL_SERVER_ERROR, detail="internal server error"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
        media_type=MediaType.JSON,
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: _validation_handler,
    InvalidRecordsError: _invalid_records_handler,
    ModelUnavailableError: _no_model_handler,
    HTTPException: _http_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: _internal_handler,
}
