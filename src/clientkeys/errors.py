"""Domain errors and the one renderer that turns every failure into the spec's error shape.

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

Connexion's own problems (validation, routing, 405) and Starlette's HTTP errors are rendered
in the same shape: `application/json` with `{"detail": "..."}`, never problem+json.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connexion import FlaskApp
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from clientkeys import compiled

logger = logging.getLogger(__name__)

NOT_FOUND = "The requested resource does not exist"
NO_PERMISSION = "You do not have permission to perform this action."
NO_CREDENTIALS = "Authentication credentials were not provided."
WWW_AUTHENTICATE = {"WWW-Authenticate": 'xBasic realm="api"'}


class ClientKeysError(Exception):
    """Base of every error the server raises on purpose."""

    status = 500
    detail = "Internal Error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail

    @property
    def status_code(self) -> int:
        """The HTTP status, under the name Connexion's security layer compares."""
        return self.status

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


def json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> ConnexionResponse:
    """A compact `application/json` response."""
    return ConnexionResponse(
        status_code=status,
        mimetype="application/json",
        content_type="application/json",
        body=compiled.dumps(body),
        headers=dict(headers or {}),
    )


async def render_domain_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Render a `ClientKeysError` as its status and body."""
    assert isinstance(exc, ClientKeysError)
    headers = WWW_AUTHENTICATE if exc.status == 401 else None
    return json_response(exc.status, exc.body(), headers)


def _allowed_methods(routes: Mapping[str, Sequence[str]], path: str) -> list[str] | None:
    """The methods served on `path`, or None when no route matches it."""
    for template, methods in routes.items():
        if re.match("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$", path):
            return [*methods, *(["HEAD"] if "GET" in methods else [])]
    return None


def install(app: FlaskApp, routes: Mapping[str, Sequence[str]]) -> None:
    """Register the renderers so that every error leaves in the spec's one shape."""

    async def render_problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, ProblemException)
        headers = dict(exc.headers or {})
        detail = str(exc.detail or exc.title or "Error")
        if exc.status == 401:
            headers.update(WWW_AUTHENTICATE)
        elif exc.status == 415:
            media_type = request.headers.get("content-type", "").split(";")[0]
            detail = f'Unsupported media type "{media_type}" in request.'
        return json_response(exc.status, {"detail": detail}, headers)

    async def render_http(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        detail = exc.detail
        if exc.status_code == 405:
            allowed = _allowed_methods(routes, request.url.path)
            if allowed is not None:
                headers["Allow"] = ", ".join(allowed)
            detail = f'Method "{request.method}" not allowed.'
        elif exc.status_code == 404:
            detail = NOT_FOUND
        return json_response(exc.status_code, {"detail": detail}, headers)

    async def render_crash(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        logger.error("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return json_response(500, {"detail": "Internal Error"})

    app.add_error_handler(ClientKeysError, render_domain_error)
    app.add_error_handler(ProblemException, render_problem)
    app.add_error_handler(HTTPException, render_http)
    app.add_error_handler(Exception, render_crash)


def field_errors(pairs: Iterable[tuple[tuple[str, ...], str]]) -> dict[str, Any]:
    """Fold `(path, message)` pairs into Sentry's nested field-error dict."""
    errors: dict[str, Any] = {}
    for path, message in pairs:
        if len(path) <= 1:
            messages = errors.setdefault(path[0] if path else "non_field_errors", [])
        else:
            nested = errors.setdefault(path[0], {})
            if isinstance(nested, list):  # the field already failed as a whole
                continue
            messages = nested.setdefault(path[1], [])
        if message not in messages:
            messages.append(message)
    return errors
