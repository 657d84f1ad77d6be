"""Hostile input against a live server: each gets a clear 4xx, memory stays bounded, and the
server goes on answering everyone else."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import Live

pytestmark = pytest.mark.e2e

PDS = "/personal-demographics/FHIR/R4"
EPS = "/electronic-prescriptions/FHIR/R4"


def _rss_mib(process_group: int) -> float:
    """Resident memory of every process of the server's process group (granian and workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != process_group:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def _headers(live: Live, role: str = "R8000", **extra: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {live.callers.user(role)}",
        "X-Request-ID": str(uuid.uuid4()),
        **extra,
    }


def _outcome(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text[:300]
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return str(outcome["issue"][0]["details"]["coding"][0]["code"])


def test_oversized_bodies_are_refused_without_being_held(live: Live) -> None:
    assert live.server.proc is not None
    group = live.server.proc.pid
    before = _rss_mib(group)
    big = b"{" + b'"a":"' + b"x" * (8 * 1024 * 1024) + b'"}'
    for _ in range(10):
        response = httpx.patch(
            f"{live.url}{PDS}/Patient/9000000017",
            content=big,
            headers=_headers(
                live, **{"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'}
            ),
            timeout=60,
        )
        assert response.status_code == 413
        live.recorder.saw(response.status_code, response.content)
        response = httpx.post(
            f"{live.url}{EPS}/$process-message", content=big, headers=_headers(live), timeout=60
        )
        assert response.status_code == 413
    grown = _rss_mib(group) - before
    assert grown < 40, f"the server grew by {grown:.0f} MiB on 160 MiB of refused bodies"


def test_deeply_nested_json_is_a_400(live: Live) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for method, path, role, extra in (
        ("PATCH", f"{PDS}/Patient/9000000017", "R8000", {"If-Match": 'W/"1"'}),
        ("POST", f"{PDS}/Patient", "R8000", {}),
        ("POST", f"{EPS}/$process-message", "R8000", {}),
        ("POST", f"{EPS}/Task/$release", "R8003", {}),
    ):
        response = httpx.request(
            method,
            f"{live.url}{path}",
            content=deep,
            headers=_headers(live, role, **{"Content-Type": "application/json", **extra}),
        )
        live.recorder.saw(response.status_code, response.content)
        assert response.status_code == 400, f"{method} {path}: {response.text[:200]}"
        assert response.json()["resourceType"] == "OperationOutcome"


def test_invalid_utf8_is_a_400(live: Live) -> None:
    body = b'{"patches": [{"op": "replace", "path": "/gender", "value": "\xff\xfe"}]}'
    response = httpx.patch(
        f"{live.url}{PDS}/Patient/9000000017",
        content=body,
        headers=_headers(
            live, **{"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'}
        ),
    )
    _outcome(response, 400)
    response = httpx.post(
        f"{live.url}{EPS}/$prepare", content=b"\xc3\x28" * 100, headers=_headers(live)
    )
    _outcome(response, 400)


def test_huge_query_strings_are_refused(live: Live) -> None:
    for size in (10_000, 60_000):
        response = httpx.get(
            f"{live.url}{PDS}/Patient?family={'a' * size}&birthdate=eq2010-10-22",
            headers=_headers(live),
        )
        live.recorder.saw(response.status_code, response.content)
        assert 400 <= response.status_code < 500
        if response.content:
            assert json.loads(response.content)["resourceType"] == "OperationOutcome"


def test_slow_clients_do_not_starve_the_others(live: Live) -> None:
    """Fifty clients that trickle half a request and stall; a normal client is still served."""
    host, port = "127.0.0.1", live.server.port
    stalled = []
    try:
        for _ in range(50):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"PATCH /personal-demographics/FHIR/R4/Patient/9000000017 HTTP/1.1\r\n")
            sock.sendall(b"Host: x\r\nContent-Length: 1000000\r\n\r\n{")
            stalled.append(sock)
        started = time.monotonic()
        response = httpx.get(
            f"{live.url}{PDS}/Patient/9000000017", headers=_headers(live), timeout=10
        )
        assert response.status_code == 200
        assert time.monotonic() - started < 2.0
    finally:
        for sock in stalled:
            sock.close()
