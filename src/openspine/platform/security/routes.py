"""The OAuth2 endpoints: ``POST /oauth2/token`` and the platform's public keys."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from openspine.platform.errors import InvalidRequest
from openspine.platform.http import audit_context, read_body
from openspine.platform.routing import SpineRoute
from openspine.platform.security.tokens import TokenIssuer

__all__ = ["routes"]

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 16 * 1024


def routes(issuer: TokenIssuer, jwks: dict[str, Any]) -> list[BaseRoute]:
    jwks_body = orjson.dumps(jwks)

    async def token(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != FORM:
            raise InvalidRequest(f"Content-Type must be {FORM}")
        body = await read_body(request, MAX_FORM_BYTES)
        try:
            form = dict(parse_qsl(body.decode("utf-8"), strict_parsing=bool(body)))
        except (UnicodeDecodeError, ValueError):
            raise InvalidRequest("request body is not a valid form") from None
        issued = await issuer.issue(form, audit_context(request))
        return Response(
            orjson.dumps(issued.as_response()),
            media_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def keys(request: Request) -> Response:
        return Response(jwks_body, media_type="application/json")

    return [
        SpineRoute("/oauth2/token", token, methods=["POST"]),
        SpineRoute("/oauth2/jwks", keys, methods=["GET"]),
    ]
