"""`clientkeys proxy`: forwards every request to an upstream server and checks both directions
against a description, on the spec engine (`clientkeys.openapi`).

The proxy is the mock's pipeline with another last step: a request is routed, its credentials,
parameters and body are checked (`asgi.Pipeline`), and instead of an answer made up from the
document it gets the upstream's, which is checked in turn (`conformance.ResponseChecks`)::

    LimitedHttpToolsProtocol  the request head: 414 and 431 before the app sees anything
    ProxyApp                  counts exchanges, serves /__proxy/violations (to the bearer of
                              its admin token only); refuses a request
                              target that is not origin-form (400) and too many query
                              parameters (400); the body limit (guards.BodyLimitMiddleware)
    Pipeline                  route, security (any credential of the right form: the upstream
                              judges them), parameters and body; a refusal is recorded, then
                              answered in the document's own words (enforce) or the request is
                              forwarded anyway (report)
    Upstream                  forwards (aiohttp), streams the answer back, checks it

The upstream URL is only ever the configured one followed by an origin-form path. Forwarding
uses aiohttp (measured in bench/proxy.py: httpx added about twice the latency). Request bodies
are read whole (they are checked, and the body limit bounds them); answers stream through, and
the last chunk is held until the answer has been checked, so a violation is listed before the
client has its answer. Records carry no secrets: the request's credentials, secret-named query
parameters and body fields are redacted (`conformance.Redactor`) before a record is kept or logged.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import signal
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import yarl
from multidict import CIMultiDict
from starlette.types import Message, Receive, Scope, Send

from clientkeys.config import SPEC_DIR
from clientkeys.core.errors import ClientKeysError, PayloadTooLarge
from clientkeys.openapi import compiled
from clientkeys.openapi.asgi import Pipeline, Refusal, query_pairs, request_headers, request_path
from clientkeys.openapi.conformance import (
    Answer,
    Ledger,
    Redactor,
    ResponseChecks,
    Violation,
    refused,
)
from clientkeys.openapi.document import Document
from clientkeys.openapi.operations import Index, Operation
from clientkeys.openapi.requests import Incoming
from clientkeys.openapi.responses import Answer as Made
from clientkeys.openapi.schemas import Schemas
from clientkeys.proxy.dialect import dialect_for
from clientkeys.runtime import runner
from clientkeys.runtime.guards import BodyLimitMiddleware, check_query_count
from clientkeys.runtime.uvicorn_hooks import TARGET

MODES = ("report", "enforce")
VIOLATIONS_PATH = "/__proxy/violations"
OWN_SPEC = SPEC_DIR / "openapi.json"
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host"}
)  # fmt: skip
_HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
_ADDED = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
"""Headers aiohttp would add when the client did not send them: the upstream gets the client's."""
KEEPALIVE_SECONDS = 3.0
"""How long an idle connection to the upstream is kept: less than uvicorn's 5 s, so that the
proxy rarely reuses one the upstream is closing just then (a POST cannot be sent again)."""
MAX_CHECKED_BYTES = 16 * 1024 * 1024
"""An answer larger than this streams through unchecked (and is counted as such)."""
SECRETS = "clientkeys.secrets"
"""The scope key of the secret values the request carries (`Redactor.secrets`)."""
UNAUTHORIZED = {"detail": "Authentication credentials were not provided."}


@dataclass
class Exchange:
    """What the proxy has read of one request's body so far."""

    body: list[bytes] = field(default_factory=list)
    more_body: bool = True


# Forwarding -------------------------------------------------------------------------------------


