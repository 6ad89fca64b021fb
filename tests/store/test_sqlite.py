"""The store: migrations, WAL, a page query that does not scan the project's keys, write
transactions, and storage faults (classified, reported once, recovered from)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import g
from sqlite_utils import Database

from clientkeys.config import Settings
from clientkeys.core import domain
from clientkeys.core.errors import StorageFull, StorageUnavailable
from clientkeys.store import backend as storage
from clientkeys.store import repository, schema
from clientkeys.store import sqlite as db
from conftest import on_postgres


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db.init_db(path)
    db.init_db(path)
    with db.connect(path) as conn:
        applied = conn.backend.applied_migrations(conn)
        assert applied[0] == "m001_initial" and applied == sorted(set(applied))
        assert schema.pending(conn, schema.SQLITE) == []
        assert {"organizations", "projects", "tokens", "keys"} <= set(conn.table_names())


def test_database_is_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    db.init_db(tmp_path / "x.db")
    with db.connect(tmp_path / "x.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_page_query_walks_the_project_index(tmp_path: Path) -> None:
    db.init_db(tmp_path / "x.db")
    with db.connect(tmp_path / "x.db") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM keys WHERE project_id = ? AND use_case = 'user' "
            "AND id <= ? ORDER BY id DESC LIMIT ? OFFSET ?",
            [1, 100, 101, 0],
        ).fetchall()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "keys_by_project" in detail
    assert "TEMP B-TREE" not in detail  # no sort: rows come in index order


def test_write_rolls_back_on_error(tmp_path: Path) -> None:
    db.init_db(tmp_path / "x.db")
    with db.connect(tmp_path / "x.db") as conn:
        try:
            with db.write(conn):
                conn.execute(
                    "INSERT INTO organizations (slug, name, date_created) VALUES ('a', 'a', 'x')"
                )
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        assert repository.list_organizations(conn) == []


def refused_begins(conn: Database) -> threading.Event:
    """Set once `conn` asks for the write lock a second time: its first BEGIN IMMEDIATE was
    refused (SQLite reports each statement it starts to the trace callback)."""
    asked, refused = [0], threading.Event()

    def trace(statement: str) -> None:
        if statement == "BEGIN IMMEDIATE":
            asked[0] += 1
            if asked[0] >= 2:
                refused.set()

    conn.conn.set_trace_callback(trace)
    return refused


def test_a_write_waits_for_another_writer_and_then_succeeds(tmp_path: Path) -> None:
    import time

    db.init_db(tmp_path / "x.db")
    holder, waiter = db.connect(tmp_path / "x.db"), db.connect(tmp_path / "x.db")
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    done: list[float] = []
    waiting = refused_begins(waiter)

    def create() -> None:
        repository.insert_organization(waiter, "later")
        done.append(time.monotonic())

    thread = threading.Thread(target=create)
    thread.start()
    assert waiting.wait(10)
    assert not done  # still waiting
    committed = time.monotonic()
    holder.execute("COMMIT")
    thread.join(timeout=10)
    assert done and done[0] >= committed
    assert [o["slug"] for o in repository.list_organizations(holder)] == ["later"]
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS


def test_many_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    db.init_db(tmp_path / "x.db")
    with db.connect(tmp_path / "x.db") as conn:
        project = repository.insert_project(
            conn, repository.insert_organization(conn, "o")["slug"], "p"
        )

    backend = db.SqliteBackend(tmp_path / "x.db")

    def create(_: int) -> None:
        with storage.using(backend) as conn:
            repository.insert_key(conn, project["id"], domain.new_key())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(200)))
    with db.connect(tmp_path / "x.db") as conn:
        assert conn.execute("SELECT count(*) FROM keys").fetchone()[0] == 201


def test_a_transaction_a_request_left_open_is_rolled_back_at_teardown(
    app: Any, settings: Settings, store: Database
) -> None:
    with app.app.app_context():  # what a handler's `get_db()` holds during a request
        g.db = storage.backend_for(settings).connection()
        g.db.execute("BEGIN" if on_postgres(store) else "BEGIN IMMEDIATE", [])
        g.db.execute(
            "INSERT INTO organizations (slug, name, date_created) VALUES ('x', 'x', 'x')", []
        )
        left_open = g.db.conn
    if on_postgres(store):  # rolled back and back in the pool, or closed
        assert left_open.closed or left_open.info.transaction_status.name == "IDLE"
    else:
        assert not left_open.in_transaction
    assert repository.list_organizations(store) == []


# Storage faults --------------------------------------------------------------------------


def sqlite_error(code: int, cls: type[sqlite3.Error] = sqlite3.OperationalError) -> sqlite3.Error:
    error = cls("from SQLite")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    error.sqlite_errorname = "TEST"  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("code", "kind", "detail"),
    [
        (sqlite3.SQLITE_FULL, StorageFull, StorageFull.detail),
        (sqlite3.SQLITE_IOERR_SHMSIZE, StorageFull, StorageFull.detail),
        (sqlite3.SQLITE_READONLY, StorageUnavailable, db.READ_ONLY),
        (sqlite3.SQLITE_READONLY_DBMOVED, StorageUnavailable, db.MOVED),
        (sqlite3.SQLITE_IOERR_WRITE, StorageUnavailable, "disk I/O error"),
        (sqlite3.SQLITE_CANTOPEN, StorageUnavailable, "cannot be opened"),
        (sqlite3.SQLITE_CORRUPT, StorageUnavailable, "damaged"),
        (sqlite3.SQLITE_BUSY, StorageUnavailable, "locked by another writer"),
    ],
)
def test_storage_errors_are_classified_as_faults(code: int, kind: type, detail: str) -> None:
    fault = db.fault_of(sqlite_error(code))
    assert type(fault) is kind and fault is not None and detail in fault.detail


@pytest.mark.parametrize(
    "error",
    [
        sqlite_error(sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.IntegrityError),
        sqlite_error(sqlite3.SQLITE_ERROR),  # a bad statement: a bug, not the storage
        ValueError("not from SQLite"),
    ],
)
def test_other_errors_are_not_storage_faults(error: Exception) -> None:
    assert db.fault_of(error) is None


def test_a_write_into_a_file_deleted_meanwhile_is_not_acknowledged(tmp_path: Path) -> None:
    db.init_db(tmp_path / "x.db")
    conn = db.connect(tmp_path / "x.db")
    with pytest.raises(StorageUnavailable, match="deleted or replaced"):
        with db.write(conn):
            conn.execute(
                "INSERT INTO organizations (slug, name, date_created) VALUES ('a', 'a', 'x')"
            )
            (tmp_path / "x.db").unlink()


def test_a_replaced_file_is_never_adopted_and_the_original_put_back_is(tmp_path: Path) -> None:
    path, kept = tmp_path / "x.db", tmp_path / "kept.db"
    db.init_db(path)
    backend = db.SqliteBackend(path)
    first = backend.connection()
    assert backend.connection() is first
    os.link(path, kept)
    os.replace(make_database(tmp_path / "other.db", "replaced"), path)
    with pytest.raises(StorageUnavailable) as raised:
        backend.connection()
    assert raised.value.detail == db.MOVED
    os.replace(kept, path)  # the very file is back
    again = backend.connection()
    assert again is not first
    assert repository.list_organizations(again) == []


def test_a_thread_without_its_database_file_gets_503(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db.init_db(path)
    backend = db.SqliteBackend(path)
    backend.connection()
    path.unlink()
    with pytest.raises(StorageUnavailable, match="deleted or replaced"):
        backend.connection()
    with pytest.raises(StorageUnavailable, match="cannot be opened"):
        backend.connection()  # nothing to reopen either: SQLite must not create a new file
    assert not path.exists()


def make_database(path: Path, organization: str) -> Path:
    db.init_db(path)
    with db.connect(path) as conn:
        repository.insert_organization(conn, organization)
    return path


def test_a_connection_opened_read_only_is_reopened_once_the_file_is_writable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "x.db"
    db.init_db(path)
    backend = db.SqliteBackend(path)
    # A write that succeeds clears what other tests left in this process (on another file: this
    # thread must open its connection to `path` only once the file is unwritable).
    other = db.SqliteBackend(make_database(tmp_path / "o.db", "o"))
    repository.insert_organization(other.connection(), "p")
    caplog.clear()
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        for slug in ("a", "b"):
            with pytest.raises(StorageUnavailable, match="read-only"):
                repository.insert_organization(backend.connection(), slug)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    repository.insert_organization(backend.connection(), "c")
    assert [o["slug"] for o in repository.list_organizations(backend.connection())] == ["c"]
    logged = [r.getMessage() for r in caplog.records if r.name == "clientkeys.db"]
    assert len(logged) == 2 and logged[0].startswith(f"Storage fault: {db.READ_ONLY} (")
    assert logged[1] == "Storage recovered: writes are stored again."


def test_check_writable_names_the_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db.init_db(path)
    db.check_writable(path)
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        with pytest.raises(StorageUnavailable) as refused:
            db.check_writable(path)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert refused.value.detail == f"Cannot use the database {path}: {db.READ_ONLY}"


# Group commit: the handler threads' writes (`SqliteBackend.connection`) share transactions --


class ObservedTurn(threading.Condition):
    """The group commit's turn, which tells the test each time a writer starts waiting for it
    (queued behind the writer whose turn it is)."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = threading.Semaphore(0)

    def wait(self, timeout: float | None = None) -> bool:
        self.queued.release()
        return super().wait(timeout)


