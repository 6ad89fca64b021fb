"""Schemathesis proves the server keeps its contract: all checks, every operation, bounded.

Two runs: in process over ASGI (fast, per operation), and the Schemathesis CLI against a live
`clientkeys serve` on a free loopback port, with every phase and check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from clientkeys import contract, db, repository
from clientkeys.app import create_app
from clientkeys.config import Settings
from clientkeys.pytest_plugin import free_port, serving

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "40"))
ORG, PROJECT = "contract", "keys"
ALL_SCOPES = ["project:read", "project:write", "project:admin"]


def seed_database(path: Path) -> str:
    """A database with the contract organization and project; returns an all-scopes token."""
    db.init_db(path)
    with db.connect(path) as conn:
        repository.insert_organization(conn, ORG)
        repository.insert_project(conn, ORG, PROJECT)
        token, _ = repository.insert_token(conn, ORG, ALL_SCOPES)
    return token


def contract_config() -> SchemathesisConfig:
    return SchemathesisConfig.from_str(
        contract.CONFIG.format(org=f'"{ORG}"', project=f'"{PROJECT}"')
    )


_folder = tempfile.mkdtemp(prefix="clientkeys-contract-")
_settings = Settings(database=Path(_folder) / "contract.db")
TOKEN = seed_database(_settings.database)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(_settings), config=contract_config()
)


@pytest.mark.fuzz
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_in_process(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})


def serve_command(port: int, database: Path) -> list[str]:
    return [sys.executable, "-m", "clientkeys", "serve", "--port", str(port),
            "--database", str(database), "--log-level", "warning"]  # fmt: skip


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("live")
    token = seed_database(folder / "live.db")
    port = free_port()
    with serving(serve_command(port, folder / "live.db"), port, folder / "server.log") as url:
        yield url, token


def run_check(
    url: str, token: str, *extra: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clientkeys", "check", url, "--token", token, "--org", ORG,
         "--project", PROJECT, "--max-examples", str(EXAMPLES), "--seed", "1", *extra],
        capture_output=True, text=True, timeout=600, cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1"},
    )  # fmt: skip


@pytest.mark.fuzz
def test_live_server_passes_clientkeys_check(live_server: tuple[str, str], tmp_path: Path) -> None:
    url, token = live_server
    result = run_check(url, token, "--junit-xml", str(tmp_path / "junit.xml"))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # Every phase ran, the stateful one along the spec's links (create -> read/update/delete).
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in result.stdout, result.stdout[-3000:]
    assert "API Links:" in result.stdout
    assert f"{url} keeps the contract." in result.stderr
    report = (tmp_path / "junit.xml").read_text()
    assert "<testsuite" in report and 'failures="0"' in report


@pytest.mark.fuzz
@pytest.mark.parametrize(
    ("how", "finding"),
    [("no-link", "Missing required response headers"), ("create-200", "Undocumented status code")],
)
def test_check_fails_a_broken_server_with_a_clear_report(
    tmp_path: Path, how: str, finding: str
) -> None:
    token = seed_database(tmp_path / "broken.db")
    port = free_port()
    command = [sys.executable, str(Path(__file__).parent / "broken_server.py"), str(port),
               str(tmp_path / "broken.db"), how]  # fmt: skip
    with serving(command, port, tmp_path / "server.log") as url:
        result = run_check(url, token, "--phases", "examples,coverage", cwd=tmp_path)
    assert result.returncode == 1
    assert finding in result.stdout, result.stdout[-4000:]
    assert f"{url} BREAKS the contract." in result.stderr
    assert not (tmp_path / ".schemathesis").exists()  # failures are not cached where it runs
