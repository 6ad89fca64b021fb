"""The app factory: the API built from the spec (`server.build_app`), with its storage backend
(made once per app, closed in its lifespan), the handlers named by the operationIds, and, with
an admin token, the test controls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from connexion import FlaskApp
from connexion.middleware import MiddlewarePosition
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from clientkeys.config import SETTINGS_KEY, Settings
from clientkeys.openapi import specs as openapi
from clientkeys.server import connexion_hooks
from clientkeys.server.build import Api, build_app
from clientkeys.server.handlers import _request
from clientkeys.server.journal import JournalMiddleware
from clientkeys.server.resolver import OperationIdResolver, check_handlers, handler_operations
from clientkeys.store import backend as store

HANDLERS = "clientkeys.server.handlers"


class SettingsMiddleware:
    """Puts the app's settings and storage backend into every request's state
    (`config.settings_of`, `store.backend.backend_of`)."""

    def __init__(self, app: ASGIApp, settings: Settings, backend: store.Backend) -> None:
        self.app = app
        self.settings = settings
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = scope.setdefault("state", {})
            state[SETTINGS_KEY], state[store.BACKEND_KEY] = self.settings, self.backend
        await self.app(scope, receive, send)


def _closing(backend: store.Backend) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """The app's lifespan: at its end, close what the backend holds open (threads'
    connections, a pool)."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await run_in_threadpool(backend.close)

    return lifespan


def _api(settings: Settings, name: str) -> Api:
    spec = openapi.load_spec(settings.spec_dir, name)
    check_handlers(spec, HANDLERS)
    return Api(spec, OperationIdResolver(HANDLERS), handler_operations(spec.spec, HANDLERS))


def create_app(settings: Settings | None = None) -> FlaskApp:
    """Build the API from the spec. Fails loudly if an operationId has no handler.

    With an admin token set, the test controls of `spec/admin.json` are served too, and every
    API request is journaled. Readiness (`/_health/?full`) checks that the database can be read
    and written; with `settings.metrics`, `/metrics` is served.
    """
    settings = settings or Settings.from_env()
    backend = store.backend_for(settings)
    backend.init()
    apis = [_api(settings, openapi.SPEC_FILE)]
    if settings.admin_token:
        apis.append(_api(settings, openapi.ADMIN_SPEC_FILE))
    app = build_app(
        apis,
        security=connexion_hooks.bearer_handler(),
        validate_responses=settings.validate_responses,
        validate_requests=settings.validate_requests,
        max_body_bytes=settings.max_body_bytes,
        threads=settings.threads,
        checks={"database": backend.probe},
        observe=True,
        record_metrics=settings.metrics,
        lifespan=_closing(backend),
    )
    _request.init_app(app)
    if settings.admin_token:
        app.add_middleware(
            JournalMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, settings=settings,
            backend=backend,
        )  # fmt: skip
    app.add_middleware(
        SettingsMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, settings=settings,
        backend=backend,
    )  # fmt: skip
    return app
