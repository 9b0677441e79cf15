"""Reading the physician forms, and binding a signed record to its SHA-256 (pure functions).

Browsers post ``application/x-www-form-urlencoded``; every value arrives as text. Each
parser names the field it refuses, so the page can show the message beside that field.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.clock import isoformat_utc

MAX_FORM_BYTES: Final = 32 * 1024
MAX_TEXT: Final = 2000
# A phone's clock may run a little ahead of ours.
CLOCK_SKEW: Final = timedelta(minutes=10)
# How much earlier than the recorded delivery a physician may say the package arrived. The
# delivery time comes from a geofence, a carrier scan or staff, any of which can lag the
# handover by hours (a courier scanning at the end of the round, staff marking it the next
# morning), and the physician may misremember the day's time; a day covers both without
# letting a date far in the past into a signed record.
DELIVERY_ALLOWANCE: Final = timedelta(hours=24)
# The lower bound when a shipment carries no delivery time (the page is only offered for
# delivered shipments, so this is a safety net): a link never lives this long.
NO_DELIVERY_LOOKBACK: Final = timedelta(days=30)
# Line breaks and tabs are kept in multi-line answers; every other control character
# (NUL above all, which PostgreSQL refuses in text) is refused.
_MULTILINE_CONTROLS: Final = frozenset("\n\r\t")


class FormError(ValueError):
    """Fields that cannot be accepted: field name → what is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


def parse_body(body: bytes) -> dict[str, list[str]]:
    """The posted fields; undecodable bytes become U+FFFD rather than an error page."""
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


class Fields:
    """Typed access to posted fields that collects every problem before failing."""

    def __init__(self, raw: Mapping[str, list[str]], tz: str) -> None:
        self.raw = raw
        self.problems: dict[str, str] = {}
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            self.zone = ZoneInfo("UTC")

    def all(self, name: str) -> list[str]:
        return [v.strip() for v in self.raw.get(name, [])]

    def text(
        self,
        name: str,
        *,
        required: bool = True,
        limit: int = MAX_TEXT,
        multiline: bool = False,
    ) -> str | None:
        values = self.all(name)
        value = values[0] if values else ""
        if not value:
            if required:
                self.problems[name] = "this field is required"
            return None
        if len(value) > limit:
            self.problems[name] = f"at most {limit} characters"
            return None
        allowed = _MULTILINE_CONTROLS if multiline else frozenset()
        if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
            self.problems[name] = (
                "must not contain control characters"
                if multiline
                else "must be a single line without control characters"
            )
            return None
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str | None:
        value = self.text(name)
        if value is not None and value not in options:
            self.problems[name] = "choose one of: " + ", ".join(options)
            return None
        return value

    def yes_no(self, name: str) -> bool | None:
        value = self.choice(name, ("yes", "no"))
        return None if value is None else value == "yes"

    def checked(self, name: str) -> bool:
        return bool(self.all(name)) and self.all(name)[0] in ("yes", "on")

    def local_datetime(
        self, name: str, now: datetime, *, earliest: datetime, required: bool = True
    ) -> datetime | None:
        """A ``datetime-local`` value read in the destination's time zone, between
        ``earliest`` and now (plus the clock skew); returned in UTC."""
        value = self.text(name, required=required, limit=40)
        if value is None:
            return None
        example = "give a local date and time such as 2026-11-25T14:30"
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.problems[name] = example
            return None
        if parsed.tzinfo is not None:
            # The form's datetime-local never sends one: the field is the destination's time.
            self.problems[name] = example + ", without a time zone offset"
            return None
        try:
            at = parsed.replace(tzinfo=self.zone).astimezone(UTC)
        except (OverflowError, ValueError):  # near year 1 or 9999 there is no UTC time
            self.problems[name] = example
            return None
        if at > now + CLOCK_SKEW:
            self.problems[name] = "must not be in the future"
            return None
        if at < earliest:
            self.problems[name] = f"must not be before {self.local_text(earliest)}"
            return None
        return at

    def local_date(
        self, name: str, *, earliest: date, latest: date, required: bool = True
    ) -> date | None:
        """A ``date`` value between ``earliest`` and ``latest`` (both included)."""
        value = self.text(name, required=required, limit=20)
        if value is None:
            return None
        try:
            day = date.fromisoformat(value)
        except ValueError:
            self.problems[name] = "give a date such as 2026-11-25"
            return None
        if day < earliest:
            self.problems[name] = f"must not be before {earliest.isoformat()}"
            return None
        if day > latest:
            self.problems[name] = f"must not be after {latest.isoformat()}"
            return None
        return day

    def local_text(self, at: datetime) -> str:
        """``at`` as the destination's local time, the way the form's fields show it."""
        return at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def local_day(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def done(self) -> None:
        if self.problems:
            raise FormError(self.problems)


def earliest_receipt(delivered_at: datetime | None, now: datetime) -> datetime:
    """The earliest time a physician may give for receiving (or using) a shipment."""
    if delivered_at is None:
        return now - NO_DELIVERY_LOOKBACK
    return delivered_at - DELIVERY_ALLOWANCE


def record_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of a signed record."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    return isoformat_utc(value) if isinstance(value, datetime) else value.isoformat()
