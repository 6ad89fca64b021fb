"""`clientkeys mock`: a stateless mock of any OpenAPI 3.0 spec, answered from its examples.

Requests get the real server's checks (strict request validation, bearer auth with scopes);
responses come from the spec. Each example is validated against its schema at start, and the
`Prefer` header picks a response the way Stoplight Prism reads it:

    Prefer: code=404                 that documented status
    Prefer: example=cursor           that named example of the chosen response
    Prefer: dynamic=true             data generated from the schema (valid against it)
    Prefer: delay=250                answer after 250 ms (timeout testing)

Several preferences combine: `Prefer: code=400, example=field, delay=100`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connexion import FlaskApp, request
from connexion.mock import MockResolver
from openapi_schema_validator import OAS30Validator

from clientkeys import connexion_hooks, openapi
from clientkeys.auth import InfoFunc, TokenInfo
from clientkeys.domain import SCOPES
from clientkeys.errors import BadRequest
from clientkeys.openapi import iter_examples
from clientkeys.server import Api, build_app

MAX_DELAY_MS = 60_000
GENERATION_TRIES = 25


class InvalidExample(ValueError):
    """An example in the spec does not match its schema; the message says where and why."""


# Examples --------------------------------------------------------------------------------


def check_examples(spec: Mapping[str, Any]) -> int:
    """Validate every example against its schema; returns how many there are."""
    count = 0
    for where, value, schema in iter_examples(spec):
        error = next(iter(OAS30Validator(schema).iter_errors(value)), None)
        if error is not None:
            raise InvalidExample(f"Invalid example at {where}: {error.message}")
        count += 1
    return count


# Choosing a response -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Prefer:
    """The mock-control preferences of a request's `Prefer` header."""

    code: str | None = None
    example: str | None = None
    dynamic: bool = False
    delay_ms: int = 0

    @classmethod
    def parse(cls, header: str | None) -> Prefer:
        values = dict(
            (name.strip().lower(), value.strip().strip('"'))
            for name, _, value in (
                part.partition("=") for part in re.split(r"[,;]", header or "") if "=" in part
            )
        )
        delay = values.get("delay", "0")
        if not delay.isdigit():
            raise BadRequest(f"Prefer delay must be milliseconds, got {delay!r}.")
        return cls(
            code=values.get("code"),
            example=values.get("example"),
            dynamic=values.get("dynamic", "").lower() == "true",
            delay_ms=min(int(delay), MAX_DELAY_MS),
        )


def generate(schema: Any) -> Any:
    """Data generated from a schema with jsf, retried until it validates against the schema."""
    from jsf import JSF

    validator = OAS30Validator(schema)
    for _ in range(GENERATION_TRIES):
        value = JSF(schema).generate()
        if validator.is_valid(value):
            return value
    raise BadRequest("Could not generate data valid against this response's schema.")


def _static_body(content: Mapping[str, Any], prefer: Prefer) -> Any:
    examples = content.get("examples") or {}
    if prefer.example is not None:
        if prefer.example not in examples:
            names = ", ".join(examples) or "none"
            raise BadRequest(f"No example {prefer.example!r} here; named examples: {names}.")
        return examples[prefer.example]["value"]
    if examples:
        return next(iter(examples.values()))["value"]
    if "example" in content:
        return content["example"]
    schema = content.get("schema", {})
    return schema["example"] if "example" in schema else generate(schema)


def _header_value(header: Mapping[str, Any], prefer: Prefer) -> str | None:
    schema = header.get("schema", {})
    if "example" in header:
        return str(header["example"])
    if "example" in schema:
        return str(schema["example"])
    if header.get("required"):
        return str(generate(schema))
    return None


def respond(operation: Mapping[str, Any], prefer: Prefer) -> tuple[Any, int, dict[str, str]]:
    """The response the mock gives for an operation: (body, status, headers)."""
    responses = operation["responses"]
    codes = [c for c in responses if c.isdigit()]
    if prefer.code is not None:
        if prefer.code not in responses:
            raise BadRequest(
                f"Prefer code={prefer.code} is not documented here; documented: {', '.join(codes)}."
            )
        status = prefer.code
    else:
        status = min((c for c in codes if c.startswith("2")), default=min(codes))
    response = responses[status]
    content = response.get("content", {})
    body = None
    if content:
        media = content.get("application/json") or next(iter(content.values()))
        body = generate(media.get("schema", {})) if prefer.dynamic else _static_body(media, prefer)
    headers = {}
    for name, header in response.get("headers", {}).items():
        value = _header_value(header, prefer)
        if value is not None:
            headers[name] = value
    return body, int(status), headers


# The app ---------------------------------------------------------------------------------------


class ExamplesResolver(MockResolver):  # type: ignore[misc]
    """Resolves every operation to the mock, which answers from the resolved spec."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(mock_all=True)
        self.spec = spec

    def mock_operation(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        spec_operation = self.spec["paths"][operation.path][operation.method.lower()]
        prefer = Prefer.parse(request.headers.get("Prefer"))
        if prefer.delay_ms:
            time.sleep(prefer.delay_ms / 1000)
        body, status, headers = respond(spec_operation, prefer)
        return body, status, headers


def token_info(tokens: Mapping[str, frozenset[str]] | None) -> InfoFunc:
    """Bearer checks over a fixed token list; None accepts any token, with every scope."""

    def info(token: str, request: Any = None) -> TokenInfo | None:
        scopes = frozenset(SCOPES) if tokens is None else tokens.get(token)
        if scopes is None:
            return None
        return {"sub": "mock", "organization_id": None, "scopes": scopes, "is_superuser": False}

    return info


def create_mock_app(
    spec_file: Path,
    tokens: Mapping[str, frozenset[str]] | None = None,
    max_body_bytes: int = 65536,
) -> FlaskApp:
    """The mock app for a spec; InvalidExample if any example contradicts its schema."""
    spec = openapi.load(spec_file)
    check_examples(spec)
    return build_app(
        [Api(spec, ExamplesResolver(spec))],
        security=connexion_hooks.bearer_handler(token_info(tokens)),
        validate_responses=True,
        max_body_bytes=max_body_bytes,
    )
