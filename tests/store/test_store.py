"""The two stores behind one repository: the same schema from the same migrations, applied once
even when several nodes start at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

import pg
from clientkeys.core import domain
from clientkeys.store import backend as store
from clientkeys.store import repository, schema
from live import Database

MIGRATIONS = [
    "m001_initial",
    "m002_dsn_endpoint_and_audit_log",
    "m003_request_journal",
    "m004_health_and_start_state",
]
NODES = 3


def columns(database: Database) -> dict[str, list[str]]:
    """Each table's columns, in order (the migrations' own bookkeeping left out)."""
    with store.connect(database) as conn:
        if isinstance(database, Path):
            tables = [t for t in conn.table_names() if not t.startswith("_sqlite_migr")]
            return {t: [c.name for c in conn[t].columns] for t in tables}
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name <> '_migrations' "
            "ORDER BY table_name, ordinal_position",
            [],
        ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


def test_both_backends_get_the_same_tables_and_columns_from_the_same_migrations(
    tmp_path: Path, postgres_server: pg.PostgresServer
) -> None:
    sqlite, url = tmp_path / "x.db", postgres_server.new_database()
    for database in (sqlite, url):
        store.init_db(database)
    on_sqlite = columns(sqlite)
    del on_sqlite["sqlite_sequence"]  # SQLite's own AUTOINCREMENT bookkeeping
    assert columns(url) == on_sqlite
    assert [migration.name for migration in schema.MIGRATIONS] == MIGRATIONS
    for database in (sqlite, url):
        with store.connect(database) as conn:
            assert conn.backend.applied_migrations(conn) == MIGRATIONS


def test_nodes_starting_at_once_apply_each_migration_once(database: Database) -> None:
    """`init-db`, as each node runs it at start (`serve` does the same before its workers), from
    three processes at once on a database with no tables yet."""
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "clientkeys", "init-db", "--database", str(database)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        for _ in range(NODES)
    ]
    outputs = [node.communicate(timeout=60)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0] * NODES, outputs
    assert outputs == [f"Database ready ({len(MIGRATIONS)} migrations applied).\n"] * NODES
    with store.connect(database) as conn:
        assert conn.backend.applied_migrations(conn) == MIGRATIONS
        recorded = "_migrations" if not isinstance(database, Path) else "_sqlite_migrations"
        assert conn.execute(f"SELECT count(*) FROM {recorded}", []).fetchone()[0] == 4


def test_migrations_started_in_the_same_instant_are_applied_once(database: Database) -> None:
    """The same at a finer grain: eight connections migrate a new database at one barrier."""
    barrier, failures = threading.Barrier(8), []

    def node() -> None:
        barrier.wait()
        try:
            store.init_db(database)
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            failures.append(exc)

    threads = [threading.Thread(target=node) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    with store.connect(database) as conn:
        assert conn.backend.applied_migrations(conn) == MIGRATIONS


# Databases made before the schema was declared once ----------------------------------------

LEGACY = Path(__file__).parent / "data"
"""Databases made by clientkeys before this schema module (commit f057c2e), dumped as SQL: one
with every migration applied and rows in each table, one with only m001 and m002 applied."""


def legacy_database(backend: str, migrated: str, folder: Path, server: pg.PostgresServer) -> str:
    """A database made of a legacy dump: a SQLite file, or a new PostgreSQL database."""
    script = (LEGACY / f"legacy-{backend}-{migrated}.sql").read_text()
    if backend == "sqlite":
        path = folder / f"{migrated}.db"
        conn = sqlite3.connect(path)
        conn.executescript(script)
        conn.close()
        return str(path)
    url = server.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(script.encode())
    return url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_database_made_by_the_previous_runners_opens_and_migrates_on(
    backend: str, tmp_path: Path, postgres_server: pg.PostgresServer
) -> None:
    full = legacy_database(backend, "m004", tmp_path, postgres_server)
    store.init_db(full)  # nothing pending: nothing written, the rows kept
    with store.connect(full) as conn:
        assert conn.backend.applied_migrations(conn) == MIGRATIONS
        assert repository.find_token(conn, "legacy-token") is not None
        project = repository.get_project(conn, "acme", "web")
        keys = repository.list_keys(conn, project["id"], bound=None, ascending=True, offset=0,
                                    limit=10)  # fmt: skip
        assert [key["label"] for key in keys] == ["Default", "CI"]
        created = repository.insert_key(conn, project["id"], domain.new_key(name="new"))
        assert created["id"] == 3  # the key id sequence carried over
        assert repository.reset_store(conn)["state"]["keys"] == 2  # the saved start state

    partial = legacy_database(backend, "m002", tmp_path, postgres_server)
    store.init_db(partial)
    with store.connect(partial) as conn:
        assert conn.backend.applied_migrations(conn) == MIGRATIONS
        recorded = "_migrations" if backend == "postgres" else "_sqlite_migrations"
        assert conn.execute(f"SELECT count(*) FROM {recorded}", []).fetchone()[0] == 4
        organization = repository.get_organization(conn, "acme")
        assert organization["dsn_endpoint"] == "https://relay.example.com"
        repository.log_request(conn, {"method": "GET", "path": "/", "query": "", "status": 200,
                                      "validated": True}, keep=10)  # fmt: skip
        assert len(repository.list_requests(conn, 10)) == 1
    assert columns(Path(partial) if backend == "sqlite" else partial) == columns(
        Path(full) if backend == "sqlite" else full
    )


# The backend belongs to the app: made with it, closed with its lifespan ----------------------


def open_handles(database: Database) -> int:
    """What this process holds open on `database`: file descriptors of a SQLite file (its WAL
    and shared memory too), or sessions on a PostgreSQL database (besides the one asking)."""
    if isinstance(database, Path):
        names = {str(database), f"{database}-wal", f"{database}-shm"}
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if _target(fd) in names)
    with store.connect(database) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            [],
        ).fetchone()
    return int(row[0])


def _target(link: Path) -> str:
    try:
        return os.readlink(link)
    except OSError:
        return ""


def test_the_app_closes_its_backend_when_its_lifespan_ends(database: Database) -> None:
    import time

    from clientkeys.config import Settings
    from clientkeys.server.app import create_app
    from live import KEYS, seed

    token = seed(database)
    app = create_app(Settings(database=database, threads=4))
    with app.test_client() as client:
        for _ in range(8):  # several handler threads, each with its connection on SQLite
            response = client.post(KEYS, json={"name": "k"},
                                   headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert response.status_code == 201
        assert open_handles(database) > 0
    deadline = time.monotonic() + 10
    while open_handles(database) and time.monotonic() < deadline:
        time.sleep(0.01)  # the server ends a closed session just after the client's goodbye
    assert open_handles(database) == 0
