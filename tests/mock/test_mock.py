"""`clientkeys mock`: examples-based, validated like the real server, steered with Prefer."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openapi_schema_validator import OAS30Validator

from clientkeys.cli import main
from clientkeys.config import SPEC_DIR
from clientkeys.mock.app import InvalidExample, Prefer, Report, create_mock_app
from clientkeys.openapi.specs import HTTP_METHODS, load_spec
from conftest import assert_error

KEYS = "/api/0/projects/acme/web/keys/"
KEY = KEYS + "0123456789abcdef0123456789abcdef/"
ANY = {"Authorization": "Bearer any-token"}


@pytest.fixture(scope="module")
def mock() -> Iterator[Any]:
    with create_mock_app(SPEC_DIR / "openapi.json").test_client() as client:
        yield client


def documented() -> list[tuple[str, str, str, Any]]:
    spec = load_spec(SPEC_DIR)
    return [
        (method, path, status, response)
        for path, item in spec["paths"].items()
        for method in HTTP_METHODS
        if method in item
        for status, response in item[method]["responses"].items()
    ]


def concrete(path: str) -> str:
    return (
        path.replace("{organization_slug}", "acme")
        .replace("{project_slug}", "web")
        .replace("{key_id}", "0123456789abcdef0123456789abcdef")
    )


@pytest.mark.parametrize(("method", "path", "status", "response"), documented())
def test_every_documented_status_of_every_operation_on_request(
    mock: Any, method: str, path: str, status: str, response: Any
) -> None:
    answer = mock.request(
        method.upper(), concrete(path), headers={**ANY, "Prefer": f"code={status}"},
        json={} if method in ("post", "put") else None,
    )  # fmt: skip
    assert answer.status_code == int(status)
    content = response.get("content", {}).get("application/json")
    if content is None:
        assert answer.content == b""
    else:
        OAS30Validator(content["schema"]).validate(answer.json())
    for name, header in response.get("headers", {}).items():
        if header.get("required"):
            assert name.lower() in answer.headers


def test_default_answer_is_the_lowest_2xx_with_its_example(mock: Any) -> None:
    seed = json.loads((SPEC_DIR / "upstream" / "keys.json").read_text())
    listed = mock.get(KEYS, headers=ANY)
    assert listed.status_code == 200
    assert (
        listed.json() == seed["get"]["responses"]["200"]["content"]["application/json"]["example"]
    )
    assert mock.post(KEYS, json={"name": "x"}, headers=ANY).status_code == 201
    assert mock.delete(KEY, headers=ANY).status_code == 204


def test_named_examples_are_chosen_with_prefer_example(mock: Any) -> None:
    cursor = mock.get(KEYS, headers={**ANY, "Prefer": "code=400, example=cursor"})
    assert cursor.json() == {"detail": "Invalid cursor parameter."}
    field = mock.get(KEYS, headers={**ANY, "Prefer": "code=400; example=field"})
    assert field.json() == {"name": ["Ensure this field has no more than 64 characters."]}


def test_unknown_example_or_code_is_a_clear_400(mock: Any) -> None:
    body = assert_error(mock.get(KEYS, headers={**ANY, "Prefer": "code=400, example=nope"}), 400)
    assert "named examples: field, cursor" in body["detail"]
    body = assert_error(mock.get(KEYS, headers={**ANY, "Prefer": "code=418"}), 400)
    assert "not documented here; documented: 200, 400, 401, 403, 404" in body["detail"]


def test_dynamic_answers_are_generated_and_valid(mock: Any) -> None:
    spec = load_spec(SPEC_DIR)
    schema = spec["paths"]["/api/0/projects/{organization_slug}/{project_slug}/keys/{key_id}/"][
        "get"
    ]["responses"]["200"]["content"]["application/json"]["schema"]
    bodies = [mock.get(KEY, headers={**ANY, "Prefer": "dynamic=true"}).json() for _ in range(3)]
    for body in bodies:
        OAS30Validator(schema).validate(body)
    assert len({json.dumps(b, sort_keys=True) for b in bodies}) > 1


def test_delay_holds_the_answer(mock: Any) -> None:
    started = time.monotonic()
    assert mock.get(KEYS, headers={**ANY, "Prefer": "delay=300"}).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert_error(mock.get(KEYS, headers={**ANY, "Prefer": "delay=soon"}), 400)


def test_requests_are_validated_like_the_real_server(mock: Any) -> None:
    body = assert_error(mock.post(KEYS, json={"name": "n" * 65}, headers=ANY), 400)
    assert body == {"name": ["Ensure this field has no more than 64 characters."]}
    assert_error(mock.get(KEYS + "?per_page=500", headers=ANY), 400,
                 "Invalid per_page value. Cannot exceed 100.")  # fmt: skip
    assert_error(mock.get(KEYS), 401, "Authentication credentials were not provided.")
    assert_error(mock.put(KEY, content=b"x", headers={**ANY, "Content-Type": "text/plain"}), 415)


def test_token_list_and_scopes_are_enforced() -> None:
    app = create_mock_app(
        SPEC_DIR / "openapi.json",
        {"reader": frozenset({"project:read"}), "admin": frozenset({"project:admin"})},
    )
    with app.test_client() as client:
        assert client.get(KEYS, headers={"Authorization": "Bearer reader"}).status_code == 200
        assert_error(client.get(KEYS, headers=ANY), 401, "Invalid token")
        assert_error(client.post(KEYS, json={}, headers={"Authorization": "Bearer reader"}), 403)
        assert client.delete(KEY, headers={"Authorization": "Bearer admin"}).status_code == 204


@pytest.fixture
def broken_spec(tmp_path: Path) -> Path:
    copy = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, copy)
    keys = copy / "paths" / "projects" / "keys.json"
    document = json.loads(keys.read_text())
    document["post"]["responses"]["201"]["content"]["application/json"]["example"]["isActive"] = (
        "yes"
    )
    keys.write_text(json.dumps(document))
    return copy / "openapi.json"


def test_with_strict_an_invalid_example_stops_the_start_naming_it(broken_spec: Path) -> None:
    with pytest.raises(InvalidExample) as error:
        create_mock_app(broken_spec, strict=True)
    message = str(error.value)
    assert "POST /api/0/projects/{organization_slug}/{project_slug}/keys/ 201" in message
    assert '"yes" is not of type "boolean"' in message
    result = CliRunner().invoke(main, ["mock", "--strict", "--spec", str(broken_spec)])
    assert result.exit_code == 1 and "Invalid example at POST" in result.output


def test_without_strict_an_invalid_example_is_reported_and_replaced(broken_spec: Path) -> None:
    report = Report()
    with create_mock_app(broken_spec, report=report).test_client() as client:
        created = client.post(KEYS, json={"name": "x"}, headers=ANY)
    assert report.invalid == [
        "POST /api/0/projects/{organization_slug}/{project_slug}/keys/ 201 application/json at "
        '/isActive: "yes" is not of type "boolean"'
    ]
    assert created.status_code == 201
    assert created.json()["isActive"] in (True, False)
    spec = load_spec(SPEC_DIR)
    schema = spec["paths"]["/api/0/projects/{organization_slug}/{project_slug}/keys/"]["post"][
        "responses"]["201"]["content"]["application/json"]["schema"]  # fmt: skip
    OAS30Validator(schema).validate(created.json())


def test_any_openapi_30_document_can_be_mocked(tmp_path: Path) -> None:
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Pets", "version": "1"},
        "servers": [{"url": "/v1"}],
        "paths": {
            "/pets/{id}": {
                "get": {
                    "operationId": "getPet",
                    "parameters": [{"name": "id", "in": "path", "required": True,
                                    "schema": {"type": "integer"}}],
                    "responses": {
                        "200": {"description": "A pet", "content": {"application/json": {
                            "schema": {"type": "object", "required": ["name"],
                                       "properties": {"name": {"type": "string"}}},
                            "example": {"name": "Rex"}}}},
                        "404": {"description": "None"},
                    },
                }
            }
        },
    }  # fmt: skip
    path = tmp_path / "pets.json"
    path.write_text(json.dumps(spec))
    with create_mock_app(path).test_client() as client:
        assert client.get("/v1/pets/1").json() == {"name": "Rex"}
        assert client.get("/v1/pets/1", headers={"Prefer": "code=404"}).status_code == 404
        wrong = client.get("/v1/pets/abc")  # an integer path parameter: a validation error
        assert wrong.status_code == 422
        assert wrong.json()["errors"] == [
            {"in": "path", "name": "id", "message": '"abc" is not of type "integer"'}
        ]
        generated = client.get("/v1/pets/1", headers={"Prefer": "dynamic=true"}).json()
        assert isinstance(generated["name"], str)


def test_our_spec_passes_strict_example_checks() -> None:
    report = Report()
    create_mock_app(SPEC_DIR / "openapi.json", strict=True, report=report)
    assert report.operations == 13 and report.examples >= 20  # keys (5), Sentry's CLIs' (8)
    assert report.invalid == [] and report.problems == []


def test_prefer_header_parsing() -> None:
    assert Prefer.parse('code=404, example="cursor"; dynamic=true, delay=5') == Prefer(
        code="404", example="cursor", dynamic=True, delay_ms=5
    )
    assert Prefer.parse(None) == Prefer()
    assert Prefer.parse("respond-async, wait=5") == Prefer()
