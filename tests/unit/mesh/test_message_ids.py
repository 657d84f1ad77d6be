"""MESH message ids: the spec's format, and distinct in each forked worker."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

from openspine.mesh.domain import new_message_id

FORMAT = re.compile(r"^\d{17}_[0-9A-F]{6}$")


def test_an_id_is_the_instant_to_the_millisecond_and_six_hex_digits() -> None:
    at = datetime(2026, 11, 25, 3, 4, 5, 678_901, tzinfo=UTC)
    ids = {new_message_id(at) for _ in range(200)}
    assert all(FORMAT.match(i) and i.startswith("20261125030405678_") for i in ids)
    assert len(ids) > 190  # 24 random bits each: a clash among 200 is rare (and drawn again)


def test_forked_workers_draw_different_ids() -> None:
    # granian forks its workers from one process: each must draw its own random digits.
    at = datetime.now(UTC)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write_end, "".join(new_message_id(at) for _ in range(4)).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        drawn_by_child = pipe.read().decode()
    assert "".join(new_message_id(at) for _ in range(4)) != drawn_by_child
