"""Versioned plain-SQL migrations, applied in order under an advisory lock.

Files are named ``NNNN_description.sql``. Each runs in its own transaction together with
its row in ``schema_migrations``; an applied file whose content changed is refused, so
history is never rewritten silently.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from core.db import Row, connect
from core.errors import StartupError

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x636F6C64  # "cold"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("core.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StartupError(f"two migration files share a version number: {versions}")
    return found


def migrate(database_url: str) -> list[Migration]:
    """Apply every pending migration; returns those applied (empty when up to date)."""
    applied: list[Migration] = []
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                row["version"]: row
                for row in conn.execute("SELECT version, name, checksum FROM schema_migrations")
            }
            for migration in available_migrations():
                previous = done.get(migration.version)
                if previous is not None:
                    _refuse_if_changed(migration, previous)
                    continue
                _apply(conn, migration)
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied


def _refuse_if_changed(migration: Migration, previous: Row) -> None:
    if previous["checksum"] != migration.checksum:
        raise StartupError(
            f"migration {migration.version:04d}_{migration.name}.sql was changed after it was "
            "applied; add a new migration instead of editing an applied one"
        )


def _apply(conn: psycopg.Connection[Row], migration: Migration) -> None:
    label = f"{migration.version:04d}_{migration.name}.sql"
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except psycopg.Error as exc:
        raise StartupError(f"migration {label} failed: {exc}".strip()) from exc
    log.info("applied migration", extra={"migration": label})


def timescaledb_version(conn: psycopg.Connection[Row]) -> str | None:
    """The installed TimescaleDB version in this database, or None on plain PostgreSQL."""
    row = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    return None if row is None else str(row["extversion"])
