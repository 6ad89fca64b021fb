"""Every place clientkeys leans on Connexion's (and a2wsgi's) internals, and nowhere else.

Tested with connexion 3.3 (pyproject caps it below 3.4). Each hook says what it relies on;
`tests/test_connexion_hooks.py` fails when an upgrade changes any of it. The logic behind the
hooks (Sentry's messages and checks) lives in `validation` and `auth`; these classes only plug
it in.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import Body, WSGIResponder, build_environ
from connexion import FlaskApp
from connexion.datastructures import MediaTypeDict
from connexion.middleware import ConnexionMiddleware
from connexion.middleware.request_validation import RequestValidationMiddleware
from connexion.security import BearerSecurityHandler
from connexion.validators import (
    JSONRequestBodyValidator,
    JSONResponseBodyValidator,
    TextResponseBodyValidator,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from clientkeys.runtime import exchange
from clientkeys.server import auth, validation

HANDLER_THREAD_PREFIX = "clientkeys-handler"


# Handler threads ------------------------------------------------------------------------------


def bridge(app: FlaskApp, threads: int | None) -> None:
    """Run the Flask handlers through `OneHopBridge` on `threads` threads (None: a2wsgi's 10).

    Relies on: FlaskApp keeping its ASGI-to-WSGI bridge at `app._middleware_app.asgi_app`, an
    a2wsgi `WSGIMiddleware` with the Flask app in `app` (where `add_wsgi_middleware` wraps it)
    and the executor every request goes to in `executor`. Connexion does not expose the pool
    size. Measured in bench/: 2 threads per worker give higher throughput and a p99 half that
    of 10 (the handlers are CPU-bound).
    """
    old = app._middleware_app.asgi_app
    if type(old) is not WSGIMiddleware:
        raise TypeError(f"unexpected Flask bridge {type(old).__name__}")
    new = OneHopBridge(old.app, send_queue_size=old.send_queue_size)
    if threads is not None:
        new.executor.shutdown(wait=False)
        new.executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=HANDLER_THREAD_PREFIX
        )
    old.executor.shutdown(wait=False)
    app._middleware_app.asgi_app = new


class OneHopBridge(WSGIMiddleware):
    """a2wsgi's bridge, answering in one hop: the handler thread hands the event loop the whole
    answer when the app returns, instead of waiting on the loop for its start, its body and its
    end (three round trips between the thread and the loop per request), and a request body of
    up to `PREREAD_BYTES` is read on the loop before the thread starts (one more). An answer of
    more than one chunk streams, each message sent before the app goes on, as a2wsgi does.

    Relies on: a2wsgi's `WSGIResponder` calling `send(message)` on the handler thread for every
    ASGI message of the answer, `start_response` storing `exc_info`, `wsgi(environ,
    start_response)` running the app; its `Body` reading through `_receive_more_data()` into
    `buffer` while `_has_more`; `build_environ(scope, body)`.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        responder = _OneHopResponder(self.app, self.executor, self.send_queue_size)
        return await responder.answer(scope, receive, send)


PREREAD_BYTES = 64 * 1024
HELD_MESSAGES = 3
"""The answer's start, one chunk of body and the end are held; a second chunk streams."""


class _OneHopResponder(WSGIResponder):
    held: list[dict[str, Any]] | None
    asgi_send: Any  # a2wsgi's types for ASGI, not Starlette's

    async def answer(self, scope: Any, receive: Any, send: Any) -> None:
        self.held, self.asgi_send = [], send
        body = Body(self.loop, receive)
        headers = dict(scope["headers"])
        if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
            while body._has_more and len(body.buffer) < PREREAD_BYTES:
                message = await receive()
                body.buffer.extend(message.get("body", b""))
                body._has_more = message.get("more_body", False)
        environ = build_environ(scope, body)
        context = contextvars.copy_context()
        await self.loop.run_in_executor(
            self.executor, context.run, self.wsgi, environ, self.start_response
        )
        if self.held:
            start, *rest = self.held
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(m["body"] for m in rest)})
        if self.exc_info is not None:
            raise self.exc_info[0].with_traceback(self.exc_info[1], self.exc_info[2])

    def send(self, message: Any) -> None:
        """On the handler thread: hold the message, or (streaming) send it and wait."""
        if self.held is not None:
            self.held.append(message)
            if len(self.held) <= HELD_MESSAGES:
                return
            messages, self.held = self.held, None
        else:
            messages = [message]
        for each in messages:
            asyncio.run_coroutine_threadsafe(self.asgi_send(each), self.loop).result()


# Middleware stack -------------------------------------------------------------------------------


def middlewares(validate_requests: bool) -> list[Any]:
    """Connexion's middleware stack, without request validation when that is turned off.

    Relies on: `ConnexionMiddleware.default_middlewares` being the stack Connexion builds, with
    request validation as the one `RequestValidationMiddleware` in it (security stays on).
    """
    defaults = list(ConnexionMiddleware.default_middlewares)
    if RequestValidationMiddleware not in defaults:
        raise TypeError("Connexion's default middlewares no longer validate requests")
    if validate_requests:
        return defaults
    return [m for m in defaults if m is not RequestValidationMiddleware]


# Routing ----------------------------------------------------------------------------------------


class OperationMarker:
    """Tells the request's `Exchange` the operationId it was routed to (for logs and metrics).
    Added at `MiddlewarePosition.BEFORE_SECURITY`, right after routing.

    Relies on: Connexion's `RoutingMiddleware` recording the matched operation in
    `scope["extensions"]["connexion_routing"]["operation_id"]` before calling the next layer,
    as the name its resolver gave it (None when no route matched); `operation_ids` maps those
    names back to the spec's operationIds.
    """

    def __init__(self, app: ASGIApp, operation_ids: Mapping[str, str]) -> None:
        self.app = app
        self.operation_ids = operation_ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        this = exchange.of(scope)
        if this is not None:
            resolved = scope.get("extensions", {}).get("connexion_routing", {}).get("operation_id")
            this.operation_id = self.operation_ids.get(resolved, resolved)
        await self.app(scope, receive, send)


