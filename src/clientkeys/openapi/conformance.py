"""Which rule of the contract a request or a response breaks, as precise violation records.

`ResponseChecks` checks an answer against its operation of the engine's index (documented
status, media type, required headers, body schema) with the engine's compiled schemas;
`refused` turns the pipeline's refusal of a request (`asgi.Refusal`) into records naming the
part of the request at fault. `Ledger` keeps them, up to a cap. `Redactor` takes the request's
credentials and secret-named fields out of records before they are kept or logged. `Contract`
and `check_response` do the same response checks over a bundled (dereferenced) spec, for
`check.probes`. Used by `clientkeys proxy` and `clientkeys check`; nothing here does I/O.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TextIO
from urllib.parse import parse_qsl

import orjson
from jsonschema import Draft4Validator

from clientkeys.openapi import compiled
from clientkeys.openapi.asgi import ErrorDialect, Refusal
from clientkeys.openapi.document import escape
from clientkeys.openapi.operations import Index, Operation
from clientkeys.openapi.requests import Checker, Incoming, match_media
from clientkeys.openapi.specs import HTTP_METHODS

MAX_VALUE_CHARS = 200
"""An offending value longer than this is cut in a record."""
MAX_BODY_ERRORS = 10
"""Schema errors recorded per response body; the first ones name the problem."""
MAX_KEPT = 1000
"""Violations a ledger keeps (and logs); the ones after are only counted."""
MAX_PER_EXCHANGE = 20
"""Violations kept from one exchange: a request breaking a rule a thousand times is one
problem, not a thousand records."""
Broken = tuple[str, str, Any, str]
"""What a check finds: (rule, where, offending value, message)."""
_FORMATS = Draft4Validator.FORMAT_CHECKER
_REQUEST_RULES = {"path": "request.path", "method": "request.method", "auth": "request.auth",
                  "media-type": "request.media-type", "dialect": "request"}  # fmt: skip


@dataclass(frozen=True)
class Violation:
    """One broken rule: who broke it (request: the client; response: the upstream), where."""

    side: str
    operation: str | None
    method: str
    path: str
    rule: str
    """request.target, request.parameter, request.body, request.body-size, request.media-type,
    request.auth, request.path, request.method, request.limit; response.status,
    response.media-type, response.header, response.body; upstream.unreachable."""
    where: str
    """The field, parameter or header at fault ("" when it is the whole thing)."""
    value: Any
    message: str
    status: int | None
    """The status the client got."""

    def as_json(self) -> bytes:
        return orjson.dumps(asdict(self), default=str)


class Ledger:
    """The violations seen and the exchanges counted. The first `cap` violations are kept and
    each is written as a JSON line to `log` as it happens; later ones are only counted
    (`dropped`), so that a client in a loop cannot fill the memory or the log."""

    def __init__(self, log: TextIO | None = None, cap: int = MAX_KEPT) -> None:
        self.violations: list[Violation] = []
        self.redactor = Redactor()
        """Applied to every record before it is kept or logged (the proxy sets its document's)."""
        self.exchanges = 0
        self.dropped = 0
        self.unchecked = 0
        """Answers too large to keep whole, streamed through without a body check."""
        self.cap = cap
        self._log = log
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """Every violation seen, kept or dropped."""
        return len(self.violations) + self.dropped

    def count(self) -> None:
        with self._lock:
            self.exchanges += 1

    def record(
        self, violations: Sequence[Violation], secrets: frozenset[str] = frozenset()
    ) -> None:
        """Keep and log `violations`, without `secrets` (the values the exchange's request
        carries as credentials, `Redactor.secrets`) nor any secret-named field."""
        with self._lock:
            room = max(0, min(self.cap - len(self.violations), MAX_PER_EXCHANGE))
            kept = [self.redactor.violation(v, secrets) for v in violations[:room]]
            self.dropped += len(violations) - len(kept)
            self.violations.extend(kept)
            if self._log is not None:
                for violation in kept:
                    self._log.write(violation.as_json().decode() + "\n")
                self._log.flush()

    def clear(self) -> None:
        with self._lock:
            self.violations.clear()
            self.dropped = 0

    def summary(self) -> list[str]:
        """A few lines for the end of a run: totals, then each (operation, rule, where)."""
        sides = Counter(v.side for v in self.violations)
        by_side = ", ".join(f"{side} {n}" for side, n in sorted(sides.items()))
        total = f"{self.total} violations in {self.exchanges} exchanges"
        lines = [f"clientkeys proxy: {total}" + (f" ({by_side})" if by_side else "")]
        if self.dropped:
            lines.append(f"  ({self.dropped} not kept: at most {self.cap} are kept, "
                         f"{MAX_PER_EXCHANGE} per exchange)")  # fmt: skip
        if self.unchecked:
            lines.append(f"  ({self.unchecked} answers were too large to check their bodies)")
        kinds = Counter((v.operation or v.path, v.rule, v.where) for v in self.violations)
        for (operation, rule, where), n in kinds.most_common():
            lines.append(f"  {n:>4}  {operation}  {rule}" + (f"  {where}" if where else ""))
        return lines


# Secrets ----------------------------------------------------------------------------------------

REDACTED = "[redacted]"
SECRET_NAME = re.compile(
    r"secret|passw(or)?d|token|api[-_]?key|access[-_]?key|private[-_]?key|credential"
    r"|authorization|signature",
    re.IGNORECASE,
)
"""A header, query parameter or body field with a name like these holds a secret."""
MIN_SECRET_CHARS = 3
"""Shorter values are not searched for in text: replacing every "a" would only garble it."""


class Redactor:
    """Takes secrets out of violation records: the values of credential headers, of query
    parameters and body fields named like a secret (or as one of the document's apiKey security
    schemes names its parameter), wherever they show up in a record's value or message."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = frozenset(name.lower() for name in names)

    @classmethod
    def of(cls, document: Any) -> Redactor:
        """For a document's root: its apiKey schemes' parameter names are secrets too."""
        components = document.get("components") if isinstance(document, Mapping) else None
        schemes = (components or {}).get("securitySchemes") or {}
        return cls(str(s.get("name", "")) for s in schemes.values()
                   if isinstance(s, Mapping) and s.get("type") == "apiKey")  # fmt: skip

    def is_secret(self, name: str) -> bool:
        return name.lower() in self.names or SECRET_NAME.search(name) is not None

    def secrets(
        self, headers: Mapping[str, str], query: Sequence[tuple[str, str]], body: bytes
    ) -> frozenset[str]:
        """The secret values a request carries (a credential header whole and after its scheme
        word, secret-named query parameters and JSON or form body fields)."""
        found: set[str] = set()
        for name, value in headers.items():
            if name.lower() == "cookie":  # only the cookies named like a secret
                pairs = (part.strip().partition("=") for part in value.split(";"))
                found.update(v for k, _, v in pairs if self.is_secret(k))
            elif self.is_secret(name):
                found.add(value)
                found.update(part.partition("=")[2] or part for part in re.split(r"[;,\s]+", value))
        found.update(value for name, value in query if self.is_secret(name))
        found.update(self._body_secrets(body, headers.get("content-type", "")))
        return frozenset(s.strip() for s in found if len(s.strip()) >= MIN_SECRET_CHARS)

    def _body_secrets(self, body: bytes, media: str) -> Iterator[str]:
        if "form-urlencoded" in media:
            pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
            yield from (value for name, value in pairs if self.is_secret(name))
            return
        yield from self._walk(_json_or_none(body))

    def _walk(self, node: Any) -> Iterator[str]:
        if isinstance(node, Mapping):
            for name, value in node.items():
                if self.is_secret(str(name)) and isinstance(value, (str, int, float)):
                    yield str(value)
                else:
                    yield from self._walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from self._walk(item)

    def violation(self, violation: Violation, secrets: frozenset[str]) -> Violation:
        """The record with every secret replaced by REDACTED."""
        named = violation.where.replace("/", ".").split(".")[-1]
        value = (
            REDACTED if named and self.is_secret(named) else self._value(violation.value, secrets)
        )
        return replace(violation, value=value, message=_scrubbed(violation.message, secrets),
                       path=_scrubbed(violation.path, secrets))  # fmt: skip

    def scrub(self, text: str, secrets: frozenset[str]) -> str:
        """`text` with each of `secrets` replaced by REDACTED."""
        return _scrubbed(text, secrets)

    def _value(self, value: Any, secrets: frozenset[str]) -> Any:
        if isinstance(value, Mapping):
            return {k: REDACTED if self.is_secret(str(k)) else self._value(v, secrets)
                    for k, v in value.items()}  # fmt: skip
        if isinstance(value, list):
            return [self._value(item, secrets) for item in value]
        if isinstance(value, str):
            return _scrubbed(value, secrets)
        if value is not None and not isinstance(value, bool) and str(value) in secrets:
            return REDACTED
        return value


def _scrubbed(text: str, secrets: frozenset[str]) -> str:
    # Longest first: a secret that contains another is replaced whole.
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


# Responses --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An upstream response as the proxy saw it; `body` is None when it was not kept whole."""

    method: str
    status: int
    headers: Mapping[str, str]
    """Lowercase names."""
    body: bytes | None


def _documented_key(responses: Mapping[str, Any], status: int) -> str | None:
    candidates = (str(status), f"{status // 100}XX", f"{status // 100}xx", "default")
    return next((key for key in candidates if key in responses), None)


def _undocumented(responses: Mapping[str, Any], status: int) -> Broken:
    listed = ", ".join(str(key) for key in responses)
    return "response.status", "", status, f"{status} is not documented (documented: {listed})"


class ResponseChecks:
    """Answers checked against the operations of one document, on its compiled schemas."""

    def __init__(self, index: Index) -> None:
        self.document, self.schemas = index.document, index.schemas
        self.checker = Checker(index.document, index.schemas)

    def check(self, operation: Operation, answer: Answer) -> Iterator[Broken]:
        """Each (rule, where, value, message) the answer breaks."""
        key = _documented_key(operation.responses, answer.status)
        if key is None:
            if operation.responses:  # OpenAPI 3.1 lets an operation document no response
                yield _undocumented(operation.responses, answer.status)
            return
        node, uri, pointer = operation.responses[key]
        yield from self._headers(node.get("headers") or {}, uri, pointer, answer.headers)
        if answer.method != "HEAD" and answer.body is not None:
            yield from self._body(node.get("content") or {}, uri, pointer, answer)

    def _headers(
        self, documented: Any, uri: str, pointer: str, headers: Mapping[str, str]
    ) -> Iterator[Broken]:
        for name, header in documented.items() if isinstance(documented, dict) else []:
            node, h_uri, h_at = self.document.resolve(
                header, uri, f"{pointer}/headers/{escape(name)}"
            )
            if not isinstance(node, dict) or name.lower() == "content-type":
                continue  # OpenAPI: a Content-Type header is described by `content`
            value = headers.get(name.lower())
            if value is None:
                if node.get("required"):
                    yield "response.header", name, None, f"required header {name} is missing"
                continue
            if "schema" not in node:
                continue
            schema, s_uri, s_at = self.document.resolve(node["schema"], h_uri, f"{h_at}/schema")
            data = self.checker.coerce(value, schema, s_uri, s_at)
            for error in _schema_errors(self.schemas.validator(s_uri, s_at), data):
                yield "response.header", name, _cut(value), error.message

    def _body(self, content: Any, uri: str, pointer: str, answer: Answer) -> Iterator[Broken]:
        body = answer.body or b""
        if not content:
            if body:
                yield "response.body", "", _cut(body), "documented without a body"
            return
        media_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
        key = match_media(content, media_type) if media_type else None
        if key is None:
            yield _undocumented_media(content, media_type)
            return
        entry = content[key]
        if "json" not in media_type or not isinstance(entry, dict) or "schema" not in entry:
            return
        data = _json_body(body, answer.headers)
        if isinstance(data, _NotJson):
            yield "response.body", "", _cut(body), f"not JSON: {data.reason}"
            return
        at = f"{pointer}/content/{escape(key)}"
        _, s_uri, s_at = self.document.resolve(entry["schema"], uri, f"{at}/schema")
        for error in _schema_errors(self.schemas.validator(s_uri, s_at), data):
            where = ".".join(str(step) for step in error.instance_path)
            yield "response.body", where, _cut(error.instance), error.message


def _schema_errors(validator: Any, data: Any) -> list[Any]:
    """The first MAX_BODY_ERRORS errors of a compiled validator (none for a value it cannot
    take, such as a lone surrogate: nothing to say about it that would be true)."""
    try:
        if validator.is_valid(data):
            return []
        errors = []
        for error in validator.iter_errors(data):
            errors.append(error)
            if len(errors) >= MAX_BODY_ERRORS:
                break
        return errors
    except (UnicodeEncodeError, ValueError, OverflowError):
        return []


def _undocumented_media(content: Mapping[str, Any], media_type: str) -> Broken:
    listed = ", ".join(content)
    message = f"media type {media_type or '(none)'} is not documented (documented: {listed})"
    return "response.media-type", "Content-Type", media_type or None, message


@dataclass(frozen=True)
class _NotJson:
    reason: str


def _json_body(body: bytes, headers: Mapping[str, str]) -> Any:
    try:
        return orjson.loads(_decoded(body, headers.get("content-encoding", "")))
    except (orjson.JSONDecodeError, zlib.error) as exc:
        return _NotJson(str(exc))


def _decoded(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


# Responses over a bundled spec (check.probes) ---------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One operation of a bundled spec."""

    method: str
    template: str
    operation: Mapping[str, Any]
    pattern: re.Pattern[str]
    parameters: tuple[Mapping[str, Any], ...] = ()
    """The path item's parameters and the operation's (which win), as OpenAPI merges them."""

    @property
    def operation_id(self) -> str:
        return str(self.operation.get("operationId") or f"{self.method} {self.template}")


class Contract:
    """A bundled (dereferenced) spec, indexed for finding the operation of a request."""

    def __init__(self, spec: Mapping[str, Any], base_path: str = "") -> None:
        self.spec = spec
        self.routes = [
            Route(method.upper(), path, item[method], _template_pattern(path),
                  _merged(item.get("parameters", []), item[method].get("parameters", [])))
            for path, item in ((base_path + t, i) for t, i in spec.get("paths", {}).items())
            for method in HTTP_METHODS
            if method in item
        ]  # fmt: skip

    def route(self, method: str, path: str) -> Route | None:
        """The operation a request is for; HEAD counts as GET."""
        method = "GET" if method == "HEAD" else method
        return next((r for r in self.routes if r.method == method and r.pattern.match(path)), None)


def _merged(
    shared: Sequence[Mapping[str, Any]], own: Sequence[Mapping[str, Any]]
) -> tuple[Mapping[str, Any], ...]:
    by_key = {(p.get("name"), p.get("in")): p for p in [*shared, *own]}
    return tuple(by_key.values())


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/}]+\})", template)
    return re.compile(
        "^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$"
    )


