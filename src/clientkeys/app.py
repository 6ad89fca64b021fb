"""The app factory: a Connexion FlaskApp built from the spec, with Sentry's errors and auth."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connexion import FlaskApp
from connexion.datastructures import MediaTypeDict
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.spec import Specification
from starlette.types import ASGIApp, Receive, Scope, Send

from clientkeys import db, errors
from clientkeys.auth import SentryBearerHandler
from clientkeys.config import Settings
from clientkeys.guards import BodyLimitMiddleware, PathGuardMiddleware
from clientkeys.resolver import OperationIdResolver, check_handlers
from clientkeys.validation import SentryJSONBodyValidator, SentryParameterValidator

SPEC_FILE = "openapi.json"
HANDLERS = "clientkeys.handlers"


class SettingsMiddleware:
    """Puts the app's settings into every request's state (`auth.settings_of`)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["clientkeys.settings"] = self.settings
        await self.app(scope, receive, send)


def load_spec(spec_dir: Path) -> Mapping[str, Any]:
    """The spec with every `$ref` resolved, as Connexion serves it."""
    spec: Mapping[str, Any] = Specification.load(spec_dir.resolve() / SPEC_FILE)
    return spec


def create_app(settings: Settings | None = None) -> FlaskApp:
    """Build the API from the spec. Fails loudly if an operationId has no handler."""
    settings = settings or Settings.from_env()
    db.init_db(settings.database)
    app = FlaskApp(__name__, specification_dir=settings.spec_dir)
    app.add_api(
        SPEC_FILE,
        resolver=OperationIdResolver(HANDLERS),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map={
            "parameter": SentryParameterValidator,
            "body": MediaTypeDict({"*/*json": SentryJSONBodyValidator}),
        },
        security_map={"bearer": SentryBearerHandler},
        swagger_ui_options=SwaggerUIOptions(serve_spec=True, swagger_ui=False),
    )
    spec = load_spec(settings.spec_dir)
    check_handlers(spec, HANDLERS)
    errors.install(app, spec)
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
