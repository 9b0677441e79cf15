"""Alarm severities, in rising order (Controlant's Notification/Low/Medium/High, plus critical)."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    NOTIFICATION = "notification"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)
