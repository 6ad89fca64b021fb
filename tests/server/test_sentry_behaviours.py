"""The 28 behaviours Sentry's own endpoint tests assert (reference §6), one test each.

Each such test is marked `sentry(N)` with the behaviour's number (`pytest -m sentry` runs all
28). Those without a twin among the per-operation tests live here; the others (1-6, 9-12) are
marked where they are, in test_project_keys.py and test_key_details.py.

Sentry's tests run as the organization's owner; here that is a token with every project scope.
Internal keys (useCase other than "user") are made with a superuser token, as Sentry's
fixtures make them directly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import Api, World

SENTRY_BEHAVIOURS = 28


def _module(path: Path) -> ModuleType:
    """A test module as pytest imported it, or imported from its file (run alone)."""
    if path.stem in sys.modules:
        return sys.modules[path.stem]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = sys.modules[path.stem] = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # its helpers beside it (tests/check/stalling_server)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def test_each_of_sentrys_behaviours_has_exactly_one_test() -> None:
    numbers = []
    suite = Path(__file__).parents[1]
    for path in sorted(suite.glob("test_*.py")) + sorted(suite.glob("*/test_*.py")):
        if path.parent.name == "plugin_usage":  # a user's suite, run by test_pytest_plugin
            continue
        for name, function in vars(_module(path)).items():
            marks = getattr(function, "pytestmark", []) if name.startswith("test_") else []
            numbers += [n for mark in marks if mark.name == "sentry" for n in mark.args]
    assert sorted(numbers) == list(range(1, SENTRY_BEHAVIOURS + 1))


def profiling_key(api: Api) -> dict[str, Any]:
    return api.new_key({"useCase": "profiling"}, who="superuser")


# List -----------------------------------------------------------------------------------------


@pytest.mark.sentry(7)
def test_07_regular_user_sees_only_user_keys_without_use_case(api: Api) -> None:
    profiling = profiling_key(api)
    keys = api.list(who="all").json()
    assert len(keys) == 1 and keys[0]["public"] != profiling["public"]
    assert all("useCase" not in key for key in keys)


@pytest.mark.sentry(8)
def test_08_superuser_sees_every_key_with_its_use_case(api: Api) -> None:
    profiling_key(api)
    keys = api.list(who="superuser").json()
    assert [key["useCase"] for key in keys] == ["profiling", "user"]


# Create ---------------------------------------------------------------------------------------


@pytest.mark.sentry(13)
def test_13_superuser_use_case_is_honoured_on_create(api: Api) -> None:
    response = api.create({"useCase": "demo"}, who="superuser")
    assert response.status_code == 201
    assert api.row(response.json()["id"])["use_case"] == "demo"


# Update ---------------------------------------------------------------------------------------


def limited_key(api: Api) -> str:
    return str(api.new_key({"rateLimit": {"count": 1, "window": 60}})["id"])


@pytest.mark.sentry(14)
def test_14_update_name(api: Api) -> None:
    key = api.new_key()
    assert api.put(key["id"], {"name": "hello world"}, who="all").status_code == 200
    assert api.row(key["id"])["label"] == "hello world"


@pytest.mark.sentry(15)
def test_15_update_rate_limit_null_clears_it(api: Api) -> None:
    key_id = limited_key(api)
    assert api.put(key_id, {"rateLimit": None}, who="all").status_code == 200
    row = api.row(key_id)
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (None, None)


@pytest.mark.sentry(16)
def test_16_update_without_body_keeps_the_rate_limit(api: Api) -> None:
    key_id = limited_key(api)
    response = api.client.put(api.key_url(key_id), headers=api.world.headers("all"))
    assert response.status_code == 200
    row = api.row(key_id)
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (1, 60)


@pytest.mark.sentry(17)
def test_17_update_rate_limit_with_empty_count_clears_it(api: Api) -> None:
    key_id = limited_key(api)
    response = api.put(key_id, {"rateLimit": {"count": "", "window": 300}}, who="all")
    assert response.status_code == 200
    row = api.row(key_id)
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (None, None)


@pytest.mark.sentry(18)
def test_18_update_sets_a_rate_limit(api: Api) -> None:
    key = api.new_key()
    response = api.put(key["id"], {"rateLimit": {"count": 1, "window": 60}}, who="all")
    assert response.status_code == 200
    row = api.row(key["id"])
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (1, 60)


@pytest.mark.sentry(19)
def test_19_update_of_the_rate_limit_is_audited_with_the_previous_limit(
    api: Api, world: World
) -> None:
    from clientkeys.store import repository

    key = api.new_key()
    api.put(key["id"], {"rateLimit": {"count": 1, "window": 60}}, who="all")
    [entry] = [
        e for e in repository.list_audit(world.store, "acme") if e["event"] == "PROJECTKEY_EDIT"
    ]
    assert entry["target"] == key["id"]
    assert entry["data"]["prev_rate_limit_count"] is None
    assert entry["data"]["prev_rate_limit_window"] is None
    assert (entry["data"]["rate_limit_count"], entry["data"]["rate_limit_window"]) == (1, 60)


@pytest.mark.sentry(20)
def test_20_update_is_active_false_and_name(api: Api) -> None:
    key = api.new_key()
    response = api.put(key["id"], {"isActive": False, "name": "hello world"}, who="all")
    assert response.status_code == 200
    row = api.row(key["id"])
    assert row["label"] == "hello world" and row["status"] == 1
    assert response.json()["isActive"] is False


@pytest.mark.sentry(21)
def test_21_update_with_empty_body_sets_the_default_browser_sdk_version(api: Api) -> None:
    key = api.new_key()
    api.put(key["id"], {"browserSdkVersion": "5.x"}, who="all")
    assert api.put(key["id"], {}, who="all").status_code == 200
    assert api.row(key["id"])["data"]["browserSdkVersion"] == "7.x"


@pytest.mark.sentry(22)
def test_22_update_browser_sdk_version(api: Api) -> None:
    key = api.new_key()
    response = api.put(key["id"], {"browserSdkVersion": "5.x"}, who="all")
    assert response.status_code == 200
    assert api.row(key["id"])["data"]["browserSdkVersion"] == "5.x"
    assert response.json()["browserSdkVersion"] == "5.x"


@pytest.mark.sentry(23)
def test_23_update_with_empty_body_keeps_default_loader_options(api: Api) -> None:
    key = api.new_key()
    assert api.put(key["id"], {}, who="all").status_code == 200
    options = api.row(key["id"])["data"]["dynamicSdkLoaderOptions"]
    assert options == {"hasPerformance": True, "hasReplay": True}


@pytest.mark.sentry(24)
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


@pytest.mark.sentry(25)
def test_25_internal_key_update_is_404_for_users_and_200_for_superusers(api: Api) -> None:
    key = profiling_key(api)
    assert api.put(key["id"], {"name": "x"}, who="all").status_code == 404
    assert api.put(key["id"], {"name": "x"}, who="superuser").status_code == 200


@pytest.mark.sentry(26)
def test_26_update_ignores_use_case(api: Api) -> None:
    key = api.new_key()
    response = api.put(key["id"], {"useCase": "profiling", "name": "updated"}, who="all")
    assert response.status_code == 200
    row = api.row(key["id"])
    assert (row["label"], row["use_case"]) == ("updated", "user")


# Delete ---------------------------------------------------------------------------------------


@pytest.mark.sentry(27)
def test_27_delete_removes_the_key(api: Api, world: World) -> None:
    key = api.new_key()
    response = api.delete(key["id"], who="all")
    assert response.status_code == 204 and response.content == b""
    assert world.store.execute("SELECT count(*) FROM keys WHERE public_key = ?",
                               [key["id"]]).fetchone()[0] == 0  # fmt: skip


@pytest.mark.sentry(28)
def test_28_internal_key_delete_is_404_for_users_and_204_for_superusers(api: Api) -> None:
    key = profiling_key(api)
    assert api.delete(key["id"], who="all").status_code == 404
    assert api.delete(key["id"], who="superuser").status_code == 204
