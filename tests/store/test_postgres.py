"""PostgreSQL's own faults and scale-out, against real servers: a database that stops or is
killed under write load (a JSON 503, nothing acknowledged lost, recovery without a restart), and
three `clientkeys serve` nodes on one database (nothing lost or duplicated, every page
consistent)."""

from __future__ import annotations

import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import pg
from clientkeys.config import Settings
from clientkeys.server.app import create_app
from clientkeys.store import backend as store
from clientkeys.store import fixtures, postgres
from live import (
    KEYS,
    Server,
    Writers,
    seed,
    serving,
    start,
    stop,
    stored_public_keys,
    wait_until_up,
)

TIMEOUT = "1"
"""--db-timeout for these servers: a request waits at most this long for the database."""
UNREACHABLE = {
    postgres.UNREACHABLE,
    "No database connection within the timeout: the database is unreachable, "
    "or every pooled connection stayed busy.",
}


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[pg.PostgresServer]:
    """A PostgreSQL server of this module's own, which its tests stop and kill."""
    with pg.running() as server:
        yield server


def assert_unreachable(status: int, body: Any, response: Any) -> None:
    assert status == 503 and set(body) == {"detail"} and body["detail"] in UNREACHABLE, body
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("Retry-After").isdigit()


def health(server: Server, query: str = "?full") -> int:
    """Readiness (`?full`) or liveness (""): the status."""
    try:
        with urllib.request.urlopen(f"{server.url}/_health/{query}", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def until_created(server: Server, name: str, seconds: float = 30) -> dict[str, Any]:
    """Create a key, again and again until the server answers 201; the key."""
    deadline = time.monotonic() + seconds
    while True:
        status, body, response = server.call("POST", KEYS, {"name": name})
        if status == 201:
            return dict(body)
        assert_unreachable(status, body, response)
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.2)


def assert_told_once(server: Server) -> None:
    """Each worker logged the fault once and its recovery, no traceback."""
    lines = server.log.read_text().splitlines()
    faults = [line for line in lines if "Storage fault: " in line]
    assert 1 <= len(faults) <= 4, lines  # per worker: at most the two details above
    assert any(line.endswith("Storage recovered: writes are stored again.") for line in lines)
    assert not any("Traceback" in line for line in lines), lines


def test_a_stopped_database_is_a_json_503_and_the_server_recovers_when_it_returns(
    own_postgres: pg.PostgresServer, tmp_path: Path
) -> None:
    database = own_postgres.new_database()
    with serving(database, seed(database), "--db-timeout", TIMEOUT, logs=tmp_path) as server:
        before = until_created(server, "before")
        own_postgres.stop()
        try:
            for method, body in [("GET", None), ("POST", {"name": "during"})] * 2:
                assert_unreachable(*server.call(method, KEYS, body))
            assert health(server) == 503
            assert health(server, "") == 200  # alive: no restart wanted
        finally:
            own_postgres.start()
        after = until_created(server, "after")
        status, listed, _ = server.call("GET", KEYS)
        assert status == 200 and health(server) == 200
    assert [key["name"] for key in listed][:2] == ["after", "before"]
    assert {key["name"] for key in listed} == {"Default", "before", "after"}
    assert {before["id"], after["id"]} <= stored_public_keys(database)
    assert_told_once(server)


def test_every_write_acknowledged_before_the_database_is_killed_is_stored(
    own_postgres: pg.PostgresServer, tmp_path: Path
) -> None:
    """kill -9 of PostgreSQL (every process at once) under write load; then it restarts."""
    database = own_postgres.new_database()
    with serving(database, seed(database), "--db-timeout", TIMEOUT, logs=tmp_path) as server:
        with Writers(server) as writers:
            writers.wait_for(100)
            own_postgres.kill()
            killed = len(writers.answers)
            time.sleep(3.5)  # each request waits for the database for a while
            during = writers.answers[killed + len(writers.threads) :]
            own_postgres.start()
            acknowledged = len(writers.acknowledged)
            writers.wait_for(acknowledged + 50)  # writes are stored again
        assert len(writers.acknowledged) >= acknowledged + 50
        assert during and {status for status, _ in during} == {503}, during[:3]
        assert {body["detail"] for _, body in during} <= UNREACHABLE
        assert {status for status, _ in writers.answers} == {201, 503}
    assert writers.acknowledged <= stored_public_keys(database)
    assert_told_once(server)


