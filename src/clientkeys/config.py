"""Settings: one frozen dataclass, read once from `CLIENTKEYS_*` variables or CLI flags, written
back to the environment for worker processes, and handed to each request through its state."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

PREFIX = "CLIENTKEYS_"
SETTINGS_KEY = "clientkeys.settings"
"""Where the app puts its settings in every request's ASGI `state`."""
# `src/clientkeys/spec` links to the top-level spec/ in a checkout; a wheel carries a copy.
SPEC_DIR = Path(__file__).parent / "spec"
SDK_VERSIONS = ("latest", "7.x", "6.x", "5.x", "4.x")
DURABILITIES = ("full", "normal")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


def url_setting(name: str, value: str) -> str:
    """An http(s) URL without a trailing slash; SettingsError names the setting otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{PREFIX}{name.upper()} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""A `database` setting starting with one of these is a PostgreSQL URL; anything else is the
path of a SQLite file."""


def is_postgres(database: Path | str) -> bool:
    """Whether the `database` setting names a PostgreSQL database (else a SQLite file)."""
    return isinstance(database, str) and database.startswith(POSTGRES_SCHEMES)


def database_setting(name: str, value: str) -> Path | str:
    """A `postgresql://` URL as given, or the path of a SQLite file."""
    if value.startswith(POSTGRES_SCHEMES):
        if not urlsplit(value).netloc and "host=" not in value:
            raise SettingsError(f"{PREFIX}{name.upper()} names no server: {redacted(value)!r}")
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


BEARER_TOKEN = re.compile(r"[!-~]+")
"""What a token must be to travel in `Authorization: Bearer <token>`: printable, no spaces."""


def _token(name: str, value: str) -> str:
    if not BEARER_TOKEN.fullmatch(value):
        raise SettingsError(f"{PREFIX}{name.upper()} must be printable ASCII without spaces")
    return value


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{PREFIX}{name.upper()} must be true or false, got {value!r}")


def _positive_number(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0 < number < float("inf"):
        raise SettingsError(f"{PREFIX}{name.upper()} must be a positive number, got {value!r}")
    return number


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise SettingsError(f"{PREFIX}{name.upper()} must be a positive integer, got {value!r}")
    return number


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told; each field is `CLIENTKEYS_<FIELD>` in the environment."""

    database: Path | str = Path("clientkeys.db")
    """The path of a SQLite file, or a `postgresql://` URL (`is_postgres`)."""
    durability: str = "full"
    """`full`: every acknowledged write is synced to disk before the answer (survives a power
    cut; one fsync per write). `normal`: it survives a crash of the server, not of the machine
    (on PostgreSQL: `synchronous_commit = off`)."""
    pool_size: int = 4
    """PostgreSQL only: connections each worker process keeps at most (nodes x workers x this
    must stay under the server's `max_connections`)."""
    db_timeout: float = 5.0
    """PostgreSQL only: the longest a request waits for a pooled connection, a new connection,
    a row lock or a statement; past it the answer is a 503."""
    spec_dir: Path = SPEC_DIR
    validate_responses: bool = True
    validate_requests: bool = True
    """Off only to measure what validation costs (the benchmark's baseline): unvalidated input
    can then reach the handlers."""
    public_url: str | None = None
    """The URL clients reach this server at (behind a proxy); default: from each request's Host."""
    ingest_url: str | None = None
    """The base of every DSN URL; default: the public URL."""
    cdn_url: str | None = None
    """Where the JS SDK loader lives; default: `<ingest URL>/js-sdk-loader/`."""
    per_page: int = 100
    max_per_page: int = 100
    max_body_bytes: int = 65536
    browser_sdk_version: str = "7.x"
    browser_sdk_choices: tuple[str, ...] = field(default=("latest", "7.x"))
    threads: int = 2
    """Threads per worker process that run the (synchronous) Flask handlers. The handlers are
    CPU-bound, so a few threads beat many: more only contend for the GIL."""
    admin_token: str | None = None
    """Turns on the test controls under /__admin/ for this bearer token; off when unset."""
    journal_size: int = 1000
    """How many recent requests the test controls' journal keeps."""
    metrics: bool = False
    """Count requests, latency, validation failures, database errors and lock waits, and serve
    them at /metrics (Prometheus text format)."""

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read `CLIENTKEYS_*` from `environ` (default: the process environment).

        Keyword overrides that are not None win over the environment (the CLI passes its flags).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, cast in _CASTS.items():
            raw = environ.get(PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = cast(name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The `CLIENTKEYS_*` variables from which `from_env` rebuilds these settings (unset
        fields are left out), so that worker processes run with what the CLI resolved."""
        env = {}
        for name, value in vars(self).items():
            if value is None:
                continue
            if isinstance(value, tuple):
                value = ",".join(value)
            env[PREFIX + name.upper()] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return env


class HasScope(Protocol):
    """A request with an ASGI scope: Connexion's and Starlette's requests."""

    @property
    def scope(self) -> MutableMapping[str, Any]: ...


def settings_of(request: HasScope) -> Settings:
    """The settings the app put into this request's state."""
    settings: Settings = request.scope["state"][SETTINGS_KEY]
    return settings


_CASTS: dict[str, Callable[[str, str], Any]] = {
    "database": database_setting,
    "durability": lambda _n, v: v.strip().lower(),
    "pool_size": _positive_int,
    "db_timeout": _positive_number,
    "spec_dir": lambda _n, v: Path(v).absolute(),
    "validate_responses": _bool,
    "validate_requests": _bool,
    "public_url": url_setting,
    "ingest_url": url_setting,
    "cdn_url": lambda n, v: url_setting(n, v) + "/",
    "per_page": _positive_int,
    "max_per_page": _positive_int,
    "max_body_bytes": _positive_int,
    "browser_sdk_version": lambda _n, v: v,
    "browser_sdk_choices": lambda _n, v: tuple(c.strip() for c in v.split(",") if c.strip()),
    "threads": _positive_int,
    "admin_token": _token,
    "journal_size": _positive_int,
    "metrics": _bool,
}
