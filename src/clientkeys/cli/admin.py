"""The store commands: `init-db`, organizations, projects, tokens and the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import click

from clientkeys.cli.options import (
    HttpUrl,
    Scopes,
    Slug,
    database_option,
    opened,
)
from clientkeys.config import ServeProcess
from clientkeys.core import domain
from clientkeys.store import repository


@click.command("init-db")
@database_option
def init_db(database: Path | str | None) -> None:
    """Create the database or apply pending migrations."""
    with opened(database) as conn:
        applied = conn.backend.applied_migrations(conn)
    click.echo(f"Database ready ({len(applied)} migrations applied).")


@click.group()
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


@click.command()
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


@click.group()
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


DEFAULT_URL = f"http://{ServeProcess().host}:{ServeProcess().port}"
"""Where `clientkeys serve` listens by default."""


@click.group()
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
@click.option(
    "--url",
    type=HttpUrl(),
    default=DEFAULT_URL,
    show_default=True,
    help="The server's URL, carried in the token: Sentry's new CLI then needs no SENTRY_URL.",
)
@database_option
def token_create(
    organization: str | None,
    scopes: tuple[str, ...],
    superuser: bool,
    label: str,
    url: str,
    database: Path | str | None,
) -> None:
    """Create a token and print it. It is stored only as a hash: copy it now.

    The token has the format of Sentry's organization tokens, `sntrys_<payload>_<secret>`: its
    payload names the server's URL and the organization.
    """
    if organization is None and not superuser:
        raise click.ClickException("A token that is not a superuser token needs an organization.")
    with opened(database) as conn:
        slug = None
        if organization is not None:
            slug = repository.get_organization(conn, organization)["slug"]
        plain, row = repository.insert_token(
            conn, organization, scopes, superuser=superuser, label=label,
            token=domain.new_token(url, slug),
        )  # fmt: skip
    click.echo(plain)
    click.echo(f"(scopes: {row['scopes']}; shown once, stored only as a hash)", err=True)
