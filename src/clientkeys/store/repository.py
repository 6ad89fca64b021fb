"""Storage: plain functions over a connection to either backend (SQLite or PostgreSQL, see
`backend`), one query each for both; what differs (a write transaction, `FOR UPDATE`, the key
id sequence) they ask the connection's backend. They store and load rows and raise domain
errors (NotFound, Conflict, a taken key), never HTTP responses. The rules of what to store live
in `domain`; checking a slug or a scope is the caller's input handling (the CLI, fixtures).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from clientkeys.core import domain
from clientkeys.core.domain import Row
from clientkeys.core.errors import Conflict, FieldErrors, NotFound
from clientkeys.store.backend import Connection as Database
from clientkeys.store.backend import IntegrityError


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


def _insert(db: Database, sql: str, params: Sequence[Any]) -> int:
    """Run an INSERT of one row; its new id (from the database, on both backends)."""
    [(new_id,)] = db.execute(f"{sql} RETURNING id", params).fetchall()
    return int(new_id)


def _by_ref(ref: str) -> tuple[str, Any]:
    """A path segment of ASCII digits names an id; anything else a slug. (`str.isdigit` alone
    also takes "²" and "١": the first breaks `int`, the second would name the id 1.)"""
    if ref.isascii() and ref.isdigit() and len(ref) < 19:
        return "id", int(ref)
    return "slug", ref


# Organizations ---------------------------------------------------------------------------


def insert_organization(db: Database, slug: str, name: str | None = None) -> Row:
    """Create an organization; Conflict if the slug is taken."""
    try:
        with db.backend.write(db):
            new_id = _insert(
                db,
                "INSERT INTO organizations (slug, name, date_created) VALUES (?, ?, ?)",
                [slug, name or slug, domain.now()],
            )
    except IntegrityError:
        raise Conflict(f"An organization with the slug {slug!r} already exists.") from None
    return get_organization(db, str(new_id))


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
    with db.backend.write(db):
        db.execute(
            "UPDATE organizations SET dsn_endpoint = ? WHERE id = ?", [url, organization["id"]]
        )
    return get_organization(db, str(organization["id"]))


# Audit log -----------------------------------------------------------------------------


def _audit(db: Database, project_id: int, event: str, target: str, data: Mapping[str, Any]) -> None:
    db.execute(
        "INSERT INTO audit_log (organization_id, event, target, data, date_added) "
        "SELECT organization_id, ?, ?, ?, ? FROM projects WHERE id = ?",
        [event, target, json.dumps(dict(data)), domain.now(), project_id],
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
    """Create a project with its first key, named "Default", as Sentry does."""
    organization = get_organization(db, organization_ref)
    try:
        with db.backend.write(db):
            project_id = _insert(
                db,
                "INSERT INTO projects (organization_id, slug, name, date_created) "
                "VALUES (?, ?, ?, ?)",
                [organization["id"], slug, name or slug, domain.now()],
            )
            if default_key:
                _insert_key(db, project_id, domain.new_key(name=domain.DEFAULT_KEY_NAME))
    except IntegrityError:
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
        f"{_PROJECTS} WHERE o.{org_column} = ? AND p.{project_column} = ?",
        [org_value, project_value],
    )
    if row is None:
        raise NotFound()
    return row


_PROJECTS = (
    "SELECT p.*, o.slug AS organization_slug, o.dsn_endpoint AS organization_dsn_endpoint, "
    "o.name AS organization_name, o.date_created AS organization_date_created "
    "FROM projects p JOIN organizations o ON o.id = p.organization_id"
)
"""A project row with the organization columns its JSON and its keys' DSNs need."""


def _keyset(
    column: str, bound: float | None, ascending: bool, offset: int, limit: int
) -> tuple[str, str, list[Any]]:
    """The keyset part of a page query over `column` (see `pagination.fetch_page`): a condition
    (empty, or starting with AND), an ORDER BY ... LIMIT ... OFFSET clause and their values,
    the condition's first."""
    condition, params = "", []
    if bound is not None:
        condition = f" AND {column} >= ?" if ascending else f" AND {column} <= ?"
        params.append(bound)
    order = f" ORDER BY {column} {'ASC' if ascending else 'DESC'} LIMIT ? OFFSET ?"
    return condition, order, [*params, limit, offset]


def list_organizations_page(
    db: Database,
    organization_id: int | None,
    *,
    bound: float | None,
    ascending: bool,
    offset: int,
    limit: int,
) -> list[Row]:
    """One keyset slice of the organizations, newest first: all of them, or only one (a token's
    own) when `organization_id` is given."""
    where, params = "1 = 1", list[Any]()
    if organization_id is not None:
        where, params = "id = ?", [organization_id]
    condition, order, page = _keyset("id", bound, ascending, offset, limit)
    return _all(db, f"SELECT * FROM organizations WHERE {where}{condition}{order}",
                [*params, *page])  # fmt: skip


