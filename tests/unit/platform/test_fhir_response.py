"""FhirResponse builds the same headers Starlette's Response would, without its general path."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from openspine.platform.http import FHIR_JSON, FhirResponse


@pytest.mark.parametrize(
    ("body", "status", "headers"),
    [
        (b'{"resourceType":"Patient"}', 200, None),
        (b"{}", 201, {"Location": "/Patient/9000000009", "ETag": 'W/"2"'}),
        (b"{}", 503, {"Retry-After": "5"}),
        (b"", 204, None),
        (b"{}", 200, {"Content-Type": "application/json"}),
        (b"{}", 200, {"content-length": "2"}),
    ],
)
def test_headers_match_starlettes(body: bytes, status: int, headers: dict[str, str] | None) -> None:
    ours = FhirResponse(body, status, headers)
    theirs = Response(body, status_code=status, headers=headers, media_type=FHIR_JSON)
    assert sorted(ours.raw_headers) == sorted(theirs.raw_headers)
    assert ours.body == theirs.body
    assert ours.status_code == status
    assert ours.background is None
