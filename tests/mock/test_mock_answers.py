"""The mock's choice of answer: which documented status, which media type, which headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from clientkeys.mock.app import create_mock_app


def ok(example: Any, media: str = "application/json") -> dict[str, Any]:
    return {"description": "ok", "content": {media: {"example": example}}}


PATHS = {
    "/lowest": {"get": {"responses": {
        "404": ok({"at": "404"}), "204": {"description": "empty"}, "200": ok({"at": "200"})}}},
    "/range": {"get": {"responses": {"2XX": ok({"at": "2XX"}), "404": ok({"at": "404"})}}},
    "/lower-range": {"get": {"responses": {"2xx": ok({"at": "2xx"})}}},
    "/errors-only": {"get": {"responses": {"404": ok({"at": "404"}), "400": ok({"at": "400"})}}},
    "/default": {"get": {"responses": {"default": ok({"at": "default"})}}},
    "/nothing": {"get": {"responses": {}}},
    "/media": {"get": {"responses": {"200": {"description": "ok", "content": {
        "application/xml": {"example": "<at>xml</at>"},
        "text/plain": {"example": "text"},
        "application/json": {"example": {"at": "json"}}}}}}},
    "/headers": {"get": {"responses": {"200": {
        "description": "ok",
        "headers": {
            "X-Example": {"example": "plain", "schema": {"type": "string"}},
            "X-Named": {"examples": {"first": {"value": "named"}}, "schema": {"type": "string"}},
            "X-Schema": {"schema": {"type": "integer", "example": 7}},
            "X-Required": {"required": True, "schema": {"type": "integer", "minimum": 3}},
            "X-Optional": {"schema": {"type": "string"}},
            "X-Object": {"example": {"a": 1}, "schema": {"type": "object"}},
            "Content-Type": {"example": "text/evil", "schema": {"type": "string"}},
        },
        "content": {"application/json": {"example": {"at": "headers"}}}}}}},
}  # fmt: skip


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = tmp_path_factory.mktemp("answers") / "spec.json"
    path.write_text(json.dumps({
        "openapi": "3.1.0", "info": {"title": "answers", "version": "1"}, "paths": PATHS,
    }))  # fmt: skip
    with create_mock_app(path).test_client() as client:
        yield client


def answer(mock: Any, path: str, prefer: str | None = None, **headers: str) -> tuple[int, Any]:
    if prefer is not None:
        headers["Prefer"] = prefer
    response = mock.get(path, headers=headers)
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return response.status_code, response.json() if is_json else response.text


def test_the_lowest_documented_2xx_answers_by_default(mock: Any) -> None:
    assert answer(mock, "/lowest") == (200, {"at": "200"})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/range", (200, {"at": "2XX"})),
        ("/lower-range", (200, {"at": "2xx"})),
        ("/errors-only", (400, {"at": "400"})),
        ("/default", (200, {"at": "default"})),
        ("/nothing", (200, "")),
    ],
)
def test_without_a_plain_2xx_the_answer_is_its_range_else_the_lowest_status_else_default(
    mock: Any, path: str, expected: tuple[int, Any]
) -> None:
    assert answer(mock, path) == expected


@pytest.mark.parametrize(
    ("path", "code", "expected"),
    [
        ("/lowest", "404", (404, {"at": "404"})),
        ("/lowest", "204", (204, "")),
        ("/range", "202", (202, {"at": "2XX"})),
        ("/lower-range", "206", (206, {"at": "2xx"})),
        ("/range", "404", (404, {"at": "404"})),
        ("/default", "418", (418, {"at": "default"})),
    ],
)
def test_prefer_code_picks_that_status_its_range_or_default(
    mock: Any, path: str, code: str, expected: tuple[int, Any]
) -> None:
    assert answer(mock, path, f"code={code}") == expected


@pytest.mark.parametrize(
    ("path", "code", "documented"),
    [
        ("/lowest", "500", "404, 204, 200"),
        ("/range", "500", "2XX, 404"),
        ("/default", "teapot", "default"),
        ("/nothing", "200", "none"),
    ],
)
def test_prefer_code_that_is_not_documented_is_400_listing_what_is(
    mock: Any, path: str, code: str, documented: str
) -> None:
    status, body = answer(mock, path, f"code={code}")
    assert status == 400
    assert body["detail"] == (
        f"Prefer code={code} is not documented here; documented: {documented}."
    )


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, {"at": "json"}),
        ("*/*", {"at": "json"}),
        ("application/xml", "<at>xml</at>"),
        ("APPLICATION/XML; charset=utf-8", "<at>xml</at>"),
        ("text/*", "text"),
        ("image/png, text/plain;q=0.5", "text"),
        ("image/png", {"at": "json"}),
        ("text/html, */*", {"at": "json"}),
    ],
)
def test_the_media_type_is_the_first_the_client_accepts_json_preferred(
    mock: Any, accept: str | None, expected: Any
) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    assert answer(mock, "/media", **headers) == (200, expected)


def test_documented_response_headers_come_from_their_examples(mock: Any) -> None:
    response = mock.get("/headers")
    assert response.status_code == 200 and response.json() == {"at": "headers"}
    assert response.headers["X-Example"] == "plain"
    assert response.headers["X-Named"] == "named"
    assert response.headers["X-Schema"] == "7"
    assert int(response.headers["X-Required"]) >= 3  # required: generated from its schema
    assert response.headers["X-Object"] == '{"a":1}'
    assert "X-Optional" not in response.headers  # optional and without an example
    assert response.headers["Content-Type"] == "application/json"
