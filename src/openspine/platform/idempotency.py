"""Idempotent writes: a retry with the same X-Request-ID by the same caller changes nothing.

A write use case prepares its :class:`WriteSet` and its response *before* committing;
:func:`run_idempotent` adds the response to the write set as the idempotency record, so the
data change, its audit event, its outbox message and the remembered response commit together.
A retry finds the record and gets the first response back (even while racing the first: the
loser's commit fails on the record's key and it replays the winner's). The same X-Request-ID
with a different request is refused with 409.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from openspine.platform.errors import MissingValue, RequestIdReused
from openspine.platform.security.principal import Principal
from openspine.platform.storage.ports import (
    IdempotencyKeyTaken,
    IdempotencyRecord,
    Store,
    WriteSet,
)

__all__ = ["PreparedWrite", "WrittenResponse", "fingerprint", "run_idempotent"]


@dataclass(frozen=True, slots=True)
class WrittenResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


@dataclass(slots=True)
class PreparedWrite:
    """What a use case will commit, and what the caller will be told once it has."""

    writes: WriteSet
    response: WrittenResponse


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord, expected: str) -> WrittenResponse:
    if record.fingerprint != expected:
        raise RequestIdReused("Use a new X-Request-ID for a new request")
    headers = orjson.loads(record.headers)
    return WrittenResponse(record.status, record.body, headers, replayed=True)


async def run_idempotent(
    store: Store,
    principal: Principal,
    request_id: str | None,
    request_fingerprint: str,
    prepare: Callable[[], Awaitable[PreparedWrite]],
) -> WrittenResponse:
    if request_id is None:
        raise MissingValue("X-Request-ID header must be supplied for a write")
    caller = principal.caller_key
    existing = await store.get_idempotency(caller, request_id)
    if existing is not None:
        return _replay(existing, request_fingerprint)
    prepared = await prepare()
    response = prepared.response
    prepared.writes.idempotency = IdempotencyRecord(
        caller=caller,
        request_id=request_id,
        fingerprint=request_fingerprint,
        status=response.status,
        headers=orjson.dumps(response.headers),
        body=response.body,
    )
    try:
        await store.write(prepared.writes)
    except IdempotencyKeyTaken:
        winner = await store.get_idempotency(caller, request_id)
        if winner is None:  # pragma: no cover - the key was taken by a committed row
            raise
        return _replay(winner, request_fingerprint)
    return response
