"""A deliberately broken clientkeys, for proving that `clientkeys check` and `clientkeys proxy`
catch drift.

    python tests/broken_server.py PORT DATABASE KIND[,KIND...]

Each KIND breaks the contract one way (see BREAKAGES). Response validation is off, as a server
that drifted would not check itself. Tests start one with `running(folder, kinds)`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from connexion.middleware import MiddlewarePosition
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clientkeys.config import Settings
from clientkeys.core import domain
from clientkeys.server.app import create_app
from clientkeys.store import repository
from clientkeys.store import sqlite as db
from clientkeys.testing.runner import free_port, serving

ORG, PROJECT = "contract", "keys"

BREAKAGES = {
    "no-link": "drops the Link header from every response",
    "create-200": "answers 200 instead of 201 on create",
    "wrong-type": 'sends isActive as the string "yes" in every key',
    "crash": "answers 500 to a create that names the key",
    "problem-json": "sends errors as application/problem+json",
    "ignore-auth": "serves requests without credentials",
    "accept-invalid": "skips request validation",
    "delete-404": "never deletes: every delete answers 404 (documented, so no check fails)",
}


class Breakage:
    """ASGI middleware that breaks requests and responses as the chosen kinds say."""

    def __init__(self, app: ASGIApp, kinds: set[str], token: str) -> None:
        self.app, self.kinds, self.token = app, kinds, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if "ignore-auth" in self.kinds and b"authorization" not in headers:
            auth = (b"authorization", f"Bearer {self.token}".encode())
            scope = {**scope, "headers": [*scope["headers"], auth]}
        if "crash" in self.kinds and scope["method"] == "POST":
            body = await _body(receive)
            if b'"name"' in body:
                await _answer(send, 500, b'{"detail": "Internal Error"}', b"application/json")
                return
            receive = _replay(body)
        if "delete-404" in self.kinds and scope["method"] == "DELETE":
            body = b'{"detail": "The requested resource does not exist"}'
            await _answer(send, 404, body, b"application/json")
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def broken_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                await self._send_broken(start, b"".join(chunks), send)

        await self.app(scope, receive, broken_send)

    async def _send_broken(self, start: dict[str, Any], body: bytes, send: Send) -> None:
        status, headers = start["status"], list(start["headers"])
        if "no-link" in self.kinds:
            headers = [(k, v) for k, v in headers if k.lower() != b"link"]
        if "create-200" in self.kinds and status == 201:
            status = 200
        if "problem-json" in self.kinds and status >= 400:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
            headers.append((b"content-type", b"application/problem+json"))
        if "wrong-type" in self.kinds and status < 300 and body:
            body = json.dumps(_wrong_type(json.loads(body))).encode()
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _wrong_type(data: Any) -> Any:
    if isinstance(data, list):
        return [_wrong_type(item) for item in data]
    if isinstance(data, dict) and "isActive" in data:
        return {**data, "isActive": "yes"}
    return data


async def _body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _answer(send: Send, status: int, body: bytes, media_type: bytes) -> None:
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    port, database, kinds = int(sys.argv[1]), Path(sys.argv[2]), set(sys.argv[3].split(","))
    unknown = kinds - set(BREAKAGES)
    if unknown:
        sys.exit(
            f"unknown breakage {', '.join(sorted(unknown))}; choose from {', '.join(BREAKAGES)}"
        )
    settings = Settings(
        database=database,
        validate_responses=False,
        validate_requests="accept-invalid" not in kinds,
    )
    app = create_app(settings)
    token = _any_token(database)
    app.add_middleware(Breakage, position=MiddlewarePosition.BEFORE_EXCEPTION, kinds=kinds,
                       token=token)  # fmt: skip
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _any_token(database: Path) -> str:
    """A token the server accepts, for `ignore-auth` to put on requests that have none."""
    with db.connect(database) as conn:
        organization = conn.execute("SELECT slug FROM organizations LIMIT 1").fetchone()
        if organization is None:
            return "no-organization"
        plain, _ = repository.insert_token(conn, organization[0], domain.SCOPES)
    return plain


def seed(path: Path) -> str:
    """A database with organization ORG and project PROJECT; returns an all-scopes token."""
    db.init_db(path)
    with db.connect(path) as conn:
        repository.insert_organization(conn, ORG)
        repository.insert_project(conn, ORG, PROJECT)
        token, _ = repository.insert_token(conn, ORG, domain.SCOPES)
    return token


@contextmanager
def running(folder: Path, kinds: str) -> Iterator[tuple[str, str]]:
    """A seeded server broken as `kinds` says, on a free port; yields its URL and a token."""
    token = seed(folder / "broken.db")
    port = free_port()
    command = [sys.executable, __file__, str(port), str(folder / "broken.db"), kinds]
    with serving(command, port, folder / "broken.log") as url:
        yield url, token


if __name__ == "__main__":
    main()
