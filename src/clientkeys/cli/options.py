"""What the commands share: click types that check an argument where it is read, the
`--database` option, settings from flags and the environment, and the extras each command needs."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from clientkeys.config import (
    BEARER_TOKEN,
    PREFIX,
    Settings,
    SettingsError,
    database_setting,
    is_postgres,
    url_setting,
)
from clientkeys.core import domain
from clientkeys.core.errors import ClientKeysError
from clientkeys.store import backend as store
from clientkeys.store.backend import Connection

F = TypeVar("F", bound=Callable[..., Any])
DEMO_ORG, DEMO_PROJECT = "demo", "demo-project"


# Input: every argument is checked where it is read, with a message that names it ----------


class Slug(click.ParamType[str]):
    """An organization or project slug, by Sentry's rule."""

    name = "slug"
    _pattern = re.compile(domain.SLUG_PATTERN)

    def __init__(self, what: str) -> None:
        self.what = what

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not self._pattern.fullmatch(value):
            self.fail(f"Invalid {self.what} slug {value!r}: {domain.SLUG_RULE}.", param, ctx)
        return value


class Scopes(click.ParamType[tuple[str, ...]]):
    """Comma-separated scope names: known ones, at least one; canonical order."""

    name = "scopes"

    def convert(
        self, value: str | tuple[str, ...], param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        wanted = {scope.strip() for scope in value.split(",") if scope.strip()}
        choices = ", ".join(domain.SCOPES)
        unknown = sorted(wanted - set(domain.SCOPES))
        if unknown:
            self.fail(f"Unknown scope {unknown[0]!r}; choose from {choices}.", param, ctx)
        if not wanted:
            self.fail(f"A token needs at least one scope from {choices}.", param, ctx)
        return tuple(domain.in_scope_order(wanted))


class TokenGrant(click.ParamType[tuple[str, frozenset[str]]]):
    """`TOKEN[=SCOPE,...]`: a token and its scopes (all three when none are given)."""

    name = "token"

    def convert(
        self, value: str, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, frozenset[str]]:
        token, _, scopes = value.partition("=")
        granted = Scopes().convert(scopes, param, ctx) if scopes else domain.SCOPES
        return token, frozenset(granted)


class HttpUrl(click.ParamType[str]):
    """An http(s) URL, kept without its trailing slash."""

    name = "url"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return url_setting(param.name if param and param.name else "url", value)
        except SettingsError:
            self.fail(f"{value!r} is not an http(s) URL.", param, ctx)


class DatabaseParam(click.ParamType[Path | str]):
    """A SQLite file's path, or a `postgresql://` URL."""

    name = "path|url"

    def convert(
        self, value: Path | str, param: click.Parameter | None, ctx: click.Context | None
    ) -> Path | str:
        if isinstance(value, Path):
            return value
        try:
            database = database_setting("database", value)
        except SettingsError as exc:
            self.fail(str(exc), param, ctx)
        if isinstance(database, Path) and database.is_dir():
            self.fail(f"{value!r} is a folder: name a SQLite file in it.", param, ctx)
        return database


def database_option(func: F) -> F:
    """`--database`, shared by every command that touches the store."""
    return click.option(
        "--database",
        "-d",
        type=DatabaseParam(),
        default=None,
        help=f"SQLite file, or a postgresql://user@host/name URL (with the postgres extra; keep "
        f"its password in {PREFIX}DATABASE or ~/.pgpass, not here). [env: {PREFIX}DATABASE; "
        f"default: ./clientkeys.db]",
    )(func)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with the given flags on top; a bad value is a usage error."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@contextmanager
def opened(database: Path | str | None, *, writable: bool = False) -> Iterator[Connection]:
    """An open, migrated database (that takes a commit, if `writable`); domain errors become
    clean CLI errors."""
    path = load_settings(database=database).database
    require_store(path)
    backend = store.open_backend(path)
    try:
        backend.init()
        if writable:
            backend.check_writable()
        with backend.connect() as conn:
            yield conn
    except ClientKeysError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        backend.close()


def require_store(database: Path | str) -> None:
    """Stop with one line naming the install command when a `postgresql://` database is given
    without the postgres extra."""
    if is_postgres(database):
        missing = store.missing_postgres_module()
        if missing is not None:
            raise click.ClickException(
                f"A postgresql:// database needs the postgres extra ({missing} is missing): "
                f"{store.POSTGRES_INSTALL}"
            )


def require_extra(extra: str, *modules: str) -> None:
    """Stop with a one-line message naming the install command when an extra is missing."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: the module was made unimportable
            found = False
        if not found:
            raise click.ClickException(
                f"`clientkeys {extra}` needs the {extra} extra ({module} is missing): "
                f"pip install 'clientkeys[{extra}]'"
            )


LOG_LEVELS = ["critical", "error", "warning", "info", "debug"]


class BearerToken(click.ParamType[str]):
    """A token a client can send in `Authorization: Bearer <token>`: printable, no spaces."""

    name = "token"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not BEARER_TOKEN.fullmatch(value):
            self.fail("must be printable ASCII without spaces (it travels in a header)", param, ctx)
        return value
