"""ASGI guards in front of routing: oversized bodies (413), paths no route can hold (404), too
many query parameters (400), media types in any case; and the headers every response carries."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clientkeys.core.errors import MAX_QUERY_PARAMETERS, BadRequest, NotFound, PayloadTooLarge

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SECURITY_HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]
"""Every answer may hold secret keys: no cache stores it, no browser sniffs another type."""


class PathGuardMiddleware:
    """404 for a path with control characters: no organization, project or key has them, and
    Connexion's router would pass such a path to Flask unrouted (no operation context)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and CONTROL.search(scope["path"]):
            raise NotFound()
        await self.app(scope, receive, send)


class RequestHeadGuardMiddleware:
    """For an API that answers itself (not the proxy, which passes requests on as sent):
    404 for an empty path segment (`//`: no organization, project or key is empty, and
    Werkzeug would answer with a redirect it cannot give); 400 for more than
    MAX_QUERY_PARAMETERS query parameters (counted in one linear pass; Connexion's own
    collection is quadratic in them); the Content-Type's media type in lower case, since media
    types are case-insensitive and Connexion matches them exactly."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if "//" in scope["path"]:
                raise NotFound()
            check_query_count(scope)
            scope["headers"] = [_lower_media_type(name, value) for name, value in scope["headers"]]
        await self.app(scope, receive, send)


def check_query_count(scope: Scope) -> None:
    """BadRequest for more than MAX_QUERY_PARAMETERS query parameters, counted in one linear
    pass (parsing thousands of them is what costs)."""
    query: bytes = scope.get("query_string", b"")
    if query and query.count(b"&") >= MAX_QUERY_PARAMETERS:
        raise BadRequest(f"Too many query parameters: at most {MAX_QUERY_PARAMETERS}.")


def _lower_media_type(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    if name != b"content-type":
        return name, value
    media_type, semicolon, parameters = value.partition(b";")
    return name, media_type.strip().lower() + semicolon + parameters


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in SECURITY_HEADERS if h[0] not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimitMiddleware:
    """413 for a declared or streamed body over `max_bytes`; 400 for a bad Content-Length.

    A chunked body (no Content-Length) is read whole first, within the limit, and handed on
    with its Content-Length: Werkzeug reads no body without one, so the handler would see
    none although validation saw it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Request body is larger than {self.max_bytes} bytes.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    raise BadRequest("Invalid Content-Length header.")
                if int(value) > self.max_bytes:
                    raise self._too_large()
                declared = True
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self._too_large()
            return message

        if declared or not any(name == b"transfer-encoding" for name, _ in scope["headers"]):
            await self.app(scope, limited, send)
            return
        body, more = bytearray(), True
        while more:
            message = await limited()
            body += message.get("body", b"")
            more = message["type"] == "http.request" and message.get("more_body", False)
        scope["headers"] = [
            *((n, v) for n, v in scope["headers"] if n != b"transfer-encoding"),
            (b"content-length", str(len(body)).encode()),
        ]
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` in one message, then whatever comes next (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