def observed(backend: db.SqliteBackend) -> ObservedTurn:
    """Give `backend`'s group commit an observed turn (before any thread writes)."""
    turn = backend.group.turn = ObservedTurn()
    return turn


def test_writes_of_concurrent_threads_share_one_commit_and_a_failed_one_drops_out(
    tmp_path: Path,
) -> None:
    """A holds its write open until B and C queue behind it; B fails (the slug A took), C
    succeeds. A is acknowledged only with C's commit, B's failure takes nothing with it."""
    import threading

    from clientkeys.core.errors import Conflict

    path = tmp_path / "x.db"
    db.init_db(path)
    backend = db.SqliteBackend(path)
    turn = observed(backend)
    inside, proceed = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def first() -> None:
        conn = backend.connection()
        with db.write(conn):
            conn.execute("INSERT INTO organizations (slug, name, date_created) "
                         "VALUES ('a', 'a', 'x')")  # fmt: skip
            inside.set()
            proceed.wait(10)
        with db.connect(path) as other:  # acknowledged: visible to everybody, C's row too
            outcome["A"] = [o["slug"] for o in repository.list_organizations(other)]

    def create(name: str, slug: str) -> None:
        try:
            repository.insert_organization(backend.connection(), slug)
            outcome[name] = "stored"
        except Conflict as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=first), threading.Thread(target=create, args=("B", "a")),
               threading.Thread(target=create, args=("C", "c"))]  # fmt: skip
    threads[0].start()
    inside.wait(10)
    threads[1].start()
    assert turn.queued.acquire(timeout=10)  # B waits for its turn
    threads[2].start()
    assert turn.queued.acquire(timeout=10)  # so does C, behind B
    proceed.set()
    for thread in threads:
        thread.join(10)
    assert isinstance(outcome["B"], Conflict)
    assert outcome["C"] == "stored"
    assert outcome["A"] == ["a", "c"]  # A returned after the commit that stored C's row


