"""A real PostgreSQL server for the tests and the benchmark, started from the machine's own
PostgreSQL binaries (Debian's `postgresql`, which `make test` installs when missing): initdb in a
temporary folder, `postgres` on a free loopback port, as an unprivileged user when run as root
(postgres refuses root; CI runs as root), torn down at the end. Never a mock."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from clientkeys.store import postgres
from clientkeys.testing.runner import free_port, until

SETTINGS = {
    # A throwaway server: no fsync (its files go with the folder), room for many test pools.
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "log_min_messages": "warning",
}
ROLE = "clientkeys"


def bindir() -> Path:
    """Where initdb and postgres are: `$PG_BINDIR`, else the newest Debian PostgreSQL."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL's server binaries (initdb, postgres) are missing: `make test` installs "
        "Debian's postgresql package; or set PG_BINDIR"
    )


def _version(path: str) -> int:
    number = Path(path).parent.parent.name
    return int(number) if number.isdigit() else 0


def _as_user() -> list[str]:
    """The command prefix that runs postgres unprivileged: nothing unless we are root."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    raise RuntimeError("no unprivileged user (postgres, nobody) to run PostgreSQL as")


def _owner() -> tuple[int, int]:
    prefix = _as_user()
    if not prefix:
        return os.getuid(), os.getgid()
    return int(prefix[1].split("=")[1]), int(prefix[2].split("=")[1])


class PortTaken(Exception):
    """postgres could not listen on its port: another process took it meanwhile."""


def _reachable_temp() -> str:
    """The temporary folder, if the unprivileged user can reach into it (every folder above
    it searchable by others); else /tmp."""
    folder = Path(tempfile.gettempdir()).resolve()
    if _as_user() and not all(p.stat().st_mode & 0o001 for p in [folder, *folder.parents]):
        return "/tmp"
    return str(folder)


class PostgresServer:
    """One PostgreSQL server in its own temporary folder, on a free loopback port."""

    def __init__(self, **settings: str) -> None:
        """`settings` override the throwaway ones in SETTINGS (the benchmark's are durable)."""
        self.settings = {**SETTINGS, **settings}
        self.folder = Path(tempfile.mkdtemp(prefix="clientkeys-pg-", dir=_reachable_temp()))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.started = False
        uid, gid = _owner()
        os.chown(self.folder, uid, gid)
        prefix, bin_ = _as_user(), bindir()
        done = subprocess.run(
            [*prefix, str(bin_ / "initdb"), "-D", str(self.data), "-U", ROLE, "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")

    @property
    def url(self) -> str:
        """The URL of the server's `postgres` database (the one to create others from)."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server (again, on the same port and folder) and wait until it answers. On
        its first start, a port taken meanwhile by another process is traded for a free one."""
        for _ in range(5):
            try:
                self._start()
                return
            except PortTaken:
                if self.started:
                    raise
                self.port = free_port()
        raise RuntimeError("no free port for postgres")

    def _start(self) -> None:
        options = [f"--{name}={value}" for name, value in self.settings.items()]
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            os.chown(self.log, *_owner())
            self.process = subprocess.Popen(
                [*_as_user(), str(bindir() / "postgres"), "-D", str(self.data),
                 "-p", str(self.port), *options],
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        process = self.process

        def accepts() -> bool:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                if process.poll() is not None:
                    raise
                return False

        try:
            until(accepts, 30, "postgres to accept connections")
            self.started = True
        except (psycopg.OperationalError, TimeoutError) as exc:
            log = self.log.read_bytes()[offset:].decode(errors="replace")
            if "could not bind" in log or "already in use" in log:
                raise PortTaken() from exc
            raise RuntimeError(f"postgres did not start:\n{log[-3000:]}") from exc

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are ended)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill the server and all its processes at once (SIGKILL): a crash."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def new_database(self, template: str | None = None) -> str:
        """A new database (a copy of `template`, if given); its URL."""
        name = f"ck_{secrets.token_hex(6)}"
        if template is None:
            return postgres.create_database(self.url, name)
        with postgres.connect(self.url) as database:
            database.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def running(**settings: str) -> Iterator[PostgresServer]:
    """A started PostgreSQL server, removed (folder and all) when the block ends."""
    server = PostgresServer(**settings)
    try:
        server.start()
        yield server
    finally:
        server.remove()
