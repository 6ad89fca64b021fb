"""The `serve`, `health` and `demo` commands: the API as a process, and its demo data."""

from __future__ import annotations

import os
import shlex
from contextlib import closing
from pathlib import Path

import click

from clientkeys.cli.options import (
    DEMO_ORG,
    DEMO_PROJECT,
    LOG_LEVELS,
    BearerToken,
    HttpUrl,
    database_option,
    load_settings,
    opened,
)
from clientkeys.config import (
    PREFIX,
    Settings,
)
from clientkeys.core import domain
from clientkeys.core.errors import ClientKeysError
from clientkeys.runtime import logs, service
from clientkeys.store import fixtures, repository
from clientkeys.store.backend import Connection


@click.command()
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


@click.command()
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
    with opened(settings.database, writable=True) as conn, conn.backend.starting(conn):
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


@click.command()
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
