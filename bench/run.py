"""`make bench`: clientkeys as `clientkeys serve --workers 2` runs it (request and response
validation on), beside the peers a user would pick instead and a fair ceiling, measured side by
side and interleaved in one run with wrk over loopback (keep-alive where the server keeps it):

- Stoplight Prism (npm, bench/prism/) mocking our spec: stateless, no database;
- a plain Connexion 3 FlaskApp (`plain_connexion.py`): request validation only, Connexion's
  defaults, the same work per request;
- the fair ceiling (`ceiling.py`): the same work (token lookup, rows, audit writes, JSON and DSN
  URLs, durability) with no framework, under gunicorn's sync workers;
- with BENCH_BEFORE=<git revision>, clientkeys at that revision too: before and after.

Prints the table with req/s, p99 and the spread of each cell over the rounds, the targets met or
not, list cost by project size, start time and memory, and a profile by layer of list and
create, and writes it all to bench/results.md. BENCH_SECONDS (default 10) sets each point's
length and BENCH_ROUNDS (default 2) the interleaved rounds; each cell is their median.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from clientkeys.core import domain
from clientkeys.store import repository
from clientkeys.store import sqlite as db
from clientkeys.testing import runner
from clientkeys.testing.runner import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
SIZE_SECONDS = max(3, SECONDS // 2)
"""Each point of the list-cost-by-size table (7 points, clientkeys only)."""
BEFORE = os.environ.get("BENCH_BEFORE", "")
"""A git revision to measure beside the working tree's code (e.g. `main`): before and after."""
PRISM = ROOT / "bench" / "prism" / "node_modules" / ".bin" / "prism"
TOKEN = "sntrys_bench_" + "0" * 32
ORG = "bench"
SIZES = {"ten": 10, "hundred": 100, "thousand": 1_000, "lakh": 100_000}
CONNECTIONS = (16, 64)
CLK = os.sysconf("SC_CLK_TCK")


# Data ------------------------------------------------------------------------------------------


def seed(path: Path) -> dict[str, list[int]]:
    """The bench organization: projects of 10, 100, 1,000 and 100,000 keys, and an empty one
    for creates. Returns each project's key ids, newest first."""
    db.init_db(path)
    ids: dict[str, list[int]] = {}
    with db.connect(path) as conn:
        repository.insert_organization(conn, ORG)
        repository.insert_token(conn, ORG, domain.SCOPES, token=TOKEN)
        for name, size in {**SIZES, "create": 0}.items():
            project = repository.insert_project(conn, ORG, name, default_key=False)
            data = json.dumps({"dynamicSdkLoaderOptions": domain.DEFAULT_LOADER_OPTIONS})
            rows = [
                (project["id"], f"Key {i}", secrets.token_hex(16), secrets.token_hex(16), data,
                 domain.now())
                for i in range(size)
            ]  # fmt: skip
            with db.write(conn):
                conn.conn.executemany(
                    "INSERT INTO keys (project_id, label, public_key, secret_key, data, "
                    "date_added) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            ids[name] = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM keys WHERE project_id = ? ORDER BY id DESC", [project["id"]]
                )
            ]
    return ids


# Servers ---------------------------------------------------------------------------------------


