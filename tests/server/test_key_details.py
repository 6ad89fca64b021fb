"""Retrieve, update and delete one key; the status filter; the DSN endpoint option."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from clientkeys.cli import main
from conftest import NO_CREDENTIALS, NO_PERMISSION, NOT_FOUND, Api, World, assert_error, dsn_urls

# Retrieve -------------------------------------------------------------------------------------


def test_retrieve_returns_the_key_as_listed(api: Api) -> None:
    key = api.new_key({"name": "lookup"})
    response = api.get(key["id"])
    assert response.status_code == 200
    assert response.json() == key


def test_retrieve_finds_inactive_keys(api: Api) -> None:
    key = api.new_key()
    api.put(key["id"], {"isActive": False})
    response = api.get(key["id"], who="read")
    assert response.status_code == 200 and response.json()["isActive"] is False


@pytest.mark.parametrize("key_id", ["0" * 32, "not-a-key", "DEADBEEF" * 4])
def test_unknown_key_is_404_on_every_operation(api: Api, key_id: str) -> None:
    assert_error(api.get(key_id), 404, NOT_FOUND)
    assert_error(api.put(key_id, {"name": "x"}), 404, NOT_FOUND)
    assert_error(api.delete(key_id), 404, NOT_FOUND)


def test_a_key_of_another_project_is_404(api: Api, world: World) -> None:
    other = api.create({}, org="globex", project="api", who="globex").json()
    assert_error(api.get(other["id"], who="superuser"), 404, NOT_FOUND)


def test_after_delete_retrieve_update_and_delete_are_404(api: Api) -> None:
    key = api.new_key()
    assert api.delete(key["id"]).status_code == 204
    assert_error(api.get(key["id"]), 404, NOT_FOUND)
    assert_error(api.put(key["id"], {}), 404, NOT_FOUND)
    assert_error(api.delete(key["id"]), 404, NOT_FOUND)
    assert key["id"] not in [k["id"] for k in api.list().json()]


# Scopes and credentials on the new operations -------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "allowed"),
    [
        ("get", {"read", "write", "admin"}),
        ("put", {"write", "admin"}),
        ("delete", {"admin"}),
    ],
)
def test_scopes_of_each_key_operation(
    api: Api, world: World, operation: str, allowed: set[str]
) -> None:
    for who in ("read", "write", "admin"):
        key = api.new_key()
        response = getattr(api, operation)(key["id"], who=who)
        if who in allowed:
            assert response.status_code in (200, 204), (operation, who)
        else:
            assert_error(response, 403, NO_PERMISSION)
            assert api.row(key["id"])["label"] == key["name"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_key_operations_need_credentials(api: Api, method: str) -> None:
    key = api.new_key()
    response = api.client.request(method, api.key_url(key["id"]))
    assert_error(response, 401, NO_CREDENTIALS)
    bad = api.client.request(method, api.key_url(key["id"]), headers={"Authorization": "Bearer x"})
    assert_error(bad, 401, "Invalid token")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_key_operations_of_another_organization_are_403(api: Api, method: str) -> None:
    other = api.create({}, org="globex", project="api", who="globex").json()
    url = api.key_url(other["id"], org="globex", project="api")
    response = api.client.request(method, url, headers=api.world.headers("all"))
    assert_error(response, 403, NO_PERMISSION)


def test_key_operations_on_unknown_project_are_404(api: Api) -> None:
    key = api.new_key()
    assert_error(api.get(key["id"], project="nope"), 404, NOT_FOUND)
    assert_error(api.delete(key["id"], org="nope"), 404, NOT_FOUND)


# Update: every invalid field is a 400 with Sentry's messages, and nothing is saved ----------


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"name": "n" * 65}, {"name": ["Ensure this field has no more than 64 characters."]}),
        ({"name": 1}, {"name": ["Not a valid string."]}),
        ({"isActive": "no"}, {"isActive": ["Must be a valid boolean."]}),
        ({"isActive": None}, {"isActive": ["This field may not be null."]}),
        ({"browserSdkVersion": "3.x"}, {"browserSdkVersion": ['"3.x" is not a valid choice.']}),
        (
            {"rateLimit": {"count": 1}},
            {"rateLimit": {"window": ["This field is required."]}},
        ),
        (
            {"rateLimit": {"count": 1, "window": -1}},
            {"rateLimit": {"window": ["Ensure this value is greater than or equal to 0."]}},
        ),
        (
            {"rateLimit": [1, 60]},
            {
                "rateLimit": {
                    "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
                }
            },
        ),
        (
            {"dynamicSdkLoaderOptions": {"hasReplay": "invalid"}},
            {"dynamicSdkLoaderOptions": {"hasReplay": ["Must be a valid boolean."]}},
        ),
        (
            {"dynamicSdkLoaderOptions": "all"},
            {
                "dynamicSdkLoaderOptions": {
                    "non_field_errors": ["Invalid data. Expected a dictionary, but got str."]
                }
            },
        ),
    ],
)
def test_invalid_update_fields_are_400_and_save_nothing(
    api: Api, body: dict[str, Any], errors: dict[str, Any]
) -> None:
    key = api.new_key({"rateLimit": {"count": 5, "window": 50}})
    before = api.row(key["id"])
    assert assert_error(api.put(key["id"], body), 400) == errors
    assert api.row(key["id"]) == before


@pytest.mark.parametrize(
    "limit",
    [{"count": 5, "window": ""}, {"count": 5, "window": None}, {"count": None, "window": 5}],
)
def test_update_with_an_empty_rate_limit_field_clears_the_limit(
    api: Api, limit: dict[str, object]
) -> None:
    # Sentry's test 17 empties `count`; an empty or null `window` clears the limit the same way.
    key = api.new_key({"rateLimit": {"count": 1, "window": 60}})
    response = api.put(key["id"], {"rateLimit": limit})
    assert response.status_code == 200 and response.json()["rateLimit"] is None
    row = api.row(key["id"])
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (None, None)


def test_an_updated_rate_limit_with_a_zero_field_shows_as_no_limit(api: Api) -> None:
    # Sentry stores what an update sends, and shows a limit only when both fields are non-zero.
    key = api.new_key({"rateLimit": {"count": 1, "window": 60}})
    response = api.put(key["id"], {"rateLimit": {"count": 10, "window": 0}})
    assert response.status_code == 200 and response.json()["rateLimit"] is None
    assert api.get(key["id"]).json()["rateLimit"] is None


def test_changing_a_rate_limit_records_the_previous_one_in_the_audit_log(
    api: Api, settings: Any
) -> None:
    key = api.new_key({"rateLimit": {"count": 1, "window": 60}})
    api.put(key["id"], {"rateLimit": {"count": 5, "window": 300}})
    api.put(key["id"], {"name": "same limit"})
    result = CliRunner().invoke(main, ["audit", "--database", str(settings.database)])
    edits = [json.loads(line.split("\t")[4]) for line in result.output.splitlines()
             if key["id"] in line and "PROJECTKEY_EDIT" in line]  # fmt: skip
    assert [(e["rate_limit_count"], e["rate_limit_window"]) for e in edits] == [(5, 300), (5, 300)]
    assert (edits[0]["prev_rate_limit_count"], edits[0]["prev_rate_limit_window"]) == (1, 60)
    assert "prev_rate_limit_count" not in edits[1]  # the limit did not change


def test_update_with_null_loader_options_changes_nothing(api: Api) -> None:
    key = api.new_key()
    response = api.put(key["id"], {"dynamicSdkLoaderOptions": None})
    assert response.status_code == 200
    assert response.json()["dynamicSdkLoaderOptions"] == key["dynamicSdkLoaderOptions"]


def test_update_with_empty_name_keeps_the_name(api: Api) -> None:
    key = api.new_key({"name": "keep me"})
    assert api.put(key["id"], {"name": ""}).json()["name"] == "keep me"
    assert api.put(key["id"], {"name": None}).json()["name"] == "keep me"


def test_update_can_reactivate_a_key(api: Api) -> None:
    key = api.new_key()
    api.put(key["id"], {"isActive": False})
    assert api.put(key["id"], {"isActive": True}).json()["isActive"] is True


# The status filter ----------------------------------------------------------------------------


@pytest.fixture
def mixed(api: Api) -> dict[str, list[str]]:
    """Default plus five keys, two of them inactive; ids newest first."""
    keys = [api.new_key({"name": f"k{i}"}) for i in range(5)]
    for key in keys[1::2]:
        api.put(key["id"], {"isActive": False})
    default = api.list().json()[-1]["id"]
    inactive = [k["id"] for k in reversed(keys[1::2])]
    active = [k["id"] for k in reversed(keys[0::2])] + [default]
    return {"active": active, "inactive": inactive}


@pytest.mark.parametrize("status", ["active", "inactive"])
def test_status_filter(api: Api, mixed: dict[str, list[str]], status: str) -> None:
    assert [k["id"] for k in api.list(query=f"status={status}").json()] == mixed[status]


@pytest.mark.parametrize("status", ["disabled", "ACTIVE", "1"])
def test_unknown_status_lists_nothing(api: Api, mixed: dict[str, list[str]], status: str) -> None:
    response = api.list(query=f"status={status}")
    assert response.status_code == 200 and response.json() == []
    assert 'rel="next"; results="false"' in response.headers["link"]


def test_empty_status_lists_everything(api: Api, mixed: dict[str, list[str]]) -> None:
    assert len(api.list(query="status=").json()) == len(mixed["active"] + mixed["inactive"])


def test_pagination_keeps_working_under_the_status_filter(
    api: Api, mixed: dict[str, list[str]]
) -> None:
    first = api.list(query="status=active&per_page=2")
    assert [k["id"] for k in first.json()] == mixed["active"][:2]
    link = first.headers["link"]
    assert "?status=active&per_page=2&cursor=" in link
    next_cursor = link.split('cursor="')[-1].rstrip('"')
    second = api.list(query=f"status=active&per_page=2&cursor={next_cursor}")
    assert [k["id"] for k in second.json()] == mixed["active"][2:]


# The per-organization DSN endpoint ------------------------------------------------------------


@pytest.mark.sentry(3)
def test_dsn_endpoint_set_by_the_cli_rebuilds_the_dsn(api: Api, settings: Any) -> None:
    """Sentry's `sentry:relay_dsn_endpoint` rebuilds every URL but `cdn`."""
    runner = CliRunner()
    args = ["--database", str(settings.database)]
    relay = "https://relay.example.com/ingest"
    result = runner.invoke(main, ["org", "set-dsn-endpoint", "acme", relay, *args])
    assert result.exit_code == 0, result.output
    [default] = api.list(who="all").json()
    assert default["dsn"] == dsn_urls(relay, default)
    key = api.new_key()
    assert key["dsn"] == dsn_urls(relay, key)
    assert api.get(key["id"]).json()["dsn"] == key["dsn"]
    runner.invoke(main, ["org", "set-dsn-endpoint", "acme", *args])
    assert (
        api.get(key["id"]).json()["dsn"]["public"].endswith("@testserver/" + str(key["projectId"]))
    )


def test_dsn_endpoint_must_be_a_url(settings: Any, world: World) -> None:
    result = CliRunner().invoke(
        main, ["org", "set-dsn-endpoint", "acme", "relay", "--database", str(settings.database)]
    )
    assert result.exit_code == 2 and "not an http(s) URL" in result.output


def test_audit_command_prints_key_events(api: Api, settings: Any) -> None:
    key = api.new_key()
    api.put(key["id"], {"name": "renamed"})
    api.delete(key["id"])
    result = CliRunner().invoke(
        main, ["audit", "--org", "acme", "--database", str(settings.database)]
    )
    events = [line.split("\t")[2] for line in result.output.splitlines() if key["id"] in line]
    assert events == ["PROJECTKEY_ADD", "PROJECTKEY_EDIT", "PROJECTKEY_REMOVE"]
