"""Live conditions beyond temperature, as pure functions of (state, now).

The monitor's sweep loads each in-transit shipment with its loggers' latest state
(``device_latest``) and asks this module what should be true: which live alerts are open,
whether the shipment has arrived. Alarms are separate rule ids so that they never merge
with (and never silence) a temperature alert (DESIGN.md §7). docs/operations.md,
"Monitor alarms beyond temperature", lists them for operators.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.severity import Severity
from monitor.profiles import Rule
from monitor.route import distance_to_route_km

LOGGER_OFFLINE = "logger-offline"
BATTERY_LOW = "battery-low"
DELIVERY_DELAYED = "delivery-delayed"
ROUTE_DEVIATION = "route-deviation"
LIVE_RULES: tuple[str, ...] = (LOGGER_OFFLINE, BATTERY_LOW, DELIVERY_DELAYED, ROUTE_DEVIATION)

# A logger is offline after this many missed reporting intervals, by wall clock. Three
# tolerates one lost message and a slow batch; store-and-forward loggers (flights, customs)
# go quiet for hours and are meant to raise it: someone should know the feed is dark.
OFFLINE_INTERVALS = 3
# Loggers commonly flag low battery at 20 % and are near shutdown at 5 %.
BATTERY_LOW_PCT = 20.0
BATTERY_CRITICAL_PCT = 5.0
# Default arrival geofence around the destination (shipments.arrival_radius_km overrides).
ARRIVAL_RADIUS_KM = 2.0
EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius


@dataclass(frozen=True, slots=True)
class LoggerState:
    """One logger currently assigned to a shipment; ``last_*`` are None if it never reported."""

    device_id: str
    interval_min: int
    last_ts: datetime | None = None
    last_recv_ts: datetime | None = None
    battery_pct: float | None = None
    lat: float | None = None
    lon: float | None = None
    position_ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class LiveShipment:
    shipment_id: int
    shipment_ref: str
    status: str
    departed_at: datetime | None
    expected_delivery_at: datetime | None
    destination_lat: float | None
    destination_lon: float | None
    arrival_radius_km: float | None
    loggers: tuple[LoggerState, ...] = ()
    origin_lat: float | None = None
    origin_lon: float | None = None
    # Planned route: origin → waypoints → destination; watched only with a corridor.
    route_waypoints: tuple[tuple[float, float], ...] = ()
    route_corridor_km: float | None = None

    def planned_route(self) -> tuple[tuple[float, float], ...]:
        points = [
            (self.origin_lat, self.origin_lon),
            *self.route_waypoints,
            (self.destination_lat, self.destination_lon),
        ]
        return tuple((lat, lon) for lat, lon in points if lat is not None and lon is not None)


@dataclass(frozen=True, slots=True)
class Condition:
    """A live alarm that holds now: what to open (or upgrade) for the shipment."""

    rule_id: str
    severity: Severity
    since: datetime
    detail: str  # no patient data: device ids, times, numbers


@dataclass(frozen=True, slots=True)
class Arrival:
    device_id: str
    at: datetime  # device time of the fix inside the geofence
    distance_km: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class OpenAlert:
    alert_id: int
    rule_id: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class LivePlan:
    """What the sweep must change for one shipment; empty when nothing changed."""

    arrival: Arrival | None
    raise_: tuple[Condition, ...]
    resolve: tuple[tuple[OpenAlert, str], ...]  # (alert, note)

    @property
    def empty(self) -> bool:
        return self.arrival is None and not self.raise_ and not self.resolve


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two WGS-84 points (spherical Earth)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def battery_severity(battery_pct: float | None) -> Severity | None:
    if battery_pct is None or battery_pct > BATTERY_LOW_PCT:
        return None
    return Severity.MEDIUM if battery_pct <= BATTERY_CRITICAL_PCT else Severity.LOW


def silent_loggers(loggers: Iterable[LoggerState], now: datetime) -> list[LoggerState]:
    """Loggers not heard from (wall clock) for OFFLINE_INTERVALS × their interval.

    A logger that never reported has no last receipt to measure from and is not judged.
    """
    return [
        logger
        for logger in loggers
        if logger.last_recv_ts is not None
        and now - logger.last_recv_ts >= timedelta(minutes=OFFLINE_INTERVALS * logger.interval_min)
    ]


def logger_offline(shipment: LiveShipment, now: datetime) -> Condition | None:
    silent = silent_loggers(shipment.loggers, now)
    if not silent:
        return None
    first = min(silent, key=lambda logger: logger.last_recv_ts or now)
    assert first.last_recv_ts is not None
    minutes = round((now - first.last_recv_ts).total_seconds() / 60)
    names = ", ".join(logger.device_id for logger in silent)
    return Condition(
        LOGGER_OFFLINE,
        Severity.MEDIUM,
        first.last_recv_ts,
        f"no data from {names} for {minutes} min (reports every {first.interval_min} min)",
    )


def battery_low(shipment: LiveShipment, now: datetime) -> Condition | None:
    low = [
        (severity, logger)
        for logger in shipment.loggers
        if (severity := battery_severity(logger.battery_pct)) is not None
    ]
    if not low:
        return None
    severity, weakest = max(low, key=lambda pair: (pair[0].rank, -(pair[1].battery_pct or 0)))
    return Condition(
        BATTERY_LOW,
        severity,
        weakest.last_ts or now,
        f"battery of {weakest.device_id} at {weakest.battery_pct:g} %",
    )


def delivery_delayed(shipment: LiveShipment, now: datetime) -> Condition | None:
    expected = shipment.expected_delivery_at
    if shipment.status != "in_transit" or expected is None or now <= expected:
        return None
    late_h = (now - expected).total_seconds() / 3600
    return Condition(
        DELIVERY_DELAYED,
        Severity.MEDIUM,
        expected,
        f"expected at {expected:%Y-%m-%d %H:%M}Z, {late_h:.1f} h late",
    )


def route_deviation(shipment: LiveShipment, now: datetime) -> Condition | None:
    """A current fix (since departure) farther than the corridor from the planned route."""
    corridor = shipment.route_corridor_km
    route = shipment.planned_route()
    if corridor is None or not route:
        return None
    outside = []
    for logger in shipment.loggers:
        if logger.lat is None or logger.lon is None or logger.position_ts is None:
            continue
        if shipment.departed_at is not None and logger.position_ts < shipment.departed_at:
            continue
        distance = distance_to_route_km((logger.lat, logger.lon), route)
        if distance > corridor:
            outside.append((distance, logger))
    if not outside:
        return None
    distance, farthest = max(outside, key=lambda pair: pair[0])
    assert farthest.position_ts is not None
    return Condition(
        ROUTE_DEVIATION,
        Severity.MEDIUM,
        farthest.position_ts,
        f"{farthest.device_id} is {distance:.0f} km from the planned route "
        f"(corridor {corridor:g} km) at {farthest.position_ts:%Y-%m-%d %H:%M}Z",
    )


def arrival(shipment: LiveShipment) -> Arrival | None:
    """The earliest current fix inside the destination geofence, if any logger has one.

    ``device_latest`` keeps only usable fixes (ingest drops (0,0) after reboots); a fix from
    before departure is stale and does not count.
    """
    if shipment.destination_lat is None or shipment.destination_lon is None:
        return None
    radius = shipment.arrival_radius_km or ARRIVAL_RADIUS_KM
    inside = []
    for logger in shipment.loggers:
        if logger.lat is None or logger.lon is None or logger.position_ts is None:
            continue
        if shipment.departed_at is not None and logger.position_ts < shipment.departed_at:
            continue
        distance = haversine_km(
            logger.lat, logger.lon, shipment.destination_lat, shipment.destination_lon
        )
        if distance <= radius:
            inside.append(Arrival(logger.device_id, logger.position_ts, distance, radius))
    return min(inside, key=lambda a: a.at) if inside else None


def plan_live(shipment: LiveShipment, open_alerts: Sequence[OpenAlert], now: datetime) -> LivePlan:
    """Decide arrival, alerts to open or upgrade, and alerts to resolve for one shipment.

    Live conditions are watched only while the shipment is in transit: once it is
    delivered (here or elsewhere) or cancelled, its open live alerts are resolved.
    """
    arrived = arrival(shipment) if shipment.status == "in_transit" else None
    watching = shipment.status == "in_transit" and arrived is None
    conditions: dict[str, Condition] = {}
    if watching:
        for check in (logger_offline, battery_low, delivery_delayed, route_deviation):
            condition = check(shipment, now)
            if condition is not None:
                conditions[condition.rule_id] = condition
    by_rule: Mapping[str, OpenAlert] = {a.rule_id: a for a in open_alerts}
    raise_ = tuple(
        c
        for rule_id, c in conditions.items()
        if rule_id not in by_rule or c.severity.rank > by_rule[rule_id].severity.rank
    )
    reason = (
        "shipment arrived at destination"
        if arrived is not None
        else f"shipment {shipment.status}"
        if not watching
        else "condition cleared"
    )
    resolve = tuple(
        (alert, _clear_note(alert.rule_id, reason))
        for alert in open_alerts
        if alert.rule_id in LIVE_RULES and alert.rule_id not in conditions
    )
    return LivePlan(arrived, raise_, resolve)


def _clear_note(rule_id: str, reason: str) -> str:
    if reason != "condition cleared":
        return reason
    return {
        LOGGER_OFFLINE: "logger reporting again",
        BATTERY_LOW: f"battery above {BATTERY_LOW_PCT:g} %",
        DELIVERY_DELAYED: "expected delivery time moved later",
        ROUTE_DEVIATION: "back within the route corridor",
    }[rule_id]


def single_run_cleared_at(
    rule: Rule,
    alarm_start: datetime,
    seen_through: datetime | None,
    readings: Iterable[tuple[datetime, float | None]],
) -> datetime | None:
    """When the run that alarmed ended with a reading back within the rule's threshold.

    None while the run is still open, after a gap without such a reading, for cumulative
    rules (they never reset), and when the run had already ended by the time the alarm
    was found (``seen_through``): an excursion discovered over is for a human to close.
    """
    if rule.mode != "single" or seen_through is None:
        return None
    for ts, temp_c in sorted(readings, key=lambda r: r[0]):
        if ts <= alarm_start or temp_c is None or math.isnan(temp_c):
            continue  # sensor errors are neither in nor out of range
        beyond = (
            temp_c > rule.threshold_c if rule.direction == "above" else temp_c < rule.threshold_c
        )
        if not beyond:
            return ts if ts > seen_through else None
    return None
