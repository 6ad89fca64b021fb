"""Live progress of `clientkeys check`, from Schemathesis's events as they are written.

On a terminal one status line is rewritten in place (phase, operation, cases and failures so
far), and each finished phase leaves a line; elsewhere (a CI log, a pipe) the same facts come as
plain lines, one per finished operation (not per stateful chain) and phase, with no control
characters. Colour is used
only on a terminal, and never when `NO_COLOR` is set (https://no-color.org).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

RED, GREEN, RESET = "\x1b[31m", "\x1b[32m", "\x1b[0m"
CLEAR_LINE = "\r\x1b[K"
# Schemathesis's own phases before the tests (reading the API's capabilities, the schema, the
# authentication) are not the contract's phases: progress leaves them out.
_SHOWN_PHASES = frozenset({"examples", "coverage", "fuzzing", "stateful"})


@dataclass
class Progress:
    """Writes progress lines to `stream` as events arrive; `names` maps a Schemathesis label
    (`METHOD /path`) to the name people know the operation by (its operationId)."""

    stream: TextIO
    live: bool
    """Rewrite one status line in place (a terminal) instead of writing plain lines."""
    color: bool
    names: Mapping[str, str] = field(default_factory=dict)
    phase: str = ""
    cases: int = 0
    failures: int = 0
    _status_shown: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    """Events come from the thread that follows the log; other output from the main one."""

    @classmethod
    def to(cls, stream: TextIO, names: Mapping[str, str]) -> Progress:
        """Progress for `stream`: live with colour on a terminal (unless `NO_COLOR`)."""
        live = stream.isatty()
        color = live and not os.environ.get("NO_COLOR")
        return cls(stream, live, color, names)

    def event(self, name: str, payload: Mapping[str, Any]) -> None:
        """Take one event of the NDJSON log: `{name: payload}`."""
        with self._lock:
            self._event(name, payload)

    def clear(self) -> None:
        """Take a status line off the terminal, before other output is written there."""
        with self._lock:
            if self._status_shown:
                self.stream.write(CLEAR_LINE)
                self.stream.flush()
                self._status_shown = False

    def _event(self, name: str, payload: Mapping[str, Any]) -> None:
        if name == "PhaseStarted":
            phase = (payload.get("phase") or {}).get("name", "")
            if phase in _SHOWN_PHASES:
                self.phase = phase
                self._status(f"{phase}: started")
        elif name == "ScenarioFinished" and self.phase:
            recorder = payload.get("recorder") or {}
            cases, failed = _counts(recorder)
            self.cases += cases
            self.failures += failed
            label = str(recorder.get("label") or "")
            if label in self.names or self.live:  # a stateful chain as a plain line is noise
                operation = self.names.get(label, label)
                self._status(f"{self.phase}: {operation}: {cases} cases{self._so_far()}")
        elif name == "PhaseFinished" and self.phase:
            status = payload.get("status", "")
            self._line(f"{self.phase}: {status}{self._so_far()}")
            self.phase = ""
        elif name == "NonFatalError":
            label = str(payload.get("label") or "")
            self._line(f"{self.names.get(label, label)}: {_error(payload.get('value'))}")

    def _so_far(self) -> str:
        failures = f"{self.failures} failure{'s' if self.failures != 1 else ''}"
        if self.color:
            failures = f"{RED if self.failures else GREEN}{failures}{RESET}"
        return f" (so far {self.cases} cases, {failures})"

    def _status(self, text: str) -> None:
        """A line that the next one replaces, on a terminal; a plain line elsewhere."""
        if not self.live:
            self._line(text)
            return
        self.stream.write(f"{CLEAR_LINE}{text}")
        self.stream.flush()
        self._status_shown = True

    def _line(self, text: str) -> None:
        prefix = CLEAR_LINE if self._status_shown else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()
        self._status_shown = False


def _counts(recorder: Mapping[str, Any]) -> tuple[int, int]:
    """Cases sent and cases that failed a check, in one scenario's recorder."""
    cases = len(recorder.get("interactions") or {})
    checks: Mapping[str, Any] = recorder.get("checks") or {}
    failed = sum(
        1 for results in checks.values()
        if any(check.get("status") == "failure" for check in results)
    )  # fmt: skip
    return cases, failed


def _error(value: Any) -> str:
    """An error event's value as one line: its type and message."""
    if isinstance(value, dict):
        return f"{value.get('type', 'error')}: {value.get('message', '')}"
    return str(value)


Listener = Callable[[str, Mapping[str, Any]], None]