def check_response(route: Route, answer: Answer) -> Iterator[Broken]:
    """Each (rule, where, value, message) the answer breaks, for an operation of a bundled
    spec: its schemas as JSON Schema draft 4 (`nullable` as a `null` type)."""
    responses = route.operation.get("responses", {})
    key = _documented_key(responses, answer.status)
    if key is None:
        yield _undocumented(responses, answer.status)
        return
    documented = responses[key]
    for name, header in documented.get("headers", {}).items():
        value = answer.headers.get(name.lower())
        if value is None:
            if header.get("required"):
                yield "response.header", name, None, f"required header {name} is missing"
        elif header.get("schema"):
            for _, _, message in _draft4_errors(header["schema"], value):
                yield "response.header", name, _cut(value), message
    if answer.method != "HEAD" and answer.body is not None:
        yield from _bundled_body(documented.get("content", {}), answer)


def _bundled_body(content: Mapping[str, Any], answer: Answer) -> Iterator[Broken]:
    body = answer.body or b""
    if not content:
        if body:
            yield "response.body", "", _cut(body), "documented without a body"
        return
    media_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    key = match_media(content, media_type) if media_type else None
    if key is None:
        yield _undocumented_media(content, media_type)
        return
    if "json" not in media_type or "schema" not in content[key]:
        return
    data = _json_body(body, answer.headers)
    if isinstance(data, _NotJson):
        yield "response.body", "", _cut(body), f"not JSON: {data.reason}"
        return
    for where, instance, message in _draft4_errors(content[key]["schema"], data):
        yield "response.body", where, _cut(instance), message


