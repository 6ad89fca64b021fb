"""Settings, declared once: every `CLIENTKEYS_*` variable is a field of one of the frozen
dataclasses below, with its default, its help and its flag. The commands build their options
from these fields (`clientkeys.cli.options`), README's "Settings" table is `settings_table()`,
and worker processes rebuild the same values from the environment the CLI writes (`to_env`).

`Settings` is what the server's app is told (each request reaches it through its state); the
other groups belong to one command each: `ServeProcess`, `MockSettings`, `ProxySettings` and
`CheckSettings`."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self
from urllib.parse import urlsplit, urlunsplit

PREFIX = "CLIENTKEYS_"
SETTINGS_KEY = "clientkeys.settings"
"""Where the app puts its settings in every request's ASGI `state`."""
# `src/clientkeys/spec` links to the top-level spec/ in a checkout; a wheel carries a copy.
SPEC_DIR = Path(__file__).parent / "spec"
SDK_VERSIONS = ("latest", "7.x", "6.x", "5.x", "4.x")
DURABILITIES = ("full", "normal")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOG_FORMATS = ("text", "json")
PROXY_MODES = ("report", "enforce")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""A `database` setting starting with one of these is a PostgreSQL URL; anything else is the
path of a SQLite file."""
BEARER_TOKEN = re.compile(r"[!-~]+")
"""What a token must be to travel in `Authorization: Bearer <token>`: printable, no spaces."""


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


class Invalid(ValueError):
    """What is wrong with a setting's text, without its name: the environment's message
    prefixes the variable (`SettingsError`), the CLI's names the flag."""


# Parsers: the text of a variable or a flag -> its value, or Invalid saying what it must be ----

Parser = Callable[[str], Any]


def parse_url(value: str) -> str:
    """An http(s) URL, kept without its trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _folder_url(value: str) -> str:
    return parse_url(value) + "/"


def is_postgres(database: Path | str) -> bool:
    """Whether the `database` setting names a PostgreSQL database (else a SQLite file)."""
    return isinstance(database, str) and database.startswith(POSTGRES_SCHEMES)


def parse_database(value: str) -> Path | str:
    """A `postgresql://` URL as given, or the path of a SQLite file."""
    if value.startswith(POSTGRES_SCHEMES):
        if not urlsplit(value).netloc and "host=" not in value:
            raise Invalid(f"names no server: {redacted(value)!r}")
        return value
    return Path(value)


def redacted(database: Path | str) -> str:
    """The `database` setting as messages and logs show it: a URL without its password."""
    if not is_postgres(database):
        return str(database)
    parts = urlsplit(str(database))
    if parts.password is None:
        return str(database)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def parse_token(value: str) -> str:
    """A bearer token; the message never repeats it (it is a secret)."""
    if not BEARER_TOKEN.fullmatch(value):
        raise Invalid("must be printable ASCII without spaces")
    return value


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise Invalid(f"must be true or false, got {value!r}")


def parse_positive_number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0 < number < float("inf"):
        raise Invalid(f"must be a positive number, got {value!r}")
    return number


def integer(low: int, high: int | None = None) -> Parser:
    """A parser of integers from `low` to `high` (no upper bound when None)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if number < low or (high is not None and number > high):
            if (low, high) == (1, None):
                raise Invalid(f"must be a positive integer, got {value!r}")
            raise Invalid(f"must be an integer from {low} to {high}, got {value!r}")
        return number

    return parse


def one_of(choices: tuple[str, ...], *, case: bool = False) -> Parser:
    """A parser that accepts one of `choices` (any case unless `case`)."""

    def parse(value: str) -> str:
        chosen = value if case else value.strip().lower()
        if chosen not in choices:
            raise Invalid(f"must be one of {', '.join(choices)}, got {value!r}")
        return chosen

    return parse


def _text(value: str) -> str:
    return value


def _path(value: str) -> Path:
    return Path(value).absolute()


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def parse_grants(value: str) -> dict[str, frozenset[str]]:
    """`TOKEN=SCOPE,SCOPE TOKEN=...`: bearer tokens and their scopes, space-separated."""
    grants = {}
    for entry in value.split():
        token, _, scopes = entry.partition("=")
        grants[parse_token(token)] = frozenset(_names(scopes))
    return grants


def _grants_text(grants: Mapping[str, frozenset[str]]) -> str:
    return " ".join(f"{token}={','.join(sorted(scopes))}" for token, scopes in grants.items())


