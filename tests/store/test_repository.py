"""Storage alone, against real SQLite (in memory, or a file shared by two connections) and a real
PostgreSQL database, with the migrations applied: no HTTP. Each test runs on both."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clientkeys.core import domain
from clientkeys.core.errors import Conflict, FieldErrors, NotFound
from clientkeys.store import backend as store
from clientkeys.store import repository
from clientkeys.store.backend import Connection as Database
from conftest import ALL_SCOPES, BACKENDS, empty, new_database, on_postgres


@pytest.fixture
def project(memory_db: Database) -> domain.Row:
    repository.insert_organization(memory_db, "acme", "Acme")
    return repository.insert_project(memory_db, "acme", "web")


def events(db: Database) -> list[str]:
    return [entry["event"] for entry in repository.list_audit(db)]


def test_organizations_are_found_by_slug_or_id(memory_db: Database) -> None:
    created = repository.insert_organization(memory_db, "acme", "Acme")
    assert repository.get_organization(memory_db, "acme") == created
    assert repository.get_organization(memory_db, str(created["id"])) == created
    assert [o["slug"] for o in repository.list_organizations(memory_db)] == ["acme"]
    with pytest.raises(NotFound, match="No organization 'nope'."):
        repository.get_organization(memory_db, "nope")


def test_a_taken_slug_is_a_conflict(memory_db: Database) -> None:
    repository.insert_organization(memory_db, "acme")
    repository.insert_project(memory_db, "acme", "web")
    with pytest.raises(Conflict, match="already exists"):
        repository.insert_organization(memory_db, "acme")
    with pytest.raises(Conflict, match="already has a project 'web'"):
        repository.insert_project(memory_db, "acme", "web")


def test_a_new_project_has_its_default_key_unaudited(
    memory_db: Database, project: domain.Row
) -> None:
    by_ids = repository.get_project(memory_db, str(project["organization_id"]), str(project["id"]))
    assert by_ids == project and project["organization_slug"] == "acme"
    [key] = repository.list_keys(memory_db, project["id"], bound=None, ascending=False, offset=0,
                                 limit=10)  # fmt: skip
    assert key["label"] == domain.DEFAULT_KEY_NAME and events(memory_db) == []
    with pytest.raises(NotFound):
        repository.get_project(memory_db, "acme", "nope")


def test_tokens_are_stored_as_hashes_and_found_by_value(memory_db: Database) -> None:
    repository.insert_organization(memory_db, "acme")
    plain, row = repository.insert_token(memory_db, "acme", ALL_SCOPES, label="ci")
    assert plain.startswith(domain.TOKEN_PREFIX) and plain not in str(row)
    assert repository.find_token(memory_db, plain) == row
    assert row["scopes"] == " ".join(ALL_SCOPES)
    assert repository.find_token(memory_db, plain + "x") is None
    _, superuser = repository.insert_token(memory_db, None, ALL_SCOPES, superuser=True)
    assert (superuser["organization_id"], superuser["is_superuser"]) == (None, 1)


def test_a_key_is_stored_as_planned_and_audited(memory_db: Database, project: domain.Row) -> None:
    planned = domain.new_key(name="CI", rate_limit={"count": 5, "window": 60})
    row = repository.insert_key(memory_db, project["id"], planned)
    assert {column: row[column] for column in planned} == planned
    assert repository.find_key(memory_db, row["public_key"]) == row
    [entry] = repository.list_audit(memory_db, "acme")
    assert (entry["event"], entry["target"]) == (domain.KEY_ADDED, row["public_key"])
    assert entry["data"] == domain.audit_fields(row)


@pytest.mark.parametrize("field", ["public", "secret"])
def test_a_taken_public_or_secret_key_is_refused_and_nothing_is_written(
    memory_db: Database, project: domain.Row, field: str
) -> None:
    first = repository.insert_key(memory_db, project["id"], domain.new_key())
    clash = domain.new_key(**{field: first[f"{field}_key"]})
    with pytest.raises(FieldErrors) as error:
        repository.insert_key(memory_db, project["id"], clash)
    assert error.value.errors == {field: [f"A client key with this {field} key already exists."]}
    assert events(memory_db) == [domain.KEY_ADDED]


def test_internal_keys_are_found_only_when_asked(memory_db: Database, project: domain.Row) -> None:
    internal = repository.insert_key(memory_db, project["id"], domain.new_key(use_case="profiling"))
    with pytest.raises(NotFound):
        repository.get_key(memory_db, project["id"], internal["public_key"], include_internal=False)
    found = repository.get_key(memory_db, project["id"], internal["public_key"],
                               include_internal=True)  # fmt: skip
    assert found == internal


def test_list_keys_slices_by_bound_direction_offset_and_status(
    memory_db: Database, project: domain.Row
) -> None:
    for active in (True, False, True, False):
        repository.insert_key(memory_db, project["id"], domain.new_key(active=active))

    def ids(**kwargs: object) -> list[int]:
        query = {"bound": None, "ascending": False, "offset": 0, "limit": 10, **kwargs}
        return [row["id"] for row in repository.list_keys(memory_db, project["id"], **query)]  # type: ignore[arg-type]

    assert ids() == [5, 4, 3, 2, 1]
    assert ids(bound=4, offset=1, limit=2) == [3, 2]
    assert ids(bound=2, ascending=True) == [2, 3, 4, 5]
    assert ids(status=domain.INACTIVE) == [5, 3]


def test_an_update_is_stored_and_audited_with_the_previous_limit(
    memory_db: Database, project: domain.Row
) -> None:
    row = repository.insert_key(memory_db, project["id"], domain.new_key(name="old"))
    changes = {"name": "new", "rateLimit": {"count": 1, "window": 9}}
    planned = domain.plan_update(row, changes, "7.x")
    stored = repository.update_key(
        memory_db, project["id"], row["public_key"],
        lambda read: domain.plan_update(read, changes, "7.x"), include_internal=False,
    )  # fmt: skip
    assert stored == planned
    assert repository.find_key(memory_db, row["public_key"]) == planned
    edit = repository.list_audit(memory_db)[-1]
    assert edit["event"] == domain.KEY_EDITED
    assert (edit["data"]["prev_rate_limit_count"], edit["data"]["rate_limit_count"]) == (None, 1)


def test_a_deleted_key_is_gone_and_audited(memory_db: Database, project: domain.Row) -> None:
    row = repository.insert_key(memory_db, project["id"], domain.new_key())
    repository.delete_key(memory_db, project["id"], row["public_key"], include_internal=False)
    assert repository.find_key(memory_db, row["public_key"]) is None
    assert events(memory_db) == [domain.KEY_ADDED, domain.KEY_REMOVED]


def test_dsn_endpoint_is_set_and_cleared(memory_db: Database, project: domain.Row) -> None:
    url = "https://relay.example.com"
    assert repository.set_dsn_endpoint(memory_db, "acme", url)["dsn_endpoint"] == url
    assert repository.get_project(memory_db, "acme", "web")["organization_dsn_endpoint"] == url
    assert repository.set_dsn_endpoint(memory_db, "acme", None)["dsn_endpoint"] is None


def test_reset_empties_keys_audit_and_journal_and_keeps_the_rest(
    memory_db: Database, project: domain.Row
) -> None:
    repository.insert_key(memory_db, project["id"], domain.new_key())
    entry = {"method": "GET", "path": "/", "query": "", "status": 200, "validated": True}
    repository.log_request(memory_db, entry, keep=10)
    result = repository.reset_store(memory_db)
    assert result["keysDeleted"] == 2  # the Default key and the new one
    assert result["state"] == {"organizations": 1, "projects": 1, "keys": 0, "tokens": 0}
    assert repository.list_audit(memory_db) == [] and repository.list_requests(memory_db, 10) == []
    assert repository.get_project(memory_db, "acme", "web")["id"] == project["id"]


def _dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: db.execute(f'SELECT * FROM "{table}" ORDER BY id', []).fetchall()
        for table in (*repository.START_TABLES, "audit_log", "request_log")
    }


def test_reset_returns_to_the_saved_start_state(memory_db: Database, project: domain.Row) -> None:
    repository.insert_token(memory_db, "acme", ["project:read"])
    saved = repository.save_start_state(memory_db)
    assert saved == {"organizations": 1, "projects": 1, "keys": 1, "tokens": 1}
    at_start = _dump(memory_db)
    [default_key] = repository.list_keys(
        memory_db, project["id"], bound=None, ascending=False, offset=0, limit=1
    )
    repository.delete_key(
        memory_db, project["id"], default_key["public_key"], include_internal=False
    )
    repository.insert_key(memory_db, project["id"], domain.new_key(name="later"))
    repository.insert_organization(memory_db, "globex", None)
    repository.insert_project(memory_db, "globex", "api")
    repository.insert_token(memory_db, "globex", ["project:admin"])

    result = repository.reset_store(memory_db)

    assert result == {"keysDeleted": 2, "state": saved}
    assert _dump(memory_db) == at_start  # same rows, ids, public and secret keys; no audit
    created = repository.insert_key(memory_db, project["id"], domain.new_key())
    assert created["id"] == default_key["id"] + 1  # the id sequence is back where it was


def test_the_journal_keeps_the_newest_entries_oldest_first(memory_db: Database) -> None:
    keep = 3
    for status in range(200, 206):
        entry = {"method": "GET", "path": "/", "query": "", "status": status, "validated": False}
        repository.log_request(memory_db, entry, keep=keep)
    assert [e["status"] for e in repository.list_requests(memory_db, 10)] == [203, 204, 205]
    assert [e["status"] for e in repository.list_requests(memory_db, 1)] == [205]


# Concurrent writers: each write reads what it changes inside its own transaction -----------


@pytest.fixture(params=BACKENDS)
def two_writers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Database, Database, domain.Row]]:
    """Two connections to one database (as two workers, or two nodes, have) and a project."""
    database = new_database(request, request.param, tmp_path)
    store.init_db(database)
    first, second = store.connect(database), store.connect(database)
    empty(first)
    repository.insert_organization(first, "acme")
    project = repository.insert_project(first, "acme", "web", default_key=False)
    yield first, second, project
    first.close()
    second.close()


def blocked(waiter: Database) -> Callable[[float], bool]:
    """A wait (up to a timeout) until `waiter` is stopped by a lock another connection holds:
    on SQLite, its BEGIN IMMEDIATE asked again, the first having been refused (each statement
    SQLite starts is reported to the trace callback); on PostgreSQL, the server shows its
    session waiting for a lock (`pg_stat_activity`, read from a connection of its own)."""
    if not on_postgres(waiter):
        asked, refused = [0], threading.Event()

        def trace(statement: str) -> None:
            if statement == "BEGIN IMMEDIATE":
                asked[0] += 1
                if asked[0] >= 2:
                    refused.set()

        waiter.conn.set_trace_callback(trace)
        return refused.wait
    pid = waiter.conn.info.backend_pid

    def waiting_for_a_lock(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with store.connect(waiter.backend.database) as watcher:
            while time.monotonic() < deadline:
                row = watcher.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = ?", [pid]
                ).fetchone()
                if row is not None and row[0] == "Lock":
                    return True
                time.sleep(0.005)  # the next look at the server's state, not a guess at timing
        return False

    return waiting_for_a_lock


def while_waiting_for_the_lock(
    waiting: Callable[[], Any], waiter: Database, other: Database, change: str, params: list[Any]
) -> Any:
    """Make `change` in a transaction of `other`, run `waiting` (which writes through `waiter`)
    in a thread until that transaction's locks stop it (SQLite's write lock; PostgreSQL's on the
    rows changed), then commit: what `waiting` returns or raises, having started before the
    change was committed."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(waiting())
        except Exception as exc:  # noqa: BLE001 (handed to the test)
            outcome.append(exc)

    other.execute("BEGIN" if on_postgres(other) else "BEGIN IMMEDIATE", [])
    other.execute(change, params)
    stopped = blocked(waiter)
    thread = threading.Thread(target=run)
    thread.start()
    assert stopped(10)
    assert thread.is_alive()  # waiting for the lock
    other.execute("COMMIT", [])
    thread.join(timeout=10)
    return outcome[0]


