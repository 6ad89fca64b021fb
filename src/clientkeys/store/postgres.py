"""The PostgreSQL store, for a `postgresql://` database: a connection pool per process, write
transactions, migrations applied under an advisory lock, and PostgreSQL's errors classified
into the same storage faults as SQLite's.

It keeps the promises `db.py` states for SQLite: a write runs in one transaction and returns
only after COMMIT; a read-modify-write reads its rows `FOR UPDATE` (`store.lock_rows`), so a
concurrent update or delete of them, on any node, waits for it; an error about the database
rather than the statement is `StorageUnavailable` (503) or `StorageFull` (507), logged once
(`faults`), and the connection that saw it is closed, never handed out again: once the
database is back, the next request gets a new one. The queries are the repository's, written
once in SQLite's `?` style and translated here (`translate`); ids come from identity columns,
so they are unique across nodes and never reused.

Imported only for a `postgresql://` database (by `store`): it needs the `postgres` extra.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from clientkeys.config import redacted
from clientkeys.core.errors import StorageFull, StorageUnavailable
from clientkeys.runtime import metrics
from clientkeys.store import faults

DIALECT = "postgresql"
MIGRATION_SET = "clientkeys"
MIGRATION_LOCK = 0x636C69656E746B  # "clientk": the advisory lock nodes take to migrate
START_LOCK = MIGRATION_LOCK + 1
"""The advisory lock a node holds while it loads fixtures and saves the start state."""
STALE_SECONDS = 1.0
"""A pooled connection idle this long is checked (one empty query) before it is handed out:
the server may have restarted meanwhile. One used more recently is trusted; if it turns out
dead, that request is a 503 and the connection is dropped."""
UNREACHABLE = "The database cannot be reached: it is down, restarting, or refusing connections."
READ_ONLY = (
    "The database is read-only: a standby, or a server or role set to read-only transactions."
)
LOCKED = "A row stayed locked by another writer for longer than the lock timeout."
Connection = psycopg.Connection[tuple[Any, ...]]

_SQLSTATES: dict[str, str] = {
    "25006": READ_ONLY,
    "55P03": LOCKED,
    "57014": "The database did not answer within the statement timeout.",
    "57P01": UNREACHABLE,
    "57P02": UNREACHABLE,
    "57P03": UNREACHABLE,
    "40001": "The write conflicted with a concurrent one and was rolled back: send it again.",
    "40P01": "The write conflicted with a concurrent one and was rolled back: send it again.",
    "3D000": "The database does not exist.",
    "XX001": "The database is damaged.",
    "XX002": "The database is damaged.",
}
"""SQLSTATEs about the storage, not the statement (besides the classes in `_CLASSES`)."""
_CLASSES: dict[str, str] = {
    "08": UNREACHABLE,
    "28": "The database refused the credentials.",
    "53": "The database ran out of resources (memory, connections or disk).",
    "58": "The database server cannot read or write its files.",
}
"""SQLSTATE classes (their first two characters) about the storage."""

logger = logging.getLogger("clientkeys.db")


def fault_of(exc: BaseException) -> StorageUnavailable | None:
    """The storage fault a psycopg error stands for, or None when it is not one (a constraint,
    a bad statement: a bug or a conflict the caller handles)."""
    if isinstance(exc, StorageUnavailable):
        return exc
    if isinstance(exc, PoolTimeout):
        return StorageUnavailable(
            "No database connection within the timeout: the database is unreachable, "
            "or every pooled connection stayed busy."
        )
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate or ""
    if state == "53100":
        return StorageFull()
    detail = _SQLSTATES.get(state) or _CLASSES.get(state[:2])
    if detail is None and not state and isinstance(exc, psycopg.OperationalError):
        detail = UNREACHABLE  # no answer from the server at all: refused, reset, closed
    return None if detail is None else StorageUnavailable(detail)


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """A query in the repository's `?` style in psycopg's `%s` style. The repository's queries
    hold no `?` or `%` inside string literals."""
    return sql.replace("%", "%%").replace("?", "%s")


class Database:
    """One connection, with the surface the repository uses (as sqlite-utils' `Database`):
    `execute(sql, params)` in `?` style, returning a cursor. A connection that saw a storage
    fault is marked `broken` and closed when released."""

    dialect = DIALECT

    def __init__(self, conn: Connection, pool: ConnectionPool[Connection] | None = None) -> None:
        self.conn = conn
        self.pool = pool
        self.broken = False

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        """Run one statement (outside `write`, in its own transaction)."""
        try:
            return self.conn.execute(translate(sql), parameters)
        except psycopg.Error as exc:
            fault = self.fault(exc)
            if fault is exc:
                raise
            raise fault from exc

    def fault(self, exc: psycopg.Error | PoolTimeout) -> BaseException:
        """The domain fault for `exc` (reported once, this connection marked broken), or `exc`."""
        fault = fault_of(exc)
        if fault is None:
            return exc
        self.broken = True
        metrics.database_error(exc)
        faults.report(fault, exc)
        return fault

    def close(self) -> None:
        """Hand the connection back to its pool (or close it): rolled back, or dropped if it
        saw a fault."""
        release(self)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# Connections ----------------------------------------------------------------------------


def connect(url: str, *, durability: str = "full", timeout: float = 10.0) -> Database:
    """One connection of its own (no pool): for the commands and the start checks."""
    _quiet_psycopg()
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=_whole_seconds(timeout))
    except psycopg.Error as exc:
        fault = _fault(exc)
        if fault is exc:  # not a fault of the server: a URL libpq cannot use
            fault = StorageUnavailable(f"libpq cannot use the URL: {_first_line(exc)}")
        raise fault from exc
    database = Database(conn)
    try:
        _configure(conn, durability=durability, timeout=timeout)
    except psycopg.Error as exc:
        database.close()
        raise database.fault(exc) from exc
    return database


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _quiet_psycopg() -> None:
    """psycopg logs a failed rollback on a lost connection, and its pool every failed
    reconnection, as warnings: `faults` tells each fault once instead."""
    logging.getLogger("psycopg").setLevel(logging.ERROR)


def _whole_seconds(timeout: float) -> int:
    return max(2, math.ceil(timeout))  # libpq takes whole seconds, and treats 1 as 2


def _configure(conn: Connection, *, durability: str, timeout: float) -> None:
    """Per connection: a wait for a row lock ends at `timeout`, a statement a tenth later (so
    that a statement waiting for a lock is told as the lock wait it is), and the durability
    (`normal`: the commit returns before the WAL is flushed; `full` leaves PostgreSQL's
    `synchronous_commit` as the server has it, on by default)."""
    lock, statement = int(timeout * 1000), int(timeout * 1100)
    settings = f"SET lock_timeout = {lock}; SET statement_timeout = {statement}"
    if durability == "normal":
        settings += "; SET synchronous_commit = off"
    conn.execute(settings)


_pools: dict[tuple[Any, ...], ConnectionPool[Connection]] = {}
_pools_lock = threading.Lock()
_released_at: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()


def pool(url: str, *, durability: str, size: int, timeout: float) -> ConnectionPool[Connection]:
    """This process's pool for `url` (opened on first use): at most `size` connections; a
    request waits at most `timeout` for one, and the pool retries a lost server for as long."""
    key = (url, durability, size, timeout, os.getpid())
    found = _pools.get(key)
    if found is not None:
        return found
    with _pools_lock:
        found = _pools.get(key)
        if found is None:
            _quiet_psycopg()
            found = _pools[key] = ConnectionPool(
                url, min_size=0, max_size=size, timeout=timeout, reconnect_timeout=timeout,
                max_idle=60, name="clientkeys", open=True, check=_check_if_stale,
                kwargs={"autocommit": True, "connect_timeout": _whole_seconds(timeout)},
                configure=functools.partial(_configure, durability=durability, timeout=timeout),
            )  # fmt: skip
    return found


def _check_if_stale(conn: Connection) -> None:
    if time.monotonic() - _released_at.get(conn, 0.0) > STALE_SECONDS:
        ConnectionPool.check_connection(conn)


def checkout(url: str, *, durability: str, size: int, timeout: float) -> Database:
    """A connection from this process's pool, for one unit of work (`release` it after)."""
    source = pool(url, durability=durability, size=size, timeout=timeout)
    try:
        conn = source.getconn()
    except PoolTimeout as exc:
        raise _fault(exc) from exc
    return Database(conn, source)


def release(database: Database) -> None:
    """End any transaction left open and hand the connection back (closed, if it saw a
    fault or cannot be rolled back)."""
    conn = database.conn
    if not database.broken and conn.info.transaction_status != TransactionStatus.IDLE:
        try:
            conn.rollback()
        except psycopg.Error:
            database.broken = True
    if database.broken:
        conn.close()
    if database.pool is None:
        conn.close()
        return
    _released_at[conn] = time.monotonic()
    database.pool.putconn(conn)


def dispose(url: str) -> None:
    """Close this process's pools for `url` (tests, and the pytest plugin, at their end)."""
    with _pools_lock:
        for key in [key for key in _pools if key[0] == url]:
            _pools.pop(key).close()


def _fault(exc: psycopg.Error | PoolTimeout) -> BaseException:
    """The domain fault for an error no `Database` saw yet (connecting), reported once."""
    fault = fault_of(exc)
    if fault is None:
        return exc
    metrics.database_error(exc)
    faults.report(fault, exc)
    return fault


def reported_fault(exc: BaseException) -> StorageUnavailable | None:
    """`fault_of(exc)`, logged once as any fault is: for an error that reached the renderer
    without passing a connection's `execute` (one raised while fetching rows)."""
    fault = fault_of(exc)
    if fault is not None and fault is not exc:
        faults.report(fault, exc)
    return fault


# Writes ----------------------------------------------------------------------------------


@contextmanager
def write(database: Database) -> Iterator[Database]:
    """One write transaction: the block's statements commit together or not at all, and this
    returns only after COMMIT. What the block reads `FOR UPDATE` cannot change before then.
    A storage fault, at BEGIN, inside or at COMMIT, raises StorageUnavailable: nothing
    acknowledged (a COMMIT that failed may or may not have been applied, and is answered 503)."""
    try:
        with database.conn.transaction():
            yield database
    except psycopg.Error as exc:
        fault = database.fault(exc)
        if fault is exc:
            raise
        raise fault from exc
    faults.recovered()


# Migrations ------------------------------------------------------------------------------

IDENTITY = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
"""Ids from an identity column (a sequence): unique across nodes, never reused."""
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "m001_initial",
        (
            f"""CREATE TABLE organizations (
                id {IDENTITY},
                slug TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                date_created TEXT NOT NULL
            )""",
            f"""CREATE TABLE projects (
                id {IDENTITY},
                organization_id BIGINT NOT NULL REFERENCES organizations(id),
                slug TEXT NOT NULL,
                name TEXT NOT NULL,
                date_created TEXT NOT NULL,
                UNIQUE (organization_id, slug)
            )""",
            f"""CREATE TABLE tokens (
                id {IDENTITY},
                token_hash TEXT NOT NULL UNIQUE,
                organization_id BIGINT REFERENCES organizations(id),
                scopes TEXT NOT NULL,
                is_superuser INTEGER NOT NULL DEFAULT 0,
                label TEXT NOT NULL DEFAULT '',
                date_created TEXT NOT NULL
            )""",
            f"""CREATE TABLE keys (
                id {IDENTITY},
                project_id BIGINT NOT NULL REFERENCES projects(id),
                label TEXT NOT NULL,
                public_key TEXT NOT NULL UNIQUE,
                secret_key TEXT NOT NULL UNIQUE,
                status INTEGER NOT NULL DEFAULT 0,
                use_case TEXT NOT NULL DEFAULT 'user',
                rate_limit_count INTEGER,
                rate_limit_window INTEGER,
                data TEXT NOT NULL DEFAULT '{{}}',
                date_added TEXT NOT NULL
            )""",
            "CREATE INDEX keys_by_project ON keys (project_id, id)",
            "CREATE INDEX keys_by_project_status ON keys (project_id, status, id)",
        ),
    ),
    (
        "m002_dsn_endpoint_and_audit_log",
        (
            "ALTER TABLE organizations ADD COLUMN dsn_endpoint TEXT",
            f"""CREATE TABLE audit_log (
                id {IDENTITY},
                organization_id BIGINT NOT NULL REFERENCES organizations(id),
                event TEXT NOT NULL,
                target TEXT NOT NULL,
                data TEXT NOT NULL DEFAULT '{{}}',
                date_added TEXT NOT NULL
            )""",
        ),
    ),
    (
        "m003_request_journal",
        (
            f"""CREATE TABLE request_log (
                id {IDENTITY},
                method TEXT NOT NULL,
                path TEXT NOT NULL,
                query TEXT NOT NULL,
                status INTEGER NOT NULL,
                validated INTEGER NOT NULL,
                date TEXT NOT NULL
            )""",
        ),
    ),
    (
        "m004_health_and_start_state",
        (
            "CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked DOUBLE PRECISION)",
            "CREATE TABLE start_state (name TEXT PRIMARY KEY, data TEXT NOT NULL)",
        ),
    ),
)
"""The same steps, by the same names, as SQLite's migrations in `db.py`, in PostgreSQL's
types; `tests/test_store.py` checks both give the same tables and columns."""


