"""A request's parameters and body, parsed as OpenAPI's styles say and checked against the spec.

Strings from the path, query, headers and cookies are coerced to what their schema asks for
(integers, booleans, arrays in every `style`, deep objects) before validation, so `?limit=5`
is the integer 5 and `?limit=five` names the parameter and says why. Each failure is a
`Problem`; the app turns the list into one response (`asgi.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from clientkeys.openapi.document import Document, escape
from clientkeys.openapi.operations import Operation, Parameter, Place
from clientkeys.openapi.schemas import Schemas, errors

DELIMITERS = {"simple": ",", "form": ",", "spaceDelimited": " ", "pipeDelimited": "|"}
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
UNKNOWN_PARAMETER = "is not a parameter of this operation"
_MISSING = object()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (`query`, `body`, ...), what, and why."""

    location: str
    name: str
    message: str
    value: Any = field(default=None, compare=False)
    """The offending value as it was read (coerced for a parameter), for violation records."""

    def describe(self) -> str:
        """One line: "query parameter 'limit': "five" is not of type "integer"."""
        if self.location == "body":
            return f"body{' at ' + self.name if self.name else ''}: {self.message}"
        return f"{self.location} parameter {self.name!r}: {self.message}"


@dataclass
class Incoming:
    """What the app read off the wire for one request."""

    path_values: Mapping[str, str]
    query: list[tuple[str, str]]
    headers: Mapping[str, str]  # lowercase names
    body: bytes


