"""What every handler needs from the current request: settings, the database, the project,
URLs. The database accessor follows flaskr's `get_db`: one connection per request (this
handler thread's SQLite connection, or one from the PostgreSQL pool: the app's backend's
`connection`), and a teardown that rolls back what a request left open and hands a pooled
connection back.
"""

from __future__ import annotations

from typing import Any

from connexion import FlaskApp, request
from flask import g

from clientkeys.config import Settings, settings_of
from clientkeys.core.domain import Row
from clientkeys.core.serializers import KeyContext
from clientkeys.server import auth
from clientkeys.store import backend as store
from clientkeys.store import repository
from clientkeys.store.backend import Connection


def settings() -> Settings:
    """The running app's settings."""
    return settings_of(request)


def get_db() -> Connection:
    """This request's database connection."""
    if "db" not in g:
        g.db = store.backend_of(request).connection()
    database: Connection = g.db
    return database


def close_db(_exc: BaseException | None = None) -> None:
    """At the end of a request: roll back any transaction it left open (and hand a pooled
    connection back)."""
    database: Connection | None = g.pop("db", None)
    if database is not None:
        database.backend.release(database)


def init_app(app: FlaskApp) -> None:
    """Register `close_db` on the Flask app inside the Connexion app."""
    app.app.teardown_appcontext(close_db)


def base_url() -> str:
    """This server's URL as the client reached it: the configured public URL, else Host."""
    configured = settings().public_url
    if configured:
        return configured
    url = request.url
    return f"{url.scheme}://{url.netloc}"


def absolute_path() -> str:
    """The request's path as an absolute URL (for Link headers)."""
    path: str = request.url.path
    return base_url() + path


def query_items() -> list[tuple[str, str]]:
    """The request's query string as ordered pairs."""
    return list(request.query_params.multi_items())


def project_for(organization: str, project: str, token: dict[str, Any]) -> Row:
    """The project named in the path, if the token may use it: 404 first, then 403."""
    row = repository.get_project(get_db(), organization, project)
    auth.check_organization(token, row["organization_id"])
    return row


def sees_internal(token: dict[str, Any]) -> bool:
    """Internal keys exist only for superuser tokens."""
    return bool(token["is_superuser"])


def key_for(project: Row, key_id: str, token: dict[str, Any]) -> Row:
    """The key named in the path, if this token may see it."""
    return repository.get_key(
        get_db(), project["id"], key_id, include_internal=sees_internal(token)
    )


def key_context(token: dict[str, Any], project: Row) -> KeyContext:
    """How the project's keys render for this request and token."""
    current = settings()
    ingest = current.ingest_url or base_url()
    return KeyContext(
        ingest_url=ingest,
        cdn_url=current.cdn_url or f"{ingest}/js-sdk-loader/",
        browser_sdk_version=current.browser_sdk_version,
        browser_sdk_choices=current.browser_sdk_choices,
        include_use_case=bool(token.get("is_superuser")),
        relay_dsn_endpoint=project.get("organization_dsn_endpoint"),
    )
