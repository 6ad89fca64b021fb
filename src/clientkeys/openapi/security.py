"""Security requirements as a mock checks them: is the credential the operation asks for there?

Every scheme OpenAPI defines is checked for presence, as Prism does: HTTP bearer and basic
(and any other HTTP scheme) in `Authorization`, apiKey in its header, query parameter or
cookie, OAuth2 and OpenID Connect as a bearer token. With a token list (`--token`), bearer
credentials must be one of the listed tokens, and a requirement's scopes must all be held.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Tokens = Mapping[str, frozenset[str]] | None


@dataclass(frozen=True)
class Denied:
    """Why a request is refused: 401 (no usable credential) or 403 (a missing scope)."""

    status: int
    detail: str
    challenge: str | None = None  # the WWW-Authenticate value


@dataclass(frozen=True)
class Credentials:
    """Where a request's credentials can be."""

    headers: Mapping[str, str]  # lowercase names
    query: Mapping[str, list[str]]
    cookies: Mapping[str, str]


def _challenge(scheme: Mapping[str, Any]) -> str | None:
    kind = scheme.get("type")
    if kind == "http":
        name = str(scheme.get("scheme", "bearer")).capitalize()
        return f'{name} realm="mock"' if name == "Basic" else name
    if kind in ("oauth2", "openIdConnect"):
        return "Bearer"
    return None


def _bearer(header: str) -> str | None:
    kind, _, token = header.partition(" ")
    return token.strip() or None if kind.lower() == "bearer" else None


def _one(
    scheme: Mapping[str, Any], scopes: list[str], found: Credentials, tokens: Tokens
) -> Denied | None:
    """None if the credential of one scheme is there (and, with a token list, is known)."""
    kind = scheme.get("type")
    http = str(scheme.get("scheme", "")).lower() if kind == "http" else None
    authorization = found.headers.get("authorization", "")
    if kind == "apiKey":
        name, where = str(scheme.get("name", "")), scheme.get("in")
        present = _api_key(found, name, str(where))
        return None if present else Denied(401, f"API key {name!r} ({where}) is required.")
    if http == "basic":
        return _basic(authorization, scheme)
    if kind in ("oauth2", "openIdConnect") or http == "bearer":
        return _bearer_token(authorization, scheme, scopes, tokens)
    if http is not None and authorization.split(" ")[0].lower() != http:
        return Denied(401, f"{http.capitalize()} credentials are required.", _challenge(scheme))
    return None  # mutualTLS and unknown types: nothing a mock can check


def _basic(authorization: str, scheme: Mapping[str, Any]) -> Denied | None:
    if authorization[:6].lower() != "basic ":
        return Denied(401, "Basic credentials are required.", _challenge(scheme))
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if ":" not in decoded:
        return Denied(401, "Malformed Basic credentials.", _challenge(scheme))
    return None


def _bearer_token(
    authorization: str, scheme: Mapping[str, Any], scopes: list[str], tokens: Tokens
) -> Denied | None:
    token = _bearer(authorization)
    if token is None:
        return Denied(401, "A bearer token is required.", _challenge(scheme))
    if tokens is None:
        return None
    held = tokens.get(token)
    if held is None:
        return Denied(401, "Invalid token.", _challenge(scheme))
    return None if set(scopes) <= held else Denied(403, "The token lacks a required scope.")


def _api_key(found: Credentials, name: str, where: str) -> str | None:
    if where == "header":
        return found.headers.get(name.lower())
    if where == "query":
        return (found.query.get(name) or [""])[-1]
    if where == "cookie":
        return found.cookies.get(name)
    return None


def check(
    requirements: list[dict[str, list[str]]],
    schemes: Mapping[str, Mapping[str, Any]],
    found: Credentials,
    tokens: Tokens,
) -> Denied | None:
    """None when any alternative of the requirements is met; else the first alternative's
    refusal (a 403 wins over a 401: the credential was there)."""
    if not requirements:
        return None
    refusals = []
    for alternative in requirements:
        denied = next(
            (d for name, scopes in alternative.items()
             if (d := _one(schemes.get(name, {}), list(scopes or []), found, tokens)) is not None),
            None,
        )  # fmt: skip
        if denied is None:
            return None
        refusals.append(denied)
    return next((d for d in refusals if d.status == 403), refusals[0])
