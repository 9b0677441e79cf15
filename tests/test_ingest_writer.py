"""The writer against a real database: idempotent, lossless, refusals recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from core.db import Row
from ingest.service import store_batch
from tests.factories import T0, message, reading, shipment_with_logger

pytestmark = pytest.mark.storage
PREFIX = "coldchain/v1"


def test_stores_readings_and_attaches_the_shipment(db: psycopg.Connection[Row]) -> None:
    shipment_id = shipment_with_logger(db)
    result = store_batch(
        db,
        [
            message(PREFIX, reading("LOG-001", 0, 4.5, lat=35.1, lon=-90.0, battery_pct=90)),
            message(
                PREFIX,
                {
                    "device_id": "LOG-001",
                    "readings": [
                        reading("LOG-001", 5, 4.6),
                        reading("LOG-001", 10, 4.7, lat=36.0, lon=-89.0),
                    ],
                },
            ),
        ],
        PREFIX,
    )
    assert (result.received, result.stored, result.duplicates, result.conflicts) == (2, 3, 0, 0)
    rows = db.execute("SELECT ts, temp_c, shipment_id FROM readings ORDER BY ts").fetchall()
    assert [r["temp_c"] for r in rows] == [4.5, 4.6, 4.7]
    assert {r["shipment_id"] for r in rows} == {shipment_id}
    latest = db.execute("SELECT * FROM device_latest").fetchone()
    assert latest is not None
    assert (latest["temp_c"], latest["lat"], latest["lon"]) == (4.7, 36.0, -89.0)
    due = db.execute("SELECT evaluate_from FROM shipments").fetchone()
    assert due is not None and due["evaluate_from"] == T0


def test_exact_resend_is_a_no_op_and_conflict_keeps_first(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    store_batch(db, [message(PREFIX, reading("LOG-001", 0, 4.5))], PREFIX)
    again = store_batch(db, [message(PREFIX, reading("LOG-001", 0, 4.5))], PREFIX)
    assert (again.stored, again.duplicates, again.conflicts) == (0, 1, 0)
    clash = store_batch(db, [message(PREFIX, reading("LOG-001", 0, 9.9))], PREFIX)
    assert (clash.stored, clash.duplicates, clash.conflicts) == (0, 0, 1)
    kept = db.execute("SELECT temp_c FROM readings").fetchall()
    assert [r["temp_c"] for r in kept] == [4.5]
    conflict = db.execute("SELECT reading FROM reading_conflicts").fetchone()
    assert conflict is not None and conflict["reading"]["temp_c"] == 9.9


def test_conflict_within_one_batch_is_recorded(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    result = store_batch(
        db,
        [
            message(
                PREFIX,
                {
                    "device_id": "LOG-001",
                    "readings": [
                        reading("LOG-001", 0, 4.5),
                        reading("LOG-001", 0, 4.5),
                        reading("LOG-001", 0, 6.0),
                    ],
                },
            )
        ],
        PREFIX,
    )
    assert (result.stored, result.duplicates, result.conflicts) == (1, 1, 1)


def test_refusals_are_recorded_with_reason(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    result = store_batch(
        db,
        [
            message(PREFIX, b"{broken"),
            message(PREFIX, reading("LOG-404", 0, 4.0)),
            message(PREFIX, reading("LOG-001", 0, 4.0), carrier="other-carrier"),
            message(PREFIX, reading("LOG-001", 0, 4.0), device_id="LOG-002"),
            message(PREFIX, reading("LOG-001", 5, 4.0)),
        ],
        PREFIX,
    )
    assert result.stored == 1
    assert result.rejected == {"malformed": 1, "unknown_device": 1, "topic_mismatch": 2}
    rows = db.execute("SELECT reason, payload FROM rejected_messages").fetchall()
    reasons = sorted(r["reason"] for r in rows)
    assert reasons[0] == "device LOG-001 belongs to carrier acme-cold, not other-carrier"
    assert reasons[1] == "device LOG-404 is not registered"
    assert reasons[2] == "device_id 'LOG-001' does not match the topic's 'LOG-002'"
    assert reasons[3].startswith("payload is not JSON (")
    assert b"{broken" in [bytes(r["payload"]) for r in rows]


def test_deactivated_device_is_refused(db: psycopg.Connection[Row]) -> None:
    from ingest.devices import deactivate_device

    shipment_with_logger(db)
    deactivate_device(db, "LOG-001", actor="test")
    result = store_batch(db, [message(PREFIX, reading("LOG-001", 0, 4.0))], PREFIX)
    assert result.stored == 0 and result.rejected == {"inactive_device": 1}


def test_clock_ahead_is_stored_and_flagged(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    received = T0 + timedelta(minutes=10)
    store_batch(
        db,
        [
            message(PREFIX, reading("LOG-001", 14, 4.0), received_at=received),  # 4 min ahead: fine
            message(PREFIX, reading("LOG-001", 16, 4.0), received_at=received),  # 6 min ahead
        ],
        PREFIX,
    )
    flags = [r["clock_ahead"] for r in db.execute("SELECT clock_ahead FROM readings ORDER BY ts")]
    assert flags == [False, True]


def test_zero_gps_fix_does_not_move_the_logger(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    store_batch(db, [message(PREFIX, reading("LOG-001", 0, 4.0, lat=35.1, lon=-90.0))], PREFIX)
    store_batch(db, [message(PREFIX, reading("LOG-001", 5, 4.2, lat=0.0, lon=0.0))], PREFIX)
    latest = db.execute("SELECT temp_c, lat, lon FROM device_latest").fetchone()
    assert latest == {"temp_c": 4.2, "lat": 35.1, "lon": -90.0}


def test_late_batch_does_not_roll_latest_back(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    store_batch(db, [message(PREFIX, reading("LOG-001", 60, 5.0))], PREFIX)
    db.execute("UPDATE shipments SET evaluate_from = NULL")
    store_batch(db, [message(PREFIX, reading("LOG-001", 30, 7.0))], PREFIX)
    latest = db.execute("SELECT ts, temp_c FROM device_latest").fetchone()
    assert latest == {"ts": T0 + timedelta(minutes=60), "temp_c": 5.0}
    due = db.execute("SELECT evaluate_from FROM shipments").fetchone()
    assert due == {"evaluate_from": T0 + timedelta(minutes=30)}


def test_reading_outside_assignment_has_no_shipment(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    store_batch(db, [message(PREFIX, reading("LOG-001", -10, 4.0))], PREFIX)
    row = db.execute("SELECT shipment_id FROM readings").fetchone()
    assert row == {"shipment_id": None}


def test_notify_is_sent_per_committed_batch(db: psycopg.Connection[Row], db_url: str) -> None:
    from core.db import connect

    shipment_with_logger(db)
    with connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN coldchain_readings")
        store_batch(db, [message(PREFIX, reading("LOG-001", m, 4.0)) for m in (0, 5, 10)], PREFIX)
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert [(n.channel, n.payload) for n in notes] == [("coldchain_readings", "3")]


def test_failed_batch_commits_nothing(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    db.execute("ALTER TABLE device_latest ADD CONSTRAINT test_fail CHECK (temp_c < 5)")
    with pytest.raises(psycopg.errors.CheckViolation):
        store_batch(
            db, [message(PREFIX, b"{bad"), message(PREFIX, reading("LOG-001", 0, 9.0))], PREFIX
        )
    counts = db.execute(
        "SELECT (SELECT count(*) FROM readings) AS r, (SELECT count(*) FROM rejected_messages) AS j"
    ).fetchone()
    assert counts == {"r": 0, "j": 0}


def _snapshot(db: psycopg.Connection[Row]) -> dict[str, list[Row]]:
    return {
        "readings": db.execute("SELECT * FROM readings ORDER BY device_id, ts").fetchall(),
        "latest": db.execute("SELECT * FROM device_latest ORDER BY device_id").fetchall(),
        "due": db.execute(
            "SELECT shipment_id, evaluate_from FROM shipments ORDER BY shipment_id"
        ).fetchall(),
        "conflicts": db.execute(
            "SELECT device_id, ts, reading FROM reading_conflicts ORDER BY ts"
        ).fetchall(),
    }


def test_direct_copy_and_general_path_store_the_same(db: psycopg.Connection[Row]) -> None:
    """A batch of new keys is COPied straight into readings; one stored key among them
    sends the batch through staging. Both must leave the same rows behind."""
    shipment_with_logger(db)
    second = shipment_with_logger(db, ref="SHP-002", device_id="LOG-002", assigned_from=T0)
    already = message(PREFIX, reading("LOG-001", -30, 3.0, lat=1.0, lon=2.0))
    store_batch(db, [already], PREFIX)
    batch = [
        message(PREFIX, reading("LOG-001", 20, 4.5, lat=35.1, lon=-90.0, battery_pct=90)),
        message(PREFIX, reading("LOG-001", 10, 4.4, lat=35.0, lon=-90.1)),
        message(PREFIX, reading("LOG-001", 30, 4.6, lat=0.0, lon=0.0)),  # reboot: no fix
        message(PREFIX, reading("LOG-002", -5, 2.0)),  # before its assignment
        message(PREFIX, reading("LOG-002", 15, None, status="sensor_error")),
        message(PREFIX, reading("LOG-002", 60 * 24 * 3, 5.0)),  # clock ahead of receipt
    ]
    outcomes = []
    snapshots = []
    for extra in ([], [already]):
        with db.transaction(force_rollback=True):
            result = store_batch(db, batch + extra, PREFIX)
            outcomes.append((result.stored, result.duplicates, result.conflicts))
            snapshots.append(_snapshot(db))
            staged = db.execute("SELECT to_regclass('pg_temp.readings_staging') AS t").fetchone()
            assert staged is not None and (staged["t"] is not None) == bool(extra)
    assert outcomes == [(6, 0, 0), (6, 1, 0)]
    direct, general = snapshots
    assert direct == general
    latest = {row["device_id"]: row for row in direct["latest"]}
    assert (latest["LOG-001"]["temp_c"], latest["LOG-001"]["lat"]) == (4.6, 35.1)
    assert latest["LOG-002"]["status"] == "ok" and latest["LOG-002"]["temp_c"] == 5.0
    ahead = [r for r in direct["readings"] if r["clock_ahead"]]
    assert [(r["device_id"], r["shipment_id"]) for r in ahead] == [("LOG-002", second)]
    assert sum(r["shipment_id"] is None for r in direct["readings"]) == 2  # -30 and -5 min
    assert all(d["evaluate_from"] is not None for d in direct["due"])


def test_repeats_within_a_batch_keep_the_first_value(db: psycopg.Connection[Row]) -> None:
    """Repeated keys make the direct COPY fail; the staging path then keeps the first
    value, counts the exact repeat and records the other value as a conflict."""
    shipment_with_logger(db)
    result = store_batch(
        db,
        [
            message(PREFIX, reading("LOG-001", 5, 4.0)),
            message(PREFIX, reading("LOG-001", 15, 4.4)),
            message(PREFIX, reading("LOG-001", 15, 7.7)),
            message(PREFIX, reading("LOG-001", 5, 4.0)),
        ],
        PREFIX,
    )
    assert (result.stored, result.duplicates, result.conflicts) == (2, 1, 1)
    kept = db.execute("SELECT temp_c FROM readings ORDER BY ts").fetchall()
    assert [r["temp_c"] for r in kept] == [4.0, 4.4]
    conflict = db.execute("SELECT reading FROM reading_conflicts").fetchone()
    assert conflict is not None and conflict["reading"]["temp_c"] == 7.7


def test_concurrent_writers_store_each_key_once(db_url: str, db: psycopg.Connection[Row]) -> None:
    """Two writers (a shared subscription after a redelivery) storing overlapping batches."""
    import threading

    from core.db import connect

    shipment_with_logger(db)
    batches = [
        [message(PREFIX, reading("LOG-001", m, 4.0)) for m in range(0, 300, 1)],
        [message(PREFIX, reading("LOG-001", m, 4.0)) for m in range(150, 450, 1)],
    ]
    results = []

    def write(batch: list[Any]) -> None:
        with connect(db_url) as conn:
            results.append(store_batch(conn, batch, PREFIX))

    threads = [threading.Thread(target=write, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r.stored for r in results) == 450
    assert sum(r.duplicates for r in results) == 150
    count = db.execute("SELECT count(*) AS n FROM readings").fetchone()
    assert count == {"n": 450}


def test_a_parser_defect_costs_one_message(
    db: psycopg.Connection[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the parser raises besides PayloadError refuses that message only."""
    import ingest.service
    from ingest.parser import parse_payload

    shipment_with_logger(db)

    def flaky(payload: bytes, *, topic_device_id: str | None = None) -> Any:
        if b"6.6" in payload:
            raise RuntimeError("parser defect")
        return parse_payload(payload, topic_device_id=topic_device_id)

    monkeypatch.setattr(ingest.service, "parse_payload", flaky)
    result = store_batch(
        db,
        [
            message(PREFIX, reading("LOG-001", 0, 4.0)),
            message(PREFIX, reading("LOG-001", 5, 6.6)),
            message(PREFIX, reading("LOG-001", 10, 4.2)),
        ],
        PREFIX,
    )
    assert result.stored == 2 and result.rejected == {"malformed": 1}
    refused = db.execute("SELECT reason, payload FROM rejected_messages").fetchone()
    assert refused is not None
    assert refused["reason"] == "payload could not be parsed (RuntimeError)"
    assert b"6.6" in bytes(refused["payload"])
