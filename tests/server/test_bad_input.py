"""The bad-input table: each row is input a client can send; none gives a 500 or writes
anything, each is a documented 4xx in the spec's error shape (or, where the input is fine
after all, the normal answer). The HTTP layer's own refusals are in test_http_edges.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import NOT_FOUND, SEEDED_KEYS, Api, World, assert_error

HEX = "a" * 32
INVALID_PER_PAGE = "Invalid per_page parameter."
INVALID_CURSOR = "Invalid cursor parameter."
PATTERN = "This value does not match the required pattern."


def stored(world: World) -> tuple[int, int]:
    """What a request could have written: keys and audit entries."""
    keys = world.key_count()
    audit = int(world.store.execute("SELECT count(*) FROM audit_log").fetchone()[0])
    return keys, audit


# (what, method, path under /api/0/projects/, body or None, status, detail or None)
TABLE: list[tuple[str, str, str, Any, int, Any]] = [
    # Ids are ASCII digits: other Unicode digits are slugs no organization has.
    ("superscript two as org id", "GET", "%C2%B2/web/keys/", None, 404, NOT_FOUND),
    ("arabic-indic one as org id", "GET", "%D9%A1/web/keys/", None, 404, NOT_FOUND),
    ("fullwidth one as org id", "GET", "%EF%BC%91/web/keys/", None, 404, NOT_FOUND),
    ("arabic-indic one as project id", "GET", "acme/%D9%A1/keys/", None, 404, NOT_FOUND),
    ("fullwidth one, create", "POST", "%EF%BC%91/web/keys/", {}, 404, NOT_FOUND),
    ("superscript two, update", "PUT", f"%C2%B2/web/keys/{HEX}/", {}, 404, NOT_FOUND),
    ("arabic-indic one, delete", "DELETE", f"acme/%D9%A1/keys/{HEX}/", None, 404, NOT_FOUND),
    # Keys match whole: Python's `$` would also match before a final newline.
    ("public with a newline", "POST", "acme/web/keys/", {"public": HEX + "\n"}, 400,
     {"public": [PATTERN]}),
    ("secret with a newline", "POST", "acme/web/keys/", {"secret": HEX + "\n"}, 400,
     {"secret": [PATTERN]}),
    ("public with a CRLF", "POST", "acme/web/keys/", {"public": HEX + "\r\n"}, 400,
     {"public": [PATTERN]}),
    ("fullwidth hex public", "POST", "acme/web/keys/", {"public": "ａ" * 32}, 400,
     {"public": [PATTERN]}),
    ("key id with a newline", "GET", f"acme/web/keys/{HEX}%0A/", None, 404, NOT_FOUND),
    ("upper-case key id", "GET", f"acme/web/keys/{HEX.upper()}/", None, 404, NOT_FOUND),
    # Integers are plain ASCII digits.
    ("per_page with a space", "GET", "acme/web/keys/?per_page=%201", None, 400, INVALID_PER_PAGE),
    ("per_page with an underscore", "GET", "acme/web/keys/?per_page=1_0", None, 400,
     INVALID_PER_PAGE),
    ("per_page in arabic-indic", "GET", "acme/web/keys/?per_page=%D9%A1", None, 400,
     INVALID_PER_PAGE),
    ("per_page with a plus", "GET", "acme/web/keys/?per_page=%2B5", None, 400, INVALID_PER_PAGE),
    ("per_page with a newline", "GET", "acme/web/keys/?per_page=5%0A", None, 400,
     INVALID_PER_PAGE),
    ("per_page huge", "GET", "acme/web/keys/?per_page=" + "9" * 40, None, 400,
     "Invalid per_page value. Cannot exceed 100."),
    ("cursor with a newline", "GET", "acme/web/keys/?cursor=1:0:0%0A", None, 400, INVALID_CURSOR),
    ("cursor that is a newline", "GET", "acme/web/keys/?cursor=%0A", None, 400, INVALID_CURSOR),
    ("cursor with a space", "GET", "acme/web/keys/?cursor=%201:0:0", None, 400, INVALID_CURSOR),
    ("cursor with an underscore", "GET", "acme/web/keys/?cursor=1_0:0:0", None, 400,
     INVALID_CURSOR),
    ("cursor in arabic-indic", "GET", "acme/web/keys/?cursor=%D9%A1:0:0", None, 400,
     INVALID_CURSOR),
    # Paths no route holds.
    ("empty segment", "GET", "acme//web/keys/", None, 404, NOT_FOUND),
    ("empty key id", "DELETE", "acme/web/keys//", None, 404, NOT_FOUND),
    ("empty key id, update", "PUT", "acme/web/keys//", {}, 404, NOT_FOUND),
    # Query parameters: unknown ones are refused, and at most 100 are read.
    ("an unknown parameter on retrieve", "GET", f"acme/web/keys/{HEX}/?x=1", None, 400, None),
    ("101 query parameters", "GET", "acme/web/keys/?" + "&".join(f"p{i}=1" for i in range(101)),
     None, 400, "Too many query parameters: at most 100."),
    ("101 empty query parameters", "DELETE", f"acme/web/keys/{HEX}/?" + "&" * 100, None, 400,
     "Too many query parameters: at most 100."),
    # Bodies.
    ("rateLimit count beyond a float", "POST", "acme/web/keys/",
     {"rateLimit": {"count": "1e400", "window": 60}}, 400, None),
    ("name that is a list", "PUT", f"acme/web/keys/{HEX}/", {"name": ["x"]}, 400,
     {"name": ["Not a valid string."]}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_bad_input_is_a_documented_4xx_and_writes_nothing(
    api: Api, world: World, method: str, path: str, body: Any, status: int, detail: Any
) -> None:
    api.new_key({"public": HEX})  # something an update or a delete could reach
    before = stored(world)
    headers = world.headers()
    content = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        content = json.dumps(body).replace('"1e400"', "1e400").encode()
    response = api.client.request(method, f"/api/0/projects/{path}", content=content,
                                  headers=headers)  # fmt: skip
    error = assert_error(response, status)
    if isinstance(detail, str):
        assert error == {"detail": detail}
    elif detail is not None:
        assert error == detail
    assert stored(world) == before
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "content_type",
    ["APPLICATION/JSON", "Application/Json; charset=UTF-8", "application/JSON ;charset=utf-8"],
)
def test_media_types_are_case_insensitive(api: Api, world: World, content_type: str) -> None:
    headers = {**world.headers(), "Content-Type": content_type}
    created = api.client.post(api.url(), content=b'{"name": "upper"}', headers=headers)
    assert created.status_code == 201 and created.json()["name"] == "upper"
    key_url = api.key_url(created.json()["id"])
    updated = api.client.put(key_url, content=b'{"name": "again"}', headers=headers)
    assert updated.status_code == 200 and updated.json()["name"] == "again"
    invalid = api.client.put(key_url, content=b'{"name": 5}', headers=headers)
    assert assert_error(invalid, 400) == {"name": ["Not a valid string."]}
    assert world.key_count() == SEEDED_KEYS + 1


def test_every_response_forbids_caching_and_sniffing(api: Api) -> None:
    key = api.new_key()
    responses = [
        api.list(), api.get(key["id"]), api.put(key["id"], {"name": "n"}), api.delete(key["id"]),
        api.get(key["id"]), api.list(who="read", query="x=1"), api.client.get(api.url()),
        api.client.patch(api.url()), api.client.get("/openapi.json"),
    ]  # fmt: skip
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 204, 404, 400, 401, 405, 200]
    for response in responses:
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
