"""SQL of physician links, receipts, follow-ups and adverse events, and the read functions
other parts call (``receipt_status``, ``followup_status``)."""

from __future__ import annotations

from typing import Final

import psycopg

from core.db import Row

INSERT_LINK: Final = """
INSERT INTO physician_links (purpose, shipment_id, physician_id, token_hash, created_at,
                             expires_at)
VALUES (%(purpose)s, %(shipment_id)s, %(physician_id)s, %(token_hash)s, %(now)s, %(expires_at)s)
RETURNING link_id
"""

LINK_NOTIFICATION: Final = "UPDATE physician_links SET notification_id = %s WHERE link_id = %s"

_LINK_COLUMNS: Final = (
    "link_id, purpose, shipment_id, physician_id, token_hash, expires_at, used_at, revoked_at"
)
LINK_BY_HASH: Final = f"SELECT {_LINK_COLUMNS} FROM physician_links WHERE token_hash = %s"

# Taken before the link is spent, in the same order as a resend (request, then link).
LOCK_RECEIPT_REQUEST: Final = """
SELECT shipment_id FROM receipt_requests WHERE shipment_id = %s FOR UPDATE
"""

MARK_LINK_USED: Final = """
UPDATE physician_links SET used_at = %s
WHERE link_id = %s AND used_at IS NULL AND revoked_at IS NULL AND expires_at > %s
RETURNING link_id
"""

# Delivered shipments whose case names a physician and that nobody has asked yet.
CLAIM_DELIVERED_WITHOUT_REQUEST: Final = """
SELECT s.shipment_id, s.shipment_ref, s.delivered_at, p.physician_id, p.mobile_e164
FROM shipments s
JOIN cases c ON c.case_id = s.case_id
JOIN physicians p ON p.physician_id = c.physician_id
WHERE s.status = 'delivered' AND s.delivered_at IS NOT NULL AND s.delivered_at > %(since)s
  AND NOT EXISTS (SELECT 1 FROM receipt_requests r WHERE r.shipment_id = s.shipment_id)
ORDER BY s.delivered_at
LIMIT %(limit)s
FOR UPDATE OF s SKIP LOCKED
"""

INSERT_RECEIPT_REQUEST: Final = """
INSERT INTO receipt_requests (shipment_id, physician_id, delivered_at, requested_at, confirm_by)
VALUES (%s, %s, %s, %s, %s)
"""

# The request to re-send, with the case's physician as of now (the number may be corrected).
RECEIPT_REQUEST_FOR_RESEND: Final = """
SELECT r.shipment_id, r.confirmed_at, s.shipment_ref, p.physician_id, p.mobile_e164
FROM receipt_requests r
JOIN shipments s USING (shipment_id)
JOIN cases c ON c.case_id = s.case_id
JOIN physicians p ON p.physician_id = c.physician_id
WHERE r.shipment_id = %(shipment_id)s AND s.case_id = %(case_id)s
FOR UPDATE OF r
"""

REVOKE_OPEN_LINKS: Final = """
UPDATE physician_links SET revoked_at = %(now)s
WHERE shipment_id = %(shipment_id)s AND purpose = %(purpose)s AND used_at IS NULL
  AND revoked_at IS NULL AND expires_at > %(now)s
RETURNING link_id
"""

RESENT_RECEIPT_REQUEST: Final = """
UPDATE receipt_requests SET physician_id = %s WHERE shipment_id = %s
"""

CLAIM_UNCONFIRMED: Final = """
SELECT r.shipment_id, s.shipment_ref, r.delivered_at, r.confirm_by
FROM receipt_requests r JOIN shipments s USING (shipment_id)
WHERE r.confirmed_at IS NULL AND r.escalated_at IS NULL AND r.confirm_by <= %(now)s
ORDER BY r.confirm_by
LIMIT %(limit)s
FOR UPDATE OF r SKIP LOCKED
"""

MARK_RECEIPT_ESCALATED: Final = """
UPDATE receipt_requests SET escalated_at = %s, alert_id = %s WHERE shipment_id = %s
"""

CONFIRM_RECEIPT_REQUEST: Final = """
UPDATE receipt_requests SET confirmed_at = %s
WHERE shipment_id = %s AND confirmed_at IS NULL
RETURNING alert_id
"""

INSERT_RECEIPT_CONFIRMATION: Final = """
INSERT INTO receipt_confirmations (
    shipment_id, link_id, received_at, received_by, package_intact, package_note,
    indicator_status, indicator_note, storage_confirmed, stored_at, signer_name,
    signature_meaning, signed_at, record, record_sha256)
VALUES (
    %(shipment_id)s, %(link_id)s, %(received_at)s, %(received_by)s, %(package_intact)s,
    %(package_note)s, %(indicator_status)s, %(indicator_note)s, %(storage_confirmed)s,
    %(stored_at)s, %(signer_name)s, %(signature_meaning)s, %(signed_at)s, %(record)s,
    %(record_sha256)s)
RETURNING confirmation_id
"""

