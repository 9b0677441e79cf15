"""The ingest writer: validate, store each reading exactly once, record refusals.

``prepare_batch`` parses and validates (no database) and lays out the readings as rows;
``write_batch`` stores a prepared batch in one transaction: the direct COPY into readings
when every key is new (ingest/direct.py), otherwise staging with COPY and an idempotent
insert that sorts collisions into duplicates and conflicts. ``store_batch`` does both.
Whatever ``write_batch`` returns has been committed, so the MQTT consumer may acknowledge
every message of the batch afterwards.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from psycopg.types.json import Jsonb

from core.db import Row
from ingest import queries
from ingest.direct import ReadingsRow, append_rows, copy_new_readings
from ingest.models import Reading
from ingest.parser import PayloadError, parse_payload, parse_topic

log = logging.getLogger(__name__)

# DESIGN.md §5: readings stamped more than 5 minutes after receipt are stored and flagged.
CLOCK_AHEAD_TOLERANCE = timedelta(minutes=5)


class IncomingMessage(NamedTuple):
    """One message as received (a named tuple: the consumer makes one per message)."""

    topic: str | None
    payload: bytes
    received_at: datetime
    source: str = "mqtt"  # or "http"
    # For HTTP the device is not in a topic; its carrier comes from the API key.
    carrier: str | None = None


@dataclass(slots=True)
class BatchResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejections: list[tuple[int, str]] = field(default_factory=list)  # (message index, reason)


Sender = tuple[str, str | None]  # (device_id, carrier): who a message says it is from


@dataclass(slots=True)
class _Accepted:
    """The staging path's view of the admitted messages: first value of each key kept."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)  # staging rows
    keys: dict[tuple[str, datetime], Reading] = field(default_factory=dict)
    device_ids: set[str] = field(default_factory=set)
    in_batch_conflicts: list[tuple[Reading, datetime]] = field(default_factory=list)
    exact_duplicates: int = 0


class ParsedMessage(NamedTuple):
    """A message that meets the protocol; whether its device may send is checked later."""

    number: int  # the message's index in its batch
    message: IncomingMessage
    carrier: str | None  # from the topic (MQTT) or the API key (HTTP)
    readings: list[Reading]


@dataclass(slots=True)
class PreparedBatch:
    """A batch parsed and validated without the database, ready for ``write_batch``.

    Parsing is pure Python and needs no connection, so the MQTT consumer does it as
    messages arrive, while the previous batch is being written.
    """

    messages: list[IncomingMessage] = field(default_factory=list)
    parsed: list[ParsedMessage] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (message index, reason)
    readings: int = 0  # in the parsed messages
    # The parsed readings as complete readings rows (ingest/direct.py), by sender in
    # arrival order, for the direct COPY; whether each sender may send is decided later.
    rows: dict[Sender, list[ReadingsRow]] = field(default_factory=dict)

    def add(self, message: IncomingMessage, topic_prefix: str) -> None:
        index = len(self.messages)
        self.messages.append(message)
        try:
            parsed = _parse(index, message, topic_prefix)
        except PayloadError as exc:
            self.refused.append((index, str(exc)))
            return
        except Exception as exc:  # a parser defect must cost one message, not the ingest
            log.exception("the parser failed on a message", extra={"topic": message.topic})
            self.refused.append((index, f"payload could not be parsed ({type(exc).__name__})"))
            return
        self.parsed.append(parsed)
        readings = parsed.readings
        self.readings += len(readings)
        sender = (readings[0].device_id, parsed.carrier)
        rows = self.rows.get(sender)
        if rows is None:
            rows = self.rows[sender] = []
        append_rows(rows, readings, message.received_at, CLOCK_AHEAD_TOLERANCE)


def prepare_batch(messages: list[IncomingMessage], topic_prefix: str) -> PreparedBatch:
    batch = PreparedBatch()
    for message in messages:
        batch.add(message, topic_prefix)
    return batch


def store_batch(
    conn: psycopg.Connection[Row], messages: list[IncomingMessage], topic_prefix: str
) -> BatchResult:
    """Store a batch in one transaction and report what happened to each part of it."""
    return write_batch(conn, prepare_batch(messages, topic_prefix))


def write_batch(conn: psycopg.Connection[Row], batch: PreparedBatch) -> BatchResult:
    """Write a prepared batch in one transaction; what it returns has been committed."""
    result = BatchResult(received=len(batch.messages))
    with conn.transaction():
        for index, reason in batch.refused:
            _reject(conn, result, index, batch.messages[index], None, reason)
        admitted = _admit(conn, result, batch)
        if admitted:
            stored = copy_new_readings(conn, _rows_by_device(batch, admitted))
            if stored is not None:
                result.stored = stored
            else:
                _stage_and_insert(conn, result, _accepted(batch.parsed, admitted))
    return result


def _parse(index: int, message: IncomingMessage, topic_prefix: str) -> ParsedMessage:
    if message.topic is not None:
        topic = parse_topic(message.topic, topic_prefix)
        readings = parse_payload(message.payload, topic_device_id=topic.device_id)
        return ParsedMessage(index, message, topic.carrier, readings)
    return ParsedMessage(index, message, message.carrier, parse_payload(message.payload))


