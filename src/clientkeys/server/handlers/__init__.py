"""The routing table: one re-export per operationId (`server.resolver` has the rule)."""

from clientkeys.server.handlers.admin import list_recent_requests, reset_the_store
from clientkeys.server.handlers.organizations import (
    list_an_organizations_client_keys,
    list_an_organizations_projects,
    list_your_organizations,
    list_your_projects,
    list_your_regions,
    retrieve_a_project,
    retrieve_an_organization,
    retrieve_the_api_index,
)
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
    "list_an_organizations_client_keys",
    "list_an_organizations_projects",
    "list_recent_requests",
    "list_your_organizations",
    "list_your_projects",
    "list_your_regions",
    "reset_the_store",
    "retrieve_a_client_key",
    "retrieve_a_project",
    "retrieve_an_organization",
    "retrieve_the_api_index",
    "update_a_client_key",
]
