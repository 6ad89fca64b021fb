"""The mock as a plain ASGI app: CORS, routing, security, validation, `Prefer`, the answer.

No framework sits between uvicorn and these steps: routing is a segment tree, validators are
compiled once per schema, static bodies are serialized once. Errors the mock makes itself
(not documented answers) go through an `ErrorDialect`: the generic one answers 422 for an
invalid request, naming each parameter or field and why; `sentry.py` speaks Sentry's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from clientkeys.openapi.document import Document
from clientkeys.openapi.operations import Index, Operation
from clientkeys.openapi.requests import (
    Checker,
    Incoming,
    Problem,
    UnsupportedMedia,
    cookies,
    grouped,
)
from clientkeys.openapi.responses import Answer, Prefer, PreferError, Responder, Unmockable
from clientkeys.openapi.schemas import Schemas
from clientkeys.openapi.security import Credentials, Denied, Tokens, check

logger = logging.getLogger(__name__)
VALIDATION_STATUS = 422
CORS_MAX_AGE = "86400"


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status, orjson.dumps(body), "application/json", dict(headers or {}))


class ErrorDialect:
    """How the mock words the errors it makes itself: `{"detail": ..., "errors": [...]}`."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def invalid(self, operation: Operation, problems: list[Problem], incoming: Incoming) -> Answer:
        """422 naming every parameter or field that is wrong, and why."""
        return _json(VALIDATION_STATUS, {
            "detail": "Invalid request: " + "; ".join(p.describe() for p in problems),
            "errors": [{"in": p.location, "name": p.name, "message": p.message} for p in problems],
        })  # fmt: skip

    def refuse(self, operation: Operation, incoming: Incoming) -> Answer | None:
        """A refusal of the dialect's own, for a request the document's security let through,
        before its request checks; None (this one's) leaves the request to them."""
        return None

    def explain(self, operation: Operation, problem: Problem, incoming: Incoming) -> str:
        """What a violation record says about one problem of a request."""
        return problem.message

    def denied(self, operation: Operation, denied: Denied, incoming: Incoming) -> Answer:
        """The operation's documented 401 (or 403) when there is one, else the mock's."""
        headers = {"WWW-Authenticate": denied.challenge} if denied.challenge else {}
        if str(denied.status) in operation.responses:
            answer = self.responder.answer(operation, Prefer(code=str(denied.status)), None)
            answer.headers.update(headers)
            return answer
        return _json(denied.status, {"detail": denied.detail}, headers)

    def not_found(self, method: str, path: str) -> Answer:
        """404: no path template of the spec matches."""
        return _json(404, {"detail": f"No operation of the spec matches {method} {path}."})

    def not_allowed(self, method: str, allowed: list[str]) -> Answer:
        """405 with the path's documented methods in `Allow`."""
        return _json(405, {"detail": f"Method {method} is not documented for this path."},
                     {"Allow": ", ".join(allowed)})  # fmt: skip

    def unsupported(self, error: UnsupportedMedia) -> Answer:
        """415: a body in a media type the operation does not take."""
        return _json(415, {"detail": str(error)})

    def too_large(self, limit: int) -> Answer:
        """413: a body over the limit."""
        return _json(413, {"detail": f"Request body is larger than {limit} bytes."})

    def bad_prefer(self, message: str) -> Answer:
        """400: a Prefer header asking for what the operation does not document."""
        return _json(400, {"detail": message})

    def unmockable(self, message: str) -> Answer:
        """500: no valid body could be made (or the mock failed); never an invalid body."""
        return _json(500, {"detail": message})


class DocumentedErrors(ErrorDialect):
    """The document's own answer to an invalid request: its documented 400 (or 422, 4XX,
    default) with its example, or a body made valid against its schema; the generic 422 only
    when it documents none (or none can be made)."""

    INVALID_CODES = ("400", "422", "4XX", "4xx", "default")

    def invalid(self, operation: Operation, problems: list[Problem], incoming: Incoming) -> Answer:
        key = next((k for k in self.INVALID_CODES if k in operation.responses), None)
        if key is None:
            return super().invalid(operation, problems, incoming)
        prefer = Prefer(code=key if key.isdigit() else "400")
        try:
            return self.responder.answer(operation, prefer, incoming.headers.get("accept"))
        except Unmockable:
            return super().invalid(operation, problems, incoming)


