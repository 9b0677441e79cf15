"""The one strict parser of the device protocol, shared by MQTT and HTTP ingest.

Anything that does not meet DESIGN.md §5 raises ``PayloadError`` whose message names the
reading and the field, so the refusal recorded in ``rejected_messages`` explains itself.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.models import Reading, TelemetryTopic

MAX_BATCH = 10_000
MAX_SEQ = 2**63 - 1  # readings.seq is a bigint
# The same rule as the devices table's CHECK constraint.
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STATUSES = frozenset({"ok", "sensor_error", "low_battery", "door_open", "alarm"})
# Plausible physical ranges; beyond these a value is a corrupt payload, not a reading.
RANGES: dict[str, tuple[float, float]] = {
    "temp_c": (-200.0, 100.0),
    "rh_pct": (0.0, 100.0),
    "lat": (-90.0, 90.0),
    "lon": (-180.0, 180.0),
    "battery_pct": (0.0, 100.0),
    "light_lux": (0.0, 200_000.0),
    "shock_g": (0.0, 500.0),
}
# Epoch milliseconds outside 2000..2100 are almost certainly seconds or garbage.
_EPOCH_MS_MIN, _EPOCH_MS_MAX = 946_684_800_000, 4_102_444_800_000


TOPIC_CACHE_SIZE = 100_000
_TOPICS: dict[tuple[str, str], TelemetryTopic] = {}


class PayloadError(ValueError):
    """The message breaks the device protocol; the text is the recorded reason."""


def parse_topic(topic: str, prefix: str) -> TelemetryTopic:
    # A fleet publishes on a fixed set of topics, one per logger: remember them.
    known = _TOPICS.get((topic, prefix))
    if known is not None:
        return known
    parts = topic.split("/")
    head = prefix.split("/")
    if parts[: len(head)] != head or len(parts) != len(head) + 3 or parts[-1] != "telemetry":
        raise PayloadError(f"topic {topic!r} is not {prefix}/<carrier>/<device_id>/telemetry")
    parsed = TelemetryTopic(parts[-3], parts[-2])
    if len(_TOPICS) >= TOPIC_CACHE_SIZE:
        _TOPICS.clear()
    _TOPICS[(topic, prefix)] = parsed
    return parsed


def parse_payload(payload: bytes, *, topic_device_id: str | None = None) -> list[Reading]:
    """Parse one message (single reading or batch) into readings, or raise PayloadError.

    orjson decodes the common, well-formed payload several times faster than the standard
    library. It differs on the margins (it refuses NaN, integers beyond 64 bits and lone
    surrogates, and reads integers beyond 64 bits as floats), so any payload that fails on
    the fast path is decoded and checked again with the standard library, which makes the
    decision and words the reason exactly as the protocol documents them.
    """
    try:
        return _readings(orjson.loads(payload), topic_device_id)
    except (orjson.JSONDecodeError, PayloadError):
        pass
    return _readings(_decode(payload), topic_device_id)


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"payload is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc
    except RecursionError as exc:
        raise PayloadError("payload is not JSON (nested too deeply)") from exc
    except ValueError as exc:  # an integer of more digits than Python converts
        raise PayloadError(f"payload is not JSON ({exc})") from exc


def _readings(document: Any, topic_device_id: str | None) -> list[Reading]:
    if not isinstance(document, dict):
        raise PayloadError("payload must be a JSON object")
    device_id = document.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise PayloadError("device_id: required string is missing")
    if not DEVICE_ID.fullmatch(device_id):
        raise PayloadError(
            f"device_id: {device_id[:80]!r} is not 1-64 letters, digits, '.', '_' or '-'"
        )
    if topic_device_id is not None and device_id != topic_device_id:
        raise PayloadError(
            f"device_id {device_id!r} does not match the topic's {topic_device_id!r}"
        )

    if "readings" in document:
        batch = document["readings"]
        if not isinstance(batch, list) or not batch:
            raise PayloadError("readings: must be a non-empty list")
        if len(batch) > MAX_BATCH:
            raise PayloadError(f"readings: batch of {len(batch)} exceeds the limit of {MAX_BATCH}")
        readings = []
        for index, item in enumerate(batch):
            if not isinstance(item, dict):
                raise PayloadError(f"readings[{index}]: must be a JSON object")
            inner = item.get("device_id", device_id)
            if inner != device_id:
                raise PayloadError(
                    f"readings[{index}].device_id {inner!r} differs from {device_id!r}"
                )
            readings.append(
                _plain_reading(device_id, item) or _reading(device_id, item, f"readings[{index}].")
            )
        return readings
    return [_plain_reading(device_id, document) or _reading(device_id, document, "")]


# The optional numbers of a reading, in READING_FIELDS order after temp_c, with ranges.
_OPTIONAL_NUMBERS = tuple(
    (name, *RANGES[name])
    for name in ("rh_pct", "lat", "lon", "battery_pct", "light_lux", "shock_g")
)
_TEMP_LOW, _TEMP_HIGH = RANGES["temp_c"]


def _plain_reading(device_id: str, item: dict[str, Any]) -> Reading | None:
    """The usual reading, checked in one pass with no reasons worded: the same Reading as
    ``_reading`` returns, or None for anything less usual (a missing or null
    temperature, an epoch timestamp, a value out of range or of the wrong type, ...),
    which ``_reading`` then decides and, if it refuses, explains."""
    get = item.get
    status = get("status", "ok")
    if type(status) is not str or status not in STATUSES:
        return None
    temp_c: Any = get("temp_c")
    kind = type(temp_c)
    if (kind is not float and kind is not int) or not _TEMP_LOW <= temp_c <= _TEMP_HIGH:
        return None
    seq = get("seq")
    if seq is not None and (type(seq) is not int or not 0 <= seq <= MAX_SEQ):
        return None
    text = get("ts")
    if type(text) is not str:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    if ts.tzinfo is not UTC:
        if ts.tzinfo is None:
            return None
        try:
            ts = ts.astimezone(UTC)
        except OverflowError:  # beyond the calendar in UTC
            return None
    values = [device_id, ts, seq, float(temp_c)]
    for name, low, high in _OPTIONAL_NUMBERS:
        value: Any = get(name)
        if value is not None:
            kind = type(value)
            if (kind is not float and kind is not int) or not low <= value <= high:
                return None
            value = float(value)
        values.append(value)
    values.append(status)
    return tuple.__new__(Reading, values)


def _reading(device_id: str, item: dict[str, Any], where: str) -> Reading:
    get = item.get
    status = get("status", "ok")
    if type(status) is not str or status not in STATUSES:
        raise PayloadError(f"{where}status: {status!r} is not one of {sorted(STATUSES)}")
    if "temp_c" not in item:
        raise PayloadError(f"{where}temp_c: required field is missing")
    temp_c = _number(item, "temp_c", where)
    if temp_c is None and status != "sensor_error":
        raise PayloadError(f'{where}temp_c: null is allowed only with status "sensor_error"')
    seq = get("seq")
    if seq is not None and (type(seq) is not int or not 0 <= seq <= MAX_SEQ):
        raise PayloadError(f"{where}seq: must be a non-negative integer")
    # Positional, in READING_FIELDS order: this runs once per reading.
    return Reading(
        device_id,
        parse_timestamp(get("ts"), f"{where}ts"),
        seq,
        temp_c,
        _number(item, "rh_pct", where),
        _number(item, "lat", where),
        _number(item, "lon", where),
        _number(item, "battery_pct", where),
        _number(item, "light_lux", where),
        _number(item, "shock_g", where),
        status,
    )


def _number(item: dict[str, Any], name: str, where: str) -> float | None:
    value = item.get(name)
    if value is None:
        return None
    # Fast path for the common case; NaN and infinities fail the range test and fall
    # through to the checks below, which name the problem.
    kind = type(value)
    if kind is float or kind is int:
        low, high = RANGES[name]
        if low <= value <= high:
            return float(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise PayloadError(f"{where}{name}: {value!r} is not a finite number")
    low, high = RANGES[name]
    if not low <= value <= high:
        raise PayloadError(f"{where}{name}: {value} is outside the plausible range {low}..{high}")
    return float(value)


def parse_timestamp(value: Any, where: str = "ts") -> datetime:
    """RFC 3339 with an offset, or integer epoch milliseconds; always returns UTC."""
    if type(value) is str:  # the common case first
        return _rfc3339(value, where)
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"{where}: required timestamp is missing")
    if isinstance(value, int):
        if not _EPOCH_MS_MIN <= value <= _EPOCH_MS_MAX:
            raise PayloadError(f"{where}: {value} is not epoch milliseconds between 2000 and 2100")
        return datetime.fromtimestamp(value / 1000, UTC)
    if not isinstance(value, str):
        raise PayloadError(f"{where}: must be an RFC 3339 string or epoch milliseconds")
    return _rfc3339(value, where)


def _rfc3339(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError(f"{where}: {value!r} is not an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise PayloadError(f"{where}: {value!r} has no UTC offset (add Z or +hh:mm)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+05:00
        raise PayloadError(f"{where}: {value!r} is out of range in UTC") from exc
