"""The GDP excursion notice (EU GDP guidelines 2013/C 343/01, chapter 9.2: temperature
excursions during transport are reported to the distributor and the recipient).

An excursion is *confirmed* when a temperature alert of the shipment reaches severity
high or critical, or when QA confirms it (``confirm_excursion``). Confirmation writes one
pending notice per party and shipment (a unique key makes it once); the alerts worker
turns pending notices into notifications: to the shipment's distributor and to the
recipient contact — the treating physician of the shipment's case. The text names the
shipment, rule, time and a link, never the patient.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import psycopg
from psycopg_pool import ConnectionPool

from alerts import oncall_queries as q
from core import audit
from core.db import Row
from core.severity import Severity

CONFIRMING = frozenset({Severity.HIGH, Severity.CRITICAL})
PARTIES = ("distributor", "recipient")


def confirms_excursion(conn: psycopg.Connection[Row], alert_id: int, severity: Severity) -> bool:
    """A high or critical alert on a temperature rule (one of the drug profile's rules)."""
    if severity not in CONFIRMING:
        return False
    row = conn.execute(q.IS_TEMPERATURE_ALERT, (alert_id,)).fetchone()
    return row is not None and bool(row["temperature"])


def confirm_excursion(
    conn: psycopg.Connection[Row],
    *,
    shipment_id: int,
    alert_id: int | None,
    actor: str,
    now: datetime,
) -> list[str]:
    """Queue the notice to each party not yet told; returns the parties newly queued."""
    queued = [
        row["party"]
        for row in conn.execute(
            q.INSERT_GDP_NOTICES,
            {
                "shipment_id": shipment_id,
                "alert_id": alert_id,
                "actor": actor,
                "now": now,
                "parties": list(PARTIES),
            },
        ).fetchall()
    ]
    if queued:
        audit.record(
            conn,
            actor=actor,
            action="gdp.excursion_confirmed",
            entity_type="shipment",
            entity_id=shipment_id,
            details={"alert_id": alert_id, "parties": queued},
        )
    return queued


def notice_body(row: Row, dashboard_url: str) -> str:
    rule = f"rule {row['rule_id']}" if row["rule_id"] else "QA confirmation"
    return (
        f"GDP temperature excursion notice: shipment {row['shipment_ref']} ({rule}) "
        f"confirmed {row['confirmed_at']:%Y-%m-%d %H:%M}Z. Keep the product quarantined at "
        f"its labelled storage temperature and do not use it until QA has released it. "
        f"{dashboard_url}/shipments/{row['shipment_id']}"
    )


def send_pending_notices(
    pool: ConnectionPool[psycopg.Connection[Row]],
    available_channels: Collection[str],
    dashboard_url: str,
    now: datetime,
    limit: int = 50,
) -> int:
    """Turn pending notices into notifications (SMS when configured, else the outbox)."""
    channel = "sms" if "sms" in available_channels else "outbox"
    with pool.connection() as conn, conn.transaction():
        rows = conn.execute(q.CLAIM_GDP_NOTICES, {"limit": limit}).fetchall()
        for row in rows:
            phone = row["distributor_phone"] if row["party"] == "distributor" else row["mobile"]
            if phone is None:
                conn.execute(q.GDP_NO_CONTACT, (row["gdp_notice_id"],))
                audit.record(
                    conn,
                    actor="alerts",
                    action="gdp.notice_undeliverable",
                    entity_type="shipment",
                    entity_id=row["shipment_id"],
                    details={"party": row["party"], "reason": "no phone number on record"},
                )
                continue
            notification = conn.execute(
                q.INSERT_PLAIN_NOTIFICATION,
                {
                    # Not tied to the alert: acknowledging it must not cancel the notice.
                    "alert_id": None,
                    "channel": channel,
                    "recipient": phone,
                    "body": notice_body(row, dashboard_url),
                    "now": now,
                },
            ).fetchone()
            assert notification is not None
            conn.execute(q.GDP_QUEUED, (notification["notification_id"], row["gdp_notice_id"]))
    return len(rows)
