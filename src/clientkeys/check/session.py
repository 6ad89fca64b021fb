"""The client keys API as check's own phases use it: the five operations found in the contract,
requests sent by role, and what each failure shows.

The authorization and effects phases (`authorization.py`, `effects.py`) send a handful of
chosen requests, one at a time, and read their effect back with the token that has every scope.
Their requests are counted apart from the coverage of the Schemathesis run (which stays a
record of generated cases and probes); their failures become findings of the operation at fault
with a `curl` command that sends the request again, the role's token read from its variable.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from clientkeys.check.observations import Finding, Observations, curl
from clientkeys.openapi.conformance import Contract, Route

TIMEOUT = 10.0
"""Seconds one request of these phases may take before it counts as unanswered."""
MAX_PAGES = 100
"""Pages of a listing followed before giving up (10 000 keys at Sentry's page size)."""
OPERATIONS = {
    "list": ("List a Project's Client Keys", "listProjectKeys"),
    "create": ("Create a New Client Key", "createProjectKey"),
    "retrieve": ("Retrieve a Client Key", "getProjectKey"),
    "update": ("Update a Client Key", "updateProjectKey"),
    "delete": ("Delete a Client Key", "deleteProjectKey"),
}
"""The operations these phases use, by the operationIds of our contract and of Sentry's."""
_PARAMETER = re.compile(r"\{([^}]+)\}")
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next";\s*results="true"')


@dataclass(frozen=True)
class Role:
    """A token and what it stands for."""

    name: str
    """As a report says it: "another organization's token"."""
    token: str
    variable: str
    """The environment variable a reproduction reads the token from."""
    counted: bool = False
    """Whether its answers count in the coverage (the full token's: valid requests)."""


@dataclass(frozen=True)
class Reply:
    """One answer (status None: no answer within TIMEOUT) and its request as a `curl` command."""

    status: int | None
    body: Any
    headers: Mapping[str, str]
    """By lower-case name."""
    curl: str

    @property
    def answered(self) -> str:
        """ "answered 403", or that nothing answered in time."""
        return f"answered {self.status}" if self.status else f"no answer within {TIMEOUT:g} s"

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


@dataclass
class Tally:
    """What the phases did: requests sent, and why something could not be tested."""

    requests: int = 0
    untested: list[str] = field(default_factory=list)
    authorization: list[str] = field(default_factory=list)
    """The roles whose authorization was proved."""
    skipped: str = ""
    """Why no phase could run at all (the document lacks the operations they use)."""


def find_routes(spec: Mapping[str, Any]) -> dict[str, Route] | None:
    """The five operations by their short name; None when the document lacks one of them."""
    by_id = {route.operation_id: route for route in Contract(spec).routes}
    found = {}
    for short, names in OPERATIONS.items():
        route = next((by_id[name] for name in names if name in by_id), None)
        if route is None:
            return None
        found[short] = route
    return found


class Client:
    """Sends the phases' requests to one project and records their failures in `seen`."""

    def __init__(
        self,
        base_url: str,
        routes: Mapping[str, Route],
        organization: str,
        project: str,
        seen: Observations,
        tally: Tally,
    ) -> None:
        self.base_url, self.routes, self.seen, self.tally = base_url, routes, seen, tally
        self.path_values = {"organization": organization, "project": project}
        """By how a path parameter's name starts; any other one is the key's id."""

    def send(
        self,
        operation: str,
        role: Role,
        key_id: str | None = None,
        body: Any = None,
        query: str = "",
        url: str | None = None,
    ) -> Reply:
        """Send `operation` as `role`; `url` (a Link header's) replaces the built one."""
        route = self.routes[operation]
        url = url or self._url(route, key_id) + (f"?{query}" if query else "")
        headers = {"Authorization": f"Bearer {role.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        recorded = {"method": route.method, "uri": url, "headers": headers,
                    "body": None if data is None else data.decode()}  # fmt: skip
        command = curl(recorded, role.token, role.variable)
        self.tally.requests += 1
        request = urllib.request.Request(url, data=data, headers=headers, method=route.method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                reply = Reply(response.status, _json(response.read()), _lower(response.headers),
                              command)  # fmt: skip
        except urllib.error.HTTPError as error:
            reply = Reply(error.code, _json(error.read()), _lower(error.headers), command)
        except (OSError, ValueError):  # refused, reset or timed out: no answer
            reply = Reply(None, None, {}, command)
        if role.counted:
            self._count(route, reply)
        return reply

    def _count(self, route: Route, reply: Reply) -> None:
        """Count a valid request's answer in the coverage, as Schemathesis's cases are."""
        found = self.seen.operations.get(f"{route.method} {route.template}")
        if found is None:
            return
        found.cases += 1
        if reply.status is None:
            found.network_errors += 1
        else:
            found.statuses[reply.status] += 1
            found.positive[reply.status] += 1

    def listed(self, role: Role, query: str = "") -> set[str] | None:
        """The ids of every listed key, following the Link header; None if a page failed."""
        ids: set[str] = set()
        reply = self.send("list", role, query=query)
        for _ in range(MAX_PAGES):
            if reply.status != 200 or not isinstance(reply.body, list):
                return None
            ids |= {str(key.get("id")) for key in reply.body if isinstance(key, dict)}
            following = _NEXT.search(reply.headers.get("link", ""))
            if following is None:
                break
            reply = self.send("list", role, url=urllib.parse.urljoin(self.base_url, following[1]))
        return ids

    def fail(self, operation: str, check: str, title: str, reply: Reply, detail: str = "") -> None:
        """Record that `operation` broke the contract as `title` says."""
        route = self.routes[operation]
        label = f"{route.method} {route.template}"
        found = self.seen.operations.get(label)
        if found is None:
            return
        found.findings.append(Finding(
            operation=label, check=check, code="", title=title, message=detail,
            status=reply.status, curl=reply.curl,
        ))  # fmt: skip

    def ran(self, operation: str, check: str) -> None:
        """Count one request of `check` on `operation` (JUnit lists a test case per check)."""
        route = self.routes[operation]
        found = self.seen.operations.get(f"{route.method} {route.template}")
        if found is not None:
            found.checks[check] += 1

    def operation_id(self, operation: str) -> str:
        return self.routes[operation].operation_id

    def _url(self, route: Route, key_id: str | None) -> str:
        """The operation's URL: the organization and project given, the key's id (by their
        names in our contract, `organization_slug`, or Sentry's, `organization_id_or_slug`)."""

        def value(match: re.Match[str]) -> str:
            name = match[1]
            chosen = next((v for k, v in self.path_values.items() if name.startswith(k)),
                          key_id or "clientkeys-check-missing")  # fmt: skip
            return urllib.parse.quote(chosen, safe="")

        return self.base_url + _PARAMETER.sub(value, route.template)


def _lower(headers: Message) -> dict[str, str]:
    """Header fields by their lower-case names (servers send either case)."""
    return {name.lower(): value for name, value in headers.items()}


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def shown(value: Any) -> str:
    """A value as a report shows it: JSON."""
    return json.dumps(value)
