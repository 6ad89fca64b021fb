"""ASGI guards in front of routing: oversized bodies (413) and paths no route can hold (404)."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clientkeys.errors import BadRequest, NotFound, PayloadTooLarge

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PathGuardMiddleware:
    """404 for a path with control characters: no organization, project or key has them, and
    Connexion's router would pass such a path to Flask unrouted (no operation context)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and CONTROL.search(scope["path"]):
            raise NotFound()
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a declared or streamed body over `max_bytes`; 400 for a bad Content-Length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Request body is larger than {self.max_bytes} bytes.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    raise BadRequest("Invalid Content-Length header.")
                if int(value) > self.max_bytes:
                    raise self._too_large()
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self._too_large()
            return message

        await self.app(scope, limited, send)
