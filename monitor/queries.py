"""SQL of the live monitor."""

from __future__ import annotations

from typing import Final

UPSERT_PROFILE: Final = """
INSERT INTO drug_profiles (profile_id, name, definition, content_hash, source)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (profile_id) DO UPDATE SET
    name = EXCLUDED.name, definition = EXCLUDED.definition,
    content_hash = EXCLUDED.content_hash, source = EXCLUDED.source, loaded_at = now()
WHERE drug_profiles.content_hash <> EXCLUDED.content_hash
RETURNING profile_id
"""

# Shipments with readings not yet evaluated; each is locked by one monitor at a time.
CLAIM_DUE_SHIPMENTS: Final = """
SELECT s.shipment_id, s.shipment_ref, s.evaluate_from, s.evaluated_through, s.quality_state,
       p.definition
FROM shipments s JOIN drug_profiles p USING (profile_id)
WHERE s.evaluate_from IS NOT NULL
ORDER BY s.evaluate_from
LIMIT %(limit)s
FOR UPDATE OF s SKIP LOCKED
"""

# Each reading with its leg stage: before departure at the origin, from delivery on at the
# destination, in transit between (rules scoped to stages count only their readings). The
# shipment's own times come first; custody events stand in where they are not recorded.
SHIPMENT_READINGS: Final = """
SELECT r.ts, r.temp_c,
       CASE WHEN r.ts < t.departed_at THEN 'origin'
            WHEN r.ts >= t.delivered_at THEN 'destination'
            ELSE 'in_transit' END AS stage
FROM (
    SELECT s.shipment_id,
           coalesce(s.departed_at,
                    (SELECT min(at) FROM custody_events c
                     WHERE c.shipment_id = s.shipment_id AND c.event_type = 'departed'))
               AS departed_at,
           coalesce(s.delivered_at,
                    (SELECT min(at) FROM custody_events c
                     WHERE c.shipment_id = s.shipment_id
                       AND c.event_type IN ('delivered', 'received'))) AS delivered_at
    FROM shipments s WHERE s.shipment_id = %s
) t
JOIN readings r ON r.shipment_id = t.shipment_id
ORDER BY r.ts
"""

LATEST_TEMPERATURE: Final = """
SELECT ts, temp_c FROM readings WHERE shipment_id = %s AND temp_c IS NOT NULL
ORDER BY ts DESC LIMIT 1
"""

UPSERT_EXCURSION: Final = """
INSERT INTO excursions (shipment_id, direction, started_at, ended_at, duration_min, peak_c,
                        retrospective, detected_at, updated_at)
VALUES (%(shipment_id)s, %(direction)s, %(started_at)s, %(ended_at)s, %(duration_min)s,
        %(peak_c)s, %(retrospective)s, %(now)s, %(now)s)
ON CONFLICT (shipment_id, direction, started_at) DO UPDATE SET
    ended_at = EXCLUDED.ended_at, duration_min = EXCLUDED.duration_min,
    peak_c = EXCLUDED.peak_c, updated_at = EXCLUDED.updated_at
WHERE (excursions.ended_at, excursions.duration_min, excursions.peak_c)
      IS DISTINCT FROM (EXCLUDED.ended_at, EXCLUDED.duration_min, EXCLUDED.peak_c)
RETURNING (xmax = 0) AS inserted
"""

INSERT_ALARM: Final = """
INSERT INTO alarms (shipment_id, rule_id, severity, started_at, alarmed_at, retrospective,
                    detected_at, seen_through)
VALUES (%(shipment_id)s, %(rule_id)s, %(severity)s, %(started_at)s, %(alarmed_at)s,
        %(retrospective)s, %(now)s, %(seen_through)s)
ON CONFLICT (shipment_id, rule_id, started_at) DO NOTHING
RETURNING alarm_id
"""

MARK_EVALUATED: Final = """
UPDATE shipments SET evaluate_from = NULL, evaluated_at = %s,
       evaluated_through = GREATEST(evaluated_through, %s)
WHERE shipment_id = %s
"""

