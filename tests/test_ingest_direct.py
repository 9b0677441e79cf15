"""Pure parts of the writer's direct path (ingest/direct.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ingest.direct import (
    RECV_TS,
    SHIPMENT,
    AfterCopy,
    append_rows,
    assignments_by_device,
    shipment_at,
    with_shipments,
)
from ingest.models import Reading
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


def test_rows_carry_receipt_and_clock_ahead_and_get_their_shipment() -> None:
    rows: list[Any] = []
    readings = [
        Reading("L2", T0 + timedelta(minutes=3), 1, 6.0),
        Reading("L2", T0 + timedelta(minutes=9), 2, 6.5),  # 9 min ahead of receipt
    ]
    append_rows(rows, readings, T0, timedelta(minutes=5))
    assert [(r[RECV_TS], r[-2], r[SHIPMENT]) for r in rows] == [(T0, False, None), (T0, True, None)]
    spans = assignments_by_device(
        [
            {
                "device_id": "L2",
                "shipment_id": 9,
                "assigned_from": T0 + H / 60 * 5,
                "assigned_until": None,
            }
        ]
    )["L2"]
    assert [r[SHIPMENT] for r in with_shipments(rows, spans)] == [None, 9]


def test_after_copy_values_match_the_staging_statement() -> None:
    def rows(device: str, *readings: tuple[int, float, float | None, float | None]) -> list[Any]:
        out: list[Any] = []
        for minutes, temp, lat, lon in readings:
            ts = T0 + timedelta(minutes=minutes)
            append_rows(out, [Reading(device, ts, None, temp, None, lat, lon, 80.0)], T0, H)
        return out

    spans = assignments_by_device(
        [{"device_id": "L2", "shipment_id": 9, "assigned_from": T0, "assigned_until": None}]
    )["L2"]
    after = AfterCopy()
    # A reboot's (0, 0) is not a fix: the newest usable one is kept.
    after.add("L1", rows("L1", (0, 4.0, 10.0, 20.0), (5, 4.5, 0.0, 0.0)), assigned=False)
    after.add(
        "L2",
        with_shipments(rows("L2", (3, 6.0, None, None), (9, 6.5, None, None)), spans),
        assigned=True,
    )
    device, ts, recv_ts, temp, status, battery, lat, lon, position_ts, shipment = zip(
        *after.latest, strict=True
    )
    assert device == ("L1", "L2")
    assert temp == (4.5, 6.5)
    assert ts == (T0 + timedelta(minutes=5), T0 + timedelta(minutes=9))
    assert (lat, lon, position_ts) == ((10.0, None), (20.0, None), (T0, None))
    assert shipment == (None, 9)
    assert after.due == {9: T0 + timedelta(minutes=3)}
    assert after.stored == 4
