"""Adverse events and their reporting deadlines (issue 7, ICH E2A).

An event is serious when any ICH E2A criterion applies. Reports to the manufacturer and to
the regulator are each due a number of calendar days after the team became aware (day
zero): 15 for serious events (21 CFR 314.80(c)(1), ICH E2A expedited reporting), 90 for
non-serious ones; both configurable. ``sweep_reporting`` raises a reminder alert
``COLDCHAIN_AE_REMINDER_DAYS`` before a deadline and upgrades it to high when the deadline
passes; recording the report resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal

import psycopg

from alerts.service import raise_alert, resolve
from case_link import queries
from case_link.sweep import row_savepoint
from core import audit
from core.clock import isoformat_utc
from core.db import Row
from core.settings import Settings
from core.severity import Severity

# ICH E2A seriousness criteria.
SERIOUSNESS_CRITERIA: Final = (
    "death",
    "life_threatening",
    "hospitalisation",
    "disability",
    "congenital_anomaly",
    "other_medically_important",
)
OUTCOMES: Final = (
    "recovered",
    "recovering",
    "not_recovered",
    "recovered_with_sequelae",
    "fatal",
    "unknown",
)
Recipient = Literal["manufacturer", "regulator"]
RECIPIENTS: Final[tuple[Recipient, ...]] = ("manufacturer", "regulator")


class AdverseEventError(ValueError):
    """An adverse event that cannot be recorded; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class AdverseEventNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class AdverseEventReport:
    onset_date: date
    description: str
    seriousness: tuple[str, ...]
    outcome: str

    @property
    def serious(self) -> bool:
        return bool(self.seriousness)

    def validate(self, today: date) -> None:
        if self.onset_date > today:
            raise AdverseEventError("onset_date", "must not be in the future")
        if not self.description.strip():
            raise AdverseEventError("description", "must not be empty")
        if len(self.description) > 4000:
            raise AdverseEventError("description", "at most 4000 characters")
        unknown = sorted(set(self.seriousness) - set(SERIOUSNESS_CRITERIA))
        if unknown:
            raise AdverseEventError(
                "seriousness",
                f"unknown criteria {unknown}; use: {', '.join(SERIOUSNESS_CRITERIA)}",
            )
        if self.outcome not in OUTCOMES:
            raise AdverseEventError("outcome", f"use one of: {', '.join(OUTCOMES)}")
        if self.outcome == "fatal" and "death" not in self.seriousness:
            raise AdverseEventError("seriousness", "a fatal outcome needs the criterion 'death'")

    def as_record(self) -> dict[str, object]:
        return {
            "onset_date": self.onset_date.isoformat(),
            "description": self.description,
            "seriousness": sorted(self.seriousness),
            "serious": self.serious,
            "outcome": self.outcome,
        }


def reporting_due(aware_at: datetime, serious: bool, settings: Settings) -> datetime:
    """Calendar days from day zero: serious 15 (configurable), non-serious 90."""
    days = settings.ae_serious_report_days if serious else settings.ae_nonserious_report_days
    return aware_at + timedelta(days=days)


def reporting_stage(due_at: datetime, now: datetime, remind_before: timedelta) -> int:
    """0 nothing yet, 1 remind (deadline near), 2 overdue."""
    if now >= due_at:
        return 2
    return 1 if now >= due_at - remind_before else 0


def next_check(due_at: datetime, stage: int, remind_before: timedelta) -> datetime | None:
    if stage == 0:
        return due_at - remind_before
    return due_at if stage == 1 else None


def _next_check_at(row: Row, remind_before: timedelta) -> datetime | None:
    checks = [
        next_check(row[f"{who}_due_at"], row[f"{who}_stage"], remind_before)
        for who in RECIPIENTS
        if row[f"{who}_reported_at"] is None
    ]
    pending = [c for c in checks if c is not None]
    return min(pending) if pending else None


def create_adverse_event(
    conn: psycopg.Connection[Row],
    settings: Settings,
    *,
    case_id: int,
    shipment_id: int,
    report: AdverseEventReport,
    reporter: str,
    source: str,
    actor: str,
    now: datetime,
    followup_id: int | None = None,
) -> int:
    """Record an event with its reporting deadlines; day zero is ``now``."""
    report.validate(today=now.date())
    if not reporter.strip():
        raise AdverseEventError("reporter", "must not be empty")
    due = reporting_due(now, report.serious, settings)
    remind_before = timedelta(days=settings.ae_reminder_days)
    row = conn.execute(
        queries.INSERT_ADVERSE_EVENT,
        {
            "case_id": case_id,
            "shipment_id": shipment_id,
            "followup_id": followup_id,
            "onset_date": report.onset_date,
            "description": report.description.strip(),
            "seriousness": sorted(set(report.seriousness)),
            "outcome": report.outcome,
            "reporter": reporter.strip(),
            "source": source,
            "now": now,
            "due": due,
            "next_check_at": next_check(due, 0, remind_before),
        },
    ).fetchone()
    assert row is not None
    audit.record(
        conn,
        actor=actor,
        action="adverse_event.recorded",
        entity_type="adverse_event",
        entity_id=row["adverse_event_id"],
        details={
            "case_id": case_id,
            "shipment_id": shipment_id,
            "source": source,
            "serious": report.serious,
            "seriousness": sorted(report.seriousness),
            "outcome": report.outcome,
            "reports_due_at": isoformat_utc(due),
        },
    )
    return int(row["adverse_event_id"])


