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

Its own input is checked before any request (`load_contract`, `unwritable`): a bad `--spec` or
a report that cannot be written is a one-line exit 2, not a traceback after the run. The first
request (`first_request`) shows a rejected token or a missing project in a second. Each request
may take `Options.request_timeout` seconds: an operation that takes longer breaks the contract,
and the run stops there. Schemathesis's events are followed as it writes them (into a pipe),
so that progress shows while it runs and a hang ends it at once.

Nothing is written into the working directory: Schemathesis's cache and crash files are off,
Hypothesis keeps its data in the temporary folder, reports go only where asked.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clientkeys.check import observations
from clientkeys.check.observations import Observations, Operation
from clientkeys.check.progress import Listener
from clientkeys.openapi import document
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
REQUEST_TIMEOUT = 10.0
"""Seconds a request may take by default (Schemathesis's own default too)."""
SETUP_PARAMETERS = {"organization_slug": "org", "project_slug": "project",
                    "organization_id_or_slug": "org", "project_id_or_slug": "project"}  # fmt: skip
"""The path parameters `--org` and `--project` fill in (ours, and Sentry's current names)."""

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
    json_report: Path | None = None
    har: Path | None = None
    vcr: Path | None = None
    request_timeout: float = REQUEST_TIMEOUT
    """Seconds each request may take; a slower operation breaks the contract."""

    @property
    def reports(self) -> dict[str, Path]:
        """The reports asked for, by the option that names each."""
        named = {"--junit-xml": self.junit, "--json-report": self.json_report,
                 "--har": self.har, "--vcr": self.vcr}  # fmt: skip
        return {option: path for option, path in named.items() if path is not None}


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
    phases: dict[str, str] = field(default_factory=dict)
    """Each phase and how it ended: "success", "failure", "error", "skip" (not asked for) or
    "not run" (asked for, but the run ended before it)."""
    hung: list[str] = field(default_factory=list)
    """Labels of the operations that did not answer within the request timeout."""
    authorized: list[str] = field(default_factory=list)
    """The roles whose authorization the authorization phase proved."""


class InputError(Exception):
    """check's own input cannot be used (exit 2 before any request); one line says why."""


def load_contract(spec_file: Path) -> dict[str, Any]:
    """The contract bundled into one document; InputError in one line when `spec_file` is not
    a readable JSON or YAML OpenAPI 3.0/3.1 document, or its `$ref`s cannot be resolved."""
    try:
        document.version_of(document.read(spec_file), spec_file)
        spec = openapi.bundle(spec_file)
    except document.SpecError as exc:
        raise InputError(str(exc)) from None
    except Exception as exc:  # Connexion's resolver raises many kinds; each is one bad input
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{spec_file}: cannot be read as OpenAPI: {first}") from None
    if not isinstance(spec.get("paths"), dict) or not spec["paths"]:
        raise InputError(f"{spec_file}: no operations to check (its 'paths' are empty)")
    return spec


def unwritable(path: Path) -> str | None:
    """Why a report cannot be written at `path` (its folder is made if missing), or None.

    Nothing is written to `path` itself: a run that never starts leaves no empty report."""
    if path.is_dir():
        return f"{path} is a folder"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot make the folder {path.parent}: {exc.strerror or exc}"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    try:  # a real write: permission bits do not tell for root, nor on read-only file systems
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError:
        return f"the folder {path.parent} is not writable"
    return None


def check_reports(options: Options) -> None:
    """InputError naming the first report that cannot be written."""
    for option, path in options.reports.items():
        problem = unwritable(path)
        if problem is not None:
            raise InputError(f"{option}: {problem}")


def operation_names(spec: Mapping[str, Any]) -> dict[str, str]:
    """Schemathesis's label of each operation (`METHOD /path`) -> its operationId."""
    return {label: op.operation_id for label, op in observations.operations_of(spec).items()}


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
    reports = {"har": options.har, "vcr": options.vcr}
    chosen = {name: path for name, path in reports.items() if path is not None}
    # The files are named as the folder Schemathesis runs in sees them: a path in a temporary
    # folder would not fit Schemathesis's 80 columns, and its wrapped tail would show alone.
    command = [
        sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; "
        "sys.exit(schemathesis())",
        "--config-file", config_file.name, "run", spec_file.name, "--url", base_url,
        "--checks", "all", "--phases", ",".join(p for p in options.phases if p in PHASES),
        "--max-examples", str(options.max_examples),
        "--workers", "1",
        "--request-timeout", f"{options.request_timeout:g}",
        "--report", ",".join(["ndjson", *chosen]),
        "--report-ndjson-path", str(events),
    ]  # fmt: skip
    for name, path in chosen.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        command += [f"--report-{name}-path", str(path.resolve())]
    if options.seed is not None:
        command += ["--seed", str(options.seed)]
    return command


