"""Receipt confirmation by the physician (issue 7, DESIGN.md §8).

``request_receipts`` is a sweep: delivered shipments (whoever marked them: the monitor's
geofence, a carrier or custody event, staff) without a receipt request get one, with a
link and an SMS, in one transaction. ``escalate_unconfirmed`` alerts logistics when the
confirmation is late. ``confirm_receipt`` stores the physician's signed record, spends the
link, resolves the late alert, schedules the follow-up and writes the audit entry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Final

import psycopg
from psycopg.types.json import Jsonb

from alerts.service import raise_alert, resolve
from case_link import followups, links, queries
from case_link.cases import advance_on_receipt
from case_link.forms import Fields, earliest_receipt, iso, record_digest
from case_link.sweep import row_savepoint
from core import audit
from core.clock import isoformat_utc
from core.db import Row
from core.settings import Settings
from core.severity import Severity

log = logging.getLogger(__name__)

RULE_UNCONFIRMED: Final = "receipt-unconfirmed"
RULE_ISSUE: Final = "receipt-issue"
INDICATOR_CHOICES: Final = ("ok", "alarm", "none")
# 21 CFR 11.50(a)(3): the meaning of the signature, shown beside the box the signer ticks.
RECEIPT_MEANING: Final = (
    "Responsibility: I confirm that this shipment was received and stored as recorded above."
)


# Taken before the link is spent, in the order resend_receipt_link locks (request, then
# links), so a confirmation and a resend of the same shipment cannot deadlock.
@dataclass(frozen=True, slots=True)
class ReceiptForm:
    received_at: datetime
    received_by: str
    package_intact: bool
    package_note: str | None
    indicator_status: str
    indicator_note: str | None
    storage_confirmed: bool
    stored_at: datetime | None
    signer_name: str


@dataclass(frozen=True, slots=True)
class ConfirmedReceipt:
    confirmation_id: int
    record_sha256: str
    followup_due_at: datetime


def sms_body(shipment_ref: str, url: str) -> str:
    # No patient data and no case reference: the shipment reference and the link only.
    return f"Shipment {shipment_ref} has been delivered. Please confirm receipt and storage: {url}"


def request_receipts(
    conn: psycopg.Connection[Row], settings: Settings, now: datetime, limit: int = 50
) -> list[int]:
    """Ask the physician of each newly delivered shipment to confirm; returns shipment ids."""
    requested = []
    # Deliveries older than a link's lifetime are history (e.g. before this feature existed).
    since = now - timedelta(hours=settings.receipt_link_ttl_hours)
    with conn.transaction():
        rows = conn.execute(
            queries.CLAIM_DELIVERED_WITHOUT_REQUEST, {"since": since, "limit": limit}
        ).fetchall()
        for row in rows:
            with row_savepoint(conn, "receipt_requests", row["shipment_id"]):
                _request_one(conn, settings, row, now)
                requested.append(int(row["shipment_id"]))
    return requested


def _request_one(
    conn: psycopg.Connection[Row], settings: Settings, row: Row, now: datetime
) -> None:
    link, notification_id = _send_receipt_link(conn, settings, row, row["shipment_id"], now)
    confirm_by = row["delivered_at"] + timedelta(hours=settings.receipt_confirm_within_hours)
    conn.execute(
        queries.INSERT_RECEIPT_REQUEST,
        (row["shipment_id"], row["physician_id"], row["delivered_at"], now, confirm_by),
    )
    audit.record(
        conn,
        actor="case_link",
        action="receipt.requested",
        entity_type="shipment",
        entity_id=row["shipment_id"],
        details={
            "physician_id": row["physician_id"],
            "link_id": link.link_id,
            "notification_id": notification_id,
            "link_expires_at": isoformat_utc(link.expires_at),
            "confirm_by": isoformat_utc(confirm_by),
        },
    )


def _send_receipt_link(
    conn: psycopg.Connection[Row], settings: Settings, row: Row, shipment_id: int, now: datetime
) -> tuple[links.IssuedLink, int]:
    """A receipt link for the physician of ``row`` (physician_id, mobile_e164,
    shipment_ref) and the SMS that carries it."""
    return links.send_link(
        conn,
        settings,
        purpose="receipt",
        shipment_id=shipment_id,
        physician_id=row["physician_id"],
        recipient=row["mobile_e164"],
        body=lambda url: sms_body(row["shipment_ref"], url),
        now=now,
    )


class ResendRefused(ValueError):
    """A receipt link that cannot be re-sent; the message says why."""


@dataclass(frozen=True, slots=True)
class ResentLink:
    link_id: int
    notification_id: int
    expires_at: datetime
    revoked_link_ids: list[int]


def resend_receipt_link(
    conn: psycopg.Connection[Row],
    settings: Settings,
    *,
    case_id: int,
    shipment_id: int,
    actor: str,
    now: datetime,
) -> ResentLink:
    """A new link and SMS to the case's physician (as recorded now); the old link stops
    working. Staff never see the token: the link goes only to the physician's phone."""
    with conn.transaction():
        row = conn.execute(
            queries.RECEIPT_REQUEST_FOR_RESEND, {"shipment_id": shipment_id, "case_id": case_id}
        ).fetchone()
        if row is None:
            raise ResendRefused(
                f"shipment {shipment_id} of case {case_id} has no receipt request "
                "(not delivered yet, or the case has no physician)"
            )
        if row["confirmed_at"] is not None:
            raise ResendRefused(f"the receipt of shipment {shipment_id} is already confirmed")
        revoked = conn.execute(
            queries.REVOKE_OPEN_LINKS,
            {"shipment_id": shipment_id, "purpose": "receipt", "now": now},
        ).fetchall()
        link, notification_id = _send_receipt_link(conn, settings, row, shipment_id, now)
        conn.execute(queries.RESENT_RECEIPT_REQUEST, (row["physician_id"], shipment_id))
        revoked_ids = [int(r["link_id"]) for r in revoked]
        audit.record(
            conn,
            actor=actor,
            action="receipt.link_resent",
            entity_type="shipment",
            entity_id=shipment_id,
            details={
                "physician_id": row["physician_id"],
                "link_id": link.link_id,
                "notification_id": notification_id,
                "revoked_link_ids": revoked_ids,
            },
        )
    return ResentLink(link.link_id, notification_id, link.expires_at, revoked_ids)


