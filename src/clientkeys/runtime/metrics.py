"""Prometheus metrics, off until `enable()`: requests, latency, validation failures, database
errors and lock waits.

`clientkeys serve --metrics` sets `PROMETHEUS_MULTIPROC_DIR` before any worker starts, so that
each worker writes its numbers to its own files there and a scrape of any worker adds up all
of them (prometheus-client's multiprocess mode). Without that variable the numbers are this
process's own. prometheus-client is imported by `enable()`, never before: the library picks its
mode when it is first imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LOCK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 10.0)
UNROUTED = "(none)"
"""The `operation` label of a request that matched no operation (404, 405)."""


@dataclass(frozen=True)
class _Metrics:
    requests: Any
    latency: Any
    validation_failures: Any
    database_errors: Any
    lock_wait: Any
    registry: Any
    multiprocess: bool


_metrics: _Metrics | None = None


def enable() -> None:
    """Create this process's metrics (once); from then on they record."""
    global _metrics
    if _metrics is not None:
        return
    from prometheus_client import CollectorRegistry, Counter, Histogram, values

    multiprocess = bool(getattr(values.ValueClass, "_multiprocess", False))
    registry = None if multiprocess else CollectorRegistry()
    _metrics = _Metrics(
        requests=Counter(
            "clientkeys_requests",
            "API requests answered, by operationId and status.",
            ["operation", "status"],
            registry=registry,
        ),
        latency=Histogram(
            "clientkeys_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by operationId.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        validation_failures=Counter(
            "clientkeys_validation_failures",
            "Requests refused by request validation (bad parameters, body, media type, size).",
            ["operation"],
            registry=registry,
        ),
        database_errors=Counter(
            "clientkeys_database_errors",
            "Requests that failed on a database error, by error.",
            ["error"],
            registry=registry,
        ),
        lock_wait=Histogram(
            "clientkeys_lock_wait_seconds",
            "Waits for the write lock: `process` (threads of one worker), `sqlite` (workers).",
            ["lock"],
            buckets=LOCK_BUCKETS,
            registry=registry,
        ),
        registry=registry,
        multiprocess=multiprocess,
    )


def enabled() -> bool:
    """Whether this process records metrics."""
    return _metrics is not None


def observe_request(operation: str | None, status: int, seconds: float, invalid: bool) -> None:
    """Count one answered API request."""
    if _metrics is None:
        return
    label = operation or UNROUTED
    _metrics.requests.labels(label, str(status)).inc()
    _metrics.latency.labels(label).observe(seconds)
    if invalid:
        _metrics.validation_failures.labels(label).inc()


def database_error(error: BaseException) -> None:
    """Count a request that failed on the database."""
    if _metrics is not None:
        _metrics.database_errors.labels(type(error).__name__).inc()


def lock_waited(lock: str, seconds: float) -> None:
    """Count one wait for a write lock that was not free at once."""
    if _metrics is not None:
        _metrics.lock_wait.labels(lock).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """Every worker's metrics (multiprocess mode) or this process's, as Prometheus text."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    if _metrics is None:
        raise RuntimeError("metrics are not enabled")
    registry = _metrics.registry
    if _metrics.multiprocess:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


@contextmanager
def multiprocess_directory() -> Iterator[Path]:
    """The folder every worker writes its metrics to, exported as `PROMETHEUS_MULTIPROC_DIR`.

    The folder that variable names, if set, is emptied of earlier runs' files and kept;
    otherwise a temporary folder is made, and removed at the end.
    """
    import shutil
    import tempfile

    given = Path(os.environ[MULTIPROC_ENV]) if os.environ.get(MULTIPROC_ENV) else None
    folder = given or Path(tempfile.mkdtemp(prefix="clientkeys-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # prometheus-client's files: <type>_<pid>.db
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        if given is None:
            shutil.rmtree(folder, ignore_errors=True)
