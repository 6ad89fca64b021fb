"""How the proxy words its refusals: our own spec as a validating clientkeys answers (Sentry's
dialect, plus serve's refusal of unknown query parameters), any other document with its
own documented errors (`asgi.DocumentedErrors`)."""

from __future__ import annotations

from pathlib import Path

import orjson

from clientkeys.core.sentry import unknown_query_parameters
from clientkeys.openapi.asgi import DocumentedErrors, ErrorDialect, _json
from clientkeys.openapi.operations import Operation
from clientkeys.openapi.requests import UNKNOWN_PARAMETER, Incoming, Problem
from clientkeys.openapi.responses import Answer
from clientkeys.openapi.sentry import SentryErrors


class ServeErrors(SentryErrors):
    """Sentry's dialect as serve speaks it, with unknown query parameters refused (serve
    validates strictly; the proxy finds them with the pipeline's `strict_query`)."""

    def invalid(self, operation: Operation, problems: list[Problem], incoming: Incoming) -> Answer:
        """Unknown query parameters first, then Sentry's."""
        unknown = [p.name for p in problems if p.message == UNKNOWN_PARAMETER]
        if unknown:
            return _json(400, {"detail": unknown_query_parameters(unknown)})
        return super().invalid(operation, problems, incoming)

    def refuse(self, operation: Operation, incoming: Incoming) -> Answer | None:
        """None: the proxy records each problem of a request itself (an unknown parameter, a
        type), which the mock's refusals in one answer would hide; the upstream words the rest."""
        return None

    def explain(self, operation: Operation, problem: Problem, incoming: Incoming) -> str:
        """The `detail` serve answers for this problem alone."""
        if problem.message == UNKNOWN_PARAMETER:
            return problem.message
        detail = orjson.loads(self.invalid(operation, [problem], incoming).body).get("detail")
        return detail if isinstance(detail, str) else problem.message


def dialect_for(spec_file: Path, own_spec: Path) -> type[ErrorDialect]:
    """Serve's words for our own spec; the document's documented errors for any other."""
    return ServeErrors if spec_file.resolve() == own_spec.resolve() else DocumentedErrors