def _draft4_errors(schema: Any, data: Any) -> list[tuple[str, Any, str]]:
    if compiled.accepts(schema, data):
        return []
    validator = Draft4Validator(compiled.to_json_schema(schema), format_checker=_FORMATS)
    return [
        (".".join(str(p) for p in error.absolute_path), error.instance, error.message)
        for error in list(validator.iter_errors(data))[:MAX_BODY_ERRORS]
    ]


# Requests ---------------------------------------------------------------------------------------


def refused(
    refusal: Refusal, operation: Operation | None, incoming: Incoming | None, errors: ErrorDialect
) -> Iterator[Broken]:
    """Each (rule, where, value, message) of a request the pipeline refused: one record for
    its path, method, credentials or media type; one per parameter and per body field for an
    invalid one, in the words of the dialect's answer when it names fields (Sentry's)."""
    if refusal.rule in _REQUEST_RULES or operation is None or incoming is None:
        rule = _REQUEST_RULES.get(refusal.rule, "request")
        yield rule, "", None, _detail(refusal.answer.body)
        return
    body_problems = [p for p in refusal.problems if p.location == "body"]
    for problem in refusal.problems:
        if problem.location != "body":
            where = f"{problem.location}.{problem.name}"
            yield (
                "request.parameter",
                where,
                _cut(problem.value),
                errors.explain(operation, problem, incoming),
            )
    if not body_problems:
        return
    rendered = _json_or_none(errors.invalid(operation, body_problems, incoming).body)
    sent = _json_or_none(incoming.body)
    if _is_field_errors(rendered):
        yield from _field_errors(rendered, sent, ())
        return
    for problem in body_problems:
        path = tuple(
            step.replace("~1", "/").replace("~0", "~") for step in problem.name.split("/")[1:]
        )
        value = _lookup(sent, path) if path else _cut(incoming.body)
        yield "request.body", ".".join(path), value, problem.message


