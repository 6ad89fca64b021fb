"""Fixtures files: organizations, projects, keys and tokens loaded at start (`--fixtures`).

JSON or YAML of this shape (every list optional)::

    organizations:
      - slug: acme
        name: Acme              # optional
        dsnEndpoint: https://relay.example.com/ingest   # optional
        projects:
          - slug: web
            keys:               # optional; without it the project gets its "Default" key
              - {name: CI key, public: <32 hex>, secret: <32 hex>,
                 rateLimit: {count: 10, window: 60}, isActive: true, useCase: user}
    tokens:
      - {token: sntrys_ci_admin, org: acme, scopes: [project:admin], superuser: false}

Loading is idempotent: what already exists (same slug, public key or token) is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

from clientkeys.core import domain
from clientkeys.core.errors import ClientKeysError, NotFound
from clientkeys.store import repository
from clientkeys.store.backend import Connection as Database

HEX32 = r"^[a-f0-9]{32}$(?!\n)"
SLUG = {"type": "string", "pattern": domain.SLUG_PATTERN}
_KEY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 64},
        "public": {"type": "string", "pattern": HEX32},
        "secret": {"type": "string", "pattern": HEX32},
        "isActive": {"type": "boolean"},
        "useCase": {"enum": list(domain.USE_CASES)},
        "rateLimit": {
            "type": "object",
            "additionalProperties": False,
            "required": ["count", "window"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "window": {"type": "integer", "minimum": 0, "maximum": 86400},
            },
        },
    },
}


def _named(**properties: Any) -> dict[str, Any]:
    """An organization or project entry: a slug, an optional name, and its own fields."""
    return {
        "type": "object",
        "required": ["slug"],
        "additionalProperties": False,
        "properties": {"slug": SLUG, "name": {"type": "string"}, **properties},
    }


SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "organizations": {
            "type": "array",
            "items": _named(
                dsnEndpoint={"type": "string", "pattern": "^https?://"},
                projects={
                    "type": "array",
                    "items": _named(keys={"type": "array", "items": _KEY}),
                },
            ),
        },
        "tokens": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["token", "scopes"],
                "additionalProperties": False,
                "properties": {
                    "token": {"type": "string", "pattern": r"^[!-~]{8,}$(?!\n)"},
                    "org": {"type": "string"},
                    "scopes": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"enum": list(domain.SCOPES)},
                    },
                    "superuser": {"type": "boolean"},
                    "label": {"type": "string"},
                },
                # Only a superuser token may belong to no organization.
                "if": {
                    "not": {"required": ["superuser"], "properties": {"superuser": {"const": True}}}
                },
                "then": {"required": ["org"]},
            },
        },
    },
}


class FixturesError(ValueError):
    """A fixtures file that cannot be loaded; the message names the file and the place."""


def read(path: Path) -> dict[str, Any]:
    """Parse and validate a fixtures file (YAML, which JSON also is)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FixturesError(f"{path}: cannot read fixtures: {exc}") from None
    data = {} if data is None else data
    # The first error, by message; a missing `org` only after what is wrong in the entry itself.
    errors = sorted(
        Draft7Validator(SCHEMA).iter_errors(data), key=lambda e: ("then" in e.schema_path, str(e))
    )
    error = next(iter(errors), None)
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        message = error.message
        if error.validator == "pattern" and error.validator_value == domain.SLUG_PATTERN:
            message = f"{error.instance!r} is not a valid slug: {domain.SLUG_RULE}."
        raise FixturesError(f"{path}: {where.lstrip('.') or 'top level'}: {message}")
    result: dict[str, Any] = data
    return result


def apply(db: Database, data: dict[str, Any]) -> dict[str, int]:
    """Create what the fixtures describe and does not exist yet; returns counts created."""
    created = {"organizations": 0, "projects": 0, "keys": 0, "tokens": 0}
    try:
        for org in data.get("organizations", []):
            created["organizations"] += _organization(db, org)
            if "dsnEndpoint" in org:
                repository.set_dsn_endpoint(db, org["slug"], org["dsnEndpoint"].rstrip("/"))
            for project in org.get("projects", []):
                created["projects"] += _project(db, org["slug"], project)
                created["keys"] += _keys(db, org["slug"], project)
        for token in data.get("tokens", []):
            created["tokens"] += _token(db, token)
    except ClientKeysError as exc:
        raise FixturesError(f"fixtures: {exc.detail}") from None
    return created


def load(db: Database, path: Path) -> dict[str, int]:
    """Read, validate and apply a fixtures file."""
    return apply(db, read(path))


def _organization(db: Database, org: dict[str, Any]) -> int:
    try:
        repository.get_organization(db, org["slug"])
        return 0
    except NotFound:
        repository.insert_organization(db, org["slug"], org.get("name"))
        return 1


def _project(db: Database, org: str, project: dict[str, Any]) -> int:
    try:
        repository.get_project(db, org, project["slug"])
        return 0
    except NotFound:
        default_key = "keys" not in project
        repository.insert_project(db, org, project["slug"], project.get("name"), default_key)
        return 1


def _keys(db: Database, org: str, project: dict[str, Any]) -> int:
    project_id = repository.get_project(db, org, project["slug"])["id"]
    count = 0
    for key in project.get("keys", []):
        if key.get("public") and repository.find_key(db, key["public"]):
            continue
        new = domain.new_key(
            name=key.get("name"), public=key.get("public"), secret=key.get("secret"),
            rate_limit=key.get("rateLimit"), use_case=key.get("useCase", domain.USER_USE_CASE),
            active=key.get("isActive", True),
        )  # fmt: skip
        repository.insert_key(db, project_id, new)
        count += 1
    return count


def _token(db: Database, token: dict[str, Any]) -> int:
    if repository.find_token(db, token["token"]):
        return 0
    repository.insert_token(
        db, token.get("org"), domain.in_scope_order(token["scopes"]),
        superuser=token.get("superuser", False),
        label=token.get("label", "fixtures"), token=token["token"],
    )  # fmt: skip
    return 1
