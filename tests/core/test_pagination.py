"""Sentry's cursor pagination: the worked example of the reference (§4), pure and over HTTP."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clientkeys.config import Settings
from clientkeys.core import domain, pagination
from clientkeys.core.errors import BadRequest
from clientkeys.core.pagination import Cursor
from clientkeys.server.app import create_app
from clientkeys.store import repository
from conftest import KEYS_URL, Api, World, assert_error

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


def test_link_header_uses_the_configured_public_url(settings: Settings, world: World) -> None:
    app = create_app(settings.replace(public_url="https://keys.example.com"))
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


def test_a_page_past_the_end_points_back_at_the_keys_before_it(api: Api) -> None:
    # The last page's next cursor (`1:1:0`: past key 1) answers no keys; its Link still says
    # where the client came from (previous, with results) and that nothing follows.
    response = api.list(query="per_page=10&cursor=1:1:0")
    assert response.status_code == 200 and response.json() == []
    base = "http://testserver/api/0/projects/acme/web/keys/?per_page=10"
    assert response.headers["link"] == (
        f'<{base}&cursor=1:1:1>; rel="previous"; results="true"; cursor="1:1:1", '
        f'<{base}&cursor=1:1:0>; rel="next"; results="false"; cursor="1:1:0"'
    )


@pytest.mark.parametrize("cursor", ["999999:0:1", "999999:3:1"])
def test_a_previous_page_before_the_newest_key_is_empty_not_an_error(api: Api, cursor: str) -> None:
    # Walking back past the newest key finds nothing: 200 and [], as Sentry answers, with no
    # earlier page and the same position (value and offset) to go forward from.
    api.new_key()
    response = api.list(query=f"cursor={cursor}")
    assert response.status_code == 200 and response.json() == []
    value, offset, _ = cursor.split(":")
    link = link_of(response)
    assert (link["prev"], link["prev_results"]) == (f"{value}:{offset}:1", "false")
    assert (link["next"], link["next_results"]) == (f"{value}:{offset}:0", "true")


def test_link_urls_replace_the_cursor_and_keep_the_other_parameters(
    api: Api, twenty_five: dict[str, int]
) -> None:
    response = api.list(query="per_page=10&cursor=15:0:0")
    base = "http://testserver/api/0/projects/acme/web/keys/?per_page=10"
    assert response.headers["link"] == (
        f'<{base}&cursor=15:0:1>; rel="previous"; results="true"; cursor="15:0:1", '
        f'<{base}&cursor=5:0:0>; rel="next"; results="true"; cursor="5:0:0"'
    )


def test_a_cursor_value_written_as_a_float_names_the_same_key(
    api: Api, twenty_five: dict[str, int]
) -> None:
    as_float = api.list(query="per_page=10&cursor=15.0:0:0")
    as_int = api.list(query="per_page=10&cursor=15:0:0")
    assert as_float.json() == as_int.json()
    assert (link_of(as_float)["prev"], link_of(as_float)["next"]) == ("15:0:1", "5:0:0")


def test_one_key_per_page_is_allowed(api: Api) -> None:
    newest = api.new_key()
    response = api.list(query="per_page=1")
    assert [key["id"] for key in response.json()] == [newest["id"]]
    assert link_of(response)["next_results"] == "true"


def test_cursor_values_past_sqlites_integers_are_400_even_unvalidated(
    settings: Settings, world: World
) -> None:
    # The spec's pattern already bounds a cursor's digits; with request validation off
    # (`--no-validate-requests`) the handler's own check must still keep 2**63 from SQLite.
    unchecked = settings.replace(validate_requests=False)
    with create_app(unchecked).test_client() as client:
        largest = client.get(f"{KEYS_URL}?cursor={2**63 - 1}:0:0", headers=world.headers())
        assert largest.status_code == 200 and len(largest.json()) == 1
        for value in (2**63, -(2**63)):
            response = client.get(f"{KEYS_URL}?cursor={value}:0:0", headers=world.headers())
            assert_error(response, 400, "Invalid cursor parameter.")
