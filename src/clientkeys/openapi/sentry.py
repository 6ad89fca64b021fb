"""The error dialect of clientkeys' own spec: the mock refuses requests as the real server does.

Sentry's 400 field-error dicts for bodies (the wording of `validation.py`), its `cursor` and
`per_page` messages, its 401 messages with `WWW-Authenticate: xBasic realm="api"`, 403 for a
missing scope, and `{"detail": ...}` for everything else.
"""

from __future__ import annotations

from typing import Any

import orjson
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from clientkeys.core import pagination
from clientkeys.core.errors import NO_PERMISSION, NOT_FOUND, WWW_AUTHENTICATE, ClientKeysError
from clientkeys.core.sentry import (
    INVALID,
    field_errors,
    messages,
    odd_characters,
    token_from_header,
)
from clientkeys.openapi.asgi import ErrorDialect, _json
from clientkeys.openapi.operations import Operation
from clientkeys.openapi.requests import Incoming, Problem, UnsupportedMedia, media_type
from clientkeys.openapi.responses import Answer
from clientkeys.openapi.security import Denied


class SentryErrors(ErrorDialect):
    """Sentry's statuses and messages for the errors the mock makes itself."""

    def invalid(self, operation: Operation, problems: list[Problem], incoming: Incoming) -> Answer:
        """400: a parameter's `detail`, or the body's field-error dict."""
        parameter = next((p for p in problems if p.location != "body"), None)
        if parameter is not None:
            return _json(400, {"detail": self._parameter_message(parameter, incoming)})
        return _json(400, self._body_errors(operation, incoming))

    def _parameter_message(self, problem: Problem, incoming: Incoming) -> str:
        if problem.name == "cursor":
            return pagination.INVALID_CURSOR
        if problem.name == "per_page":
            value = next((v for k, v in incoming.query if k == "per_page"), "")
            try:
                pagination.check_per_page(int(value), 100)
            except ValueError:
                return pagination.INVALID_PER_PAGE
            except ClientKeysError as exc:
                return exc.detail
        return problem.describe()

    def _body_errors(self, operation: Operation, incoming: Incoming) -> Any:
        try:
            body = orjson.loads(incoming.body)
        except orjson.JSONDecodeError as exc:
            return {"detail": f"JSON parse error - {exc.msg}"}
        if not isinstance(body, dict):
            return {"non_field_errors": ["Invalid data. Expected a dictionary."]}
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
        return _json(
            405, {"detail": f'Method "{method}" not allowed.'}, {"Allow": ", ".join(allowed)}
        )

    def unsupported(self, error: UnsupportedMedia) -> Answer:
        """The real server's 415 wording."""
        return _json(
            415, {"detail": f'Unsupported media type "{media_type(error.media)}" in request.'}
        )
