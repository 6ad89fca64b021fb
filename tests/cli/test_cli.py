"""The command line: every command, and a clear message for every misuse; the commands that use
the store run on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clientkeys.cli import main
from clientkeys.config import Settings
from clientkeys.server.app import create_app
from clientkeys.store import backend as store
from clientkeys.store import repository
from clientkeys.store import sqlite as db
from clientkeys.testing.plugin import free_port
from live import Database


@pytest.fixture
def run(database: Database, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The CLI on a new database of each backend (named by CLIENTKEYS_DATABASE)."""
    monkeypatch.setenv("CLIENTKEYS_DATABASE", str(database))
    return invoke


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def rows(database: Database, sql: str) -> list[tuple[object, ...]]:
    with store.connect(database) as conn:
        return [tuple(row) for row in conn.execute(sql, []).fetchall()]


def test_help_lists_every_command() -> None:
    run = invoke
    result = run("--help")
    assert result.exit_code == 0
    for command in ("serve", "init-db", "org", "project", "token", "demo"):
        assert command in result.output
    assert "--public-url" in run("serve", "--help").output


def test_org_project_and_token_create(run, database: Database) -> None:  # type: ignore[no-untyped-def]
    assert run("org", "create", "acme", "--name", "Acme Inc").exit_code == 0
    result = run("project", "create", "web", "--org", "acme")
    assert result.exit_code == 0 and "Default" in result.output
    assert rows(database, "SELECT label FROM keys") == [("Default",)]
    result = run("token", "create", "--org", "acme", "--scopes", "project:read")
    assert result.exit_code == 0
    plain = result.output.splitlines()[0]
    # Sentry's organization token: a payload naming the server and the organization, then 256
    # random bits (base64, unpadded).
    prefix, payload, secret = plain.split("_")
    assert prefix == "sntrys" and re.fullmatch(r"[A-Za-z0-9+/]{43}", secret)
    assert json.loads(base64.b64decode(payload))["org"] == "acme"
    with store.connect(database) as conn:
        assert repository.find_token(conn, plain)["scopes"] == "project:read"
    assert "acme" in run("org", "list").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("project", "create", "web", "--org", "nope"), "No organization 'nope'."),
        (("token", "create", "--org", "nope"), "No organization 'nope'."),
        (("token", "create", "--org", "acme", "--scopes", "project:fly"), "Unknown scope"),
        (("token", "create"), "needs an organization"),
        (("org", "create", "acme"), "already exists"),
        (("org", "create", "Not A Slug"), "Invalid organization slug"),
        (("org", "create", "acme2\n"), "Invalid organization slug 'acme2\\n'"),
        (("org", "create", "12345"), "not only digits"),
        (("project", "create", "Web Site", "--org", "acme"), "Invalid project slug 'Web Site'"),
        (("token", "create", "--org", "acme", "--scopes", ","), "needs at least one scope"),
        (("mock", "--token", "t=project:fly"), "Unknown scope 'project:fly'"),
        (("project", "create", "web", "--org", "acme"), "already has a project 'web'"),
    ],
)
def test_misuse_gets_a_clear_message(run, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    run("org", "create", "acme")
    run("project", "create", "web", "--org", "acme")
    result = run(*args)
    assert result.exit_code != 0
    assert message in result.output


def test_unwritable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    result = CliRunner().invoke(
        main, ["org", "create", "acme", "--database", str(blocked / "x.db")]
    )
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: Cannot use the database {blocked / 'x.db'}: ")
    assert len(result.output.splitlines()) == 1


def test_bad_setting_in_the_environment_is_a_usage_error(
    run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CLIENTKEYS_PUBLIC_URL", "not-a-url")
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "CLIENTKEYS_PUBLIC_URL must be an http(s) URL" in result.output


def test_demo_creates_data_once_and_prints_a_working_curl(run, database: Database) -> None:  # type: ignore[no-untyped-def]
    first = run("demo", "--url", "http://127.0.0.1:9000")
    assert first.exit_code == 0
    assert "curl -i -H 'Authorization: Bearer sntrys_" in first.output
    assert "http://127.0.0.1:9000/api/0/projects/demo/demo-project/keys/" in first.output
    second = run("demo")
    assert "already present" in second.output
    assert rows(database, "SELECT count(*) FROM projects") == [(1,)]
    assert rows(database, "SELECT count(*) FROM tokens") == [(2,)]


def test_the_demo_token_is_an_ordinary_token_of_the_demo_organization(  # type: ignore[no-untyped-def]
    run, database: Database
) -> None:
    output = run("demo").output
    token = output.split("Token (all project scopes, shown once): ")[1].split()[0]
    assert run("org", "create", "other").exit_code == 0
    assert run("project", "create", "elsewhere", "--org", "other").exit_code == 0
    headers = {"Authorization": f"Bearer {token}"}
    with create_app(Settings(database=database)).test_client() as client:
        keys = client.get("/api/0/projects/demo/demo-project/keys/", headers=headers)
        assert keys.status_code == 200 and "useCase" not in keys.json()[0]  # superusers see it
        assert (
            client.get("/api/0/projects/other/elsewhere/keys/", headers=headers).status_code == 403
        )


def test_init_db_is_idempotent(run) -> None:  # type: ignore[no-untyped-def]
    assert "migrations applied" in run("init-db").output
    assert run("init-db").exit_code == 0


def test_python_dash_m_runs_the_cli() -> None:
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "clientkeys", "--version"], capture_output=True, text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=True,
    )  # fmt: skip
    assert "clientkeys" in result.stdout


@pytest.mark.parametrize(
    ("args", "module", "extra"),
    [
        (("check", "http://127.0.0.1:9", "--token", "t", "--org", "o", "--project", "p"),
         "schemathesis", "check"),
        (("check", "http://127.0.0.1:9", "--token", "t", "--org", "o", "--project", "p"),
         "aiohttp", "check"),
        (("proxy", "--upstream", "http://127.0.0.1:9"), "aiohttp", "proxy"),
        (("mock",), "rstr", "mock"),
    ],
)  # fmt: skip
def test_a_missing_extra_stops_the_command_naming_its_install(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: `clientkeys {extra}` needs the {extra} extra ({module} is missing): "
        f"pip install 'clientkeys[{extra}]'"
    ]


@pytest.mark.sqlite_only  # a file made immutable
def test_a_read_only_database_can_be_read_but_not_written(run, database: Path) -> None:  # type: ignore[no-untyped-def]
    run("org", "create", "acme")
    subprocess.run(["chattr", "+i", str(database)], check=True)
    try:
        listed = run("org", "list")
        refused = run("org", "create", "globex")
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)
    assert listed.exit_code == 0 and "acme" in listed.output
    assert refused.exit_code == 1
    assert refused.output == f"Error: {db.READ_ONLY}\n"


def test_a_postgresql_database_that_cannot_be_reached_is_one_line_naming_it_without_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("CLIENTKEYS_DATABASE", f"postgresql://ck:s3cret@127.0.0.1:{port}/ck")
    result = CliRunner().invoke(main, ["org", "list"])
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: Cannot use the database postgresql://ck:***@127.0.0.1:{port}/ck: "
    )
    assert len(result.output.splitlines()) == 1 and "s3cret" not in result.output


def test_a_postgresql_database_without_the_postgres_extra_names_its_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)  # as if it were not installed
    result = CliRunner().invoke(main, ["init-db", "--database", "postgresql://127.0.0.1/ck"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: A postgresql:// database needs the postgres extra (psycopg_pool is missing): "
        "pip install 'clientkeys[postgres]'\n"
    )
