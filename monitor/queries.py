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
                    detected_at)
VALUES (%(shipment_id)s, %(rule_id)s, %(severity)s, %(started_at)s, %(alarmed_at)s,
        %(retrospective)s, %(now)s)
ON CONFLICT (shipment_id, rule_id, started_at) DO NOTHING
RETURNING alarm_id
"""

MARK_EVALUATED: Final = """
UPDATE shipments SET evaluate_from = NULL, evaluated_at = %s,
       evaluated_through = GREATEST(evaluated_through, %s)
WHERE shipment_id = %s
"""
