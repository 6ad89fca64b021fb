"""Every command's options come from the declared settings: `--help` names each variable and
its real default, the mock reads its environment as serve does (its workers too), and a
port already taken is one line for the mock as for serve."""

from __future__ import annotations

import re
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from clientkeys.cli import main
from clientkeys.config import every_setting
from clientkeys.testing.plugin import free_port, serving

COMMANDS = ("serve", "mock", "proxy", "check")


def help_of(command: str) -> str:
    result = CliRunner().invoke(
        main, [command, "--help"], terminal_width=1000, max_content_width=1000
    )
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # as one line: click wraps it at any space


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_each_settings_variable_and_its_declared_default(command: str) -> None:
    shown = help_of(command)
    own = [one for one in every_setting()
           if one.flag and (one.command == command or one.name == "database")]  # fmt: skip
    if command != "serve":
        own = [one for one in own if one.name != "database"]
    for one in own:
        assert f"{one.flag} " in shown or f"{one.flag}/" in shown, one.flag
        extra = "required" if one.declared.required else f"default: {one.shown_default}"
        assert f"env var: {one.variable}; {extra}]" in shown, (one.variable, shown)
    # The settings without a flag close serve's help, with their defaults.
    unflagged = [one for one in every_setting() if one.command == command and not one.flag]
    for one in unflagged:
        assert f"{one.variable} ({one.shown_default})" in shown
    # And nothing else: a variable in the help is a declared one of this command.
    assert set(re.findall(r"CLIENTKEYS_\w+", shown)) - {"CLIENTKEYS_PROXY_URL"} == {
        one.variable for one in own + unflagged
    }


def test_the_serve_port_default_in_help_is_the_one_health_asks() -> None:
    assert "default: 8000]" in help_of("serve")
    assert "http://127.0.0.1:$CLIENTKEYS_PORT, or port 8000" in help_of("health")


def _get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def test_the_mock_and_its_workers_read_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {"CLIENTKEYS_MOCK_PORT": str(port), "CLIENTKEYS_MOCK_WORKERS": "2",
           "CLIENTKEYS_MOCK_TOKENS": "reader=project:read",
           "CLIENTKEYS_MOCK_LOG_LEVEL": "warning"}  # fmt: skip
    command = [sys.executable, "-m", "clientkeys", "mock"]
    keys = "/api/0/projects/acme/web/keys/"
    with serving(command, port, tmp_path / "mock.log", env) as url:
        # Fresh connections: each may reach either worker, every one built from the variables.
        assert {_get(url + keys, "reader") for _ in range(8)} == {200}
        assert {_get(url + keys, "stranger") for _ in range(8)} == {401}
        # a known token, but without project:write
        request = urllib.request.Request(url + keys, data=b'{"name": "x"}', method="POST",
                                         headers={"Authorization": "Bearer reader",
                                                  "Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        refused.value.close()
        assert refused.value.code == 403


@pytest.mark.parametrize(
    "command", [["mock"], ["proxy", "--upstream", "http://127.0.0.1:9"]], ids=["mock", "proxy"]
)
def test_a_busy_port_is_one_line_for_the_mock_and_the_proxy_too(command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, [*command, "--port", str(port)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: cannot listen on 127.0.0.1:{port}: address already in use"]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("CLIENTKEYS_MOCK_PORT", "http", "'--port'"),
        ("CLIENTKEYS_MOCK_WORKERS", "0", "'--workers'"),
        ("CLIENTKEYS_MOCK_TOKENS", "reader=project:fly", "Unknown scope 'project:fly'"),
        ("CLIENTKEYS_MOCK_LOG_LEVEL", "loud", "'--log-level'"),
        ("CLIENTKEYS_PROXY_MODE", "loud", "'--mode'"),
    ],
)
def test_a_bad_variable_of_the_mock_or_proxy_is_one_line(
    variable: str, value: str, needle: str
) -> None:
    command = "proxy" if "PROXY" in variable else "mock"
    args = ["--upstream", "http://127.0.0.1:9"] if command == "proxy" else []
    result = CliRunner().invoke(main, [command, *args], env={variable: value})
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0], result.output
