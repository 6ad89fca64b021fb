"""Real `clientkeys serve` processes for the fault, race, HTTP-edge and scale-out tests: seeded
databases (a SQLite file, or a `postgresql://` URL), servers that can be killed whole (started
and stopped by `clientkeys.testing.runner`), small file systems, raw HTTP and JSON calls."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

from clientkeys.store import backend as store
from clientkeys.store import repository
from clientkeys.store import sqlite as db
from clientkeys.testing import runner
from clientkeys.testing.runner import clientkeys_command, free_port

ORG, PROJECT = "acme", "web"
KEYS = f"/api/0/projects/{ORG}/{PROJECT}/keys/"
ALL_SCOPES = ["project:read", "project:write", "project:admin"]


Database = Path | str
"""A SQLite file's path or a `postgresql://` URL."""


def seed(database: Database) -> str:
    """A database with organization `acme`, project `web`; returns an all-scopes token."""
    store.init_db(database)
    with store.connect(database) as conn:
        repository.insert_organization(conn, ORG)
        repository.insert_project(conn, ORG, PROJECT)
        token, _ = repository.insert_token(conn, ORG, ALL_SCOPES)
    return token


def serve_command(port: int, database: Database, *extra: str) -> list[str]:
    return clientkeys_command("serve", port, "--database", str(database), "--workers", "2",
                              "--log-level", "warning", *extra)  # fmt: skip


@dataclass
class Server(runner.Server):
    """A running `clientkeys serve` on a seeded database, with its token (its own process
    group: `kill` stops it whole)."""

    _: KW_ONLY
    token: str
    database: Database

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, Any, http.client.HTTPResponse]:
        """One request with the token; (status, decoded JSON or None, response)."""
        own = conn is None
        conn = conn or self.connection()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            conn.request(method, path, None if body is None else json.dumps(body), headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            if own:
                conn.close()
        return response.status, json.loads(data) if data else None, response

    def workers(self) -> list[int]:
        """The worker processes' ids."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]


@contextmanager
def serving(
    database: Database, token: str, *extra: str, logs: Path | None = None
) -> Iterator[Server]:
    """`clientkeys serve` with 2 workers on `database` until the block ends (then SIGTERM);
    its output goes to a file in `logs` (default: the database file's folder)."""
    server = start(database, token, *extra, logs=logs)
    try:
        wait_until_up(server)
        yield server
    finally:
        stop(server)


def start(database: Database, token: str, *extra: str, logs: Path | None = None) -> Server:
    """Start `clientkeys serve` on `database` without waiting for it (`wait_until_up`)."""
    port = free_port()
    if logs is None:
        assert isinstance(database, Path), "name a folder for the logs of a postgresql:// server"
        logs = database.parent
    started = runner.start(serve_command(port, database, *extra), port, logs / f"server-{port}.log")
    return Server(**vars(started), token=token, database=database)


def stop(server: Server) -> None:
    """SIGTERM the server (and its workers), if it still runs."""
    server.stop()


class Writers:
    """Clients creating keys as fast as the server answers, each on its own connection;
    `acknowledged` holds the id of every key answered 201, `answers` every status."""

    def __init__(self, server: Server, clients: int = 6) -> None:
        self.server, self.stop = server, threading.Event()
        self.acknowledged: set[str] = set()
        self.answers: list[tuple[int, Any]] = []
        self.sent: list[tuple[float, int]] = []
        """(when the request was sent, its answer's status), for every answer."""
        self.threads = [threading.Thread(target=self._write) for _ in range(clients)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _write(self) -> None:
        conn = self.server.connection()
        try:
            while not self.stop.is_set():
                sent = time.monotonic()
                status, body, _ = self.server.call("POST", KEYS, {}, conn)
                self.answers.append((status, body))
                self.sent.append((sent, status))
                if status == 201:
                    self.acknowledged.add(body["id"])
        except (OSError, http.client.HTTPException):
            return  # the server is gone
        finally:
            conn.close()

    def wait_for(self, acknowledged: int, seconds: float = 30) -> None:
        """Wait until `acknowledged` writes are acknowledged, or `seconds` have passed (the
        caller's assertions then say what was missing)."""
        try:
            runner.until(lambda: len(self.acknowledged) >= acknowledged, seconds, "the writes")
        except TimeoutError:
            pass


def wait_until_up(server: Server, seconds: float = 60) -> None:
    """Wait until the server serves its spec (the API is built, its database ready)."""
    runner.wait_until_answers(server, "/openapi.json", ok_only=True, seconds=seconds)


def run_serve(database: Path, seconds: float = 30) -> subprocess.CompletedProcess[str]:
    """`clientkeys serve` expected to refuse to start: its exit and output (fails if it serves)."""
    port = free_port()
    try:
        return subprocess.run(
            serve_command(port, database), capture_output=True, text=True, timeout=seconds,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the server started on {database} instead of refusing") from exc


def raw_exchange(port: int, data: bytes | Sequence[bytes], timeout: float = 10) -> bytes:
    """Send raw bytes (in pieces, if a sequence), read until the server closes or goes quiet."""
    pieces = [data] if isinstance(data, bytes) else list(data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for piece in pieces:
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(2)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split raw HTTP/1.1 responses (Content-Length bodies) into (status, headers, body)."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        found.append((int(lines[0].split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return found


@contextmanager
def small_filesystem(size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "2m"), mounted for the block: a disk that can fill up. Needs
    root, as `make test` runs in CI; fails with the reason otherwise."""
    mount_point = Path(tempfile.mkdtemp(prefix="clientkeys-fs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        mount_point.rmdir()
        raise RuntimeError(f"cannot mount a tmpfs (this test needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


def chattr(flag: str, *paths: Path) -> None:
    """Set or clear a file attribute (`+i`: immutable, unwritable even for root)."""
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


def stored_public_keys(database: Database) -> set[str]:
    """The public keys stored in a database (read directly; a SQLite file's WAL included)."""
    with store.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT public_key FROM keys", []).fetchall()}


def integrity(database: Path) -> str:
    with db.connect(database) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
