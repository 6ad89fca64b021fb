"""Fixtures compose: settings -> app -> client, over a real store: a SQLite file in a temp
folder, and a database on a real PostgreSQL server (`pg.py`) that the session starts itself.

Every test that uses the store (`settings`, `app`, `client`, `store`, `world`, `api`,
`memory_db`) runs once on each backend (`[sqlite]`, `[postgres]`); a module or test marked
`sqlite_only` (what it tests exists only there: files, WAL, SQLite's locks) runs on SQLite alone.
The app is built once per test module and backend (building one reads and resolves the spec);
every test that touches the store gets it emptied first, so tests stay independent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

import pg
from clientkeys.config import Settings, is_postgres
from clientkeys.server.app import create_app
from clientkeys.store import backend as storage
from clientkeys.store import repository
from clientkeys.store import sqlite as db
from clientkeys.store.backend import Connection

# tests/plugin_usage/ is another team's suite: test_pytest_plugin.py runs it in its own pytest.
collect_ignore = ["plugin_usage"]

KEYS = "/api/0/projects/{org}/{project}/keys/"
KEYS_URL = KEYS.format(org="acme", project="web")
READ, WRITE, ADMIN = "project:read", "project:write", "project:admin"
ALL_SCOPES = [READ, WRITE, ADMIN]
NOT_FOUND = "The requested resource does not exist"
NO_PERMISSION = "You do not have permission to perform this action."
NO_CREDENTIALS = "Authentication credentials were not provided."
HEX32 = re.compile(r"^[a-f0-9]{32}$")
SEEDED_KEYS = 2
"""The world's keys before a test writes any: the "Default" key of each of its two projects."""


BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: what the test checks exists only on SQLite (not run on postgres)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `sqlite_only` are not collected for the postgres backend."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_postgres = "postgres" in params.values()
        sqlite_only = item.get_closest_marker("sqlite_only") is not None
        (drop if on_postgres and sqlite_only else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg.PostgresServer]:
    """A real PostgreSQL server for this test process (started on first use)."""
    with pg.running() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_template(postgres_server: pg.PostgresServer) -> str:
    """A database with every migration applied, copied for each test module (faster than
    migrating each)."""
    url = postgres_server.new_database()
    storage.init_db(url)
    return url.rsplit("/", 1)[1]


def new_database(
    request: pytest.FixtureRequest, backend: str, folder: Path, *, migrated: bool = True
) -> Path | str:
    """A new database of `backend`: a SQLite file in `folder` (not there yet), or a PostgreSQL
    database on this session's server (with every migration applied, unless not `migrated`)."""
    if backend == "sqlite":
        return folder / "clientkeys.db"
    server: pg.PostgresServer = request.getfixturevalue("postgres_server")
    if not migrated:
        return server.new_database()
    return server.new_database(template=request.getfixturevalue("postgres_template"))


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A new database of each backend, with nothing in it (no tables yet): for the commands
    and the live servers."""
    return new_database(request, request.param, tmp_path, migrated=False)


@pytest.fixture(scope="module", params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    database = new_database(request, request.param, tmp_path_factory.mktemp("store"))
    return Settings(database=database)


@pytest.fixture(scope="module")
def app(settings: Settings) -> Iterator[Any]:
    """The module's app; its lifespan runs around the module, so its backend is closed at the
    end (and what a test's own client's lifespan closed reopens on use)."""
    app = create_app(settings)
    with app.test_client():
        yield app


@pytest.fixture(scope="module")
def module_client(app: Any) -> Iterator[Any]:
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def store(app: Any, settings: Settings) -> Iterator[Connection]:
    """The app's own database (migrated by the factory), emptied for this test."""
    with storage.connect(settings.database) as database:
        empty(database)
        yield database


@pytest.fixture
def client(module_client: Any, store: Database) -> Any:
    """A test client of the module's app, over an empty store."""
    return module_client


@pytest.fixture(scope="session")
def postgres_scratch(postgres_server: pg.PostgresServer, postgres_template: str) -> str:
    """A migrated PostgreSQL database that `memory_db` empties for each test."""
    return postgres_server.new_database(template=postgres_template)


@pytest.fixture(params=BACKENDS)
def memory_db(request: pytest.FixtureRequest) -> Iterator[Connection]:
    """A fresh database with every migration applied: SQLite in memory, or an emptied
    PostgreSQL database."""
    if request.param == "sqlite":
        database = db.memory()
    else:
        database = storage.connect(request.getfixturevalue("postgres_scratch"))
        empty(database)
    yield database
    database.close()


def on_postgres(database: Any) -> bool:
    """Whether a connection (or a database setting) is PostgreSQL's."""
    return getattr(database, "dialect", None) == "postgresql" or is_postgres(database)


def empty(database: Any) -> None:
    """Delete every row (ids start again at 1); the migrations stay applied."""
    if on_postgres(database):
        tables = [name for (name,) in database.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename <> '_migrations'"
        ).fetchall()]  # fmt: skip
        database.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        return
    tables = [name for name in database.table_names() if not name.startswith("_sqlite_migr")]
    with db.write(database):
        database.execute("PRAGMA defer_foreign_keys = ON")
        for table in tables:
            database.execute(f"DELETE FROM [{table}]")


