"""Reading the physician forms, and binding a signed record to its SHA-256 (pure functions).

Browsers post ``application/x-www-form-urlencoded``; every value arrives as text. Each
parser names the field it refuses, so the page can show the message beside that field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.clock import isoformat_utc

MAX_FORM_BYTES: Final = 32 * 1024
MAX_TEXT: Final = 2000
# A phone's clock may run a little ahead of ours.
CLOCK_SKEW: Final = timedelta(minutes=10)


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

    def text(self, name: str, *, required: bool = True, limit: int = MAX_TEXT) -> str | None:
        values = self.all(name)
        value = values[0] if values else ""
        if not value:
            if required:
                self.problems[name] = "this field is required"
            return None
        if len(value) > limit:
            self.problems[name] = f"at most {limit} characters"
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

    def local_datetime(self, name: str, now: datetime, *, required: bool = True) -> datetime | None:
        """A ``datetime-local`` value, read in the destination's time zone, not in the future."""
        value = self.text(name, required=required, limit=40)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.problems[name] = "give a date and time such as 2026-11-25T14:30"
            return None
        at = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=self.zone)
        if at > now + CLOCK_SKEW:
            self.problems[name] = "must not be in the future"
            return None
        return at

    def local_date(self, name: str, *, required: bool = True) -> date | None:
        value = self.text(name, required=required, limit=20)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.problems[name] = "give a date such as 2026-11-25"
            return None

    def done(self) -> None:
        if self.problems:
            raise FormError(self.problems)


def record_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of a signed record."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    return isoformat_utc(value) if isinstance(value, datetime) else value.isoformat()
