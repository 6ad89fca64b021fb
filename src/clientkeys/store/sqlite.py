"""The SQLite store: connections (WAL, durability, one per thread), migrations, write
transactions, and storage faults.

What a write guarantees (a second backend must keep the same promises):

- `write` runs its block in one transaction that holds the write lock from its first statement
  (BEGIN IMMEDIATE), so a read-modify-write inside it sees no concurrent change;
- it returns only after COMMIT, synced as `durability` says, and after checking that the file
  at the configured path is still the one written to: a write into a deleted or replaced file
  is a fault, never an acknowledgement;
- concurrent writes of one process may share that transaction and its COMMIT (group commit,
  one fsync for all): each in its own savepoint, so a write that raises undoes itself only,
  and a fault of the shared transaction fails all of them;
- a backend error about the storage rather than the statement is raised as the domain's
  `StorageUnavailable` (503) or `StorageFull` (507) (`fault_of`), logged once per fault, and
  the connection that saw it is never used again: the next request opens a new one, so a fault
  that clears (space freed, permissions restored, the file put back) clears without a restart.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from clientkeys.core.errors import StorageFull, StorageUnavailable
from clientkeys.runtime import metrics
from clientkeys.store import faults

logger = logging.getLogger(__name__)
migrations = Migrations("clientkeys")
BUSY_TIMEOUT_MS = 10_000
DURABILITY = {"full": "FULL", "normal": "NORMAL"}
"""The `durability` setting -> SQLite's synchronous mode (in WAL). `full` syncs the WAL to disk
at every commit: an acknowledged write survives a power cut. `normal` leaves that to the OS:
it survives a crash of the server (kill -9), not of the machine, and costs no fsync."""

MOVED = "The database file was deleted or replaced while the server was running: put it back."
READ_ONLY = (
    "The database is read-only: check the permissions of its file and folder, and its file system."
)
_FAULTS: dict[int, tuple[type[StorageUnavailable], str]] = {
    sqlite3.SQLITE_FULL: (StorageFull, StorageFull.detail),
    sqlite3.SQLITE_READONLY: (StorageUnavailable, READ_ONLY),
    sqlite3.SQLITE_CANTOPEN: (
        StorageUnavailable,
        "The database file cannot be opened: it is missing or not accessible.",
    ),
    sqlite3.SQLITE_IOERR: (
        StorageUnavailable,
        "The database file cannot be read or written: disk I/O error.",
    ),
    sqlite3.SQLITE_CORRUPT: (StorageUnavailable, "The database file is damaged."),
    sqlite3.SQLITE_NOTADB: (StorageUnavailable, "The database file is not a database."),
    sqlite3.SQLITE_BUSY: (
        StorageUnavailable,
        f"The database stayed locked by another writer for {BUSY_TIMEOUT_MS // 1000} s.",
    ),
    sqlite3.SQLITE_PERM: (StorageUnavailable, "Access to the database file was denied."),
    sqlite3.SQLITE_NOMEM: (StorageUnavailable, "The database ran out of memory."),
    sqlite3.SQLITE_PROTOCOL: (StorageUnavailable, "The database's file locking failed."),
}
"""SQLite's primary result codes that are about the storage, not the statement."""


def fault_of(exc: BaseException) -> StorageUnavailable | None:
    """The storage fault a backend error stands for, or None when it is not one (a constraint,
    a bad statement: a bug or a conflict the caller handles)."""
    if isinstance(exc, StorageUnavailable):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None:
        return None
    if code == sqlite3.SQLITE_READONLY_DBMOVED:
        return StorageUnavailable(MOVED)
    if code == sqlite3.SQLITE_IOERR_SHMSIZE:  # the WAL index could not grow: no space left
        return StorageFull()
    kind = _FAULTS.get(code & 0xFF)
    return None if kind is None else kind[0](kind[1])


