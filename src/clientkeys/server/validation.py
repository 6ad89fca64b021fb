"""Validation that keeps the spec's checks but speaks Sentry's error messages.

The spec still decides what is valid; this module decides how a failure reads (Sentry's
field-error dicts and `detail` messages), and checks each schema with a validator compiled
once instead of once per request. `connexion_hooks` plugs the body checks into Connexion's
validators; the query-parameter validator only overrides Connexion's public methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from connexion.exceptions import ExtraParameterProblem, NonConformingResponseBody
from connexion.json_schema import Draft4RequestValidator
from connexion.lifecycle import ConnexionRequest
from connexion.utils import is_null, is_nullable
from connexion.validators import ParameterValidator
from jsonschema import Draft4Validator
from starlette.datastructures import QueryParams

from clientkeys.core import sentry
from clientkeys.core.errors import BadRequest, FieldErrors, UnsupportedMediaType
from clientkeys.core.sentry import field_errors, messages, odd_characters
from clientkeys.openapi import compiled

EMPTY = object()
"""What `parse_body` returns for a request without a body (distinct from a JSON `null`)."""


_python_validators: dict[int, tuple[Any, Draft4Validator]] = {}


def python_validator(schema: Any) -> Draft4Validator:
    """Connexion's own validator for a request schema, built once per schema (for messages)."""
    cached = _python_validators.get(id(schema))
    if cached is None or cached[0] is not schema:
        validator = Draft4RequestValidator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)
        cached = _python_validators[id(schema)] = (schema, validator)  # the schema is kept
    return cached[1]


def parse_body(raw: bytes, headers: Iterable[tuple[bytes, bytes]]) -> Any:
    """A request's JSON body, `EMPTY` when there is none; Sentry's 400 for one that does not
    parse, 415 for a body without a Content-Type."""
    if not raw:
        return EMPTY
    if not any(name == b"content-type" for name, _ in headers):
        raise UnsupportedMediaType(sentry.unsupported_media_type(""))
    return sentry.parse_json(raw)


def check_body(schema: Any, body: Any) -> None:
    """Sentry's field-error dict (FieldErrors) for a body the schema rejects; no body is `{}`.

    A body the compiled validator accepts is valid; any other is re-checked with Connexion's
    validator, for the messages."""
    if body is EMPTY:
        return
    if not isinstance(body, dict):
        raise FieldErrors(sentry.not_a_dictionary(body))
    pairs = list(odd_characters(body, schema.get("properties", {})))
    if not compiled.accepts(schema, body):
        pairs += [m for e in python_validator(schema).iter_errors(body) for m in messages(e)]
    if pairs:
        raise FieldErrors(field_errors(pairs))


def parse_response(raw: bytes) -> Any:
    """A response's JSON body (orjson), None when empty."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NonConformingResponseBody(str(exc)) from None


def response_needs_python_check(method: str | None, schema: Any, body: Any) -> bool:
    """Whether Connexion's own response validator must look at this body: not for HEAD (no
    body by definition; headers are still checked), nor when the compiled validator accepts."""
    return method != "HEAD" and not compiled.accepts(schema, body)


def _raw_query(request: ConnexionRequest) -> QueryParams:
    """The query parameters as written (Connexion's `query_params` are already coerced)."""
    parsed: QueryParams | None = request.scope.get(_RAW_QUERY)
    if parsed is None:
        parsed = request.scope[_RAW_QUERY] = QueryParams(request.scope.get("query_string", b""))
    return parsed


_RAW_QUERY = "clientkeys.raw_query"


class SentryParameterValidator(ParameterValidator):  # type: ignore[misc]
    """Query parameters: Sentry's messages for `cursor`, `per_page` and names the operation
    lacks (`core.sentry`); compiled checks; integers only in plain ASCII digits."""

    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None
    ) -> Any:
        if value is not None and not (is_nullable(param) and is_null(value)):
            if compiled.accepts(param.get("schema", param), value):
                return None
        return ParameterValidator.validate_parameter(parameter_type, value, param, param_name)

    def validate_request(self, request: ConnexionRequest) -> None:
        """Connexion's checks, with Sentry's words for query parameters the operation lacks."""
        try:
            super().validate_request(request)
        except ExtraParameterProblem:
            extra = ParameterValidator.validate_query_parameter_list(
                self, request, self.security_query_params
            )
            raise BadRequest(sentry.unknown_query_parameters(extra)) from None

    def validate_query_parameter(self, param: dict[str, Any], request: ConnexionRequest) -> Any:
        name = param["name"]
        error = super().validate_query_parameter(param, request)
        # Connexion checks the value it reads (the last one when repeated); so does this.
        values = _raw_query(request).getlist(name)
        written = values[-1] if values else None
        if not error and written is not None and param.get("schema", {}).get("type") == "integer":
            error = sentry.not_an_integer(name, written)
        if not error:
            return None
        maximum = param.get("schema", {}).get("maximum", 100)
        return sentry.parameter_message(name, written or "", maximum, error)
