"""The store: migrations, WAL, and a page query that does not scan the project's keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import g
from sqlite_utils import Database

from clientkeys import db, domain, repository
from clientkeys.config import Settings


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db.init_db(path)
    db.init_db(path)
    with db.connect(path) as conn:
        applied = [m.name for m in db.migrations.applied(conn)]
        assert applied[0] == "m001_initial" and applied == sorted(set(applied))
        assert db.migrations.pending(conn) == []
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


def test_a_write_waits_for_another_writer_and_then_succeeds(tmp_path: Path) -> None:
    import threading
    import time

    db.init_db(tmp_path / "x.db")
    holder, waiter = db.connect(tmp_path / "x.db"), db.connect(tmp_path / "x.db")
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    done: list[float] = []

    def create() -> None:
        started = time.monotonic()
        repository.insert_organization(waiter, "later")
        done.append(time.monotonic() - started)

    thread = threading.Thread(target=create)
    thread.start()
    time.sleep(0.2)
    assert not done  # still waiting
    holder.execute("COMMIT")
    thread.join(timeout=10)
    assert done and done[0] >= 0.2
    assert [o["slug"] for o in repository.list_organizations(holder)] == ["later"]
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS


def test_many_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    db.init_db(tmp_path / "x.db")
    with db.connect(tmp_path / "x.db") as conn:
        project = repository.insert_project(
            conn, repository.insert_organization(conn, "o")["slug"], "p"
        )

    def create(_: int) -> None:
        with db.using(tmp_path / "x.db") as conn:
            repository.insert_key(conn, project["id"], domain.new_key())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(200)))
    with db.connect(tmp_path / "x.db") as conn:
        assert conn.execute("SELECT count(*) FROM keys").fetchone()[0] == 201


def test_a_transaction_a_request_left_open_is_rolled_back_at_teardown(
    app: Any, settings: Settings, store: Database
) -> None:
    with app.app.app_context():  # what a handler's `get_db()` holds during a request
        g.db = db.connection(settings.database)
        g.db.execute("BEGIN IMMEDIATE")
        g.db.execute("INSERT INTO organizations (slug, name, date_created) VALUES ('x', 'x', 'x')")
        left_open = g.db
    assert not left_open.conn.in_transaction
    assert repository.list_organizations(store) == []
