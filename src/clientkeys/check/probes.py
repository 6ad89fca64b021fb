"""Targeted requests for documented statuses that generated cases do not reach.

Schemathesis fills the organization and project path parameters from `clientkeys check`'s
options and sends small bodies, so it never sees an unknown organization (404), a body over the
server's limit (413), a token that may not act (403), an unknown query parameter (400), a
request target (414) or header fields (431) over common server limits. One request per
operation and probe asks for each; its answer is checked against the operation like any other
(the proxy's `conformance.check_response`) and counted in the coverage. The organization of
every probe but the 403 one does not exist, so no probe can change data on a server that keeps
the contract.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from clientkeys.check.observations import Finding, Observations, curl
from clientkeys.openapi.conformance import Answer, Contract, Route, check_response

OVERSIZED_BYTES = 1024 * 1024
"""Bigger than any sensible limit for this API's bodies (clientkeys' default is 64 KiB)."""
LONG_BYTES = 32 * 1024
"""A request target or a header field longer than common server limits (clientkeys reads 8 KiB
of target and 16 KiB of header fields; nginx 8 KiB per line)."""
FORBIDDEN_VARIABLE = "CLIENTKEYS_CHECK_FORBIDDEN_TOKEN"
_TOKEN = "\x00token\x00"
"""Stands for the token in a recorded request; nothing else can contain it."""


@dataclass(frozen=True)
class Probe:
    """One targeted request: what it asks for, and how."""

    name: str
    token: str
    variable: str
    organization: str
    oversized: bool = False
    query: str = ""
    """Appended to the URL after `?`."""
    long_header: bool = False
    """Send a LONG_BYTES `X-Clientkeys-Check` header."""


def probes(token: str, organization: str, forbidden_token: str | None) -> list[Probe]:
    """The probes a check sends: unknown organization and oversized body always; a forbidden
    token when one is given."""
    missing = f"clientkeys-check-missing-{secrets.token_hex(4)}"
    chosen = [
        Probe("probe: unknown organization", token, "CLIENTKEYS_CHECK_TOKEN", missing),
        Probe("probe: oversized body", token, "CLIENTKEYS_CHECK_TOKEN", missing, oversized=True),
        Probe("probe: unknown query parameter", token, "CLIENTKEYS_CHECK_TOKEN", missing,
              query="clientkeys-check-unknown=1"),
        Probe("probe: long request target", token, "CLIENTKEYS_CHECK_TOKEN", missing,
              query="clientkeys-check=" + "x" * LONG_BYTES),
        Probe("probe: long header fields", token, "CLIENTKEYS_CHECK_TOKEN", missing,
              long_header=True),
    ]  # fmt: skip
    if forbidden_token:
        chosen.append(Probe("probe: forbidden token", forbidden_token, FORBIDDEN_VARIABLE,
                            organization))  # fmt: skip
    return chosen


@dataclass(frozen=True)
class Request:
    """A probe's request, ready to send."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def run(
    seen: Observations,
    spec: Mapping[str, Any],
    base_url: str,
    project: str,
    chosen: list[Probe],
) -> None:
    """Send every probe to every operation it applies to; add what they saw to `seen`."""
    planned = [
        (operation, route, probe, request)
        for route in Contract(spec).routes
        if (operation := seen.operations.get(f"{route.method} {route.template}")) is not None
        for probe in chosen
        if (request := _request(route, base_url, probe, project)) is not None
    ]
    answers = asyncio.run(_send_all([request for *_, request in planned]))
    for (operation, route, probe, request), answer in zip(planned, answers, strict=True):
        operation.cases += 1
        operation.checks[probe.name] += 1
        if answer is None:
            operation.network_errors += 1
            continue
        operation.statuses[answer.status] += 1
        for rule, where, value, message in check_response(route, answer):
            operation.findings.append(Finding(
                operation=operation.label, check=probe.name, code=rule,
                title=f"{where}: {message}" if where else message,
                message=f"offending value: {json.dumps(value)}", status=answer.status,
                curl=_curl(request, probe),
            ))  # fmt: skip


def _request(route: Route, base_url: str, probe: Probe, project: str) -> Request | None:
    body = _body(route, probe)
    if probe.oversized and body is None:
        return None
    values = {"organization_slug": probe.organization, "project_slug": project}
    path = route.template
    for parameter in _path_parameters(route):
        name = parameter["name"]
        value = values.get(name) or parameter.get("example") or "clientkeys-check"
        path = path.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
    headers = {"Authorization": f"Bearer {probe.token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if probe.long_header:
        headers["X-Clientkeys-Check"] = "x" * LONG_BYTES
    query = f"?{probe.query}" if probe.query else ""
    return Request(route.method, base_url + path + query, headers, body)


def _path_parameters(route: Route) -> Iterator[Mapping[str, Any]]:
    for parameter in route.parameters:
        if parameter.get("in") == "path":
            yield parameter


def _body(route: Route, probe: Probe) -> bytes | None:
    """The operation's JSON example (or `{}`); a 1 MiB name for the oversized probe."""
    content = route.operation.get("requestBody", {}).get("content", {})
    media = content.get("application/json")
    if media is None:
        return None
    if probe.oversized:
        return json.dumps({"name": "x" * OVERSIZED_BYTES}).encode()
    return json.dumps(media.get("example", {})).encode()


async def _send_all(requests: list[Request]) -> list[Answer | None]:
    """Each answer, whatever its status; None when nothing answered. `Expect: 100-continue`
    lets a server refuse a body by its size before it is sent, as servers do."""
    answers: list[Answer | None] = []
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        for request in requests:
            try:
                async with session.request(
                    request.method, request.url, headers=request.headers, data=request.body,
                    expect100=request.body is not None, allow_redirects=False,
                ) as response:  # fmt: skip
                    body = await response.read()
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    answers.append(Answer(request.method, response.status, headers, body))
            except (aiohttp.ClientError, TimeoutError):
                answers.append(None)
    return answers


def _curl(request: Request, probe: Probe) -> str:
    """The probe as a shell command; the 1 MiB body is made by Python, not written out."""
    headers = {name: [value] for name, value in request.headers.items()}
    headers["Authorization"] = [f"Bearer {_TOKEN}"]  # however short, the token never shows
    recorded = {
        "method": request.method,
        "uri": request.url,
        "headers": headers,
        "body": None if probe.oversized or request.body is None else request.body.decode(),
    }
    command = curl(recorded, _TOKEN, probe.variable)
    # A long value (inside a single-quoted word) is made by Python, not written out.
    make = f"""'"$(python3 -c "print('x' * {LONG_BYTES}, end='')")"'"""
    command = command.replace("x" * LONG_BYTES, make)
    if not probe.oversized:
        return command
    command, url = command.rsplit(" ", 1)
    make = f"import json; print(json.dumps({{'name': 'x' * {OVERSIZED_BYTES}}}))"
    return f"python3 -c {shlex.quote(make)} | {command} --data-binary @- {url}"
