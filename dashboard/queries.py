"""What the dashboard reads. One query per screen region, bound parameters only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from core.db import Row

OPEN_ALERTS: Final = """
SELECT a.alert_id, s.shipment_ref, a.rule_id, a.severity, a.state, a.summary, a.triggered_at
FROM alerts a JOIN shipments s USING (shipment_id)
WHERE a.state <> 'resolved'
ORDER BY array_position(ARRAY['notification','low','medium','high','critical'], a.severity) DESC,
         a.triggered_at
LIMIT %(limit)s
"""


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
# Relative humidity is the bucket's mean, NULL throughout for loggers without the sensor.
READINGS_BUCKETED: Final = """
SELECT date_bin(%(bucket)s, ts, %(origin)s) AS ts, avg(temp_c) AS temp_c,
       min(temp_c) AS min_c, max(temp_c) AS max_c, avg(rh_pct) AS rh_pct
FROM readings
WHERE shipment_id = %(shipment_id)s AND (temp_c IS NOT NULL OR rh_pct IS NOT NULL)
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

# Four series per bucket (temperature mean, min and max; mean humidity): 1,200 buckets, plus
# the one the last reading opens when it falls on the final boundary, send at most 4,804
# points, under the 5,000 of issue 8.
MAX_CHART_BUCKETS = 1200


def shipment(conn: psycopg.Connection[Row], shipment_id: int) -> Row | None:
    return conn.execute(SHIPMENT, {"shipment_id": shipment_id}).fetchone()