# Open alerts of the given temperature rules, each with the latest alarm of its rule: the
# run that decides whether the condition has cleared.
OPEN_RULE_ALERTS: Final = """
SELECT a.alert_id, a.rule_id, al.started_at, al.seen_through
FROM alerts a
JOIN LATERAL (
    SELECT started_at, seen_through FROM alarms
    WHERE shipment_id = a.shipment_id AND rule_id = a.rule_id
    ORDER BY started_at DESC LIMIT 1
) al ON true
WHERE a.shipment_id = %(shipment_id)s AND a.rule_id = ANY(%(rule_ids)s) AND a.state <> 'resolved'
"""

# The live sweep's shipments: in transit, or holding an open live alert to close. Each is
# taken under a transaction-scoped advisory lock so two monitors never page twice; the
# candidates are materialised first so only rows that qualify are locked.
CLAIM_LIVE_SHIPMENTS: Final = """
WITH candidates AS MATERIALIZED (
    SELECT s.shipment_id FROM shipments s
    WHERE s.status = 'in_transit'
       OR EXISTS (SELECT 1 FROM alerts a
                  WHERE a.shipment_id = s.shipment_id AND a.rule_id = ANY(%(rule_ids)s)
                    AND a.state <> 'resolved')
)
SELECT s.shipment_id, s.shipment_ref, s.status, s.departed_at, s.expected_delivery_at,
       s.destination_lat, s.destination_lon, s.arrival_radius_km, s.origin_lat, s.origin_lon,
       s.route_waypoints, s.route_corridor_km
FROM candidates c JOIN shipments s USING (shipment_id)
WHERE pg_try_advisory_xact_lock(hashtextextended('monitor-live:' || c.shipment_id, 0))
ORDER BY s.shipment_id
"""

# Loggers assigned to the shipments now (wall clock), with what they last reported.
LIVE_LOGGERS: Final = """
SELECT d.shipment_id, d.device_id, v.interval_min, l.ts AS last_ts, l.recv_ts AS last_recv_ts,
       l.battery_pct, l.lat, l.lon, l.position_ts
FROM shipment_devices d
JOIN devices v USING (device_id)
LEFT JOIN device_latest l USING (device_id)
WHERE d.shipment_id = ANY(%(shipment_ids)s) AND d.assigned_from <= %(now)s
  AND (d.assigned_until IS NULL OR %(now)s < d.assigned_until)
ORDER BY d.shipment_id, d.device_id
"""

OPEN_LIVE_ALERTS: Final = """
SELECT alert_id, shipment_id, rule_id, severity FROM alerts
WHERE shipment_id = ANY(%(shipment_ids)s) AND rule_id = ANY(%(rule_ids)s) AND state <> 'resolved'
"""

MARK_DELIVERED: Final = """
UPDATE shipments SET status = 'delivered', delivered_at = %(at)s, delivered_by = %(actor)s
WHERE shipment_id = %(shipment_id)s AND status = 'in_transit'
RETURNING shipment_id
"""

# --- disposition (migration 0010) ---------------------------------------------------------

LATEST_DISPOSITION: Final = """
SELECT disposition_id, decision, signed_at FROM dispositions
WHERE shipment_id = %s ORDER BY disposition_id DESC LIMIT 1
"""

SHIPMENT_FOR_ASSESSMENT: Final = """
SELECT s.shipment_id, s.shipment_ref, s.status, s.quality_state, s.profile_id, p.definition
FROM shipments s JOIN drug_profiles p USING (profile_id)
WHERE s.shipment_id = %s
"""

LOCK_SHIPMENT: Final = """
SELECT shipment_id FROM shipments WHERE shipment_id = %s FOR UPDATE
"""

# Each alarm of the shipment with QA's newest assessment of it.
SHIPMENT_ALARMS: Final = """
SELECT a.alarm_id, a.rule_id, a.severity, a.started_at, a.alarmed_at, a.retrospective,
       x.impact, x.note, x.assessed_by, x.assessed_at
FROM alarms a
LEFT JOIN LATERAL (
    SELECT impact, note, assessed_by, assessed_at FROM alarm_assessments
    WHERE alarm_id = a.alarm_id ORDER BY alarm_assessment_id DESC LIMIT 1
) x ON true
WHERE a.shipment_id = %s
ORDER BY a.alarmed_at, a.alarm_id
"""

