"""The outermost layer of every request: its id (`X-Request-ID`, taken or made, echoed), one
access log line when the response has left, and, with metrics on, its count and latency."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clientkeys.runtime import exchange, metrics
from clientkeys.runtime.exchange import Exchange
from clientkeys.runtime.logs import ACCESS_LOGGER

REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")
"""A client's request id is kept when it is 1-128 of these characters; otherwise one is made."""

logger = logging.getLogger(ACCESS_LOGGER)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    return None


def request_id(scope: Scope) -> str:
    """The client's `X-Request-ID` if it is usable, else a new random one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and REQUEST_ID.fullmatch(value):
            return bytes(value).decode("ascii")
    return uuid.uuid4().hex


class AccessMiddleware:
    """Gives every HTTP request an `Exchange` (see `exchange.py`), answers with its
    `X-Request-ID`, counts it (with `record_metrics`) as its last byte is sent, and logs it once
    answered."""

    def __init__(self, app: ASGIApp, record_metrics: bool = False) -> None:
        self.app = app
        self.record_metrics = record_metrics
        if record_metrics:
            metrics.enable()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        this = Exchange(request_id(scope), scope["method"], scope["path"])
        scope[exchange.SCOPE_KEY] = this
        token = exchange.current.set(this)
        header = (REQUEST_ID_HEADER, this.request_id.encode("ascii"))
        counted = False
        left: int | None = None  # body bytes still to send, when the answer declares its length

        async def send_with_id(message: Message) -> None:
            nonlocal counted, left
            if message["type"] == "http.response.start":
                this.status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
                left = _content_length(message["headers"])
            elif message["type"] == "http.response.body" and not counted:
                if left is not None:
                    left -= len(message.get("body", b""))
                # Counted before the last byte leaves: a scrape made after a client has its
                # answer (by this worker or another) already counts it. A client that reads
                # Content-Length bytes has its answer before an empty closing message.
                if not message.get("more_body") or (left is not None and left <= 0):
                    counted = True
                    self._count(this, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            if not counted:
                self._count(this, seconds)
            self._log(this, scope, seconds)
            exchange.current.reset(token)

    def _count(self, this: Exchange, seconds: float) -> None:
        if self.record_metrics and not this.ops:
            metrics.observe_request(this.operation_id, this.status, seconds, this.validation_failed)

    def _log(self, this: Exchange, scope: Scope, seconds: float) -> None:
        if logger.isEnabledFor(logging.INFO):
            client = scope.get("client")
            _log_line(this, f"{client[0]}:{client[1]}" if client else "-", seconds * 1000)


def _log_line(this: Exchange, client: str, duration_ms: float) -> None:
    message = f'{client} - "{this.method} {this.path}" {this.status} {duration_ms:.1f} ms'
    if this.operation_id:
        message += f" ({this.operation_id})"
    logger.info(
        message,
        extra={
            "request_id": this.request_id, "method": this.method, "path": this.path,
            "operation_id": this.operation_id, "status": this.status,
            "duration_ms": round(duration_ms, 2), "token_id": this.token_id, "client": client,
        },
    )  # fmt: skip


class ValidatedMarker:
    """Sits after Connexion's security and request validation: reaching it means both passed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        this = exchange.of(scope)
        if this is not None:
            this.validated = True
        await self.app(scope, receive, send)