def migrate(database: Database) -> list[str]:
    """Apply every pending migration, in one transaction holding an advisory lock, so that
    nodes starting at once apply each step once; returns the names applied now."""
    if _up_to_date(database):
        return []  # nothing written: a read-only standby passes, for the commands that read
    applied_now = []
    with write(database):
        database.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK])
        database.execute(
            "CREATE TABLE IF NOT EXISTS _migrations "
            "(migration_set TEXT NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL, "
            "PRIMARY KEY (migration_set, name))"
        )
        done = set(applied(database))
        for name, statements in MIGRATIONS:
            if name in done:
                continue
            for statement in statements:
                database.execute(statement)
            database.execute(
                "INSERT INTO _migrations (migration_set, name, applied_at) "
                "VALUES (?, ?, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'))",
                [MIGRATION_SET, name],
            )
            applied_now.append(name)
    return applied_now


def _up_to_date(database: Database) -> bool:
    row = database.execute("SELECT to_regclass('_migrations') IS NOT NULL").fetchone()
    return bool(row and row[0]) and set(applied(database)) >= {name for name, _ in MIGRATIONS}


def applied(database: Database) -> list[str]:
    """The names of the migrations applied to this database, in order."""
    rows = database.execute(
        "SELECT name FROM _migrations WHERE migration_set = ? ORDER BY name", [MIGRATION_SET]
    ).fetchall()
    return [name for (name,) in rows]


