"""Escalations in the database: route new alerts, group them, run due steps, stop on ack.

Each paging alert has one ``alert_escalations`` row holding the step to run next and
when. ``sweep_escalations`` claims due rows with ``FOR UPDATE SKIP LOCKED`` and, in the
same transaction, writes the step's pages (``notifications``) and moves the row on: a
worker that dies mid-sweep rolls back and the next one runs the step once. Alerts of one
shipment raised within the policy's grouping window join the first one's escalation
(``alerts.group_alert_id``): its pages name them all, and acknowledging it acknowledges
them. Pure step and routing logic is in alerts.escalation and alerts.oncall.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from alerts import oncall_queries as q
from alerts.escalation import (
    Policy,
    Position,
    choose_policy,
    policy_from_row,
    route_from_row,
    run_step,
    step_recipients,
)
from alerts.oncall import Person, Schedule, load_people, load_schedules
from alerts.silences import PagedAlert, Silence, active_silences, held_until
from core import audit
from core.clock import Clock
from core.db import Row
from core.severity import Severity

log = logging.getLogger(__name__)
STEP_RETRY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class _Context:
    now: datetime
    channels: Collection[str]
    policies: Mapping[str, Policy]
    people: Mapping[str, Person]
    schedules: Mapping[str, Schedule]
    silences: list[Silence]


def load_policies(conn: psycopg.Connection[Row]) -> dict[str, Policy]:
    """Stored policies; one edited into an unreadable shape is skipped (its alerts are
    routed again) rather than stopping every escalation."""
    policies: dict[str, Policy] = {}
    for row in conn.execute(q.POLICIES):
        try:
            policies[row["policy_id"]] = policy_from_row(row)
        except (KeyError, TypeError, ValueError):
            log.exception("unreadable escalation policy", extra={"policy_id": row["policy_id"]})
    return policies


def _route(conn: psycopg.Connection[Row], alert_id: int, severity: Severity) -> Policy | None:
    policies = load_policies(conn)
    routes = [route_from_row(row) for row in conn.execute(q.ROUTES)]
    routes = [route for route in routes if route.policy_id in policies]
    if not routes:
        return None
    shipment = conn.execute(q.ALERT_ROUTING, (alert_id,)).fetchone()
    lane = customer = None
    if shipment is not None:
        lane, customer = shipment["lane"], shipment["customer"]
    policy_id = choose_policy(routes, severity, lane, customer)
    return None if policy_id is None else policies[policy_id]


def start(
    conn: psycopg.Connection[Row],
    *,
    alert_id: int,
    shipment_id: int | None,
    severity: Severity,
    now: datetime,
) -> bool:
    """Route a new or more severe alert; False when no escalation policy is configured."""
    policy = _route(conn, alert_id, severity)
    if policy is None:
        return False
    own = conn.execute(q.OWN_GROUP, (alert_id,)).fetchone()
    leader = None if own is None else own["group_alert_id"]
    # Only an alert that has never paged looks for a group to join; one that leads its
    # own escalation (an upgrade in place) keeps it.
    if leader is None and shipment_id is not None and not (own and own["escalated"]):
        recent = conn.execute(
            q.RECENT_LEADER,
            {"shipment_id": shipment_id, "alert_id": alert_id, "since": now - policy.group_window},
        ).fetchone()
        leader = None if recent is None else recent["alert_id"]
    if leader is not None:
        top = conn.execute(q.GROUP_TOP_SEVERITY, {"leader": leader, "alert_id": alert_id})
        row = top.fetchone()
        if row is not None and row["severity"] and severity.rank <= Severity(row["severity"]).rank:
            # The group's escalation already pages at this severity or higher: join it.
            conn.execute(q.JOIN_GROUP, (leader, alert_id))
            return True
        # More severe than the group: this alert leads it and pages now.
        conn.execute(q.TAKE_OVER_GROUP, {"leader": leader, "alert_id": alert_id, "now": now})
    if conn.execute(q.RETRIGGER_ALERT, {"alert_id": alert_id, "now": now}).fetchone():
        audit.record(
            conn,
            actor="alerts",
            action="alert.retriggered",
            entity_type="alert",
            entity_id=alert_id,
            details={"reason": f"severity rose to {severity.value}"},
        )
    conn.execute(
        q.START_ESCALATION, {"alert_id": alert_id, "policy_id": policy.policy_id, "now": now}
    )
    return True


def acknowledged(
    conn: psycopg.Connection[Row], alert_id: int, actor: str, now: datetime
) -> list[int]:
    """Stop the alert's escalation (until its ack timeout); acknowledge its group too."""
    members = [
        int(row["alert_id"])
        for row in conn.execute(
            q.ACK_GROUP_MEMBERS, {"leader": alert_id, "actor": actor, "now": now}
        )
    ]
    escalation = conn.execute(q.ESCALATION_POLICY, (alert_id,)).fetchone()
    if escalation is not None:
        policy = load_policies(conn).get(escalation["policy_id"])
        timeout = None if policy is None else policy.ack_timeout
        conn.execute(
            q.ESCALATION_ACKNOWLEDGED,
            {
                "alert_id": alert_id,
                "now": now,
                "next_at": None if timeout is None else now + timeout,
            },
        )
    return members


