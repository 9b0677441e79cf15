"""Creating shipments and assigning loggers to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from core import audit
from core.db import Row


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    lat: float | None = None
    lon: float | None = None
    tz: str = "UTC"


def create_shipment(
    conn: psycopg.Connection[Row],
    *,
    shipment_ref: str,
    profile_id: str,
    origin: Place,
    destination: Place,
    departed_at: datetime,
    expected_delivery_at: datetime | None = None,
    lane: str | None = None,
    actor: str = "system",
) -> int:
    """Create an in-transit shipment, or return the existing one with that reference."""
    row = conn.execute(
        """
        INSERT INTO shipments (shipment_ref, profile_id, lane, origin_name, origin_lat, origin_lon,
                               destination_name, destination_lat, destination_lon, destination_tz,
                               status, departed_at, expected_delivery_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'in_transit', %s, %s)
        ON CONFLICT (shipment_ref) DO NOTHING
        RETURNING shipment_id
        """,
        (
            shipment_ref,
            profile_id,
            lane,
            origin.name,
            origin.lat,
            origin.lon,
            destination.name,
            destination.lat,
            destination.lon,
            destination.tz,
            departed_at,
            expected_delivery_at,
        ),
    ).fetchone()
    if row is None:
        existing = conn.execute(
            "SELECT shipment_id FROM shipments WHERE shipment_ref = %s", (shipment_ref,)
        ).fetchone()
        assert existing is not None
        return int(existing["shipment_id"])
    audit.record(
        conn,
        actor=actor,
        action="shipment.created",
        entity_type="shipment",
        entity_id=row["shipment_id"],
        details={"ref": shipment_ref, "profile": profile_id, "lane": lane},
    )
    return int(row["shipment_id"])


def assign_device(
    conn: psycopg.Connection[Row],
    shipment_id: int,
    device_id: str,
    assigned_from: datetime,
    assigned_until: datetime | None = None,
    *,
    actor: str = "system",
) -> None:
    """Put a logger on a shipment for a time window (idempotent for the same window)."""
    conn.execute(
        """
        INSERT INTO shipment_devices (shipment_id, device_id, assigned_from, assigned_until)
        VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING
        """,
        (shipment_id, device_id, assigned_from, assigned_until),
    )
    audit.record(
        conn,
        actor=actor,
        action="shipment.device_assigned",
        entity_type="shipment",
        entity_id=shipment_id,
        details={
            "device": device_id,
            "from": assigned_from.isoformat(),
            "until": assigned_until.isoformat() if assigned_until else None,
        },
    )
