"""The one app builder: a Connexion FlaskApp serving specs with clientkeys' validation, errors,
auth and guards, the docs page and health endpoints, and optionally request ids, access logs and
metrics, for `app.create_app` (the API and its test controls) and `proxy.create_proxy_app`. The
mock is not a Connexion app: it is `clientkeys.openapi`, an ASGI app of its own, with
`ops.OpsMiddleware` in front.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson
from connexion import FlaskApp
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.spec import Specification

from clientkeys.openapi import compiled
from clientkeys.openapi import specs as openapi
from clientkeys.runtime import ops
from clientkeys.runtime.access import AccessMiddleware, ValidatedMarker
from clientkeys.runtime.guards import (
    BodyLimitMiddleware,
    PathGuardMiddleware,
    RequestHeadGuardMiddleware,
    SecurityHeadersMiddleware,
)
from clientkeys.server import connexion_hooks, rendering


@dataclass(frozen=True)
class Api:
    """One spec to serve (loaded with `openapi.load`) and what resolves its operations;
    `operation_ids` maps the resolved names back to the spec's operationIds (for logs)."""

    spec: Specification
    resolver: Resolver
    operation_ids: Mapping[str, str] = field(default_factory=dict)


def build_app(
    apis: Sequence[Api],
    *,
    security: type[Any],
    validate_responses: bool,
    validate_requests: bool = True,
    max_body_bytes: int,
    threads: int | None = None,
    checks: Mapping[str, ops.Check] | None = None,
    observe: bool = False,
    record_metrics: bool = False,
    validator_map: Mapping[str, Any] = connexion_hooks.VALIDATOR_MAP,
    lifespan: Callable[[Any], AbstractAsyncContextManager[None]] | None = None,
    own_endpoints: bool = True,
    api_guards: bool = True,
) -> FlaskApp:
    """A FlaskApp serving `apis` with strict validation, Sentry's error shape and messages, the
    `security` handler for bearer schemes, the request guards and security headers, compact
    JSON, and `threads` handler threads (None: a2wsgi's default).

    In front of them: the docs page over `apis` and health (readiness runs `checks`), see
    `ops`. With `observe`, every request gets an id and an access log line, and with
    `record_metrics` it is counted too (`/metrics`), see `access`.
    `validator_map` replaces the validators (the proxy notes which parameter fails), and
    `lifespan` runs around the app's life (Starlette's lifespan context, given the app).
    Without `own_endpoints`, neither the specs (`<base path>/openapi.json`) nor the docs page,
    health or metrics are served: the proxy leaves every path but its own to the upstream.
    Without `api_guards`, requests reach the app as sent and answers leave as made (no request
    head guard, no added security headers): the proxy passes both on unchanged.
    """
    app = FlaskApp(
        __name__,
        middlewares=connexion_hooks.middlewares(validate_requests),
        jsonifier=OrjsonJsonifier(),
        lifespan=lifespan,
    )
    for api in apis:
        # The resolved document: Connexion need not read and resolve the files a second time.
        app.add_api(
            copy.deepcopy(api.spec.spec),
            resolver=api.resolver,
            strict_validation=True,
            validate_responses=validate_responses,
            validator_map=dict(validator_map),
            security_map={"bearer": security},
            swagger_ui_options=SwaggerUIOptions(serve_spec=own_endpoints, swagger_ui=False),
        )
    connexion_hooks.bridge(app, threads)
    routes = openapi.routes_of(api.spec for api in apis)
    rendering.install(app, routes)
    # Outermost first: each later middleware at this position sits inside the earlier ones.
    if api_guards:
        app.add_middleware(SecurityHeadersMiddleware, MiddlewarePosition.BEFORE_EXCEPTION)
    if observe:
        app.add_middleware(
            AccessMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, record_metrics=record_metrics
        )
        app.add_middleware(
            connexion_hooks.OperationMarker, MiddlewarePosition.BEFORE_SECURITY,
            operation_ids={k: v for api in apis for k, v in api.operation_ids.items()},
        )  # fmt: skip
        app.add_middleware(ValidatedMarker, MiddlewarePosition.BEFORE_CONTEXT)
    if own_endpoints:
        app.add_middleware(
            ops.OpsMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, specs=_docs_specs(apis),
            checks=checks, serve_metrics=record_metrics, shadowed=_shadowed(routes),
        )  # fmt: skip
    app.add_middleware(
        BodyLimitMiddleware, position=MiddlewarePosition.BEFORE_SWAGGER, max_bytes=max_body_bytes
    )
    app.add_middleware(PathGuardMiddleware, position=MiddlewarePosition.BEFORE_SWAGGER)
    if api_guards:
        app.add_middleware(RequestHeadGuardMiddleware, MiddlewarePosition.BEFORE_SWAGGER)
        # Inside response validation too, which checks the documented headers of the handlers'
        # answers (the outer one, above, gives them to errors and the operations endpoints).
        app.add_middleware(SecurityHeadersMiddleware, MiddlewarePosition.BEFORE_CONTEXT)
    return app


def _docs_specs(apis: Sequence[Api]) -> list[tuple[str, str]]:
    """Each served spec's title and its URL relative to the docs page."""
    return [
        (str(api.spec["info"]["title"]), f"..{api.spec.base_path}/openapi.json") for api in apis
    ]


def _shadowed(routes: Mapping[str, Sequence[str]]) -> frozenset[str]:
    """The operations endpoints that a served spec defines itself (and so keeps)."""
    return frozenset(
        path for path in (ops.DOCS, ops.HEALTH, ops.METRICS)
        if rendering.allowed_methods(routes, path) is not None
    )  # fmt: skip


class OrjsonJsonifier(Jsonifier):  # type: ignore[misc]
    """Connexion's jsonifier with compact orjson output instead of indented json."""

    def __init__(self) -> None:
        super().__init__(json)

    def dumps(self, data: Any, **kwargs: Any) -> str:
        return compiled.dumps(data).decode()

    def loads(self, data: Any) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return data if isinstance(data, str) else super().loads(data)
