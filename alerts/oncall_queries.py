"""SQL of on-call configuration, escalations, silences and GDP notices."""

from __future__ import annotations

from typing import Final

PEOPLE: Final = """
SELECT person_id, name, phone_e164, time_zone, active
FROM oncall_people ORDER BY position, person_id
"""

SCHEDULES: Final = """
SELECT schedule_id, name, layers FROM oncall_schedules
WHERE %(ids)s::text[] IS NULL OR schedule_id = ANY(%(ids)s)
ORDER BY position, schedule_id
"""

OVERRIDES: Final = """
SELECT schedule_id, person_id, starts_at, ends_at FROM oncall_overrides
WHERE %(ids)s::text[] IS NULL OR schedule_id = ANY(%(ids)s)
ORDER BY schedule_id, override_id
"""

POLICIES: Final = """
SELECT policy_id, name, steps, repeat, ack_timeout_min, group_window_s
FROM escalation_policies ORDER BY position, policy_id
"""

ROUTES: Final = """
SELECT policy_id, severities, lane, customer FROM escalation_routes ORDER BY position
"""

# --- import (whole-configuration replace, in one transaction) -----------------------

DELETE_ROUTES: Final = "DELETE FROM escalation_routes"
DELETE_POLICIES_EXCEPT: Final = "DELETE FROM escalation_policies WHERE NOT policy_id = ANY(%s)"
DELETE_SCHEDULES_EXCEPT: Final = "DELETE FROM oncall_schedules WHERE NOT schedule_id = ANY(%s)"
DELETE_OVERRIDES: Final = "DELETE FROM oncall_overrides"
DELETE_PEOPLE_EXCEPT: Final = "DELETE FROM oncall_people WHERE NOT person_id = ANY(%s)"

UPSERT_PERSON: Final = """
INSERT INTO oncall_people (person_id, name, phone_e164, time_zone, active, position, updated_at)
VALUES (%(person_id)s, %(name)s, %(phone_e164)s, %(time_zone)s, %(active)s, %(position)s,
        %(now)s)
ON CONFLICT (person_id) DO UPDATE SET name = EXCLUDED.name, phone_e164 = EXCLUDED.phone_e164,
    time_zone = EXCLUDED.time_zone, active = EXCLUDED.active, position = EXCLUDED.position,
    updated_at = EXCLUDED.updated_at
"""

UPSERT_SCHEDULE: Final = """
INSERT INTO oncall_schedules (schedule_id, name, layers, position, updated_at)
VALUES (%(schedule_id)s, %(name)s, %(layers)s, %(position)s, %(now)s)
ON CONFLICT (schedule_id) DO UPDATE SET name = EXCLUDED.name, layers = EXCLUDED.layers,
    position = EXCLUDED.position, updated_at = EXCLUDED.updated_at
"""

INSERT_OVERRIDE: Final = """
INSERT INTO oncall_overrides (schedule_id, person_id, starts_at, ends_at)
VALUES (%(schedule_id)s, %(person_id)s, %(starts_at)s, %(ends_at)s)
"""

UPSERT_POLICY: Final = """
INSERT INTO escalation_policies (policy_id, name, steps, repeat, ack_timeout_min,
                                 group_window_s, position, updated_at)
VALUES (%(policy_id)s, %(name)s, %(steps)s, %(repeat)s, %(ack_timeout_min)s,
        %(group_window_s)s, %(position)s, %(now)s)
ON CONFLICT (policy_id) DO UPDATE SET name = EXCLUDED.name, steps = EXCLUDED.steps,
    repeat = EXCLUDED.repeat, ack_timeout_min = EXCLUDED.ack_timeout_min,
    group_window_s = EXCLUDED.group_window_s, position = EXCLUDED.position,
    updated_at = EXCLUDED.updated_at
"""

INSERT_ROUTE: Final = """
INSERT INTO escalation_routes (position, policy_id, severities, lane, customer)
VALUES (%(position)s, %(policy_id)s, %(severities)s, %(lane)s, %(customer)s)
"""

OVERRIDES_ALL: Final = """
SELECT schedule_id, person_id, starts_at, ends_at FROM oncall_overrides
ORDER BY schedule_id, override_id
"""

SCHEDULES_ALL: Final = """
SELECT schedule_id, name, layers FROM oncall_schedules ORDER BY position, schedule_id
"""

# --- escalations ---------------------------------------------------------------------

ALERT_ROUTING: Final = """
SELECT s.lane, s.customer FROM alerts a JOIN shipments s USING (shipment_id)
WHERE a.alert_id = %s
"""

