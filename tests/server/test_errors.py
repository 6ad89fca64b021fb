"""Bad input is a documented 4xx in the spec's error shape: never a 500, never a write."""

from __future__ import annotations

import json
import sqlite3

import pytest

from clientkeys.config import Settings
from clientkeys.server.app import create_app
from clientkeys.store import repository
from conftest import KEYS_URL, SEEDED_KEYS, Api, World, assert_error


def post_raw(api: Api, content: bytes, content_type: str | None = "application/json") -> object:
    headers = api.world.headers()
    if content_type:
        headers["Content-Type"] = content_type
    return api.client.post(api.url(), content=content, headers=headers)


@pytest.mark.parametrize(
    ("content", "start"),
    [
        (b"{", "JSON parse error - "),
        (b'{"name": "x",}', "JSON parse error - "),
        (b"\xff\xfe{}", "JSON parse error - 'utf-8' codec can't decode"),
        (b"[" * 30000 + b"]" * 30000, "JSON parse error - "),  # too deep to parse
    ],
)
def test_unparseable_bodies_are_400(api: Api, world: World, content: bytes, start: str) -> None:
    assert assert_error(post_raw(api, content), 400)["detail"].startswith(start)
    assert world.key_count() == SEEDED_KEYS


@pytest.mark.parametrize(
    ("content", "kind"), [(b"[1]", "list"), (b'"x"', "str"), (b"3", "int"), (b"true", "bool")]
)
def test_a_body_that_is_not_an_object_is_400(
    api: Api, world: World, content: bytes, kind: str
) -> None:
    body = assert_error(post_raw(api, content), 400)
    assert body == {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
    assert world.key_count() == SEEDED_KEYS


def test_a_json_null_body_is_400(api: Api, world: World) -> None:
    assert assert_error(post_raw(api, b"null"), 400) == {"non_field_errors": ["No data provided"]}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(api: Api, world: World, content_type: str) -> None:
    response = post_raw(api, b'{"name": "x"}', content_type)
    assert_error(response, 415, f'Unsupported media type "{content_type}" in request.')
    assert world.key_count() == SEEDED_KEYS


def test_a_body_without_content_type_is_415(api: Api, world: World) -> None:
    assert_error(post_raw(api, b'{"name": "x"}', None), 415)
    assert world.key_count() == SEEDED_KEYS


def test_charset_other_than_utf8_is_still_read_as_utf8(api: Api) -> None:
    response = post_raw(api, '{"name": "Zoë"}'.encode(), "application/json; charset=latin-1")
    assert response.status_code == 201 and response.json()["name"] == "Zoë"


@pytest.mark.parametrize("method", ["put", "delete", "patch", "options"])
def test_unsupported_method_is_405_with_a_correct_allow_header(api: Api, method: str) -> None:
    response = api.client.request(method.upper(), api.url(), headers=api.world.headers())
    assert_error(response, 405, f'Method "{method.upper()}" not allowed.')
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST", "HEAD"}


def test_every_method_in_allow_is_served(api: Api) -> None:
    allowed = api.client.request("PATCH", api.url()).headers["allow"].split(", ")
    for method in allowed:
        response = api.client.request(method, api.url(), headers=api.world.headers(), json={})
        assert response.status_code in (200, 201), (method, response.text)


def test_head_answers_the_list_headers_without_a_body(api: Api) -> None:
    response = api.client.head(api.url(), headers=api.world.headers())
    assert response.status_code == 200 and response.content == b""
    assert 'rel="next"' in response.headers["link"]


def test_unknown_path_is_404_json(api: Api) -> None:
    assert_error(api.client.get("/api/0/nothing/"), 404)


def test_body_over_the_limit_is_413(settings: Settings, world: World) -> None:
    app = create_app(settings.replace(max_body_bytes=100))
    with app.test_client() as client:
        response = client.post(KEYS_URL, json={"name": "x" * 200}, headers=world.headers())
    assert_error(response, 413, "Request body is larger than 100 bytes.")
    assert world.key_count() == SEEDED_KEYS


def test_invalid_content_length_is_400(api: Api, world: World) -> None:
    headers = {**world.headers(), "Content-Type": "application/json", "Content-Length": "abc"}
    response = api.client.post(api.url(), content=b"{}", headers=headers)
    assert_error(response, 400, "Invalid Content-Length header.")
    assert world.key_count() == SEEDED_KEYS


def test_unknown_query_parameters_are_400(api: Api) -> None:
    body = assert_error(api.list(query="foo=1"), 400)
    assert "foo" in body["detail"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nul\x00byte", "Null characters are not allowed."),
        ("lone \ud800 surrogate", "Surrogate characters are not allowed: U+D800."),
        ("last \udfff surrogate", "Surrogate characters are not allowed: U+DFFF."),
    ],
)
def test_names_sqlite_cannot_keep_are_400(api: Api, world: World, name: str, message: str) -> None:
    content = json.dumps({"name": name}).encode()  # ASCII escapes: \u0000, \ud800
    assert assert_error(post_raw(api, content), 400) == {"name": [message]}
    assert world.key_count() == SEEDED_KEYS


@pytest.mark.parametrize(
    "name",
    [
        "Robert'); DROP TABLE keys;--",
        '" OR 1=1 --',
        "\u202eevil\u202c",
        "日本語のキー 🔑",
        "tab\tand\nnewline",
        "\U0001f600" * 64,
    ],
)
def test_odd_but_valid_names_are_stored_verbatim(api: Api, name: str) -> None:
    key = api.create({"name": name}).json()
    assert key["name"] == name
    assert any(k["name"] == name for k in api.list().json())


def test_65_emoji_are_over_the_limit(api: Api) -> None:
    assert api.create({"name": "\U0001f600" * 65}).status_code == 400


def test_a_storage_error_raised_while_reading_rows_is_a_503_not_a_500(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_read(*_args: object, **_kwargs: object) -> None:
        error = sqlite3.OperationalError("disk I/O error")
        error.sqlite_errorcode = sqlite3.SQLITE_IOERR_READ  # type: ignore[attr-defined]
        raise error

    monkeypatch.setattr(repository, "list_keys", failing_read)
    response = api.list()
    detail = assert_error(response, 503)["detail"]
    assert detail == "The database file cannot be read or written: disk I/O error."
    assert response.headers["retry-after"] == "5"
    assert not [r for r in caplog.records if r.exc_info]  # no traceback
