"""A document that is not ours (no operationIds, an integer path parameter, an API key in the
query, a documented 400 with an example) and a small upstream that keeps it, or not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BAD_REQUEST = {"code": 400, "message": "That is not a pet request."}


def pets_document(version: str = "3.0.3") -> dict[str, Any]:
    """The document, as OpenAPI `version` (3.0.x or 3.1.x: the same content reads as both)."""
    error = {"$ref": "#/components/schemas/Error"}
    return {
        "openapi": version,
        "info": {"title": "Pets", "version": "1"},
        "paths": {
            "/pets/{petId}": {
                "get": {
                    "parameters": [
                        {"name": "petId", "in": "path", "required": True,
                         "schema": {"type": "integer"}},
                        {"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "X-Trace", "in": "header", "schema": {"type": "integer"}},
                        {"name": "session", "in": "cookie",
                         "schema": {"type": "string", "minLength": 3}},
                    ],
                    "security": [{"key": []}],
                    "responses": {
                        "200": {"description": "A pet.", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Pet"}}}},
                        "400": {"description": "Not a pet request.", "content": {
                            "application/json": {"schema": error, "example": BAD_REQUEST}}},
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}},
            "schemas": {
                "Pet": {"type": "object", "required": ["id", "name"],
                        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}},
                "Error": {"type": "object", "required": ["code", "message"],
                          "properties": {"code": {"type": "integer"},
                                         "message": {"type": "string"}}},
            },
        },
    }  # fmt: skip


def write_pets(folder: Path, version: str = "3.0.3") -> Path:
    path = folder / "pets.json"
    path.write_text(json.dumps(pets_document(version)))
    return path


ANSWERS = {
    "/pets/1": (200, {"id": 1, "name": "Rex"}),
    "/pets/2": (200, {"id": "two", "name": "Rex"}),  # breaks the Pet schema
}


class PetsUpstream(BaseHTTPRequestHandler):
    """Answers /pets/1 as documented, /pets/2 against the schema, anything else 404; each
    request it got is listed in `seen` before it answers."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.seen.append(self.path)
        status, body = ANSWERS.get(self.path.split("?")[0], (404, {"code": 404, "message": "no"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def pets_upstream() -> Iterator[tuple[str, list[str]]]:
    """The upstream's URL and the list of the requests it got."""
    seen: list[str] = []
    handler = type("Handler", (PetsUpstream,), {"seen": seen})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", seen
        finally:
            server.shutdown()
