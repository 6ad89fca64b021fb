"""`clientkeys mock`: a stateless, validating mock of any OpenAPI 3.0 or 3.1 document.

Requests are checked against the spec (parameters, bodies, security); answers come from the
spec's examples, validated before they are sent, or from data generated from the schema.
The `Prefer` header picks the answer the way Stoplight Prism reads it:

    Prefer: code=404                 that documented status
    Prefer: example=cursor           that named example of the chosen response
    Prefer: dynamic=true             random data generated from the schema (valid against it)
    Prefer: delay=250                answer after 250 ms (at most MAX_DELAY_MS)

Several preferences combine: `Prefer: code=400, example=field, delay=100`. The engine is the
`clientkeys.mocking` package; this module builds it and reports what it found at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clientkeys.mocking import responses
from clientkeys.mocking.asgi import ErrorDialect, MockApp
from clientkeys.mocking.document import Document, SpecError
from clientkeys.mocking.operations import Index
from clientkeys.mocking.responses import MAX_DELAY_MS, Prefer
from clientkeys.mocking.schemas import Schemas
from clientkeys.mocking.security import Tokens

__all__ = ["MAX_DELAY_MS", "InvalidExample", "Prefer", "Report", "SpecError", "create_mock_app"]
SUMMARY_LINES = 20
OWN_SPEC = Path(__file__).resolve().parent / "spec" / "openapi.json"


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
        from clientkeys.mocking.sentry import SentryErrors

        return SentryErrors
    return ErrorDialect


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


ENV_SPEC, ENV_TOKENS, ENV_CORS = (
    "CLIENTKEYS_MOCK_SPEC",
    "CLIENTKEYS_MOCK_TOKENS",
    "CLIENTKEYS_MOCK_CORS",
)
SHUTDOWN_SECONDS = 2
"""How long shutdown waits for answers still in flight (a `Prefer: delay` included)."""


def env_of(spec_file: Path, tokens: Tokens, cors: bool) -> dict[str, str]:
    """The environment from which `app_from_env` builds the same mock in a worker."""
    env = {ENV_SPEC: str(spec_file.resolve()), ENV_CORS: "true" if cors else "false"}
    if tokens:
        env[ENV_TOKENS] = " ".join(f"{t}={','.join(sorted(s))}" for t, s in tokens.items())
    return env


def app_from_env() -> MockApp:
    """The mock that `clientkeys mock --workers N` starts in each worker (from environment)."""
    listed = os.environ.get(ENV_TOKENS)
    tokens: Mapping[str, frozenset[str]] | None = None
    if listed:
        tokens = {
            token: frozenset(filter(None, scopes.split(",")))
            for token, _, scopes in (entry.partition("=") for entry in listed.split(" "))
        }
    return create_mock_app(
        Path(os.environ[ENV_SPEC]), tokens, cors=os.environ.get(ENV_CORS, "true") == "true"
    )
