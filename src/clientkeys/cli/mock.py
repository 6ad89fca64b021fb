"""The `mock` command: serve any OpenAPI description as a validating mock."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import click

from clientkeys.cli.options import (
    TokenGrant,
    load_settings,
    require_extra,
    setting_options,
)
from clientkeys.config import MockSettings
from clientkeys.runtime import runner


@click.command()
@setting_options(MockSettings, "mock_spec", "mock_host", "mock_port", "mock_tokens",
                 mock_spec=click.Path(dir_okay=False, path_type=Path),
                 mock_tokens=TokenGrant())  # fmt: skip
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse to start if any example does not match its schema (default: report them and "
    "serve generated data instead).",
)
@setting_options(MockSettings, "mock_cors", "mock_workers", "mock_log_level")
def mock(strict: bool, mock_tokens: tuple[tuple[str, frozenset[str]], ...], **flags: Any) -> None:
    """Serve a stateless mock of an OpenAPI document, answered from its examples.

    Requests are validated against the spec (an invalid one is a 422 naming each parameter
    or field; clientkeys' own spec answers as the real server does). The Prefer header picks
    the answer: `code=404`, `example=NAME`, `dynamic=true` (generated from the schema),
    `delay=MS` (at most 10000). Every example is checked against its schema at start; one
    that does not match is reported and replaced by generated data (with --strict, refused).
    A spec that cannot be read or is not OpenAPI 3.0/3.1 ends the command with exit code 2.
    """
    require_extra("mock", "rstr")
    from clientkeys.mock import app as mocking

    given = MockSettings(mock_tokens=dict(mock_tokens) if mock_tokens else None, **flags)
    spec_file = given.mock_spec or load_settings().spec_dir / "openapi.json"
    settings = given.replace(mock_spec=spec_file.absolute())
    report = mocking.Report()
    try:
        app = mocking.create_mock_app(spec_file, settings.mock_tokens, strict=strict,
                                      cors=settings.mock_cors, report=report)  # fmt: skip
    except mocking.SpecError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    except mocking.InvalidExample as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line, err=True)
    try:
        sock = runner.listen(settings.mock_host, settings.mock_port)
    except runner.RunError as exc:
        raise click.ClickException(str(exc)) from None
    # The same HTTP layer as serve (414/431 while a request head arrives, JSON 400s), with
    # uvicorn's access lines, and a shutdown that a `Prefer: delay` cannot hold up.
    process = runner.Process(
        settings.mock_host, settings.mock_port, settings.mock_workers, settings.mock_log_level,
        access_log=True, graceful_shutdown=mocking.SHUTDOWN_SECONDS,
    )  # fmt: skip
    with closing(sock):
        click.echo(f"Mocking {spec_file} on {runner.url_of(sock)}", err=True)
        if settings.mock_workers == 1:
            runner.run(lambda: mocking.served(app), process, sock)
        else:  # each worker builds the mock again, from the settings in the environment
            runner.run(mocking.FACTORY, process, sock, environ=settings.to_env())
