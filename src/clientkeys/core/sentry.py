"""Sentry's wording: the messages its API answers bad input with, as public functions.

Serve (`server.validation`, `server.auth`, `server.rendering`), the mock and the proxy's
enforce mode of our own spec (`openapi.sentry`) all speak through this module, so one bad
request reads the same whichever tool refuses it (`tests/test_parity.py` holds them to it).
Pure: raw bodies, query values and jsonschema's errors in, strings and field-error dicts out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from jsonschema import ValidationError

from clientkeys.core import pagination
from clientkeys.core.errors import BadRequest, ClientKeysError, NotAuthenticated

NO_TOKEN = "Invalid token header. No credentials provided."
SPACES = "Invalid token header. Token string should not contain spaces."
INVALID = "Invalid token"

_PY_TYPES = {
    "string": "Not a valid string.",
    "integer": "A valid integer is required.",
    "boolean": "Must be a valid boolean.",
    "number": "A valid number is required.",
}


def field_errors(pairs: Iterable[tuple[tuple[str, ...], str]]) -> dict[str, Any]:
    """Fold `(path, message)` pairs into Sentry's nested field-error dict."""
    errors: dict[str, Any] = {}
    for path, message in pairs:
        if len(path) <= 1:
            messages = errors.setdefault(path[0] if path else "non_field_errors", [])
        else:
            nested = errors.setdefault(path[0], {})
            if isinstance(nested, list):  # the field already failed as a whole
                continue
            messages = nested.setdefault(path[1], [])
        if message not in messages:
            messages.append(message)
    return errors


def expected_dict(instance: Any) -> str:
    return f"Invalid data. Expected a dictionary, but got {type(instance).__name__}."


def parse_json(raw: bytes) -> Any:
    """A JSON body as Sentry (DRF's strict JSONParser) reads it, or its 400 naming why not.
    Python's json as DRF calls it: lone surrogates and `1e400` parse (and are refused later,
    by field), `NaN` and `Infinity` do not."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_strict_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest(f"JSON parse error - {exc}") from None


def _strict_constant(constant: str) -> Any:
    raise ValueError(f"Out of range float values are not JSON compliant: {constant!r}")


def not_a_dictionary(body: Any) -> dict[str, list[str]]:
    """The field-error dict for a JSON body that is not an object (`null` is no data)."""
    return {"non_field_errors": ["No data provided" if body is None else expected_dict(body)]}


def messages(error: ValidationError) -> Iterator[tuple[tuple[str, ...], str]]:
    """Sentry's (DRF's) wording for one JSON Schema failure, with the field path it names."""
    path = tuple(str(p) for p in error.absolute_path)
    keyword, value, instance = error.validator, _one_type(error.validator_value), error.instance
    if keyword == "anyOf" and error.context:
        # The first alternative is the real type ("" is only an alias for null there).
        first = [e for e in error.context if e.schema_path and e.schema_path[0] == 0]
        for sub in first or error.context[:1]:
            yield from messages(sub)
        return
    if keyword == "type" and isinstance(value, list):  # 3.0's `nullable`, as the engine spells it
        value = next((kind for kind in value if kind != "null"), value)
    if keyword == "type" and instance is None:
        yield path, "This field may not be null."
    elif keyword == "type" and value == "object":
        yield (*path, "non_field_errors"), expected_dict(instance)
    elif keyword == "type":
        yield path, _PY_TYPES.get(str(value), f"Expected {value}.")
    elif keyword == "maxLength":
        yield path, f"Ensure this field has no more than {value} characters."
    elif keyword == "minimum":
        yield path, f"Ensure this value is greater than or equal to {value}."
    elif keyword == "maximum":
        yield path, f"Ensure this value is less than or equal to {value}."
    elif keyword == "enum":
        yield path, f'"{instance}" is not a valid choice.'
    elif keyword == "required":
        yield (*path, _missing(error)), "This field is required."
    elif keyword == "pattern" and isinstance(instance, str) and "\x00" in instance:
        yield path, "Null characters are not allowed."
    elif keyword == "pattern":
        yield path, "This value does not match the required pattern."
    else:
        yield path, error.message


def _one_type(value: Any) -> Any:
    """`["string", "null"]` (OpenAPI 3.0's `nullable` as the spec engine reads it) is "string"
    to Sentry: null gets its own message, so a failure names the other type."""
    if isinstance(value, list):
        types = [t for t in value if t != "null"]
        return types[0] if len(types) == 1 else value
    return value


def _missing(error: ValidationError) -> str:
    """The property a `required` failure names."""
    required = error.validator_value
    present = error.instance if isinstance(error.instance, dict) else {}
    return next((str(name) for name in required if name not in present), str(required[0]))


def odd_characters(body: dict[str, Any], stored: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """Strings that would be stored but SQLite and Sentry refuse: NUL bytes and lone
    surrogates (from `\\ud800` escapes). Fields the schema does not name are never stored."""
    for name in stored:
        value = body.get(name)
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            yield (name,), "Null characters are not allowed."
        surrogate = next((c for c in value if "\ud800" <= c <= "\udfff"), None)
        if surrogate is not None:
            yield (name,), f"Surrogate characters are not allowed: U+{ord(surrogate):X}."


def token_from_header(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or Sentry's 401."""
    if not authorization:
        raise NotAuthenticated()
    parts = authorization.split()
    if not parts or parts[0].lower() != "bearer":
        raise NotAuthenticated()
    if len(parts) == 1:
        raise NotAuthenticated(NO_TOKEN)
    if len(parts) > 2:
        raise NotAuthenticated(SPACES)
    return parts[1]


INTEGER = re.compile(r"-?[0-9]+")
"""An integer parameter as written: Python's `int` also takes " 1", "1_0" and "١"."""


def not_an_integer(name: str, written: str) -> str | None:
    """None for an integer query value written in plain ASCII digits, else why not."""
    return None if INTEGER.fullmatch(written) else f"{name}: {written!r} is not an integer"


def parameter_message(name: str, written: str, maximum: int, fallback: str) -> str:
    """Sentry's `detail` for a query parameter that fails its schema (`written` is the value
    read, the last one when repeated); `fallback` for one Sentry has no words for."""
    if name == "cursor":
        return pagination.INVALID_CURSOR
    if name != "per_page":
        return fallback
    if not INTEGER.fullmatch(written):
        return pagination.INVALID_PER_PAGE
    try:
        pagination.check_per_page(int(written), maximum)
    except ClientKeysError as exc:
        return exc.detail
    return fallback


def unknown_query_parameters(names: Iterable[str]) -> str:
    """The 400 for query parameters the operation does not define (sorted: one wording)."""
    return f"Extra query parameter(s) {','.join(sorted(names))} not in spec"


def method_not_allowed(method: str) -> str:
    """The 405's `detail`."""
    return f'Method "{method}" not allowed.'


def unsupported_media_type(media_type: str) -> str:
    """The 415's `detail`, naming the media type sent (lower case, without parameters)."""
    return f'Unsupported media type "{media_type}" in request.'
