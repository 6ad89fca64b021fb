"""What the mock answers: the status and example the `Prefer` header asks for, always valid.

The answer is the lowest documented 2xx (or what `Prefer: code=` names), in the media type
the client accepts (JSON first), with the first example of that response. Every body is
validated against its documented schema before it is sent: an example that does not match
is replaced by data generated from the schema, and generated data that does not match is
pruned of the optional parts that fail, or generated again without the schema's own
examples. A body that still cannot be made valid is never sent (`Unmockable`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from clientkeys.openapi.document import Document, escape
from clientkeys.openapi.generate import Generator
from clientkeys.openapi.operations import Index, Operation
from clientkeys.openapi.requests import is_json
from clientkeys.openapi.schemas import Example, Schemas, errors

MAX_DELAY_MS = 10_000
PRUNE_ROUNDS = 8
DYNAMIC_TRIES = 5


class PreferError(ValueError):
    """A `Prefer` header asking for something the operation does not document (400)."""


class Unmockable(RuntimeError):
    """No body valid against the documented schema could be made for this response."""


@dataclass(frozen=True)
class Prefer:
    """The mock-control preferences of a request's `Prefer` header, as Prism reads them."""

    code: str | None = None
    example: str | None = None
    dynamic: bool = False
    delay_ms: int = 0

    @classmethod
    def parse(cls, header: str | None) -> Prefer:
        """`code=404, example="cursor"; dynamic=true, delay=250`; delay capped at MAX_DELAY_MS."""
        values = dict(
            (name.strip().lower(), value.strip().strip('"'))
            for name, _, value in (
                part.partition("=") for part in re.split(r"[,;]", header or "") if "=" in part
            )
        )
        delay = values.get("delay", "0")
        if not delay.isdigit():
            raise PreferError(f"Prefer delay must be milliseconds, got {delay!r}.")
        return cls(
            code=values.get("code"),
            example=values.get("example"),
            dynamic=values.get("dynamic", "").lower() == "true",
            delay_ms=min(int(delay), MAX_DELAY_MS),
        )


@dataclass
class Answer:
    """A response ready to send."""

    status: int
    body: bytes = b""
    media: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def status_of(responses: Mapping[str, Any], code: str | None) -> str:
    """The response key to answer with: `code` if documented (or its `2XX` range, or
    `default`), else the lowest 2xx, else the lowest documented status."""
    if code is not None:
        for key in (code, code[:1] + "XX", code[:1] + "xx"):
            if key in responses:
                return key
        if "default" in responses and code.isdigit():
            return "default"
        documented = ", ".join(responses) or "none"
        raise PreferError(f"Prefer code={code} is not documented here; documented: {documented}.")
    keys = sorted(k for k in responses if k[:1] == "2")
    if keys:
        return keys[0]
    numeric = sorted(k for k in responses if k[:1].isdigit())
    if numeric:
        return numeric[0]
    if "default" in responses:
        return "default"
    raise Unmockable("The operation documents no response.")


def numeric_status(key: str, code: str | None) -> int:
    """The HTTP status for a response key: `2XX` is 200 (or the asked code), default 200."""
    if key.isdigit():
        return int(key)
    if code is not None and code.isdigit():
        return int(code)
    return int(key[0]) * 100 if key[:1].isdigit() else 200


def choose_media(content: Mapping[str, Any], accept: str | None) -> str | None:
    """The media type to answer in: the first the client accepts, JSON preferred."""
    if not content:
        return None
    keys = list(content)
    wanted = [
        part.split(";")[0].strip().lower() for part in (accept or "").split(",") if part.strip()
    ]
    for want in wanted:
        if want in ("*/*", ""):
            break
        for key in keys:
            low = key.lower()
            if low == want or (want.endswith("/*") and low.startswith(want[:-1])):
                return key
    return next((k for k in keys if is_json(k.lower()) and k != "*/*"), keys[0])


