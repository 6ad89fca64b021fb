"""`clientkeys check`: the spec's conformance suite (Schemathesis) against any server, with a
verdict read from what really happened.

The suite runs against *our* contract, bundled into one document, not against whatever spec
the server under test serves: a server that drifted from the contract must fail. Schemathesis
runs as its CLI, writing its event log (NDJSON) into a private temporary folder; the verdict
comes from that log (`observations.py`), so a run that never exercised the API cannot pass:

    0  the server was really exercised and kept the contract
    1  the server breaks the contract (Schemathesis's report says where)
    2  it could not really be tested: unreachable, token rejected, organization or project not
       found, an operation never answered a documented 2xx, or a required coverage not reached

Nothing is written into the working directory: Schemathesis's cache and crash files are off,
Hypothesis keeps its data in the temporary folder, reports go only where asked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clientkeys.check import observations
from clientkeys.check.observations import Observations, Operation
from clientkeys.openapi import specs as openapi

PHASES = ("examples", "coverage", "fuzzing", "stateful")
"""Schemathesis's phases."""
OWN_PHASES = ("authorization", "effects")
"""check's own phases, after Schemathesis's (`authorization.py`, `effects.py`)."""
AUTHORIZATION = "authorization"
"""The `--require` goal that the authorization phase proved something."""
REQUIREMENTS = ("all-2xx", "all-4xx", "all")
"""`--require` goals: every documented 2xx, every documented 4xx, or every documented status
but the 5xx of every operation answered at least once; a status code (`415`) asks for that
status from every operation that documents it. One documented 2xx per operation is always
required. (A documented 5xx, such as 507 for a full disk, is the server's own condition: no
request can ask for it.)"""
OK, BROKEN, UNTESTED = 0, 1, 2

# Explicit `public`/`secret` values are unique: a generated body may repeat one already used,
# which Sentry's contract answers with a 400 field error. No schema can say "unique", so for
# create alone a 400 is not counted as "valid data rejected".
# The cache is off: a check is a verdict on one run, and Schemathesis would otherwise write
# `.schemathesis/` (crash replays) into whatever folder the command runs from.
CONFIG = """
[cache]
enabled = false

[parameters]
"path.organization_slug" = {org}
"path.project_slug" = {project}

[[operations]]
include-operation-id = "Create a New Client Key"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404]
"""
# No Hypothesis example database either (with the cache off above, nothing is written into the
# working directory). The token is masked by `observations.mask` instead of Schemathesis's
# sanitizer, so that the failing requests in the reports can be sent again.
PRIVATE = """
[generation]
database = "none"

[output.sanitization]
enabled = {sanitize}
"""
MIN_MASKED_TOKEN = 8
"""A shorter token is left to Schemathesis's sanitizer: replacing it in text would garble it."""
TOKEN_VARIABLE = "CLIENTKEYS_CHECK_TOKEN"
"""Where the Schemathesis process finds the token (not in its command line, nor on disk)."""


def schemathesis_config(org: str, project: str, token: str) -> str:
    """Schemathesis's configuration for checking `org`/`project` with `token`.

    The token is a configured header, which Schemathesis treats as a fixed value of every case
    it generates: no case claims to lack it while the request carries it, so a valid request
    is never judged as a negative one (its `ignored_auth` check still sends each operation
    without it). Headers added when a case is sent instead (the CLI's `--header` does this
    too, schemathesis#2898; `call(headers=...)` in-process) are invisible to its checks.
    """
    authorization = json.dumps(f"Bearer {token}")
    return f"headers = {{ Authorization = {authorization} }}\n" + CONFIG.format(
        org=json.dumps(org), project=json.dumps(project)
    )


@dataclass(frozen=True)
class Options:
    """How thoroughly to test, and which reports to write."""

    max_examples: int = 50
    phases: Sequence[str] = PHASES
    seed: int | None = None
    requirements: Sequence[str] = ()
    forbidden_token: str | None = None
    """A valid token the server must refuse on every operation: another organization's."""
    read_only_token: str | None = None
    """A token of the organization with project:read only."""
    junit: Path | None = None
    har: Path | None = None
    vcr: Path | None = None


