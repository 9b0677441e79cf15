"""What a simulated shipment carries besides its logger: a treating physician on its case,
serialized units and the first custody events, so demos and end-to-end runs show the whole
case link. Obviously fictitious: the physician's number is in the +1 555 01xx range that
is reserved for fiction, the GTINs use the GS1 prefix 0 0312345 of documentation examples.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Final

import psycopg

from case_link.cases import create_case, transition_case
from case_link.custody import CustodyEvent, custody_events, record_custody_event
from case_link.physicians import Physician, assign_physician, register_physician
from case_link.shipments import Place
from case_link.units import UnitIdentifier, add_unit, gs1_check_digit, shipment_units
from core.db import Row

DEMO_PHYSICIAN: Final = Physician(
    name="Dr. Demo Physician",
    licence_no="DEMO-0001",
    institution="Demo University Hospital",
    country="DE",
    mobile_e164="+15555550100",
    email="demo.physician@example.org",
)
UNITS_PER_SHIPMENT: Final = 2
_GTIN_BODY: Final = "0031234567890"  # 13 digits; the check digit is computed


# The program's steps a simulated case walks through before its shipment is linked; the
# destination's regulatory filing is taken as not required.
_STEPS_TO_SOURCING: Final = (
    "review",
    "eligibility_pricing",
    "physician_authorization",
    "prepayment",
    "sourcing_serialization",
)


def open_simulated_case(
    conn: psycopg.Connection[Row], case_ref: str, *, actor: str, now: datetime
) -> int:
    """The case of a simulated shipment, taken through the program's steps by the same
    workflow staff use (each step in ``case_transitions`` and the audit log) up to
    sourcing & serialization, with the demo physician authorizing; an existing case is
    returned as it is."""
    existing = conn.execute("SELECT case_id FROM cases WHERE case_ref = %s", (case_ref,)).fetchone()
    if existing is not None:
        return int(existing["case_id"])
    case_id = create_case(
        conn, case_ref, actor, now, regulatory_filing_required=False, note="simulated shipment"
    )
    assign_physician(conn, case_id, register_physician(conn, DEMO_PHYSICIAN, actor), actor)
    for step in _STEPS_TO_SOURCING:
        transition_case(conn, case_id, step, actor, now, note="simulated shipment")
    return case_id


def start_shipping(
    conn: psycopg.Connection[Row], case_id: int, *, actor: str, now: datetime
) -> None:
    """A case whose shipment has just been linked moves on to shipping."""
    row = conn.execute("SELECT step FROM cases WHERE case_id = %s", (case_id,)).fetchone()
    if row is not None and row["step"] == "sourcing_serialization":
        transition_case(conn, case_id, "shipping", actor, now, note="simulated shipment departed")


def demo_gtin() -> str:
    return _GTIN_BODY + str(gs1_check_digit(_GTIN_BODY))


def equip_simulated_shipment(
    conn: psycopg.Connection[Row],
    *,
    case_id: int,
    shipment_id: int,
    shipment_ref: str,
    origin: Place,
    start: datetime,
    actor: str,
) -> None:
    """Physician, units and packed → handed to carrier → departed; idempotent."""
    case = conn.execute("SELECT physician_id FROM cases WHERE case_id = %s", (case_id,)).fetchone()
    if case is not None and case["physician_id"] is None:
        assign_physician(conn, case_id, register_physician(conn, DEMO_PHYSICIAN, actor), actor)
    if not shipment_units(conn, shipment_id):
        # A serial per shipment and unit, stable across runs: at most 20 characters.
        stem = hashlib.sha256(shipment_ref.encode()).hexdigest()[:12].upper()
        for n in range(1, UNITS_PER_SHIPMENT + 1):
            unit = UnitIdentifier.parse(
                demo_gtin(),
                f"{stem}-{n}",
                f"DEMO{start:%y%m}",
                (start + timedelta(days=365)).date(),
                today=start.date(),
            )
            add_unit(conn, shipment_id, unit, actor, start)
    if not custody_events(conn, shipment_id):
        for kind, minutes_before in (("packed", 60), ("handed_to_carrier", 30), ("departed", 0)):
            event = CustodyEvent(
                event_type=kind,
                at=start - timedelta(minutes=minutes_before),
                place_name=origin.name,
                place_lat=origin.lat,
                place_lon=origin.lon,
                place_tz=origin.tz,
                actor=actor,
            )
            record_custody_event(conn, shipment_id, event, recorded_by=actor, now=start)
