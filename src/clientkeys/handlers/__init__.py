"""The routing table: one re-export per operationId (see `clientkeys.resolver` for the rule)."""

from clientkeys.handlers.project_keys import (
    create_a_new_client_key,
    list_a_projects_client_keys,
)

__all__ = [
    "create_a_new_client_key",
    "list_a_projects_client_keys",
]
