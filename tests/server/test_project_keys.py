"""The list and create operations, as a Sentry client sees them."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from clientkeys.cli import main
from clientkeys.config import Settings
from clientkeys.core import domain
from clientkeys.server.app import create_app
from clientkeys.store import backend as storage
from clientkeys.store import repository
from conftest import (
    HEX32,
    KEYS_URL,
    NOT_FOUND,
    Api,
    World,
    assert_error,
    dsn_urls,
)

DSN_FIELDS = {
    "secret", "public", "csp", "security", "minidump", "nel", "unreal", "crons", "cdn",
    "playstation", "integration", "otlp_traces", "otlp_logs",
}  # fmt: skip
DEFAULT_LOADER_OPTIONS = {"hasPerformance": True, "hasReplay": True}


@pytest.mark.sentry(1)
def test_new_project_lists_its_default_key(api: Api, world: World) -> None:
    response = api.list(who="all")
    assert response.status_code == 200
    [key] = response.json()
    assert key["name"] == key["label"] == "Default"
    assert key["id"] == key["public"] and HEX32.match(key["public"])
    assert HEX32.match(key["secret"]) and key["secret"] != key["public"]
    assert key["projectId"] == world.project["id"]
    assert key["isActive"] is True and key["rateLimit"] is None
    stored = world.store.execute("SELECT public_key FROM keys WHERE project_id = ?",
                                 [world.project["id"]]).fetchone()[0]  # fmt: skip
    assert key["public"] == stored


def test_list_is_newest_first(api: Api) -> None:
    names = ["first", "second", "third"]
    for name in names:
        assert api.create({"name": name}).status_code == 201
    assert [k["name"] for k in api.list().json()] == ["third", "second", "first", "Default"]


def test_list_accepts_numeric_ids_for_organization_and_project(api: Api, world: World) -> None:
    org_id, project_id = world.project["organization_id"], world.project["id"]
    by_id = api.list(org=str(org_id), project=str(project_id))
    assert by_id.status_code == 200
    assert by_id.json() == api.list().json()


@pytest.mark.parametrize("ref", [str(2**63 - 1), "9" * 19, "9" * 25])
def test_a_numeric_organization_or_project_too_large_for_an_id_is_404(api: Api, ref: str) -> None:
    # Ids are SQLite integers (at most 2**63 - 1); a longer number names nothing, never a 500.
    assert_error(api.list(org=ref), 404, NOT_FOUND)
    assert_error(api.list(project=ref), 404, NOT_FOUND)


def test_date_created_is_utc_whatever_the_servers_time_zone(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Kathmandu")  # UTC+05:45, no daylight saving
    time.tzset()
    try:
        key = api.new_key()
    finally:
        monkeypatch.undo()
        time.tzset()
    created = datetime.strptime(key["dateCreated"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60


@pytest.mark.sentry(9)
def test_create_returns_201_with_the_full_key(api: Api) -> None:
    response = api.create(
        {"name": "hello world", "rateLimit": {"count": 10, "window": 60}}, who="all"
    )
    assert response.status_code == 201
    key = response.json()
    row = api.row(key["id"])
    assert row["label"] == "hello world"
    assert (row["rate_limit_count"], row["rate_limit_window"]) == (10, 60)
    assert row["data"]["dynamicSdkLoaderOptions"] == DEFAULT_LOADER_OPTIONS
    assert key["name"] == key["label"] == "hello world"
    assert key["rateLimit"] == {"window": 60, "count": 10}
    assert key["dynamicSdkLoaderOptions"] == {
        "hasReplay": True, "hasPerformance": True, "hasDebug": False,
        "hasFeedback": False, "hasLogsAndMetrics": False,
    }  # fmt: skip
    assert key["browserSdkVersion"] == "7.x"
    assert key["browserSdk"] == {"choices": [["latest", "latest"], ["7.x", "7.x"]]}
    assert set(key["dsn"]) == DSN_FIELDS
    assert "useCase" not in key
    created = datetime.strptime(key["dateCreated"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    assert key in api.list().json()


@pytest.mark.sentry(2, 4, 5, 6)
def test_dsn_urls_follow_sentrys_templates(api: Api) -> None:
    """All 13 URLs; Sentry's tests name the playstation (2), integration (4), otlp_traces (5)
    and otlp_logs (6) endpoints one by one."""
    [listed] = api.list(who="all").json()
    key = api.create({}).json()
    for shown in (listed, key):
        assert shown["dsn"] == dsn_urls("http://testserver", shown)
    p, k = key["projectId"], key["public"]
    assert key["dsn"]["playstation"] == f"http://testserver/api/{p}/playstation/?sentry_key={k}"
    assert key["dsn"]["otlp_logs"] == f"http://testserver/api/{p}/integration/otlp/v1/logs"


def test_dsn_urls_use_the_configured_ingest_and_cdn_urls(settings: Settings, world: World) -> None:
    configured = settings.replace(
        ingest_url="https://o1.ingest.example.com/relay", cdn_url="https://cdn.example.com/"
    )
    with create_app(configured).test_client() as client:
        [key] = client.get(KEYS_URL, headers=world.headers()).json()
    k, p = key["public"], key["projectId"]
    assert key["dsn"]["public"] == f"https://{k}@o1.ingest.example.com/relay/{p}"
    assert (
        key["dsn"]["csp"]
        == f"https://o1.ingest.example.com/relay/api/{p}/csp-report/?sentry_key={k}"
    )
    assert key["dsn"]["cdn"] == f"https://cdn.example.com/{k}.min.js"


@pytest.mark.sentry(10)
@pytest.mark.parametrize("body", [None, {}, {"name": None}, {"name": ""}])
def test_create_without_a_name_generates_a_two_word_label(api: Api, body: object) -> None:
    """`None`: no body at all (Sentry's behaviour 10)."""
    response = api.create(body, who="all")
    assert response.status_code == 201
    name = response.json()["name"]
    assert re.match(r"^[A-Z][a-z]+ [A-Z][a-z]+$", name), name
    row = api.row(response.json()["id"])
    assert row["label"] == name
    assert row["data"]["dynamicSdkLoaderOptions"] == DEFAULT_LOADER_OPTIONS


def test_name_of_64_characters_is_kept(api: Api) -> None:
    assert api.create({"name": "n" * 64}).json()["name"] == "n" * 64


def test_name_over_64_characters_is_400_and_writes_nothing(api: Api, world: World) -> None:
    before = world.key_count()
    body = assert_error(api.create({"name": "n" * 65}), 400)
    assert body == {"name": ["Ensure this field has no more than 64 characters."]}
    assert world.key_count() == before


@pytest.mark.parametrize(
    ("limit", "stored"),
    [
        ({"count": 10, "window": 60}, {"window": 60, "count": 10}),
        ({"count": 0, "window": 60}, None),
        ({"count": 10, "window": 0}, None),
        ({"count": None, "window": 60}, None),
        ({"count": "", "window": ""}, None),
    ],
)
def test_rate_limit_is_stored_only_when_both_values_are_non_zero(
    api: Api, limit: dict[str, object], stored: object
) -> None:
    response = api.create({"rateLimit": limit})
    assert response.status_code == 201
    assert response.json()["rateLimit"] == stored


@pytest.mark.parametrize("limit", [{"count": 10, "window": 0}, {"count": 0, "window": 60}])
def test_a_rate_limit_with_a_zero_field_is_not_stored_at_all(
    api: Api, settings: Settings, limit: dict[str, int]
) -> None:
    # The key shows no limit either way; what was stored shows in the audit log and in the
    # previous limit recorded when the limit is next set.
    key = api.new_key({"rateLimit": limit})
    assert key["rateLimit"] is None
    assert api.put(key["id"], {"rateLimit": {"count": 5, "window": 60}}).status_code == 200
    result = CliRunner().invoke(main, ["audit", "--database", str(settings.database)])
    assert result.exit_code == 0, result.output
    data = [json.loads(line.split("\t")[4]) for line in result.output.splitlines()
            if key["id"] in line]  # fmt: skip
    assert [(d["rate_limit_count"], d["rate_limit_window"]) for d in data] == [
        (None, None), (5, 60),
    ]  # fmt: skip
    assert (data[1]["prev_rate_limit_count"], data[1]["prev_rate_limit_window"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"rateLimit": {"count": 10}}, {"rateLimit": {"window": ["This field is required."]}}),
        ({"rateLimit": {"window": 5}}, {"rateLimit": {"count": ["This field is required."]}}),
        ({"rateLimit": None}, {"rateLimit": ["This field may not be null."]}),
        (
            {"rateLimit": "often"},
            {
                "rateLimit": {
                    "non_field_errors": ["Invalid data. Expected a dictionary, but got str."]
                }
            },
        ),
        (
            {"rateLimit": {"count": -1, "window": 60}},
            {"rateLimit": {"count": ["Ensure this value is greater than or equal to 0."]}},
        ),
        (
            {"rateLimit": {"count": 1, "window": 86401}},
            {"rateLimit": {"window": ["Ensure this value is less than or equal to 86400."]}},
        ),
        (
            {"rateLimit": {"count": "ten", "window": 60}},
            {"rateLimit": {"count": ["A valid integer is required."]}},
        ),
        ({"name": 5}, {"name": ["Not a valid string."]}),
        ({"public": "ABC"}, {"public": ["This value does not match the required pattern."]}),
        ({"secret": "g" * 32}, {"secret": ["This value does not match the required pattern."]}),
        ({"useCase": "spam"}, {"useCase": ['"spam" is not a valid choice.']}),
    ],
)
def test_invalid_fields_are_400_with_sentrys_field_errors(
    api: Api, world: World, body: object, errors: object
) -> None:
    before = world.key_count()
    assert assert_error(api.create(body), 400) == errors
    assert world.key_count() == before


