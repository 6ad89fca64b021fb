"""Faults injected into real servers (`clientkeys serve`, 2 workers): concurrent writes to one
key and kill -9 under write load (on SQLite and on PostgreSQL), a read-only database, its file
deleted, a full disk (SQLite's files; PostgreSQL's own faults are in test_postgres.py).

What each test holds the server to: no acknowledged write is lost, no fault is answered with a
500 (each is a JSON 503 or 507 that says why), and once the fault clears the server recovers
without a restart.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clientkeys.core import domain
from clientkeys.core.errors import StorageFull
from clientkeys.store import backend as store
from clientkeys.store import sqlite as db
from conftest import BACKENDS, new_database
from live import (
    KEYS,
    Database,
    Server,
    Writers,
    chattr,
    integrity,
    run_serve,
    seed,
    serving,
    small_filesystem,
    stored_public_keys,
)

TRIALS = 200
"""Trials of each race. Before the fix (2 workers, two racing pairs of clients at a time, this
machine), 1,000 trials of each showed: PUT/PUT lost one of the two updates in 12.4 %,
PUT/DELETE answered 200 for a key already deleted in 5.5 % (2.5 % in a run of 200),
DELETE/DELETE answered 204 twice in 19.7 %. At the lowest rate seen, 2.5 %, 200 trials miss
the bug with probability 0.975**200 = 0.6 %; PUT/PUT with 0.876**200 < 1e-11."""
PAIRS = 2
"""Racing pairs of clients at a time: two pairs keep all four handler threads busy."""


@pytest.fixture(scope="module", params=BACKENDS)
def race_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("races")
    database = new_database(request, request.param, folder)
    with serving(database, seed(database), logs=folder) as server:
        yield server


def audit_events(database: Database, public_key: str) -> list[str]:
    with store.connect(database) as conn:
        rows = conn.execute(
            "SELECT event FROM audit_log WHERE target = ? ORDER BY id", [public_key]
        ).fetchall()
    return [event for (event,) in rows]


Request = tuple[str, Any]
Check = Callable[[Server, dict[str, Any], list[tuple[int, Any]]], str | None]
"""Given the key and both answers: None, or what went wrong."""


def race(server: Server, first: Request, second: Request, check: Check) -> list[str]:
    """TRIALS times: create a key, send `first` and `second` to it at the same moment (one
    connection each), `check` the outcome. Returns the anomalies."""
    anomalies: list[str] = []

    def pair(trials: int) -> None:
        conns = [server.connection(), server.connection()]
        barrier = threading.Barrier(2)
        try:
            for _ in range(trials):
                status, key, _ = server.call("POST", KEYS, {"name": "start"}, conns[0])
                assert status == 201, key
                answers: list[tuple[int, Any]] = [(0, None), (0, None)]

                def send(i: int, request: Request, key_id: str = key["id"],
                         answers: list[tuple[int, Any]] = answers) -> None:  # fmt: skip
                    barrier.wait()
                    status, body, _ = server.call(request[0], f"{KEYS}{key_id}/", request[1],
                                                  conns[i])  # fmt: skip
                    answers[i] = status, body

                racers = [threading.Thread(target=send, args=(0, first)),
                          threading.Thread(target=send, args=(1, second))]  # fmt: skip
                for racer in racers:
                    racer.start()
                for racer in racers:
                    racer.join()
                problem = check(server, key, answers)
                if problem:
                    anomalies.append(problem)
        except Exception as exc:  # noqa: BLE001 (reported by the test, not lost in a thread)
            anomalies.append(f"the harness failed: {exc!r}")
        finally:
            for conn in conns:
                conn.close()

    pairs = [threading.Thread(target=pair, args=(TRIALS // PAIRS,)) for _ in range(PAIRS)]
    for thread in pairs:
        thread.start()
    for thread in pairs:
        thread.join()
    return anomalies


def test_two_updates_of_one_key_both_take_effect(race_server: Server) -> None:
    limit = {"count": 5, "window": 60}

    def check(server: Server, key: dict[str, Any], answers: list[tuple[int, Any]]) -> str | None:
        status, final, _ = server.call("GET", f"{KEYS}{key['id']}/")
        both = final["name"] == "renamed" and not final["isActive"] and final["rateLimit"] == limit
        if [a[0] for a in answers] != [200, 200] or not both:
            return f"answers {[a[0] for a in answers]}, stored {final}"
        return None

    anomalies = race(race_server, ("PUT", {"name": "renamed"}),
                     ("PUT", {"isActive": False, "rateLimit": limit}), check)  # fmt: skip
    assert anomalies == [], f"{len(anomalies)} of {TRIALS}: {anomalies[:3]}"


def test_an_update_racing_a_delete_is_404_once_the_key_is_gone(
    race_server: Server,
) -> None:
    database = race_server.database

    def check(server: Server, key: dict[str, Any], answers: list[tuple[int, Any]]) -> str | None:
        (put, _), (delete, _) = answers
        events = audit_events(database, key["id"])
        # The update wins (200, audited before the removal) or finds the key gone (404).
        if delete != 204 or put not in (200, 404) or events[-1] != domain.KEY_REMOVED:
            return f"PUT {put}, DELETE {delete}, audit {events}"
        if (put == 200) != (domain.KEY_EDITED in events):
            return f"PUT {put}, audit {events}"
        return None

    anomalies = race(race_server, ("PUT", {"name": "renamed"}), ("DELETE", None), check)
    assert anomalies == [], f"{len(anomalies)} of {TRIALS}: {anomalies[:3]}"


def test_of_two_deletes_of_one_key_exactly_one_wins(race_server: Server) -> None:
    database = race_server.database

    def check(server: Server, key: dict[str, Any], answers: list[tuple[int, Any]]) -> str | None:
        events = audit_events(database, key["id"])
        if sorted(a[0] for a in answers) != [204, 404] or events.count(domain.KEY_REMOVED) != 1:
            return f"answers {[a[0] for a in answers]}, audit {events}"
        return None

    anomalies = race(race_server, ("DELETE", None), ("DELETE", None), check)
    assert anomalies == [], f"{len(anomalies)} of {TRIALS}: {anomalies[:3]}"


# kill -9 ------------------------------------------------------------------------------------


def test_every_write_acknowledged_before_kill_9_is_stored_after_a_restart(
    tmp_path: Path, database: Database
) -> None:
    token = seed(database)
    with serving(database, token, logs=tmp_path) as server, Writers(server) as writers:
        writers.wait_for(200)
        server.kill()  # the server and its workers at once, mid-load
    assert {status for status, _ in writers.answers} == {201}
    with serving(database, token, logs=tmp_path) as server:
        status, listed, _ = server.call("GET", f"{KEYS}?per_page=1")
        assert status == 200 and len(listed) == 1  # it serves again
    assert len(writers.acknowledged) >= 200
    assert writers.acknowledged <= stored_public_keys(database)
    if isinstance(database, Path):
        assert integrity(database) == "ok"


# Read-only ---------------------------------------------------------------------------------


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A folder and a read-only bind mount of it (a read-only file system)."""
    source, view = tmp_path / "rw", tmp_path / "ro"
    source.mkdir()
    view.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        yield source, view
    finally:
        subprocess.run(["umount", str(view)], check=True)


