"""Scenario events: named, composable things that go wrong with a shipment or its logger.

Every event has a ``type`` and most a time, ``at_min`` (minutes after the scenario start,
true time). Events change one of three things, and any number of them combine:

- the journey: ``tarmac_delay``, ``customs_delay`` (a hold is inserted and every later leg
  moves), ``route_deviation`` (positions leave the road), ``wrong_delivery``;
- the payload: ``refrigerant_exhaustion``, ``over_conditioned``, ``door_open``;
- the logger and what it publishes: ``offline`` (then a store-and-forward batch),
  ``duplicate_resend``, ``clock_reset``, ``clock_skew``, ``sensor_error``,
  ``battery_drain``, ``malformed``, ``reboot`` ((0,0) GPS and a restarted counter).

What each does to the output is written beside it and in docs/simulators.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulators.routes import Route, insert_hold, offset_point, redirect_delivery


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RefrigerantExhaustion(_Event):
    """The gel packs are spent at ``at_min``: the payload drifts to ambient (insulation τ)."""

    type: Literal["refrigerant_exhaustion"]
    at_min: float = Field(ge=0)


class OverConditioned(_Event):
    """Packs colder than conditioned hold the payload at ``setpoint_c`` (a freeze risk)."""

    type: Literal["over_conditioned"]
    at_min: float = Field(ge=0)
    setpoint_c: float = -3.0
    duration_min: float | None = Field(None, gt=0)  # None: until the end


class DoorOpen(_Event):
    """Lid or door open: the probe sees ambient air; status ``door_open``, light rises."""

    type: Literal["door_open"]
    at_min: float = Field(ge=0)
    duration_min: float = Field(10, gt=0)


class TarmacDelay(_Event):
    """A hold on the ramp in the sun; default: just before the first flight."""

    type: Literal["tarmac_delay"]
    at_min: float | None = Field(None, ge=0)
    duration_min: float = Field(gt=0)
    ambient_c: float | None = None  # default: the airport's tarmac temperature


class CustomsDelay(_Event):
    """Longer customs clearance in a warm warehouse; default: at the end of customs."""

    type: Literal["customs_delay"]
    at_min: float | None = Field(None, ge=0)
    duration_min: float = Field(gt=0)
    ambient_c: float | None = None  # default: the customs leg's ambient


class RouteDeviation(_Event):
    """The vehicle leaves its road by up to ``offset_km`` and comes back."""

    type: Literal["route_deviation"]
    at_min: float = Field(ge=0)
    duration_min: float = Field(gt=0)
    offset_km: float = Field(25.0, gt=0)


class WrongDelivery(_Event):
    """The last mile ends ``offset_km`` from the hospital: the parcel sits at a wrong address."""

    type: Literal["wrong_delivery"]
    offset_km: float = Field(8.0, gt=0)
    bearing_deg: float = 90.0


class Offline(_Event):
    """No connection for a while; the logger keeps recording and uploads a batch after."""

    type: Literal["offline"]
    at_min: float = Field(ge=0)
    duration_min: float = Field(gt=0)


class DuplicateResend(_Event):
    """At-least-once delivery: every message in the window is sent again, byte for byte."""

    type: Literal["duplicate_resend"]
    at_min: float = Field(ge=0)
    duration_min: float = Field(60, gt=0)
    copies: int = Field(1, ge=1, le=5)


class ClockReset(_Event):
    """The clock jumps back ``back_min``: new readings reuse stamps already sent, with other
    values (conflicting duplicates). Must be a multiple of the interval to collide exactly."""

    type: Literal["clock_reset"]
    at_min: float = Field(ge=0)
    back_min: float = Field(gt=0)


class ClockSkew(_Event):
    """From ``at_min`` the clock is off by ``offset_s`` and drifts ``drift_s_per_day``."""

    type: Literal["clock_skew"]
    at_min: float = Field(0, ge=0)
    offset_s: float = 0.0
    drift_s_per_day: float = 0.0


class SensorError(_Event):
    """The probe fails: ``temp_c`` null with status ``sensor_error``."""

    type: Literal["sensor_error"]
    at_min: float = Field(ge=0)
    duration_min: float = Field(gt=0)


class BatteryDrain(_Event):
    """The battery falls from its level at ``at_min`` to empty ``empty_after_min`` later;
    below 10 % the status is ``low_battery``; when empty the logger goes silent for good."""

    type: Literal["battery_drain"]
    at_min: float = Field(ge=0)
    empty_after_min: float = Field(gt=0)


MalformedKind = Literal[
    "truncated", "json_array", "missing_temp", "naive_ts", "implausible_temp",
    "wrong_device", "empty_batch",
]  # fmt: skip
MALFORMED_KINDS: tuple[MalformedKind, ...] = (
    "truncated", "json_array", "missing_temp", "naive_ts", "implausible_temp",
    "wrong_device", "empty_batch",
)  # fmt: skip


class Malformed(_Event):
    """Corrupt messages beside the real reading at ``at_min``; ingest must refuse them."""

    type: Literal["malformed"]
    at_min: float = Field(ge=0)
    kinds: tuple[MalformedKind, ...] = Field(MALFORMED_KINDS, min_length=1)


class Reboot(_Event):
    """The logger restarts: its counter starts again at 0 and GPS reports (0, 0) until it
    has a fix again."""

    type: Literal["reboot"]
    at_min: float = Field(ge=0)
    zero_fix_min: float = Field(15, ge=0)


Event = Annotated[
    RefrigerantExhaustion
    | OverConditioned
    | DoorOpen
    | TarmacDelay
    | CustomsDelay
    | RouteDeviation
    | WrongDelivery
    | Offline
    | DuplicateResend
    | ClockReset
    | ClockSkew
    | SensorError
    | BatteryDrain
    | Malformed
    | Reboot,
    Field(discriminator="type"),
]
EVENT_TYPES: tuple[str, ...] = (
    "refrigerant_exhaustion", "over_conditioned", "door_open", "tarmac_delay",
    "customs_delay", "route_deviation", "wrong_delivery", "offline", "duplicate_resend",
    "clock_reset", "clock_skew", "sensor_error", "battery_drain", "malformed", "reboot",
)  # fmt: skip


def apply_journey_events(route: Route, events: list[Event]) -> Route:
    """The route with the journey's delays and a wrong delivery address applied."""
    for event in sorted(
        (e for e in events if isinstance(e, TarmacDelay | CustomsDelay)),
        key=lambda e: (e.at_min is None, e.at_min or 0.0),
    ):
        if isinstance(event, TarmacDelay):
            flight = route.first("air")
            at = (
                event.at_min
                if event.at_min is not None
                else (flight.start_min if flight else route.delivered_at_min)
            )
            leg = route.leg_at(at)
            ambient = event.ambient_c
            if ambient is None:
                tarmac = route.first("tarmac")
                ambient = tarmac.ambient_c if tarmac else leg.ambient_c
            route = insert_hold(route, at, event.duration_min, "tarmac", ambient)
        else:
            customs = route.first("customs")
            at = (
                event.at_min
                if event.at_min is not None
                else (customs.end_min if customs else route.delivered_at_min)
            )
            ambient = event.ambient_c
            if ambient is None:
                ambient = customs.ambient_c if customs else route.leg_at(at).ambient_c
            route = insert_hold(route, at, event.duration_min, "customs", ambient)
    for wrong in (e for e in events if isinstance(e, WrongDelivery)):
        final = route.legs[-1].to
        route = redirect_delivery(route, offset_point(final, wrong.bearing_deg, wrong.offset_km))
    return route


def active(event: _Event, minute: float, duration_min: float | None) -> bool:
    """Whether an event that starts at ``at_min`` and lasts ``duration_min`` covers minute."""
    start = getattr(event, "at_min", None)
    if start is None or minute < start:
        return False
    return duration_min is None or minute < start + duration_min
