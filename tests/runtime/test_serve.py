"""`clientkeys serve` as an operator meets it: every misused flag or variable stops the start
with one line and a documented exit status before any worker starts, and a real server with
two workers counts every worker's requests in /metrics and writes JSON access lines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from clientkeys.cli import main
from clientkeys.testing.runner import free_port, serving, until

CI_FIXTURES = Path(__file__).parents[1] / "data" / "ci.yaml"
TOKEN = "sntrys_ci_admin_token"
KEYS = "/api/0/projects/acme/web/keys/"
LIST = "List a Project's Client Keys"
CREATE = "Create a New Client Key"
WORKERS = 2
USAGE, FAILURE = 2, 1
"""The documented exit statuses: a flag or variable that cannot be used; a start that cannot
proceed (the port, the database, the fixtures, the spec folder)."""


def assert_one_line_error(result: Any, status: int, *needles: str) -> None:
    """The start stopped with `status`, one `Error:` line naming the problem, no traceback."""
    output = result.output
    assert result.exit_code == status, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    for needle in needles:
        assert needle in errors[0], output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("args", "status", "needles"),
    [
        (["--public-url", "notaurl"], USAGE, ["'--public-url'", "'notaurl'"]),
        (["--ingest-url", "ftp://relay"], USAGE, ["'--ingest-url'"]),
        (["--cdn-url", "cdn.example.com"], USAGE, ["'--cdn-url'"]),
        (["--port", "99999"], USAGE, ["'--port'", "99999"]),
        (["--port", "-1"], USAGE, ["'--port'"]),
        (["--host", "no-such-host.invalid"], FAILURE, ["cannot listen on no-such-host.invalid"]),
        (["--workers", "0"], USAGE, ["'--workers'"]),
        (["--threads", "0"], USAGE, ["'--threads'"]),
        (["--log-level", "loud"], USAGE, ["'--log-level'"]),
        (["--log-format", "xml"], USAGE, ["'--log-format'"]),
        (["--fixtures", "no-such-file.yaml"], USAGE, ["'--fixtures'"]),
        (["--admin-token", "two words"], USAGE, ["'--admin-token'"]),
        (["--admin-token", ""], USAGE, ["'--admin-token'"]),
        (["--database", "/no/such/folder/x.db"], FAILURE, ["/no/such/folder/x.db"]),
        (["--durability", "fast"], USAGE, ["'--durability'"]),
    ],
)
def test_a_bad_flag_stops_the_start_with_one_line(
    tmp_path: Path, args: list[str], status: int, needles: list[str]
) -> None:
    database = [] if "--database" in args else ["--database", str(tmp_path / "x.db")]
    result = CliRunner().invoke(main, ["serve", "--port", "0", *database, *args])
    assert_one_line_error(result, status, *needles)


@pytest.mark.parametrize(
    ("variable", "value", "status", "needle"),
    [
        ("CLIENTKEYS_PUBLIC_URL", "notaurl", USAGE, "CLIENTKEYS_PUBLIC_URL"),
        ("CLIENTKEYS_INGEST_URL", "notaurl", USAGE, "CLIENTKEYS_INGEST_URL"),
        ("CLIENTKEYS_PORT", "http", USAGE, "'--port'"),
        ("CLIENTKEYS_WORKERS", "many", USAGE, "'--workers'"),
        ("CLIENTKEYS_METRICS", "maybe", USAGE, "CLIENTKEYS_METRICS"),
        ("CLIENTKEYS_THREADS", "-3", USAGE, "CLIENTKEYS_THREADS"),
        ("CLIENTKEYS_LOG_FORMAT", "xml", USAGE, "'--log-format'"),
        ("CLIENTKEYS_SPEC_DIR", "/no/such/spec", FAILURE, "CLIENTKEYS_SPEC_DIR"),
        ("CLIENTKEYS_VALIDATE_RESPONSES", "maybe", USAGE, "CLIENTKEYS_VALIDATE_RESPONSES"),
        ("CLIENTKEYS_VALIDATE_REQUESTS", "2", USAGE, "CLIENTKEYS_VALIDATE_REQUESTS"),
        ("CLIENTKEYS_LOG_LEVEL", "loud", USAGE, "'--log-level'"),
        ("CLIENTKEYS_ADMIN_TOKEN", "two words", USAGE, "CLIENTKEYS_ADMIN_TOKEN"),
        ("CLIENTKEYS_JOURNAL_SIZE", "0", USAGE, "CLIENTKEYS_JOURNAL_SIZE"),
        ("CLIENTKEYS_MAX_BODY_BYTES", "lots", USAGE, "CLIENTKEYS_MAX_BODY_BYTES"),
        ("CLIENTKEYS_HOST", "no-such-host.invalid", FAILURE, "no-such-host.invalid"),
        ("CLIENTKEYS_DURABILITY", "fast", USAGE, "CLIENTKEYS_DURABILITY"),
    ],
)
def test_a_bad_variable_stops_the_start_with_one_line(
    tmp_path: Path, variable: str, value: str, status: int, needle: str
) -> None:
    env = {variable: value, "CLIENTKEYS_DATABASE": str(tmp_path / "x.db")}
    port = [] if variable == "CLIENTKEYS_PORT" else ["--port", "0"]  # a flag wins over its variable
    result = CliRunner().invoke(main, ["serve", *port], env=env)
    assert_one_line_error(result, status, needle)


def test_bad_fixtures_stop_the_start_naming_the_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("organizations:\n  - slug: Not A Slug\n")
    result = CliRunner().invoke(
        main, ["serve", "--port", "0", "--database", str(tmp_path / "x.db"), "--fixtures", str(bad)]
    )
    assert_one_line_error(result, FAILURE, "organizations[0].slug")


def test_a_busy_port_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert_one_line_error(result, FAILURE, f"cannot listen on 127.0.0.1:{port}", "in use")


def test_a_bad_setting_with_many_workers_exits_at_once_without_a_traceback(
    tmp_path: Path,
) -> None:
    """No worker starts, so none can crash-loop: the command ends, whatever --workers says."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "clientkeys", "serve", "--workers", "4", "--port", "0",
         "--database", str(tmp_path / "x.db")],
        env={**os.environ, "CLIENTKEYS_PUBLIC_URL": "notaurl"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == USAGE, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        "Error: CLIENTKEYS_PUBLIC_URL must be an http(s) URL, got 'notaurl'"
    ]
    assert time.monotonic() - started < 30


