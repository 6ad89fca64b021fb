"""The pytest plugin works for a suite outside the package, in parallel, as the README shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pg
from clientkeys.store import backend as store
from conftest import BACKENDS

USAGE = Path(__file__).parents[1] / "plugin_usage"


@pytest.mark.parametrize("backend", BACKENDS)
def test_usage_suite_passes_in_parallel_with_its_own_servers(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """On SQLite files, and with `--clientkeys-database` naming a PostgreSQL server (each
    server and app gets a database of its own there, dropped at the end)."""
    option, last_oid = [], 0
    if backend == "postgres":
        server: pg.PostgresServer = request.getfixturevalue("postgres_server")
        option, last_oid = ["--clientkeys-database", server.url], newest_oid(server)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider",
         "-c", os.devnull, "--rootdir", str(USAGE), "--confcutdir", str(USAGE),
         "--basetemp", str(tmp_path / "base"), *option, str(USAGE)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    tests = len(re.findall(r"^def test_", (USAGE / "test_with_clientkeys.py").read_text(), re.M))
    assert f"{tests} passed" in result.stdout
    if backend == "postgres":
        with store.connect(server.url) as conn:
            names = conn.execute("SELECT datname FROM pg_database", []).fetchall()
        assert not [name for (name,) in names if name.startswith("clientkeys_pytest_")]  # gone
        # ... but they were there: databases and their tables took object ids on this server
        assert newest_oid(server) - last_oid > 20


def newest_oid(server: pg.PostgresServer) -> int:
    """The object id of a database made now: the server's counter, which every database,
    table and index made on it advances."""
    url = server.new_database()
    name = url.rsplit("/", 1)[1]
    with store.connect(server.url) as conn:
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = ?", [name]).fetchone()
        conn.execute(f'DROP DATABASE "{name}"', [])
    return int(oid[0])


STRICT_SUITE = {
    "pyproject.toml": '[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n',
    "test_strict.py": """
import requests


def test_a_real_server(clientkeys_server):
    created = requests.post(clientkeys_server.keys_url, json={"name": "CI"},
                            headers=clientkeys_server.headers("write"))
    assert created.status_code == 201
    assert [e["status"] for e in clientkeys_server.journal()] == [201]


def test_the_app_in_process(clientkeys_app):
    app = clientkeys_app
    created = app.client.post(app.keys_url, json={"name": "CI"}, headers=app.headers("write"))
    assert created.status_code == 201
    listed = app.client.get(app.keys_url, headers=app.headers("read")).json()
    assert [key["name"] for key in listed] == ["CI"]
    app.reset()
    assert app.client.get(app.keys_url, headers=app.headers("read")).json() == []
""",
}


def test_a_suite_that_turns_warnings_into_errors_uses_both_fixtures(tmp_path: Path) -> None:
    for name, text in STRICT_SUITE.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--basetemp", str(tmp_path / "base")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout and "warning" not in result.stdout.lower()
