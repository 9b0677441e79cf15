"""Chain of custody: validated, append-only, in time order; delivery marks the shipment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from case_link.custody import CustodyError, CustodyEvent, custody_events, record_custody_event
from case_link.demo_data import demo_gtin
from case_link.units import normalise_gtin, shipment_units
from core.db import Row
from simulators.provision import provision
from simulators.scenario import load_scenario
from tests.factories import T0, shipment_with_logger

NOW = T0 + timedelta(days=2)


def event(kind: str, hours: float, **overrides: object) -> CustodyEvent:
    fields: dict[str, object] = {
        "event_type": kind,
        "at": T0 + timedelta(hours=hours),
        "place_name": "Memphis hub",
        "actor": "Dana (logistics)",
        "place_lat": 35.15,
        "place_lon": -90.05,
        "place_tz": "America/Chicago",
    }
    fields.update(overrides)
    return CustodyEvent(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"event_type": "teleported"}, "event_type"),
        ({"at": T0.replace(tzinfo=None)}, "at"),
        ({"at": NOW + timedelta(minutes=6)}, "at"),
        ({"place_name": " "}, "place.name"),
        ({"place_lat": None}, "place.lat"),
        ({"place_lat": 91.0}, "place.lat"),
        ({"place_lon": -181.0}, "place.lon"),
        ({"place_tz": "Mars/Olympus"}, "place.tz"),
        ({"actor": ""}, "actor"),
        ({"note": "x" * 2001}, "note"),
    ],
)
def test_invalid_events_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(CustodyError) as raised:
        event("packed", 0, **overrides).validate(NOW)
    assert raised.value.field == field


def test_events_are_listed_in_time_order_and_cannot_be_changed(
    db: psycopg.Connection[Row],
) -> None:
    shipment_id = shipment_with_logger(db)
    departed = record_custody_event(
        db, shipment_id, event("departed", 2), recorded_by="logistics@example.org", now=NOW
    )
    record_custody_event(
        db,
        shipment_id,
        event("packed", 0, place_lat=None, place_lon=None, note="2 units, gel packs"),
        recorded_by="logistics@example.org",
        now=NOW,
    )
    record_custody_event(
        db,
        shipment_id,
        event("handed_to_carrier", 1, at=(T0 + timedelta(hours=1)).astimezone(UTC)),
        recorded_by="logistics@example.org",
        now=NOW,
    )
    listed = custody_events(db, shipment_id)
    assert [e["event_type"] for e in listed] == ["packed", "handed_to_carrier", "departed"]
    assert listed[0]["place_lat"] is None and listed[0]["note"] == "2 units, gel packs"
    assert listed[0]["recorded_at"] == NOW
    for statement in (
        "UPDATE custody_events SET place_name = 'elsewhere' WHERE custody_event_id = %s",
        "DELETE FROM custody_events WHERE custody_event_id = %s",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            db.execute(statement, (departed,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("TRUNCATE custody_events")
    audit = db.execute(
        "SELECT details FROM audit_log WHERE action = 'shipment.custody_recorded' ORDER BY audit_id"
    ).fetchall()
    assert [a["details"]["event_type"] for a in audit] == [
        "departed",
        "packed",
        "handed_to_carrier",
    ]


def test_delivered_marks_the_shipment_and_sends_nothing(db: psycopg.Connection[Row]) -> None:
    shipment_id = shipment_with_logger(db)
    delivered_at = T0 + timedelta(hours=30)
    record_custody_event(
        db,
        shipment_id,
        event("delivered", 30, place_name="Uniklinik Frankfurt", place_tz="Europe/Berlin"),
        recorded_by="logistics@example.org",
        now=NOW,
    )
    shipment = db.execute(
        "SELECT status, delivered_at, delivered_by FROM shipments WHERE shipment_id = %s",
        (shipment_id,),
    ).fetchone()
    assert shipment == {
        "status": "delivered",
        "delivered_at": delivered_at,
        "delivered_by": "logistics@example.org",
    }
    notifications = db.execute("SELECT count(*) AS n FROM notifications").fetchone()
    assert notifications is not None and notifications["n"] == 0
    # A second delivered event (a correction) keeps the first delivery time.
    record_custody_event(
        db, shipment_id, event("delivered", 31), recorded_by="qa@example.org", now=NOW
    )
    again = db.execute(
        "SELECT delivered_at FROM shipments WHERE shipment_id = %s", (shipment_id,)
    ).fetchone()
    assert again is not None and again["delivered_at"] == delivered_at
    with pytest.raises(CustodyError, match="shipment 999 does not exist"):
        record_custody_event(db, 999, event("packed", 0), recorded_by="x", now=NOW)


def test_simulated_shipments_carry_physician_units_and_custody(
    db: psycopg.Connection[Row],
) -> None:
    scenario = load_scenario("mixed-faults")
    start = datetime(2026, 5, 4, 6, tzinfo=UTC)
    ids = provision(db, scenario, scenario.shipments[:2], start)
    provision(db, scenario, scenario.shipments[:2], start)  # idempotent
    for shipment_id in ids.values():
        kinds = [(e["event_type"], e["at"]) for e in custody_events(db, shipment_id)]
        assert kinds == [
            ("packed", start - timedelta(hours=1)),
            ("handed_to_carrier", start - timedelta(minutes=30)),
            ("departed", start),
        ]
        units = shipment_units(db, shipment_id)
        assert len(units) == 2 and all(u["gtin"] == demo_gtin() for u in units)
    doctors = db.execute(
        "SELECT DISTINCT p.mobile_e164 FROM cases c JOIN physicians p USING (physician_id)"
    ).fetchall()
    assert doctors == [{"mobile_e164": "+15555550100"}]
    # Each simulated case went through the program's steps, in order, by the workflow.
    steps = db.execute(
        "SELECT c.case_ref, array_agg(t.to_step ORDER BY t.transition_id) AS steps "
        "FROM cases c JOIN case_transitions t USING (case_id) GROUP BY c.case_ref"
    ).fetchall()
    assert len(steps) == 2
    for case in steps:
        assert case["steps"] == [
            "request",
            "review",
            "eligibility_pricing",
            "physician_authorization",
            "prepayment",
            "sourcing_serialization",
            "shipping",
        ], case["case_ref"]
    assert normalise_gtin(demo_gtin()) == demo_gtin()
