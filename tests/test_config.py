"""Settings: typed, prefixed, and loud about bad values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clientkeys.config import Settings, SettingsError


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
    ],
)
def test_bad_values_fail_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)) as error:
        Settings.from_env({f"CLIENTKEYS_{name}": value})
    assert "CLIENTKEYS_" in str(error.value)


def test_page_size_cannot_exceed_the_maximum() -> None:
    with pytest.raises(SettingsError, match="PER_PAGE must be between 1"):
        Settings(per_page=50, max_per_page=20)
