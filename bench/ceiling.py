"""The ceiling: the same list and create routes as clientkeys, in bare Flask, no validation.

Same SQL, same JSON (clientkeys' own repository, pagination and serializer functions), same
token lookup; no Connexion, no spec, no validation. Served by gunicorn with sync workers:

    CLIENTKEYS_DATABASE=bench.db gunicorn -w 2 --chdir bench 'ceiling:create_app()'
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response, g, json, request

from clientkeys import db, domain, pagination, repository
from clientkeys.errors import ClientKeysError
from clientkeys.serializers import KeyContext, serialize_key

PATH = "/api/0/projects/<organization_slug>/<project_slug>/keys/"


def create_app() -> Flask:
    app = Flask(__name__)
    database_path = os.environ["CLIENTKEYS_DATABASE"]

    def database() -> Any:
        if "db" not in g:
            g.db = db.connect(database_path)
        return g.db

    @app.teardown_appcontext
    def close(_exc: object) -> None:
        connection = g.pop("db", None)
        if connection is not None:
            connection.close()

    def project_for(organization: str, project: str, scopes: set[str]) -> dict[str, Any]:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        row = repository.find_token(database(), token)
        if row is None:
            raise ClientKeysError("Invalid token")
        if not scopes & set(row["scopes"].split()):
            raise ClientKeysError("No permission")
        return repository.get_project(database(), organization, project)

    def context() -> KeyContext:
        base = request.host_url.rstrip("/")
        return KeyContext(base, f"{base}/js-sdk-loader/", "7.x", ("latest", "7.x"))

    def answer(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status, headers, mimetype="application/json")

    @app.get(PATH)
    def list_keys(organization_slug: str, project_slug: str) -> Response:
        project = project_for(organization_slug, project_slug, {"project:read"})
        limit = int(request.args.get("per_page", 100))
        page = pagination.fetch_page(
            lambda bound, ascending, offset, size: repository.list_keys(
                database(), project["id"], bound=bound, ascending=ascending, offset=offset,
                limit=size,
            ),
            pagination.parse_cursor(request.args.get("cursor")),
            limit,
            key=lambda row: row["id"],
        )  # fmt: skip
        body = [serialize_key(row, context()) for row in page.rows]
        link = pagination.link_header(request.base_url, list(request.args.items()), page)
        return answer(body, 200, {"Link": link})

    @app.post(PATH)
    def create_key(organization_slug: str, project_slug: str) -> Response:
        project = project_for(organization_slug, project_slug, {"project:write"})
        body = request.get_json(silent=True) or {}
        row = repository.insert_key(
            database(), project["id"], domain.new_key(name=body.get("name"))
        )
        return answer(serialize_key(row, context()), 201)

    @app.errorhandler(ClientKeysError)
    def error(exc: ClientKeysError) -> Response:
        return answer({"detail": exc.detail}, exc.status)

    return app