@dataclass
class Server:
    """One server of the table, started and stopped by clientkeys' server runner; it counts
    as started at its first 2xx answer to `probe` (or any answer, without `ok_only`)."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    probe: str = f"/api/0/projects/{ORG}/ten/keys/"
    headers: dict[str, str] = field(default_factory=lambda: {"Authorization": f"Bearer {TOKEN}"})
    ok_only: bool = True
    seconds: float = 60
    running: runner.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.running is not None, f"{self.name} is not started"
        return self.running.process

    @property
    def startup(self) -> float:
        """Seconds from the start to the first answer."""
        return self.running.startup if self.running is not None else 0.0

    def start(self, folder: Path) -> None:
        self.running = runner.start(self.command, self.port, folder / f"{self.port}.log",
                                    self.env, cwd=ROOT)  # fmt: skip
        # Polled every 10 ms: the first answer's time is a measurement here.
        runner.wait_until_answers(self.running, self.probe, self.headers, self.ok_only,
                                  self.seconds, poll=0.01)  # fmt: skip

    def pids(self) -> list[int]:
        found, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                queue += [int(c) for c in task.read_text().split()]
        return found

    def workers(self) -> list[int]:
        pids = self.pids()
        return pids[1:] or pids

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLK

    def peak_rss_mb(self) -> float:
        """The highest peak RSS of one worker."""
        return max(self._peaks(self.workers()))

    def total_peak_rss_mb(self) -> float:
        """Peak RSS over the process tree, summed (every process holds its own copy)."""
        return sum(self._peaks(self.pids()))

    def _peaks(self, pids: list[int]) -> list[float]:
        peaks = []
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"VmHWM:\s+(\d+) kB", status)
            if match:
                peaks.append(int(match.group(1)) / 1024)
        return peaks

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop(timeout=20)


CLIENTKEYS = "clientkeys, both validations"
PRISM_NAME = "Stoplight Prism mock (stateless)"
PLAIN = "plain Connexion FlaskApp, request validation only"
CEILING = "fair ceiling (same work, no framework)"


def servers(folder: Path, database: Path) -> list[Server]:
    """The four servers of the table, each on its own copy of the seeded database."""
    made: list[Server] = []
    configs: list[tuple[str, list[str]]] = [
        (CLIENTKEYS, [str(BIN / "clientkeys"), "serve", "--workers", "2", "--log-level",
                      "warning"]),
        (PRISM_NAME, [str(PRISM), "mock", "-h", "127.0.0.1", "--verboseLevel", "warn",
                      str(ROOT / "spec" / "openapi.json")]),
        (PLAIN, [str(BIN / "uvicorn"), "--workers", "2", "--app-dir", str(ROOT / "bench"),
                 "--factory", "plain_connexion:create_app", "--log-level", "warning"]),
        (CEILING, [str(BIN / "gunicorn"), "-w", "2", "--chdir", str(ROOT / "bench"),
                   "--log-level", "warning", "ceiling:create_app()"]),
    ]  # fmt: skip
    if BEFORE:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", BEFORE],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        configs.insert(1, (f"clientkeys before ({BEFORE} {sha}), both validations",
                           [sys.executable, "-m", "clientkeys", "serve", "--workers", "2",
                            "--log-level", "warning"]))  # fmt: skip
    for name, command in configs:
        copy = folder / f"{len(made)}.db"
        shutil.copy(database, copy)
        port = free_port()
        env = {"CLIENTKEYS_DATABASE": str(copy)}
        if name.startswith("clientkeys"):
            command += ["--port", str(port), "--database", str(copy)]
            if name != CLIENTKEYS:
                env["PYTHONPATH"] = str(checkout(BEFORE, folder / "before") / "src")
        elif name == PRISM_NAME:
            command += ["-p", str(port)]
        elif name == PLAIN:
            command += ["--port", str(port)]
        else:
            command += ["-b", f"127.0.0.1:{port}"]
        made.append(Server(name, command, env, port))
    return made


def checkout(revision: str, folder: Path) -> Path:
    """The spec and sources of `revision` of this repository, extracted into `folder`."""
    if not folder.exists():
        folder.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src", "spec"],
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


# Load ------------------------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50: float
    p99: float
    requests: int
    errors: int
    cpu_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def median(results: list[Result]) -> Result:
    """The run with the median throughput, with its latencies, and the errors of all runs;
    of an even number of runs, the lower middle one (two rounds: the slower)."""
    ordered = sorted(results, key=lambda r: r.rps)
    chosen = ordered[(len(ordered) - 1) // 2]
    return replace(chosen, errors=sum(r.errors for r in results))


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, connections: int, seconds: int, script: Path) -> Result:
    output = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Result(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50=_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        p99=_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        requests=requests,
        errors=errors,
    )


def script(
    folder: Path, name: str, method: str = "GET", body: str | None = None, token: str = TOKEN
) -> Path:
    path = folder / f"{name}.lua"
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body is not None:
        lines += [f"wrk.body = '{body}'", 'wrk.headers["Content-Type"] = "application/json"']
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(
    server: Server, path: str, connections: int, lua: Path, seconds: int = SECONDS
) -> Result:
    before = server.cpu_seconds()
    result = wrk(server.url + path, connections, seconds, lua)
    result.cpu_ms = (server.cpu_seconds() - before) * 1000 / max(result.requests, 1)
    return result


# Report ----------------------------------------------------------------------------------------


def machine() -> list[str]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.machine(),
    )  # fmt: skip
    memory = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[
        0
    ]
    packages = ", ".join(
        f"{p} {version(p)}"
        for p in ("clientkeys", "connexion", "flask", "uvicorn", "gunicorn", "jsonschema-rs",
                  "orjson", "uvloop", "httptools")
    )  # fmt: skip
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; each cell is the median of {ROUNDS} "
        f"interleaved {SECONDS}-second wrk runs (1 thread, loopback); errors are summed",
        f"- Machine: {os.cpu_count()} cores ({model}), {memory / 1024 / 1024:.0f} GiB, "
        f"{platform.platform()}",
        f"- Python {platform.python_version()}; {packages}; {wrk_version.strip()}",
    ]


LIST, HUNDRED, CREATE = "list, 10 keys", "list, 100-key page", "create"
CELLS = [(LIST, 16), (LIST, 64), (CREATE, 16), (CREATE, 64)]
"""The table's columns: what every server is measured on."""
Runs = dict[tuple[str, int, str], list[Result]]


