"""The store: migrations, WAL, and a page query that does not scan the project's keys."""

from __future__ import annotations

from pathlib import Path

from clientkeys import db, repository


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
