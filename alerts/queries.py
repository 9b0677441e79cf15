"""SQL of the alert lifecycle and notification delivery."""

from __future__ import annotations

from typing import Final

# Severity order for upgrades in place: a new trigger never lowers an open alert.
SEVERITY_RANK: Final = "array_position(ARRAY['notification','low','medium','high','critical'], %s)"

OPEN_OR_UPGRADE: Final = f"""
WITH previous AS (
    SELECT severity FROM alerts
    WHERE shipment_id = %(shipment_id)s AND rule_id = %(rule_id)s AND state <> 'resolved'
)
INSERT INTO alerts AS a (shipment_id, rule_id, severity, summary, triggered_at, condition_at)
VALUES (%(shipment_id)s, %(rule_id)s, %(severity)s, %(summary)s, %(now)s, %(condition_at)s)
ON CONFLICT (shipment_id, rule_id) WHERE state <> 'resolved' DO UPDATE SET
    severity = CASE WHEN {SEVERITY_RANK % "EXCLUDED.severity"} > {SEVERITY_RANK % "a.severity"}
                    THEN EXCLUDED.severity ELSE a.severity END,
    summary = EXCLUDED.summary,
    updated_at = EXCLUDED.triggered_at
RETURNING alert_id, severity, state, (SELECT severity FROM previous) AS previous_severity
"""

INSERT_NOTIFICATION: Final = """
INSERT INTO notifications (alert_id, channel, recipient, body, due_at)
VALUES (%s, %s, %s, %s, %s) RETURNING notification_id
"""

# Claim due notifications; rows stuck in 'sending' (a worker died mid-send) are retried.
CLAIM_DUE: Final = """
UPDATE notifications n SET status = 'sending', attempts = n.attempts + 1, updated_at = %(now)s
WHERE n.notification_id IN (
    SELECT notification_id FROM notifications
    WHERE (status = 'pending' AND due_at <= %(now)s)
       OR (status = 'sending' AND updated_at < %(now)s - interval '5 minutes')
    ORDER BY due_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING n.notification_id, n.channel, n.recipient, n.body, n.attempts
"""

MARK_SENT: Final = """
UPDATE notifications SET status = %s, provider_ref = %s, sent_at = %s, updated_at = %s,
       last_error = NULL
WHERE notification_id = %s
"""

MARK_RETRY: Final = """
UPDATE notifications SET status = 'pending', due_at = %s, last_error = %s, updated_at = %s
WHERE notification_id = %s
"""

MARK_FAILED: Final = """
UPDATE notifications SET status = 'failed', last_error = %s, updated_at = %s
WHERE notification_id = %s
"""

LIST_ALERTS: Final = """
SELECT a.alert_id, a.shipment_id, s.shipment_ref, a.rule_id, a.severity, a.state, a.summary,
       a.triggered_at, a.updated_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at
FROM alerts a LEFT JOIN shipments s USING (shipment_id)
WHERE (%(state)s::text IS NULL OR a.state = %(state)s)
ORDER BY a.triggered_at DESC
LIMIT %(limit)s
"""