def main() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    if not PRISM.exists():
        raise SystemExit(f"Prism is not installed at {PRISM}; run `make bench`")
    folder = Path(tempfile.mkdtemp(prefix="clientkeys-bench-"))
    print(f"Seeding in {folder} ...", flush=True)
    ids = seed(folder / "seed.db")
    running = servers(folder, folder / "seed.db")
    lines: list[str] = ["# Benchmark results", "", *machine(), ""]
    try:
        for server in running:
            server.start(folder)
            print(f"{server.name}: first answer {server.startup:.2f} s after start", flush=True)
        ours = running[0]
        ceiling = next(server for server in running if server.name == CEILING)
        scripts = {
            "list": script(folder, "list"),
            "create": script(folder, "create", "POST", '{"name": "bench"}'),
        }
        paths = {LIST: f"/api/0/projects/{ORG}/ten/keys/",
                 HUNDRED: f"/api/0/projects/{ORG}/hundred/keys/",
                 CREATE: f"/api/0/projects/{ORG}/create/keys/"}  # fmt: skip
        for server in running:  # warm up every worker
            wrk(server.url + paths[LIST], 16, 2, scripts["list"])
            wrk(server.url + paths[CREATE], 16, 2, scripts["create"])
        points = [(label, c, running) for label, c in CELLS]
        points += [(HUNDRED, c, [ours, ceiling]) for c in (16, 64)]  # Prism has no 100-key page
        runs: Runs = {}
        for round_ in range(1, ROUNDS + 1):
            for label, connections, measured in points:
                for server in measured:  # interleaved: every server, then the next point
                    kind = "create" if label == CREATE else "list"
                    result = measure(server, paths[label], connections, scripts[kind])
                    runs.setdefault((label, connections, server.name), []).append(result)
                    print(f"  round {round_} {label:18} c={connections:<3} {server.name[:34]:34} "
                          f"{result.rps:7.0f} req/s  p99 {result.p99:7.1f} ms  "
                          f"CPU {result.cpu_ms:.2f} ms/req")  # fmt: skip
        lines += table(runs, running)
        lines += detail_table(runs, ceiling)
        lines += startup_table(running)
        lines += size_table(ours, ids, scripts["list"])
        for label, kind in ((LIST, "list"), (CREATE, "create")):
            try:
                lines += profile(ours, paths[label], scripts[kind], folder, label)
            except Exception as exc:  # noqa: BLE001 (the measurements above are kept)
                lines += [f"## Profile ({label}) failed: {exc!r}", ""]
        head = len(machine()) + 3  # title, blank, the machine lines, blank
        lines = lines[:head] + targets(runs, running, lines) + lines[head:]
    finally:
        for server in running:
            server.stop()
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    (ROOT / "bench" / "results.md").write_text(text)
    print(f"Written to {ROOT / 'bench' / 'results.md'}")


