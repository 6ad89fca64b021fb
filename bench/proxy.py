"""`make bench`, second part: what `clientkeys proxy` adds. clientkeys direct and the proxy in
front of that same clientkeys, measured side by side and interleaved in one run with wrk.

Prints one table (req/s, p50 and p99 for each, and the latency the proxy adds) and writes it to
bench/proxy-results.md with the machine and versions. BENCH_SECONDS and BENCH_ROUNDS as in run.py.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import urllib.request
from pathlib import Path

from run import (
    BIN,
    ORG,
    ROOT,
    ROUNDS,
    Result,
    Server,
    machine,
    measure,
    median,
    script,
    seed,
    wrk,
)

from clientkeys.testing.runner import free_port

CONNECTIONS = (1, 16)
SCENARIOS = [
    ("list, 10 keys", f"/api/0/projects/{ORG}/ten/keys/", "list"),
    ("list, 100-key page", f"/api/0/projects/{ORG}/hundred/keys/", "list"),
    ("create", f"/api/0/projects/{ORG}/create/keys/", "create"),
]

ADMIN_TOKEN = "bench-proxy-admin"
"""The proxy's admin token: the violations it recorded are read at the end of the run."""


def servers(database: Path) -> list[Server]:
    """clientkeys as `serve` runs it (2 workers), and a proxy (1 process) in front of it."""
    upstream_port, proxy_port = free_port(), free_port()
    upstream = Server(
        "clientkeys direct",
        [str(BIN / "clientkeys"), "serve", "--workers", "2", "--log-level", "warning",
         "--port", str(upstream_port), "--database", str(database)],
        {}, upstream_port,
    )  # fmt: skip
    proxy = Server(
        "proxy over clientkeys",
        [str(BIN / "clientkeys"), "proxy", "--upstream", upstream.url, "--port", str(proxy_port)],
        {"CLIENTKEYS_PROXY_ADMIN_TOKEN": ADMIN_TOKEN}, proxy_port,
    )  # fmt: skip
    return [upstream, proxy]


def main() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    folder = Path(tempfile.mkdtemp(prefix="clientkeys-bench-proxy-"))
    print(f"Seeding in {folder} ...")
    seed(folder / "seed.db")
    running = servers(folder / "seed.db")
    scripts = {"list": script(folder, "list"),
               "create": script(folder, "create", "POST", '{"name": "bench"}')}  # fmt: skip
    runs: dict[tuple[str, int, str], list[Result]] = {}
    try:
        for server in running:
            server.start(folder)
        for server in running:  # warm up
            wrk(server.url + SCENARIOS[0][1], 16, 2, scripts["list"])
        for round_ in range(1, ROUNDS + 1):
            for label, path, kind in SCENARIOS:
                for connections in CONNECTIONS:
                    for server in running:  # interleaved: both, then the next setting
                        result = measure(server, path, connections, scripts[kind])
                        runs.setdefault((label, connections, server.name), []).append(result)
                        print(f"  round {round_} {label:20} c={connections:<3} {server.name:22} "
                              f"{result.rps:8.0f} req/s  p50 {result.p50:6.2f} ms")  # fmt: skip
        violations = _violations(running[1])
    finally:
        for server in running:
            server.stop()
    lines = ["# Proxy benchmark", "", *machine(), "", *table(runs, running), "",
             f"Violations the proxy recorded over the whole run: {violations} "
             "(every request was valid; 0 expected)."]  # fmt: skip
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    (ROOT / "bench" / "proxy-results.md").write_text(text)
    print(f"Written to {ROOT / 'bench' / 'proxy-results.md'}")


def _violations(proxy: Server) -> int:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    listing = urllib.request.Request(f"{proxy.url}/__proxy/violations", headers=admin)
    with urllib.request.urlopen(listing, timeout=10) as response:
        return int(json.loads(response.read())["count"])


def table(runs: dict[tuple[str, int, str], list[Result]], running: list[Server]) -> list[str]:
    direct, proxied = (server.name for server in running)
    lines = [
        "| scenario | conns | direct req/s | proxied req/s | × direct | direct p50 ms | "
        "proxied p50 ms | added p50 ms | direct p99 ms | proxied p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, _, _ in SCENARIOS:
        for connections in CONNECTIONS:
            d = median(runs[(label, connections, direct)])
            p = median(runs[(label, connections, proxied)])
            lines.append(
                f"| {label} | {connections} | {d.rps:.0f} | {p.rps:.0f} | {p.rps / d.rps:.2f} | "
                f"{d.p50:.2f} | {p.p50:.2f} | {p.p50 - d.p50:+.2f} | {d.p99:.2f} | {p.p99:.2f} | "
                f"{d.errors + p.errors} |"
            )
    return lines


if __name__ == "__main__":
    main()
