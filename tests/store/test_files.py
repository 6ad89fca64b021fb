"""SQLite's files changed under a real server (`clientkeys serve`, 2 workers) and the write
lock held by another process: the database file replaced, its -wal deleted, a -wal without its
database at start, and writes waiting for the lock.

What each test holds the server to: nothing acknowledged is lost (it is all in the original
database, kept by a hard link), a replaced or deleted file is never adopted nor written into
(answers are JSON 503s naming the cause), and no write waits longer than `--db-timeout`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from clientkeys.store import backend as store
from clientkeys.store import postgres
from clientkeys.store import sqlite as db
from clientkeys.testing import runner
from conftest import BACKENDS, new_database
from live import (
    KEYS,
    Database,
    Server,
    Writers,
    integrity,
    run_serve,
    seed,
    serving,
    stored_public_keys,
)


def sent_after(writers: Writers, moment: float) -> list[int]:
    return [status for sent, status in writers.sent if sent > moment]


def assert_fault_answers(writers: Writers, moment: float, detail: str) -> None:
    """Every write sent after `moment` was refused, each answer a 503 naming `detail`."""
    after = sent_after(writers, moment)
    assert after and set(after) == {503}, after
    assert {status for status, _ in writers.answers} <= {201, 503}
    assert {body["detail"] for status, body in writers.answers if status == 503} == {detail}


def stop_whole(server: Server) -> None:
    """Stop the server and wait until its workers are gone too: until then they hold the files
    open, and what they checkpoint on closing is not in them yet."""
    workers = server.workers()
    server.stop()

    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
        except (OSError, IndexError):
            return True

    runner.until(lambda: all(gone(pid) for pid in workers), 30, "the workers to end")


def assert_not_ready(server: Server) -> None:
    status, body, _ = server.call("GET", "/_health/?full")
    assert status == 503, body


def test_a_database_file_replaced_under_load_is_never_adopted_and_loses_nothing(
    tmp_path: Path,
) -> None:
    database, kept, other = tmp_path / "ck.db", tmp_path / "kept.db", tmp_path / "other.db"
    seed(other)
    with serving(database, seed(database)) as server:
        with Writers(server) as writers:
            writers.wait_for(150)
            os.link(database, kept)  # the original file itself, to count what it holds
            os.replace(other, database)
            replaced = time.monotonic()
            writers.wait_for(10**6, seconds=1.5)
        assert_fault_answers(writers, replaced, db.MOVED)
        assert_not_ready(server)
        stop_whole(server)
    # Everything acknowledged is in the original file; the replacement got none of it.
    assert len(writers.acknowledged) >= 150
    assert writers.acknowledged <= stored_public_keys(kept)
    assert not writers.acknowledged & stored_public_keys(database)
    assert integrity(kept) == "ok"
    assert integrity(database) == "ok"


def test_a_wal_deleted_under_load_is_503_and_loses_nothing(tmp_path: Path) -> None:
    database, kept = tmp_path / "ck.db", tmp_path / "kept.db"
    with serving(database, seed(database)) as server:
        with Writers(server) as writers:
            writers.wait_for(150)
            os.link(database, kept)
            os.unlink(f"{database}-wal")
            deleted = time.monotonic()
            writers.wait_for(10**6, seconds=1.5)
        assert_fault_answers(writers, deleted, db.WAL_GONE)
        assert_not_ready(server)
        stop_whole(server)
    # Stopped, the server's connections checkpointed the deleted -wal into the database file.
    assert len(writers.acknowledged) >= 150
    assert writers.acknowledged <= stored_public_keys(kept)
    assert integrity(kept) == "ok"


def test_a_wal_without_its_database_is_a_refusal_to_start_in_one_line(tmp_path: Path) -> None:
    source, database = tmp_path / "source.db", tmp_path / "ck.db"
    seed(source)
    holder = sqlite3.connect(source, isolation_level=None)
    try:  # a -wal holding a committed write no checkpoint has copied yet
        holder.execute("PRAGMA wal_autocheckpoint = 0")
        holder.execute("INSERT INTO health (id, checked) VALUES (1, 0)")
        Path(f"{database}-wal").write_bytes(Path(f"{source}-wal").read_bytes())
    finally:
        holder.close()
    result = run_serve(database)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: Cannot use the database {database}:")
    assert "-wal" in lines[0] and "without the database file" in lines[0]
    assert not database.exists()  # no new empty database beside it


def test_a_restart_after_the_database_was_deleted_refuses_and_the_file_put_back_has_all(
    tmp_path: Path,
) -> None:
    database, kept = tmp_path / "ck.db", tmp_path / "kept.db"
    with serving(database, seed(database)) as server:
        with Writers(server) as writers:
            writers.wait_for(150)
            os.link(database, kept)
            os.unlink(database)
            deleted = time.monotonic()
            writers.wait_for(10**6, seconds=1.5)
            server.kill()  # the server and its workers at once: its -wal stays behind
        assert sent_after(writers, deleted) and set(sent_after(writers, deleted)) == {503}
    result = run_serve(database)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1 and "without the database file" in lines[0], lines
    assert not database.exists()  # no new empty database beside the -wal
    os.rename(kept, database)  # the operator puts it back: it and its -wal hold every write
    assert len(writers.acknowledged) >= 150
    assert writers.acknowledged <= stored_public_keys(database)
    assert integrity(database) == "ok"


TIMEOUT = 1.0
WAITING = 20
MARGIN = 0.75
"""Seconds past `--db-timeout` a refused write may take to be answered (a loaded 2-core
machine schedules the answer late, not the wait long)."""


@contextmanager
def lock_held(database: Database, public_key: str) -> Iterator[set[str]]:
    """Another process's transaction holding what a write of the key needs (SQLite's write
    lock, PostgreSQL's row lock) until the block ends; yields the faults the server may name
    (PostgreSQL tells a lock wait cut by the statement timeout as that timeout)."""
    if isinstance(database, Path):
        holder = sqlite3.connect(database, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield {db.BUSY}
        finally:
            holder.close()
        return
    with store.connect(database) as other:
        other.execute("BEGIN", [])
        other.execute("SELECT * FROM keys WHERE public_key = ? FOR UPDATE", [public_key])
        try:
            yield {postgres.LOCKED, postgres.STATEMENT_TIMEOUT}
        finally:
            other.execute("ROLLBACK", [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_write_waits_at_most_the_db_timeout_for_the_lock(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    database = new_database(request, backend, tmp_path)
    with serving(database, seed(database), "--db-timeout", str(TIMEOUT), logs=tmp_path) as server:
        _, [key], _ = server.call("GET", KEYS)
        answers: list[tuple[float, int, Any, Any]] = []
        lock = threading.Lock()

        def rename(i: int) -> None:
            sent = time.monotonic()
            status, body, response = server.call("PUT", f"{KEYS}{key['id']}/", {"name": f"w{i}"})
            with lock:
                answers.append((time.monotonic() - sent, status, body, response))

        with lock_held(database, key["id"]) as details:
            release = time.monotonic() + 3 * TIMEOUT
            threads = [threading.Thread(target=rename, args=(i,)) for i in range(WAITING)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=3 * TIMEOUT + 30)
            assert time.monotonic() < release  # every answer came while the lock was held
            time.sleep(release - time.monotonic())  # the fault lasts 3 timeouts, as specified
        assert len(answers) == WAITING
        took = sorted(round(took, 2) for took, _, _, _ in answers)
        assert took[-1] <= TIMEOUT + MARGIN, took
        for _, status, body, response in answers:
            assert status == 503 and set(body) == {"detail"} and body["detail"] in details, body
            assert response.getheader("Retry-After").isdigit()
        status, _, _ = server.call("PUT", f"{KEYS}{key['id']}/", {"name": "after"})
        assert status == 200  # the lock released, writes go on
