"""One simulated data logger: what it measures along its route, and what it publishes.

Two stages. ``samples`` is the physical truth every ``interval_min``: where the shipment
is, which leg it is on, the payload temperature (integrated in 1-minute steps, so a short
door opening is not missed by a 15-minute logger). ``device_messages`` is what the logger
makes of it: its own clock (skew, resets), counter, battery, GPS quirks, sensor faults,
and the radio — live readings, store-and-forward batches after flights and dead zones,
resends and corrupt packets. Output is a sequence of messages (exact payload strings and
the true time each is sent), deterministic for a given scenario, logger and seed.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from core.clock import isoformat_utc
from simulators import faults as f
from simulators.routes import LegKind, Point, Route, bearing_deg, build_route, offset_point
from simulators.scenario import Scenario, ShipmentPlan
from simulators.thermal import PackageState, step

LOW_BATTERY_PCT = 10.0
BATTERY_DRAIN_PCT_PER_H = 0.25  # a cellular real-time logger lasts about 16 days
GPS_NOISE_DEG = 0.00005  # about 5 m
MessageKind = Literal["reading", "batch", "duplicate", "malformed"]


@dataclass(frozen=True, slots=True)
class SimulatedMessage:
    """One MQTT publication: the exact payload and the (true) time the logger sends it."""

    device: str
    carrier: str
    at: datetime
    payload: str
    kind: MessageKind
    readings: int  # readings it carries (0 for a malformed one)
    fault: str | None = None  # the scenario event that shaped it, if any

    @property
    def ts(self) -> datetime:
        return self.at

    @property
    def valid(self) -> bool:
        """False only for payloads the scenario corrupts on purpose (ingest must refuse)."""
        return self.kind != "malformed"


@dataclass(frozen=True, slots=True)
class Sample:
    """The physical truth at one logging instant."""

    minute: float
    leg: LegKind
    ambient_c: float
    temp_c: float  # payload temperature, before probe noise
    position: Point | None  # None: no GPS fix (in flight)
    door_open: bool
    refrigerant_left: float


def encode(payload: Any) -> str:
    """The exact text a logger publishes (compact JSON, stable key order)."""
    return json.dumps(payload, separators=(",", ":"))


def plan_route(plan: ShipmentPlan, seed: int) -> Route:
    rng = random.Random(f"{seed}:{plan.device}:route")
    route = build_route(plan.route_lane, rng, dict(plan.ambient_c))
    return f.apply_journey_events(route, plan.events)


def samples(scenario: Scenario, plan: ShipmentPlan, seed: int) -> Iterator[Sample]:
    """The payload's temperature and position every ``interval_min`` along the route."""
    route = plan_route(plan, seed)
    pack = plan.package()
    state = PackageState(pack.start_c)
    exhaustion = sorted(e.at_min for e in plan.events if isinstance(e, f.RefrigerantExhaustion))
    overs = [e for e in plan.events if isinstance(e, f.OverConditioned)]
    doors = [e for e in plan.events if isinstance(e, f.DoorOpen)]
    deviations = [e for e in plan.events if isinstance(e, f.RouteDeviation)]
    substep = min(1.0, scenario.interval_min)
    t = 0.0
    for n in range(scenario.steps + 1):
        minute = n * scenario.interval_min
        while True:
            if exhaustion and exhaustion[0] <= t:
                state.refrigerant_left = 0.0
                exhaustion.pop(0)
                continue
            if t >= minute:
                break
            dt = min(substep, minute - t, *(at - t for at in exhaustion[:1]))
            over = next((e for e in reversed(overs) if f.active(e, t, e.duration_min)), None)
            step(
                state,
                pack,
                route.leg_at(t).ambient_c,
                dt,
                refrigerant_c=over.setpoint_c if over else None,
                exposed=any(f.active(e, t, e.duration_min) for e in doors),
            )
            t += dt
        leg = route.leg_at(minute)
        position = None if leg.kind == "air" else leg.position(minute)
        for deviation in deviations:
            if position is not None and f.active(deviation, minute, deviation.duration_min):
                share = (minute - deviation.at_min) / deviation.duration_min
                heading = bearing_deg(leg.frm, leg.to) if leg.frm != leg.to else 0.0
                km = deviation.offset_km * math.sin(math.pi * share)
                position = offset_point(position, heading + 90.0, km)
        yield Sample(
            minute=minute,
            leg=leg.kind,
            ambient_c=leg.ambient_c,
            temp_c=state.temp_c,
            position=position,
            door_open=any(f.active(e, minute, e.duration_min) for e in doors),
            refrigerant_left=state.refrigerant_left,
        )


