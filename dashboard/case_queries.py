"""What the Cases page and the shipment page's case panel read (read-only, bound parameters).

Receipt and follow-up status of one shipment come from ``case_link.queries``; units and
custody from ``case_link.units`` and ``case_link.custody``. The lists across all cases are
here. ``search`` narrows every list to case references containing it (case-insensitive).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from core.db import Row

LIST_LIMIT: Final = 200

# Filter on the case reference: NULL means every case.
_CASE_FILTER: Final = "(%(pattern)s::text IS NULL OR c.case_ref ILIKE %(pattern)s)"

STEP_COUNTS: Final = f"""
SELECT c.step, count(*) AS n FROM cases c WHERE {_CASE_FILTER} GROUP BY c.step
"""

CASES: Final = f"""
SELECT c.case_id, c.case_ref, c.step, c.updated_at, p.institution, p.country,
       coalesce(sh.ids, '{{}}') AS shipment_ids, coalesce(sh.refs, '{{}}') AS shipment_refs
FROM cases c LEFT JOIN physicians p USING (physician_id)
LEFT JOIN LATERAL (
    SELECT array_agg(s.shipment_id ORDER BY s.shipment_id) AS ids,
           array_agg(s.shipment_ref ORDER BY s.shipment_id) AS refs
    FROM shipments s WHERE s.case_id = c.case_id) sh ON true
WHERE {_CASE_FILTER} AND (%(steps)s::text[] IS NULL OR c.step = ANY(%(steps)s))
ORDER BY c.updated_at DESC, c.case_id DESC
LIMIT %(limit)s
"""

# Delivered, not signed for: those with a receipt request, and the recent ones the sweep
# has not asked about (yet, or ever: a case without a physician). The deadline is the
# request's, or what it would be.
AWAITING_CONFIRMATION: Final = f"""
SELECT s.shipment_id, s.shipment_ref, s.destination_name, s.destination_tz, s.delivered_at,
       c.case_ref, p.institution, r.requested_at, r.escalated_at,
       coalesce(r.confirm_by, s.delivered_at + make_interval(hours => %(confirm_hours)s))
           AS confirm_by
FROM shipments s
LEFT JOIN cases c ON c.case_id = s.case_id
LEFT JOIN physicians p ON p.physician_id = c.physician_id
LEFT JOIN receipt_requests r ON r.shipment_id = s.shipment_id
WHERE s.status = 'delivered' AND s.delivered_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM receipt_confirmations rc WHERE rc.shipment_id = s.shipment_id)
  AND (r.shipment_id IS NOT NULL OR s.delivered_at > %(since)s)
  AND {_CASE_FILTER}
ORDER BY s.delivered_at
LIMIT %(limit)s
"""

_FOLLOWUP_COLUMNS: Final = """
f.followup_id, f.shipment_id, s.shipment_ref, s.destination_tz, c.case_ref, f.due_at,
f.state, f.reminders_sent, f.sent_at, f.overdue_at, f.completed_at, f.safe_receipt,
f.stored_correctly, f.administration, f.administration_date, f.adverse_event, f.comments,
f.signer_name, rc.signed_at AS receipt_signed_at, rc.received_by AS receipt_received_by
"""

# Open follow-ups (any age) and the most recently completed ones.
FOLLOWUPS: Final = f"""
(SELECT {_FOLLOWUP_COLUMNS}
 FROM followups f JOIN shipments s USING (shipment_id)
 LEFT JOIN cases c ON c.case_id = s.case_id
 LEFT JOIN receipt_confirmations rc ON rc.shipment_id = f.shipment_id
 WHERE f.state <> 'completed' AND {_CASE_FILTER}
 ORDER BY f.due_at LIMIT %(limit)s)
UNION ALL
(SELECT {_FOLLOWUP_COLUMNS}
 FROM followups f JOIN shipments s USING (shipment_id)
 LEFT JOIN cases c ON c.case_id = s.case_id
 LEFT JOIN receipt_confirmations rc ON rc.shipment_id = f.shipment_id
 WHERE f.state = 'completed' AND {_CASE_FILTER}
 ORDER BY f.completed_at DESC LIMIT %(limit)s)
