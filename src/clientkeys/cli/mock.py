"""The `mock` command: serve any OpenAPI description as a validating mock."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from clientkeys.cli.options import (
    LOG_LEVELS,
    TokenGrant,
    load_settings,
    require_extra,
)


@click.command()
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
    from clientkeys.mock import app as mocking

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
    from clientkeys.runtime.uvicorn_hooks import LimitedHttpToolsProtocol

    # The same HTTP-layer limits as serve: 414/431 while a request head arrives, JSON 400s.
    options: dict[str, Any] = {"host": host, "port": port, "log_level": log_level,
                               "timeout_graceful_shutdown": mocking.SHUTDOWN_SECONDS,
                               "http": LimitedHttpToolsProtocol}  # fmt: skip
    if workers == 1:
        uvicorn.run(mocking.served(app), **options)
        return
    os.environ.update(mocking.env_of(spec_file, accepted, cors))
    uvicorn.run("clientkeys.mock.app:app_from_env", factory=True, workers=workers, **options)
