"""Group commit: the concurrent writes of one process to one SQLite file share a transaction
and its COMMIT (one fsync for all of them).

Its guarantees, which a change here must keep:

- each write is acknowledged (its `write` block returns) only after the COMMIT that stored it;
- a write whose block raises rolls back its own savepoint, and only that: the batch goes on;
- a fault of the shared transaction (the COMMIT, a full disk, the file gone) fails every write
  of the batch: none of them is acknowledged.

The SQLite statements it needs (open the writer's connection, BEGIN, COMMIT, ROLLBACK) come
from the backend (`Transactions`, implemented by `sqlite.SqliteBackend`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from clientkeys.core.errors import StorageUnavailable
from clientkeys.runtime import metrics
from clientkeys.store import faults
from clientkeys.store.backend import arrival

MAX_BATCH = 64
"""Writes one transaction takes at most before it commits, even with more queued."""


class Transactions(Protocol):
    """What group commit asks of its backend."""

    def writer(self) -> sqlite3.Connection:
        """The connection that writes for the group: open, and still on the configured file
        (reopened if need be); a storage fault raises StorageUnavailable."""
        ...

    @property
    def timeout(self) -> float:
        """Seconds a write waits at most for its turn and the write lock, together."""
        ...

    def begin(self, conn: sqlite3.Connection, deadline: float) -> None:
        """BEGIN IMMEDIATE, waiting while another process holds the write lock, until
        `deadline` (time.monotonic) at most."""
        ...

    def busy(self) -> StorageUnavailable:
        """The fault of a write that waited its whole timeout (reported)."""
        ...

    def commit(self, conn: sqlite3.Connection) -> None:
        """COMMIT, then a fault unless the file is still the one written to."""
        ...

    def rollback(self, conn: sqlite3.Connection) -> None:
        """End the transaction open on `conn`, if any."""
        ...

    def lost(self, conn: sqlite3.Connection, exc: BaseException) -> StorageUnavailable:
        """The fault of a transaction that cannot go on (`conn` is not used again)."""
        ...


class _Batch:
    """The writes of one transaction on `conn`: its members wait for `done`; `fault` if it
    failed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.members = 0
        self.done = threading.Event()
        self.fault: BaseException | None = None


class GroupCommit:
    """One connection that writes for every handler thread, and one open transaction (`batch`)
    that the threads arriving while it is open join, each in a savepoint. The last writer of a
    batch (nobody else is queued) commits it and wakes the others."""

    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions
        self.turn = threading.Condition()
        self.busy = False  # a thread is running its block (under `turn`)
        self.queued = 0  # threads waiting for their turn
        self.batch: _Batch | None = None

    @contextmanager
    def write(self, db: Any) -> Iterator[None]:
        """Run the block as one write of the open batch, through the writer's connection
        (sqlite-utils' `db.conn` is swapped for the block); returns after its COMMIT. Its wait
        for the turn and for SQLite's lock together last `timeout` at most: then the busy fault
        (however many queue, each write's clock starts when its request arrived)."""
        deadline = arrival() + self.transactions.timeout
        self._enter(deadline)
        try:
            batch = self._begin(deadline)
        except BaseException:
            self._end_turn(None)
            raise
        conn = batch.conn
        own, db.conn = db.conn, conn
        failed: BaseException | None = None
        try:
            conn.execute("SAVEPOINT write")
            yield
            conn.execute("RELEASE write")
            batch.members += 1
        except BaseException as exc:
            failed = exc
            self._undo(conn, batch, exc)
        finally:
            db.conn = own
        if self._end_turn(batch):
            self._commit(batch)
        if failed is not None:
            raise failed
        batch.done.wait()
        if batch.fault is not None:
            raise _again(batch.fault) from batch.fault
        faults.recovered()

    def _enter(self, deadline: float) -> None:
        """Wait for this process's turn to write, until `deadline` at most (then the busy
        fault); counted as a wait for the process lock."""
        with self.turn:
            if self.busy:
                started = time.monotonic()
                self.queued += 1
                try:
                    while self.busy:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise self.transactions.busy()
                        self.turn.wait(left)
                finally:
                    self.queued -= 1
                metrics.lock_waited("process", time.monotonic() - started)
            self.busy = True

    def _end_turn(self, batch: _Batch | None) -> bool:
        """Let the next queued writer in, or return True: this one must commit `batch` (it
        holds writes and nobody else is queued to join it, or it is full), keeping the turn
        until it has."""
        with self.turn:
            if (
                batch is not None and self.batch is batch and batch.members
                and (not self.queued or batch.members >= MAX_BATCH)
            ):  # fmt: skip
                return True
            if batch is not None and self.batch is batch and not batch.members:
                self._abandon(batch)  # only failed writes: nothing to commit
            self.busy = False
            self.turn.notify()
            return False

    def _begin(self, deadline: float) -> _Batch:
        """The open batch, or a new transaction for one (on a fresh connection if need be)."""
        if self.batch is None:
            conn = self.transactions.writer()
            self.transactions.begin(conn, deadline)
            self.batch = _Batch(conn)
        return self.batch

    def _undo(self, conn: sqlite3.Connection, batch: _Batch, exc: BaseException) -> None:
        """Roll back the failed block's savepoint; if the transaction itself is lost (SQLite
        rolled it back on a storage fault, or the savepoint cannot be undone), so is the batch:
        its other writes fail too."""
        try:
            if conn.in_transaction:
                sqlite3.Connection.execute(conn, "ROLLBACK TO write")
                sqlite3.Connection.execute(conn, "RELEASE write")
                return
        except sqlite3.Error:
            pass
        batch.fault = self.transactions.lost(conn, exc)
        with self.turn:
            self._abandon(batch)

    def _abandon(self, batch: _Batch) -> None:
        """End `batch` without a commit (under `turn`): roll back what is open, wake members."""
        self.transactions.rollback(batch.conn)
        self.batch = None
        batch.done.set()

    def _commit(self, batch: _Batch) -> None:
        """COMMIT the batch (one fsync), wake its members, and give the turn to the next."""
        conn = batch.conn
        try:
            self.transactions.commit(conn)
        except BaseException as exc:
            self.transactions.rollback(conn)
            batch.fault = exc if isinstance(exc, StorageUnavailable) else StorageUnavailable()
        finally:
            with self.turn:
                self.batch = None
                self.busy = False
                self.turn.notify()
            batch.done.set()


def _again(fault: BaseException) -> BaseException:
    """A copy of the batch's fault for one of its writers (each raises its own)."""
    detail = getattr(fault, "detail", None)
    return type(fault)(detail) if isinstance(fault, StorageUnavailable) else StorageUnavailable()
