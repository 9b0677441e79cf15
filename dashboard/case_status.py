"""How the clinical screens read receipts, follow-ups and adverse events (pure; no I/O).

Every function takes the rows as the queries return them and ``now``, and answers the
words and flags the pages show, so the rules are tested without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal

FollowupCategory = Literal["due", "overdue", "done"]
FOLLOWUP_CATEGORIES: Final[tuple[FollowupCategory, ...]] = ("due", "overdue", "done")

ADMINISTRATION: Final = {
    "administered": "administered",
    "planned": "administration planned",
    "not_planned": "administration not planned",
}
INDICATOR: Final = {"ok": "no alarm", "alarm": "ALARM", "none": "no indicator"}


def whole_hours(since: datetime, now: datetime) -> int:
    """Hours elapsed, rounded down; never negative."""
    return max(0, int((now - since).total_seconds() // 3600))


def span(since: datetime, until: datetime) -> str:
    """A duration for people: ``45 min``, ``7 h``, ``3 d 4 h``."""
    minutes = max(0, int((until - since).total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def past_deadline(deadline: datetime | None, done_at: datetime | None, now: datetime) -> bool:
    """Not done and the deadline has passed."""
    return done_at is None and deadline is not None and deadline <= now


def followup_category(row: Mapping[str, Any]) -> FollowupCategory:
    """Done once answered; overdue once the sweep has declared it so (after the reminders);
    otherwise due (the due time may still be ahead)."""
    if row["completed_at"] is not None:
        return "done"
    if row["state"] == "overdue":
        return "overdue"
    return "due"


def followup_timing(row: Mapping[str, Any], now: datetime) -> str:
    """When the follow-up is or was due, relative to now."""
    category = followup_category(row)
    due_at: datetime = row["due_at"]
    if category == "done":
        return "answered"
    if category == "overdue":
        return f"overdue, due {span(due_at, now)} ago"
    if due_at > now:
        return f"due in {span(now, due_at)}"
    reminders = row["reminders_sent"]
    sent = f"; {reminders} reminder{'s' if reminders != 1 else ''} sent" if reminders else ""
    return f"due since {span(due_at, now)}{sent}"


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "NO")


def followup_outcome(row: Mapping[str, Any]) -> str:
    """The physician's answers in one line; empty until the follow-up is answered."""
    if row["completed_at"] is None:
        return ""
    administration = ADMINISTRATION.get(row["administration"] or "", "administration —")
    if row["administration_date"] is not None:
        administration += f" {row['administration_date']:%Y-%m-%d}"
    parts = [
        f"received safely: {_yes_no(row['safe_receipt'])}",
        f"stored correctly: {_yes_no(row['stored_correctly'])}",
        administration,
        f"adverse event: {'YES' if row['adverse_event'] else 'no'}",
    ]
    return "; ".join(parts)


def followup_needs_attention(row: Mapping[str, Any]) -> bool:
    """An answer that someone must look at: unsafe receipt, wrong storage, an adverse event."""
    return bool(
        row["completed_at"] is not None
        and (
            row["safe_receipt"] is False
            or row["stored_correctly"] is False
            or row["adverse_event"] is True
        )
    )


def package_condition(receipt: Mapping[str, Any]) -> str:
    intact = "intact" if receipt["package_intact"] else "NOT intact"
    if receipt.get("package_note"):
        intact += f" ({receipt['package_note']})"
    indicator = INDICATOR.get(receipt["indicator_status"], receipt["indicator_status"])
    if receipt.get("indicator_note"):
        indicator += f" ({receipt['indicator_note']})"
    return f"package {intact}; temperature indicator: {indicator}"


def receipt_has_issue(receipt: Mapping[str, Any]) -> bool:
    return bool(
        not receipt["package_intact"]
        or receipt["indicator_status"] == "alarm"
        or not receipt["storage_confirmed"]
    )


ReportState = Literal["reported", "overdue", "open"]


def report_state(due_at: datetime, reported_at: datetime | None, now: datetime) -> ReportState:
    if reported_at is not None:
        return "reported"
    return "overdue" if due_at <= now else "open"


def report_text(due_at: datetime, reported_at: datetime | None, now: datetime) -> str:
    """One reporting deadline (manufacturer or regulator) as people read it."""
    state = report_state(due_at, reported_at, now)
    if state == "reported":
        assert reported_at is not None
        return f"reported {reported_at:%Y-%m-%d}"
    if state == "overdue":
        return f"OVERDUE: due {due_at:%Y-%m-%d %H:%M} UTC ({span(due_at, now)} ago)"
    return f"due {due_at:%Y-%m-%d %H:%M} UTC (in {span(now, due_at)})"


def adverse_event_overdue(row: Mapping[str, Any], now: datetime) -> bool:
    """A report to the manufacturer or the regulator is past its deadline."""
    return any(
        report_state(row[f"{who}_due_at"], row[f"{who}_reported_at"], now) == "overdue"
        for who in ("manufacturer", "regulator")
    )


def seriousness_text(row: Mapping[str, Any]) -> str:
    if not row["serious"]:
        return "non-serious"
    return "SERIOUS: " + ", ".join(c.replace("_", " ") for c in row["seriousness"])