@dataclass
class World:
    """Two organizations, a project each, and tokens of every kind."""

    store: Connection
    tokens: dict[str, str]
    project: dict[str, Any]
    other_project: dict[str, Any]

    def headers(self, who: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def key_count(self) -> int:
        return int(self.store.execute("SELECT count(*) FROM keys", []).fetchone()[0])


@pytest.fixture
def world(store: Connection) -> World:
    repository.insert_organization(store, "acme", "Acme")
    repository.insert_organization(store, "globex", "Globex")
    project = repository.insert_project(store, "acme", "web")
    other = repository.insert_project(store, "globex", "api")
    grants = {
        "read": ("acme", [READ], False),
        "write": ("acme", [WRITE], False),
        "admin": ("acme", [ADMIN], False),
        "all": ("acme", ALL_SCOPES, False),
        "globex": ("globex", ALL_SCOPES, False),
        "superuser": (None, ALL_SCOPES, True),
    }
    tokens = {
        who: repository.insert_token(store, org, scopes, superuser=su)[0]
        for who, (org, scopes, su) in grants.items()
    }
    return World(store, tokens, project, other)


class Api:
    """Short calls for the keys endpoints."""

    def __init__(self, client: Any, world: World) -> None:
        self.client, self.world = client, world

    def url(self, org: str = "acme", project: str = "web", query: str = "") -> str:
        return KEYS.format(org=org, project=project) + (f"?{query}" if query else "")

    def list(self, who: str = "admin", **kwargs: Any) -> Any:
        query = kwargs.pop("query", "")
        return self.client.get(self.url(query=query, **kwargs), headers=self.world.headers(who))

    def create(self, body: Any = None, who: str = "admin", **kwargs: Any) -> Any:
        return self.client.post(self.url(**kwargs), json=body, headers=self.world.headers(who))

    def key_url(self, key_id: str, org: str = "acme", project: str = "web") -> str:
        return f"{self.url(org, project)}{key_id}/"

    def get(self, key_id: str, who: str = "admin", **kwargs: Any) -> Any:
        return self.client.get(self.key_url(key_id, **kwargs), headers=self.world.headers(who))

    def put(self, key_id: str, body: Any = None, who: str = "admin", **kwargs: Any) -> Any:
        return self.client.put(
            self.key_url(key_id, **kwargs), json=body, headers=self.world.headers(who)
        )

    def delete(self, key_id: str, who: str = "admin", **kwargs: Any) -> Any:
        return self.client.delete(self.key_url(key_id, **kwargs), headers=self.world.headers(who))

    def new_key(self, body: Any = None, who: str = "admin") -> dict[str, Any]:
        response = self.create(body if body is not None else {}, who=who)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def row(self, key_id: str) -> dict[str, Any]:
        """The stored row of a key, straight from the store."""
        cursor = self.world.store.execute("SELECT * FROM keys WHERE public_key = ?", [key_id])
        values = cursor.fetchone()
        assert values is not None, key_id
        row = dict(zip([c[0] for c in cursor.description], values, strict=True))
        row["data"] = json.loads(row["data"])
        return row


@pytest.fixture
def api(client: Any, world: World) -> Api:
    return Api(client, world)


def assert_error(response: Any, status: int, detail: str | None = None) -> Any:
    """Every error is application/json in the spec's shape; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and body
    if detail is not None:
        assert body == {"detail": detail}
    return body


def dsn_urls(base: str, key: dict[str, Any]) -> dict[str, str]:
    """Sentry's 13 DSN URLs of a key on `base` (the server's, or an organization's relay); `cdn`
    stays on the test server's own URL."""
    k, s, p = key["public"], key["secret"], key["projectId"]
    scheme, rest = base.split("://")
    return {
        "secret": f"{scheme}://{k}:{s}@{rest}/{p}",
        "public": f"{scheme}://{k}@{rest}/{p}",
        "csp": f"{base}/api/{p}/csp-report/?sentry_key={k}",
        "security": f"{base}/api/{p}/security/?sentry_key={k}",
        "minidump": f"{base}/api/{p}/minidump/?sentry_key={k}",
        "nel": f"{base}/api/{p}/nel/?sentry_key={k}",
        "unreal": f"{base}/api/{p}/unreal/{k}/",
        "crons": f"{base}/api/{p}/cron/___MONITOR_SLUG___/{k}/",
        "cdn": f"http://testserver/js-sdk-loader/{k}.min.js",
        "playstation": f"{base}/api/{p}/playstation/?sentry_key={k}",
        "integration": f"{base}/api/{p}/integration/",
        "otlp_traces": f"{base}/api/{p}/integration/otlp/v1/traces",
        "otlp_logs": f"{base}/api/{p}/integration/otlp/v1/logs",
    }
