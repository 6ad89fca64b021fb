"""Handlers for a project's client keys, named after the spec's operationIds."""

from __future__ import annotations

from typing import Any

from clientkeys import db, pagination, repository
from clientkeys.handlers._request import (
    absolute_path,
    key_context,
    project_for,
    query_items,
    settings,
)
from clientkeys.serializers import serialize_key

Response = tuple[Any, int] | tuple[Any, int, dict[str, str]]


def list_a_projects_client_keys(
    organization_slug: str,
    project_slug: str,
    token_info: dict[str, Any],
    cursor: str | None = None,
    per_page: int | None = None,
) -> Response:
    """GET .../keys/: one page of keys, newest first, with Sentry's Link header."""
    current = settings()
    limit = pagination.check_per_page(per_page or current.per_page, current.max_per_page)
    position = pagination.parse_cursor(cursor)
    internal = bool(token_info["is_superuser"])
    with db.connect(current.database) as database:
        project = project_for(database, organization_slug, project_slug, token_info)
        page = pagination.fetch_page(
            lambda bound, ascending, offset, size: repository.list_keys(
                database,
                project["id"],
                bound=bound,
                ascending=ascending,
                offset=offset,
                limit=size,
                include_internal=internal,
            ),
            position,
            limit,
            key=lambda row: row["id"],
        )
    context = key_context(token_info)
    body = [serialize_key(row, context) for row in page.rows]
    return body, 200, {"Link": pagination.link_header(absolute_path(), query_items(), page)}


def create_a_new_client_key(
    organization_slug: str,
    project_slug: str,
    token_info: dict[str, Any],
    body: dict[str, Any] | None = None,
) -> Response:
    """POST .../keys/: create a key; 201 with it."""
    body = body or {}
    superuser = bool(token_info["is_superuser"])
    with db.connect(settings().database) as database:
        project = project_for(database, organization_slug, project_slug, token_info)
        row = repository.insert_key(
            database,
            project["id"],
            name=body.get("name"),
            public=body.get("public"),
            secret=body.get("secret"),
            rate_limit=body.get("rateLimit"),
            use_case=body.get("useCase", "user") if superuser else "user",
        )
    return serialize_key(row, key_context(token_info)), 201
