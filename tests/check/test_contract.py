"""Schemathesis proves the server keeps its contract, and `clientkeys check` cannot go falsely
green.

In process over ASGI (fast, per operation); then `clientkeys check` against live servers on
free loopback ports: a good one (exit 0, really exercised), misconfigured runs (exit 2 with a
one-line cause), and every kind of broken server in tests/broken_server.py (exit 1, with a
report whose curl commands reproduce the failure).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from broken_server import ORG, PROJECT, running, seed
from clientkeys.check import contract
from clientkeys.check.observations import Observations, Operation, curl
from clientkeys.config import Settings
from clientkeys.core import domain
from clientkeys.server.app import create_app
from clientkeys.store import repository
from clientkeys.store import sqlite as db
from clientkeys.testing.plugin import free_port, serving

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "40"))
OPERATIONS = ("List a Project's Client Keys", "Create a New Client Key", "Retrieve a Client Key",
              "Update a Client Key", "Delete a Client Key")  # fmt: skip
CLI_OPERATIONS = ("Retrieve an Organization", "List an Organization's Projects",
                  "List an Organization's Client Keys", "Retrieve a Project")  # fmt: skip
"""What Sentry's CLIs read under an organization: 403 and 404 documented, as for the keys."""
EVERY_OPERATION = (*OPERATIONS, "Retrieve the API Index", "List Your Organizations",
                   *CLI_OPERATIONS[:3], "List Your Projects", CLI_OPERATIONS[3],
                   "List Your Regions")  # fmt: skip


def contract_config(token: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_str(contract.schemathesis_config(ORG, PROJECT, token))


_folder = tempfile.mkdtemp(prefix="clientkeys-contract-")
_settings = Settings(database=Path(_folder) / "contract.db")
TOKEN = seed(_settings.database)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(_settings), config=contract_config(TOKEN)
)


@pytest.mark.fuzz
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_in_process(case: schemathesis.Case) -> None:
    response = case.call_and_validate()
    if case.meta is not None and case.meta.generation.mode.is_positive:
        # The configured token is on every valid case: none may be refused as unauthenticated.
        assert response.status_code != 401, "a valid case went without the token"


# clientkeys check against live servers ----------------------------------------------------------


def serve_command(port: int, database: Path) -> list[str]:
    return [sys.executable, "-m", "clientkeys", "serve", "--port", str(port),
            "--database", str(database), "--log-level", "warning", "--workers", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A good server: URL, an all-scopes token, and one of another organization (403 here)."""
    folder = tmp_path_factory.mktemp("live")
    token = seed(folder / "live.db")
    with db.connect(folder / "live.db") as conn:
        repository.insert_organization(conn, "elsewhere")
        other, _ = repository.insert_token(conn, "elsewhere", domain.SCOPES)
    port = free_port()
    with serving(serve_command(port, folder / "live.db"), port, folder / "server.log") as url:
        yield url, token, other


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory for `clientkeys check`, to prove it writes nothing there."""
    (tmp_path / "cwd").mkdir()
    return tmp_path / "cwd"


def run_check(
    url: str,
    token: str,
    *extra: str,
    project: str = PROJECT,
    cwd: Path | None = None,
    examples: int = 5,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clientkeys", "check", url, "--token", token, "--org", ORG,
         "--project", project, "--max-examples", str(examples), "--seed", "1", *extra],
        capture_output=True, text=True, timeout=600, cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1"},
    )  # fmt: skip


def cause(result: subprocess.CompletedProcess[str]) -> str:
    """The last line of stderr: the verdict and its one-line cause."""
    return result.stderr.strip().splitlines()[-1]


