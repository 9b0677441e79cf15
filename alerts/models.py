"""Typed records of the alerts package."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from core.severity import Severity


class AlertState(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Notification:
    """One claimed page, as a channel sees it: the id ties provider callbacks back to it."""

    notification_id: int
    alert_id: int | None
    channel: str
    recipient: str
    body: str
    attempts: int


@dataclass(frozen=True, slots=True)
class AlertChange:
    alert_id: int
    created: bool
    upgraded: bool
    severity: Severity
    ack_code: str


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of acknowledge/resolve; ``changed`` is False when it had already happened."""

    alert_id: int
    state: AlertState
    changed: bool
    at: datetime | None
    by: str | None
    cancelled_pages: int = 0
