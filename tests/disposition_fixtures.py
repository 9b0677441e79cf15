"""A delivered shipment with one temperature alarm, and one staff user per role."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from core.accounts import StaffUser, create_user
from core.clock import FixedClock
from core.db import Row
from ingest.service import store_batch
from monitor.service import evaluate_due
from tests.factories import T0, message, reading, shipment_with_logger

PREFIX = "coldchain/v1"
PASSWORD = "disposition password 1"
NOW = T0 + timedelta(days=1)
# Printed names: each user's display name (11.50(a)(1)).
NAMES = {
    "qa": "Quinn Assessor",
    "admin": "Ada Admin",
    "clinical": "Cal Clinical",
    "logistics": "Lou Logistics",
}


def store(db: psycopg.Connection[Row], points: list[tuple[float, float]], minutes: float) -> None:
    """Readings of LOG-001 (minute, °C) received ``minutes`` after T0."""
    readings = [reading("LOG-001", minute, temp) for minute, temp in points]
    batch = message(
        PREFIX,
        {"device_id": "LOG-001", "readings": readings},
        received_at=T0 + timedelta(minutes=minutes),
    )
    store_batch(db, [batch], PREFIX)


def delivered_shipment_with_alarm(db: psycopg.Connection[Row]) -> int:
    """Adalimumab pen (2–8 °C): 10 °C from minute 20 to 60, so high-30m alarms at minute 50.

    Readings every 5 min over 0..120; the above-range excursion holds 20..60 = 40 min and
    alarms at 20 + 30 = 50. Delivered at minute 120.
    """
    shipment_id = shipment_with_logger(db)
    store(db, [(m, 10.0 if 20 <= m < 60 else 5.0) for m in range(0, 125, 5)], 125)
    evaluate_due(db, FixedClock(T0 + timedelta(minutes=126)), "http://dash.example")
    db.execute(
        "UPDATE shipments SET status = 'delivered', delivered_at = %s WHERE shipment_id = %s",
        (T0 + timedelta(minutes=120), shipment_id),
    )
    return shipment_id


def staff(db: psycopg.Connection[Row]) -> dict[str, StaffUser]:
    """One user per role, all with PASSWORD."""
    return {
        role: create_user(db, f"{role}@example.org", name, role, PASSWORD, actor="test")
        for role, name in NAMES.items()
    }


def alarm_ids(db: psycopg.Connection[Row], shipment_id: int) -> list[int]:
    rows = db.execute(
        "SELECT alarm_id FROM alarms WHERE shipment_id = %s ORDER BY alarm_id", (shipment_id,)
    ).fetchall()
    return [int(r["alarm_id"]) for r in rows]


def audit_entries(db: psycopg.Connection[Row], action: str) -> list[Row]:
    return db.execute(
        "SELECT actor, entity_id, details FROM audit_log WHERE action = %s ORDER BY audit_id",
        (action,),
    ).fetchall()
