"""Audit event ids are UUIDs version 7 (RFC 9562): they follow the clock (ADR 0015)."""

from __future__ import annotations

import os
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from openspine.platform.audit.events import (
    AuditAction,
    AuditContext,
    AuditOutcome,
    audit_record,
    utc_text,
    uuid7,
)


def test_a_version_7_uuid_carries_its_millisecond_and_the_rfc_variant() -> None:
    at = datetime(2026, 11, 24, 3, 0, 0, 123456, tzinfo=UTC)
    text = uuid7(at)
    value = uuid.UUID(text)
    assert str(value) == text  # the canonical form: lower-case hex, 8-4-4-4-12
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == int(at.timestamp() * 1000)


def test_ids_sort_by_time_and_differ_within_a_millisecond() -> None:
    at = datetime.now(UTC)
    later = [uuid7(at + timedelta(milliseconds=n)) for n in range(1, 50)]
    same = {uuid7(at) for _ in range(1000)}
    assert len(same) == 1000
    assert max(same) < min(later)
    assert later == sorted(later)


def test_forked_workers_draw_different_ids() -> None:
    # granian forks its workers from one process: each must draw its own random bits.
    at = datetime.now(UTC)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write_end, uuid7(at).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        drawn_by_child = pipe.read().decode()
    assert uuid7(at) != drawn_by_child
    assert uuid.UUID(drawn_by_child).version == 7


@pytest.mark.parametrize("seed", range(3))
def test_utc_text_is_isoformat_to_the_microsecond(seed: int) -> None:
    draw = random.Random(seed)  # noqa: S311 - test inputs, not secrets
    for _ in range(2000):
        micros = draw.randrange(0, 4_102_444_800_000_000)  # 1970 to 2100
        at = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000
        )
        assert utc_text(micros) == at.isoformat(timespec="microseconds")
        assert utc_text(micros + 1) == (at + timedelta(microseconds=1)).isoformat(
            timespec="microseconds"
        )


def test_an_audit_record_made_now_names_its_own_millisecond() -> None:
    before = datetime.now(UTC)
    record = audit_record(
        action=AuditAction.PDS_PATIENT_READ,
        outcome=AuditOutcome.SUCCESS,
        principal=None,
        context=AuditContext(None, None),
    )
    after = datetime.now(UTC)
    recorded = datetime.fromisoformat(record.recorded_at)
    assert before <= recorded <= after
    assert uuid.UUID(record.event_id).int >> 80 == int(recorded.timestamp() * 1000)
