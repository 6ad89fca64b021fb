"""The test controls: /__admin/reset and /__admin/requests, only with the admin token."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from clientkeys.config import Settings
from clientkeys.runtime.logs import ACCESS_LOGGER
from clientkeys.server.app import create_app
from clientkeys.store import fixtures, repository
from conftest import ADMIN as ADMIN_SCOPE
from conftest import KEYS_URL as KEYS
from conftest import SEEDED_KEYS, World, assert_error

ADMIN = {"Authorization": "Bearer admin-secret"}
CI_FIXTURES = Path(__file__).parents[1] / "data" / "ci.yaml"
ALL_CI_KEYS = 4
"""Two keys listed for acme/web in ci.yaml, and the "Default" key of each of its other projects."""
JOURNAL_SIZE = 5


@pytest.fixture(scope="module")
def controlled_client(settings: Settings) -> Iterator[Any]:
    app = create_app(settings.replace(admin_token="admin-secret", journal_size=JOURNAL_SIZE))
    with app.test_client() as client:
        yield client


@pytest.fixture
def controlled(controlled_client: Any, world: World) -> Any:
    """The app with the test controls on, over a fresh world."""
    return controlled_client


def test_controls_are_off_without_an_admin_token(client: Any, world: World) -> None:
    assert_error(client.post("/__admin/reset", headers=ADMIN), 404)
    assert_error(client.get("/__admin/requests", headers=ADMIN), 404)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_controls_need_the_admin_token(controlled: Any, world: World, headers: Any) -> None:
    assert_error(controlled.post("/__admin/reset", headers=headers), 401)
    assert_error(controlled.post("/__admin/reset", headers=world.headers("superuser")), 401)
    assert world.key_count() == SEEDED_KEYS


@pytest.mark.parametrize(
    "token", ["admin", "admin-secre", "admin-secret-and-more", "ADMIN-SECRET", "admin-secreT"]
)
def test_only_the_whole_admin_token_opens_the_controls(
    controlled: Any, world: World, token: str
) -> None:
    # The admin token is "admin-secret": a part of it, more than it, or another case is not it.
    headers = {"Authorization": f"Bearer {token}"}
    assert_error(controlled.post("/__admin/reset", headers=headers), 401)
    assert_error(controlled.get("/__admin/requests", headers=headers), 401)
    assert world.key_count() == SEEDED_KEYS


def test_reset_without_a_start_state_empties_the_store_and_keeps_the_rest(
    controlled: Any, world: World
) -> None:
    controlled.post(KEYS, json={"name": "x"}, headers=world.headers())
    response = controlled.post("/__admin/reset", headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {
        "keysDeleted": SEEDED_KEYS + 1,
        "state": {"organizations": 2, "projects": 2, "keys": 0, "tokens": len(world.tokens)},
    }
    assert controlled.get(KEYS, headers=world.headers()).json() == []
    assert controlled.post(KEYS, json={}, headers=world.headers()).status_code == 201


def test_reset_restores_what_the_fixtures_loaded(controlled_client: Any, store: Database) -> None:
    controlled = controlled_client
    fixtures.load(store, CI_FIXTURES)
    repository.save_start_state(store)
    auth = {"Authorization": "Bearer sntrys_ci_admin_token"}
    at_start = controlled.get(KEYS, headers=auth).json()
    controlled.delete(KEYS + f"{at_start[0]['id']}/", headers=auth)
    controlled.post(KEYS, json={"name": "later"}, headers=auth)
    repository.insert_token(store, "acme", ["project:read"])

    response = controlled.post("/__admin/reset", headers=ADMIN)

    assert response.status_code == 200
    assert response.json() == {
        "keysDeleted": ALL_CI_KEYS,  # one deleted, one created
        "state": {"organizations": 2, "projects": 3, "keys": ALL_CI_KEYS, "tokens": 3},
    }
    assert controlled.get("/__admin/requests", headers=ADMIN).json() == {"requests": []}
    assert controlled.get(KEYS, headers=auth).json() == at_start  # same ids, keys, names


def newest_key_id(client: Any, headers: dict[str, str]) -> int:
    """The id of acme/web's newest key, as the first page's `previous` Link cursor names it."""
    link = client.get(KEYS, headers=headers).headers["Link"]
    match = re.search(r'rel="previous"; results="false"; cursor="([0-9]+):0:1"', link)
    assert match is not None, link
    return int(match[1])


def test_after_a_reset_a_new_key_gets_the_id_it_got_after_the_start(
    controlled: Any, world: World
) -> None:
    # A key deleted before the start state was saved keeps its id retired after a reset, so a
    # cursor a client kept never names another key; the same steps give the same cursors.
    headers = world.headers()
    gone = controlled.post(KEYS, json={"name": "gone"}, headers=headers).json()
    assert controlled.delete(f"{KEYS}{gone['id']}/", headers=headers).status_code == 204
    repository.save_start_state(world.store)  # as `serve --admin-token` does at its start
    controlled.post(KEYS, json={"name": "first"}, headers=headers)
    after_start = newest_key_id(controlled, headers)

    assert controlled.post("/__admin/reset", headers=ADMIN).status_code == 200
    controlled.post(KEYS, json={"name": "again"}, headers=headers)

    assert newest_key_id(controlled, headers) == after_start == SEEDED_KEYS + 2


def test_a_start_without_any_key_resets_to_ids_from_one(
    controlled_client: Any, store: Database
) -> None:
    # `serve --admin-token` on a new database, then `clientkeys project create` (a project
    # comes with its Default key): after a reset, ids start at 1 as on the new database.
    repository.insert_organization(store, "acme")
    repository.save_start_state(store)
    assert controlled_client.post("/__admin/reset", headers=ADMIN).status_code == 200
    repository.insert_project(store, "acme", "web")
    token, _ = repository.insert_token(store, "acme", [ADMIN_SCOPE])

    assert newest_key_id(controlled_client, {"Authorization": f"Bearer {token}"}) == 1


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/__admin/reset", 405),
        ("POST", "/__admin/nothing-here", 404),
        ("GET", "/__admin/requests?limit=zero", 400),
        ("GET", "/__admin/requests?since=1", 400),
        ("POST", "/__admin/reset", 401),
    ],
)
def test_admin_errors_are_json_in_the_apis_shape(
    controlled: Any, method: str, path: str, status: int
) -> None:
    headers = {} if status == 401 else ADMIN
    assert_error(controlled.request(method, path, headers=headers), status)


def test_journal_records_requests_and_whether_they_passed_validation(
    controlled: Any, world: World
) -> None:
    controlled.post(KEYS, json={"name": "ok"}, headers=world.headers())
    controlled.post(KEYS, json={"name": "x" * 65}, headers=world.headers())
    controlled.get(KEYS + "?per_page=2", headers=world.headers("read"))
    controlled.get(KEYS)
    journal = controlled.get("/__admin/requests", headers=ADMIN).json()["requests"]
    assert [(e["method"], e["path"], e["query"], e["status"], e["validated"]) for e in journal] == [
        ("POST", KEYS, "", 201, True),
        ("POST", KEYS, "", 400, False),
        ("GET", KEYS, "per_page=2", 200, True),
        ("GET", KEYS, "", 401, False),
    ]


def test_journal_keeps_only_the_newest_entries(controlled: Any, world: World) -> None:
    sent = range(1, JOURNAL_SIZE + 4)
    for page in sent:
        controlled.get(KEYS + f"?per_page={page}", headers=world.headers())
    journal = controlled.get("/__admin/requests", headers=ADMIN).json()["requests"]
    assert [e["query"] for e in journal] == [f"per_page={p}" for p in sent[-JOURNAL_SIZE:]]
    latest = controlled.get("/__admin/requests?limit=2", headers=ADMIN).json()["requests"]
    assert [e["query"] for e in latest] == [f"per_page={p}" for p in sent[-2:]]


def test_journal_limit_is_validated(controlled: Any) -> None:
    assert_error(controlled.get("/__admin/requests?limit=0", headers=ADMIN), 400)


def test_reset_clears_the_journal(controlled: Any, world: World) -> None:
    controlled.get(KEYS, headers=world.headers())
    controlled.post("/__admin/reset", headers=ADMIN)
    assert controlled.get("/__admin/requests", headers=ADMIN).json() == {"requests": []}


def test_controls_spec_is_served_beside_them(controlled: Any) -> None:
    spec = controlled.get("/__admin/openapi.json").json()
    assert set(spec["paths"]) == {"/reset", "/requests"}


def test_access_records_of_the_test_controls_name_the_admin_token(
    controlled: Any, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        controlled.get("/__admin/requests", headers=ADMIN)
    [record] = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert (record.status, record.token_id) == (200, "admin")  # type: ignore[attr-defined]
