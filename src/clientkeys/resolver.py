"""The one rule that maps Sentry's English operationIds to handler functions.

An operationId becomes its handler's name by lowercasing it, dropping every character that is
not a letter, digit or space, and joining the words with underscores:
"List a Project's Client Keys" -> `clientkeys.handlers.list_a_projects_client_keys`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from connexion.resolver import RelativeResolver


def handler_name(operation_id: str) -> str:
    """The snake_case handler name for an operationId."""
    return "_".join(re.sub(r"[^a-z0-9 ]", "", operation_id.lower()).split())


class OperationIdResolver(RelativeResolver):  # type: ignore[misc]
    """Connexion's RelativeResolver with the rule above applied to every operationId."""

    def resolve_operation_id(self, operation: Any) -> str:
        return f"{self.root_path}.{handler_name(operation.operation_id)}"


HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def check_handlers(spec: Mapping[str, Any], package: str) -> None:
    """Fail at startup, naming the function, if any operation of the spec has no handler."""
    module = importlib.import_module(package)
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                operation_id = item[method]["operationId"]
                name = handler_name(operation_id)
                if not callable(getattr(module, name, None)):
                    raise LookupError(
                        f"{method.upper()} {path}: operationId {operation_id!r} has no handler "
                        f"{package}.{name}"
                    )


def routes_of(specs: Iterable[Any]) -> dict[str, list[str]]:
    """Every served path template (base path included) with the methods it takes."""
    return {
        spec.base_path + path: [m.upper() for m in item if m in HTTP_METHODS]
        for spec in specs
        for path, item in spec["paths"].items()
    }
