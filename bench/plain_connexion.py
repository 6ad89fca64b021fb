"""A plain Connexion 3 FlaskApp on clientkeys' spec: the peer a user would write instead.

Connexion's defaults (its validators, its JSON, its a2wsgi thread pool, uvicorn) with request
validation on and response validation off, and the same work per request as the ceiling and
clientkeys (`ceiling.Work`: token lookup, project, page or insert with its audit entry, the same
JSON and DSN URLs, `durability = full`). Served by uvicorn with 2 workers:

    CLIENTKEYS_DATABASE=bench.db uvicorn --workers 2 --app-dir bench --factory \
        plain_connexion:create_app
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ceiling import Work
from connexion import FlaskApp, request
from connexion.resolver import Resolver

from clientkeys.core.errors import ClientKeysError, NotAuthenticated
from clientkeys.openapi import specs as openapi
from clientkeys.server.resolver import handler_name

SPEC = Path(__file__).resolve().parents[1] / "spec" / openapi.SPEC_FILE
work = Work(os.environ.get("CLIENTKEYS_DATABASE", "clientkeys.db"))


def bearer_info(token: str) -> dict[str, Any] | None:
    """The spec's x-bearerInfoFunc, as Connexion calls it (on its event loop)."""
    return work.token(token)


def _base() -> str:
    url = request.url
    return f"{url.scheme}://{url.netloc}"


def list_a_projects_client_keys(organization_slug: str, project_slug: str,
                                token_info: dict[str, Any], **_: Any) -> Any:  # fmt: skip
    try:
        body, link = work.list(
            token_info, organization_slug, project_slug, _base(), request.url.path,
            list(request.query_params.multi_items()),
        )  # fmt: skip
    except ClientKeysError as exc:
        return exc.body(), exc.status
    return body, 200, {"Link": link}


def create_a_new_client_key(organization_slug: str, project_slug: str,
                            token_info: dict[str, Any], body: dict[str, Any] | None = None
                            ) -> Any:  # fmt: skip
    try:
        return work.create(token_info, organization_slug, project_slug, _base(), body or {}), 201
    except ClientKeysError as exc:
        return exc.body(), exc.status


def _unused(**_: Any) -> Any:
    return NotAuthenticated().body(), 501


def create_app() -> FlaskApp:
    spec = openapi.bundle(SPEC)
    spec["components"]["securitySchemes"]["auth_token"]["x-bearerInfoFunc"] = (
        "plain_connexion.bearer_info"
    )
    handlers: dict[str, Any] = {
        "list_a_projects_client_keys": list_a_projects_client_keys,
        "create_a_new_client_key": create_a_new_client_key,
    }

    def resolve(operation_id: str) -> Any:
        return handlers.get(handler_name(operation_id), _unused)

    app = FlaskApp(__name__)
    app.add_api(
        spec, resolver=Resolver(function_resolver=resolve), strict_validation=True,
        validate_responses=False,
    )  # fmt: skip
    return app
