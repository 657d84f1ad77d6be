"""SQL shared by both adapters, written with ``?`` placeholders (PostgreSQL's are derived)."""

from __future__ import annotations

__all__ = ["SQL", "for_postgres"]


class SQL:
    GET = (
        "SELECT version, state, body, restricted_body, successor_id FROM resources"
        " WHERE resource_type = ? AND id = ?"
    )
    COUNT = "SELECT count(*) FROM resources WHERE resource_type = ?"
    #: What an update needs of the version it replaces: its number, its body (for the
    #: history) and its search keys (migration 0006).
    GET_FOR_UPDATE = (
        "SELECT version, body, index_keys FROM resources WHERE resource_type = ? AND id = ?"
    )
    INSERT = (
        "INSERT INTO resources (resource_type, id, version, state, body, restricted_body,"
        " successor_id, updated_at, index_keys) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    UPDATE = (
        "UPDATE resources SET version = ?, state = ?, body = ?, restricted_body = ?,"
        " successor_id = ?, updated_at = ?, index_keys = ?"
        " WHERE resource_type = ? AND id = ? AND version = ?"
    )
    HISTORY = (
        "INSERT INTO resource_history (resource_type, id, version, body, recorded_at)"
        " VALUES (?, ?, ?, ?, ?)"
    )
    INDEX_DELETE_KEY = (
        "DELETE FROM search_index WHERE resource_type = ? AND param = ? AND value = ? AND id = ?"
    )
    INDEX_INSERT = "INSERT INTO search_index (resource_type, param, value, id) VALUES (?, ?, ?, ?)"
    INDEX_PENDING_INSERT = (
        "INSERT INTO search_index_pending (resource_type, param, value, id) VALUES (?, ?, ?, ?)"
    )
    INDEX_PENDING_COUNT = "SELECT count(*) FROM search_index_pending"
    #: One sorted pass: the B-tree is filled in key order instead of at random (ADR 0014).
    #: A key already indexed is skipped, so the merge can always finish (``WHERE true`` is
    #: SQLite's rule for an upsert on a SELECT; PostgreSQL reads the same statement).
    INDEX_PENDING_MERGE = (
        "INSERT INTO search_index (resource_type, param, value, id)"
        " SELECT resource_type, param, value, id FROM search_index_pending WHERE true"
        " ORDER BY resource_type, param, value, id ON CONFLICT DO NOTHING"
    )
    INDEX_PENDING_CLEAR = "DELETE FROM search_index_pending"
    INDEX_SCAN = (
        "SELECT id, value FROM search_index WHERE resource_type = ? AND param = ?"
        " AND value >= ? AND value <= ? ORDER BY value LIMIT ?"
    )
    AUDIT_HEAD = "SELECT seq, hash FROM audit_head WHERE chain = 'main'"
    AUDIT_HEAD_SET = "UPDATE audit_head SET seq = ?, hash = ? WHERE chain = 'main'"
    AUDIT_INSERT = (
        "INSERT INTO audit_events (seq, event_id, recorded_at, payload, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?)"
    )
    AUDIT_ROWS = (
        "SELECT seq, event_id, recorded_at, payload, prev_hash, hash FROM audit_events"
        " WHERE seq > ? ORDER BY seq LIMIT ?"
    )
    #: The ``access`` chain (ADR 0025): the same columns in ``access_events``, and its head in
    #: ``audit_head`` (on SQLite, both in the store's access file).
    ACCESS_HEAD = "SELECT seq, hash FROM audit_head WHERE chain = 'access'"
    ACCESS_HEAD_SET = "UPDATE audit_head SET seq = ?, hash = ? WHERE chain = 'access'"
    ACCESS_INSERT = (
        "INSERT INTO access_events (seq, event_id, recorded_at, payload, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?)"
    )
    ACCESS_ROWS = (
        "SELECT seq, event_id, recorded_at, payload, prev_hash, hash FROM access_events"
        " WHERE seq > ? ORDER BY seq LIMIT ?"
    )
    OUTBOX_INSERT = "INSERT INTO outbox (topic, msg_key, payload, created_at) VALUES (?, ?, ?, ?)"
    NONCE_INSERT = "INSERT INTO used_nonces (issuer, value, expires_at) VALUES (?, ?, ?)"
    NONCE_PURGE = "DELETE FROM used_nonces WHERE expires_at < ?"
    IDEMPOTENCY_INSERT = (
        "INSERT INTO idempotency (caller, request_id, fingerprint, status, headers, body,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    IDEMPOTENCY_GET = (
        "SELECT fingerprint, status, headers, body FROM idempotency"
        " WHERE caller = ? AND request_id = ?"
    )


def for_postgres(statement: str) -> str:
    return statement.replace("?", "%s")
