"""The ingest writer: validate, stage with COPY, insert idempotently, record refusals.

One call of ``store_batch`` is one transaction. Whatever it returns has been committed,
so the MQTT consumer may acknowledge every message of the batch afterwards.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from core.db import Row
from ingest import queries
from ingest.models import Reading
from ingest.parser import PayloadError, parse_payload, parse_topic

log = logging.getLogger(__name__)

# DESIGN.md §5: readings stamped more than 5 minutes after receipt are stored and flagged.
CLOCK_AHEAD_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
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


@dataclass(slots=True)
class _Accepted:
    readings: list[tuple[Reading, datetime]] = field(default_factory=list)
    keys: dict[tuple[str, datetime], Reading] = field(default_factory=dict)
    in_batch_conflicts: list[tuple[Reading, datetime]] = field(default_factory=list)
    exact_duplicates: int = 0


def store_batch(
    conn: psycopg.Connection[Row], messages: list[IncomingMessage], topic_prefix: str
) -> BatchResult:
    """Store a batch in one transaction and report what happened to each part of it."""
    result = BatchResult(received=len(messages))
    parsed: list[_Parsed] = []
    with conn.transaction():
        for index, message in enumerate(messages):
            try:
                parsed.append(_parse(index, message, topic_prefix))
            except PayloadError as exc:
                _reject(conn, result, index, message, None, str(exc))
        accepted = _check_devices(conn, result, parsed)
        result.duplicates += accepted.exact_duplicates
        if accepted.readings:
            _stage_and_insert(conn, result, accepted)
    return result


@dataclass(frozen=True, slots=True)
class _Parsed:
    index: int
    message: IncomingMessage
    carrier: str | None  # from the topic (MQTT) or the API key (HTTP)
    readings: list[Reading]


def _parse(index: int, message: IncomingMessage, topic_prefix: str) -> _Parsed:
    if message.topic is not None:
        topic = parse_topic(message.topic, topic_prefix)
        readings = parse_payload(message.payload, topic_device_id=topic.device_id)
        return _Parsed(index, message, topic.carrier, readings)
    return _Parsed(index, message, message.carrier, parse_payload(message.payload))


def _check_devices(
    conn: psycopg.Connection[Row], result: BatchResult, parsed: list[_Parsed]
) -> _Accepted:
    device_ids = sorted({p.readings[0].device_id for p in parsed})
    known = {
        row["device_id"]: row for row in conn.execute(queries.DEVICES, {"device_ids": device_ids})
    }
    accepted = _Accepted()
    for item in parsed:
        index, message, readings, carrier = item.index, item.message, item.readings, item.carrier
        device_id = readings[0].device_id
        device = known.get(device_id)
        if device is None:
            _reject(
                conn, result, index, message, device_id, f"device {device_id} is not registered"
            )
            continue
        if not device["active"]:
            _reject(conn, result, index, message, device_id, f"device {device_id} is deactivated")
            continue
        if carrier is not None and carrier != device["carrier"]:
            _reject(
                conn,
                result,
                index,
                message,
                device_id,
                f"device {device_id} belongs to carrier {device['carrier']}, not {carrier}",
            )
            continue
        for reading in readings:
            key = (reading.device_id, reading.ts)
            first = accepted.keys.get(key)
            if first is None:
                accepted.keys[key] = reading
                accepted.readings.append((reading, message.received_at))
            elif first == reading:
                accepted.exact_duplicates += 1
            else:
                accepted.in_batch_conflicts.append((reading, message.received_at))
    return accepted


def _stage_and_insert(
    conn: psycopg.Connection[Row], result: BatchResult, accepted: _Accepted
) -> None:
    conn.execute(queries.CREATE_STAGING)
    with conn.cursor().copy(queries.COPY_STAGING) as copy:
        for reading, received_at in accepted.readings:
            copy.write_row((*reading.row(), received_at))
    counts = conn.execute(
        queries.INSERT_READINGS, {"clock_ahead_tolerance": CLOCK_AHEAD_TOLERANCE}
    ).fetchone()
    assert counts is not None
    conflicts = conn.execute(queries.RECORD_CONFLICTS).fetchone()
    assert conflicts is not None
    for reading, received_at in accepted.in_batch_conflicts:
        conn.execute(
            queries.INSERT_CONFLICT,
            (reading.device_id, reading.ts, received_at, Jsonb(reading.as_json())),
        )
    result.stored = int(counts["stored"])
    result.conflicts = int(conflicts["conflicts"]) + len(accepted.in_batch_conflicts)
    result.duplicates += len(accepted.readings) - result.stored - int(conflicts["conflicts"])
    if result.stored:
        conn.execute(queries.NOTIFY_READINGS, (str(result.stored),))


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
    if "not JSON" in reason or "not UTF-8" in reason or "JSON object" in reason:
        return "malformed"
    return "invalid_field"
