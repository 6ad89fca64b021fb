"""Which store the `database` setting names, and the few calls that differ between the two.

A path is a SQLite file (`db`); a `postgresql://` URL is a PostgreSQL database (`postgres`,
imported only then, so SQLite needs nothing more). Both keep the same promises (`db`'s
docstring) and run the same queries: the repository writes each once, in SQLite's `?` style,
and the dialect differences are all here (`lock_rows`, the key id sequence).
"""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlite_utils import Database

from clientkeys.config import Settings, is_postgres, redacted
from clientkeys.core.errors import StorageUnavailable
from clientkeys.store import sqlite as db

POSTGRES_MODULES = ("psycopg", "psycopg_pool")
POSTGRES_INSTALL = "pip install 'clientkeys[postgres]'"


class Cursor(Protocol):
    """What a query returns on either backend (sqlite3's and psycopg's cursors)."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """An open connection to either backend: sqlite-utils' `Database`, `postgres.Database`."""

    def execute(self, sql: str, parameters: Sequence[Any], /) -> Cursor: ...


class IntegrityError(Exception):
    """A write broke a constraint (a taken unique value); the backend's error is its cause."""


class MissingExtra(RuntimeError):
    """A `postgresql://` database without the postgres extra installed; one line says how."""


def missing_postgres_module() -> str | None:
    """The first module a PostgreSQL database needs that is not installed, or None."""
    for module in POSTGRES_MODULES:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):  # ValueError: the module was made unimportable
            return module
    return None


def _require_postgres() -> None:
    missing = missing_postgres_module()
    if missing is not None:
        raise MissingExtra(
            f"A postgresql:// database needs the postgres extra ({missing} is missing): "
            f"{POSTGRES_INSTALL}"
        )


if TYPE_CHECKING:
    from clientkeys.store import postgres


def _on_postgres(conn: Any) -> bool:
    return getattr(conn, "dialect", None) == "postgresql"


def _pg(conn: Connection) -> postgres.Database:
    return cast("postgres.Database", conn)


def _sqlite(conn: Connection) -> Database:
    return cast(Database, conn)


# Connections ----------------------------------------------------------------------------


def connection(settings: Settings) -> Connection:
    """A connection for one request: SQLite's of this thread (`db.connection`), or one from
    this process's PostgreSQL pool. `release` it at the end of the request."""
    if is_postgres(settings.database):
        from clientkeys.store import postgres

        return postgres.checkout(
            str(settings.database), durability=settings.durability,
            size=settings.pool_size, timeout=settings.db_timeout,
        )  # fmt: skip
    database: Connection = db.connection(settings.database, settings.durability)
    return database


def release(conn: Connection) -> None:
    """The end of a unit of work: roll back what it left open; a pooled connection goes back."""
    if _on_postgres(conn):
        from clientkeys.store import postgres

        postgres.release(_pg(conn))
    else:
        db.rollback(_sqlite(conn).conn)


@contextmanager
def using(settings: Settings) -> Iterator[Connection]:
    """A connection for one unit of work (the token lookup, the journal, readiness)."""
    conn = connection(settings)
    try:
        yield conn
    finally:
        release(conn)


def connect(database: Path | str) -> Any:
    """A connection of its own, closed when the `with` block ends (the commands, tests)."""
    if is_postgres(database):
        _require_postgres()
        from clientkeys.store import postgres

        return postgres.connect(str(database))
    return db.connect(database)


def dispose(database: Path | str) -> None:
    """Close this process's pooled connections to `database` (PostgreSQL; SQLite's are kept
    per thread)."""
    if is_postgres(database) and missing_postgres_module() is None:
        from clientkeys.store import postgres

        postgres.dispose(str(database))


# Schema, start checks, readiness --------------------------------------------------------


def init_db(database: Path | str) -> None:
    """Create the database (a SQLite file) and apply pending migrations; StorageUnavailable
    in one line naming the database when it cannot be used."""
    if is_postgres(database):
        _require_postgres()
        from clientkeys.store import postgres

        postgres.init_db(str(database))
    else:
        db.init_db(database)


def check_writable(database: Path | str) -> None:
    """StorageUnavailable, in one line naming the database, unless a write commits there."""
    if is_postgres(database):
        from clientkeys.store import postgres

        postgres.check_writable(str(database))
    else:
        db.check_writable(database)


def probe(settings: Settings) -> None:
    """Readiness: read the schema and commit one write of the `health` table."""
    if not is_postgres(settings.database):
        db.probe(settings.database)
        return
    from clientkeys.store import postgres

    with using(settings) as conn:
        postgres.probe(_pg(conn))


def migrate(conn: Connection) -> None:
    """Apply every pending migration."""
    if _on_postgres(conn):
        from clientkeys.store import postgres

        postgres.migrate(_pg(conn))
    else:
        db.migrate(_sqlite(conn))


def applied_migrations(conn: Connection) -> list[str]:
    """The names of the migrations applied, in order (the same names on both backends)."""
    if _on_postgres(conn):
        from clientkeys.store import postgres

        return postgres.applied(_pg(conn))
    return [migration.name for migration in db.migrations.applied(_sqlite(conn))]


@contextmanager
def starting(conn: Connection) -> Iterator[None]:
    """Hold, for the block, what makes nodes starting at once load their fixtures and save the
    start state in turns: PostgreSQL's start lock (`postgres.starting`). SQLite needs none: one
    `serve` prepares the file before its workers start."""
    if not _on_postgres(conn):
        yield
        return
    from clientkeys.store import postgres

    with postgres.starting(_pg(conn)):
        yield


def describe(database: Path | str) -> str:
    """The database as messages show it (a URL without its password)."""
    return redacted(database)


# Writes and faults -----------------------------------------------------------------------


@contextmanager
def write(conn: Connection) -> Iterator[Connection]:
    """One write transaction (`db.write`, `postgres.write`): it returns only after COMMIT; a
    broken constraint raises IntegrityError, a storage fault StorageUnavailable."""
    if not _on_postgres(conn):
        try:
            with db.write(_sqlite(conn)):
                yield conn
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return
    import psycopg

    from clientkeys.store import postgres

    try:
        with postgres.write(_pg(conn)):
            yield conn
    except psycopg.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` came from a backend (counted in the database errors metric)."""
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg")


def reported_fault(exc: BaseException) -> StorageUnavailable | None:
    """The storage fault an error that escaped a connection's translation stands for, logged
    once; None when it is not one."""
    if type(exc).__module__.startswith("psycopg"):
        from clientkeys.store import postgres

        return postgres.reported_fault(exc)
    return db.reported_fault(exc)


# The dialect differences ----------------------------------------------------------------


def lock_rows(conn: Connection) -> str:
    """What ends a SELECT, inside a write, whose rows the write will change: `FOR UPDATE` on
    PostgreSQL (a concurrent writer of those rows waits); nothing on SQLite, whose write
    transaction already holds the whole database."""
    return " FOR UPDATE" if _on_postgres(conn) else ""


def key_sequence(conn: Connection) -> int:
    """The last key id handed out (0 before the first)."""
    if _on_postgres(conn):
        sql = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM keys_id_seq"
    else:
        sql = "SELECT seq FROM sqlite_sequence WHERE name = 'keys'"
    row = conn.execute(sql, []).fetchone()
    return int(row[0]) if row else 0


def set_key_sequence(conn: Connection, value: int) -> None:
    """Make the next key id `value + 1` (inside the caller's write)."""
    if _on_postgres(conn):
        conn.execute("SELECT setval('keys_id_seq', ?, ?)", [max(value, 1), value > 0])
        return
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'keys'", [])
    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('keys', ?)", [value])
