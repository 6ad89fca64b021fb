"""The `clientkeys` command line: serve the API and manage organizations, projects and tokens."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

# Connexion imports Starlette's test client, which warns about httpx on every CLI start.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from clientkeys import __version__, contract, domain, fixtures, logs, repository, service, store  # noqa: E402
from clientkeys.config import (  # noqa: E402
    BEARER_TOKEN,
    PREFIX,
    Settings,
    SettingsError,
    database_setting,
    is_postgres,
    url_setting,
)
from clientkeys.contract import PHASES, REQUIREMENTS  # noqa: E402
from clientkeys.errors import ClientKeysError  # noqa: E402
from clientkeys.store import Connection  # noqa: E402

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
    try:
        store.init_db(path)
        if writable:
            store.check_writable(path)
        with store.connect(path) as conn:
            yield conn
    except ClientKeysError as exc:
        raise click.ClickException(exc.detail) from None


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clientkeys")
def main() -> None:
    """clientkeys: Sentry's Project Client Keys API, served from its OpenAPI contract."""


LOG_LEVELS = ["critical", "error", "warning", "info", "debug"]


class BearerToken(click.ParamType[str]):
    """A token a client can send in `Authorization: Bearer <token>`: printable, no spaces."""

    name = "token"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not BEARER_TOKEN.fullmatch(value):
            self.fail("must be printable ASCII without spaces (it travels in a header)", param, ctx)
        return value


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar=f"{PREFIX}HOST",
    help=f"Interface to bind. [env: {PREFIX}HOST]",
)
@click.option(
    "--port",
    "-p",
    default=8000,
    show_default=True,
    envvar=f"{PREFIX}PORT",
    type=click.IntRange(0, 65535),
    help=f"Port to bind (0: any free port). [env: {PREFIX}PORT]",
)
@database_option
@click.option(
    "--public-url",
    default=None,
    type=HttpUrl(),
    help=f"URL clients reach the server at, e.g. behind a proxy. [env: {PREFIX}PUBLIC_URL;"
    " default: from each request's Host header]",
)
@click.option(
    "--ingest-url",
    default=None,
    type=HttpUrl(),
    help=f"Base of every DSN URL. [env: {PREFIX}INGEST_URL; default: the public URL]",
)
@click.option(
    "--cdn-url",
    default=None,
    type=HttpUrl(),
    help=f"JS SDK loader base URL. [env: {PREFIX}CDN_URL; default: <ingest URL>/js-sdk-loader/]",
)
@click.option(
    "--workers",
    "-w",
    default=lambda: os.cpu_count() or 1,
    show_default="one per core",
    envvar=f"{PREFIX}WORKERS",
    type=click.IntRange(min=1),
    help=f"Worker processes. [env: {PREFIX}WORKERS]",
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(min=1),
    help=f"Handler threads per worker. [env: {PREFIX}THREADS; default: 2]",
)
@click.option(
    "--validate-responses/--no-validate-responses",
    default=None,
    help=f"Check every response against the spec. [env: {PREFIX}VALIDATE_RESPONSES; default: on]",
)
@click.option(
    "--validate-requests/--no-validate-requests",
    default=None,
    help=f"Check every request against the spec. Turn off only to measure what validation "
    f"costs. [env: {PREFIX}VALIDATE_REQUESTS; default: on]",
)
@click.option(
    "--metrics/--no-metrics",
    default=None,
    help=f"Count requests, latency, validation failures, database errors and lock waits of "
    f"every worker; serve them at /metrics. [env: {PREFIX}METRICS; default: off]",
)
@click.option(
    "--durability",
    type=click.Choice(["full", "normal"]),
    default=None,
    help=f"full: every acknowledged write is synced to disk (survives a power cut); normal: it "
    f"survives a crash of the server, not of the machine. [env: {PREFIX}DURABILITY; default: full]",
)
@click.option(
    "--pool-size",
    default=None,
    type=click.IntRange(min=1),
    help=f"PostgreSQL: connections each worker keeps at most. [env: {PREFIX}POOL_SIZE; default: 4]",
)
@click.option(
    "--db-timeout",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help=f"PostgreSQL: seconds a request waits at most for a connection, a row lock or a "
    f"statement before its answer is a 503. [env: {PREFIX}DB_TIMEOUT; default: 5]",
)
@click.option("--demo", is_flag=True, help="Create demo data first (see `clientkeys demo`).")
@click.option(
    "--fixtures",
    "fixtures_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Load organizations, projects, keys and tokens from this JSON or YAML file.",
)
@click.option(
    "--admin-token",
    default=None,
    type=BearerToken(),
    help=f"Turn on the test controls under /__admin/ for this token; /__admin/reset returns to "
    f"the state the server started with. [env: {PREFIX}ADMIN_TOKEN; default: off]",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    envvar=f"{PREFIX}LOG_LEVEL",
    type=click.Choice(LOG_LEVELS),
    help=f"[env: {PREFIX}LOG_LEVEL]",
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    envvar=f"{PREFIX}LOG_FORMAT",
    type=click.Choice(logs.FORMATS),
    help=f"`json`: one JSON object per line, access lines with request id, operationId, "
    f"status, duration and token id. [env: {PREFIX}LOG_FORMAT]",
)
def serve(
    host: str,
    port: int,
    database: Path | str | None,
    public_url: str | None,
    ingest_url: str | None,
    cdn_url: str | None,
    workers: int,
    threads: int | None,
    validate_responses: bool | None,
    validate_requests: bool | None,
    metrics: bool | None,
    durability: str | None,
    pool_size: int | None,
    db_timeout: float | None,
    demo: bool,
    fixtures_file: Path | None,
    admin_token: str | None,
    log_level: str,
    log_format: str,
) -> None:
    """Serve the API with uvicorn.

    Every setting is checked before a worker starts; a bad one stops the start with one line
    and exit status 2 (a flag or variable that cannot be used) or 1 (the port is taken, the
    database or the fixtures cannot be used).
    """
    settings = load_settings(
        database=database,
        durability=durability,
        pool_size=pool_size,
        db_timeout=db_timeout,
        public_url=public_url,
        ingest_url=ingest_url,
        cdn_url=cdn_url,
        validate_responses=validate_responses,
        validate_requests=validate_requests,
        threads=threads,
        admin_token=admin_token,
        metrics=metrics,
    )
    try:
        service.check_settings(settings)
        sock = service.listen(host, port)
    except service.ServeError as exc:
        raise click.ClickException(str(exc)) from None
    process = service.Process(host, port, workers, log_level, log_format)
    with closing(sock):
        service.configure_logging(process)
        _prepare_store(settings, fixtures_file, demo, f"http://{host}:{sock.getsockname()[1]}")
        service.run(settings, process, sock)


