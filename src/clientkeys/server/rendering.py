"""The one renderer: every failure leaves as `application/json` in the spec's error shape.

Domain errors (`errors.ClientKeysError`) carry their status and body. Connexion's own problems
(validation, security, 415) and Starlette's HTTP errors (404, 405) are rendered in the same
`{"detail": "..."}` shape, never problem+json; a storage error is its fault (503, 507);
anything else is a logged 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from connexion import FlaskApp
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from clientkeys.core import sentry
from clientkeys.core.errors import NOT_FOUND, WWW_AUTHENTICATE, ClientKeysError
from clientkeys.openapi import compiled
from clientkeys.runtime import metrics
from clientkeys.store import backend as store

logger = logging.getLogger(__name__)


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
    """Render a `ClientKeysError` as its status, body and headers."""
    assert isinstance(exc, ClientKeysError)
    return json_response(exc.status, exc.body(), exc.headers())


def allowed_methods(routes: Mapping[str, Sequence[str]], path: str) -> list[str] | None:
    """The methods served on `path`, or None when no route matches it."""
    for template, methods in routes.items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), path):
            return [*methods, *(["HEAD"] if "GET" in methods else [])]
    return None


def install(app: FlaskApp, routes: Mapping[str, Sequence[str]]) -> None:
    """Register the renderers; `routes` (path template -> methods) fills a 405's `Allow`."""

    async def render_problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, ProblemException)
        headers = dict(exc.headers or {})
        detail = str(exc.detail or exc.title or "Error")
        if exc.status == 401:
            headers.update(WWW_AUTHENTICATE)
        elif exc.status == 415:
            media_type = request.headers.get("content-type", "").split(";")[0]
            detail = sentry.unsupported_media_type(media_type)
        return json_response(exc.status, {"detail": detail}, headers)

    async def render_http(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        detail = exc.detail
        if exc.status_code == 405:
            allowed = allowed_methods(routes, request.url.path)
            if allowed is not None:
                headers["Allow"] = ", ".join(allowed)
            detail = sentry.method_not_allowed(request.method)
        elif exc.status_code == 404:
            detail = NOT_FOUND
        return json_response(exc.status_code, {"detail": detail}, headers)

    async def render_crash(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        if store.is_database_error(exc):
            metrics.database_error(exc)
        fault = store.reported_fault(exc)  # a storage error the connection did not translate
        if fault is not None:
            return await render_domain_error(request, fault)
        logger.error("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return json_response(500, {"detail": "Internal Error"})

    app.add_error_handler(ClientKeysError, render_domain_error)
    app.add_error_handler(ProblemException, render_problem)
    app.add_error_handler(HTTPException, render_http)
    app.add_error_handler(Exception, render_crash)
