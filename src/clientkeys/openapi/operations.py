"""The document's operations, indexed once, and the router that finds one for a request path.

Each operation keeps the places (file URI and JSON Pointer) of its parameters, bodies and
responses, so that validators are compiled by reference and nothing is dereferenced. Paths
match as OpenAPI says: literal segments before templated ones, so `/users/me` wins over
`/users/{id}`; the servers' base paths (`/v1`) are stripped first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from clientkeys.openapi.document import Document, SpecError, escape
from clientkeys.openapi.schemas import Schemas
from clientkeys.openapi.specs import HTTP_METHODS

Place = tuple[Any, str, str]  # (node, file URI, JSON Pointer)


@dataclass
class Parameter:
    """One parameter: where it is read from and how, and its schema's place."""

    name: str
    location: str
    required: bool
    style: str
    explode: bool
    schema: Place
    node: dict[str, Any]
    media: str | None = None  # a parameter described by `content` (JSON in a query string)


@dataclass
class Operation:
    """One method on one path template, with everything the mock reads per request."""

    method: str
    path: str
    node: dict[str, Any]
    uri: str
    pointer: str
    parameters: list[Parameter]
    body: Place | None
    responses: dict[str, Place]
    security: list[dict[str, list[str]]]

    @property
    def path_names(self) -> list[str]:
        """The path template's parameter names, in order."""
        return re.findall(r"\{([^}]+)\}", self.path)

    @property
    def name(self) -> str:
        """The operationId, or "GET /path" for an operation without one."""
        return str(self.node.get("operationId") or f"{self.method.upper()} {self.path}")


@dataclass
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    templated: list[tuple[re.Pattern[str], _Node]] = field(default_factory=list)
    operations: dict[str, Operation] | None = None


def _segment_pattern(segment: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^}]+\}", segment)
    return re.compile("^" + "(.+?)".join(re.escape(part) for part in parts) + "$", re.S)


class Router:
    """Path templates in a segment tree; `match` returns the operations and path values."""

    def __init__(self, base_paths: list[str]) -> None:
        self.root = _Node()
        self.base_paths = sorted(set(base_paths), key=len, reverse=True)

    def add(self, template: str, operations: dict[str, Operation]) -> None:
        """Route a path template (as written in the spec) to its operations."""
        node = self.root
        for segment in template.split("/")[1:]:
            if "{" not in segment:
                node = node.literals.setdefault(segment, _Node())
                continue
            pattern = _segment_pattern(segment)
            for existing, child in node.templated:
                if existing.pattern == pattern.pattern:
                    node = child
                    break
            else:
                child = _Node()
                node.templated.append((pattern, child))
                node.templated.sort(key=lambda entry: -len(entry[0].pattern))
                node = child
        # `/a/{id}` and `/a/{name}` share a node: their methods merge, each keeps its names
        node.operations = {**(node.operations or {}), **operations}

    def match(self, raw_path: str) -> tuple[dict[str, Operation], list[str]] | None:
        """(operations by method, raw path values in order) for a request path, or None."""
        for base in self.base_paths:
            if base and not (raw_path == base or raw_path.startswith(base + "/")):
                continue
            found = self._walk(self.root, (raw_path[len(base) :] or "/").split("/")[1:], [])
            if found is not None:
                node, values = found
                assert node.operations is not None
                return node.operations, values
        return None

    def _walk(
        self, node: _Node, segments: list[str], values: list[str]
    ) -> tuple[_Node, list[str]] | None:
        if not segments:
            return None if node.operations is None else (node, values)
        head, tail = segments[0], segments[1:]
        child = node.literals.get(unquote(head))
        if child is not None:
            found = self._walk(child, tail, values)
            if found is not None:
                return found
        for pattern, sub in node.templated:
            matched = pattern.match(head)
            if matched and all(matched.groups()):
                found = self._walk(sub, tail, [*values, *matched.groups()])
                if found is not None:
                    return found
        return None


def _default_style(location: str) -> str:
    return "form" if location in ("query", "cookie") else "simple"


def _base_paths(servers: Any) -> list[str]:
    paths = [""]
    for server in servers if isinstance(servers, list) else []:
        url = server.get("url", "") if isinstance(server, dict) else ""
        variables = server.get("variables") or {}
        for name, variable in variables.items() if isinstance(variables, dict) else []:
            default = variable.get("default", "") if isinstance(variable, dict) else ""
            url = url.replace("{" + name + "}", str(default))
        path = urlparse(url).path.rstrip("/") if "://" in url else url.split("?")[0].rstrip("/")
        if "{" not in path:
            paths.append(path)
    return paths


