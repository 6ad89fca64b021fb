"""Packaging: the licence the metadata names, `--version`, shell completion, and the
Containerfile's recipe (no container engine runs here: its commands run as the image would
run them, with its environment, on a folder standing for its volume; `make container` replays
its install step in a scratch venv and runs it as an unprivileged user)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from clientkeys.cli import main
from clientkeys.testing.runner import free_port, until

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_the_licence_file_is_the_one_the_metadata_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_version_is_the_installed_distributions() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"clientkeys, version {importlib.metadata.version('clientkeys')}\n"


def test_shell_completion_completes_commands_and_options() -> None:
    def complete(words: str) -> list[str]:
        current = len(words.split()) - (0 if words.endswith(" ") else 1)
        env = {"_CLIENTKEYS_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(current)}  # fmt: skip
        result = CliRunner().invoke(main, [], env=env, prog_name="clientkeys")
        return [line.split(",", 1)[1] for line in result.output.splitlines()]

    assert "serve" in complete("clientkeys se")
    assert complete("clientkeys serve --log-f") == ["--log-format"]
    assert set(complete("clientkeys serve --log-format ")) == {"text", "json"}
    assert "_CLIENTKEYS_COMPLETE=bash_source" in (ROOT / "README.md").read_text()


def containerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each line of the Containerfile, continuations joined."""
    text = (ROOT / "Containerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def _values(instruction: str) -> list[str]:
    return [args for name, args in containerfile() if name == instruction]


def test_the_image_runs_serve_as_an_unprivileged_user_on_a_volume() -> None:
    [user] = _values("USER")
    assert user not in ("root", "0")
    assert any("useradd --system --uid 10001 --user-group" in run and user in run
               for run in _values("RUN"))  # fmt: skip
    env = _image_env()
    [volume] = _values("VOLUME")
    assert Path(env["CLIENTKEYS_DATABASE"]).parent.as_posix() in json.loads(volume)
    assert _values("EXPOSE") == [env["CLIENTKEYS_PORT"]]
    assert json.loads(_values("CMD")[0]) == ["clientkeys", "serve"]
    assert _values("HEALTHCHECK")[0].split(" CMD ")[1] == '["clientkeys", "health"]'


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _values("ENV"):
        env.update(pair.split("=", 1) for pair in shlex.split(args))
    return env


def test_the_images_command_serves_and_its_health_check_passes(tmp_path: Path) -> None:
    """The CMD and HEALTHCHECK commands, with the image's environment, in a folder standing
    for the volume (host and port moved to a free loopback port for the test)."""
    volume = tmp_path / "data"
    volume.mkdir()
    port = str(free_port())
    env = {**os.environ, **_image_env(), "PATH": f"{BIN}:{os.environ['PATH']}",
           "CLIENTKEYS_HOST": "127.0.0.1", "CLIENTKEYS_PORT": port, "CLIENTKEYS_WORKERS": "1",
           "CLIENTKEYS_DATABASE": str(volume / "clientkeys.db")}  # fmt: skip
    health = json.loads(_values("HEALTHCHECK")[0].split(" CMD ")[1])
    before = subprocess.run(health, env=env, cwd=volume, capture_output=True, text=True)
    assert before.returncode == 1 and before.stderr.startswith("Error: http://127.0.0.1:")

    server = subprocess.Popen(json.loads(_values("CMD")[0]), env=env, cwd=volume,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:

        def healthy() -> bool:
            assert server.poll() is None, "the image's command ended"
            return subprocess.run(health, env=env, capture_output=True).returncode == 0

        until(healthy, 30, "the image's health check to pass")
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode()
    assert (volume / "clientkeys.db").exists()
    assert all(json.loads(line) for line in output.splitlines())  # CLIENTKEYS_LOG_FORMAT=json