@main.command()
@click.option(
    "--url",
    default=None,
    help=f"The server to ask. [default: http://127.0.0.1:${PREFIX}PORT, or port 8000]",
)
@click.option("--timeout", default=3.0, show_default=True, type=click.FloatRange(min=0.1))
def health(url: str | None, timeout: float) -> None:
    """Ask a running server whether it is ready (GET /_health/?full); exit 0 if so, else 1.

    For a container's health check: it needs no curl, and no token.
    """
    url = url or f"http://127.0.0.1:{os.environ.get(f'{PREFIX}PORT') or 8000}"
    problem = service.readiness(url, timeout)
    if problem is not None:
        raise click.ClickException(f"{url} is not ready: {problem}")
    click.echo(f"{url} is ready.")


def _prepare_store(settings: Settings, fixtures_file: Path | None, demo: bool, url: str) -> None:
    """Migrate the database, load fixtures and demo data, and save the state that
    `/__admin/reset` returns to; nodes starting at once on one database take turns."""
    with opened(settings.database, writable=True) as conn, store.starting(conn):
        if fixtures_file is not None:
            try:
                created = fixtures.load(conn, fixtures_file)
            except fixtures.FixturesError as exc:
                raise click.ClickException(str(exc)) from None
            counts = ", ".join(f"{n} {what}" for what, n in created.items())
            service.logger.info("Fixtures %s: created %s.", fixtures_file, counts)
        if demo:
            _print_demo(conn, settings.public_url or url)
        if settings.admin_token:
            repository.save_start_state(conn)


