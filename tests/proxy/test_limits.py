"""What the proxy refuses before forwarding anything: request targets that are not a path,
serve's limits on the request head and query; what it keeps of a flood of violations; a
wrapped command that sent it nothing."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from pets import pets_upstream, write_pets
from proxies import ADMIN, proxy_command, proxying

from clientkeys.core.errors import MAX_HEADER_BYTES, MAX_QUERY_PARAMETERS, MAX_TARGET_BYTES
from clientkeys.openapi.conformance import MAX_KEPT, MAX_PER_EXCHANGE
from live import raw_exchange, responses


@contextmanager
def listener() -> Iterator[socket.socket]:
    """A listening socket that never accepts: a connection made to it stays pending."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def reached(sock: socket.socket) -> bool:
    """Whether any connection was made to a `listener` (a pending one makes it readable)."""
    return bool(select.select([sock], [], [], 0)[0])


def url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def ask(proxy: str, head: str) -> tuple[int, dict[str, str], bytes]:
    """One raw request (`head` without its end), answered before the proxy closes."""
    port = int(proxy.rsplit(":", 1)[1])
    data = f"{head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    [answer] = responses(raw_exchange(port, data))
    return answer


def test_targets_that_are_not_a_path_are_400_and_go_nowhere(tmp_path: Path) -> None:
    with (
        listener() as upstream,
        listener() as elsewhere,
        proxying(url_of(upstream), tmp_path) as proxy,
    ):
        other = elsewhere.getsockname()[1]
        answers = [
            ask(proxy, f"GET *@127.0.0.1:{other}/x HTTP/1.1"),
            ask(proxy, "GET * HTTP/1.1"),
            ask(proxy, "OPTIONS * HTTP/1.1"),
            ask(proxy, f"GET http://127.0.0.1:{other}/api/0/ HTTP/1.1"),
            ask(proxy, f"GET http://user@127.0.0.1:{other}/x HTTP/1.1"),
        ]
        found = requests.get(f"{proxy}/__proxy/violations", headers=ADMIN).json()
        # Each answer came back before the proxy closed: had it forwarded, the connection would
        # be waiting on one of the listeners now.
        assert not reached(upstream) and not reached(elsewhere)
    assert [status for status, _, _ in answers] == [400] * 5
    assert all(json.loads(body)["detail"].startswith("The request target must be a path")
               for _, _, body in answers)  # fmt: skip
    assert [v["rule"] for v in found["violations"]] == ["request.target"] * 5
    assert found["exchanges"] == 5


def test_serves_limits_hold_before_anything_is_forwarded(tmp_path: Path) -> None:
    keys = "/api/0/projects/acme/web/keys/"
    many = "&".join(f"p{n}=1" for n in range(MAX_QUERY_PARAMETERS + 1))
    with listener() as upstream, proxying(url_of(upstream), tmp_path) as proxy:
        big_header = ask(proxy, f"GET {keys} HTTP/1.1\r\nX-Big: {'a' * (MAX_HEADER_BYTES + 1)}")
        long_target = ask(proxy, f"GET {keys}?q={'a' * MAX_TARGET_BYTES} HTTP/1.1")
        too_many = requests.get(f"{proxy}{keys}?{many}", headers={"Authorization": "Bearer t"})
        found = requests.get(f"{proxy}/__proxy/violations", headers=ADMIN).json()["violations"]
        assert not reached(upstream)
    assert [big_header[0], long_target[0], too_many.status_code] == [431, 414, 400]
    assert too_many.json() == {
        "detail": f"Too many query parameters: at most {MAX_QUERY_PARAMETERS}."
    }
    assert [(v["operation"], v["rule"], v["status"]) for v in found] == [
        ("List a Project's Client Keys", "request.limit", 400)
    ]


def test_the_violation_record_stays_under_its_cap(tmp_path: Path) -> None:
    """Unknown query parameters by the thousand: the record keeps MAX_KEPT, counts the rest,
    and the log holds what the record keeps."""
    spec = write_pets(tmp_path)
    log = tmp_path / "violations.jsonl"
    unknown = {f"u{n}": "1" for n in range(MAX_QUERY_PARAMETERS - 2)}
    requests_sent = MAX_KEPT // MAX_PER_EXCHANGE + 10
    with (
        pets_upstream() as (upstream, seen),
        proxying(upstream, tmp_path, "--spec", str(spec), "--log", str(log)) as proxy,
    ):
        for _ in range(requests_sent):
            answer = requests.get(f"{proxy}/pets/1", params={"api_key": "k", **unknown})
            assert answer.status_code == 200  # report mode: forwarded all the same
        found = requests.get(f"{proxy}/__proxy/violations", headers=ADMIN).json()
    assert len(seen) == requests_sent
    assert found["count"] == requests_sent * len(unknown)
    assert len(found["violations"]) == MAX_KEPT
    assert found["dropped"] == found["count"] - MAX_KEPT
    assert len(log.read_text().splitlines()) == MAX_KEPT


@pytest.mark.parametrize("code", ["pass", "import sys; sys.exit(4)"])
def test_a_wrapped_command_that_sent_nothing_fails_with_the_reason(code: str) -> None:
    command = proxy_command("http://127.0.0.1:9", "--port", "0", "--", sys.executable, "-c", code)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == (4 if "exit" in code else 1), result.stderr
    assert result.stderr.splitlines()[-1] == (
        "clientkeys proxy: no request came through the proxy: "
        "did the command call $CLIENTKEYS_PROXY_URL?"
    )