def list_projects(
    db: Database,
    organization_id: int | None,
    *,
    public_key: str | None = None,
    bound: float | None,
    ascending: bool,
    offset: int,
    limit: int,
) -> list[Row]:
    """One keyset slice of projects with their organization columns, newest first: of one
    organization (None: of all), and with `public_key` only the project holding that key."""
    where, params = "1 = 1", list[Any]()
    if organization_id is not None:
        where += " AND p.organization_id = ?"
        params.append(organization_id)
    if public_key is not None:
        where += " AND p.id IN (SELECT project_id FROM keys WHERE public_key = ?)"
        params.append(public_key)
    condition, order, page = _keyset("p.id", bound, ascending, offset, limit)
    return _all(db, f"{_PROJECTS} WHERE {where}{condition}{order}", [*params, *page])


def list_organization_keys(
    db: Database,
    organization_id: int,
    project_ids: Sequence[int] | None,
    *,
    bound: float | None,
    ascending: bool,
    offset: int,
    limit: int,
    status: int | None = None,
    include_internal: bool = False,
) -> list[Row]:
    """One keyset slice of the keys of an organization's projects (None: all of them), newest
    first, as `list_keys` pages one project's."""
    where = "p.organization_id = ?" + _visibility(include_internal)
    params: list[Any] = [organization_id]
    if project_ids is not None:
        where += f" AND k.project_id IN ({', '.join('?' for _ in project_ids) or 'NULL'})"
        params.extend(project_ids)
    if status is not None:
        where += " AND k.status = ?"
        params.append(status)
    condition, order, page = _keyset("k.id", bound, ascending, offset, limit)
    return _all(
        db,
        f"SELECT k.* FROM keys k JOIN projects p ON p.id = k.project_id WHERE {where}"
        f"{condition}{order}",
        [*params, *page],
    )


# Tokens --------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """Tokens are stored only as this hash."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def insert_token(
    db: Database,
    organization_ref: str | None,
    scopes: Iterable[str],
    *,
    superuser: bool = False,
    label: str = "",
    token: str | None = None,
) -> tuple[str, Row]:
    """Store a token for the organization (None: none, for superuser tokens) with these scopes;
    returns the plain token (shown once; a new one unless given) and its stored row."""
    organization_id = None
    if organization_ref is not None:
        organization_id = get_organization(db, organization_ref)["id"]
    token = token or domain.new_token()
    with db.backend.write(db):
        new_id = _insert(
            db,
            "INSERT INTO tokens (token_hash, organization_id, scopes, is_superuser, label, "
            "date_created) VALUES (?, ?, ?, ?, ?, ?)",
            [hash_token(token), organization_id, " ".join(scopes), int(superuser), label,
             domain.now()],
        )  # fmt: skip
    row = _one(db, "SELECT * FROM tokens WHERE id = ?", [new_id])
    assert row is not None
    return token, row


def find_token(db: Database, token: str) -> Row | None:
    """The stored token for a plain token, or None."""
    return _one(db, "SELECT * FROM tokens WHERE token_hash = ?", [hash_token(token)])


# Keys ----------------------------------------------------------------------------------


def _insert_key(db: Database, project_id: int | None, key: Mapping[str, Any]) -> int:
    columns = ["project_id", *key]
    return _insert(
        db,
        f"INSERT INTO keys ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [project_id, *key.values()],
    )


def insert_key(db: Database, project_id: int, key: Mapping[str, Any]) -> Row:
    """Store a new key (its columns from `domain.new_key`) and audit it; a 400 field error naming
    `public` or `secret` if either is taken. The check and the insert share one transaction."""
    try:
        with db.backend.write(db):
            _check_keys_free(db, key)
            row = _one(db, "SELECT * FROM keys WHERE id = ?", [_insert_key(db, project_id, key)])
            assert row is not None
            _audit(db, project_id, domain.KEY_ADDED, row["public_key"], domain.audit_fields(row))
    except IntegrityError:
        # Only where a concurrent insert can commit between the check and the insert (a backend
        # that locks less than the whole database: PostgreSQL): the check now names the field.
        _check_keys_free(db, key)
        raise
    return row


def _check_keys_free(db: Database, key: Mapping[str, Any]) -> None:
    for field in ("public", "secret"):
        column = f"{field}_key"
        if _one(db, f"SELECT 1 FROM keys WHERE {column} = ?", [key[column]]):
            raise FieldErrors({field: [f"A client key with this {field} key already exists."]})


def find_key(db: Database, public_key: str) -> Row | None:
    """Any key by its public key, or None."""
    return _one(db, "SELECT * FROM keys WHERE public_key = ?", [public_key])


def _visibility(include_internal: bool) -> str:
    return "" if include_internal else " AND use_case = 'user'"