def reported_fault(exc: BaseException) -> StorageUnavailable | None:
    """`fault_of(exc)`, logged once as any fault is: for an error that reached the renderer
    without passing a connection's `execute` (one raised while fetching rows)."""
    fault = fault_of(exc)
    if fault is not None and fault is not exc:
        _report(fault, exc)
    return fault


class _Connection(sqlite3.Connection):
    """A connection to one file that raises storage faults as domain errors (`fault_of`),
    remembers that it saw one (`broken`), and which file it opened (`identity`)."""

    path = ""
    identity: tuple[int, int] | None = None
    broken = False

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise _fault(self, exc) from exc


def _fault(conn: sqlite3.Connection | None, exc: sqlite3.Error) -> BaseException:
    """The domain fault for `exc` (reported once, its connection marked broken), or `exc`."""
    fault = fault_of(exc)
    if fault is None:
        return exc
    _mark_broken(conn)
    metrics.database_error(exc)
    _report(fault, exc)
    return fault


def _mark_broken(conn: sqlite3.Connection | None) -> None:
    """Never use `conn` again: the next `connection()` opens a new one."""
    if isinstance(conn, _Connection):
        conn.broken = True


_local = threading.local()
_report = faults.report
_recovered = faults.recovered


def _identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the file at `path`, or None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _in_place(conn: sqlite3.Connection) -> bool:
    """Whether `conn` saw no fault and its file is still the one at its path."""
    if not isinstance(conn, _Connection):
        return True  # an in-memory database or one opened elsewhere
    return not conn.broken and _identity(conn.path) == conn.identity