def check(
    spec_file: Path | Mapping[str, Any],
    base_url: str,
    token: str,
    org: str,
    project: str,
    options: Options,
    echo: Callable[[str], None] = lambda line: None,
    wait: float = 0,
    listen: Listener = lambda name, payload: None,
) -> Outcome:
    """Run the suite, once the server accepts connections (within `wait` seconds); every line
    of Schemathesis's report goes to `echo`, token masked, and each of its events to `listen`
    as it happens. `spec_file` may be the contract already bundled (`load_contract`)."""
    base_url = base_url.rstrip("/")
    spec = load_contract(spec_file) if isinstance(spec_file, Path) else dict(spec_file)
    not_run = {phase: "not run" if phase in options.phases else "skip"
               for phase in PHASES + OWN_PHASES}  # fmt: skip
    not_answering = reachable(base_url, wait)
    if not_answering is not None:
        seen = Observations(operations=observations.operations_of(spec))
        waited = f" (waited {wait:g} s)" if wait else ""
        cause = f"cannot reach {base_url}{waited}: {not_answering}"
        return Outcome(Verdict(UNTESTED, cause), seen, phases=not_run)
    stopped = first_request(spec, base_url, token, org, project, options.request_timeout)
    if stopped is not None:
        seen = Observations(operations=observations.operations_of(spec))
        return Outcome(stopped, seen, phases=not_run)
    from clientkeys.check import phases as own  # (here: it imports this module's verdicts)

    fuzzed = any(phase in PHASES for phase in options.phases)
    run = _Run(listen, Observations(operations=observations.operations_of(spec)))
    if fuzzed:
        run = _schemathesis(spec, base_url, token, org, project, options, echo, listen)
    seen = run.seen
    answering = seen.statuses and not run.hung and _setup_problem(seen, org, project) is None
    if answering:
        # The server really answers: ask for what generated cases cannot reach. (Imported here:
        # probes send with aiohttp, from the check extra; `serve` imports this module.)
        from clientkeys.check import probes

        chosen = probes.probes(token, org, options.forbidden_token)
        probes.run(seen, spec, base_url, project, chosen)
    tally = own.Tally()
    if answering or not fuzzed:
        tally = own.run(spec, seen, base_url, token, org, project, options)
    # Without Schemathesis only the operations the own phases reach were asked anything: the
    # others are out of this run (and its reports), not untested by it.
    seen = seen if fuzzed else replace(seen, operations=_asked(seen))
    unmet = unmet_requirements(seen, options.requirements)
    hung = [_named(seen, label, options.request_timeout) for label in run.hung]
    found = verdict(seen, run.returncode, org, project, unmet, options.requirements, hung)
    if not fuzzed and not tally.requests:
        found = own.nothing_sent(tally)
    ran = {phase: "done" for phase in OWN_PHASES if phase in options.phases and tally.requests}
    statuses = {
        phase: {**run.phases, **ran}.get(phase, status) for phase, status in not_run.items()
    }
    return Outcome(own.amend(found, tally, options), seen, unmet, phases=statuses, hung=run.hung,
                   authorized=tally.authorization)  # fmt: skip


def _asked(seen: Observations) -> dict[str, Operation]:
    return {label: op for label, op in seen.operations.items() if op.cases or op.statuses}


def _named(seen: Observations, label: str, timeout: float) -> str:
    operation = seen.operations.get(label)
    name = f"{operation.operation_id} ({label})" if operation else label
    return f"{name} did not answer within {timeout:g} s"


