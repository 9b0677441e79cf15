"""Route deviation: distance to the planned route (pure) and the live sweep's alert."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from core.clock import FixedClock
from core.db import Row
from ingest.service import store_batch
from monitor import live
from monitor.live import LiveShipment, LoggerState
from monitor.route import EARTH_RADIUS_KM, distance_to_route_km, distance_to_segment_km
from monitor.service import set_planned_route, sweep_live
from tests.factories import T0, message, reading, shipment_with_logger

PREFIX = "coldchain/v1"
URL = "http://dash.example"
DEGREE_KM = 2 * math.pi * EARTH_RADIUS_KM / 360  # 111.195 km of great circle per degree


def test_distance_to_a_segment_alongside_behind_and_beyond() -> None:
    # Segment along the equator from 0° E to 10° E. A point 1° north, alongside it: the
    # cross-track distance is exactly 1° of great circle (the meridian meets the equator
    # at a right angle), 111.195 km.
    assert distance_to_segment_km((1.0, 5.0), (0.0, 0.0), (0.0, 10.0)) == pytest.approx(
        DEGREE_KM, rel=1e-9
    )
    # Behind the start (2° W) and beyond the end (12° E): distance to that end, 2°.
    assert distance_to_segment_km((0.0, -2.0), (0.0, 0.0), (0.0, 10.0)) == pytest.approx(
        2 * DEGREE_KM, rel=1e-9
    )
    assert distance_to_segment_km((0.0, 12.0), (0.0, 0.0), (0.0, 10.0)) == pytest.approx(
        2 * DEGREE_KM, rel=1e-9
    )
    # On the segment: zero (to float precision); a degenerate segment is a point.
    assert distance_to_segment_km((0.0, 3.0), (0.0, 0.0), (0.0, 10.0)) == pytest.approx(
        0.0, abs=1e-6
    )
    assert distance_to_segment_km((1.0, 0.0), (0.0, 0.0), (0.0, 0.0)) == pytest.approx(
        DEGREE_KM, rel=1e-9
    )


def test_distance_to_a_route_through_waypoints_is_the_nearest_segment() -> None:
    # An L-shaped route: east along the equator to 10° E, then north along 10° E to 10° N.
    route = [(0.0, 0.0), (0.0, 10.0), (10.0, 10.0)]
    # (5° N, 9° E) is 1° from the northbound leg (at 5° N one degree of longitude is
    # cos 5° of a degree: asin(cos 5° · sin 1°) ≈ 0.99619°) and 5° from the equator leg.
    expected = math.degrees(math.asin(math.cos(math.radians(5)) * math.sin(math.radians(1))))
    assert distance_to_route_km((5.0, 9.0), route) == pytest.approx(expected * DEGREE_KM, rel=1e-9)
    assert distance_to_route_km((0.0, 5.0), [(0.0, 0.0)]) == pytest.approx(5 * DEGREE_KM)
    with pytest.raises(ValueError, match="at least one point"):
        distance_to_route_km((0.0, 0.0), [])


def _shipment(*loggers: LoggerState, **overrides: Any) -> LiveShipment:
    values: dict[str, Any] = {
        "shipment_id": 1,
        "shipment_ref": "SHP-X",
        "status": "in_transit",
        "departed_at": T0,
        "expected_delivery_at": None,
        "destination_lat": 0.0,
        "destination_lon": 10.0,
        "arrival_radius_km": None,
        "origin_lat": 0.0,
        "origin_lon": 0.0,
        "route_corridor_km": 50.0,
        "loggers": loggers,
    }
    return LiveShipment(**(values | overrides))


def _fix(lat: float, lon: float, minutes: float = 60) -> LoggerState:
    at = T0 + timedelta(minutes=minutes)
    return LoggerState("LOG-A", 5, at, at, None, lat, lon, at)


def test_route_deviation_condition() -> None:
    now = T0 + timedelta(hours=2)
    # 0.5° north of the equator route is 55.6 km: outside a 50 km corridor.
    far = live.route_deviation(_shipment(_fix(0.5, 5.0)), now)
    assert far is not None and far.rule_id == live.ROUTE_DEVIATION
    assert far.since == T0 + timedelta(minutes=60)
    assert far.detail.startswith("LOG-A is 56 km from the planned route (corridor 50 km)")
    assert live.route_deviation(_shipment(_fix(0.4, 5.0)), now) is None  # 44.5 km: inside
    assert live.route_deviation(_shipment(_fix(0.5, 5.0), route_corridor_km=None), now) is None
    # A fix from before departure is stale and says nothing about this trip.
    assert live.route_deviation(_shipment(_fix(0.5, 5.0, minutes=-10)), now) is None
    # Waypoints bend the route: via (5° N, 5° E) the same fix is near the planned path.
    bent = _shipment(_fix(0.5, 0.5), route_waypoints=((5.0, 5.0),))
    assert live.route_deviation(bent, now) is None
    plan = live.plan_live(_shipment(_fix(0.5, 5.0)), [], T0 + timedelta(minutes=61))
    assert [c.rule_id for c in plan.raise_] == [live.ROUTE_DEVIATION]


@pytest.mark.storage
def test_sweep_raises_route_deviation_and_clears_it_back_in_the_corridor(
    db: psycopg.Connection[Row],
) -> None:
    # The factory lane: Memphis hub (35.15, -90.05) → Frankfurt (50.09, 8.66).
    shipment_id = shipment_with_logger(db)
    clock = FixedClock(T0 + timedelta(minutes=12))

    def fix(minute: float, lat: float, lon: float) -> None:
        batch = {
            "device_id": "LOG-001",
            "readings": [reading("LOG-001", minute, 5.0, lat=lat, lon=lon)],
        }
        at = T0 + timedelta(minutes=minute)
        store_batch(db, [message(PREFIX, batch, received_at=at)], PREFIX)

    fix(10, 35.6, -90.05)  # 50 km north of Memphis, off the great circle to Frankfurt
    assert sweep_live(db, clock, URL).raised == []  # no corridor: not watched
    with pytest.raises(ValueError, match="corridor_km"):
        set_planned_route(db, shipment_id, corridor_km=0, actor="test")
    with pytest.raises(ValueError, match=r"waypoints\.0"):
        set_planned_route(db, shipment_id, corridor_km=20, waypoints=[(95.0, 0.0)], actor="test")
    set_planned_route(db, shipment_id, corridor_km=20, actor="qa@example.org")
    assert sweep_live(db, clock, URL).raised == [(shipment_id, "route-deviation")]
    assert sweep_live(db, clock, URL).raised == []  # one alert, not one per sweep
    [alert] = db.execute("SELECT summary, state FROM alerts").fetchall()
    assert "from the planned route (corridor 20 km)" in alert["summary"]
    fix(20, 35.16, -90.0)  # back beside the origin
    clock.advance(timedelta(minutes=10))
    assert sweep_live(db, clock, URL).resolved == [(shipment_id, "route-deviation")]
    closed = db.execute("SELECT state, resolution_note FROM alerts").fetchone()
    assert closed == {"state": "resolved", "resolution_note": "back within the route corridor"}
    planned = db.execute(
        "SELECT actor, details FROM audit_log WHERE action = 'shipment.route_planned'"
    ).fetchall()
    assert planned == [{"actor": "qa@example.org", "details": {"corridor_km": 20, "waypoints": []}}]


@pytest.mark.storage
def test_cli_sets_and_clears_the_route(
    db: psycopg.Connection[Row], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.cli import main

    shipment_id = shipment_with_logger(db)
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", db_url)
    args = ["monitor", "route", "SHP-001", "--corridor-km", "30", "--via", "41.97,-87.91"]
    assert main(args) == 0
    route = "SELECT route_corridor_km, route_waypoints FROM shipments WHERE shipment_id = %s"
    stored = db.execute(route, (shipment_id,)).fetchone()
    assert stored == {"route_corridor_km": 30.0, "route_waypoints": [[41.97, -87.91]]}
    assert main(["monitor", "route", "SHP-001", "--off"]) == 0
    assert db.execute(route, (shipment_id,)).fetchone() == {
        "route_corridor_km": None,
        "route_waypoints": [],
    }
    assert main(["monitor", "route", "NOPE", "--off"]) == 2  # named error, no traceback
    with pytest.raises(SystemExit):
        main(["monitor", "route", "SHP-001", "--corridor-km", "5", "--via", "north"])
