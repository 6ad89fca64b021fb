"""Fixtures compose: settings -> app -> client, over a real SQLite file in a temp folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlite_utils import Database

from clientkeys import db, repository
from clientkeys.app import create_app
from clientkeys.config import Settings

KEYS = "/api/0/projects/{org}/{project}/keys/"
READ, WRITE, ADMIN = "project:read", "project:write", "project:admin"
ALL_SCOPES = [READ, WRITE, ADMIN]


@pytest.fixture
def memory_db() -> Iterator[Database]:
    """A fresh in-memory database with every migration applied."""
    database = Database(memory=True)
    db.migrate(database)
    yield database
    database.close()


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(database=tmp_path / "clientkeys.db")


@pytest.fixture
def app(settings: Settings) -> Any:
    return create_app(settings)


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def store(app: Any, settings: Settings) -> Iterator[Database]:
    """The app's own database (migrated by the factory)."""
    with db.connect(settings.database) as database:
        yield database


@dataclass
class World:
    """Two organizations, a project each, and tokens of every kind."""

    store: Database
    tokens: dict[str, str]
    project: dict[str, Any]
    other_project: dict[str, Any]

    def headers(self, who: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def key_count(self) -> int:
        return int(self.store.execute("SELECT count(*) FROM keys").fetchone()[0])


@pytest.fixture
def world(store: Database) -> World:
    repository.insert_organization(store, "acme", "Acme")
    repository.insert_organization(store, "globex", "Globex")
    project = repository.insert_project(store, "acme", "web")
    other = repository.insert_project(store, "globex", "api")
    grants = {
        "read": ("acme", [READ], False),
        "write": ("acme", [WRITE], False),
        "admin": ("acme", [ADMIN], False),
        "all": ("acme", [READ, WRITE, ADMIN], False),
        "globex": ("globex", [READ, WRITE, ADMIN], False),
        "superuser": (None, [READ, WRITE, ADMIN], True),
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
        """The stored row of a key, straight from SQLite."""
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
