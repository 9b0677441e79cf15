"""What the dashboard reads. One query per screen region, bound parameters only."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import psycopg

from core.db import Row

SHIPMENTS_OVERVIEW: Final = """
SELECT s.shipment_id, s.shipment_ref, s.profile_id, s.lane, s.status,
       s.origin_name, s.destination_name,
       dev.device_id, l.ts AS last_ts, l.temp_c AS last_temp_c, l.lat, l.lon, l.battery_pct,
       coalesce(a.open_alerts, 0) AS open_alerts, a.worst_severity
FROM shipments s
LEFT JOIN LATERAL (
    SELECT d.device_id FROM shipment_devices d
    WHERE d.shipment_id = s.shipment_id ORDER BY d.assigned_from DESC LIMIT 1
) dev ON true
LEFT JOIN device_latest l ON l.device_id = dev.device_id
LEFT JOIN LATERAL (
    SELECT count(*) AS open_alerts,
           (array_agg(severity ORDER BY array_position(
               ARRAY['notification','low','medium','high','critical'], severity) DESC))[1]
               AS worst_severity
    FROM alerts WHERE shipment_id = s.shipment_id AND state <> 'resolved'
) a ON true
WHERE s.status IN ('planned', 'in_transit', 'delivered')
ORDER BY coalesce(a.open_alerts, 0) DESC, s.shipment_ref
LIMIT %(limit)s
"""

OPEN_ALERTS: Final = """
SELECT a.alert_id, s.shipment_ref, a.rule_id, a.severity, a.state, a.summary, a.triggered_at
FROM alerts a JOIN shipments s USING (shipment_id)
WHERE a.state <> 'resolved'
ORDER BY array_position(ARRAY['notification','low','medium','high','critical'], a.severity) DESC,
         a.triggered_at
LIMIT %(limit)s
"""


def shipments_overview(conn: psycopg.Connection[Row], limit: int = 500) -> list[Row]:
    return conn.execute(SHIPMENTS_OVERVIEW, {"limit": limit}).fetchall()


def open_alerts(conn: psycopg.Connection[Row], limit: int = 200) -> list[Row]:
    return conn.execute(OPEN_ALERTS, {"limit": limit}).fetchall()


SHIPMENT: Final = """
SELECT s.*, p.name AS profile_name, p.definition
FROM shipments s JOIN drug_profiles p USING (profile_id)
WHERE s.shipment_id = %(shipment_id)s
"""

READING_SPAN: Final = """
SELECT min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n
FROM readings WHERE shipment_id = %(shipment_id)s
"""

# Server-side downsampling: one point per bucket keeps min and max, so a short spike
# stays visible however long the series (standard SQL: works with or without TimescaleDB).
READINGS_BUCKETED: Final = """
SELECT date_bin(%(bucket)s, ts, %(origin)s) AS ts, avg(temp_c) AS temp_c,
       min(temp_c) AS min_c, max(temp_c) AS max_c
FROM readings WHERE shipment_id = %(shipment_id)s AND temp_c IS NOT NULL
GROUP BY 1 ORDER BY 1
"""

SHIPMENT_ALERTS: Final = """
SELECT alert_id, rule_id, severity, state, summary, triggered_at, acknowledged_at,
       acknowledged_by, resolved_at
FROM alerts WHERE shipment_id = %(shipment_id)s ORDER BY triggered_at DESC
"""

SHIPMENT_EXCURSIONS: Final = """
SELECT direction, started_at, ended_at, duration_min, peak_c, retrospective
FROM excursions WHERE shipment_id = %(shipment_id)s ORDER BY started_at
"""

MAX_CHART_POINTS = 2000


def shipment(conn: psycopg.Connection[Row], shipment_id: int) -> Row | None:
    return conn.execute(SHIPMENT, {"shipment_id": shipment_id}).fetchone()


def shipment_readings(conn: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    """At most about MAX_CHART_POINTS buckets covering the whole shipment."""
    span = conn.execute(READING_SPAN, {"shipment_id": shipment_id}).fetchone()
    if span is None or not span["n"]:
        return []
    width = max((span["last_ts"] - span["first_ts"]) / MAX_CHART_POINTS, timedelta(seconds=1))
    return conn.execute(
        READINGS_BUCKETED, {"shipment_id": shipment_id, "bucket": width, "origin": span["first_ts"]}
    ).fetchall()


def shipment_alerts(conn: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    return conn.execute(SHIPMENT_ALERTS, {"shipment_id": shipment_id}).fetchall()


def shipment_excursions(conn: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    return conn.execute(SHIPMENT_EXCURSIONS, {"shipment_id": shipment_id}).fetchall()
