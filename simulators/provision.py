"""Give a scenario's readings a home: loggers, cases and shipments, through the
project's own services, so a demo or an end-to-end test needs nothing done by hand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import psycopg

from case_link.cases import link_shipment
from case_link.demo_data import equip_simulated_shipment, open_simulated_case, start_shipping
from case_link.shipments import Place, assign_device, create_shipment
from core.db import Row
from ingest.credentials import set_device_password
from ingest.devices import register_device
from monitor.profiles import catalog
from monitor.service import sync_catalog
from simulators.device import plan_route
from simulators.publisher import LoggerIdentity, device_password
from simulators.scenario import Scenario, ScenarioError, ShipmentPlan

ACTOR = "simulator"


def provision(
    conn: psycopg.Connection[Row],
    scenario: Scenario,
    plans: list[ShipmentPlan],
    start: datetime,
    *,
    seed: int | None = None,
    secret_key: str | None = None,
) -> dict[str, int]:
    """Devices, cases and shipments for a run starting at ``start``; ref → shipment_id.

    Idempotent: provisioning the same scenario again reuses what exists. With a secret
    key each logger also gets its derived MQTT password (docs/simulators.md).
    """
    known = catalog()
    for plan in plans:
        if plan.profile not in known:
            raise ScenarioError(
                f"shipment {plan.ref}: drug profile {plan.profile!r} is not in the monitor "
                f"catalog ({', '.join(sorted(known))}); add it to monitor/catalog/ first"
            )
    seed = scenario.seed if seed is None else seed
    shipment_ids = {}
    with conn.transaction():
        sync_catalog(conn)
        register_loggers(conn, plans, scenario.interval_min, secret_key=secret_key)
        for plan in plans:
            delivered_min = plan_route(plan, seed).delivered_at_min
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
                expected_delivery_at=start + timedelta(minutes=delivered_min),
                actor=ACTOR,
            )
            case_id = open_simulated_case(conn, f"CASE-{plan.ref}", actor=ACTOR, now=start)
            link_shipment(conn, shipment_id, case_id, ACTOR)
            start_shipping(conn, case_id, actor=ACTOR, now=start)
            equip_simulated_shipment(
                conn,
                case_id=case_id,
                shipment_id=shipment_id,
                shipment_ref=plan.ref,
                origin=Place(plan.origin.name, plan.origin.lat, plan.origin.lon, plan.origin.tz),
                start=start,
                actor=ACTOR,
            )
            _assign(conn, shipment_id, plan.device, start)
            shipment_ids[plan.ref] = shipment_id
    return shipment_ids


def register_loggers(
    conn: psycopg.Connection[Row],
    loggers: Iterable[LoggerIdentity],
    interval_min: float,
    *,
    secret_key: str | None = None,
) -> int:
    """Register (or reactivate) each logger; returns how many there were."""
    count = 0
    for logger in loggers:
        register_device(
            conn, logger.device, logger.carrier, max(1, round(interval_min)), actor=ACTOR
        )
        if secret_key:
            set_device_password(
                conn, logger.device, device_password(secret_key, logger.device), actor=ACTOR
            )
        count += 1
    return count


def _assign(conn: psycopg.Connection[Row], shipment_id: int, device: str, start: datetime) -> None:
    current = conn.execute(
        "SELECT shipment_id FROM shipment_devices WHERE device_id = %s AND assigned_until IS NULL",
        (device,),
    ).fetchone()
    if current is not None and current["shipment_id"] == shipment_id:
        return
    if current is not None:
        # The logger moves on: its previous trip ends where this one starts.
        conn.execute(
            "UPDATE shipment_devices SET assigned_until = GREATEST(%s, assigned_from "
            "+ interval '1 second') WHERE device_id = %s AND assigned_until IS NULL",
            (start, device),
        )
    assign_device(conn, shipment_id, device, start, actor=ACTOR)
