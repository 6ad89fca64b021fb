"""The contract's bookkeeping: it validates, names the code, documents errors, keeps the seed."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from connexion.json_schema import resolve_refs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

import clientkeys.server.handlers
from clientkeys.config import SPEC_DIR, Settings
from clientkeys.mock.app import Report, create_mock_app
from clientkeys.openapi.specs import load_spec
from clientkeys.server.app import create_app
from clientkeys.server.resolver import handler_name

SEED = SPEC_DIR / "upstream" / "keys.json"
SHARED_SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "keys.json"
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def spec() -> Any:
    return load_spec(SPEC_DIR)


def operations(spec: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


@pytest.mark.parametrize("name", ["openapi.json", "admin.json"])
def test_spec_is_valid_openapi(name: str) -> None:
    document, url = read_from_filename(str(SPEC_DIR / name))
    validate(document, base_uri=url)


def test_handler_names_follow_the_documented_rule() -> None:
    assert handler_name("List a Project's Client Keys") == "list_a_projects_client_keys"
    assert handler_name("Create a New Client Key") == "create_a_new_client_key"


def test_every_operation_resolves_and_every_handler_is_used(spec: Any) -> None:
    admin = load_spec(SPEC_DIR, "admin.json")
    names = {handler_name(op["operationId"]) for s in (spec, admin) for _, _, op in operations(s)}
    for name in names:
        assert callable(getattr(clientkeys.server.handlers, name, None)), name
    assert set(clientkeys.server.handlers.__all__) == names


def test_startup_fails_loudly_when_an_operation_has_no_handler(tmp_path: Path) -> None:
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    root = json.loads((SPEC_DIR / "openapi.json").read_text())
    root["paths"] = {
        "/x": {
            "get": {"operationId": "Do Something Else", "responses": {"200": {"description": "ok"}}}
        }
    }
    (spec_dir / "openapi.json").write_text(json.dumps(root))
    with pytest.raises(Exception, match="do_something_else"):
        create_app(Settings(database=tmp_path / "x.db", spec_dir=spec_dir))


def test_every_error_response_is_documented_as_json_detail_or_field_errors(spec: Any) -> None:
    for path, method, op in operations(spec):
        for status, response in op["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            schema = response["content"]["application/json"]["schema"]
            titles = json.dumps(schema)
            assert '"detail"' in titles, (path, method, status)
            assert "problem+json" not in json.dumps(response)


def test_every_list_response_documents_the_link_header(spec: Any) -> None:
    for _, method, op in operations(spec):
        schema = op["responses"].get("200", {}).get("content", {}).get("application/json", {})
        if method == "get" and schema.get("schema", {}).get("type") == "array":
            assert op["responses"]["200"]["headers"]["Link"]["required"] is True


@pytest.mark.parametrize(("name", "at_least"), [("openapi.json", 8), ("admin.json", 2)])
def test_every_example_validates_against_its_schema(name: str, at_least: int) -> None:
    """`at_least`: the examples each document had when this test was written. The mock's
    strict start checks every example, and the schemas need no repair."""
    report = Report()
    create_mock_app(SPEC_DIR / name, strict=True, report=report)
    assert report.examples >= at_least and report.problems == []


# Backward compatibility with the original contract -------------------------------------------


@pytest.fixture(scope="module")
def seed() -> Any:
    """The seed path item, its refs read as if it still lived at paths/projects/keys.json."""
    raw = json.loads(SEED.read_text())
    return resolve_refs(raw, base_uri=(SPEC_DIR / "paths" / "projects" / "keys.json").as_uri())


@pytest.fixture(scope="module")
def served(spec: Any) -> Any:
    return spec["paths"]["/api/0/projects/{organization_slug}/{project_slug}/keys/"]


# SHA-256 of shared/seed/keys.json as the product owner gave it (2026-11): CI clones the
# repository without shared/ beside it, so the copy is also checked against this digest.
SEED_SHA256 = "3ae5fd15d7edbdd49de7aa10121264bb5410ac96cdd9978e7469454652fffa8a"


def test_seed_is_kept_verbatim() -> None:
    assert hashlib.sha256(SEED.read_bytes()).hexdigest() == SEED_SHA256
    if SHARED_SEED.exists():  # beside the product owner's folder: byte for byte too
        assert SEED.read_bytes() == SHARED_SEED.read_bytes()


def test_served_spec_keeps_every_seed_operation(seed: Any, served: Any) -> None:
    for method, operation in seed.items():
        assert served[method]["operationId"] == operation["operationId"]
        for requirement in operation["security"]:
            assert requirement in served[method]["security"]


def test_served_spec_keeps_every_seed_parameter_and_requires_nothing_new(
    seed: Any, served: Any
) -> None:
    for method, operation in seed.items():
        ours = {(p["name"], p["in"]): p for p in served[method]["parameters"]}
        for parameter in operation["parameters"]:
            assert (parameter["name"], parameter["in"]) in ours
        seed_required = {(p["name"], p["in"]) for p in operation["parameters"] if p.get("required")}
        assert {k for k, p in ours.items() if p.get("required")} <= seed_required


def test_served_spec_keeps_every_seed_status_and_example(seed: Any, served: Any) -> None:
    for method, operation in seed.items():
        for status, response in operation["responses"].items():
            assert status in served[method]["responses"], (method, status)
            for media, content in response.get("content", {}).items():
                schema = served[method]["responses"][status]["content"][media]["schema"]
                OAS30Validator(schema).validate(content["example"])


def test_served_request_body_accepts_everything_the_seed_accepted(seed: Any, served: Any) -> None:
    seed_body = seed["post"]["requestBody"]
    ours = served["post"]["requestBody"]
    assert ours.get("required", False) <= seed_body["required"]
    schema = ours["content"]["application/json"]["schema"]
    OAS30Validator(schema).validate(seed_body["content"]["application/json"]["example"])
    seed_schema = seed_body["content"]["application/json"]["schema"]
    assert set(schema.get("required", [])) <= set(seed_schema["required"])
    for name, prop in seed_schema["properties"].items():
        assert schema["properties"][name]["type"] == prop["type"]


# What the server can answer, and what every answer carries --------------------------------


def test_every_operation_documents_the_statuses_of_faults_and_limits(spec: Any) -> None:
    for path, method, op in operations(spec):
        documented = set(op["responses"])
        assert {"400", "414", "431", "503"} <= documented, (path, method)
        if method != "get":
            assert "507" in documented, (path, method)
        for status in ("503", "507"):
            if status in documented:
                assert op["responses"][status]["headers"]["Retry-After"]["required"] is True


def test_every_response_documents_no_store_and_nosniff(spec: Any) -> None:
    for path, _, op in operations(spec):
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            cache = Draft4Validator(headers["Cache-Control"]["schema"])
            assert cache.is_valid("no-store") and cache.is_valid("private, no-store"), path
            assert not cache.is_valid("no-cache") and not cache.is_valid("max-age=60"), status
            assert headers["X-Content-Type-Options"]["schema"]["enum"] == ["nosniff"]


def patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from patterns(value)


def test_every_pattern_rejects_a_trailing_newline_in_both_validators(spec: Any) -> None:
    """Python's `$` also matches before a final newline (python-jsonschema uses `re.search`);
    jsonschema-rs's does not. Every pattern must mean the same to both."""
    found = sorted(set(patterns(spec.spec)))
    assert len(found) >= 4
    for pattern in found:
        schema = {"type": "string", "pattern": pattern}
        rust, python = jsonschema_rs.Draft4Validator(schema), Draft4Validator(schema)
        for text in examples_of(pattern):
            for candidate in (text, text + "\n", "\n"):
                assert rust.is_valid(candidate) == python.is_valid(candidate), (pattern, candidate)
            assert python.is_valid(text)


def examples_of(pattern: str) -> list[str]:
    """A few strings matching `pattern` in full, from Hypothesis."""
    found: list[str] = []

    @given(st.from_regex(re.compile(pattern.replace("$(?!\\n)", r"\Z")), fullmatch=True))
    @settings(max_examples=20, database=None, suppress_health_check=list(HealthCheck))
    def collect(text: str) -> None:
        found.append(text)

    collect()
    return found