class Responder:
    """Makes answers for the operations of one document, caching each static body."""

    def __init__(self, document: Document, schemas: Schemas) -> None:
        self.document = document
        self.schemas = schemas
        self.static = Generator(document, schemas=schemas)
        self.plain = Generator(document, use_examples=False, schemas=schemas)
        self._bodies: dict[tuple[str, str, str, str | None], bytes] = {}

    def answer(self, operation: Operation, prefer: Prefer, accept: str | None) -> Answer:
        """The response to a valid request."""
        if not operation.responses and prefer.code is None:
            return Answer(200)  # OpenAPI 3.1 lets an operation document no response
        key = status_of(operation.responses, prefer.code)
        response, uri, pointer = operation.responses[key]
        status = numeric_status(key, prefer.code)
        content = response.get("content") or {}
        media = choose_media(content, accept) if isinstance(content, dict) else None
        answer = Answer(status=status, media=media, headers=self.headers(response, uri, pointer))
        if media is not None:
            at = f"{pointer}/content/{escape(media)}"
            entry = content[media] if isinstance(content[media], dict) else {}
            answer.body = self.body(entry, uri, at, prefer, media)
        return answer

    def body(
        self, entry: dict[str, Any], uri: str, pointer: str, prefer: Prefer, media: str
    ) -> bytes:
        """The serialized body of one media type of one response."""
        examples = self._examples(entry, uri, pointer)
        if prefer.example is not None and prefer.example not in examples:
            names = ", ".join(examples) or "none"
            raise PreferError(f"No example {prefer.example!r} here; named examples: {names}.")
        if prefer.dynamic and "schema" in entry:
            dynamic = self._dynamic(entry, uri, pointer, media)
            if dynamic is not None:
                return dynamic
        cache_key = (uri, pointer, media, prefer.example)
        cached = self._bodies.get(cache_key)
        if cached is None:
            cached = self._bodies[cache_key] = self._static(
                entry, (uri, pointer, media), examples, prefer.example
            )
        return cached

    def _examples(self, entry: dict[str, Any], uri: str, pointer: str) -> dict[str, Any]:
        named = {}
        for name, example in (entry.get("examples") or {}).items():
            node = self.document.resolve(example, uri, f"{pointer}/examples/{escape(name)}")[0]
            if isinstance(node, dict) and "value" in node:
                named[name] = node["value"]
        return named

    def _static(
        self,
        entry: dict[str, Any],
        at: tuple[str, str, str],
        examples: dict[str, Any],
        name: str | None,
    ) -> bytes:
        """The first example the schema accepts, else generated data it accepts."""
        uri, pointer, media = at
        candidates: list[Any] = []
        if name is not None:
            candidates.append(examples[name])
        candidates += list(examples.values())
        if "example" in entry:
            candidates.append(entry["example"])
        schema = entry.get("schema")
        if schema is None:
            return _serialize(candidates[0], media) if candidates else b""
        place = self.document.resolve(schema, uri, f"{pointer}/schema")
        validator = self.schemas.validator(place[1], place[2])
        for candidate in candidates:
            if validator.is_valid(candidate):
                return _serialize(candidate, media)
        for generator in (self.static, self.plain):
            made = valid_value(generator.value(*place), validator)
            if made is not INVALID:
                return _serialize(made, media)
        where = self.document.where(uri, pointer)
        raise Unmockable(f"No body valid against the schema at {where} could be made.")

    def _dynamic(self, entry: dict[str, Any], uri: str, pointer: str, media: str) -> bytes | None:
        place = self.document.resolve(entry["schema"], uri, f"{pointer}/schema")
        validator = self.schemas.validator(place[1], place[2])
        generator = Generator(self.document, rng=random.Random(), schemas=self.schemas)
        for _ in range(DYNAMIC_TRIES):
            made = valid_value(generator.value(*place), validator)
            if made is not INVALID:
                return _serialize(made, media)
        return None

    def headers(self, response: dict[str, Any], uri: str, pointer: str) -> dict[str, str]:
        """Documented response headers, from their examples (required ones generated)."""
        found = {}
        for name, header in (response.get("headers") or {}).items():
            node, h_uri, h_pointer = self.document.resolve(
                header, uri, f"{pointer}/headers/{escape(name)}"
            )
            if not isinstance(node, dict) or name.lower() == "content-type":
                continue
            value = _header_example(node, self.document, h_uri, h_pointer)
            if value is None and node.get("required") and "schema" in node:
                value = self.static.value(node["schema"], h_uri, f"{h_pointer}/schema")
            if value is not None:
                found[name] = (
                    value if isinstance(value, str) else orjson.dumps(value).decode().strip('"')
                )
        return found


INVALID = object()
"""What `valid_value` returns when no valid value could be made."""


def valid_value(value: Any, validator: Any) -> Any:
    """`value` if valid, pruned of the optional parts that fail if that makes it valid."""
    for _ in range(PRUNE_ROUNDS):
        failing = _failing_places(validator, value)
        if not failing:
            return value
        if not any([_prune(value, where) for where in failing]):
            return INVALID
    return value if validator.is_valid(value) else INVALID


