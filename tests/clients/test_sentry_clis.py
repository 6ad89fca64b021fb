"""Sentry's own command-line tools, unchanged, against a live clientkeys on each backend: the new
`sentry` CLI (npm `sentry`) and `sentry-cli` (npm `@sentry/cli`), as `make clients` installs
them into tests/clients/tools/. Each command must exit 0 and print what the server holds (read
back from its API). The token comes from `clientkeys token create`, so the new CLI finds the
server from the token alone: no `SENTRY_URL` is set anywhere here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clientkeys.core import domain
from clientkeys.store import backend as store
from clientkeys.store import repository
from clientkeys.testing import runner
from clientkeys.testing.runner import clientkeys_command, free_port
from conftest import BACKENDS, new_database

TOOLS = Path(__file__).parent / "tools" / "node_modules" / ".bin"
SENTRY, SENTRY_CLI = TOOLS / "sentry", TOOLS / "sentry-cli"
SECONDS = 60
"""A command's limit: each takes well under a second here; a hang must not stall the suite."""


@dataclass
class Live:
    """A live clientkeys with acme (projects web, with two keys, and api) and globex (shop),
    and a token for acme made by `clientkeys token create`."""

    url: str
    token: str

    def api(self, path: str) -> Any:
        """What the server holds, through its own API, with the token."""
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=SECONDS) as response:
            return json.load(response)

    def dsns(self, project: str) -> set[str]:
        return {key["dsn"]["public"] for key in self.api(f"/api/0/projects/acme/{project}/keys/")}