def first_request(
    spec: Mapping[str, Any], base_url: str, token: str, org: str, project: str, timeout: float
) -> Verdict | None:
    """The verdict when the first request already shows the run cannot succeed: the token
    rejected (401, 403), the organization or project missing (404), no answer in time. The
    request is a GET that names only the organization and the project (listing the keys);
    a contract without one is not tried."""
    found = _setup_operation(spec)
    if found is None:
        return None
    path, operation_id = found
    values = {"org": org, "project": project}
    for name, which in SETUP_PARAMETERS.items():
        path = path.replace("{" + name + "}", urllib.parse.quote(values[which], safe=""))
    request = urllib.request.Request(
        base_url + path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
        if isinstance(getattr(exc, "reason", exc), TimeoutError):
            return Verdict(BROKEN, f"{operation_id} (GET {found[0]}) did not answer within "
                                   f"{timeout:g} s; nothing else was tried")  # fmt: skip
        return None  # not answering at all: Schemathesis's run says how
    if status in (401, 403):
        return Verdict(UNTESTED, f"the token was rejected: all requests stop at the first, "
                                 f"answered 401 or 403 ({operation_id} answered {status}); it "
                                 f"needs every project scope on {org!r}")  # fmt: skip
    if status == 404:
        return Verdict(UNTESTED, f"organization {org!r} or project {project!r} not found: the "
                                 f"first request ({operation_id}) answered 404")  # fmt: skip
    return None


def _setup_operation(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    """The path and operationId of a GET whose only parameters are the organization and the
    project slugs (the most of them), or None."""
    best: tuple[int, str, str] | None = None
    for path, item in spec.get("paths", {}).items():
        operation = item.get("get")
        if operation is None:
            continue
        names = set(re.findall(r"{([^}/]+)}", path))
        parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
        required = [p for p in parameters if p.get("required") and p.get("in") != "path"]
        if names and names <= SETUP_PARAMETERS.keys() and not required:
            if best is None or len(names) > best[0]:
                best = (len(names), path, str(operation.get("operationId", f"GET {path}")))
    return None if best is None else best[1:]


@dataclass
class _Run:
    """What one Schemathesis process did, as its events showed it while it ran."""

    listen: Listener
    seen: Observations = field(default_factory=lambda: Observations(operations={}))
    returncode: int = 0
    phases: dict[str, str] = field(default_factory=dict)
    hung: list[str] = field(default_factory=list)
    stop: Callable[[], None] = lambda: None

    def event(self, name: str, payload: Mapping[str, Any]) -> None:
        """One event of the log: passed on, and a request that timed out stops the run."""
        self.listen(name, payload)
        if name == "PhaseFinished":
            phase = (payload.get("phase") or {}).get("name", "")
            if phase in PHASES:
                self.phases[phase] = str(payload.get("status", ""))
        elif name == "NonFatalError" and _timed_out(payload.get("value")):
            label = str(payload.get("label", ""))
            if label not in self.hung:
                self.hung.append(label)
            self.stop()


def _timed_out(value: Any) -> bool:
    """Whether an error event says a request got no answer in time."""
    kind = value.get("type", "") if isinstance(value, dict) else ""
    return "Timeout" in str(kind)


def _schemathesis(
    spec: dict[str, Any],
    base_url: str,
    token: str,
    org: str,
    project: str,
    options: Options,
    echo: Callable[[str], None],
    listen: Listener,
) -> _Run:
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
        run = _Run(listen)
        run.returncode = _run(
            lambda log: schemathesis_command(bundled, config, base_url, log, options),
            work, events, run, echo, token, masked,
        )  # fmt: skip
        for report in (options.har, options.vcr):
            if report is not None and report.exists() and masked:
                report.write_text(observations.mask(report.read_text(), token))
        run.seen = observations.read(events, spec, token if masked else "")
        return run


def _run(
    command_for: Callable[[Path], list[str]],
    work: Path,
    events: Path,
    run: _Run,
    echo: Callable[[str], None],
    token: str,
    masked: bool,
) -> int:
    """Run Schemathesis with its event log written into a pipe, which a thread copies to
    `events` and passes to `run` line by line, as it comes."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1", TOKEN_VARIABLE: token,
           "HYPOTHESIS_STORAGE_DIRECTORY": str(work / "hypothesis")}  # fmt: skip
    token = token if masked else ""
    reading, writing = os.pipe()
    log = Path(f"/dev/fd/{writing}")
    try:
        process = subprocess.Popen(
            command_for(log), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env, cwd=work, pass_fds=(writing,),
        )  # fmt: skip
    finally:
        os.close(writing)  # the child's copy alone keeps the pipe open: its exit ends the log
    run.stop = process.terminate
    follower = threading.Thread(target=_follow, args=(reading, events, run.event), daemon=True)
    follower.start()
    with process:
        assert process.stdout is not None
        for line in process.stdout:
            if str(work) not in line and str(log) not in line:  # private files, gone after
                echo(observations.mask(line.rstrip("\n"), token))
    follower.join()
    return process.returncode


def _follow(reading: int, events: Path, take: Listener) -> None:
    """Copy the event log from the pipe `reading` into `events`, each event passed to `take`
    once its line is complete."""
    with open(reading, encoding="utf-8") as pipe, events.open("w", encoding="utf-8") as copy:
        for line in pipe:
            copy.write(line)
            try:
                decoded = json.loads(line)
            except json.JSONDecodeError:  # a run cut short leaves a partial last line
                continue
            if isinstance(decoded, dict):
                for name, payload in decoded.items():
                    take(name, payload)


# The verdict ------------------------------------------------------------------------------------


def verdict(
    seen: Observations,
    returncode: int,
    org: str,
    project: str,
    unmet: Sequence[str] = (),
    requirements: Sequence[str] = (),
    hung: Sequence[str] = (),
) -> Verdict:
    """0, 1 or 2 with a one-line cause, from what the run saw (not from its exit code alone).
    `hung` names the operations that did not answer in time (the run stopped at the first)."""
    if hung:
        return Verdict(BROKEN, "; ".join(hung) + "; the run stopped there")
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
