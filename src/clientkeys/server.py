"""The one app builder: a Connexion FlaskApp serving specs with clientkeys' validation, errors,
auth and guards, for `app.create_app` (the API and its test controls). The mock is not a
Connexion app: it is `clientkeys.mocking`, an ASGI app of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connexion import FlaskApp
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.spec import Specification

from clientkeys import connexion_hooks, openapi, rendering
from clientkeys.compiled import OrjsonJsonifier
from clientkeys.guards import BodyLimitMiddleware, PathGuardMiddleware


@dataclass(frozen=True)
class Api:
    """One spec to serve (loaded with `openapi.load`) and what resolves its operations."""

    spec: Specification
    resolver: Resolver


def build_app(
    apis: Sequence[Api],
    *,
    security: type[Any],
    validate_responses: bool,
    validate_requests: bool = True,
    max_body_bytes: int,
    threads: int | None = None,
) -> FlaskApp:
    """A FlaskApp serving `apis` with strict validation, Sentry's error shape and messages, the
    `security` handler for bearer schemes, the body limit and path guards, compact JSON, and
    `threads` handler threads (None: a2wsgi's default).
    """
    app = FlaskApp(
        __name__,
        middlewares=connexion_hooks.middlewares(validate_requests),
        jsonifier=OrjsonJsonifier(),
    )
    for api in apis:
        # The resolved document: Connexion need not read and resolve the files a second time.
        app.add_api(
            copy.deepcopy(api.spec.spec),
            resolver=api.resolver,
            strict_validation=True,
            validate_responses=validate_responses,
            validator_map=connexion_hooks.VALIDATOR_MAP,
            security_map={"bearer": security},
            swagger_ui_options=SwaggerUIOptions(serve_spec=True, swagger_ui=False),
        )
    if threads is not None:
        connexion_hooks.limit_handler_threads(app, threads)
    rendering.install(app, openapi.routes_of(api.spec for api in apis))
    app.add_middleware(
        BodyLimitMiddleware, position=MiddlewarePosition.BEFORE_SWAGGER, max_bytes=max_body_bytes
    )
    app.add_middleware(PathGuardMiddleware, position=MiddlewarePosition.BEFORE_SWAGGER)
    return app
