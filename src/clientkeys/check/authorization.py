"""The authorization phase: each role gets exactly what the contract and Sentry's rules allow.

Operation by operation, with a key of the phase's own (made and removed with the token that has
every scope):

- another organization's token is refused on every operation: 403, or 404 where Sentry answers
  404 (Sentry checks the token's scopes, then looks the project up, then the organization);
- a token with read scope only may list and retrieve, and is refused with 403 on every write
  (Sentry checks the scopes before any lookup);
- a refused write changed nothing: after each one the project's keys and the phase's key are
  read back with the full token, and anything created, changed or deleted is named.

A role token the server does not know (401), or a read-only token that may not read, cannot
prove anything: that is "not tested" (exit 2), not a broken server.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from clientkeys.check.session import Client, Reply, Role, shown

CHECK = "authorization"
OTHER_ORGANIZATION = "another organization's token"
READ_ONLY = "the read-only token"
COMPARED = ("name", "isActive", "rateLimit", "browserSdkVersion", "public", "secret")
"""The fields of the phase's key compared before and after a refused write."""


@dataclass(frozen=True)
class Rules:
    """What a role may do: the statuses that refuse it, and whether it may read."""

    refusals: frozenset[int]
    reads: bool


RULES = {
    OTHER_ORGANIZATION: Rules(frozenset({403, 404}), reads=False),
    READ_ONLY: Rules(frozenset({403}), reads=True),
}


class NotTested(Exception):
    """The role cannot prove anything on this server (its token is unknown, or may not read)."""


def run(client: Client, full: Role, roles: list[Role]) -> None:
    """Prove every role's rules on every operation, with a key made for the purpose."""
    key_id = _make_key(client, full)
    if key_id is None:
        return
    # What the roles are refused, the full token may do: a refusal is the role's, not a broken
    # operation's (and a run of this phase alone has every operation's 2xx).
    client.send("update", full, key_id, body={"name": _name("authorization")})
    for role in roles:
        try:
            key_id = _prove(client, full, role, key_id)
        except NotTested as why:
            client.tally.untested.append(str(why))
        else:
            client.tally.authorization.append(role.name)
    client.send("delete", full, key_id)


def _make_key(client: Client, full: Role) -> str | None:
    created = client.send("create", full, body={"name": _name("authorization")})
    key_id = created.field("id")
    if created.ok and isinstance(key_id, str):
        return key_id
    why = f"{client.operation_id('create')} with the full token {created.answered}"
    client.tally.untested.append(f"authorization: {why}; no key to test with")
    return None


def _prove(client: Client, full: Role, role: Role, key_id: str) -> str:
    """Send every operation as `role`; the phase's key (made again if a delete went through)."""
    rules = RULES[role.name]
    for operation in ("list", "retrieve"):
        reply = client.send(operation, role, key_id)
        client.ran(operation, CHECK)
        _judge_read(client, role, rules, operation, reply)
    _create(client, full, role, rules)
    _update(client, full, role, rules, key_id)
    return _delete(client, full, role, rules, key_id)


def _judge_read(client: Client, role: Role, rules: Rules, operation: str, reply: Reply) -> None:
    name = client.operation_id(operation)
    if reply.status == 401:
        raise NotTested(f"authorization: {role.name} was rejected as unknown (401 on {name}): "
                        "give a valid token of that role")  # fmt: skip
    if rules.reads and reply.status != 200:
        raise NotTested(f"authorization: {role.name} may not read ({name} answered "
                        f"{reply.status}): it needs project:read on the organization")  # fmt: skip
    if not rules.reads and reply.status not in rules.refusals:
        client.fail(operation, CHECK, f"{name} with {role.name}: {_refused(reply, rules, None)}",
                    reply)  # fmt: skip


def _create(client: Client, full: Role, role: Role, rules: Rules) -> None:
    before = client.listed(full)
    reply = client.send("create", role, body={"name": _name("forbidden")})
    client.ran("create", CHECK)
    after = client.listed(full)
    made = sorted(after - before) if before is not None and after is not None else []
    created = f"created key {', '.join(made)}" if made else ""
    if reply.status not in rules.refusals or made:
        client.fail("create", CHECK, f"{client.operation_id('create')} with {role.name}: "
                    f"{_refused(reply, rules, created)}", reply)  # fmt: skip
    for key_id in made:
        client.send("delete", full, key_id)


def _update(client: Client, full: Role, role: Role, rules: Rules, key_id: str) -> None:
    before = client.send("retrieve", full, key_id)
    changes = {"name": _name("forbidden"), "isActive": not before.field("isActive")}
    reply = client.send("update", role, key_id, body=changes)
    client.ran("update", CHECK)
    after = client.send("retrieve", full, key_id)
    changed = [
        f"{field} {shown(before.field(field))} -> {shown(after.field(field))}"
        for field in COMPARED
        if before.status == after.status == 200 and before.field(field) != after.field(field)
    ]
    what = f"stored {', '.join(changed)}" if changed else ""
    if reply.status not in rules.refusals or changed:
        client.fail("update", CHECK, f"{client.operation_id('update')} with {role.name}: "
                    f"{_refused(reply, rules, what)}", reply)  # fmt: skip
    if changed:  # put the key back as it was, for the next role
        restore = {field: before.field(field) for field in ("name", "isActive")}
        client.send("update", full, key_id, body=restore)


def _delete(client: Client, full: Role, role: Role, rules: Rules, key_id: str) -> str:
    reply = client.send("delete", role, key_id)
    client.ran("delete", CHECK)
    after = client.send("retrieve", full, key_id)
    gone = after.status == 404
    what = f"key {key_id} is gone (retrieve answers 404)" if gone else ""
    if reply.status not in rules.refusals or gone:
        client.fail("delete", CHECK, f"{client.operation_id('delete')} with {role.name}: "
                    f"{_refused(reply, rules, what)}", reply)  # fmt: skip
    return (_make_key(client, full) or key_id) if gone else key_id


def _refused(reply: Reply, rules: Rules, changed: str | None) -> str:
    """How a request the role may not make went wrong. `changed` is what a write changed (read
    back with the full token; empty when nothing), None for a read."""
    expected = " or ".join(str(status) for status in sorted(rules.refusals))
    answered = reply.answered
    if changed and reply.status in rules.refusals:  # refused, and done all the same
        return f"{answered} but {changed}"
    if changed:
        return f"let through ({answered}, expected {expected}); {changed}"
    if reply.ok and changed is None:  # a read: what it may not see was shown
        return f"let through ({answered}, expected {expected})"
    return f"{answered}, expected a refusal ({expected})" + (
        "; nothing changed" if reply.ok else ""
    )


def _name(purpose: str) -> str:
    return f"clientkeys-check-{purpose}-{secrets.token_hex(4)}"
