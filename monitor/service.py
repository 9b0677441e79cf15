"""The live monitor: evaluate shipments whose readings changed, record what it finds.

Re-running is idempotent: excursions are keyed by (shipment, direction, start) and alarms
by (shipment, rule, start), so only an alarm never seen before opens or upgrades an alert,
and an alert is resolved once. ``sweep_live`` is the periodic pass over in-transit
shipments for what readings alone cannot show (a silent logger, a late delivery).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from alerts.service import raise_alert, resolve
from core import audit
from core.clock import Clock
from core.db import Row
from core.severity import Severity
from monitor import live, queries
from monitor.evaluation import evaluate
from monitor.models import Alarm, Evaluation, Excursion
from monitor.profiles import DrugProfile, catalog
from monitor.quality import SIGNED_STATES

log = logging.getLogger(__name__)

# Late data that changes a shipment QA has already signed for (docs/profiles.md).
POST_RELEASE_RULE = "post-release-excursion"
# Stored readings that evaluation refuses: the shipment has no verdict until QA looks.
UNEVALUABLE_RULE = "evidence-unevaluable"
MAX_CORRIDOR_KM = 1000.0  # as the shipments.route_corridor_km check allows
QA_RECIPIENT = "qa"  # outbox recipient of post-release alerts: a quality decision, not logistics


@dataclass(frozen=True, slots=True)
class ShipmentOutcome:
    shipment_id: int
    verdict: str
    new_alarms: int
    resolved: int = 0


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """What one live sweep changed; all zeros when nothing did."""

    raised: list[tuple[int, str]] = field(default_factory=list)  # (shipment, rule)
    resolved: list[tuple[int, str]] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)


def sync_catalog(conn: psycopg.Connection[Row]) -> list[str]:
    """Store the shipped profiles in ``drug_profiles``; returns the ids that changed."""
    changed = []
    for profile in catalog().values():
        row = conn.execute(
            queries.UPSERT_PROFILE,
            (
                profile.id,
                profile.name,
                Jsonb(profile.model_dump(mode="json")),
                profile.content_hash(),
                profile.source,
            ),
        ).fetchone()
        if row is not None:
            changed.append(profile.id)
    return changed


def set_planned_route(
    conn: psycopg.Connection[Row],
    shipment_id: int,
    *,
    corridor_km: float | None,
    waypoints: Sequence[tuple[float, float]] = (),
    actor: str,
) -> None:
    """Watch a shipment against origin → waypoints → destination (None: stop watching)."""
    if corridor_km is not None and not 0 < corridor_km <= MAX_CORRIDOR_KM:
        raise ValueError(f"corridor_km must be above 0 and at most {MAX_CORRIDOR_KM:g} km")
    for i, (lat, lon) in enumerate(waypoints):
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"waypoints.{i}: ({lat}, {lon}) is not a latitude/longitude")
    points = [[float(lat), float(lon)] for lat, lon in waypoints]
    with conn.transaction():
        row = conn.execute(
            queries.SET_PLANNED_ROUTE,
            {"shipment_id": shipment_id, "corridor_km": corridor_km, "waypoints": Jsonb(points)},
        ).fetchone()
        if row is None:
            raise ValueError(f"shipment_id: no shipment {shipment_id}")
        audit.record(
            conn,
            actor=actor,
            action="shipment.route_planned",
            entity_type="shipment",
            entity_id=shipment_id,
            details={"corridor_km": corridor_km, "waypoints": points},
        )


def evaluate_due(
    conn: psycopg.Connection[Row], clock: Clock, dashboard_url: str, limit: int = 20
) -> list[ShipmentOutcome]:
    """Evaluate up to ``limit`` shipments with new readings, in one transaction."""
    outcomes = []
    with conn.transaction():
        for shipment in conn.execute(queries.CLAIM_DUE_SHIPMENTS, {"limit": limit}).fetchall():
            try:
                with conn.transaction():  # a savepoint: one shipment's bad data stops only it
                    outcomes.append(_evaluate_shipment(conn, shipment, clock.now(), dashboard_url))
            except ValueError as exc:
                _raise_unevaluable(conn, shipment, str(exc), clock.now(), dashboard_url)
    return outcomes


def _raise_unevaluable(
    conn: psycopg.Connection[Row], shipment: Row, why: str, now: datetime, dashboard_url: str
) -> None:
    """Stored readings evaluation refuses (e.g. a device time it cannot represent, stored
    before ingest refused such times): page QA and stop retrying until new readings arrive.

    Nothing is skipped silently: the readings stay stored, the alert names the problem, and
    the shipment is evaluated again when its next reading arrives.
    """
    raise_alert(
        conn,
        shipment_id=shipment["shipment_id"],
        rule_id=UNEVALUABLE_RULE,
        severity=Severity.HIGH,
        summary=f"the stored readings cannot be evaluated: {why}",
        message=(
            f"[HIGH] Shipment {shipment['shipment_ref']}: its readings cannot be evaluated; "
            f"the monitor's verdict is unavailable until QA corrects the data. "
            f"{dashboard_url}/shipments/{shipment['shipment_id']}"
        ),
        condition_at=now,
        now=now,
        recipient=QA_RECIPIENT,
    )
    conn.execute(queries.MARK_EVALUATED, (now, None, shipment["shipment_id"]))
    log.error("shipment not evaluable", extra={"shipment": shipment["shipment_ref"], "why": why})


def _evaluate_shipment(
    conn: psycopg.Connection[Row], shipment: Row, now: datetime, dashboard_url: str
) -> ShipmentOutcome:
    profile = DrugProfile.model_validate(shipment["definition"])
    rows = conn.execute(queries.SHIPMENT_READINGS, (shipment["shipment_id"],)).fetchall()
    frame = pd.DataFrame(rows, columns=["ts", "temp_c", "stage"])
    result = evaluate(profile, frame)
    # Readings older than what was already evaluated reveal history late (store-and-forward).
    through = shipment["evaluated_through"]
    late = through is not None and shipment["evaluate_from"] < through
    new_excursions = _record_excursions(conn, shipment["shipment_id"], result, late, now)
    # After QA has signed, the record stands: what late data reveals goes to QA as one
    # post-release alert instead of paging the rule as if the shipment were still moving.
    signed = shipment["quality_state"] in SIGNED_STATES
    found = [
        alarm
        for alarm in result.alarms
        if _record_alarm(
            conn, shipment, profile, alarm, late, now, dashboard_url, result.end, page=not signed
        )
    ]
    new_alarms = len(found)
    if signed and (new_excursions or found):
        _raise_post_release(conn, shipment, new_excursions, found, now, dashboard_url)
    resolved = _resolve_cleared_runs(conn, shipment["shipment_id"], profile, rows, now)
    conn.execute(queries.MARK_EVALUATED, (now, result.end, shipment["shipment_id"]))
    return ShipmentOutcome(shipment["shipment_id"], result.verdict, new_alarms, resolved)


def _resolve_cleared_runs(
    conn: psycopg.Connection[Row],
    shipment_id: int,
    profile: DrugProfile,
    readings: list[Row],
    now: datetime,
) -> int:
    """Resolve open single-rule alerts whose alarming run has ended back within threshold."""
    single = {rule.id: rule for rule in profile.rules if rule.mode == "single"}
    if not single:
        return 0
    points = [(r["ts"], r["temp_c"]) for r in readings]
    resolved = 0
    for alert in conn.execute(
        queries.OPEN_RULE_ALERTS, {"shipment_id": shipment_id, "rule_ids": list(single)}
    ).fetchall():
        rule = single[alert["rule_id"]]
        cleared_at = live.single_run_cleared_at(
            rule, alert["started_at"], alert["seen_through"], points
        )
        if cleared_at is None:
            continue
        word = "at or below" if rule.direction == "above" else "at or above"
        note = f"back {word} {rule.threshold_c:g} °C at {cleared_at:%Y-%m-%d %H:%M}Z"
        resolve(conn, alert["alert_id"], "monitor", note, now, via="monitor")
        resolved += 1
    return resolved


def _raise_post_release(
    conn: psycopg.Connection[Row],
    shipment: Row,
    excursions: list[Excursion],
    alarms: list[Alarm],
    now: datetime,
    dashboard_url: str,
) -> None:
    signed = conn.execute(queries.LATEST_DISPOSITION, (shipment["shipment_id"],)).fetchone()
    decision = "signed" if signed is None else signed["decision"].replace("_", " ")
    found = [f"{e.direction}-range excursion from {e.start:%Y-%m-%d %H:%M}Z" for e in excursions]
    found += [f"rule {a.rule} alarm at {a.at:%Y-%m-%d %H:%M}Z" for a in alarms]
    since = min([e.start for e in excursions] + [a.start for a in alarms])
    summary = f"after the {decision} disposition, late readings show: {'; '.join(found)}"
    raise_alert(
        conn,
        shipment_id=shipment["shipment_id"],
        rule_id=POST_RELEASE_RULE,
        severity=Severity.HIGH,
        summary=summary,
        # No patient data in pages: shipment reference, what was found, link.
        message=(
            f"[HIGH] Shipment {shipment['shipment_ref']}: QA disposition already signed "
            f"({decision}); late data show {len(found)} new finding(s). "
            f"{dashboard_url}/shipments/{shipment['shipment_id']}"
        ),
        condition_at=since,
        now=now,
        recipient=QA_RECIPIENT,
    )
    log.warning(
        "post-release finding",
        extra={"shipment": shipment["shipment_ref"], "findings": len(found)},
    )


def _record_excursions(
    conn: psycopg.Connection[Row], shipment_id: int, result: Evaluation, late: bool, now: datetime
) -> list[Excursion]:
    """Upsert the excursions; those never recorded before."""
    new = []
    for excursion in result.excursions:
        row = conn.execute(
            queries.UPSERT_EXCURSION,
            {
                "shipment_id": shipment_id,
                "direction": excursion.direction,
                "started_at": excursion.start,
                "ended_at": excursion.end,
                "duration_min": excursion.duration_min,
                "peak_c": excursion.peak_c,
                "retrospective": late,
                "now": now,
            },
        ).fetchone()
        if row is not None and row["inserted"]:
            new.append(excursion)
    return new


def _record_alarm(
    conn: psycopg.Connection[Row],
    shipment: Row,
    profile: DrugProfile,
    alarm: Alarm,
    late: bool,
    now: datetime,
    dashboard_url: str,
    seen_through: datetime | None,
    *,
    page: bool = True,
) -> bool:
    inserted = conn.execute(
        queries.INSERT_ALARM,
        {
            "shipment_id": shipment["shipment_id"],
            "rule_id": alarm.rule,
            "severity": alarm.severity.value,
            "started_at": alarm.start,
            "alarmed_at": alarm.at,
            "retrospective": late,
            "now": now,
            "seen_through": seen_through,
        },
    ).fetchone()
    if inserted is None:
        return False
    if not page:
        return True
    rule = next(r for r in profile.rules if r.id == alarm.rule)
    latest = conn.execute(queries.LATEST_TEMPERATURE, (shipment["shipment_id"],)).fetchone()
    current = "n/a" if latest is None else f"{latest['temp_c']:.1f} °C"
    # Duration on device time: from the start of the condition to the newest reading.
    newest = alarm.at if latest is None else max(latest["ts"], alarm.at)
    minutes = round((newest - alarm.start).total_seconds() / 60)
    word = "above" if rule.direction == "above" else "below"
    # e.g. "above 8 °C for 30 min since 2026-11-25 10:33Z" / "below 0 °C since ..." (any reading)
    lasting = f" for {rule.for_min:g} min" if rule.for_min else ""
    total = " in total" if rule.mode == "cumulative" else ""
    summary = f"{word} {rule.threshold_c:g} °C{lasting}{total} since {alarm.start:%Y-%m-%d %H:%M}Z"
    # No patient data in pages: shipment reference, rule, temperature, duration, link.
    message = (
        f"[{alarm.severity.value.upper()}] Shipment {shipment['shipment_ref']}: rule "
        f"{alarm.rule} — {word} {rule.threshold_c:g} °C since {alarm.start:%H:%M}Z "
        f"({minutes} min), now {current}. {dashboard_url}/shipments/{shipment['shipment_id']}"
    )
    raise_alert(
        conn,
        shipment_id=shipment["shipment_id"],
        rule_id=alarm.rule,
        severity=alarm.severity,
        summary=summary,
        message=message,
        condition_at=alarm.start,
        now=now,
    )
    log.info(
        "alarm",
        extra={
            "shipment": shipment["shipment_ref"],
            "rule": alarm.rule,
            "severity": alarm.severity.value,
            "retrospective": late,
        },
    )
    return True


def sweep_live(conn: psycopg.Connection[Row], clock: Clock, dashboard_url: str) -> SweepOutcome:
    """One pass over in-transit shipments: arrival, offline, battery and delay alarms."""
    now = clock.now()
    outcome = SweepOutcome()
    rule_ids = list(live.LIVE_RULES)
    with conn.transaction():
        shipments = conn.execute(queries.CLAIM_LIVE_SHIPMENTS, {"rule_ids": rule_ids}).fetchall()
        if not shipments:
            return outcome
        ids = [s["shipment_id"] for s in shipments]
        loggers: dict[int, list[live.LoggerState]] = defaultdict(list)
        for row in conn.execute(queries.LIVE_LOGGERS, {"shipment_ids": ids, "now": now}):
            shipment_id = row.pop("shipment_id")
            loggers[shipment_id].append(live.LoggerState(**row))
        open_alerts: dict[int, list[live.OpenAlert]] = defaultdict(list)
        for row in conn.execute(
            queries.OPEN_LIVE_ALERTS, {"shipment_ids": ids, "rule_ids": rule_ids}
        ):
            open_alerts[row["shipment_id"]].append(
                live.OpenAlert(row["alert_id"], row["rule_id"], Severity(row["severity"]))
            )
        for row in shipments:
            waypoints = tuple((float(lat), float(lon)) for lat, lon in row.pop("route_waypoints"))
            shipment = live.LiveShipment(
                **row, route_waypoints=waypoints, loggers=tuple(loggers[row["shipment_id"]])
            )
            plan = live.plan_live(shipment, open_alerts[shipment.shipment_id], now)
            if not plan.empty:
                _apply_live_plan(conn, shipment, plan, now, dashboard_url, outcome)
    return outcome


def _apply_live_plan(
    conn: psycopg.Connection[Row],
    shipment: live.LiveShipment,
    plan: live.LivePlan,
    now: datetime,
    dashboard_url: str,
    outcome: SweepOutcome,
) -> None:
    if plan.arrival is not None and _mark_delivered(conn, shipment.shipment_id, plan.arrival):
        outcome.delivered.append(shipment.shipment_id)
    for alert, note in plan.resolve:
        resolve(conn, alert.alert_id, "monitor", note, now, via="monitor")
        outcome.resolved.append((shipment.shipment_id, alert.rule_id))
    for condition in plan.raise_:
        raise_alert(
            conn,
            shipment_id=shipment.shipment_id,
            rule_id=condition.rule_id,
            severity=condition.severity,
            summary=condition.detail,
            # No patient data in pages: shipment reference, rule, what is wrong, link.
            message=(
                f"[{condition.severity.value.upper()}] Shipment {shipment.shipment_ref}: rule "
                f"{condition.rule_id} — {condition.detail}. "
                f"{dashboard_url}/shipments/{shipment.shipment_id}"
            ),
            condition_at=condition.since,
            now=now,
        )
        outcome.raised.append((shipment.shipment_id, condition.rule_id))
        log.info(
            "live alarm",
            extra={
                "shipment": shipment.shipment_ref,
                "rule": condition.rule_id,
                "severity": condition.severity.value,
            },
        )


def _mark_delivered(conn: psycopg.Connection[Row], shipment_id: int, arrival: live.Arrival) -> bool:
    """Geofence arrival → delivered, audited; False if someone else recorded it first."""
    row = conn.execute(
        queries.MARK_DELIVERED, {"shipment_id": shipment_id, "at": arrival.at, "actor": "monitor"}
    ).fetchone()
    if row is None:
        return False
    audit.record(
        conn,
        actor="monitor",
        action="shipment.delivered",
        entity_type="shipment",
        entity_id=shipment_id,
        details={
            "via": "geofence",
            "device": arrival.device_id,
            "at": arrival.at.isoformat(),
            "distance_km": round(arrival.distance_km, 3),
            "radius_km": arrival.radius_km,
        },
    )
    return True