class Upstream:
    """The server behind the proxy: sends it a request, streams its answer back, checks it."""

    def __init__(
        self, base_url: str, checks: ResponseChecks, ledger: Ledger, rewrite_urls: bool
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The upstream's URLs, DSNs included (`https://<key>@host/1`), for --rewrite-urls.
        netloc = urlsplit(self.base_url).netloc.encode()
        self.urls = re.compile(rb"https?://([^/@\s\"'<>]*@)?" + re.escape(netloc) + rb"(?![\w.:-])")
        self.checks, self.ledger, self.rewrite_urls = checks, ledger, rewrite_urls
        self._session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        """One connection pool to the upstream for the life of the app. No cookie jar: the
        proxy must not carry one client's cookies to another."""
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS),
            timeout=timeout, auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as session:  # fmt: skip
            self._session = session
            yield
        self._session = None

    async def forward(
        self,
        scope: Scope,
        operation: Operation | None,
        body: bytes | AsyncIterator[bytes],
        send: Send,
    ) -> None:
        """Send the request of `scope` upstream and its answer to `send`; the target is
        origin-form (ProxyApp refuses any other), so the URL stays on the upstream."""
        assert self._session is not None, "the app's lifespan did not run"
        url = self.base_url + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        # A body read whole gets its length from aiohttp; a streamed one keeps the client's.
        dropped = HOP_BY_HOP | ({"content-length"} if isinstance(body, bytes) else set())
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in dropped
        )
        if self.rewrite_urls:  # a compressed body could not be rewritten
            headers["Accept-Encoding"] = "identity"
        sent = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        # A pooled connection the upstream closes just as it is reused fails before any answer;
        # aiohttp then sends an idempotent request once more on a new connection (RFC 9112,
        # 9.3.1), never a POST: that one is a 502 and an `upstream.unreachable` violation.
        try:
            async with self._session.request(
                scope["method"], yarl.URL(url, encoded=True), headers=headers,
                data=body if sent else None, allow_redirects=False, skip_auto_headers=_ADDED,
            ) as response:  # fmt: skip
                await self._relay(scope, operation, response, tracked)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._unreachable(scope, operation, send, exc, started)

    async def _relay(
        self,
        scope: Scope,
        operation: Operation | None,
        response: aiohttp.ClientResponse,
        send: Send,
    ) -> None:
        headers = [(k, v) for k, v in response.raw_headers if k.lower() not in _HOP_BY_HOP_BYTES]
        kept, whole = bytearray(), True
        if self.rewrite_urls:
            proxy_origin = b"http://\\g<1>" + _host(scope)
            kept += self.urls.sub(proxy_origin, await response.read())
            headers = _rewritten_headers(headers, self.urls, proxy_origin, len(kept))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if self.rewrite_urls:
            await send({"type": "http.response.body", "body": bytes(kept), "more_body": True})
        else:
            async for chunk in response.content.iter_any():
                whole = whole and len(kept) + len(chunk) <= MAX_CHECKED_BYTES
                if whole:
                    kept += chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        self._check(scope, operation, response, bytes(kept) if whole else None)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _check(
        self,
        scope: Scope,
        operation: Operation | None,
        response: aiohttp.ClientResponse,
        body: bytes | None,
    ) -> None:
        if operation is None:
            return
        if body is None:
            self.ledger.unchecked += 1
        headers = {k.lower(): v for k, v in response.headers.items()}
        if self.rewrite_urls:
            headers.pop("content-encoding", None)
        found = self.checks.check(
            operation, Answer(scope["method"], response.status, headers, body)
        )
        self.ledger.record([_violation("response", operation, scope, response.status, *f)
                            for f in found], _secrets(scope))  # fmt: skip

    async def _unreachable(
        self, scope: Scope, operation: Operation | None, send: Send, exc: Exception, started: bool
    ) -> None:
        """A 502 with the cause; or, when the answer had started, its end where it broke off."""
        what = "stopped answering" if started else "did not answer"
        message = f"{self.base_url} {what}: {exc.__class__.__name__}: {exc}"
        status = None if started else 502
        self.ledger.record(
            [
                _violation(
                    "upstream", operation, scope, status, "upstream.unreachable", "", None, message
                )
            ],
            _secrets(scope),
        )
        if started:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await _send_json(send, 502, {"detail": f"Bad Gateway: {message}"})


def _secrets(scope: Scope) -> frozenset[str]:
    secrets: frozenset[str] = scope.get(SECRETS, frozenset())
    return secrets


def _host(scope: Scope) -> bytes:
    host = dict(scope["headers"]).get(b"host")
    if host:
        return bytes(host)
    server = scope.get("server") or ("127.0.0.1", 80)
    return f"{server[0]}:{server[1]}".encode()


def _rewritten_headers(
    headers: list[tuple[bytes, bytes]], urls: re.Pattern[bytes], proxy: bytes, length: int
) -> list[tuple[bytes, bytes]]:
    """Link headers on the proxy's origin, and the length of the rewritten body."""
    out = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            value = str(length).encode()
        elif lowered == b"link":
            value = urls.sub(proxy, value)
        out.append((name, value))
    return out


def _violation(
    side: str,
    operation: Operation | None,
    scope: Scope,
    status: int | None,
    rule: str,
    where: str,
    value: Any,
    message: str,
) -> Violation:
    return Violation(
        side=side,
        operation=operation.name if operation is not None else None,
        method=scope["method"],
        path=scope["path"],
        rule=rule,
        where=where,
        value=value,
        message=message,
        status=status,
    )


async def _send_json(
    send: Send, status: int, body: Any, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    data = compiled.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               *extra]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


# The app ----------------------------------------------------------------------------------------


