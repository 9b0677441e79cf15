"""Alert lifecycle and notification delivery.

``raise_alert`` is called by the monitor inside its transaction: it opens an alert or
upgrades the open one in place and hands it to its escalation policy (alerts.paging),
whose steps are written as ``notifications`` rows before anything is sent; with no
policy configured it pages the outbox recipient ``on-call`` directly. ``deliver_due`` is
the worker's sweep: claim due rows, send, record.
``acknowledge`` and ``resolve`` move an alert along triggered → acknowledged → resolved
and cancel the pages still waiting, so nobody is woken for an alert already handled.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from alerts import gdp, paging, queries
from alerts.channels import Channel, ChannelError
from alerts.models import AlertChange, AlertState, Notification, Transition
from core import audit
from core.clock import Clock
from core.db import Row
from core.severity import Severity

__all__ = ["AlertChange", "acknowledge", "deliver_due", "list_alerts", "raise_alert", "resolve"]

log = logging.getLogger(__name__)

ON_CALL = "on-call"  # outbox recipient while no escalation policy is configured
MAX_ATTEMPTS = 8
# No 0/O, 1/I/L: the code is read off a phone screen and typed back.
ACK_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
ACK_CODE_LENGTH = 6
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class AlertNotFound(LookupError):
    pass


class InvalidTransition(ValueError):
    """The lifecycle only moves forward: a resolved alert cannot be acknowledged."""


def new_ack_code() -> str:
    return "".join(secrets.choice(ACK_CODE_ALPHABET) for _ in range(ACK_CODE_LENGTH))


def page_body(channel: str, message: str, ack_code: str) -> str:
    """The text a page carries; an SMS says how to answer it."""
    if channel == "sms":
        return f"{message} Reply ACK {ack_code} to acknowledge."
    return message


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
    recipient: str = ON_CALL,
) -> AlertChange:
    """Open or upgrade the alert for (shipment, rule); page when it is new or more severe.

    The escalation policy routed by severity, lane and customer pages people; an explicit
    ``channel``/``recipient`` (or no configured policy) pages that recipient directly.
    A high or critical temperature alert confirms the excursion (alerts.gdp).
    """
    if channel in ("sms", "voice") and not _E164.match(recipient):
        raise ValueError(f"{channel} pages need an E.164 phone number, got {recipient!r}")
    row = _open_or_upgrade(
        conn,
        {
            "shipment_id": shipment_id,
            "rule_id": rule_id,
            "severity": severity.value,
            "summary": summary,
            "now": now,
            "condition_at": condition_at,
            "page_message": message,
        },
    )
    previous = row["previous_severity"]
    current = Severity(row["severity"])
    created = previous is None
    upgraded = not created and current.rank > Severity(previous).rank
    if created or upgraded:
        alert_id = int(row["alert_id"])
        direct = channel != "outbox" or recipient != ON_CALL
        if direct or not paging.start(
            conn, alert_id=alert_id, shipment_id=shipment_id, severity=current, now=now
        ):
            body = page_body(channel, message, row["ack_code"])
            conn.execute(queries.INSERT_NOTIFICATION, (alert_id, channel, recipient, body, now))
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
        if gdp.confirms_excursion(conn, alert_id, current):
            gdp.confirm_excursion(
                conn, shipment_id=shipment_id, alert_id=alert_id, actor="monitor", now=now
            )
    return AlertChange(int(row["alert_id"]), created, upgraded, current, row["ack_code"])


def _open_or_upgrade(conn: psycopg.Connection[Row], params: dict[str, object]) -> Row:
    # 31^6 codes make a clash with another open alert rare, not impossible: draw again.
    for attempt in range(5):
        try:
            with conn.transaction():
                row = conn.execute(
                    queries.OPEN_OR_UPGRADE, {**params, "ack_code": new_ack_code()}
                ).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != "alerts_open_ack_code_idx" or attempt == 4:
                raise
            continue
        assert row is not None
        return row
    raise AssertionError("unreachable")


def acknowledge(
    conn: psycopg.Connection[Row], alert_id: int, actor: str, via: str, now: datetime
) -> Transition:
    """Triggered → acknowledged; acknowledging again changes nothing."""
    with conn.transaction():
        alert = _lock(conn, alert_id)
        state = AlertState(alert["state"])
        if state is AlertState.RESOLVED:
            raise InvalidTransition(f"alert {alert_id} is resolved; it cannot be acknowledged")
        if state is AlertState.ACKNOWLEDGED:
            return Transition(
                alert_id, state, False, alert["acknowledged_at"], alert["acknowledged_by"]
            )
        conn.execute(queries.ACKNOWLEDGE, {"alert_id": alert_id, "actor": actor, "now": now})
        # The page named the alerts grouped under this one: they are acknowledged with it.
        grouped = paging.acknowledged(conn, alert_id, actor, now)
        cancelled = _cancel_pending(conn, alert_id, now)
        audit.record(
            conn,
            actor=actor,
            action="alert.acknowledged",
            entity_type="alert",
            entity_id=alert_id,
            details={"via": via, "cancelled_notifications": cancelled, "grouped": grouped},
        )
    return Transition(alert_id, AlertState.ACKNOWLEDGED, True, now, actor, len(cancelled))


def resolve(
    conn: psycopg.Connection[Row],
    alert_id: int,
    actor: str,
    note: str | None,
    now: datetime,
    *,
    via: str = "api",
) -> Transition:
    """Triggered or acknowledged → resolved; resolving again changes nothing."""
    with conn.transaction():
        alert = _lock(conn, alert_id)
        if AlertState(alert["state"]) is AlertState.RESOLVED:
            return Transition(
                alert_id, AlertState.RESOLVED, False, alert["resolved_at"], alert["resolved_by"]
            )
        conn.execute(
            queries.RESOLVE, {"alert_id": alert_id, "actor": actor, "note": note, "now": now}
        )
        paging.resolved(conn, alert_id, now)
        cancelled = _cancel_pending(conn, alert_id, now)
        audit.record(
            conn,
            actor=actor,
            action="alert.resolved",
            entity_type="alert",
            entity_id=alert_id,
            details={
                "via": via,
                "note": note,
                "previous_state": alert["state"],
                "cancelled_notifications": cancelled,
            },
        )
    return Transition(alert_id, AlertState.RESOLVED, True, now, actor, len(cancelled))


def _lock(conn: psycopg.Connection[Row], alert_id: int) -> Row:
    alert = conn.execute(queries.ALERT_FOR_UPDATE, (alert_id,)).fetchone()
    if alert is None:
        raise AlertNotFound(f"alert {alert_id} does not exist")
    return alert


def _cancel_pending(conn: psycopg.Connection[Row], alert_id: int, now: datetime) -> list[int]:
    rows = conn.execute(queries.CANCEL_PENDING, (now, alert_id)).fetchall()
    return [int(r["notification_id"]) for r in rows]


def paged_alert(conn: psycopg.Connection[Row], recipient: str, ack_code: str | None) -> int | None:
    """The alert a reply from ``recipient`` means: the one with that code, else the latest."""
    if ack_code is None:
        row = conn.execute(queries.LATEST_PAGED_ALERT, (recipient,)).fetchone()
    else:
        row = conn.execute(
            queries.PAGED_ALERT_BY_CODE, {"code": ack_code.upper(), "recipient": recipient}
        ).fetchone()
    return None if row is None else int(row["alert_id"])


def record_provider_status(
    conn: psycopg.Connection[Row],
    *,
    notification_id: int | None,
    provider_ref: str,
    provider_status: str,
    status: str,
    order: Sequence[str],
    error: str | None,
    now: datetime,
) -> bool:
    """Apply a provider's delivery report; False when it is unknown, stale or cancelled."""
    row = conn.execute(
        queries.RECORD_PROVIDER_STATUS,
        {
            "notification_id": notification_id,
            "provider_ref": provider_ref,
            "provider_status": provider_status,
            "status": status,
            "order": list(order),
            "error": error,
            "now": now,
        },
    ).fetchone()
    if row is not None and status == "failed":
        paging.failed_page(conn, int(row["notification_id"]), now)
    return row is not None


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(15 * 2 ** (attempts - 1), 900))


