"""The access layer counts an answer before its client can have it, however the app sends it."""

from __future__ import annotations

import asyncio
import re

from starlette.types import Message, Receive, Scope, Send

from clientkeys.runtime import metrics
from clientkeys.runtime.access import AccessMiddleware


def answered() -> float:
    """This process's count of unrouted 200 answers."""
    text = metrics.exposition()[0].decode()
    series = f'clientkeys_requests_total{{operation="{metrics.UNROUTED}",status="200"}}'
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_an_answer_is_counted_once_its_declared_length_is_sent() -> None:
    """A client that reads Content-Length bytes has its answer (and may scrape the metrics)
    before the app sends its empty closing message: the count must already be there."""
    seen_by_then: list[float] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"ok", "more_body": True})
        seen_by_then.append(answered())
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
    middleware = AccessMiddleware(app, record_metrics=True)
    before = answered()
    asyncio.run(middleware(scope, receive, send))
    assert seen_by_then == [before + 1]
    assert answered() == before + 1  # and once only
    assert [m["type"] for m in sent] == ["http.response.start", *["http.response.body"] * 2]
