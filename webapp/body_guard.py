"""Hostile JSON bodies get a 400 that says what is wrong, before any parser sees them.

msgspec, which Litestar decodes bodies with, raises ``UnicodeDecodeError`` on invalid UTF-8 inside
a string and ``RecursionError`` on arrays or objects nested a few thousand deep; neither is an
HTTP error, so both would be 500s. :func:`guard_json_body` runs before the handler (a
``before_request`` hook), reads the body once (Litestar keeps it for the handler) and refuses:

* a body that is not UTF-8 (with the byte offset);
* a body nested deeper than :data:`MAX_DEPTH` (the API's deepest valid body is 3: a batch of
  objects), measured without recursion.

Everything else goes on to the normal decoding, whose errors are 400 (malformed) or 422 (wrong
type, missing field) with the field's name.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException

#: Nesting accepted in a request body; the API's own bodies are 3 deep.
MAX_DEPTH = 32

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class BadRequestBody(HTTPException):
    status_code = 400


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without recursion."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    if not brackets:
        return 0
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)))


def check_json_body(body: bytes) -> None:
    """Refuse bodies no JSON parser should be handed.

    Raises:
        BadRequestBody: not UTF-8, or nested deeper than :data:`MAX_DEPTH`.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestBody(detail=f"the body is not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return  # cannot be nested deeper than it has brackets (every /predict body)
    depth = nesting_depth(body)
    if depth > MAX_DEPTH:
        raise BadRequestBody(detail=f"the body is nested {depth} levels deep; at most {MAX_DEPTH} are accepted")


async def guard_json_body(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: check the body of requests that carry one (see the module docstring)."""
    if request.method in ("POST", "PUT", "PATCH"):
        check_json_body(await request.body())