def resolved(conn: psycopg.Connection[Row], alert_id: int, now: datetime) -> None:
    """End the alert's escalation; an open alert of its group takes the escalation over."""
    heir = conn.execute(q.GROUP_HEIR, (alert_id,)).fetchone()
    if heir is not None:
        conn.execute(q.HAND_OVER_GROUP, {"leader": alert_id, "heir": heir["alert_id"], "now": now})
    conn.execute(q.ESCALATION_DONE, {"alert_id": alert_id, "now": now})


def failed_page(conn: psycopg.Connection[Row], notification_id: int, now: datetime) -> bool:
    """A page of the current step failed (bad number, unanswered call): next step now."""
    row = conn.execute(q.FAST_FORWARD, {"notification_id": notification_id, "now": now})
    moved = row.fetchone() is not None
    if moved:
        log.warning("page failed; escalating now", extra={"notification_id": notification_id})
    return moved


def sweep_escalations(
    pool: ConnectionPool[psycopg.Connection[Row]],
    channels: Collection[str],
    clock: Clock,
    limit: int = 50,
) -> int:
    """Run every due escalation step once; returns how many escalations were claimed."""
    now = clock.now()
    with pool.connection() as conn, conn.transaction():
        rows = conn.execute(q.CLAIM_DUE_ESCALATIONS, {"now": now, "limit": limit}).fetchall()
        if not rows:
            return 0
        people = load_people(conn)
        context = _Context(
            now=now,
            channels=channels,
            policies=load_policies(conn),
            people=people,
            schedules=load_schedules(conn, people),
            silences=active_silences(conn, now),
        )
        for row in rows:
            try:
                with conn.transaction():  # a savepoint: one bad row cannot stall the rest
                    _advance(conn, row, context)
            except Exception:
                # A step that cannot run must not vanish: log it and try again shortly.
                log.exception("escalation step failed", extra={"alert_id": row["alert_id"]})
                conn.execute(
                    q.HOLD_ESCALATION,
                    {"alert_id": row["alert_id"], "until": now + STEP_RETRY, "now": now},
                )
    return len(rows)