def shipment_readings(conn: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    """At most MAX_CHART_BUCKETS + 1 buckets covering the whole shipment."""
    span = conn.execute(READING_SPAN, {"shipment_id": shipment_id}).fetchone()
    if span is None or not span["n"]:
        return []
    width = max((span["last_ts"] - span["first_ts"]) / MAX_CHART_BUCKETS, timedelta(seconds=1))
    return conn.execute(
        READINGS_BUCKETED, {"shipment_id": shipment_id, "bucket": width, "origin": span["first_ts"]}
    ).fetchall()


def shipment_alerts(conn: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    return conn.execute(SHIPMENT_ALERTS, {"shipment_id": shipment_id}).fetchall()


def shipment_excursions(conn: psycopg.Connection[Row], shipment_id: int) -> list[Row]:
    return conn.execute(SHIPMENT_EXCURSIONS, {"shipment_id": shipment_id}).fetchall()


# -- live map -----------------------------------------------------------------------------

_SEVERITY_RANK: Final = (
    "array_position(ARRAY['notification','low','medium','high','critical'], a.severity) - 1"
)

# Every active shipment with its newest logger's latest state and what is open on it.
# Everything is joined by hash on sets (no per-shipment probes): 10,000 shipments stay
# a few sequential scans. The profile's definition is read once per profile elsewhere.
FLEET: Final = f"""
WITH active AS (
    SELECT shipment_id, shipment_ref, case_id, profile_id, lane, status, destination_tz,
           expected_delivery_at
    FROM shipments
    WHERE status IN ('planned', 'in_transit')
       OR (status = 'delivered' AND delivered_at >= %(delivered_since)s)
), current_devices AS (
    SELECT DISTINCT ON (d.shipment_id) d.shipment_id, d.device_id
    FROM shipment_devices d JOIN active USING (shipment_id)
    ORDER BY d.shipment_id, d.assigned_from DESC
), open_alerts AS (
    SELECT a.shipment_id, count(*) AS open_alerts, max({_SEVERITY_RANK}) AS worst_rank,
           max({_SEVERITY_RANK}) FILTER (WHERE a.rule_id <> ALL(%(live_rules)s))
               AS temperature_rank,
           bool_or(a.rule_id = %(offline_rule)s) AS offline_alert
    FROM alerts a WHERE a.state <> 'resolved' GROUP BY a.shipment_id
), open_excursions AS (
    SELECT DISTINCT shipment_id FROM excursions WHERE ended_at IS NULL
)
SELECT s.shipment_id, s.shipment_ref, c.case_ref, s.profile_id, s.lane, s.status,
       s.destination_tz, s.expected_delivery_at, cd.device_id, v.carrier, v.interval_min,
       l.ts AS last_ts, l.recv_ts AS last_recv_ts, l.temp_c AS last_temp_c, l.lat, l.lon,
       coalesce(a.open_alerts, 0) AS open_alerts, a.worst_rank, a.temperature_rank,
       coalesce(a.offline_alert, false) AS offline_alert,
       (x.shipment_id IS NOT NULL) AS open_excursion
FROM active s
LEFT JOIN cases c ON c.case_id = s.case_id
LEFT JOIN current_devices cd ON cd.shipment_id = s.shipment_id
LEFT JOIN devices v ON v.device_id = cd.device_id
LEFT JOIN device_latest l ON l.device_id = cd.device_id
LEFT JOIN open_alerts a ON a.shipment_id = s.shipment_id
LEFT JOIN open_excursions x ON x.shipment_id = s.shipment_id
ORDER BY s.shipment_id
"""

PROFILE_DEFINITIONS: Final = "SELECT profile_id, definition FROM drug_profiles"

# Recent positions of a few shipments: at most one fix per bucket, newest buckets first.
TRAILS: Final = """
SELECT t.shipment_id, f.ts, f.lat, f.lon
FROM unnest(%(shipment_ids)s::bigint[]) AS t(shipment_id)
CROSS JOIN LATERAL (
    SELECT DISTINCT ON (date_bin(%(bucket)s, r.ts, %(origin)s)) r.ts, r.lat, r.lon
    FROM readings r
    WHERE r.shipment_id = t.shipment_id AND r.ts >= %(since)s AND r.lat IS NOT NULL
    ORDER BY date_bin(%(bucket)s, r.ts, %(origin)s) DESC, r.ts DESC
    LIMIT %(fixes)s
) f
ORDER BY t.shipment_id, f.ts
"""

FILTER_OPTIONS: Final = """
SELECT (SELECT coalesce(array_agg(DISTINCT lane ORDER BY lane), '{}') FROM shipments
        WHERE lane IS NOT NULL AND status <> 'cancelled') AS lanes,
       (SELECT coalesce(array_agg(DISTINCT carrier ORDER BY carrier), '{}') FROM devices)
           AS carriers
"""


def fleet(
    conn: psycopg.Connection[Row],
    live_rules: list[str],
    offline_rule: str,
    delivered_since: datetime,
) -> list[Row]:
    return conn.execute(
        FLEET,
        {
            "live_rules": live_rules,
            "offline_rule": offline_rule,
            "delivered_since": delivered_since,
        },
    ).fetchall()


def profile_definitions(conn: psycopg.Connection[Row]) -> dict[str, Any]:
    return {r["profile_id"]: r["definition"] for r in conn.execute(PROFILE_DEFINITIONS)}


def trails(
    conn: psycopg.Connection[Row],
    shipment_ids: list[int],
    since: datetime,
    bucket: timedelta,
    fixes: int,
) -> list[Row]:
    if not shipment_ids:
        return []
    return conn.execute(
        TRAILS,
        {
            "shipment_ids": shipment_ids,
            "since": since,
            "bucket": bucket,
            "origin": since,
            "fixes": fixes,
        },
    ).fetchall()


def filter_options(conn: psycopg.Connection[Row]) -> Row:
    row = conn.execute(FILTER_OPTIONS).fetchone()
    assert row is not None
    return row


# -- alerts page --------------------------------------------------------------------------

ALERTS_BOARD: Final = """
SELECT a.alert_id, a.shipment_id, s.shipment_ref, s.destination_tz, a.rule_id, a.severity,
       a.state, a.summary, a.triggered_at, a.acknowledged_at, a.acknowledged_by
FROM alerts a LEFT JOIN shipments s USING (shipment_id)
WHERE a.state <> 'resolved'
ORDER BY array_position(ARRAY['notification','low','medium','high','critical'], a.severity) DESC,
         a.triggered_at, a.alert_id
LIMIT %(limit)s
"""

# Every page sent (or tried) for these alerts, oldest first: the escalation history.
ALERT_NOTIFICATIONS: Final = """
SELECT notification_id, alert_id, channel, recipient, status, provider_status, attempts,
       last_error, created_at, due_at, sent_at, updated_at
FROM notifications WHERE alert_id = ANY(%(alert_ids)s)
ORDER BY alert_id, created_at, notification_id
"""


def alerts_board(conn: psycopg.Connection[Row], limit: int = 300) -> list[Row]:
    return conn.execute(ALERTS_BOARD, {"limit": limit}).fetchall()


def alert_notifications(conn: psycopg.Connection[Row], alert_ids: list[int]) -> list[Row]:
    if not alert_ids:
        return []
    return conn.execute(ALERT_NOTIFICATIONS, {"alert_ids": alert_ids}).fetchall()


# -- devices page -------------------------------------------------------------------------

# Every registered logger with its latest state and the shipment it is assigned to now.
DEVICES: Final = """
SELECT v.device_id, v.carrier, v.firmware, v.active, v.interval_min, v.calibration_due,
       l.ts AS last_ts, l.recv_ts AS last_seen, l.battery_pct,
       a.shipment_id, s.shipment_ref
FROM devices v
LEFT JOIN device_latest l USING (device_id)
LEFT JOIN LATERAL (
    SELECT d.shipment_id FROM shipment_devices d
    WHERE d.device_id = v.device_id AND d.assigned_from <= %(now)s
      AND (d.assigned_until IS NULL OR d.assigned_until > %(now)s)
    ORDER BY d.assigned_from DESC LIMIT 1
) a ON true
LEFT JOIN shipments s ON s.shipment_id = a.shipment_id
ORDER BY v.device_id
LIMIT %(limit)s
"""


def devices(conn: psycopg.Connection[Row], now: datetime, limit: int = 50_000) -> list[Row]:
    return conn.execute(DEVICES, {"now": now, "limit": limit}).fetchall()


def shipment_refs(conn: psycopg.Connection[Row], shipment_ids: list[int]) -> dict[int, str]:
    if not shipment_ids:
        return {}
    rows = conn.execute(
        "SELECT shipment_id, shipment_ref FROM shipments WHERE shipment_id = ANY(%s)",
        (shipment_ids,),
    ).fetchall()
    return {r["shipment_id"]: r["shipment_ref"] for r in rows}


def shipment_id_by_ref(conn: psycopg.Connection[Row], shipment_ref: str) -> int | None:
    row = conn.execute(
        "SELECT shipment_id FROM shipments WHERE shipment_ref = %s", (shipment_ref,)
    ).fetchone()
    return None if row is None else int(row["shipment_id"])
