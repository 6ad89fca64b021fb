"""The 28 behaviours Sentry's own endpoint tests assert (reference §6), one test each.

Sentry's tests run as the organization's owner; here that is a token with every project scope.
Internal keys (useCase other than "user") are made with a superuser token, as Sentry's
fixtures make them directly.
"""

from __future__ import annotations

from typing import Any

from conftest import Api, World
from test_key_details import relay_dsn


def profiling_key(api: Api) -> dict[str, Any]:
    return api.new_key({"useCase": "profiling"}, who="superuser")


# List -----------------------------------------------------------------------------------------


def test_01_list_returns_the_one_key_with_its_public_key(api: Api, world: World) -> None:
    [key] = api.list(who="all").json()
    stored = world.store.execute("SELECT public_key FROM keys WHERE project_id = ?",
                                 [world.project["id"]]).fetchone()[0]  # fmt: skip
    assert key["public"] == stored


def test_02_dsn_playstation_is_the_playstation_endpoint(api: Api) -> None:
    [key] = api.list(who="all").json()
    assert key["dsn"]["playstation"] == (
        f"http://testserver/api/{key['projectId']}/playstation/?sentry_key={key['public']}"
    )


def test_03_relay_dsn_endpoint_rebuilds_every_url_but_cdn(api: Api, world: World) -> None:
    from clientkeys import repository

    repository.set_dsn_endpoint(world.store, "acme", "https://relay.example.com/ingest")
    [key] = api.list(who="all").json()
    assert key["dsn"] == relay_dsn("https://relay.example.com/ingest", key)


def test_04_dsn_integration_is_the_integration_endpoint(api: Api) -> None:
    [key] = api.list(who="all").json()
    assert key["dsn"]["integration"] == f"http://testserver/api/{key['projectId']}/integration/"


def test_05_dsn_otlp_traces_is_the_otlp_traces_endpoint(api: Api) -> None:
    [key] = api.list(who="all").json()
    assert key["dsn"]["otlp_traces"] == (
        f"http://testserver/api/{key['projectId']}/integration/otlp/v1/traces"
    )


def test_06_dsn_otlp_logs_is_the_otlp_logs_endpoint(api: Api) -> None:
    [key] = api.list(who="all").json()
    assert key["dsn"]["otlp_logs"] == (
        f"http://testserver/api/{key['projectId']}/integration/otlp/v1/logs"
    )
    assert "integration/otlp/v1/logs" in key["dsn"]["otlp_logs"]


def test_07_regular_user_sees_only_user_keys_without_use_case(api: Api) -> None:
    profiling = profiling_key(api)
    keys = api.list(who="all").json()
    assert len(keys) == 1 and keys[0]["public"] != profiling["public"]
    assert all("useCase" not in key for key in keys)


def test_08_superuser_sees_every_key_with_its_use_case(api: Api) -> None:
    profiling_key(api)
    keys = api.list(who="superuser").json()
    assert [key["useCase"] for key in keys] == ["profiling", "user"]


# Create ---------------------------------------------------------------------------------------


def test_09_create_with_name_and_rate_limit(api: Api) -> None:
    response = api.create(
        {"name": "hello world", "rateLimit": {"count": 10, "window": 60}}, who="all"
    )
    assert response.status_code == 201
    row = api.row(response.json()["id"])
    assert row["label"] == "hello world"
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (10, 60)
    assert row["data"]["dynamicSdkLoaderOptions"] == {"hasPerformance": True, "hasReplay": True}


def test_10_create_without_body_generates_a_label_and_default_loader_options(api: Api) -> None:
    response = api.client.post(api.url(), headers=api.world.headers("all"))
    assert response.status_code == 201
    row = api.row(response.json()["id"])
    assert row["label"]
    assert row["data"]["dynamicSdkLoaderOptions"] == {"hasPerformance": True, "hasReplay": True}


def test_11_create_with_explicit_public_and_secret_uses_them(api: Api) -> None:
    response = api.create({"public": "a" * 32, "secret": "b" * 32}, who="all")
    assert response.status_code == 201
    assert (response.json()["public"], response.json()["secret"]) == ("a" * 32, "b" * 32)


def test_12_regular_user_use_case_is_ignored_on_create(api: Api) -> None:
    response = api.create({"useCase": "profiling"}, who="all")
    assert response.status_code == 201
    assert api.row(response.json()["id"])["use_case"] == "user"


def test_13_superuser_use_case_is_honoured_on_create(api: Api) -> None:
    response = api.create({"useCase": "demo"}, who="superuser")
    assert response.status_code == 201
    assert api.row(response.json()["id"])["use_case"] == "demo"


# Update ---------------------------------------------------------------------------------------


def limited_key(api: Api) -> str:
    return str(api.new_key({"rateLimit": {"count": 1, "window": 60}})["id"])


def test_14_update_name(api: Api) -> None:
    key = api.new_key()
    assert api.put(key["id"], {"name": "hello world"}, who="all").status_code == 200
    assert api.row(key["id"])["label"] == "hello world"


def test_15_update_rate_limit_null_clears_it(api: Api) -> None:
    key_id = limited_key(api)
    assert api.put(key_id, {"rateLimit": None}, who="all").status_code == 200
    row = api.row(key_id)
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (None, None)


