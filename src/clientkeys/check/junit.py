"""JUnit XML for `clientkeys check`: one test case per operation and check, read by CI systems.

Each operation is a test class (its operationId); its test cases are every check that ran, plus
`documented 2xx answered` and one per `--require` goal (`--require authorization` is one case of
the whole run). A failure carries the violation and the failing request as a `curl` command; a
check that never ran on an operation is skipped; an operation that did not answer within the
request timeout fails `answered in time`. A run that stopped before anything was answered has
one errored `setup` case with the cause.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

from clientkeys.check.contract import AUTHORIZATION, OK, Outcome, wants
from clientkeys.check.observations import Operation

SUITE = "clientkeys check"
# Characters XML 1.0 cannot carry at all, even escaped; fuzzed requests and answers have them.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def write(outcome: Outcome, path: Path, requirements: Sequence[str] = ()) -> None:
    """Write the JUnit XML report of a finished check to `path`."""
    suite = ElementTree.Element("testsuite", name=SUITE)
    seen = outcome.seen
    if outcome.verdict.code != OK and not any(op.statuses for op in seen.operations.values()):
        _case(suite, SUITE, "setup", error=outcome.verdict.cause)
    for op in seen.operations.values():
        if op.label in outcome.hung:
            cause = outcome.verdict.cause
            _case(suite, op.operation_id, "answered in time", failure=(cause, cause))
        for check in seen.checks:
            _check_case(suite, op, check)
        _coverage_cases(suite, op, [goal for goal in requirements if goal != AUTHORIZATION])
    if AUTHORIZATION in requirements:  # a goal of the whole run, not of an operation
        _case(suite, SUITE, f"require {AUTHORIZATION}",
              error=None if outcome.authorized else "no role token was tested")  # fmt: skip
    counts = {
        kind: len(suite.findall(f"testcase/{kind}")) for kind in ("failure", "error", "skipped")
    }
    suite.attrib.update(
        tests=str(len(suite)), failures=str(counts["failure"]), errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
    )  # fmt: skip
    root = ElementTree.Element("testsuites")
    root.attrib.update({k: v for k, v in suite.attrib.items() if k != "name"})
    root.append(suite)
    ElementTree.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _case(
    suite: ElementTree.Element,
    classname: str,
    name: str,
    *,
    failure: tuple[str, str] | None = None,
    error: str | None = None,
    skipped: str | None = None,
) -> None:
    case = ElementTree.SubElement(suite, "testcase", classname=classname, name=name)
    if failure is not None:
        message, text = _xml(failure[0]), _xml(failure[1])
        ElementTree.SubElement(case, "failure", message=message).text = text
    if error is not None:
        ElementTree.SubElement(case, "error", message=_xml(error)).text = _xml(error)
    if skipped is not None:
        ElementTree.SubElement(case, "skipped", message=skipped)


def _check_case(suite: ElementTree.Element, op: Operation, check: str) -> None:
    findings = [f for f in op.findings if f.check == check]
    if findings:
        message = "; ".join(f"{f.code} {f.title}".strip() for f in findings)
        text = "\n\n".join(
            f"{f.code} {f.title}\n{f.message}\n\nAnswered {f.status}. Reproduce with:\n{f.curl}"
            for f in findings
        )
        _case(suite, op.operation_id, check, failure=(message, text))
    elif op.checks[check] == 0:
        _case(suite, op.operation_id, check, skipped="not run on this operation")
    else:
        _case(suite, op.operation_id, check)


def _coverage_cases(suite: ElementTree.Element, op: Operation, requirements: Sequence[str]) -> None:
    answered = ", ".join(f"{s}×{n}" for s, n in sorted(op.statuses.items())) or "nothing"
    if op.documented_2xx:
        _case(suite, op.operation_id, "documented 2xx answered")
    else:
        _case(suite, op.operation_id, "documented 2xx answered",
              error=f"never answered a documented 2xx; answered {answered}")  # fmt: skip
    for goal in requirements:
        missing = [key for key in op.unseen() if wants(goal, key)]
        if missing:
            _case(suite, op.operation_id, f"require {goal}",
                  error=f"never answered {', '.join(missing)}; answered {answered}")  # fmt: skip
        else:
            _case(suite, op.operation_id, f"require {goal}")


def _xml(text: str) -> str:
    """`text` with what XML cannot carry written as `\\xNN` escapes."""
    return _NOT_XML.sub(lambda m: repr(m.group())[1:-1], text)
