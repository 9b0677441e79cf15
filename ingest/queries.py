"""SQL of the ingest writer. Staging is a temporary table per connection."""

from __future__ import annotations

from typing import Final

CREATE_STAGING: Final = """
CREATE TEMP TABLE IF NOT EXISTS readings_staging (
    device_id text, ts timestamptz, seq bigint, temp_c double precision,
    rh_pct double precision, lat double precision, lon double precision,
    battery_pct double precision, light_lux double precision, shock_g double precision,
    status text, recv_ts timestamptz
) ON COMMIT DELETE ROWS
"""

# Binary COPY: psycopg encodes each row in C from the declared types, with no text
# formatting on the client and no text parsing on the server.
COPY_STAGING: Final = (
    "COPY readings_staging (device_id, ts, seq, temp_c, rh_pct, lat, lon, battery_pct, "
    "light_lux, shock_g, status, recv_ts) FROM STDIN (FORMAT BINARY)"
)
STAGING_TYPES: Final = (
    "text", "timestamptz", "int8", "float8", "float8", "float8", "float8", "float8",
    "float8", "float8", "text", "timestamptz",
)  # fmt: skip

DEVICES: Final = """
SELECT device_id, carrier, active FROM devices WHERE device_id = ANY(%(device_ids)s)
"""

# device_latest only moves forward: the newest reading by device time, and the newest
# usable GPS fix, whichever batch they arrive in.
_LATEST_ON_CONFLICT: Final = """
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
"""

# Insert new keys (first value wins); attach each reading to the shipment that had the
# device at that device time; flag clocks running ahead of receipt; upsert device_latest;
# mark shipments for re-evaluation; one NOTIFY (delivered at commit) when anything is new.
# The assignments of the batch's devices are fetched once and hash-joined: a device is in
# at most one shipment at any instant (a trigger on shipment_devices refuses overlaps), so
# each reading matches at most one. Rows are inserted in key order, the same order in
# every writer (byte order, COLLATE "C", which is how the direct path sorts device ids in
# Python), so concurrent writers in a shared group wait for each other instead of
# deadlocking on the same keys.
INSERT_READINGS: Final = (
    """
WITH inserted AS (
    INSERT INTO readings (device_id, ts, recv_ts, seq, temp_c, rh_pct, lat, lon, battery_pct,
                          light_lux, shock_g, status, shipment_id, clock_ahead)
    SELECT s.device_id, s.ts, s.recv_ts, s.seq, s.temp_c, s.rh_pct, s.lat, s.lon, s.battery_pct,
           s.light_lux, s.shock_g, s.status, a.shipment_id,
           s.ts > s.recv_ts + %(clock_ahead_tolerance)s
    FROM readings_staging s
    LEFT JOIN (
        SELECT d.device_id, d.shipment_id, d.assigned_from, d.assigned_until
        FROM shipment_devices d WHERE d.device_id = ANY(%(device_ids)s)
    ) a ON a.device_id = s.device_id AND a.assigned_from <= s.ts
           AND (a.assigned_until IS NULL OR s.ts < a.assigned_until)
    ORDER BY s.device_id COLLATE "C", s.ts
    ON CONFLICT (device_id, ts) DO NOTHING
    RETURNING device_id, ts, recv_ts, temp_c, status, battery_pct, lat, lon, shipment_id
),
latest AS (
    INSERT INTO device_latest AS dl (device_id, ts, recv_ts, temp_c, status, battery_pct,
                                     lat, lon, position_ts, shipment_id)
    SELECT l.device_id, l.ts, l.recv_ts, l.temp_c, l.status, l.battery_pct,
           p.lat, p.lon, p.ts, l.shipment_id
    FROM (SELECT DISTINCT ON (device_id COLLATE "C") * FROM inserted
          ORDER BY device_id COLLATE "C", ts DESC) l
    -- The newest usable GPS fix in this batch; (0,0) is what loggers report after a reboot.
    LEFT JOIN (
        SELECT DISTINCT ON (device_id) device_id, lat, lon, ts FROM inserted
        WHERE lat IS NOT NULL AND lon IS NOT NULL AND NOT (lat = 0 AND lon = 0)
        ORDER BY device_id, ts DESC
    ) p ON p.device_id = l.device_id
    """
    + _LATEST_ON_CONFLICT
    + """
    RETURNING 1
),
due AS (
    UPDATE shipments sh SET evaluate_from = LEAST(sh.evaluate_from, f.first_ts)
    FROM (SELECT shipment_id, min(ts) AS first_ts FROM inserted
          WHERE shipment_id IS NOT NULL GROUP BY shipment_id) f
    WHERE sh.shipment_id = f.shipment_id
    RETURNING 1
)
SELECT c.stored,
       (SELECT count(*) FROM due) AS shipments_due,
       (SELECT count(*) FROM latest) AS devices_updated,
       CASE WHEN c.stored > 0 THEN pg_notify('coldchain_readings', c.stored::text) END
FROM (SELECT count(*) AS stored FROM inserted) c
"""
)

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


# -- The direct path (ingest/direct.py): every key of the batch is new ---------------------

ASSIGNMENTS: Final = """
SELECT device_id, shipment_id, assigned_from, assigned_until FROM shipment_devices
WHERE device_id = ANY(%(device_ids)s)
"""

COPY_READINGS: Final = (
    "COPY readings (device_id, ts, seq, temp_c, rh_pct, lat, lon, battery_pct, light_lux, "
    "shock_g, status, recv_ts, clock_ahead, shipment_id) FROM STDIN (FORMAT BINARY)"
)
READINGS_TYPES: Final = (*STAGING_TYPES, "bool", "int8")

# One row per device of a batch the direct path stored: its newest reading and newest fix.
# The columns (not the keys or constraints) of device_latest itself.
CREATE_LATEST_STAGING: Final = """
CREATE TEMP TABLE IF NOT EXISTS device_latest_staging (LIKE device_latest) ON COMMIT DELETE ROWS
"""
COPY_LATEST_STAGING: Final = (
    "COPY device_latest_staging (device_id, ts, recv_ts, temp_c, status, battery_pct, lat, lon, "
    "position_ts, shipment_id) FROM STDIN (FORMAT BINARY)"
)
LATEST_TYPES: Final = (
    "text", "timestamptz", "timestamptz", "float8", "text", "float8", "float8", "float8",
    "timestamptz", "int8",
)  # fmt: skip

# What INSERT_READINGS does after its insert, from per-device and per-shipment values the
# writer computed from rows it knows were all inserted; devices in order, like there.
AFTER_COPY: Final = (
    """
WITH latest AS (
    INSERT INTO device_latest AS dl (device_id, ts, recv_ts, temp_c, status, battery_pct,
                                     lat, lon, position_ts, shipment_id)
    SELECT * FROM device_latest_staging ORDER BY device_id COLLATE "C"
    """
    + _LATEST_ON_CONFLICT
    + """
    RETURNING 1
),
due AS (
    UPDATE shipments sh SET evaluate_from = LEAST(sh.evaluate_from, f.first_ts)
    FROM unnest(%(due_shipment_id)s::int8[], %(due_ts)s::timestamptz[]) f(shipment_id, first_ts)
    WHERE sh.shipment_id = f.shipment_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM due) AS shipments_due,
       (SELECT count(*) FROM latest) AS devices_updated,
       pg_notify('coldchain_readings', %(stored)s)
"""
)
