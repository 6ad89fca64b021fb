"""`clientkeys proxy` between a small client (requests, in a subprocess) and a real upstream:
clientkeys itself, and a deliberately broken server. Every violation of either side is recorded
with the operation, the rule and the offending value; a clean run exits 0."""

from __future__ import annotations

import json
import os
import re
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from proxies import ADMIN, proxy_command, proxying

from broken_server import ORG, PROJECT, running
from clientkeys.testing.plugin import ClientKeys
from clientkeys.testing.runner import free_port

CLIENT = '''
"""A client of the keys API: clean calls, or also calls that break the contract."""
import json, os, sys
import requests

base, token, mode = os.environ["CLIENTKEYS_PROXY_URL"], os.environ["TOKEN"], sys.argv[1]
keys = f"{base}/api/0/projects/{os.environ['ORG']}/{os.environ['PROJECT']}/keys/"
auth = {"Authorization": f"Bearer {token}"}
seen = {}
seen["list"] = requests.get(keys, headers=auth).status_code
created = requests.post(keys, json={"name": "CI"}, headers=auth)
seen["create"] = created.status_code
key = f"{keys}{created.json()['id']}/"
seen["retrieve"] = requests.get(key, headers=auth).status_code
seen["update"] = requests.put(key, json={"name": "CI 2"}, headers=auth).status_code
if mode == "sloppy":
    seen["long name"] = requests.post(keys, json={"name": "x" * 70}, headers=auth).status_code
    seen["per_page"] = requests.get(keys, params={"per_page": 1000}, headers=auth).status_code
    seen["cursor"] = requests.get(keys, params={"cursor": "bad"}, headers=auth).status_code
    seen["no token"] = requests.get(keys).status_code
    seen["isActive"] = requests.put(key, json={"isActive": "yes"}, headers=auth).status_code
    big = b"{}" + b" " * 70_000  # over the 64 KiB body limit
    as_json = {**auth, "Content-Type": "application/json"}
    seen["too big"] = requests.post(keys, data=big, headers=as_json).status_code
seen["delete"] = requests.delete(key, headers=auth).status_code
print(json.dumps(seen))
'''
CLEAN = {"list": 200, "create": 201, "retrieve": 200, "update": 200, "delete": 204}
SLOPPY = {"long name": 400, "per_page": 400, "cursor": 400, "no token": 401, "isActive": 400,
          "too big": 413}  # fmt: skip


def run_client(
    upstream: str, tmp_path: Path, token: str, org: str, project: str, mode: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, int], list[dict[str, Any]]]:
    """`clientkeys proxy ... -- python client.py MODE`: the result, what the client saw, and
    the violations logged as JSON lines."""
    (tmp_path / "client.py").write_text(CLIENT)
    log = tmp_path / "violations.jsonl"
    command = proxy_command(upstream, "--port", "0", "--log", str(log), *args, "--",
                            sys.executable, str(tmp_path / "client.py"), mode)  # fmt: skip
    env = {**os.environ, "TOKEN": token, "ORG": org, "PROJECT": project}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    seen = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    violations = [json.loads(line) for line in log.read_text().splitlines()]
    return result, seen, violations