def escalate_unconfirmed(
    conn: psycopg.Connection[Row], now: datetime, limit: int = 50
) -> list[int]:
    """Alert logistics about deliveries nobody has confirmed in time; returns shipment ids."""
    escalated = []
    with conn.transaction():
        rows = conn.execute(queries.CLAIM_UNCONFIRMED, {"now": now, "limit": limit}).fetchall()
        for row in rows:
            with row_savepoint(conn, "receipt_escalations", row["shipment_id"]):
                _escalate_one(conn, row, now)
                escalated.append(int(row["shipment_id"]))
    return escalated


def _escalate_one(conn: psycopg.Connection[Row], row: Row, now: datetime) -> None:
    hours = round((now - row["delivered_at"]).total_seconds() / 3600)
    change = raise_alert(
        conn,
        shipment_id=row["shipment_id"],
        rule_id=RULE_UNCONFIRMED,
        severity=Severity.MEDIUM,
        summary=f"delivered {hours} h ago; the physician has not confirmed receipt",
        message=(
            f"[MEDIUM] Shipment {row['shipment_ref']}: delivered "
            f"{row['delivered_at']:%Y-%m-%d %H:%M}Z, receipt not confirmed after "
            f"{hours} h. Check with the clinic who took the package."
        ),
        condition_at=row["confirm_by"],
        now=now,
    )
    conn.execute(queries.MARK_RECEIPT_ESCALATED, (now, change.alert_id, row["shipment_id"]))


def parse_receipt_form(
    raw: Mapping[str, list[str]],
    *,
    tz: str,
    now: datetime,
    delivered_at: datetime | None = None,
) -> ReceiptForm:
    """The receipt form's fields, or FormError naming every field that is wrong.

    The times are the destination's local time, not in the future and not earlier than
    the shipment's delivery less ``forms.DELIVERY_ALLOWANCE``; storage not before receipt.
    """
    f = Fields(raw, tz)
    earliest = earliest_receipt(delivered_at, now)
    received_at = f.local_datetime("received_at", now, earliest=earliest)
    received_by = f.text("received_by", limit=200)
    package_intact = f.yes_no("package_intact")
    package_note = f.text("package_note", required=package_intact is False, multiline=True)
    indicator_status = f.choice("indicator_status", INDICATOR_CHOICES)
    indicator_note = f.text("indicator_note", required=indicator_status == "alarm", multiline=True)
    storage_confirmed = f.checked("storage_confirmed")
    stored_at = f.local_datetime(
        "stored_at", now, earliest=received_at or earliest, required=storage_confirmed
    )
    if not storage_confirmed:
        stored_at = None
    signer_name = f.text("signer_name", limit=200)
    if not f.checked("signature_agree"):
        f.problems["signature_agree"] = "tick the box to sign with the meaning shown"
    f.done()
    assert received_at is not None and received_by is not None and signer_name is not None
    assert package_intact is not None and indicator_status is not None
    return ReceiptForm(
        received_at=received_at,
        received_by=received_by,
        package_intact=package_intact,
        package_note=package_note,
        indicator_status=indicator_status,
        indicator_note=indicator_note,
        storage_confirmed=storage_confirmed,
        stored_at=stored_at,
        signer_name=signer_name,
    )


