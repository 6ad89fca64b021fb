"""Sentry's cursor pagination: the worked example of the reference (§4), pure and over HTTP."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clientkeys import domain, pagination, repository
from clientkeys.errors import BadRequest
from clientkeys.pagination import Cursor
from conftest import Api, World, assert_error

# request cursor -> (first id, last id) shown, previous cursor, its results, next, its results
WORKED_EXAMPLE = [
    (None, (25, 16), "25:0:1", False, "15:0:0", True),
    ("15:0:0", (15, 6), "15:0:1", True, "5:0:0", True),
    ("5:0:0", (5, 1), "5:0:1", True, "1:1:0", False),
    ("15:0:1", (25, 16), "25:0:1", False, "15:0:0", True),
    ("5:0:1", (15, 6), "15:0:1", True, "5:0:0", True),
]


def fetch_from(ids: Sequence[int]) -> pagination.Fetch[int]:
    def fetch(bound: float | None, ascending: bool, offset: int, limit: int) -> list[int]:
        rows = sorted(ids, reverse=not ascending)
        if bound is not None:
            rows = [i for i in rows if (i >= bound if ascending else i <= bound)]
        return rows[offset : offset + limit]

    return fetch


def page(ids: Sequence[int], cursor: str | None, limit: int = 10) -> pagination.Page[int]:
    return pagination.fetch_page(
        fetch_from(ids), pagination.parse_cursor(cursor), limit, key=lambda i: i
    )


@pytest.mark.parametrize(("cursor", "shown", "prev", "has_prev", "nxt", "has_next"), WORKED_EXAMPLE)
def test_worked_example(
    cursor: str | None,
    shown: tuple[int, int],
    prev: str,
    has_prev: bool,
    nxt: str,
    has_next: bool,
) -> None:
    result = page(range(1, 26), cursor)
    assert result.rows == list(range(shown[0], shown[1] - 1, -1))
    assert (str(result.prev), result.has_prev) == (prev, has_prev)
    assert (str(result.next), result.has_next) == (nxt, has_next)


def test_empty_list_has_zero_cursors() -> None:
    result = page([], None)
    assert result.rows == []
    assert (str(result.prev), result.has_prev, str(result.next), result.has_next) == (
        "0:0:1", False, "0:0:0", False,
    )  # fmt: skip


def test_exactly_one_full_page() -> None:
    result = page(range(1, 11), None)
    assert result.rows == list(range(10, 0, -1))
    assert (str(result.prev), result.has_prev, str(result.next), result.has_next) == (
        "10:0:1", False, "1:1:0", False,
    )  # fmt: skip


@given(
    ids=st.sets(st.integers(1, 500), max_size=60).map(sorted),
    limit=st.integers(1, 12),
)
def test_following_next_visits_every_row_once_newest_first(ids: list[int], limit: int) -> None:
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(len(ids) + 2):
        result = page(ids, cursor, limit)
        seen += result.rows
        if not result.has_next:
            break
        cursor = str(result.next)
    assert seen == sorted(ids, reverse=True)


@given(
    value=st.integers(-(2**62), 2**62)
    | st.floats(0, 1e6, allow_nan=False).map(lambda f: round(f, 3)),
    offset=st.integers(0, 10**6),
    is_prev=st.booleans(),
)
def test_cursor_format_then_parse_is_identity(value: float, offset: int, is_prev: bool) -> None:
    cursor = Cursor(value, offset, is_prev)
    assert pagination.parse_cursor(str(cursor)) == cursor


@pytest.mark.parametrize("raw", ["abc", "1:2", "1:2:3:4", "a:0:0", "1:x:0", "1:-1:0", "1:0:2"])
def test_malformed_cursors_are_rejected(raw: str) -> None:
    with pytest.raises(BadRequest, match="Invalid cursor parameter."):
        pagination.parse_cursor(raw)


# Over HTTP --------------------------------------------------------------------------------


LINK = re.compile(
    r'^<(?P<prev_url>[^>]+)>; rel="previous"; results="(?P<prev_results>true|false)"; '
    r'cursor="(?P<prev>[^"]+)", <(?P<next_url>[^>]+)>; rel="next"; '
    r'results="(?P<next_results>true|false)"; cursor="(?P<next>[^"]+)"$'
)


def link_of(response: object) -> dict[str, str]:
    match = LINK.match(response.headers["link"])  # type: ignore[attr-defined]
    assert match, response.headers["link"]  # type: ignore[attr-defined]
    return match.groupdict()


@pytest.fixture
def twenty_five(api: Api, world: World) -> dict[str, int]:
    """The project's keys get ids 1..25 (Default is 1); returns id -> public key."""
    for _ in range(23):
        api.create({})
    api.create({}, org="globex", project="api", who="globex")  # someone else's key, not listed
    rows = world.store.execute(
        "SELECT id, public_key FROM keys WHERE project_id = ?", [world.project["id"]]
    ).fetchall()
    return {public: i for i, public in rows}


