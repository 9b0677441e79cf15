"""How the dashboard shows temperatures and times: °C or °F, UTC and the destination's clock."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.clock import utc

Unit = Literal["C", "F"]
UNITS: Final[tuple[Unit, ...]] = ("C", "F")


def unit_of(value: object) -> Unit:
    """The unit a browser asked for; anything unexpected means °C, the unit of record."""
    return "F" if value == "F" else "C"


def to_unit(temp_c: float, unit: Unit) -> float:
    return temp_c * 9 / 5 + 32 if unit == "F" else temp_c


def temperature(temp_c: float | None, unit: Unit, digits: int = 1) -> str:
    if temp_c is None:
        return "—"
    return f"{to_unit(temp_c, unit):.{digits}f} °{unit}"


def utc_time(value: datetime | None) -> str:
    """A time for people: UTC to the minute."""
    if value is None:
        return "—"
    return f"{utc(value):%Y-%m-%d %H:%M} UTC"


def _zone(tz_name: str | None) -> ZoneInfo | None:
    if not tz_name or tz_name == "UTC":
        return None
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_time(value: datetime | None, tz_name: str | None) -> str:
    """The same instant on the destination's clock, e.g. ``2026-11-25 11:15 CET``."""
    zone = _zone(tz_name)
    if value is None or zone is None:
        return ""
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M %Z}"


def both_times(value: datetime | None, tz_name: str | None) -> str:
    """UTC, then the destination's local time when it differs from UTC."""
    if value is None:
        return "—"
    local = local_time(value, tz_name)
    return f"{utc_time(value)} · {local}" if local else utc_time(value)


def age(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int((now - ts).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172_800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86_400} d ago"


def minutes_ago(ts: datetime | None, now: datetime) -> str:
    """How long ago, to the minute: text that changes at most once a minute, so a list
    refreshed every few seconds is only resent when something in it really changed."""
    if ts is None:
        return "never"
    minutes = max(0, int((now - ts).total_seconds() // 60))
    if minutes < 1:
        return "< 1 min"
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 2880:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} d"
