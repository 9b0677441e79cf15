"""Typed records of the device protocol (DESIGN.md §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

# Columns of `readings` that a device supplies, in COPY order.
READING_FIELDS = (
    "device_id",
    "ts",
    "seq",
    "temp_c",
    "rh_pct",
    "lat",
    "lon",
    "battery_pct",
    "light_lux",
    "shock_g",
    "status",
)


class Reading(NamedTuple):
    """One validated reading. A named tuple in READING_FIELDS order: the ingest builds one
    per reading, so construction must be cheap, and the tuple itself is the COPY row."""

    device_id: str
    ts: datetime
    seq: int | None
    temp_c: float | None
    rh_pct: float | None = None
    lat: float | None = None
    lon: float | None = None
    battery_pct: float | None = None
    light_lux: float | None = None
    shock_g: float | None = None
    status: str = "ok"

    def as_json(self) -> dict[str, Any]:
        values = self._asdict()
        values["ts"] = self.ts.isoformat()
        return values


class TelemetryTopic(NamedTuple):
    carrier: str
    device_id: str