def test_a_key_locked_longer_than_the_timeout_is_a_503_and_the_write_goes_through_after(
    postgres_server: pg.PostgresServer,
) -> None:
    """Another node's transaction holds the key's row past --db-timeout: this write is a 503
    that stores nothing, not a wait without end; once the lock is gone it is stored."""
    database = postgres_server.new_database()
    token = seed(database)
    settings = Settings(database=database, db_timeout=0.5)
    headers = {"Authorization": f"Bearer {token}"}
    with create_app(settings).test_client() as client, store.connect(database) as other:
        [key] = client.get(KEYS, headers=headers).json()
        other.execute("BEGIN", [])
        other.execute("SELECT * FROM keys WHERE public_key = ? FOR UPDATE", [key["id"]])
        try:
            response = client.put(f"{KEYS}{key['id']}/", json={"name": "x"}, headers=headers)
        finally:
            other.execute("ROLLBACK", [])
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert response.json() == {"detail": postgres.LOCKED}
        assert client.get(f"{KEYS}{key['id']}/", headers=headers).json()["name"] == key["name"]
        response = client.put(f"{KEYS}{key['id']}/", json={"name": "x"}, headers=headers)
        assert response.status_code == 200 and response.json()["name"] == "x"


# Three nodes on one database -------------------------------------------------------------------

NODES = 3
FIXTURES = Path(__file__).parents[1] / "data" / "ci.yaml"
FIXTURES_TOKEN = "sntrys_ci_admin_token"  # all scopes on acme, whose project web the load uses
STABLE = 25
"""Keys created before the load and never touched: every walk through the pages lists each."""
WRITERS = 6
ROUNDS = 16
PER_PAGE = 7
NEXT = re.compile(r'<([^>]+)>; rel="next"; results="(true|false)"; cursor="([^"]+)"')


