"""The dashboard's pure logic: map states, filters, view bounds, trails, units, times, the
map Patch, the shipment chart and device flags. No database, no browser."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from dashboard import fleet, livemap
from dashboard.devices import (
    FLAG_BATTERY_LOW,
    FLAG_CALIBRATION_OVERDUE,
    FLAG_CALIBRATION_SOON,
    device_flags,
    device_lines,
    sort_lines,
)
from dashboard.fleet import Filters, MapState
from dashboard.formatting import both_times, minutes_ago, temperature, to_unit, unit_of
from dashboard.shipment import humidity_values, temperature_figure

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REFRIGERATED = {"storage": {"min_c": 2.0, "max_c": 8.0}}


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "shipment_id": 1,
        "shipment_ref": "SHP-001",
        "case_ref": "CASE-7",
        "profile_id": "adalimumab-pen",
        "lane": "MEM-FRA",
        "status": "in_transit",
        "carrier": "acme-cold",
        "device_id": "LOG-001",
        "interval_min": 5,
        "last_recv_ts": NOW - timedelta(minutes=4),
        "last_temp_c": 4.8,
        "lat": 40.64131,
        "lon": -73.77812,
        "open_alerts": 0,
        "worst_rank": None,
        "temperature_rank": None,
        "offline_alert": False,
        "open_excursion": False,
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, MapState.OK),
        ({"status": "delivered", "open_excursion": True}, MapState.DELIVERED),
        ({"open_excursion": True}, MapState.EXCURSION),
        # medium (rank 2) on a temperature rule is an excursion; low (rank 1) a warning
        ({"open_alerts": 1, "temperature_rank": 2}, MapState.EXCURSION),
        ({"open_alerts": 1, "temperature_rank": 1}, MapState.WARNING),
        ({"open_alerts": 1, "offline_alert": True}, MapState.OFFLINE),
        # 3 intervals of 5 min = 15 min of silence by wall clock is offline; 14 is not
        ({"last_recv_ts": NOW - timedelta(minutes=16)}, MapState.OFFLINE),
        ({"last_recv_ts": NOW - timedelta(minutes=14)}, MapState.OK),
        ({"last_recv_ts": None}, MapState.OFFLINE),
        ({"last_recv_ts": None, "status": "planned"}, MapState.OK),
        # an excursion outranks an offline logger
        ({"open_excursion": True, "offline_alert": True}, MapState.EXCURSION),
        ({"open_alerts": 2}, MapState.WARNING),
    ],
)
def test_state_of(overrides: dict[str, Any], expected: MapState) -> None:
    assert fleet.state_of(row(**overrides), NOW) == expected


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ({"min_c": 2, "max_c": 8}, "refrigerated"),
        ({"min_c": 20, "max_c": 25}, "room temperature"),
        ({"min_c": -25, "max_c": -10}, "frozen"),
        ({"min_c": -80, "max_c": -60}, "ultra-cold"),
        ({"min_c": -196, "max_c": -150}, "cryogenic"),
    ],
)
def test_drug_class_follows_the_storage_range(storage: dict[str, float], expected: str) -> None:
    assert fleet.drug_class({"storage": storage}) == expected
    assert fleet.drug_class({"storage": storage, "drug_class": "biologic"}) == "biologic"


def test_filters_and_search() -> None:
    items = fleet.classify(
        [
            row(),
            row(shipment_id=2, shipment_ref="SHP-002", case_ref=None, lane="EWR-SIN"),
            row(shipment_id=3, shipment_ref="SHP-003", carrier="polar", open_excursion=True),
        ],
        {"adalimumab-pen": REFRIGERATED},
        NOW,
    )

    def ids(filters: Filters) -> list[int]:
        return [i.row["shipment_id"] for i in fleet.select(items, filters)]

    assert ids(Filters()) == [1, 2, 3]
    assert ids(Filters(lanes=("EWR-SIN",))) == [2]
    assert ids(Filters(carriers=("polar",))) == [3]
    assert ids(Filters(states=("excursion",))) == [3]
    assert ids(Filters(drug_classes=("frozen",))) == []
    assert ids(Filters.from_inputs(None, None, ["refrigerated"], None, "  shp-00 ")) == [1, 2, 3]
    assert ids(Filters.from_inputs(None, None, None, None, "case-7")) == [1, 3]


def test_view_bounds_from_relayout_data() -> None:
    corners = [[-95, 45], [-75, 45], [-75, 25], [-95, 25]]
    bounds = fleet.view_bounds({"map._derived": {"coordinates": corners}})
    assert bounds == fleet.Bounds(-95, 25, -75, 45)
    assert bounds.contains(40.6, -80.0) and not bounds.contains(40.6, -70.0)
    # Across the antimeridian: 170° E to 170° W.
    corners = [[170, 10], [190, 10], [190, -10], [170, -10]]
    pacific = fleet.view_bounds({"map": {"_derived": {"coordinates": corners}}})
    assert pacific is not None and pacific.contains(0, 179.5) and pacific.contains(0, -175)
    assert not pacific.contains(0, 0)
    world = [[-400, 80], [400, 80], [400, -80], [-400, -80]]
    assert fleet.view_bounds({"map._derived": {"coordinates": world}}) is None
    assert fleet.view_bounds({"autosize": True}) is None
    assert fleet.view_bounds(None) is None


def test_trails_only_for_a_few_shipments_in_view() -> None:
    items = fleet.classify(
        [row(shipment_id=i, lat=10.0 + i, lon=10.0) for i in range(1, 6)],
        {"adalimumab-pen": REFRIGERATED},
        NOW,
    )
    assert fleet.trail_candidates(items, None, 5) == [1, 2, 3, 4, 5]
    assert fleet.trail_candidates(items, None, 4) == []  # too many: none
    assert fleet.trail_candidates(items, fleet.Bounds(0, 10.5, 20, 12.5), 4) == [1, 2]
    lats, lons = fleet.trail_arrays(
        [
            {"shipment_id": 1, "lat": 1.0, "lon": 2.0},
            {"shipment_id": 1, "lat": 1.5, "lon": 2.5},
            {"shipment_id": 2, "lat": 9.0, "lon": 9.0},
        ]
    )
    assert lats == [1.0, 1.5, None, 9.0] and lons == [2.0, 2.5, None, 9.0]


def test_map_payload_patch_and_digest() -> None:
    items = fleet.classify(
        [row(), row(shipment_id=2, shipment_ref="SHP-002", open_excursion=True, lat=None)],
        {"adalimumab-pen": REFRIGERATED},
        NOW,
    )
    payload = livemap.map_payload(items, [], "F")
    ok = payload[str(livemap.STATE_TRACE[MapState.OK])]
    assert ok["lat"].tolist() == [40.6413] and ok["lon"].tolist() == [-73.7781]
    assert ok["text"].tolist() == ["SHP-001 · 40.6 °F"]  # 4.8 °C × 9/5 + 32 = 40.64
    assert ok["customdata"].tolist() == [1]
    # No position yet: counted, but no marker.
    assert payload[str(livemap.STATE_TRACE[MapState.EXCURSION])]["lat"].tolist() == []
    operations = livemap.patch_of(payload).to_plotly_json()["operations"]
    assert {tuple(op["location"]) for op in operations} >= {
        ("data", 0, "lat"),
        ("data", livemap.STATE_TRACE[MapState.OK], "customdata"),
    }
    assert all(op["location"][0] == "data" for op in operations)  # never the layout
    same = livemap.digest_of(livemap.map_payload(items, [], "F"))
    assert same == livemap.digest_of(payload)
    assert livemap.digest_of(livemap.map_payload(items, [], "C")) != same


def test_units_and_times() -> None:
    assert to_unit(0, "F") == 32 and to_unit(-40, "F") == -40 and to_unit(8, "C") == 8
    assert temperature(8.0, "F") == "46.4 °F" and temperature(None, "C") == "—"
    assert unit_of("F") == "F" and unit_of("kelvin") == "C" and unit_of(None) == "C"
    noon = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert both_times(noon, "Europe/Berlin") == "2026-07-01 12:00 UTC · 2026-07-01 14:00 CEST"
    assert both_times(noon, "UTC") == "2026-07-01 12:00 UTC"
    assert both_times(noon, "Not/AZone") == "2026-07-01 12:00 UTC"
    assert both_times(None, "Europe/Berlin") == "—"
    assert minutes_ago(NOW - timedelta(seconds=59), NOW) == "< 1 min"
    assert minutes_ago(NOW - timedelta(minutes=90), NOW) == "90 min"
    assert minutes_ago(NOW - timedelta(hours=5), NOW) == "5 h"
    assert minutes_ago(NOW - timedelta(days=3), NOW) == "3 d"


def test_device_flags_and_sorting() -> None:
    today = date(2026, 11, 25)
    devices: list[dict[str, Any]] = [
        {
            "device_id": "A",
            "calibration_due": date(2026, 11, 24),
            "battery_pct": 90,
            "active": True,
        },
        {
            "device_id": "B",
            "calibration_due": date(2026, 12, 20),
            "battery_pct": 20,
            "active": True,
        },
        {"device_id": "C", "calibration_due": None, "battery_pct": None, "active": True},
        {"device_id": "D", "calibration_due": date(2027, 6, 1), "battery_pct": 55, "active": True},
    ]
    assert device_flags(devices[0], today) == [FLAG_CALIBRATION_OVERDUE]
    assert device_flags(devices[1], today) == [FLAG_CALIBRATION_SOON, FLAG_BATTERY_LOW]
    assert device_flags(devices[2], today) == [] and device_flags(devices[3], today) == []
    lines = device_lines(devices, today)
    by_battery = [line.row["device_id"] for line in sort_lines(lines, "battery_pct", False)]
    assert by_battery == ["B", "D", "A", "C"]  # unknown last
    by_due = [line.row["device_id"] for line in sort_lines(lines, "calibration_due", True)]
    assert by_due == ["D", "B", "A", "C"]  # unknown last, also descending
    with pytest.raises(ValueError, match="sort column"):
        sort_lines(lines, "password_hash", False)


def _buckets(rh: list[float | None]) -> list[dict[str, Any]]:
    return [
        {
            "ts": NOW + timedelta(minutes=10 * i),
            "temp_c": 5.0,
            "min_c": 4.0,
            "max_c": 9.0 if i == 1 else 6.0,  # a short spike kept by the bucket's max
            "rh_pct": value,
        }
        for i, value in enumerate(rh)
    ]


def test_chart_humidity_on_its_own_axis_only_when_measured() -> None:
    shipment = {"definition": REFRIGERATED}
    excursions = [{"started_at": NOW, "ended_at": None}]
    with_rh = _buckets([45.04, None, 0.0])
    assert humidity_values(with_rh) == [45.0, None, 0.0]  # 0 % is a value, a gap is not
    assert humidity_values(_buckets([None, None])) is None
    assert humidity_values([{"ts": NOW, "temp_c": 5.0, "min_c": 5.0, "max_c": 5.0}]) is None
    assert humidity_values([]) is None

    for unit in ("C", "F"):
        figure = temperature_figure(shipment, with_rh, excursions, unit).to_plotly_json()
        traces = {t.get("name"): t for t in figure["data"]}
        humidity = traces["relative humidity %"]
        assert humidity["yaxis"] == "y2" and list(humidity["y"]) == [45.0, None, 0.0]
        assert "%{y:.1f} %" in humidity["hovertemplate"]
        assert figure["layout"]["yaxis2"]["range"] == [0, 100]
        assert figure["layout"]["yaxis2"]["overlaying"] == "y"
        assert figure["layout"]["yaxis"]["title"]["text"] == f"°{unit}"
        # Only humidity uses the right-hand axis; temperature keeps min and max per bucket.
        assert [t.get("yaxis") for t in figure["data"]].count("y2") == 1
        assert max(traces[None]["y"]) == round(to_unit(9.0, unit), 2)
        assert list(traces[f"temperature °{unit}"]["y"]) == [round(to_unit(5.0, unit), 2)] * 3
        assert sum(len(t["y"]) for t in figure["data"]) == 4 * 3

    without = temperature_figure(shipment, _buckets([None, None]), excursions).to_plotly_json()
    assert [t.get("name") for t in without["data"]] == [None, "min–max", "temperature °C"]
    assert "yaxis2" not in without["layout"]
    assert all(t.get("yaxis") in (None, "y") for t in without["data"])
    empty = temperature_figure(shipment, [], []).to_plotly_json()
    assert empty["data"] == [] and "yaxis2" not in empty["layout"]