ALARM_OF_SHIPMENT: Final = """
SELECT alarm_id FROM alarms WHERE alarm_id = %s AND shipment_id = %s
"""

INSERT_ALARM_ASSESSMENT: Final = """
INSERT INTO alarm_assessments (alarm_id, impact, note, assessed_by, assessed_at)
VALUES (%(alarm_id)s, %(impact)s, %(note)s, %(assessed_by)s, %(now)s)
RETURNING alarm_assessment_id
"""

LATEST_ASSESSMENT: Final = """
SELECT assessment_id, started_at, started_by, profile_id, profile_hash, proposed_verdict, evidence
FROM quality_assessments WHERE shipment_id = %s ORDER BY assessment_id DESC LIMIT 1
"""

INSERT_ASSESSMENT: Final = """
INSERT INTO quality_assessments (shipment_id, started_at, started_by, profile_id, profile_hash,
                                 proposed_verdict, evidence)
VALUES (%(shipment_id)s, %(now)s, %(started_by)s, %(profile_id)s, %(profile_hash)s,
        %(proposed_verdict)s, %(evidence)s)
RETURNING assessment_id
"""

# The signer's credentials, with the sign-in lockout counters (core.accounts) they share.
SIGNER_FOR_UPDATE: Final = """
SELECT password_hash, failed_attempts, locked_until FROM staff_users
WHERE user_id = %s AND active FOR UPDATE
"""

SIGNER_CLEAR_FAILURES: Final = """
UPDATE staff_users SET failed_attempts = 0, locked_until = NULL WHERE user_id = %s
"""

SIGNER_RECORD_FAILURE: Final = """
UPDATE staff_users SET failed_attempts = %s, locked_until = %s WHERE user_id = %s
"""

DISPOSITIONS: Final = """
SELECT disposition_id, assessment_id, decision, new_expiry_date, proposed_verdict,
       signer_email, printed_name, meaning, reason, signed_at, supersedes
FROM dispositions WHERE shipment_id = %s ORDER BY disposition_id DESC
"""

INSERT_DISPOSITION: Final = """
INSERT INTO dispositions (shipment_id, assessment_id, decision, new_expiry_date,
                          proposed_verdict, signer_user_id, signer_email, printed_name,
                          meaning, reason, signed_at, supersedes)
VALUES (%(shipment_id)s, %(assessment_id)s, %(decision)s, %(new_expiry_date)s,
        %(proposed_verdict)s, %(signer_user_id)s, %(signer_email)s, %(printed_name)s,
        %(meaning)s, %(reason)s, %(now)s, %(supersedes)s)
RETURNING disposition_id
"""

SET_PLANNED_ROUTE: Final = """
UPDATE shipments SET route_corridor_km = %(corridor_km)s, route_waypoints = %(waypoints)s
WHERE shipment_id = %(shipment_id)s
RETURNING shipment_id
"""

# Shipments that carried any of this shipment's serialized units before it (earlier legs).
EARLIER_LEGS: Final = """
SELECT DISTINCT o.shipment_id, o.shipment_ref, coalesce(o.departed_at, o.created_at) AS departed
FROM shipment_units mine
JOIN shipment_units other ON other.unit_id = mine.unit_id
JOIN shipments o ON o.shipment_id = other.shipment_id
JOIN shipments me ON me.shipment_id = mine.shipment_id
WHERE mine.shipment_id = %(shipment_id)s AND o.shipment_id <> me.shipment_id
  AND (coalesce(o.departed_at, o.created_at), o.shipment_id)
      < (coalesce(me.departed_at, me.created_at), me.shipment_id)
ORDER BY departed, o.shipment_id
"""

SHIPMENT_UNITS_SUMMARY: Final = """
SELECT count(*) AS units, min(u.expiry) AS earliest_expiry
FROM shipment_units su JOIN serialized_units u USING (unit_id)
WHERE su.shipment_id = %s
"""