def get_key(
    db: Database, project_id: int, public_key: str, *, include_internal: bool, lock: bool = False
) -> Row:
    """A key of the project by its public key; internal keys only when asked; else NotFound.
    With `lock` (inside a write that will change it), a concurrent writer of it waits."""
    visible = _visibility(include_internal)
    sql = f"SELECT * FROM keys WHERE project_id = ? AND public_key = ?{visible}"
    if lock:
        sql += db.backend.lock_rows
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


def update_key(
    db: Database,
    project_id: int,
    public_key: str,
    plan: Callable[[Row], Row],
    *,
    include_internal: bool,
) -> Row:
    """Read the key, `plan` its new columns (`domain.plan_update`), store them and audit the
    edit, all in one write transaction: a concurrent update or delete is either wholly before
    this one or wholly after it. NotFound if the key is gone. Returns the new row."""
    with db.backend.write(db):
        row = get_key(db, project_id, public_key, include_internal=include_internal, lock=True)
        planned = plan(row)
        columns = domain.updated_columns(planned)
        db.execute(
            f"UPDATE keys SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
            [*columns.values(), row["id"]],
        )
        edit = domain.edit_audit(row, planned)
        _audit(db, row["project_id"], domain.KEY_EDITED, row["public_key"], edit)
    return planned


def delete_key(db: Database, project_id: int, public_key: str, *, include_internal: bool) -> None:
    """Delete a key for good, and audit it, in one write transaction: of two concurrent deletes
    one finds the key, the other gets NotFound."""
    with db.backend.write(db):
        row = get_key(db, project_id, public_key, include_internal=include_internal, lock=True)
        _audit(
            db, row["project_id"], domain.KEY_REMOVED, row["public_key"], domain.audit_fields(row)
        )
        db.execute("DELETE FROM keys WHERE id = ?", [row["id"]])


# Test controls ---------------------------------------------------------------------------


START_TABLES = ("organizations", "projects", "keys", "tokens")
"""What the start state holds, in the order rows are put back (each after what it refers to)."""


def save_start_state(db: Database) -> dict[str, int]:
    """Remember the store as it is now (organizations, projects, keys with their ids, tokens,
    the key id sequence) for `reset_store`; returns the rows saved per table."""
    saved = {}
    with db.backend.write(db):
        db.execute("DELETE FROM start_state", [])
        for table in START_TABLES:
            rows = _all(db, f'SELECT * FROM "{table}" ORDER BY id', [])
            db.execute("INSERT INTO start_state (name, data) VALUES (?, ?)",
                       [table, json.dumps(rows)])  # fmt: skip
            saved[table] = len(rows)
        db.execute("INSERT INTO start_state (name, data) VALUES ('sequence', ?)",
                   [json.dumps(db.backend.key_sequence(db))])  # fmt: skip
    return saved


def reset_store(db: Database) -> dict[str, Any]:
    """Back to the saved start state (see `save_start_state`), audit log and journal emptied;
    without one, delete every key, the audit log and the journal and keep the rest.

    Returns the keys deleted and what the store holds afterwards."""
    with db.backend.write(db):
        deleted = db.execute("SELECT count(*) FROM keys", []).fetchone()[0]
        saved = dict(db.execute("SELECT name, data FROM start_state", []).fetchall())
        for table in ("audit_log", "request_log", "keys"):
            db.execute(f'DELETE FROM "{table}"', [])
        if saved:
            _restore(db, {name: json.loads(data) for name, data in saved.items()})
        counts = {
            t: db.execute(f'SELECT count(*) FROM "{t}"', []).fetchone()[0] for t in START_TABLES
        }
    return {"keysDeleted": int(deleted), "state": counts}


def _restore(db: Database, saved: Mapping[str, Any]) -> None:
    """Replace the start tables' rows with the saved ones (inside the caller's transaction)."""
    for table in ("tokens", "projects", "organizations"):
        db.execute(f'DELETE FROM "{table}"', [])
    for table in START_TABLES:
        for row in saved[table]:
            columns = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join("?" for _ in row)
            db.execute(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', list(row.values()))
    db.backend.set_key_sequence(db, saved["sequence"])


def log_request(db: Database, entry: Mapping[str, Any], keep: int) -> None:
    """Journal one request, keeping only the newest `keep` entries."""
    with db.backend.write(db):
        new_id = _insert(
            db,
            "INSERT INTO request_log (method, path, query, status, validated, date) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [entry["method"], entry["path"], entry["query"], entry["status"],
             int(entry["validated"]), domain.now()],
        )  # fmt: skip
        db.execute("DELETE FROM request_log WHERE id <= ?", [new_id - keep])


def list_requests(db: Database, limit: int) -> list[Row]:
    """The newest `limit` journal entries, oldest first."""
    rows = _all(
        db,
        "SELECT method, path, query, status, validated, date FROM "
        "(SELECT * FROM request_log ORDER BY id DESC LIMIT ?) AS newest ORDER BY id",
        [limit],
    )
    for row in rows:
        row["validated"] = bool(row["validated"])
    return rows
