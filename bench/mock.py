"""`make bench` (mock part): `clientkeys mock` against Stoplight Prism, side by side in one run.

On the same descriptions (clientkeys' own split spec, GitHub's 13 MB REST description with
1,223 operations, Figma's OpenAPI 3.1 description) it measures, for both servers: the time
from start to the first answer, peak RSS, req/s and p99 with wrk (interleaved rounds, the
median kept), and the share of sampled operations answered with a documented 2xx whose body
the documented schema accepts (the test suite's independent validator). clientkeys runs in
one process with request validation on, as Prism does; `--workers 2` is measured beside it.

Prism is installed from npm into bench/prism/ by `make bench`. Writes bench/mock-results.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from run import ROOT, ROUNDS, SECONDS, Result, Server, machine, median, wrk

from clientkeys.testing.runner import free_port

sys.path.insert(0, str(ROOT / "tests"))
from corpus import Caller, Unsatisfiable, entries  # noqa: E402

BIN = Path(sys.executable).parent
PRISM = ROOT / "bench" / "prism" / "node_modules" / ".bin" / "prism"
SAMPLE = int(os.environ.get("BENCH_SAMPLE", "200"))
CONNECTIONS = (16, 64)


@dataclass
class Scenario:
    """One request wrk repeats."""

    label: str
    path: str
    headers: dict[str, str]
    method: str = "GET"
    body: str | None = None


@dataclass
class Spec:
    label: str
    path: Path
    scenarios: list[Scenario]


def specs() -> list[Spec]:
    corpus = {entry.name: entry for entry in entries()}
    token = {"Authorization": "Bearer bench"}
    keys = "/api/0/projects/acme/web/keys/"
    return [
        Spec("clientkeys (3.0.3, split files, 5 operations)", ROOT / "spec" / "openapi.json", [
            Scenario("list keys", keys, token),
            Scenario("create key", keys, {**token, "Content-Type": "application/json"}, "POST",
                     '{"name": "bench"}'),
        ]),
        Spec("GitHub REST (3.0.3, 13 MB, 1,223 operations)", corpus["github/api.github.com"].path, [
            Scenario("get a repository", "/repos/octocat/hello-world", {}),
        ]),
        Spec("Figma REST (3.1.0, YAML, 54 operations)", corpus["figma/rest-api"].path, [
            Scenario("get me", "/v1/me", {"X-Figma-Token": "bench"}),
        ]),
    ]  # fmt: skip


def servers(spec: Path, probe: Scenario) -> list[Server]:
    """Ours in one process and in two, and Prism; each counts as started at its first answer
    (any status) to `probe`, given up on after three minutes (GitHub's 13 MB description)."""
    ours = [str(BIN / "clientkeys"), "mock", "--spec", str(spec), "--log-level", "warning"]
    made = []
    for name, command in [
        ("clientkeys mock", ours),
        ("clientkeys mock --workers 2", [*ours, "--workers", "2"]),
        ("Prism", [str(PRISM), "mock", "-h", "127.0.0.1", "--verboseLevel", "warn", str(spec)]),
    ]:
        port = free_port()
        flag = ["-p", str(port)] if name == "Prism" else ["--port", str(port)]
        made.append(Server(name, [*command, *flag], {}, port, probe.path, probe.headers,
                           ok_only=False, seconds=180))  # fmt: skip
    return made


def script(folder: Path, scenario: Scenario) -> Path:
    path = folder / f"{abs(hash(scenario.label))}.lua"
    lines = [f'wrk.method = "{scenario.method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in scenario.headers.items()]
    if scenario.body is not None:
        lines.append(f"wrk.body = '{scenario.body}'")
    path.write_text("\n".join(lines) + "\n")
    return path


def conformance(server: Server, caller: Caller, operations: list[Any]) -> tuple[int, int]:
    """(operations answered with a schema-valid documented 2xx, operations called); an answer
    that takes over a minute counts as not answered."""
    good = called = 0
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for operation in operations:
            try:
                request = caller.request(operation)
            except Unsatisfiable:
                continue
            called += 1
            request.pop("follow_redirects", None)
            try:
                response = client.request(**request)
            except httpx.TimeoutException:
                print(f"  {server.name}: {operation.name} timed out", flush=True)
                continue
            if 200 <= response.status_code < 300 and not caller.problems(operation, response):
                good += 1
    return good, called


def bench_spec(spec: Spec, folder: Path) -> dict[str, Any]:
    print(f"== {spec.label}", flush=True)
    running = servers(spec.path, spec.scenarios[0])
    out: dict[str, Any] = {"servers": running, "runs": {}, "share": {}}
    try:
        for server in running:
            server.start(folder)
            print(f"  {server.name}: first answer after {server.startup:.2f} s", flush=True)
        caller = Caller(spec.path)
        sampled = caller.sample(SAMPLE, seed=1)
        for server in running:
            if "--workers" not in server.name:
                out["share"][server.name] = conformance(server, caller, sampled)
                print(f"  {server.name}: {out['share'][server.name]} schema-valid 2xx", flush=True)
        lua = {s.label: script(folder, s) for s in spec.scenarios}
        for server in running:  # warm up
            wrk(server.url + spec.scenarios[0].path, 16, 1, lua[spec.scenarios[0].label])
        for round_ in range(ROUNDS):
            for scenario in spec.scenarios:
                for connections in CONNECTIONS:
                    for server in running:
                        result = wrk(
                            server.url + scenario.path, connections, SECONDS, lua[scenario.label]
                        )
                        out["runs"].setdefault(
                            (scenario.label, connections, server.name), []
                        ).append(result)
                        print(f"  round {round_ + 1} {scenario.label:18} c={connections:<3} "
                              f"{server.name:28} {result.rps:8.0f} req/s p99 {result.p99:7.1f} ms"
                              f" errors {result.errors}", flush=True)  # fmt: skip
        out["rss"] = {server.name: server.total_peak_rss_mb() for server in running}
    finally:
        for server in running:
            server.stop()
    return out


def report(results: list[tuple[Spec, dict[str, Any]]]) -> list[str]:
    lines = ["## Start and memory", "",
             "| spec | server | first answer after start | peak RSS (all processes) |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    for spec, out in results:
        for server in out["servers"]:
            lines.append(f"| {spec.label} | {server.name} | {server.startup:.2f} s | "
                         f"{out['rss'][server.name]:.0f} MB |")  # fmt: skip
    lines += ["", "## Throughput (median of the rounds)", "",
              "| spec | request | conns | server | req/s | × Prism | p99 ms | non-2xx/errors |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for spec, out in results:
        medians: dict[tuple[str, int, str], Result] = {k: median(v) for k, v in out["runs"].items()}
        for (label, connections, name), r in medians.items():
            base = medians[(label, connections, "Prism")].rps
            lines.append(f"| {spec.label} | {label} | {connections} | {name} | {r.rps:.0f} | "
                         f"{r.rps / base:.2f} | {r.p99:.1f} | {r.errors} |")  # fmt: skip
        out["medians"] = medians
    lines += ["", "## Sampled operations answered with a schema-valid documented 2xx", "",
              "The same requests to both (built from the spec: required parameters, a valid body, "
              "credentials); a body counts when python-jsonschema (OpenAPI's dialect for the "
              "version) accepts it against the documented schema.", "",
              "| spec | operations called | clientkeys mock | Prism |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for spec, out in results:
        ours, called = out["share"]["clientkeys mock"]
        prism, _ = out["share"]["Prism"]
        lines.append(f"| {spec.label} | {called} | {ours} ({ours / max(called, 1):.0%}) | "
                     f"{prism} ({prism / max(called, 1):.0%}) |")  # fmt: skip
    return lines + [""] + targets(results)


def targets(results: list[tuple[Spec, dict[str, Any]]]) -> list[str]:
    checks = []
    for spec, out in results:
        by_name = {s.name: s for s in out["servers"]}
        ours, prism = by_name["clientkeys mock"], by_name["Prism"]
        checks.append(
            (
                f"{spec.label}: first answer no later than Prism's",
                ours.startup <= prism.startup,
                f"{ours.startup:.2f} s vs {prism.startup:.2f} s",
            )
        )
        checks.append(
            (
                f"{spec.label}: peak RSS no more than Prism's",
                out["rss"][ours.name] <= out["rss"][prism.name],
                f"{out['rss'][ours.name]:.0f} MB vs {out['rss'][prism.name]:.0f} MB",
            )
        )
        worst = min(
            out["medians"][(label, c, ours.name)].rps / out["medians"][(label, c, "Prism")].rps
            for (label, c, name) in out["medians"]
            if name == "Prism"
        )
        checks.append(
            (
                f"{spec.label}: ≥ 1.5× Prism's req/s in one process (worst request/conns)",
                worst >= 1.5,
                f"{worst:.1f}×",
            )
        )
        share, prism_share = out["share"][ours.name][0], out["share"]["Prism"][0]
        checks.append(
            (
                f"{spec.label}: at least as many schema-valid 2xx as Prism",
                share >= prism_share,
                f"{share} vs {prism_share}",
            )
        )
    out_lines = ["## Targets", "", "| target | met | measured (clientkeys vs Prism) |",
                 "| --- | --- | --- |"]  # fmt: skip
    out_lines += [f"| {n} | {'yes' if met else '**no**'} | {v} |" for n, met, v in checks]
    return out_lines + [""]


def prism_version() -> str:
    done = subprocess.run([str(PRISM), "--version"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if not PRISM.exists():
        raise SystemExit(f"Prism is not installed at {PRISM}; run `make bench`")
    folder = Path(tempfile.mkdtemp(prefix="clientkeys-bench-mock-"))
    results = [(spec, bench_spec(spec, folder)) for spec in specs()]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    lines = ["# Mock benchmark: clientkeys mock vs Stoplight Prism", "",
             *machine(), f"- Prism {prism_version()} (npm @stoplight/prism-cli), Node {node}",
             f"- Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python bench/mock.py`", "",
             *report(results)]  # fmt: skip
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    (ROOT / "bench" / "mock-results.md").write_text(text)
    print(f"Written to {ROOT / 'bench' / 'mock-results.md'}")


if __name__ == "__main__":
    main()
