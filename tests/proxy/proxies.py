"""Running `clientkeys proxy` for the tests: as a command line, or in the background until a
block ends."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clientkeys.testing import runner
from clientkeys.testing.runner import free_port

ADMIN_TOKEN = "proxy-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
"""The headers that read and empty /__proxy/violations of a proxy `proxying` started."""


def proxy_command(upstream: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "clientkeys", "proxy", "--upstream", upstream, *args]


@contextmanager
def proxying(upstream: str, tmp_path: Path, *args: str) -> Iterator[str]:
    """A `clientkeys proxy` in front of `upstream` until the block ends, its violations listed
    to `ADMIN`; yields its URL."""
    port = free_port()
    command = proxy_command(upstream, "--port", str(port), "--admin-token", ADMIN_TOKEN, *args)
    log = tmp_path / "proxy.log"
    # Its own endpoint's 401 (the waiting sends no token) says the proxy is the one answering.
    with runner.running(command, port, log, path="/__proxy/violations") as proxy:
        yield proxy.url