def _advance(conn: psycopg.Connection[Row], row: Row, ctx: _Context) -> None:
    alert_id = int(row["alert_id"])
    if row["alert_state"] == "resolved":
        conn.execute(q.ESCALATION_DONE, {"alert_id": alert_id, "now": ctx.now})
        return
    policy = ctx.policies.get(row["policy_id"]) or _route(conn, alert_id, Severity(row["severity"]))
    if policy is None:
        _exhaust(conn, alert_id, ctx.now, "its escalation policy no longer exists")
        return
    position = Position(row["step_index"], row["repeat"])
    if row["alert_state"] == "acknowledged":
        if row["state"] == "active":
            # Acknowledged by a path that did not stop the escalation: stop it now.
            timeout = policy.ack_timeout
            next_at = None if timeout is None else ctx.now + timeout
            conn.execute(
                q.ESCALATION_ACKNOWLEDGED,
                {"alert_id": alert_id, "now": ctx.now, "next_at": next_at},
            )
            return
        # Acknowledged and the ack timeout passed unresolved: page again from the top.
        conn.execute(q.RETRIGGER_ALERT, {"alert_id": alert_id, "now": ctx.now})
        audit.record(
            conn,
            actor="alerts",
            action="alert.retriggered",
            entity_type="alert",
            entity_id=alert_id,
            details={"reason": "acknowledged but not resolved in time"},
        )
        position = Position(0, 0)
    group = conn.execute(q.GROUP_OPEN, {"alert_id": alert_id}).fetchall()
    paged = [
        PagedAlert(r["shipment_id"], r["rule_id"], Severity(r["severity"]), r["temperature"])
        for r in group
    ]
    held = held_until(ctx.silences, paged, ctx.now)
    if held is not None:
        conn.execute(q.HOLD_ESCALATION, {"alert_id": alert_id, "until": held, "now": ctx.now})
        return
    for _ in range(len(policy.steps) * (policy.repeat + 1)):
        run = run_step(policy, position, ctx.now)
        recipients = step_recipients(run.step, ctx.schedules, ctx.people, ctx.now)
        if recipients:
            pages = _write_pages(conn, row, group, run.step.channels, recipients, run.ran, ctx)
            conn.execute(
                q.ESCALATION_STEPPED,
                {
                    "alert_id": alert_id,
                    "policy_id": policy.policy_id,
                    "state": "active" if run.following else "exhausted",
                    "step_index": run.following.step_index
                    if run.following
                    else position.step_index,
                    "repeat": run.following.repeat if run.following else position.repeat,
                    "next_at": run.next_at,
                    "last_step": run.ran.step_index,
                    "last_repeat": run.ran.repeat,
                    "pages": pages,
                    "now": ctx.now,
                },
            )
            if run.following is None:
                _audit_exhausted(conn, alert_id, "every step of the policy has paged")
            return
        audit.record(
            conn,
            actor="alerts",
            action="alert.escalation_step_skipped",
            entity_type="alert",
            entity_id=alert_id,
            details={
                "step": run.ran.step_index,
                "repeat": run.ran.repeat,
                "reason": "nobody active to page",
            },
        )
        if run.following is None:
            break
        position = run.following
    _exhaust(conn, alert_id, ctx.now, "no step had anybody to page")


def _write_pages(
    conn: psycopg.Connection[Row],
    alert: Row,
    group: list[Row],
    channels: tuple[str, ...],
    recipients: list[Person],
    ran: Position,
    ctx: _Context,
) -> int:
    from alerts.service import page_body  # noqa: PLC0415 - service imports this module

    text = alert["page_message"] or alert["summary"]
    others = [r for r in group if r["alert_id"] != alert["alert_id"]]
    if others:
        listed = ", ".join(f"{r['rule_id']} ({r['severity']})" for r in others)
        text = f"{text} Also open on this shipment: {listed}."
    written = 0
    for person in recipients:
        sent: set[str] = set()
        for wanted in channels:
            channel = wanted if wanted in ctx.channels else "outbox"
            if channel in sent:
                continue
            sent.add(channel)
            # The outbox stands in for SMS and voice: keep the reply instruction visible.
            body = page_body("sms" if channel == "outbox" else channel, text, alert["ack_code"])
            conn.execute(
                q.INSERT_PAGE,
                {
                    "alert_id": alert["alert_id"],
                    "channel": channel,
                    "recipient": person.phone_e164,
                    "body": body,
                    "now": ctx.now,
                    "step": ran.step_index,
                    "repeat": ran.repeat,
                    "person_id": person.person_id,
                },
            )
            written += 1
    audit.record(
        conn,
        actor="alerts",
        action="alert.paged",
        entity_type="alert",
        entity_id=alert["alert_id"],
        details={
            "step": ran.step_index,
            "repeat": ran.repeat,
            "people": [p.person_id for p in recipients],
            "group": [r["alert_id"] for r in others],
        },
    )
    return written


def _exhaust(conn: psycopg.Connection[Row], alert_id: int, now: datetime, reason: str) -> None:
    conn.execute(q.ESCALATION_EXHAUSTED, {"alert_id": alert_id, "now": now})
    _audit_exhausted(conn, alert_id, reason)


def _audit_exhausted(conn: psycopg.Connection[Row], alert_id: int, reason: str) -> None:
    log.error("escalation exhausted", extra={"alert_id": alert_id, "reason": reason})
    audit.record(
        conn,
        actor="alerts",
        action="alert.escalation_exhausted",
        entity_type="alert",
        entity_id=alert_id,
        details={"reason": reason},
    )