def spread(results: list[Result]) -> tuple[float, float, float]:
    """(min, max, (max - min) / median) of the rounds' req/s."""
    rates = [r.rps for r in results]
    middle = median(list(results)).rps
    return min(rates), max(rates), (max(rates) - min(rates)) / middle if middle else 0.0


def table(runs: Runs, running: list[Server]) -> list[str]:
    """The issue's table: median req/s (p99), and the rounds' min-max, per server and cell."""
    head = " | ".join(f"{label.split(',')[0]} c{c}" for label, c in CELLS)
    lines = [
        "## Throughput: median req/s (p99 ms), min-max over the rounds", "",
        f"| server | {head} |", "|---|" + "---:|" * len(CELLS),
    ]  # fmt: skip
    for server in running:
        cells = []
        for label, connections in CELLS:
            results = runs[(label, connections, server.name)]
            middle, (low, high, _) = median(list(results)), spread(results)
            cells.append(f"{middle.rps:,.0f} ({middle.p99:.0f} ms) {low:,.0f}-{high:,.0f}")
        lines.append(f"| {server.name} | {' | '.join(cells)} |")
    return lines + [""]


def detail_table(runs: Runs, ceiling: Server) -> list[str]:
    lines = [
        "## Every cell", "",
        "| scenario | conns | server | req/s | min-max | × ceiling | p50 ms | p99 ms | "
        "server CPU ms/req | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for (label, connections, name), results in runs.items():
        r, (low, high, _) = median(list(results)), spread(results)
        base = median(list(runs[(label, connections, ceiling.name)])).rps
        lines.append(
            f"| {label} | {connections} | {name} | {r.rps:.0f} | {low:.0f}-{high:.0f} | "
            f"{r.rps / base:.2f} | {r.p50:.1f} | {r.p99:.1f} | {r.cpu_ms:.2f} | {r.errors} |"
        )
    return lines + [""]


def startup_table(running: list[Server]) -> list[str]:
    lines = [
        "## Start and memory",
        "",
        "| server | first answer after start | peak RSS per worker |",
        "| --- | --- | --- |",
    ]
    for server in running:
        lines.append(f"| {server.name} | {server.startup:.2f} s | {server.peak_rss_mb():.0f} MB |")
    return lines + [""]


def size_table(
    server: Server, ids: dict[str, list[int]], lua: Path, rounds: int = ROUNDS
) -> list[str]:
    """Throughput by project size and page, per_page=10, over `rounds` interleaved rounds.

    The comparison uses each row's best round: the work per request is fixed, and noise from
    other tenants of a shared machine only ever slows a run down, so the best round is the
    closest to the query's own cost. The median is shown beside it."""
    lines = [
        f"## List cost vs project size ({server.name}, per_page=10, 16 connections, "
        f"best and median of {rounds} interleaved {SIZE_SECONDS}-second rounds)", "",
        "| keys | page | best req/s | × 10 keys | median req/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    cases = []
    for name in ("ten", "thousand", "lakh"):
        keys = ids[name]
        pages = {"first": None, "middle": keys[len(keys) // 2], "last": keys[-10]}
        for page, bound in pages.items():
            if name != "ten" or page == "first":
                query = "per_page=10" + (f"&cursor={bound}:0:0" if bound else "")
                cases.append((len(keys), page, f"/api/0/projects/{ORG}/{name}/keys/?{query}"))
    runs: dict[tuple[int, str], list[Result]] = {(size, page): [] for size, page, _ in cases}
    for _ in range(rounds):
        for size, page, path in cases:
            runs[(size, page)].append(measure(server, path, 16, lua, SIZE_SECONDS))
    base = None
    for (size, page), results in runs.items():
        best = max(results, key=lambda r: r.rps)
        middle = median(results)
        base = base or best.rps
        lines.append(f"| {size:,} | {page} | {best.rps:.0f} | {best.rps / base:.2f} | "
                     f"{middle.rps:.0f} | {best.p50:.1f} | {best.p99:.1f} |")  # fmt: skip
        print(f"  size {size:>7,} {page:6} best {best.rps:8.0f} req/s", flush=True)
    return lines + [""]


WHOLE = [  # layers that take a sample when any frame of its stack matches
    ("SQLite BEGIN, COMMIT and fsync", ("_commit (clientkeys/store/group_commit.py",
                                        "_begin_immediate (", "GroupCommit._begin (")),
    ("token lookup (SQLite, on a worker thread)", ("bearer_info (clientkeys/auth.py",)),
]  # fmt: skip
LAYERS = [  # (layer, patterns in a frame), matched from the leaf frame up
    ("SQLite queries", ("sqlite_utils/", "clientkeys/store/repository.py",
                        "clientkeys/store/sqlite.py")),
    ("JSON encode/decode", ("orjson", "clientkeys/compiled.py (dumps", "json/")),
    ("response validation", ("response_validation.py", "CompiledJSONResponseBodyValidator",
                             "validators/abstract.py")),
    ("request validation", ("request_validation.py", "validators/", "clientkeys/validation.py",
                            "uri_parsing.py")),
    ("auth", ("connexion/security.py", "middleware/security.py", "clientkeys/auth.py")),
    ("handler, serializer, pagination", ("clientkeys/handlers", "clientkeys/serializers.py",
                                         "clientkeys/pagination.py")),
    ("Flask + Connexion decorators", ("flask/", "werkzeug/", "connexion/decorators",
                                      "connexion/apps/flask.py", "connexion/lifecycle.py")),
    ("a2wsgi bridge", ("a2wsgi/",)),
    ("Connexion/Starlette middleware", ("connexion/", "starlette/", "clientkeys/")),
    ("uvicorn HTTP", ("uvicorn/", "httptools")),
    ("event loop", ("asyncio/", "uvloop", "concurrent/futures")),
]  # fmt: skip
# Leaf frames of a waiting thread (function, file). The event loop's leaf is Runner.run while
# it is inside uvloop's C code: waiting in epoll, or parsing and writing HTTP there (py-spy
# does not see C frames), so that share is left out as well.
IDLE = (
    ("select", "selectors.py"),
    ("poll", "selectors.py"),
    ("wait", "threading.py"),
    ("_worker", "concurrent/futures/thread.py"),
    ("Runner.run", "asyncio/runners.py"),
    ("run", "asyncio/runners.py"),
)


def _idle(frame: str) -> bool:
    function = frame.split(" (")[0]
    return any(
        (function == name or function.endswith(f".{name}")) and path in frame for name, path in IDLE
    )


def profile(server: Server, path: str, lua: Path, folder: Path, label: str = LIST) -> list[str]:
    """Where the workers' time goes while serving `path`: py-spy samples grouped by layer."""
    raw = folder / f"profile-{label.split(',')[0]}.txt"
    assert server.process is not None
    load = subprocess.Popen(
        ["wrk", "-t", "1", "-c", "16", "-d", f"{SECONDS + 2}s", "-s", str(lua), server.url + path],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1)
        subprocess.run(
            [str(BIN / "py-spy"), "record", "--pid", str(server.process.pid), "--subprocesses",
             "--duration", str(SECONDS), "--rate", "250", "--format", "raw", "--nonblocking",
             "--output", str(raw)],
            capture_output=True, check=True, timeout=SECONDS + 30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return ["## Profile", "", f"py-spy could not profile the worker here: {exc}", ""]
    finally:
        load.wait()
    layers: dict[str, int] = {}
    busy = 0
    for line in raw.read_text(errors="replace").split("\n"):  # not splitlines: names hold \x1c
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or _idle(frames[-1]):
            continue
        busy += int(count)
        layer = next(
            (name for name, patterns in WHOLE for frame in frames
             if any(p in frame for p in patterns)),
            next((name for frame in reversed(frames) for name, patterns in LAYERS
                  if any(p in frame for p in patterns)), "other"),
        )  # fmt: skip
        layers[layer] = layers.get(layer, 0) + int(count)
    lines = [
        f"## Profile: where the workers' time goes ({server.name}, {label}, 16 conns)", "",
        f"py-spy over the server and its workers: {busy} busy samples, each attributed to the "
        "innermost layer (time inside uvloop's C code, HTTP parsing included, is not visible "
        "to it; a thread waiting in SQLite, for a lock or an fsync, counts as busy).", "",
        "| layer | share of busy samples |", "| --- | --- |",
    ]  # fmt: skip
    for name, samples in sorted(layers.items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {samples / max(busy, 1):.0%} |")
    return lines + [""]


def targets(runs: Runs, running: list[Server], lines: list[str]) -> list[str]:
    """The issue's targets, each met or not, for clientkeys with both validations on."""
    ours = running[0]

    def rate(label: str, connections: int, name: str) -> Result:
        return median(list(runs[(label, connections, name)]))

    checks: list[tuple[str, bool, str]] = []
    for peer, factor in ((PRISM_NAME, 2.0), (PLAIN, 1.3), (CEILING, 0.5)):
        short = {PRISM_NAME: "Prism", PLAIN: "plain Connexion", CEILING: "the fair ceiling"}[peer]
        for label, connections in CELLS:
            ratio = rate(label, connections, ours.name).rps / rate(label, connections, peer).rps
            checks.append((f"{label.split(',')[0]} c{connections}: ≥ {factor}× {short}",
                           ratio >= factor, f"{ratio:.2f}×"))  # fmt: skip
    for label, connections in CELLS:
        limit = 20 if connections == 16 else 60
        p99 = rate(label, connections, ours.name).p99
        checks.append((f"{label.split(',')[0]} c{connections}: p99 ≤ {limit} ms", p99 <= limit,
                       f"{p99:.1f} ms"))  # fmt: skip
    for label, connections in CELLS:
        low, high, width = spread(runs[(label, connections, ours.name)])
        checks.append((f"{label.split(',')[0]} c{connections}: rounds within 15 %",
                       width <= 0.15, f"{low:,.0f}-{high:,.0f} ({width:.0%})"))  # fmt: skip
    for connections in (16, 64):
        ratio = rate(HUNDRED, connections, ours.name).rps / rate(HUNDRED, connections, CEILING).rps
        checks.append((f"100-key page c{connections}: ≥ 0.5× the fair ceiling", ratio >= 0.5,
                       f"{ratio:.2f}×"))  # fmt: skip
    sizes = [line for line in lines if line.startswith(("| 1,000 |", "| 100,000 |"))]
    ratios = [float(line.split("|")[4]) for line in sizes]
    flat = bool(ratios) and all(0.9 <= r <= 1.1 for r in ratios)
    checks.append(("list cost flat within 10 % from 10 to 100,000 keys (first/middle/last page)",
                   flat, f"{min(ratios, default=0):.2f}-{max(ratios, default=0):.2f}×"),
                  )  # fmt: skip
    rss = ours.peak_rss_mb()
    checks.append(("peak RSS ≤ 100 MB per worker", rss <= 100, f"{rss:.0f} MB"))
    checks.append(("first answer ≤ 1 s after start", ours.startup <= 1, f"{ours.startup:.2f} s"))
    errors = sum(r.errors for (_, _, name), results in runs.items() if name == ours.name
                 for r in results)  # fmt: skip
    checks.append(("no errors or non-2xx answers", errors == 0, str(errors)))
    met = sum(1 for _, ok, _ in checks if ok)
    out = [f"## Targets ({ours.name}, 2 workers): {met} of {len(checks)} met", "",
           "| target | met | measured |", "| --- | --- | --- |"]  # fmt: skip
    out += [f"| {name} | {'yes' if ok else '**no**'} | {value} |" for name, ok, value in checks]
    return out + [""]


if __name__ == "__main__":
    main()