@contextmanager
def starting(database: Database) -> Iterator[None]:
    """Hold the start lock (an advisory lock of this session) for the block, across nodes: the
    block's writes (fixtures, the start state) are many transactions, and nodes starting at
    once take turns. Released at the block's end, or with the session if the connection dies."""
    database.execute("SELECT pg_advisory_lock(?)", [START_LOCK])
    try:
        yield
    finally:
        if not database.broken:
            database.execute("SELECT pg_advisory_unlock(?)", [START_LOCK])


def create_database(server: str, name: str) -> str:
    """Create the database `name` on the server `server` names (its role needs CREATEDB);
    returns the URL of the new database (the pytest plugin, the tests)."""
    with connect(server) as database:
        database.execute(f'CREATE DATABASE "{name}"')
    return _with_database(server, name)


def drop_database(server: str, url: str) -> None:
    """Drop the database `url` names (made by `create_database`), ending its connections."""
    dispose(url)
    name = urlsplit(url).path.lstrip("/")
    with connect(server) as database:
        database.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


# Start checks and readiness --------------------------------------------------------------


def init_db(url: str) -> None:
    """Apply pending migrations; a database that cannot be reached or migrated raises
    StorageUnavailable with one line naming it (its password left out)."""
    with _at_start(url), connect(url) as database:
        migrate(database)


def check_writable(url: str) -> None:
    """StorageUnavailable, with one line naming the database, unless a transaction that
    writes can be committed there (a read-only standby cannot): what `serve` checks before
    any worker starts."""
    with _at_start(url), connect(url) as database:
        _write_health(database)


@contextmanager
def _at_start(url: str) -> Iterator[None]:
    """Faults raised inside are told by one message naming the database, not logged."""
    try:
        with faults.told_by_caller():
            yield
    except StorageUnavailable as fault:
        raise type(fault)(f"Cannot use the database {redacted(url)}: {fault.detail}") from fault


def probe(database: Database) -> None:
    """Readiness: read the schema and write one row of the `health` table in a short write
    transaction, as a request would."""
    database.execute("SELECT count(*) FROM _migrations").fetchone()
    _write_health(database)


def _write_health(database: Database) -> None:
    with write(database):
        database.execute(
            "INSERT INTO health (id, checked) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET checked = excluded.checked",
            [time.time()],
        )
