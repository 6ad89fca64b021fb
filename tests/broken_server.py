"""A deliberately broken clientkeys, for proving that `clientkeys check` catches drift.

    python tests/broken_server.py PORT DATABASE no-link|create-200

`no-link` drops the Link header from every response; `create-200` answers 200 instead of 201
on create. Response validation is off, as a server that drifted would not check itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from connexion.middleware import MiddlewarePosition
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clientkeys.app import create_app
from clientkeys.config import Settings


class Breakage:
    def __init__(self, app: ASGIApp, how: str) -> None:
        self.app, self.how = app, how

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def broken_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if self.how == "no-link":
                    message["headers"] = [(k, v) for k, v in message["headers"] if k != b"link"]
                elif self.how == "create-200" and message["status"] == 201:
                    message["status"] = 200
            await send(message)

        await self.app(scope, receive, broken_send)


def main() -> None:
    port, database, how = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    app = create_app(Settings(database=database, validate_responses=False))
    app.add_middleware(Breakage, position=MiddlewarePosition.BEFORE_EXCEPTION, how=how)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
