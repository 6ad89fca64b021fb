"""Handlers for a project's client keys, named after the spec's operationIds."""

from __future__ import annotations

from typing import Any

from clientkeys.core import domain, pagination
from clientkeys.core.serializers import serialize_key
from clientkeys.server.handlers._request import (
    absolute_path,
    get_db,
    key_context,
    key_for,
    project_for,
    query_items,
    sees_internal,
    settings,
)
from clientkeys.store import repository

Response = tuple[Any, int] | tuple[Any, int, dict[str, str]]
NOTHING = -1
"""A status no key has: what an unknown `status` filter matches, as on Sentry (200, [])."""


def list_a_projects_client_keys(
    organization_slug: str,
    project_slug: str,
    token_info: dict[str, Any],
    cursor: str | None = None,
    per_page: int | None = None,
    status: str | None = None,
) -> Response:
    """GET .../keys/: one page of keys, newest first, with Sentry's Link header."""
    current = settings()
    limit = pagination.check_per_page(per_page or current.per_page, current.max_per_page)
    position = pagination.parse_cursor(cursor)
    wanted = domain.STATUSES.get(status, NOTHING) if status else None
    internal = sees_internal(token_info)
    project = project_for(organization_slug, project_slug, token_info)
    page = pagination.fetch_page(
        lambda bound, ascending, offset, size: repository.list_keys(
            get_db(), project["id"], bound=bound, ascending=ascending, offset=offset, limit=size,
            status=wanted, include_internal=internal,
        ),
        position,
        limit,
        key=lambda row: row["id"],
    )  # fmt: skip
    context = key_context(token_info, project)
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
    use_case = domain.USER_USE_CASE
    if token_info["is_superuser"]:
        use_case = body.get("useCase", use_case)
    project = project_for(organization_slug, project_slug, token_info)
    key = domain.new_key(
        name=body.get("name"), public=body.get("public"), secret=body.get("secret"),
        rate_limit=body.get("rateLimit"), use_case=use_case,
    )  # fmt: skip
    row = repository.insert_key(get_db(), project["id"], key)
    return serialize_key(row, key_context(token_info, project)), 201


def retrieve_a_client_key(
    organization_slug: str, project_slug: str, key_id: str, token_info: dict[str, Any]
) -> Response:
    """GET .../keys/{key_id}/: the key, active or not."""
    project = project_for(organization_slug, project_slug, token_info)
    row = key_for(project, key_id, token_info)
    return serialize_key(row, key_context(token_info, project)), 200


def update_a_client_key(
    organization_slug: str,
    project_slug: str,
    key_id: str,
    token_info: dict[str, Any],
    body: dict[str, Any] | None = None,
) -> Response:
    """PUT .../keys/{key_id}/: Sentry's update semantics; 200 with the key."""
    project = project_for(organization_slug, project_slug, token_info)
    changes, sdk_version = body or {}, settings().browser_sdk_version
    row = repository.update_key(
        get_db(), project["id"], key_id,
        lambda stored: domain.plan_update(stored, changes, sdk_version),
        include_internal=sees_internal(token_info),
    )  # fmt: skip
    return serialize_key(row, key_context(token_info, project)), 200


def delete_a_client_key(
    organization_slug: str, project_slug: str, key_id: str, token_info: dict[str, Any]
) -> Response:
    """DELETE .../keys/{key_id}/: gone for good; 204 with no body."""
    project = project_for(organization_slug, project_slug, token_info)
    repository.delete_key(
        get_db(), project["id"], key_id, include_internal=sees_internal(token_info)
    )
    return None, 204
