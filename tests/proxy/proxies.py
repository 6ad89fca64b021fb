"""Running `clientkeys proxy` for the tests: as a command line, or in the background until a
block ends."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clientkeys.testing import runner
from clientkeys.testing.runner import free_port


def proxy_command(upstream: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "clientkeys", "proxy", "--upstream", upstream, *args]


@contextmanager
def proxying(upstream: str, tmp_path: Path, *args: str) -> Iterator[str]:
    """A `clientkeys proxy` in front of `upstream` until the block ends; yields its URL."""
    port = free_port()
    command = proxy_command(upstream, "--port", str(port), *args)
    log = tmp_path / "proxy.log"
    with runner.running(command, port, log, path="/__proxy/violations", ok_only=True) as proxy:
        yield proxy.url
