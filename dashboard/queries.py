"""What the dashboard reads. One query per screen region, bound parameters only."""

from __future__ import annotations

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
