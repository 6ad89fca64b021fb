"""The fair ceiling: clientkeys' list and create routes doing the same work with no framework.

The same work as `clientkeys serve` per request: the same token lookup (hash, row, scopes,
organization check), the same project lookup, the same keyset page and Link header, the same
rows, audit writes and durability (`sqlite.write` with `durability = full`, one connection per
thread as `SqliteBackend.connection` keeps them), the same JSON fields and DSN URLs (clientkeys'
repository, pagination and serializers) and the same security headers. What it leaves out is
everything between the socket and that work: no Connexion, no Flask, no spec, no validation.
A plain WSGI callable, served by gunicorn's sync workers (a C-free loop, one request at a time
per process, nothing shared):

    CLIENTKEYS_DATABASE=bench.db gunicorn -w 2 --chdir bench 'ceiling:create_app()'

`plain_connexion.py` runs the same `Work` under a plain Connexion FlaskApp.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

import orjson

from clientkeys.core import domain, pagination, sentry
from clientkeys.core.errors import ClientKeysError, NotAuthenticated, PermissionDenied
from clientkeys.core.serializers import KeyContext, serialize_key
from clientkeys.server import auth
from clientkeys.store import repository
from clientkeys.store import sqlite as db

ROUTE = re.compile(r"/api/0/projects/(?P<organization>[^/]+)/(?P<project>[^/]+)/keys/")
READ = frozenset({"project:read", "project:write", "project:admin"})
WRITE = frozenset({"project:write", "project:admin"})
HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
           ("X-Content-Type-Options", "nosniff")]  # fmt: skip
STATUS = {200: "200 OK", 201: "201 Created", 400: "400 Bad Request", 401: "401 Unauthorized",
          403: "403 Forbidden", 404: "404 Not Found", 405: "405 Method Not Allowed",
          503: "503 Service Unavailable", 507: "507 Insufficient Storage"}  # fmt: skip


@dataclass(frozen=True)
class Work:
    """What the server does for list and create once a request is parsed and validated."""

    database: str
    durability: str = "full"
    per_page: int = 100

    @cached_property
    def backend(self) -> db.SqliteBackend:
        """The database as the server holds it: one connection per thread, group commit."""
        return db.SqliteBackend(self.database, self.durability)

    def connection(self) -> Any:
        return self.backend.connection()

    def token(self, token: str) -> dict[str, Any] | None:
        """The token lookup `auth.bearer_info` does."""
        database = self.connection()
        try:
            row = repository.find_token(database, token)
        finally:
            db.rollback(database.conn)
        return None if row is None else auth.token_info(row)

    def project(self, info: dict[str, Any], organization: str, project: str, scopes: frozenset[str]
                ) -> dict[str, Any]:  # fmt: skip
        if not scopes & info["scopes"]:
            raise PermissionDenied()
        row = repository.get_project(self.connection(), organization, project)
        auth.check_organization(info, row["organization_id"])
        return row

    @staticmethod
    def context(info: dict[str, Any], project: dict[str, Any], base: str) -> KeyContext:
        return KeyContext(
            ingest_url=base, cdn_url=f"{base}/js-sdk-loader/", browser_sdk_version="7.x",
            browser_sdk_choices=("latest", "7.x"), include_use_case=bool(info["is_superuser"]),
            relay_dsn_endpoint=project.get("organization_dsn_endpoint"),
        )  # fmt: skip

    def list(self, info: dict[str, Any], organization: str, project: str, base: str, path: str,
             query: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], str]:  # fmt: skip
        """One page of keys and its Link header."""
        params = dict(query)
        limit = pagination.check_per_page(int(params.get("per_page") or self.per_page), 100)
        position = pagination.parse_cursor(params.get("cursor"))
        row = self.project(info, organization, project, READ)
        database = self.connection()
        page = pagination.fetch_page(
            lambda bound, ascending, offset, size: repository.list_keys(
                database, row["id"], bound=bound, ascending=ascending, offset=offset, limit=size,
                include_internal=bool(info["is_superuser"]),
            ),
            position,
            limit,
            key=lambda r: r["id"],
        )  # fmt: skip
        context = self.context(info, row, base)
        body = [serialize_key(key, context) for key in page.rows]
        return body, pagination.link_header(base + path, query, page)

    def create(self, info: dict[str, Any], organization: str, project: str, base: str,
               body: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """Store a key (with its audit entry) and return its JSON."""
        row = self.project(info, organization, project, WRITE)
        use_case = body.get("useCase", domain.USER_USE_CASE) if info["is_superuser"] else None
        key = domain.new_key(
            name=body.get("name"), public=body.get("public"), secret=body.get("secret"),
            rate_limit=body.get("rateLimit"), use_case=use_case or domain.USER_USE_CASE,
        )  # fmt: skip
        stored = repository.insert_key(self.connection(), row["id"], key)
        return serialize_key(stored, self.context(info, row, base))


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def create_app() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    work = Work(os.environ["CLIENTKEYS_DATABASE"])

    def answer(start: StartResponse, status: int, body: Any, headers: list[tuple[str, str]]
               ) -> list[bytes]:  # fmt: skip
        data = orjson.dumps(body)
        start(STATUS[status], [*HEADERS, ("Content-Length", str(len(data))), *headers])
        return [data]

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        route = ROUTE.fullmatch(environ.get("PATH_INFO", ""))
        if route is None:
            return answer(start, 404, {"detail": "The requested resource does not exist"}, [])
        method, base = environ["REQUEST_METHOD"], f"http://{environ['HTTP_HOST']}"
        try:
            info = work.token(sentry.token_from_header(environ.get("HTTP_AUTHORIZATION")))
            if info is None:
                raise NotAuthenticated(sentry.INVALID)
            organization, project = route["organization"], route["project"]
            if method == "GET":
                query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
                body, link = work.list(info, organization, project, base, route[0], query)
                return answer(start, 200, body, [("Link", link)])
            if method == "POST":
                size = int(environ.get("CONTENT_LENGTH") or 0)
                sent = orjson.loads(environ["wsgi.input"].read(size) or b"{}")
                return answer(start, 201, work.create(info, organization, project, base, sent), [])
            return answer(start, 405, {"detail": f'Method "{method}" not allowed.'}, [])
        except ClientKeysError as exc:
            return answer(start, exc.status, exc.body(), [])

    return app
