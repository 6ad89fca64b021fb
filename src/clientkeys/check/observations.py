"""What a Schemathesis run really did, read back from its NDJSON event log.

Per operation of the contract: the requests sent, every status code answered (all of them, and
those answering schema-valid "positive" cases), which checks ran on how many cases, and each
failure with the failing request as a `curl` command. The verdict of `clientkeys check` and its
reports are built from this, never from Schemathesis's exit code alone.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clientkeys.openapi.specs import HTTP_METHODS

TOKEN_VARIABLE = "CLIENTKEYS_CHECK_TOKEN"
# Headers every Schemathesis request carries; a reproduction does not need them.
_NOISE_HEADERS = frozenset(
    {"user-agent", "accept-encoding", "accept", "connection", "content-length",
     "x-schemathesis-testcaseid"}
)  # fmt: skip
# Reported by Schemathesis on every case, but only checks anything with --max-response-time.
_INACTIVE_CHECKS = frozenset({"max_response_time"})


@dataclass(frozen=True)
class Finding:
    """One way the server broke the contract, with a request that shows it."""

    operation: str
    check: str
    code: str
    title: str
    message: str
    status: int | None
    curl: str


@dataclass
class Operation:
    """One operation of the contract and what the run saw of it."""

    label: str
    """`METHOD /path`, as Schemathesis names it."""
    operation_id: str
    documented: tuple[str, ...]
    """The response keys the contract documents: "200", "4XX", "default"."""
    statuses: Counter[int] = field(default_factory=Counter)
    positive: Counter[int] = field(default_factory=Counter)
    """Statuses answering schema-valid requests only."""
    cases: int = 0
    network_errors: int = 0
    checks: Counter[str] = field(default_factory=Counter)
    """Cases each check ran on."""
    findings: list[Finding] = field(default_factory=list)

    def documents(self, status: int) -> bool:
        """Whether the contract documents `status` here, exactly or by range."""
        return str(status) in self.documented or f"{str(status)[0]}XX" in self.documented

    def seen(self, documented: str) -> bool:
        """Whether a documented response key ("404", "4XX") was answered at least once."""
        if documented.upper().endswith("XX"):
            return any(str(status)[0] == documented[0] for status in self.statuses)
        return documented.isdigit() and int(documented) in self.statuses

    @property
    def documented_2xx(self) -> list[int]:
        """Documented success statuses that were answered."""
        return [s for s in self.statuses if 200 <= s < 300 and self.documents(s)]

    def unseen(self) -> list[str]:
        """Documented statuses never answered ("default" is not a status)."""
        return [key for key in self.documented if key != "default" and not self.seen(key)]


@dataclass
class Observations:
    """Everything a run saw, by operation label."""

    operations: dict[str, Operation]
    errors: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    finished: bool = False

    @property
    def statuses(self) -> Counter[int]:
        """Every status answered, over all operations."""
        return sum((op.statuses for op in self.operations.values()), Counter())

    @property
    def positive(self) -> Counter[int]:
        """Every status answering a schema-valid request, over all operations."""
        return sum((op.positive for op in self.operations.values()), Counter())

    @property
    def findings(self) -> list[Finding]:
        return [f for op in self.operations.values() for f in op.findings]

    @property
    def checks(self) -> list[str]:
        """Every check that ran, in a stable order."""
        return sorted({name for op in self.operations.values() for name in op.checks})


def operations_of(spec: Mapping[str, Any]) -> dict[str, Operation]:
    """An empty `Operation` for every operation of a bundled spec, by label."""
    found = {}
    for path, item in spec.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                label = f"{method.upper()} {path}"
                operation = item[method]
                found[label] = Operation(
                    label=label,
                    operation_id=operation.get("operationId", label),
                    documented=tuple(str(key) for key in operation.get("responses", {})),
                )
    return found


def read(events: Path, spec: Mapping[str, Any], token: str) -> Observations:
    """Observations from an NDJSON event file of `schemathesis run --report ndjson`."""
    seen = Observations(operations=operations_of(spec))
    if not events.exists():
        return seen
    with events.open(encoding="utf-8") as lines:
        for name, event in _events(lines):
            if name == "ScenarioFinished":
                _record(seen, event.get("recorder") or {}, token)
            elif name in ("NonFatalError", "FatalError"):
                seen.errors.append(_error_text(event))
            elif name == "EngineFinished":
                seen.finished = True
                seen.stop_reason = event.get("stop_reason")
    return seen


def _events(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    for line in lines:
        try:
            decoded = json.loads(line) if line.strip() else {}
        except json.JSONDecodeError:  # a run cut short leaves a partial last line
            return
        yield from decoded.items()


def _error_text(event: Mapping[str, Any]) -> str:
    value = event.get("value") or event.get("exception") or event
    label = event.get("label")
    text = value if isinstance(value, str) else json.dumps(value)[:500]
    return f"{label}: {text}" if label else text


def _record(seen: Observations, recorder: Mapping[str, Any], token: str) -> None:
    """Add one scenario (one operation, or a stateful chain of several) to `seen`."""
    cases = recorder.get("cases", {})
    interactions = recorder.get("interactions", {})

    def operation_of(case_id: str) -> Operation | None:
        case = cases.get(case_id, {}).get("value", {})
        return seen.operations.get(f"{case.get('method', '').upper()} {case.get('path')}")

    for case_id, interaction in interactions.items():
        operation = operation_of(case_id)
        if operation is None:
            continue
        operation.cases += 1
        response = interaction.get("response")
        if response is None:
            operation.network_errors += 1
            continue
        status = int(response["status_code"])
        operation.statuses[status] += 1
        case = cases[case_id]["value"]
        if case.get("meta", {}).get("generation", {}).get("mode") == "positive":
            operation.positive[status] += 1
    for case_id, checks in recorder.get("checks", {}).items():
        operation = operation_of(case_id)
        for check in checks:
            name = check["name"]
            if operation is None or name in _INACTIVE_CHECKS:
                continue
            operation.checks[name] += 1
            failure = (check.get("failure_info") or {}).get("failure")
            if check.get("status") == "failure" and failure is not None:
                finding = _finding(operation, name, failure, interactions.get(case_id), token)
                if not any(_same(finding, known) for known in operation.findings):
                    operation.findings.append(finding)


def _same(one: Finding, other: Finding) -> bool:
    return (one.check, one.code, one.title, one.message) == (
        other.check, other.code, other.title, other.message
    )  # fmt: skip


def _finding(
    operation: Operation,
    check: str,
    failure: Mapping[str, Any],
    interaction: Mapping[str, Any] | None,
    token: str,
) -> Finding:
    response = (interaction or {}).get("response") or {}
    request = (interaction or {}).get("request")
    return Finding(
        operation=operation.label,
        check=check,
        code=str(failure.get("code") or ""),
        title=str(failure.get("title") or check),
        message=mask(str(failure.get("message") or ""), token),
        status=response.get("status_code"),
        curl=curl(request, token) if request else "",
    )


def mask(text: str, token: str, variable: str = TOKEN_VARIABLE) -> str:
    """`text` with the check's token replaced by a reference to its environment variable."""
    return text.replace(token, "${" + variable + "}") if token else text