def test_many_threads_writing_at_once_each_get_their_own_outcome(tmp_path: Path) -> None:
    """Every second write takes a slug already taken: it alone fails; every other is stored
    and acknowledged, whatever batch it shared."""
    from concurrent.futures import ThreadPoolExecutor

    from clientkeys.core.errors import Conflict

    path = tmp_path / "x.db"
    db.init_db(path)
    backend = db.SqliteBackend(path)
    repository.insert_organization(backend.connection(), "taken")

    def create(i: int) -> str:
        slug = "taken" if i % 2 else f"org-{i}"
        try:
            with storage.using(backend) as conn:
                repository.insert_organization(conn, slug)
        except Conflict:
            return "conflict"
        return "stored"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(create, range(200)))
    assert answers == ["conflict" if i % 2 else "stored" for i in range(200)]
    with db.connect(path) as conn:
        stored = {o["slug"] for o in repository.list_organizations(conn)}
    assert stored == {"taken"} | {f"org-{i}" for i in range(0, 200, 2)}


def test_a_batch_whose_file_is_deleted_before_its_commit_acknowledges_none(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.db"
    db.init_db(path)
    conn = db.SqliteBackend(path).connection()
    with pytest.raises(StorageUnavailable, match="deleted or replaced"):
        with db.write(conn):
            conn.execute("INSERT INTO organizations (slug, name, date_created) "
                         "VALUES ('a', 'a', 'x')")  # fmt: skip
            path.unlink()


def test_a_batch_of_several_writers_whose_commit_fails_acknowledges_none_of_them(
    tmp_path: Path,
) -> None:
    """A holds the batch open until B and C have queued to join it; the file goes before the
    batch commits: all three writes fail, though each block ran without error."""

    path = tmp_path / "x.db"
    db.init_db(path)
    backend = db.SqliteBackend(path)
    turn = observed(backend)
    inside, proceed = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def write(name: str, hold: bool = False) -> None:
        conn = backend.connection()
        try:
            with db.write(conn):
                conn.execute("INSERT INTO organizations (slug, name, date_created) "
                             "VALUES (?, ?, 'x')", [name, name])  # fmt: skip
                if hold:
                    inside.set()
                    proceed.wait(10)
            outcome[name] = "acknowledged"
        except StorageUnavailable as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=write, args=("a", True)),
               threading.Thread(target=write, args=("b",)),
               threading.Thread(target=write, args=("c",))]  # fmt: skip
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    threads[2].start()
    assert turn.queued.acquire(timeout=10) and turn.queued.acquire(timeout=10)  # B and C wait
    path.unlink()
    proceed.set()
    for thread in threads:
        thread.join(10)
    assert set(outcome) == {"a", "b", "c"}
    assert all(isinstance(answer, StorageUnavailable) for answer in outcome.values()), outcome
    assert all("deleted or replaced" in answer.detail for answer in outcome.values())