class Cluster:
    """Clients of three nodes: each call goes to the next node in turn; every answer kept."""

    def __init__(self, nodes: list[Server]) -> None:
        self.nodes, self.turn, self.lock = nodes, 0, threading.Lock()
        self.statuses: list[int] = []

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
        with self.lock:
            node = self.nodes[self.turn % len(self.nodes)]
            self.turn += 1
        answer = node.call(method, path, body)
        self.statuses.append(answer[0])
        return answer

    def both(self, *calls: tuple[str, str, Any]) -> list[tuple[int, Any, Any]]:
        """Two calls sent at the same moment (a barrier), each to its node; their answers."""
        barrier = threading.Barrier(len(calls))
        answers: list[Any] = [None] * len(calls)

        def run(i: int) -> None:
            barrier.wait()
            answers[i] = self.call(*calls[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return answers

    def walk(self) -> tuple[list[str], list[int]]:
        """Every page of the list, each from the next node: the keys' ids in order and the
        cursors' row ids."""
        ids: list[str] = []
        cursors: list[int] = []
        path = f"{KEYS}?per_page={PER_PAGE}"
        while True:
            status, page, response = self.call("GET", path)
            assert status == 200, page
            ids += [key["id"] for key in page]
            url, more, cursor = NEXT.search(response.getheader("Link")).groups()  # type: ignore[union-attr]
            if more == "false":
                return ids, cursors
            cursors.append(int(cursor.split(":")[0]))
            path = f"{urlsplit(url).path}?{urlsplit(url).query}"


def test_three_nodes_on_one_database_lose_nothing_duplicate_nothing_and_page_consistently(
    postgres_server: pg.PostgresServer, tmp_path: Path
) -> None:
    """The nodes start at once on a database with no tables: they migrate it, load the same
    fixtures and save the start state in turns; then the load; then one node's reset."""
    database = postgres_server.new_database()
    admin = secrets.token_hex(16)
    nodes = [
        start(
            database,
            FIXTURES_TOKEN,
            "--workers",
            "1",
            "--fixtures",
            str(FIXTURES),
            "--admin-token",
            admin,
            logs=tmp_path,
        )  # fmt: skip
        for _ in range(NODES)
    ]
    try:
        for node in nodes:
            wait_until_up(node)
        loaded = stored_public_keys(database)
        assert len(loaded) == fixture_keys(tmp_path)  # loaded once, not once per node
        run_three_nodes(Cluster(nodes), database)
        request = urllib.request.Request(
            f"{nodes[1].url}/__admin/reset", method="POST",
            headers={"Authorization": f"Bearer {admin}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        assert stored_public_keys(database) == loaded  # what every node started from
    finally:
        for node in nodes:
            stop(node)


def fixture_keys(folder: Path) -> int:
    """How many keys the fixtures make, loaded once into a SQLite file."""
    store.init_db(folder / "once.db")
    with store.connect(folder / "once.db") as conn:
        fixtures.load(conn, FIXTURES)
        return len(repository_keys(conn))


def repository_keys(conn: Any) -> list[str]:
    return [key for (key,) in conn.execute("SELECT public_key FROM keys ORDER BY id DESC", [])]


def run_three_nodes(cluster: Cluster, database: str) -> None:
    before = stored_public_keys(database)
    seeded = set(cluster.walk()[0])  # the fixtures' keys of acme/web, the project under load
    stable = [cluster.call("POST", KEYS, {"name": f"stable{i}"})[1]["id"] for i in range(STABLE)]
    created: set[str] = set(stable)
    deleted: set[str] = set()
    names: dict[str, str] = {}
    problems: list[str] = []
    walks: list[list[str]] = []
    done = threading.Event()

    def writer(w: int) -> None:
        previous = None
        for r in range(ROUNDS):
            status, key, _ = cluster.call("POST", KEYS, {"name": f"w{w}r{r}"})
            if status != 201:
                problems.append(f"create: {status} {key}")
                continue
            created.add(key["id"])
            url = f"{KEYS}{key['id']}/"
            # Two updates of one key from two nodes at once: both take effect.
            answers = cluster.both(("PUT", url, {"name": f"w{w}r{r}!"}),
                                   ("PUT", url, {"isActive": False}))  # fmt: skip
            status, final, _ = cluster.call("GET", url)
            if [a[0] for a in answers] != [200, 200] or (final["name"], final["isActive"]) != (
                f"w{w}r{r}!",
                False,
            ):
                problems.append(f"updates {[a[0] for a in answers]}, stored {final}")
            names[key["id"]] = f"w{w}r{r}!"
            if previous is not None:  # two deletes of one key from two nodes: one wins
                gone = f"{KEYS}{previous}/"
                answers = cluster.both(("DELETE", gone, None), ("DELETE", gone, None))
                if sorted(a[0] for a in answers) != [204, 404]:
                    problems.append(f"deletes {[a[0] for a in answers]}")
                deleted.add(previous)
            previous = key["id"] if r % 2 == 0 else None

    def walker() -> None:
        while not done.is_set():
            ids, cursors = cluster.walk()
            walks.append(ids)
            if len(ids) != len(set(ids)) or cursors != sorted(cursors, reverse=True):
                problems.append(f"a walk repeated a key or went back: {cursors}")
            if [i for i in ids if i in set(stable)] != stable[::-1]:
                problems.append("a walk missed a stable key or listed them out of order")

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    walkers = [threading.Thread(target=walker) for _ in range(2)]
    for thread in writers + walkers:
        thread.start()
    for thread in writers:
        thread.join(timeout=300)
    done.set()
    for thread in walkers:
        thread.join(timeout=60)

    assert problems == []
    assert len(walks) >= 2
    assert {s for s in cluster.statuses if s >= 500} == set()
    expected = seeded | created - deleted
    assert len(created) == STABLE + WRITERS * ROUNDS
    assert stored_public_keys(database) == (before - seeded) | expected  # nothing lost or doubled
    listed, _ = cluster.walk()
    assert len(listed) == len(set(listed)) and set(listed) == expected
    with store.connect(database) as conn:  # newest first by the database's own row ids
        assert listed == [key for key in repository_keys(conn) if key in expected]
    for key_id, name in names.items():
        if key_id in expected:
            assert cluster.call("GET", f"{KEYS}{key_id}/")[1]["name"] == name
