"""The server runner: a server that cannot start is named with its log at once, a stopped
server leaves no worker behind, and waits end on what they wait for."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from clientkeys.testing.runner import (
    clientkeys_command,
    free_port,
    running,
    start,
    until,
    wait_until_answers,
)


def test_a_server_that_ends_before_answering_is_reported_with_its_log_at_once(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-c", "import sys; print('no spec here'); sys.exit(3)"]
    server = start(command, free_port(), tmp_path / "server.log")
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="ended with 3") as raised:
        wait_until_answers(server, seconds=60)
    assert "no spec here" in str(raised.value)
    assert time.monotonic() - began < 30  # not the whole minute


def test_stopping_a_server_stops_its_workers(tmp_path: Path) -> None:
    port = free_port()
    command = clientkeys_command("serve", port, "--workers", "2", "--database",
                                 str(tmp_path / "x.db"), "--log-level", "warning")  # fmt: skip
    with running(command, port, tmp_path / "server.log") as server:
        assert server.startup > 0
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
        workers = [int(pid) for pid in children.read_text().split()]
        assert len(workers) >= 2
    assert server.process.returncode is not None
    assert not [pid for pid in workers if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"  # a zombie is gone


def test_until_returns_what_the_condition_saw_and_names_what_it_waited_for() -> None:
    calls = iter(range(100))
    assert until(lambda: next(calls) >= 3 and "three", 5, "three calls") == "three"
    with pytest.raises(TimeoutError, match="waited 0.05 s for the impossible"):
        until(lambda: False, 0.05, "the impossible")
