"""SQL of the alert lifecycle and notification delivery."""

from __future__ import annotations

from typing import Final

# Severity order for upgrades in place: a new trigger never lowers an open alert.
SEVERITY_RANK: Final = "array_position(ARRAY['notification','low','medium','high','critical'], %s)"

# A new alert takes the offered ack code; an open one keeps its own (alerts opened before
# codes existed get one on their next upgrade).
OPEN_OR_UPGRADE: Final = f"""
WITH previous AS (
    SELECT severity FROM alerts
    WHERE shipment_id = %(shipment_id)s AND rule_id = %(rule_id)s AND state <> 'resolved'
)
INSERT INTO alerts AS a (shipment_id, rule_id, severity, summary, triggered_at, condition_at,
                         ack_code, page_message)
VALUES (%(shipment_id)s, %(rule_id)s, %(severity)s, %(summary)s, %(now)s, %(condition_at)s,
        %(ack_code)s, %(page_message)s)
ON CONFLICT (shipment_id, rule_id) WHERE state <> 'resolved' DO UPDATE SET
    severity = CASE WHEN {SEVERITY_RANK % "EXCLUDED.severity"} > {SEVERITY_RANK % "a.severity"}
                    THEN EXCLUDED.severity ELSE a.severity END,
    summary = EXCLUDED.summary,
    page_message = EXCLUDED.page_message,
    ack_code = coalesce(a.ack_code, EXCLUDED.ack_code),
    updated_at = EXCLUDED.triggered_at
RETURNING alert_id, severity, state, ack_code,
          (SELECT severity FROM previous) AS previous_severity
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
RETURNING n.notification_id, n.alert_id, n.channel, n.recipient, n.body, n.attempts
"""

# A status callback may have overtaken the worker (Twilio reports within milliseconds):
# then the row already holds the provider's word, which is newer than "sent".
MARK_SENT: Final = """
UPDATE notifications SET status = CASE WHEN status = 'sending' THEN %s ELSE status END,
       provider_ref = %s, sent_at = %s, updated_at = %s, last_error = NULL
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

# Provider reports may arrive out of order: one only counts when it comes later in the
# provider's own sequence (%(order)s) than the last one recorded.
RECORD_PROVIDER_STATUS: Final = """
UPDATE notifications SET status = %(status)s, provider_status = %(provider_status)s,
       provider_ref = coalesce(provider_ref, %(provider_ref)s),
       last_error = coalesce(%(error)s, last_error), updated_at = %(now)s
WHERE (notification_id = %(notification_id)s
       OR (%(notification_id)s::bigint IS NULL AND provider_ref = %(provider_ref)s))
  AND (provider_ref IS NULL OR provider_ref = %(provider_ref)s)
  AND status <> 'cancelled'
  AND coalesce(array_position(%(order)s::text[], provider_status), 0)
      < array_position(%(order)s::text[], %(provider_status)s)
RETURNING notification_id
"""

ALERT_FOR_UPDATE: Final = """
SELECT alert_id, state, acknowledged_at, acknowledged_by, resolved_at, resolved_by
FROM alerts WHERE alert_id = %s FOR UPDATE
"""

ACKNOWLEDGE: Final = """
UPDATE alerts SET state = 'acknowledged', acknowledged_at = %(now)s, acknowledged_by = %(actor)s,
       updated_at = %(now)s
WHERE alert_id = %(alert_id)s AND state = 'triggered'
"""

RESOLVE: Final = """
UPDATE alerts SET state = 'resolved', resolved_at = %(now)s, resolved_by = %(actor)s,
       resolution_note = %(note)s, updated_at = %(now)s
WHERE alert_id = %(alert_id)s AND state <> 'resolved'
"""

# Pages already handed to a provider cannot be recalled; those still waiting can.
CANCEL_PENDING: Final = """
UPDATE notifications SET status = 'cancelled', updated_at = %s
WHERE alert_id = %s AND status = 'pending'
RETURNING notification_id
"""

# The alert behind the page sent most recently to a phone number ("reply 1").
LATEST_PAGED_ALERT: Final = """
SELECT alert_id FROM notifications
WHERE recipient = %s AND sent_at IS NOT NULL AND alert_id IS NOT NULL
  AND channel IN ('sms', 'voice')
ORDER BY sent_at DESC, notification_id DESC
LIMIT 1
"""

# An ack code only counts from a number that was paged for that alert; an open alert
# holding the code wins over resolved ones that held it before.
PAGED_ALERT_BY_CODE: Final = """
SELECT a.alert_id FROM alerts a
WHERE a.ack_code = %(code)s
  AND EXISTS (SELECT 1 FROM notifications n
              WHERE n.alert_id = a.alert_id AND n.recipient = %(recipient)s
                AND n.sent_at IS NOT NULL)
ORDER BY a.state <> 'resolved' DESC, a.triggered_at DESC
LIMIT 1
"""

NOTIFICATION_BY_ID: Final = """
SELECT notification_id, alert_id, channel, recipient, provider_ref, status
FROM notifications WHERE notification_id = %s
"""

LIST_ALERTS: Final = """
SELECT a.alert_id, a.shipment_id, s.shipment_ref, a.rule_id, a.severity, a.state, a.summary,
       a.triggered_at, a.updated_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at,
       a.group_alert_id, e.state AS escalation_state, e.next_step_at AS escalation_next_at
FROM alerts a LEFT JOIN shipments s USING (shipment_id)
LEFT JOIN alert_escalations e USING (alert_id)
WHERE (%(state)s::text IS NULL OR a.state = %(state)s)
ORDER BY a.triggered_at DESC
LIMIT %(limit)s
"""

ALERT_LABEL: Final = """
SELECT s.shipment_ref, a.rule_id, a.ack_code
FROM alerts a LEFT JOIN shipments s USING (shipment_id)
WHERE a.alert_id = %s
"""
