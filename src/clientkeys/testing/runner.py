"""One way to run a server as a process, for the pytest plugin, the test suite and the
benchmarks: `clientkeys serve`, `mock` or `proxy` (or any other server: Prism, gunicorn) on a
free loopback port, waited for until it answers an HTTP request, then stopped with its workers.

Nothing here sleeps for a fixed time: `until` polls a condition a caller can observe (the
server answers, a log line is written, a count is reached) and gives up at a deadline, saying
what it waited for.

    with running(clientkeys_command("serve", port, "--workers", "1"), port, log) as server:
        urllib.request.urlopen(f"{server.url}/_health/")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

LIVENESS = "/_health/"
"""What `wait_until_answers` asks by default: every clientkeys tool answers it first thing."""


def free_port() -> int:
    """A TCP port free on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clientkeys_command(tool: str, port: int, *args: str) -> list[str]:
    """`clientkeys TOOL` (serve, mock, proxy) on `port` of the loopback interface, run by this
    Python, so that it is the clientkeys this process imports."""
    return [sys.executable, "-m", "clientkeys", tool, "--host", "127.0.0.1", "--port", str(port),
            *args]  # fmt: skip


def until(condition: Callable[[], T], seconds: float, waiting_for: str, poll: float = 0.1) -> T:
    """Poll `condition` until it returns something true, and return that; a TimeoutError
    naming `waiting_for` after `seconds`. The pause between two polls grows from 10 ms to
    `poll`: a fast change is seen at once, a slow one costs little CPU on a shared machine."""
    deadline, pause = time.monotonic() + seconds, min(0.01, poll)
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {seconds:g} s for {waiting_for}")
        time.sleep(pause)
        pause = min(pause * 2, poll)
    return result


@dataclass
class Server:
    """A server process started by `start`: its own process group, so that stopping it stops
    its workers too, and its output in `log`."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float = field(default_factory=time.monotonic)
    startup: float = 0.0
    """Seconds from the start to its first answer, once `wait_until_answers` has seen it."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        """Send `sig` to the server and its workers at once, and wait for the server to end."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass  # already gone
        self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the server and its workers, if it still runs; SIGKILL after `timeout`."""
        if self.process.poll() is not None:
            return
        try:
            self.kill(signal.SIGTERM, timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)


def start(
    command: list[str],
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Server:
    """Start `command` (which listens on `port`) without waiting for it; its output goes to
    `log`. Warnings are off in it: a suite's `-W error` is for the suite, not for the server."""
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        )  # fmt: skip
    return Server(process, port, log, started)


def answers(
    url: str, headers: dict[str, str] | None = None, ok_only: bool = False, timeout: float = 5
) -> bool:
    """Whether `url` answers: any HTTP status, or only a 2xx with `ok_only`."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=timeout):  # fmt: skip
            return True
    except urllib.error.HTTPError:
        return not ok_only
    except (urllib.error.URLError, OSError):
        return False


def wait_until_answers(
    server: Server,
    path: str = LIVENESS,
    headers: dict[str, str] | None = None,
    ok_only: bool = False,
    seconds: float = 60,
    poll: float = 0.1,
) -> None:
    """Wait until `server` answers `path` (see `answers`), asking at most every `poll`
    seconds, and note its start time; a RuntimeError quoting its log if it ends or stays
    silent for `seconds`."""

    def answered() -> bool:
        if answers(server.url + path, headers, ok_only):
            return True
        if server.process.poll() is not None:
            raise RuntimeError(f"the server ended with {server.process.returncode} before it "
                               f"answered; its log:\n{server.log_tail()}")  # fmt: skip
        return False

    try:
        until(answered, seconds, f"{server.url}{path} to answer", poll)
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}; the server's log:\n{server.log_tail()}") from None
    server.startup = time.monotonic() - server.started


@contextmanager
def running(
    command: list[str],
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
    path: str = LIVENESS,
    ok_only: bool = False,
) -> Iterator[Server]:
    """`command` started, and stopped when the block ends; yields it once it answers `path`."""
    server = start(command, port, log, env)
    try:
        wait_until_answers(server, path, ok_only=ok_only)
        yield server
    finally:
        server.stop()


@contextmanager
def serving(
    command: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """`running`, for a caller that only needs the server's URL."""
    with running(command, port, log, env) as server:
        yield server.url
