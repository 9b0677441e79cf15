"""Append-only chain-of-custody events of a shipment: who had it, where, when.

The table refuses UPDATE and DELETE (a trigger, like audit_log); a wrong entry is
corrected by a later one with a note. A ``delivered`` event marks an in-transit shipment
delivered (``shipments.status``/``delivered_at``), exactly as the monitor's geofence does;
it sends nothing itself — the receipt flow reacts to the shipment's delivery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from core import audit
from core.clock import isoformat_utc, utc
from core.db import Row

EVENT_TYPES: Final[tuple[str, ...]] = (
    "packed",
    "handed_to_carrier",
    "departed",
    "arrived",
    "customs_released",
    "delivered",
    "received",
)
# A custody event may be stamped a little ahead of the server (a handheld's clock), no more.
MAX_CLOCK_AHEAD: Final = timedelta(minutes=5)


class CustodyError(ValueError):
    """A custody event that cannot be recorded; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class CustodyEvent:
    event_type: str
    at: datetime
    place_name: str
    actor: str
    place_lat: float | None = None
    place_lon: float | None = None
    place_tz: str = "UTC"
    note: str | None = None

    def validate(self, now: datetime) -> None:
        """Raise ``CustodyError`` naming the first field that is wrong."""
        if self.event_type not in EVENT_TYPES:
            raise CustodyError(
                "event_type", f"{self.event_type!r} is not one of {', '.join(EVENT_TYPES)}"
            )
        try:
            at = utc(self.at)
        except ValueError:
            raise CustodyError("at", "needs a time zone (RFC 3339 with an offset)") from None
        if at > now + MAX_CLOCK_AHEAD:
            raise CustodyError("at", f"{isoformat_utc(at)} is in the future")
        if not self.place_name.strip() or len(self.place_name.strip()) > 200:
            raise CustodyError("place.name", "must be 1 to 200 characters")
        if (self.place_lat is None) != (self.place_lon is None):
            raise CustodyError("place.lat", "give both lat and lon, or neither")
        if self.place_lat is not None and not (
            math.isfinite(self.place_lat) and -90 <= self.place_lat <= 90
        ):
            raise CustodyError("place.lat", f"must be between -90 and 90, got {self.place_lat}")
        if self.place_lon is not None and not (
            math.isfinite(self.place_lon) and -180 <= self.place_lon <= 180
        ):
            raise CustodyError("place.lon", f"must be between -180 and 180, got {self.place_lon}")
        try:
            ZoneInfo(self.place_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise CustodyError(
                "place.tz", f"{self.place_tz!r} is not an IANA time zone such as 'Europe/Berlin'"
            ) from None
        if not self.actor.strip():
            raise CustodyError("actor", "must not be empty")
        if self.note is not None and len(self.note) > 2000:
            raise CustodyError("note", "must be at most 2000 characters")


def record_custody_event(
    conn: psycopg.Connection[Row],
    shipment_id: int,
    event: CustodyEvent,
    *,
    recorded_by: str,
    now: datetime,
) -> int:
    """Append one custody event (audited); ``delivered`` also marks the shipment delivered."""
    event.validate(now)
    with conn.transaction():
        shipment = conn.execute(
            "SELECT status FROM shipments WHERE shipment_id = %s FOR UPDATE", (shipment_id,)
        ).fetchone()
        if shipment is None:
            raise CustodyError("shipment_id", f"shipment {shipment_id} does not exist")
        row = conn.execute(
            """
            INSERT INTO custody_events (shipment_id, event_type, at, place_name, place_lat,
                                        place_lon, place_tz, actor, note, recorded_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING custody_event_id
            """,
            (
                shipment_id,
                event.event_type,
                event.at,
                event.place_name.strip(),
                event.place_lat,
                event.place_lon,
                event.place_tz,
                event.actor.strip(),
                event.note,
                now,
            ),
        ).fetchone()
        assert row is not None
        event_id = int(row["custody_event_id"])
        audit.record(
            conn,
            actor=recorded_by,
            action="shipment.custody_recorded",
            entity_type="shipment",
            entity_id=shipment_id,
            details={
                "custody_event_id": event_id,
                "event_type": event.event_type,
                "at": isoformat_utc(event.at),
                "place": event.place_name.strip(),
                "by": event.actor.strip(),
            },
        )
        if event.event_type == "delivered" and shipment["status"] == "in_transit":
            conn.execute(
                "UPDATE shipments SET status = 'delivered', delivered_at = %s, delivered_by = %s "
                "WHERE shipment_id = %s",
                (event.at, recorded_by, shipment_id),
            )
            audit.record(
                conn,
                actor=recorded_by,
                action="shipment.delivered",
                entity_type="shipment",
                entity_id=shipment_id,
                details={
                    "via": "custody",
                    "custody_event_id": event_id,
                    "at": event.at.isoformat(),
                },
            )
    return event_id


def custody_events(conn: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    """The shipment's custody events in time order (ties in recording order)."""
    return conn.execute(
        """
        SELECT custody_event_id, event_type, at, place_name, place_lat, place_lon, place_tz,
               actor, note, recorded_at
        FROM custody_events WHERE shipment_id = %s ORDER BY at, custody_event_id
        """,
        (shipment_id,),
    ).fetchall()
