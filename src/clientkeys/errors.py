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
    └── UnsupportedMediaType        415 a body that is not JSON

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


class UnsupportedMediaType(ClientKeysError):
    """The body is sent with a media type the operation does not take."""

    status = 415
    detail = "Unsupported media type."