def test_the_server_refuses_to_start_on_an_unwritable_database_file(tmp_path: Path) -> None:
    database = tmp_path / "locked.db"
    seed(database)
    chattr("+i", database)  # unwritable even for root
    try:
        result = run_serve(database)
    finally:
        chattr("-i", database)
    assert result.returncode == 1
    assert (result.stdout + result.stderr).splitlines() == [
        f"Error: Cannot use the database {database}: {db.READ_ONLY}"
    ]


def test_the_server_refuses_to_start_on_a_read_only_file_system(
    read_only_folder: tuple[Path, Path],
) -> None:
    source, view = read_only_folder
    seed(source / "ro.db")
    result = run_serve(view / "ro.db")
    assert result.returncode == 1
    assert (result.stdout + result.stderr).splitlines() == [
        f"Error: Cannot use the database {view / 'ro.db'}: {db.READ_ONLY}"
    ]


def assert_logged_once_per_worker(server: Server, detail: str) -> None:
    """One log line per fault and worker (not a traceback per request), and one when it
    cleared."""
    lines = server.log.read_text().splitlines()
    faults = [line for line in lines if "Storage fault: " in line]
    assert faults and all(detail in line for line in faults) and len(faults) <= 2, lines
    assert any(line.endswith("Storage recovered: writes are stored again.") for line in lines)
    assert not any("Traceback" in line for line in lines), lines


def assert_storage_fault(status: int, body: Any, response: Any, expected: int, detail: str) -> None:
    assert (status, body) == (expected, {"detail": detail})
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("Retry-After").isdigit()


