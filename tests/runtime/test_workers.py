"""serve's worker supervisor on a real process: its health check waits
`CLIENTKEYS_WORKER_BOOT_TIMEOUT`, and when it replaces a worker its log says why (the worker
exited, with its status, or did not answer in time and was killed) while the other worker
goes on answering."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from clientkeys.testing.runner import Server, answers, clientkeys_command, free_port, running, until
from live import KEYS, seed

BOOT = 5.0
"""The health check's wait here: uvicorn's own, short enough to see a hung worker replaced."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    token = seed(tmp_path / "workers.db")
    port = free_port()
    command = clientkeys_command("serve", port, "--database", str(tmp_path / "workers.db"),
                                 "--workers", "2", "--log-level", "info")  # fmt: skip
    env = {"CLIENTKEYS_WORKER_BOOT_TIMEOUT": str(BOOT)}
    with running(command, port, tmp_path / "serve.log", env) as started:
        yield started, token


def workers(server: Server) -> list[int]:
    """The ids of the server's worker processes (multiprocessing's spawned children)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]  # fmt: skip


def replaced(server: Server, pid: int) -> str:
    """The supervisor's log line about replacing worker `pid`, once written (bounded wait)."""
    marker = f"Restarting worker [{pid}]: "

    def line() -> str:
        return next((s for s in server.log_tail(100_000).splitlines() if marker in s), "")

    return until(line, 60, f"the log to say why worker {pid} was replaced")


def test_a_worker_that_exits_is_replaced_and_the_log_says_it_exited(
    server: tuple[Server, str],
) -> None:
    running_server, token = server
    until(lambda: len(workers(running_server)) == 2, 60, "two workers")
    victim = workers(running_server)[0]
    os.kill(victim, signal.SIGKILL)
    assert replaced(running_server, victim).endswith("it exited with status -9.")
    until(lambda: len(workers(running_server)) == 2 and victim not in workers(running_server),
          60, "a new worker")  # fmt: skip
    assert answers(running_server.url + KEYS, {"Authorization": f"Bearer {token}"}, ok_only=True)


def test_a_worker_that_stops_answering_is_killed_after_the_boot_timeout_and_the_log_says_so(
    server: tuple[Server, str],
) -> None:
    running_server, token = server
    until(lambda: len(workers(running_server)) == 2, 60, "two workers")
    victim = workers(running_server)[0]
    os.kill(victim, signal.SIGSTOP)  # alive, but it answers nothing: a hung worker
    line = replaced(running_server, victim)
    assert line.endswith(
        f"it did not answer the health check within {BOOT:g} s "
        "(CLIENTKEYS_WORKER_BOOT_TIMEOUT) and was killed."
    )
    until(lambda: victim not in workers(running_server), 60, "the stopped worker gone")
    assert answers(running_server.url + KEYS, {"Authorization": f"Bearer {token}"}, ok_only=True)