def test_16_update_without_body_keeps_the_rate_limit(api: Api) -> None:
    key_id = limited_key(api)
    response = api.client.put(api.key_url(key_id), headers=api.world.headers("all"))
    assert response.status_code == 200
    row = api.row(key_id)
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (1, 60)


def test_17_update_rate_limit_with_empty_count_clears_it(api: Api) -> None:
    key_id = limited_key(api)
    response = api.put(key_id, {"rateLimit": {"count": "", "window": 300}}, who="all")
    assert response.status_code == 200
    row = api.row(key_id)
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (None, None)


def test_18_update_sets_a_rate_limit(api: Api) -> None:
    key = api.new_key()
    response = api.put(key["id"], {"rateLimit": {"count": 1, "window": 60}}, who="all")
    assert response.status_code == 200
    row = api.row(key["id"])
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (1, 60)


def test_19_update_of_the_rate_limit_is_audited_with_the_previous_limit(
    api: Api, world: World
) -> None:
    from clientkeys import repository

    key = api.new_key()
    api.put(key["id"], {"rateLimit": {"count": 1, "window": 60}}, who="all")
    [entry] = [
        e for e in repository.list_audit(world.store, "acme") if e["event"] == "PROJECTKEY_EDIT"
    ]
    assert entry["target"] == key["id"]
    assert entry["data"]["prev_rate_limit_count"] is None
    assert entry["data"]["prev_rate_limit_window"] is None
    assert (entry["data"]["rate_limit_count"], entry["data"]["rate_limit_window"]) == (1, 60)


def test_20_update_is_active_false_and_name(api: Api) -> None:
    key = api.new_key()
    response = api.put(key["id"], {"isActive": False, "name": "hello world"}, who="all")
    assert response.status_code == 200
    row = api.row(key["id"])
    assert row["label"] == "hello world" and row["status"] == 1
    assert response.json()["isActive"] is False


def test_21_update_with_empty_body_sets_the_default_browser_sdk_version(api: Api) -> None:
    key = api.new_key()
    api.put(key["id"], {"browserSdkVersion": "5.x"}, who="all")
    assert api.put(key["id"], {}, who="all").status_code == 200
    assert api.row(key["id"])["data"]["browserSdkVersion"] == "7.x"


def test_22_update_browser_sdk_version(api: Api) -> None:
    key = api.new_key()
    response = api.put(key["id"], {"browserSdkVersion": "5.x"}, who="all")
    assert response.status_code == 200
    assert api.row(key["id"])["data"]["browserSdkVersion"] == "5.x"
    assert response.json()["browserSdkVersion"] == "5.x"


def test_23_update_with_empty_body_keeps_default_loader_options(api: Api) -> None:
    key = api.new_key()
    assert api.put(key["id"], {}, who="all").status_code == 200
    options = api.row(key["id"])["data"]["dynamicSdkLoaderOptions"]
    assert options == {"hasPerformance": True, "hasReplay": True}


def test_24_dynamic_sdk_loader_options_merge_sequence(api: Api) -> None:
    key_id = api.new_key()["id"]

    def options() -> dict[str, bool]:
        return dict(api.row(key_id)["data"]["dynamicSdkLoaderOptions"])

    def put(value: Any) -> int:
        return int(api.put(key_id, {"dynamicSdkLoaderOptions": value}, who="all").status_code)

    assert put({}) == 200 and options() == {"hasPerformance": True, "hasReplay": True}
    assert put({"hasReplay": False, "hasDebug": True}) == 200
    merged = {"hasReplay": False, "hasPerformance": True, "hasDebug": True}
    assert options() == merged
    assert put({"hasReplay": False, "hasPerformance": True}) == 200 and options() == merged
    assert put({"hasDebug": False, "invalid-key": "blah"}) == 200
    merged["hasDebug"] = False
    assert options() == merged
    assert put({"hasReplay": "invalid"}) == 400 and options() == merged
    assert put({"invalid-key": "blah"}) == 200 and options() == merged


def test_25_internal_key_update_is_404_for_users_and_200_for_superusers(api: Api) -> None:
    key = profiling_key(api)
    assert api.put(key["id"], {"name": "x"}, who="all").status_code == 404
    assert api.put(key["id"], {"name": "x"}, who="superuser").status_code == 200


def test_26_update_ignores_use_case(api: Api) -> None:
    key = api.new_key()
    response = api.put(key["id"], {"useCase": "profiling", "name": "updated"}, who="all")
    assert response.status_code == 200
    row = api.row(key["id"])
    assert (row["label"], row["use_case"]) == ("updated", "user")


# Delete ---------------------------------------------------------------------------------------


def test_27_delete_removes_the_key(api: Api, world: World) -> None:
    key = api.new_key()
    response = api.delete(key["id"], who="all")
    assert response.status_code == 204 and response.content == b""
    assert world.store.execute("SELECT count(*) FROM keys WHERE public_key = ?",
                               [key["id"]]).fetchone()[0] == 0  # fmt: skip


def test_28_internal_key_delete_is_404_for_users_and_204_for_superusers(api: Api) -> None:
    key = profiling_key(api)
    assert api.delete(key["id"], who="all").status_code == 404
    assert api.delete(key["id"], who="superuser").status_code == 204
