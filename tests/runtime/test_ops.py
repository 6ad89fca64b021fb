"""Operating the server in process: health and readiness, the docs page's files, request ids,
access log records, metrics (database errors and lock waits included), and the mock's share."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlite_utils import Database
from starlette.testclient import TestClient

from clientkeys.config import Settings
from clientkeys.mock.app import create_mock_app, served
from clientkeys.runtime import metrics
from clientkeys.runtime.logs import ACCESS_LOGGER, JsonFormatter
from clientkeys.server.app import create_app
from clientkeys.store import sqlite as db
from conftest import KEYS_URL, SEEDED_KEYS, World, assert_error, on_postgres

LIST = "List a Project's Client Keys"


@pytest.fixture(scope="module")
def metered(settings: Settings) -> Iterator[Any]:
    """The app with metrics and the test controls on."""
    app = create_app(settings.replace(metrics=True, admin_token="admin-secret"))
    with app.test_client() as client:
        yield client


def samples(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


# Health ----------------------------------------------------------------------------------------


def test_liveness_is_ok_without_a_token(client: Any) -> None:
    response = client.get("/_health/")
    assert response.status_code == 200 and response.text == "ok"
    assert response.headers["content-type"].startswith("text/plain")


def test_readiness_reads_and_writes_the_database_and_touches_no_key(
    client: Any, world: World
) -> None:
    keys_before = world.store.execute("SELECT * FROM keys ORDER BY id").fetchall()
    response = client.get("/_health/?full")
    assert response.status_code == 200
    assert response.json() == {"problems": [], "healthy": {"database": True}}
    assert world.store.execute("SELECT count(*) FROM health").fetchone()[0] == 1
    assert world.store.execute("SELECT * FROM keys ORDER BY id").fetchall() == keys_before
    assert world.key_count() == SEEDED_KEYS


def test_readiness_is_503_naming_the_problem_when_the_database_cannot_be_written(
    client: Any, store: Database
) -> None:
    store.execute("DROP TABLE health")  # a store this server cannot write to
    try:
        response = client.get("/_health/?full=1")
        assert response.status_code == 503
        body = response.json()
        assert body["healthy"] == {"database": False}
        missing = (
            'relation "health" does not exist' if on_postgres(store) else "no such table: health"
        )
        assert body["problems"] == [f"database: {missing}"]
        assert client.get("/_health/").status_code == 200  # alive all the same
    finally:
        real = "DOUBLE PRECISION" if on_postgres(store) else "REAL"
        store.execute(
            f"CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked {real})"
        )


@pytest.mark.parametrize("path", ["/_health/", "/docs/", "/metrics"])
def test_operations_endpoints_take_only_get_and_answer_json_errors(metered: Any, path: str) -> None:
    response = metered.post(path)
    assert_error(response, 405, 'Method "POST" not allowed.')
    assert response.headers["allow"] == "GET, HEAD"


# The docs page ---------------------------------------------------------------------------------


def test_docs_page_loads_swagger_ui_from_the_server_itself(client: Any) -> None:
    page = client.get("/docs/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "//" not in page.text.replace("<!DOCTYPE", "")  # no CDN, no absolute URL
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        assert f'"{asset}"' in page.text
        response = client.get(f"/docs/{asset}")
        assert response.status_code == 200 and len(response.content) > 1000
    assert '"url": "../openapi.json"' in page.text
    redirect = client.get("/docs", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "/docs/"
    assert_error(client.get("/docs/../../etc/passwd"), 404)
    assert_error(client.get("/docs/index.j2"), 404)


def test_docs_page_lists_the_test_controls_when_they_are_on(metered: Any) -> None:
    page = metered.get("/docs/").text
    assert '"url": "../openapi.json"' in page and '"url": "../__admin/openapi.json"' in page


def test_the_mock_serves_the_docs_page_over_its_spec_files_and_liveness(
    settings: Settings,
) -> None:
    app = served(create_mock_app(settings.spec_dir / "openapi.json"))
    with TestClient(app) as client:
        page = client.get("/docs/")
        assert page.status_code == 200 and '"url": "spec/openapi.json"' in page.text
        assert client.get("/docs/swagger-ui-bundle.js").status_code == 200
        root = client.get("/docs/spec/openapi.json").json()
        assert root["info"]["title"].startswith("clientkeys")
        ref = root["paths"]["/api/0/projects/{organization_slug}/{project_slug}/keys/"]["$ref"]
        assert client.get(f"/docs/spec/{ref.split('#')[0]}").status_code == 200
        assert client.get("/_health/?full").json() == {"problems": [], "healthy": {}}
        assert client.get("/metrics").status_code == 404
        assert client.get(KEYS_URL, headers={"Authorization": "Bearer x"}).status_code == 200


def test_a_mocked_spec_keeps_its_own_metrics_and_health_paths_and_is_tried_on_the_mock(
    tmp_path: Path,
) -> None:
    spec = {
        "openapi": "3.0.3", "info": {"title": "Ops", "version": "1"},
        "servers": [{"url": "https://api.example.com/v1", "description": "production"}],
        "paths": {p: {"get": {"responses": {"200": {"description": "mine",
                  "content": {"text/plain": {"example": "mine"}}}}}}
                  for p in ("/metrics", "/_health/")},
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    with TestClient(served(create_mock_app(tmp_path / "spec.json"))) as client:
        assert client.get("/v1/metrics").text == "mine"
        assert client.get("/v1/_health/").text == "mine"
        assert client.get("/docs/").status_code == 200
        served_spec = client.get("/docs/spec/spec.json").json()  # "Try it out" calls the mock
        assert served_spec["servers"] == [{"url": "/v1", "description": "production"}]


# Request ids and access records ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("deploy-7f3a:42", True), ("has spaces", False), ("x" * 129, False), ("", False)],
)
def test_every_answer_carries_a_request_id(client: Any, sent: str, kept: bool) -> None:
    response = client.get("/nowhere", headers={"X-Request-ID": sent})
    answered = response.headers["x-request-id"]
    assert (answered == sent) is kept
    if not kept:
        assert len(answered) == 32 and int(answered, 16) >= 0


def test_access_records_name_the_operation_and_token_never_the_token(
    client: Any, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.get(KEYS_URL, headers={**world.headers("read"), "X-Request-ID": "r1"})
        client.post(KEYS_URL, json={"name": 5}, headers=world.headers("write"))
        client.get(KEYS_URL, headers={"Authorization": "Bearer nope"})
    first, invalid, unknown = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert (first.request_id, first.operation_id, first.status) == ("r1", LIST, 200)  # type: ignore[attr-defined]
    assert first.token_id.startswith("token:")  # type: ignore[attr-defined]
    assert invalid.status == 400 and invalid.operation_id == "Create a New Client Key"  # type: ignore[attr-defined]
    assert unknown.status == 401 and unknown.token_id is None  # type: ignore[attr-defined]
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert all(token not in text for token in world.tokens.values())
    assert not any(r.exc_info for r in caplog.records)


def test_json_formatter_writes_one_object_per_line() -> None:
    record = logging.LogRecord("clientkeys", logging.ERROR, __file__, 1, "boom %s", ("x",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "error" and parsed["message"] == "boom x"
    assert parsed["time"].endswith("Z") and parsed["logger"] == "clientkeys"


# Metrics ---------------------------------------------------------------------------------------


def test_metrics_are_off_unless_asked_for(client: Any) -> None:
    assert_error(client.get("/metrics"), 404)


def test_metrics_count_requests_by_operation_and_validation_failures(
    metered: Any, world: World
) -> None:
    before = samples(metered)
    metered.get(KEYS_URL, headers=world.headers())
    metered.get(KEYS_URL + "?per_page=0", headers=world.headers())
    metered.get("/api/0/nowhere/")
    after = samples(metered)

    def added(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert added("clientkeys_requests_total", operation=LIST, status="200") == 1
    assert added("clientkeys_requests_total", operation=LIST, status="400") == 1
    assert added("clientkeys_requests_total", operation="(none)", status="404") == 1
    assert added("clientkeys_validation_failures_total", operation=LIST) == 1
    assert added("clientkeys_request_duration_seconds_count", operation=LIST) == 2


def test_metrics_count_database_errors(metered: Any, world: World) -> None:
    before = samples(metered)
    world.store.execute("ALTER TABLE keys RENAME TO keys_elsewhere")
    try:
        assert_error(metered.get(KEYS_URL, headers=world.headers()), 500, "Internal Error")
    finally:
        world.store.execute("ALTER TABLE keys_elsewhere RENAME TO keys")
    after = samples(metered)
    name = "clientkeys_database_errors_total"
    error = "UndefinedTable" if on_postgres(world.store) else "OperationalError"
    assert value(after, name, error=error) - value(before, name, error=error) == 1


def _lock_waits(lock: str) -> float:
    text = metrics.exposition()[0].decode()
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return value(found, "clientkeys_lock_wait_seconds_count", lock=lock)


@pytest.mark.parametrize("lock", ["process", "sqlite"])
def test_metrics_count_waits_for_the_write_lock(tmp_path: Path, lock: str) -> None:
    """`process`: another thread of this worker writes; `sqlite`: another process does (here a
    connection that takes SQLite's lock without the worker's own)."""
    metrics.enable()
    path = tmp_path / "locks.db"
    db.init_db(path)
    backend = db.SqliteBackend(path)  # a worker's: its handler threads write by group commit
    holding, release = threading.Event(), threading.Event()

    def other_writer() -> None:
        if lock == "process":  # another handler thread: its write joins the same writer
            with db.write(backend.connection()):
                holding.set()
                release.wait(5)
        else:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            holding.set()
            release.wait(5)
            conn.execute("COMMIT")
            conn.close()

    before = _lock_waits(lock)
    thread = threading.Thread(target=other_writer)
    thread.start()
    holding.wait(5)
    threading.Timer(0.05, release.set).start()
    with db.write(backend.connection()):  # must wait for the other writer
        pass
    thread.join()
    assert _lock_waits(lock) - before == 1
