"""Domain errors: what went wrong, with the HTTP status and body it stands for.

The hierarchy::

    ClientKeysError                 (status 500) anything the server raises on purpose
    ├── BadRequest                  400 {"detail": ...}: a bad query parameter or cursor
    ├── FieldErrors                 400 Sentry's field-error dict for an invalid body
    ├── NotAuthenticated            401 missing, malformed or unknown credentials
    ├── PermissionDenied            403 a missing scope or another organization's token
    ├── NotFound                    404 no such organization, project or key
    ├── Conflict                    409 a slug or key that already exists (CLI only)
    ├── PayloadTooLarge             413 a body over the configured limit
    ├── UriTooLong                  414 a request target over MAX_TARGET_BYTES (HTTP layer)
    ├── UnsupportedMediaType        415 a body that is not JSON
    ├── HeaderFieldsTooLarge        431 header fields over MAX_HEADER_BYTES or MAX_HEADERS
    └── StorageUnavailable          503 the database cannot be used now; `detail` says why
        └── StorageFull             507 the disk holding the database is full

Storage faults (503, 507) are what every backend's faults are classified into (`db.fault_of`
for SQLite), so that the guarantees and the answers are the same whatever stores the data.

This module imports nothing of the web stack, so that the pure modules (pagination,
repository, serializers, domain) can raise these errors. `rendering` turns them, and every
other failure, into the spec's one error shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

NOT_FOUND = "The requested resource does not exist"
NO_PERMISSION = "You do not have permission to perform this action."
NO_CREDENTIALS = "Authentication credentials were not provided."
WWW_AUTHENTICATE = {"WWW-Authenticate": 'xBasic realm="api"'}
"""Sent with every 401, as Sentry does."""
MAX_TARGET_BYTES = 8192
"""The longest request target (path and query) the server reads: 414 beyond it."""
MAX_HEADER_BYTES = 16384
MAX_HEADERS = 100
"""The header fields the server reads (names and values, in all; how many): 431 beyond them."""
MAX_QUERY_PARAMETERS = 100
"""Query parameters of one request: 400 beyond them."""


class ClientKeysError(Exception):
    """Base of every error the server raises on purpose."""

    status = 500
    detail = "Internal Error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail

    def body(self) -> Any:
        """The JSON body sent to the client."""
        return {"detail": self.detail}

    def headers(self) -> dict[str, str]:
        """The headers this error's response needs besides the usual ones."""
        return {}


class BadRequest(ClientKeysError):
    """A query parameter, cursor or body that cannot be used."""

    status = 400
    detail = "Bad Request"


class FieldErrors(ClientKeysError):
    """Request-body validation errors, in Sentry's `{"field": ["message"]}` shape."""

    status = 400

    def __init__(self, errors: Mapping[str, Any]) -> None:
        super().__init__(json.dumps(errors))
        self.errors = dict(errors)

    def body(self) -> Any:
        return self.errors


class NotAuthenticated(ClientKeysError):
    """No usable credentials: Sentry answers 401."""

    status = 401
    detail = NO_CREDENTIALS

    def headers(self) -> dict[str, str]:
        return dict(WWW_AUTHENTICATE)


class PermissionDenied(ClientKeysError):
    """Credentials that may not do this: Sentry answers 403."""

    status = 403
    detail = NO_PERMISSION


class NotFound(ClientKeysError):
    """No such organization, project or key."""

    status = 404
    detail = NOT_FOUND


class Conflict(ClientKeysError):
    """Something with that name already exists."""

    status = 409
    detail = "Already exists"


class PayloadTooLarge(ClientKeysError):
    """The body is over the configured size limit."""

    status = 413
    detail = "Request body is too large."


class UriTooLong(ClientKeysError):
    """The request target is longer than the server reads (refused by the HTTP layer)."""

    status = 414
    detail = f"The request target is longer than {MAX_TARGET_BYTES} bytes."


class UnsupportedMediaType(ClientKeysError):
    """The body is sent with a media type the operation does not take."""

    status = 415
    detail = "Unsupported media type."


class HeaderFieldsTooLarge(ClientKeysError):
    """The header fields are larger than the server reads (refused by the HTTP layer)."""

    status = 431
    detail = (
        f"The request's header fields are larger than {MAX_HEADER_BYTES} bytes "
        f"or more than {MAX_HEADERS}."
    )


class StorageUnavailable(ClientKeysError):
    """The database cannot be used now (read-only, missing, damaged, busy); nothing was
    stored. The server answers this until the cause is gone, then recovers by itself."""

    status = 503
    detail = "The database cannot be used now: nothing was stored."
    retry_after = 5
    """Seconds a client should wait before trying again (`Retry-After`)."""

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StorageFull(StorageUnavailable):
    """The disk holding the database is full; nothing was stored."""

    status = 507
    detail = "The disk holding the database is full: nothing was stored."
