"""End to end with the simulators' fault scenarios: readings → ingest → monitor → alerts →
proposed verdict (and, for one, QA's signed disposition).

Each scenario is played at full speed through the ingest writer and the monitor
(tests/scenario_driver.py); the expectations are what the fault means for the drug.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from core.db import Row
from monitor import disposition, queries
from simulators.scenario import load_scenario
from tests.disposition_fixtures import PASSWORD, staff
from tests.scenario_driver import ScenarioRun, run_scenario

pytestmark = pytest.mark.storage


def _evidence(db: psycopg.Connection[Row], shipment_id: int) -> dict[str, Any]:
    shipment = db.execute(queries.SHIPMENT_FOR_ASSESSMENT, (shipment_id,)).fetchone()
    assert shipment is not None
    return disposition.shipment_evaluation(db, shipment)


def _alerts(db: psycopg.Connection[Row], shipment_id: int) -> dict[str, Row]:
    rows = db.execute(
        "SELECT rule_id, severity, state FROM alerts WHERE shipment_id = %s ORDER BY alert_id",
        (shipment_id,),
    ).fetchall()
    return {r["rule_id"]: r for r in rows}


def _minute(name: str, iso: str) -> float:
    start = load_scenario(name).start
    return (datetime.fromisoformat(iso) - start) / timedelta(minutes=1)


def test_refrigerant_exhaustion_warms_the_faulty_shipment_only(
    db: psycopg.Connection[Row],
) -> None:
    run = run_scenario(db, "refrigerant-exhaustion")
    faulty, control = _evidence(db, run.shipments["RX-001"]), _evidence(db, run.shipments["RX-002"])
    [warm] = faulty["evaluation"]["excursions"]
    # The coolant is spent from minute 300; the payload crosses 8 °C some time after.
    assert warm["direction"] == "above" and _minute("refrigerant-exhaustion", warm["start"]) > 300
    assert warm["peak_c"] > 8.0
    alerts = _alerts(db, run.shipments["RX-001"])
    assert alerts["high-30m"]["severity"] == "high"
    assert faulty["proposed_verdict"] == "review"
    assert control["evaluation"]["excursions"] == [] and control["proposed_verdict"] == "accept"
    assert not {"high-30m", "freeze"} & set(_alerts(db, run.shipments["RX-002"]))


def test_over_conditioning_freezes_and_proposes_rejection(db: psycopg.Connection[Row]) -> None:
    run = run_scenario(db, "over-conditioned")
    evidence = _evidence(db, run.shipments["OC-001"])
    [cold] = evidence["evaluation"]["excursions"]
    assert cold["direction"] == "below" and cold["peak_c"] < 0
    alerts = _alerts(db, run.shipments["OC-001"])
    # Critical freeze page, closed once the payload is back at or above 0 °C.
    assert (alerts["freeze"]["severity"], alerts["freeze"]["state"]) == ("critical", "resolved")
    assert evidence["proposed_verdict"] == "reject"


def test_door_open_is_a_short_warm_excursion_under_review(db: psycopg.Connection[Row]) -> None:
    run = run_scenario(db, "door-open")
    evidence = _evidence(db, run.shipments["DO-001"])
    [warm] = evidence["evaluation"]["excursions"]
    # The door opens at minute 150 for 15 min; the warm run starts within that window.
    assert 150 <= _minute("door-open", warm["start"]) <= 165 and warm["end"] is not None
    assert _alerts(db, run.shipments["DO-001"])["high-30m"]["state"] == "resolved"
    assert evidence["proposed_verdict"] == "review"


def test_tarmac_delay_is_ridden_out_by_the_passive_shipper(db: psycopg.Connection[Row]) -> None:
    run = run_scenario(db, "tarmac-delay")
    evidence = _evidence(db, run.shipments["TD-001"])
    assert evidence["evaluation"]["max_c"] <= 8.0
    assert evidence["evaluation"]["excursions"] == []
    assert evidence["proposed_verdict"] == "accept"
    assert run.raised == []


def test_customs_delay_warms_then_delivers_and_qa_rejects(db: psycopg.Connection[Row]) -> None:
    run = run_scenario(db, "customs-delay")
    shipment_id = run.shipments["CD-001"]
    evidence = _evidence(db, shipment_id)
    [warm] = evidence["evaluation"]["excursions"]
    assert warm["direction"] == "above" and warm["peak_c"] > 25.0  # an unconditioned shed
    assert run.delivered == [shipment_id]  # the geofence saw it arrive
    # Time above 25 °C, the top of the profile's budget band, is unstudied exposure.
    assert evidence["evaluation"]["unstudied_min"] > 0
    assert evidence["unstudied_min_across_legs"] == evidence["evaluation"]["unstudied_min"]
    assert evidence["proposed_verdict"] == "reject"
    assert {"high-30m", "warm-cumulative"} <= set(_alerts(db, shipment_id))

    qa = staff(db)["qa"]
    now = run.end + timedelta(hours=1)
    disposition.start_assessment(db, shipment_id, qa, now, via="test")
    view = disposition.assessment_view(db, shipment_id)
    assert view["quality_state"] == "under_assessment" and view["unassessed_alarms"] == 2
    for alarm in view["alarms"]:
        disposition.assess_alarm(
            db,
            shipment_id,
            alarm["alarm_id"],
            qa,
            impact="product_affected",
            note="hours near 30 °C in customs",
            now=now,
            via="test",
        )
    signed = disposition.sign_disposition(
        db,
        shipment_id,
        qa,
        password=PASSWORD,
        decision="rejected",
        reason="held at up to 29 °C in customs",
        new_expiry_date=None,
        now=now,
        via="test",
    )
    assert signed["meaning"] == "Rejected: not to be used for any patient"
    assert disposition.assessment_view(db, shipment_id)["quality_state"] == "rejected"


def test_route_deviation_alerts_and_clears_in_the_corridor(db: psycopg.Connection[Row]) -> None:
    run = run_scenario(db, "route-deviation", corridor_km=20)
    shipment_id = run.shipments["RD-001"]
    assert run.raised == [(shipment_id, "route-deviation")]
    assert run.resolved == [(shipment_id, "route-deviation")]
    assert _alerts(db, shipment_id)["route-deviation"]["state"] == "resolved"
    assert _evidence(db, shipment_id)["proposed_verdict"] == "accept"


def test_wrong_delivery_never_arrives_and_runs_late(db: psycopg.Connection[Row]) -> None:
    run = run_scenario(db, "wrong-delivery")
    shipment_id = run.shipments["WD-001"]
    assert run.delivered == []  # 8 km from the hospital is outside its geofence
    assert _alerts(db, shipment_id)["delivery-delayed"]["state"] == "triggered"


def test_offline_logger_pages_then_its_backlog_fills_the_gap(db: psycopg.Connection[Row]) -> None:
    run = run_scenario(db, "offline-store-and-forward")
    shipment_id = run.shipments["OF-001"]
    assert (shipment_id, "logger-offline") in run.raised
    assert _alerts(db, shipment_id)["logger-offline"]["state"] == "resolved"
    evidence = _evidence(db, shipment_id)
    assert evidence["evaluation"]["data_gap_min"] == 0.0  # the batch filled it
    assert evidence["proposed_verdict"] == "accept"


def test_sensor_error_is_a_data_gap_under_review(db: psycopg.Connection[Row]) -> None:
    run = run_scenario(db, "sensor-error")
    evaluation = _evidence(db, run.shipments["SE-001"])["evaluation"]
    # 40 min of sensor errors: never counted as in range, a gap of exactly 40 min.
    assert evaluation["data_gap_min"] == 40.0 and evaluation["excursions"] == []
    assert evaluation["verdict"] == "review"


def test_battery_drain_upgrades_the_battery_alert(db: psycopg.Connection[Row]) -> None:
    run = run_scenario(db, "battery-drain")
    shipment_id = run.shipments["BD-001"]
    assert run.raised.count((shipment_id, "battery-low")) == 2  # low, then upgraded
    assert _alerts(db, shipment_id)["battery-low"]["severity"] == "medium"


def test_clock_reset_keeps_the_first_values_and_reads_as_silence(
    db: psycopg.Connection[Row],
) -> None:
    run = run_scenario(db, "clock-reset")
    shipment_id = run.shipments["CR-001"]
    conflicts = db.execute("SELECT count(*) AS n FROM reading_conflicts").fetchone()
    assert conflicts is not None and conflicts["n"] > 0  # second values recorded, not used
    # For the hour its clock repeats used times the logger adds no new reading: by wall
    # clock that is silence, and the offline alert says so until new times arrive.
    assert run.raised == [(shipment_id, "logger-offline")]
    assert run.resolved == [(shipment_id, "logger-offline")]
    evidence = _evidence(db, shipment_id)
    assert evidence["evaluation"]["excursions"] == []
    assert evidence["proposed_verdict"] == "accept"


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("duplicate-resend", "DR-001"),
        ("clock-skew", "CS-001"),
        ("reboot-zero-gps", "RB-001"),
        ("malformed-payloads", "MP-001"),
    ],
)
def test_transport_faults_change_nothing_about_the_drug(
    db: psycopg.Connection[Row], name: str, ref: str
) -> None:
    run: ScenarioRun = run_scenario(db, name)
    evidence = _evidence(db, run.shipments[ref])
    assert evidence["evaluation"]["excursions"] == []
    assert evidence["proposed_verdict"] == "accept"
    assert run.raised == []
    if name == "malformed-payloads":
        assert db.execute("SELECT count(*) AS n FROM rejected_messages").fetchone() == {"n": 10}