def seed(database: Path | str) -> None:
    store.init_db(database)
    with store.connect(database) as conn:
        repository.insert_organization(conn, "acme", "Acme")
        repository.insert_organization(conn, "globex", "Globex")
        web = repository.insert_project(conn, "acme", "web", "Web")
        repository.insert_project(conn, "acme", "api", "API")
        repository.insert_project(conn, "globex", "shop", "Shop")
        repository.insert_key(conn, web["id"], domain.new_key(name="Backend"))


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    missing = [tool.name for tool in (SENTRY, SENTRY_CLI) if not os.access(tool, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed in {TOOLS}: run `make clients`")
    folder = tmp_path_factory.mktemp("clients")
    database = new_database(request, request.param, folder)
    seed(database)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    made = subprocess.run(
        [sys.executable, "-m", "clientkeys", "token", "create", "--org", "acme", "--url", url,
         "--database", str(database)],
        capture_output=True, text=True, check=True, timeout=SECONDS,
    )  # fmt: skip
    command = clientkeys_command("serve", port, "--database", str(database), "--workers", "1",
                                 "--log-level", "warning")  # fmt: skip
    with runner.running(command, port, folder / "server.log") as server:
        yield Live(server.url, made.stdout.strip())


@pytest.fixture
def run(live: Live, tmp_path: Path) -> Any:
    """Run a tool in an empty folder (nothing there to detect a DSN from), with a home and
    configuration of this test's own and the token as the only way to the server."""
    home = tmp_path / "home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}

    def run(tool: Path, *args: str, **env: str) -> str:
        result = subprocess.run(
            [str(tool), *args], cwd=home, capture_output=True, text=True, timeout=SECONDS,
            env={**base, "HOME": str(home), "SENTRY_CONFIG_DIR": str(home / ".sentry"),
                 "SENTRY_AUTH_TOKEN": live.token, "SENTRY_CLI_NO_TELEMETRY": "1",
                 "SENTRY_DISABLE_UPDATE_CHECK": "1", "NO_COLOR": "1", **env},
        )  # fmt: skip
        assert result.returncode == 0, f"{tool.name} {' '.join(args)}:\n{result.stderr}"
        assert "SENTRY_URL" not in result.stdout
        return result.stdout

    return run


def test_sentry_org_list_and_view(live: Live, run: Any) -> None:
    listed = run(SENTRY, "org", "list")
    assert "acme" in listed and "Acme" in listed
    assert "globex" not in listed  # the token's own organization only
    viewed = run(SENTRY, "org", "view", "acme")
    organization = live.api("/api/0/organizations/acme/")
    assert organization["name"] in viewed and f"│ {organization['id']} " in viewed


@pytest.mark.parametrize("target", [(), ("acme/",)])
def test_sentry_project_list(live: Live, run: Any, target: tuple[str, ...]) -> None:
    listed = run(SENTRY, "project", "list", *target)
    for project in live.api("/api/0/organizations/acme/projects/"):
        assert project["slug"] in listed and project["name"] in listed
    assert "shop" not in listed


def test_sentry_project_view_shows_its_dsn(live: Live, run: Any) -> None:
    viewed = run(SENTRY, "project", "view", "acme/web")
    assert "Web" in viewed and "Acme (acme)" in viewed
    assert any(dsn in viewed for dsn in live.dsns("web"))


def test_sentry_dsn_list_of_a_project(live: Live, run: Any) -> None:
    listed = run(SENTRY, "dsn", "list", "acme/web")
    assert all(dsn in listed for dsn in live.dsns("web"))
    assert not any(dsn in listed for dsn in live.dsns("api"))
    as_json = json.loads(run(SENTRY, "dsn", "list", "acme/web", "--json"))
    assert {row["dsn"] for row in as_json["data"]} == live.dsns("web")
    assert {row["name"] for row in as_json["data"]} == {"Default", "Backend"}


def test_sentry_dsn_list_pages_with_limit_and_cursor(live: Live, run: Any) -> None:
    first = json.loads(run(SENTRY, "dsn", "list", "acme/web", "--limit", "1", "--json"))
    assert len(first["data"]) == 1 and first["hasMore"] is True
    second = json.loads(
        run(SENTRY, "dsn", "list", "acme/web", "--limit", "1", "--cursor", "next", "--json")
    )
    assert len(second["data"]) == 1 and second["hasMore"] is False
    raw = json.loads(run(SENTRY, "dsn", "list", "acme/web", "--limit", "1", "--cursor",
                         first["nextCursor"], "--json"))  # fmt: skip
    assert raw["data"] == second["data"]
    assert {row["dsn"] for row in first["data"] + second["data"]} == live.dsns("web")


def test_sentry_dsn_list_of_an_organization(live: Live, run: Any) -> None:
    listed = run(SENTRY, "dsn", "list", "acme/")
    for dsn in live.dsns("web") | live.dsns("api"):
        assert dsn in listed


def test_sentry_dsn_list_finds_the_project_of_sentry_dsn(live: Live, run: Any) -> None:
    dsn = sorted(live.dsns("api"))[0]
    listed = run(SENTRY, "dsn", "list", SENTRY_DSN=dsn)
    assert dsn in listed and "acme/api" in listed
    assert not any(other in listed for other in live.dsns("web"))


def test_sentry_cli_info_shows_the_server_and_the_tokens_scopes(live: Live, run: Any) -> None:
    info = run(SENTRY_CLI, "info")
    assert f"Sentry Server: {live.url}" in info
    for scope in live.api("/api/0/")["auth"]["scopes"]:
        assert f"- {scope}" in info


def test_sentry_cli_organizations_list(live: Live, run: Any) -> None:
    listed = run(SENTRY_CLI, "organizations", "list")
    [organization] = live.api("/api/0/organizations/")
    assert f"| {organization['id']} " in listed and "| Acme " in listed and "| acme " in listed


def test_sentry_cli_projects_list(live: Live, run: Any) -> None:
    listed = run(SENTRY_CLI, "projects", "list")
    for project in live.api("/api/0/organizations/acme/projects/"):
        assert f"| {project['id']} " in listed and f"| {project['slug']} " in listed
    assert "shop" not in listed
