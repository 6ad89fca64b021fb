"""The `proxy` command: check a client against a description, in front of its server."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

import click

from clientkeys.cli.options import (
    load_settings,
    require_extra,
    setting_options,
)
from clientkeys.config import ProxySettings


@click.command(context_settings={"allow_interspersed_args": False})
@setting_options(ProxySettings, "proxy_upstream", "proxy_host", "proxy_port", "proxy_mode")
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
@setting_options(ProxySettings, "proxy_log_level", "proxy_admin_token")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def proxy(
    spec_file: Path | None,
    rewrite_urls: bool,
    log_file: Any,
    command: tuple[str, ...],
    **flags: Any,
) -> None:
    """Forward every request to UPSTREAM and check both directions against the contract.

    Requests are checked as a validating clientkeys checks them (bearer credentials,
    parameters, body); the upstream's answers against the documented statuses, headers and
    schemas. Each violation is logged as a JSON line (operation, rule, where, offending value)
    and listed at GET /__proxy/violations (DELETE empties the list; both need the admin token
    as `Authorization: Bearer`). Credentials and secret-named fields are redacted. On shutdown a
    summary is printed; the exit status is 1 when any violation was seen.

    With a COMMAND after `--` (e.g. `-- pytest tests/`), the proxy runs it with
    CLIENTKEYS_PROXY_URL and CLIENTKEYS_PROXY_ADMIN_TOKEN set, then stops, prints the summary and
    exits with the command's status, or 1 if it passed but there were violations or no request
    came through.
    """
    require_extra("proxy", "aiohttp")
    import asyncio

    from clientkeys.openapi.conformance import Ledger
    from clientkeys.openapi.document import SpecError
    from clientkeys.proxy.app import create_proxy_app, run, verdict
    from clientkeys.runtime import runner

    given = ProxySettings(**flags)
    upstream, mode = str(given.proxy_upstream), given.proxy_mode
    host, port, log_level = given.proxy_host, given.proxy_port, given.proxy_log_level
    settings = load_settings()
    ledger = Ledger(log_file or sys.stderr)
    admin_token = given.proxy_admin_token or secrets.token_urlsafe(24)
    try:
        app = create_proxy_app(spec_file or settings.spec_dir / "openapi.json", upstream,
                               ledger=ledger, mode=mode, rewrite_urls=rewrite_urls,
                               max_body_bytes=settings.max_body_bytes,
                               admin_token=admin_token)  # fmt: skip
    except SpecError as exc:  # as `clientkeys mock` says it
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None

    def announce(url: str) -> None:
        click.echo(f"clientkeys proxy: {url} -> {upstream} ({mode} mode); "
                   f"violations at {url}/__proxy/violations", err=True)  # fmt: skip
        if not given.proxy_admin_token:  # one the user chose is not theirs to read back here
            click.echo(f"clientkeys proxy: admin token (generated) for /__proxy/violations: "
                       f"{admin_token}", err=True)  # fmt: skip

    try:
        sock = runner.listen(host, port)
    except runner.RunError as exc:
        raise click.ClickException(str(exc)) from None
    with sock:
        status = asyncio.run(run(app, sock, command, announce, log_level))
    click.echo("\n".join(ledger.summary()), err=True)
    code, reason = verdict(status, ledger, wrapped=bool(command))
    if reason:
        click.echo(f"clientkeys proxy: {reason}", err=True)
    raise SystemExit(code)
