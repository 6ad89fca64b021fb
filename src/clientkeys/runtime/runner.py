"""The one way clientkeys runs an ASGI app under uvicorn, for serve, mock and proxy: the socket
is bound here, once, before anything else starts (a busy port is one line naming the address,
and every worker accepts on that socket), the log configuration is `logs.config` in every
process, and the HTTP protocol is `uvicorn_hooks`' (the request-head limits and JSON errors,
the slow-client time limits). Those limits and the workers' boot wait are `ConnectionSettings`,
read from the environment when a `Process` is made, the same for every command.

`run` serves until stopped, with one worker in this process or several; `serving` serves
inside the caller's event loop while it does something else (the proxy runs a command).
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp

from clientkeys.config import ConnectionSettings
from clientkeys.runtime import logs

AppFactory = Callable[[], ASGIApp]
"""What builds the app to serve, called once in each worker."""
logger = logging.getLogger(__name__)


class RunError(Exception):
    """The app cannot be served; the message says why in one line."""


@dataclass(frozen=True)
class Process:
    """How a served app runs: where it listens, how many workers, how it logs."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False
    """uvicorn's own access lines (the mock's), on stdout; serve writes its own (`access`)."""
    graceful_shutdown: int | None = None
    """Seconds a shutdown waits for answers in flight at most; None: until they end."""
    server_header: bool = True
    date_header: bool = True
    """The proxy turns both off: the upstream's headers go through, and ours would repeat them."""
    limits: ConnectionSettings = field(default_factory=ConnectionSettings.from_env)
    """How long a slow client or a booting worker is waited for (`CLIENTKEYS_*_TIMEOUT`)."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port and listening, for every worker to accept on (a client that
    connects before the app is up waits in its backlog); RunError names the address when it is
    taken, not ours to take, or not an address at all."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise RunError(f"cannot listen on {where}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """The http:// URL of a listening socket (the port it got, when 0 was asked for)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def log_config(process: Process) -> dict[str, Any]:
    """The `logging.config` dictionary every process of the app applies."""
    config = logs.config(process.log_format, process.log_level)
    if process.access_log:
        access = {"handlers": ["stdout"], "level": process.log_level.upper(), "propagate": False}
        config["loggers"]["uvicorn.access"] = access
    return config


def configure_logging(process: Process) -> None:
    """Log in this process as the workers will (uvicorn applies the same configuration)."""
    logging.config.dictConfig(log_config(process))


def _config(app: str | ASGIApp | AppFactory, process: Process, sock: socket.socket,
            *, factory: bool) -> Any:  # fmt: skip
    import functools

    import uvicorn

    from clientkeys.runtime.uvicorn_hooks import LimitedHttpToolsProtocol

    limits = process.limits
    # A partial of the class, not an instance: uvicorn makes one protocol per connection, and
    # pickles the configuration into each worker.
    http: Any = functools.partial(LimitedHttpToolsProtocol, header_timeout=limits.header_timeout,
                                  body_timeout=limits.body_timeout)  # fmt: skip
    return uvicorn.Config(
        app, factory=factory, host=process.host, port=sock.getsockname()[1],
        workers=process.workers, log_level=process.log_level, access_log=process.access_log,
        log_config=log_config(process), http=http,
        timeout_graceful_shutdown=process.graceful_shutdown,
        server_header=process.server_header, date_header=process.date_header,
        # Typed int by uvicorn, used as seconds by call_later and poll: a float serves.
        timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]
        timeout_worker_healthcheck=limits.worker_boot_timeout,  # type: ignore[arg-type]
    )  # fmt: skip


def run(
    app: str | AppFactory,
    process: Process,
    sock: socket.socket,
    *,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Serve on `sock` until stopped: one worker in this process, or `process.workers`.

    `app` is the factory of the app; with several workers, its import path
    (`"package.module:function"`), since each worker imports it. `environ` is exported first,
    for the workers' factories to read (the resolved settings, `config.Group.to_env`).
    """
    import uvicorn

    from clientkeys.runtime.uvicorn_hooks import supervisor

    if process.workers > 1 and not isinstance(app, str):
        raise ValueError("several workers import their app: give its factory as 'module:name'")
    os.environ.update(environ or {})
    config = _config(app, process, sock, factory=True)
    logger.info("Serving on %s with %d worker(s) (Press CTRL+C to quit)", url_of(sock),
                process.workers)  # fmt: skip
    if process.workers > 1:
        supervisor(config, [sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


@dataclass(frozen=True)
class Running:
    """An app being served by `serving`."""

    url: str
    stopped: asyncio.Task[None]
    """Done when the server has stopped: by a signal (SIGINT, SIGTERM), or at the end of the
    `serving` block."""


@asynccontextmanager
async def serving(factory: AppFactory, process: Process, sock: socket.socket
                  ) -> AsyncIterator[Running]:  # fmt: skip
    """Serve the app `factory` builds on `sock`, in this event loop, for the block: one worker,
    whatever `process.workers` says. The block starts once the app accepts connections;
    leaving it stops the server gracefully. A signal stops the server without ending the
    process (`stopped` is then done). RunError if the app does not start (its lifespan
    failed); the factory's own exceptions propagate.
    """
    from clientkeys.runtime.uvicorn_hooks import returning_server

    server = returning_server(_config(factory(), process, sock, factory=False))
    stopped = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait([stopped, ready], return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        await stopped
        raise RunError(f"the app on {url_of(sock)} did not start (see the log above)")
    try:
        yield Running(url_of(sock), stopped)
    finally:
        server.should_exit = True
        await stopped
