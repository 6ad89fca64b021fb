"""`make bench`, PostgreSQL part: SQLite against PostgreSQL, one node and three.

Measured side by side and interleaved in one run with wrk: `clientkeys serve --workers 2` on a
SQLite file, the same on a PostgreSQL database, and three such nodes sharing one PostgreSQL
database, wrk driving all three at once (the connections split between them, as a load balancer
would; req/s summed, the worst node's p99). PostgreSQL is a server this script starts from
Debian's binaries (`tests/pg.py`, the test suite's), with its durable defaults (fsync and
synchronous commit on), as SQLite runs with `durability=full`.

Prints one table and writes it to bench/postgres-results.md with the machine and versions.
BENCH_SECONDS and BENCH_ROUNDS as in run.py.
"""

from __future__ import annotations

import io
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from run import Result, median, script, wrk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's PostgreSQL starter

import pg  # noqa: E402
from clientkeys.core import domain  # noqa: E402
from clientkeys.store import backend as store  # noqa: E402
from clientkeys.store import repository  # noqa: E402
from clientkeys.testing import runner  # noqa: E402
from clientkeys.testing.runner import free_port  # noqa: E402

BIN = Path(sys.executable).parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = (16, 64)
NODES = 3
TOKEN = "sntrys_bench_pg_" + secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORG = "bench"
SCENARIOS = [
    ("list, 10 keys", f"/api/0/projects/{ORG}/ten/keys/", "GET", None),
    ("create", f"/api/0/projects/{ORG}/create/keys/", "POST", '{"name": "bench"}'),
]
DURABLE = {"fsync": "on", "full_page_writes": "on", "shared_buffers": "128MB"}
"""The test server's throwaway settings, made durable for a fair comparison."""


def seed(database: Path | str) -> None:
    """The bench organization and token, a project of 10 keys, an empty one for creates."""
    store.init_db(database)
    with store.connect(database) as conn:
        repository.insert_organization(conn, ORG)
        repository.insert_token(conn, ORG, domain.SCOPES, token=TOKEN)
        repository.insert_project(conn, ORG, "create", default_key=False)
        project = repository.insert_project(conn, ORG, "ten", default_key=False)
        for i in range(10):
            repository.insert_key(conn, project["id"], domain.new_key(name=f"Key {i}"))


Node = runner.Server
"""A `clientkeys serve --workers 2`, started by clientkeys' server runner."""


@contextmanager
def nodes(database: Path | str, count: int, folder: Path) -> Iterator[list[Node]]:
    """`count` nodes of `clientkeys serve --workers 2` on `database`, up and answering: all
    started at once, then each awaited until it answers a list of keys."""
    started: list[Node] = []
    try:
        for _ in range(count):
            port = free_port()
            command = [str(BIN / "clientkeys"), "serve", "--workers", "2", "--log-level",
                       "warning", "--port", str(port)]  # fmt: skip
            env = {"CLIENTKEYS_DATABASE": str(database)}
            started.append(runner.start(command, port, folder / f"{port}.log", env))
        for node in started:
            runner.wait_until_answers(node, SCENARIOS[0][1], AUTH, ok_only=True)
        yield started
    finally:
        for node in started:
            node.stop()


def logged_errors(folder: Path) -> int:
    """Error lines in the nodes' logs (they log at warning: faults and 500s only)."""
    return sum(
        line.startswith("ERROR") or "Traceback" in line
        for log in folder.glob("*.log")
        for line in log.read_text(errors="replace").splitlines()
    )


