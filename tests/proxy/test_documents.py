"""The proxy in front of a document that is not ours: OpenAPI 3.0 and 3.1, no operationIds,
every parameter location, an API key in the query; its own documented error in enforce mode."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from pets import BAD_REQUEST, pets_upstream, write_pets
from proxies import ADMIN, proxy_command, proxying

KEY = {"api_key": "k"}


def listed(proxy: str) -> list[dict[str, Any]]:
    violations: list[dict[str, Any]] = requests.get(
        f"{proxy}/__proxy/violations", headers=ADMIN
    ).json()["violations"]
    return violations


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
def test_a_document_without_operation_ids_is_forwarded_and_checked(
    tmp_path: Path, version: str
) -> None:
    spec = write_pets(tmp_path, version)
    with (
        pets_upstream() as (upstream, seen),
        proxying(upstream, tmp_path, "--spec", str(spec)) as proxy,
    ):
        good = requests.get(f"{proxy}/pets/1", params={**KEY, "verbose": "true"},
                            headers={"X-Trace": "7"}, cookies={"session": "abcd"})  # fmt: skip
        clean = listed(proxy)
        wrong_type = requests.get(f"{proxy}/pets/abc", params=KEY)
        bad_header = requests.get(f"{proxy}/pets/1", params=KEY, headers={"X-Trace": "x"})
        bad_cookie = requests.get(f"{proxy}/pets/1", params=KEY, cookies={"session": "ab"})
        no_key = requests.get(f"{proxy}/pets/1")
        bad_answer = requests.get(f"{proxy}/pets/2", params=KEY)
        found = listed(proxy)
    assert (good.status_code, good.json()) == (200, {"id": 1, "name": "Rex"})
    assert clean == []
    # Report mode: everything reached the upstream, which answered as it does.
    assert [s.split("?")[0] for s in seen] == ["/pets/1", "/pets/abc", "/pets/1", "/pets/1",
                                               "/pets/1", "/pets/2"]  # fmt: skip
    statuses = [r.status_code for r in (wrong_type, bad_header, bad_cookie, no_key, bad_answer)]
    assert statuses == [404, 200, 200, 200, 200]
    requests_found = {(v["operation"], v["rule"], v["where"], repr(v["value"]))
                      for v in found if v["side"] == "request"}  # fmt: skip
    assert requests_found == {
        ("GET /pets/{petId}", "request.parameter", "path.petId", "'abc'"),
        ("GET /pets/{petId}", "request.parameter", "header.X-Trace", "'x'"),
        ("GET /pets/{petId}", "request.parameter", "cookie.session", "'ab'"),
        ("GET /pets/{petId}", "request.auth", "", "None"),
    }
    responses_found = {(v["path"], v["rule"], v["where"]) for v in found if v["side"] == "response"}
    assert responses_found == {
        ("/pets/abc", "response.status", ""),  # the upstream's 404 is not documented
        ("/pets/2", "response.body", "id"),
    }


def test_enforce_mode_answers_the_documents_own_documented_error(tmp_path: Path) -> None:
    spec = write_pets(tmp_path)
    with (
        pets_upstream() as (upstream, seen),
        proxying(upstream, tmp_path, "--spec", str(spec), "--mode", "enforce") as proxy,
    ):
        refused = requests.get(f"{proxy}/pets/abc", params=KEY)
        unknown = requests.get(f"{proxy}/pets/1", params={**KEY, "colour": "red"})
        allowed = requests.get(f"{proxy}/pets/1", params=KEY)
        found = listed(proxy)
    assert (refused.status_code, refused.json()) == (400, BAD_REQUEST)
    assert refused.headers["content-type"] == "application/json"
    assert (unknown.status_code, unknown.json()) == (400, BAD_REQUEST)
    assert allowed.status_code == 200
    assert seen == ["/pets/1?api_key=k"]  # only the request that keeps the contract
    assert [(v["rule"], v["where"], v["status"]) for v in found] == [
        ("request.parameter", "path.petId", 400),
        ("request.parameter", "query.colour", 400),
    ]


def test_a_document_the_engine_cannot_read_stops_the_start_in_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("openapi: 3.0.0\npaths: [1\n")
    command = proxy_command("http://127.0.0.1:9", "--spec", str(spec), "--", "true")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: {spec}: invalid YAML at line 3, column 1: did not find expected ',' or ']'"
    ]
