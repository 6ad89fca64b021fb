"""`clientkeys serve` as a process: what is checked before any worker starts, the metrics
folder, and the workers (run by `runner`), which build the app from the environment
(`server.app.create_app`).
"""

from __future__ import annotations

import logging
import socket
from contextlib import nullcontext

from clientkeys.config import Settings
from clientkeys.openapi import specs as openapi
from clientkeys.runtime import metrics, runner

APP = "clientkeys.server.app:create_app"
logger = logging.getLogger(__name__)


class ServeError(Exception):
    """The server cannot start; the message says why in one line."""


def check_settings(settings: Settings) -> None:
    """What the settings name must exist (the flags and variables were parsed already)."""
    if not (settings.spec_dir / openapi.SPEC_FILE).is_file():
        variable = Settings.settings()["spec_dir"].variable
        raise ServeError(f"{variable} {str(settings.spec_dir)!r} holds no {openapi.SPEC_FILE}")


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


def run(settings: Settings, process: runner.Process, sock: socket.socket) -> None:
    """Serve on `sock` until stopped; the workers build their app from the resolved settings,
    handed to them in the environment."""
    with metrics.multiprocess_directory() if settings.metrics else nullcontext():
        runner.run(APP, process, sock, environ=settings.to_env())