OWN_GROUP: Final = """
SELECT a.group_alert_id, e.alert_id IS NOT NULL AS escalated
FROM alerts a LEFT JOIN alert_escalations e USING (alert_id)
WHERE a.alert_id = %s
"""

# The first still-paging alert of the shipment inside the grouping window.
RECENT_LEADER: Final = """
SELECT a.alert_id FROM alerts a JOIN alert_escalations e USING (alert_id)
WHERE a.shipment_id = %(shipment_id)s AND a.alert_id <> %(alert_id)s
  AND a.group_alert_id IS NULL AND a.state = 'triggered' AND e.state = 'active'
  AND a.triggered_at >= %(since)s
ORDER BY a.triggered_at, a.alert_id
LIMIT 1
FOR UPDATE OF e
"""

_RANKS = "ARRAY['notification','low','medium','high','critical']"

GROUP_TOP_SEVERITY: Final = f"""
SELECT ({_RANKS})[max(array_position({_RANKS}, severity))] AS severity FROM alerts
WHERE (alert_id = %(leader)s OR group_alert_id = %(leader)s) AND alert_id <> %(alert_id)s
  AND state <> 'resolved'
"""

JOIN_GROUP: Final = "UPDATE alerts SET group_alert_id = %s WHERE alert_id = %s"

# A more severe alert leads the group: the old leader and its members follow it, and the
# old leader's escalation ends (the new one pages at once). The CTE runs to completion
# whether or not the outer statement reads it (PostgreSQL data-modifying WITH).
TAKE_OVER_GROUP: Final = """
WITH moved AS (
    UPDATE alerts SET group_alert_id = CASE WHEN alert_id = %(alert_id)s THEN NULL
                                            ELSE %(alert_id)s END
    WHERE (alert_id = %(leader)s OR group_alert_id = %(leader)s OR alert_id = %(alert_id)s)
      AND state <> 'resolved'
    RETURNING alert_id)
UPDATE alert_escalations SET state = 'done', next_step_at = NULL, updated_at = %(now)s
WHERE alert_id = %(leader)s AND alert_id <> %(alert_id)s AND state IN ('active', 'acknowledged')
"""

RETRIGGER_ALERT: Final = """
UPDATE alerts SET state = 'triggered', acknowledged_at = NULL, acknowledged_by = NULL,
       updated_at = %(now)s
WHERE alert_id = %(alert_id)s AND state = 'acknowledged'
RETURNING alert_id
"""

START_ESCALATION: Final = """
INSERT INTO alert_escalations AS e (alert_id, policy_id, state, step_index, repeat,
                                    next_step_at, updated_at)
VALUES (%(alert_id)s, %(policy_id)s, 'active', 0, 0, %(now)s, %(now)s)
ON CONFLICT (alert_id) DO UPDATE SET policy_id = EXCLUDED.policy_id, state = 'active',
    step_index = 0, repeat = 0, next_step_at = EXCLUDED.next_step_at,
    updated_at = EXCLUDED.updated_at
"""

ACK_GROUP_MEMBERS: Final = """
UPDATE alerts SET state = 'acknowledged', acknowledged_at = %(now)s,
       acknowledged_by = %(actor)s, updated_at = %(now)s
WHERE group_alert_id = %(leader)s AND state = 'triggered'
RETURNING alert_id
"""

ESCALATION_POLICY: Final = """
SELECT policy_id FROM alert_escalations
WHERE alert_id = %s AND state IN ('active', 'acknowledged')
"""

ESCALATION_ACKNOWLEDGED: Final = """
UPDATE alert_escalations SET state = 'acknowledged', next_step_at = %(next_at)s,
       updated_at = %(now)s
WHERE alert_id = %(alert_id)s AND state IN ('active', 'acknowledged')
"""

GROUP_HEIR: Final = """
SELECT alert_id FROM alerts WHERE group_alert_id = %s AND state <> 'resolved'
ORDER BY triggered_at, alert_id LIMIT 1
"""

