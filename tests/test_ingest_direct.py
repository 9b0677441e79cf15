"""Pure parts of the writer's direct path (ingest/direct.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ingest.direct import after_copy_params, assignments_by_device, readings_rows, shipment_at
from tests.factories import T0

H = timedelta(hours=1)


def test_shipment_at_honours_open_and_closed_assignments() -> None:
    spans = assignments_by_device(
        [
            {"device_id": "L1", "shipment_id": 1, "assigned_from": T0, "assigned_until": T0 + H},
            {
                "device_id": "L1",
                "shipment_id": 2,
                "assigned_from": T0 + 2 * H,
                "assigned_until": None,
            },
        ]
    )["L1"]
    assert shipment_at(spans, T0 - H) is None
    assert shipment_at(spans, T0) == 1
    assert shipment_at(spans, T0 + H) is None  # the end is exclusive
    assert shipment_at(spans, T0 + 5 * H) == 2


def test_after_copy_values_match_the_staging_statement() -> None:
    def row(
        device: str, minutes: int, temp: float, lat: float | None, lon: float | None
    ) -> tuple[Any, ...]:
        ts = T0 + timedelta(minutes=minutes)
        return (device, ts, None, temp, None, lat, lon, 80.0, None, None, "ok", T0)

    assignments = assignments_by_device(
        [{"device_id": "L2", "shipment_id": 9, "assigned_from": T0, "assigned_until": None}]
    )
    rows = readings_rows(
        [
            row("L1", 0, 4.0, 10.0, 20.0),
            row("L1", 5, 4.5, 0.0, 0.0),  # a reboot's (0, 0) is not a fix
            row("L2", 3, 6.0, None, None),
            row("L2", 9, 6.5, None, None),
        ],
        assignments,
        timedelta(minutes=5),
    )
    params = after_copy_params(rows)
    assert params["device_id"] == ["L1", "L2"]
    assert params["temp_c"] == [4.5, 6.5]
    assert (params["lat"], params["lon"]) == ([10.0, None], [20.0, None])
    assert params["position_ts"] == [T0, None]
    assert params["shipment_id"] == [None, 9]
    assert (params["due_shipment_id"], params["due_ts"]) == ([9], [T0 + timedelta(minutes=3)])
    assert params["stored"] == "4"
    assert [r[-1] for r in rows] == [False, False, False, True]  # 9 min ahead of receipt