class _Logger:
    """The device's view: clock, counter, battery, sensors, GPS."""

    def __init__(self, plan: ShipmentPlan, start: datetime, seed: int) -> None:
        self.plan = plan
        self.start = start
        self.rng = random.Random(f"{seed}:{plan.device}")
        self.noise_c = plan.package().noise_c
        self.battery_start = round(self.rng.uniform(85.0, 100.0), 1)
        self.skews = [e for e in plan.events if isinstance(e, f.ClockSkew)]
        self.resets = [e for e in plan.events if isinstance(e, f.ClockReset)]
        self.drains = sorted(
            (e for e in plan.events if isinstance(e, f.BatteryDrain)), key=lambda e: e.at_min
        )
        self.sensor_errors = [e for e in plan.events if isinstance(e, f.SensorError)]
        self.reboots = [e for e in plan.events if isinstance(e, f.Reboot)]
        self.seq = 0

    def battery(self, minute: float) -> float:
        level = self.battery_start - BATTERY_DRAIN_PCT_PER_H * minute / 60.0
        for drain in self.drains:
            if minute >= drain.at_min:
                at_start = self.battery_start - BATTERY_DRAIN_PCT_PER_H * drain.at_min / 60.0
                left = 1.0 - (minute - drain.at_min) / drain.empty_after_min
                level = min(level, at_start * left)
        return max(0.0, level)

    def clock(self, minute: float) -> datetime:
        """The logger's own time: true time, skewed and reset; whole seconds."""
        shift_s = 0.0
        for skew in self.skews:
            if minute >= skew.at_min:
                shift_s += skew.offset_s + skew.drift_s_per_day * (minute - skew.at_min) / 1440.0
        for reset in self.resets:
            if minute >= reset.at_min:
                shift_s -= reset.back_min * 60.0
        return self.start + timedelta(minutes=minute, seconds=round(shift_s))

    def reading(self, sample: Sample, previous_minute: float) -> dict[str, Any]:
        minute = sample.minute
        if any(previous_minute < e.at_min <= minute for e in self.reboots):
            self.seq = 0
        # Draw every random number every time, so that adding an event changes only what
        # it is about, not the noise of every later reading.
        noise = self.rng.gauss(0.0, self.noise_c)
        gps = (self.rng.gauss(0.0, GPS_NOISE_DEG), self.rng.gauss(0.0, GPS_NOISE_DEG))
        rh = self.rng.gauss(0.0, 1.5)
        lux = self.rng.uniform(150.0, 800.0)
        bump = self.rng.random()
        shock = abs(self.rng.gauss(0.0, 1.0))
        battery = self.battery(minute)
        sensor_failed = any(f.active(e, minute, e.duration_min) for e in self.sensor_errors)
        no_fix = any(f.active(e, minute, e.zero_fix_min) for e in self.reboots)
        reading: dict[str, Any] = {
            "device_id": self.plan.device,
            "ts": isoformat_utc(self.clock(minute)),
            "seq": self.seq,
            "temp_c": None if sensor_failed else round(sample.temp_c + noise, 2),
            "rh_pct": round(min(100.0, max(0.0, (62.0 if sample.door_open else 45.0) + rh)), 1),
        }
        if no_fix:
            reading["lat"], reading["lon"] = 0.0, 0.0  # what many loggers send before a fix
        elif sample.position is not None:
            reading["lat"] = round(sample.position.lat + gps[0], 5)
            reading["lon"] = round(sample.position.lon + gps[1], 5)
        reading["battery_pct"] = round(battery, 1)
        reading["light_lux"] = round(lux, 1) if sample.door_open else 0.0
        reading["shock_g"] = round(_shock(sample.leg, bump, shock), 2)
        reading["status"] = (
            "sensor_error"
            if sensor_failed
            else "door_open"
            if sample.door_open
            else "low_battery"
            if battery < LOW_BATTERY_PCT
            else "ok"
        )
        self.seq += 1
        return reading


