"""`clientkeys proxy`: forwards every request to an upstream server and checks both directions
against the contract.

The proxy is a Connexion app built from the spec with the server's own validators and error
renderers, so a request it rejects gets exactly the error a validating clientkeys gives. Two
ASGI pieces sit in its middleware stack::

    ProxyFront       outermost: counts exchanges, serves /__proxy/violations, and when the stack
                     answered locally (the request broke the contract) records why from that
                     answer, then replays it (enforce) or forwards the request anyway (report)
    ... errors, guards, routing, security (any well-formed bearer token: the upstream judges
        it), validation (noting which parameter it rejects)
    Forwarder        after validation: forwards the request (aiohttp), streams the answer back,
                     checks it against the operation (conformance.check_response)

Forwarding uses aiohttp (measured in bench/proxy.py: httpx added about twice the latency).
Request bodies are read whole (they are validated, and the body limit bounds them); answers
stream through, and the last chunk is held until the answer has been checked, so a violation is
listed before the client has its answer.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import yarl
from connexion import FlaskApp
from connexion.middleware import MiddlewarePosition
from connexion.resolver import Resolver
from multidict import CIMultiDict
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clientkeys.openapi import compiled
from clientkeys.openapi import specs as openapi
from clientkeys.openapi.conformance import (
    Answer,
    BadParameter,
    Contract,
    Ledger,
    Route,
    Violation,
    check_response,
    rejection_violations,
)
from clientkeys.server import connexion_hooks
from clientkeys.server.auth import TokenInfo
from clientkeys.server.build import Api, build_app

MODES = ("report", "enforce")
VIOLATIONS_PATH = "/__proxy/violations"
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
_EXCHANGE = "clientkeys.proxy"


@dataclass
class Exchange:
    """One request through the proxy, as its middlewares see it."""

    forwarded: bool = False
    parameters: list[BadParameter] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    """Request body chunks the stack has read so far."""
    more_body: bool = True


def _exchange(scope: Scope) -> Exchange:
    exchange: Exchange = scope[_EXCHANGE]
    return exchange


# Forwarding -------------------------------------------------------------------------------------


class Upstream:
    """The server behind the proxy: sends it a request, streams its answer back, checks it."""

    def __init__(
        self, base_url: str, contract: Contract, ledger: Ledger, rewrite_urls: bool
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The upstream's URLs, DSNs included (`https://<key>@host/1`), for --rewrite-urls.
        netloc = urlsplit(self.base_url).netloc.encode()
        self.urls = re.compile(rb"https?://([^/@\s\"'<>]*@)?" + re.escape(netloc) + rb"(?![\w.:-])")
        self.contract, self.ledger, self.rewrite_urls = contract, ledger, rewrite_urls
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

    async def forward(self, scope: Scope, body: bytes | AsyncIterator[bytes], send: Send) -> None:
        """Send the request of `scope` upstream and its answer to `send`."""
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
                await self._relay(scope, response, tracked)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._unreachable(scope, send, exc, started)

    async def _relay(self, scope: Scope, response: aiohttp.ClientResponse, send: Send) -> None:
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
        self._check(scope, response, bytes(kept) if whole else None)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _check(self, scope: Scope, response: aiohttp.ClientResponse, body: bytes | None) -> None:
        route = self.contract.route(scope["method"], scope["path"])
        if route is None:
            return
        if body is None:
            self.ledger.unchecked += 1
        headers = {k.lower(): v for k, v in response.headers.items()}
        if self.rewrite_urls:
            headers.pop("content-encoding", None)
        found = check_response(route, Answer(scope["method"], response.status, headers, body))
        self.ledger.record([_violation("response", route, scope, response.status, *f)
                            for f in found])  # fmt: skip

    async def _unreachable(self, scope: Scope, send: Send, exc: Exception, started: bool) -> None:
        """A 502 with the cause; or, when the answer had started, its end where it broke off."""
        route = self.contract.route(scope["method"], scope["path"])
        what = "stopped answering" if started else "did not answer"
        message = f"{self.base_url} {what}: {exc.__class__.__name__}: {exc}"
        status = None if started else 502
        self.ledger.record(
            [
                _violation(
                    "upstream", route, scope, status, "upstream.unreachable", "", None, message
                )
            ]
        )
        if started:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await _send_json(send, 502, {"detail": f"Bad Gateway: {message}"})


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
    route: Route | None,
    scope: Scope,
    status: int | None,
    rule: str,
    where: str,
    value: Any,
    message: str,
) -> Violation:
    return Violation(
        side=side,
        operation=route.operation_id if route is not None else None,
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


# The middlewares --------------------------------------------------------------------------------


class ProxyFront:
    """Outermost: every exchange starts and ends here (see the module docstring)."""

    def __init__(self, app: ASGIApp, upstream: Upstream, enforce: bool) -> None:
        self.app, self.upstream, self.enforce = app, upstream, enforce
        self.ledger, self.contract = upstream.ledger, upstream.contract

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == VIOLATIONS_PATH:
            await self._violations(scope, send)
            return
        self.ledger.count()
        exchange = scope[_EXCHANGE] = Exchange()
        local: list[Message] = []

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.body.append(message.get("body", b""))
                exchange.more_body = message.get("more_body", False)
            return message

        async def held_send(message: Message) -> None:
            if exchange.forwarded:
                await send(message)
            else:
                local.append(message)

        await self.app(scope, recording_receive, held_send)
        if not exchange.forwarded:
            await self._rejected(scope, receive, send, exchange, local)

    async def _rejected(
        self, scope: Scope, receive: Receive, send: Send, exchange: Exchange, local: list[Message]
    ) -> None:
        """The stack answered a request that breaks the contract; record why, then answer."""
        status = int(local[0]["status"]) if local else 500
        route = self.contract.route(scope["method"], scope["path"])
        answer = b"".join(m.get("body", b"") for m in local[1:])
        body = b"".join(exchange.body)
        found = rejection_violations(status, answer, exchange.parameters, body)
        self.ledger.record([_violation("request", route, scope, status, *f) for f in found])
        if self.enforce:
            for message in local:
                await send(message)
            return
        exchange.forwarded = True
        await self.upstream.forward(scope, _rest_of_body(exchange, receive), send)

    async def _violations(self, scope: Scope, send: Send) -> None:
        if scope["method"] == "DELETE":
            self.ledger.violations.clear()
        elif scope["method"] not in ("GET", "HEAD"):  # outside the error handlers: answer here
            detail = {"detail": f'Method "{scope["method"]}" not allowed.'}
            await _send_json(send, 405, detail, [(b"allow", b"GET, HEAD, DELETE")])
            return
        violations = [orjson.loads(v.as_json()) for v in self.ledger.violations]
        await _send_json(send, 200, {"exchanges": self.ledger.exchanges, "count": len(violations),
                                     "violations": violations})  # fmt: skip


async def _rest_of_body(exchange: Exchange, receive: Receive) -> AsyncIterator[bytes]:
    """The request body: what the stack read before rejecting it, then the rest."""
    for chunk in exchange.body:
        yield chunk
    if exchange.more_body:
        async for chunk in _body_chunks(receive):
            yield chunk


class Forwarder:
    """After validation: a request that reaches this point keeps the contract; forward it."""

    def __init__(self, app: ASGIApp, upstream: Upstream) -> None:
        self.app, self.upstream = app, upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _EXCHANGE not in scope:
            await self.app(scope, receive, send)
            return
        if self.upstream.contract.route(scope["method"], scope["path"]) is None:
            raise HTTPException(404)  # no operation: rendered as the server renders it
        body = b"".join([chunk async for chunk in _body_chunks(receive)])
        _exchange(scope).forwarded = True
        await self.upstream.forward(scope, body, send)


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks as they arrive."""
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        more = message.get("more_body", False)


