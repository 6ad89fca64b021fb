"""What `connexion_hooks` relies on in Connexion and a2wsgi: each test fails when an upgrade
changes one of the internals the hooks reach into."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from connexion.security import SecurityHandlerFactory

from clientkeys.config import Settings
from clientkeys.core import domain
from clientkeys.core.errors import BadRequest, NotAuthenticated, NotFound, PermissionDenied
from clientkeys.openapi import specs as openapi
from clientkeys.server import connexion_hooks
from clientkeys.server.app import HANDLERS, create_app
from clientkeys.server.build import Api, build_app
from clientkeys.server.connexion_hooks import HANDLER_THREAD_PREFIX
from clientkeys.server.resolver import OperationIdResolver
from clientkeys.store import repository
from clientkeys.testing.runner import until
from conftest import KEYS_URL, NOT_FOUND, World, assert_error

pytestmark = pytest.mark.sqlite_only  # Connexion's internals: the same whatever the store

THREADS = 3
BURST = 8
"""Concurrent requests: more than the handler threads, so that they queue."""


def test_handlers_run_on_exactly_the_configured_threads(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock, running, finished, peak, names = threading.Lock(), [0], [0], [0], set()
    list_keys = repository.list_keys

    def piled_up() -> bool:
        """Whether the whole burst has reached the handler threads: each request running in
        one or queued for one (the executor's queue, where `connexion_hooks.bridge` put it)."""
        queued = app._middleware_app.asgi_app.executor._work_queue.qsize()
        with lock:
            return running[0] + finished[0] + queued >= BURST

    def slow_list_keys(*args: Any, **kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            names.add(threading.current_thread().name)
        # Each handler holds its thread until the burst has piled up: then a pool of more
        # threads than configured runs more handlers at once, and a smaller pool fewer.
        until(piled_up, 30, "the burst to reach the handler threads")
        with lock:
            running[0] -= 1
            finished[0] += 1
        return list_keys(*args, **kwargs)

    monkeypatch.setattr(repository, "list_keys", slow_list_keys)
    app = create_app(settings.replace(threads=THREADS))

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            calls = [client.get(KEYS_URL, headers=world.headers()) for _ in range(BURST)]
            return list(await asyncio.gather(*calls))

    assert [r.status_code for r in asyncio.run(burst())] == [200] * BURST
    assert peak[0] == THREADS
    assert names and all(name.startswith(HANDLER_THREAD_PREFIX) for name in names)


def test_without_request_validation_an_invalid_body_reaches_the_handler(
    settings: Settings, world: World
) -> None:
    invalid = {"rateLimit": {"count": -1, "window": 60}}  # count has a minimum of 0
    with create_app(settings).test_client() as client:
        assert_error(client.post(KEYS_URL, json=invalid, headers=world.headers()), 400)
    unchecked = settings.replace(validate_requests=False, validate_responses=False)
    with create_app(unchecked).test_client() as client:
        response = client.post(KEYS_URL, json=invalid, headers=world.headers())
        assert response.status_code == 201
        assert response.json()["rateLimit"] == {"count": -1, "window": 60}
        assert_error(client.post(KEYS_URL, json=invalid), 401)  # security stays on


@pytest.mark.parametrize("path", ["/api/0/projects/ac%01me/web/keys/", "/api/0/%7F/"])
def test_a_path_with_control_characters_is_a_404_in_the_error_shape(client: Any, path: str) -> None:
    assert_error(client.get(path), 404, NOT_FOUND)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        ([NotAuthenticated(), PermissionDenied(), BadRequest()], PermissionDenied),
        ([BadRequest(), NotAuthenticated(), NotFound()], NotAuthenticated),
        ([NotFound(), BadRequest()], BadRequest),
    ],
)
def test_the_most_specific_security_error_is_chosen_by_our_status(
    raised: list[Exception], expected: type[Exception]
) -> None:
    with pytest.raises(expected):
        SecurityHandlerFactory._raise_most_specific(raised)


def test_the_noting_parameter_validator_names_each_rejected_parameter_and_its_value(
    settings: Settings,
) -> None:
    noted: list[tuple[str, str, Any, str]] = []
    spec = openapi.load_spec(settings.spec_dir)
    any_token = {"sub": "t", "organization_id": None, "scopes": frozenset(domain.SCOPES),
                 "is_superuser": False}  # fmt: skip
    app = build_app(
        [Api(spec, OperationIdResolver(HANDLERS))],
        security=connexion_hooks.bearer_handler(lambda token, request=None: any_token),
        validate_responses=False,
        max_body_bytes=1024,
        validator_map={
            **connexion_hooks.VALIDATOR_MAP,
            "parameter": connexion_hooks.noting_parameter_validator(
                lambda scope, *found: noted.append(found)
            ),
        },
    )
    headers = {"Authorization": "Bearer anything"}
    with app.test_client() as client:
        assert_error(client.get(KEYS_URL + "?per_page=1000", headers=headers), 400)
        assert_error(client.get(KEYS_URL + "?bogus=1&per_page=5", headers=headers), 400)
        assert_error(client.get(KEYS_URL + "?cursor=x", headers=headers), 400)
    assert [(where, name, value) for where, name, value, _ in noted] == [
        ("query", "per_page", 1000),
        ("query", "bogus", "1"),
        ("query", "cursor", "x"),
    ]
    assert noted[1][3] == "not a parameter of this operation"


def test_a_stored_key_that_breaks_the_contract_is_a_500_and_never_sent(
    api: Any, world: World
) -> None:
    # Response validation is on (as in `clientkeys serve`): a row written behind the API's back
    # with a public key the spec's pattern refuses must not reach a client as a valid answer.
    repository.insert_key(world.store, world.project["id"], domain.new_key(public="Z" * 32))
    body = assert_error(api.list(), 500)
    assert "does not conform" in body["detail"] and "Z" * 32 in body["detail"]


def test_the_bridge_streams_an_answer_of_many_chunks_and_reads_a_large_body(
    settings: Settings,
) -> None:
    """The one-hop bridge holds a one-chunk answer until the app returns; an answer of more
    chunks reaches the server chunk by chunk while the app still runs, and a body larger than
    what the bridge reads ahead reaches the app whole."""
    size = connexion_hooks.PREREAD_BYTES * 3 + 7
    app = create_app(settings.replace(max_body_bytes=size))
    assert isinstance(app._middleware_app.asgi_app, connexion_hooks.OneHopBridge)
    release = threading.Event()

    def stream() -> Any:
        yield b"first,"
        yield b"second,"
        assert release.wait(10), "nothing was sent before the app finished"
        yield b"last"

    def echo() -> Any:
        from flask import request

        return str(len(request.get_data())), 200

    flask_app = app.app
    flask_app.add_url_rule("/stream", "stream", lambda: flask_app.response_class(stream()))
    flask_app.add_url_rule("/echo", "echo", echo, methods=["POST"])

    async def call(method: str, path: str, chunks: list[bytes]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        incoming = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ] or [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                release.set()

        length = str(sum(map(len, chunks))).encode()
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"testserver"), (b"content-length", length)],
            "client": ("127.0.0.1", 1), "server": ("testserver", 80),
        }  # fmt: skip
        await app(scope, receive, send)
        return sent

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (
            await call("POST", "/echo", [b"x" * (size - 7), b"y" * 7]),
            await call("GET", "/stream", []),
        )

    echoed, streamed = asyncio.run(run())
    assert echoed[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in echoed[1:]) == str(size).encode()
    assert streamed[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in streamed[1:]) == b"first,second,last"
    assert not streamed[-1].get("more_body", False)
