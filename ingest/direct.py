"""The writer's direct path: COPY a batch straight into ``readings`` when all of it is new.

Staging the rows and inserting them with ``ON CONFLICT`` costs the database about twice
what a plain COPY does. Almost every batch holds only new readings (duplicates come from
redeliveries after a restart and from loggers resending), so the writer first COPYs the
batch into ``readings`` inside a savepoint. The primary key (device_id, ts) still decides:
if any key of the batch is already stored, repeated within the batch, or being stored by
another writer, the COPY fails with a unique violation, the savepoint is rolled back,
nothing of it remains, and the batch takes the staging path, which tells duplicates from
conflicts. A COPY stores all rows or none, so what the staging statement derives from
"the rows inserted" (device_latest, shipments due for evaluation, the NOTIFY) is computed
here from the batch.

The work is split by thread. As each message is parsed (the MQTT client's network thread),
its readings become complete ``readings`` rows, grouped by sender (``append_rows``); only
the shipment, which needs the database, is left blank. The writer then streams the rows
to the server device by device, filling in the shipment as it goes, so its own per-row
work overlaps the server's storing of the rows already sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import psycopg

from core.db import Row
from ingest import queries

# Positions in a readings row (queries.READINGS_TYPES): the reading's fields in
# READING_FIELDS order, then the receipt time, the clock-ahead flag and the shipment.
DEVICE, TS, TEMP_C, LAT, LON, BATTERY, STATUS, RECV_TS, SHIPMENT = 0, 1, 3, 5, 6, 7, 10, 11, 13
_TS = itemgetter(TS)

ReadingsRow = tuple[Any, ...]
Assignment = tuple[datetime, datetime | None, int]  # assigned_from, assigned_until, shipment


def append_rows(
    rows: list[ReadingsRow],
    readings: Iterable[tuple[Any, ...]],
    received_at: datetime,
    clock_ahead_tolerance: timedelta,
) -> None:
    """Append one message's readings as ``readings`` rows with no shipment yet."""
    ahead = received_at + clock_ahead_tolerance
    # Concatenating a tuple copies the reading's fields in C: cheaper than unpacking them.
    rows += [reading + (received_at, reading[TS] > ahead, None) for reading in readings]


def copy_new_readings(
    conn: psycopg.Connection[Row], rows_by_device: dict[str, list[ReadingsRow]]
) -> int | None:
    """Store every row with one COPY and return how many; None, with nothing stored, if
    any key already exists or repeats. Must run inside the caller's transaction.

    Sorts each device's list in place by device time."""
    assignments = assignments_by_device(
        conn.execute(queries.ASSIGNMENTS, {"device_ids": sorted(rows_by_device)}).fetchall()
    )
    after = AfterCopy()
    try:
        with conn.transaction(), conn.cursor().copy(queries.COPY_READINGS) as copy:
            copy.set_types(queries.READINGS_TYPES)
            write_row = copy.write_row
            # Key order: index-friendly, and the order every writer uses for the same keys
            # (Python's code point order is the staging statement's COLLATE "C"), so
            # writers that meet on a key wait for each other instead of deadlocking.
            for device in sorted(rows_by_device):
                rows = rows_by_device[device]
                rows.sort(key=_TS)  # stable; loggers send in order, so usually one pass
                spans = assignments.get(device)
                if spans:
                    rows = with_shipments(rows, spans)
                for row in rows:
                    write_row(row)
                after.add(device, rows, assigned=bool(spans))
    except psycopg.errors.UniqueViolation:
        return None
    after.write(conn)
    return after.stored


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


def with_shipments(rows: list[ReadingsRow], spans: list[Assignment]) -> list[ReadingsRow]:
    """One device's rows, each with the shipment that had the device at its time."""
    return [(*row[:SHIPMENT], shipment_at(spans, row[TS])) for row in rows]


class AfterCopy:
    """What the staging statement derives from the rows it inserted, gathered per device
    from rows the COPY stored: device_latest, shipments due for evaluation, the NOTIFY."""

    __slots__ = ("due", "latest", "stored")

    def __init__(self) -> None:
        self.latest: list[tuple[Any, ...]] = []  # queries.LATEST_TYPES, device order
        self.due: dict[int, datetime] = {}  # shipment -> its earliest reading in the batch
        self.stored = 0

    def add(self, device: str, rows: list[ReadingsRow], *, assigned: bool) -> None:
        """``rows``: one device's rows, in device-time order; ``assigned``: whether the
        device has any shipment assignment (else no row has a shipment)."""
        self.stored += len(rows)
        newest = rows[-1]
        # The newest usable GPS fix; (0, 0) is what loggers report after a reboot.
        fix: ReadingsRow | None = None
        for row in reversed(rows):
            lat, lon = row[LAT], row[LON]
            if lat is not None and lon is not None and (lat != 0 or lon != 0):
                fix = row
                break
        self.latest.append(
            (
                device,
                newest[TS],
                newest[RECV_TS],
                newest[TEMP_C],
                newest[STATUS],
                newest[BATTERY],
                fix[LAT] if fix else None,
                fix[LON] if fix else None,
                fix[TS] if fix else None,
                newest[SHIPMENT],
            )
        )
        if not assigned:
            return
        due = self.due
        for row in rows:
            shipment = row[SHIPMENT]
            if shipment is not None and (shipment not in due or row[TS] < due[shipment]):
                due[shipment] = row[TS]

    def write(self, conn: psycopg.Connection[Row]) -> None:
        # A binary COPY of one row per device: encoding the same values as array
        # parameters costs the writer several times more.
        conn.execute(queries.CREATE_LATEST_STAGING)
        with conn.cursor().copy(queries.COPY_LATEST_STAGING) as copy:
            copy.set_types(queries.LATEST_TYPES)
            for row in self.latest:
                copy.write_row(row)
        conn.execute(
            queries.AFTER_COPY,
            {
                "due_shipment_id": list(self.due),
                "due_ts": list(self.due.values()),
                "stored": str(self.stored),
            },
        ).fetchone()
