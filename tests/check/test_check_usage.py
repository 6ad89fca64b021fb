"""`clientkeys check` as a CI tool: its own mistakes stop it before any request, a hanging
operation is named within the request timeout, a broken setup stops it at the first request,
progress shows while it runs (a status line on a terminal, plain lines elsewhere) and the JSON
report says what a CI job needs.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from stalling_server import stalling

from broken_server import ORG, PROJECT, running, seed
from clientkeys.check.contract import load_contract
from clientkeys.check.progress import CLEAR_LINE, GREEN, RED, Progress
from clientkeys.config import SPEC_DIR
from clientkeys.openapi.specs import operations
from clientkeys.testing.plugin import free_port, serving

CHECK_ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def check_command(url: str, token: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "clientkeys", "check", url, "--token", token, "--org", ORG,
            "--project", PROJECT, "--max-examples", "3", "--seed", "1", *extra]  # fmt: skip


def run_check(url: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(check_command(url, token, *extra), capture_output=True, text=True,
                          timeout=300, env={**CHECK_ENV, "NO_COLOR": "1"})  # fmt: skip


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def good_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A correct clientkeys: its URL and an all-scopes token."""
    folder = tmp_path_factory.mktemp("good")
    token = seed(folder / "good.db")
    port = free_port()
    command = [sys.executable, "-m", "clientkeys", "serve", "--port", str(port), "--database",
               str(folder / "good.db"), "--log-level", "warning", "--workers", "1"]  # fmt: skip
    with serving(command, port, folder / "server.log") as url:
        yield url, token


# check's own input: exit 2 in one line, before any request ------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket standing for the server: a connection made to it waits in its
    backlog, where a non-blocking accept finds it after the run (no thread, no waiting)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        yield sock


def connections(sock: socket.socket) -> int:
    """How many connections reached the listener."""
    count = 0
    while True:
        try:
            accepted, _ = sock.accept()
        except BlockingIOError:
            return count
        accepted.close()
        count += 1