def coverage_line(result: subprocess.CompletedProcess[str], operation: str) -> str:
    """The summary line of an operation: cases, statuses seen and not seen."""
    lines = result.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{operation}  ("))
    return lines[index + 1]


@pytest.mark.fuzz
def test_a_really_exercised_server_passes_with_reports_and_no_stray_files(
    live_server: tuple[str, str, str], tmp_path: Path, workdir: Path
) -> None:
    url, token, other = live_server
    junit, har = tmp_path / "reports" / "junit.xml", tmp_path / "reports" / "run.har"
    result = run_check(url, token, "--junit-xml", str(junit), "--har", str(har),
                       "--require", "all", "--forbidden-token", other,
                       examples=EXAMPLES // 4, cwd=workdir)  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # Every phase ran, the stateful one along the spec's links (create -> read/update/delete).
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in result.stdout, result.stdout[-3000:]
    assert "API Links:" in result.stdout
    assert re.search(
        rf"{re.escape(url)} keeps the contract: \d+ requests, every operation answered a "
        r"documented 2xx, --require all met$",
        cause(result),
    )
    # The probes reach what generated cases cannot: 403 (the other organization's token), 404
    # (an unknown organization), 413 (a 1 MiB body), 414 and 431 (a 32 KiB target or header);
    # nothing asks for a 5xx (a full disk, a read-only database).
    for operation in OPERATIONS:
        line = coverage_line(result, operation)
        seen = r"\d+ cases; seen 20[014]×\d+.*403×1, 404×.*414×1, (415×\d+, )?431×1"
        assert re.search(seen, line), line
        assert re.search(r"; every documented status but 503(, 507)? \(the server's own", line)
    assert "413×1" in coverage_line(result, "Create a New Client Key")
    cases = ElementTree.parse(junit).getroot().findall(".//testcase")
    per_operation = Counter(case.get("classname") for case in cases)
    assert set(per_operation) == set(EVERY_OPERATION)
    names = {case.get("name") for case in cases}
    assert {"status_code_conformance", "response_schema_conformance", "use_after_free",
            "documented 2xx answered", "require all", "probe: unknown organization",
            "probe: oversized body", "probe: forbidden token", "probe: unknown query parameter",
            "probe: long request target", "probe: long header fields"} <= names  # fmt: skip
    assert not [case for case in cases if case.find("failure") is not None]
    assert not [case for case in cases if case.find("error") is not None]
    assert token not in har.read_text() and "CLIENTKEYS_CHECK_TOKEN" in har.read_text()
    assert token not in result.stdout + result.stderr and other not in result.stderr
    assert list(workdir.iterdir()) == []


@pytest.mark.fuzz
def test_an_unmet_requirement_is_exit_2_naming_what_was_never_answered(
    live_server: tuple[str, str, str],
) -> None:
    url, token, _ = live_server  # without a forbidden token, nothing answers 403
    result = run_check(url, token, "--phases", "examples", "--require", "403")
    assert result.returncode == 2, result.stdout[-4000:]
    assert cause(result).endswith(
        "coverage below --require 403: "
        + "; ".join(f"{operation} never answered 403" for operation in OPERATIONS + CLI_OPERATIONS)
    )
    assert "not seen 403" in coverage_line(result, "Retrieve a Client Key")


@pytest.mark.fuzz
def test_a_rejected_token_is_exit_2(live_server: tuple[str, str, str]) -> None:
    url, _, _ = live_server
    result = run_check(url, "sntrys_not_a_real_token_0000", "--phases", "examples")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the token was rejected: all" in cause(result)
    assert "answered 401 or 403" in cause(result)


@pytest.mark.fuzz
def test_a_missing_project_is_exit_2(live_server: tuple[str, str, str]) -> None:
    url, token, _ = live_server
    result = run_check(url, token, "--phases", "examples", project="no-such-project")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"organization '{ORG}' or project 'no-such-project' not found" in cause(result)


def test_an_unreachable_server_is_exit_2(workdir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_check(url, "sntrys_token_0000", cwd=workdir)
    assert result.returncode == 2
    assert cause(result) == (
        f"clientkeys check: could not really test {url}: cannot reach {url}: Connection refused"
    )
    assert list(workdir.iterdir()) == []


@pytest.mark.fuzz
def test_an_operation_that_never_reached_2xx_is_exit_2(tmp_path: Path) -> None:
    # Every delete answers a documented 404, so no check fails: only the coverage shows that
    # delete was never exercised.
    with running(tmp_path, "delete-404") as (url, token):
        result = run_check(url, token, "--phases", "examples")
    assert result.returncode == 2, result.stdout[-4000:]
    assert re.search(
        r"1 operation never answered a documented 2xx: Delete a Client Key \(answered 404×\d+; "
        r"every valid request named something that does not exist\)$",
        cause(result),
    )
    assert "not seen 204, 400, 401, 403, 414, 431 but 503, 507" in coverage_line(
        result, "Delete a Client Key"
    )


def phases_run(report: str) -> dict[str, bool]:
    """The "Test Phases:" block of Schemathesis's report: phase -> whether it ran."""
    block = report[report.index("Test Phases:") :].split("\n\n")[0]
    return {
        line.split(maxsplit=1)[1].split(" (")[0]: not line.startswith("⏭")
        for line in map(str.strip, block.splitlines()[1:])
    }


@pytest.mark.fuzz
def test_check_runs_only_the_phases_asked_for(live_server: tuple[str, str, str]) -> None:
    url, token, _ = live_server
    result = run_check(url, token, "--phases", "examples")
    assert phases_run(result.stdout) == {
        "Examples": True, "Coverage": False, "Fuzzing": False, "Stateful": False,
    }, result.stdout[-3000:]  # fmt: skip


@pytest.mark.fuzz
@pytest.mark.parametrize(
    ("kind", "check", "finding", "phases"),
    [
        ("no-link", "response_headers_conformance", "Missing required response headers", ""),
        ("create-200", "status_code_conformance", "Undocumented status code", ""),
        ("wrong-type", "response_schema_conformance", "Response violates schema", ""),
        ("crash", "not_a_server_error", "Server error", ""),
        ("problem-json", "content_type_conformance", "Undocumented Content-Type", ""),
        ("ignore-auth", "ignored_auth", "API accepts requests without authentication", ""),
        # Only invalid data shows it: the examples are valid.
        (
            "accept-invalid",
            "negative_data_rejection",
            "Schema-violating request accepted",
            ",fuzzing",
        ),
    ],
)
def test_a_broken_server_is_exit_1_with_a_readable_report(
    tmp_path: Path, workdir: Path, kind: str, check: str, finding: str, phases: str
) -> None:
    junit = tmp_path / "junit.xml"
    with running(tmp_path, kind) as (url, token):
        result = run_check(url, token, "--phases", "examples" + phases, "--junit-xml", str(junit),
                           cwd=workdir)  # fmt: skip
        assert list(workdir.iterdir()) == []  # no failures cached where it runs
        assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-1000:]
        assert f"{url} BREAKS the contract: " in cause(result)
        assert finding in cause(result), cause(result)
        report = result.stdout[result.stdout.index("Contract violations:") :]
        assert re.search(rf"\d\. [^\n]+: {check} - ST\d+ {re.escape(finding)}", report), report
        failures = [
            case for case in ElementTree.parse(junit).getroot().iter("testcase")
            if case.get("name") == check and case.find("failure") is not None
        ]  # fmt: skip
        assert failures, f"no failing {check} test case in the JUnit report"
        command_line = re.search(r"Reproduce with:\n(curl .+)", failures[0].findtext("failure", ""))
        assert command_line is not None
        again = replay(command_line.group(1), token)
    assert again.returncode == 0, again.stderr
    status = int(again.stdout.strip().rsplit("\n", 1)[-1])
    assert f"Answered {status}." in failures[0].findtext("failure", "")


def replay(command: str, token: str) -> subprocess.CompletedProcess[str]:
    """Run a reported curl command in a shell, printing the status it gets."""
    return subprocess.run(
        ["sh", "-c", f"{command} -s -o /dev/null -w '\\n%{{http_code}}'"],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "CLIENTKEYS_CHECK_TOKEN": token},
    )  # fmt: skip


# The verdict rules on their own -----------------------------------------------------------------


def observed(**statuses: dict[int, int]) -> Observations:
    """Observations of operations answering the given statuses to valid requests."""
    operations = {}
    for name, answered in statuses.items():
        op = Operation(label=name, operation_id=name, documented=("200", "400", "401", "404"))
        op.statuses.update(answered)
        op.positive.update(answered)
        op.cases = sum(answered.values())
        operations[name] = op
    return Observations(operations=operations, finished=True)


def test_verdict_needs_a_documented_2xx_from_every_operation() -> None:
    seen = observed(list={200: 3, 400: 2}, retrieve={404: 7})
    verdict = contract.verdict(seen, 0, ORG, PROJECT)
    assert verdict.code == 2
    assert verdict.cause == (
        "1 operation never answered a documented 2xx: retrieve (answered 404×7; every valid "
        "request named something that does not exist)"
    )


def test_require_names_each_documented_status_never_answered() -> None:
    seen = observed(list={200: 3, 400: 2, 401: 1}, retrieve={200: 1, 404: 7})
    unmet = contract.unmet_requirements(seen, ["all-4xx"])
    assert unmet == ["list never answered 404", "retrieve never answered 400, 401"]
    verdict = contract.verdict(seen, 0, ORG, PROJECT, unmet, ["all-4xx"])
    assert verdict == contract.Verdict(2, "coverage below --require all-4xx: " + "; ".join(unmet))
    assert contract.verdict(seen, 0, ORG, PROJECT).code == 0


def test_a_nonzero_schemathesis_exit_is_never_reported_as_a_pass() -> None:
    seen = observed(list={200: 3})
    assert contract.verdict(seen, 1, ORG, PROJECT).code == 1


def test_curl_sends_binary_bodies_byte_for_byte_and_reads_the_token_from_the_environment(
    tmp_path: Path,
) -> None:
    body = {"$base64": "gP8lXA=="}  # b"\x80\xff%\\": not UTF-8, and printf's specials
    request = {"method": "POST", "uri": "http://127.0.0.1:1/x?a=1&b=2",
               "headers": {"Authorization": ["Bearer s3cret-token"]}, "body": body}  # fmt: skip
    command = curl(request, "s3cret-token")
    assert "s3cret-token" not in command
    printed = subprocess.run(
        ["sh", "-c", command.split(" | ")[0]], capture_output=True, check=True
    ).stdout
    assert printed == b"\x80\xff%\\"
    assert '"Authorization: Bearer ${CLIENTKEYS_CHECK_TOKEN}"' in command
