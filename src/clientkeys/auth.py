"""Bearer tokens with Sentry's scopes and messages.

`bearer_info` is the spec's `x-bearerInfoFunc`. `SentryBearerHandler` replaces Connexion's
bearer handler so that failures carry Sentry's 401 messages and an operation's scope list is
read as "any of", as Sentry reads it (the spec also lists the scopes as alternatives).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any

from connexion.lifecycle import ConnexionRequest
from connexion.security import BearerSecurityHandler

from clientkeys import db, repository
from clientkeys.config import settings_of
from clientkeys.errors import NotAuthenticated, PermissionDenied

NO_TOKEN = "Invalid token header. No credentials provided."
SPACES = "Invalid token header. Token string should not contain spaces."
INVALID = "Invalid token"
_CACHE = "clientkeys.token_info"

TokenInfo = dict[str, Any]


def bearer_info(token: str, request: ConnexionRequest) -> TokenInfo | None:
    """The stored token's organization, scopes and superuser flag, or None if unknown."""
    with db.using(settings_of(request).database) as database:
        row = repository.find_token(database, token)
    if row is None:
        return None
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


def token_from_header(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or Sentry's 401."""
    if not authorization:
        raise NotAuthenticated()
    parts = authorization.split()
    if not parts or parts[0].lower() != "bearer":
        raise NotAuthenticated()
    if len(parts) == 1:
        raise NotAuthenticated(NO_TOKEN)
    if len(parts) > 2:
        raise NotAuthenticated(SPACES)
    return parts[1]


class SentryBearerHandler(BearerSecurityHandler):  # type: ignore[misc]
    """Connexion's bearer handler with Sentry's messages and "any of" scopes."""

    def get_fn(
        self, security_scheme: Mapping[str, Any], required_scopes: list[str]
    ) -> Callable[[ConnexionRequest], Any]:
        info_func = self._resolve_func(security_scheme)
        scopes = frozenset(required_scopes or ())

        def verify(request: ConnexionRequest) -> TokenInfo:
            # Each scope alternative of an operation calls this; look the token up once.
            info: TokenInfo | None = request.scope.get(_CACHE)
            if info is None:
                info = info_func(
                    token_from_header(request.headers.get("Authorization")), request=request
                )
                if info is None:
                    raise NotAuthenticated(INVALID)
                request.scope[_CACHE] = info
            if scopes and not scopes & info["scopes"]:
                raise PermissionDenied()
            return info

        return verify


def check_organization(token_info: Mapping[str, Any], organization_id: int) -> None:
    """A token works only for its own organization, unless it is a superuser token."""
    if not token_info["is_superuser"] and token_info["organization_id"] != organization_id:
        raise PermissionDenied()
