"""Hostile HTTP against a real server, over raw sockets: the limits on the request head, the
HTTP layer's own errors in JSON, and what must keep working (chunked bodies, pipelining,
100-continue, HTTP/1.0). Also what `uvicorn_hooks` relies on in uvicorn: these fail when an
upgrade changes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clientkeys.core.errors import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_TARGET_BYTES,
    HeaderFieldsTooLarge,
    UriTooLong,
)
from live import KEYS, Server, raw_exchange, responses, seed, serving

INVALID = {"detail": "Invalid HTTP request received."}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("edges")
    with serving(folder / "edges.db", seed(folder / "edges.db")) as running:
        yield running


def head(server: Server, method: str = "GET", target: str = KEYS, *lines: str) -> bytes:
    """A request head with the token and these header lines; the server closes after it."""
    fields = ["Host: 127.0.0.1", f"Authorization: Bearer {server.token}", "Connection: close",
              *lines]  # fmt: skip
    return "\r\n".join([f"{method} {target} HTTP/1.1", *fields, "", ""]).encode()


def only_answer(server: Server, data: bytes | list[bytes]) -> tuple[int, dict[str, str], bytes]:
    answers = responses(raw_exchange(server.port, data))
    assert len(answers) == 1, answers
    return answers[0]


def assert_json_error(answer: tuple[int, dict[str, str], bytes], status: int, body: object) -> None:
    code, headers, content = answer
    assert (code, json.loads(content)) == (status, body)
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"


def test_header_fields_over_the_limit_are_431_before_authentication(server: Server) -> None:
    big = "X-Big: " + "a" * MAX_HEADER_BYTES
    answer = only_answer(server, f"GET {KEYS} HTTP/1.1\r\nHost: x\r\n{big}\r\n\r\n".encode())
    assert_json_error(answer, 431, HeaderFieldsTooLarge().body())
    assert answer[1]["connection"] == "close"


def test_more_header_fields_than_the_limit_are_431(server: Server) -> None:
    many = [f"X-{i}: 1" for i in range(MAX_HEADERS)]
    assert_json_error(only_answer(server, head(server, "GET", KEYS, *many)), 431,
                      HeaderFieldsTooLarge().body())  # fmt: skip
    fewer = [f"X-{i}: 1" for i in range(MAX_HEADERS - 3)]  # with Host, Authorization, Connection
    assert only_answer(server, head(server, "GET", KEYS, *fewer))[0] == 200


def test_header_fields_just_within_the_limit_are_read(server: Server) -> None:
    auth = f"Authorization: Bearer {server.token}"
    filler = "X-Fill: " + "a" * (MAX_HEADER_BYTES - len(auth) - len("hostx-fillconnection") - 20)
    assert only_answer(server, head(server, "GET", KEYS, filler))[0] == 200


def peak_memory_kb(server: Server) -> list[int]:
    """Each worker's peak resident memory (VmHWM), in kB."""
    peaks = []
    for pid in server.workers():
        status = Path(f"/proc/{pid}/status").read_text()
        peaks.append(
            int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
        )
    return peaks


def test_huge_headers_are_refused_while_they_arrive_and_memory_stays_bounded(
    server: Server,
) -> None:
    """Eight 64 MB headers took a worker past 400 MB before: now the server stops reading
    after the limit, answers 431 (if the client still listens) and closes."""
    before = peak_memory_kb(server)
    chunk = b"a" * (1 << 20)
    pieces = [f"GET {KEYS} HTTP/1.1\r\nHost: x\r\n".encode()]
    for i in range(8):
        pieces += [f"X-Big-{i}: ".encode(), *[chunk] * 64, b"\r\n"]
    received = raw_exchange(server.port, [*pieces, b"\r\n"], timeout=30)
    assert received == b"" or received.startswith(b"HTTP/1.1 431 ")
    grown = [after - was for was, after in zip(before, peak_memory_kb(server), strict=True)]
    assert max(grown) < 64 * 1024, grown  # kB: far below the 512 MB sent
    assert only_answer(server, head(server))[0] == 200  # and it goes on serving


def test_a_request_target_over_the_limit_is_414(server: Server) -> None:
    target = KEYS + "?" + "&".join(f"p{i}=1" for i in range(10_000))  # ~90 kB
    assert len(target) > MAX_TARGET_BYTES
    assert_json_error(only_answer(server, head(server, "GET", target)), 414, UriTooLong().body())


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST " + KEYS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        b"Content-Length: 2\r\n\r\nab",
        b"POST " + KEYS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST " + KEYS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET " + KEYS.encode() + b"\xc3\xa9/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Nul: a\x00b\r\n\r\n",
    ],
    ids=[
        "request line",
        "version 9.9",
        "two Content-Length",
        "negative Content-Length",
        "Content-Length and chunked",
        "raw UTF-8 in the path",
        "space in a header name",
        "NUL in a header value",
    ],  # fmt: skip
)
def test_requests_the_http_layer_refuses_are_400_json(server: Server, request_bytes: bytes) -> None:
    assert_json_error(only_answer(server, request_bytes), 400, INVALID)


def test_a_double_slash_is_404_not_a_redirect(server: Server) -> None:
    answer = only_answer(server, head(server, "GET", "/api/0/projects//acme/web/keys/"))
    assert_json_error(answer, 404, {"detail": "The requested resource does not exist"})


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def test_chunked_bodies_are_read_and_held_to_the_body_limit(server: Server) -> None:
    lines = ("Content-Type: application/json", "Transfer-Encoding: chunked")
    created = only_answer(
        server, head(server, "POST", KEYS, *lines) + chunked(b'{"name": "in parts"}')
    )
    assert created[0] == 201 and json.loads(created[2])["name"] == "in parts"
    huge = json.dumps({"name": "x" * 70_000}).encode()
    refused = only_answer(server, head(server, "POST", KEYS, *lines) + chunked(huge, 8192))
    assert_json_error(refused, 413, {"detail": "Request body is larger than 65536 bytes."})


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    keep = [head(server, "GET", target).replace(b"Connection: close", b"X-Keep: alive")
            for target in (KEYS, KEYS + "nope/")]  # fmt: skip
    requests = [*keep, head(server)]
    answers = responses(raw_exchange(server.port, b"".join(requests)))
    assert [status for status, _, _ in answers] == [200, 404, 200]


def test_expect_100_continue_and_http_1_0_work(server: Server) -> None:
    body = b'{"name": "continued"}'
    lines = ("Content-Type: application/json", f"Content-Length: {len(body)}",
             "Expect: 100-continue")  # fmt: skip
    received = raw_exchange(server.port, [head(server, "POST", KEYS, *lines), body])
    assert received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 ")
    old = head(server).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    status, headers, _ = only_answer(server, old)
    assert status == 200 and headers["connection"] == "close"