def test_a_database_made_read_only_is_503_for_writes_and_recovers_without_a_restart(
    tmp_path: Path,
) -> None:
    database = tmp_path / "ro.db"
    with serving(database, seed(database)) as server:
        chattr("+i", database)  # before any handler thread opens its connection
        try:
            for i in range(8):  # every handler thread of both workers
                assert_storage_fault(*server.call("POST", KEYS, {"name": f"ro{i}"}), 503,
                                     db.READ_ONLY)  # fmt: skip
            status, listed, _ = server.call("GET", KEYS)
            assert status == 200 and len(listed) == 1  # reads go on: the "Default" key
        finally:
            chattr("-i", database)
        created = [server.call("POST", KEYS, {"name": f"rw{i}"}) for i in range(8)]
        assert [status for status, _, _ in created] == [201] * 8
    assert stored_public_keys(database) >= {body["id"] for _, body, _ in created}
    assert len(stored_public_keys(database)) == 1 + 8  # nothing of the refused writes
    assert_logged_once_per_worker(server, db.READ_ONLY)


# The file deleted ------------------------------------------------------------------------


def test_writes_after_the_database_file_is_deleted_are_503_and_none_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    database, kept = tmp_path / "gone.db", tmp_path / "kept.db"
    with serving(database, seed(database)) as server:
        with Writers(server) as writers:
            writers.wait_for(100)
            os.link(database, kept)  # keeps the file itself, to count what it holds
            os.unlink(database)
            unlinked = time.monotonic()
            writers.wait_for(10**6, seconds=1.5)
        # Sent after the unlink: refused. (One sent before may be answered 201 later, its write
        # stored in the file the unlink kept: group commit answers it after its batch commits.)
        after = [status for sent, status in writers.sent if sent > unlinked]
        assert after and set(after) == {503}, after
        assert {body["detail"] for status, body in writers.answers if status == 503} <= {
            db.MOVED,
            CANNOT_OPEN,
        }
        assert {status for status, _ in writers.answers} <= {201, 503}
        os.rename(kept, database)  # the file is back
        status, created, _ = server.call("POST", KEYS, {"name": "back"})
        assert status == 201
    assert writers.acknowledged | {created["id"]} <= stored_public_keys(database)
    assert integrity(database) == "ok"


CANNOT_OPEN = "The database file cannot be opened: it is missing or not accessible."


# A full disk -------------------------------------------------------------------------------


def fill(folder: Path) -> Path:
    """Write a file until the file system is full; returns it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(65536)):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_507_logged_once_and_clears_when_space_returns(tmp_path: Path) -> None:
    with small_filesystem("4m") as folder:
        database = folder / "full.db"
        with serving(database, seed(database), logs=tmp_path) as server:
            warm = [server.call("POST", KEYS, {"name": f"w{i}"}) for i in range(8)]
            acknowledged = {body["id"] for _, body, _ in warm}
            filler = fill(folder)
            answers = [server.call("POST", KEYS, {"name": f"k{i}"}) for i in range(100)]
            for status, body, response in answers:
                if status == 201:
                    acknowledged.add(body["id"])
                else:
                    assert_storage_fault(status, body, response, 507, StorageFull.detail)
            assert len(acknowledged) < len(answers)
            status, _, _ = server.call("GET", KEYS)
            assert status == 200  # reads go on
            filler.unlink()
            created = [server.call("POST", KEYS, {"name": f"n{i}"}) for i in range(8)]
            assert [status for status, _, _ in created] == [201] * 8
            acknowledged |= {body["id"] for _, body, _ in created}
        assert_logged_once_per_worker(server, StorageFull.detail)
        assert acknowledged <= stored_public_keys(database)
        assert integrity(database) == "ok"


SECRET_TRIALS = 150
"""Before the fix, this race named `public` instead of `secret` in 39 and 28 of 600 trials
(4.7 % at the lowest): 150 trials miss that with probability 0.953**150 < 0.1 %."""


def test_of_two_creates_with_one_secret_the_loser_is_told_about_the_secret(
    race_server: Server,
) -> None:
    conns, barrier = [race_server.connection(), race_server.connection()], threading.Barrier(2)
    outcomes: list[list[tuple[int, Any]]] = []
    try:
        for _ in range(SECRET_TRIALS):
            secret, answers = secrets.token_hex(16), [(0, None), (0, None)]

            def create(i: int, secret: str = secret, answers: list[Any] = answers) -> None:
                barrier.wait()
                status, body, _ = race_server.call("POST", KEYS, {"secret": secret}, conns[i])
                answers[i] = status, body

            racers = [threading.Thread(target=create, args=(i,)) for i in (0, 1)]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join()
            outcomes.append(sorted(answers, key=lambda answer: answer[0]))
    finally:
        for conn in conns:
            conn.close()
    taken = {"secret": ["A client key with this secret key already exists."]}
    wrong = [o for o in outcomes if o[0][0] != 201 or o[1] != (400, taken)]
    assert wrong == [], f"{len(wrong)} of {SECRET_TRIALS}: {wrong[:2]}"