def _detail(answer: bytes) -> str:
    rendered = _json_or_none(answer)
    if isinstance(rendered, dict) and isinstance(rendered.get("detail"), str):
        return str(rendered["detail"])
    return answer.decode("utf-8", "replace")[:MAX_VALUE_CHARS]


def _is_field_errors(rendered: Any) -> bool:
    """Sentry's (DRF's) field errors: `{"name": ["message"], "rateLimit": {"count": [...]}}`."""
    return (
        isinstance(rendered, dict)
        and bool(rendered)
        and all(
            _is_field_errors(v) or (isinstance(v, list) and all(isinstance(m, str) for m in v))
            for v in rendered.values()
        )
    )


def _field_errors(errors: Mapping[str, Any], body: Any, at: tuple[str, ...]) -> Iterator[Broken]:
    for name, messages in errors.items():
        path = (*at, name)
        if isinstance(messages, Mapping):
            yield from _field_errors(messages, body, path)
            continue
        value = _lookup(body, path)
        for message in messages:
            yield (
                "request.body",
                ".".join(p for p in path if p != "non_field_errors"),
                value,
                message,
            )


def _lookup(body: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if name == "non_field_errors":
            return _cut(body)
        if isinstance(body, list) and name.isdigit() and int(name) < len(body):
            body = body[int(name)]
            continue
        if not isinstance(body, Mapping):
            return None
        body = body.get(name)
    return _cut(body)


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _cut(value: Any) -> Any:
    """The value as a record keeps it: long strings and big structures are cut."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "…"
    if isinstance(value, (dict, list)):
        text = orjson.dumps(value, default=str).decode()
        return value if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"
    return value