# What the physician page shows: the shipment, its drug and what the loggers saw.
SHIPMENT_FOR_PAGE: Final = """
SELECT s.shipment_id, s.shipment_ref, s.case_id, s.status, s.delivered_at, s.destination_name,
       s.destination_tz, d.name AS drug_name,
       (d.definition -> 'storage' ->> 'min_c')::double precision AS storage_min_c,
       (d.definition -> 'storage' ->> 'max_c')::double precision AS storage_max_c,
       latest.ts AS last_reading_at, latest.temp_c AS last_temp_c,
       (SELECT count(*) FROM excursions e WHERE e.shipment_id = s.shipment_id) AS excursions,
       (SELECT max(e.peak_c) FILTER (WHERE e.direction = 'above') FROM excursions e
        WHERE e.shipment_id = s.shipment_id) AS highest_excursion_c,
       (SELECT min(e.peak_c) FILTER (WHERE e.direction = 'below') FROM excursions e
        WHERE e.shipment_id = s.shipment_id) AS lowest_excursion_c
FROM shipments s
JOIN drug_profiles d USING (profile_id)
LEFT JOIN LATERAL (
    SELECT r.ts, r.temp_c FROM readings r
    WHERE r.shipment_id = s.shipment_id AND r.temp_c IS NOT NULL
    ORDER BY r.ts DESC LIMIT 1) latest ON true
WHERE s.shipment_id = %s
"""

INSERT_FOLLOWUP: Final = """
INSERT INTO followups (shipment_id, physician_id, due_at, next_action_at, created_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (shipment_id) DO NOTHING
RETURNING followup_id
"""

FOLLOWUP_DUE: Final = "SELECT due_at FROM followups WHERE shipment_id = %s"

CLAIM_DUE_FOLLOWUPS: Final = """
SELECT f.followup_id, f.shipment_id, f.physician_id, f.due_at, f.state, f.reminders_sent,
       s.shipment_ref, p.mobile_e164
FROM followups f
JOIN shipments s USING (shipment_id)
JOIN physicians p ON p.physician_id = f.physician_id
WHERE f.next_action_at <= %(now)s AND f.state IN ('scheduled', 'sent')
ORDER BY f.next_action_at
LIMIT %(limit)s
FOR UPDATE OF f SKIP LOCKED
"""

CLEAR_FOLLOWUP_ACTION: Final = "UPDATE followups SET next_action_at = NULL WHERE followup_id = %s"

FOLLOWUP_SENT: Final = """
UPDATE followups SET state = 'sent',
       sent_at = CASE WHEN %(reminder)s THEN sent_at ELSE %(now)s END,
       reminders_sent = reminders_sent + CASE WHEN %(reminder)s THEN 1 ELSE 0 END,
       next_action_at = %(next_action_at)s
WHERE followup_id = %(followup_id)s
"""

FOLLOWUP_OVERDUE: Final = """
UPDATE followups SET state = 'overdue', overdue_at = %s, alert_id = %s, next_action_at = NULL
WHERE followup_id = %s
"""

FOLLOWUP_FOR_UPDATE: Final = """
SELECT followup_id, state, alert_id FROM followups WHERE shipment_id = %s FOR UPDATE
"""

COMPLETE_FOLLOWUP: Final = """
UPDATE followups SET state = 'completed', completed_at = %(now)s, next_action_at = NULL,
       safe_receipt = %(safe_receipt)s, stored_correctly = %(stored_correctly)s,
       administration = %(administration)s, administration_date = %(administration_date)s,
       adverse_event = %(adverse_event)s, comments = %(comments)s, signer_name = %(signer_name)s,
       signature_meaning = %(signature_meaning)s, response = %(response)s,
       response_sha256 = %(response_sha256)s
WHERE followup_id = %(followup_id)s
"""

_AE_COLUMNS: Final = """
a.adverse_event_id, a.case_id, a.shipment_id, s.shipment_ref, a.followup_id, a.onset_date,
a.description, a.seriousness, a.serious, a.outcome, a.reporter, a.source, a.aware_at,
a.manufacturer_due_at, a.manufacturer_reported_at, a.manufacturer_reported_by,
a.manufacturer_reference, a.regulator_due_at, a.regulator_reported_at,
a.regulator_reported_by, a.regulator_reference, a.manufacturer_stage, a.regulator_stage,
a.created_at
"""

