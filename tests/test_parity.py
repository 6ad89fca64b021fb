"""One Sentry dialect: serve and the mock of our spec answer the same bad request alike.

Every row of TABLE is a request a client can get wrong. It is sent, in process, to serve
(`create_app` over a seeded SQLite database) and to the mock of our spec (`create_mock_app`),
as `clientkeys mock` runs it (no token list: any bearer token passes) and with `--token` (the
same tokens serve holds, with their scopes); both must answer with the same status and body
(and the same `WWW-Authenticate` or `Allow` header where there is one). Serve is the
reference: tests/server/test_sentry_behaviours.py holds it to Sentry's own behaviour.

The rows of tests/server/test_bad_input.py's table are rows here too, except those listed in
STATEFUL and GUARDED with the reason the tools must differ on them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from clientkeys.config import SPEC_DIR, Settings
from clientkeys.mock.app import create_mock_app
from clientkeys.server.app import create_app
from clientkeys.store import backend as storage
from clientkeys.store import repository
from server.test_bad_input import TABLE as BAD_INPUT

PROJECTS = "/api/0/projects/"
HEX = "a" * 32
KEYS = "acme/web/keys/"
KEY = f"{KEYS}{HEX}/"
SCOPES = {
    "all": ["project:read", "project:write", "project:admin"],
    "read": ["project:read"],
    "write": ["project:write"],
}


@dataclass(frozen=True)
class Bad:
    """One bad request. `authorization` names a token of SCOPES (`{all}`) or is the header
    as sent (None: no header); `content_type` defaults to JSON when there is a body."""

    what: str
    method: str
    path: str  # under /api/0/projects/
    body: bytes | None = None
    content_type: str | None = "application/json"
    authorization: str | None = "Bearer {all}"
    token_list: bool = False  # only `mock --token` knows tokens and scopes

    def headers(self, tokens: Mapping[str, str]) -> dict[str, str]:
        headers = {}
        if self.authorization is not None:
            headers["Authorization"] = self.authorization.format(**tokens)
        if self.body is not None and self.content_type is not None:
            headers["Content-Type"] = self.content_type
        return headers


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def both(what: str, content: bytes, **kwargs: Any) -> list[Bad]:
    """The same body sent to create and to update."""
    return [
        Bad(f"{what}, create", "POST", KEYS, content, **kwargs),
        Bad(f"{what}, update", "PUT", KEY, content, **kwargs),
    ]


def fields(name: str, values: list[Any], create: bool = True, update: bool = True) -> list[Bad]:
    """A field of the body with each of `values`, on the operations that take it."""
    rows = []
    for value in values:
        content = body({name: value})
        if create:
            rows.append(Bad(f"{name}={value!r}, create", "POST", KEYS, content))
        if update:
            rows.append(Bad(f"{name}={value!r}, update", "PUT", KEY, content))
    return rows


# test_bad_input.py's rows serve answers from its state, where the stateless mock answers a
# valid request from the spec's examples: ids that are no organization, project or key.
STATEFUL = {
    "superscript two as org id": "no such organization",
    "arabic-indic one as org id": "no such organization",
    "fullwidth one as org id": "no such organization",
    "arabic-indic one as project id": "no such project",
    "fullwidth one, create": "no such organization",
    "superscript two, update": "no such organization",
    "arabic-indic one, delete": "no such project",
    "upper-case key id": "no such key",
    "key id with a newline": "no such key (serve's path guard refuses control characters)",
}
# Serve's request guards (runtime.guards) cap a request's query parameters before routing and
# authentication: Connexion collects them in quadratic time. The spec engine reads a query in
# one linear pass and has no such cap, and the cap is serve's, not Sentry's dialect.
GUARDED = {
    "101 query parameters": "serve's query-parameter cap",
    "101 empty query parameters": "serve's query-parameter cap",
}


def from_bad_input() -> list[Bad]:
    rows = []
    for what, method, path, value, _status, _detail in BAD_INPUT:
        if what in STATEFUL or what in GUARDED:
            continue
        content = None if value is None else body(value).replace(b'"1e400"', b"1e400")
        rows.append(Bad(what, method, path, content))
    return rows


AUTHORIZATION = [
    None, "", "Bearer", "Bearer ", "bearer", "Bearer a b", "Bearer a\tb", "Bearer  a  b",
    "BEARER x y", "Basic abc", "Token x", "x", "Bearer x, Bearer y",
]  # fmt: skip

TABLE: list[Bad] = [
    *from_bad_input(),
    # Issue 19: the seven requests the mock answered unlike serve, then some it answered alike.
    *both("a list body", b"[1]"),
    *both("a string body", b'"x"'),
    *both("a null body", b"null"),
    *both("malformed JSON", b"{"),
    *fields("rateLimit", [{"count": "x", "window": 60}]),
    Bad("an unknown query parameter", "GET", f"{KEYS}?foo=1"),
    Bad("a token with a space", "GET", KEYS, authorization="Bearer a b"),
    *fields("name", ["n" * 65]),
    Bad("per_page over 100", "GET", f"{KEYS}?per_page=500"),
    Bad("no credentials", "GET", KEYS, authorization=None),
    Bad("a text body", "PUT", KEY, b"x", content_type="text/plain"),
    Bad("a bad cursor", "GET", f"{KEYS}?cursor=x"),
    # Bodies of every type but an object, and JSON that does not parse.
    *both("an empty list body", b"[]"),
    *both("an integer body", b"1"),
    *both("a float body", b"1.5"),
    *both("a boolean body", b"true"),
    *both("a cut-off object", b'{"a":'),
    *both("whitespace only", b" "),
    *both("two objects", b"{}{}"),
    *both("a trailing comma", b'{"name": "x",}'),
    *both("invalid UTF-8", b"\xff"),
    *both("invalid UTF-8 in a string", b'{"name": "\xff"}'),
    *both("a byte order mark", b"\xef\xbb\xbf{}"),
    *both("NaN", b'{"name": NaN}'),
    *both("Infinity in an unknown field", b'{"foo": Infinity}'),
    *both("nested too deep", b"[" * 2000 + b"]" * 2000),
    # Each field's wrong types and values.
    *fields("name", [1, True, [], {}, "a\x00", "\ud800"]),
    *fields("rateLimit", ["x", 1, [], True, {}, {"count": 1}, {"window": 60}]),
    *fields("rateLimit", [{"count": -1, "window": 60}, {"count": 1, "window": "x"}]),
    *fields("rateLimit", [{"count": 1.5, "window": 60}, {"count": 1, "window": -1}]),
    *fields("rateLimit", [{"count": 10**22, "window": 60}, {"count": "1", "window": 60}]),
    *both("rateLimit count 1e400", b'{"rateLimit": {"count": 1e400, "window": 60}}'),
    *fields("public", [1, "x", [], "A" * 32, HEX + "\n"], update=False),
    *fields("secret", [1, "x", False], update=False),
    *fields("useCase", ["x", 1, None], update=False),
    *fields("isActive", ["x", 1, None], create=False),
    *fields("browserSdkVersion", ["x", 1, None], create=False),
    *fields("dynamicSdkLoaderOptions", ["x", 1, [], {"hasReplay": "x"}], create=False),
    *both("three wrong fields", body({"name": 1, "rateLimit": "x", "public": 2})),
    # Unknown and repeated query parameters.
    Bad("an unknown parameter on delete", "DELETE", f"{KEY}?foo=1"),
    Bad("an unknown parameter on create", "POST", f"{KEYS}?foo=1", b"{}"),
    Bad("an unknown parameter on update", "PUT", f"{KEY}?foo=1", b"{}"),
    Bad("two unknown parameters", "GET", f"{KEYS}?foo=1&bar=2"),
    Bad("a parameter without a value", "GET", f"{KEYS}?foo"),
    Bad("a parameter without a name", "GET", f"{KEYS}?=1"),
    Bad("a bracketed parameter", "GET", f"{KEYS}?a[b]=1"),
    Bad("a parameter in the wrong case", "GET", f"{KEYS}?Cursor=x"),
    Bad("a list parameter on retrieve", "GET", f"{KEY}?cursor=1:0:0"),
    Bad("an unknown parameter before a bad cursor", "GET", f"{KEYS}?cursor=x&foo=1"),
    Bad("an unknown parameter, HEAD", "HEAD", f"{KEYS}?foo=1"),
    Bad("an unknown parameter with a bad body", "POST", f"{KEYS}?foo=1", b"[1]"),
    Bad("an unknown parameter with a text body", "POST", f"{KEYS}?foo=1", b"x", "text/plain"),
    Bad("per_page good then bad", "GET", f"{KEYS}?per_page=1&per_page=x"),
    Bad("per_page bad then over", "GET", f"{KEYS}?per_page=x&per_page=500"),
    Bad("cursor good then bad", "GET", f"{KEYS}?cursor=1:0:0&cursor=x"),
    Bad("a bad cursor before a bad per_page", "GET", f"{KEYS}?per_page=x&cursor=x"),
    Bad("per_page in arabic-indic after a bad cursor", "GET", f"{KEYS}?cursor=x&per_page=%D9%A1"),
    # Bad cursors and per_page.
    *[
        Bad(f"cursor={value}", "GET", f"{KEYS}?cursor={value}")
        for value in ["1:0", "1:0:2", "1:-1:0", "a:0:0", "1:0:0:0", "1.5.5:0:0", "%EF%BC%91:0:0"]
    ],
    *[
        Bad(f"per_page={value}", "GET", f"{KEYS}?per_page={value}")
        for value in ["0", "-1", "x", "101", "", "1.0", "1e2", "-0", "0x10", "%EF%BC%95"]
    ],
    Bad("per_page over 100, HEAD", "HEAD", f"{KEYS}?per_page=500"),
    # Every malformed Authorization header, before anything else is looked at.
    *[
        Bad(f"Authorization {header!r}, {method}", method, path, content,
            authorization=header)
        for header in AUTHORIZATION
        for method, path, content in [("GET", f"{KEYS}?foo=1", None), ("POST", KEYS, b"[1]"),
                                      ("DELETE", KEY, None)]
    ],  # fmt: skip
    # Tokens and scopes: only a mock given the token list can know them.
    Bad("an unknown token", "GET", KEYS, authorization="Bearer unknown", token_list=True),
    Bad("an unknown token, bad body", "POST", KEYS, b"[1]", authorization="Bearer unknown",
        token_list=True),
    Bad("a read token creates", "POST", KEYS, b"{}", authorization="Bearer {read}",
        token_list=True),
    Bad("a read token updates", "PUT", KEY, b"{}", authorization="Bearer {read}",
        token_list=True),
    Bad("a read token deletes", "DELETE", KEY, authorization="Bearer {read}", token_list=True),
    Bad("a read token, bad body", "POST", KEYS, b"[1]", authorization="Bearer {read}",
        token_list=True),
    # Bad requests for an unknown organization or project: refused before any lookup. (A valid
    # request for one is a 404 from serve and an example from the mock: not in this table.)
    Bad("unknown organization, bad per_page", "GET", "nope/web/keys/?per_page=x"),
    Bad("unknown project, bad body", "POST", "acme/nope/keys/", b"[1]"),
    Bad("unknown organization, no credentials", "GET", "nope/web/keys/", authorization=None),
    Bad("unknown project, unknown parameter", "DELETE", f"acme/nope/keys/{HEX}/?foo=1"),
    # Wrong methods, answered before authentication.
    *[Bad(f"{m} on the list", m, KEYS) for m in ["PATCH", "PUT", "DELETE", "OPTIONS", "TRACE"]],
    *[Bad(f"{m} on a key", m, KEY) for m in ["POST", "PATCH", "OPTIONS"]],
    Bad("PATCH without credentials", "PATCH", KEY, authorization=None),
    # Wrong media types, with a body or without one.
    *[
        Bad(f"{media!r}, {method}{'' if content else ' without a body'}", method, path,
            content, media)
        for media in ["text/plain", "application/xml", "application/x-www-form-urlencoded",
                      "multipart/form-data", "application/json-patch+json",
                      "application/problem+json", "*/*", "application/*", ""]
        for method, path, content in [("POST", KEYS, b"{}"), ("PUT", KEY, b"{}"),
                                      ("POST", KEYS, b"")]
    ],  # fmt: skip
    Bad("a body without a Content-Type", "POST", KEYS, b"{}", None),
    Bad("a text body, upper case", "PUT", KEY, b"{}", "TEXT/PLAIN; charset=utf-8"),
    # Paths no operation holds.
    Bad("an organization among the projects", "GET", "acme/"),
    Bad("an empty project", "GET", "acme//keys/"),
    Bad("below a key", "GET", f"{KEY}extra/"),
    Bad("below the project", "GET", "acme/web/extra/"),
]  # fmt: skip


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, str]]]:
    """A SQLite database with acme/web, a key with the public key HEX and a token per SCOPES."""
    settings = Settings(database=tmp_path_factory.mktemp("parity") / "clientkeys.db")
    storage.init_db(settings.database)
    with storage.connect(settings.database) as database:
        repository.insert_organization(database, "acme", "Acme")
        repository.insert_project(database, "acme", "web")
        made = {who: repository.insert_token(database, "acme", scopes)[0]
                for who, scopes in SCOPES.items()}  # fmt: skip
    yield settings, made


@pytest.fixture(scope="module")
def serve(tokens: tuple[Settings, dict[str, str]]) -> Iterator[Any]:
    settings, made = tokens
    with create_app(settings).test_client() as client:
        created = client.post(f"{PROJECTS}{KEYS}", json={"public": HEX},
                              headers={"Authorization": f"Bearer {made['all']}"})  # fmt: skip
        assert created.status_code == 201, created.text
        yield client


@pytest.fixture(scope="module")
def mock() -> Iterator[Any]:
    """The mock of our spec as `clientkeys mock` runs it: any bearer token passes."""
    with create_mock_app(SPEC_DIR / "openapi.json").test_client() as client:
        yield client


@pytest.fixture(scope="module")
def mock_with_tokens(tokens: tuple[Settings, dict[str, str]]) -> Iterator[Any]:
    """`clientkeys mock --token ...` with serve's tokens and their scopes."""
    listed = {token: frozenset(SCOPES[who]) for who, token in tokens[1].items()}
    with create_mock_app(SPEC_DIR / "openapi.json", listed).test_client() as client:
        yield client


