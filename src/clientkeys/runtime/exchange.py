"""What one request did, filled in by the layers it passes: its id, the operation it was routed
to, the token that authenticated it, and whether it passed validation. The access log, the
metrics and the journal read it once the response has left.

The outermost middleware (`access.AccessMiddleware`) puts an `Exchange` into the ASGI scope and
into a context variable; inner layers that know something write it there. Connexion hands inner
middlewares shallow copies of the scope, so they fill in the object, never scope keys.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCOPE_KEY = "clientkeys.exchange"


@dataclass
class Exchange:
    """One request and its response, as far as the layers it passed have told."""

    request_id: str
    method: str
    path: str
    operation_id: str | None = None
    """The spec's operationId, once routing has matched one."""
    token_id: str | None = None
    """Who authenticated, never the token itself: `token:<id>` for a stored token (its row id,
    as `clientkeys token create` made it), `admin` for the test controls' token."""
    validated: bool = False
    """Authentication and request validation passed: the request reached its handler."""
    ops: bool = False
    """Answered by an operations endpoint (docs, health, metrics), outside the API."""
    status: int = 500
    arrived: float = field(default_factory=time.monotonic)
    """When the request arrived (time.monotonic): a write's wait for the database lock counts
    from here, its wait for a handler thread included (`store.sqlite`)."""

    @property
    def validation_failed(self) -> bool:
        """Routed to an operation, refused before its handler for what it sent (not for who
        sent it): a 4xx other than 401, 403 and 405."""
        return (
            self.operation_id is not None
            and not self.validated
            and 400 <= self.status < 500
            and self.status not in (401, 403, 405)
        )


current: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "clientkeys_exchange", default=None
)
"""The exchange being served on this task (log records read the request id from it)."""


def of(scope: Mapping[str, Any]) -> Exchange | None:
    """The exchange of a request's scope, if an `AccessMiddleware` is in front."""
    found: Exchange | None = scope.get(SCOPE_KEY)
    return found
