"""Builders of test data through the product's own functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from case_link.shipments import Place, assign_device, create_shipment
from core.db import Row
from ingest.devices import register_device
from ingest.service import IncomingMessage
from monitor.service import sync_catalog

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def shipment_with_logger(
    conn: psycopg.Connection[Row],
    *,
    ref: str = "SHP-001",
    device_id: str = "LOG-001",
    carrier: str = "acme-cold",
    profile_id: str = "adalimumab-pen",
    assigned_from: datetime = T0,
) -> int:
    sync_catalog(conn)
    register_device(conn, device_id, carrier, 5, actor="test")
    shipment_id = create_shipment(
        conn,
        shipment_ref=ref,
        profile_id=profile_id,
        lane="MEM-FRA",
        origin=Place("Memphis hub", 35.15, -90.05),
        destination=Place("Frankfurt", 50.09, 8.66),
        departed_at=assigned_from,
        actor="test",
    )
    assign_device(conn, shipment_id, device_id, assigned_from, actor="test")
    return shipment_id


def reading(device_id: str, minute: float, temp_c: float | None, **extra: Any) -> dict[str, Any]:
    ts = T0 + timedelta(minutes=minute)
    return {
        "device_id": device_id,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "temp_c": temp_c,
        **extra,
    }


def message(
    prefix: str,
    payload: dict[str, Any] | bytes,
    *,
    carrier: str = "acme-cold",
    device_id: str | None = None,
    received_at: datetime | None = None,
) -> IncomingMessage:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    device = device_id or (payload["device_id"] if isinstance(payload, dict) else "LOG-001")
    return IncomingMessage(
        topic=f"{prefix}/{carrier}/{device}/telemetry",
        payload=body,
        received_at=received_at or T0 + timedelta(days=1),
    )
