"""Which rule of the contract a request or a response breaks, as precise violation records.

`Contract` indexes a resolved spec by method and path template; `check_response` checks an
answer against its operation (documented status, media type, required headers, body schema) the
way the server's own response validation does (Connexion's draft-4 validator with OpenAPI's
`nullable`, compiled validators on the fast path). `rejection_violations` turns the error a
validating server answers to a bad request into records naming the part of the request at fault.
Used by `clientkeys proxy`; nothing here does I/O.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import orjson
from connexion.json_schema import Draft4ResponseValidator
from jsonschema import Draft4Validator

from clientkeys.openapi import compiled
from clientkeys.openapi.specs import HTTP_METHODS

MAX_VALUE_CHARS = 200
"""An offending value longer than this is cut in a record."""
MAX_BODY_ERRORS = 10
"""Schema errors recorded per response body; the first ones name the problem."""
Broken = tuple[str, str, Any, str]
"""What a check finds: (rule, where, offending value, message)."""
_FORMATS = Draft4Validator.FORMAT_CHECKER


@dataclass(frozen=True)
class Violation:
    """One broken rule: who broke it (request: the client; response: the upstream), where."""

    side: str
    operation: str | None
    method: str
    path: str
    rule: str
    """request.auth, request.parameter, request.body, request.body-size, request.media-type,
    request.path, request.method; response.status, response.media-type, response.header,
    response.body; upstream.unreachable."""
    where: str
    """The field, parameter or header at fault ("" when it is the whole thing)."""
    value: Any
    message: str
    status: int | None
    """The status the client got."""

    def as_json(self) -> bytes:
        return orjson.dumps(asdict(self), default=str)


class Ledger:
    """Every violation seen and every exchange counted; each violation is also written as a JSON
    line to `log` as it happens."""

    def __init__(self, log: TextIO | None = None) -> None:
        self.violations: list[Violation] = []
        self.exchanges = 0
        self.unchecked = 0
        """Answers too large to keep whole, streamed through without a body check."""
        self._log = log
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.exchanges += 1

    def record(self, violations: Sequence[Violation]) -> None:
        with self._lock:
            self.violations.extend(violations)
            if self._log is not None:
                for violation in violations:
                    self._log.write(violation.as_json().decode() + "\n")
                self._log.flush()

    def summary(self) -> list[str]:
        """A few lines for the end of a run: totals, then each (operation, rule, where)."""
        sides = Counter(v.side for v in self.violations)
        by_side = ", ".join(f"{side} {n}" for side, n in sorted(sides.items()))
        total = f"{len(self.violations)} violations in {self.exchanges} exchanges"
        lines = [f"clientkeys proxy: {total}" + (f" ({by_side})" if by_side else "")]
        if self.unchecked:
            lines.append(f"  ({self.unchecked} answers were too large to check their bodies)")
        kinds = Counter((v.operation or v.path, v.rule, v.where) for v in self.violations)
        for (operation, rule, where), n in kinds.most_common():
            lines.append(f"  {n:>4}  {operation}  {rule}" + (f"  {where}" if where else ""))
        return lines


@dataclass(frozen=True)
class Route:
    """One operation of the contract."""

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
    """A resolved spec, indexed for finding the operation of a request."""

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


# Responses --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An upstream response as the proxy saw it; `body` is None when it was not kept whole."""

    method: str
    status: int
    headers: Mapping[str, str]
    """Lowercase names."""
    body: bytes | None


def check_response(route: Route, answer: Answer) -> Iterator[Broken]:
    """Each (rule, where, value, message) the answer breaks."""
    responses = route.operation.get("responses", {})
    status = answer.status
    documented = responses.get(str(status)) or responses.get(f"{status // 100}XX")
    documented = documented or responses.get("default")
    if documented is None:
        listed = ", ".join(str(key) for key in responses)
        yield "response.status", "", status, f"{status} is not documented (documented: {listed})"
        return
    yield from _check_headers(documented.get("headers", {}), answer.headers)
    if answer.method != "HEAD" and answer.body is not None:
        yield from _check_body(documented.get("content", {}), answer)


def _check_headers(documented: Mapping[str, Any], headers: Mapping[str, str]) -> Iterator[Broken]:
    for name, header in documented.items():
        value = headers.get(name.lower())
        if value is None:
            if header.get("required"):
                yield "response.header", name, None, f"required header {name} is missing"
            continue
        schema = header.get("schema")
        if schema and not compiled.accepts(schema, value):
            for error in Draft4Validator(schema, format_checker=_FORMATS).iter_errors(value):
                yield "response.header", name, _cut(value), error.message


def _check_body(content: Mapping[str, Any], answer: Answer) -> Iterator[Broken]:
    body = answer.body or b""
    if not content:
        if body:
            yield "response.body", "", _cut(body), "documented without a body"
        return
    media_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    media = _media(content, media_type)
    if media is None:
        listed = ", ".join(content)
        message = f"media type {media_type or '(none)'} is not documented (documented: {listed})"
        yield "response.media-type", "Content-Type", media_type or None, message
        return
    if "json" not in media_type or "schema" not in media:
        return
    try:
        data = orjson.loads(_decoded(body, answer.headers.get("content-encoding", "")))
    except (orjson.JSONDecodeError, zlib.error) as exc:
        yield "response.body", "", _cut(body), f"not JSON: {exc}"
        return
    schema = media["schema"]
    if compiled.accepts(schema, data):
        return
    validator = Draft4ResponseValidator(schema, format_checker=_FORMATS)
    for error in list(validator.iter_errors(data))[:MAX_BODY_ERRORS]:
        where = ".".join(str(p) for p in error.absolute_path)
        yield "response.body", where, _cut(error.instance), error.message


def _media(content: Mapping[str, Any], media_type: str) -> Mapping[str, Any] | None:
    """The documented media type object matching `media_type`, wildcards included."""
    family = media_type.split("/")[0]
    for candidate in (media_type, f"{family}/*", "*/*"):
        if candidate in content:
            found: Mapping[str, Any] = content[candidate]
            return found
    return None


def _decoded(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


# Requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadParameter:
    """A parameter the server's validation rejected, noted while it validated."""

    location: str
    name: str
    value: Any
    message: str


def rejection_violations(
    status: int, answer: bytes, parameters: Sequence[BadParameter], body: bytes
) -> Iterator[Broken]:
    """Each (rule, where, value, message) of the error a validating server answered to a bad
    request: `answer` is that error's body (Sentry's field errors, or `{"detail": ...}`),
    `parameters` the parameters its validation noted, `body` the request body."""
    rendered = _json_or_none(answer)
    if not isinstance(rendered, dict):
        rendered = {"detail": answer.decode("utf-8", "replace")}
    if status == 400 and not isinstance(rendered.get("detail"), str):  # field errors
        yield from _field_errors(rendered, _json_or_none(body), ())
        return
    detail = str(rendered.get("detail"))
    if status == 400 and parameters:
        for bad in parameters:
            yield "request.parameter", f"{bad.location}.{bad.name}", _cut(bad.value), bad.message
        return
    rule = {
        401: "request.auth", 403: "request.auth", 404: "request.path", 405: "request.method",
        413: "request.body-size", 415: "request.media-type",
    }.get(status, "request.body" if status == 400 else "request")  # fmt: skip
    yield rule, "", _cut(body) if rule == "request.body" else None, detail


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
