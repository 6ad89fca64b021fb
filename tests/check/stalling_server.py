"""A clientkeys whose chosen method never answers, for `clientkeys check`'s request timeout.

    python tests/check/stalling_server.py PORT DATABASE METHOD

Every request with METHOD is read and then left without an answer until the client closes the
connection; every other request reaches a correct clientkeys. Tests start one with
`stalling(folder, method)`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from connexion.middleware import MiddlewarePosition
from starlette.types import ASGIApp, Receive, Scope, Send

from clientkeys.config import Settings
from clientkeys.server.app import create_app
from clientkeys.testing.runner import free_port, serving

sys.path.insert(0, str(Path(__file__).parent.parent))
from broken_server import seed  # noqa: E402


class Stall:
    """ASGI middleware that never answers requests of one method."""

    def __init__(self, app: ASGIApp, method: str) -> None:
        self.app, self.method = app, method

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == self.method:
            # No answer, until the client gives up and closes the connection (then the server
            # has nothing left to wait for when it stops).
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await self.app(scope, receive, send)


def main() -> None:
    port, database, method = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    app = create_app(Settings(database=database))
    app.add_middleware(Stall, position=MiddlewarePosition.BEFORE_EXCEPTION, method=method)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def stalling(folder: Path, method: str) -> Iterator[tuple[str, str]]:
    """A seeded server on a free port whose `method` requests never answer; its URL, a token."""
    token = seed(folder / "stalling.db")
    port = free_port()
    command = [sys.executable, __file__, str(port), str(folder / "stalling.db"), method]
    with serving(command, port, folder / "stalling.log") as url:
        yield url, token


if __name__ == "__main__":
    main()
