"""Builders for the physician receipt, follow-up and adverse-event tests."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import psycopg

from case_link.cases import link_shipment, register_case
from case_link.physicians import Physician, assign_physician, register_physician
from core.db import Row
from tests.factories import shipment_with_logger

PHYSICIAN_MOBILE = "+4915112345678"
LINK = re.compile(r"https?://\S+/(?:r|f)/[A-Za-z0-9_-]+")


def delivered_shipment(
    db: psycopg.Connection[Row],
    delivered_at: datetime,
    *,
    ref: str = "SHP-001",
    case_ref: str = "NPP-7001",
) -> tuple[int, int]:
    """A shipment of a case with a physician, delivered at ``delivered_at`` by staff, with
    one reading and one excursion; returns (shipment_id, case_id)."""
    departed = delivered_at - timedelta(days=2)
    device = f"LOG-{ref}"
    shipment_id = shipment_with_logger(db, ref=ref, device_id=device, assigned_from=departed)
    case_id = register_case(db, case_ref, "test")
    link_shipment(db, shipment_id, case_id, "test")
    physician_id = register_physician(
        db,
        Physician(
            name="Dr. Anna Weber",
            licence_no=f"LIC-{ref}",
            institution="Klinikum Frankfurt",
            country="DE",
            mobile_e164=PHYSICIAN_MOBILE,
        ),
        "test",
    )
    assign_physician(db, case_id, physician_id, "test")
    db.execute(
        "INSERT INTO readings (device_id, ts, temp_c, shipment_id) VALUES (%s, %s, %s, %s)",
        (device, delivered_at - timedelta(minutes=20), 5.4, shipment_id),
    )
    db.execute(
        "INSERT INTO excursions (shipment_id, direction, started_at, ended_at, duration_min, "
        "peak_c) VALUES (%s, 'above', %s, %s, 40, 9.8)",
        (shipment_id, departed + timedelta(hours=3), departed + timedelta(hours=3, minutes=40)),
    )
    db.execute(
        "UPDATE shipments SET status = 'delivered', delivered_at = %s, delivered_by = 'staff' "
        "WHERE shipment_id = %s",
        (delivered_at, shipment_id),
    )
    return shipment_id, case_id


def sent_links(db: psycopg.Connection[Row], shipment_id: int, purpose: str) -> list[str]:
    """The links in the messages queued for a shipment's physician, oldest first."""
    rows = db.execute(
        "SELECT n.body FROM physician_links l JOIN notifications n USING (notification_id) "
        "WHERE l.shipment_id = %s AND l.purpose = %s ORDER BY l.link_id",
        (shipment_id, purpose),
    ).fetchall()
    found = []
    for row in rows:
        match = LINK.search(row["body"])
        assert match is not None, row["body"]
        found.append(match.group(0))
    return found


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def audit_actions(db: psycopg.Connection[Row], entity_id: int) -> list[str]:
    rows = db.execute(
        "SELECT action FROM audit_log WHERE entity_id = %s ORDER BY audit_id", (str(entity_id),)
    ).fetchall()
    return [r["action"] for r in rows]