def media_type(header: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (header or "").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    """JSON and its `+json` relatives (`application/problem+json`)."""
    return media == "application/json" or media.endswith("+json") or media == "*/*"


def match_media(content: Mapping[str, Any], media: str) -> str | None:
    """The key of `content` a request's media type falls under (exact, `type/*`, `*/*`)."""
    lowered = {key.split(";")[0].strip().lower(): key for key in content}
    for candidate in (media, media.split("/")[0] + "/*", "*/*"):
        if candidate in lowered:
            return lowered[candidate]
    if media.endswith("+json") and "application/json" in lowered:
        return lowered["application/json"]
    return None


class Checker:
    """Parses and validates requests against one document."""

    def __init__(self, document: Document, schemas: Schemas) -> None:
        self.document = document
        self.schemas = schemas

    def problems(self, operation: Operation, incoming: Incoming) -> list[Problem]:
        """Everything wrong with a request, parameters first, then the body."""
        found: list[Problem] = []
        query = grouped(incoming.query)
        jar = cookies(incoming.headers.get("cookie", ""))
        for parameter in operation.parameters:
            if parameter.location == "header" and parameter.name.lower() in IGNORED_HEADERS:
                continue  # OpenAPI: these are described elsewhere (security, content, Accept)
            raw = self._raw(parameter, incoming, query, jar)
            if raw is _MISSING:
                if parameter.required:
                    found.append(Problem(parameter.location, parameter.name, "is required"))
                continue
            found += self._check_parameter(parameter, raw)
        if operation.body is not None:
            found += self._check_body(operation.body, incoming)
        return found

    def unknown_query(
        self, operation: Operation, incoming: Incoming, allowed: Iterable[str]
    ) -> list[Problem]:
        """A Problem for each query parameter neither the operation nor `allowed` (the names
        of query API keys) describes: what a strictly validating server refuses."""
        known = set(allowed)
        prefixes = []
        for parameter in operation.parameters:
            if parameter.location != "query":
                continue
            known.add(parameter.name)
            prefixes.append(parameter.name + "[")
            schema, uri, pointer = parameter.schema
            props = self._sub(schema, "properties", uri, pointer)[0]
            if parameter.explode and parameter.style == "form" and isinstance(props, dict):
                known.update(props)  # an exploded object's properties are query parameters
        return [
            Problem("query", name, UNKNOWN_PARAMETER, values[-1])
            for name, values in grouped(incoming.query).items()
            if name not in known and not name.startswith(tuple(prefixes))
        ]

    def _raw(
        self, parameter: Parameter, incoming: Incoming, query: dict[str, list[str]],
        cookies: dict[str, str],
    ) -> Any:  # fmt: skip
        name = parameter.name
        if parameter.location == "path":
            value = incoming.path_values.get(name)
            return _MISSING if value is None else unquote(value)
        if parameter.location == "query":
            if parameter.style == "deepObject":
                prefix = name + "["
                found = {
                    k[len(prefix) : -1]: v[-1]
                    for k, v in query.items()
                    if k.startswith(prefix) and k.endswith("]")
                }
                return found or _MISSING
            values = query.get(name)
            if values is None and parameter.explode and parameter.style == "form":
                return self._exploded_object(parameter, query)
            if values is None:
                return _MISSING
            return values if parameter.explode and len(values) > 1 else values[-1]
        if parameter.location == "header":
            return incoming.headers.get(name.lower(), _MISSING)
        if parameter.location == "cookie":
            return cookies.get(name, _MISSING)
        return _MISSING

    def _exploded_object(self, parameter: Parameter, query: dict[str, list[str]]) -> Any:
        """A `form`, `explode` object: each of its properties is a query parameter."""
        schema, uri, pointer = parameter.schema
        if "object" not in self._types(schema, uri, pointer):
            return _MISSING
        props = self._sub(schema, "properties", uri, pointer)[0]
        found = {k: v[-1] for k, v in query.items() if isinstance(props, dict) and k in props}
        return found or _MISSING

    def _check_parameter(self, parameter: Parameter, raw: Any) -> list[Problem]:
        schema, uri, pointer = parameter.schema
        if not pointer and not schema:
            return []
        if parameter.media is not None:
            try:
                value = orjson.loads(raw if isinstance(raw, str) else str(raw))
            except orjson.JSONDecodeError:
                return [Problem(parameter.location, parameter.name, "is not valid JSON", raw)]
        else:
            value = self.coerce(raw, schema, uri, pointer, parameter)
        validator = self.schemas.validator(uri, pointer)
        return [
            Problem(
                parameter.location, parameter.name + (f" at {where}" if where else ""), message,
                value,
            )
            for where, message in errors(validator, value)
        ]  # fmt: skip

    def _types(self, schema: Any, uri: str, pointer: str, depth: int = 0) -> list[str]:
        """The types a schema admits, looking through `$ref`, allOf, anyOf and oneOf."""
        schema, uri, pointer = self.document.resolve(schema, uri, pointer)
        if not isinstance(schema, dict) or depth > 8:
            return []
        declared = schema.get("type")
        if isinstance(declared, str):
            return [declared]
        if isinstance(declared, list):
            return [t for t in declared if isinstance(t, str)]
        found: list[str] = []
        for key in ("allOf", "anyOf", "oneOf"):
            for index, sub in enumerate(schema.get(key) or []):
                found += self._types(sub, uri, f"{pointer}/{key}/{index}", depth + 1)
        if not found and "enum" in schema:
            found = sorted({type(v).__name__ for v in schema["enum"]} & {"int", "float", "bool"})
            found = [{"int": "integer", "float": "number", "bool": "boolean"}[t] for t in found]
        return found

    def _sub(self, schema: Any, key: str, uri: str, pointer: str) -> tuple[Any, str, str]:
        schema, uri, pointer = self.document.resolve(schema, uri, pointer)
        if isinstance(schema, dict) and key in schema:
            return self.document.resolve(schema[key], uri, f"{pointer}/{key}")
        return {}, uri, pointer

    def coerce(
        self, raw: Any, schema: Any, uri: str, pointer: str, parameter: Parameter | None = None
    ) -> Any:
        """A parameter's string (or strings) as the value its schema describes."""
        types = self._types(schema, uri, pointer)
        if "array" in types:
            if isinstance(raw, list):
                items = raw
            else:
                delimiter = DELIMITERS.get(parameter.style if parameter else "form", ",")
                items = str(raw).split(delimiter) if raw != "" else []
            item = self._sub(schema, "items", uri, pointer)
            return [self.coerce(value, *item) for value in items]
        if isinstance(raw, list):
            raw = raw[-1]
        if "object" in types:
            pairs = raw if isinstance(raw, dict) else _pairs(str(raw), parameter)
            if pairs is not None:
                props = self._sub(schema, "properties", uri, pointer)[0]
                return {
                    k: self.coerce(v, *self._property(props, k, uri, pointer, schema))
                    for k, v in pairs.items()
                }
        return _scalar(str(raw), types)

    def _property(
        self, props: Any, name: str, uri: str, pointer: str, schema: Any
    ) -> tuple[Any, str, str]:
        schema, uri, pointer = self.document.resolve(schema, uri, pointer)
        if isinstance(props, dict) and name in props:
            return self.document.resolve(props[name], uri, f"{pointer}/properties/{name}")
        return {}, uri, pointer

    def _check_body(self, body: Place, incoming: Incoming) -> list[Problem]:
        node, uri, pointer = body
        content = node.get("content") or {}
        if not incoming.body:
            return [Problem("body", "", "is required")] if node.get("required") else []
        media = media_type(incoming.headers.get("content-type"))
        key = match_media(content, media) if content else None
        if content and key is None:
            raise UnsupportedMedia(media, list(content))
        entry = content.get(key) if key else None
        if key is None or not isinstance(entry, dict) or "schema" not in entry:
            return []
        place = self.document.resolve(
            entry["schema"], uri, f"{pointer}/content/{escape(key)}/schema"
        )
        value = self._body_value(media, incoming.body, place)
        if value is _MISSING:
            return []  # multipart and other media: accepted as sent
        if isinstance(value, Problem):
            return [value]
        validator = self.schemas.validator(place[1], place[2])
        failures = errors(validator, value, optional=self.document.read_only)
        return [Problem("body", where, message) for where, message in failures]

    def _body_value(self, media: str, raw: bytes, place: Place) -> Any:
        """A JSON or form body as data; a Problem if it does not parse; _MISSING otherwise."""
        if is_json(media):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                return Problem("body", "", f"is not valid JSON ({exc.msg.split(':')[0]})")
        if media != "application/x-www-form-urlencoded":
            return _MISSING
        schema, uri, pointer = place
        fields = grouped(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        props = self._sub(schema, "properties", uri, pointer)[0]
        return {
            k: self.coerce(
                v if len(v) > 1 else v[0], *self._property(props, k, uri, pointer, schema)
            )
            for k, v in fields.items()
        }


class UnsupportedMedia(Exception):
    """A body sent with a media type the operation does not take (415)."""

    def __init__(self, media: str, accepted: list[str]) -> None:
        super().__init__(
            f"Unsupported media type {media!r}; this operation takes {', '.join(accepted)}."
        )
        self.media = media


def _pairs(text: str, parameter: Parameter | None) -> dict[str, str] | None:
    """An object parameter's string: `a=1,b=2` (exploded) or `a,1,b,2`; None if neither."""
    if text == "":
        return {}
    if parameter is not None and parameter.explode and "=" in text:
        return dict(part.partition("=")[::2] for part in text.split(","))
    parts = text.split(",")
    if len(parts) % 2:
        return None
    return dict(zip(parts[::2], parts[1::2], strict=True))


def _scalar(raw: str, types: list[str]) -> Any:
    for kind in types:
        if kind == "integer":
            try:
                return int(raw)
            except ValueError:
                continue
        if kind == "number":
            try:
                number = float(raw)
            except ValueError:
                continue
            return (
                int(number)
                if number.is_integer() and "." not in raw and "e" not in raw.lower()
                else number
            )
        if kind == "boolean" and raw in ("true", "false"):
            return raw == "true"
        if kind == "null" and raw in ("", "null"):
            return None
        if kind == "string":
            return raw
    return raw


def grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Query pairs by name, every value kept in order."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def cookies(header: str) -> dict[str, str]:
    """A `Cookie` header's name=value pairs, percent-decoded."""
    found = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            found[name] = unquote(value)
    return found
