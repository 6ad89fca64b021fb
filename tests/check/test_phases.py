"""check's own phases: authorization by role and the effects of writes, against live servers.

Each server in tests/broken_server.py that breaks one thing Schemathesis's response checks
cannot see (another organization's token accepted, scopes ignored, an update, a delete, a create
or a deactivation lost) makes `clientkeys check` exit 1 naming the operation, the role and what
changed; a correct clientkeys exits 0. These run check's own phases alone (`--phases
authorization,effects`, a few dozen requests, about a second each), not a Schemathesis run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from xml.etree import ElementTree

import pytest

from broken_server import ORG, PROJECT, role_tokens, running, seed
from clientkeys.config import Settings
from clientkeys.core import domain
from clientkeys.openapi import specs as openapi
from clientkeys.store import repository
from clientkeys.store import sqlite as db
from clientkeys.testing.runner import free_port, serving

OWN = "authorization,effects"
PAGE = 100
"""Keys in a listing's page when it names no per_page (clientkeys' default)."""
OPERATIONS = ("List a Project's Client Keys", "Create a New Client Key", "Retrieve a Client Key",
              "Update a Client Key", "Delete a Client Key")  # fmt: skip


class Good(NamedTuple):
    """A correct clientkeys: URL, the full token, another organization's, a read-only one."""

    url: str
    token: str
    other: str
    read_only: str
    database: Path


def run_check(url: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clientkeys", "check", url, "--token", token, "--org", ORG,
         "--project", PROJECT, *extra],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1"},
    )  # fmt: skip


def cause(result: subprocess.CompletedProcess[str]) -> str:
    """The last line of stderr: the verdict and its one-line cause."""
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def good_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Good]:
    folder = tmp_path_factory.mktemp("phases")
    token = seed(folder / "good.db")
    other, read_only = role_tokens(folder / "good.db")
    with db.connect(folder / "good.db") as conn:
        # More keys than a page holds: every listing check reads back follows the Link header.
        project = repository.get_project(conn, ORG, PROJECT)["id"]
        for number in range(PAGE + 5):
            repository.insert_key(conn, project, domain.new_key(name=f"older key {number}"))
    port = free_port()
    command = [sys.executable, "-m", "clientkeys", "serve", "--port", str(port), "--database",
               str(folder / "good.db"), "--log-level", "warning", "--workers", "1"]  # fmt: skip
    with serving(command, port, folder / "server.log") as url:
        yield Good(url, token, other, read_only, folder / "good.db")


def test_a_correct_server_passes_both_phases_with_every_role(
    good_server: Good, tmp_path: Path
) -> None:
    url, token, other, read_only, _ = good_server
    junit = tmp_path / "junit.xml"
    result = run_check(url, token, "--phases", OWN, "--forbidden-token", other,
                       "--read-only-token", read_only, "--require", "authorization",
                       "--junit-xml", str(junit))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    cases = ElementTree.parse(junit).getroot().findall(".//testcase")
    ran = {(case.get("classname"), case.get("name")) for case in cases
           if case.find("skipped") is None}  # fmt: skip
    for operation in OPERATIONS:
        assert {(operation, "authorization"), (operation, "effects")} <= ran
    assert ("clientkeys check", "require authorization") in ran
    assert not [case for case in cases if case.find("failure") is not None]
    assert not [case for case in cases if case.find("error") is not None]
    assert re.search(
        rf"{re.escape(url)} keeps the contract: \d+ requests, every operation answered a "
        r"documented 2xx, --require authorization met$",
        cause(result),
    )
    assert other not in result.stdout + result.stderr
    assert read_only not in result.stdout + result.stderr


def test_without_role_tokens_the_verdict_says_authorization_was_not_tested(
    good_server: Good, tmp_path: Path
) -> None:
    url, token, _, _, _ = good_server
    result = run_check(url, token, "--phases", OWN)
    assert result.returncode == 0, result.stderr[-2000:]
    assert cause(result).endswith(
        "; authorization not tested (give --forbidden-token and --read-only-token)"
    )
    junit = tmp_path / "junit.xml"
    required = run_check(url, token, "--phases", OWN, "--require", "authorization",
                         "--junit-xml", str(junit))  # fmt: skip
    assert required.returncode == 2, required.stderr[-2000:]
    errors = [case.get("name") for case in ElementTree.parse(junit).getroot().iter("testcase")
              if case.find("error") is not None]  # fmt: skip
    assert errors == ["require authorization"]
    assert cause(required).endswith(
        "--require authorization: authorization not tested (give --forbidden-token and "
        "--read-only-token)"
    )


def test_an_unknown_role_token_is_exit_2_not_a_broken_server(
    good_server: Good,
) -> None:
    url, token, _, _, _ = good_server
    result = run_check(url, token, "--phases", OWN, "--read-only-token", "sntrys_unknown_00000")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the read-only token was rejected as unknown (401 on List a Project's Client Keys)" in (
        cause(result)
    )