# The oldest open member inherits the escalation where it stands; the rest follow it.
HAND_OVER_GROUP: Final = """
WITH regroup AS (
    UPDATE alerts SET group_alert_id = CASE WHEN alert_id = %(heir)s THEN NULL
                                            ELSE %(heir)s END
    WHERE group_alert_id = %(leader)s AND state <> 'resolved'
    RETURNING alert_id)
INSERT INTO alert_escalations (alert_id, policy_id, state, step_index, repeat, next_step_at,
                               last_step, last_repeat, last_paged_at, updated_at)
SELECT %(heir)s, e.policy_id,
       CASE WHEN h.state = 'triggered' THEN 'active' ELSE 'acknowledged' END,
       e.step_index, e.repeat,
       CASE WHEN h.state = 'triggered' THEN coalesce(e.next_step_at, %(now)s) END,
       e.last_step, e.last_repeat, e.last_paged_at, %(now)s
FROM alert_escalations e, alerts h
WHERE e.alert_id = %(leader)s AND h.alert_id = %(heir)s AND e.state IN ('active', 'acknowledged')
ON CONFLICT (alert_id) DO UPDATE SET policy_id = EXCLUDED.policy_id, state = EXCLUDED.state,
    step_index = EXCLUDED.step_index, repeat = EXCLUDED.repeat,
    next_step_at = EXCLUDED.next_step_at, last_step = EXCLUDED.last_step,
    last_repeat = EXCLUDED.last_repeat, last_paged_at = EXCLUDED.last_paged_at,
    updated_at = EXCLUDED.updated_at
"""

ESCALATION_DONE: Final = """
UPDATE alert_escalations SET state = 'done', next_step_at = NULL, updated_at = %(now)s
WHERE alert_id = %(alert_id)s AND state IN ('active', 'acknowledged')
"""

ESCALATION_EXHAUSTED: Final = """
UPDATE alert_escalations SET state = 'exhausted', next_step_at = NULL, updated_at = %(now)s
WHERE alert_id = %(alert_id)s
"""

# A failed page only moves the escalation on while its step is the latest one run.
FAST_FORWARD: Final = """
UPDATE alert_escalations e SET next_step_at = %(now)s, updated_at = %(now)s
FROM notifications n JOIN alerts a ON a.alert_id = n.alert_id
WHERE n.notification_id = %(notification_id)s AND e.alert_id = n.alert_id
  AND e.state = 'active' AND a.state = 'triggered'
  AND e.last_step = n.escalation_step AND e.last_repeat = n.escalation_repeat
  AND e.next_step_at > %(now)s
RETURNING e.alert_id
"""

# Alerts being acknowledged or upgraded right now are locked: skip them this tick.
CLAIM_DUE_ESCALATIONS: Final = """
SELECT e.alert_id, e.policy_id, e.state, e.step_index, e.repeat,
       a.state AS alert_state, a.severity, a.shipment_id, a.rule_id, a.summary,
       a.page_message, a.ack_code
FROM alert_escalations e JOIN alerts a USING (alert_id)
WHERE e.next_step_at <= %(now)s AND e.state IN ('active', 'acknowledged')
ORDER BY e.next_step_at
LIMIT %(limit)s
FOR UPDATE OF e, a SKIP LOCKED
"""

# A temperature rule is one of the shipment's drug profile rules, or the monitor's report
# of an excursion found in late data after QA released the shipment.
_TEMPERATURE_RULE = """(a.rule_id = 'post-release-excursion' OR EXISTS (
    SELECT 1 FROM shipments s JOIN drug_profiles p USING (profile_id),
                  jsonb_array_elements(p.definition -> 'rules') AS rule
    WHERE s.shipment_id = a.shipment_id AND rule ->> 'id' = a.rule_id))"""

GROUP_OPEN: Final = f"""
SELECT a.alert_id, a.shipment_id, a.rule_id, a.severity, {_TEMPERATURE_RULE} AS temperature
FROM alerts a
WHERE (a.alert_id = %(alert_id)s OR a.group_alert_id = %(alert_id)s) AND a.state <> 'resolved'
ORDER BY a.alert_id
"""

IS_TEMPERATURE_ALERT: Final = (
    f"SELECT {_TEMPERATURE_RULE} AS temperature FROM alerts a WHERE a.alert_id = %s"
)

# What QA's confirmation of an excursion needs to know about the alert it names.
ALERT_FOR_EXCURSION: Final = f"""
SELECT a.shipment_id, a.rule_id, {_TEMPERATURE_RULE} AS temperature
FROM alerts a WHERE a.alert_id = %s
"""

HOLD_ESCALATION: Final = """
UPDATE alert_escalations SET next_step_at = %(until)s, updated_at = %(now)s
WHERE alert_id = %(alert_id)s
"""

ESCALATION_STEPPED: Final = """
UPDATE alert_escalations SET policy_id = %(policy_id)s, state = %(state)s,
       step_index = %(step_index)s, repeat = %(repeat)s, next_step_at = %(next_at)s,
       last_step = %(last_step)s, last_repeat = %(last_repeat)s, last_paged_at = %(now)s,
       pages = pages + %(pages)s, updated_at = %(now)s
WHERE alert_id = %(alert_id)s
"""

