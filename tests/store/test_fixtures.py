"""`serve --fixtures FILE`: a known state in one flag, with clear errors for a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clientkeys.cli import main
from clientkeys.config import Settings
from clientkeys.server.app import create_app
from clientkeys.store import backend as store
from clientkeys.store import fixtures
from clientkeys.store import sqlite as db

CI = Path(__file__).parents[1] / "data" / "ci.yaml"


def test_fixtures_create_the_described_state(database: Path | str) -> None:
    settings = Settings(database=database)
    store.init_db(settings.database)
    with store.connect(settings.database) as conn:
        created = fixtures.load(conn, CI)
    assert created == {"organizations": 2, "projects": 3, "keys": 2, "tokens": 3}
    headers = {"Authorization": "Bearer sntrys_ci_read_token"}
    with create_app(settings).test_client() as client:
        keys = client.get("/api/0/projects/acme/web/keys/", headers=headers).json()
        assert [(k["name"], k["isActive"], k["rateLimit"]) for k in keys] == [
            ("Retired", False, None),
            ("Browser", True, {"window": 60, "count": 100}),
        ]
        assert keys[1]["secret"] == "2" * 32
        api = client.get("/api/0/projects/acme/api/keys/", headers=headers).json()
        assert [k["name"] for k in api] == ["Default"]
        shop = client.get(
            "/api/0/projects/globex/shop/keys/",
            headers={"Authorization": "Bearer sntrys_ci_superuser"},
        ).json()
        assert shop[0]["dsn"]["public"].startswith("http")
        assert "@relay.example.com/ingest/" in shop[0]["dsn"]["public"]


def test_loading_twice_creates_nothing_new(database: Path | str) -> None:
    store.init_db(database)
    with store.connect(database) as conn:
        fixtures.load(conn, CI)
        assert set(fixtures.load(conn, CI).values()) == {0}


def test_json_fixtures_work_too(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"organizations": [{"slug": "o", "projects": [{"slug": "p"}]}]}))
    db.init_db(tmp_path / "f.db")
    with db.connect(tmp_path / "f.db") as conn:
        assert fixtures.load(conn, path)["keys"] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("organizations: [{name: x}]", "organizations[0]: 'slug' is a required property"),
        ("tokens: [{token: short, scopes: []}]", "tokens[0].token: 'short' does not match"),
        ("tokens: [{token: sntrys_12345678, scopes: [project:fly]}]", "tokens[0].scopes[0]"),
        ("organizations: [{slug: o, projects: [{slug: p, keys: [{public: XYZ}]}]}]", ".public"),
        ("teams: []", "Additional properties are not allowed"),
        ('organizations: [{slug: "acme\\n"}]', "organizations[0].slug: 'acme\\n' is not a valid"),
        (
            'tokens: [{token: "sntrys_12345678\\n", scopes: [project:read], superuser: true}]',
            "tokens[0].token: 'sntrys_12345678\\n' does not match",
        ),
        (
            'organizations: [{slug: o, projects: [{slug: p, keys: [{secret: "%s\\n"}]}]}]'
            % ("a" * 32),
            ".secret: '" + "a" * 32 + "\\n' does not match",
        ),
        (
            "organizations: [{slug: Not A Slug}]",
            "organizations[0].slug: 'Not A Slug' is not a valid slug: use 1-50 lowercase letters",
        ),
        ("tokens: [{token: sntrys_12345678, scopes: [project:read]}]", "'org' is a required"),
        ("tokens: [{token: sntrys_12345678, org: o, scopes: []}]", "tokens[0].scopes: []"),
        ("organizations: [", "cannot read fixtures"),
        (
            "tokens: [{token: sntrys_12345678, org: nope, scopes: [project:read]}]",
            "No organization",
        ),
    ],
)
def test_bad_fixtures_are_refused_naming_the_place(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    db.init_db(tmp_path / "f.db")
    with db.connect(tmp_path / "f.db") as conn, pytest.raises(fixtures.FixturesError) as error:
        fixtures.load(conn, path)
    assert message in str(error.value)


def test_serve_refuses_a_bad_fixtures_file_before_starting(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("organizations: [{name: x}]")
    result = CliRunner().invoke(
        main, ["serve", "--fixtures", str(path), "--database", str(tmp_path / "s.db")]
    )
    assert result.exit_code == 1
    assert "'slug' is a required property" in result.output
