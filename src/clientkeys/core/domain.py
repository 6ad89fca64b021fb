"""The rules of client keys, apart from their storage: names and constants, what a new key is,
what an update changes, and what the audit log records. Pure: no SQL, no HTTP.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from clientkeys.core.petnames import petname

Row = dict[str, Any]
"""A stored row, column name -> value (the `keys` columns for a key)."""

SCOPES = ("project:read", "project:write", "project:admin", "org:read")
"""The scopes a token may hold; `org:read` opens the organization endpoints Sentry's CLIs read."""
ACTIVE, INACTIVE = 0, 1
STATUSES = {"active": ACTIVE, "inactive": INACTIVE}
"""The `status` filter's values and the stored status each one selects."""
USER_USE_CASE = "user"
USE_CASES = (USER_USE_CASE, "profiling", "escalating_issues", "tempest", "demo")
"""`user` keys are everyone's; the others are internal, seen by superuser tokens only."""
LOADER_FLAGS = ("hasReplay", "hasPerformance", "hasDebug", "hasFeedback", "hasLogsAndMetrics")
DEFAULT_LOADER_OPTIONS = {"hasPerformance": True, "hasReplay": True}
DEFAULT_KEY_NAME = "Default"
"""The name of the key every new project gets, as on Sentry."""
TOKEN_PREFIX = "sntrys_"
SLUG_PATTERN = r"^(?![0-9]+$)[a-z0-9_-]{1,50}$(?!\n)"
"""A JSON Schema pattern; the `(?!\n)` keeps Python's `$` from accepting a final newline."""
SLUG_RULE = "use 1-50 lowercase letters, digits, '-' or '_', not only digits"
"""Sentry's slug rule, in words for messages."""

KEY_ADDED, KEY_EDITED, KEY_REMOVED = "PROJECTKEY_ADD", "PROJECTKEY_EDIT", "PROJECTKEY_REMOVE"
"""Sentry's audit-log events for keys."""
_AUDITED = ("label", "public_key", "status", "rate_limit_count", "rate_limit_window")
_UPDATED = ("label", "status", "rate_limit_count", "rate_limit_window", "data")
"""The columns an update may change."""


def now() -> str:
    """The current time in UTC, ISO 8601 with microseconds and a `Z`, as Sentry writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_token(url: str | None = None, organization: str | None = None) -> str:
    """A fresh bearer token in Sentry's format. With the server's `url`, Sentry's organization
    token format, `sntrys_<base64 JSON payload>_<secret>`: Sentry's new CLI reads the server's
    URL (and the organization) from the payload and then needs no `SENTRY_URL`."""
    if url is None:
        return TOKEN_PREFIX + secrets.token_hex(32)
    # As Sentry makes them: the payload in padded base64, the secret 32 bytes in base64 without
    # padding (sentry-cli checks both, and reads a token that fails as a legacy one).
    payload = {"iat": time.time(), "url": url, "region_url": url, "org": organization or ""}
    encoded = base64.b64encode(json.dumps(payload).encode()).decode("ascii")
    secret = base64.b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return f"{TOKEN_PREFIX}{encoded}_{secret}"


def in_scope_order(scopes: Iterable[str]) -> list[str]:
    """The known scopes among `scopes`, each once, in canonical order."""
    wanted = set(scopes)
    return [scope for scope in SCOPES if scope in wanted]


def key_data(row: Mapping[str, Any]) -> dict[str, Any]:
    """The key's loader settings (`dynamicSdkLoaderOptions`, `browserSdkVersion`)."""
    data: dict[str, Any] = json.loads(row["data"])
    return data


def created_rate_limit(value: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """On create, a rate limit is stored only when both count and window are non-zero."""
    if value and value.get("count") and value.get("window"):
        return value["count"], value["window"]
    return None, None


def updated_rate_limit(value: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    """On update: null, or a null or "" field, clears the limit; values set it."""
    if value is None or value.get("count") in (None, "") or value.get("window") in (None, ""):
        return None, None
    return value["count"], value["window"]


def new_key(
    *,
    name: str | None = None,
    public: str | None = None,
    secret: str | None = None,
    rate_limit: Mapping[str, Any] | None = None,
    use_case: str = USER_USE_CASE,
    active: bool = True,
) -> Row:
    """The columns of a key to create: a generated name and keys where none are given."""
    count, window = created_rate_limit(rate_limit)
    return {
        "label": name or petname(),
        "public_key": public or secrets.token_hex(16),
        "secret_key": secret or secrets.token_hex(16),
        "status": ACTIVE if active else INACTIVE,
        "use_case": use_case,
        "rate_limit_count": count,
        "rate_limit_window": window,
        "data": json.dumps({"dynamicSdkLoaderOptions": dict(DEFAULT_LOADER_OPTIONS)}),
        "date_added": now(),
    }


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
        count, window = updated_rate_limit(changes["rateLimit"])
        planned["rate_limit_count"], planned["rate_limit_window"] = count, window
    planned["data"] = json.dumps(data)
    return planned


def updated_columns(planned: Row) -> dict[str, Any]:
    """The columns of a planned update that storage writes."""
    return {column: planned[column] for column in _UPDATED}


def audit_fields(row: Row) -> dict[str, Any]:
    """What the audit log records of a key."""
    return {column: row[column] for column in _AUDITED}


def edit_audit(before: Row, after: Row) -> dict[str, Any]:
    """An edit's audit record: the key after it, and the previous limit when the limit changed."""
    record = audit_fields(after)
    limit = ("rate_limit_count", "rate_limit_window")
    if any(before[column] != after[column] for column in limit):
        record["prev_rate_limit_count"] = before["rate_limit_count"]
        record["prev_rate_limit_window"] = before["rate_limit_window"]
    return record
