"""The `serve`, `health` and `demo` commands: the API as a process, and its demo data."""

from __future__ import annotations

import os
import shlex
from contextlib import closing
from pathlib import Path
from typing import Any

import click

from clientkeys.cli.options import (
    DEMO_ORG,
    DEMO_PROJECT,
    database_option,
    environment_only,
    load_settings,
    opened,
    setting_options,
)
from clientkeys.config import ConnectionSettings, Invalid, ServeProcess, Settings, parse_token
from clientkeys.core import domain
from clientkeys.core.errors import ClientKeysError
from clientkeys.runtime import runner, service
from clientkeys.store import fixtures, repository
from clientkeys.store.backend import Connection

PORT = ServeProcess.settings()["port"]


@click.command(epilog=environment_only(Settings, ConnectionSettings))
@setting_options(ServeProcess, "host", "port")
@database_option
@setting_options(Settings, "public_url", "ingest_url", "cdn_url")
@setting_options(ServeProcess, "workers")
@setting_options(Settings, "threads", "validate_responses", "validate_requests", "metrics",
                 "durability", "pool_size", "db_timeout")  # fmt: skip
@click.option("--demo", is_flag=True, help="Create demo data first (see `clientkeys demo`).")
@click.option(
    "--fixtures",
    "fixtures_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Load organizations, projects, keys and tokens from this JSON or YAML file.",
)
@setting_options(Settings, "admin_token")
@setting_options(ServeProcess, "admin_token_file")
@setting_options(ServeProcess, "log_level", "log_format")
def serve(demo: bool, fixtures_file: Path | None, **flags: Any) -> None:
    """Serve the API with uvicorn.

    Every setting is checked before a worker starts; a bad one stops the start with one line
    and exit status 2 (a flag or variable that cannot be used) or 1 (the port is taken, the
    database or the fixtures cannot be used).
    """
    own = ServeProcess.settings()
    process = ServeProcess(**{name: flags.pop(name) for name in own})
    if process.admin_token_file is not None:
        flags["admin_token"] = _token_from_file(process.admin_token_file, flags.get("admin_token"))
    settings = load_settings(**flags)
    try:
        service.check_settings(settings)
        sock = runner.listen(process.host, process.port)
    except (service.ServeError, runner.RunError) as exc:
        raise click.ClickException(str(exc)) from None
    running = runner.Process(
        process.host, process.port, process.workers or os.cpu_count() or 1, process.log_level,
        process.log_format,
    )  # fmt: skip
    with closing(sock):
        runner.configure_logging(running)
        _prepare_store(settings, fixtures_file, demo, runner.url_of(sock))
        service.run(settings, running, sock)


def _token_from_file(path: Path, given: str | None) -> str:
    """The admin token `path` holds (one line); a usage error when it cannot be read or used,
    or when a token was given another way too."""
    hint = "'--admin-token-file' / 'CLIENTKEYS_ADMIN_TOKEN_FILE'"
    if given:
        raise click.UsageError(
            "Give the admin token one way: --admin-token (or CLIENTKEYS_ADMIN_TOKEN) or "
            "--admin-token-file, not both."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise click.BadParameter(f"cannot read {path}: {why}", param_hint=hint) from None
    try:
        # Never repeated in a message: it is a secret (parse_token's words do not quote it).
        return parse_token(text.strip())
    except Invalid as exc:
        raise click.BadParameter(f"the token in {path} {exc}", param_hint=hint) from None


@click.command()
@click.option(
    "--url",
    default=None,
    help=f"The server to ask. [default: http://127.0.0.1:${PORT.variable}, or port {PORT.default}]",
)
@click.option("--timeout", default=3.0, show_default=True, type=click.FloatRange(min=0.1))
def health(url: str | None, timeout: float) -> None:
    """Ask a running server whether it is ready (GET /_health/?full); exit 0 if so, else 1.

    For a container's health check: it needs no curl, and no token.
    """
    url = url or f"http://127.0.0.1:{os.environ.get(PORT.variable) or PORT.default}"
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
