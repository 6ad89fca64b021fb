"""The routing table: one re-export per operationId (`server.resolver` has the rule)."""

from clientkeys.server.handlers.admin import list_recent_requests, reset_the_store
from clientkeys.server.handlers.project_keys import (
    create_a_new_client_key,
    delete_a_client_key,
    list_a_projects_client_keys,
    retrieve_a_client_key,
    update_a_client_key,
)

__all__ = [
    "create_a_new_client_key",
    "delete_a_client_key",
    "list_a_projects_client_keys",
    "list_recent_requests",
    "reset_the_store",
    "retrieve_a_client_key",
    "update_a_client_key",
]