@main.command()
@click.argument("base_url")
@click.option(
    "--token",
    required=True,
    envvar=f"{PREFIX}CHECK_TOKEN",
    help=f"A token with every project scope. [env: {PREFIX}CHECK_TOKEN]",
)
@click.option("--org", "organization", required=True, help="An organization slug on the server.")
@click.option("--project", required=True, help="A project slug of that organization.")
@click.option(
    "--forbidden-token",
    default=None,
    envvar=f"{PREFIX}CHECK_FORBIDDEN_TOKEN",
    help="A valid token the server must refuse with 403 on ORG (one of another organization, "
    f"or without project scopes), to reach the documented 403s. [env: {PREFIX}"
    "CHECK_FORBIDDEN_TOKEN]",
)
@click.option(
    "--max-examples",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Test cases per operation and phase.",
)
@click.option(
    "--phases",
    default=",".join(PHASES),
    show_default=True,
    help="Comma-separated Schemathesis phases.",
)
@click.option(
    "--require",
    "requirements",
    default="",
    metavar="GOAL[,GOAL]",
    help=f"Exit 2 unless every operation answered each documented status of a kind "
    f"({', '.join(REQUIREMENTS)}) or a given status (e.g. 415) at least once. One documented "
    "2xx per operation is always required.",
)
@click.option(
    "--junit-xml",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a JUnit XML report: one test case per operation and check.",
)
@click.option(
    "--har",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every request and response as a HAR log.",
)
@click.option(
    "--vcr",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every request and response as a VCR cassette (YAML).",
)
@click.option("--seed", type=int, default=None, help="Random seed, to replay a run.")
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The contract to check. [default: clientkeys' own spec]",
)
@click.option(
    "--wait",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait for the server to accept connections.",
)
def check(
    wait: float,
    base_url: str,
    token: str,
    organization: str,
    project: str,
    forbidden_token: str | None,
    max_examples: int,
    phases: str,
    requirements: str,
    junit_xml: Path | None,
    har: Path | None,
    vcr: Path | None,
    seed: int | None,
    spec_file: Path | None,
) -> None:
    """Check that the server at BASE_URL keeps the contract (Schemathesis, all checks).

    Runs the examples, coverage, fuzzing and stateful phases with every check against any
    server that claims to implement this API, then prints a coverage summary. The token needs
    project:read, project:write and project:admin on ORG. Nothing is written into the working
    directory unless asked.

    \b
    Exit status:
      0  the server was really exercised and kept the contract
      1  it breaks the contract (the report says where, with curl commands)
      2  it could not really be tested: unreachable, token rejected, organization or
         project not found, an operation never answered a documented 2xx, or a
         --require goal not reached (the last line says which)
    """
    require_extra("check", "schemathesis", "aiohttp")
    from clientkeys import junit

    options = contract.Options(
        max_examples=max_examples,
        phases=_choices(phases, PHASES, "--phases"),
        seed=seed,
        requirements=_requirements(requirements),
        forbidden_token=forbidden_token,
        junit=junit_xml,
        har=har,
        vcr=vcr,
    )
    spec_file = spec_file or load_settings().spec_dir / "openapi.json"
    click.echo(f"Checking {base_url} against {spec_file} ({', '.join(options.phases)})", err=True)
    outcome = contract.check(spec_file, base_url, token, organization, project, options,
                             echo=click.echo, wait=wait)  # fmt: skip
    if outcome.seen.statuses:
        click.echo("\n".join(["", *contract.summary(outcome.seen)]))
    if outcome.seen.findings:
        click.echo("\n".join(["", "Contract violations:", *contract.findings_report(outcome.seen)]))
    if junit_xml is not None:
        junit.write(outcome, junit_xml, options.requirements)
        click.echo(f"JUnit XML report: {junit_xml}", err=True)
    verdict = outcome.verdict
    headline = {
        contract.OK: f"{base_url} keeps the contract",
        contract.BROKEN: f"{base_url} BREAKS the contract",
    }.get(verdict.code, f"could not really test {base_url}")
    click.echo(f"clientkeys check: {headline}: {verdict.cause}", err=True)
    raise SystemExit(verdict.code)