def measure(group: list[Node], path: str, connections: int, script: Path) -> Result:
    """wrk against every node of `group` at once, the connections split between them: req/s
    and requests summed, the worst p50 and p99."""
    shares = [connections // len(group) + (i < connections % len(group)) for i in range(len(group))]
    with ThreadPoolExecutor(len(group)) as pool:
        results = list(pool.map(lambda n, c: wrk(n.url + path, c, SECONDS, script), group, shares))
    return Result(
        rps=sum(r.rps for r in results),
        p50=max(r.p50 for r in results),
        p99=max(r.p99 for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )


def machine(postgres_version: str) -> list[str]:
    packages = ", ".join(
        f"{p} {version(p)}" for p in ("clientkeys", "psycopg", "psycopg-pool", "uvicorn")
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; each cell is the median of {ROUNDS} "
        f"interleaved {SECONDS}-second wrk runs (1 thread per node, loopback); errors are summed",
        f"- Machine: {os.cpu_count()} cores, {platform.platform()}: every node, PostgreSQL and "
        f"wrk share these cores, so three nodes here measure the cost of spreading the load, "
        f"not the gain of more machines",
        f"- Python {platform.python_version()}; {packages}; {postgres_version}; "
        f"{wrk_version.splitlines()[0].split(' Copyright')[0] if wrk_version else 'wrk'}",
        "- PostgreSQL: one local server, fsync and synchronous_commit on (durable, as SQLite's "
        "`durability=full`), the pool at its default (4 connections per worker)",
    ]


def main() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    folder = Path(tempfile.mkdtemp(prefix="clientkeys-bench-pg-"))
    with pg.running(**DURABLE) as server, ExitStack() as stack:
        sqlite = folder / "bench.db"
        one, many = server.new_database(), server.new_database()
        for database in (sqlite, one, many):
            seed(database)
        with store.connect(server.url) as conn:
            postgres_version = "PostgreSQL " + conn.execute("SHOW server_version", []).fetchone()[0]
        groups = {
            "SQLite, 1 node": stack.enter_context(nodes(sqlite, 1, folder)),
            "PostgreSQL, 1 node": stack.enter_context(nodes(one, 1, folder)),
            f"PostgreSQL, {NODES} nodes": stack.enter_context(nodes(many, NODES, folder)),
        }
        scripts = {
            method: script(folder, method.lower(), method, body, TOKEN)
            for _, _, method, body in SCENARIOS
        }
        for group in groups.values():  # warm up every worker and pool
            measure(group, SCENARIOS[0][1], 16, scripts["GET"])
        runs: dict[tuple[str, int, str], list[Result]] = {}
        for round_ in range(1, ROUNDS + 1):
            for label, path, method, _ in SCENARIOS:
                for connections in CONNECTIONS:
                    for name, group in groups.items():  # interleaved
                        result = measure(group, path, connections, scripts[method])
                        runs.setdefault((label, connections, name), []).append(result)
                        print(f"  round {round_} {label:14} c={connections:<3} {name:22} "
                              f"{result.rps:8.0f} req/s  p99 {result.p99:7.1f} ms")  # fmt: skip
    server_errors = logged_errors(folder)
    shutil.rmtree(folder, ignore_errors=True)
    results = {key: median(values) for key, values in runs.items()}
    lines = ["# SQLite and PostgreSQL, one node and three", "", *machine(postgres_version), ""]
    lines += table(results, list(groups))
    lines += [
        f"Errors are wrk's: non-2xx answers and socket errors, including its timeouts (an "
        f"answer slower than 2 s). The nodes logged {server_errors} errors of their own (a "
        f"storage fault, a 500) in the whole run.",
        "",
    ]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    (ROOT / "bench" / "postgres-results.md").write_text(text)
    print(f"Written to {ROOT / 'bench' / 'postgres-results.md'}")


def table(results: dict[tuple[str, int, str], Result], names: list[str]) -> list[str]:
    lines = [
        "## Throughput and latency (clientkeys serve --workers 2 per node, validation on)", "",
        "| scenario | conns | server | req/s | × PostgreSQL 1 node | × SQLite | p50 ms | p99 ms "
        "| errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for label, _, _, _ in SCENARIOS:
        for connections in CONNECTIONS:
            one = results[(label, connections, names[1])].rps
            sqlite = results[(label, connections, names[0])].rps
            for name in names:
                r = results[(label, connections, name)]
                lines.append(
                    f"| {label} | {connections} | {name} | {r.rps:.0f} | {r.rps / one:.2f} | "
                    f"{r.rps / sqlite:.2f} | {r.p50:.1f} | {r.p99:.1f} | {r.errors} |"
                )
    return [*lines, ""]


if __name__ == "__main__":
    main()
