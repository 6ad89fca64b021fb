"""The SQLite connection lifecycle: connect with pragmas, migrations, short write transactions."""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from clientkeys import metrics

migrations = Migrations("clientkeys")
BUSY_TIMEOUT_MS = 10_000


class DatabaseUnavailable(RuntimeError):
    """The database file cannot be opened or written; the message says which and why."""


def connect(path: Path | str) -> Database:
    """Open one connection: WAL journal, a busy timeout, foreign keys on."""
    try:
        conn = sqlite3.connect(
            str(path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(f"cannot open database {str(path)!r}: {exc}") from exc
    return Database(conn, execute_plugins=False)


_local = threading.local()
MAX_THREAD_CONNECTIONS = 4


def connection(path: Path | str) -> Database:
    """This thread's connection to `path`, opened on first use and kept for the thread's life.

    Requests on one thread reuse it (as Datasette does); no connection is ever shared between
    threads. A write leaves no transaction open (see `write`), so each request starts clean.
    """
    cache: dict[str, Database] | None = getattr(_local, "connections", None)
    if cache is None:
        cache = _local.connections = {}
    key = str(path)
    database = cache.get(key)
    if database is None:
        if len(cache) >= MAX_THREAD_CONNECTIONS:  # tests open many files from one thread
            cache.pop(next(iter(cache))).close()
        database = cache[key] = connect(path)
    return database


@contextmanager
def using(path: Path | str) -> Iterator[Database]:
    """This thread's connection for one unit of work (the journal's write; handlers use
    `handlers._request.get_db`); never left inside a transaction."""
    database = connection(path)
    try:
        yield database
    finally:
        if database.conn.in_transaction:
            database.conn.rollback()


def init_db(path: Path | str) -> None:
    """Create the file if needed, switch it to WAL and apply pending migrations."""
    db = connect(path)
    try:
        if str(path) != ":memory:":
            db.execute("PRAGMA journal_mode = WAL")
        migrate(db)
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(f"cannot write database {str(path)!r}: {exc}") from exc
    finally:
        db.close()


def probe(path: Path | str) -> None:
    """Readiness: read the schema and write one row of the `health` table (a short write
    transaction, as a request's), on this thread's connection. Raises what SQLite raised."""
    with using(path) as database:
        database.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()
        with write(database):
            database.execute(
                "INSERT OR REPLACE INTO health (id, checked) VALUES (1, ?)", [time.time()]
            )


def migrate(db: Database) -> None:
    """Apply every pending schema migration."""
    migrations.apply(db)


_write_locks: dict[str, threading.Lock] = {}
_lock_of_connection: weakref.WeakKeyDictionary[Database, threading.Lock] = (
    weakref.WeakKeyDictionary()
)


@contextmanager
def write(db: Database) -> Iterator[Database]:
    """A short write transaction that takes the write lock up front (no upgrade deadlocks).

    Threads of one process queue on a Python lock, so at most one of them at a time asks
    SQLite for the write lock; that one retries every few milliseconds while another process
    holds it. SQLite's own busy handler would sleep in steps growing to 100 ms, which turns a
    queue of sub-millisecond writes into long latency tails.
    """
    with _locked(_write_lock(db)):
        _begin_immediate(db.conn)
        try:
            yield db
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
        else:
            db.conn.execute("COMMIT")


def _write_lock(db: Database) -> threading.Lock:
    """The process-wide lock of the file behind `db` (looked up once per connection)."""
    lock = _lock_of_connection.get(db)
    if lock is None:
        path = db.conn.execute("PRAGMA database_list").fetchone()[2]
        lock = _lock_of_connection[db] = _write_locks.setdefault(path, threading.Lock())
    return lock


@contextmanager
def _locked(lock: threading.Lock) -> Iterator[None]:
    """Hold `lock`; a wait for it (another thread of this process writes) is counted."""
    if not lock.acquire(blocking=False):
        started = time.monotonic()
        lock.acquire()
        metrics.lock_waited("process", time.monotonic() - started)
    try:
        yield
    finally:
        lock.release()


def _begin_immediate(conn: sqlite3.Connection) -> None:
    started = time.monotonic()
    deadline = started + BUSY_TIMEOUT_MS / 1000
    pause, waited = 0.0005, False
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                waited = True
                time.sleep(pause)
                pause = min(pause * 1.5, 0.005)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if waited:  # another process held SQLite's write lock
        metrics.lock_waited("sqlite", time.monotonic() - started)


@migrations()
def m001_initial(db: Database) -> None:
    db.execute(
        """CREATE TABLE organizations (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            date_created TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            organization_id INTEGER NOT NULL REFERENCES organizations(id),
            slug TEXT NOT NULL,
            name TEXT NOT NULL,
            date_created TEXT NOT NULL,
            UNIQUE (organization_id, slug)
        )"""
    )
    db.execute(
        """CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            organization_id INTEGER REFERENCES organizations(id),
            scopes TEXT NOT NULL,
            is_superuser INTEGER NOT NULL DEFAULT 0,
            label TEXT NOT NULL DEFAULT '',
            date_created TEXT NOT NULL
        )"""
    )
    # AUTOINCREMENT: a deleted key's id is never reused, so cursors stay meaningful.
    db.execute(
        """CREATE TABLE keys (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            label TEXT NOT NULL,
            public_key TEXT NOT NULL UNIQUE,
            secret_key TEXT NOT NULL UNIQUE,
            status INTEGER NOT NULL DEFAULT 0,
            use_case TEXT NOT NULL DEFAULT 'user',
            rate_limit_count INTEGER,
            rate_limit_window INTEGER,
            data TEXT NOT NULL DEFAULT '{}',
            date_added TEXT NOT NULL
        )"""
    )
    # The keyset page query walks (project_id, id) backwards: its cost does not grow with
    # the number of keys a project has. The status filter gets its own ordered index.
    db.execute("CREATE INDEX keys_by_project ON keys (project_id, id)")
    db.execute("CREATE INDEX keys_by_project_status ON keys (project_id, status, id)")


@migrations()
def m002_dsn_endpoint_and_audit_log(db: Database) -> None:
    # Sentry's `sentry:relay_dsn_endpoint` organization option.
    db.execute("ALTER TABLE organizations ADD COLUMN dsn_endpoint TEXT")
    db.execute(
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            organization_id INTEGER NOT NULL REFERENCES organizations(id),
            event TEXT NOT NULL,
            target TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            date_added TEXT NOT NULL
        )"""
    )


@migrations()
def m003_request_journal(db: Database) -> None:
    # The test controls' journal of recent requests (written only when they are on).
    db.execute(
        """CREATE TABLE request_log (
            id INTEGER PRIMARY KEY,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            query TEXT NOT NULL,
            status INTEGER NOT NULL,
            validated INTEGER NOT NULL,
            date TEXT NOT NULL
        )"""
    )


@migrations()
def m004_health_and_start_state(db: Database) -> None:
    # Readiness writes its one row here; no key is ever touched by a health check.
    db.execute("CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked REAL)")
    # The store as the server started (after --fixtures), restored by POST /__admin/reset:
    # each table's rows as JSON, and the key id sequence.
    db.execute("CREATE TABLE start_state (name TEXT PRIMARY KEY, data TEXT NOT NULL)")
