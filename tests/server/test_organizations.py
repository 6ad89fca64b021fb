"""What Sentry's own command-line tools read besides a project's keys: the API index, the
organizations, their projects and all their keys, a project by DSN and the regions; with the
keys endpoints' error shapes, pagination and authorization order (401, 403 scope, 404, 403
organization). Runs on both backends."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from clientkeys.core import domain
from clientkeys.store import repository
from conftest import (
    ADMIN,
    NO_CREDENTIALS,
    NO_PERMISSION,
    NOT_FOUND,
    READ,
    World,
    assert_error,
)

ORG_READ = "org:read"
BASE = "http://testserver"


@pytest.fixture
def sentry(client: Any, world: World) -> World:
    """The world with tokens as Sentry's CLIs hold them (org:read and a project scope; org:read
    alone) and a second project of acme, "mobile", with a key of its own."""
    store = world.store
    grants = {"cli": ("acme", [ORG_READ, READ], False), "org_only": ("acme", [ORG_READ], False),
              "globex_cli": ("globex", [ORG_READ, READ], False),
              "root": (None, [ORG_READ, READ], True)}  # fmt: skip
    for who, (org, scopes, superuser) in grants.items():
        world.tokens[who] = repository.insert_token(store, org, scopes, superuser=superuser)[0]
    repository.insert_project(store, "acme", "mobile", "Mobile")
    return world


def mobile(world: World) -> dict[str, Any]:
    return repository.get_project(world.store, "acme", "mobile")


def get(client: Any, world: World, path: str, who: str = "cli") -> Any:
    return client.get(path, headers=world.headers(who))


def links(response: Any) -> dict[str, tuple[str, str]]:
    """rel -> (results, cursor) of a `Link` header."""
    found = {}
    for part in response.headers["Link"].split(", <"):
        fields = dict(item.split("=", 1) for item in part.split("; ")[1:])
        found[fields["rel"].strip('"')] = (
            fields["results"].strip('"'),
            fields["cursor"].strip('"'),
        )
    return found


def test_an_organization_names_this_server_as_its_region(client: Any, sentry: World) -> None:
    for ref in ("acme", "1"):
        response = get(client, sentry, f"/api/0/organizations/{ref}/")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["id"], body["slug"], body["name"]) == ("1", "acme", "Acme")
        assert body["links"] == {"organizationUrl": BASE, "regionUrl": BASE}
        assert body["isEarlyAdopter"] is False and body["require2FA"] is False
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "who", "status", "detail"),
    [
        ("/api/0/organizations/acme/", None, 401, NO_CREDENTIALS),
        ("/api/0/organizations/acme/", "all", 403, NO_PERMISSION),  # no org:read
        ("/api/0/organizations/nope/", "cli", 404, NOT_FOUND),
        ("/api/0/organizations/acme/", "globex_cli", 403, NO_PERMISSION),
        ("/api/0/organizations/acme/projects/", "globex_cli", 403, NO_PERMISSION),
        ("/api/0/organizations/nope/projects/", "globex_cli", 404, NOT_FOUND),
        ("/api/0/organizations/acme/project-keys/", "org_only", 403, NO_PERMISSION),
        ("/api/0/organizations/acme/project-keys/", "globex_cli", 403, NO_PERMISSION),
        ("/api/0/projects/acme/web/", "org_only", 403, NO_PERMISSION),
        ("/api/0/projects/acme/nope/", "cli", 404, NOT_FOUND),
        ("/api/0/projects/acme/web/", "globex_cli", 403, NO_PERMISSION),
        ("/api/0/", None, 401, NO_CREDENTIALS),
    ],
)
def test_errors_come_in_the_keys_endpoints_order_and_shape(
    client: Any, sentry: World, path: str, who: str | None, status: int, detail: str
) -> None:
    headers = sentry.headers(who) if who else {}
    assert_error(client.get(path, headers=headers), status, detail)


def test_a_token_lists_its_own_organization_and_a_superuser_all(client: Any, sentry: World) -> None:
    own = get(client, sentry, "/api/0/organizations/")
    assert own.status_code == 200, own.text
    assert [o["slug"] for o in own.json()] == ["acme"]
    assert {"dateCreated", "isEarlyAdopter", "require2FA"} <= set(own.json()[0])
    # Any token lists its organization, as Sentry answers org tokens whatever their scopes.
    assert [o["slug"] for o in get(client, sentry, "/api/0/organizations/", "read").json()] == [
        "acme"
    ]
    everyone = get(client, sentry, "/api/0/organizations/", who="root")
    assert [o["slug"] for o in everyone.json()] == ["globex", "acme"]


def test_organizations_page_with_the_link_header(client: Any, sentry: World) -> None:
    first = get(client, sentry, "/api/0/organizations/?per_page=1", who="root")
    assert [o["slug"] for o in first.json()] == ["globex"]
    results, cursor = links(first)["next"]
    assert results == "true"
    second = get(client, sentry, f"/api/0/organizations/?per_page=1&cursor={cursor}", "root")
    assert [o["slug"] for o in second.json()] == ["acme"]
    assert links(second)["next"][0] == "false" and links(second)["previous"][0] == "true"


def test_an_organizations_projects_are_its_own_newest_first(client: Any, sentry: World) -> None:
    response = get(client, sentry, "/api/0/organizations/acme/projects/")
    assert response.status_code == 200, response.text
    assert [(p["id"], p["slug"], p["name"]) for p in response.json()] == [
        ("3", "mobile", "Mobile"),
        ("1", "web", "web"),
    ]
    assert response.json()[0]["organization"]["slug"] == "acme"
    page = get(client, sentry, "/api/0/organizations/acme/projects/?per_page=1")
    nxt = get(
        client,
        sentry,
        f"/api/0/organizations/acme/projects/?per_page=1&cursor={links(page)['next'][1]}",
    )
    assert [p["slug"] for p in page.json() + nxt.json()] == ["mobile", "web"]


@pytest.mark.parametrize("ref", ["web", "1", "web/?collapse=organization"])
def test_a_project_by_slug_or_id_carries_its_organization(
    client: Any, sentry: World, ref: str
) -> None:
    path = f"/api/0/projects/acme/{ref}" + ("" if "?" in ref else "/")
    response = get(client, sentry, path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["slug"]) == ("1", "web")
    assert body["organization"]["slug"] == "acme"
    assert body["organization"]["links"]["regionUrl"] == BASE


def test_an_organizations_keys_span_its_projects_with_numeric_project_ids(
    client: Any, sentry: World
) -> None:
    web, other = sentry.project, mobile(sentry)
    response = get(client, sentry, "/api/0/organizations/acme/project-keys/?project=-1")
    assert response.status_code == 200, response.text
    keys = response.json()
    assert [k["projectId"] for k in keys] == [other["id"], web["id"]]
    stored = {row["public_key"] for row in _keys(sentry, "acme")}
    assert {k["public"] for k in keys} == stored  # globex's key is not among them
    assert keys[0]["dsn"]["public"].endswith(f"@testserver/{other['id']}")
    only_web = get(client, sentry, f"/api/0/organizations/acme/project-keys/?project={web['id']}")
    assert [k["projectId"] for k in only_web.json()] == [web["id"]]


def test_an_organizations_keys_page_and_filter_like_a_projects(client: Any, sentry: World) -> None:
    url = "/api/0/organizations/acme/project-keys/"
    first = get(client, sentry, f"{url}?project=-1&per_page=1")
    assert len(first.json()) == 1 and links(first)["next"][0] == "true"
    second = get(client, sentry, f"{url}?project=-1&per_page=1&cursor={links(first)['next'][1]}")
    assert {first.json()[0]["id"], second.json()[0]["id"]} == {
        r["public_key"] for r in _keys(sentry, "acme")
    }
    assert get(client, sentry, f"{url}?status=inactive").json() == []
    assert_error(get(client, sentry, f"{url}?cursor=nope"), 400)


def test_a_dsn_finds_its_project_only_for_a_token_that_may_see_it(
    client: Any, sentry: World
) -> None:
    key = _keys(sentry, "acme")[0]
    found = get(client, sentry, f"/api/0/projects/?query=dsn:{key['public_key']}")
    assert found.status_code == 200, found.text
    assert [p["id"] for p in found.json()] == [str(key["project_id"])]
    assert (
        get(client, sentry, f"/api/0/projects/?query=dsn:{key['public_key']}", "globex_cli").json()
        == []
    )
    assert get(client, sentry, "/api/0/projects/?query=dsn:0123").json() == []
    assert [p["slug"] for p in get(client, sentry, "/api/0/projects/").json()] == ["mobile", "web"]


def test_the_index_and_the_regions_describe_this_server_and_the_token(
    client: Any, sentry: World
) -> None:
    index = get(client, sentry, "/api/0/")
    assert index.status_code == 200, index.text
    assert index.json() == {"version": "0", "auth": {"scopes": [READ, ORG_READ]}, "user": None}
    assert get(client, sentry, "/api/0/", who="admin").json()["auth"]["scopes"] == [ADMIN]
    regions = get(client, sentry, "/api/0/users/me/regions/")
    assert regions.json() == {"regions": [{"name": "us", "url": BASE}]}


def test_a_token_in_sentrys_org_format_names_the_server_and_works(
    client: Any, sentry: World
) -> None:
    plain = domain.new_token("https://keys.example.com", "acme")
    prefix, payload, secret = plain.split("_")
    assert prefix == "sntrys"
    decoded = json.loads(base64.b64decode(payload))
    assert (decoded["url"], decoded["region_url"], decoded["org"]) == (
        "https://keys.example.com", "https://keys.example.com", "acme",
    )  # fmt: skip
    assert len(base64.b64decode(secret + "=")) == 32  # what sentry-cli checks
    repository.insert_token(sentry.store, "acme", [ORG_READ], token=plain)
    response = client.get(
        "/api/0/organizations/acme/", headers={"Authorization": f"Bearer {plain}"}
    )
    assert response.status_code == 200, response.text


def _keys(world: World, organization: str) -> list[dict[str, Any]]:
    cursor = world.store.execute(
        "SELECT k.public_key, k.project_id FROM keys k JOIN projects p ON p.id = k.project_id "
        "JOIN organizations o ON o.id = p.organization_id WHERE o.slug = ? ORDER BY k.id DESC",
        [organization],
    )
    return [{"public_key": a, "project_id": b} for a, b in cursor.fetchall()]