def _shock(leg: LegKind, bump: float, magnitude: float) -> float:
    """Peak acceleration since the last reading: road vibration, the odd drop in handling."""
    if leg in ("pickup", "hub", "tarmac", "customs") and bump < 0.05:
        return 1.5 + 4.0 * magnitude  # dropped or thrown during handling
    if leg in ("ground", "last_mile"):
        return 0.2 + (3.0 if bump < 0.02 else 0.3) * magnitude  # potholes
    if leg == "air":
        return 0.1 + 0.2 * magnitude  # turbulence
    return 0.02 * magnitude


def device_messages(
    scenario: Scenario, plan: ShipmentPlan, start: datetime, seed: int
) -> Iterator[SimulatedMessage]:
    """Everything one logger publishes, in the order it sends it."""
    logger = _Logger(plan, start, seed)
    flight_mode = plan.flight_mode or scenario.flight_mode
    offline = [e for e in plan.events if isinstance(e, f.Offline)]
    resends = [e for e in plan.events if isinstance(e, f.DuplicateResend)]
    corruptions = sorted(
        (e for e in plan.events if isinstance(e, f.Malformed)), key=lambda e: e.at_min
    )
    buffered: list[dict[str, Any]] = []
    buffered_because = ""
    pending_corrupt: list[f.Malformed] = []
    previous = -math.inf
    for sample in samples(scenario, plan, seed):
        minute = sample.minute
        if logger.battery(minute) <= 0.0:
            return  # flat battery: silent for good, and what it buffered is lost
        reading = logger.reading(sample, previous)
        while corruptions and corruptions[0].at_min <= minute:
            pending_corrupt.append(corruptions.pop(0))
        previous = minute
        at = start + timedelta(minutes=minute)
        radio_off = any(f.active(e, minute, e.duration_min) for e in offline)
        if radio_off or (flight_mode == "store_and_forward" and sample.leg == "air"):
            buffered_because = buffered_because or ("offline" if radio_off else "flight_mode")
            buffered.append(reading)
            continue
        batch: list[SimulatedMessage] = []
        for first in range(0, len(buffered), scenario.batch_max):
            chunk = [
                {k: v for k, v in r.items() if k != "device_id"}
                for r in buffered[first : first + scenario.batch_max]
            ]
            payload = encode({"device_id": plan.device, "readings": chunk})
            batch.append(
                SimulatedMessage(
                    plan.device, plan.carrier, at, payload, "batch", len(chunk), buffered_because
                )
            )
        buffered.clear()
        buffered_because = ""
        live = SimulatedMessage(
            plan.device, plan.carrier, at, encode(reading), "reading", 1, _shaped_by(reading)
        )
        copies = sum(e.copies for e in resends if f.active(e, minute, e.duration_min))
        for message in [*batch, live]:
            yield message
            for _ in range(copies):
                yield SimulatedMessage(
                    message.device,
                    message.carrier,
                    at,
                    message.payload,
                    "duplicate",
                    message.readings,
                    "duplicate_resend",
                )
        for event in pending_corrupt:
            for kind in event.kinds:
                yield SimulatedMessage(
                    plan.device, plan.carrier, at, corrupt(reading, kind), "malformed", 0, kind
                )
        pending_corrupt.clear()


def _shaped_by(reading: dict[str, Any]) -> str | None:
    status = reading["status"]
    if status != "ok":
        return str(status)
    if reading.get("lat") == 0.0 and reading.get("lon") == 0.0:
        return "reboot"
    return None


def corrupt(reading: dict[str, Any], kind: f.MalformedKind) -> str:
    """A payload the device protocol refuses, made from a real reading."""
    device = reading["device_id"]
    if kind == "truncated":
        text = encode(reading)
        return text[: len(text) // 2]  # the connection dropped mid-packet
    if kind == "json_array":
        return encode([reading])
    if kind == "missing_temp":
        return encode({k: v for k, v in reading.items() if k != "temp_c"})
    if kind == "naive_ts":
        return encode({**reading, "ts": str(reading["ts"]).removesuffix("Z")})
    if kind == "implausible_temp":
        return encode({**reading, "temp_c": 850.0})  # a corrupt ADC register
    if kind == "wrong_device":
        return encode({**reading, "device_id": f"{device}-GHOST"})
    return encode({"device_id": device, "readings": []})
