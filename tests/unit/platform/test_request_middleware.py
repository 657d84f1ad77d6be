"""The outermost request layer: the application-wide cap on request bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from openspine.platform.middleware import RequestMiddleware
from openspine.platform.observability import Metrics

pytestmark = pytest.mark.anyio
CAP = 1000


def layered(seen: list[int]) -> RequestMiddleware:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        size = 0
        more = True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        seen.append(size)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return RequestMiddleware(app, metrics=Metrics(), request_id_required=(), max_body_bytes=CAP)


async def body(size: int, piece: int = 100) -> AsyncIterator[bytes]:
    """A body without a declared length: httpx sends it chunked."""
    for start in range(0, size, piece):
        yield b"x" * min(piece, size - start)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_the_cap_is_a_413_operation_outcome(declared: bool) -> None:
    seen: list[int] = []
    transport = httpx.ASGITransport(app=layered(seen))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        content: bytes | AsyncIterator[bytes] = b"x" * (CAP + 1) if declared else body(CAP + 1)
        response = await client.post("/anything", content=content)
        assert response.status_code == 413
        outcome = json.loads(response.content)
        assert outcome["resourceType"] == "OperationOutcome"
        # Declared: refused before the application ran. Chunked: stopped while reading.
        assert seen == []
        at_cap: bytes | AsyncIterator[bytes] = b"x" * CAP if declared else body(CAP)
        response = await client.post("/anything", content=at_cap)
        assert response.status_code == 200
        assert seen == [CAP]
