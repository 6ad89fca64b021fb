"""The mock on hand-written specs: bad input, security schemes, CORS, patterns, Prefer bounds."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from clientkeys.cli import main
from clientkeys.mock.app import MAX_DELAY_MS, Prefer, create_mock_app
from clientkeys.testing.runner import clientkeys_command, free_port, running, until

OK = {"200": {"description": "ok", "content": {"application/json": {
    "schema": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}},
    "example": {"ok": True}}}}}  # fmt: skip
DENIED = {"401": {"description": "no", "content": {"application/json": {
    "schema": {"type": "object", "required": ["message"],
               "properties": {"message": {"type": "string"}}},
    "example": {"message": "Requires authentication"}}}}}  # fmt: skip


def write(tmp_path: Path, document: Any, name: str = "spec.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def spec(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


BAD_INPUT = [
    (None, "missing.json", "missing.json: cannot read the file: No such file or directory"),
    ('{"openapi": "3.0.3",\n  "paths": {,}}', "bad.json",
     "bad.json: invalid JSON at line 2, column 13"),
    ("openapi: 3.0.3\npaths: [\n", "bad.yaml", "bad.yaml: invalid YAML at line 3, column 1"),
    ("- just\n- a list\n", "list.yaml",
     "list.yaml: not an OpenAPI document (the top level is not an object)"),
    ('{"title": "a JSON file"}', "other.json",
     "other.json: not an OpenAPI document (no 'openapi' field)"),
    ('{"openapi": "4.0.0", "paths": {}}', "v4.json",
     "v4.json: OpenAPI 4.0.0 is not supported (3.0.x and 3.1.x are)"),
    ('{"swagger": "2.0", "paths": {}}', "v2.json",
     "v2.json: Swagger 2.0 is not supported; convert it to OpenAPI 3"),
    ('{"openapi": "3.0.3", "paths": {"/a": {"$ref": "#/nowhere"}}}', "ref.json",
     "ref.json: $ref '#/nowhere' at #/paths/~1a points at nothing"),
    ('{"openapi": "3.0.3", "paths": {"/a": {"$ref": "gone.json"}}}', "file.json",
     "gone.json: cannot read the file: No such file or directory"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "name", "message"), BAD_INPUT)
def test_bad_input_is_one_line_naming_problem_and_place_with_exit_2(
    tmp_path: Path, content: str | None, name: str, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(main, ["mock", "--spec", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert lines[0].startswith("Error: ") and "Traceback" not in result.output


def test_an_operation_without_operation_id_is_served(tmp_path: Path) -> None:
    path = write(tmp_path, spec({"/things/{id}": {"get": {"responses": OK}}}))
    with create_mock_app(path).test_client() as client:
        assert client.get("/things/1").json() == {"ok": True}


SCHEMES = {
    "bearer": ({"type": "http", "scheme": "bearer"}, {"Authorization": "Bearer t0k3n"}, {}),
    "basic": ({"type": "http", "scheme": "basic"},
              {"Authorization": "Basic " + base64.b64encode(b"me:secret").decode()}, {}),
    "header": ({"type": "apiKey", "in": "header", "name": "X-API-Key"}, {"X-API-Key": "k"}, {}),
    "query": ({"type": "apiKey", "in": "query", "name": "api_key"}, {}, {"api_key": "k"}),
    "cookie": ({"type": "apiKey", "in": "cookie", "name": "session"}, {"Cookie": "session=k"}, {}),
    "oauth2": ({"type": "oauth2", "flows": {"clientCredentials": {
        "tokenUrl": "https://example.com/token", "scopes": {"read": "read"}}}},
        {"Authorization": "Bearer t0k3n"}, {}),
    "openid": ({"type": "openIdConnect", "openIdConnectUrl": "https://example.com/.well-known"},
               {"Authorization": "Bearer t0k3n"}, {}),
}  # fmt: skip


@pytest.mark.parametrize("kind", SCHEMES)
def test_every_security_scheme_passes_with_its_credential_and_401s_without(
    tmp_path: Path, kind: str
) -> None:
    scheme, headers, params = SCHEMES[kind]
    document = spec({"/me": {"get": {"security": [{"s": ["read"] if kind == "oauth2" else []}],
                                     "responses": {**OK, **DENIED}}}},
                    components={"securitySchemes": {"s": scheme}})  # fmt: skip
    with create_mock_app(write(tmp_path, document)).test_client() as client:
        assert client.get("/me", headers=headers, params=params).json() == {"ok": True}
        refused = client.get("/me")
        assert refused.status_code == 401
        assert refused.json() == {"message": "Requires authentication"}  # the documented 401


def test_an_undocumented_401_has_the_mocks_own_body_and_challenge(tmp_path: Path) -> None:
    document = spec({"/me": {"get": {"security": [{"s": []}], "responses": OK}}},
                    components={"securitySchemes": {"s": SCHEMES["basic"][0]}})  # fmt: skip
    with create_mock_app(write(tmp_path, document)).test_client() as client:
        refused = client.get("/me")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="mock"'
    assert refused.json() == {"detail": "Basic credentials are required."}


def test_token_list_applies_to_bearer_schemes(tmp_path: Path) -> None:
    document = spec({"/me": {"get": {"security": [{"s": []}], "responses": OK}}},
                    components={"securitySchemes": {"s": SCHEMES["bearer"][0]}})  # fmt: skip
    app = create_mock_app(write(tmp_path, document), {"known": frozenset()})
    with app.test_client() as client:
        assert client.get("/me", headers={"Authorization": "Bearer known"}).status_code == 200
        assert client.get("/me", headers={"Authorization": "Bearer other"}).status_code == 401


def test_ecma_patterns_that_python_cannot_compile_do_not_stop_the_start(tmp_path: Path) -> None:
    code = {"type": "string", "pattern": "^[a-z]{3}\\z"}
    document = spec({"/codes/{code}": {"get": {
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": code}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {
            "schema": {"type": "object", "required": ["code"], "properties": {"code": code}}}}}},
    }}})  # fmt: skip
    with create_mock_app(write(tmp_path, document)).test_client() as client:
        answer = client.get("/codes/abc")
        assert answer.status_code == 200 and len(answer.json()["code"]) == 3
        wrong = client.get("/codes/abcd")
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["name"] == "code"


def test_request_errors_name_the_parameter_or_field_and_why(tmp_path: Path) -> None:
    body = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 3},
            "tags": {"type": "array", "items": {"type": "integer"}},
        },
    }
    document = spec({"/pets": {"post": {
        "parameters": [{"name": "limit", "in": "query",
                        "schema": {"type": "integer", "maximum": 10}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": OK}}})  # fmt: skip
    with create_mock_app(write(tmp_path, document)).test_client() as client:
        assert client.post("/pets?limit=5", json={"name": "Rex", "tags": [1]}).status_code == 200
        answer = client.post("/pets?limit=50", json={"name": "Rexie", "tags": ["x"]})
        missing = client.post("/pets")
        wrong_type = client.post(
            "/pets", content=b"<pet/>", headers={"Content-Type": "application/xml"}
        )
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"in": "query", "name": "limit", "message": "50 is greater than the maximum of 10"},
        {"in": "body", "name": "/name", "message": '"Rexie" is longer than 3 characters'},
        {"in": "body", "name": "/tags/0", "message": '"x" is not of type "integer"'},
    ]
    assert "query parameter 'limit'" in answer.json()["detail"]
    assert missing.status_code == 422 and missing.json()["errors"][0]["message"] == "is required"
    assert wrong_type.status_code == 415


def test_cors_is_on_by_default_and_off_with_no_cors(tmp_path: Path) -> None:
    path = write(tmp_path, spec({"/pets": {"get": {"responses": OK}, "post": {"responses": OK}}}))
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}  # fmt: skip
    with create_mock_app(path).test_client() as client:
        answer = client.options("/pets", headers=preflight)
        assert answer.status_code == 204
        assert answer.headers["Access-Control-Allow-Methods"] == "GET, POST, HEAD"
        assert answer.headers["Access-Control-Allow-Headers"] == "content-type"
        assert client.get("/pets").headers["Access-Control-Allow-Origin"] == "*"
    with create_mock_app(path, cors=False).test_client() as client:
        assert client.options("/pets", headers=preflight).status_code == 405
        assert "Access-Control-Allow-Origin" not in client.get("/pets").headers


def test_a_body_is_never_sent_against_its_schema(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["id", "when"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "when": {"type": "string", "format": "date"},
        },
    }
    document = spec({"/x": {"get": {"responses": {"200": {"description": "ok", "content": {
        "application/json": {"schema": schema, "examples": {
            "wrong": {"value": {"id": 0, "when": "yesterday", "extra": 1}}}}}}}}}})  # fmt: skip
    with create_mock_app(write(tmp_path, document)).test_client() as client:
        assert client.get("/x").json() == {"id": 1, "when": "2024-01-01"}
        assert client.get("/x", headers={"Prefer": "example=wrong"}).json() == {
            "id": 1,
            "when": "2024-01-01",
        }
        for _ in range(5):
            dynamic = client.get("/x", headers={"Prefer": "dynamic=true"}).json()
            assert set(dynamic) == {"id", "when"} and dynamic["id"] >= 1


def test_prefer_delay_is_bounded() -> None:
    assert Prefer.parse("delay=999999999").delay_ms == MAX_DELAY_MS == 10_000


def test_the_command_reports_examples_serves_with_workers_and_a_delay_cannot_hold_shutdown(
    tmp_path: Path,
) -> None:
    document = spec({"/x": {"get": {"responses": {"200": {"description": "ok", "content": {
        "application/json": {"schema": {"type": "integer"}, "example": "seven"}}}}}}})  # fmt: skip
    port = free_port()
    command = clientkeys_command("mock", port, "--spec", str(write(tmp_path, document)),
                                 "--workers", "2", "--log-level", "warning")  # fmt: skip
    with running(command, port, tmp_path / "mock.log") as server:
        answer = httpx.get(f"{server.url}/x", timeout=2)
        assert answer.status_code == 200 and answer.json() == 0  # the invalid example replaced
        # serve's HTTP-layer limits hold for the mock too: an oversized header is a JSON 431
        huge = httpx.get(f"{server.url}/x", headers={"X-Big": "a" * 20_000}, timeout=5)
        assert huge.status_code == 431 and huge.headers["content-type"] == "application/json"
        delayed = b"GET /x HTTP/1.1\r\nHost: mock\r\nPrefer: delay=60000\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as pending:
            pending.sendall(delayed)
            client_port = pending.getsockname()[1]
            until(lambda: _read_by_server(port, client_port), 10, "the mock to read the request")
            stopped = time.monotonic()
            server.stop(timeout=20)
            # the delay is cut to 10 s and shutdown waits 2 s for it: an exit before 9 s did not
            # wait out the delay (on a loaded machine the 2 s grace took up to 6.4 s)
            assert time.monotonic() - stopped < 9
    output = server.log.read_text()
    assert "1 operations, 1 examples checked." in output
    assert '  GET /x 200 application/json: "seven" is not of type "integer"' in output


def _read_by_server(port: int, client_port: int) -> bool:
    """Whether the server listening on `port` has accepted the connection from `client_port`
    and read all it was sent: the kernel's own count (/proc/net/tcp) of bytes received and
    not yet read, on the server's side of that connection, and of connections not accepted."""
    server, client = f":{port:04X}", f":{client_port:04X}"
    waiting, unread = False, None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, remote, state, queues, *_ = line.split()
        queued = int(queues.split(":")[1], 16)
        if local.endswith(server) and state == "0A":  # LISTEN: its queue is what is not accepted
            waiting = waiting or queued > 0
        elif local.endswith(server) and remote.endswith(client) and state == "01":  # ESTABLISHED
            unread = queued
    return not waiting and unread == 0


