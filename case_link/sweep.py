"""Each claimed row of a sweep in its own savepoint: one row that fails (a constraint, a
bug) is logged and retried on the next tick, and never holds back the rest of the batch."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from core.db import Row

log = logging.getLogger(__name__)


@contextmanager
def row_savepoint(conn: psycopg.Connection[Row], sweep: str, row_id: int) -> Iterator[None]:
    """Run the block in a savepoint; a database error rolls back this row only."""
    try:
        with conn.transaction():
            yield
    except psycopg.Error:
        log.exception("sweep row failed; retried next tick", extra={"sweep": sweep, "row": row_id})
