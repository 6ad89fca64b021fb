"""The OpenAPI documents as data: loading and bundling a spec, its routes and operations, its
examples, and the check that every operation has a handler.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Connexion is imported when a spec is loaded: `serve` starts without it
    from connexion.spec import Specification

SPEC_FILE = "openapi.json"
"""The contract's root document in the spec folder."""
ADMIN_SPEC_FILE = "admin.json"
"""The test controls' document, served only with an admin token."""
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def load(spec_file: Path) -> Specification:
    """A spec with every `$ref` resolved (relative files included), as Connexion serves it."""
    from connexion.spec import Specification

    return Specification.load(spec_file.resolve())


def load_spec(spec_dir: Path, name: str = SPEC_FILE) -> Specification:
    """One document of a spec folder, resolved."""
    return load(spec_dir / name)


def bundle(spec_file: Path) -> dict[str, Any]:
    """The spec with every `$ref` resolved, as one JSON document."""
    spec: dict[str, Any] = load(spec_file).spec
    return spec


def operations(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every operation as (path, method, operation object)."""
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def routes_of(specs: Iterable[Any]) -> dict[str, list[str]]:
    """Every served path template (base path included) with the methods it takes."""
    return {
        spec.base_path + path: [m.upper() for m in item if m in HTTP_METHODS]
        for spec in specs
        for path, item in spec["paths"].items()
    }


# Examples --------------------------------------------------------------------------------------


def _schema_examples(schema: Any, where: str, seen: set[int]) -> Iterator[tuple[str, Any, Any]]:
    """`example`s inside a schema and its subschemas, each with the schema it illustrates."""
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    if "example" in schema:
        yield where, schema["example"], schema
    for name, sub in schema.get("properties", {}).items():
        yield from _schema_examples(sub, f"{where}.{name}", seen)
    for keyword in ("items", "additionalProperties", "not"):
        yield from _schema_examples(schema.get(keyword), f"{where}.{keyword}", seen)
    for keyword in ("anyOf", "oneOf", "allOf"):
        for index, sub in enumerate(schema.get(keyword, [])):
            yield from _schema_examples(sub, f"{where}.{keyword}[{index}]", seen)


def _carrier_examples(
    carrier: Mapping[str, Any], where: str, seen: set[int]
) -> Iterator[tuple[str, Any, Any]]:
    """Examples of a media type, parameter or header object, and of its schema."""
    schema = carrier.get("schema", {})
    if "example" in carrier:
        yield where, carrier["example"], schema
    for name, example in (carrier.get("examples") or {}).items():
        if isinstance(example, dict) and "value" in example:
            yield f"{where} example {name!r}", example["value"], schema
    yield from _schema_examples(schema, f"{where} schema", seen)


def iter_examples(spec: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """Every example of a resolved spec as (where, value, schema)."""
    seen: set[int] = set()
    for path, item in spec.get("paths", {}).items():
        for parameter in item.get("parameters", []):
            yield from _carrier_examples(parameter, f"{path} parameter {parameter['name']}", seen)
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            at = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                yield from _carrier_examples(parameter, f"{at} parameter {parameter['name']}", seen)
            body = operation.get("requestBody", {})
            for media, content in body.get("content", {}).items():
                yield from _carrier_examples(content, f"{at} request {media}", seen)
            for status, response in operation.get("responses", {}).items():
                for media, content in response.get("content", {}).items():
                    yield from _carrier_examples(content, f"{at} {status} {media}", seen)
                for name, header in response.get("headers", {}).items():
                    yield from _carrier_examples(header, f"{at} {status} header {name}", seen)
