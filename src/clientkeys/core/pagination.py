"""Sentry's keyset cursor pagination: cursor parsing and formatting, pages and the Link header.

A cursor is `value:offset:is_prev`. Pages run newest first over a unique integer key (the row
id). The algorithm follows Sentry's paginator (see README, "Pagination"), so the cursors this
server hands out are the ones Sentry's own server would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from clientkeys.core.errors import BadRequest

INVALID_CURSOR = "Invalid cursor parameter."
INVALID_PER_PAGE = "Invalid per_page parameter."
_CURSOR = re.compile(r"(-?[0-9]{1,19}(?:\.[0-9]{1,18})?):([0-9]{1,9}):([01])")
"""`value:offset:is_prev`, matched whole: ASCII digits only; no `+`, space, `_` or newline
where `int` would take them. (The spec allows 18 digits; values below 2**63 are read.)"""

Row = TypeVar("Row")
Fetch = Callable[[float | None, bool, int, int], Sequence[Row]]
"""fetch(bound, ascending, offset, limit): rows with key <= bound (descending) or key >= bound
(ascending, for a previous-page cursor), skipping `offset` rows, at most `limit` of them.
A bound of None means no bound."""


@dataclass(frozen=True)
class Cursor:
    """A position in a list: the key value, rows to skip past it, and the direction."""

    value: int | float
    offset: int
    is_prev: bool

    def __str__(self) -> str:
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{value}:{self.offset}:{int(self.is_prev)}"


@dataclass(frozen=True)
class Page(Generic[Row]):
    """One page of rows and the cursors to its neighbours."""

    rows: list[Row]
    prev: Cursor
    next: Cursor
    has_prev: bool
    has_next: bool


def parse_cursor(raw: str | None) -> Cursor | None:
    """Parse `value:offset:is_prev`; None or "" means no cursor. Anything else is a 400."""
    if not raw:
        return None
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise BadRequest(INVALID_CURSOR)
    number, offset, is_prev = match.groups()
    value: int | float = float(number) if "." in number else int(number)
    if abs(value) >= 2**63:
        raise BadRequest(INVALID_CURSOR)
    return Cursor(value, int(offset), is_prev == "1")


def check_per_page(per_page: int, maximum: int) -> int:
    """Sentry's per_page rules: a positive integer no larger than `maximum`."""
    if per_page > maximum:
        raise BadRequest(f"Invalid per_page value. Cannot exceed {maximum}.")
    if per_page < 1:
        raise BadRequest(INVALID_PER_PAGE)
    return per_page


def fetch_page(
    fetch: Fetch[Row], cursor: Cursor | None, limit: int, key: Callable[[Row], int]
) -> Page[Row]:
    """Fetch one page newest first, as Sentry's keyset paginator does."""
    if cursor is not None and cursor.is_prev:
        return _previous_page(fetch, cursor, limit, key)
    bound = cursor.value if cursor is not None and cursor.value else None
    offset = cursor.offset if cursor is not None else 0
    rows = list(fetch(bound, False, offset, limit + 1))
    has_prev = cursor is not None and bool(cursor.value or cursor.offset)
    has_next = len(rows) > limit
    value = cursor.value if cursor is not None else 0
    if rows and not value:
        value = key(rows[0])
    prev = Cursor(value, offset, True)
    if has_next:
        nxt = Cursor(key(rows[limit]), 0, False)
    elif rows:
        # The last row is shown: the next cursor starts past it.
        nxt = Cursor(key(rows[-1]), 1, False)
    else:
        nxt = Cursor(value, offset, False)
    return Page(rows[:limit], prev, nxt, has_prev, has_next)


def _previous_page(
    fetch: Fetch[Row], cursor: Cursor, limit: int, key: Callable[[Row], int]
) -> Page[Row]:
    rows = list(fetch(cursor.value or None, True, cursor.offset, limit + 2))
    if rows and key(rows[0]) == cursor.value:
        rows = rows[1:]  # the row the cursor was made from sits on the page after this one
    rows = rows[: limit + 1]
    has_prev = len(rows) > limit
    rows = rows[:limit][::-1]
    nxt = Cursor(cursor.value, cursor.offset, False)
    prev = Cursor(key(rows[0]), 0, True) if rows else Cursor(cursor.value, cursor.offset, True)
    return Page(rows, prev, nxt, has_prev, True)


def link_header(url: str, query: Sequence[tuple[str, str]], page: Page[Any]) -> str:
    """Sentry's `Link` header: always both rels, each with `results` and `cursor`."""
    other = urlencode([(k, v) for k, v in query if k != "cursor"])
    base = f"{url}?{other}"

    def link(cursor: Cursor, rel: str, results: bool) -> str:
        return (
            f'<{base}&cursor={cursor}>; rel="{rel}"; '
            f'results="{str(results).lower()}"; cursor="{cursor}"'
        )

    return ", ".join(
        [link(page.prev, "previous", page.has_prev), link(page.next, "next", page.has_next)]
    )
