"""Storage faults, told once: one log line when a fault starts (per fault and process, not per
request) and one when writes are stored again, whatever the backend (`sqlite`,
`postgres`); quiet while a command tells the fault itself (the start checks)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from clientkeys.core.errors import StorageUnavailable

logger = logging.getLogger("clientkeys.db")
_local = threading.local()
_lock = threading.Lock()
_reported: str | None = None
"""The storage fault this process last logged; None once a write succeeds again."""


def report(fault: StorageUnavailable, cause: BaseException | None) -> None:
    """Log a storage fault in one line, once until it changes or clears (not per request)."""
    global _reported
    if getattr(_local, "quiet", False):
        return
    with _lock:
        if _reported == fault.detail:
            return
        _reported = fault.detail
    because = ""
    if cause is not None:
        name = getattr(cause, "sqlite_errorname", None) or type(cause).__name__
        because = f" ({name}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''})"
    logger.error(
        "Storage fault: %s%s Answering %d until it clears.", fault.detail, because, fault.status
    )


def recovered() -> None:
    """A write was stored: if a fault was reported, say once that it has cleared."""
    global _reported
    if _reported is None or getattr(_local, "quiet", False):
        return
    with _lock:
        if _reported is None:
            return
        _reported = None
    logger.warning("Storage recovered: writes are stored again.")


@contextmanager
def told_by_caller() -> Iterator[None]:
    """Faults raised on this thread inside the block are not logged: the caller tells them."""
    _local.quiet = True
    try:
        yield
    finally:
        _local.quiet = False
