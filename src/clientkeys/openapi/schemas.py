"""The document's schemas, repaired where real specs break JSON Schema, compiled on first use.

OpenAPI 3.0 schemas are validated as JSON Schema draft 4 with `nullable` spelled as a `null`
type; OpenAPI 3.1 schemas are JSON Schema 2020-12, as 3.1 defines them. Both are compiled by
jsonschema-rs against one registry of the document's files, so a schema is compiled by
reference (`file:///spec.yaml#/components/schemas/Pet`) and nothing is copied or inlined.

Real descriptions carry schemas no validator accepts (`type: file`, an empty `required`, a
pattern no engine compiles). Each is repaired in place, the smallest change that makes the
schema compile (the keyword is dropped), and reported once as a problem at start.
A required `readOnly` property is not required in a request (`requests.py` ignores it), as
OpenAPI says; responses are held to the schema as written.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jsonschema_rs

from clientkeys.openapi.document import Document, escape

TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else",
              "propertyNames", "unevaluatedItems", "unevaluatedProperties",
              "additionalItems")  # fmt: skip
COUNTS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties")
NUMBERS = ("minimum", "maximum", "multipleOf")
TEXTS = ("title", "description", "format", "$ref")
MAX_REPAIRS = 50
_ECMA_FIXES = ((re.compile(r"\\u([0-9a-fA-F]{4})"), r"\\x{\1}"), (re.compile(r"\\/"), "/"))


def _compiles(pattern: Any) -> bool:
    try:
        jsonschema_rs.validator_for({"pattern": pattern})
    except (ValueError, jsonschema_rs.ValidationError):
        return False
    return isinstance(pattern, str)


def ecma_pattern(pattern: Any) -> str | None:
    """The pattern as jsonschema-rs compiles it, with ECMA-262 escapes it lacks rewritten;
    None if it still does not compile."""
    if _compiles(pattern):
        return str(pattern)
    if not isinstance(pattern, str):
        return None
    for regex, replacement in _ECMA_FIXES:
        pattern = regex.sub(replacement, pattern)
    return pattern if _compiles(pattern) else None


@dataclass(frozen=True)
class Example:
    """One example of the document, with the place of the schema it must match."""

    where: str
    value: Any
    schema: tuple[Any, str, str]


class Repairer:
    """Walks every schema once (by identity), repairing and translating it in place."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.draft4 = document.version == "3.0"
        self.seen: set[int] = set()
        self.patterns: dict[str, str | None] = {}
        self.examples: list[Example] = []  # the `example`s inside schemas, checked at start

    def problem(self, uri: str, pointer: str, what: str) -> None:
        """Record a repair for the start report."""
        self.document.problems.append(f"schema at {self.document.where(uri, pointer)}: {what}")

    def walk(self, schema: Any, uri: str, pointer: str) -> None:
        """Repair `schema` and everything under it, following `$ref`s into other files."""
        if not isinstance(schema, dict) or id(schema) in self.seen:
            return
        self.seen.add(id(schema))
        if isinstance(schema.get("$ref"), str):
            target, target_uri, target_pointer = self.document.resolve(schema, uri, pointer)
            self.walk(target, target_uri, target_pointer)
        self.repair(schema, uri, pointer)
        self._collect_examples(schema, uri, pointer)
        for container, slot, sub, at in _subschemas(schema, pointer):
            if not isinstance(sub, bool):
                self.walk(sub, uri, at)
            elif self.draft4 and slot not in ("additionalProperties", "additionalItems"):
                container[slot] = {} if sub else {"not": {}}  # draft 4 has no boolean schemas

    def _collect_examples(self, schema: dict[str, Any], uri: str, pointer: str) -> None:
        where = f"schema {self.document.where(uri, pointer)}"
        if "example" in schema:
            self.examples.append(Example(where, schema["example"], (schema, uri, pointer)))
        listed = schema.get("examples")
        if isinstance(listed, list) and not self.draft4:
            for index, value in enumerate(listed):
                self.examples.append(
                    Example(f"{where} examples[{index}]", value, (schema, uri, pointer))
                )

    def repair(self, schema: dict[str, Any], uri: str, pointer: str) -> None:
        """The in-place repairs and translations of one schema object."""
        self._types(schema, uri, pointer)
        self._bounds(schema)
        self._required(schema, uri, pointer)
        for key in ("enum",):
            if key in schema and not (isinstance(schema[key], list) and schema[key]):
                self.problem(uri, pointer, f"{key} {schema.pop(key)!r} ignored")
        for key in TEXTS:
            if key in schema and not isinstance(schema[key], str):
                self.problem(uri, pointer, f"{key} {schema.pop(key)!r} ignored")
        self._patterns(schema, uri, pointer)
        for key in ("properties", "patternProperties"):
            if key in schema and not isinstance(schema[key], dict):
                self.problem(uri, pointer, f"{key} that is not an object ignored")
                del schema[key]
        items = schema.get("items")
        if isinstance(items, list) and not self.draft4:
            schema["prefixItems"] = schema.pop("items")
        discriminator = schema.get("discriminator")
        if isinstance(discriminator, dict) and isinstance(discriminator.get("propertyName"), str):
            if any(key in schema for key in ("oneOf", "anyOf")):  # OpenAPI: it must be there
                name = discriminator["propertyName"]
                schema["required"] = [
                    *schema.get("required", []),
                    *([] if name in schema.get("required", []) else [name]),
                ]
        nullable = schema.get("nullable") is True or schema.get("x-nullable") is True
        if nullable and self.draft4:  # 3.1 has no `nullable`: a 3.1 schema says "null" itself
            self._nullable(schema)

    def _types(self, schema: dict[str, Any], uri: str, pointer: str) -> None:
        declared = schema.get("type")
        if declared is None:
            return
        listed = declared if isinstance(declared, list) else [declared]
        kept = [t for t in listed if isinstance(t, str) and t in TYPES]
        if len(kept) != len(listed):
            self.problem(uri, pointer, f"type {declared!r} is not a JSON Schema type; ignored")
            if not kept:
                del schema["type"]
                return
        schema["type"] = kept if isinstance(declared, list) else kept[0]

    def _bounds(self, schema: dict[str, Any]) -> None:
        for key in COUNTS:
            value = schema.get(key)
            if isinstance(value, float) and value.is_integer():
                schema[key] = int(value)
            elif key in schema and not (isinstance(value, int) and value >= 0):
                del schema[key]
        for key in NUMBERS:
            value = schema.get(key)
            bad = key == "multipleOf" and isinstance(value, int | float) and value <= 0
            if key in schema and (
                isinstance(value, bool) or not isinstance(value, int | float) or bad
            ):
                del schema[key]
        for exclusive, inclusive in (
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ):
            value = schema.get(exclusive)
            if value is None:
                continue
            if self.draft4 and not isinstance(value, bool) and isinstance(value, int | float):
                schema[inclusive], schema[exclusive] = value, True  # the 3.1 spelling in 3.0
            elif not self.draft4 and isinstance(value, bool):
                del schema[exclusive]  # the 3.0 spelling in 3.1
                if value and inclusive in schema:
                    schema[exclusive] = schema.pop(inclusive)
            elif not isinstance(value, int | float):
                del schema[exclusive]

    def _required(self, schema: dict[str, Any], uri: str, pointer: str) -> None:
        required = schema.get("required")
        if required is None:
            return
        if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
            self.problem(uri, pointer, f"required {required!r} is not a list of names; ignored")
            del schema["required"]
            return
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        for name in required:
            if _one_way(self.document.resolve(properties.get(name), uri, pointer)[0], "readOnly"):
                self.document.read_only.add(name)
        if not required and self.draft4:
            del schema["required"]  # draft 4 wants at least one name

    def _patterns(self, schema: dict[str, Any], uri: str, pointer: str) -> None:
        if "pattern" in schema:
            fixed = self._pattern(schema["pattern"])
            if fixed is None:
                self.problem(
                    uri, pointer, f"pattern {schema.pop('pattern')!r} does not compile; ignored"
                )
            else:
                schema["pattern"] = fixed
        patterned = schema.get("patternProperties")
        if isinstance(patterned, dict):
            for key in list(patterned):
                fixed = self._pattern(key)
                if fixed is None:
                    self.problem(
                        uri, pointer, f"patternProperties {key!r} does not compile; ignored"
                    )
                    del patterned[key]
                elif fixed != key:
                    patterned[fixed] = patterned.pop(key)

    def _pattern(self, pattern: Any) -> str | None:
        key = str(pattern)
        if key not in self.patterns:
            self.patterns[key] = ecma_pattern(pattern)
        return self.patterns[key]

    @staticmethod
    def _nullable(schema: dict[str, Any]) -> None:
        """OpenAPI 3.0.3's `nullable: true`: "null" joins the types, only where a `type` is
        given; an `enum` allows null only if it lists it (as 3.0.3 clarifies)."""
        schema.pop("nullable", None)
        schema.pop("x-nullable", None)
        declared = schema.get("type")
        if isinstance(declared, str):
            schema["type"] = [declared, "null"]
        elif isinstance(declared, list) and "null" not in declared:
            schema["type"] = [*declared, "null"]


