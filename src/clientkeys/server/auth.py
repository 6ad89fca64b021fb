"""Bearer tokens with Sentry's scopes and messages.

`bearer_info` is the spec's `x-bearerInfoFunc`. `verifier` is what Connexion's bearer handler
runs for each security requirement (see `connexion_hooks.bearer_handler`): failures carry
Sentry's 401 messages and an operation's scope list is read as "any of", as Sentry reads it
(the spec also lists the scopes as alternatives).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from connexion.lifecycle import ConnexionRequest
from starlette.concurrency import run_in_threadpool

from clientkeys.config import settings_of
from clientkeys.core.errors import NotAuthenticated, PermissionDenied, StorageUnavailable
from clientkeys.core.sentry import INVALID, token_from_header
from clientkeys.runtime import exchange
from clientkeys.store import backend as store
from clientkeys.store import repository

_CACHE = "clientkeys.token_info"

TokenInfo = dict[str, Any]
InfoFunc = Callable[..., TokenInfo | None]
"""`info(token, request=...)`: the token's info, or None for an unknown token."""


def bearer_info(token: str, request: ConnexionRequest) -> TokenInfo | None:
    """The stored token's organization, scopes and superuser flag, or None if unknown."""
    with store.using(store.backend_of(request)) as database:
        row = repository.find_token(database, token)
    return None if row is None else token_info(row)


def token_info(row: Mapping[str, Any]) -> TokenInfo:
    """What a handler knows of the stored token `row` (its `token_info`)."""
    return {
        "sub": f"token:{row['id']}",
        "organization_id": row["organization_id"],
        "scopes": frozenset(row["scopes"].split()),
        "is_superuser": bool(row["is_superuser"]),
    }


def admin_info(token: str, request: ConnexionRequest) -> TokenInfo | None:
    """The test controls' token: the one the server was started with (`--admin-token`)."""
    expected = settings_of(request).admin_token
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        return None
    return {"sub": "admin", "organization_id": None, "scopes": frozenset(), "is_superuser": False}


def verifier(
    info_func: InfoFunc, required_scopes: Iterable[str]
) -> Callable[[ConnexionRequest], Awaitable[TokenInfo]]:
    """The check of one security requirement: a known token with any of the scopes.

    The token lookup (a query) runs on a worker thread, never on the event loop; an operation's
    scope alternatives share one lookup per request, and one storage fault (a request waits
    for the database once, not once per alternative).
    """
    scopes = frozenset(required_scopes)

    async def verify(request: ConnexionRequest) -> TokenInfo:
        info: TokenInfo | Exception | None = request.scope.get(_CACHE)
        if isinstance(info, Exception):
            raise info  # the lookup failed (the database is unreachable): once is enough
        if info is None:
            token = token_from_header(request.headers.get("Authorization"))
            try:
                info = await run_in_threadpool(info_func, token, request=request)
            except StorageUnavailable as fault:
                request.scope[_CACHE] = fault
                raise
            if info is None:
                raise NotAuthenticated(INVALID)
            request.scope[_CACHE] = info
            this = exchange.of(request.scope)
            if this is not None:
                this.token_id = info["sub"]
        if scopes and not scopes & info["scopes"]:
            raise PermissionDenied()
        return info

    return verify


def check_organization(token_info: Mapping[str, Any], organization_id: int) -> None:
    """A token works only for its own organization, unless it is a superuser token."""
    if not token_info["is_superuser"] and token_info["organization_id"] != organization_id:
        raise PermissionDenied()
