"""Every place clientkeys leans on uvicorn's internals, and nowhere else: the HTTP protocol.

Tested with uvicorn 0.54 and httptools 0.9; `tests/test_http_edges.py` fails when an upgrade
changes what this relies on. uvicorn's httptools protocol reads a request head of any size (a
header value grows inside httptools until it ends: eight 64 MB headers took a worker past
400 MB) and answers its own errors in text/plain. This subclass refuses a request target over
`MAX_TARGET_BYTES` (414) and header fields over `MAX_HEADER_BYTES` or `MAX_HEADERS` (431)
while they arrive, before the application (and authentication) sees anything, and answers
those and uvicorn's own 400 in the spec's JSON error shape. It also closes the connection of a
client too slow to be worth a worker's memory: a request head not complete within
`header_timeout` seconds (from the connection, or from the request's first byte), or a body that
pauses longer than `body_timeout` between two chunks (uvicorn's own keep-alive timeout closes
idle connections between requests). `supervisor` is uvicorn's worker supervisor, logging why it
replaces a worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from clientkeys.core.errors import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_TARGET_BYTES,
    BadRequest,
    ClientKeysError,
    HeaderFieldsTooLarge,
    UriTooLong,
)
from clientkeys.openapi import compiled
from clientkeys.runtime.guards import SECURITY_HEADERS

TARGET = "clientkeys.request_target"
"""The scope key holding the request target as sent when it is not origin-form (`/path?q`):
an absolute URI's host is not in the ASGI scope, and the proxy must refuse it."""
MAX_FIELD_BYTES = MAX_HEADER_BYTES + 64
"""httptools keeps a header field to itself until it ends: a field still unfinished after
this many bytes (more than any field within the limits) is refused before it holds more."""
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
logger = logging.getLogger(__name__)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on the request head and JSON errors.

    Relies on: `HttpToolsProtocol` feeding each chunk to `self.parser` in `data_received`,
    calling `send_400_response(msg)` when the parser raises (a callback's exception included),
    and the parser callbacks `on_message_begin`, `on_url` (URL pieces, accumulated in
    `self.url`), `on_header` (one whole field, appended to `self.headers`) and
    `on_headers_complete` (`self.scope` made in `on_message_begin`, handed to the app as it is),
    with `self.server_state.default_headers` and `self.transport`; for the time limits also
    `connection_made`, `connection_lost`, `on_body`, `on_message_complete`, `self.loop`,
    `self.flow.read_paused` (uvicorn stops reading while the app has not taken the body it holds)
    and `self.cycle.waiting_for_100_continue` (true until the app asks for the body).
    """

    def __init__(self, *args: Any, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self._header_timeout, self._body_timeout = header_timeout, body_timeout
        self._timer: asyncio.TimerHandle | None = None
        """The one pending time limit: the head's while it arrives, the body's next chunk's."""
        self._refusal: ClientKeysError | None = None
        self._in_head = False
        self._header_bytes = 0
        self._progress = False
        self._unparsed = 0
        """Bytes fed since the parser last reported a piece of the head (an undercount by at
        most one chunk): what httptools may be holding of an unfinished field."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that sends nothing is a head that never completes.
        self._arm(self._header_timeout, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_too_slow(self) -> None:
        self._timer = None
        self._close_slow("request head", self._header_timeout)

    def _body_too_slow(self) -> None:
        self._timer = None
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # The client waits for us (the app has not taken the body yet): not its delay.
            self._arm(self._body_timeout, self._body_too_slow)
            return
        self._close_slow("request body", self._body_timeout)

    def _close_slow(self, what: str, seconds: float) -> None:
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            logger.info("Closed the connection of %s: its %s took over %g s", client, what, seconds)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._progress = False
        super().data_received(data)
        if self._in_head and not self._progress and not self.transport.is_closing():
            self._unparsed += len(data)
            if self._unparsed > MAX_FIELD_BYTES:
                self._refuse(HeaderFieldsTooLarge())

    def _advance(self) -> None:
        self._progress, self._unparsed = True, 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._header_bytes = True, 0
        if self._timer is None:  # the first request's limit runs from the connection
            self._arm(self._header_timeout, self._head_too_slow)
        self._advance()

    def on_url(self, url: bytes) -> None:
        self._advance()
        if len(self.url) + len(url) > MAX_TARGET_BYTES:
            self._refusal = UriTooLong()
            raise self._refusal
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._advance()
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self.headers) >= MAX_HEADERS:
            self._refusal = HeaderFieldsTooLarge()
            raise self._refusal
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self._body_timeout, self._body_too_slow)
        if not self.url.startswith(b"/"):
            self.scope[TARGET] = bytes(self.url)  # type: ignore[literal-required]
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(self._body_timeout, self._body_too_slow)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        self._refuse(refusal or BadRequest(msg))

    def _refuse(self, error: ClientKeysError) -> None:
        """Answer `error` in JSON and close the connection: the rest of the request is unread."""
        body = compiled.dumps(error.body())
        head = [STATUS_LINE[error.status]]
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *SECURITY_HEADERS,
            (b"connection", b"close"),
        ]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()
        self._in_head = False


def returning_server(config: Any) -> Any:
    """A `uvicorn.Server` for serving inside a caller's event loop (`runner.serving`): stopped
    by SIGINT or SIGTERM it returns instead of raising the signal again once done (uvicorn's
    `capture_signals` does), so that the caller can still report and choose its exit status;
    its `ready` event is set once it accepts connections, and an app whose startup fails ends
    `serve` without it.

    Relies on: `Server.capture_signals` (a context manager around `serve`), `handle_exit`
    (uvicorn's signal handler), `startup` (which ends when the sockets are served, or calls
    `sys.exit` when the lifespan fails) and `serve` skipping the main loop once `should_exit`.
    """
    import asyncio
    import signal
    import threading
    from collections.abc import Iterator
    from contextlib import contextmanager

    import uvicorn

    class ReturningServer(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.ready = asyncio.Event()

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

        async def startup(self, sockets: Any = None) -> None:
            try:
                await super().startup(sockets=sockets)
            except SystemExit:  # the lifespan failed: a SystemExit would end the caller's loop
                self.should_exit = True
                return
            self.ready.set()

    return ReturningServer(config)


def supervisor(config: Any, sockets: list[Any]) -> Any:
    """uvicorn's `Multiprocess` supervisor, whose health check waits
    `config.timeout_worker_healthcheck` seconds for a worker (booting included: under load a
    worker can take longer than uvicorn's 5 s to import its app), and whose log says why it
    replaced a worker: it exited (with its status), or it did not answer in time (killed).

    Relies on: `Multiprocess.keep_subprocess_alive` (called every half second; replaced here
    with the same steps), `self.processes`, `self.should_exit`, `self.sockets`, and its
    `Process` (`process.is_alive()`, `ping(timeout)`, `kill`, `join`, `exitcode`, `pid`,
    `start`), and `STARTUP_FAILURE`, the exit status of a worker whose app cannot start.
    """
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import multiprocess

    class ExplainingMultiprocess(multiprocess.Multiprocess):
        def keep_subprocess_alive(self) -> None:
            if self.should_exit.is_set():
                return
            for idx, process in enumerate(self.processes):
                wait = self.config.timeout_worker_healthcheck
                if process.process.is_alive() and process.ping(wait):
                    continue
                # Asked after the ping: a worker that died during it fails the ping at once.
                exited = not process.process.is_alive()
                process.kill()
                process.join()
                if process.exitcode == STARTUP_FAILURE:
                    logger.error("Worker [%s] failed to start; stopping.", process.pid)
                    self.should_exit.set()
                    return
                if self.should_exit.is_set():
                    return
                why = (
                    f"it exited with status {process.exitcode}"
                    if exited
                    else f"it did not answer the health check within {wait:g} s "
                    "(CLIENTKEYS_WORKER_BOOT_TIMEOUT) and was killed"
                )
                logger.warning("Restarting worker [%s]: %s.", process.pid, why)
                process = multiprocess.Process(self.config, self.sockets)
                process.start()
                self.processes[idx] = process

    return ExplainingMultiprocess(config, sockets=sockets)
