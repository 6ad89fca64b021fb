"""pytest plugin: a clientkeys server for your tests, seeded and reset for each test.

Installed with clientkeys (entry point `pytest11`); its fixtures are there in any suite:

- `clientkeys_server`: a real `clientkeys serve` on a free loopback port with its own database
  in a temporary folder, one per test process (pytest-xdist workers never share one), emptied
  before each test. Use it with any HTTP client.
- `clientkeys_app`: the same API in process (no socket, no subprocess), a fresh database per
  test; `.client` is a Starlette test client with the `requests` API.

Both store in SQLite files in temporary folders, unless `--clientkeys-database URL` (or the
ini option `clientkeys_database`) names a PostgreSQL server: then each gets a database of its
own there (created and dropped by the plugin; the URL's role needs CREATEDB), and needs the
postgres extra.

Both work in suites that turn warnings into errors (`-W error`, `filterwarnings = ["error"]`).

Both hand the test a `ClientKeys`: `base_url`, `org`, `project`, `keys_url`, `tokens`
("read", "write", "admin"), `headers(kind)`, `reset()` and `journal()`.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clientkeys.testing.runner import clientkeys_command

# Re-exported: suites and the Makefile found them here before the runner had them.
from clientkeys.testing.runner import free_port as free_port
from clientkeys.testing.runner import serving as serving

ORG, PROJECT = "acme", "web"
SCOPES = {
    "read": ["project:read"],
    "write": ["project:read", "project:write"],
    "admin": ["project:read", "project:write", "project:admin"],
}


@dataclass
class ClientKeys:
    """A seeded clientkeys: an organization, a project without keys, and three tokens."""

    base_url: str
    tokens: dict[str, str]
    admin_token: str
    org: str = ORG
    project: str = PROJECT
    client: Any = field(default=None, repr=False)
    """For `clientkeys_app`: a test client (requests API) bound to the in-process app."""

    @property
    def keys_url(self) -> str:
        """The project's keys endpoint."""
        return f"{self.base_url}/api/0/projects/{self.org}/{self.project}/keys/"

    def key_url(self, key_id: str) -> str:
        """One key's endpoint."""
        return f"{self.keys_url}{key_id}/"

    def headers(self, kind: str = "admin") -> dict[str, str]:
        """`Authorization` for the "read", "write" (read + write) or "admin" (all) token."""
        return {"Authorization": f"Bearer {self.tokens[kind]}"}

    def _admin(self, method: str, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        if self.client is not None:
            response = self.client.request(method, f"/__admin{path}", headers=headers)
            response.raise_for_status()
            return response.json()
        request = urllib.request.Request(
            f"{self.base_url}/__admin{path}", method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        """Delete every key (and the journal); the organization, project and tokens stay."""
        self._admin("POST", "/reset")

    def journal(self) -> list[dict[str, Any]]:
        """The requests the server received, oldest first: method, path, query, status,
        and whether each passed validation."""
        entries: list[dict[str, Any]] = self._admin("GET", "/requests?limit=10000")["requests"]
        return entries


def fixtures_for(tokens: dict[str, str]) -> dict[str, Any]:
    """The seed, in `clientkeys serve --fixtures` form."""
    return {
        "organizations": [{"slug": ORG, "projects": [{"slug": PROJECT, "keys": []}]}],
        "tokens": [
            {"token": token, "org": ORG, "scopes": SCOPES[kind], "label": f"pytest {kind}"}
            for kind, token in tokens.items()
        ],
    }


def new_tokens() -> dict[str, str]:
    return {kind: f"sntrys_pytest_{kind}_{secrets.token_hex(16)}" for kind in SCOPES}


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = (
        "PostgreSQL server (postgresql:// URL, a role with CREATEDB) on which the clientkeys "
        "fixtures create a database each; default: SQLite files in temporary folders"
    )
    parser.getgroup("clientkeys").addoption("--clientkeys-database", default=None, help=help_text)
    parser.addini("clientkeys_database", help_text, default="")


@contextmanager
def fresh_database(config: pytest.Config, folder: Path) -> Iterator[Path | str]:
    """A new, empty database for one server or app: a SQLite file in `folder`, or a database
    created on the configured PostgreSQL server (dropped at the end)."""
    server = config.getoption("clientkeys_database") or config.getini("clientkeys_database")
    if not server:
        yield folder / "clientkeys.db"
        return
    from clientkeys.store import postgres

    url = postgres.create_database(str(server), f"clientkeys_pytest_{secrets.token_hex(8)}")
    try:
        yield url
    finally:
        postgres.drop_database(str(server), url)


@pytest.fixture(scope="session")
def clientkeys_live_server(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClientKeys]:
    """One real server per test process; prefer `clientkeys_server`, which also resets it."""
    folder = tmp_path_factory.mktemp("clientkeys")
    tokens, admin_token = new_tokens(), secrets.token_hex(16)
    (folder / "fixtures.json").write_text(json.dumps(fixtures_for(tokens)))
    port = free_port()
    command = clientkeys_command(
        "serve", port, "--fixtures", str(folder / "fixtures.json"), "--admin-token", admin_token,
        "--log-level", "warning", "--workers", "1",
    )  # fmt: skip
    with fresh_database(pytestconfig, folder) as database:
        # The database in the environment: a URL's password stays off the command line.
        env = {"CLIENTKEYS_DATABASE": str(database)}
        with serving(command, port, folder / "server.log", env) as url:
            yield ClientKeys(base_url=url, tokens=tokens, admin_token=admin_token)


@pytest.fixture
def clientkeys_server(clientkeys_live_server: ClientKeys) -> ClientKeys:
    """A real clientkeys server, emptied for this test (no keys; org, project, tokens kept)."""
    clientkeys_live_server.reset()
    return clientkeys_live_server


@contextmanager
def _quiet_dependencies() -> Iterator[None]:
    """Silence the warnings clientkeys' own dependencies raise when the app is imported and
    built (Connexion's use of jsonschema's RefResolver, Starlette's test client on httpx), so
    that a suite run with `-W error` or `filterwarnings = ["error"]` sees none of them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="connexion")
        warnings.filterwarnings("ignore", message=".*RefResolver.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        yield


@pytest.fixture
def clientkeys_app(pytestconfig: pytest.Config, tmp_path: Path) -> Iterator[ClientKeys]:
    """The API in process with a fresh database: fast, no socket. Use `.client`."""
    with fresh_database(pytestconfig, tmp_path) as database:
        with _quiet_dependencies():
            from clientkeys.config import Settings
            from clientkeys.server.app import create_app
            from clientkeys.store import backend as store
            from clientkeys.store import fixtures, repository

            tokens, admin_token = new_tokens(), secrets.token_hex(16)
            settings = Settings(database=database, admin_token=admin_token)
            app = create_app(settings)
            with store.connect(settings.database) as conn:
                fixtures.apply(conn, fixtures_for(tokens))
                repository.save_start_state(conn)
            client_context = app.test_client()
        with client_context as client:
            yield ClientKeys(
                base_url="http://testserver", tokens=tokens, admin_token=admin_token, client=client
            )
