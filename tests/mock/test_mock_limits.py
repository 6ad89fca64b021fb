"""The mock as a process, over raw sockets: a body it will refuse is refused before the client
is asked to send it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from clientkeys.testing import runner
from clientkeys.testing.runner import clientkeys_command, free_port
from live import KEYS, raw_exchange, responses

GIB = 1 << 30


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runner.Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("mock") / "mock.log"
    command = clientkeys_command("mock", port, "--log-level", "warning")
    with runner.running(command, port, log) as server:
        yield server


def post_head(*lines: str) -> bytes:
    fields = ["Host: 127.0.0.1", "Authorization: Bearer any-token", "Connection: close",
              "Content-Type: application/json", *lines]  # fmt: skip
    return "\r\n".join([f"POST {KEYS} HTTP/1.1", *fields, "", ""]).encode()


def test_an_oversized_body_is_413_before_100_continue(mock: runner.Server) -> None:
    received = raw_exchange(mock.port, post_head(f"Content-Length: {GIB}", "Expect: 100-continue"))
    assert not received.startswith(b"HTTP/1.1 100"), received[:200]
    [(status, _, body)] = responses(received)
    assert status == 413
    assert json.loads(body) == {"detail": f"Request body is larger than {1 << 20} bytes."}


def test_an_oversized_body_sent_anyway_ends_the_connection(mock: runner.Server) -> None:
    head = post_head(f"Content-Length: {GIB}").replace(b"Connection: close", b"X-Keep: alive")
    received = raw_exchange(mock.port, [head, b'{"name": "' + b"x" * 65536])
    [(status, headers, _)] = responses(received)
    assert (status, headers["connection"]) == (413, "close")


def test_a_body_within_the_limit_still_gets_100_continue(mock: runner.Server) -> None:
    body = b'{"name": "continued"}'
    head = post_head(f"Content-Length: {len(body)}", "Expect: 100-continue")
    received = raw_exchange(mock.port, [head, body])
    assert received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 "), received[:200]