def _one_way(schema: Any, keyword: str) -> bool:
    return isinstance(schema, dict) and bool(schema.get(keyword))


def _subschemas(schema: dict[str, Any], pointer: str) -> Iterator[tuple[Any, Any, Any, str]]:
    """(container, slot, subschema, its pointer) for every subschema of a schema object."""
    for key in SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            for name, sub in value.items():
                yield value, name, sub, f"{pointer}/{key}/{escape(str(name))}"
    for key in (*SCHEMA_LISTS, "items"):
        value = schema.get(key)
        if isinstance(value, list):
            for index, sub in enumerate(value):
                yield value, index, sub, f"{pointer}/{key}/{index}"
    for key in SCHEMA_ONE:
        value = schema.get(key)
        if isinstance(value, dict | bool):
            yield schema, key, value, f"{pointer}/{key}"


def _no_remote(uri: str) -> Any:
    raise ValueError(f"{uri} is not part of the document")


class Schemas:
    """Compiled validators for the document's schemas, by place, built on first use."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.draft4 = document.version == "3.0"
        self._registry: Any = None
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.repairer = Repairer(document)

    def prepare(self, schema: Any, uri: str, pointer: str) -> None:
        """Repair one schema (and what it references) before it is ever compiled."""
        self.repairer.walk(schema, uri, pointer)

    def _registry_now(self) -> Any:
        if self._registry is None:
            draft = jsonschema_rs.Draft4 if self.draft4 else jsonschema_rs.Draft202012
            self._registry = jsonschema_rs.Registry(
                list(self.document.files.items()), draft=draft, retriever=_no_remote
            )
        return self._registry

    def validator(self, uri: str, pointer: str) -> Any:
        """The compiled validator of the schema at uri#pointer."""
        key = (uri, pointer)
        compiled = self._cache.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._cache.get(key) or self._compile(uri, pointer)
                self._cache[key] = compiled
        return compiled

    def _compile(self, uri: str, pointer: str) -> Any:
        cls = jsonschema_rs.Draft4Validator if self.draft4 else jsonschema_rs.Draft202012Validator
        ref = {"$ref": f"{uri}#{quote(pointer, safe='/~!$&()*+,;=:@')}"}
        for _ in range(MAX_REPAIRS):
            try:
                return cls(ref, registry=self._registry_now(), validate_formats=True,
                           retriever=_no_remote)  # fmt: skip
            except jsonschema_rs.ValidationError as exc:
                if not self._drop(uri, exc):
                    break
        self.document.problems.append(
            f"schema at {self.document.where(uri, pointer)} cannot be compiled; not validated"
        )
        return jsonschema_rs.Draft4Validator({})

    def _drop(self, uri: str, exc: Any) -> bool:
        """Drop the keyword a metaschema failure names (the registry is then rebuilt)."""
        path = list(exc.instance_path)
        node = self.document.files.get(uri)
        holder: tuple[dict[str, Any], str] | None = None
        for step in path:
            if isinstance(node, dict) and step in node:
                holder, node = (node, step), node[step]
            elif isinstance(node, list) and isinstance(step, int) and step < len(node):
                node = node[step]
            else:
                return False
        if holder is None:
            return False
        container, key = holder
        self.document.problems.append(
            f"schema at {self.document.where(uri, '/' + '/'.join(escape(str(s)) for s in path))}"
            f": {exc.message.splitlines()[0]}; ignored"
        )
        del container[key]
        self._registry = None
        return True


def errors(
    validator: Any,
    instance: Any,
    limit: int = 10,
    optional: frozenset[str] | set[str] = frozenset(),
) -> list[tuple[str, str]]:
    """(JSON Pointer into the instance, message) of each failure, at most `limit`; a missing
    property named in `optional` is not a failure."""
    found = []
    for error in validator.iter_errors(instance):
        if optional and error.kind.as_dict().get("property") in optional:
            continue
        where = "".join(f"/{escape(str(step))}" for step in error.instance_path)
        found.append((where, error.message))
        if len(found) >= limit:
            break
    return found
