"""SQL of the ingest writer. Staging is a temporary table per connection."""

from __future__ import annotations

from typing import Final, LiteralString

CREATE_STAGING: Final = """
CREATE TEMP TABLE IF NOT EXISTS readings_staging (
    device_id text, ts timestamptz, seq bigint, temp_c double precision,
    rh_pct double precision, lat double precision, lon double precision,
    battery_pct double precision, light_lux double precision, shock_g double precision,
    status text, recv_ts timestamptz
) ON COMMIT DELETE ROWS
"""

COPY_STAGING: Final = (
    "COPY readings_staging (device_id, ts, seq, temp_c, rh_pct, lat, lon, battery_pct, "
    "light_lux, shock_g, status, recv_ts) FROM STDIN"
)

DEVICES: Final = """
SELECT device_id, carrier, active FROM devices WHERE device_id = ANY(%(device_ids)s)
"""

# Insert new keys (first value wins); attach each reading to the shipment that had the
# device at that device time; flag clocks running ahead of receipt.
INSERT_READINGS: Final = """
WITH inserted AS (
    INSERT INTO readings (device_id, ts, recv_ts, seq, temp_c, rh_pct, lat, lon, battery_pct,
                          light_lux, shock_g, status, shipment_id, clock_ahead)
    SELECT s.device_id, s.ts, s.recv_ts, s.seq, s.temp_c, s.rh_pct, s.lat, s.lon, s.battery_pct,
           s.light_lux, s.shock_g, s.status, a.shipment_id,
           s.ts > s.recv_ts + %(clock_ahead_tolerance)s
    FROM readings_staging s
    LEFT JOIN LATERAL (
        SELECT d.shipment_id FROM shipment_devices d
        WHERE d.device_id = s.device_id AND d.assigned_from <= s.ts
          AND (d.assigned_until IS NULL OR s.ts < d.assigned_until)
        ORDER BY d.assigned_from DESC LIMIT 1
    ) a ON true
    ORDER BY s.device_id, s.ts
    ON CONFLICT (device_id, ts) DO NOTHING
    RETURNING device_id, ts, recv_ts, temp_c, status, battery_pct, lat, lon, shipment_id
),
latest AS (
    INSERT INTO device_latest AS dl (device_id, ts, recv_ts, temp_c, status, battery_pct,
                                     lat, lon, position_ts, shipment_id)
    SELECT l.device_id, l.ts, l.recv_ts, l.temp_c, l.status, l.battery_pct,
           p.lat, p.lon, p.ts, l.shipment_id
    FROM (SELECT DISTINCT ON (device_id) * FROM inserted ORDER BY device_id, ts DESC) l
    -- The newest usable GPS fix in this batch; (0,0) is what loggers report after a reboot.
    LEFT JOIN (
        SELECT DISTINCT ON (device_id) device_id, lat, lon, ts FROM inserted
        WHERE lat IS NOT NULL AND lon IS NOT NULL AND NOT (lat = 0 AND lon = 0)
        ORDER BY device_id, ts DESC
    ) p ON p.device_id = l.device_id
    ON CONFLICT (device_id) DO UPDATE SET
        ts = CASE WHEN EXCLUDED.ts > dl.ts THEN EXCLUDED.ts ELSE dl.ts END,
        recv_ts = EXCLUDED.recv_ts,
        temp_c = CASE WHEN EXCLUDED.ts > dl.ts THEN EXCLUDED.temp_c ELSE dl.temp_c END,
        status = CASE WHEN EXCLUDED.ts > dl.ts THEN EXCLUDED.status ELSE dl.status END,
        battery_pct = CASE WHEN EXCLUDED.ts > dl.ts
                           THEN EXCLUDED.battery_pct ELSE dl.battery_pct END,
        shipment_id = CASE WHEN EXCLUDED.ts > dl.ts
                           THEN EXCLUDED.shipment_id ELSE dl.shipment_id END,
        lat = CASE WHEN EXCLUDED.position_ts > coalesce(dl.position_ts, '-infinity')
                   THEN EXCLUDED.lat ELSE dl.lat END,
        lon = CASE WHEN EXCLUDED.position_ts > coalesce(dl.position_ts, '-infinity')
                   THEN EXCLUDED.lon ELSE dl.lon END,
        position_ts = GREATEST(EXCLUDED.position_ts, dl.position_ts)
    RETURNING 1
),
due AS (
    UPDATE shipments sh SET evaluate_from = LEAST(sh.evaluate_from, f.first_ts)
    FROM (SELECT shipment_id, min(ts) AS first_ts FROM inserted
          WHERE shipment_id IS NOT NULL GROUP BY shipment_id) f
    WHERE sh.shipment_id = f.shipment_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS stored,
       (SELECT count(*) FROM due) AS shipments_due,
       (SELECT count(*) FROM latest) AS devices_updated
"""

# Staged rows whose key already existed with different values are conflicts: recorded,
# never dropped and never overwriting the first value.
RECORD_CONFLICTS: Final = """
WITH conflicting AS (
    INSERT INTO reading_conflicts (device_id, ts, recv_ts, reading)
    SELECT s.device_id, s.ts, s.recv_ts,
           jsonb_build_object('seq', s.seq, 'temp_c', s.temp_c, 'rh_pct', s.rh_pct, 'lat', s.lat,
                              'lon', s.lon, 'battery_pct', s.battery_pct,
                              'light_lux', s.light_lux, 'shock_g', s.shock_g, 'status', s.status)
    FROM readings_staging s
    -- LATERAL keeps this an index lookup per staged row: the temporary table has no
    -- statistics, and a join could otherwise scan all of readings on every batch.
    JOIN LATERAL (
        SELECT * FROM readings r0 WHERE r0.device_id = s.device_id AND r0.ts = s.ts LIMIT 1
    ) r ON true
    WHERE (s.seq, s.temp_c, s.rh_pct, s.lat, s.lon, s.battery_pct, s.light_lux, s.shock_g, s.status)
          IS DISTINCT FROM
          (r.seq, r.temp_c, r.rh_pct, r.lat, r.lon, r.battery_pct, r.light_lux, r.shock_g, r.status)
    RETURNING 1
)
SELECT count(*) AS conflicts FROM conflicting
"""

INSERT_CONFLICT: Final = """
INSERT INTO reading_conflicts (device_id, ts, recv_ts, reading) VALUES (%s, %s, %s, %s)
"""

INSERT_REJECTED: Final = """
INSERT INTO rejected_messages (received_at, source, topic, device_id, payload, reason)
VALUES (%s, %s, %s, %s, %s, %s)
"""

NOTIFY_READINGS: Final[LiteralString] = "SELECT pg_notify('coldchain_readings', %s)"
