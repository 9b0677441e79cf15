"""Writing to the append-only, hash-chained audit log."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core.db import Row


def record(
    conn: psycopg.Connection[Row],
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | int,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry in the caller's transaction, so it commits with the change it records."""
    conn.execute(
        "INSERT INTO audit_log (actor, action, entity_type, entity_id, details) "
        "VALUES (%s, %s, %s, %s, %s)",
        (actor, action, entity_type, str(entity_id), Jsonb(details or {})),
    )


def verify_chain(conn: psycopg.Connection[Row]) -> int | None:
    """The first audit_id whose hash does not match its content and predecessor, or None."""
    row = conn.execute(
        """
        SELECT audit_id FROM (
            SELECT audit_id, row_hash, prev_hash,
                   lag(row_hash) OVER (ORDER BY audit_id) AS expected_prev,
                   audit_log_row_hash(prev_hash, at, actor, action, entity_type, entity_id,
                                      details) AS recomputed
            FROM audit_log) chain
        WHERE row_hash <> recomputed OR prev_hash IS DISTINCT FROM expected_prev
        ORDER BY audit_id LIMIT 1
        """
    ).fetchone()
    return None if row is None else int(row["audit_id"])
