"""Optional API keys for scoring: ``X-API-Key`` checked against ``settings.security.api_keys``.

No key configured: scoring is open (development, the demo). One or more configured (``API_KEYS``,
comma-separated): a scoring request without one of them is refused with 401.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import SecurityScheme

from webapp.dependencies import provide_settings

API_KEY_HEADER = "X-API-Key"
#: The scheme's name in the OpenAPI document, and the scheme itself.
API_KEY_SCHEME = "apiKey"
API_KEY_SECURITY_SCHEME = SecurityScheme(
    type="apiKey",
    name=API_KEY_HEADER,
    security_scheme_in="header",
    description="A scoring key, when the server is configured with keys (API_KEYS); otherwise scoring is open.",
)


def key_is_valid(given: str | None, keys: list[str]) -> bool:
    """Constant-time comparison against every configured key."""
    if not given:
        return False
    candidate = given.encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(candidate, key.encode())
    return ok


async def api_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse the request when API keys are configured and it carries none of them.

    ``async`` although it never awaits: Litestar runs a synchronous guard in a worker thread, and
    that hand-off cost more than the whole check on every scoring request.
    """
    keys = provide_settings(connection.app.state).security.api_keys
    if not keys:
        return
    if not key_is_valid(connection.headers.get(API_KEY_HEADER), keys):
        raise NotAuthorizedException(
            detail=f"missing or invalid {API_KEY_HEADER} header", headers={"WWW-Authenticate": API_KEY_HEADER}
        )
