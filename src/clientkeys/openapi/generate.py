"""Data made up from a schema: the smallest plausible instance, or a random one (`dynamic`).

Generation reads the schema as written (`$ref`, allOf merged, the first fitting branch of
anyOf/oneOf, formats, patterns, bounds); it does not have to be perfect, because the caller
validates what it makes and prunes or retries (`responses.py`). Patterns are ECMA-262; ones
Python's `re` cannot read fall back to a plain string and the validator has the last word.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

import rstr

from clientkeys.openapi.document import Document, escape
from clientkeys.openapi.schemas import Schemas

MAX_DEPTH = 12
FULL_DEPTH = 4  # below this depth, optional properties are left out
FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "iri-reference": "https://example.com/",
    "uri-template": "https://example.com/{id}",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "byte": "ZXhhbXBsZQ==",
    "binary": "",
    "json-pointer": "/example",
    "relative-json-pointer": "0",
    "regex": "^example$",
    "password": "secret",
}
_PYTHON_REGEX = ((r"\z", r"\Z"), ("(?<", "(?P<"), ("(?P<=", "(?<="), ("(?P<!", "(?<!"))


def _pattern_string(pattern: str, rng: random.Random | None) -> str | None:
    for ecma, python in _PYTHON_REGEX:
        pattern = pattern.replace(ecma, python)
    try:
        compiled = re.compile(pattern)
        generator = rstr.Rstr(rng or random.Random(0))
        for _ in range(5):
            value = str(generator.xeger(compiled))
            if compiled.search(value):
                return value
    except (re.error, ValueError, TypeError, IndexError, RecursionError, OverflowError):
        pass
    return None


class Generator:
    """Makes instances of the document's schemas; `rng` None means deterministic output."""

    def __init__(
        self, document: Document, rng: random.Random | None = None, use_examples: bool = True,
        schemas: Schemas | None = None,
    ) -> None:  # fmt: skip
        self.document = document
        self.schemas = schemas  # to pick a oneOf/anyOf branch whose data the whole schema takes
        self.rng = rng
        self.use_examples = use_examples
        self.response = True  # responses leave writeOnly properties out
        self.minimal = False  # objects get their required properties only

    def value(self, schema: Any, uri: str, pointer: str, depth: int = 0) -> Any:
        """An instance of the schema at uri#pointer."""
        schema, uri, pointer = self.document.resolve(schema, uri, pointer)
        if schema is True or schema == {}:
            return "string"
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return None
        if "allOf" in schema:
            schema = self._merged(schema, uri, pointer)
        if "const" in schema:
            return schema["const"]
        if self.use_examples and self.rng is None:
            for key in ("example", "default"):
                if key in schema:
                    return schema[key]
            if isinstance(schema.get("examples"), list) and schema["examples"]:
                return schema["examples"][0]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            kind = schema.get("type")
            choices = [v for v in enum if v is not None and _is_type(v, kind)] or enum
            return self.rng.choice(choices) if self.rng else choices[0]
        for key in ("oneOf", "anyOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self._branch(schema, key, branches, uri, pointer, depth)
        kind = self._type(schema)
        method = getattr(self, f"_{kind}", None)
        return method(schema, uri, pointer, depth) if method else None

    def _type(self, schema: dict[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            declared = next((t for t in declared if t != "null"), declared[0] if declared else None)
        if isinstance(declared, str):
            return declared
        if "properties" in schema or "additionalProperties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "multipleOf")):
            return "number"
        return "string"

    def _branch(
        self,
        schema: dict[str, Any],
        key: str,
        branches: list[Any],
        uri: str,
        pointer: str,
        depth: int,
    ) -> Any:
        order = list(range(len(branches)))
        if self.rng is not None:
            self.rng.shuffle(order)
        siblings = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
        first = _NOTHING
        for index in order:
            branch, b_uri, b_pointer = self.document.resolve(
                branches[index], uri, f"{pointer}/{key}/{index}"
            )
            if isinstance(branch, dict) and branch.get("type") == "null" and len(branches) > 1:
                continue
            for minimal in (False, True):  # fewer properties can tell oneOf branches apart
                self.minimal, was = minimal, self.minimal
                try:
                    if isinstance(branch, dict) and (
                        siblings.get("properties") or siblings.get("type")
                    ):
                        merged = self._merge([siblings, branch], uri, pointer)
                        value = self.value(merged, uri, pointer, depth + 1)
                    else:
                        value = self.value(branch, b_uri, b_pointer, depth + 1)
                finally:
                    self.minimal = was
                value = _discriminated(schema, branches[index], value)
                if self.schemas is None or self.schemas.validator(uri, pointer).is_valid(value):
                    return value
                first = value if first is _NOTHING else first
        return None if first is _NOTHING else first

    def _merged(self, schema: dict[str, Any], uri: str, pointer: str) -> dict[str, Any]:
        parts = [{k: v for k, v in schema.items() if k != "allOf"}]
        for index, sub in enumerate(schema.get("allOf") or []):
            resolved, s_uri, s_pointer = self.document.resolve(sub, uri, f"{pointer}/allOf/{index}")
            if isinstance(resolved, dict):
                parts.append(
                    self._merged(resolved, s_uri, s_pointer) if "allOf" in resolved else resolved
                )
        return self._merge(parts, uri, pointer)

    def _merge(self, parts: list[dict[str, Any]], uri: str, pointer: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for part in parts:
            for key, value in part.items():
                if key == "properties" and isinstance(value, dict):
                    known = merged.setdefault("properties", {})
                    for name, sub in value.items():  # a property in two parts must fit both
                        known[name] = {"allOf": [known[name], sub]} if name in known else sub
                elif key == "required" and isinstance(value, list):
                    merged["required"] = [*merged.get("required", []), *value]
                elif key == "allOf" and isinstance(value, list):
                    merged.update(self._merged({"allOf": value}, uri, pointer))
                else:
                    merged.setdefault(key, value)
        return merged

    def _object(self, schema: dict[str, Any], uri: str, pointer: str, depth: int) -> Any:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = set(schema.get("required") or [])
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            resolved = self.document.resolve(sub, uri, f"{pointer}/properties/{escape(name)}")[0]
            one_way = "writeOnly" if self.response else "readOnly"
            skipped = (
                depth >= FULL_DEPTH
                or self.minimal
                or (isinstance(resolved, dict) and resolved.get(one_way))
                or (self.rng is not None and self.rng.random() < 0.3)
            )
            if name not in required and skipped:
                continue
            out[name] = self.value(sub, uri, f"{pointer}/properties/{escape(name)}", depth + 1)
        for name in required - set(out):
            out[name] = "string"
        extra = schema.get("additionalProperties")
        minimum = schema.get("minProperties") or 0
        index = 0
        while len(out) < minimum and index < 100:
            key = f"key{index}"
            if key not in out:
                out[key] = (
                    self.value(extra, uri, f"{pointer}/additionalProperties", depth + 1)
                    if isinstance(extra, dict)
                    else "string"
                )
            index += 1
        return out

    def _array(self, schema: dict[str, Any], uri: str, pointer: str, depth: int) -> Any:
        prefix = schema.get("prefixItems") or (
            schema.get("items") if isinstance(schema.get("items"), list) else None
        )
        if isinstance(prefix, list):
            return [
                self.value(sub, uri, f"{pointer}/prefixItems/{i}", depth + 1)
                for i, sub in enumerate(prefix)
            ]
        low = schema.get("minItems") or 0
        high = schema.get("maxItems")
        count = max(low, 1 if depth < FULL_DEPTH else 0)
        if self.rng is not None:
            count = self.rng.randint(
                max(low, 1), max(low, 1, min(high if high is not None else 3, 3))
            )
        if high is not None:
            count = min(count, high)
        items = [
            self.value(schema.get("items", {}), uri, f"{pointer}/items", depth + 1)
            for _ in range(count)
        ]
        if schema.get("uniqueItems") and count > 1:
            items = [_distinct(item, index) for index, item in enumerate(items)]
        return items

    def _string(self, schema: dict[str, Any], uri: str, pointer: str, depth: int) -> Any:
        pattern = schema.get("pattern") if isinstance(schema.get("pattern"), str) else None
        fmt = schema.get("format")
        candidates = [FORMATS.get(fmt) if isinstance(fmt, str) else None]
        if pattern is not None:
            candidates.append(_pattern_string(pattern, self.rng))
        candidates.append(
            "".join(self.rng.choices(string.ascii_letters, k=8)) if self.rng else "string"
        )
        low, high = schema.get("minLength") or 0, schema.get("maxLength")
        fitted = [_fit(c, low, high) for c in candidates if c is not None]
        return next((c for c in fitted if pattern is None or _matches(pattern, c)), fitted[0])

    def _integer(self, schema: dict[str, Any], uri: str, pointer: str, depth: int) -> Any:
        return int(self._number(schema, uri, pointer, depth, integer=True))

    def _number(
        self, schema: dict[str, Any], uri: str, pointer: str, depth: int, integer: bool = False
    ) -> Any:
        low, high = schema.get("minimum"), schema.get("maximum")
        step = schema.get("multipleOf") or 1
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
            low = ex_low + (1 if integer else step if step != 1 else 0.5)
        elif ex_low is True and low is not None:
            low = low + (1 if integer else 0.5)
        if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
            high = ex_high - (1 if integer else 0.5)
        elif ex_high is True and high is not None:
            high = high - (1 if integer else 0.5)
        value: float = 0 if low is None else low
        if self.rng is not None:
            top = high if high is not None else value + 1000
            value = (
                self.rng.uniform(value, top)
                if not integer
                else self.rng.randint(int(value), int(top))
            )
        if high is not None and value > high:
            value = high
        if step and step != 1:
            value = (value // step + (1 if value % step else 0)) * step
            if high is not None and value > high:
                value -= step
        if integer:
            return int(value) if float(value).is_integer() else int(value) + 1
        return value

    def _boolean(self, schema: dict[str, Any], uri: str, pointer: str, depth: int) -> Any:
        return self.rng.random() < 0.5 if self.rng else True

    def _null(self, schema: dict[str, Any], uri: str, pointer: str, depth: int) -> Any:
        return None


_NOTHING = object()


def _discriminated(schema: dict[str, Any], branch: Any, value: Any) -> Any:
    """An object made from a oneOf/anyOf branch, with the discriminator naming that branch."""
    discriminator = schema.get("discriminator")
    if not (isinstance(discriminator, dict) and isinstance(value, dict)):
        return value
    name = discriminator.get("propertyName")
    ref = branch.get("$ref") if isinstance(branch, dict) else None
    if not isinstance(name, str) or not isinstance(ref, str):
        return value
    mapping = discriminator.get("mapping") or {}
    key = next((k for k, v in mapping.items() if v == ref or ref.endswith("/" + v)), None)
    if key is None and name not in value:
        key = ref.rsplit("/", 1)[-1]
    return {**value, name: key} if key is not None else value


_JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
               "array": (list,), "object": (dict,)}  # fmt: skip


def _is_type(value: Any, kind: Any) -> bool:
    if not isinstance(kind, str) or kind not in _JSON_TYPES:
        return True
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES[kind])


def _fit(value: str, low: int, high: int | None) -> str:
    if len(value) < low:
        value += "x" * (low - len(value))
    return value[:high] if high is not None else value


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern.replace(r"\z", r"\Z"), value) is not None
    except re.error:
        return True  # Python cannot read it; the validator decides


def _distinct(item: Any, index: int) -> Any:
    if isinstance(item, str):
        return f"{item}{index}" if index else item
    if isinstance(item, bool) or item is None:
        return item
    if isinstance(item, int | float):
        return item + index
    return item
