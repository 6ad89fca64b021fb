"""A deliberately broken clientkeys, for proving that `clientkeys check` and `clientkeys proxy`
catch drift.

    python tests/broken_server.py PORT DATABASE KIND[,KIND...]

Each KIND breaks the contract one way (see BREAKAGES). Response validation is off, as a server
that drifted would not check itself. Tests start one with `running(folder, kinds)`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from connexion.middleware import MiddlewarePosition
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clientkeys.config import Settings
from clientkeys.core import domain
from clientkeys.server import auth
from clientkeys.server.app import create_app
from clientkeys.store import repository
from clientkeys.store import sqlite as db
from clientkeys.testing.runner import free_port, serving

_token_info = auth.token_info

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
    # What a response alone cannot show: authorization and lost writes.
    "other-org": "lets a token of another organization act on this organization's keys",
    "ignore-scopes": "ignores scopes: a project:read token may create, update and delete",
    "refused-writes-land": "answers 403 to a write the token may not make, and makes it",
    "update-not-stored": "answers an update with the key as it was, changing nothing",
    "delete-not-applied": "answers 204 to a delete without deleting",
    "create-not-listed": "leaves keys created since it started out of every listing",
    "deactivation-ignored": "ignores the list's status filter: inactive keys are listed as active",
}


class Breakage:
    """ASGI middleware that breaks requests and responses as the chosen kinds say."""

    def __init__(self, app: ASGIApp, kinds: set[str], token: str, database: Path) -> None:
        self.app, self.kinds, self.token, self.database = app, kinds, token, database
        self.created: set[str] = set()

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
        if (
            "refused-writes-land" in self.kinds
            and scope["method"] in ("POST", "PUT", "DELETE")
            and not self._may_write(headers.get(b"authorization", b"").decode())
        ):
            # Made with a token that may, the answer thrown away: the client sees a refusal.
            auth = (b"authorization", f"Bearer {self.token}".encode())
            others = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
            await self.app({**scope, "headers": [*others, auth]}, receive, _discard)
            body = b'{"detail": "You do not have permission to perform this action."}'
            await _answer(send, 403, body, b"application/json")
            return
        if "delete-not-applied" in self.kinds and scope["method"] == "DELETE":
            await _answer(send, 204, b"", b"application/json")
            return
        if "update-not-stored" in self.kinds and scope["method"] == "PUT":
            # The same path read instead: 200 with the key as it is.
            await _body(receive)
            scope, receive = {**scope, "method": "GET"}, _replay(b"")
        if "deactivation-ignored" in self.kinds and scope["method"] == "GET":
            query = [item for item in scope["query_string"].split(b"&")
                     if not item.startswith(b"status=")]  # fmt: skip
            scope = {**scope, "query_string": b"&".join(query)}
        method = scope["method"]
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def broken_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                await self._send_broken(start, b"".join(chunks), send, method)

        await self.app(scope, receive, broken_send)

    def _may_write(self, authorization: str) -> bool:
        """Whether the token may write on ORG (an unknown one is left to the server: 401)."""
        with db.connect(self.database) as conn:
            row = repository.find_token(conn, authorization.removeprefix("Bearer "))
            own = repository.find_token(conn, self.token)
        if row is None or own is None:
            return True
        same = row["organization_id"] == own["organization_id"]
        return same and "project:write" in row["scopes"].split()

    async def _send_broken(
        self, start: dict[str, Any], body: bytes, send: Send, method: str
    ) -> None:
        status, headers, sent = start["status"], list(start["headers"]), body
        if "create-not-listed" in self.kinds and status == 201:
            self.created.add(json.loads(body)["id"])
        if "create-not-listed" in self.kinds and method == "GET" and body.startswith(b"["):
            listed = [key for key in json.loads(body) if key["id"] not in self.created]
            body = json.dumps(listed).encode()
        if "no-link" in self.kinds:
            headers = [(k, v) for k, v in headers if k.lower() != b"link"]
        if "create-200" in self.kinds and status == 201:
            status = 200
        if "problem-json" in self.kinds and status >= 400:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
            headers.append((b"content-type", b"application/problem+json"))
        if "wrong-type" in self.kinds and status < 300 and body:
            body = json.dumps(_wrong_type(json.loads(body))).encode()
        if body != sent:
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


async def _discard(message: Message) -> None:
    """An answer nobody sees."""


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
    if "other-org" in kinds:
        auth.check_organization = _any_organization
    if "ignore-scopes" in kinds:
        auth.token_info = _every_scope
    app = create_app(settings)
    token = _any_token(database)
    app.add_middleware(Breakage, position=MiddlewarePosition.BEFORE_EXCEPTION, kinds=kinds,
                       token=token, database=database)  # fmt: skip
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _any_organization(token_info: Mapping[str, Any], organization_id: int) -> None:
    """`other-org`: every token may act on every organization."""


def _every_scope(row: Mapping[str, Any]) -> dict[str, Any]:
    """`ignore-scopes`: every token has every scope."""
    return {**_token_info(row), "scopes": frozenset(domain.SCOPES)}


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


def role_tokens(database: Path) -> tuple[str, str]:
    """A token of another organization (every scope there) and a read-only one of ORG."""
    with db.connect(database) as conn:
        repository.insert_organization(conn, "elsewhere")
        other, _ = repository.insert_token(conn, "elsewhere", domain.SCOPES)
        read_only, _ = repository.insert_token(conn, ORG, ("project:read",))
    return other, read_only


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