INSERT_PAGE: Final = """
INSERT INTO notifications (alert_id, channel, recipient, body, due_at, escalation_step,
                           escalation_repeat, person_id)
VALUES (%(alert_id)s, %(channel)s, %(recipient)s, %(body)s, %(now)s, %(step)s, %(repeat)s,
        %(person_id)s)
"""

# --- silences ------------------------------------------------------------------------

ACTIVE_SILENCES: Final = """
SELECT silence_id, shipment_id, rule_id, starts_at, ends_at FROM alert_silences
WHERE expired_at IS NULL AND starts_at <= %(now)s AND ends_at > %(now)s
ORDER BY silence_id
"""

SHIPMENT_EXISTS: Final = "SELECT 1 FROM shipments WHERE shipment_id = %s"
SILENCE_EXISTS: Final = "SELECT 1 FROM alert_silences WHERE silence_id = %s"

INSERT_SILENCE: Final = """
INSERT INTO alert_silences (shipment_id, rule_id, reason, starts_at, ends_at, created_by,
                            created_at)
VALUES (%(shipment_id)s, %(rule_id)s, %(reason)s, %(starts_at)s, %(ends_at)s, %(actor)s,
        %(now)s)
RETURNING silence_id
"""

EXPIRE_SILENCE: Final = """
UPDATE alert_silences SET expired_at = %(now)s, expired_by = %(actor)s
WHERE silence_id = %(silence_id)s AND expired_at IS NULL AND ends_at > %(now)s
RETURNING shipment_id, rule_id, ends_at
"""

# Escalations held until the end of an expired silence are due now instead.
RELEASE_HELD_ESCALATIONS: Final = """
UPDATE alert_escalations SET next_step_at = %(now)s, updated_at = %(now)s
WHERE state = 'active' AND next_step_at = %(held_until)s
"""

LIST_SILENCES: Final = """
SELECT silence_id, shipment_id, rule_id, reason, starts_at, ends_at, created_by, created_at,
       expired_at, expired_by,
       (expired_at IS NULL AND starts_at <= %(now)s AND ends_at > %(now)s) AS active
FROM alert_silences
WHERE NOT %(active_only)s OR (expired_at IS NULL AND ends_at > %(now)s)
ORDER BY created_at DESC, silence_id DESC
LIMIT 500
"""

# --- GDP notices ---------------------------------------------------------------------

INSERT_GDP_NOTICES: Final = """
INSERT INTO gdp_notices (shipment_id, party, alert_id, confirmed_by, confirmed_at)
SELECT %(shipment_id)s, party, %(alert_id)s, %(actor)s, %(now)s
FROM unnest(%(parties)s::text[]) AS party
ON CONFLICT (shipment_id, party) DO NOTHING
RETURNING party
"""

CLAIM_GDP_NOTICES: Final = """
SELECT g.gdp_notice_id, g.shipment_id, g.party, g.alert_id, g.confirmed_at, s.shipment_ref,
       s.distributor_phone, ph.mobile_e164 AS mobile, a.rule_id
FROM gdp_notices g
JOIN shipments s USING (shipment_id)
LEFT JOIN cases c ON c.case_id = s.case_id
LEFT JOIN physicians ph ON ph.physician_id = c.physician_id
LEFT JOIN alerts a ON a.alert_id = g.alert_id
WHERE g.status = 'pending'
ORDER BY g.gdp_notice_id
LIMIT %(limit)s
FOR UPDATE OF g SKIP LOCKED
"""

GDP_NO_CONTACT: Final = "UPDATE gdp_notices SET status = 'no_contact' WHERE gdp_notice_id = %s"
GDP_QUEUED: Final = """
UPDATE gdp_notices SET status = 'queued', notification_id = %s WHERE gdp_notice_id = %s
"""

INSERT_PLAIN_NOTIFICATION: Final = """
INSERT INTO notifications (alert_id, channel, recipient, body, due_at)
VALUES (%(alert_id)s, %(channel)s, %(recipient)s, %(body)s, %(now)s)
RETURNING notification_id
"""

SET_SHIPMENT_CONTACTS: Final = """
UPDATE shipments SET customer = %(customer)s, distributor_name = %(distributor_name)s,
       distributor_phone = %(distributor_phone)s, distributor_email = %(distributor_email)s
WHERE shipment_id = %(shipment_id)s
RETURNING shipment_id
"""