# Security ---------------------------------------------------------------------------------------
#
# Relied on without code: `SecurityHandlerFactory.verify_security` collects the error of every
# security alternative of an operation that fails and re-raises one through
# `_raise_most_specific`, which ranks them by `status_code`, or else `status`: 403, then 401,
# then the lowest. Our errors carry `status` (errors.py), so the most specific one wins.


def bearer_handler(info_func: auth.InfoFunc | None = None) -> type[BearerSecurityHandler]:
    """Connexion's bearer scheme with Sentry's checks (`auth.verifier`) over the spec's
    `x-bearerInfoFunc`, or over `info_func` when given (the proxy's any-token lookup).

    Relies on: Connexion's security middleware calling `get_fn(security_scheme,
    required_scopes)` once per security requirement of an operation, and awaiting the
    coroutine the returned function gives; `_resolve_func(security_scheme)` resolving the
    scheme's `x-bearerInfoFunc` (or `BEARERINFO_FUNC`) to a function.
    """

    class SentryBearerHandler(BearerSecurityHandler):  # type: ignore[misc]
        def get_fn(
            self, security_scheme: dict[str, Any], required_scopes: list[str] | None
        ) -> Callable[[Any], Any]:
            lookup = info_func or self._resolve_func(security_scheme)
            return auth.verifier(lookup, required_scopes or ())

    return SentryBearerHandler


# Validators -------------------------------------------------------------------------------------


class SentryJSONBodyValidator(JSONRequestBodyValidator):  # type: ignore[misc]
    """Request bodies: `validation.parse_body` and `validation.check_body`.

    Relies on: `AbstractRequestBodyValidator.wrap_receive` awaiting `_parse(stream, scope=...)`
    with the body's chunks and then calling `_validate(body)` (unless the body is None and
    nullable), with the operation's body schema in `self._schema`.
    """

    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        return validation.parse_body(raw, scope["headers"])

    def _validate(self, body: Any) -> None:
        validation.check_body(self._schema, body)


class CompiledJSONResponseBodyValidator(JSONResponseBodyValidator):  # type: ignore[misc]
    """Responses: orjson and the compiled validator; a body it rejects goes to Connexion's own
    validator, which raises its usual error.

    Relies on: `AbstractResponseBodyValidator.wrap_send` calling `_parse(chunks)` and then
    `_validate(body)`, with the ASGI scope in `self._scope` and the schema in `self._schema`.
    """

    def _parse(self, stream: Iterator[bytes]) -> Any:
        return validation.parse_response(b"".join(stream))

    def _validate(self, body: Any) -> None:
        if validation.response_needs_python_check(self._scope.get("method"), self._schema, body):
            super()._validate(body)


ParameterNote = Callable[[Scope, str, str, Any, str], None]
"""`note(scope, location, name, value, message)`: a parameter the validator rejected."""


def noting_parameter_validator(note: ParameterNote) -> type[validation.SentryParameterValidator]:
    """The server's parameter validator (`validation.SentryParameterValidator`), also calling
    `note` for each parameter it rejects, with the value it saw (the proxy's violation records).

    Relies on: `ParameterValidator.validate_request` calling, on the validator itself,
    `validate_query_parameter_list(request, security_params)` (the unknown query parameter
    names) under strict validation, then `validate_{query,path,header,cookie}_parameter(param,
    request)` for each parameter of the operation, each returning an error message or None;
    `request.query_params` holding lists (Connexion's URI parser), `request.path_params` the
    path's values.
    """

    def noted(error: Any, request: Any, location: str, name: str, value: Any) -> Any:
        if error:
            if isinstance(value, list) and len(value) == 1:  # Connexion parses queries to lists
                value = value[0]
            note(request.scope, location, name, value, str(error).split("\n")[0])
        return error

    class NotingParameterValidator(validation.SentryParameterValidator):
        def validate_query_parameter_list(self, request: Any, security_params: Any = None) -> Any:
            extra = super().validate_query_parameter_list(request, security_params)
            for name in sorted(extra):
                value = request.query_params.get(name)
                noted("not a parameter of this operation", request, "query", name, value)
            return extra

        def validate_query_parameter(self, param: dict[str, Any], request: Any) -> Any:
            error = super().validate_query_parameter(param, request)
            name = param["name"]
            return noted(error, request, "query", name, request.query_params.get(name))

        def validate_path_parameter(self, param: dict[str, Any], request: Any) -> Any:
            error = super().validate_path_parameter(param, request)
            name = param["name"]
            return noted(
                error, request, "path", name, request.path_params.get(name.replace("-", "_"))
            )

        def validate_header_parameter(self, param: dict[str, Any], request: Any) -> Any:
            error = super().validate_header_parameter(param, request)
            name = param["name"]
            return noted(error, request, "header", name, request.headers.get(name))

        def validate_cookie_parameter(self, param: dict[str, Any], request: Any) -> Any:
            error = super().validate_cookie_parameter(param, request)
            name = param["name"]
            return noted(error, request, "cookie", name, request.cookies.get(name))

    return NotingParameterValidator


VALIDATOR_MAP = {
    "parameter": validation.SentryParameterValidator,
    "body": MediaTypeDict({"*/*json": SentryJSONBodyValidator}),
    "response": MediaTypeDict(
        {"*/*json": CompiledJSONResponseBodyValidator, "text/plain": TextResponseBodyValidator}
    ),
}
"""Connexion's `validator_map` for every app this package builds."""
