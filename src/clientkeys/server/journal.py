"""The test controls' request journal: method, path, status, and whether validation passed."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clientkeys.config import Settings
from clientkeys.core.errors import StorageUnavailable
from clientkeys.runtime import exchange
from clientkeys.store import backend as store
from clientkeys.store import repository

ADMIN_PREFIX = "/__admin"


class JournalMiddleware:
    """Records every API request (not the test controls' own) before its response leaves, so
    a client that reads the journal right after an answer finds that request in it. Whether
    the request passed validation comes from its `Exchange` (`access.ValidatedMarker`)."""

    def __init__(self, app: ASGIApp, settings: Settings, backend: store.Backend) -> None:
        self.app = app
        self.settings = settings
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        this = exchange.of(scope)
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
        }

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                entry["validated"] = this is not None and this.validated
                await run_in_threadpool(self._write, entry)
            await send(message)

        await self.app(scope, receive, record_status)

    def _write(self, entry: dict[str, Any]) -> None:
        try:
            with store.using(self.backend) as database:
                repository.log_request(database, entry, self.settings.journal_size)
        except StorageUnavailable:
            pass  # logged by the backend; the request's own answer is not the journal's to spoil
