"""Handlers of the test controls (`spec/admin.json`), named after its operationIds."""

from __future__ import annotations

from typing import Any

from clientkeys.server.handlers._request import get_db
from clientkeys.store import repository


def reset_the_store() -> tuple[dict[str, Any], int]:
    """POST /__admin/reset: back to the state the server started with (`--fixtures`)."""
    return repository.reset_store(get_db()), 200


def list_recent_requests(limit: int = 100) -> tuple[dict[str, Any], int]:
    """GET /__admin/requests: the newest journal entries, oldest first."""
    return {"requests": repository.list_requests(get_db(), limit)}, 200
