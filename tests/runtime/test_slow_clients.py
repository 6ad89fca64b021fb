"""Slow clients against real serve, mock and proxy processes, over raw sockets: a request head
that never ends, a body that stops arriving and an idle keep-alive connection are each closed
once their limit (`CLIENTKEYS_HEADER_TIMEOUT`, `_BODY_TIMEOUT`, `_KEEP_ALIVE_TIMEOUT`) has
passed, not before, while a normal client is answered meanwhile."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from clientkeys.testing.runner import Server, clientkeys_command, free_port, running
from live import KEYS, seed

HEADER, BODY, KEEP_ALIVE = 1.0, 2.0, 3.0
"""Small limits, each its own, so that which one closed a connection shows in its timing."""
LIMITS = {"CLIENTKEYS_HEADER_TIMEOUT": str(HEADER), "CLIENTKEYS_BODY_TIMEOUT": str(BODY),
          "CLIENTKEYS_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE)}  # fmt: skip
BOUND = 30.0
"""How long a test waits at most for the server to close a connection (a busy machine is slow,
but a connection that is never closed fails the test)."""
EARLY = 0.1
"""The timer may fire a little before a client's clock says the limit passed."""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Server, str]]]:
    """serve (seeded, with its token), the mock of our spec, and a proxy in front of the mock,
    all with the small limits; by tool, each with a bearer token it lets through."""
    folder = tmp_path_factory.mktemp("slow")
    token = seed(folder / "slow.db")
    serve_port, mock_port, proxy_port = free_port(), free_port(), free_port()
    serve = clientkeys_command("serve", serve_port, "--database", str(folder / "slow.db"),
                               "--workers", "1", "--log-level", "warning")  # fmt: skip
    mock = clientkeys_command("mock", mock_port, "--log-level", "warning")
    with (
        running(serve, serve_port, folder / "serve.log", LIMITS) as served,
        running(mock, mock_port, folder / "mock.log", LIMITS) as mocked,
    ):
        proxy = clientkeys_command("proxy", proxy_port, "--upstream", mocked.url)
        with running(proxy, proxy_port, folder / "proxy.log", LIMITS) as proxied:
            yield {"serve": (served, token), "mock": (mocked, "any"), "proxy": (proxied, "any")}


def closed_after(port: int, data: bytes, *, answered: bool = False) -> tuple[float, bytes]:
    """Send `data`, then read until the server closes the connection: the seconds from the
    last byte sent (or, with `answered`, from the end of the first answer) to that close, and
    what it sent. Fails if the connection is still open after `BOUND` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
        sock.sendall(data)
        started, received = time.monotonic(), b""
        while chunk := sock.recv(65536):  # a TimeoutError past BOUND: never closed
            received += chunk
            if answered and complete(received):
                started = time.monotonic()  # the answer is whole: the connection idles from here
        return time.monotonic() - started, received


def complete(raw: bytes) -> bool:
    """Whether `raw` holds one whole response with a Content-Length body."""
    head, found, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:] if found else []:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def request(method: str, target: str, token: str, *fields: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}",
             *fields, "", ""]  # fmt: skip
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize("tool", ["serve", "mock", "proxy"])
def test_slow_connections_are_closed_after_their_limit_while_others_are_served(
    servers: dict[str, tuple[Server, str]], tool: str
) -> None:
    server, token = servers[tool]
    body = b'{"name": "trickled"}'
    partial_head = b"GET " + KEYS.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    half_body = request("POST", KEYS, token, "Content-Type: application/json",
                        f"Content-Length: {len(body)}") + body[:5]  # fmt: skip
    idle = request("GET", KEYS, token)
    with ThreadPoolExecutor(3) as pool:
        head = pool.submit(closed_after, server.port, partial_head)
        trickle = pool.submit(closed_after, server.port, half_body)
        kept = pool.submit(closed_after, server.port, idle, answered=True)
        # While those three hang on, a normal client gets its answer.
        listing = urllib.request.Request(server.url + KEYS,
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        with urllib.request.urlopen(listing, timeout=BOUND) as answer:
            assert answer.status == 200
        (head_after, head_got), (body_after, body_got) = head.result(), trickle.result()
        kept_after, kept_got = kept.result()
    # The unfinished head and body are closed without an answer (no keep-alive timer runs
    # before an answer), after their own limit.
    assert (head_got, body_got) == (b"", b"")
    assert head_after >= HEADER - EARLY
    assert body_after >= BODY - EARLY
    # The idle connection got its answer, then was closed after the keep-alive limit.
    assert kept_got.startswith(b"HTTP/1.1 200 ")
    assert kept_after >= KEEP_ALIVE - EARLY
