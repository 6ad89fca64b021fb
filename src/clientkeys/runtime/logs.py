"""Log output: uvicorn's text lines, or one JSON object per line (`--log-format json`).

`config(log_format, level)` is the `logging.config` dictionary `clientkeys serve` hands to
uvicorn, which applies it in every worker. Access lines come from the `clientkeys.access`
logger (see `access.py`), with their fields as attributes of the record (`ACCESS_FIELDS`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from clientkeys.runtime import exchange

FORMATS = ("text", "json")
ACCESS_LOGGER = "clientkeys.access"
ACCESS_FIELDS = (
    "request_id", "method", "path", "operation_id", "status", "duration_ms", "token_id", "client",
)  # fmt: skip


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, the request id of the
    request being served, an access line's fields, and a server error's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }  # fmt: skip
        current = exchange.current.get()
        if current is not None:
            line["request_id"] = current.request_id
        for field in ACCESS_FIELDS:
            if field in record.__dict__:
                line[field] = record.__dict__[field]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def config(log_format: str, level: str) -> dict[str, Any]:
    """The `logging.config.dictConfig` for a server: uvicorn's loggers, clientkeys' (access
    lines on stdout, the rest on stderr, as uvicorn does) and the root logger's."""
    if log_format == "json":
        formatters: dict[str, Any] = {"default": {"()": JsonFormatter}}
    else:
        formatters = {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
            }
        }
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default",
                       "stream": "ext://sys.stderr"},
            "stdout": {"class": "logging.StreamHandler", "formatter": "default",
                       "stream": "ext://sys.stdout"},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "propagate": False},
            "clientkeys": {"handlers": ["stderr"], "level": level, "propagate": False},
            ACCESS_LOGGER: {"handlers": ["stdout"], "level": level, "propagate": False},
        },
    }  # fmt: skip
