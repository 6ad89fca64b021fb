"""Compiled JSON Schema validators (jsonschema-rs), built once per schema, and orjson.

Connexion validates with python-jsonschema and builds a new validator for every request and
response. Here each schema of the spec is compiled once, on first use, into a jsonschema-rs
validator that accepts exactly what Connexion's validators accept: OpenAPI's `nullable` becomes
a JSON Schema `null` type, formats are checked where both sides check them.
A schema this translation cannot mirror exactly (`readOnly`/`writeOnly`, or a format not checked
by both) gets no compiled validator, and the caller keeps Connexion's path. A failure
on the fast path is always re-run on python-jsonschema, so error messages are unchanged.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import jsonschema_rs
import orjson
from jsonschema import Draft4Validator

SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
OPENAPI_ONLY = ("nullable", "x-nullable", "example", "discriminator", "xml", "externalDocs",
                "deprecated")  # fmt: skip
_PYTHON_FORMATS = frozenset(Draft4Validator.FORMAT_CHECKER.checkers)
_RUST_FORMATS = frozenset({"date-time", "date", "time", "email", "hostname", "ipv4", "ipv6",
                           "uri", "regex"})  # fmt: skip
_cache: dict[int, tuple[Any, Any]] = {}
_lock = threading.Lock()


def to_json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema (draft 4), `nullable` spelled as `null`."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in OPENAPI_ONLY or key.startswith("x-"):
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value)
    if schema.get("nullable") is True or schema.get("x-nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _mirrorable(schema: Any) -> bool:
    """Whether the compiled validator can accept exactly what Connexion's accepts."""
    if isinstance(schema, list):
        return all(_mirrorable(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("readOnly") or schema.get("writeOnly"):
        return False
    fmt = schema.get("format")
    if isinstance(fmt, str) and not (fmt in _PYTHON_FORMATS and fmt in _RUST_FORMATS):
        return False
    for key, value in schema.items():
        subschemas = value.values() if key in SCHEMA_MAPS and isinstance(value, dict) else [value]
        if not all(_mirrorable(sub) for sub in subschemas):
            return False
    return True


def validator_for(schema: Any) -> Any | None:
    """The compiled validator of a schema of the loaded spec, or None to keep Connexion's."""
    key = id(schema)
    cached = _cache.get(key)
    if cached is not None and cached[0] is schema:
        return cached[1]
    compiled = None
    if _mirrorable(schema):
        try:
            compiled = jsonschema_rs.Draft4Validator(to_json_schema(schema), validate_formats=True)
        except (ValueError, jsonschema_rs.ValidationError):
            compiled = None
    with _lock:
        _cache[key] = (schema, compiled)  # the schema is kept, so its id is never reused
    return compiled


def accepts(schema: Any, instance: Any) -> bool:
    """True when the compiled validator of `schema` accepts `instance`. False means "ask
    python-jsonschema": no compiled validator, a rejection, or a value jsonschema-rs cannot
    take (a lone surrogate)."""
    validator = validator_for(schema)
    if validator is None:
        return False
    try:
        return bool(validator.is_valid(instance))
    except (UnicodeEncodeError, ValueError, OverflowError):
        return False


def dumps(data: Any) -> bytes:
    """Compact JSON; falls back to ASCII escapes for strings orjson refuses (lone surrogates)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data).encode()