def _admit(conn: psycopg.Connection[Row], result: BatchResult, batch: PreparedBatch) -> set[Sender]:
    """The senders that may send; every message of any other sender is refused.

    A batch holds many messages of the same few loggers: this is decided once per
    (device, carrier), not per message."""
    if not batch.rows:
        return set()
    device_ids = sorted({device_id for device_id, _carrier in batch.rows})
    known = {
        row["device_id"]: row for row in conn.execute(queries.DEVICES, {"device_ids": device_ids})
    }
    refusals = {
        sender: refusal
        for sender in batch.rows
        if (refusal := _refusal(known.get(sender[0]), *sender)) is not None
    }
    if refusals:
        for item in batch.parsed:  # in message order
            sender = (item.readings[0].device_id, item.carrier)
            if sender in refusals:
                _reject(conn, result, item.number, item.message, sender[0], refusals[sender])
    return set(batch.rows) - refusals.keys()


def _rows_by_device(batch: PreparedBatch, admitted: set[Sender]) -> dict[str, list[ReadingsRow]]:
    out: dict[str, list[ReadingsRow]] = {}
    for sender, rows in batch.rows.items():
        if sender in admitted:
            device_id = sender[0]
            if device_id in out:  # the same device under two admitted carriers
                out[device_id] = out[device_id] + rows
            else:
                out[device_id] = rows
    return out


def _accepted(parsed: list[ParsedMessage], admitted: set[Sender]) -> _Accepted:
    """The admitted messages' readings for the staging path: each key's first value as a
    staging row; exact repeats counted, different values under a key kept as conflicts."""
    accepted = _Accepted()
    keys, rows = accepted.keys, accepted.rows
    for item in parsed:
        readings = item.readings
        device_id = readings[0].device_id
        if (device_id, item.carrier) not in admitted:
            continue
        accepted.device_ids.add(device_id)
        received_at = item.message.received_at
        for reading in readings:
            key = (device_id, reading[1])  # (device_id, ts)
            first = keys.get(key)
            if first is None:
                keys[key] = reading
                rows.append((*reading, received_at))
            elif first == reading:
                accepted.exact_duplicates += 1
            else:
                accepted.in_batch_conflicts.append((reading, received_at))
    return accepted


def _refusal(device: Row | None, device_id: str, carrier: str | None) -> str | None:
    """Why this device may not send (as this carrier), or None."""
    if device is None:
        return f"device {device_id} is not registered"
    if not device["active"]:
        return f"device {device_id} is deactivated"
    if carrier is not None and carrier != device["carrier"]:
        return f"device {device_id} belongs to carrier {device['carrier']}, not {carrier}"
    return None


def _record_in_batch_conflicts(
    conn: psycopg.Connection[Row], result: BatchResult, accepted: _Accepted
) -> None:
    for reading, received_at in accepted.in_batch_conflicts:
        conn.execute(
            queries.INSERT_CONFLICT,
            (reading.device_id, reading.ts, received_at, Jsonb(reading.as_json())),
        )
    result.conflicts += len(accepted.in_batch_conflicts)


def _stage_and_insert(
    conn: psycopg.Connection[Row], result: BatchResult, accepted: _Accepted
) -> None:
    """The general path: stage, insert what is new, sort the rest into duplicates and
    conflicts."""
    conn.execute(queries.CREATE_STAGING)
    with conn.cursor().copy(queries.COPY_STAGING) as copy:
        copy.set_types(queries.STAGING_TYPES)
        write_row = copy.write_row
        for row in accepted.rows:
            write_row(row)
    counts = conn.execute(
        queries.INSERT_READINGS,
        {
            "clock_ahead_tolerance": CLOCK_AHEAD_TOLERANCE,
            "device_ids": sorted(accepted.device_ids),
        },
    ).fetchone()
    assert counts is not None
    stored = int(counts["stored"])
    collided = 0
    if stored < len(accepted.rows):
        # Some keys were already stored: each is an exact duplicate or a conflict. In the
        # common case every staged row is new and this lookup is skipped.
        conflicts = conn.execute(queries.RECORD_CONFLICTS).fetchone()
        assert conflicts is not None
        collided = int(conflicts["conflicts"])
    result.stored = stored
    result.conflicts = collided
    result.duplicates += accepted.exact_duplicates + len(accepted.rows) - stored - collided
    _record_in_batch_conflicts(conn, result, accepted)


def record_rejection(
    conn: psycopg.Connection[Row], message: IncomingMessage, device_id: str | None, reason: str
) -> None:
    """Keep a refused message, exactly as received, with the reason it was refused.

    The payload is stored as bytes, untouched; text columns cannot hold NUL, so a topic
    carrying one is stored with it escaped.
    """
    conn.execute(
        queries.INSERT_REJECTED,
        (
            message.received_at,
            message.source,
            _text(message.topic),
            _text(device_id),
            message.payload,
            reason.replace("\x00", "\\x00"),
        ),
    )


def _text(value: str | None) -> str | None:
    return None if value is None else value.replace("\x00", "\\x00")


def _reject(
    conn: psycopg.Connection[Row],
    result: BatchResult,
    index: int,
    message: IncomingMessage,
    device_id: str | None,
    reason: str,
) -> None:
    record_rejection(conn, message, device_id, reason)
    result.rejected[_reason_kind(reason)] += 1
    result.rejections.append((index, reason))
    log.info("message rejected", extra={"topic": message.topic, "reason": reason})


def _reason_kind(reason: str) -> str:
    """A short, bounded label for metrics (the full reason is in the table)."""
    if "not registered" in reason:
        return "unknown_device"
    if "deactivated" in reason:
        return "inactive_device"
    if "does not match the topic" in reason or "belongs to carrier" in reason:
        return "topic_mismatch"
    if reason.startswith("topic "):
        return "bad_topic"
    if any(part in reason for part in ("not JSON", "not UTF-8", "JSON object", "not be parsed")):
        return "malformed"
    return "invalid_field"
