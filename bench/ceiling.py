"""The ceiling: a minimal raw ASGI app returning the same Patient bytes, no checks at all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BODY = Path(os.environ.get("OPENSPINE_BENCH_BODY", "/dev/null")).read_bytes()
HEADERS = [
    (b"content-type", b"application/fhir+json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"etag", b'W/"1"'),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
