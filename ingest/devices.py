"""The device registry: which loggers exist, whose they are, how often they report."""

from __future__ import annotations

import psycopg

from core import audit
from core.db import Row


class DeviceError(ValueError):
    """A registry request that cannot be honoured; the message says why."""


def register_device(
    conn: psycopg.Connection[Row],
    device_id: str,
    carrier: str,
    interval_min: int = 10,
    *,
    actor: str = "cli",
) -> bool:
    """Register (or reactivate and update) a logger; returns True when it was new."""
    try:
        row = conn.execute(
            """
            INSERT INTO devices (device_id, carrier, interval_min) VALUES (%s, %s, %s)
            ON CONFLICT (device_id) DO UPDATE SET carrier = EXCLUDED.carrier,
                interval_min = EXCLUDED.interval_min, active = true, deactivated_at = NULL
            RETURNING (xmax = 0) AS created
            """,
            (device_id, carrier, interval_min),
        ).fetchone()
    except psycopg.errors.CheckViolation as exc:
        raise DeviceError(
            f"device {device_id!r} / carrier {carrier!r} rejected: device ids are letters, digits, "
            "'.', '_' or '-' (max 64); carriers are lower-case letters, digits, '_' or '-'; "
            "the interval is 1..1440 minutes"
        ) from exc
    assert row is not None
    audit.record(
        conn,
        actor=actor,
        action="device.registered" if row["created"] else "device.updated",
        entity_type="device",
        entity_id=device_id,
        details={"carrier": carrier, "interval_min": interval_min},
    )
    return bool(row["created"])


def list_devices(conn: psycopg.Connection[Row]) -> list[Row]:
    return conn.execute(
        """
        SELECT d.device_id, d.carrier, d.interval_min, d.active, l.ts AS last_ts, l.battery_pct
        FROM devices d LEFT JOIN device_latest l USING (device_id) ORDER BY d.device_id
        """
    ).fetchall()


def deactivate_device(conn: psycopg.Connection[Row], device_id: str, *, actor: str = "cli") -> None:
    row = conn.execute(
        "UPDATE devices SET active = false, deactivated_at = now() WHERE device_id = %s "
        "RETURNING device_id",
        (device_id,),
    ).fetchone()
    if row is None:
        raise DeviceError(f"device {device_id!r} is not registered")
    audit.record(
        conn, actor=actor, action="device.deactivated", entity_type="device", entity_id=device_id
    )
