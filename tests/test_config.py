"""Settings: typed, prefixed, and loud about bad values."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from clientkeys.config import (
    DURABILITIES,
    TABLE_END,
    TABLE_START,
    CheckSettings,
    Group,
    MockSettings,
    ProxySettings,
    ServeProcess,
    Settings,
    SettingsError,
    every_setting,
    is_postgres,
    redacted,
    with_settings_table,
)
from clientkeys.store import sqlite as db


def test_defaults_need_nothing() -> None:
    settings = Settings.from_env({})
    assert settings.database == Path("clientkeys.db")
    assert (settings.per_page, settings.max_per_page) == (100, 100)
    assert settings.validate_responses is True
    assert (settings.spec_dir / "openapi.json").exists()


def test_environment_is_read_with_the_prefix() -> None:
    settings = Settings.from_env(
        {
            "CLIENTKEYS_DATABASE": "/tmp/x.db",
            "CLIENTKEYS_VALIDATE_RESPONSES": "off",
            "CLIENTKEYS_PUBLIC_URL": "https://keys.example.com/",
            "CLIENTKEYS_PER_PAGE": "10",
            "CLIENTKEYS_CDN_URL": "https://cdn.example.com",
        }
    )
    assert settings.database == Path("/tmp/x.db")
    assert settings.validate_responses is False
    assert settings.public_url == "https://keys.example.com"
    assert settings.per_page == 10
    assert settings.cdn_url == "https://cdn.example.com/"


def test_flags_win_over_the_environment() -> None:
    env = {"CLIENTKEYS_DATABASE": "/tmp/env.db"}
    assert Settings.from_env(env, database=Path("/tmp/flag.db")).database == Path("/tmp/flag.db")
    assert Settings.from_env(env, database=None).database == Path("/tmp/env.db")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("VALIDATE_RESPONSES", "maybe", "must be true or false"),
        ("PUBLIC_URL", "ftp://x", "must be an http(s) URL"),
        ("PER_PAGE", "0", "must be a positive integer"),
        ("PER_PAGE", "ten", "must be a positive integer"),
        ("MAX_PER_PAGE", "500", "cannot exceed 100"),
        ("BROWSER_SDK_VERSION", "99.x", "must be one of"),
        ("POOL_SIZE", "0", "must be a positive integer"),
        ("DB_TIMEOUT", "-1", "must be a positive number"),
        ("DB_TIMEOUT", "inf", "must be a positive number"),
        ("DB_TIMEOUT", "soon", "must be a positive number"),
    ],
)
def test_bad_values_fail_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)) as error:
        Settings.from_env({f"CLIENTKEYS_{name}": value})
    assert f"CLIENTKEYS_{name}" in str(error.value)


def test_every_setting_round_trips_through_the_environment(tmp_path: Path) -> None:
    """Worker processes rebuild their settings from the environment the CLI writes."""
    changed = Settings(
        database=tmp_path / "x.db", spec_dir=tmp_path / "spec", validate_responses=False,
        validate_requests=False, public_url="https://k.example.com",
        ingest_url="https://o1.ingest.example.com/relay", cdn_url="https://cdn.example.com/",
        per_page=10, max_per_page=50, max_body_bytes=1024, browser_sdk_version="5.x",
        browser_sdk_choices=("latest", "7.x", "8.x"), threads=7, admin_token="secret",
        journal_size=9, metrics=True, durability="normal", pool_size=3, db_timeout=2.5,
    )  # fmt: skip
    unchanged = [
        f.name for f in dataclasses.fields(Settings) if getattr(changed, f.name) == f.default
    ]
    assert unchanged == []  # a new setting must be added here, with a value of its own
    assert Settings.from_env(changed.to_env()) == changed
    assert Settings.from_env(Settings().to_env()) == Settings()


def test_a_postgresql_url_is_kept_as_given_and_a_path_names_a_sqlite_file() -> None:
    url = "postgresql://ck:pw@db.example.com:5432/clientkeys?sslmode=require"
    settings = Settings.from_env({"CLIENTKEYS_DATABASE": url})
    assert settings.database == url and is_postgres(settings.database)
    assert Settings.from_env(settings.to_env()) == settings
    assert redacted(settings.database) == (
        "postgresql://ck:***@db.example.com:5432/clientkeys?sslmode=require"
    )
    path = Settings.from_env({"CLIENTKEYS_DATABASE": "postgresql.db"}).database
    assert path == Path("postgresql.db") and not is_postgres(path)
    with pytest.raises(SettingsError, match="CLIENTKEYS_DATABASE names no server"):
        Settings.from_env({"CLIENTKEYS_DATABASE": "postgresql:///clientkeys"})


def test_page_size_cannot_exceed_the_maximum() -> None:
    with pytest.raises(SettingsError, match="PER_PAGE must be between 1"):
        Settings(per_page=50, max_per_page=20)


def test_durability_is_full_by_default_and_checked() -> None:
    assert Settings().durability == "full"
    assert Settings.from_env({"CLIENTKEYS_DURABILITY": "Normal"}).durability == "normal"
    assert set(DURABILITIES) == set(db.DURABILITY)
    with pytest.raises(SettingsError, match="DURABILITY must be one of full, normal"):
        Settings.from_env({"CLIENTKEYS_DURABILITY": "fast"})


def test_the_readme_table_lists_exactly_the_declared_settings() -> None:
    """README's table is written from the declarations: `python -m clientkeys.config README.md`."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert with_settings_table(readme) == readme, "run: python -m clientkeys.config README.md"
    table = readme.split(TABLE_START)[1].split(TABLE_END)[0]
    listed = re.findall(r"^\| `(CLIENTKEYS_\w+)` \|", table, re.MULTILINE)
    declared = [one.variable for one in every_setting()]
    assert sorted(listed) == sorted(declared) and len(set(declared)) == len(declared)


