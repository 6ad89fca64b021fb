"""The SQLite backend (`SqliteBackend`): connections (WAL, durability, one per handler thread),
write transactions (group commit, `group_commit`), the schema's SQLite words, storage faults.

What a write guarantees (a second backend must keep the same promises):

- `write` runs its block in one transaction that holds the write lock from its first statement
  (BEGIN IMMEDIATE), so a read-modify-write inside it sees no concurrent change;
- it returns only after COMMIT, synced as `durability` says, and after checking, before the
  COMMIT and after it, that the database file and its -wal at the configured path are still
  the ones written to (device and inode): a write into a deleted or replaced file is a fault,
  never an acknowledgement, and what was committed before is checkpointed into the file the
  connection holds (`_save`);
- a connection is opened only on the files the backend first opened (`_Files`): a replaced
  database, or a -wal that is not the one in use, is a fault, never adopted;
- its wait for the write lock (this process's queue and SQLite's lock together) ends at the
  request's arrival plus `timeout` (`db_timeout`): then the busy fault;
- concurrent writes of one process may share that transaction and its COMMIT (group commit,
  one fsync for all): each in its own savepoint, so a write that raises undoes itself only,
  and a fault of the shared transaction fails all of them;
- a backend error about the storage rather than the statement is raised as the domain's
  `StorageUnavailable` (503) or `StorageFull` (507) (`fault_of`), logged once per fault, and
  the connection that saw it is never used again: the next request opens a new one, so a fault
  that clears (space freed, permissions restored, the file put back) clears without a restart.
"""

from __future__ import annotations

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

from clientkeys.core.errors import StorageFull, StorageUnavailable
from clientkeys.runtime import metrics
from clientkeys.store import faults, schema
from clientkeys.store.backend import IntegrityError, arrival
from clientkeys.store.group_commit import GroupCommit

BUSY_TIMEOUT_MS = 5_000
"""How long a write waits at most for the write lock, by default (the `db_timeout` setting's)."""
BUSY_TIMEOUT_S = BUSY_TIMEOUT_MS / 1000
DURABILITY = {"full": "FULL", "normal": "NORMAL"}
"""The `durability` setting -> SQLite's synchronous mode (in WAL). `full` syncs the WAL to disk
at every commit: an acknowledged write survives a power cut. `normal` leaves that to the OS:
it survives a crash of the server (kill -9), not of the machine, and costs no fsync."""

MOVED = "The database file was deleted or replaced while the server was running: put it back."
WAL_GONE = (
    "The database's write-ahead log (its -wal file) was deleted or replaced while the server "
    "was running: restart the server (what it acknowledged is in the database file)."
)
BUSY = "The database stayed locked by another writer for longer than the lock timeout."
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
    sqlite3.SQLITE_BUSY: (StorageUnavailable, BUSY),
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
    remembers that it saw one (`broken`), and which files it opened (`identity` of the database,
    `wal_identity` of its write-ahead log, None when it has none)."""

    path = ""
    identity: tuple[int, int] | None = None
    wal_identity: tuple[int, int] | None = None
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


_report = faults.report
_recovered = faults.recovered


def _identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the file at `path`, or None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _moved(conn: sqlite3.Connection) -> str | None:
    """Which of the files `conn` writes to is no longer the one at its path (`MOVED` for the
    database, `WAL_GONE` for its -wal), or None."""
    if not isinstance(conn, _Connection):
        return None  # an in-memory database or one opened elsewhere
    if _identity(conn.path) != conn.identity:
        return MOVED
    if conn.wal_identity is not None and _identity(conn.path + "-wal") != conn.wal_identity:
        # The -wal goes too once the last connection to a replaced file closes: name the cause.
        return MOVED if _identity(conn.path) != conn.identity else WAL_GONE
    return None


def _in_place(conn: sqlite3.Connection) -> bool:
    """Whether `conn` saw no fault and its files are still the ones at their paths."""
    if not isinstance(conn, _Connection):
        return True
    return not conn.broken and _moved(conn) is None


class SqliteConnection(Database):
    """One connection to a SQLite file: sqlite-utils' `Database` (what the commands and tests
    use), with the backend it belongs to, the lock its own transactions take (one per
    backend), and, for a handler thread's connection, the group commit its writes join."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        backend: SqliteBackend,
        *,
        lock: threading.Lock,
        group: GroupCommit | None = None,
    ) -> None:
        super().__init__(conn, execute_plugins=False)
        self.backend = backend
        self.lock = lock
        self.group = group


