"""What the proxy keeps of a request is for its admin only and holds no secret: the violations
endpoint answers 401 without the admin token, and credentials, secret-named query parameters and
body fields are redacted in the records and in the log."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import requests
from proxies import ADMIN, proxy_command, proxying

from clientkeys.testing import runner
from clientkeys.testing.runner import free_port, until
from live import raw_exchange, responses

VIOLATIONS = "/__proxy/violations"
NOWHERE = "http://127.0.0.1:9"
SECRETS = ["query-secret-1", "query-secret-2", "header-secret-3", "short-secret-4",
           "bad-secret-5", "target-secret-6"]  # fmt: skip


def login_document(folder: Path) -> Path:
    """POST /sessions: a body with a password and a token, an API key in the query (`sig`)."""
    body = {"type": "object", "required": ["user"], "additionalProperties": False,
            "properties": {"user": {"type": "string"},
                           "password": {"type": "string", "minLength": 20},
                           "token": {"type": "string", "pattern": "^t"}}}  # fmt: skip
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Login", "version": "1"},
        "paths": {"/sessions": {"post": {
            "security": [{"sig": []}],
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": body}}},
            "responses": {"201": {"description": "Signed in."}},
        }}},
        "components": {"securitySchemes": {"sig": {"type": "apiKey", "in": "query",
                                                   "name": "sig"}}},
    }  # fmt: skip
    path = folder / "login.json"
    path.write_text(json.dumps(document))
    return path


def test_the_violations_need_the_admin_token(tmp_path: Path) -> None:
    args = ("--spec", str(login_document(tmp_path)), "--mode", "enforce")
    with proxying(NOWHERE, tmp_path, *args) as proxy:
        requests.post(f"{proxy}/sessions", json={"user": "u"})  # one violation: no `sig`
        anonymous = requests.get(proxy + VIOLATIONS)
        wrong = requests.get(proxy + VIOLATIONS, headers={"Authorization": "Bearer guess"})
        wipe = requests.delete(proxy + VIOLATIONS)
        listed = requests.get(proxy + VIOLATIONS, headers=ADMIN).json()
    for refused in (anonymous, wrong, wipe):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "violations" not in refused.json()
    assert listed["count"] == 1  # the anonymous DELETE emptied nothing


def test_records_and_the_log_hold_no_secrets(tmp_path: Path) -> None:
    log = tmp_path / "violations.jsonl"
    spec = login_document(tmp_path)
    args = ("--spec", str(spec), "--mode", "enforce", "--log", str(log))
    with proxying(NOWHERE, tmp_path, *args) as proxy:
        sent = requests.post(
            f"{proxy}/sessions",
            params={"sig": "query-secret-1", "access_token": "query-secret-2"},
            headers={"Authorization": "Bearer header-secret-3"},
            json={"user": 5, "password": "short-secret-4", "token": "bad-secret-5"},
        )
        target = ("GET http://127.0.0.1/sessions?token=target-secret-6 HTTP/1.1\r\n"
                  "Host: 127.0.0.1\r\nConnection: close\r\n\r\n")  # fmt: skip
        [(status, _, _)] = responses(raw_exchange(int(proxy.rsplit(":", 1)[1]), target.encode()))
        listed = requests.get(proxy + VIOLATIONS, headers=ADMIN).json()
    assert (sent.status_code, status) == (422, 400)
    records = json.dumps(listed)
    logged = log.read_text()
    for secret in SECRETS:
        assert secret not in records and secret not in logged, secret
    fields = {v["where"]: v["value"] for v in listed["violations"] if v["where"]}
    assert fields == {"user": 5, "password": "[redacted]", "token": "[redacted]",
                      "query.access_token": "[redacted]"}  # fmt: skip
    [target_record] = [v for v in listed["violations"] if v["rule"] == "request.target"]
    assert "[redacted]" in target_record["value"]
    assert len(logged.splitlines()) == listed["count"] == 5


def test_a_generated_admin_token_is_printed_at_start_and_works(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "proxy.log"
    command = proxy_command(NOWHERE, "--port", str(port))
    with runner.running(command, port, log, path=VIOLATIONS) as proxy:
        printed: Any = until(
            lambda: re.search(r"admin token \(generated\) for /__proxy/violations: (\S+)",
                              log.read_text()),
            10, "the generated admin token in the log",
        )  # fmt: skip
        token = printed.group(1)
        mine = requests.get(proxy.url + VIOLATIONS, headers={"Authorization": f"Bearer {token}"})
    assert (mine.status_code, mine.json()["count"]) == (200, 0)
