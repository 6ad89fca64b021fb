"""Plain functions over the SQLite store. They raise domain errors, never HTTP responses."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from clientkeys import db as database
from clientkeys.errors import BadRequest, Conflict, FieldErrors, NotFound
from clientkeys.petnames import petname

SCOPES = ("project:read", "project:write", "project:admin")
ACTIVE, INACTIVE = 0, 1
USE_CASES = ("user", "profiling", "escalating_issues", "tempest", "demo")
DEFAULT_LOADER_OPTIONS = {"hasPerformance": True, "hasReplay": True}
LOADER_FLAGS = ("hasReplay", "hasPerformance", "hasDebug", "hasFeedback", "hasLogsAndMetrics")
STATUSES = {"active": ACTIVE, "inactive": INACTIVE}
SLUG = re.compile(r"^(?![0-9]+$)[a-z0-9_-]{1,50}$")
TOKEN_PREFIX = "sntrys_"

Row = dict[str, Any]


def now() -> str:
    """The current time in UTC, ISO 8601 with microseconds and a `Z`, as Sentry writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _one(db: Database, sql: str, params: Sequence[Any]) -> Row | None:
    cursor = db.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cursor.description], row, strict=True))


def _all(db: Database, sql: str, params: Sequence[Any]) -> list[Row]:
    cursor = db.execute(sql, params)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _by_ref(ref: str) -> tuple[str, Any]:
    """A path segment that is all digits names an id; anything else a slug."""
    return ("id", int(ref)) if ref.isdigit() and len(ref) < 19 else ("slug", ref)


def check_slug(slug: str, what: str) -> str:
    """Sentry's slug rule: lowercase letters, digits, `-` and `_`, not all digits, <= 50."""
    if not SLUG.match(slug):
        raise BadRequest(
            f"Invalid {what} slug {slug!r}: use 1-50 lowercase letters, digits, '-' or '_', "
            "not only digits."
        )
    return slug


# Organizations ---------------------------------------------------------------------------


def insert_organization(db: Database, slug: str, name: str | None = None) -> Row:
    """Create an organization; Conflict if the slug is taken."""
    check_slug(slug, "organization")
    try:
        with database.write(db):
            cursor = db.execute(
                "INSERT INTO organizations (slug, name, date_created) VALUES (?, ?, ?)",
                [slug, name or slug, now()],
            )
    except sqlite3.IntegrityError:
        raise Conflict(f"An organization with the slug {slug!r} already exists.") from None
    return get_organization(db, str(cursor.lastrowid))


def get_organization(db: Database, ref: str) -> Row:
    """An organization by id or slug; NotFound otherwise."""
    column, value = _by_ref(ref)
    row = _one(db, f"SELECT * FROM organizations WHERE {column} = ?", [value])
    if row is None:
        raise NotFound(f"No organization {ref!r}.")
    return row


def list_organizations(db: Database) -> list[Row]:
    """Every organization, oldest first."""
    return _all(db, "SELECT * FROM organizations ORDER BY id", [])


def set_dsn_endpoint(db: Database, organization_ref: str, url: str | None) -> Row:
    """Set (or, with None, clear) the organization's own DSN base URL."""
    organization = get_organization(db, organization_ref)
    with database.write(db):
        db.execute(
            "UPDATE organizations SET dsn_endpoint = ? WHERE id = ?", [url, organization["id"]]
        )
    return get_organization(db, str(organization["id"]))


# Audit log -----------------------------------------------------------------------------


def _audit(db: Database, project_id: int, event: str, target: str, data: Mapping[str, Any]) -> None:
    db.execute(
        "INSERT INTO audit_log (organization_id, event, target, data, date_added) "
        "SELECT organization_id, ?, ?, ?, ? FROM projects WHERE id = ?",
        [event, target, json.dumps(dict(data)), now(), project_id],
    )


