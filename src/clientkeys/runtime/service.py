"""`clientkeys serve` as a process: what is checked before any worker starts, the listening
socket (bound once, here, so that a busy port is named), logging, the metrics folder, and
uvicorn's workers, which build the app from the environment (`app.create_app`).
"""

from __future__ import annotations

import logging
import logging.config
import os
import socket
from contextlib import nullcontext
from dataclasses import dataclass

from clientkeys.config import PREFIX, Settings
from clientkeys.openapi import specs as openapi
from clientkeys.runtime import logs, metrics

APP = "clientkeys.server.app:create_app"
logger = logging.getLogger(__name__)


class ServeError(Exception):
    """The server cannot start; the message says why in one line."""


@dataclass(frozen=True)
class Process:
    """How the serving process runs: where it listens, how many workers, how it logs."""

    host: str
    port: int
    workers: int
    log_level: str = "info"
    log_format: str = "text"


def check_settings(settings: Settings) -> None:
    """What the settings name must exist (the flags and variables were parsed already)."""
    if not (settings.spec_dir / openapi.SPEC_FILE).is_file():
        raise ServeError(
            f"{PREFIX}SPEC_DIR {str(settings.spec_dir)!r} holds no {openapi.SPEC_FILE}"
        )


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, for every worker to accept on; ServeError names the
    address when it is taken, not ours to take, or not an address at all."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise ServeError(f"cannot listen on {where}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def readiness(url: str, timeout: float) -> str | None:
    """None when the server at `url` answers its readiness check (`/_health/?full`) with 200;
    otherwise what is wrong, in one line."""
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_health/?full", timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        try:
            problems = json.loads(exc.read())["problems"]
        except (ValueError, KeyError, TypeError):
            problems = [f"HTTP {exc.code}"]
        return "; ".join(problems)
    except OSError as exc:
        return f"nothing answers at {url}: {getattr(exc, 'reason', exc)}"


def configure_logging(process: Process) -> None:
    """Log as the workers will (uvicorn applies the same configuration in each)."""
    logging.config.dictConfig(logs.config(process.log_format, process.log_level))


def run(settings: Settings, process: Process, sock: socket.socket) -> None:
    """Serve on `sock` until stopped: one worker in this process, or `process.workers`."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from clientkeys.runtime.uvicorn_hooks import LimitedHttpToolsProtocol

    config = uvicorn.Config(
        APP, factory=True, host=process.host, port=sock.getsockname()[1],
        workers=process.workers, log_level=process.log_level, access_log=False,
        log_config=logs.config(process.log_format, process.log_level),
        http=LimitedHttpToolsProtocol,
    )  # fmt: skip
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    logger.info("Serving on %s with %d worker(s) (Press CTRL+C to quit)", url, process.workers)
    # Workers build their app from the environment: hand them the resolved settings there.
    os.environ.update(settings.to_env())
    with metrics.multiprocess_directory() if settings.metrics else nullcontext():
        if process.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