INSERT_ADVERSE_EVENT: Final = """
INSERT INTO adverse_events (case_id, shipment_id, followup_id, onset_date, description,
                            seriousness, outcome, reporter, source, aware_at,
                            manufacturer_due_at, regulator_due_at, next_check_at, created_at)
VALUES (%(case_id)s, %(shipment_id)s, %(followup_id)s, %(onset_date)s, %(description)s,
        %(seriousness)s, %(outcome)s, %(reporter)s, %(source)s, %(now)s, %(due)s, %(due)s,
        %(next_check_at)s, %(now)s)
RETURNING adverse_event_id
"""

LIST_ADVERSE_EVENTS: Final = f"""
SELECT {_AE_COLUMNS} FROM adverse_events a JOIN shipments s USING (shipment_id)
WHERE a.case_id = %s ORDER BY a.onset_date, a.adverse_event_id
"""

ADVERSE_EVENT_BY_ID: Final = f"""
SELECT {_AE_COLUMNS} FROM adverse_events a JOIN shipments s USING (shipment_id)
WHERE a.adverse_event_id = %s AND a.case_id = %s
"""

ADVERSE_EVENT_FOR_UPDATE: Final = ADVERSE_EVENT_BY_ID + " FOR UPDATE OF a"

MARK_AE_REPORTED: Final = {
    who: f"""
UPDATE adverse_events SET {who}_reported_at = %(at)s, {who}_reported_by = %(by)s,
       {who}_reference = %(reference)s, next_check_at = %(next_check_at)s
WHERE adverse_event_id = %(id)s
"""
    for who in ("manufacturer", "regulator")
}

# Another event of the shipment still unreported to this recipient after an alert.
AE_PENDING_ALERTED: Final = """
SELECT 1 FROM adverse_events
WHERE shipment_id = %(shipment_id)s
  AND ((%(who)s::text = 'manufacturer'
        AND manufacturer_reported_at IS NULL AND manufacturer_stage > 0)
    OR (%(who)s::text = 'regulator' AND regulator_reported_at IS NULL AND regulator_stage > 0))
LIMIT 1
"""

OPEN_ALERT: Final = """
SELECT alert_id FROM alerts WHERE shipment_id = %s AND rule_id = %s AND state <> 'resolved'
"""

CLAIM_AE_CHECKS: Final = f"""
SELECT {_AE_COLUMNS} FROM adverse_events a JOIN shipments s USING (shipment_id)
WHERE a.next_check_at <= %(now)s
ORDER BY a.next_check_at
LIMIT %(limit)s
FOR UPDATE OF a SKIP LOCKED
"""

UPDATE_AE_STAGES: Final = """
UPDATE adverse_events SET manufacturer_stage = %(manufacturer_stage)s,
       regulator_stage = %(regulator_stage)s, next_check_at = %(next_check_at)s
WHERE adverse_event_id = %(id)s
"""

CASE_EXISTS: Final = "SELECT 1 FROM cases WHERE case_id = %s"

# The shipment an event concerns: the one named, if it belongs to the case, else the latest.
CASE_SHIPMENT: Final = """
SELECT shipment_id FROM shipments
WHERE case_id = %(case_id)s
  AND (%(shipment_id)s::bigint IS NULL OR shipment_id = %(shipment_id)s)
ORDER BY created_at DESC, shipment_id DESC
LIMIT 1
"""

CASE_SHIPMENTS: Final = """
SELECT shipment_id, shipment_ref, status, delivered_at FROM shipments
WHERE case_id = %s ORDER BY created_at, shipment_id
"""

RECEIPT_STATUS: Final = """
SELECT r.shipment_id, r.physician_id, r.delivered_at, r.requested_at, r.confirm_by,
       r.escalated_at, r.alert_id, r.confirmed_at, c.confirmation_id, c.received_at,
       c.received_by, c.package_intact, c.package_note, c.indicator_status, c.indicator_note,
       c.storage_confirmed, c.stored_at, c.signer_name, c.signature_meaning, c.signed_at,
       c.record_sha256
FROM receipt_requests r LEFT JOIN receipt_confirmations c USING (shipment_id)
WHERE r.shipment_id = %s
"""

FOLLOWUP_STATUS: Final = """
SELECT followup_id, shipment_id, physician_id, due_at, state, next_action_at, reminders_sent,
       sent_at, overdue_at, alert_id, completed_at, safe_receipt, stored_correctly,
       administration, administration_date, adverse_event, comments, signer_name,
       signature_meaning, response_sha256
FROM followups WHERE shipment_id = %s
"""


def receipt_status(conn: psycopg.Connection[Row], shipment_id: int) -> Row | None:
    """The receipt request of a shipment and, once signed, the confirmation (else None)."""
    return conn.execute(RECEIPT_STATUS, (shipment_id,)).fetchone()


def followup_status(conn: psycopg.Connection[Row], shipment_id: int) -> Row | None:
    """The follow-up of a shipment: state, schedule and the recorded outcome (else None)."""
    return conn.execute(FOLLOWUP_STATUS, (shipment_id,)).fetchone()
