"""The 48-hour follow-up (issue 7): scheduled by the receipt, chased, closed.

A follow-up is a row whose ``next_action_at`` says when the sweeper acts next: send the
first SMS at ``due_at``, remind at +24 h and +48 h, and at +72 h mark it overdue and alert
staff (the overdue task). Which step comes next is ``plan_step``, a function of the row and
``now``; the sweep only applies it, so a restarted scheduler picks up exactly where the
rows say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Final

import psycopg
from psycopg.types.json import Jsonb

from alerts.service import raise_alert, resolve
from case_link import adverse_events, links, queries
from case_link.forms import Fields, earliest_receipt, iso, record_digest
from case_link.sweep import row_savepoint
from core import audit
from core.clock import isoformat_utc
from core.db import Row
from core.settings import Settings
from core.severity import Severity

RULE_OVERDUE: Final = "followup-overdue"
REMINDER_OFFSETS: Final = (timedelta(hours=24), timedelta(hours=48))
OVERDUE_AFTER: Final = timedelta(hours=72)
# After a late sweep (the scheduler was down) the next message waits at least this long,
# so a physician never gets two messages in a row.
MIN_GAP: Final = timedelta(hours=12)
ADMINISTRATION_CHOICES: Final = ("administered", "planned", "not_planned")
# A planned administration further ahead than this is a typing error, not a plan.
PLANNED_WITHIN: Final = timedelta(days=366)
FOLLOWUP_MEANING: Final = (
    "Responsibility: I confirm that the answers above are accurate to the best of my knowledge."
)


@dataclass(frozen=True, slots=True)
class Step:
    action: str  # "send", "remind" or "overdue"
    next_action_at: datetime | None


def plan_step(state: str, reminders_sent: int, due_at: datetime, now: datetime) -> Step | None:
    """What a due follow-up needs now, and when to look again (None: nothing to do)."""
    if state not in ("scheduled", "sent") or now < due_at:
        return None
    if state == "sent" and reminders_sent >= len(REMINDER_OFFSETS):
        return Step("overdue", None)
    action = "send" if state == "scheduled" else "remind"
    done = 0 if action == "send" else reminders_sent + 1
    upcoming = [due_at + offset for offset in REMINDER_OFFSETS[done:]] + [due_at + OVERDUE_AFTER]
    return Step(action, max(upcoming[0], now + MIN_GAP))


def sms_body(shipment_ref: str, url: str, reminder: bool) -> str:
    opening = "Reminder: please" if reminder else "Please"
    return f"{opening} complete the short follow-up for shipment {shipment_ref}: {url}"


def schedule(
    conn: psycopg.Connection[Row],
    settings: Settings,
    shipment_id: int,
    physician_id: int,
    confirmed_at: datetime,
) -> datetime:
    """Create the follow-up due ``followup_after_hours`` after receipt; returns its due time."""
    due_at = confirmed_at + timedelta(hours=settings.followup_after_hours)
    row = conn.execute(
        queries.INSERT_FOLLOWUP, (shipment_id, physician_id, due_at, due_at, confirmed_at)
    ).fetchone()
    if row is None:  # already scheduled: keep the first
        existing = conn.execute(queries.FOLLOWUP_DUE, (shipment_id,)).fetchone()
        assert existing is not None
        existing_due: datetime = existing["due_at"]
        return existing_due
    audit.record(
        conn,
        actor="case_link",
        action="followup.scheduled",
        entity_type="shipment",
        entity_id=shipment_id,
        details={"followup_id": row["followup_id"], "due_at": isoformat_utc(due_at)},
    )
    return due_at


def sweep_followups(
    conn: psycopg.Connection[Row], settings: Settings, now: datetime, limit: int = 50
) -> list[tuple[int, str]]:
    """Apply the due step of every due follow-up; returns (followup_id, action) pairs."""
    done = []
    with conn.transaction():
        rows = conn.execute(queries.CLAIM_DUE_FOLLOWUPS, {"now": now, "limit": limit}).fetchall()
        for row in rows:
            step = plan_step(row["state"], row["reminders_sent"], row["due_at"], now)
            with row_savepoint(conn, "followups", row["followup_id"]):
                if step is None:
                    conn.execute(queries.CLEAR_FOLLOWUP_ACTION, (row["followup_id"],))
                    continue
                if step.action == "overdue":
                    _mark_overdue(conn, row, now)
                else:
                    _send(conn, settings, row, step, now)
                done.append((int(row["followup_id"]), step.action))
    return done


def _send(
    conn: psycopg.Connection[Row], settings: Settings, row: Row, step: Step, now: datetime
) -> None:
    reminder = step.action == "remind"
    link, notification_id = links.send_link(
        conn,
        settings,
        purpose="followup",
        shipment_id=row["shipment_id"],
        physician_id=row["physician_id"],
        recipient=row["mobile_e164"],
        body=lambda url: sms_body(row["shipment_ref"], url, reminder),
        now=now,
    )
    conn.execute(
        queries.FOLLOWUP_SENT,
        {
            "followup_id": row["followup_id"],
            "reminder": reminder,
            "now": now,
            "next_action_at": step.next_action_at,
        },
    )
    audit.record(
        conn,
        actor="case_link",
        action="followup.reminded" if reminder else "followup.sent",
        entity_type="shipment",
        entity_id=row["shipment_id"],
        details={
            "followup_id": row["followup_id"],
            "link_id": link.link_id,
            "notification_id": notification_id,
        },
    )


def _mark_overdue(conn: psycopg.Connection[Row], row: Row, now: datetime) -> None:
    change = raise_alert(
        conn,
        shipment_id=row["shipment_id"],
        rule_id=RULE_OVERDUE,
        severity=Severity.MEDIUM,
        summary=f"48-hour follow-up due {row['due_at']:%Y-%m-%d %H:%M}Z is unanswered",
        message=(
            f"[MEDIUM] Shipment {row['shipment_ref']}: the physician has not answered the "
            f"follow-up due {row['due_at']:%Y-%m-%d %H:%M}Z after two reminders. Call the clinic."
        ),
        condition_at=row["due_at"],
        now=now,
    )
    conn.execute(queries.FOLLOWUP_OVERDUE, (now, change.alert_id, row["followup_id"]))
    audit.record(
        conn,
        actor="case_link",
        action="followup.overdue",
        entity_type="shipment",
        entity_id=row["shipment_id"],
        details={"followup_id": row["followup_id"], "alert_id": change.alert_id},
    )


@dataclass(frozen=True, slots=True)
class FollowupForm:
    safe_receipt: bool
    stored_correctly: bool
    administration: str
    administration_date: date | None
    adverse_event: adverse_events.AdverseEventReport | None
    comments: str | None
    signer_name: str


def parse_followup_form(
    raw: Mapping[str, list[str]],
    *,
    tz: str,
    now: datetime,
    delivered_at: datetime | None = None,
) -> FollowupForm:
    """The follow-up form's fields, or FormError naming every field that is wrong.

    Dates are the destination's local dates, not before the delivery (less
    ``forms.DELIVERY_ALLOWANCE``); an administration or an adverse event not after today,
    a planned administration at most ``PLANNED_WITHIN`` ahead.
    """
    f = Fields(raw, tz)
    first_day = f.local_day(earliest_receipt(delivered_at, now))
    today = f.local_day(now)
    safe_receipt = f.yes_no("safe_receipt")
    stored_correctly = f.yes_no("stored_correctly")
    administration = f.choice("administration", ADMINISTRATION_CHOICES)
    administration_date = f.local_date(
        "administration_date",
        earliest=first_day,
        latest=today + PLANNED_WITHIN if administration == "planned" else today,
        required=administration in ("administered", "planned"),
    )
    had_event = f.yes_no("adverse_event")
    event = None
    if had_event:
        # validate() below refuses a future onset with its own message.
        onset = f.local_date("ae_onset_date", earliest=first_day, latest=date.max)
        description = f.text("ae_description", limit=4000, multiline=True)
        seriousness = tuple(f.all("ae_seriousness"))
        outcome = f.choice("ae_outcome", adverse_events.OUTCOMES)
        if onset is not None and description is not None and outcome is not None:
            event = adverse_events.AdverseEventReport(onset, description, seriousness, outcome)
            try:
                event.validate(today=now.date())
            except adverse_events.AdverseEventError as exc:
                f.problems["ae_" + exc.field] = str(exc)
    comments = f.text("comments", required=False, limit=4000, multiline=True)
    signer_name = f.text("signer_name", limit=200)
    if not f.checked("signature_agree"):
        f.problems["signature_agree"] = "tick the box to sign with the meaning shown"
    f.done()
    assert safe_receipt is not None and stored_correctly is not None
    assert administration is not None and signer_name is not None
    return FollowupForm(
        safe_receipt,
        stored_correctly,
        administration,
        administration_date,
        event,
        comments,
        signer_name,
    )


def complete_followup(
    conn: psycopg.Connection[Row],
    settings: Settings,
    link: links.PhysicianLink,
    shipment: Row,
    form: FollowupForm,
    now: datetime,
    client_ip: str | None,
) -> str | None:
    """Record the answers (and any adverse event); returns the record's SHA-256, or None
    when the link or the follow-up was already used."""
    with conn.transaction():
        followup = conn.execute(queries.FOLLOWUP_FOR_UPDATE, (link.shipment_id,)).fetchone()
        if followup is None or followup["state"] == "completed":
            return None
        if not links.mark_used(conn, link.link_id, now):
            return None
        answers = {k: iso(v) if isinstance(v, date) else v for k, v in asdict(form).items()}
        answers.pop("signer_name")
        record = {
            "record_type": "followup",
            "shipment_id": shipment["shipment_id"],
            "shipment_ref": shipment["shipment_ref"],
            **answers,
            "adverse_event": form.adverse_event.as_record() if form.adverse_event else None,
            "signature": {
                "printed_name": form.signer_name,
                "signed_at": isoformat_utc(now),
                "meaning": FOLLOWUP_MEANING,
            },
        }
        digest = record_digest(record)
        conn.execute(
            queries.COMPLETE_FOLLOWUP,
            {
                "followup_id": followup["followup_id"],
                "now": now,
                "safe_receipt": form.safe_receipt,
                "stored_correctly": form.stored_correctly,
                "administration": form.administration,
                "administration_date": form.administration_date,
                "adverse_event": form.adverse_event is not None,
                "comments": form.comments,
                "signer_name": form.signer_name,
                "signature_meaning": FOLLOWUP_MEANING,
                "response": Jsonb(record),
                "response_sha256": digest,
            },
        )
        actor = f"physician:{link.physician_id}"
        audit.record(
            conn,
            actor=actor,
            action="followup.completed",
            entity_type="shipment",
            entity_id=link.shipment_id,
            details={
                "followup_id": followup["followup_id"],
                "link_id": link.link_id,
                "record_sha256": digest,
                "printed_name": form.signer_name,
                "meaning": FOLLOWUP_MEANING,
                "adverse_event": form.adverse_event is not None,
                "client_ip": client_ip,
            },
        )
        if followup["alert_id"] is not None:
            resolve(conn, followup["alert_id"], actor, "follow-up answered", now, via="followup")
        if form.adverse_event is not None:
            adverse_events.create_adverse_event(
                conn,
                settings,
                case_id=shipment["case_id"],
                shipment_id=link.shipment_id,
                report=form.adverse_event,
                reporter=form.signer_name,
                source="followup",
                actor=actor,
                now=now,
                followup_id=followup["followup_id"],
            )
    return digest