def test_an_update_keeps_a_change_committed_while_it_waited(two_writers: Any) -> None:
    first, second, project = two_writers
    key = repository.insert_key(first, project["id"], domain.new_key(name="old"))
    updated = while_waiting_for_the_lock(
        lambda: repository.update_key(
            second, project["id"], key["public_key"],
            lambda row: domain.plan_update(row, {"isActive": False}, "7.x"),
            include_internal=False,
        ),
        second, first, "UPDATE keys SET label = 'renamed' WHERE id = ?", [key["id"]],
    )  # fmt: skip
    assert (updated["label"], updated["status"]) == ("renamed", domain.INACTIVE)
    stored = repository.find_key(first, key["public_key"])
    assert stored is not None and (stored["label"], stored["status"]) == (
        "renamed",
        domain.INACTIVE,
    )


def test_an_update_of_a_key_deleted_while_it_waited_is_not_found(two_writers: Any) -> None:
    first, second, project = two_writers
    key = repository.insert_key(first, project["id"], domain.new_key())
    outcome = while_waiting_for_the_lock(
        lambda: repository.update_key(
            second, project["id"], key["public_key"],
            lambda row: domain.plan_update(row, {"name": "late"}, "7.x"), include_internal=False,
        ),
        second, first, "DELETE FROM keys WHERE id = ?", [key["id"]],
    )  # fmt: skip
    assert isinstance(outcome, NotFound)
    assert events(first) == [domain.KEY_ADDED]  # no edit audited for a key that is gone


def test_a_delete_of_a_key_deleted_while_it_waited_is_not_found(two_writers: Any) -> None:
    first, second, project = two_writers
    key = repository.insert_key(first, project["id"], domain.new_key())
    outcome = while_waiting_for_the_lock(
        lambda: repository.delete_key(
            second, project["id"], key["public_key"], include_internal=False
        ),
        second, first, "DELETE FROM keys WHERE id = ?", [key["id"]],
    )  # fmt: skip
    assert isinstance(outcome, NotFound)
    assert events(first) == [domain.KEY_ADDED]


def test_a_secret_taken_while_a_create_waited_is_reported_on_secret(two_writers: Any) -> None:
    first, second, project = two_writers
    secret = "a" * 32
    outcome = while_waiting_for_the_lock(
        lambda: repository.insert_key(second, project["id"], domain.new_key(secret=secret)),
        second,
        first,
        "INSERT INTO keys (project_id, label, public_key, secret_key, date_added) "
        "VALUES (?, 'other', ?, ?, 'x')",
        [project["id"], "b" * 32, secret],
    )
    assert isinstance(outcome, FieldErrors)
    assert outcome.body() == {"secret": ["A client key with this secret key already exists."]}
