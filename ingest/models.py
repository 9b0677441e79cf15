"""Typed records of the device protocol (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Reading:
    device_id: str
    ts: datetime
    temp_c: float | None
    seq: int | None = None
    rh_pct: float | None = None
    lat: float | None = None
    lon: float | None = None
    battery_pct: float | None = None
    light_lux: float | None = None
    shock_g: float | None = None
    status: str = "ok"

    def row(self) -> tuple[Any, ...]:
        """Values in READING_FIELDS order, for COPY."""
        return (
            self.device_id,
            self.ts,
            self.seq,
            self.temp_c,
            self.rh_pct,
            self.lat,
            self.lon,
            self.battery_pct,
            self.light_lux,
            self.shock_g,
            self.status,
        )

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["ts"] = self.ts.isoformat()
        return values


@dataclass(frozen=True, slots=True)
class TelemetryTopic:
    carrier: str
    device_id: str