def answer(client: Any, row: Bad, tokens: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
    """Status, JSON body (None when empty) and the headers the dialect words."""
    response = client.request(row.method, PROJECTS + row.path, content=row.body,
                              headers=row.headers(tokens))  # fmt: skip
    content = response.json() if response.content else None
    named = {n: response.headers[n] for n in ("www-authenticate", "allow") if n in response.headers}
    return response.status_code, content, named


CASES = [
    (flavour, row)
    for row in TABLE
    for flavour in ("mock", "mock_with_tokens")
    if flavour == "mock_with_tokens" or not row.token_list
]


@pytest.mark.parametrize(
    ("flavour", "row"), CASES, ids=[f"{flavour}: {row.what}" for flavour, row in CASES]
)
def test_serve_and_the_mock_refuse_alike(
    request: pytest.FixtureRequest,
    serve: Any,
    tokens: tuple[Settings, dict[str, str]],
    flavour: str,
    row: Bad,
) -> None:
    expected = answer(serve, row, tokens[1])
    assert expected[0] >= 400, f"serve accepted {row.what!r}: not a bad request"
    assert answer(request.getfixturevalue(flavour), row, tokens[1]) == expected


def test_the_rows_left_out_are_in_the_bad_input_table() -> None:
    """STATEFUL and GUARDED name rows that exist (so a renamed row is not silently lost)."""
    names = {row[0] for row in BAD_INPUT}
    assert set(STATEFUL) | set(GUARDED) <= names
    assert len({row.what for row in TABLE}) == len(TABLE)


def test_only_a_token_list_tells_the_mock_which_tokens_exist(
    mock: Any, mock_with_tokens: Any, tokens: tuple[Settings, dict[str, str]]
) -> None:
    """Why token rows run against `mock --token` only: without it any well-formed token passes."""
    unknown = Bad("an unknown token", "GET", KEYS, authorization="Bearer unknown")
    assert answer(mock, unknown, tokens[1])[0] == 200
    assert answer(mock_with_tokens, unknown, tokens[1])[:2] == (401, {"detail": "Invalid token"})


def test_the_stateless_mock_answers_unknown_resources_from_its_examples(mock: Any) -> None:
    """Why STATEFUL rows are left out: serve's 404 for an unknown organization, project or
    key is a lookup the mock cannot make."""
    response = mock.get(f"{PROJECTS}nope/web/keys/", headers={"Authorization": "Bearer t"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("row", "status", "detail"),
    [
        # DRF's strict JSON parser (Sentry's): NaN and Infinity are not JSON.
        (Bad("NaN", "POST", KEYS, b'{"foo": NaN}'), 400,
         "JSON parse error - Out of range float values are not JSON compliant: 'NaN'"),
        # One wording, whatever the order the names come in.
        (Bad("unknown", "GET", f"{KEYS}?foo=1&bar=2&baz"), 400,
         "Extra query parameter(s) bar,baz,foo not in spec"),
        # A repeated parameter is read last, as Django's QueryDict reads it.
        (Bad("per_page x then 1", "GET", f"{KEYS}?per_page=x&per_page=1"), 200, None),
        (Bad("per_page 1 then x", "GET", f"{KEYS}?per_page=1&per_page=x"), 400,
         "Invalid per_page parameter."),
        # Python's json reads a lone surrogate the mock's own parser refuses: serve stores
        # no field the schema does not name, so the request is valid to both.
        (Bad("surrogate", "POST", KEYS, b'{"foo": "\\ud800"}'), 201, None),
    ],
    ids=["NaN", "unknown parameters", "per_page read last", "bad per_page read last",
         "a lone surrogate in an unknown field"],
)  # fmt: skip
def test_the_words_both_say(
    serve: Any, mock: Any, tokens: tuple[Settings, dict[str, str]], row: Bad, status: int,
    detail: str | None,
) -> None:  # fmt: skip
    for client in (serve, mock):
        answered, content, _ = answer(client, row, tokens[1])
        assert answered == status
        if detail is not None:
            assert content == {"detail": detail}
