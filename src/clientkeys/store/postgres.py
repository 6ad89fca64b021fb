"""The PostgreSQL backend (`PostgresBackend`), for a `postgresql://` database: a connection pool
per backend, write transactions, the schema's PostgreSQL words (migrated under an advisory
lock), and PostgreSQL's errors classified into the same storage faults as SQLite's.

It keeps the promises `sqlite` states for SQLite: a write runs in one transaction and returns
only after COMMIT; a read-modify-write reads its rows `FOR UPDATE` (`lock_rows`), so a
concurrent update or delete of them, on any node, waits for it; an error about the database
rather than the statement is `StorageUnavailable` (503) or `StorageFull` (507), logged once
(`faults`), and the connection that saw it is closed, never handed out again: once the
database is back, the next request gets a new one. The queries are the repository's, written
once in SQLite's `?` style and translated here (`translate`); ids come from identity columns,
so they are unique across nodes and never reused.

Imported only for a `postgresql://` database (by `backend.open_backend`): it needs the
`postgres` extra.
"""

from __future__ import annotations

import functools
import logging
import math
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
from clientkeys.store import faults, schema
from clientkeys.store.backend import IntegrityError, arrival

DIALECT = "postgresql"
START_LOCK = schema.MIGRATION_LOCK + 1
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
STATEMENT_TIMEOUT = "The database did not answer within the statement timeout."
Connection = psycopg.Connection[tuple[Any, ...]]

