"""The JSON report of `clientkeys check` (`--json-report`): what a CI job or a dashboard reads.

One object: the verdict (exit code, outcome word, one-line cause), each phase asked for and how
it ended, each operation with the cases sent, the statuses answered (and the documented ones
never answered), and every failure with the request that shows it as a `curl` command (the
token read from `$CLIENTKEYS_CHECK_TOKEN`, never written out).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clientkeys.check.contract import BROKEN, OK, Outcome, askable
from clientkeys.check.observations import Finding, Operation

SCHEMA_VERSION = 1
OUTCOMES = {OK: "kept", BROKEN: "broken"}
"""The outcome word of each exit code; any other is "untested"."""


def report(outcome: Outcome, base_url: str, requirements: Sequence[str] = ()) -> dict[str, Any]:
    """The report of a finished check, as JSON-ready data."""
    seen, verdict = outcome.seen, outcome.verdict
    return {
        "version": SCHEMA_VERSION,
        "server": base_url,
        "verdict": {
            "code": verdict.code,
            "outcome": OUTCOMES.get(verdict.code, "untested"),
            "cause": verdict.cause,
        },
        "phases": [{"name": name, "status": status} for name, status in outcome.phases.items()],
        "requirements": list(requirements),
        "unmet": outcome.unmet,
        "operations": [_operation(op, op.label in outcome.hung) for op in seen.operations.values()],
        "failures": [_failure(seen.operations[f.operation], f) for f in seen.findings],
    }


def write(outcome: Outcome, path: Path, base_url: str, requirements: Sequence[str] = ()) -> None:
    """Write the JSON report of a finished check to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report(outcome, base_url, requirements), indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def _operation(op: Operation, hung: bool) -> dict[str, Any]:
    return {
        "operationId": op.operation_id,
        "label": op.label,
        "cases": op.cases,
        "statuses": {str(status): n for status, n in sorted(op.statuses.items())},
        "notSeen": [key for key in op.unseen() if askable(key)],
        "networkErrors": op.network_errors,
        "timedOut": hung,
        "checks": dict(sorted(op.checks.items())),
        "failures": len(op.findings),
    }


def _failure(op: Operation, finding: Finding) -> dict[str, Any]:
    return {
        "operationId": op.operation_id,
        "label": op.label,
        "check": finding.check,
        "code": finding.code,
        "title": finding.title,
        "message": finding.message,
        "status": finding.status,
        "curl": finding.curl,
    }