def list_audit(db: Database, organization_ref: str | None = None) -> list[Row]:
    """Audit entries (PROJECTKEY_ADD, _EDIT, _REMOVE), oldest first, with their data decoded."""
    sql = "SELECT a.*, o.slug AS organization_slug FROM audit_log a "
    sql += "JOIN organizations o ON o.id = a.organization_id"
    params: list[Any] = []
    if organization_ref is not None:
        sql += " WHERE a.organization_id = ?"
        params.append(get_organization(db, organization_ref)["id"])
    rows = _all(db, sql + " ORDER BY a.id", params)
    for row in rows:
        row["data"] = json.loads(row["data"])
    return rows


# Projects ------------------------------------------------------------------------------


def insert_project(
    db: Database,
    organization_ref: str,
    slug: str,
    name: str | None = None,
    default_key: bool = True,
) -> Row:
    """Create a project with its first key, labelled "Default", as Sentry does."""
    check_slug(slug, "project")
    organization = get_organization(db, organization_ref)
    try:
        with database.write(db):
            cursor = db.execute(
                "INSERT INTO projects (organization_id, slug, name, date_created) "
                "VALUES (?, ?, ?, ?)",
                [organization["id"], slug, name or slug, now()],
            )
            project_id = cursor.lastrowid
            if default_key:
                _insert_key(db, project_id, label="Default")
    except sqlite3.IntegrityError:
        raise Conflict(
            f"The organization {organization['slug']!r} already has a project {slug!r}."
        ) from None
    return get_project(db, str(organization["id"]), str(project_id))


def get_project(db: Database, organization_ref: str, project_ref: str) -> Row:
    """A project by organization and project id-or-slug, with its organization's fields."""
    org_column, org_value = _by_ref(organization_ref)
    project_column, project_value = _by_ref(project_ref)
    row = _one(
        db,
        "SELECT p.*, o.slug AS organization_slug, o.dsn_endpoint AS organization_dsn_endpoint "
        "FROM projects p "
        "JOIN organizations o ON o.id = p.organization_id "
        f"WHERE o.{org_column} = ? AND p.{project_column} = ?",
        [org_value, project_value],
    )
    if row is None:
        raise NotFound()
    return row