def test_a_read_only_token_that_may_not_read_is_exit_2(good_server: Good) -> None:
    url, token, _, _, database = good_server
    with db.connect(database) as conn:
        no_scopes, _ = repository.insert_token(conn, ORG, ())
    result = run_check(url, token, "--phases", OWN, "--read-only-token", no_scopes)
    assert result.returncode == 2, result.stderr[-2000:]
    assert cause(result).endswith(
        "authorization: the read-only token may not read (List a Project's Client Keys answered "
        "403): it needs project:read on the organization"
    )


def test_a_document_without_the_key_operations_is_not_tested_by_these_phases(
    good_server: Good, tmp_path: Path
) -> None:
    url, token, _, _, _ = good_server
    other = tmp_path / "other.json"
    other.write_text(json.dumps({
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"},
        "paths": {"/ping": {"get": {"operationId": "ping",
                                    "responses": {"200": {"description": "ok"}}}}},
    }))  # fmt: skip
    result = run_check(url, token, "--phases", OWN, "--spec", str(other))
    assert result.returncode == 2, result.stderr[-2000:]
    assert cause(result).endswith(
        "no request was sent: the document lacks the client key operations these phases use"
    )


def test_sentrys_current_description_is_read_back_too(good_server: Good, tmp_path: Path) -> None:
    """Sentry's own description names the operations in camelCase and the path parameters
    `organization_id_or_slug` and `project_id_or_slug`; the phases find them all the same."""
    url, token, other, read_only, _ = good_server
    text = json.dumps(openapi.bundle(Settings().spec_dir / "openapi.json"))
    renamed = {"organization_slug": "organization_id_or_slug",
               "project_slug": "project_id_or_slug"}  # fmt: skip
    camel = ("listProjectKeys", "createProjectKey", "getProjectKey", "updateProjectKey",
             "deleteProjectKey")  # fmt: skip
    renamed.update(zip(OPERATIONS, camel, strict=True))
    for old, new in renamed.items():
        text = text.replace(json.dumps(old), json.dumps(new)).replace("{" + old + "}",
                                                                      "{" + new + "}")  # fmt: skip
    sentrys = tmp_path / "sentry.json"
    sentrys.write_text(text)
    result = run_check(url, token, "--phases", OWN, "--spec", str(sentrys), "--forbidden-token",
                       other, "--read-only-token", read_only)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "every operation answered a documented 2xx" in cause(result)


BROKEN = [
    # Another organization's token goes through on every operation, and its writes land.
    ("other-org", [
        "List a Project's Client Keys with another organization's token: let through "
        "(answered 200, expected 403 or 404)",
        "Retrieve a Client Key with another organization's token: let through (answered 200",
        "Create a New Client Key with another organization's token: let through (answered 201, "
        "expected 403 or 404); created key ",
        "Update a Client Key with another organization's token: let through (answered 200, "
        'expected 403 or 404); stored name "clientkeys-check-authorization-',
        "Delete a Client Key with another organization's token: let through (answered 204, "
        "expected 403 or 404); key ",
    ]),
    # A project:read token may write.
    ("ignore-scopes", [
        "Create a New Client Key with the read-only token: let through (answered 201, "
        "expected 403); created key ",
        "Update a Client Key with the read-only token: let through (answered 200, expected "
        "403); stored name ",
        "Delete a Client Key with the read-only token: let through (answered 204, expected "
        "403); key ",
    ]),
    # Both roles refused with 403, and every refused write made all the same.
    ("refused-writes-land", [
        "Create a New Client Key with another organization's token: answered 403 but created "
        "key ",
        "Update a Client Key with another organization's token: answered 403 but stored name ",
        "Delete a Client Key with another organization's token: answered 403 but key ",
        "Create a New Client Key with the read-only token: answered 403 but created key ",
        "Update a Client Key with the read-only token: answered 403 but stored name ",
        "Delete a Client Key with the read-only token: answered 403 but key ",
    ]),
    ("update-not-stored", [
        "Update a Client Key: answered 200 but did not store name (sent "
        '"clientkeys-check-effects-',
    ]),
    ("delete-not-applied", [
        "Delete a Client Key: answered 204 but key ",
        "is still there (retrieve answered 200)",
        "is still listed",
    ]),
    ("create-not-listed", ["Create a New Client Key: created key ", " is not listed"]),
    ("deactivation-ignored", [
        "List a Project's Client Keys: deactivated key ",
        " (isActive: false) is still listed with status=active",
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "named"), BROKEN, ids=[kind for kind, _ in BROKEN])
def test_a_server_that_breaks_one_thing_is_exit_1_naming_it(
    tmp_path: Path, kind: str, named: list[str]
) -> None:
    with running(tmp_path, kind) as (url, token):
        other, read_only = role_tokens(tmp_path / "broken.db")
        result = run_check(url, token, "--phases", OWN, "--forbidden-token", other,
                           "--read-only-token", read_only)  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"{url} BREAKS the contract: " in cause(result)
    for words in named:
        assert words in cause(result), cause(result)
    # The report gives each failing request as a command, the token read from its variable.
    report = result.stdout[result.stdout.index("Contract violations:") :]
    assert "curl -X " in report
    assert token not in report and other not in report and read_only not in report
