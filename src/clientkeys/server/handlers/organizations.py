"""Handlers for what Sentry's own command-line tools read besides keys: the API index, the
organizations, their projects and all their keys, and the regions; named after the spec's
operationIds. Authorization runs in the keys endpoints' order: the token (401), its scope (403),
the organization or project named in the path (404), then whether the token may use it (403).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from clientkeys.core import domain, pagination
from clientkeys.core.domain import Row
from clientkeys.core.errors import NotFound
from clientkeys.core.serializers import (
    serialize_key,
    serialize_organization,
    serialize_project,
)
from clientkeys.server import auth
from clientkeys.server.handlers._request import (
    absolute_path,
    base_url,
    get_db,
    key_context,
    project_for,
    query_items,
    sees_internal,
    settings,
)
from clientkeys.store import repository

Response = tuple[Any, int] | tuple[Any, int, dict[str, str]]
API_VERSION = "0"
REGION = "us"
"""The one region this server is: Sentry's default region's name."""
ALL_PROJECTS = -1
"""The `project` value that means every project of the organization (`sentry dsn list ORG/`)."""
NOTHING = -1
"""A status no key has: what an unknown `status` filter matches, as on Sentry (200, [])."""
DSN_QUERY = "dsn:"


def _page(
    fetch: Callable[[float | None, bool, int, int], Sequence[Row]],
    cursor: str | None,
    per_page: int | None,
    render: Callable[[Row], dict[str, Any]],
) -> Response:
    """One page of rows, newest first, rendered, with the keys list's `Link` header."""
    current = settings()
    limit = pagination.check_per_page(per_page or current.per_page, current.max_per_page)
    page = pagination.fetch_page(fetch, pagination.parse_cursor(cursor), limit,
                                 key=lambda row: row["id"])  # fmt: skip
    body = [render(row) for row in page.rows]
    return body, 200, {"Link": pagination.link_header(absolute_path(), query_items(), page)}


def _own_organization(token_info: dict[str, Any]) -> int | None:
    """The organization a token is limited to; None for a superuser token (all of them)."""
    return None if token_info["is_superuser"] else token_info["organization_id"]


def organization_for(organization_slug: str, token_info: dict[str, Any]) -> Row:
    """The organization named in the path, if the token may use it: 404 first, then 403."""
    try:
        row = repository.get_organization(get_db(), organization_slug)
    except NotFound:
        raise NotFound() from None  # Sentry's words, not the command line's "No organization"
    auth.check_organization(token_info, row["id"])
    return row


def retrieve_the_api_index(token_info: dict[str, Any]) -> Response:
    """GET /api/0/: the API version and the token's scopes (`sentry-cli info`)."""
    scopes = domain.in_scope_order(token_info["scopes"])
    return {"version": API_VERSION, "auth": {"scopes": scopes}, "user": None}, 200


def list_your_regions(token_info: dict[str, Any]) -> Response:
    """GET /api/0/users/me/regions/: this server, the one region."""
    return {"regions": [{"name": REGION, "url": base_url()}]}, 200


def list_your_organizations(
    token_info: dict[str, Any], cursor: str | None = None, per_page: int | None = None
) -> Response:
    """GET /api/0/organizations/: the token's organization (all, for a superuser token)."""
    own, url = _own_organization(token_info), base_url()
    return _page(
        lambda bound, ascending, offset, size: repository.list_organizations_page(
            get_db(), own, bound=bound, ascending=ascending, offset=offset, limit=size
        ),
        cursor,
        per_page,
        lambda row: serialize_organization(row, url),
    )


def retrieve_an_organization(
    organization_slug: str, token_info: dict[str, Any], detailed: str | None = None
) -> Response:
    """GET /api/0/organizations/{org}/: the organization, by slug or numeric id."""
    row = organization_for(organization_slug, token_info)
    return serialize_organization(row, base_url()), 200


def list_an_organizations_projects(
    organization_slug: str,
    token_info: dict[str, Any],
    cursor: str | None = None,
    per_page: int | None = None,
) -> Response:
    """GET /api/0/organizations/{org}/projects/: one page of its projects, newest first."""
    organization, url = organization_for(organization_slug, token_info), base_url()
    return _page(
        lambda bound, ascending, offset, size: repository.list_projects(
            get_db(), organization["id"], bound=bound, ascending=ascending, offset=offset,
            limit=size,
        ),
        cursor,
        per_page,
        lambda row: serialize_project(row, url),
    )  # fmt: skip


def list_an_organizations_client_keys(
    organization_slug: str,
    token_info: dict[str, Any],
    project: list[int] | None = None,
    cursor: str | None = None,
    per_page: int | None = None,
    status: str | None = None,
) -> Response:
    """GET /api/0/organizations/{org}/project-keys/: keys of its projects, newest first."""
    organization = organization_for(organization_slug, token_info)
    projects = None if not project or ALL_PROJECTS in project else project
    wanted = domain.STATUSES.get(status, NOTHING) if status else None
    internal = sees_internal(token_info)
    # Every key of an organization renders alike: its DSNs depend on the organization alone.
    context = key_context(token_info, {"organization_dsn_endpoint": organization["dsn_endpoint"]})
    return _page(
        lambda bound, ascending, offset, size: repository.list_organization_keys(
            get_db(), organization["id"], projects, bound=bound, ascending=ascending,
            offset=offset, limit=size, status=wanted, include_internal=internal,
        ),
        cursor,
        per_page,
        lambda row: serialize_key(row, context),
    )  # fmt: skip


def retrieve_a_project(
    organization_slug: str,
    project_slug: str,
    token_info: dict[str, Any],
    collapse: list[str] | None = None,
) -> Response:
    """GET /api/0/projects/{org}/{project}/: the project, by slug or numeric id, with its
    organization's summary (also what `?collapse=organization` leaves)."""
    row = project_for(organization_slug, project_slug, token_info)
    return serialize_project(row, base_url()), 200


def list_your_projects(
    token_info: dict[str, Any],
    cursor: str | None = None,
    per_page: int | None = None,
    query: str | None = None,
) -> Response:
    """GET /api/0/projects/: the projects the token may use; `query=dsn:<public key>` finds the
    project of a DSN, any other query term matches nothing (no other is served)."""
    own, url = _own_organization(token_info), base_url()
    public_key = None
    if query:
        public_key = query[len(DSN_QUERY) :].strip() if query.startswith(DSN_QUERY) else ""
    return _page(
        lambda bound, ascending, offset, size: repository.list_projects(
            get_db(), own, public_key=public_key, bound=bound, ascending=ascending,
            offset=offset, limit=size,
        ),
        cursor,
        per_page,
        lambda row: serialize_project(row, url),
    )  # fmt: skip
