"""Silences: staff hold pages for a shipment and/or rule until an end time, with a reason.

A silence holds an escalation; it never hides a critical temperature alert, which pages
regardless (DESIGN.md §7). Creating and expiring silences is audited. Whether a page is
held is a pure function of (silences, the alerts the page speaks for, now).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from alerts import oncall_queries as q
from core import audit
from core.clock import utc
from core.db import Row
from core.severity import Severity


class SilenceError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Silence:
    silence_id: int
    shipment_id: int | None
    rule_id: str | None
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class PagedAlert:
    """An open alert a page speaks for, as silences see it."""

    shipment_id: int | None
    rule_id: str
    severity: Severity
    temperature: bool  # a rule of the shipment's drug profile (alerts.oncall_queries)


def unsilenceable(alert: PagedAlert) -> bool:
    return alert.severity is Severity.CRITICAL and alert.temperature


def _covers(silence: Silence, alert: PagedAlert, now: datetime) -> bool:
    return (
        silence.starts_at <= now < silence.ends_at
        and (silence.shipment_id is None or silence.shipment_id == alert.shipment_id)
        and (silence.rule_id is None or silence.rule_id == alert.rule_id)
    )


def held_until(
    silences: Sequence[Silence], alerts: Sequence[PagedAlert], now: datetime
) -> datetime | None:
    """Until when a page for ``alerts`` is held; None when it must go out now.

    Held only if every alert is covered by a silence and none is a critical temperature
    alert; it is held until the earliest end among the silences that cover.
    """
    if not alerts or any(unsilenceable(a) for a in alerts):
        return None
    ends: list[datetime] = []
    for alert in alerts:
        covering = [s.ends_at for s in silences if _covers(s, alert, now)]
        if not covering:
            return None
        ends.append(max(covering))
    return min(ends)


def active_silences(conn: psycopg.Connection[Row], now: datetime) -> list[Silence]:
    return [Silence(**row) for row in conn.execute(q.ACTIVE_SILENCES, {"now": now}).fetchall()]


def create_silence(
    conn: psycopg.Connection[Row],
    *,
    shipment_id: int | None,
    rule_id: str | None,
    reason: str,
    ends_at: datetime,
    actor: str,
    now: datetime,
) -> int:
    """A silence from now until ``ends_at``; scoped by shipment, rule, or both."""
    if shipment_id is None and not rule_id:
        raise SilenceError("shipment_id or rule_id: a silence needs a scope")
    if len(reason.strip()) < 3:
        raise SilenceError("reason: say why pages are held (at least 3 characters)")
    if utc(ends_at) <= now:
        raise SilenceError("ends_at: must be in the future")
    with conn.transaction():
        if shipment_id is not None:
            if conn.execute(q.SHIPMENT_EXISTS, (shipment_id,)).fetchone() is None:
                raise SilenceError(f"shipment_id: shipment {shipment_id} does not exist")
        row = conn.execute(
            q.INSERT_SILENCE,
            {
                "shipment_id": shipment_id,
                "rule_id": rule_id or None,
                "reason": reason.strip(),
                "starts_at": now,
                "ends_at": utc(ends_at),
                "actor": actor,
                "now": now,
            },
        ).fetchone()
        assert row is not None
        silence_id = int(row["silence_id"])
        audit.record(
            conn,
            actor=actor,
            action="silence.created",
            entity_type="silence",
            entity_id=silence_id,
            details={
                "shipment_id": shipment_id,
                "rule": rule_id or None,
                "reason": reason.strip(),
                "ends_at": utc(ends_at).isoformat(),
            },
        )
    return silence_id


def expire_silence(
    conn: psycopg.Connection[Row], silence_id: int, actor: str, now: datetime
) -> bool:
    """End a silence now; False when it had already ended or been expired."""
    with conn.transaction():
        row = conn.execute(
            q.EXPIRE_SILENCE, {"silence_id": silence_id, "actor": actor, "now": now}
        ).fetchone()
        if row is None:
            if conn.execute(q.SILENCE_EXISTS, (silence_id,)).fetchone() is None:
                raise LookupError(f"silence {silence_id} does not exist")
            return False
        # Held escalations of the silenced scope go out on the next sweep.
        conn.execute(q.RELEASE_HELD_ESCALATIONS, {"now": now, "held_until": row["ends_at"]})
        audit.record(
            conn,
            actor=actor,
            action="silence.expired",
            entity_type="silence",
            entity_id=silence_id,
            details={"shipment_id": row["shipment_id"], "rule": row["rule_id"]},
        )
    return True


def list_silences(conn: psycopg.Connection[Row], now: datetime, active_only: bool) -> list[Row]:
    return conn.execute(q.LIST_SILENCES, {"now": now, "active_only": active_only}).fetchall()