@dataclass(frozen=True)
class Refusal:
    """Why the pipeline refuses a request, and the answer its dialect gives."""

    answer: Answer
    rule: str
    """What is wrong: path, method, auth, media-type, a refusal of the dialect's own
    (`dialect`), or parameters and body (`invalid`, with the `problems`)."""
    problems: list[Problem] = field(default_factory=list)


class Pipeline:
    """The steps every app of a document shares, before it produces an answer: route, check
    the credentials, check the parameters and body. The mock answers from the document; the
    proxy forwards to its upstream. Refusals are worded by the app's `ErrorDialect`."""

    def __init__(
        self,
        document: Document,
        schemas: Schemas,
        index: Index,
        *,
        tokens: Tokens = None,
        dialect: type[ErrorDialect] = ErrorDialect,
        strict_query: bool = False,
    ) -> None:
        self.document, self.schemas, self.index = document, schemas, index
        self.checker = Checker(document, schemas)
        self.responder = Responder(document, schemas)
        self.errors = dialect(self.responder)
        self.tokens = tokens
        self.strict_query = strict_query
        """Refuse query parameters the operation does not describe (as serve does)."""
        self._query_keys = frozenset(
            str(s.get("name")) for s in index.security_schemes.values()
            if s.get("type") == "apiKey" and s.get("in") == "query"
        )  # fmt: skip

    def route(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | Refusal:
        """The operation for a request and its raw path values; or the 404 or 405."""
        matched = self.index.router.match(path)
        if matched is None:
            return Refusal(self.errors.not_found(method, path), "path")
        operations, raw_values = matched
        operation = operations.get(method.lower()) or (
            operations.get("get") if method == "HEAD" else None
        )
        if operation is None:
            return Refusal(self.errors.not_allowed(method, _allowed(operations)), "method")
        return operation, dict(zip(operation.path_names, raw_values, strict=False))

    def judge(self, operation: Operation, incoming: Incoming) -> Refusal | None:
        """None for a request that keeps the contract; else why not, and the answer."""
        credentials = Credentials(
            incoming.headers, grouped(incoming.query), cookies(incoming.headers.get("cookie", ""))
        )
        denied = check(operation.security, self.index.security_schemes, credentials, self.tokens)
        if denied is not None:
            return Refusal(self.errors.denied(operation, denied, incoming), "auth")
        try:
            refused = self.errors.refuse(operation, incoming)
            if refused is not None:
                return Refusal(refused, "dialect")
            problems = self.checker.problems(operation, incoming)
        except UnsupportedMedia as error:
            return Refusal(self.errors.unsupported(error), "media-type")
        if self.strict_query:
            problems = self.checker.unknown_query(operation, incoming, self._query_keys) + problems
        if problems:
            return Refusal(self.errors.invalid(operation, problems, incoming), "invalid", problems)
        return None


class MockApp(Pipeline):
    """The ASGI app of one document."""

    def __init__(
        self,
        document: Document,
        schemas: Schemas,
        index: Index,
        *,
        tokens: Tokens = None,
        cors: bool = True,
        max_body_bytes: int = 1 << 20,
        dialect: type[ErrorDialect] = ErrorDialect,
    ) -> None:
        super().__init__(document, schemas, index, tokens=tokens, dialect=dialect)
        self.cors = cors
        self.max_body_bytes = max_body_bytes

    def test_client(self) -> Any:
        """Starlette's test client over this app (as Connexion apps offer)."""
        from starlette.testclient import TestClient

        return TestClient(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = request_headers(scope)
        method, path = scope["method"], request_path(scope)
        try:
            answer, delay = await self._answer(method, path, scope, headers, receive)
        except Exception:  # a bug of the mock must not cost the client its connection
            logger.exception("The mock failed on %s %s", method, path)
            answer, delay = self.errors.unmockable(f"The mock failed on {method} {path}."), 0
        if delay:
            await asyncio.sleep(delay / 1000)
        await self._send(send, answer, method, path, headers)

    async def _answer(
        self, method: str, path: str, scope: Scope, headers: dict[str, str], receive: Receive
    ) -> tuple[Answer, int]:
        if method == "OPTIONS" and self.cors and "access-control-request-method" in headers:
            return self._preflight(path, headers), 0
        routed = self.route(method, path)
        if isinstance(routed, Refusal):
            return routed.answer, 0
        operation, values = routed
        # Decided before the first receive(): uvicorn sends `100 Continue` on that call, and a
        # client waiting for it must hear 413 instead of being asked for a body we will refuse.
        if declared_over(headers, self.max_body_bytes):
            refused = self.errors.too_large(self.max_body_bytes)
            # The body was never read: a client that sends it anyway must not have it taken for
            # its next request, so this connection ends with the answer.
            refused.headers = {**refused.headers, "Connection": "close"}
            return refused, 0
        body = await _read(receive, self.max_body_bytes)
        if body is None:
            return self.errors.too_large(self.max_body_bytes), 0
        incoming = Incoming(values, query_pairs(scope.get("query_string", b"")), headers, body)
        return self._operation_answer(operation, incoming)

    def _operation_answer(self, operation: Operation, incoming: Incoming) -> tuple[Answer, int]:
        """Security, validation and the answer for a request routed to `operation`."""
        try:
            prefer = Prefer.parse(incoming.headers.get("prefer"))
            refusal = self.judge(operation, incoming)
            if refusal is not None:
                return refusal.answer, 0
            answer = self.responder.answer(operation, prefer, incoming.headers.get("accept"))
            return answer, prefer.delay_ms
        except PreferError as error:
            return self.errors.bad_prefer(str(error)), 0
        except Unmockable as error:
            return self.errors.unmockable(f"{operation.name}: {error}"), 0

    def _preflight(self, path: str, headers: Mapping[str, str]) -> Answer:
        matched = self.index.router.match(path)
        if matched is None:
            return self.errors.not_found("OPTIONS", path)
        allowed = _allowed(matched[0])
        return Answer(204, headers={
            "Access-Control-Allow-Methods": ", ".join(allowed),
            "Access-Control-Allow-Headers": headers.get("access-control-request-headers", "*"),
            "Access-Control-Max-Age": CORS_MAX_AGE,
        })  # fmt: skip

    async def _send(
        self, send: Send, answer: Answer, method: str, path: str, request: Mapping[str, str]
    ) -> None:
        out = [
            (name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
            for name, value in answer.headers.items()
        ]
        if answer.media is not None:
            out.append((b"content-type", answer.media.encode("latin-1")))
        if self.cors:
            out.append((b"access-control-allow-origin", b"*"))
            exposed = ", ".join(answer.headers) or "*"
            out.append((b"access-control-expose-headers", exposed.encode("latin-1", "replace")))
        out.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else answer.body})


def _allowed(operations: Mapping[str, Operation]) -> list[str]:
    methods = [m.upper() for m in operations]
    return methods + (["HEAD"] if "GET" in methods and "HEAD" not in methods else [])


def query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """A query string's (name, value) pairs, blank values kept."""
    return parse_qsl(raw.decode("latin-1"), keep_blank_values=True)


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lowercase name; repeated ones joined with ", "."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def request_path(scope: Scope) -> str:
    """The path as sent (still percent-encoded: the router decodes each segment itself)."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1").split("?")[0] if raw else str(scope["path"])


def declared_over(headers: Mapping[str, str], limit: int) -> bool:
    """Whether the request's Content-Length already says its body is over `limit` bytes."""
    declared = headers.get("content-length", "").strip()
    return declared.isdigit() and int(declared) > limit


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is over `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