def curl(request: Mapping[str, Any], token: str, variable: str = TOKEN_VARIABLE) -> str:
    """A shell command that sends `request` (as recorded in the event log) again.

    The token is not written out: the command reads it from $`variable`."""
    prefix, parts = "", ["curl", "-X", str(request["method"])]
    for name, values in (request.get("headers") or {}).items():
        if name.lower() in _NOISE_HEADERS:
            continue
        for value in values if isinstance(values, list) else [values]:
            parts += ["-H", _quote(f"{name}: {value}", token, variable)]
    body = _body(request.get("body"))
    if isinstance(body, str):
        parts += ["--data-binary", _quote(body, token, variable)]
    elif isinstance(body, bytes):  # not UTF-8: printf's octal escapes keep every byte
        prefix = f"printf {shlex.quote(_octal(body))} | "
        parts += ["--data-binary", "@-"]
    parts.append(_quote(str(request["uri"]), token, variable))
    return prefix + " ".join(parts)


def _quote(word: str, token: str, variable: str) -> str:
    if not token or token not in word:
        return shlex.quote(word)
    # Double quotes, so that the shell expands the variable that stands for the token.
    escaped = "".join("\\" + c if c in '\\"$`' else c for c in word)
    return '"' + escaped.replace(token, "${" + variable + "}") + '"'


def _body(body: Any) -> str | bytes | None:
    """The recorded body as text, or as bytes when it is not UTF-8."""
    if body is None:
        return None
    if isinstance(body, dict) and "$base64" in body:
        raw = base64.b64decode(body["$base64"])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    return body if isinstance(body, str) else json.dumps(body)


def _octal(raw: bytes) -> str:
    """A printf format that prints exactly `raw`."""
    return "".join(chr(b) if 32 <= b < 127 and b not in b"%\\" else f"\\{b:03o}" for b in raw)
