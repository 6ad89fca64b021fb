"""Running `clientkeys proxy` for the tests: as a command line, or in the background until a
block ends."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from clientkeys.testing.plugin import free_port


def proxy_command(upstream: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "clientkeys", "proxy", "--upstream", upstream, *args]


@contextmanager
def proxying(upstream: str, tmp_path: Path, *args: str) -> Iterator[str]:
    """A `clientkeys proxy` in front of `upstream` until the block ends; yields its URL."""
    port = free_port()
    log = tmp_path / "proxy.log"
    with log.open("wb") as output:
        process = subprocess.Popen(proxy_command(upstream, "--port", str(port), *args),
                                   stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not _answers(f"{url}/__proxy/violations"):
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