def deliver_due(
    pool: ConnectionPool[psycopg.Connection[Row]],
    channels: Mapping[str, Channel],
    clock: Clock,
    limit: int = 50,
) -> int:
    """Send every due notification once; returns how many were attempted."""
    with pool.connection() as conn:
        claimed = conn.execute(queries.CLAIM_DUE, {"now": clock.now(), "limit": limit}).fetchall()
    for row in claimed:
        _deliver_one(pool, channels, clock, Notification(**row))
    return len(claimed)


def _deliver_one(
    pool: ConnectionPool[psycopg.Connection[Row]],
    channels: Mapping[str, Channel],
    clock: Clock,
    notification: Notification,
) -> None:
    notification_id = notification.notification_id
    channel = channels.get(notification.channel)
    try:
        if channel is None:
            raise ChannelError(
                f"channel {notification.channel!r} is not configured", permanent=True
            )
        delivery = channel.send(notification)
    except ChannelError as exc:
        _record_failure(pool, clock, notification, exc)
        return
    except Exception as exc:
        # A bug in a channel must not strand the page (or the rest of the batch) in
        # 'sending': record it and retry like any transient failure.
        log.exception("channel crashed", extra={"notification_id": notification_id})
        _record_failure(pool, clock, notification, ChannelError(repr(exc), permanent=False))
        return
    now = clock.now()
    with pool.connection() as conn:
        conn.execute(
            queries.MARK_SENT, (delivery.status, delivery.provider_ref, now, now, notification_id)
        )


def _record_failure(
    pool: ConnectionPool[psycopg.Connection[Row]],
    clock: Clock,
    notification: Notification,
    exc: ChannelError,
) -> None:
    now = clock.now()
    notification_id = notification.notification_id
    with pool.connection() as conn:
        if exc.permanent or notification.attempts >= MAX_ATTEMPTS:
            conn.execute(queries.MARK_FAILED, (str(exc), now, notification_id))
            paging.failed_page(conn, notification_id, now)
            log.error(
                "notification failed",
                extra={"notification_id": notification_id, "error": str(exc)},
            )
        else:
            conn.execute(
                queries.MARK_RETRY,
                (now + _retry_delay(notification.attempts), str(exc), now, notification_id),
            )
            log.warning(
                "notification will be retried",
                extra={"notification_id": notification_id, "error": str(exc)},
            )


def list_alerts(
    conn: psycopg.Connection[Row], state: str | None = None, limit: int = 200
) -> list[Row]:
    return conn.execute(queries.LIST_ALERTS, {"state": state, "limit": limit}).fetchall()
