"""Live monitoring beyond temperature: offline, battery, arrival, delay, auto-resolve.

Pure decisions are tested directly; the sweep and the evaluation run against the real
database, with a FixedClock as the wall clock.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from alerts.service import acknowledge
from core.audit import verify_chain
from core.clock import FixedClock
from core.db import Row, connect
from core.severity import Severity
from ingest.service import store_batch
from monitor import live, queries
from monitor.live import LiveShipment, LoggerState, OpenAlert
from monitor.profiles import Rule
from monitor.service import evaluate_due, sweep_live
from tests.factories import T0, message, reading, shipment_with_logger

pytestmark = pytest.mark.storage
PREFIX = "coldchain/v1"
URL = "http://dash.example"
FRANKFURT = (50.09, 8.66)  # the factory shipment's destination


# --- pure logic -------------------------------------------------------------------------


def test_haversine_golden_distances() -> None:
    # One degree of latitude along a meridian: 2π · 6371.0088 km / 360 = 111.195 km.
    assert live.haversine_km(0, 0, 1, 0) == pytest.approx(111.195, abs=0.001)
    # Half the globe: π · 6371.0088 = 20015.114 km.
    assert live.haversine_km(0, 0, 0, 180) == pytest.approx(20015.114, abs=0.001)
    # Paris–London (published great-circle distance ≈ 343.5 km); symmetric; zero to itself.
    paris_london = live.haversine_km(48.8566, 2.3522, 51.5074, -0.1278)
    assert paris_london == pytest.approx(343.5, abs=0.5)
    assert live.haversine_km(51.5074, -0.1278, 48.8566, 2.3522) == pytest.approx(paris_london)
    assert live.haversine_km(*FRANKFURT, *FRANKFURT) == 0.0


@pytest.mark.parametrize(
    ("battery_pct", "expected"),
    [
        (None, None),
        (100.0, None),
        (20.1, None),
        (20.0, Severity.LOW),
        (5.1, Severity.LOW),
        (5.0, Severity.MEDIUM),
        (0.0, Severity.MEDIUM),
    ],
)
def test_battery_severity_thresholds(battery_pct: float | None, expected: Severity | None) -> None:
    assert live.battery_severity(battery_pct) is expected


def _logger(**overrides: Any) -> LoggerState:
    values: dict[str, Any] = {"device_id": "LOG-A", "interval_min": 5, "last_recv_ts": T0}
    return LoggerState(**(values | overrides))


def _shipment(*loggers: LoggerState, **overrides: Any) -> LiveShipment:
    values: dict[str, Any] = {
        "shipment_id": 1,
        "shipment_ref": "SHP-X",
        "status": "in_transit",
        "departed_at": T0,
        "expected_delivery_at": None,
        "destination_lat": FRANKFURT[0],
        "destination_lon": FRANKFURT[1],
        "arrival_radius_km": None,
        "loggers": loggers,
    }
    return LiveShipment(**(values | overrides))


def test_silent_logger_boundary_is_three_intervals_of_wall_clock() -> None:
    heard = _logger(last_recv_ts=T0, last_ts=T0 - timedelta(days=3))  # device time irrelevant
    never = _logger(device_id="LOG-B", last_recv_ts=None)
    limit = T0 + timedelta(minutes=live.OFFLINE_INTERVALS * 5)
    assert live.silent_loggers([heard, never], limit - timedelta(seconds=1)) == []
    assert live.silent_loggers([heard, never], limit) == [heard]


def test_plan_opens_upgrades_and_leaves_alone() -> None:
    now = T0 + timedelta(hours=1)
    shipment = _shipment(_logger(battery_pct=4.0, last_recv_ts=now))
    fresh = live.plan_live(shipment, [], now)
    assert [(c.rule_id, c.severity) for c in fresh.raise_] == [(live.BATTERY_LOW, Severity.MEDIUM)]
    low = OpenAlert(7, live.BATTERY_LOW, Severity.LOW)
    assert [c.severity for c in live.plan_live(shipment, [low], now).raise_] == [Severity.MEDIUM]
    same = OpenAlert(7, live.BATTERY_LOW, Severity.MEDIUM)
    assert live.plan_live(shipment, [same], now).empty


def test_plan_arrival_or_delivery_resolves_every_live_alert() -> None:
    now = T0 + timedelta(hours=5)
    silent_at_door = _logger(
        last_recv_ts=T0, lat=50.095, lon=8.66, position_ts=T0 + timedelta(hours=4)
    )
    late = _shipment(silent_at_door, expected_delivery_at=T0 + timedelta(hours=1))
    open_alerts = [
        OpenAlert(1, live.LOGGER_OFFLINE, Severity.MEDIUM),
        OpenAlert(2, live.DELIVERY_DELAYED, Severity.MEDIUM),
    ]
    plan = live.plan_live(late, open_alerts, now)
    assert plan.arrival is not None and plan.arrival.at == T0 + timedelta(hours=4)
    assert plan.raise_ == ()
    assert [(a.alert_id, note) for a, note in plan.resolve] == [
        (1, "shipment arrived at destination"),
        (2, "shipment arrived at destination"),
    ]
    delivered = live.plan_live(replace(late, status="delivered"), [], now)
    assert delivered.empty and delivered.arrival is None


def test_arrival_needs_a_fix_inside_the_radius_taken_after_departure() -> None:
    # 0.018° of latitude ≈ 2.0015 km: just outside the default 2 km, inside a 2.5 km fence.
    edge = _logger(lat=FRANKFURT[0] + 0.018, lon=FRANKFURT[1], position_ts=T0 + timedelta(hours=1))
    assert live.arrival(_shipment(edge)) is None
    found = live.arrival(_shipment(edge, arrival_radius_km=2.5))
    assert found is not None and found.distance_km == pytest.approx(2.0015, abs=0.001)
    stale = _logger(lat=FRANKFURT[0], lon=FRANKFURT[1], position_ts=T0 - timedelta(minutes=1))
    assert live.arrival(_shipment(stale)) is None
    assert live.arrival(_shipment(edge, destination_lat=None, arrival_radius_km=5)) is None


HIGH_30M = Rule(id="high-30m", above_c=8.0, mode="single", for_min=30, severity=Severity.HIGH)
FREEZE = Rule(id="freeze", below_c=0.0, mode="single", for_min=0, severity=Severity.CRITICAL)
WARM_CUM = Rule(id="warm", above_c=8.0, mode="cumulative", for_min=600, severity=Severity.MEDIUM)


def _at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def test_single_run_clears_only_when_seen_open_then_back_within_threshold() -> None:
    run = [(_at(0), 9.0), (_at(10), 9.5), (_at(20), 9.1), (_at(30), 9.0)]
    assert live.single_run_cleared_at(HIGH_30M, _at(0), _at(30), run) is None  # still open
    # A sensor error is neither in nor out of range; 8.0 is not above 8.0.
    back = [*run, (_at(40), None), (_at(45), math.nan), (_at(50), 8.0)]
    assert live.single_run_cleared_at(HIGH_30M, _at(0), _at(30), back) == _at(50)
    # Found when already over (the return at 50 was in the data that found it): a human closes.
    assert live.single_run_cleared_at(HIGH_30M, _at(0), _at(50), back) is None
    assert live.single_run_cleared_at(HIGH_30M, _at(0), None, back) is None
    assert live.single_run_cleared_at(WARM_CUM, _at(0), _at(30), back) is None  # never resets
    frozen = [(_at(0), -1.0), (_at(5), -0.2), (_at(10), 0.0)]
    assert live.single_run_cleared_at(FREEZE, _at(0), _at(0), frozen) == _at(10)


# --- against the database ---------------------------------------------------------------


def _store(
    db: psycopg.Connection[Row],
    points: list[tuple[float, float | None]],
    received_at: datetime,
    **extra: Any,
) -> None:
    readings = [reading("LOG-001", minute, temp, **extra) for minute, temp in points]
    store_batch(
        db,
        [message(PREFIX, {"device_id": "LOG-001", "readings": readings}, received_at=received_at)],
        PREFIX,
    )


def _alerts(db: psycopg.Connection[Row]) -> list[Row]:
    return db.execute(
        "SELECT alert_id, rule_id, severity, state, resolved_by, resolution_note, updated_at "
        "FROM alerts ORDER BY alert_id"
    ).fetchall()


def _count(db: psycopg.Connection[Row], table: str) -> int:
    row = db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()
    assert row is not None
    return int(row["n"])


def test_logger_offline_by_wall_clock_opens_once_and_resolves_on_data(
    db: psycopg.Connection[Row],
) -> None:
    shipment_id = shipment_with_logger(db)
    clock = FixedClock(_at(10))
    _store(db, [(0, 5.0), (5, 5.0), (10, 5.0)], received_at=_at(10))
    assert sweep_live(db, clock, URL).raised == []

    clock.advance(timedelta(minutes=14, seconds=59))  # 3 × 5 min not yet reached
    assert sweep_live(db, clock, URL).raised == []
    clock.advance(timedelta(seconds=1))
    assert sweep_live(db, clock, URL).raised == [(shipment_id, "logger-offline")]
    [alert] = _alerts(db)
    assert (alert["rule_id"], alert["severity"], alert["state"]) == (
        "logger-offline",
        "medium",
        "triggered",
    )
    [page] = db.execute("SELECT body FROM notifications").fetchall()
    assert "SHP-001" in page["body"] and "LOG-001" in page["body"] and "15 min" in page["body"]

    # Still silent: re-running changes nothing, not even the alert's timestamps.
    clock.advance(timedelta(minutes=30))
    again = sweep_live(db, clock, URL)
    assert (again.raised, again.resolved) == ([], [])
    assert _alerts(db) == [alert] and _count(db, "notifications") == 1

    # Late store-and-forward data: old device times, but received now → the logger is back.
    _store(db, [(15, 5.0), (20, 5.0)], received_at=clock.now())
    assert sweep_live(db, clock, URL).resolved == [(shipment_id, "logger-offline")]
    [closed] = _alerts(db)
    assert (closed["state"], closed["resolved_by"], closed["resolution_note"]) == (
        "resolved",
        "monitor",
        "logger reporting again",
    )
    assert sweep_live(db, clock, URL).resolved == []
    assert _count(db, "alerts") == 1
    assert verify_chain(db) is None


def test_battery_low_upgrades_and_clears_when_the_logger_is_swapped(
    db: psycopg.Connection[Row],
) -> None:
    shipment_id = shipment_with_logger(db)
    clock = FixedClock(_at(10))
    _store(db, [(0, 5.0)], received_at=_at(0), battery_pct=21.0)
    _store(db, [(5, 5.0)], received_at=_at(5), battery_pct=20.0)
    assert sweep_live(db, clock, URL).raised == [(shipment_id, "battery-low")]
    assert sweep_live(db, clock, URL).raised == []
    _store(db, [(10, 5.0)], received_at=_at(10), battery_pct=5.0)
    assert sweep_live(db, clock, URL).raised == [(shipment_id, "battery-low")]
    [alert] = _alerts(db)
    assert (alert["severity"], alert["state"]) == ("medium", "triggered")
    assert _count(db, "notifications") == 2  # opened, then paged again on the upgrade

    # A fresh logger reports (here: the same id after a battery swap).
    _store(db, [(15, 5.0)], received_at=_at(15), battery_pct=98.0)
    clock.advance(timedelta(minutes=5))
    assert sweep_live(db, clock, URL).resolved == [(shipment_id, "battery-low")]
    [closed] = _alerts(db)
    assert (closed["state"], closed["resolution_note"]) == ("resolved", "battery above 20 %")


def test_delay_then_geofence_arrival_delivers_and_stops_live_alerts(
    db: psycopg.Connection[Row],
) -> None:
    shipment_id = shipment_with_logger(db)
    db.execute(
        "UPDATE shipments SET expected_delivery_at = %s WHERE shipment_id = %s",
        (_at(60), shipment_id),
    )
    clock = FixedClock(_at(60))
    _store(db, [(60, 5.0)], received_at=_at(60), lat=50.2, lon=8.66)  # ≈ 12 km out
    assert sweep_live(db, clock, URL).raised == []  # due now, not yet late
    clock.advance(timedelta(seconds=1))
    assert sweep_live(db, clock, URL).raised == [(shipment_id, "delivery-delayed")]
    assert sweep_live(db, clock, URL).raised == []

    # 0.009° north of the destination ≈ 1.0 km: inside the 2 km fence.
    _store(db, [(64, 5.0)], received_at=_at(64), lat=50.099, lon=8.66)
    clock = FixedClock(_at(65))
    outcome = sweep_live(db, clock, URL)
    assert outcome.delivered == [shipment_id]
    assert outcome.resolved == [(shipment_id, "delivery-delayed")]
    shipment = db.execute(
        "SELECT status, delivered_at, delivered_by FROM shipments WHERE shipment_id = %s",
        (shipment_id,),
    ).fetchone()
    assert shipment == {"status": "delivered", "delivered_at": _at(64), "delivered_by": "monitor"}
    audit = db.execute(
        "SELECT actor, details FROM audit_log WHERE action = 'shipment.delivered'"
    ).fetchall()
    assert len(audit) == 1 and audit[0]["actor"] == "monitor"
    assert audit[0]["details"]["device"] == "LOG-001"
    assert audit[0]["details"]["distance_km"] == pytest.approx(1.0, abs=0.01)

    # Delivered: the logger going silent and the clock running on raise nothing more.
    clock.advance(timedelta(hours=6))
    quiet = sweep_live(db, clock, URL)
    assert (quiet.raised, quiet.resolved, quiet.delivered) == ([], [], [])
    assert [(a["rule_id"], a["state"]) for a in _alerts(db)] == [("delivery-delayed", "resolved")]
    assert verify_chain(db) is None


def test_fix_outside_the_fence_does_not_deliver_unless_the_shipment_fence_is_wider(
    db: psycopg.Connection[Row],
) -> None:
    shipment_id = shipment_with_logger(db)
    clock = FixedClock(_at(5))
    # 0.0225° north ≈ 2.5 km from the destination.
    _store(db, [(5, 5.0)], received_at=_at(5), lat=50.1125, lon=8.66)
    assert sweep_live(db, clock, URL).delivered == []
    db.execute("UPDATE shipments SET arrival_radius_km = 3 WHERE shipment_id = %s", (shipment_id,))
    assert sweep_live(db, clock, URL).delivered == [shipment_id]
    assert sweep_live(db, clock, URL).delivered == []
    assert _count(db, "alerts") == 0


def test_offline_alert_is_separate_from_a_critical_temperature_alert(
    db: psycopg.Connection[Row],
) -> None:
    shipment_with_logger(db)
    clock = FixedClock(_at(10))
    _store(db, [(0, 5.0), (5, -1.0), (10, -1.5)], received_at=_at(10))
    evaluate_due(db, clock, URL)
    clock.advance(timedelta(minutes=20))
    sweep_live(db, clock, URL)
    assert [(a["rule_id"], a["severity"], a["state"]) for a in _alerts(db)] == [
        ("freeze", "critical", "triggered"),
        ("logger-offline", "medium", "triggered"),
    ]


def test_single_rule_alert_resolves_after_return_to_range_cumulative_stays(
    db: psycopg.Connection[Row],
) -> None:
    shipment_with_logger(db)
    clock = FixedClock(_at(700))
    # 610 min at 9 °C: high-30m alarms at 30 min, warm-cumulative when the total reaches 600.
    _store(db, [(m, 9.0) for m in range(0, 620, 10)], received_at=_at(610))
    [first] = evaluate_due(db, clock, URL)
    assert (first.new_alarms, first.resolved) == (2, 0)
    high = next(a for a in _alerts(db) if a["rule_id"] == "high-30m")
    acknowledge(db, high["alert_id"], "qa@example", "api", clock.now())

    _store(db, [(620, 5.0)], received_at=_at(620))
    [second] = evaluate_due(db, clock, URL)
    assert (second.new_alarms, second.resolved) == (0, 1)
    states = {a["rule_id"]: (a["state"], a["resolved_by"]) for a in _alerts(db)}
    assert states == {
        "high-30m": ("resolved", "monitor"),
        "warm-cumulative": ("triggered", None),
    }
    note = next(a["resolution_note"] for a in _alerts(db) if a["rule_id"] == "high-30m")
    assert note == "back at or below 8 °C at 2026-03-02 18:20Z"
    resolved_audit = db.execute(
        "SELECT actor, details FROM audit_log WHERE action = 'alert.resolved'"
    ).fetchall()
    assert [(r["actor"], r["details"]["previous_state"]) for r in resolved_audit] == [
        ("monitor", "acknowledged")
    ]

    # Re-evaluating everything changes nothing.
    before = (_alerts(db), _count(db, "audit_log"), _count(db, "notifications"))
    db.execute("UPDATE shipments SET evaluate_from = %s", (T0,))
    [third] = evaluate_due(db, clock, URL)
    assert (third.new_alarms, third.resolved) == (0, 0)
    assert (_alerts(db), _count(db, "audit_log"), _count(db, "notifications")) == before

    # A new warm run is a new condition: it opens a new alert, the closed one stays closed.
    _store(db, [(m, 9.0) for m in range(630, 680, 10)], received_at=_at(680))
    [fourth] = evaluate_due(db, clock, URL)
    assert fourth.new_alarms == 1
    assert [(a["rule_id"], a["state"]) for a in _alerts(db)] == [
        ("high-30m", "resolved"),
        ("warm-cumulative", "triggered"),
        ("high-30m", "triggered"),
    ]


def test_excursion_found_already_over_stays_open_for_a_human(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    clock = FixedClock(_at(120))
    _store(db, [(0, 9.0), (10, 9.0), (20, 9.0), (30, 9.0), (40, 5.0)], received_at=_at(60))
    evaluate_due(db, clock, URL)
    _store(db, [(50, 5.0), (60, 5.0)], received_at=_at(70))
    [outcome] = evaluate_due(db, clock, URL)
    assert outcome.resolved == 0
    assert [(a["rule_id"], a["state"]) for a in _alerts(db)] == [("high-30m", "triggered")]


def test_ignore_period_starts_at_the_shipments_first_reading_not_the_batch(
    db: psycopg.Connection[Row],
) -> None:
    shipment_with_logger(db, profile_id="freezer")
    clock = FixedClock(_at(30))
    # Minute 0 is the logger still at ambient: inside the 10 min ignore period.
    _store(db, [(0, 5.0), (5, -12.0)], received_at=_at(5))
    [first] = evaluate_due(db, clock, URL)
    assert first.new_alarms == 0
    # Minute 15 is past the period counted from minute 0 (it would not be from minute 10).
    _store(db, [(10, -15.0), (15, 1.0)], received_at=_at(15))
    [second] = evaluate_due(db, clock, URL)
    assert second.new_alarms == 1
    assert [(a["rule_id"], a["severity"]) for a in _alerts(db)] == [("thaw", "critical")]


def test_a_shipment_locked_by_another_monitor_is_skipped(
    db: psycopg.Connection[Row], db_url: str
) -> None:
    shipment_id = shipment_with_logger(db)
    _store(db, [(0, 5.0)], received_at=_at(0))
    clock = FixedClock(_at(60))
    with connect(db_url) as other, other.transaction():
        claimed = other.execute(
            queries.CLAIM_LIVE_SHIPMENTS, {"rule_ids": list(live.LIVE_RULES)}
        ).fetchall()
        assert [r["shipment_id"] for r in claimed] == [shipment_id]
        assert sweep_live(db, clock, URL).raised == []
    assert sweep_live(db, clock, URL).raised == [(shipment_id, "logger-offline")]


def test_readings_evaluation_refuses_page_qa_and_stop_only_their_shipment(
    db: psycopg.Connection[Row],
) -> None:
    """A device time stored before ingest refused it (far beyond what evaluation can
    represent) must not stall the monitor for every shipment claimed with it."""
    bad = shipment_with_logger(db)
    good = shipment_with_logger(db, ref="SHP-002", device_id="LOG-002")
    _store(db, [(0, 5.0), (10, 12.0)], received_at=_at(10))
    db.execute(
        "INSERT INTO readings (device_id, ts, recv_ts, temp_c, shipment_id) "
        "VALUES ('LOG-001', '9999-12-31T23:59:59Z', %s, 4.0, %s)",
        (_at(10), bad),
    )
    db.execute(
        "INSERT INTO readings (device_id, ts, recv_ts, temp_c, shipment_id) "
        "VALUES ('LOG-002', %s, %s, 5.0, %s)",
        (_at(0), _at(0), good),
    )
    db.execute("UPDATE shipments SET evaluate_from = %s", (_at(0),))
    outcomes = evaluate_due(db, FixedClock(_at(60)), URL)
    assert [o.shipment_id for o in outcomes] == [good]
    [alert] = db.execute(
        "SELECT rule_id, severity, summary FROM alerts WHERE shipment_id = %s", (bad,)
    ).fetchall()
    assert alert["rule_id"] == "evidence-unevaluable" and alert["severity"] == "high"
    assert "cannot be represented" in alert["summary"]
    # Not claimed again until a new reading arrives; the bad row is still stored.
    assert evaluate_due(db, FixedClock(_at(61)), URL) == []
    stored = db.execute("SELECT count(*) AS n FROM readings WHERE shipment_id = %s", (bad,))
    assert stored.fetchone() == {"n": 3}