def signed_record(shipment: Row, form: ReceiptForm, signed_at: datetime) -> dict[str, object]:
    """What the signature covers: every recorded field and the signature manifestation."""
    fields = {k: iso(v) if isinstance(v, datetime) else v for k, v in asdict(form).items()}
    fields.pop("signer_name")
    return {
        "record_type": "receipt_confirmation",
        "shipment_id": shipment["shipment_id"],
        "shipment_ref": shipment["shipment_ref"],
        **fields,
        "signature": {
            "printed_name": form.signer_name,
            "signed_at": isoformat_utc(signed_at),
            "meaning": RECEIPT_MEANING,
        },
    }


def confirm_receipt(
    conn: psycopg.Connection[Row],
    settings: Settings,
    link: links.PhysicianLink,
    shipment: Row,
    form: ReceiptForm,
    now: datetime,
    client_ip: str | None,
) -> ConfirmedReceipt | None:
    """Store the signed receipt; None when the link was spent meanwhile (nothing changes)."""
    with conn.transaction():
        # Lock order as in resend_receipt_link: the request row first, then the link.
        conn.execute(queries.LOCK_RECEIPT_REQUEST, (link.shipment_id,))
        if not links.mark_used(conn, link.link_id, now):
            return None
        record = signed_record(shipment, form, now)
        digest = record_digest(record)
        row = conn.execute(
            queries.INSERT_RECEIPT_CONFIRMATION,
            {
                **asdict(form),
                "shipment_id": link.shipment_id,
                "link_id": link.link_id,
                "signature_meaning": RECEIPT_MEANING,
                "signed_at": now,
                "record": Jsonb(record),
                "record_sha256": digest,
            },
        ).fetchone()
        assert row is not None
        request = conn.execute(queries.CONFIRM_RECEIPT_REQUEST, (now, link.shipment_id)).fetchone()
        actor = f"physician:{link.physician_id}"
        audit.record(
            conn,
            actor=actor,
            action="receipt.confirmed",
            entity_type="shipment",
            entity_id=link.shipment_id,
            details={
                "confirmation_id": row["confirmation_id"],
                "link_id": link.link_id,
                "record_sha256": digest,
                "printed_name": form.signer_name,
                "signed_at": isoformat_utc(now),
                "meaning": RECEIPT_MEANING,
                "client_ip": client_ip,
            },
        )
        if request is not None and request["alert_id"] is not None:
            resolve(conn, request["alert_id"], actor, "receipt confirmed", now, via="receipt")
        _alert_on_issue(conn, shipment, form, now)
        due_at = followups.schedule(conn, settings, link.shipment_id, link.physician_id, now)
        advance_on_receipt(conn, link.shipment_id, actor, now)
    return ConfirmedReceipt(int(row["confirmation_id"]), digest, due_at)


def _alert_on_issue(
    conn: psycopg.Connection[Row], shipment: Row, form: ReceiptForm, now: datetime
) -> None:
    """A damaged package, an indicator alarm or unconfirmed storage needs a person now."""
    problems = []
    if not form.package_intact:
        problems.append("package not intact")
    if form.indicator_status == "alarm":
        problems.append("temperature indicator shows an alarm")
    if not form.storage_confirmed:
        problems.append("storage not confirmed")
    if not problems:
        return
    text = "; ".join(problems)
    raise_alert(
        conn,
        shipment_id=shipment["shipment_id"],
        rule_id=RULE_ISSUE,
        severity=Severity.HIGH,
        summary=f"receipt reported: {text}",
        message=f"[HIGH] Shipment {shipment['shipment_ref']}: the physician reported {text}.",
        condition_at=form.received_at,
        now=now,
    )
