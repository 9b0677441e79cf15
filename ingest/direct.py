"""The writer's direct path: COPY a batch straight into ``readings`` when all of it is new.

Staging the rows and inserting them with ``ON CONFLICT`` costs the database about twice
what a plain COPY does. Almost every batch holds only new readings (duplicates come from
redeliveries after a restart and from loggers resending), so the writer first COPYs the
batch into ``readings`` inside a savepoint. The primary key (device_id, ts) still decides:
if any key of the batch is already stored, or is being stored by another writer, the COPY
fails with a unique violation, the savepoint is rolled back, nothing of it remains, and
the batch takes the staging path, which tells duplicates from conflicts. A COPY stores
all rows or none, so what the staging statement derives from "the rows inserted"
(device_latest, shipments due for evaluation, the NOTIFY) is computed here from the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import psycopg

from core.db import Row
from ingest import queries

# Positions in a staging row (queries.STAGING_TYPES) and in a readings row, which appends
# the shipment and the clock-ahead flag.
DEVICE, TS, TEMP_C, LAT, LON, BATTERY, STATUS, RECV_TS, SHIPMENT = 0, 1, 3, 5, 6, 7, 10, 11, 12
_KEY = itemgetter(DEVICE, TS)

Assignment = tuple[datetime, datetime | None, int]  # assigned_from, assigned_until, shipment


def copy_new_readings(
    conn: psycopg.Connection[Row],
    rows: list[tuple[Any, ...]],
    device_ids: Iterable[str],
    clock_ahead_tolerance: timedelta,
) -> bool:
    """Store every row (staging layout) with one COPY; False, with nothing stored, if any
    key already exists. Must run inside the caller's transaction."""
    assignments = assignments_by_device(
        conn.execute(queries.ASSIGNMENTS, {"device_ids": sorted(device_ids)}).fetchall()
    )
    # Key order: index-friendly, and the order every writer uses for the same keys.
    full = readings_rows(sorted(rows, key=_KEY), assignments, clock_ahead_tolerance)
    try:
        with conn.transaction(), conn.cursor().copy(queries.COPY_READINGS) as copy:
            copy.set_types(queries.READINGS_TYPES)
            write_row = copy.write_row
            for row in full:
                write_row(row)
            # Computed while the server is still storing the rows sent last.
            after = after_copy_params(full)
    except psycopg.errors.UniqueViolation:
        return False
    conn.execute(queries.AFTER_COPY, after).fetchone()
    return True


def assignments_by_device(rows: list[Row]) -> dict[str, list[Assignment]]:
    """Each device's shipment assignments, latest first."""
    out: dict[str, list[Assignment]] = {}
    for row in rows:
        out.setdefault(row["device_id"], []).append(
            (row["assigned_from"], row["assigned_until"], row["shipment_id"])
        )
    for spans in out.values():
        spans.sort(key=itemgetter(0), reverse=True)
    return out


def shipment_at(spans: list[Assignment], ts: datetime) -> int | None:
    """The shipment the device was assigned to at ``ts`` (device time), if any."""
    for assigned_from, assigned_until, shipment_id in spans:
        if assigned_from <= ts and (assigned_until is None or ts < assigned_until):
            return shipment_id
    return None


def readings_rows(
    rows: list[tuple[Any, ...]],
    assignments: dict[str, list[Assignment]],
    clock_ahead_tolerance: timedelta,
) -> list[tuple[Any, ...]]:
    """Staging rows with the shipment and the clock-ahead flag appended."""
    out = []
    for row in rows:
        spans = assignments.get(row[DEVICE])
        shipment = shipment_at(spans, row[TS]) if spans else None
        out.append((*row, shipment, row[TS] > row[RECV_TS] + clock_ahead_tolerance))
    return out


def after_copy_params(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """device_latest values, shipments due and the NOTIFY payload for rows just stored.

    ``rows`` are readings rows in key order. As in the staging statement: per device the
    newest reading, and the newest usable GPS fix ((0, 0) is what loggers report after a
    reboot); per shipment the earliest reading.
    """
    latest: dict[str, tuple[Any, ...]] = {}
    fixes: dict[str, tuple[Any, ...]] = {}
    due: dict[int, datetime] = {}
    for row in rows:
        device = row[DEVICE]
        latest[device] = row
        lat, lon = row[LAT], row[LON]
        if lat is not None and lon is not None and (lat != 0 or lon != 0):
            fixes[device] = row
        shipment = row[SHIPMENT]
        if shipment is not None:
            first = due.get(shipment)
            if first is None or row[TS] < first:
                due[shipment] = row[TS]
    devices = sorted(latest)  # device order, as every writer upserts device_latest
    newest = [latest[d] for d in devices]
    fix = [fixes.get(d) for d in devices]
    return {
        "device_id": devices,
        "ts": [r[TS] for r in newest],
        "recv_ts": [r[RECV_TS] for r in newest],
        "temp_c": [r[TEMP_C] for r in newest],
        "status": [r[STATUS] for r in newest],
        "battery_pct": [r[BATTERY] for r in newest],
        "lat": [f[LAT] if f else None for f in fix],
        "lon": [f[LON] if f else None for f in fix],
        "position_ts": [f[TS] if f else None for f in fix],
        "shipment_id": [r[SHIPMENT] for r in newest],
        "due_shipment_id": list(due),
        "due_ts": list(due.values()),
        "stored": str(len(rows)),
    }
