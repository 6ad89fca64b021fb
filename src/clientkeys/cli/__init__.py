"""The `clientkeys` command line, one module per command: `serve` (with `health` and `demo`),
`check`, `proxy`, `mock`, and the store commands in `admin`."""

from __future__ import annotations

import warnings

import click

# Connexion imports Starlette's test client, which warns about httpx on every CLI start.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

# ruff: noqa: E402
from clientkeys import __version__
from clientkeys.cli import admin, check, mock, proxy, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clientkeys")
def main() -> None:
    """clientkeys: Sentry's Project Client Keys API, served from its OpenAPI contract."""


for command in (serve.serve, serve.health, check.check, proxy.proxy, mock.mock, admin.init_db,
                admin.org, admin.audit, admin.project, admin.token, serve.demo):  # fmt: skip
    main.add_command(command)