def test_worked_example_over_http(api: Api, twenty_five: dict[str, int]) -> None:
    ids = sorted(twenty_five.values())
    assert len(ids) == 24 and ids[-1] == 25  # ids 1..25 minus globex's Default (2)
    cursor: str | None = None
    pages = []
    while True:
        response = api.list(query=f"per_page=10&cursor={cursor}" if cursor else "per_page=10")
        assert response.status_code == 200
        pages.append([twenty_five[k["id"]] for k in response.json()])
        link = link_of(response)
        if link["next_results"] == "false":
            break
        cursor = link["next"]
    assert pages == [
        [25, 24, 23, 22, 21, 20, 19, 18, 17, 16],
        [15, 14, 13, 12, 11, 10, 9, 8, 7, 6],
        [5, 4, 3, 1],
    ]
    back = api.list(query="per_page=10&cursor=15:0:1")
    assert [twenty_five[k["id"]] for k in back.json()] == pages[0]
    assert (link_of(back)["prev"], link_of(back)["prev_results"]) == ("25:0:1", "false")


def test_link_header_has_both_rels_with_absolute_urls(api: Api) -> None:
    response = api.list(query="per_page=5")
    link = link_of(response)
    base = "http://testserver/api/0/projects/acme/web/keys/"
    assert link["prev_url"] == f"{base}?per_page=5&cursor={link['prev']}"
    assert link["next_url"] == f"{base}?per_page=5&cursor={link['next']}"
    plain = link_of(api.list())
    assert plain["next_url"] == f"{base}?&cursor={plain['next']}"


def test_link_header_honours_the_host_header(api: Api, world: World) -> None:
    response = api.client.get(
        api.url(), headers={**world.headers(), "Host": "keys.example.org:9000"}
    )
    assert link_of(response)["next_url"].startswith("http://keys.example.org:9000/api/0/")


def test_link_header_uses_the_configured_public_url(settings: object, world: World) -> None:
    from clientkeys.app import create_app

    app = create_app(settings.replace(public_url="https://keys.example.com"))  # type: ignore[attr-defined]
    with app.test_client() as client:
        response = client.get("/api/0/projects/acme/web/keys/", headers=world.headers())
    assert link_of(response)["next_url"].startswith("https://keys.example.com/api/0/projects/")
    assert response.json()[0]["dsn"]["public"].endswith(
        "@keys.example.com/" + str(world.project["id"])
    )


def test_default_page_size_is_100(api: Api, world: World) -> None:
    for _ in range(120):
        repository.insert_key(world.store, world.project["id"], domain.new_key())
    response = api.list()
    assert len(response.json()) == 100
    assert link_of(response)["next_results"] == "true"


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("per_page=abc", "Invalid per_page parameter."),
        ("per_page=101", "Invalid per_page value. Cannot exceed 100."),
        ("per_page=0", "Invalid per_page parameter."),
        ("cursor=abc", "Invalid cursor parameter."),
        ("cursor=1:2", "Invalid cursor parameter."),
        ("cursor=99999999999999999999999:0:0", "Invalid cursor parameter."),
    ],
)
def test_bad_pagination_parameters_are_400_with_sentrys_messages(
    api: Api, query: str, detail: str
) -> None:
    assert_error(api.list(query=query), 400, detail)


def test_empty_cursor_means_first_page(api: Api) -> None:
    assert api.list(query="cursor=").json() == api.list().json()


def test_cursor_past_the_end_is_an_empty_page(api: Api) -> None:
    response = api.list(query="cursor=1:1:0")
    assert response.status_code == 200 and response.json() == []
    assert link_of(response)["next_results"] == "false"