def _note(scope: Scope, location: str, name: str, value: Any, message: str) -> None:
    """A parameter the server's validator rejected, kept for this exchange's records."""
    if _EXCHANGE in scope:
        _exchange(scope).parameters.append(BadParameter(location, name, value, message))


# The app ----------------------------------------------------------------------------------------


def _spec_scopes(spec: Any) -> frozenset[str]:
    """Every scope any operation of the spec asks for."""
    return frozenset(
        scope
        for item in spec.get("paths", {}).values()
        for operation in item.values()
        if isinstance(operation, dict)
        for requirement in operation.get("security", [])
        for scopes in requirement.values()
        for scope in scopes
    )


def _any_token(scopes: frozenset[str]) -> Callable[..., TokenInfo]:
    """A token lookup accepting any well-formed token with `scopes`: the upstream judges
    tokens; the proxy keeps Sentry's checks of their form (401 without one)."""

    def info(token: str, request: Any = None) -> TokenInfo:
        return {"sub": "proxy", "organization_id": None, "scopes": scopes, "is_superuser": False}

    return info


def _never_called(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - Forwarder answers
    raise RuntimeError("the proxy forwards every operation")


def create_proxy_app(
    spec_file: Path,
    upstream_url: str,
    *,
    ledger: Ledger,
    mode: str = "report",
    rewrite_urls: bool = False,
    max_body_bytes: int = 65536,
) -> FlaskApp:
    """The proxy for a spec in front of `upstream_url`; violations go to `ledger`."""
    spec = openapi.load(spec_file)
    upstream = Upstream(upstream_url, Contract(spec, spec.base_path), ledger, rewrite_urls)
    app = build_app(
        [Api(spec, Resolver(function_resolver=lambda _operation_id: _never_called))],
        security=connexion_hooks.bearer_handler(_any_token(_spec_scopes(spec))),
        validate_responses=False,
        max_body_bytes=max_body_bytes,
        validator_map={
            **connexion_hooks.VALIDATOR_MAP,
            "parameter": connexion_hooks.noting_parameter_validator(_note),
        },
        lifespan=lambda _app: upstream.connected(),
        own_endpoints=False,
        api_guards=False,
    )
    app.add_middleware(ProxyFront, position=MiddlewarePosition.BEFORE_EXCEPTION, upstream=upstream,
                       enforce=mode == "enforce")  # fmt: skip
    app.add_middleware(Forwarder, position=MiddlewarePosition.BEFORE_CONTEXT, upstream=upstream)
    return app


# Running ----------------------------------------------------------------------------------------


def _server(app: FlaskApp, host: str, port: int, log_level: str) -> Any:
    """A uvicorn server that, stopped by a signal, returns instead of re-raising the signal,
    so that the caller can still print its summary and choose the exit status."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    # The upstream's Date and Server headers go through; uvicorn's own would repeat them.
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False,
                            date_header=False)  # fmt: skip
    return Server(config)


async def run(
    app: FlaskApp,
    host: str,
    port: int,
    command: Sequence[str],
    announce: Callable[[str], None],
    log_level: str = "warning",
) -> int:
    """Serve until stopped, or while `command` runs; returns the command's exit status (or 0)."""
    server = _server(app, host, port, log_level)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():  # uvicorn logged why
            raise SystemExit(f"clientkeys proxy: could not listen on {host}:{port}")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    url = f"http://{bound[0]}:{bound[1]}"
    announce(url)
    if not command:
        await serving
        return 0
    status = await _run_command(command, url, serving)
    server.should_exit = True
    await serving
    return status


async def _run_command(command: Sequence[str], url: str, serving: asyncio.Task[None]) -> int:
    """Run `command` with CLIENTKEYS_PROXY_URL set; stop it if the proxy stops first."""
    env = {**os.environ, "CLIENTKEYS_PROXY_URL": url}
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


def exit_status(command_status: int, ledger: Ledger) -> int:
    """The command's failure wins; otherwise 1 when any violation was seen."""
    if command_status:
        return command_status
    return 1 if ledger.violations else 0
