"""The app factory: a Connexion FlaskApp built from the spec, with Sentry's errors and auth."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from a2wsgi import WSGIMiddleware
from connexion import FlaskApp
from connexion.middleware import ConnexionMiddleware, MiddlewarePosition
from connexion.middleware.request_validation import RequestValidationMiddleware
from connexion.options import SwaggerUIOptions
from connexion.spec import Specification
from starlette.types import ASGIApp, Receive, Scope, Send

from clientkeys import db, rendering
from clientkeys.auth import SentryBearerHandler
from clientkeys.compiled import OrjsonJsonifier
from clientkeys.config import SETTINGS_KEY, Settings
from clientkeys.guards import BodyLimitMiddleware, PathGuardMiddleware
from clientkeys.journal import JournalMiddleware, ValidatedMarker
from clientkeys.resolver import OperationIdResolver, check_handlers, routes_of
from clientkeys.validation import VALIDATOR_MAP

SPEC_FILE = "openapi.json"
ADMIN_SPEC_FILE = "admin.json"
HANDLERS = "clientkeys.handlers"


class SettingsMiddleware:
    """Puts the app's settings into every request's state (`config.settings_of`)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})[SETTINGS_KEY] = self.settings
        await self.app(scope, receive, send)


def load_spec(spec_dir: Path, name: str = SPEC_FILE) -> Specification:
    """A spec with every `$ref` resolved, as Connexion serves it."""
    return Specification.load(spec_dir.resolve() / name)


def _add_api(app: FlaskApp, name: str, settings: Settings) -> Specification:
    app.add_api(
        name,
        resolver=OperationIdResolver(HANDLERS),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=VALIDATOR_MAP,
        security_map={"bearer": SentryBearerHandler},
        swagger_ui_options=SwaggerUIOptions(serve_spec=True, swagger_ui=False),
    )
    spec = load_spec(settings.spec_dir, name)
    check_handlers(spec, HANDLERS)
    return spec


def _limit_handler_threads(app: FlaskApp, threads: int) -> None:
    """Run Flask handlers on `threads` threads instead of a2wsgi's default 10.

    FlaskApp bridges ASGI to Flask with a2wsgi's WSGIMiddleware, whose thread pool size is a
    constructor argument Connexion does not expose; its executor is swapped here. Measured in
    bench/: 2 threads per worker give higher throughput and a p99 half that of 10.
    """
    bridge = app._middleware_app.asgi_app
    if not isinstance(bridge, WSGIMiddleware):  # a Connexion upgrade changed the bridge
        raise TypeError(f"unexpected Flask bridge {type(bridge).__name__}")
    bridge.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="WSGI")


def create_app(settings: Settings | None = None) -> FlaskApp:
    """Build the API from the spec. Fails loudly if an operationId has no handler.

    With an admin token set, the test controls of `spec/admin.json` are served too, and every
    API request is journaled.
    """
    settings = settings or Settings.from_env()
    db.init_db(settings.database)
    middlewares = [
        m
        for m in ConnexionMiddleware.default_middlewares
        if settings.validate_requests or m is not RequestValidationMiddleware
    ]
    app = FlaskApp(
        __name__,
        specification_dir=settings.spec_dir,
        middlewares=middlewares,
        jsonifier=OrjsonJsonifier(),
    )
    specs = [_add_api(app, SPEC_FILE, settings)]
    if settings.admin_token:
        specs.append(_add_api(app, ADMIN_SPEC_FILE, settings))
        app.add_middleware(ValidatedMarker, position=MiddlewarePosition.BEFORE_CONTEXT)
        app.add_middleware(
            JournalMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, settings=settings
        )
    _limit_handler_threads(app, settings.threads)
    rendering.install(app, routes_of(specs))
    app.add_middleware(
        BodyLimitMiddleware,
        position=MiddlewarePosition.BEFORE_SWAGGER,
        max_bytes=settings.max_body_bytes,
    )
    app.add_middleware(PathGuardMiddleware, position=MiddlewarePosition.BEFORE_SWAGGER)
    app.add_middleware(
        SettingsMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, settings=settings
    )
    return app
