"""MESH through the ASGI app: authentication, sending in chunks, downloading, expiry, purge."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from mesh_client import AuthTokenGenerator

from openspine.app import create_app
from openspine.mesh.blobs import pack_of
from openspine.mesh.domain import MESSAGE
from openspine.mesh.service import MeshNotFound, MeshService
from openspine.platform.audit.events import AuditContext
from openspine.settings import Secret, Settings
from tests.conftest import BASE_URL

pytestmark = pytest.mark.anyio
KEY = b"TestKey"
V2 = "application/vnd.mesh.v2+json"


def auth(mailbox: str, password: str = "password", key: bytes = KEY) -> dict[str, str]:
    return {"Authorization": AuthTokenGenerator(key, mailbox, password).generate_token()}


@pytest.fixture(params=[True, False], ids=["sandbox", "strict"])
async def mesh(
    demo_settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[httpx.AsyncClient, MeshService]]:
    settings = dataclasses.replace(
        demo_settings, mesh_sandbox=True, mesh_shared_key=Secret(KEY.decode())
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        service = app.state.platform.mesh
        assert service is not None
        # Strict mode: the same mailboxes, but only registered workflows may be used.
        service.settings = dataclasses.replace(service.settings, sandbox=request.param)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield http, service


async def send(
    http: httpx.AsyncClient,
    body: bytes,
    *,
    sender: str = "ALICE",
    to: str = "BOB",
    workflow: str = "RESTRICTED_WORKFLOW",
    **headers: str,
) -> httpx.Response:
    return await http.post(
        f"/messageexchange/{sender}/outbox",
        content=body,
        headers={"mex-To": to, "mex-WorkflowID": workflow, "Accept": V2, **auth(sender), **headers},
    )


async def test_authentication(mesh: tuple[httpx.AsyncClient, MeshService]) -> None:
    http, _ = mesh
    assert (await http.post("/messageexchange/ALICE", headers=auth("ALICE"))).status_code == 200
    for headers in (
        auth("ALICE", password="wrong"),
        auth("ALICE", key=b"OtherKey"),
        auth("BOB"),  # a valid token for another mailbox than the path's
        auth("NOBODY"),
        {"Authorization": "Bearer x"},
        {},
    ):
        response = await http.post("/messageexchange/ALICE", headers=headers)
        assert response.status_code == 403, headers
    # Expired: a token made three hours ago.
    stale = AuthTokenGenerator(KEY, "ALICE", "password")
    old = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y%m%d%H%M")
    token = stale.generate_token()
    parts = token.split(":")
    import hmac
    from hashlib import sha256

    mailbox = parts[0].removeprefix("NHSMESH ")
    message = f"{mailbox}:{parts[1]}:{parts[2]}:password:{old}"
    digest = hmac.new(KEY, message.encode(), sha256).hexdigest()
    expired = f"NHSMESH {mailbox}:{parts[1]}:{parts[2]}:{old}:{digest}"
    response = await http.post("/messageexchange/ALICE", headers={"Authorization": expired})
    assert response.status_code == 403
    # Replayed: the same token twice.
    once = auth("ALICE")
    assert (await http.post("/messageexchange/ALICE", headers=once)).status_code == 200
    assert (await http.post("/messageexchange/ALICE", headers=once)).status_code == 403


async def test_send_errors(mesh: tuple[httpx.AsyncClient, MeshService]) -> None:
    http, service = mesh
    unknown = await send(http, b"x", to="NOBODY")
    assert unknown.status_code == 417
    assert unknown.json()["detail"][0]["code"] == "12"
    v1 = await http.post(
        "/messageexchange/ALICE/outbox",
        content=b"x",
        headers={"mex-To": "NOBODY", "mex-WorkflowID": "RESTRICTED_WORKFLOW", **auth("ALICE")},
    )
    assert v1.json()["errorCode"] == "12"
    assert (await send(http, b"x", to="")).status_code == 400
    assert (await send(http, b"")).status_code == 417
    wrong_way = await send(http, b"x", sender="BOB", to="ALICE")
    assert wrong_way.status_code == 403
    assert wrong_way.json()["detail"][0]["code"] == "17"
    unregistered = await send(http, b"x", workflow="NOT_A_WORKFLOW")
    assert unregistered.status_code == (202 if service.settings.sandbox else 403)


async def test_chunked_gzip_round_trip(mesh: tuple[httpx.AsyncClient, MeshService]) -> None:
    http, _ = mesh
    parts = [b"A" * 1000, b"B" * 1000, b"C" * 10]
    first = await send(
        http,
        gzip.compress(parts[0]),
        **{"mex-Chunk-Range": "1:3", "Content-Encoding": "gzip", "mex-LocalID": "local-1"},
    )
    assert first.status_code == 202, first.text
    message_id = first.json()["message_id"]
    assert len(message_id) == 24
    assert message_id[17] == "_"
    inbox = await http.get("/messageexchange/BOB/inbox", headers={"Accept": V2, **auth("BOB")})
    assert message_id not in inbox.json()["messages"]  # not until every chunk is in
    for number, part in enumerate(parts[1:], start=2):
        chunk = await http.post(
            f"/messageexchange/ALICE/outbox/{message_id}/{number}",
            content=gzip.compress(part),
            headers={"mex-Chunk-Range": f"{number}:3", "Content-Encoding": "gzip", **auth("ALICE")},
        )
        assert chunk.status_code == 202, chunk.text
    late = await http.post(
        f"/messageexchange/ALICE/outbox/{message_id}/3",
        content=gzip.compress(b"again"),
        headers={"mex-Chunk-Range": "3:3", "Content-Encoding": "gzip", **auth("ALICE")},
    )
    assert late.status_code == 423
    inbox = await http.get("/messageexchange/BOB/inbox", headers={"Accept": V2, **auth("BOB")})
    assert message_id in inbox.json()["messages"]
    got = b""
    for number in (1, 2, 3):
        path = f"/messageexchange/BOB/inbox/{message_id}" + (f"/{number}" if number > 1 else "")
        response = await http.get(path, headers={"Accept-Encoding": "identity", **auth("BOB")})
        assert response.status_code == (206 if number < 3 else 200)
        assert response.headers["mex-chunk-range"] == f"{number}:3"
        assert response.headers["mex-from"] == "ALICE"
        got += response.content
    assert got == b"".join(parts)
    head = await http.head(f"/messageexchange/BOB/inbox/{message_id}", headers=auth("BOB"))
    assert head.status_code == 206
    assert (
        await http.get(f"/messageexchange/ALICE/inbox/{message_id}", headers=auth("ALICE"))
    ).status_code == 404
    tracked = await http.get(
        f"/messageexchange/ALICE/outbox/tracking?messageID={message_id}",
        headers={"Accept": V2, **auth("ALICE")},
    )
    assert tracked.json()["status"] == "accepted"
    assert tracked.json()["chunk_count"] == 3
    ack = await http.put(
        f"/messageexchange/BOB/inbox/{message_id}/status/acknowledged", headers=auth("BOB")
    )
    assert ack.status_code == 200
    gone = await http.get(f"/messageexchange/BOB/inbox/{message_id}", headers=auth("BOB"))
    assert gone.status_code == 410


async def test_inbox_pages(mesh: tuple[httpx.AsyncClient, MeshService]) -> None:
    http, _ = mesh
    await http.delete("/admin/reset")
    sent = [(await send(http, b"page")).json()["message_id"] for _ in range(12)]
    first = await http.get(
        "/messageexchange/BOB/inbox?max_results=10", headers={"Accept": V2, **auth("BOB")}
    )
    body = first.json()
    if body["approx_inbox_count"] != 12:  # strict mode: no reset, earlier messages remain
        return
    assert body["messages"] == sent[:10]
    rest = await http.get(body["links"]["next"], headers={"Accept": V2, **auth("BOB")})
    assert rest.json()["messages"] == sent[10:]
    assert "next" not in rest.json()["links"]
    v1 = await http.get("/messageexchange/BOB/inbox", headers=auth("BOB"))
    assert v1.json() == {"messages": sent}
    low = await http.get("/messageexchange/BOB/inbox?max_results=2", headers=auth("BOB"))
    assert low.status_code == 400


async def test_expiry_report_then_purge(
    mesh: tuple[httpx.AsyncClient, MeshService], demo_settings: Settings
) -> None:
    http, service = mesh
    message_id = (await send(http, b"never collected", **{"mex-LocalID": "x1"})).json()[
        "message_id"
    ]
    pack = await pack_of_message(service, message_id)
    assert message_id in await naming(service, pack)
    real = service.clock
    try:
        service.clock = lambda: real() + timedelta(days=6)
        await service.expire_and_purge(service_context())
        service.clock = real  # tokens are checked against the clock: back to now for requests
        tracked = await http.get(
            f"/messageexchange/ALICE/outbox/tracking?messageID={message_id}",
            headers={"Accept": V2, **auth("ALICE")},
        )
        assert tracked.json()["status"] == "undeliverable"
        assert tracked.json()["status_code"] == "14"
        inbox = await http.get(
            "/messageexchange/ALICE/inbox?max_results=5000", headers={"Accept": V2, **auth("ALICE")}
        )
        reports = []
        for report_id in inbox.json()["messages"]:
            head = await http.head(
                f"/messageexchange/ALICE/inbox/{report_id}", headers=auth("ALICE")
            )
            if head.headers.get("mex-linkedmsgid") == message_id:
                reports.append(head)
        assert len(reports) == 1
        assert reports[0].headers["mex-messagetype"] == "REPORT"
        assert reports[0].headers["mex-statuscode"] == "14"
        # Running the job again reports nothing twice.
        service.clock = lambda: real() + timedelta(days=6)
        assert (await service.expire_and_purge(service_context()))[0] == 0
        service.clock = lambda: real() + timedelta(days=40)
        blobs = demo_settings.blob_dir
        assert blobs is not None
        for path in blobs.rglob("*"):
            if path.is_file():
                os.utime(path, (time.time() - 7200, time.time() - 7200))
        await service.expire_and_purge(service_context())
        service.clock = real
        purged = await http.get(
            f"/messageexchange/ALICE/outbox/tracking?messageID={message_id}",
            headers={"Accept": V2, **auth("ALICE")},
        )
        assert purged.status_code == 404
        # Its pack holds other messages' bodies: the purge lets go of it, the sweep deletes it
        # once no message names it (test_the_sweep_deletes_only_old_blobs_that_no_message_names).
        assert message_id not in await naming(service, pack)
    finally:
        service.clock = real


async def pack_of_message(service: MeshService, message_id: str) -> str:
    found = await service._get(message_id)
    assert found is not None
    reference = found[0].chunks[0]
    assert reference is not None
    pack = pack_of(reference)
    assert pack is not None, "a small body is appended to a pack"
    return pack


async def naming(service: MeshService, pack: str) -> set[str]:
    """The messages whose records name ``pack``."""
    rows = await service._store.scan_index(MESSAGE, "mbpack", f"{pack}|", f"{pack}|~", 10_000)
    return {message_id for message_id, _ in rows}


def service_context() -> AuditContext:
    return AuditContext(None, None)


async def test_lookup_and_workflow_search(mesh: tuple[httpx.AsyncClient, MeshService]) -> None:
    http, _ = mesh
    found = await http.get(
        "/messageexchange/endpointlookup/X26/RESTRICTED_WORKFLOW", headers={"Accept": V2}
    )
    assert found.json()["results"] == [{"mailbox_id": "BOB", "mailbox_name": "TESTMB2"}]
    search = await http.get(
        "/messageexchange/workflowsearch/ANOTHER_WORKFLOW", headers={"Accept": V2}
    )
    assert {(r["mailbox_id"], r["direction"]) for r in search.json()["results"]} == {
        ("BOB", "SENDER"),
        ("BARRY", "RECEIVER"),
        ("ALICE", "RECEIVER"),
    }


def test_passwords_are_never_stored_in_clear(demo_settings: Settings) -> None:
    path = demo_settings.store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT body FROM resources WHERE resource_type = 'directory.MeshMailbox'"
        ).fetchall()
    conn.close()
    if not rows:
        pytest.skip("no mailboxes registered yet in this session's store")
    assert all(b'"password"' not in r[0] for r in rows)  # the sandbox password is "password"


async def test_demo_population_mailboxes_and_workflows(
    demo_settings: Settings, demo_dir: Path
) -> None:
    """Practice → pharmacy on PHARM_REFERRAL with the demo's own shared key and passwords."""
    passwords = json.loads((demo_dir / "keys" / "mesh-passwords.json").read_text())
    key = (demo_dir / "keys" / "mesh-shared-key").read_text().strip().encode()
    practice = next(m for m in passwords if m[0].isalpha() and m[1:6].isdigit())  # A81001OT001
    pharmacy = next(m for m in passwords if m.startswith("F") and m[1].isalpha())  # FA100OT001
    app = create_app(demo_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            sent = await http.post(
                f"/messageexchange/{practice}/outbox",
                content=b"referral",
                headers={
                    "mex-To": pharmacy,
                    "mex-WorkflowID": "PHARM_REFERRAL",
                    "Accept": V2,
                    **auth(practice, passwords[practice], key),
                },
            )
            assert sent.status_code == 202, sent.text
            backwards = await http.post(
                f"/messageexchange/{pharmacy}/outbox",
                content=b"referral",
                headers={
                    "mex-To": practice,
                    "mex-WorkflowID": "PHARM_REFERRAL",
                    "Accept": V2,
                    **auth(pharmacy, passwords[pharmacy], key),
                },
            )
            assert backwards.status_code == 403
            # The sandbox's well-known key is not this environment's key.
            wrong_key = await http.post(
                f"/messageexchange/{practice}", headers=auth(practice, passwords[practice], KEY)
            )
            assert wrong_key.status_code == 403


async def test_a_replayed_send_is_refused_and_sends_nothing(
    mesh: tuple[httpx.AsyncClient, MeshService],
) -> None:
    http, _ = mesh
    token = auth("ALICE")
    sent_headers = {"mex-To": "BOB", "mex-WorkflowID": "RESTRICTED_WORKFLOW", "Accept": V2, **token}
    first = await http.post("/messageexchange/ALICE/outbox", content=b"once", headers=sent_headers)
    assert first.status_code == 202
    again = await http.post("/messageexchange/ALICE/outbox", content=b"once", headers=sent_headers)
    assert again.status_code == 403
    # A token used by a failed request is used too.
    failing = {**sent_headers, **auth("ALICE"), "mex-To": "NOBODY"}
    assert (
        await http.post("/messageexchange/ALICE/outbox", content=b"x", headers=failing)
    ).status_code == 417
    retry = {**failing, "mex-To": "BOB"}
    assert (
        await http.post("/messageexchange/ALICE/outbox", content=b"x", headers=retry)
    ).status_code == 403


async def test_the_sweep_deletes_only_old_blobs_that_no_message_names(
    mesh: tuple[httpx.AsyncClient, MeshService], demo_settings: Settings
) -> None:
    http, service = mesh
    blobs = demo_settings.blob_dir
    assert blobs is not None
    service.close()  # earlier tests' pack is no longer appended to: it may go if unnamed
    kept_id = (await send(http, b"a message still in the inbox")).json()["message_id"]
    kept_pack = blobs / "packs" / await pack_of_message(service, kept_id)
    service.close()  # nor is the kept message's pack
    # What a crash leaves: a body whose record never committed (in a file of its own, or
    # appended to a pack), and a streamed upload's temporary file. Old ones go; a young one (an
    # upload may be about to name it) stays.
    orphans = {}
    for name, age in (("old orphan", 7200), ("young orphan", 60)):
        digest = hashlib.sha256(name.encode()).hexdigest()
        path = blobs / digest[:2] / digest[2:4] / digest
        path.parent.mkdir(parents=True, exist_ok=True)
        pack = blobs / "packs" / f"2026010100-{digest[:16]}"
        for orphan in (path, pack):
            orphan.write_bytes(name.encode())
            os.utime(orphan, (time.time() - age, time.time() - age))
        orphans[name] = (path, pack)
    leftover = blobs / "tmp" / "interrupted-upload"
    leftover.write_bytes(b"partial")
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    os.utime(kept_pack, (time.time() - 7200, time.time() - 7200))

    # At least these three (the store is shared with earlier tests, whose purged messages may
    # have left old unreferenced files of their own).
    assert await service.sweep_unreferenced_blobs() >= 3
    assert not any(orphan.exists() for orphan in orphans["old orphan"])
    assert not leftover.exists()
    assert all(orphan.exists() for orphan in orphans["young orphan"])
    assert kept_pack.exists()
    download = await http.get(f"/messageexchange/BOB/inbox/{kept_id}", headers=auth("BOB"))
    assert download.content == b"a message still in the inbox"
    assert await service.sweep_unreferenced_blobs() == 0


async def test_the_sandbox_reset_purges_messages_in_every_state(
    mesh: tuple[httpx.AsyncClient, MeshService],
) -> None:
    http, service = mesh
    if not service.settings.sandbox:
        return  # the reset is the sandbox's alone
    await http.delete("/admin/reset")
    waiting = (await send(http, b"waiting")).json()["message_id"]
    read = (await send(http, b"read")).json()["message_id"]
    ack = f"/messageexchange/BOB/inbox/{read}/status/acknowledged"
    assert (await http.put(ack, headers=auth("BOB"))).status_code == 200
    half = (await send(http, b"first of two", **{"mex-Chunk-Range": "1:2"})).json()["message_id"]
    alice = await service.mailbox("ALICE")
    assert alice is not None
    states = [(await service.track(alice, m)).status for m in (waiting, read, half)]
    assert [s.value for s in states] == ["accepted", "acknowledged", "uploading"]

    assert (await http.delete("/admin/reset")).status_code == 200

    for message_id in (waiting, read, half):
        with pytest.raises(MeshNotFound):
            await service.track(alice, message_id)  # purged, whatever its state was
    listed = await http.get("/messageexchange/BOB/inbox", headers=auth("BOB"))
    assert listed.json() == {"messages": []}
