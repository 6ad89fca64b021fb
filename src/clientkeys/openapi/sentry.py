"""The error dialect of clientkeys' own spec: the mock refuses requests as the real server does.

Every word comes from `core.sentry` (serve's validation speaks through it too): Sentry's 400
field-error dicts for bodies, its `cursor` and `per_page` messages, its 401 messages with
`WWW-Authenticate: xBasic realm="api"`, 403 for a missing scope, and `{"detail": ...}` for
everything else. `refuse` adds what serve refuses and the engine's checks let through, in
serve's order (security, then query parameters, then the body's media type and content);
`tests/test_parity.py` holds the mock and serve to the same status and body.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from clientkeys.core.errors import NO_PERMISSION, NOT_FOUND, WWW_AUTHENTICATE, ClientKeysError
from clientkeys.core.sentry import (
    INVALID,
    field_errors,
    messages,
    method_not_allowed,
    not_a_dictionary,
    not_an_integer,
    odd_characters,
    parameter_message,
    parse_json,
    token_from_header,
    unknown_query_parameters,
    unsupported_media_type,
)
from clientkeys.openapi.asgi import ErrorDialect, _json
from clientkeys.openapi.operations import Operation, Parameter
from clientkeys.openapi.requests import Checker, Incoming, Problem, UnsupportedMedia, media_type
from clientkeys.openapi.responses import Answer, Prefer
from clientkeys.openapi.security import Denied


class SentryErrors(ErrorDialect):
    """Sentry's statuses and messages for the errors the mock makes itself."""

    def refuse(self, operation: Operation, incoming: Incoming) -> Answer | None:
        """What serve refuses that the engine lets through: a malformed `Authorization` header
        (without a token list the engine takes any bearer value), query parameters the
        operation does not define, integers not written in ASCII digits (`int` takes " 1"),
        and a body media type the operation does not list (the engine takes `+json` ones)."""
        if operation.security:
            try:
                token_from_header(incoming.headers.get("authorization"))
            except ClientKeysError as exc:
                return _json(401, {"detail": exc.detail}, WWW_AUTHENTICATE)
        query = [p for p in operation.parameters if p.location == "query"]
        sent = {name for name, _ in incoming.query}
        if extra := sent - {p.name for p in query}:
            return _json(400, {"detail": unknown_query_parameters(extra)})
        unwritten = [
            Problem("query", p.name, message)
            for p in query
            if p.name in sent and _is_integer(p)
            and (message := not_an_integer(p.name, _written(incoming, p.name)))
        ]  # fmt: skip
        if unwritten:
            return self.invalid(operation, self._in_order(operation, incoming, unwritten), incoming)
        return self._unsupported(operation, incoming)

    def _in_order(
        self, operation: Operation, incoming: Incoming, extra: list[Problem]
    ) -> list[Problem]:
        """The checker's problems and `extra` ones, parameters in the operation's order, as
        serve checks them (its first failing parameter is the one it names)."""
        problems = self._checker.problems(operation, incoming) + extra
        order = {p.name: index for index, p in enumerate(operation.parameters)}
        return sorted(problems, key=lambda p: order.get(p.name.split(" ")[0], len(order)))

    @cached_property
    def _checker(self) -> Checker:
        return Checker(self.responder.document, self.responder.schemas)

    def _unsupported(self, operation: Operation, incoming: Incoming) -> Answer | None:
        """415 for a Content-Type the operation's body does not list, body or not (serve
        checks the header, an empty one too, before it reads the body)."""
        header = incoming.headers.get("content-type")
        if operation.body is None or header is None:
            return None
        media = media_type(header)
        content = list(operation.body[0].get("content") or {})
        if content and media not in {media_type(key) for key in content}:
            return self.unsupported(UnsupportedMedia(media, content))
        return None

    def invalid(self, operation: Operation, problems: list[Problem], incoming: Incoming) -> Answer:
        """400: a parameter's `detail`, or the body's field-error dict. A body only the engine's
        JSON parser refuses (`1e400` or a lone surrogate in a field the schema does not name)
        is valid to serve, so it gets the answer a valid request gets."""
        parameter = next((p for p in problems if p.location != "body"), None)
        if parameter is not None:
            return _json(400, {"detail": self._parameter_message(operation, parameter, incoming)})
        errors = self._body_errors(operation, incoming)
        if errors:
            return _json(400, errors)
        prefer = Prefer.parse(incoming.headers.get("prefer"))
        return self.responder.answer(operation, prefer, incoming.headers.get("accept"))

    def _parameter_message(self, operation: Operation, problem: Problem, incoming: Incoming) -> str:
        found = next((p for p in operation.parameters if p.name == problem.name), None)
        schema = found.schema[0] if found is not None else {}
        maximum = schema.get("maximum", 100) if isinstance(schema, dict) else 100
        written = _written(incoming, problem.name)
        return parameter_message(problem.name, written, maximum, problem.describe())

    def _body_errors(self, operation: Operation, incoming: Incoming) -> Any:
        try:
            body = parse_json(incoming.body)
        except ClientKeysError as exc:
            return {"detail": exc.detail}
        if not isinstance(body, dict):
            return not_a_dictionary(body)
        node, uri, pointer = operation.body  # type: ignore[misc]
        media = next(iter(node.get("content") or {}), "application/json")
        schema = node["content"][media]["schema"]
        resolved, s_uri, s_pointer = self.responder.document.resolve(
            schema, uri, f"{pointer}/content/{media.replace('/', '~1')}/schema"
        )
        pairs = list(odd_characters(body, resolved.get("properties", {})))
        pairs += [m for e in self._python(s_uri, s_pointer).iter_errors(body) for m in messages(e)]
        return field_errors(pairs)

    def _python(self, uri: str, pointer: str) -> Draft4Validator:
        """python-jsonschema over the same document, for Sentry's (DRF's) wording."""
        files = self.responder.document.files
        registry: Registry[Any] = Registry().with_resources(
            (file_uri, Resource.from_contents(content, default_specification=DRAFT4))
            for file_uri, content in files.items()
        )
        return Draft4Validator({"$ref": f"{uri}#{pointer}"}, registry=registry,
                               format_checker=Draft4Validator.FORMAT_CHECKER)  # fmt: skip

    def denied(self, operation: Operation, denied: Denied, incoming: Incoming) -> Answer:
        """Sentry's 401 messages (and challenge) or its 403."""
        if denied.status == 403:
            return _json(403, {"detail": NO_PERMISSION})
        try:
            token_from_header(incoming.headers.get("authorization"))
            detail = INVALID
        except ClientKeysError as exc:
            detail = exc.detail
        return _json(401, {"detail": detail}, WWW_AUTHENTICATE)

    def not_found(self, method: str, path: str) -> Answer:
        """Sentry's 404."""
        return _json(404, {"detail": NOT_FOUND})

    def not_allowed(self, method: str, allowed: list[str]) -> Answer:
        """The real server's 405 wording."""
        return _json(405, {"detail": method_not_allowed(method)}, {"Allow": ", ".join(allowed)})

    def unsupported(self, error: UnsupportedMedia) -> Answer:
        """The real server's 415 wording."""
        return _json(415, {"detail": unsupported_media_type(media_type(error.media))})


def _written(incoming: Incoming, name: str) -> str:
    """A query parameter's value as serve reads it: the last one when repeated."""
    values = [value for key, value in incoming.query if key == name]
    return values[-1] if values else ""


def _is_integer(parameter: Parameter) -> bool:
    declared = parameter.schema[0].get("type") if isinstance(parameter.schema[0], dict) else None
    return declared == "integer" or (isinstance(declared, list) and "integer" in declared)