@pytest.mark.sentry(11)
def test_explicit_public_and_secret_are_used(api: Api) -> None:
    key = api.create({"public": "a" * 32, "secret": "b" * 32}, who="all").json()
    assert (key["id"], key["public"], key["secret"]) == ("a" * 32, "a" * 32, "b" * 32)


@pytest.mark.parametrize("field", ["public", "secret"])
def test_an_explicit_key_that_exists_is_400_not_a_crash(api: Api, world: World, field: str) -> None:
    assert api.create({field: "c" * 32}).status_code == 201
    before = world.key_count()
    body = assert_error(api.create({field: "c" * 32}), 400)
    assert body == {field: [f"A client key with this {field} key already exists."]}
    assert world.key_count() == before


def test_unknown_fields_are_ignored(api: Api) -> None:
    response = api.create({"name": "x", "isActive": False, "whatever": [1]})
    assert response.status_code == 201
    assert response.json()["isActive"] is True


@pytest.mark.sentry(12)
def test_use_case_is_ignored_for_regular_tokens(api: Api, world: World) -> None:
    key = api.create({"useCase": "profiling"}, who="all").json()
    row = world.store.execute(
        "SELECT use_case FROM keys WHERE public_key = ?", [key["public"]]
    ).fetchone()
    assert row[0] == "user"
    assert "useCase" not in key


def test_the_configured_page_size_is_the_default_per_page(tmp_path: Path) -> None:
    """`CLIENTKEYS_PER_PAGE` decides a page when the request names no per_page (the spec
    documents no default of its own, or Connexion would fill it in first)."""
    settings = Settings(database=tmp_path / "paged.db", per_page=2)
    storage.init_db(settings.database)
    with storage.connect(settings.database) as database:
        repository.insert_organization(database, "acme")
        project = repository.insert_project(database, "acme", "web")  # with its default key
        for name in ("second", "third"):
            repository.insert_key(database, project["id"], domain.new_key(name=name))
        token, _ = repository.insert_token(database, "acme", domain.SCOPES)
    with create_app(settings).test_client() as client:
        page = client.get("/api/0/projects/acme/web/keys/",
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert page.status_code == 200
        assert len(page.json()) == 2
        assert 'rel="next"; results="true"' in page.headers["Link"]
        asked = client.get("/api/0/projects/acme/web/keys/?per_page=3",
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert len(asked.json()) == 3
