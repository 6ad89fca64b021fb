"""The effects phase: every acknowledged write is read back with the token that has every scope.

A server can answer each request with a valid body and still lose what it acknowledged: a
create that is never listed, an update answered with the old key, a delete that changes
nothing, a deactivated key still listed as active. Schemathesis's response checks see one
answer at a time and cannot tell; this phase writes one key of its own through its whole life
and reads every effect back:

    create      the key is retrievable, with the name sent, and listed
    update      each field sent (name, rateLimit) is stored
    deactivate  `isActive: false` is stored and the key leaves the `status=active` listing
    delete      the key is 404 and no longer listed
"""

from __future__ import annotations

import secrets
from typing import Any

from clientkeys.check.session import Client, Reply, Role, shown

CHECK = "effects"
UPDATE = {"rateLimit": {"window": 60, "count": 10}}
"""Fields an update sends besides a new name; each must be stored as sent."""


def run(client: Client, full: Role) -> None:
    """Write one key through create, update, deactivation and delete, reading each back."""
    name = f"clientkeys-check-effects-{secrets.token_hex(4)}"
    created = client.send("create", full, body={"name": name})
    client.ran("create", CHECK)
    key_id = created.field("id")
    if not created.ok or not isinstance(key_id, str):
        client.tally.untested.append(
            f"effects: {client.operation_id('create')} {created.answered}, so nothing "
            "could be read back"
        )
        return
    _created(client, full, key_id, name, created)
    _updated(client, full, key_id, name)
    _deactivated(client, full, key_id)
    _deleted(client, full, key_id)


def _created(client: Client, full: Role, key_id: str, name: str, created: Reply) -> None:
    stored = client.send("retrieve", full, key_id)
    client.ran("retrieve", CHECK)
    if stored.status != 200:
        client.fail("create", CHECK, f"{client.operation_id('create')}: created key {key_id} "
                    f"cannot be retrieved ({stored.answered})", created)  # fmt: skip
    elif stored.field("name") != name:
        client.fail("create", CHECK, f"{client.operation_id('create')}: created key {key_id} "
                    f"is stored with name {shown(stored.field('name'))}, not {shown(name)}",
                    created)  # fmt: skip
    listed = client.listed(full)
    client.ran("list", CHECK)
    if listed is not None and key_id not in listed:
        client.fail("create", CHECK, f"{client.operation_id('create')}: created key {key_id} "
                    "is not listed", created)  # fmt: skip


def _updated(client: Client, full: Role, key_id: str, name: str) -> None:
    sent: dict[str, Any] = {"name": f"{name}-renamed", **_documented(client, UPDATE)}
    _write_and_read_back(client, full, key_id, sent)


def _deactivated(client: Client, full: Role, key_id: str) -> None:
    if not _documented(client, {"isActive": False}):
        return
    if not _write_and_read_back(client, full, key_id, {"isActive": False}):
        return
    if not _documents_status_filter(client):
        return
    active = client.listed(full, query="status=active")
    client.ran("list", CHECK)
    if active is not None and key_id in active:
        reply = client.send("list", full, query="status=active")
        client.fail("list", CHECK, f"{client.operation_id('list')}: deactivated key {key_id} "
                    "(isActive: false) is still listed with status=active", reply)  # fmt: skip


def _write_and_read_back(client: Client, full: Role, key_id: str, sent: dict[str, Any]) -> bool:
    """Update `sent`; whether the server acknowledged it and stored every field."""
    updated = client.send("update", full, key_id, body=sent)
    client.ran("update", CHECK)
    if not updated.ok:
        return False
    stored = client.send("retrieve", full, key_id)
    lost = [
        f"{name} (sent {shown(value)}, read back {shown(stored.field(name))})"
        for name, value in sent.items()
        if stored.field(name) != value
    ]
    if stored.status == 200 and lost:
        client.fail("update", CHECK, f"{client.operation_id('update')}: answered "
                    f"{updated.status} but did not store {'; '.join(lost)}", updated)  # fmt: skip
    return not lost


def _deleted(client: Client, full: Role, key_id: str) -> None:
    deleted = client.send("delete", full, key_id)
    client.ran("delete", CHECK)
    if not deleted.ok:
        return
    after = client.send("retrieve", full, key_id)
    operation = client.operation_id("delete")
    if after.status != 404:
        client.fail("delete", CHECK, f"{operation}: answered {deleted.status} but key {key_id} "
                    f"is still there (retrieve {after.answered})", deleted)  # fmt: skip
    listed = client.listed(full)
    client.ran("list", CHECK)
    if listed is not None and key_id in listed:
        client.fail("delete", CHECK, f"{operation}: answered {deleted.status} but key {key_id} "
                    "is still listed", deleted)  # fmt: skip


def _documented(client: Client, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields the update's request body documents (another description may lack some)."""
    content = client.routes["update"].operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return {name: value for name, value in fields.items() if name in properties}


def _documents_status_filter(client: Client) -> bool:
    return any(p.get("name") == "status" and p.get("in") == "query"
               for p in client.routes["list"].parameters)  # fmt: skip
