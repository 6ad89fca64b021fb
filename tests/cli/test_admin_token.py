"""`serve`'s admin token from a file or the environment: the test controls answer it, and the
token never shows on the command line (which `ps` shows every user of the machine)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from clientkeys.cli import main
from clientkeys.testing import runner
from clientkeys.testing.runner import free_port
from live import seed, serve_command

TOKEN = "admin-from-elsewhere-0123"
REQUESTS = "/__admin/requests"


def status_of(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def command_lines(server: runner.Server) -> str:
    """The server's and its workers' command lines, as `ps` shows them."""
    pids = [server.process.pid, *server_children(server.process.pid)]
    return " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode().replace("\0", " ")
                    for pid in pids)  # fmt: skip


def server_children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize("source", ["file", "environment"])
def test_the_admin_token_from_a_file_or_the_environment_stays_out_of_ps(
    tmp_path: Path, source: str
) -> None:
    database = tmp_path / "ck.db"
    seed(database)
    port = free_port()
    env = {}
    extra: list[str] = []
    if source == "file":
        (tmp_path / "admin-token").write_text(TOKEN + "\n")
        extra = ["--admin-token-file", str(tmp_path / "admin-token")]
    else:
        env = {"CLIENTKEYS_ADMIN_TOKEN": TOKEN}
    command = serve_command(port, database, *extra)
    with runner.running(command, port, tmp_path / "serve.log", env=env) as server:
        answers = [status_of(server.url + REQUESTS, t) for t in (TOKEN, None, "guess-1234")]
        shown = command_lines(server)
    assert answers == [200, 401, 401]
    assert TOKEN not in shown and "serve" in shown


@pytest.mark.parametrize(
    ("content", "flag", "needle"),
    [
        (None, [], "cannot read"),
        ("two words\n", [], "must be printable ASCII without spaces"),
        (TOKEN, ["--admin-token", "also-a-token"], "Give the admin token one way"),
    ],
)
def test_an_unusable_admin_token_file_stops_the_start_with_one_line(
    tmp_path: Path, content: str | None, flag: list[str], needle: str
) -> None:
    path = tmp_path / "admin-token"
    if content is not None:
        path.write_text(content)
    args = ["serve", "--port", "0", "--database", str(tmp_path / "x.db"),
            "--admin-token-file", str(path), *flag]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "two words" not in result.output and TOKEN not in result.output
    assert not (tmp_path / "x.db").exists()
