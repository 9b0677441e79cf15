"""Alert lifecycle and notification delivery (the parts the walking skeleton needs).

``raise_alert`` is called by the monitor inside its transaction: it opens an alert or
upgrades the open one in place, and writes the page as a ``notifications`` row before
anything is sent. ``deliver_due`` is the worker's sweep: claim due rows, send, record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from alerts import queries
from alerts.channels import Channel, ChannelError
from core import audit
from core.clock import Clock
from core.db import Row
from core.severity import Severity

log = logging.getLogger(__name__)

ON_CALL = "on-call"  # recipient until on-call schedules exist (issue: alerts)
MAX_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class AlertChange:
    alert_id: int
    created: bool
    upgraded: bool
    severity: Severity


def raise_alert(
    conn: psycopg.Connection[Row],
    *,
    shipment_id: int,
    rule_id: str,
    severity: Severity,
    summary: str,
    message: str,
    condition_at: datetime,
    now: datetime,
    channel: str = "outbox",
) -> AlertChange:
    """Open or upgrade the alert for (shipment, rule); page when it is new or more severe."""
    row = conn.execute(
        queries.OPEN_OR_UPGRADE,
        {
            "shipment_id": shipment_id,
            "rule_id": rule_id,
            "severity": severity.value,
            "summary": summary,
            "now": now,
            "condition_at": condition_at,
        },
    ).fetchone()
    assert row is not None
    previous = row["previous_severity"]
    current = Severity(row["severity"])
    created = previous is None
    upgraded = not created and current.rank > Severity(previous).rank
    if created or upgraded:
        conn.execute(queries.INSERT_NOTIFICATION, (row["alert_id"], channel, ON_CALL, message, now))
        audit.record(
            conn,
            actor="monitor",
            action="alert.triggered" if created else "alert.upgraded",
            entity_type="alert",
            entity_id=row["alert_id"],
            details={
                "shipment_id": shipment_id,
                "rule": rule_id,
                "severity": current.value,
                "previous_severity": previous,
            },
        )
    return AlertChange(int(row["alert_id"]), created, upgraded, current)


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(15 * 2 ** (attempts - 1), 900))


def deliver_due(
    pool: ConnectionPool[psycopg.Connection[Row]],
    channels: dict[str, Channel],
    clock: Clock,
    limit: int = 50,
) -> int:
    """Send every due notification once; returns how many were attempted."""
    with pool.connection() as conn:
        claimed = conn.execute(queries.CLAIM_DUE, {"now": clock.now(), "limit": limit}).fetchall()
    for row in claimed:
        _deliver_one(pool, channels, clock, row)
    return len(claimed)


def _deliver_one(
    pool: ConnectionPool[psycopg.Connection[Row]],
    channels: dict[str, Channel],
    clock: Clock,
    row: Row,
) -> None:
    notification_id = row["notification_id"]
    channel = channels.get(row["channel"])
    try:
        if channel is None:
            raise ChannelError(f"channel {row['channel']!r} is not configured", permanent=True)
        delivery = channel.send(row["recipient"], row["body"])
    except ChannelError as exc:
        now = clock.now()
        with pool.connection() as conn:
            if exc.permanent or row["attempts"] >= MAX_ATTEMPTS:
                conn.execute(queries.MARK_FAILED, (str(exc), now, notification_id))
                log.error(
                    "notification failed",
                    extra={"notification_id": notification_id, "error": str(exc)},
                )
            else:
                conn.execute(
                    queries.MARK_RETRY,
                    (now + _retry_delay(row["attempts"]), str(exc), now, notification_id),
                )
                log.warning(
                    "notification will be retried",
                    extra={"notification_id": notification_id, "error": str(exc)},
                )
        return
    now = clock.now()
    with pool.connection() as conn:
        conn.execute(
            queries.MARK_SENT, (delivery.status, delivery.provider_ref, now, now, notification_id)
        )


def list_alerts(
    conn: psycopg.Connection[Row], state: str | None = None, limit: int = 200
) -> list[Row]:
    return conn.execute(queries.LIST_ALERTS, {"state": state, "limit": limit}).fetchall()
