"""The one rule that maps Sentry's English operationIds to handler functions.

An operationId becomes its handler's name by lowercasing it, dropping every character that is
not a letter, digit or space, and joining the words with underscores:
"List a Project's Client Keys" -> `clientkeys.handlers.list_a_projects_client_keys`.
"""

from __future__ import annotations

import re
from typing import Any

from connexion.resolver import RelativeResolver


def handler_name(operation_id: str) -> str:
    """The snake_case handler name for an operationId."""
    return "_".join(re.sub(r"[^a-z0-9 ]", "", operation_id.lower()).split())


class OperationIdResolver(RelativeResolver):  # type: ignore[misc]
    """Connexion's RelativeResolver with the rule above applied to every operationId."""

    def resolve_operation_id(self, operation: Any) -> str:
        return f"{self.root_path}.{handler_name(operation.operation_id)}"
