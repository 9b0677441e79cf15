"""Deterministic reading generation: same scenario and seed give identical readings."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.clock import isoformat_utc
from simulators.scenario import Scenario, ShipmentPlan


@dataclass(frozen=True, slots=True)
class SimulatedReading:
    plan: ShipmentPlan
    ts: datetime
    payload: dict[str, Any]


def _setpoint_at(plan: ShipmentPlan, minute: float) -> float:
    target = plan.package.setpoint_c
    for event in sorted(plan.events, key=lambda e: e.at_min):
        if event.at_min > minute:
            break
        if event.type == "refrigerant_exhaustion":
            target = plan.package.ambient_c
        elif event.type == "over_conditioned":
            target = event.setpoint_c if event.setpoint_c is not None else -3.0
    return target


def device_readings(
    scenario: Scenario, plan: ShipmentPlan, start: datetime, seed: int
) -> Iterator[SimulatedReading]:
    """Readings of one logger, every ``interval_min``, over the scenario's duration."""
    rng = random.Random(f"{seed}:{plan.device}")
    steps = int(scenario.duration_h * 60 // scenario.interval_min)
    temp = plan.package.start_c
    battery = 100.0
    for step in range(steps + 1):
        minute = step * scenario.interval_min
        if step:
            target = _setpoint_at(plan, minute)
            temp = target + (temp - target) * math.exp(
                -scenario.interval_min / plan.package.tau_min
            )
        progress = minute / (scenario.duration_h * 60)
        lat = plan.origin.lat + (plan.destination.lat - plan.origin.lat) * progress
        lon = plan.origin.lon + (plan.destination.lon - plan.origin.lon) * progress
        battery = max(0.0, battery - 0.01 * scenario.interval_min)
        ts = start + timedelta(minutes=minute)
        payload = {
            "device_id": plan.device,
            "ts": isoformat_utc(ts),
            "seq": step,
            "temp_c": round(temp + rng.gauss(0, plan.package.noise_c), 2),
            "lat": round(lat, 5),
            "lon": round(lon, 5),
            "battery_pct": round(battery, 1),
            "status": "ok",
        }
        yield SimulatedReading(plan, ts, payload)


def fleet_readings(
    scenario: Scenario, plans: list[ShipmentPlan], start: datetime, seed: int
) -> list[SimulatedReading]:
    """Every logger's readings, in device-time order (ties by device id)."""
    readings = [r for plan in plans for r in device_readings(scenario, plan, start, seed)]
    readings.sort(key=lambda r: (r.ts, r.plan.device))
    return readings


def topic_for(prefix: str, plan: ShipmentPlan) -> str:
    return f"{prefix}/{plan.carrier}/{plan.device}/telemetry"