class ProxyApp:
    """The proxy as an ASGI app (see the module docstring)."""

    def __init__(
        self,
        pipeline: Pipeline,
        upstream: Upstream,
        *,
        enforce: bool,
        max_body_bytes: int,
        admin_token: str,
    ) -> None:
        self.pipeline, self.upstream, self.enforce = pipeline, upstream, enforce
        self.ledger = upstream.ledger
        self.redactor = self.ledger.redactor
        self.admin_token = admin_token
        self._admin = f"Bearer {admin_token}".encode()
        self.limited = BodyLimitMiddleware(self._checked, max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == VIOLATIONS_PATH and TARGET not in scope:
            await self._violations(scope, send)
            return
        self.ledger.count()
        query = query_pairs(scope.get("query_string", b""))
        scope[SECRETS] = self.redactor.secrets(request_headers(scope), query, b"")
        target = scope.get(TARGET) or scope.get("raw_path", b"/")
        if not target.startswith(b"/"):
            await self._not_origin_form(scope, target, send)
            return
        exchange = Exchange()

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.body.append(message.get("body", b""))
                exchange.more_body = message.get("more_body", False)
            return message

        try:
            check_query_count(scope)
            await self.limited(scope, recording, send)
        except ClientKeysError as error:
            await self._over_limit(scope, receive, send, exchange, error)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route, check and forward (or refuse) a request within the limits."""
        routed = self.pipeline.route(scope["method"], request_path(scope))
        body = b"".join([chunk async for chunk in _body_chunks(receive)])
        headers, query = request_headers(scope), query_pairs(scope.get("query_string", b""))
        scope[SECRETS] = self.redactor.secrets(headers, query, body)
        if isinstance(routed, Refusal):
            await self._refused(scope, send, routed, None, None, body)
            return
        operation, values = routed
        query = query_pairs(scope.get("query_string", b""))
        incoming = Incoming(values, query, request_headers(scope), body)
        scope[SECRETS] = self.redactor.secrets(incoming.headers, query, body)
        refusal = self.pipeline.judge(operation, incoming)
        if refusal is not None:
            await self._refused(scope, send, refusal, operation, incoming, body)
            return
        await self.upstream.forward(scope, operation, body, send)

    async def _refused(
        self,
        scope: Scope,
        send: Send,
        refusal: Refusal,
        operation: Operation | None,
        incoming: Incoming | None,
        body: bytes,
    ) -> None:
        """Record why the request breaks the contract; answer it (enforce) or forward it."""
        status = refusal.answer.status
        found = refused(refusal, operation, incoming, self.pipeline.errors)
        self.ledger.record(
            [_violation("request", operation, scope, status, *f) for f in found], _secrets(scope)
        )
        if self.enforce:
            await _send_made(send, refusal.answer)
        else:
            await self.upstream.forward(scope, operation, body, send)

    async def _over_limit(
        self, scope: Scope, receive: Receive, send: Send, exchange: Exchange, error: ClientKeysError
    ) -> None:
        """A request over one of serve's limits. Only a body over the limit is forwarded (in
        report mode, streamed as it comes): the others the proxy will not even parse."""
        routed = self.pipeline.route(scope["method"], request_path(scope))
        operation = None if isinstance(routed, Refusal) else routed[0]
        too_large = isinstance(error, PayloadTooLarge)
        rule = "request.body-size" if too_large else "request.limit"
        self.ledger.record([_violation("request", operation, scope, error.status, rule, "", None,
                                       str(error.detail))], _secrets(scope))  # fmt: skip
        if too_large and not self.enforce:
            await self.upstream.forward(scope, operation, _rest_of_body(exchange, receive), send)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in error.headers().items()]
        await _send_json(send, error.status, error.body(), extra)

    async def _not_origin_form(self, scope: Scope, target: bytes, send: Send) -> None:
        """400 for `*`, `*@host/...` or an absolute URI: the proxy forwards paths on its
        upstream, never to a host a request names."""
        shown = target.decode("latin-1")
        detail = f"The request target must be a path (/...); {shown[:100]!r} is not forwarded."
        self.ledger.record([_violation("request", None, {**scope, "path": shown}, 400,
                                       "request.target", "", shown[:200], detail)],
                           _secrets(scope))  # fmt: skip
        await _send_json(send, 400, {"detail": self.redactor.scrub(detail, _secrets(scope))})

    async def _violations(self, scope: Scope, send: Send) -> None:
        """The list (GET), emptied (DELETE): for the admin token's bearer only, 401 without."""
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self._admin):
            await _send_json(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
            return
        if scope["method"] == "DELETE":
            self.ledger.clear()
        elif scope["method"] not in ("GET", "HEAD"):
            detail = {"detail": f'Method "{scope["method"]}" not allowed.'}
            await _send_json(send, 405, detail, [(b"allow", b"GET, HEAD, DELETE")])
            return
        violations = [orjson.loads(v.as_json()) for v in self.ledger.violations]
        await _send_json(send, 200, {"exchanges": self.ledger.exchanges, "count": self.ledger.total,
                                     "dropped": self.ledger.dropped, "cap": self.ledger.cap,
                                     "violations": violations})  # fmt: skip

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The upstream's connection pool lives as long as the app."""
        async with AsyncExitStack() as stack:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await stack.enter_async_context(self.upstream.connected())
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    break
        await send({"type": "lifespan.shutdown.complete"})


async def _send_made(send: Send, answer: Made) -> None:
    """An answer the pipeline made (a refusal in the document's words)."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1", "replace"))
               for k, v in answer.headers.items()]  # fmt: skip
    if answer.media is not None:
        headers.append((b"content-type", answer.media.encode("latin-1")))
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _rest_of_body(exchange: Exchange, receive: Receive) -> AsyncIterator[bytes]:
    """The request body: what the proxy read before refusing it, then the rest."""
    for chunk in exchange.body:
        yield chunk
    if exchange.more_body:
        async for chunk in _body_chunks(receive):
            yield chunk


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks as they arrive."""
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        more = message.get("more_body", False)


def create_proxy_app(
    spec_file: Path,
    upstream_url: str,
    *,
    ledger: Ledger,
    mode: str = "report",
    rewrite_urls: bool = False,
    max_body_bytes: int = 65536,
    admin_token: str,
) -> ProxyApp:
    """The proxy for a document in front of `upstream_url`; violations go to `ledger`, without
    secrets, and are listed to the bearer of `admin_token`. SpecError for a document the engine
    cannot read."""
    document = Document(spec_file)
    ledger.redactor = Redactor.of(document.root)
    schemas = Schemas(document)
    index = Index(document, schemas)
    pipeline = Pipeline(
        document, schemas, index, dialect=dialect_for(spec_file, OWN_SPEC), strict_query=True
    )
    upstream = Upstream(upstream_url, ResponseChecks(index), ledger, rewrite_urls)
    return ProxyApp(pipeline, upstream, enforce=mode == "enforce", max_body_bytes=max_body_bytes,
                    admin_token=admin_token)  # fmt: skip


# Running ----------------------------------------------------------------------------------------


async def run(
    app: ProxyApp,
    sock: socket.socket,
    command: Sequence[str],
    announce: Callable[[str], None],
    log_level: str = "warning",
) -> int:
    """Serve on `sock` (`runner.listen`) until stopped by a signal, or while `command` runs;
    returns the command's exit status (or 0). Stopped, it returns rather than re-raising the
    signal, so that the caller can still print its summary and choose the exit status."""
    # The upstream's Date and Server headers go through; uvicorn's own would repeat them.
    process = runner.Process(log_level=log_level, server_header=False, date_header=False)
    async with runner.serving(lambda: app, process, sock) as server:
        announce(server.url)
        if not command:
            await server.stopped
            return 0
        return await _run_command(command, server.url, app.admin_token, server.stopped)


async def _run_command(
    command: Sequence[str], url: str, admin_token: str, serving: asyncio.Task[None]
) -> int:
    """Run `command` with CLIENTKEYS_PROXY_URL and the admin token set (it may read the
    violations itself); stop it if the proxy stops first."""
    env = {**os.environ, "CLIENTKEYS_PROXY_URL": url, "CLIENTKEYS_PROXY_ADMIN_TOKEN": admin_token}
    try:
        process = await asyncio.create_subprocess_exec(*command, env=env)
    except OSError as exc:
        raise SystemExit(f"clientkeys proxy: cannot run {command[0]}: {exc.strerror}") from None
    waiting = asyncio.create_task(process.wait())
    await asyncio.wait([waiting, serving], return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        process.terminate()
    status = await waiting
    return 128 + signal.Signals(-status).value if status < 0 else status


NO_EXCHANGE = "no request came through the proxy: did the command call $CLIENTKEYS_PROXY_URL?"


def verdict(command_status: int, ledger: Ledger, wrapped: bool) -> tuple[int, str | None]:
    """The exit status and, when a wrapped command sent nothing through, why it is not 0.
    The command's failure wins; then a wrapped run without any exchange (it checked nothing);
    then 1 when any violation was seen."""
    reason = NO_EXCHANGE if wrapped and not ledger.exchanges else None
    if command_status:
        return command_status, reason
    if reason:
        return 1, reason
    return (1 if ledger.total else 0), None
