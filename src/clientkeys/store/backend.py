"""The storage interface: a `Backend` is one database, named by the `database` setting, with
everything this process holds open on it; `open_backend` makes the one a setting names.

A path is a SQLite file (`sqlite.SqliteBackend`); a `postgresql://` URL is a PostgreSQL database
(`postgres.PostgresBackend`, imported only then, so SQLite needs nothing more). A second backend
is a second class behind this interface, not a branch in its callers. Both keep the same
promises (`sqlite`'s docstring) and run the same queries: the repository writes each once, in
SQLite's `?` style, and asks the connection's backend for the few things that differ (`write`,
`lock_rows`, the key id sequence).

The server makes one backend per app and closes it in the app's lifespan; a command opens one
around its work (`connect`: a connection of its own, whose backend holds nothing else).
"""

from __future__ import annotations

import importlib.util
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from clientkeys.config import HasScope, Settings, is_postgres
from clientkeys.core.errors import StorageUnavailable
from clientkeys.runtime import exchange

POSTGRES_MODULES = ("psycopg", "psycopg_pool")
POSTGRES_INSTALL = "pip install 'clientkeys[postgres]'"
BACKEND_KEY = "clientkeys.backend"
"""Where the server puts its backend in every request's ASGI `state` (`backend_of`)."""


class Cursor(Protocol):
    """What a query returns on either backend (sqlite3's and psycopg's cursors)."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """An open connection to either backend (`sqlite.SqliteConnection`, `postgres.Database`):
    queries in `?` style, and the backend it belongs to."""

    @property
    def backend(self) -> Backend: ...

    def execute(self, sql: str, parameters: Sequence[Any], /) -> Cursor: ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, kind: Any, exc: Any, traceback: Any, /) -> Any: ...


class Backend(Protocol):
    """One database and what this process holds open on it (threads' connections, a pool)."""

    @property
    def database(self) -> Path | str:
        """The `database` setting: a SQLite file's path, or a `postgresql://` URL."""
        ...

    @property
    def lock_rows(self) -> str:
        """What ends a SELECT, inside a write, whose rows the write will change, so that a
        concurrent writer of them waits (PostgreSQL's ` FOR UPDATE`; nothing on SQLite, whose
        write transaction holds the whole file)."""
        ...

    def connection(self) -> Any:
        """A connection for one unit of work (a request): `release` it at its end."""
        ...

    def release(self, conn: Any, /) -> None:
        """The end of a unit of work: roll back what it left open; a pooled connection goes
        back."""
        ...

    def connect(self) -> Any:
        """A connection of its own, closed when its `with` block ends (commands, start)."""
        ...

    def close(self) -> None:
        """Close what this backend holds open; a later use opens anew."""
        ...

    def init(self) -> None:
        """Create the database (a SQLite file) and apply pending migrations;
        StorageUnavailable in one line naming the database when it cannot be used."""
        ...

    def check_writable(self) -> None:
        """StorageUnavailable, in one line naming the database, unless a write commits."""
        ...

    def probe(self) -> None:
        """Readiness: read the schema and commit one write of the `health` table."""
        ...

    def applied_migrations(self, conn: Any, /) -> list[str]:
        """The names of the migrations applied, in order (the same names on both)."""
        ...

    def starting(self, conn: Any, /) -> AbstractContextManager[None]:
        """Hold, for the block, what makes nodes starting at once load their fixtures and save
        the start state in turns."""
        ...

    def write(self, conn: Any, /) -> AbstractContextManager[Any]:
        """One write transaction: it returns only after COMMIT; a broken constraint raises
        IntegrityError, a storage fault StorageUnavailable."""
        ...

    def key_sequence(self, conn: Any, /) -> int:
        """The last key id handed out (0 before the first)."""
        ...

    def set_key_sequence(self, conn: Any, value: int, /) -> None:
        """Make the next key id `value + 1` (inside the caller's write)."""
        ...


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


def open_backend(
    database: Path | str, *, durability: str = "full", pool_size: int = 4, timeout: float = 10.0
) -> Backend:
    """The backend `database` names; it opens nothing until used. MissingExtra for a
    `postgresql://` URL without the postgres extra."""
    # Each implementation is imported only when named: PostgreSQL's needs an optional extra.
    if is_postgres(database):
        missing = missing_postgres_module()
        if missing is not None:
            raise MissingExtra(
                f"A postgresql:// database needs the postgres extra ({missing} is missing): "
                f"{POSTGRES_INSTALL}"
            )
        from clientkeys.store.postgres import PostgresBackend

        return PostgresBackend(
            str(database), durability=durability, pool_size=pool_size, timeout=timeout
        )
    from clientkeys.store.sqlite import SqliteBackend

    return SqliteBackend(database, durability, timeout)


def backend_for(settings: Settings) -> Backend:
    """The backend of a server's settings (its database, durability, pool and timeout)."""
    return open_backend(
        settings.database, durability=settings.durability, pool_size=settings.pool_size,
        timeout=settings.db_timeout,
    )  # fmt: skip


def backend_of(request: HasScope) -> Backend:
    """The backend the app put into this request's state."""
    backend: Backend = request.scope["state"][BACKEND_KEY]
    return backend


@contextmanager
def using(backend: Backend) -> Iterator[Connection]:
    """A connection for one unit of work (the token lookup, the journal), released after."""
    conn = backend.connection()
    try:
        yield conn
    finally:
        backend.release(conn)


def connect(database: Path | str) -> Any:
    """A connection of its own to `database`, closed when the `with` block ends (the commands,
    tests): its backend holds nothing else open."""
    return open_backend(database).connect()


def init_db(database: Path | str) -> None:
    """Create the database (a SQLite file) and apply pending migrations (`Backend.init`)."""
    open_backend(database).init()


def arrival() -> float:
    """When the request being served arrived, or now outside a request: a write's wait for
    the database lock counts from there (its wait for a handler thread included), so that
    requests queued behind writes that wait for the lock do not wait in turns."""
    current = exchange.current.get()
    return time.monotonic() if current is None else min(current.arrived, time.monotonic())


# Errors that escaped a connection ---------------------------------------------------------


def _from_postgres(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("psycopg", "psycopg_pool"))


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` came from a backend (counted in the database errors metric)."""
    return isinstance(exc, sqlite3.Error) or _from_postgres(exc)


def reported_fault(exc: BaseException) -> StorageUnavailable | None:
    """The storage fault an error that escaped a connection's translation stands for (one
    raised while fetching rows), logged once; None when it is not one. The error names its
    backend by its type (the renderer that asks knows no backend: the proxy shares it)."""
    if _from_postgres(exc):
        from clientkeys.store.postgres import PostgresBackend

        return PostgresBackend.reported_fault(exc)
    from clientkeys.store.sqlite import SqliteBackend

    return SqliteBackend.reported_fault(exc)