class Index:
    """Every operation of a document, with its schemas prepared, and the router over them."""

    def __init__(self, document: Document, schemas: Schemas) -> None:
        self.document = document
        self.schemas = schemas
        root = document.root
        self.security_schemes = self._security_schemes(root)
        self.operations: list[Operation] = []
        self.router = Router(_base_paths(root.get("servers")))
        paths = root.get("paths") or {}
        if not isinstance(paths, dict):
            raise SpecError(f"{document.path}: 'paths' is not an object")
        for template, item in paths.items():
            if not str(template).startswith("/"):
                continue  # an `x-` extension, not a path
            at = f"/paths/{escape(str(template))}"
            node, uri, pointer = document.resolve(item, document.uri, at)
            if not isinstance(node, dict):
                raise SpecError(
                    f"{document.path}: path item {document.where(uri, pointer)} is not an object"
                )
            operations = dict(self._operations(str(template), node, uri, pointer))
            self.operations += operations.values()
            self.router.add(str(template), operations)

    def _security_schemes(self, root: dict[str, Any]) -> dict[str, dict[str, Any]]:
        components = root.get("components") or {}
        schemes = components.get("securitySchemes") or {} if isinstance(components, dict) else {}
        found = {}
        for name, scheme in schemes.items() if isinstance(schemes, dict) else []:
            node, _, _ = self.document.resolve(
                scheme, self.document.uri, f"/components/securitySchemes/{escape(name)}"
            )
            if isinstance(node, dict):
                found[name] = node
        return found

    def _operations(
        self, template: str, item: dict[str, Any], uri: str, pointer: str
    ) -> Iterator[tuple[str, Operation]]:
        shared = self._parameters(item.get("parameters"), uri, f"{pointer}/parameters")
        for method in HTTP_METHODS:
            node = item.get(method)
            if node is None:
                continue
            at = f"{pointer}/{method}"
            if not isinstance(node, dict):
                raise SpecError(
                    f"{self.document.path}: {self.document.where(uri, at)} is not an object"
                )
            own = self._parameters(node.get("parameters"), uri, f"{at}/parameters")
            merged = {(p.location, p.name): p for p in [*shared, *own]}
            security = node.get("security", self.document.root.get("security", []))
            yield method, Operation(
                method=method, path=template, node=node, uri=uri, pointer=at,
                parameters=list(merged.values()),
                body=self._body(node.get("requestBody"), uri, f"{at}/requestBody"),
                responses=self._responses(node.get("responses"), uri, f"{at}/responses"),
                security=[s for s in security if isinstance(s, dict)] if isinstance(security, list)
                else [],
            )  # fmt: skip

    def _parameters(self, listed: Any, uri: str, pointer: str) -> list[Parameter]:
        found = []
        for index, entry in enumerate(listed if isinstance(listed, list) else []):
            node, at_uri, at = self.document.resolve(entry, uri, f"{pointer}/{index}")
            if not isinstance(node, dict) or "name" not in node or "in" not in node:
                self.document.problems.append(
                    f"parameter at {self.document.where(at_uri, at)} has no name or 'in'; ignored"
                )
                continue
            location = str(node["in"])
            schema, media = self._parameter_schema(node, at_uri, at)
            found.append(Parameter(
                name=str(node["name"]), location=location,
                required=bool(node.get("required")) or location == "path",
                style=str(node.get("style") or _default_style(location)),
                explode=bool(node.get("explode", node.get("style", "form") == "form")),
                schema=schema, node=node, media=media,
            ))  # fmt: skip
        return found

    def _parameter_schema(
        self, node: dict[str, Any], uri: str, pointer: str
    ) -> tuple[Place, str | None]:
        if "schema" in node:
            return self.schema_place(node["schema"], uri, f"{pointer}/schema"), None
        content = node.get("content")
        if isinstance(content, dict) and content:
            media, entry = next(iter(content.items()))
            entry, entry_uri, entry_at = self.document.resolve(
                entry, uri, f"{pointer}/content/{escape(media)}"
            )
            if isinstance(entry, dict) and "schema" in entry:
                return self.schema_place(entry["schema"], entry_uri, f"{entry_at}/schema"), media
        return ({}, uri, ""), None

    def schema_place(self, schema: Any, uri: str, pointer: str) -> Place:
        """A schema's place, after preparing it (repairs, `nullable`) for compiling."""
        self.schemas.prepare(schema, uri, pointer)
        return self.document.resolve(schema, uri, pointer)

    def _body(self, body: Any, uri: str, pointer: str) -> Place | None:
        if body is None:
            return None
        node, at_uri, at = self.document.resolve(body, uri, pointer)
        if not isinstance(node, dict):
            return None
        self._media(node.get("content"), at_uri, f"{at}/content")
        return node, at_uri, at

    def _media(self, content: Any, uri: str, pointer: str) -> None:
        for media, entry in content.items() if isinstance(content, dict) else []:
            node, at_uri, at = self.document.resolve(entry, uri, f"{pointer}/{escape(media)}")
            if isinstance(node, dict) and "schema" in node:
                self.schemas.prepare(node["schema"], at_uri, f"{at}/schema")

    def _responses(self, responses: Any, uri: str, pointer: str) -> dict[str, Place]:
        found = {}
        for status, entry in responses.items() if isinstance(responses, dict) else []:
            node, at_uri, at = self.document.resolve(entry, uri, f"{pointer}/{escape(str(status))}")
            if not isinstance(node, dict):
                continue
            self._media(node.get("content"), at_uri, f"{at}/content")
            for name, header in (node.get("headers") or {}).items():
                header, h_uri, h_at = self.document.resolve(
                    header, at_uri, f"{at}/headers/{escape(name)}"
                )
                if isinstance(header, dict) and "schema" in header:
                    self.schemas.prepare(header["schema"], h_uri, f"{h_at}/schema")
            found[str(status)] = (node, at_uri, at)
        return found