def _as_text(value: Any) -> str:
    """A value as the environment holds it, which its parser reads back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


# The declaration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """What a field declares besides its default (see `setting`)."""

    help: str
    parse: Parser
    flag: str | None = None
    short: str | None = None
    shown: str | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    multiple: bool = False
    metavar: str | None = None
    text: Callable[[Any], str] = _as_text


@dataclass(frozen=True)
class Setting:
    """One `CLIENTKEYS_*` setting: its field, default, help, flag and parser, in one place."""

    name: str
    variable: str
    default: Any
    command: str
    declared: Declared

    @property
    def help(self) -> str:
        return self.declared.help

    @property
    def flag(self) -> str | None:
        return self.declared.flag

    @property
    def shown_default(self) -> str:
        """The default as help and README show it."""
        if self.declared.shown is not None:
            return self.declared.shown
        if self.default is None:
            return "unset"
        return self.declared.text(self.default)

    def parse(self, text: str) -> Any:
        """The value of the variable's `text`; SettingsError names the variable."""
        try:
            return self.declared.parse(text)
        except Invalid as exc:
            raise SettingsError(f"{self.variable} {exc}") from None


def setting(default: Any, help: str, parse: Parser, **declared: Any) -> Any:
    """A dataclass field declared as a setting: its default, its help (one or two sentences,
    shown by `--help` and README), its parser, and optionally its `flag` (`--name`; a boolean
    setting's flag also has its `--no-` form), `short` flag, `shown` default (when words say
    it better than the value), `choices`, `required`, `multiple` (a flag given several times),
    the `metavar` of its flag, and `text`, which writes a value as its parser reads it."""
    metadata = {"setting": Declared(help, parse, **declared)}
    if isinstance(default, (list, dict)):
        raise TypeError("a setting's default must be immutable")
    return field(default=default, metadata=metadata)