# Tokens --------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """Tokens are stored only as this hash."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """Known scope names, deduplicated in canonical order; BadRequest names an unknown one."""
    wanted = {s.strip() for s in scopes if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise BadRequest(f"Unknown scope {unknown[0]!r}; choose from {', '.join(SCOPES)}.")
    if not wanted:
        raise BadRequest(f"A token needs at least one scope from {', '.join(SCOPES)}.")
    return [s for s in SCOPES if s in wanted]


def insert_token(
    db: Database,
    organization_ref: str | None,
    scopes: Iterable[str],
    *,
    superuser: bool = False,
    label: str = "",
    token: str | None = None,
) -> tuple[str, Row]:
    """Create a token; returns the plain token (shown once) and its stored row."""
    checked = check_scopes(scopes)
    organization_id = None
    if organization_ref is not None:
        organization_id = get_organization(db, organization_ref)["id"]
    elif not superuser:
        raise BadRequest("A token that is not a superuser token needs an organization.")
    token = token or TOKEN_PREFIX + secrets.token_hex(32)
    with database.write(db):
        cursor = db.execute(
            "INSERT INTO tokens (token_hash, organization_id, scopes, is_superuser, label, "
            "date_created) VALUES (?, ?, ?, ?, ?, ?)",
            [hash_token(token), organization_id, " ".join(checked), int(superuser), label, now()],
        )
    row = _one(db, "SELECT * FROM tokens WHERE id = ?", [cursor.lastrowid])
    assert row is not None
    return token, row


def find_token(db: Database, token: str) -> Row | None:
    """The stored token for a plain token, or None."""
    return _one(db, "SELECT * FROM tokens WHERE token_hash = ?", [hash_token(token)])


# Keys ----------------------------------------------------------------------------------


def _insert_key(
    db: Database,
    project_id: int | None,
    *,
    label: str | None = None,
    public: str | None = None,
    secret: str | None = None,
    rate_limit: tuple[int, int] | None = None,
    use_case: str = "user",
    active: bool = True,
) -> int:
    data = {"dynamicSdkLoaderOptions": dict(DEFAULT_LOADER_OPTIONS)}
    count, window = rate_limit or (None, None)
    cursor = db.execute(
        "INSERT INTO keys (project_id, label, public_key, secret_key, status, use_case, "
        "rate_limit_count, rate_limit_window, data, date_added) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            project_id,
            label or petname(),
            public or secrets.token_hex(16),
            secret or secrets.token_hex(16),
            ACTIVE if active else INACTIVE,
            use_case,
            count,
            window,
            json.dumps(data),
            now(),
        ],
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def insert_key(
    db: Database,
    project_id: int,
    *,
    name: str | None = None,
    public: str | None = None,
    secret: str | None = None,
    rate_limit: Mapping[str, Any] | None = None,
    use_case: str = "user",
    active: bool = True,
) -> Row:
    """Create a key. A rate limit is stored only when both count and window are non-zero."""
    for field, value in (("public", public), ("secret", secret)):
        column = f"{field}_key"
        if value and _one(db, f"SELECT 1 FROM keys WHERE {column} = ?", [value]):
            raise FieldErrors({field: [f"A client key with this {field} key already exists."]})
    limit = None
    if rate_limit and rate_limit.get("count") and rate_limit.get("window"):
        limit = (rate_limit["count"], rate_limit["window"])
    try:
        with database.write(db):
            key_id = _insert_key(
                db,
                project_id,
                label=name,
                public=public,
                secret=secret,
                rate_limit=limit,
                use_case=use_case,
                active=active,
            )
            row = _one(db, "SELECT * FROM keys WHERE id = ?", [key_id])
            assert row is not None
            _audit(db, project_id, "PROJECTKEY_ADD", row["public_key"], _audit_fields(row))
    except sqlite3.IntegrityError:  # a concurrent insert took the same explicit key
        raise FieldErrors(
            {"public": ["A client key with this public key already exists."]}
        ) from None
    return row


def find_key(db: Database, public_key: str) -> Row | None:
    """Any key by its public key, or None."""
    return _one(db, "SELECT * FROM keys WHERE public_key = ?", [public_key])


def _visibility(include_internal: bool) -> str:
    return "" if include_internal else " AND use_case = 'user'"


def get_key(db: Database, project_id: int, public_key: str, *, include_internal: bool) -> Row:
    """A key of the project by its public key; internal keys only when asked; else NotFound."""
    visible = _visibility(include_internal)
    sql = f"SELECT * FROM keys WHERE project_id = ? AND public_key = ?{visible}"
    row = _one(db, sql, [project_id, public_key])
    if row is None:
        raise NotFound()
    return row


def list_keys(
    db: Database,
    project_id: int,
    *,
    bound: float | None,
    ascending: bool,
    offset: int,
    limit: int,
    status: int | None = None,
    include_internal: bool = False,
) -> list[Row]:
    """One keyset slice of a project's keys: id <= bound newest first, or id >= bound oldest
    first; `status` narrows to active or inactive keys."""
    where = "project_id = ?" + _visibility(include_internal)
    params: list[Any] = [project_id]
    if status is not None:
        where += " AND status = ?"
        params.append(status)
    if bound is not None:
        where += " AND id >= ?" if ascending else " AND id <= ?"
        params.append(bound)
    order = "ASC" if ascending else "DESC"
    return _all(
        db,
        f"SELECT * FROM keys WHERE {where} ORDER BY id {order} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )


def _audit_fields(row: Row) -> dict[str, Any]:
    return {
        "label": row["label"],
        "public_key": row["public_key"],
        "status": row["status"],
        "rate_limit_count": row["rate_limit_count"],
        "rate_limit_window": row["rate_limit_window"],
    }


def _rate_limit_change(value: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """Sentry's rule: null, or a null/"" field, clears both; values set both."""
    if value is None or value.get("count") in (None, "") or value.get("window") in (None, ""):
        return None, None
    return value["count"], value["window"]


def plan_update(row: Row, changes: Mapping[str, Any], default_sdk_version: str) -> Row:
    """The key's columns after a PUT, applied in Sentry's order; unknown fields are ignored."""
    planned = dict(row)
    data = key_data(row)
    if changes.get("name"):
        planned["label"] = changes["name"]
    data["browserSdkVersion"] = changes.get("browserSdkVersion") or default_sdk_version
    options = changes.get("dynamicSdkLoaderOptions")
    if options:
        known = {k: v for k, v in options.items() if k in LOADER_FLAGS}
        data["dynamicSdkLoaderOptions"] = {**data.get("dynamicSdkLoaderOptions", {}), **known}
    if "isActive" in changes:
        planned["status"] = ACTIVE if changes["isActive"] else INACTIVE
    if "rateLimit" in changes:
        count, window = _rate_limit_change(changes["rateLimit"])
        planned["rate_limit_count"], planned["rate_limit_window"] = count, window
    planned["data"] = json.dumps(data)
    return planned


def update_key(
    db: Database, row: Row, changes: Mapping[str, Any], *, default_sdk_version: str
) -> Row:
    """Apply a PUT to a key and audit it (with the previous limit when the limit changed)."""
    planned = plan_update(row, changes, default_sdk_version)
    columns = ("label", "status", "rate_limit_count", "rate_limit_window", "data")
    audit = _audit_fields(planned)
    if (row["rate_limit_count"], row["rate_limit_window"]) != (
        planned["rate_limit_count"],
        planned["rate_limit_window"],
    ):
        audit["prev_rate_limit_count"] = row["rate_limit_count"]
        audit["prev_rate_limit_window"] = row["rate_limit_window"]
    with database.write(db):
        db.execute(
            f"UPDATE keys SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
            [*(planned[c] for c in columns), row["id"]],
        )
        _audit(db, row["project_id"], "PROJECTKEY_EDIT", row["public_key"], audit)
    return planned


def delete_key(db: Database, row: Row) -> None:
    """Delete a key for good, and audit it."""
    with database.write(db):
        _audit(db, row["project_id"], "PROJECTKEY_REMOVE", row["public_key"], _audit_fields(row))
        db.execute("DELETE FROM keys WHERE id = ?", [row["id"]])


def key_data(row: Row) -> dict[str, Any]:
    """The key's loader settings (`dynamicSdkLoaderOptions`, `browserSdkVersion`)."""
    data: dict[str, Any] = json.loads(row["data"])
    return data


# Test controls ---------------------------------------------------------------------------


def reset_store(db: Database) -> int:
    """Delete every key, the audit log and the request journal; returns the keys deleted."""
    with database.write(db):
        deleted = db.execute("DELETE FROM keys").rowcount
        db.execute("DELETE FROM audit_log")
        db.execute("DELETE FROM request_log")
    return int(deleted)


def log_request(db: Database, entry: Mapping[str, Any], keep: int) -> None:
    """Journal one request, keeping only the newest `keep` entries."""
    with database.write(db):
        cursor = db.execute(
            "INSERT INTO request_log (method, path, query, status, validated, date) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [entry["method"], entry["path"], entry["query"], entry["status"],
             int(entry["validated"]), now()],
        )  # fmt: skip
        db.execute("DELETE FROM request_log WHERE id <= ?", [(cursor.lastrowid or 0) - keep])


def list_requests(db: Database, limit: int) -> list[Row]:
    """The newest `limit` journal entries, oldest first."""
    rows = _all(
        db,
        "SELECT method, path, query, status, validated, date FROM "
        "(SELECT * FROM request_log ORDER BY id DESC LIMIT ?) ORDER BY id",
        [limit],
    )
    for row in rows:
        row["validated"] = bool(row["validated"])
    return rows