"""

_AE_COLUMNS: Final = """
a.adverse_event_id, a.case_id, c.case_ref, a.shipment_id, s.shipment_ref, a.onset_date,
a.description, a.seriousness, a.serious, a.outcome, a.reporter, a.source, a.aware_at,
a.manufacturer_due_at, a.manufacturer_reported_at, a.manufacturer_reference,
a.regulator_due_at, a.regulator_reported_at, a.regulator_reference
"""

# Events still to be reported first (nearest deadline first), then the reported ones.
ADVERSE_EVENTS: Final = f"""
SELECT {_AE_COLUMNS}
FROM adverse_events a JOIN cases c USING (case_id) JOIN shipments s USING (shipment_id)
WHERE {_CASE_FILTER}
ORDER BY (a.manufacturer_reported_at IS NOT NULL AND a.regulator_reported_at IS NOT NULL),
         least(CASE WHEN a.manufacturer_reported_at IS NULL THEN a.manufacturer_due_at END,
               CASE WHEN a.regulator_reported_at IS NULL THEN a.regulator_due_at END),
         a.aware_at DESC
LIMIT %(limit)s
"""

SHIPMENT_CASE: Final = """
SELECT s.shipment_id, s.shipment_ref, s.status, s.delivered_at, s.destination_tz,
       c.case_id, c.case_ref, c.step, p.institution, p.country
FROM shipments s
LEFT JOIN cases c ON c.case_id = s.case_id
LEFT JOIN physicians p ON p.physician_id = c.physician_id
WHERE s.shipment_id = %s
"""

# What the "Record custody event" form needs: the places, the status, the last event and
# whether the case has a physician (who gets the receipt link once it is delivered).
CUSTODY_FORM_SHIPMENT: Final = """
SELECT s.shipment_id, s.status, s.origin_name, s.origin_lat, s.origin_lon,
       s.destination_name, s.destination_lat, s.destination_lon, s.destination_tz,
       c.physician_id,
       (SELECT e.event_type FROM custody_events e WHERE e.shipment_id = s.shipment_id
        ORDER BY e.at DESC, e.custody_event_id DESC LIMIT 1) AS last_event
FROM shipments s
LEFT JOIN cases c ON c.case_id = s.case_id
WHERE s.shipment_id = %s
"""

SHIPMENT_ADVERSE_EVENTS: Final = f"""
SELECT {_AE_COLUMNS}
FROM adverse_events a JOIN cases c USING (case_id) JOIN shipments s USING (shipment_id)
WHERE a.shipment_id = %s ORDER BY a.onset_date, a.adverse_event_id
"""


def case_pattern(search: str | None) -> str | None:
    """An ILIKE pattern for a case reference fragment; LIKE's wildcards are taken literally."""
    text = (search or "").strip()[:100]
    if not text:
        return None
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _params(search: str | None, **extra: Any) -> dict[str, Any]:
    return {"pattern": case_pattern(search), "limit": LIST_LIMIT, **extra}


def step_counts(conn: psycopg.Connection[Row], search: str | None = None) -> dict[str, int]:
    rows = conn.execute(STEP_COUNTS, _params(search)).fetchall()
    return {r["step"]: int(r["n"]) for r in rows}


def cases(
    conn: psycopg.Connection[Row], steps: list[str] | None, search: str | None = None
) -> list[Row]:
    """Cases, most recently changed first, at any of ``steps`` (all when None)."""
    return conn.execute(CASES, _params(search, steps=steps or None)).fetchall()


def awaiting_confirmation(
    conn: psycopg.Connection[Row],
    now: datetime,
    *,
    confirm_hours: int,
    link_ttl_hours: int,
    search: str | None = None,
) -> list[Row]:
    """Delivered shipments without the physician's signed receipt, oldest delivery first."""
    params = _params(
        search, confirm_hours=confirm_hours, since=now - timedelta(hours=link_ttl_hours)
    )
    return conn.execute(AWAITING_CONFIRMATION, params).fetchall()


def followups(conn: psycopg.Connection[Row], search: str | None = None) -> list[Row]:
    """Open follow-ups by due time, then the latest completed ones."""
    return conn.execute(FOLLOWUPS, _params(search)).fetchall()


def adverse_events(conn: psycopg.Connection[Row], search: str | None = None) -> list[Row]:
    return conn.execute(ADVERSE_EVENTS, _params(search)).fetchall()


def shipment_case(conn: psycopg.Connection[Row], shipment_id: int) -> Row | None:
    """The shipment with its case and physician's institution (None: no such shipment)."""
    return conn.execute(SHIPMENT_CASE, (shipment_id,)).fetchone()


def shipment_adverse_events(conn: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    return conn.execute(SHIPMENT_ADVERSE_EVENTS, (shipment_id,)).fetchall()


def custody_form_shipment(conn: psycopg.Connection[Row], shipment_id: int) -> Row | None:
    """The shipment as the custody form sees it (None: no such shipment)."""
    return conn.execute(CUSTODY_FORM_SHIPMENT, (shipment_id,)).fetchone()