def _choices(value: str, allowed: tuple[str, ...], option: str) -> list[str]:
    """A comma-separated option value as a list, each item one of `allowed`."""
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown or not chosen:
        raise click.BadParameter(f"choose from {', '.join(allowed)}", param_hint=option)
    return chosen


def _requirements(value: str) -> list[str]:
    try:
        return contract.parse_requirements(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--require") from None


@main.command(context_settings={"allow_interspersed_args": False})
@click.option(
    "--upstream",
    required=True,
    type=HttpUrl(),
    envvar=f"{PREFIX}PROXY_UPSTREAM",
    help=f"The server to forward to, e.g. https://sentry.io. [env: {PREFIX}PROXY_UPSTREAM]",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port", "-p", default=8001, show_default=True, type=int, help="Port to bind; 0 picks one."
)
@click.option(
    "--mode",
    type=click.Choice(["report", "enforce"]),
    default="report",
    show_default=True,
    help="report: forward everything, record violations. enforce: answer a request that breaks "
    "the contract with the error a validating clientkeys gives, without forwarding it.",
)
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The contract. [default: clientkeys' own spec]",
)
@click.option(
    "--rewrite-urls",
    is_flag=True,
    help="Replace the upstream's origin with the proxy's in Link headers and response bodies "
    "(pagination and DSN URLs on the upstream's host then lead back to the proxy).",
)
@click.option(
    "--log",
    "log_file",
    type=click.File("w"),
    default=None,
    help="Write each violation to this file, as one JSON line. [default: stderr]",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def proxy(
    upstream: str,
    host: str,
    port: int,
    mode: str,
    spec_file: Path | None,
    rewrite_urls: bool,
    log_file: Any,
    log_level: str,
    command: tuple[str, ...],
) -> None:
    """Forward every request to UPSTREAM and check both directions against the contract.

    Requests are checked as a validating clientkeys checks them (bearer credentials,
    parameters, body); the upstream's answers against the documented statuses, headers and
    schemas. Each violation is logged as a JSON line (operation, rule, where, offending value)
    and listed at GET /__proxy/violations (DELETE empties the list). On shutdown a summary is
    printed; the exit status is 1 when any violation was seen.

    With a COMMAND after `--` (e.g. `-- pytest tests/`), the proxy runs it with
    CLIENTKEYS_PROXY_URL set, then stops, prints the summary and exits with the command's
    status, or 1 if it passed but there were violations.
    """
    require_extra("proxy", "aiohttp")
    import asyncio

    from clientkeys.conformance import Ledger
    from clientkeys.proxy import create_proxy_app, exit_status, run

    settings = load_settings()
    ledger = Ledger(log_file or sys.stderr)
    app = create_proxy_app(spec_file or settings.spec_dir / "openapi.json", upstream,
                           ledger=ledger, mode=mode, rewrite_urls=rewrite_urls,
                           max_body_bytes=settings.max_body_bytes)  # fmt: skip

    def announce(url: str) -> None:
        click.echo(f"clientkeys proxy: {url} -> {upstream} ({mode} mode); "
                   f"violations at {url}/__proxy/violations", err=True)  # fmt: skip

    status = asyncio.run(run(app, host, port, command, announce, log_level))
    click.echo("\n".join(ledger.summary()), err=True)
    raise SystemExit(exit_status(status, ledger))


@main.command()
@click.option(
    "--spec",
    "spec_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Any OpenAPI 3.0 or 3.1 document, JSON or YAML. [default: clientkeys' own spec]",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", "-p", default=4010, show_default=True, type=int, help="Port to bind.")
@click.option(
    "--token",
    "tokens",
    multiple=True,
    type=TokenGrant(),
    metavar="TOKEN[=SCOPE,...]",
    help="A bearer token the mock accepts, with its scopes (default: all three of clientkeys' "
    "own). Repeatable. Without any, every bearer token is accepted.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse to start if any example does not match its schema (default: report them and "
    "serve generated data instead).",
)
@click.option(
    "--cors/--no-cors",
    default=True,
    show_default=True,
    help="Answer CORS preflights and allow any origin, as Prism does.",
)
@click.option(
    "--workers",
    "-w",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes, each loading the spec.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(LOG_LEVELS),
)
def mock(
    spec_file: Path | None,
    host: str,
    port: int,
    tokens: tuple[tuple[str, frozenset[str]], ...],
    strict: bool,
    cors: bool,
    workers: int,
    log_level: str,
) -> None:
    """Serve a stateless mock of an OpenAPI document, answered from its examples.

    Requests are validated against the spec (an invalid one is a 422 naming each parameter
    or field; clientkeys' own spec answers as the real server does). The Prefer header picks
    the answer: `code=404`, `example=NAME`, `dynamic=true` (generated from the schema),
    `delay=MS` (at most 10000). Every example is checked against its schema at start; one
    that does not match is reported and replaced by generated data (with --strict, refused).
    A spec that cannot be read or is not OpenAPI 3.0/3.1 ends the command with exit code 2.
    """
    import uvicorn

    require_extra("mock", "rstr")
    from clientkeys import mock as mocking

    spec_file = spec_file or load_settings().spec_dir / "openapi.json"
    accepted = dict(tokens) if tokens else None
    report = mocking.Report()
    try:
        app = mocking.create_mock_app(spec_file, accepted, strict=strict, cors=cors, report=report)
    except mocking.SpecError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    except mocking.InvalidExample as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line, err=True)
    click.echo(f"Mocking {spec_file} on http://{host}:{port}", err=True)
    from clientkeys.uvicorn_hooks import LimitedHttpToolsProtocol

    # The same HTTP-layer limits as serve: 414/431 while a request head arrives, JSON 400s.
    options: dict[str, Any] = {"host": host, "port": port, "log_level": log_level,
                               "timeout_graceful_shutdown": mocking.SHUTDOWN_SECONDS,
                               "http": LimitedHttpToolsProtocol}  # fmt: skip
    if workers == 1:
        uvicorn.run(mocking.served(app), **options)
        return
    os.environ.update(mocking.env_of(spec_file, accepted, cors))
    uvicorn.run("clientkeys.mock:app_from_env", factory=True, workers=workers, **options)


@main.command("init-db")
@database_option
def init_db(database: Path | str | None) -> None:
    """Create the database or apply pending migrations."""
    with opened(database) as conn:
        applied = store.applied_migrations(conn)
    click.echo(f"Database ready ({len(applied)} migrations applied).")


@main.group()
def org() -> None:
    """Manage organizations."""


@org.command("create")
@click.argument("slug", type=Slug("organization"))
@click.option("--name", default=None, help="Display name. [default: the slug]")
@database_option
def org_create(slug: str, name: str | None, database: Path | str | None) -> None:
    """Create an organization."""
    with opened(database) as conn:
        row = repository.insert_organization(conn, slug, name)
    click.echo(f"Created organization {row['slug']} (id {row['id']}).")


@org.command("list")
@database_option
def org_list(database: Path | str | None) -> None:
    """List organizations."""
    with opened(database) as conn:
        for row in repository.list_organizations(conn):
            click.echo(f"{row['id']}\t{row['slug']}\t{row['name']}")


@org.command("set-dsn-endpoint")
@click.argument("organization")
@click.argument("url", required=False, type=HttpUrl())
@database_option
def org_set_dsn_endpoint(organization: str, url: str | None, database: Path | str | None) -> None:
    """Build the organization's DSN URLs (all but `cdn`) on URL; no URL restores the default.

    Sentry's `sentry:relay_dsn_endpoint` organization option, e.g.
    https://relay.example.com/ingest.
    """
    with opened(database) as conn:
        row = repository.set_dsn_endpoint(conn, organization, url)
    where = row["dsn_endpoint"] or "the server's ingest URL"
    click.echo(f"DSN URLs of {row['slug']} are now built on {where}.")


@main.command()
@click.option("--org", "organization", default=None, help="Only this organization's entries.")
@database_option
def audit(organization: str | None, database: Path | str | None) -> None:
    """Print the audit log: key creations, edits and removals, oldest first."""
    with opened(database) as conn:
        for row in repository.list_audit(conn, organization):
            click.echo(
                f"{row['date_added']}\t{row['organization_slug']}\t{row['event']}\t"
                f"{row['target']}\t{json.dumps(row['data'], sort_keys=True)}"
            )


@main.group()
def project() -> None:
    """Manage projects."""


@project.command("create")
@click.argument("slug", type=Slug("project"))
@click.option("--org", "organization", required=True, help="Organization slug or id.")
@click.option("--name", default=None, help="Display name. [default: the slug]")
@database_option
def project_create(
    slug: str, organization: str, name: str | None, database: Path | str | None
) -> None:
    """Create a project with its first client key, labelled "Default"."""
    with opened(database) as conn:
        row = repository.insert_project(conn, organization, slug, name)
    click.echo(
        f"Created project {row['organization_slug']}/{row['slug']} (id {row['id']}) "
        'with its "Default" key.'
    )


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option(
    "--org",
    "organization",
    default=None,
    help="Organization slug or id the token works for (optional for --superuser).",
)
@click.option(
    "--scopes",
    type=Scopes(),
    default=",".join(domain.SCOPES),
    show_default=True,
    help=f"Comma-separated scopes from {', '.join(domain.SCOPES)}.",
)
@click.option(
    "--superuser",
    is_flag=True,
    help="Works across organizations, sees internal keys and their useCase.",
)
@click.option("--label", default="", help="A note to recognise the token by.")
@database_option
def token_create(
    organization: str | None,
    scopes: tuple[str, ...],
    superuser: bool,
    label: str,
    database: Path | str | None,
) -> None:
    """Create a token and print it. It is stored only as a hash: copy it now."""
    if organization is None and not superuser:
        raise click.ClickException("A token that is not a superuser token needs an organization.")
    with opened(database) as conn:
        plain, row = repository.insert_token(
            conn, organization, scopes, superuser=superuser, label=label
        )
    click.echo(plain)
    click.echo(f"(scopes: {row['scopes']}; shown once, stored only as a hash)", err=True)


@main.command()
@database_option
@click.option(
    "--url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Server URL to show in the example command.",
)
def demo(database: Path | str | None, url: str) -> None:
    """Create a demo organization, project and admin token; print a curl command."""
    with opened(database) as conn:
        _print_demo(conn, url)


def _print_demo(conn: Connection, url: str) -> None:
    try:
        repository.get_organization(conn, DEMO_ORG)
        note = "Demo data already present; here is a new token for it."
    except ClientKeysError:
        repository.insert_organization(conn, DEMO_ORG, "Demo Organization")
        repository.insert_project(conn, DEMO_ORG, DEMO_PROJECT, "Demo Project")
        note = f"Created organization {DEMO_ORG!r} and project {DEMO_PROJECT!r}."
    plain, _ = repository.insert_token(conn, DEMO_ORG, domain.SCOPES, label="demo")
    keys_url = f"{url.rstrip('/')}/api/0/projects/{DEMO_ORG}/{DEMO_PROJECT}/keys/"
    click.echo(note)
    click.echo(f"Token (all project scopes, shown once): {plain}")
    click.echo("List the keys:")
    click.echo(f"  curl -i -H {shlex.quote('Authorization: Bearer ' + plain)} {keys_url}")
