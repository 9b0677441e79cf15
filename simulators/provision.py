"""Register a scenario's loggers and create its shipments, so its readings have a home."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from case_link.shipments import Place, assign_device, create_shipment
from core.db import Row
from ingest.devices import register_device
from monitor.service import sync_catalog
from simulators.scenario import Scenario, ShipmentPlan


def provision(
    conn: psycopg.Connection[Row], scenario: Scenario, plans: list[ShipmentPlan], start: datetime
) -> dict[str, int]:
    """Devices, profiles and shipments for a run starting at ``start``; ref → shipment_id."""
    shipment_ids = {}
    with conn.transaction():
        sync_catalog(conn)
        for plan in plans:
            register_device(
                conn,
                plan.device,
                plan.carrier,
                max(1, round(scenario.interval_min)),
                actor="simulator",
            )
            shipment_id = create_shipment(
                conn,
                shipment_ref=plan.ref,
                profile_id=plan.profile,
                lane=plan.lane,
                origin=Place(plan.origin.name, plan.origin.lat, plan.origin.lon, plan.origin.tz),
                destination=Place(
                    plan.destination.name,
                    plan.destination.lat,
                    plan.destination.lon,
                    plan.destination.tz,
                ),
                departed_at=start,
                expected_delivery_at=start + timedelta(hours=scenario.duration_h),
                actor="simulator",
            )
            current = conn.execute(
                "SELECT shipment_id FROM shipment_devices WHERE device_id = %s "
                "AND assigned_until IS NULL",
                (plan.device,),
            ).fetchone()
            if current is not None and current["shipment_id"] != shipment_id:
                # The logger moves on: its previous trip ends where this one starts.
                conn.execute(
                    "UPDATE shipment_devices SET assigned_until = GREATEST(%s, assigned_from "
                    "+ interval '1 second') WHERE device_id = %s AND assigned_until IS NULL",
                    (start, plan.device),
                )
            if current is None or current["shipment_id"] != shipment_id:
                assign_device(conn, shipment_id, plan.device, start, actor="simulator")
            shipment_ids[plan.ref] = shipment_id
    return shipment_ids
