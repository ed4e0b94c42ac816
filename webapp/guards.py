"""Who may change the decision policy: an admin-scoped API key, for now.

Rule and list changes need one of ``ADMIN_API_KEYS`` in ``X-API-Key`` (compared in constant time,
like :mod:`webapp.security`). With no admin key configured such changes are refused (403): the
policy declines transactions, so it is never open by default. Reads of rules and lists, and
backtests, need a scoring key when ``API_KEYS`` are set (:func:`webapp.security.api_key_guard`).

This is the one place to rewire when roles (admin, analyst) arrive: :func:`require_admin` is the
guard every change route names, and :func:`actor` says who made a change for the change log.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from webapp.dependencies import provide_settings
from webapp.security import API_KEY_HEADER


def _matching_key(given: str | None, keys: list[str]) -> str | None:
    if not given:
        return None
    candidate = given.encode()
    found = None
    for key in keys:  # every key compared, whichever matches
        if hmac.compare_digest(candidate, key.encode()):
            found = key
    return found


async def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse the request unless it carries an admin key (401 without or with a wrong key, 403 when none is set)."""
    keys = provide_settings(connection.app.state).security.admin_api_keys
    if not keys:
        raise PermissionDeniedException(detail="changing rules and lists needs ADMIN_API_KEYS to be configured")
    if _matching_key(connection.headers.get(API_KEY_HEADER), keys) is None:
        raise NotAuthorizedException(
            detail=f"changing rules and lists needs an admin key in {API_KEY_HEADER}",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


def actor(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Who a change is recorded under: the admin key, named by a short digest (never the key)."""
    keys = provide_settings(connection.app.state).security.admin_api_keys
    key = _matching_key(connection.headers.get(API_KEY_HEADER), keys) or ""
    return f"admin-key:{hashlib.sha256(key.encode()).hexdigest()[:8]}"
