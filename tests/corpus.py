"""The public API descriptions the mock is tried on, and a client that calls their operations.

`tests/data/corpus/manifest.json` lists every description: its package, version, licence and
file. Small ones are vendored next to it; large ones are downloaded from the npm registry at
test time into a cache outside the tree (`CLIENTKEYS_CORPUS_CACHE`, default
`~/.cache/clientkeys-corpus`), checked against the registry's sha512, never skipped.

`Caller` makes a valid request for an operation from the spec alone and checks the answer
with an independent validator (python-jsonschema with OpenAPI's dialects, on the document as
written): a documented status, and a body valid against the documented schema.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
from openapi_schema_validator import OAS30Validator, OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

from clientkeys.openapi.document import Document, escape
from clientkeys.openapi.generate import Generator
from clientkeys.openapi.operations import Index, Operation
from clientkeys.openapi.requests import is_json
from clientkeys.openapi.responses import INVALID, valid_value
from clientkeys.openapi.schemas import Schemas

CORPUS = Path(__file__).parent / "data" / "corpus"
MANIFEST = CORPUS / "manifest.json"
CACHE = Path(
    os.environ.get("CLIENTKEYS_CORPUS_CACHE", Path.home() / ".cache" / "clientkeys-corpus")
)


@dataclass(frozen=True)
class Entry:
    """One description of the corpus."""

    name: str
    package: str
    version: str
    licence: str
    file: str
    openapi: str
    operations: int
    operation_ids: str
    invalid_examples: int
    uncallable: list[str]
    tarball: str | None = None
    integrity: str | None = None

    @property
    def path(self) -> Path:
        """The description on disk, downloaded first if it is not vendored."""
        if self.tarball is None:
            return CORPUS / self.file
        return _downloaded(self)


def entries() -> list[Entry]:
    """Every description of the manifest."""
    return [Entry(**entry) for entry in json.loads(MANIFEST.read_text())["specs"]]


SAMPLE = 300  # operations called per description (all of them when it has fewer)


def _downloaded(entry: Entry) -> Path:
    target = CACHE / f"{entry.package.replace('/', '+')}-{entry.version}" / entry.file
    if target.exists():
        return target
    assert entry.tarball and entry.integrity
    with urllib.request.urlopen(entry.tarball, timeout=120) as response:  # noqa: S310 (npm)
        data = response.read()
    algorithm, _, expected = entry.integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    assert digest == expected, f"{entry.tarball}: {algorithm} mismatch"
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.extractfile(f"package/{entry.file}")
        assert member is not None
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(member.read())
        partial.replace(target)
    return target


class Unsatisfiable(Exception):
    """The spec admits no valid request for an operation (an impossible schema)."""


class Caller:
    """Makes valid requests for a document's operations and checks the mock's answers."""

    def __init__(self, path: Path) -> None:
        self.document = Document(path)
        self.schemas = Schemas(self.document)
        self.index = Index(self.document, self.schemas)
        self.generator = Generator(self.document, use_examples=False, schemas=self.schemas)
        self.generator.response = False
        original = Document(path)  # the files as written, for the independent check
        for uri in self.document.files:
            original.file(uri)
        spec = DRAFT4 if self.document.version == "3.0" else DRAFT202012
        self.registry: Registry[Any] = Registry().with_resources(
            (uri, Resource.from_contents(content, default_specification=spec))
            for uri, content in original.files.items()
        )
        self.validator_class = OAS30Validator if self.document.version == "3.0" else OAS31Validator

    def sample(self, count: int, seed: int = 0) -> list[Operation]:
        """`count` operations spread over the document (all of them if it has fewer)."""
        operations = self.index.operations
        if len(operations) <= count:
            return list(operations)
        return random.Random(seed).sample(operations, count)

    def request(self, operation: Operation) -> dict[str, Any]:
        """Keyword arguments for the test client: a request the spec says is valid."""
        path = operation.path
        query: dict[str, str] = {}
        headers: dict[str, str] = {}
        for parameter in operation.parameters:
            if not parameter.required:
                continue
            text = _text(self._valid(parameter.schema))
            if parameter.location == "path":
                path = path.replace("{" + parameter.name + "}", quote(text, safe=""))
            elif parameter.location == "query":
                query[parameter.name] = text
            elif parameter.location == "header":
                headers[parameter.name] = text
            elif parameter.location == "cookie":
                headers["Cookie"] = f"{parameter.name}={quote(text)}"
        headers.update(self._credentials(operation))
        query.update(self._query_credentials(operation))
        arguments: dict[str, Any] = {"method": operation.method.upper(), "url": path,
                                     "params": query, "headers": headers,
                                     "follow_redirects": False}  # fmt: skip
        if operation.body is not None:
            node, uri, pointer = operation.body
            content = node.get("content") or {}
            media = next((m for m in content if is_json(m.lower()) and m != "*/*"), None)
            if media is not None and "schema" in content[media]:
                at = f"{pointer}/content/{escape(media)}/schema"
                schema = self.document.resolve(content[media]["schema"], uri, at)
                arguments["content"] = json.dumps(self._valid(schema))
                headers["Content-Type"] = media
            elif content and node.get("required"):
                media = next(iter(content))
                arguments["content"] = b"x"
                headers["Content-Type"] = media
        return arguments

    def _valid(self, place: tuple[Any, str, str]) -> Any:
        """Generated data the mock's own validator accepts (None if the schema admits none)."""
        if not place[2] and not place[0]:
            return "x"
        made = valid_value(self.generator.value(*place), self.schemas.validator(place[1], place[2]))
        if made is INVALID:
            raise Unsatisfiable(f"no valid data for {place[1]}#{place[2]}")
        return made

    def _credentials(self, operation: Operation) -> dict[str, str]:
        if not operation.security or {} in operation.security:
            return {}
        headers: dict[str, str] = {}
        for name in operation.security[0]:
            scheme = self.index.security_schemes.get(name, {})
            kind = scheme.get("type")
            if kind == "apiKey" and scheme.get("in") == "header":
                headers[scheme["name"]] = "key"
            elif kind == "apiKey" and scheme.get("in") == "cookie":
                headers["Cookie"] = f"{scheme['name']}=key"
            elif kind == "http" and str(scheme.get("scheme")).lower() == "basic":
                headers["Authorization"] = "Basic " + base64.b64encode(b"user:pass").decode()
            elif kind in ("http", "oauth2", "openIdConnect"):
                headers["Authorization"] = "Bearer token"
        return headers

    def _query_credentials(self, operation: Operation) -> dict[str, str]:
        """apiKey credentials that travel in the query string."""
        found = {}
        for name in (operation.security or [{}])[0]:
            scheme = self.index.security_schemes.get(name, {})
            if scheme.get("type") == "apiKey" and scheme.get("in") == "query":
                found[scheme["name"]] = "key"
        return found

    def problems(self, operation: Operation, response: Any) -> list[str]:
        """What is wrong with an answer: an undocumented status, or a body the documented
        schema rejects (checked by python-jsonschema, not the mock's jsonschema-rs)."""
        status = str(response.status_code)
        responses = operation.responses
        if not responses:  # OpenAPI 3.1 allows an operation without responses
            ok = response.status_code == 200 and not response.content
            return (
                []
                if ok
                else [f"status {status} with {len(response.content)} bytes, none documented"]
            )
        key = next(
            (k for k in (status, status[0] + "XX", status[0] + "xx", "default") if k in responses),
            None,
        )
        if key is None:
            return [
                f"status {status} is not documented ({', '.join(responses)}): {response.text[:200]}"
            ]
        node, uri, pointer = responses[key]
        content = node.get("content") or {}
        media = response.headers.get("content-type", "").split(";")[0]
        if not content:
            return [] if not response.content else [f"{status}: a body where none is documented"]
        entry = next(
            (v for k, v in content.items() if k.split(";")[0].lower() == media.lower()), None
        )
        if entry is None:
            wildcard = any(k.endswith("/*") and media.startswith(k[:-1]) for k in content)
            return (
                []
                if wildcard
                else [f"{status}: content-type {media!r} not documented ({', '.join(content)})"]
            )
        if not isinstance(entry, dict) or "schema" not in entry or not is_json(media.lower()):
            return []
        at = f"{pointer}/content/{escape(next(k for k in content if content[k] is entry))}/schema"
        schema = {"$ref": f"{uri}#{quote(at, safe='/~!$&()*+,;=:@')}"}
        checker = self.validator_class.FORMAT_CHECKER
        validator = self.validator_class(schema, registry=self.registry, format_checker=checker)
        try:
            failures = [e.message for e in validator.iter_errors(response.json())]
        except (
            jsonschema.exceptions.SchemaError,
            jsonschema.exceptions._WrappedReferencingError,
        ) as exc:
            return [f"{status}: the independent validator cannot read the schema: {exc}"]
        return [f"{status} body: {message}" for message in failures[:3]]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(item) for item in value)
    if value is None:
        return ""
    if isinstance(value, dict):
        return ",".join(f"{k},{_text(v)}" for k, v in value.items())
    return str(value)