@dataclass(frozen=True)
class Verdict:
    """The exit code and its one-line cause."""

    code: int
    cause: str


@dataclass
class Outcome:
    """A finished check: the verdict and what it rests on."""

    verdict: Verdict
    seen: Observations
    unmet: list[str] = field(default_factory=list)
    """Operations (with what they lacked) that missed a coverage requirement."""
    authorized: list[str] = field(default_factory=list)
    """The roles whose authorization the authorization phase proved."""


def reachable(base_url: str, seconds: float) -> str | None:
    """None once the server at `base_url` accepts connections, within `seconds`; otherwise why
    it did not (the last connection error)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{base_url!r} is not an http(s) URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((parts.hostname, port), timeout=2):
                return None
        except OSError as exc:
            if time.monotonic() >= deadline:
                return exc.strerror or str(exc)
            time.sleep(0.1)


def schemathesis_command(
    spec_file: Path, config_file: Path, base_url: str, events: Path, options: Options
) -> list[str]:
    """The Schemathesis CLI call that runs every check against `base_url` (the token is in the
    configuration, `schemathesis_config`)."""
    reports = {"ndjson": events, "har": options.har, "vcr": options.vcr}
    chosen = {name: path for name, path in reports.items() if path is not None}
    command = [
        sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; "
        "sys.exit(schemathesis())",
        "--config-file", str(config_file), "run", str(spec_file), "--url", base_url,
        "--checks", "all", "--phases", ",".join(p for p in options.phases if p in PHASES),
        "--max-examples", str(options.max_examples),
        "--workers", "1",
        "--report", ",".join(chosen),
    ]  # fmt: skip
    for name, path in chosen.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        command += [f"--report-{name}-path", str(path.resolve())]
    if options.seed is not None:
        command += ["--seed", str(options.seed)]
    return command


def check(
    spec_file: Path,
    base_url: str,
    token: str,
    org: str,
    project: str,
    options: Options,
    echo: Callable[[str], None] = lambda line: None,
    wait: float = 0,
) -> Outcome:
    """Run the suite, once the server accepts connections (within `wait` seconds); every line
    of Schemathesis's report goes to `echo`, token masked."""
    base_url = base_url.rstrip("/")
    spec = openapi.bundle(spec_file)
    not_answering = reachable(base_url, wait)
    if not_answering is not None:
        seen = Observations(operations=observations.operations_of(spec))
        waited = f" (waited {wait:g} s)" if wait else ""
        cause = f"cannot reach {base_url}{waited}: {not_answering}"
        return Outcome(Verdict(UNTESTED, cause), seen)
    from clientkeys.check import phases  # (here: it imports this module's verdicts)

    fuzzed = any(phase in PHASES for phase in options.phases)
    seen, returncode = Observations(operations=observations.operations_of(spec)), OK
    if fuzzed:
        seen, returncode = _schemathesis(spec, base_url, token, org, project, options, echo)
    answering = seen.statuses and _setup_problem(seen, org, project) is None
    if answering:
        # The server really answers: ask for what generated cases cannot reach. (Imported here:
        # probes send with aiohttp, from the check extra; `serve` imports this module.)
        from clientkeys.check import probes

        chosen = probes.probes(token, org, options.forbidden_token)
        probes.run(seen, spec, base_url, project, chosen)
    tally = phases.Tally()
    if answering or not fuzzed:
        tally = phases.run(spec, seen, base_url, token, org, project, options)
    unmet = unmet_requirements(seen, options.requirements)
    found = verdict(seen, returncode, org, project, unmet, options.requirements)
    if not fuzzed and not tally.requests:
        found = phases.nothing_sent(tally)
    return Outcome(phases.amend(found, tally, options), seen, unmet, tally.authorization)


