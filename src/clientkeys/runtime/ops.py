"""Operations endpoints beside the API, outside its spec, open without a token: the docs page
(Swagger UI from the `swagger-ui-bundle` package, nothing from a CDN), health as Sentry
exposes it, and Prometheus metrics.

    GET /docs/              Swagger UI over the served specs; "Authorize" takes a bearer token
    GET /_health/           liveness: `ok` (text/plain), touches nothing
    GET /_health/?full      readiness: every check run, JSON {"problems": [...], "healthy":
                            {"<check>": true}}; 200 when all pass, else 503
    GET /metrics            Prometheus text format (only with metrics on)

`OpsMiddleware` is plain ASGI, so that any app can be put behind it, whatever builds it.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from clientkeys.runtime import exchange, metrics

logger = logging.getLogger(__name__)

DOCS, HEALTH, METRICS = "/docs/", "/_health/", "/metrics"
DOCS_ASSETS = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
     "favicon-16x16.png", "favicon-32x32.png", "oauth2-redirect.html"}
)  # fmt: skip
Check = Callable[[], None]
"""A readiness check: returns when healthy, raises with the reason otherwise."""


def docs_page(specs: Sequence[tuple[str, str]]) -> str:
    """Swagger UI over `specs` ((name, URL relative to /docs/), first shown first)."""
    # One spec: Swagger UI's plain layout; several: its top bar, with a menu to pick one.
    chosen: dict[str, Any] = (
        {"url": specs[0][1], "layout": "BaseLayout"}
        if len(specs) == 1
        else {"urls": [{"name": n, "url": u} for n, u in specs], "layout": "StandaloneLayout"}
    )
    options = {
        **chosen,
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "persistAuthorization": True,
        "validatorUrl": None,
    }
    title = html.escape(specs[0][0])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="swagger-ui.css">
  <link rel="icon" type="image/png" href="favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="swagger-ui-bundle.js"></script>
  <script src="swagger-ui-standalone-preset.js"></script>
  <script>
    const options = {json.dumps(options)};
    window.ui = SwaggerUIBundle({{
      ...options,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    }});
  </script>
</body>
</html>
"""


def _detail(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps({"detail": detail})
    return Response(body, status, headers=headers, media_type="application/json")


class OpsMiddleware:
    """Answers the operations endpoints and passes everything else to `app`.

    `specs` lists the documents the docs page shows, `documents` files it serves under
    /docs/ for them (name -> a function giving the JSON), `checks` what readiness runs (on a
    worker thread), `serve_metrics` turns `/metrics` on. A path in `shadowed` is left to the
    app: a mocked spec that has its own `/metrics` keeps it.
    """

    def __init__(
        self,
        app: ASGIApp,
        specs: Sequence[tuple[str, str]],
        documents: Mapping[str, Callable[[], bytes]] | None = None,
        checks: Mapping[str, Check] | None = None,
        serve_metrics: bool = False,
        shadowed: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.page = docs_page(specs)
        self.documents = dict(documents or {})
        self.checks = dict(checks or {})
        self.routes: dict[str, Callable[[Scope], Any]] = {
            DOCS: self._docs, HEALTH: self._health,
            **({METRICS: self._metrics} if serve_metrics else {}),
        }  # fmt: skip
        for path in shadowed:
            self.routes.pop(path, None)

    def _route(self, path: str) -> Callable[[Scope], Any] | None:
        if path.startswith(DOCS) or path == DOCS.rstrip("/"):
            return self.routes.get(DOCS)
        return self.routes.get(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._route(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        this = exchange.of(scope)
        if this is not None:
            this.ops = True
        if scope["method"] not in ("GET", "HEAD"):
            response = _detail(
                405, f'Method "{scope["method"]}" not allowed.', {"Allow": "GET, HEAD"}
            )
        else:
            response = await handler(scope)
        await response(scope, receive, send)

    async def _docs(self, scope: Scope) -> Response:
        name = scope["path"].removeprefix(DOCS)
        if scope["path"] == DOCS.rstrip("/"):
            return RedirectResponse(scope.get("root_path", "") + DOCS)
        if name in ("", "index.html"):
            return Response(self.page, media_type="text/html")
        if name in DOCS_ASSETS:
            return FileResponse(swagger_ui_path / name)
        if name in self.documents:
            body = await run_in_threadpool(self.documents[name])
            return Response(body, media_type="application/json")
        return _detail(404, "The requested resource does not exist")

    async def _health(self, scope: Scope) -> Response:
        if b"full" not in {p.partition(b"=")[0] for p in scope["query_string"].split(b"&")}:
            return PlainTextResponse("ok")
        problems, healthy = [], {}
        for name, check in self.checks.items():
            try:
                await run_in_threadpool(check)
                healthy[name] = True
            except Exception as exc:  # a failing check is the answer, not an error
                problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                logger.warning("Readiness check %s failed: %s", name, problem)
                problems.append(f"{name}: {problem}")  # one line (PostgreSQL's add a LINE 1:)
                healthy[name] = False
        body = json.dumps({"problems": problems, "healthy": healthy})
        return Response(body, 503 if problems else 200, media_type="application/json")

    async def _metrics(self, scope: Scope) -> Response:
        body, content_type = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=content_type)
