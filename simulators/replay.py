"""Replay a CSV exported from a real logger (``ts,temp_c[,lat,lon]``) as a device."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.clock import isoformat_utc
from ingest.parser import PayloadError, parse_payload, parse_timestamp
from simulators.device import SimulatedMessage, encode


class ReplayError(ValueError):
    """The export cannot be replayed; the message names the file, line and column."""


@dataclass(frozen=True, slots=True)
class ReplayLogger:
    device: str
    carrier: str


def read_export(path: Path, device: str, tz: ZoneInfo | None = None) -> list[dict[str, Any]]:
    """The export's readings as protocol payloads, each checked by ingest's own parser.

    ``tz`` stamps times written without an offset (some loggers export local time).
    An empty ``temp_c`` is a sensor error; empty ``lat``/``lon`` mean no fix.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ReplayError(f"{path}: not UTF-8 text") from exc
    rows = csv.DictReader(text.splitlines())
    columns = set(rows.fieldnames or [])
    missing = {"ts", "temp_c"} - columns
    if missing:
        raise ReplayError(
            f"{path}: missing column(s) {', '.join(sorted(missing))}; "
            "expected a header ts,temp_c[,lat,lon]"
        )
    readings = []
    for number, row in enumerate(rows, start=2):
        where = f"{path} line {number}"
        reading: dict[str, Any] = {
            "device_id": device,
            "ts": _timestamp(row["ts"], tz, where),
            "seq": number - 2,
        }
        temp = (row.get("temp_c") or "").strip()
        reading["temp_c"] = _number(temp, "temp_c", where) if temp else None
        lat, lon = (row.get("lat") or "").strip(), (row.get("lon") or "").strip()
        if lat and lon:
            reading["lat"] = _number(lat, "lat", where)
            reading["lon"] = _number(lon, "lon", where)
        reading["status"] = "ok" if temp else "sensor_error"
        try:
            parse_payload(encode(reading).encode(), topic_device_id=device)
        except PayloadError as exc:
            raise ReplayError(f"{where}: {exc}") from exc
        readings.append(reading)
    if not readings:
        raise ReplayError(f"{path}: no readings after the header")
    return readings


def _timestamp(value: str | None, tz: ZoneInfo | None, where: str) -> str:
    text = (value or "").strip()
    if text.isdigit():
        try:
            return isoformat_utc(parse_timestamp(int(text)))
        except PayloadError as exc:
            raise ReplayError(f"{where}: {exc}") from exc
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ReplayError(f"{where}: ts {text!r} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        if tz is None:
            raise ReplayError(f"{where}: ts {text!r} has no UTC offset; pass --tz ZONE")
        parsed = parsed.replace(tzinfo=tz)
    return isoformat_utc(parsed.astimezone(UTC))


def _number(text: str, column: str, where: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise ReplayError(f"{where}: {column} {text!r} is not a number") from exc


def replay_messages(readings: list[dict[str, Any]], carrier: str) -> Iterator[SimulatedMessage]:
    """One message per reading, sent at its own time (never before an earlier row's)."""
    sent_at: datetime | None = None
    for reading in readings:
        ts = datetime.fromisoformat(str(reading["ts"]))
        sent_at = ts if sent_at is None or ts > sent_at else sent_at
        yield SimulatedMessage(
            str(reading["device_id"]), carrier, sent_at, encode(reading), "reading", 1, "replay"
        )
