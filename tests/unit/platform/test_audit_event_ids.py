"""Audit event ids are UUIDs version 7 (RFC 9562): they follow the clock (ADR 0015)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from openspine.platform.audit.events import uuid7


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