# A real server: two workers, metrics on, JSON logs -------------------------------------------


@dataclass
class LiveServer:
    url: str
    log: Path
    metrics_dir: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("serve")
    metrics_dir = folder / "metrics"
    port = free_port()
    command = [
        sys.executable, "-m", "clientkeys", "serve", "--port", str(port),
        "--workers", str(WORKERS), "--metrics", "--log-format", "json",
        "--database", str(folder / "x.db"), "--fixtures", str(CI_FIXTURES),
    ]  # fmt: skip
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
        with serving(command, port, folder / "server.log") as url:
            yield LiveServer(url, folder / "server.log", metrics_dir)
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(live: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, body = live.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return _samples(body.decode())


def _listed_per_worker(folder: Path) -> dict[str, float]:
    """Each worker's own count of answered lists, from its file in the metrics folder."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if sample.labels == {"operation": LIST, "status": "200"}:
                    counts[path.name] = sample.value
    return counts


def test_metrics_count_every_workers_requests(live: LiveServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before, per_worker_before = _scrape(live), _listed_per_worker(live.metrics_dir)
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        # Fresh connections from several threads until each worker has answered some.
        while True:
            statuses = list(pool.map(lambda _: live.get(KEYS, auth)[0], range(20)))
            assert set(statuses) == {200}
            sent += len(statuses)
            per_worker = _listed_per_worker(live.metrics_dir)
            grew = [f for f, n in per_worker.items() if n > per_worker_before.get(f, 0)]
            if len(grew) == WORKERS:
                break
            assert sent < 400, f"not every worker answered: {per_worker}"
    assert live.post(KEYS, b'{"name": 5}', {**auth, "Content-Type": "application/json"}) == 400
    assert live.get(KEYS)[0] == 401
    live.get("/_health/")  # operations endpoints are not API requests: not counted

    after = _scrape(live)

    def added(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert added("clientkeys_requests_total", operation=LIST, status="200") == sent
    assert added("clientkeys_requests_total", operation=CREATE, status="400") == 1
    assert added("clientkeys_requests_total", operation=LIST, status="401") == 1
    assert added("clientkeys_request_duration_seconds_count", operation=LIST) == sent + 1
    assert (
        added("clientkeys_request_duration_seconds_bucket", operation=LIST, le="+Inf") == sent + 1
    )
    assert added("clientkeys_validation_failures_total", operation=CREATE) == 1
    assert added("clientkeys_validation_failures_total", operation=LIST) == 0
    assert sum(v for (name, _), v in after.items() if name == "clientkeys_requests_total") == sum(
        v for (name, _), v in after.items() if name == "clientkeys_request_duration_seconds_count"
    )
    assert (
        sum(_listed_per_worker(live.metrics_dir).values())
        == after[("clientkeys_requests_total", (("operation", LIST), ("status", "200")))]
    )


def test_json_logs_carry_each_requests_fields_and_never_the_token(live: LiveServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "ci-run-42"}
    status, headers, _ = live.get(KEYS, auth)
    assert status == 200 and headers["X-Request-ID"] == "ci-run-42"
    for body in (b'{"name": 5}', b"{not json", b"[1]"):
        live.post(KEYS, body, {**auth, "Content-Type": "application/json", "X-Request-ID": "bad"})

    def logged() -> bool:
        return any(line.get("request_id") == "ci-run-42" for line in live.log_lines())

    until(logged, 10, "the access line of request ci-run-42")
    lines = live.log_lines()  # every line parses as JSON, uvicorn's own included
    [line] = [line for line in lines if line.get("request_id") == "ci-run-42"]
    assert line["method"] == "GET" and line["path"] == KEYS and line["status"] == 200
    assert line["operation_id"] == LIST and line["token_id"].startswith("token:")
    assert line["level"] == "info" and line["time"].endswith("Z")
    assert isinstance(line["duration_ms"], float)
    assert all(TOKEN not in json.dumps(line) for line in lines)
    assert not any("exception" in line or "Traceback" in line["message"] for line in lines)
    assert {line["status"] for line in lines if line.get("request_id") == "bad"} == {400}
