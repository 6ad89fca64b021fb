"""The one uvicorn runner: a port taken is one line, and `serving` (what the proxy runs on)
serves an app inside the caller's event loop, stops when its block ends, and, stopped by a
signal, lets the caller finish instead of ending the process."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from clientkeys.runtime import runner


def hello() -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"hello"})

    return app


def failing_startup() -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no upstream"})

    return app


def fetch(url: str) -> tuple[int, bytes, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read(), response.headers


def test_a_taken_port_is_one_line_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(runner.RunError) as error:
            runner.listen("127.0.0.1", port)
    assert str(error.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"


def test_serving_answers_in_the_block_and_stops_after_it() -> None:
    sock = runner.listen("127.0.0.1", 0)
    process = runner.Process(port=0, log_level="warning", server_header=False)

    async def scenario() -> tuple[str, int, bytes, Any, bool]:
        async with runner.serving(hello, process, sock) as server:
            status, body, headers = await asyncio.to_thread(fetch, server.url + "/")
            running = not server.stopped.done()
        return server.url, status, body, headers, running and server.stopped.done()

    port = sock.getsockname()[1]
    with sock:
        url, status, body, headers, stopped = asyncio.run(scenario())
    assert url == f"http://127.0.0.1:{port}"
    assert (status, body, stopped) == (200, b"hello", True)
    assert "server" not in headers  # the proxy relays the upstream's own
    with pytest.raises(urllib.error.URLError):
        fetch(url + "/")


def test_an_app_that_fails_to_start_is_a_run_error() -> None:
    sock = runner.listen("127.0.0.1", 0)

    async def scenario() -> None:
        async with runner.serving(failing_startup, runner.Process(log_level="critical"), sock):
            raise AssertionError("the block must not run")

    with sock, pytest.raises(runner.RunError, match="did not start"):
        asyncio.run(scenario())


SIGNALLED = """
import asyncio, sys
from clientkeys.runtime import runner

async def hello(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

async def main() -> None:
    sock = runner.listen("127.0.0.1", 0)
    process = runner.Process(log_level="warning")
    async with runner.serving(lambda: hello, process, sock) as server:
        print(server.url, flush=True)
        await server.stopped
    print("summary printed", flush=True)

asyncio.run(main())
sys.exit(3)
"""


def test_a_signal_stops_serving_and_the_caller_still_finishes() -> None:
    """What the proxy needs: SIGTERM ends the serving, then its summary is printed."""
    process = subprocess.Popen([sys.executable, "-c", SIGNALLED], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # printed once it accepts connections
        assert fetch(url + "/")[1] == b"hello"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert (process.returncode, out) == (3, "summary printed\n"), err
