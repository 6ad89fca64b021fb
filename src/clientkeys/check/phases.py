"""check's own phases after Schemathesis's: authorization by role, then the effects of writes.

They run when chosen (`--phases`, both by default) against a document that has the five client
key operations; their failures are findings of the operation at fault (exit 1), and what they
could not test is said in the verdict: a role token the server does not know is exit 2, and
with no role token at all the verdict says that authorization was not tested (exit 2 with
`--require authorization`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clientkeys.check import authorization, effects
from clientkeys.check.contract import AUTHORIZATION, OK, UNTESTED, Options, Verdict
from clientkeys.check.observations import TOKEN_VARIABLE, Observations
from clientkeys.check.session import Client, Role, Tally, find_routes

FORBIDDEN_VARIABLE = "CLIENTKEYS_CHECK_FORBIDDEN_TOKEN"
READ_ONLY_VARIABLE = "CLIENTKEYS_CHECK_READ_ONLY_TOKEN"

__all__ = ["Tally", "run", "nothing_sent", "amend"]


def roles(options: Options) -> list[Role]:
    """The role tokens given, each with what it stands for."""
    given = [
        (authorization.OTHER_ORGANIZATION, options.forbidden_token, FORBIDDEN_VARIABLE),
        (authorization.READ_ONLY, options.read_only_token, READ_ONLY_VARIABLE),
    ]
    return [Role(name, token, variable) for name, token, variable in given if token]


def run(
    spec: Mapping[str, Any],
    seen: Observations,
    base_url: str,
    token: str,
    org: str,
    project: str,
    options: Options,
) -> Tally:
    """Run the chosen phases; what they did (their failures are added to `seen`)."""
    tally = Tally()
    routes = find_routes(spec)
    if routes is None:
        tally.skipped = "the document lacks the client key operations these phases use"
        return tally
    client = Client(base_url, routes, org, project, seen, tally)
    full = Role("the full token", token, TOKEN_VARIABLE, counted=True)
    if "authorization" in options.phases and roles(options):
        authorization.run(client, full, roles(options))
    if "effects" in options.phases:
        effects.run(client, full)
    return tally


def nothing_sent(tally: Tally) -> Verdict:
    """The verdict of a run of these phases alone that sent nothing, and why."""
    why = tally.skipped or "the authorization phase alone needs a role token"
    return Verdict(UNTESTED, f"no request was sent: {why}")


def amend(found: Verdict, tally: Tally, options: Options) -> Verdict:
    """A passing verdict turned "not tested" by what the phases could not test, or told that
    authorization was not tested at all."""
    if found.code != OK:
        return found
    if tally.untested:
        return Verdict(UNTESTED, "; ".join(tally.untested))
    if tally.authorization:
        return found
    if tally.skipped:
        why = f"authorization and effects not tested ({tally.skipped})"
    elif "authorization" not in options.phases:
        why = "authorization not tested (the authorization phase was not chosen)"
    else:
        why = "authorization not tested (give --forbidden-token and --read-only-token)"
    if AUTHORIZATION in options.requirements:
        return Verdict(UNTESTED, f"--require {AUTHORIZATION}: {why}")
    return Verdict(found.code, f"{found.cause}; {why}")
