"""The live monitor: evaluate shipments whose readings changed, record what it finds.

Re-running is idempotent: excursions are keyed by (shipment, direction, start) and alarms
by (shipment, rule, start), so only an alarm never seen before opens or upgrades an alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from alerts.service import raise_alert
from core.clock import Clock
from core.db import Row
from monitor import queries
from monitor.evaluation import evaluate
from monitor.models import Alarm, Evaluation
from monitor.profiles import DrugProfile, catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShipmentOutcome:
    shipment_id: int
    verdict: str
    new_alarms: int


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


def evaluate_due(
    conn: psycopg.Connection[Row], clock: Clock, dashboard_url: str, limit: int = 20
) -> list[ShipmentOutcome]:
    """Evaluate up to ``limit`` shipments with new readings, in one transaction."""
    outcomes = []
    with conn.transaction():
        for shipment in conn.execute(queries.CLAIM_DUE_SHIPMENTS, {"limit": limit}).fetchall():
            outcomes.append(_evaluate_shipment(conn, shipment, clock.now(), dashboard_url))
    return outcomes


def _evaluate_shipment(
    conn: psycopg.Connection[Row], shipment: Row, now: datetime, dashboard_url: str
) -> ShipmentOutcome:
    profile = DrugProfile.model_validate(shipment["definition"])
    rows = conn.execute(queries.SHIPMENT_READINGS, (shipment["shipment_id"],)).fetchall()
    frame = pd.DataFrame(rows, columns=["ts", "temp_c"])
    result = evaluate(profile, frame)
    # Readings older than what was already evaluated reveal history late (store-and-forward).
    through = shipment["evaluated_through"]
    late = through is not None and shipment["evaluate_from"] < through
    _record_excursions(conn, shipment["shipment_id"], result, late, now)
    new_alarms = 0
    for alarm in result.alarms:
        if _record_alarm(conn, shipment, profile, alarm, late, now, dashboard_url):
            new_alarms += 1
    conn.execute(queries.MARK_EVALUATED, (now, result.end, shipment["shipment_id"]))
    return ShipmentOutcome(shipment["shipment_id"], result.verdict, new_alarms)


def _record_excursions(
    conn: psycopg.Connection[Row], shipment_id: int, result: Evaluation, late: bool, now: datetime
) -> None:
    for excursion in result.excursions:
        conn.execute(
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
        )


def _record_alarm(
    conn: psycopg.Connection[Row],
    shipment: Row,
    profile: DrugProfile,
    alarm: Alarm,
    late: bool,
    now: datetime,
    dashboard_url: str,
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
        },
    ).fetchone()
    if inserted is None:
        return False
    rule = next(r for r in profile.rules if r.id == alarm.rule)
    latest = conn.execute(queries.LATEST_TEMPERATURE, (shipment["shipment_id"],)).fetchone()
    current = "n/a" if latest is None else f"{latest['temp_c']:.1f} °C"
    # Duration on device time: from the start of the condition to the newest reading.
    newest = alarm.at if latest is None else max(latest["ts"], alarm.at)
    minutes = round((newest - alarm.start).total_seconds() / 60)
    word = "above" if rule.direction == "above" else "below"
    summary = (
        f"{rule.threshold_c:g} °C {word} threshold since "
        f"{alarm.start:%Y-%m-%d %H:%M}Z ({rule.mode}, {rule.for_min:g} min)"
    )
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