def _schemathesis(
    spec: dict[str, Any],
    base_url: str,
    token: str,
    org: str,
    project: str,
    options: Options,
    echo: Callable[[str], None],
) -> tuple[Observations, int]:
    """Run Schemathesis's CLI in a private folder; what it saw, and its exit code."""
    with tempfile.TemporaryDirectory(prefix="clientkeys-check-") as folder:
        work = Path(folder)
        bundled, config, events = work / "openapi.json", work / "st.toml", work / "events.ndjson"
        bundled.write_text(json.dumps(spec))
        masked = len(token) >= MIN_MASKED_TOKEN
        config.write_text(
            schemathesis_config(org, project, "${" + TOKEN_VARIABLE + "}")
            + PRIVATE.format(sanitize=str(not masked).lower())
        )
        command = schemathesis_command(bundled, config, base_url, events, options)
        returncode = _run(command, work, echo, token, masked)
        for report in (options.har, options.vcr):
            if report is not None and report.exists() and masked:
                report.write_text(observations.mask(report.read_text(), token))
        return observations.read(events, spec, token if masked else ""), returncode


def _run(
    command: list[str], work: Path, echo: Callable[[str], None], token: str, masked: bool
) -> int:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1", TOKEN_VARIABLE: token,
           "HYPOTHESIS_STORAGE_DIRECTORY": str(work / "hypothesis")}  # fmt: skip
    token = token if masked else ""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=work
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if str(work) not in line:  # the event log is ours, and gone after the run
                echo(observations.mask(line.rstrip("\n"), token))
    return process.returncode


# The verdict ------------------------------------------------------------------------------------


def verdict(
    seen: Observations,
    returncode: int,
    org: str,
    project: str,
    unmet: Sequence[str] = (),
    requirements: Sequence[str] = (),
) -> Verdict:
    """0, 1 or 2 with a one-line cause, from what the run saw (not from its exit code alone)."""
    setup = _setup_problem(seen, org, project)
    if setup is not None:
        return Verdict(UNTESTED, setup)
    findings = seen.findings
    if findings:
        kinds = Counter(f"{f.code} {f.title}".strip() for f in findings)
        listed = "; ".join(f"{kind} ({n})" for kind, n in kinds.most_common())
        plural = "s" if len(findings) > 1 else ""
        return Verdict(BROKEN, f"{len(findings)} violation{plural}: {listed}")
    if seen.errors:
        return Verdict(UNTESTED, f"Schemathesis could not test everything: {seen.errors[0]}")
    no_2xx = [op for op in seen.operations.values() if not op.documented_2xx]
    if no_2xx:
        listed = "; ".join(f"{op.operation_id} ({_why_no_2xx(op)})" for op in no_2xx)
        many = f"{len(no_2xx)} operations never" if len(no_2xx) > 1 else "1 operation never"
        return Verdict(UNTESTED, f"{many} answered a documented 2xx: {listed}")
    if unmet:
        return Verdict(UNTESTED, f"coverage below --require {','.join(requirements)}: "
                                 + "; ".join(unmet))  # fmt: skip
    if returncode != OK:  # Schemathesis saw something the event log did not show us
        return Verdict(returncode if returncode in (BROKEN, UNTESTED) else UNTESTED,
                       f"Schemathesis exited with {returncode}; see its report above")  # fmt: skip
    requests = sum(op.cases for op in seen.operations.values())
    met = f", --require {','.join(requirements)} met" if requirements else ""
    return Verdict(OK, f"{requests} requests, every operation answered a documented 2xx{met}")


def _setup_problem(seen: Observations, org: str, project: str) -> str | None:
    """Why nothing meaningful could be tested, when the answers show it."""
    if seen.stop_reason == "server_unavailable":
        return "the server stopped responding during the run"
    statuses = seen.statuses
    errors = sum(op.network_errors for op in seen.operations.values())
    if not statuses:
        if errors:
            return f"no request got an answer ({errors} network errors)"
        return "no request was sent" + (f": {seen.errors[0]}" if seen.errors else "")
    if any(200 <= status < 300 for status in statuses):
        return None
    positive, valid = seen.positive, sum(seen.positive.values())
    if valid and set(positive) <= {401, 403}:
        return (f"the token was rejected: all {valid} valid requests were answered 401 or 403 "
                f"({_counts(positive)}); it needs every project scope on {org!r}")  # fmt: skip
    if positive[404] * 2 > valid:
        return (f"organization {org!r} or project {project!r} not found: no 2xx, and "
                f"{positive[404]} of {valid} valid requests answered 404")  # fmt: skip
    return None