def found(violations: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """Each violation as (side, operation, rule, where, value)."""
    return {
        (v["side"], v["operation"], v["rule"], v["where"], json.dumps(v["value"]))
        for v in violations
    }


@pytest.fixture
def upstream(clientkeys_server: ClientKeys) -> ClientKeys:
    return clientkeys_server


@pytest.fixture
def broken_upstream(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A server that drops Link, sends isActive as "yes" and answers 200 to create."""
    with running(tmp_path, "no-link,wrong-type,create-200") as (url, token):
        yield url, token


def test_a_clean_client_run_through_the_proxy_exits_0(upstream: ClientKeys, tmp_path: Path) -> None:
    result, seen, violations = run_client(
        upstream.base_url, tmp_path, upstream.tokens["admin"], upstream.org, upstream.project,
        "clean",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert seen == CLEAN
    assert violations == []
    assert "clientkeys proxy: 0 violations in 5 exchanges" in result.stderr
    # Everything really went to the upstream, in order.
    methods = [entry["method"] for entry in upstream.journal()]
    assert methods == ["GET", "POST", "GET", "PUT", "DELETE"]


def test_a_sloppy_client_is_reported_with_operation_rule_and_value(
    upstream: ClientKeys, tmp_path: Path
) -> None:
    result, seen, violations = run_client(
        upstream.base_url, tmp_path, upstream.tokens["admin"], upstream.org, upstream.project,
        "sloppy",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert seen == {**CLEAN, **SLOPPY}  # report mode: the upstream answered every request
    assert found(violations) == {
        ("request", "Create a New Client Key", "request.body", "name", json.dumps("x" * 70)),
        ("request", "List a Project's Client Keys", "request.parameter", "query.per_page", "1000"),
        ("request", "List a Project's Client Keys", "request.parameter", "query.cursor", '"bad"'),
        ("request", "List a Project's Client Keys", "request.auth", "", "null"),
        ("request", "Update a Client Key", "request.body", "isActive", '"yes"'),
        ("request", "Create a New Client Key", "request.body-size", "", "null"),
    }  # fmt: skip
    messages = {v["where"]: v["message"] for v in violations}
    assert messages["name"] == "Ensure this field has no more than 64 characters."
    assert messages["query.cursor"] == "Invalid cursor parameter."
    assert "clientkeys proxy: 6 violations in 11 exchanges (request 6)" in result.stderr
    assert len(upstream.journal()) == 11


def test_enforce_mode_answers_like_the_server_and_forwards_nothing_bad(
    upstream: ClientKeys, tmp_path: Path
) -> None:
    path = f"/api/0/projects/{upstream.org}/{upstream.project}/keys/"
    auth = upstream.headers("admin")
    as_json = {**auth, "Content-Type": "application/json"}
    bad = [
        ("POST", path, {"json": {"name": "x" * 70}, "headers": auth}),
        ("POST", path, {"json": {"rateLimit": {"count": "many"}}, "headers": auth}),
        ("POST", path, {"data": "name=x", "headers": {**auth, "Content-Type": "text/plain"}}),
        ("POST", path, {"data": b"{\xff}", "headers": as_json}),
        ("GET", path, {"params": {"per_page": 0}, "headers": auth}),
        ("GET", path, {"params": {"unknown": 1}, "headers": auth}),
        ("GET", path, {"headers": {"Authorization": "Bearer"}}),
        ("GET", path, {}),
        ("PATCH", path, {"headers": auth}),
        ("GET", f"{path}0123456789abcdef0123456789abcdef/extra/", {"headers": auth}),
        ("POST", path, {"data": b"{}" + b" " * 70_000, "headers": as_json}),
    ]  # fmt: skip
    with proxying(upstream.base_url, tmp_path, "--mode", "enforce") as proxy:
        for method, url, kwargs in bad:
            direct = requests.request(method, upstream.base_url + url, **kwargs)
            via = requests.request(method, proxy + url, **kwargs)
            assert (via.status_code, via.headers.get("content-type"), via.content) == (
                direct.status_code, direct.headers.get("content-type"), direct.content
            ), (method, url, kwargs)  # fmt: skip
            assert via.headers.get("allow") == direct.headers.get("allow")
            assert via.headers.get("www-authenticate") == direct.headers.get("www-authenticate")
        # A request the contract allows goes through, even when its answer is an error.
        assert requests.get(proxy + path, headers=auth).status_code == 200
        assert requests.get(f"{proxy}{path}not-a-key/", headers=auth).status_code == 404
        listed = requests.get(f"{proxy}/__proxy/violations", headers=ADMIN).json()
        refused = requests.post(f"{proxy}/__proxy/violations", headers=ADMIN)
        assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD, DELETE")
        assert requests.delete(f"{proxy}/__proxy/violations", headers=ADMIN).json()["count"] == 0
    assert listed["count"] >= len(bad)
    assert {v["status"] for v in listed["violations"]} == {400, 401, 404, 405, 413, 415}
    nested = next(v for v in listed["violations"] if v["where"] == "rateLimit.count")
    assert (nested["rule"], nested["value"]) == ("request.body", "many")
    # The upstream saw each bad request once (sent directly), and the two allowed ones.
    assert len(upstream.journal()) == len(bad) + 2


def test_a_broken_upstream_is_reported_with_operation_rule_and_value(
    broken_upstream: tuple[str, str], tmp_path: Path
) -> None:
    url, token = broken_upstream
    result, seen, violations = run_client(url, tmp_path, token, ORG, PROJECT, "clean")
    assert result.returncode == 1, result.stderr
    assert seen == {**CLEAN, "create": 200}  # the answers went through unchanged
    kinds = found(violations)
    assert ("response", "List a Project's Client Keys", "response.header", "Link", "null") in kinds
    assert ("response", "Create a New Client Key", "response.status", "", "200") in kinds
    assert ("response", "Retrieve a Client Key", "response.body", "isActive", '"yes"') in kinds
    assert ("response", "Update a Client Key", "response.body", "isActive", '"yes"') in kinds
    assert {v["side"] for v in violations} == {"response"}
    status = next(v for v in violations if v["rule"] == "response.status")
    assert status["message"].startswith("200 is not documented (documented: 201, 400")


def test_the_commands_failure_is_the_exit_status(upstream: ClientKeys) -> None:
    command = proxy_command(upstream.base_url, "--port", "0", "--", sys.executable, "-c",
                            "import sys; sys.exit(3)")  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "clientkeys proxy: 0 violations in 0 exchanges" in result.stderr


OTHERS = ("/openapi.json", "/docs/", "/_health/")
"""Paths a clientkeys server answers itself, and the proxy leaves to its upstream."""


def test_an_unreachable_upstream_is_a_502_and_a_violation(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    with proxying(nowhere, tmp_path) as proxy:
        answer = requests.get(f"{proxy}/api/0/projects/acme/web/keys/",
                              headers={"Authorization": "Bearer token"})  # fmt: skip
        # Not the proxy's to answer (no spec, docs or health of its own): the upstream's paths.
        others = [requests.get(f"{proxy}{path}").status_code for path in OTHERS]
        listed = requests.get(f"{proxy}/__proxy/violations", headers=ADMIN).json()
    assert answer.status_code == 502
    assert answer.json()["detail"].startswith(
        f"Bad Gateway: {nowhere} did not answer: ClientConnectorError"
    )
    assert others == [502] * len(OTHERS)
    assert [(v["path"], v["rule"]) for v in listed["violations"]] == [
        ("/api/0/projects/acme/web/keys/", "upstream.unreachable"),
        *[(path, rule) for path in OTHERS for rule in ("request.path", "upstream.unreachable")],
    ]  # fmt: skip


class OneAnswerPerConnection(socketserver.StreamRequestHandler):
    """Answers the first request of a connection (a documented 404) and closes the connection
    when a second request arrives on it, unanswered: what the proxy sees when the upstream
    closes an idle keep-alive connection just as the proxy reuses it."""

    ANSWER = b'{"detail": "The requested resource does not exist"}'
    HEADERS = b"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
    connections = 0

    def handle(self) -> None:
        type(self).connections += 1
        for number in (1, 2):
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = self.rfile.readline()
                if not line:
                    return
                head += line
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            self.rfile.read(int(length.group(1)) if length else 0)
            if number == 2:
                return
            head = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n" + self.HEADERS
            self.wfile.write(head + b"Content-Length: %d\r\n\r\n" % len(self.ANSWER) + self.ANSWER)


def test_a_closed_pooled_connection_resends_idempotent_requests_only(tmp_path: Path) -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), OneAnswerPerConnection) as upstream:
        upstream.daemon_threads = True
        threading.Thread(target=upstream.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{upstream.server_address[1]}"
        auth = {"Authorization": "Bearer token"}
        keys = f"/api/0/projects/{ORG}/{PROJECT}/keys/"
        with proxying(url, tmp_path) as proxy:
            first = requests.get(f"{proxy}{keys}{'0' * 32}/", headers=auth)
            again = requests.get(f"{proxy}{keys}{'0' * 32}/", headers=auth)  # the pooled one
            update = requests.put(f"{proxy}{keys}{'0' * 32}/", json={"name": "x"}, headers=auth)
            create = requests.post(f"{proxy}{keys}", json={"name": "CI"}, headers=auth)
            listed = requests.get(f"{proxy}/__proxy/violations", headers=ADMIN).json()
        upstream.shutdown()
    statuses = [r.status_code for r in (first, again, update, create)]
    assert statuses == [404, 404, 404, 502]
    assert OneAnswerPerConnection.connections == 3  # GET and PUT went again, on new connections
    assert [(v["operation"], v["rule"]) for v in listed["violations"]] == [
        ("Create a New Client Key", "upstream.unreachable")  # a POST is never sent twice
    ]


class BreaksOffMidAnswer(socketserver.StreamRequestHandler):
    """Starts a 404 announcing 1,000 bytes of body, sends ten, and closes the connection."""

    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b""):
            pass
        self.wfile.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n" + b'{"detail":')  # fmt: skip


def test_an_answer_the_upstream_breaks_off_is_a_violation(tmp_path: Path) -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), BreaksOffMidAnswer) as upstream:
        threading.Thread(target=upstream.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{upstream.server_address[1]}"
        with proxying(url, tmp_path) as proxy:
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                requests.get(f"{proxy}/api/0/projects/{ORG}/{PROJECT}/keys/{'0' * 32}/",
                             headers={"Authorization": "Bearer token"})  # fmt: skip
            [violation] = requests.get(f"{proxy}/__proxy/violations", headers=ADMIN).json()[
                "violations"
            ]
        upstream.shutdown()
    assert violation["rule"] == "upstream.unreachable"
    assert violation["message"].startswith(f"{url} stopped answering: ")
    assert violation["status"] is None  # the 404 had started: the client got a broken answer


def test_rewrite_urls_sends_links_and_dsns_back_through_the_proxy(
    upstream: ClientKeys, tmp_path: Path
) -> None:
    auth = upstream.headers("admin")
    for _ in range(3):
        requests.post(upstream.keys_url, json={}, headers=auth).raise_for_status()
    path = f"/api/0/projects/{upstream.org}/{upstream.project}/keys/"
    with proxying(upstream.base_url, tmp_path, "--rewrite-urls") as proxy:
        page = requests.get(f"{proxy}{path}?per_page=2", headers=auth)
        following = requests.get(page.links["next"]["url"], headers=auth)
        plain = requests.get(f"{upstream.base_url}{path}?per_page=2", headers=auth)
        listed = requests.get(f"{proxy}/__proxy/violations", headers=ADMIN).json()
    assert page.links["next"]["url"].startswith(f"{proxy}{path}")
    assert page.json()[0]["dsn"]["public"].endswith(f"@{proxy.removeprefix('http://')}/1")
    assert plain.links["next"]["url"].startswith(upstream.base_url)
    assert len(following.json()) == 1
    assert listed["count"] == 0, listed


class WithoutSecurityHeaders(OneAnswerPerConnection):
    HEADERS = b""


def test_the_proxy_adds_no_header_and_reports_the_missing_ones(tmp_path: Path) -> None:
    """The API's own answers carry Cache-Control and X-Content-Type-Options; the proxy passes
    the upstream's on as they are, and reports the missing ones."""
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), WithoutSecurityHeaders) as upstream:
        upstream.daemon_threads = True
        threading.Thread(target=upstream.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{upstream.server_address[1]}"
        keys = f"/api/0/projects/{ORG}/{PROJECT}/keys/"
        with proxying(url, tmp_path) as proxy:
            answer = requests.get(
                f"{proxy}{keys}{'0' * 32}/", headers={"Authorization": "Bearer t"}
            )
            listed = requests.get(f"{proxy}/__proxy/violations", headers=ADMIN).json()
        upstream.shutdown()
    assert answer.status_code == 404
    assert "cache-control" not in answer.headers and "x-content-type-options" not in answer.headers
    missing = {v["where"] for v in listed["violations"] if v["rule"] == "response.header"}
    assert missing == {"Cache-Control", "X-Content-Type-Options"}