_SQLSTATES: dict[str, str] = {
    "25006": READ_ONLY,
    "55P03": LOCKED,
    "57014": STATEMENT_TIMEOUT,
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
    `execute(sql, params)` in `?` style, returning a cursor, and the `backend` it belongs to.
    A connection that saw a storage fault is marked `broken` and closed when released."""

    dialect = DIALECT

    def __init__(
        self,
        conn: Connection,
        backend: PostgresBackend,
        pool: ConnectionPool[Connection] | None = None,
    ) -> None:
        self.conn = conn
        self.backend = backend
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
        self.backend.release(self)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# Connections ----------------------------------------------------------------------------


def connect(url: str, *, durability: str = "full", timeout: float = 10.0) -> Database:
    """One connection of its own (no pool): for the commands and the start checks."""
    return PostgresBackend(url, durability=durability, timeout=timeout).connect()


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
            _bound_lock_wait(database)
            yield database
    except psycopg.Error as exc:
        fault = database.fault(exc)
        if fault is exc:
            raise
        raise fault from exc
    faults.recovered()


@contextmanager
def _starting(database: Database) -> Iterator[None]:
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
    name = urlsplit(url).path.lstrip("/")
    with connect(server) as database:
        database.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


# Start checks and readiness --------------------------------------------------------------


@contextmanager
def _at_start(url: str) -> Iterator[None]:
    """Faults raised inside are told by one message naming the database, not logged."""
    try:
        with faults.told_by_caller():
            yield
    except StorageUnavailable as fault:
        raise type(fault)(f"Cannot use the database {redacted(url)}: {fault.detail}") from fault


def _bound_lock_wait(database: Database) -> None:
    """The transaction's row-lock waits end at its request's deadline (arrival + timeout), not
    a whole timeout after each statement starts: a request that queued for a handler thread or
    a connection has that much less left (1 ms at least: an uncontended lock is still taken)."""
    left = arrival() + database.backend.timeout - time.monotonic()
    database.conn.execute(f"SET LOCAL lock_timeout = {max(1, int(left * 1000))}")


def _write_health(database: Database) -> None:
    with write(database):
        database.execute(
            "INSERT INTO health (id, checked) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET checked = excluded.checked",
            [time.time()],
        )


class PostgresBackend:
    """A PostgreSQL database and what this process holds open on it: a pool of at most
    `pool_size` connections (opened on first use), from which each request takes one
    (`connection`) and gives it back (`release`). `close` closes the pool; a later use opens
    a new one.

    A request waits at most `timeout` for a connection, and the pool retries a lost server for
    as long; a row lock is waited for as long (`_configure`).
    """

    dialect = schema.POSTGRES
    lock_rows = " FOR UPDATE"
    """What ends a SELECT, inside a write, whose rows the write will change: a concurrent writer
    of those rows, on any node, waits."""

    def __init__(
        self, url: str, *, durability: str = "full", pool_size: int = 4, timeout: float = 10.0
    ) -> None:
        self.database = url
        self.durability, self.pool_size, self.timeout = durability, pool_size, timeout
        self._pool: ConnectionPool[Connection] | None = None
        self._pool_lock = threading.Lock()
        self._released_at: weakref.WeakKeyDictionary[Connection, float] = (
            weakref.WeakKeyDictionary()
        )

    # Connections ------------------------------------------------------------------------

    def connect(self) -> Database:
        """One connection of its own (no pool): for the commands and the start checks."""
        _quiet_psycopg()
        try:
            conn = psycopg.connect(
                self.database, autocommit=True, connect_timeout=_whole_seconds(self.timeout)
            )
        except psycopg.Error as exc:
            fault = _fault(exc)
            if fault is exc:  # not a fault of the server: a URL libpq cannot use
                fault = StorageUnavailable(f"libpq cannot use the URL: {_first_line(exc)}")
            raise fault from exc
        database = Database(conn, self)
        try:
            _configure(conn, durability=self.durability, timeout=self.timeout)
        except psycopg.Error as exc:
            database.close()
            raise database.fault(exc) from exc
        return database

    def pool(self) -> ConnectionPool[Connection]:
        """The pool (opened on first use)."""
        found = self._pool
        if found is not None:
            return found
        with self._pool_lock:
            if self._pool is None:
                _quiet_psycopg()
                self._pool = ConnectionPool(
                    self.database, min_size=0, max_size=self.pool_size, timeout=self.timeout,
                    reconnect_timeout=self.timeout, max_idle=60, name="clientkeys", open=True,
                    check=self._check_if_stale,
                    kwargs={"autocommit": True,
                            "connect_timeout": _whole_seconds(self.timeout)},
                    configure=functools.partial(
                        _configure, durability=self.durability, timeout=self.timeout
                    ),
                )  # fmt: skip
            return self._pool

    def _check_if_stale(self, conn: Connection) -> None:
        if time.monotonic() - self._released_at.get(conn, 0.0) > STALE_SECONDS:
            ConnectionPool.check_connection(conn)

    def connection(self) -> Database:
        """A connection from the pool, for one unit of work (`release` it after)."""
        source = self.pool()
        try:
            conn = source.getconn()
        except PoolTimeout as exc:
            raise _fault(exc) from exc
        return Database(conn, self, source)

    def release(self, database: Database) -> None:
        """End any transaction left open and hand the connection back (closed, if it saw a
        fault or cannot be rolled back, or if it is not pooled)."""
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
        self._released_at[conn] = time.monotonic()
        database.pool.putconn(conn)

    def close(self) -> None:
        """Close the pool and its connections."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # Schema, start checks, readiness ----------------------------------------------------

    def init(self) -> None:
        """Apply pending migrations; a database that cannot be reached or migrated raises
        StorageUnavailable with one line naming it (its password left out)."""
        with _at_start(self.database), self.connect() as database:
            self.migrate(database)

    def check_writable(self) -> None:
        """StorageUnavailable, with one line naming the database, unless a transaction that
        writes can be committed there (a read-only standby cannot): what `serve` checks before
        any worker starts."""
        with _at_start(self.database), self.connect() as database:
            _write_health(database)

    def probe(self) -> None:
        """Readiness: read the schema and write one row of the `health` table in a short write
        transaction, as a request would."""
        database = self.connection()
        try:
            database.execute(f"SELECT count(*) FROM {self.dialect.table}").fetchone()
            _write_health(database)
        finally:
            self.release(database)

    def migrate(self, conn: Database) -> list[str]:
        """Apply every pending migration (`schema.migrate`); the names applied now."""
        return schema.migrate(conn, self.dialect)

    def applied_migrations(self, conn: Database) -> list[str]:
        """The names of the migrations applied, in order."""
        return schema.applied(conn, self.dialect)

    @contextmanager
    def starting(self, conn: Database) -> Iterator[None]:
        """Hold the start lock (`_starting`): nodes starting at once load their fixtures and
        save the start state in turns."""
        with _starting(conn):
            yield

    # Writes -----------------------------------------------------------------------------

    @contextmanager
    def write(self, conn: Database) -> Iterator[Database]:
        """One write transaction (`write`); a broken constraint raises IntegrityError."""
        try:
            with write(conn):
                yield conn
        except psycopg.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def key_sequence(self, conn: Database) -> int:
        """The last key id handed out (0 before the first)."""
        sql = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM keys_id_seq"
        row = conn.execute(sql, []).fetchone()
        return int(row[0]) if row else 0

    def set_key_sequence(self, conn: Database, value: int) -> None:
        """Make the next key id `value + 1` (inside the caller's write)."""
        conn.execute("SELECT setval('keys_id_seq', ?, ?)", [max(value, 1), value > 0])

    @staticmethod
    def reported_fault(exc: BaseException) -> StorageUnavailable | None:
        """`reported_fault`: the storage fault an untranslated error stands for, logged once."""
        return reported_fault(exc)