def _why_no_2xx(operation: Operation) -> str:
    if not operation.statuses:
        return "no request was answered"
    hint, positive = "", set(operation.positive)
    if positive == {401}:
        hint = "; the token is rejected here"
    elif positive and positive <= {401, 403}:
        hint = "; the token may not do this (a missing scope?)"
    elif positive == {404}:
        hint = "; every valid request named something that does not exist"
    return f"answered {_counts(operation.statuses)}{hint}"


def _counts(statuses: Counter[int]) -> str:
    return ", ".join(f"{status}×{n}" for status, n in sorted(statuses.items()))


def unmet_requirements(seen: Observations, requirements: Sequence[str]) -> list[str]:
    """Each operation that misses a `--require` goal, with the statuses it lacks."""
    unmet = []
    for op in seen.operations.values():
        missing = [key for key in op.unseen() if any(wants(goal, key) for goal in requirements)]
        if missing:
            unmet.append(f"{op.operation_id} never answered {', '.join(missing)}")
    return unmet


def wants(goal: str, documented: str) -> bool:
    """Whether a `--require` goal asks for a documented response key ("404", "4XX")."""
    if goal == "all":
        return askable(documented)
    if goal in ("all-2xx", "all-4xx"):
        return documented.startswith(goal[4])
    return goal == documented


def askable(documented: str) -> bool:
    """Whether a request can ask for a documented response key: not a 5xx (a full disk, a
    read-only database: the server's own conditions)."""
    return not documented.startswith("5")


def parse_requirements(value: str) -> list[str]:
    """`--require` goals from a comma-separated list; ValueError names a bad one."""
    goals = [goal.strip() for goal in value.split(",") if goal.strip()]
    for goal in goals:
        if goal not in (*REQUIREMENTS, AUTHORIZATION) and not (goal.isdigit() and len(goal) == 3):
            raise ValueError(f"{goal!r}: choose from {', '.join(REQUIREMENTS)}, {AUTHORIZATION} "
                             "or a status code")  # fmt: skip
    return goals


# The summary ------------------------------------------------------------------------------------


def summary(seen: Observations) -> list[str]:
    """The coverage summary: per operation, the cases sent, the documented statuses answered
    and not answered, and any undocumented status."""
    lines = ["Coverage (documented statuses answered per operation):"]
    for op in seen.operations.values():
        documented = {s: n for s, n in sorted(op.statuses.items()) if op.documents(s)}
        undocumented = {s: n for s, n in sorted(op.statuses.items()) if not op.documents(s)}
        lines.append(f"  {op.operation_id}  ({op.label})")
        detail = f"    {op.cases} cases; seen {_counts(Counter(documented)) or 'none'}"
        unseen = [key for key in op.unseen() if askable(key)]
        detail += f"; not seen {', '.join(unseen)}" if unseen else "; every documented status"
        if server_own := [key for key in op.unseen() if not askable(key)]:
            detail += f" but {', '.join(server_own)} (the server's own conditions)"
        if undocumented:
            detail += f"; UNDOCUMENTED {_counts(Counter(undocumented))}"
        if op.network_errors:
            detail += f"; {op.network_errors} network errors"
        lines.append(detail)
    return lines


def findings_report(seen: Observations) -> list[str]:
    """Each violation with the operation, the check, what went wrong and how to send it again."""
    lines = []
    for number, finding in enumerate(seen.findings, 1):
        operation = seen.operations[finding.operation]
        lines.append(f"{number}. {operation.operation_id}: {finding.check} - "
                     f"{finding.code} {finding.title}".replace("  ", " "))  # fmt: skip
        lines += [f"     {line}" for line in finding.message.splitlines()]
        if finding.curl:
            lines.append(f"     answered {finding.status}; reproduce with:")
            lines.append(f"     {finding.curl}")
    return lines
