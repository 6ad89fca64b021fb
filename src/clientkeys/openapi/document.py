"""An OpenAPI document on disk: its files read, its `$ref`s followed, bad input named in a line.

Every file a `$ref` reaches is loaded once and kept under its absolute `file:` URI, so that
jsonschema-rs can resolve schema references in the same documents (`schemas.py`). Nothing is
dereferenced or copied: a 13 MB description stays one tree in memory.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import orjson
import yaml

MAX_REF_HOPS = 64


class SpecError(Exception):
    """The document cannot be mocked; the message is one line naming the problem and place."""


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """YAML as JSON sees it: timestamps stay strings (an example "2020-01-01" is a string)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _jsonable(node: Any) -> Any:
    """YAML's extras made JSON: keys as strings (`200:` is "200"), dates as ISO strings."""
    if isinstance(node, dict):
        return {str(key): _jsonable(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_jsonable(item) for item in node]
    if isinstance(node, datetime.date | datetime.datetime):
        return node.isoformat()
    return node


def read(path: Path) -> Any:
    """A JSON or YAML file's content; SpecError naming the file, line and column otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json" or raw.lstrip()[:1] in (b"{", b"["):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            message = exc.msg.split(":")[0]
            raise SpecError(
                f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {message}"
            ) from None
    try:
        return _jsonable(yaml.load(raw, Loader=_Loader))  # noqa: S506 (a safe loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: invalid YAML{at}: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from None


def escape(token: str) -> str:
    """One JSON Pointer token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def version_of(document: Any, path: Path) -> str:
    """ "3.0" or "3.1"; SpecError for anything that is not an OpenAPI 3.0 or 3.1 document."""
    if not isinstance(document, dict):
        raise SpecError(f"{path}: not an OpenAPI document (the top level is not an object)")
    if "swagger" in document:
        raise SpecError(
            f"{path}: Swagger {document['swagger']} is not supported; convert it to OpenAPI 3 "
            "first (for example with swagger2openapi)"
        )
    declared = document.get("openapi")
    if declared is None:
        raise SpecError(f"{path}: not an OpenAPI document (no 'openapi' field)")
    for supported in ("3.0", "3.1"):
        if str(declared) == supported or str(declared).startswith(supported + "."):
            return supported
    raise SpecError(
        f"{path}: OpenAPI {declared} is not supported (3.0.x and 3.1.x are); see 'openapi'"
    )


class Document:
    """The root file and every file its `$ref`s reach, each under its `file:` URI."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.uri = self.path.as_uri()
        self.files: dict[str, Any] = {}
        self.root = self.file(self.uri)
        self.version = version_of(self.root, path)
        self.problems: list[str] = []  # what was repaired or ignored, reported at start
        self.read_only: set[str] = set()  # required properties that requests may leave out

    def file(self, uri: str) -> Any:
        """The content of a file of the document, read on first use."""
        if uri not in self.files:
            if urlparse(uri).scheme != "file":
                raise SpecError(f"{self.path}: remote $ref {uri} is not supported")
            self.files[uri] = read(Path(unquote(urlparse(uri).path)))
        return self.files[uri]

    def where(self, uri: str, pointer: str) -> str:
        """A place for messages: the pointer, prefixed with the file when it is not the root."""
        place = "#" + pointer
        return place if uri == self.uri else f"{Path(unquote(urlparse(uri).path)).name}{place}"

    def lookup(self, uri: str, pointer: str) -> Any:
        """The node at a JSON Pointer of a file; SpecError if there is none."""
        node = self.file(uri)
        for token in pointer.split("/")[1:] if pointer else []:
            token = _unescape(unquote(token))
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise KeyError(token)
        return node

    def resolve(self, node: Any, uri: str, pointer: str) -> tuple[Any, str, str]:
        """Follow `$ref`s from `node` (at uri#pointer) to what they name, with its place."""
        for _ in range(MAX_REF_HOPS):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node, uri, pointer
            ref = node["$ref"]
            target, fragment = urldefrag(urljoin(uri, ref))
            try:
                node, uri, pointer = self.lookup(target, fragment), target, fragment
            except KeyError:
                raise SpecError(
                    f"{self.path}: $ref {ref!r} at {self.where(uri, pointer)} points at nothing"
                ) from None
        raise SpecError(f"{self.path}: $ref loop at {self.where(uri, pointer)}")