def _serialize(value: Any, media: str) -> bytes:
    """JSON for JSON media; a string as it is for any other (text, XML, CSV); else nothing."""
    if is_json(media.lower()):
        try:
            return orjson.dumps(value)
        except TypeError:
            return orjson.dumps(str(value))
    if isinstance(value, str):
        return value.encode()
    return b""  # no example string: a non-JSON body is not generated from a schema


def _failing_places(validator: Any, value: Any, limit: int = 50) -> list[str]:
    """JSON Pointers of what fails: the value at each error, or each unexpected property."""
    places = []
    for error in validator.iter_errors(value):
        where = "".join(f"/{escape(str(step))}" for step in error.instance_path)
        unexpected = error.kind.as_dict().get("unexpected")
        places += [f"{where}/{escape(str(p))}" for p in unexpected] if unexpected else [where]
        if len(places) >= limit:
            break
    return sorted(set(places), key=lambda p: -p.count("/"))


def _prune(value: Any, where: str) -> bool:
    """Remove what the JSON Pointer `where` names from its parent, if it has a parent."""
    steps = [s.replace("~1", "/").replace("~0", "~") for s in where.split("/")[1:]]
    if not steps:
        return False
    node = value
    for step in steps[:-1]:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return False
    last = steps[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and last.isdigit() and int(last) < len(node) and len(node) > 1:
        del node[int(last)]
        return True
    return False


def _header_example(node: dict[str, Any], document: Document, uri: str, pointer: str) -> Any:
    if "example" in node:
        return node["example"]
    for name, example in (node.get("examples") or {}).items():
        resolved = document.resolve(example, uri, f"{pointer}/examples/{escape(name)}")[0]
        if isinstance(resolved, dict) and "value" in resolved:
            return resolved["value"]
    schema = document.resolve(node.get("schema"), uri, f"{pointer}/schema")[0]
    if isinstance(schema, dict) and "example" in schema:
        return schema["example"]
    return None


# Examples checked at start ---------------------------------------------------------------------


def _media_examples(
    document: Document, content: Any, uri: str, pointer: str, where: str
) -> Iterator[Example]:
    for media, entry in content.items() if isinstance(content, dict) else []:
        if not isinstance(entry, dict) or "schema" not in entry:
            continue
        at = f"{pointer}/content/{escape(media)}"
        schema = document.resolve(entry["schema"], uri, f"{at}/schema")
        if "example" in entry:
            yield Example(f"{where} {media}", entry["example"], schema)
        for name, example in (entry.get("examples") or {}).items():
            node = document.resolve(example, uri, f"{at}/examples/{escape(name)}")[0]
            if isinstance(node, dict) and "value" in node:
                yield Example(f"{where} {media} example {name!r}", node["value"], schema)


def iter_examples(index: Index) -> Iterator[Example]:
    """Every example the operations use: parameters, bodies, responses and headers, and the
    `example` of every schema they reach."""
    document = index.document
    for operation in index.operations:
        at = f"{operation.method.upper()} {operation.path}"
        for parameter in operation.parameters:
            where = f"{at} parameter {parameter.name}"
            if "example" in parameter.node:
                yield Example(where, parameter.node["example"], parameter.schema)
            for name, example in (parameter.node.get("examples") or {}).items():
                if isinstance(example, dict) and "value" in example:
                    yield Example(f"{where} example {name!r}", example["value"], parameter.schema)
        if operation.body is not None:
            node, uri, pointer = operation.body
            yield from _media_examples(document, node.get("content"), uri, pointer, f"{at} request")
        for status, (node, uri, pointer) in operation.responses.items():
            yield from _media_examples(
                document, node.get("content"), uri, pointer, f"{at} {status}"
            )
    yield from index.schemas.repairer.examples


def check_examples(index: Index) -> tuple[int, list[str]]:
    """(how many examples, one line per invalid one) for every example of the document."""
    count, invalid = 0, []
    seen: set[tuple[int, int]] = set()
    for example in iter_examples(index):
        key = (id(example.value), id(example.schema[0]))
        if key in seen:
            continue
        seen.add(key)
        count += 1
        _, uri, pointer = example.schema
        failures = errors(index.schemas.validator(uri, pointer), example.value, limit=1)
        if failures:
            where, message = failures[0]
            invalid.append(f"{example.where}{' at ' + where if where else ''}: {message}")
    return count, invalid
