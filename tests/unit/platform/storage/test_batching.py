"""The rows a write binds: which index keys an update deletes and inserts."""

from __future__ import annotations

from openspine.platform.storage.batching import index_changes
from openspine.platform.storage.ports import PutResource


def _update(*keys: tuple[str, str]) -> PutResource:
    return PutResource("MeshMessage", "m1", 2, b"{}", 1, search_keys=keys)


def test_keys_the_update_keeps_are_neither_deleted_nor_inserted() -> None:
    indexed = [("mball", "m1"), ("mbin", "BOB|t|m1"), ("mbblob", "d|m1")]
    gone, new = index_changes(
        _update(("mball", "m1"), ("mbblob", "d|m1"), ("mbpurge", "p|m1")), indexed
    )
    assert gone == [("MeshMessage", "mbin", "BOB|t|m1", "m1")]
    assert new == [("MeshMessage", "mbpurge", "p|m1", "m1")]


def test_the_same_keys_change_nothing_and_no_keys_remove_all() -> None:
    indexed = [("mball", "m1"), ("mbin", "BOB|t|m1")]
    assert index_changes(_update(*reversed(indexed)), indexed) == ([], [])
    gone, new = index_changes(_update(), indexed)
    assert gone == [("MeshMessage", "mball", "m1", "m1"), ("MeshMessage", "mbin", "BOB|t|m1", "m1")]
    assert new == []


def test_rows_come_in_key_order_and_a_repeated_key_once() -> None:
    gone, new = index_changes(_update(("b", "2"), ("a", "9"), ("b", "2"), ("a", "1")), [])
    assert gone == []
    assert [(param, value) for _, param, value, _ in new] == [("a", "1"), ("a", "9"), ("b", "2")]