def open_file(
    path: Path | str,
    *,
    durability: str = "full",
    create: bool = False,
    timeout: float = BUSY_TIMEOUT_S,
    files: _Files | None = None,
) -> _Connection:
    """Open one sqlite3 connection to the database file at `path` (created only with `create`):
    a busy timeout, foreign keys on, the `durability`'s synchronous mode. A file that cannot be
    opened raises StorageUnavailable; so does, with `files` (what a backend opened first), a
    database or -wal file that is not the one the backend opened: never adopted."""
    target = os.path.abspath(path)
    mode = "rwc" if create else "rw"
    if files is not None:
        files.check(target)  # before SQLite reads anything: a stranger's -wal is never replayed
    try:
        conn = sqlite3.connect(
            f"file:{quote(target)}?mode={mode}",
            uri=True,
            timeout=timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
    except sqlite3.Error as exc:
        raise _fault(None, exc) from exc
    assert isinstance(conn, _Connection)
    conn.path, conn.identity = target, _identity(target)
    # SQLite quietly opens a file it may not write read-only, and such a connection would stay
    # read-only after the permission comes back: use it for this request only.
    conn.broken = not os.access(target, os.W_OK)
    try:
        if files is not None:
            # Checked again before anything is read: a connection that read a replacement file
            # through the original's -wal would, closing as that file's last, checkpoint the
            # original's acknowledged writes into it and delete them.
            files.check(target)
            files.adopt_database(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {DURABILITY[durability]}")
        conn.execute("PRAGMA schema_version").fetchone()  # a read: SQLite opens the -wal now
        conn.wal_identity = _identity(target + "-wal")
        if files is not None:
            files.adopt(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class _Files:
    """The identities of the database file and of its -wal as a backend first opened them:
    a connection is opened only on these files (a replaced or deleted one is a fault until the
    very file is back). Forgotten when the backend closes everything (`SqliteBackend.close`):
    SQLite deletes the -wal when the last connection closes, and a later one makes a new one."""

    def __init__(self, path: str) -> None:
        self.database = _identity(path)
        """Taken when the backend is made (a worker starts): a worker that writes only after
        the file was replaced must not adopt the replacement either."""
        self.wal: tuple[int, int] | None = None
        self.lock = threading.Lock()

    def check(self, path: str) -> None:
        """StorageUnavailable (reported) unless the files at `path` are the ones first opened."""
        with self.lock:
            detail = None
            found = _identity(path)
            if found is None:
                pass  # nothing there: SQLite says it cannot open it (and creates nothing)
            elif self.database is not None and found != self.database:
                detail = MOVED
            elif (self.wal is not None and _identity(path + "-wal") != self.wal) or (
                # SQLite makes the -wal before the -shm and removes both on its last close:
                # a -shm alone means the -wal another process writes to was deleted.
                not os.path.exists(path + "-wal") and os.path.exists(path + "-shm")
            ):
                detail = MOVED if _identity(path) != self.database else WAL_GONE
        if detail is not None:
            fault = StorageUnavailable(detail)
            _report(fault, None)
            raise fault

    def adopt_database(self, conn: _Connection) -> None:
        """MOVED (reported) unless `conn`'s database file is the one first opened."""
        with self.lock:
            if self.database is None:
                self.database = conn.identity
            same = conn.identity == self.database
        if not same:
            fault = StorageUnavailable(MOVED)
            _report(fault, None)
            raise fault

    def adopt(self, conn: _Connection) -> None:
        """Remember the files of the first connection; a later one must be on the same."""
        with self.lock:
            if self.database is None:
                self.database = conn.identity
            if self.wal is None:
                self.wal = conn.wal_identity
            same = (conn.identity, conn.wal_identity or self.wal) == (self.database, self.wal)
        if not same:
            fault = StorageUnavailable(MOVED if conn.identity != self.database else WAL_GONE)
            _report(fault, None)
            raise fault


def connect(
    path: Path | str, *, durability: str = "full", create: bool = False
) -> SqliteConnection:
    """A connection of its own to the file at `path` (the commands, tests), closed when the
    `with` block ends; it writes its own transactions."""
    return SqliteBackend(path, durability).connect(create=create)


def memory() -> SqliteConnection:
    """A new in-memory database with every migration applied (tests)."""
    backend = SqliteBackend(":memory:")
    conn = SqliteConnection(
        sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False),
        backend,
        lock=backend.write_lock,
    )
    conn.execute("PRAGMA foreign_keys = ON")
    backend.migrate(conn)
    return conn


def _close_quietly(database: Database | sqlite3.Connection) -> None:
    try:
        database.close()
    except sqlite3.Error:
        pass


class SqliteBackend:
    """A SQLite file and what this process holds open on it: one connection per handler
    thread (`connection`, as Datasette's `Database` keeps them), and the group commit through
    which those threads write. `close` closes them all; a later use opens anew.

    No connection is ever shared between threads. A connection that saw a storage fault, or
    whose file is no longer the one at the path (deleted or replaced), is closed and a new one
    opened: that is how the server recovers once a fault clears.
    """

    dialect = schema.SQLITE
    lock_rows = ""
    """Nothing ends a SELECT whose rows a write will change: SQLite's write transaction already
    holds the whole database."""

    def __init__(
        self, path: Path | str, durability: str = "full", timeout: float = BUSY_TIMEOUT_S
    ) -> None:
        self.database = path
        self.path = os.path.abspath(path)
        self.durability = durability
        self.timeout = timeout
        """Seconds a write waits at most for the write lock (`db_timeout`), queue included."""
        self.files = _Files(self.path)
        self.write_lock = threading.Lock()
        """Taken by the writes of this backend's own connections (`connect`): threads of this
        process queue here, so at most one at a time asks SQLite for the write lock."""
        self.group = GroupCommit(self)
        self._local = threading.local()
        self._opened: weakref.WeakSet[SqliteConnection] = weakref.WeakSet()
        self._opened_lock = threading.Lock()
        self._writer: _Connection | None = None

    # Connections ------------------------------------------------------------------------

    def connect(self, *, create: bool = False) -> SqliteConnection:
        """A connection of its own (the commands, start checks), closed when the `with` block
        ends; it writes its own transactions."""
        conn = open_file(self.path, durability=self.durability, create=create, timeout=self.timeout)
        return SqliteConnection(conn, self, lock=self.write_lock)

    def connection(self) -> SqliteConnection:
        """This thread's connection, opened on first use and kept for the thread's life (or
        until `close`); its writes go through group commit. Reopened when it saw a fault or its
        file was replaced; a file that is gone is a fault (never created anew)."""
        database: SqliteConnection | None = getattr(self._local, "connection", None)
        if database is not None and not _in_place(database.conn):
            _close_quietly(database)
            database = self._local.connection = None
            _gone(self.path)
        if database is None:
            conn = self._open()
            database = SqliteConnection(conn, self, lock=self.write_lock, group=self.group)
            self._local.connection = database
            with self._opened_lock:
                self._opened.add(database)
        return database

    def release(self, conn: SqliteConnection) -> None:
        """The end of a unit of work: roll back what it left open (the connection is kept)."""
        rollback(conn.conn)

    def close(self) -> None:
        """Close every connection this backend opened for its threads, and the writer's."""
        with self._opened_lock:
            opened, self._opened = list(self._opened), weakref.WeakSet()
            self._local = threading.local()
        for database in opened:
            _close_quietly(database)
        with self.group.turn:
            writer, self._writer = self._writer, None
        if writer is not None:
            _close_quietly(writer)
        self.files = _Files(self.path)

    def _open(self) -> _Connection:
        """A new connection for a thread or the writer, on the files first opened only."""
        return open_file(
            self.path, durability=self.durability, timeout=self.timeout, files=self.files
        )

    # Schema, start checks, readiness ----------------------------------------------------

    def init(self) -> None:
        """Create the file if needed, switch it to WAL and apply pending migrations. A database
        that cannot be opened (or migrated) raises StorageUnavailable with a one-line message
        naming the file. A migrated database that is read-only passes: the commands that only
        read work on it; `serve` asks `check_writable` too."""
        with _at_start(self.database):
            _refuse_orphans(self.path)
            with self.connect(create=True) as db:
                db.execute("PRAGMA journal_mode = WAL")
                self.migrate(db)

    def check_writable(self) -> None:
        """StorageUnavailable, with a one-line message naming the file, unless a transaction
        can be committed to it: what `serve` checks before any worker starts. (Workers do not:
        one started later answers 503 until the fault clears, rather than crash-loop.)"""
        with _at_start(self.database), self.connect() as db, write(db):
            # A transaction that changes nothing but is written all the same (a WAL frame).
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            db.execute(f"PRAGMA user_version = {version}")

    def probe(self) -> None:
        """Readiness: read the schema and write one row of the `health` table (a short write
        transaction, as a request's), on this thread's connection; a fault raises what a
        request would answer (`StorageUnavailable`)."""
        database = self.connection()
        try:
            database.execute(f"SELECT count(*) FROM {self.dialect.table}").fetchone()
            with write(database):
                database.execute(
                    "INSERT OR REPLACE INTO health (id, checked) VALUES (1, ?)", [time.time()]
                )
        finally:
            self.release(database)

    def migrate(self, conn: SqliteConnection) -> list[str]:
        """Apply every pending migration (`schema.migrate`); the names applied now."""
        return schema.migrate(conn, self.dialect)

    def applied_migrations(self, conn: SqliteConnection) -> list[str]:
        """The names of the migrations applied, in order."""
        return schema.applied(conn, self.dialect)

    @contextmanager
    def starting(self, conn: SqliteConnection) -> Iterator[None]:
        """Nothing to hold: one `serve` prepares the file before its workers start."""
        yield

    # Writes -----------------------------------------------------------------------------

    @contextmanager
    def write(self, conn: SqliteConnection) -> Iterator[SqliteConnection]:
        """One write transaction (`write`); a broken constraint raises IntegrityError."""
        try:
            with write(conn):
                yield conn
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def key_sequence(self, conn: SqliteConnection) -> int:
        """The last key id handed out (0 before the first)."""
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'keys'", []).fetchone()
        return int(row[0]) if row else 0

    def set_key_sequence(self, conn: SqliteConnection, value: int) -> None:
        """Make the next key id `value + 1` (inside the caller's write)."""
        conn.execute("DELETE FROM sqlite_sequence WHERE name = 'keys'", [])
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('keys', ?)", [value])

    @staticmethod
    def reported_fault(exc: BaseException) -> StorageUnavailable | None:
        """`reported_fault`: the storage fault an untranslated error stands for, logged once."""
        return reported_fault(exc)

    # What group commit asks of its backend (`group_commit.Transactions`) -----------------

    def writer(self) -> sqlite3.Connection:
        """The group's writer connection, reopened if it saw a fault or its file changed."""
        if self._writer is not None and not _in_place(self._writer):
            _close_quietly(self._writer)
            self._writer = None
            _gone(self.path)
        if self._writer is None:
            self._writer = self._open()
            # Only the writer whose turn it is uses it, and `begin` retries.
            self._writer.execute("PRAGMA busy_timeout = 0")
        return self._writer

    def begin(self, conn: sqlite3.Connection, deadline: float) -> None:
        _begin_immediate(conn, deadline, retried=True)

    def commit(self, conn: sqlite3.Connection) -> None:
        _check_in_place(conn)
        conn.execute("COMMIT")
        _check_in_place(conn)

    def busy(self) -> StorageUnavailable:
        fault = StorageUnavailable(BUSY)
        _report(fault, None)
        return fault

    def rollback(self, conn: sqlite3.Connection) -> None:
        rollback(conn)

    def lost(self, conn: sqlite3.Connection, exc: BaseException) -> StorageUnavailable:
        rollback(conn)
        _mark_broken(conn)
        return fault_of(exc) or StorageUnavailable()


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


def init_db(path: Path | str) -> None:
    """`SqliteBackend.init` for the file at `path`."""
    SqliteBackend(path).init()


def check_writable(path: Path | str) -> None:
    """`SqliteBackend.check_writable` for the file at `path`."""
    SqliteBackend(path).check_writable()


@contextmanager
def write(db: SqliteConnection) -> Iterator[SqliteConnection]:
    """One write, holding the write lock from its start (BEGIN IMMEDIATE): what the block reads
    cannot change before it commits. Returns after COMMIT, synced as `durability` says, once the
    file at the configured path is still the one written to; a storage fault raises
    StorageUnavailable; an exception in the block undoes the block and only the block.

    A handler thread's connection (`SqliteBackend.connection`) writes by group commit: the
    concurrent writes of this process share one transaction, each in its own savepoint, and one
    COMMIT (one fsync); each returns only after that COMMIT. Any other connection (the CLI's,
    an in-memory database) writes its own transaction.

    Threads of one process queue on a Python lock, so at most one of them at a time asks
    SQLite for the write lock; that one retries every few milliseconds while another process
    holds it. SQLite's own busy handler would sleep in steps growing to 100 ms, which turns a
    queue of sub-millisecond writes into long latency tails.
    """
    if db.group is not None:
        with db.group.write(db):
            yield db
        return
    conn = db.conn
    deadline = arrival() + db.backend.timeout
    with _locked(db.lock, deadline):
        _begin_immediate(conn, deadline)
        try:
            yield db
            _check_in_place(conn)
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        _check_in_place(conn)
    _recovered()


def _check_in_place(conn: sqlite3.Connection) -> None:
    """Before and after a COMMIT: a fault unless the database and -wal files at the configured
    path are the ones written to. What was committed before the change is saved into the
    database file this connection holds open (`_save`): it is what the operator gets back."""
    detail = _moved(conn)
    if detail is None:
        return
    fault = StorageUnavailable(detail)
    _mark_broken(conn)
    _report(fault, None)
    _save(conn)
    raise fault


def _gone(path: str) -> None:
    """After closing a connection whose file changed: MOVED (reported) if none is there now."""
    if _identity(path) is None:
        fault = StorageUnavailable(MOVED)
        _report(fault, None)
        raise fault


def _save(conn: sqlite3.Connection) -> None:
    """Roll back what is open, then copy the -wal this connection holds into the database file
    it holds (a checkpoint): through their open descriptors, whatever the paths now name. Its
    -wal left empty, a replacement file at the path cannot get its pages."""
    rollback(conn)
    try:
        sqlite3.Connection.execute(conn, "PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error:
        pass  # another connection holding the same files checkpoints them when it closes


def _refuse_orphans(path: str) -> None:
    """At start: a -wal or -shm without its database is somebody's acknowledged writes, not a
    new database: StorageUnavailable (refused), never an empty file beside them."""
    if os.path.exists(path):
        return
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            raise StorageUnavailable(
                f"its {suffix} file {path + suffix} is there without the database file: put "
                "the database back (or move both away to start anew)."
            )


def rollback(conn: sqlite3.Connection) -> None:
    """End any transaction left open on `conn`; a connection that cannot is not used again."""
    if not conn.in_transaction:
        return
    try:
        sqlite3.Connection.execute(conn, "ROLLBACK")
    except sqlite3.Error:
        _mark_broken(conn)


@contextmanager
def _locked(lock: threading.Lock, deadline: float) -> Iterator[None]:
    """Hold `lock`, waiting until `deadline` at most (then StorageUnavailable); a wait for it
    (another thread of this process writes) is counted."""
    if not lock.acquire(blocking=False):
        started = time.monotonic()
        if not lock.acquire(timeout=max(0.0, deadline - started)):
            raise StorageUnavailable(BUSY)
        metrics.lock_waited("process", time.monotonic() - started)
    try:
        yield
    finally:
        lock.release()


def _begin_immediate(conn: sqlite3.Connection, deadline: float, retried: bool = False) -> None:
    """BEGIN IMMEDIATE, retried every few ms while another process holds the write lock, up to
    `deadline` (the write's own: its wait in this process's queue counts). `retried`: the
    connection's own busy timeout is already 0."""
    started = time.monotonic()
    pause, waited = 0.0005, False
    busy_ms = int(sqlite3.Connection.execute(conn, "PRAGMA busy_timeout").fetchone()[0])
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
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 1.5, 0.005)
    finally:
        if not retried:
            conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    if waited:  # another process held SQLite's write lock
        metrics.lock_waited("sqlite", time.monotonic() - started)