def misuse(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """The arguments of one misuse, and what its one line must say."""
    (tmp_path / "a-file").write_text("")
    if case == "spec not JSON":
        (tmp_path / "spec.json").write_text('{"openapi": "3.0.3", "paths": {')
        return ["--spec", str(tmp_path / "spec.json")], "invalid JSON at line 1"
    if case == "spec not YAML":
        (tmp_path / "spec.yaml").write_text("openapi: [3.0\n  paths: {")
        return ["--spec", str(tmp_path / "spec.yaml")], "invalid YAML at line"
    if case == "spec not OpenAPI":
        (tmp_path / "spec.yaml").write_text("title: a list of groceries\nitems: [milk]\n")
        return ["--spec", str(tmp_path / "spec.yaml")], "not an OpenAPI document"
    if case == "spec missing":
        return ["--spec", str(tmp_path / "nowhere.json")], "cannot read the file"
    if case == "junit under a file":
        return ["--junit-xml", str(tmp_path / "a-file" / "junit.xml")], "--junit-xml: cannot make"
    if case == "json report a folder":
        return ["--json-report", str(tmp_path)], "--json-report: "
    assert case == "har in a folder nobody may write"
    return ["--har", "/proc/clientkeys-check.har"], "--har: the folder /proc is not writable"


@pytest.mark.parametrize(
    "case",
    ["spec not JSON", "spec not YAML", "spec not OpenAPI", "spec missing", "junit under a file",
     "json report a folder", "har in a folder nobody may write"],
)  # fmt: skip
def test_a_misuse_is_exit_2_in_one_line_before_any_request(
    tmp_path: Path, listener: socket.socket, case: str
) -> None:
    args, says = misuse(tmp_path, case)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    result = run_check(url, "sntrys_a_token_of_enough_length", *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("clientkeys check: cannot start: ")
    assert says in result.stderr
    assert connections(listener) == 0


# A broken setup stops at the first request --------------------------------------------------


@pytest.mark.parametrize(
    ("token", "project", "cause"),
    [
        ("sntrys_not_a_real_token_0000", PROJECT, "the token was rejected: all "),
        (None, "no-such-project", f"organization '{ORG}' or project 'no-such-project' not found"),
    ],
)
def test_a_broken_setup_stops_at_the_first_request(
    good_server: tuple[str, str], token: str | None, project: str, cause: str
) -> None:
    url, good = good_server
    command = check_command(url, token or good)
    command[command.index("--project") + 1] = project
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=CHECK_ENV)
    assert result.returncode == 2, result.stderr
    assert cause in last_line(result)
    assert "Schemathesis" not in result.stdout  # the suite never started


# A hanging operation ------------------------------------------------------------------------


def test_a_hanging_operation_is_exit_1_naming_it_within_the_timeout(tmp_path: Path) -> None:
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    with stalling(tmp_path, "DELETE") as (url, token):
        started = time.monotonic()
        result = run_check(url, token, "--request-timeout", "1", "--json-report", str(report),
                           "--junit-xml", str(junit))  # fmt: skip
        took = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    assert re.search(
        r"BREAKS the contract: Delete a Client Key \(DELETE [^)]+\) did not answer within 1 s; "
        r"the run stopped there$",
        last_line(result),
    )
    assert took < 60, f"{took:.0f} s"  # every phase, and 10 s per hang, took 172 s before
    content = json.loads(report.read_text())
    assert content["verdict"]["code"] == 1
    timed_out = [op["operationId"] for op in content["operations"] if op["timedOut"]]
    assert timed_out == ["Delete a Client Key"]
    failed = [
        (case.get("classname"), case.get("name"))
        for case in ElementTree.parse(junit).getroot().iter("testcase")
        if case.find("failure") is not None
    ]
    assert failed == [("Delete a Client Key", "answered in time")]


# The JSON report ----------------------------------------------------------------------------


def test_the_json_report_of_a_server_that_keeps_the_contract(
    good_server: tuple[str, str], tmp_path: Path
) -> None:
    url, token = good_server
    report = tmp_path / "reports" / "check.json"
    result = run_check(url, token, "--phases", "examples,stateful,effects", "--json-report",
                       str(report))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    content = json.loads(report.read_text())
    assert content["server"] == url
    assert content["verdict"]["code"] == 0 and content["verdict"]["outcome"] == "kept"
    assert content["verdict"]["cause"] in last_line(result)
    assert content["phases"] == [
        {"name": "examples", "status": "success"}, {"name": "coverage", "status": "skip"},
        {"name": "fuzzing", "status": "skip"}, {"name": "stateful", "status": "success"},
        {"name": "authorization", "status": "skip"}, {"name": "effects", "status": "done"},
    ]  # fmt: skip
    documented = load_contract(SPEC_DIR / "openapi.json")
    assert [op["operationId"] for op in content["operations"]] == [
        op["operationId"] for _path, _method, op in operations(documented)
    ]
    for operation in content["operations"]:
        assert operation["cases"] > 0 and operation["failures"] == 0
        assert any(status.startswith("2") for status in operation["statuses"]), operation
    assert content["failures"] == []
    assert token not in report.read_text()


def test_the_json_report_of_a_broken_server(tmp_path: Path) -> None:
    report = tmp_path / "check.json"
    with running(tmp_path, "create-200") as (url, token):
        result = run_check(url, token, "--phases", "examples", "--json-report", str(report))
    assert result.returncode == 1, result.stderr[-2000:]
    content = json.loads(report.read_text())
    assert content["verdict"]["outcome"] == "broken"
    assert "Undocumented status code" in content["verdict"]["cause"]
    assert content["phases"][0] == {"name": "examples", "status": "failure"}
    failures = [f for f in content["failures"] if f["check"] == "status_code_conformance"]
    assert failures and failures[0]["operationId"] == "Create a New Client Key"
    assert failures[0]["status"] == 200
    assert failures[0]["curl"].startswith("curl -X POST")
    assert "${CLIENTKEYS_CHECK_TOKEN}" in failures[0]["curl"] and token not in report.read_text()
    create = next(op for op in content["operations"] if op["label"].startswith("POST"))
    assert create["failures"] >= 1


# Progress -----------------------------------------------------------------------------------


def read_until(fd: int, pattern: re.Pattern[str] | None, seen: list[str]) -> re.Match[str] | None:
    """Read the terminal's output as it comes until `pattern` shows; None at its end (read to
    the end when there is no pattern)."""
    while True:
        ready, _, _ = select.select([fd], [], [], 120)
        assert ready, "no output for 120 s"
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed: the run is over
            return None
        if not chunk:
            return None
        seen.append(chunk.decode(errors="replace"))
        found = pattern.search("".join(seen)) if pattern is not None else None
        if found is not None:
            return found


def test_progress_shows_on_a_terminal_while_the_run_goes_on(
    good_server: tuple[str, str],
) -> None:
    url, token = good_server
    main, terminal = pty.openpty()
    env = {key: value for key, value in CHECK_ENV.items() if key != "NO_COLOR"}
    process = subprocess.Popen(check_command(url, token, "--phases", "examples,coverage"),
                               stdout=terminal, stderr=terminal, env=env)  # fmt: skip
    os.close(terminal)
    seen: list[str] = []
    try:
        status = re.compile(r"\r\x1b\[Kexamples: [^:\r\n]+: \d+ cases \(so far \d+ cases, ")
        assert read_until(main, status, seen), "".join(seen)[-3000:]
        # The status line showed before the run ended: the verdict has not come yet.
        assert "clientkeys check:" not in "".join(seen)
        assert read_until(main, re.compile(r"clientkeys check: .+\n"), seen)
        read_until(main, None, seen)
    finally:
        process.wait(timeout=120)
        os.close(main)
    output = "".join(seen)
    assert process.returncode == 0, output[-3000:]
    assert "coverage: " in output and "examples: success" in output
    assert f"{GREEN}0 failures" in output  # colour on a terminal without NO_COLOR
    # No stray tail of a wrapped line (" 1.15s)" was printed alone).
    assert not re.search(r"^\s*[\d.]+s\)\s*$", output, re.M), output


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


EVENTS = [
    ("PhaseStarted", {"phase": {"name": "probing"}}),
    ("PhaseStarted", {"phase": {"name": "fuzzing"}}),
    ("ScenarioFinished", {"recorder": {
        "label": "POST /keys/", "interactions": {"a": {}, "b": {}},
        "checks": {"a": [{"status": "success"}], "b": [{"status": "failure"}]},
    }}),
    ("ScenarioFinished", {"recorder": {"label": "Stateful tests", "interactions": {"c": {}}}}),
    ("PhaseFinished", {"phase": {"name": "fuzzing"}, "status": "failure"}),
]  # fmt: skip


def progress_of(stream: io.StringIO, no_color: str | None, monkeypatch: pytest.MonkeyPatch) -> str:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    progress = Progress.to(stream, {"POST /keys/": "Create a New Client Key"})
    for name, payload in EVENTS:
        progress.event(name, payload)
    return stream.getvalue()


def test_progress_is_plain_lines_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress_of(io.StringIO(), None, monkeypatch).splitlines() == [
        "fuzzing: started",
        "fuzzing: Create a New Client Key: 2 cases (so far 2 cases, 1 failure)",
        "fuzzing: failure (so far 3 cases, 1 failure)",
    ]


def test_progress_rewrites_one_line_on_a_terminal_in_colour_unless_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coloured = progress_of(Terminal(), None, monkeypatch)
    assert coloured == (
        f"{CLEAR_LINE}fuzzing: started"
        f"{CLEAR_LINE}fuzzing: Create a New Client Key: 2 cases (so far 2 cases, {RED}1 failure"
        f"\x1b[0m){CLEAR_LINE}fuzzing: Stateful tests: 1 cases (so far 3 cases, {RED}1 failure"
        f"\x1b[0m){CLEAR_LINE}fuzzing: failure (so far 3 cases, {RED}1 failure\x1b[0m)\n"
    )
    plain = progress_of(Terminal(), "1", monkeypatch)
    assert "\x1b[3" not in plain and plain.count(CLEAR_LINE) == 4