@pytest.mark.parametrize("group", [ServeProcess, MockSettings, ProxySettings, CheckSettings])
def test_each_commands_settings_round_trip_through_the_environment(group: type[Group]) -> None:
    """A command's workers (the mock's) rebuild what it resolved from the environment."""
    changed = {
        ServeProcess: ServeProcess(host="::1", port=0, workers=3, log_level="debug",
                                   log_format="json", admin_token_file=Path("/run/t")),
        MockSettings: MockSettings(mock_spec=Path("/tmp/x.yaml"),
                                   mock_tokens={"a": frozenset({"project:read"}), "b": frozenset()},
                                   mock_cors=False, mock_host="0.0.0.0", mock_port=9,
                                   mock_workers=2, mock_log_level="error"),
        ProxySettings: ProxySettings(proxy_upstream="https://sentry.io", proxy_host="0.0.0.0",
                                     proxy_port=1, proxy_mode="enforce", proxy_log_level="info",
                                         proxy_admin_token="adm"),
        CheckSettings: CheckSettings(check_token="t1", check_forbidden_token="t2",
                                     check_read_only_token="t3", check_request_timeout=2.5),
    }[group]  # fmt: skip
    unchanged = [name for name, one in group.settings().items()
                 if getattr(changed, name) == one.default]  # fmt: skip
    assert unchanged == []  # a new setting must be added here, with a value of its own
    assert group.from_env(changed.to_env()) == changed
    assert group.from_env({}) == group()


@pytest.mark.parametrize(
    ("group", "variable", "value", "message"),
    [
        (ServeProcess, "CLIENTKEYS_PORT", "http", "must be an integer from 0 to 65535, got 'http'"),
        (MockSettings, "CLIENTKEYS_MOCK_WORKERS", "0", "must be a positive integer, got '0'"),
        (MockSettings, "CLIENTKEYS_MOCK_CORS", "perhaps", "must be true or false"),
        (MockSettings, "CLIENTKEYS_MOCK_TOKENS", "a=project:read b\x7f", "must be printable ASCII"),
        (ProxySettings, "CLIENTKEYS_PROXY_MODE", "loud", "must be one of report, enforce"),
        (CheckSettings, "CLIENTKEYS_CHECK_TOKEN", "two words", "must be printable ASCII"),
    ],
)  # fmt: skip
def test_a_commands_bad_variable_is_named(
    group: type[Group], variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        group.from_env({variable: value})
    assert str(error.value).startswith(f"{variable} {message}")