def test_object_parameters_are_read_in_their_styles(tmp_path: Path) -> None:
    point = {"type": "object", "required": ["x"],
             "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}}  # fmt: skip
    document = spec({"/p": {"get": {"parameters": [
        {"name": "exploded", "in": "query", "schema": point},
        {"name": "flat", "in": "query", "explode": False, "schema": point},
        {"name": "deep", "in": "query", "style": "deepObject", "schema": point},
        {"name": "h", "in": "header", "explode": True, "schema": point},
    ], "responses": OK}}})  # fmt: skip
    query = "x=1&y=2&flat=x,3&deep[x]=4&deep[y]=5"
    with create_mock_app(write(tmp_path, document)).test_client() as client:
        assert client.get(f"/p?{query}", headers={"h": "x=6,y=7"}).status_code == 200
        wrong = client.get("/p?flat=x,three", headers={"h": "y=7"})
    assert [(e["name"], e["message"]) for e in wrong.json()["errors"]] == [
        ("flat at /x", '"three" is not of type "integer"'),
        ("h", '"x" is a required property'),
    ]


def test_text_and_xml_answers_carry_their_string_examples_as_they_are(tmp_path: Path) -> None:
    document = spec({"/t": {"get": {"responses": {"200": {"description": "ok", "content": {
        "text/plain": {"schema": {"type": "string"}, "example": "pong"},
        "application/xml": {"example": "<pong/>"}}}}}}})  # fmt: skip
    with create_mock_app(write(tmp_path, document)).test_client() as client:
        text = client.get("/t")
        xml = client.get("/t", headers={"Accept": "application/xml"})
    assert (text.headers["Content-Type"], text.text) == ("text/plain", "pong")
    assert (xml.headers["Content-Type"], xml.text) == ("application/xml", "<pong/>")
