"""Rows to API JSON: the only module that knows the response field names and DSN templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from clientkeys.core.domain import ACTIVE, LOADER_FLAGS, Row, key_data


@dataclass(frozen=True)
class KeyContext:
    """What a key's JSON depends on besides its row."""

    ingest_url: str
    """The base of the DSN URLs (scheme://host[/path]), no trailing slash."""
    cdn_url: str
    """The loader base, ending in `/`; the key's file is `<cdn_url><public>.min.js`."""
    browser_sdk_version: str
    browser_sdk_choices: tuple[str, ...]
    include_use_case: bool = False
    relay_dsn_endpoint: str | None = None
    """An organization's own DSN base, which replaces `ingest_url` everywhere but `cdn`."""


def dsn_urls(base: str, cdn_url: str, project_id: int, public: str, secret: str) -> dict[str, str]:
    """The 13 DSN URLs of a key, as Sentry builds them."""
    parts = urlsplit(base)
    host, path = parts.netloc, parts.path.rstrip("/")
    api = f"{base}/api/{project_id}"
    return {
        "secret": f"{parts.scheme}://{public}:{secret}@{host}{path}/{project_id}",
        "public": f"{parts.scheme}://{public}@{host}{path}/{project_id}",
        "csp": f"{api}/csp-report/?sentry_key={public}",
        "security": f"{api}/security/?sentry_key={public}",
        "minidump": f"{api}/minidump/?sentry_key={public}",
        "nel": f"{api}/nel/?sentry_key={public}",
        "unreal": f"{api}/unreal/{public}/",
        "crons": f"{api}/cron/___MONITOR_SLUG___/{public}/",
        "cdn": f"{cdn_url}{public}.min.js",
        "playstation": f"{api}/playstation/?sentry_key={public}",
        "integration": f"{api}/integration/",
        "otlp_traces": f"{api}/integration/otlp/v1/traces",
        "otlp_logs": f"{api}/integration/otlp/v1/logs",
    }


def serialize_key(row: Row, context: KeyContext) -> dict[str, Any]:
    """A key row as Sentry's `Key` object."""
    data = key_data(row)
    loader = data.get("dynamicSdkLoaderOptions") or {}
    public, secret = row["public_key"], row["secret_key"]
    label = row["label"] or public[:14]
    count, window = row["rate_limit_count"], row["rate_limit_window"]
    base = context.relay_dsn_endpoint or context.ingest_url
    body: dict[str, Any] = {
        "id": public,
        "name": label,
        "label": label,
        "public": public,
        "secret": secret,
        "projectId": row["project_id"],
        "isActive": row["status"] == ACTIVE,
        "rateLimit": {"window": window, "count": count} if count and window else None,
        "dsn": dsn_urls(base, context.cdn_url, row["project_id"], public, secret),
        "browserSdkVersion": data.get("browserSdkVersion") or context.browser_sdk_version,
        "browserSdk": {"choices": [[v, v] for v in context.browser_sdk_choices]},
        "dateCreated": row["date_added"],
        "dynamicSdkLoaderOptions": {flag: bool(loader.get(flag, False)) for flag in LOADER_FLAGS},
    }
    if context.include_use_case:
        body["useCase"] = row["use_case"]
    return body


def serialize_organization_summary(row: Row, base_url: str, prefix: str = "") -> dict[str, Any]:
    """An organization row (its columns under `prefix`, as a project row carries them) as
    Sentry's organization summary. `links` name this server: Sentry's new CLI sends an
    organization's later requests to its `regionUrl`."""
    return {
        "id": str(row[f"{prefix}id"]),
        "slug": row[f"{prefix}slug"],
        "name": row[f"{prefix}name"],
        "dateCreated": row[f"{prefix}date_created"],
        "isEarlyAdopter": False,
        "require2FA": False,
        "status": {"id": "active", "name": "active"},
        "links": {"organizationUrl": base_url, "regionUrl": base_url},
        "avatar": {"avatarType": "letter_avatar", "avatarUuid": None},
    }


def serialize_organization(row: Row, base_url: str) -> dict[str, Any]:
    """An organization row as Sentry's organization (no features: none are served)."""
    return {**serialize_organization_summary(row, base_url), "features": []}


def serialize_project(row: Row, base_url: str) -> dict[str, Any]:
    """A project row with its organization's columns (`organization_*`) as Sentry's project."""
    return {
        "id": str(row["id"]),
        "slug": row["slug"],
        "name": row["name"],
        "platform": None,
        "dateCreated": row["date_created"],
        "isBookmarked": False,
        "isMember": True,
        "hasAccess": True,
        "status": "active",
        "features": [],
        "organization": serialize_organization_summary(row, base_url, "organization_"),
    }