def list_adverse_events(conn: psycopg.Connection[Row], case_id: int) -> list[Row]:
    return conn.execute(queries.LIST_ADVERSE_EVENTS, (case_id,)).fetchall()


def mark_reported(
    conn: psycopg.Connection[Row],
    *,
    case_id: int,
    adverse_event_id: int,
    recipient: Recipient,
    reported_at: datetime,
    reference: str | None,
    actor: str,
    now: datetime,
) -> tuple[Row, bool]:
    """Record the report to ``recipient``; returns (event, changed). Reporting twice keeps
    the first record."""
    if reported_at > now + timedelta(minutes=10):
        raise AdverseEventError("reported_at", "must not be in the future")
    with conn.transaction():
        row = conn.execute(queries.ADVERSE_EVENT_FOR_UPDATE, (adverse_event_id, case_id)).fetchone()
        if row is None:
            raise AdverseEventNotFound(
                f"adverse event {adverse_event_id} does not exist in case {case_id}"
            )
        if row[f"{recipient}_reported_at"] is not None:
            return row, False
        other = "regulator" if recipient == "manufacturer" else "manufacturer"
        conn.execute(
            queries.MARK_AE_REPORTED[recipient],
            {
                "id": adverse_event_id,
                "at": reported_at,
                "by": actor,
                "reference": reference,
                # The sweep recomputes the remaining deadline's next check.
                "next_check_at": now if row[f"{other}_reported_at"] is None else None,
            },
        )
        audit.record(
            conn,
            actor=actor,
            action=f"adverse_event.reported_to_{recipient}",
            entity_type="adverse_event",
            entity_id=adverse_event_id,
            details={
                "reported_at": isoformat_utc(reported_at),
                "reference": reference,
                "due_at": isoformat_utc(row[f"{recipient}_due_at"]),
                "late": reported_at > row[f"{recipient}_due_at"],
            },
        )
        rule = f"ae-{recipient}-report"
        still_pending = conn.execute(
            queries.AE_PENDING_ALERTED, {"shipment_id": row["shipment_id"], "who": recipient}
        ).fetchone()
        open_alert = conn.execute(queries.OPEN_ALERT, (row["shipment_id"], rule)).fetchone()
        if still_pending is None and open_alert is not None:
            resolve(conn, open_alert["alert_id"], actor, f"reported to {recipient}", now)
        updated = conn.execute(queries.ADVERSE_EVENT_BY_ID, (adverse_event_id, case_id)).fetchone()
    assert updated is not None
    return updated, True


def sweep_reporting(
    conn: psycopg.Connection[Row], settings: Settings, now: datetime, limit: int = 50
) -> list[tuple[int, str, int]]:
    """Remind before and alert after each reporting deadline; returns (id, recipient, stage)."""
    remind_before = timedelta(days=settings.ae_reminder_days)
    changes: list[tuple[int, str, int]] = []
    with conn.transaction():
        rows = conn.execute(queries.CLAIM_AE_CHECKS, {"now": now, "limit": limit}).fetchall()
        for row in rows:
            with row_savepoint(conn, "adverse_event_deadlines", row["adverse_event_id"]):
                changes.extend(_check_deadlines(conn, row, now, remind_before))
    return changes


def _check_deadlines(
    conn: psycopg.Connection[Row], row: Row, now: datetime, remind_before: timedelta
) -> list[tuple[int, str, int]]:
    changes: list[tuple[int, str, int]] = []
    for who in RECIPIENTS:
        if row[f"{who}_reported_at"] is not None:
            continue
        stage = reporting_stage(row[f"{who}_due_at"], now, remind_before)
        if stage > row[f"{who}_stage"]:
            _alert(conn, row, who, stage, now)
            row[f"{who}_stage"] = stage
            changes.append((int(row["adverse_event_id"]), who, stage))
    conn.execute(
        queries.UPDATE_AE_STAGES,
        {
            "id": row["adverse_event_id"],
            "manufacturer_stage": row["manufacturer_stage"],
            "regulator_stage": row["regulator_stage"],
            "next_check_at": _next_check_at(row, remind_before),
        },
    )
    return changes


def _alert(conn: psycopg.Connection[Row], row: Row, who: str, stage: int, now: datetime) -> None:
    due = row[f"{who}_due_at"]
    kind = "serious" if row["serious"] else "non-serious"
    state = f"overdue since {due:%Y-%m-%d}" if stage == 2 else f"due {due:%Y-%m-%d}"
    severity = Severity.HIGH if stage == 2 else Severity.MEDIUM
    raise_alert(
        conn,
        shipment_id=row["shipment_id"],
        rule_id=f"ae-{who}-report",
        severity=severity,
        summary=f"{kind} adverse event {row['adverse_event_id']}: report to {who} {state}",
        message=(
            f"[{severity.value.upper()}] Shipment {row['shipment_ref']}: {kind} adverse event "
            f"report to the {who} {state}."
        ),
        condition_at=due,
        now=now,
    )