def connect(path: Path | str, *, durability: str = "full", create: bool = False) -> Database:
    """Open one connection to the database file at `path` (created only with `create`): a busy
    timeout, foreign keys on, the `durability`'s synchronous mode. A file that cannot be opened
    raises StorageUnavailable."""
    target = os.path.abspath(path)
    mode = "rwc" if create else "rw"
    try:
        conn = sqlite3.connect(
            f"file:{quote(target)}?mode={mode}",
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
    except sqlite3.Error as exc:
        raise _fault(None, exc) from exc
    conn.path, conn.identity = target, _identity(target)
    # SQLite quietly opens a file it may not write read-only, and such a connection would stay
    # read-only after the permission comes back: use it for this request only.
    conn.broken = not os.access(target, os.W_OK)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {DURABILITY[durability]}")
    except BaseException:
        conn.close()
        raise
    return Database(conn, execute_plugins=False)


MAX_THREAD_CONNECTIONS = 4


def connection(path: Path | str, durability: str = "full") -> Database:
    """This thread's connection to `path`, opened on first use and kept for the thread's life.

    Requests on one thread reuse it (as Datasette does); no connection is ever shared between
    threads. A connection that saw a storage fault, or whose file is no longer the one at
    `path` (deleted or replaced), is closed and a new one opened: that is how the server
    recovers once a fault clears. A write leaves no transaction open (see `write`).
    """
    cache: dict[tuple[str, str], Database] | None = getattr(_local, "connections", None)
    if cache is None:
        cache = _local.connections = {}
    key = (str(path), durability)
    database = cache.get(key)
    if database is not None and not _in_place(database.conn):
        _close_quietly(cache.pop(key))
        database = None
        if _identity(os.path.abspath(path)) is None:
            fault = StorageUnavailable(MOVED)
            _report(fault, None)
            raise fault
    if database is None:
        if len(cache) >= MAX_THREAD_CONNECTIONS:  # tests open many files from one thread
            _close_quietly(cache.pop(next(iter(cache))))
        database = cache[key] = connect(path, durability=durability)
        _grouped[database] = (os.path.abspath(path), durability)
    return database


def _close_quietly(database: Database) -> None:
    try:
        database.close()
    except sqlite3.Error:
        pass


@contextmanager
def using(path: Path | str, durability: str = "full") -> Iterator[Database]:
    """This thread's connection for one unit of work (the token lookup, the journal; handlers
    use `handlers._request.get_db`); never left inside a transaction."""
    database = connection(path, durability)
    try:
        yield database
    finally:
        rollback(database.conn)


def init_db(path: Path | str) -> None:
    """Create the file if needed, switch it to WAL and apply pending migrations. A database
    that cannot be opened (or migrated) raises StorageUnavailable with a one-line message
    naming the file. A migrated database that is read-only passes: the commands that only read
    work on it; `serve` asks `check_writable` too."""
    if str(path) == ":memory:":
        migrate(Database(memory=True))
        return
    with _at_start(path), connect(path, create=True) as db:
        db.execute("PRAGMA journal_mode = WAL")
        migrate(db)


def check_writable(path: Path | str) -> None:
    """StorageUnavailable, with a one-line message naming `path`, unless a transaction can be
    committed to the database there: what `serve` checks before any worker starts. (Workers
    do not: one started later answers 503 until the fault clears, rather than crash-loop.)"""
    with _at_start(path), connect(path) as db:
        _probe_write(db)


@contextmanager
def _at_start(path: Path | str) -> Iterator[None]:
    """Faults raised inside are told by one message naming `path`, not logged."""
    try:
        with faults.told_by_caller():
            yield
    except StorageUnavailable as fault:
        detail = fault.detail
        if os.path.exists(path) and not os.access(path, os.W_OK):
            detail = READ_ONLY  # what an unwritable file system gives is not always READONLY
        raise type(fault)(f"Cannot use the database {path}: {detail}") from fault


def probe(path: Path | str) -> None:
    """Readiness: read the schema and write one row of the `health` table (a short write
    transaction, as a request's), on this thread's connection; a fault raises what a request
    would answer (`StorageUnavailable`)."""
    with using(path) as database:
        database.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()
        with write(database):
            database.execute(
                "INSERT OR REPLACE INTO health (id, checked) VALUES (1, ?)", [time.time()]
            )


def _probe_write(db: Database) -> None:
    """Commit a transaction that changes nothing but is written all the same (a WAL frame)."""
    with write(db):
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        db.execute(f"PRAGMA user_version = {version}")


def migrate(db: Database) -> None:
    """Apply every pending schema migration, all in one write transaction (each step in a
    savepoint): processes starting at once on one file take turns, and the second finds
    nothing pending. With none pending, nothing is written (a read-only file passes)."""
    if not migrations.pending(db):
        return
    with write(db):
        migrations.apply(db)


_write_locks: dict[str, threading.Lock] = {}
_lock_of_connection: weakref.WeakKeyDictionary[Database, threading.Lock] = (
    weakref.WeakKeyDictionary()
)


@contextmanager
def write(db: Database) -> Iterator[Database]:
    """One write, holding the write lock from its start (BEGIN IMMEDIATE): what the block reads
    cannot change before it commits. Returns after COMMIT, synced as `durability` says, once the
    file at the configured path is still the one written to; a storage fault raises
    StorageUnavailable; an exception in the block undoes the block and only the block.

    A handler thread's connection (`connection`) writes by group commit (`_Writer`): the
    concurrent writes of this process share one transaction, each in its own savepoint, and one
    COMMIT (one fsync); each returns only after that COMMIT. Any other connection (the CLI's,
    an in-memory database) writes its own transaction.

    Threads of one process queue on a Python lock, so at most one of them at a time asks
    SQLite for the write lock; that one retries every few milliseconds while another process
    holds it. SQLite's own busy handler would sleep in steps growing to 100 ms, which turns a
    queue of sub-millisecond writes into long latency tails.
    """
    writer = _writer_of(db)
    if writer is not None:
        with writer.write(db):
            yield db
        return
    conn = db.conn
    with _locked(_write_lock(db)):
        _begin_immediate(conn)
        try:
            yield db
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        _check_in_place(conn)
    _recovered()


def _check_in_place(conn: sqlite3.Connection) -> None:
    """After a COMMIT: a fault unless the file at the configured path is the one written to."""
    if not _in_place(conn):
        fault = StorageUnavailable(MOVED)
        _mark_broken(conn)
        _report(fault, None)
        raise fault


class _Batch:
    """The writes of one group commit: its members wait for `done`; `fault` if it failed."""

    def __init__(self) -> None:
        self.members = 0
        self.done = threading.Event()
        self.fault: BaseException | None = None


MAX_BATCH = 64
"""Writes one transaction takes at most before it commits, even with more queued."""


class _Writer:
    """Group commit for one database file in this process: one connection that writes for
    every handler thread, one open transaction (`batch`) that the threads arriving while it is
    open join, each in a savepoint. The last writer of a batch (nobody else is queued) commits
    it, with one fsync, and wakes the others; a writer whose block raises rolls back its own
    savepoint only. A fault of the transaction itself (the COMMIT, a full disk, the file gone)
    fails every write of the batch: none of them is acknowledged."""

    def __init__(self, path: str, durability: str) -> None:
        self.path, self.durability = path, durability
        self.conn: Database | None = None
        self.turn = threading.Condition()
        self.busy = False  # a thread is running its block (under `turn`)
        self.queued = 0  # threads waiting for their turn
        self.batch: _Batch | None = None

    @contextmanager
    def write(self, db: Database) -> Iterator[None]:
        self._enter()
        try:
            batch = self._begin()
        except BaseException:
            self._end_turn(None)
            raise
        assert self.conn is not None
        conn = self.conn.conn
        own, db.conn = db.conn, conn  # the block speaks through the writer's connection
        failed: BaseException | None = None
        try:
            conn.execute("SAVEPOINT write")
            yield
            conn.execute("RELEASE write")
            batch.members += 1
        except BaseException as exc:
            failed = exc
            self._undo(conn, batch, exc)
        finally:
            db.conn = own
        if self._end_turn(batch):
            self._commit(batch)
        if failed is not None:
            raise failed
        batch.done.wait()
        if batch.fault is not None:
            raise _again(batch.fault) from batch.fault
        _recovered()

    def _enter(self) -> None:
        """Wait for this process's turn to write (counted as a wait for the process lock)."""
        with self.turn:
            if self.busy:
                started = time.monotonic()
                self.queued += 1
                while self.busy:
                    self.turn.wait()
                self.queued -= 1
                metrics.lock_waited("process", time.monotonic() - started)
            self.busy = True

    def _end_turn(self, batch: _Batch | None) -> bool:
        """Let the next queued writer in, or return True: this one must commit `batch` (it
        holds writes and nobody else is queued to join it, or it is full), keeping the turn
        until it has."""
        with self.turn:
            if (
                batch is not None and self.batch is batch and batch.members
                and (not self.queued or batch.members >= MAX_BATCH)
            ):  # fmt: skip
                return True
            if batch is not None and self.batch is batch and not batch.members:
                self._abandon(batch)  # only failed writes: nothing to commit
            self.busy = False
            self.turn.notify()
            return False

    def _begin(self) -> _Batch:
        """The open batch, or a new transaction for one (a fresh connection if need be)."""
        if self.batch is not None:
            return self.batch
        if self.conn is None or not _in_place(self.conn.conn):
            if self.conn is not None:
                _close_quietly(self.conn)
                self.conn = None
                if _identity(self.path) is None:
                    fault = StorageUnavailable(MOVED)
                    _report(fault, None)
                    raise fault
            self.conn = connect(self.path, durability=self.durability)
            # Only the writer whose turn it is uses it, and `_begin_immediate` retries.
            self.conn.conn.execute("PRAGMA busy_timeout = 0")
        _begin_immediate(self.conn.conn, retried=True)
        self.batch = _Batch()
        return self.batch

    def _undo(self, conn: sqlite3.Connection, batch: _Batch, exc: BaseException) -> None:
        """Roll back the failed block's savepoint; if the transaction itself is lost (SQLite
        rolled it back on a storage fault, or the savepoint cannot be undone), so is the batch:
        its other writes fail too."""
        try:
            if conn.in_transaction:
                sqlite3.Connection.execute(conn, "ROLLBACK TO write")
                sqlite3.Connection.execute(conn, "RELEASE write")
                return
        except sqlite3.Error:
            pass
        rollback(conn)
        _mark_broken(conn)
        batch.fault = fault_of(exc) or StorageUnavailable()
        with self.turn:
            self._abandon(batch)

    def _abandon(self, batch: _Batch) -> None:
        """End `batch` without a commit (under `turn`): roll back what is open, wake members."""
        assert self.conn is not None
        rollback(self.conn.conn)
        self.batch = None
        batch.done.set()

    def _commit(self, batch: _Batch) -> None:
        """COMMIT the batch (one fsync), check the file is still the one written to, wake its
        members, and give the turn to the next writer."""
        assert self.conn is not None
        conn = self.conn.conn
        try:
            conn.execute("COMMIT")
            _check_in_place(conn)
        except BaseException as exc:
            rollback(conn)
            batch.fault = fault_of(exc) or StorageUnavailable()
        finally:
            with self.turn:
                self.batch = None
                self.busy = False
                self.turn.notify()
            batch.done.set()


def _again(fault: BaseException) -> BaseException:
    """A copy of the batch's fault for one of its writers (each raises its own)."""
    detail = getattr(fault, "detail", None)
    return type(fault)(detail) if isinstance(fault, StorageUnavailable) else StorageUnavailable()


_writers: dict[tuple[str, str], _Writer] = {}
_writers_lock = threading.Lock()
_grouped: weakref.WeakKeyDictionary[Database, tuple[str, str]] = weakref.WeakKeyDictionary()
"""The handler-thread connections (`connection`) that write by group commit, and their file."""


MAX_WRITERS = 8
"""Files a process keeps a writer connection open to (tests use many; a server one)."""


def _writer_of(db: Database) -> _Writer | None:
    """The group-commit writer of a handler thread's connection, or None for another one."""
    key = _grouped.get(db)
    if key is None:
        return None
    with _writers_lock:
        writer = _writers.get(key)
        if writer is None:
            if len(_writers) >= MAX_WRITERS:
                _close_idle_writers()
            writer = _writers[key] = _Writer(*key)
        return writer


def _close_idle_writers() -> None:
    """Close the writers nobody is using (under `_writers_lock`)."""
    for key, writer in list(_writers.items()):
        with writer.turn:
            if writer.busy or writer.queued or writer.batch is not None:
                continue
            if writer.conn is not None:
                _close_quietly(writer.conn)
            del _writers[key]


def _forget_writers() -> None:
    """In a forked child: the parent's writers (their connections, locks) are not ours."""
    global _writers_lock
    _writers.clear()
    _writers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_writers)


def rollback(conn: sqlite3.Connection) -> None:
    """End any transaction left open on `conn`; a connection that cannot is not used again."""
    if not conn.in_transaction:
        return
    try:
        sqlite3.Connection.execute(conn, "ROLLBACK")
    except sqlite3.Error:
        _mark_broken(conn)


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


def _begin_immediate(conn: sqlite3.Connection, retried: bool = False) -> None:
    """BEGIN IMMEDIATE, retried every few ms while another process holds the write lock, up to
    the busy timeout. `retried`: the connection's own busy timeout is already 0."""
    started = time.monotonic()
    deadline = started + BUSY_TIMEOUT_MS / 1000
    pause, waited = 0.0005, False
    if not retried:
        conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                sqlite3.Connection.execute(conn, "BEGIN IMMEDIATE")
                break
            except sqlite3.Error as exc:
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise _fault(conn, exc) from exc
                waited = True
                time.sleep(pause)
                pause = min(pause * 1.5, 0.005)
    finally:
        if not retried:
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
