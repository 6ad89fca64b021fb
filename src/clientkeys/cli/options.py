"""What the commands share: click types that check an argument where it is read, the options
built from the declared settings (`setting_options`, `database_option`), settings from flags and
the environment, and the extras each command needs."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from clientkeys.config import (
    Group,
    Invalid,
    Setting,
    Settings,
    SettingsError,
    is_postgres,
    parse_database,
    parse_url,
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
            return parse_url(value)
        except Invalid:
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
            database = parse_database(value)
        except Invalid as exc:
            self.fail(str(exc), param, ctx)
        if isinstance(database, Path) and database.is_dir():
            self.fail(f"{value!r} is a folder: name a SQLite file in it.", param, ctx)
        return database


# Options from the declared settings (`clientkeys.config`) -------------------------------------


class SettingParam(click.ParamType[Any]):
    """A setting's text read by its declared parser; an error names the flag."""

    def __init__(self, declared: Setting) -> None:
        self.declared = declared
        self.name = declared.declared.metavar or _metavar(declared.default)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # a default, already a value
        try:
            return self.declared.declared.parse(value)
        except Invalid as exc:
            self.fail(str(exc), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        choices = self.declared.declared.choices
        return f"[{'|'.join(choices)}]" if choices else self.name.upper()

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        """A setting's choices complete, as click.Choice's do."""
        choices = self.declared.declared.choices
        return [CompletionItem(choice) for choice in choices if choice.startswith(incomplete)]


def _metavar(default: Any) -> str:
    return {int: "integer", float: "number", Path: "path"}.get(type(default), "text")


class SettingOption(click.Option):
    """The option of a declared setting: `--help` shows its variable and its default as
    declared. The server's `Settings` are left unset unless given: `Settings.from_env` reads
    their variables, as each worker does, and names a bad one as a worker would."""

    def __init__(self, *args: Any, declared: Setting, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.declared = declared

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        extra["envvars"] = (self.declared.variable,)
        if not self.declared.declared.required:
            extra["default"] = self.declared.shown_default
        return extra


def setting_option(declared: Setting, **click_overrides: Any) -> Callable[[F], F]:
    """The click option of a declared setting, from its flag, help, default and variable
    (`click_overrides` only for what click needs beyond the declaration, such as a type that
    checks more)."""
    flag, extra = declared.declared.flag, declared.declared
    assert flag is not None, f"{declared.name} has no flag"
    decls = [f"{flag}/--no-{flag[2:]}" if isinstance(declared.default, bool) else flag]
    decls += [extra.short] if extra.short else []
    kwargs: dict[str, Any] = {
        "cls": SettingOption,
        "declared": declared,
        "help": declared.help,
        "required": extra.required,
        "multiple": extra.multiple,
        "show_default": False,  # SettingOption shows the declared one
    }
    if not isinstance(declared.default, bool):
        kwargs["type"] = SettingParam(declared)
    if extra.metavar and not extra.choices:
        kwargs["metavar"] = extra.metavar.upper()
    if declared.name in Settings.settings():
        kwargs["default"] = None
    else:
        kwargs.update(envvar=declared.variable, default=declared.default)
    kwargs.update(click_overrides)
    return click.option(*decls, declared.name, **kwargs)


def setting_options(group: type[Group], *names: str, **types: Any) -> Callable[[F], F]:
    """The options of `group`'s settings `names` (default: all that have a flag), in that
    order; `types` gives some a click type of their own."""
    declared = group.settings()
    chosen = names or tuple(name for name, one in declared.items() if one.flag)

    def decorate(func: F) -> F:
        for name in reversed(chosen):
            overrides = {"type": types[name]} if name in types else {}
            func = setting_option(declared[name], **overrides)(func)
        return func

    return decorate


def environment_only(*groups: type[Group]) -> str:
    """The help's last paragraph: the `groups`' settings that have no flag, with their
    defaults."""
    listed = [f"{one.variable} ({one.shown_default})" for group in groups
              for one in group.settings().values() if one.flag is None]  # fmt: skip
    return f"Read from the environment only: {', '.join(listed)}." if listed else ""


def database_option(func: F) -> F:
    """`--database`, shared by every command that touches the store."""
    return setting_option(Settings.settings()["database"], type=DatabaseParam())(func)


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
