"""`clientkeys mock`: a stateless, validating mock of any OpenAPI 3.0 or 3.1 document.

Requests are checked against the spec (parameters, bodies, security); answers come from the
spec's examples, validated before they are sent, or from data generated from the schema.
The `Prefer` header picks the answer the way Stoplight Prism reads it:

    Prefer: code=404                 that documented status
    Prefer: example=cursor           that named example of the chosen response
    Prefer: dynamic=true             random data generated from the schema (valid against it)
    Prefer: delay=250                answer after 250 ms (at most MAX_DELAY_MS)

Several preferences combine: `Prefer: code=400, example=field, delay=100`. The engine is the
`clientkeys.openapi` package; this module builds it and reports what it found at start.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from starlette.types import ASGIApp

from clientkeys.config import SPEC_DIR, MockSettings
from clientkeys.openapi import responses
from clientkeys.openapi.asgi import ErrorDialect, MockApp
from clientkeys.openapi.document import Document, SpecError
from clientkeys.openapi.operations import Index
from clientkeys.openapi.responses import MAX_DELAY_MS, Prefer
from clientkeys.openapi.schemas import Schemas
from clientkeys.openapi.security import Tokens
from clientkeys.runtime import ops

__all__ = ["MAX_DELAY_MS", "InvalidExample", "Prefer", "Report", "SpecError", "create_mock_app"]
SUMMARY_LINES = 20
OWN_SPEC = SPEC_DIR.resolve() / "openapi.json"


class InvalidExample(ValueError):
    """With `strict`, examples that do not match their schema stop the start."""


@dataclass
class Report:
    """What the mock found at start: operations, examples, and what it had to work around."""

    operations: int = 0
    examples: int = 0
    invalid: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self, cap: int = SUMMARY_LINES) -> list[str]:
        """The start summary: counts, then one line per invalid example or problem (capped)."""
        out = [f"{self.operations} operations, {self.examples} examples checked."]
        for title, items in (
            (
                "example(s) do not match their schema; generated data is served instead",
                self.invalid,
            ),
            ("problem(s) in the spec were worked around", self.problems),
        ):
            if items:
                out.append(f"{len(items)} {title}:")
                out += [f"  {line}" for line in items[:cap]]
                if len(items) > cap:
                    out.append(f"  ... and {len(items) - cap} more")
        return out


def _dialect(spec_file: Path) -> type[ErrorDialect]:
    """clientkeys' own spec answers errors as the real server does; any other, generically."""
    if spec_file.resolve() == OWN_SPEC.resolve():
        from clientkeys.openapi.sentry import SentryErrors

        return SentryErrors
    return ErrorDialect


def served(app: MockApp) -> ASGIApp:
    """The mock behind the operations endpoints (`ops`): the docs page over its spec, whose
    files are served under /docs/spec/ as JSON (relative `$ref`s resolve there), and
    liveness. A path the spec defines itself stays the mock's."""
    document = app.document
    folder = document.path.parent
    files: dict[str, Callable[[], bytes]] = {}
    for uri, data in document.files.items():
        path = Path(unquote(urlparse(uri).path))
        if path.is_relative_to(folder):
            name = f"spec/{path.relative_to(folder).as_posix()}"
            served_data = _on_this_server(data) if uri == document.uri else data
            files[name] = functools.cache(partial(_as_json, served_data))
    info = document.root.get("info") if isinstance(document.root, dict) else None
    title = str((info or {}).get("title") or document.path.name)
    taken = frozenset(p for p in (ops.DOCS, ops.HEALTH, ops.METRICS) if app.index.router.match(p))
    return ops.OpsMiddleware(
        app, specs=[(title, f"spec/{document.path.name}")], documents=files, shadowed=taken
    )


def _on_this_server(root: Any) -> Any:
    """The root document with each server reduced to its path, so that the docs page's "Try
    it out" calls this mock (which serves every server's base path), not the real API."""
    if not isinstance(root, dict) or not isinstance(root.get("servers"), list):
        return root
    servers = [
        {**server, "url": urlparse(str(server.get("url", ""))).path or "/"}
        for server in root["servers"]
        if isinstance(server, dict)
    ]
    return {**root, "servers": servers}


def _as_json(data: Any) -> bytes:
    return json.dumps(data, default=str).encode()


def create_mock_app(
    spec_file: Path,
    tokens: Tokens = None,
    *,
    strict: bool = False,
    cors: bool = True,
    report: Report | None = None,
) -> MockApp:
    """The mock of a spec. SpecError for a document that cannot be mocked; with `strict`,
    InvalidExample when any example contradicts its schema."""
    document = Document(spec_file)
    schemas = Schemas(document)
    index = Index(document, schemas)
    count, invalid = responses.check_examples(index)
    if strict and invalid:
        raise InvalidExample("\n".join(f"Invalid example at {line}" for line in invalid))
    if report is not None:
        report.operations, report.examples = len(index.operations), count
        report.invalid, report.problems = invalid, list(dict.fromkeys(document.problems))
    return MockApp(document, schemas, index, tokens=tokens, cors=cors, dialect=_dialect(spec_file))


SHUTDOWN_SECONDS = 2
"""How long shutdown waits for answers still in flight (a `Prefer: delay` included)."""
FACTORY = "clientkeys.mock.app:app_from_env"


def app_from_env() -> ASGIApp:
    """The mock that `clientkeys mock --workers N` starts in each worker, from the settings
    the command resolved and put in the environment (`config.MockSettings`)."""
    settings = MockSettings.from_env()
    spec_file = settings.mock_spec or OWN_SPEC
    return served(create_mock_app(spec_file, settings.mock_tokens, cors=settings.mock_cors))
