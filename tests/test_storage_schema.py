"""Migrations, the readings table on both engines, and the append-only audit log."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from psycopg import sql

from core import audit
from core.db import Row, connect
from core.errors import StartupError
from core.migrations import Migration, available_migrations, migrate, timescaledb_version
from tests.conftest import EXPECT_TIMESCALEDB, _with_database

pytestmark = pytest.mark.storage


@pytest.fixture
def empty_db(server_url: str) -> str:
    name = f"cc_m_{uuid.uuid4().hex[:10]}"
    with connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_database(server_url, name)  # type: ignore[misc]
    with connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_concurrent_migrations_apply_each_file_once(empty_db: str) -> None:
    results: list[list[Migration]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(empty_db))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    applied = sorted(len(r) for r in results)
    assert applied == [0, 0, len(available_migrations())]
    assert migrate(empty_db) == []


def test_edited_migration_is_refused(db: psycopg.Connection[Row], db_url: str) -> None:
    db.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(StartupError, match="0001_core.sql was changed after it was applied"):
        migrate(db_url)


def test_readings_engine_matches_the_server(db: psycopg.Connection[Row]) -> None:
    version = timescaledb_version(db)
    hypertable = db.execute(
        "SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL AS present"
    ).fetchone()
    if version is not None:
        assert hypertable == {"present": True}
        row = db.execute(
            "SELECT count(*) AS n FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'readings'"
        ).fetchone()
        assert row == {"n": 1}
    # CI states which engine it provisioned, so a silently missing extension fails here.
    if EXPECT_TIMESCALEDB is not None:
        assert (version is not None) == (EXPECT_TIMESCALEDB == "1")


def test_readings_unique_per_device_and_time(db: psycopg.Connection[Row]) -> None:
    db.execute("INSERT INTO readings (device_id, ts, temp_c) VALUES ('D', '2026-01-01Z', 4)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO readings (device_id, ts, temp_c) VALUES ('D', '2026-01-01Z', 5)")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO readings (device_id, ts, temp_c) VALUES ('D', '2026-01-02Z', NULL)")


def test_audit_log_is_append_only_and_chained(db: psycopg.Connection[Row]) -> None:
    for i in range(3):
        audit.record(
            db,
            actor="qa@example",
            action="test.event",
            entity_type="test",
            entity_id=i,
            details={"i": i},
        )
    assert audit.verify_chain(db) is None
    for statement in (
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            db.execute(statement)
    rows = db.execute(
        "SELECT audit_id, prev_hash, row_hash FROM audit_log ORDER BY audit_id"
    ).fetchall()
    assert rows[0]["prev_hash"] is None
    assert [r["prev_hash"] for r in rows[1:]] == [r["row_hash"] for r in rows[:-1]]

    # An owner who bypasses the trigger still cannot hide the edit: the chain breaks there.
    db.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete")
    db.execute("UPDATE audit_log SET actor = 'mallory' WHERE audit_id = %s", (rows[1]["audit_id"],))
    assert audit.verify_chain(db) == rows[1]["audit_id"]


def test_device_cannot_ride_two_shipments_at_once(db: psycopg.Connection[Row]) -> None:
    from tests.factories import T0, shipment_with_logger

    shipment_with_logger(db, ref="SHP-A", device_id="LOG-9")
    from case_link.shipments import Place, assign_device, create_shipment

    other = create_shipment(
        db,
        shipment_ref="SHP-B",
        profile_id="adalimumab-pen",
        origin=Place("a"),
        destination=Place("b"),
        departed_at=T0,
    )
    with pytest.raises(psycopg.errors.ExclusionViolation, match="already assigned"):
        assign_device(db, other, "LOG-9", T0)
