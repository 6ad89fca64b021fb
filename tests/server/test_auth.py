"""Tokens, scopes and organizations, checked in Sentry's order: 401, then 403, then 404."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from clientkeys.config import Settings
from clientkeys.core import domain
from clientkeys.server.app import create_app
from clientkeys.store import backend as store
from clientkeys.store import repository
from conftest import (
    ADMIN,
    KEYS_URL,
    NO_CREDENTIALS,
    NO_PERMISSION,
    NOT_FOUND,
    SEEDED_KEYS,
    Api,
    World,
    assert_error,
)


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, NO_CREDENTIALS),
        ("Bearer", "Invalid token header. No credentials provided."),
        ("Bearer a b", "Invalid token header. Token string should not contain spaces."),
        ("Bearer sntrys_unknown", "Invalid token"),
        ("Basic dXNlcjpwYXNz", NO_CREDENTIALS),
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_bad_credentials_are_401_with_sentrys_messages(
    api: Api, world: World, authorization: str | None, detail: str, method: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = getattr(api.client, method)(api.url(), headers=headers)
    assert_error(response, 401, detail)
    assert response.headers["www-authenticate"] == 'xBasic realm="api"'
    assert world.key_count() == SEEDED_KEYS


@pytest.mark.parametrize("who", ["read", "write", "admin", "all"])
def test_list_needs_read_write_or_admin(api: Api, who: str) -> None:
    assert api.list(who=who).status_code == 200


@pytest.mark.parametrize(("who", "status"), [("read", 403), ("write", 201), ("admin", 201)])
def test_create_needs_write_or_admin(api: Api, world: World, who: str, status: int) -> None:
    response = api.create({"name": "x"}, who=who)
    assert response.status_code == status
    if status == 403:
        assert_error(response, 403, NO_PERMISSION)
        assert world.key_count() == SEEDED_KEYS


def test_scope_is_checked_before_the_project_is_looked_up(api: Api) -> None:
    assert_error(api.create({}, who="read", org="nope", project="nope"), 403, NO_PERMISSION)


def test_unknown_organization_or_project_is_404(api: Api) -> None:
    assert_error(api.list(org="nope"), 404, NOT_FOUND)
    assert_error(api.list(project="nope"), 404, NOT_FOUND)
    assert_error(api.create({}, project="nope"), 404, NOT_FOUND)


def test_a_project_of_another_organization_is_not_found_under_this_one(api: Api) -> None:
    assert_error(api.list(org="acme", project="api"), 404, NOT_FOUND)


def test_a_token_of_another_organization_is_403(api: Api, world: World) -> None:
    assert_error(api.list(org="globex", project="api"), 403, NO_PERMISSION)
    assert_error(api.create({}, org="globex", project="api"), 403, NO_PERMISSION)
    assert world.key_count() == SEEDED_KEYS


def test_superuser_token_works_across_organizations(api: Api) -> None:
    assert api.list(who="superuser", org="globex", project="api").status_code == 200
    assert api.list(who="superuser").status_code == 200


def test_tokens_are_stored_only_as_hashes(world: World) -> None:
    stored = world.store.execute("SELECT token_hash, scopes FROM tokens").fetchall()
    plain = set(world.tokens.values())
    assert stored and not any(h in plain for h, _ in stored)
    assert not any(t[7:] in h for t in plain for h, _ in stored)
    assert repository.find_token(world.store, world.tokens["read"])["scopes"] == "project:read"


def test_token_in_lowercase_bearer_scheme_works(api: Api, world: World) -> None:
    headers = {"Authorization": f"bearer {world.tokens['read']}"}
    assert api.client.get(KEYS_URL, headers=headers).status_code == 200


def test_the_token_lookup_runs_on_a_worker_thread_not_on_the_event_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    where: list[str] = []
    find_token = repository.find_token

    def recording_find_token(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            where.append("event loop")
        except RuntimeError:
            where.append("worker thread")
        return find_token(*args)

    monkeypatch.setattr(repository, "find_token", recording_find_token)
    assert api.create({}, who="write").status_code == 201  # two scope alternatives, one lookup
    assert where == ["worker thread"]


@pytest.mark.parametrize("method", ["list", "create"])
def test_a_token_is_looked_up_once_even_when_only_its_last_alternative_passes(
    api: Api, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    # The spec lists each scope as its own alternative ({read} | {write} | {admin}); a
    # project:admin token fails the first ones, and they must not each look it up again.
    lookups: list[str] = []
    find_token = repository.find_token

    def counting_find_token(*args: Any) -> Any:
        lookups.append("lookup")
        return find_token(*args)

    monkeypatch.setattr(repository, "find_token", counting_find_token)
    response = api.list(who="admin") if method == "list" else api.create({}, who="admin")
    assert response.status_code in (200, 201)
    assert lookups == ["lookup"]


def test_a_token_is_matched_whole_never_by_a_prefix(api: Api, world: World) -> None:
    # Stored tokens are `sntrys_` + 64 hex characters; every one of these differs from a real
    # token only after its first 24 characters (or by being a part of it) and must be refused.
    real = world.tokens["all"]
    flipped = "0" if real[-1] != "0" else "1"
    for near in (real[:24], real[:-1], real + "0", real[:24] + "0" * (len(real) - 24),
                 real[:-1] + flipped):  # fmt: skip
        response = api.client.get(KEYS_URL, headers={"Authorization": f"Bearer {near}"})
        assert_error(response, 401, "Invalid token")
    assert api.client.get(KEYS_URL, headers=world.headers("all")).status_code == 200


def test_a_missing_project_in_another_organization_is_404_as_on_sentry(api: Api) -> None:
    # Sentry looks the project up (404) before it checks the caller's access to it (403): a
    # project that does not exist is 404 whoever asks; one that exists elsewhere is 403.
    assert_error(api.list(org="globex", project="nope"), 404, NOT_FOUND)
    assert_error(api.create({}, org="globex", project="nope"), 404, NOT_FOUND)
    assert_error(api.get("0" * 32, org="globex", project="nope"), 404, NOT_FOUND)
    assert_error(api.list(org="globex", project="api"), 403, NO_PERMISSION)


def test_a_key_in_another_organizations_project_is_403_whether_it_exists_or_not(
    api: Api, world: World
) -> None:
    # The project exists, so access is checked before the key is looked up: the answer tells
    # nothing about which keys exist there.
    theirs = repository.insert_key(world.store, world.other_project["id"], domain.new_key())
    for key_id in (theirs["public_key"], "0" * 32):
        assert_error(api.get(key_id, org="globex", project="api"), 403, NO_PERMISSION)
        assert_error(api.put(key_id, {}, org="globex", project="api"), 403, NO_PERMISSION)
        assert_error(api.delete(key_id, org="globex", project="api"), 403, NO_PERMISSION)
    assert world.key_count() == SEEDED_KEYS + 1


def test_a_failed_token_lookup_is_not_repeated_for_each_scope_alternative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database file is gone: the request's token lookup fails and the answer is a 503. The
    # operation lists three scope alternatives; the request waits for the store once (on
    # PostgreSQL that wait is up to --db-timeout), not once per alternative.
    settings = Settings(database=tmp_path / "gone.db")
    app = create_app(settings)
    with store.connect(settings.database) as conn:
        repository.insert_organization(conn, "acme")
        repository.insert_project(conn, "acme", "web")
        token, _ = repository.insert_token(conn, "acme", [ADMIN])
    headers = {"Authorization": f"Bearer {token}"}
    opened: list[object] = []
    using = store.using

    def counting_using(*args: Any) -> Any:
        opened.append(args)
        return using(*args)

    monkeypatch.setattr(store, "using", counting_using)
    with app.test_client() as client:
        assert client.get(KEYS_URL, headers=headers).status_code == 200
        opened.clear()
        settings.database.unlink()
        response = client.get(KEYS_URL, headers=headers)
    assert_error(response, 503)
    assert len(opened) == 1