class Group:
    """The shared behaviour of the settings dataclasses: what they declare, read from the
    environment, and write back to it."""

    COMMAND: ClassVar[str]
    """The command whose flags these are (README's table names it with each flag)."""

    @classmethod
    def settings(cls) -> dict[str, Setting]:
        """The declared settings of this group, by field name, in declaration order."""
        return {
            f.name: Setting(f.name, PREFIX + f.name.upper(), f.default, cls.COMMAND,
                            f.metadata["setting"])
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        }  # fmt: skip

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Read `CLIENTKEYS_*` from `environ` (default: the process environment).

        Keyword overrides that are not None win over the environment (the CLI passes its
        flags); an empty variable counts as unset.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, declared in cls.settings().items():
            raw = environ.get(declared.variable)
            if raw is not None and raw != "":
                values[name] = declared.parse(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_env(self) -> dict[str, str]:
        """The `CLIENTKEYS_*` variables from which `from_env` rebuilds these settings (unset
        fields are left out), so that worker processes run with what the CLI resolved."""
        return {
            declared.variable: declared.declared.text(getattr(self, name))
            for name, declared in self.settings().items()
            if getattr(self, name) is not None
        }


# The server's settings -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings(Group):
    """Everything the server's app can be told; each worker rebuilds it from the environment."""

    COMMAND: ClassVar[str] = "serve"

    database: Path | str = setting(
        Path("clientkeys.db"),
        "A SQLite file, or a postgresql://user@host/name URL (with the postgres extra; keep its "
        "password in the variable or ~/.pgpass, not in a flag).",
        parse_database, flag="--database", short="-d", shown="./clientkeys.db",
    )  # fmt: skip
    durability: str = setting(
        "full",
        "full: every acknowledged write is synced to disk before the answer (survives a power "
        "cut); normal: it survives a crash of the server, not of the machine (on PostgreSQL: "
        "synchronous_commit = off).",
        one_of(DURABILITIES), flag="--durability", choices=DURABILITIES,
    )  # fmt: skip
    pool_size: int = setting(
        4,
        "PostgreSQL: connections each worker keeps at most (nodes x workers x this must stay "
        "under the server's max_connections).",
        integer(1), flag="--pool-size",
    )  # fmt: skip
    db_timeout: float = setting(
        5.0,
        "Seconds a request waits at most for the write lock (SQLite), or for a connection, a "
        "row lock or a statement (PostgreSQL); past it the answer is a 503.",
        parse_positive_number, flag="--db-timeout",
    )  # fmt: skip
    spec_dir: Path = setting(
        SPEC_DIR,
        "The folder of the served spec: openapi.json and the files it $refs.",
        _path, shown="the package's spec/",
    )  # fmt: skip
    validate_responses: bool = setting(
        True, "Check every response against the spec.", parse_bool, flag="--validate-responses"
    )
    validate_requests: bool = setting(
        True,
        "Check every request against the spec. Turn off only to measure what validation costs: "
        "unvalidated input then reaches the handlers.",
        parse_bool, flag="--validate-requests",
    )  # fmt: skip
    public_url: str | None = setting(
        None, "The URL clients reach the server at, e.g. behind a proxy.", parse_url,
        flag="--public-url", metavar="url", shown="from each request's Host header",
    )  # fmt: skip
    ingest_url: str | None = setting(
        None, "The base of every DSN URL.", parse_url, flag="--ingest-url", metavar="url",
        shown="the public URL",
    )  # fmt: skip
    cdn_url: str | None = setting(
        None, "Where the JS SDK loader lives.", _folder_url, flag="--cdn-url", metavar="url",
        shown="<ingest URL>/js-sdk-loader/",
    )  # fmt: skip
    per_page: int = setting(100, "Keys per page when a list names no per_page.", integer(1))
    max_per_page: int = setting(
        100, "The largest per_page a list may ask for (at most 100).", integer(1)
    )
    max_body_bytes: int = setting(
        65536, "The largest request body accepted; a larger one is a 413.", integer(1)
    )
    browser_sdk_version: str = setting(
        "7.x", f"The JS SDK version of a key that names none (one of {', '.join(SDK_VERSIONS)}).",
        _text,
    )  # fmt: skip
    browser_sdk_choices: tuple[str, ...] = setting(
        ("latest", "7.x"), "The JS SDK versions a key offers, comma-separated.", _names
    )
    threads: int = setting(
        2,
        "Threads per worker that run the (synchronous, CPU-bound) handlers: a few beat many, "
        "which only contend for the GIL.",
        integer(1), flag="--threads",
    )  # fmt: skip
    admin_token: str | None = setting(
        None,
        "Turns on the test controls under /__admin/ for this bearer token; /__admin/reset "
        "returns to the state the server started with. A flag shows in `ps`: prefer the "
        "variable or --admin-token-file.",
        parse_token, flag="--admin-token", metavar="token", shown="off",
    )  # fmt: skip
    journal_size: int = setting(
        1000, "How many recent requests the test controls' journal keeps.", integer(1)
    )
    metrics: bool = setting(
        False,
        "Count requests, latency, validation failures, database errors and lock waits of every "
        "worker, and serve them at /metrics (Prometheus text format).",
        parse_bool, flag="--metrics",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.max_per_page > 100:
            raise SettingsError(f"{PREFIX}MAX_PER_PAGE cannot exceed 100, got {self.max_per_page}")
        if not 1 <= self.per_page <= self.max_per_page:
            raise SettingsError(
                f"{PREFIX}PER_PAGE must be between 1 and {PREFIX}MAX_PER_PAGE "
                f"({self.max_per_page}), got {self.per_page}"
            )
        if self.durability not in DURABILITIES:
            raise SettingsError(
                f"{PREFIX}DURABILITY must be one of {', '.join(DURABILITIES)}, "
                f"got {self.durability!r}"
            )
        if self.browser_sdk_version not in SDK_VERSIONS:
            raise SettingsError(
                f"{PREFIX}BROWSER_SDK_VERSION must be one of {', '.join(SDK_VERSIONS)}"
            )


# Each command's own settings -----------------------------------------------------------------

HOST_HELP = "The interface to bind."
PORT_HELP = "The port to bind (0: any free port)."
WORKERS_HELP = "Worker processes."


@dataclass(frozen=True)
class ServeProcess(Group):
    """How `clientkeys serve` runs: where it listens, how many workers, how it logs."""

    COMMAND: ClassVar[str] = "serve"

    host: str = setting("127.0.0.1", HOST_HELP, _text, flag="--host")
    port: int = setting(8000, PORT_HELP, integer(0, 65535), flag="--port", short="-p")
    workers: int | None = setting(
        None,
        WORKERS_HELP,
        integer(1),
        flag="--workers",
        short="-w",
        shown="one per core",
        metavar="integer",
    )
    log_level: str = setting(
        "info", "How much to log; access lines are info.", one_of(LOG_LEVELS), flag="--log-level",
        choices=LOG_LEVELS,
    )  # fmt: skip
    log_format: str = setting(
        "text",
        "json: one JSON object per line; access lines carry the request id, operationId, "
        "status, duration and token id.",
        one_of(LOG_FORMATS), flag="--log-format", choices=LOG_FORMATS,
    )  # fmt: skip
    admin_token_file: Path | None = setting(
        None,
        "A file holding the admin token (its only line), read at start, so that the token "
        "does not show in `ps` as --admin-token does.",
        _path, flag="--admin-token-file", metavar="file",
    )  # fmt: skip


@dataclass(frozen=True)
class ConnectionSettings(Group):
    """How long serve, mock and proxy wait for a slow client or a booting worker (variables
    only: the same for the three commands)."""

    COMMAND: ClassVar[str] = "serve"

    header_timeout: float = setting(
        10.0,
        "serve, mock, proxy: seconds a client has to send a request's head (from the connection, "
        "or from the request's first byte); then the connection is closed without an answer.",
        parse_positive_number,
    )  # fmt: skip
    body_timeout: float = setting(
        30.0,
        "serve, mock, proxy: seconds a request body may pause between two pieces; then the "
        "connection is closed (the request is not handled).",
        parse_positive_number,
    )  # fmt: skip
    keep_alive_timeout: float = setting(
        5.0,
        "serve, mock, proxy: seconds an idle keep-alive connection stays open between requests.",
        parse_positive_number,
    )  # fmt: skip
    worker_boot_timeout: float = setting(
        60.0,
        "With several workers: seconds a worker may take to start, or to answer the "
        "supervisor's health check, before it is killed and replaced (the log says why).",
        parse_positive_number,
    )  # fmt: skip


@dataclass(frozen=True)
class MockSettings(Group):
    """`clientkeys mock`: which document, which tokens, and how it runs. Its workers rebuild
    the mock from these (`mock.app.app_from_env`)."""

    COMMAND: ClassVar[str] = "mock"

    mock_spec: Path | None = setting(
        None, "Any OpenAPI 3.0 or 3.1 document, JSON or YAML.", _path, flag="--spec",
        shown="clientkeys' own spec",
    )  # fmt: skip
    mock_tokens: Mapping[str, frozenset[str]] | None = setting(
        None,
        "A bearer token the mock accepts, with its scopes (default: all three of clientkeys' "
        "own). Repeatable; the variable lists them separated by spaces.",
        parse_grants, flag="--token", multiple=True, metavar="token[=scope,...]",
        text=_grants_text, shown="every bearer token is accepted",
    )  # fmt: skip
    mock_cors: bool = setting(
        True, "Answer CORS preflights and allow any origin, as Prism does.", parse_bool,
        flag="--cors",
    )  # fmt: skip
    mock_host: str = setting("127.0.0.1", HOST_HELP, _text, flag="--host")
    mock_port: int = setting(4010, PORT_HELP, integer(0, 65535), flag="--port", short="-p")
    mock_workers: int = setting(
        1, "Worker processes, each loading the spec.", integer(1), flag="--workers", short="-w"
    )
    mock_log_level: str = setting(
        "info", "How much to log.", one_of(LOG_LEVELS), flag="--log-level", choices=LOG_LEVELS
    )


@dataclass(frozen=True)
class ProxySettings(Group):
    """`clientkeys proxy`: where it forwards to and where it listens."""

    COMMAND: ClassVar[str] = "proxy"

    proxy_upstream: str | None = setting(
        None, "The server to forward to, e.g. https://sentry.io.", parse_url,
        flag="--upstream", metavar="url", required=True, shown="required",
    )  # fmt: skip
    proxy_host: str = setting("127.0.0.1", HOST_HELP, _text, flag="--host")
    proxy_port: int = setting(8001, PORT_HELP, integer(0, 65535), flag="--port", short="-p")
    proxy_mode: str = setting(
        "report",
        "report: forward everything, record violations. enforce: answer a request that breaks "
        "the contract with the document's own documented error (for clientkeys' spec, the error "
        "a validating clientkeys gives), without forwarding it.",
        one_of(PROXY_MODES), flag="--mode", choices=PROXY_MODES,
    )  # fmt: skip
    proxy_log_level: str = setting(
        "warning", "How much to log.", one_of(LOG_LEVELS), flag="--log-level", choices=LOG_LEVELS
    )
    proxy_admin_token: str | None = setting(
        None,
        "The bearer token that reads and empties /__proxy/violations (401 without it); when "
        "unset, one is generated and printed at start.",
        parse_token, flag="--admin-token", metavar="token", shown="generated, printed at start",
    )  # fmt: skip


@dataclass(frozen=True)
class CheckSettings(Group):
    """`clientkeys check`: the tokens it tests with, and how long a request may take."""

    COMMAND: ClassVar[str] = "check"

    check_token: str | None = setting(
        None,
        "A token with every project scope (the reported curl commands read it from the "
        "variable too).",
        parse_token, flag="--token", required=True, shown="required",
    )  # fmt: skip
    check_forbidden_token: str | None = setting(
        None,
        "A token of another organization: the authorization phase proves it is refused on "
        "every operation (403, or 404 where Sentry answers 404) and that its refused writes "
        "changed nothing; the probes reach the documented 403s with it.",
        parse_token, flag="--forbidden-token", shown="unset: not tested",
    )  # fmt: skip
    check_read_only_token: str | None = setting(
        None,
        "A token of ORG with project:read only: the authorization phase proves it may list and "
        "retrieve, is refused with 403 on every write, and that its refused writes changed "
        "nothing.",
        parse_token, flag="--read-only-token", shown="unset: not tested",
    )  # fmt: skip
    check_request_timeout: float = setting(
        10.0,
        "Seconds each request may take to answer; an operation that takes longer breaks the "
        "contract (exit 1, named) and ends the run.",
        parse_positive_number, flag="--request-timeout",
    )  # fmt: skip


GROUPS: tuple[type[Group], ...] = (Settings, ServeProcess, ConnectionSettings, MockSettings,
                                   ProxySettings, CheckSettings)  # fmt: skip


def every_setting() -> list[Setting]:
    """Every `CLIENTKEYS_*` setting, in the order README lists them."""
    return [declared for group in GROUPS for declared in group.settings().values()]


TABLE_START = "<!-- The settings table: `python -m clientkeys.config README.md` writes it. -->"
TABLE_END = "<!-- End of the settings table. -->"


def settings_table() -> str:
    """README's "Settings" table, from the declarations (between its markers, `TABLE_START`
    and `TABLE_END`)."""
    lines = ["| variable | flag | default | what it does |", "| --- | --- | --- | --- |"]
    for declared in every_setting():
        flag = declared.flag or ""
        if flag and isinstance(declared.default, bool):
            flag = f"--[no-]{flag[2:]}"
        where = "" if not flag else f"`{flag}`" if declared.name == "database" else (
            f"`{declared.command} {flag}`")  # fmt: skip
        help = declared.help.replace("|", "\\|").replace("<", "&lt;")
        lines.append(f"| `{declared.variable}` | {where} | `{declared.shown_default}` | {help} |")
    return "\n".join(lines)


class HasScope(Protocol):
    """A request with an ASGI scope: Connexion's and Starlette's requests."""

    @property
    def scope(self) -> MutableMapping[str, Any]: ...


def settings_of(request: HasScope) -> Settings:
    """The settings the app put into this request's state."""
    settings: Settings = request.scope["state"][SETTINGS_KEY]
    return settings


# The spellings the CLI's click types share with the environment's parsers.


def url_setting(name: str, value: str) -> str:
    """An http(s) URL without a trailing slash; SettingsError names the setting otherwise."""
    try:
        return parse_url(value)
    except Invalid as exc:
        raise SettingsError(f"{PREFIX}{name.upper()} {exc}") from None


def database_setting(name: str, value: str) -> Path | str:
    """A `postgresql://` URL as given, or the path of a SQLite file."""
    try:
        return parse_database(value)
    except Invalid as exc:
        raise SettingsError(f"{PREFIX}{name.upper()} {exc}") from None


def with_settings_table(text: str) -> str:
    """`text` (README's) with the settings table between its markers written anew."""
    before, start, rest = text.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"no {TABLE_START!r} ... {TABLE_END!r} markers")
    return f"{before}{TABLE_START}\n{settings_table()}\n{TABLE_END}{after}"


if __name__ == "__main__":  # python -m clientkeys.config README.md
    import sys

    readme = Path(sys.argv[1])
    readme.write_text(with_settings_table(readme.read_text()))
