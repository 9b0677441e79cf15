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
SELECT s.shipment_id, s.shipment_ref, s.evaluate_from, s.evaluated_through, p.definition
FROM shipments s JOIN drug_profiles p USING (profile_id)
WHERE s.evaluate_from IS NOT NULL
ORDER BY s.evaluate_from
LIMIT %(limit)s
FOR UPDATE OF s SKIP LOCKED
"""

SHIPMENT_READINGS: Final = """
SELECT ts, temp_c FROM readings WHERE shipment_id = %s ORDER BY ts
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
       s.destination_lat, s.destination_lon, s.arrival_radius_km
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
