"""The one rule that maps Sentry's English operationIds to handler functions.

An operationId becomes its handler's name by lowercasing it, dropping every character that is
not a letter, digit or space, and joining the words with underscores:
"List a Project's Client Keys" -> `clientkeys.server.handlers.list_a_projects_client_keys`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

from connexion.resolver import RelativeResolver

from clientkeys.openapi.specs import operations


def handler_name(operation_id: str) -> str:
    """The snake_case handler name for an operationId."""
    return "_".join(re.sub(r"[^a-z0-9 ]", "", operation_id.lower()).split())


class OperationIdResolver(RelativeResolver):  # type: ignore[misc]
    """Connexion's RelativeResolver with the rule above applied to every operationId."""

    def resolve_operation_id(self, operation: Any) -> str:
        return f"{self.root_path}.{handler_name(operation.operation_id)}"


def check_handlers(spec: Mapping[str, Any], package: str) -> None:
    """Fail at startup, naming the function, if any operation of the spec has no handler."""
    module = importlib.import_module(package)
    for path, method, operation in operations(spec):
        operation_id = operation["operationId"]
        name = handler_name(operation_id)
        if not callable(getattr(module, name, None)):
            raise LookupError(
                f"{method.upper()} {path}: operationId {operation_id!r} has no handler "
                f"{package}.{name}"
            )


def handler_operations(spec: Mapping[str, Any], package: str) -> dict[str, str]:
    """Each operation's handler (as Connexion names the operation it routed to) -> the spec's
    operationId."""
    return {
        f"{package}.{handler_name(operation['operationId'])}": operation["operationId"]
        for _path, _method, operation in operations(spec)
    }
