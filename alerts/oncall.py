"""Who is on call: schedule resolution as pure functions of (schedule, instant).

A schedule has layers (rotations) and overrides. A layer hands off between its ordered
participants daily or weekly at a local time in its own time zone, and may be restricted
to hours of the day in that zone (follow-the-sun: one layer per region). An override
(person, start, end) beats every layer; among overlapping overrides the one listed last
wins. Among layers covering an instant, the one listed last wins (a higher layer lies on
top, as in PagerDuty). Inactive people are skipped in their turn: the next active
participant of the rotation covers. The database loaders live at the bottom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg

from alerts import oncall_queries as q
from core.clock import utc
from core.db import Row

Handoff = Literal["daily", "weekly"]
# How far ahead the next handoff is looked for: a weekly rotation hands off within 7 days;
# overrides further out than this are reported when they come nearer.
LOOKAHEAD_DAYS = 35


@dataclass(frozen=True, slots=True)
class Person:
    person_id: str
    name: str
    phone_e164: str
    time_zone: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class Layer:
    """One rotation: ``participants[0]`` takes the shift starting ``start`` at ``handoff_at``."""

    name: str
    participants: tuple[str, ...]
    handoff: Handoff
    handoff_at: time
    start: date
    time_zone: str
    hours: tuple[time, time] | None = None  # (from, to) local; to <= from wraps midnight


@dataclass(frozen=True, slots=True)
class Override:
    person_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Schedule:
    schedule_id: str
    name: str
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...]
    people: Mapping[str, Person]


@dataclass(frozen=True, slots=True)
class OnCallNow:
    """One schedule's current person, the next handoff and who takes over then."""

    schedule_id: str
    schedule_name: str
    current: Person | None
    next_handoff_at: datetime | None
    next_person: Person | None


def _in_hours(local: datetime, hours: tuple[time, time] | None) -> bool:
    if hours is None:
        return True
    start, end = hours
    clock = local.time().replace(tzinfo=None)
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end  # wraps midnight (or 24 h when start == end)


def shift_index(layer: Layer, at: datetime) -> int:
    """How many handoffs lie between the layer's start and ``at`` (negative before it)."""
    local = utc(at).astimezone(ZoneInfo(layer.time_zone))
    days = (local.date() - layer.start).days
    if local.time().replace(tzinfo=None) < layer.handoff_at:
        days -= 1  # before today's handoff the previous shift still runs
    return days // (7 if layer.handoff == "weekly" else 1)


def layer_person(layer: Layer, people: Mapping[str, Person], at: datetime) -> Person | None:
    """Who the layer puts on call at ``at``, or None outside its hours or with nobody active."""
    if not layer.participants:
        return None
    if not _in_hours(utc(at).astimezone(ZoneInfo(layer.time_zone)), layer.hours):
        return None
    count = len(layer.participants)
    turn = shift_index(layer, at) % count
    for offset in range(count):
        person = people.get(layer.participants[(turn + offset) % count])
        if person is not None and person.active:
            return person
    return None


def who_is_on_call(schedule: Schedule, at: datetime) -> Person | None:
    """The person on call for ``schedule`` at the instant ``at``; None when nobody is."""
    at = utc(at)
    for override in reversed(schedule.overrides):
        if override.starts_at <= at < override.ends_at:
            person = schedule.people.get(override.person_id)
            if person is not None and person.active:
                return person
    for layer in reversed(schedule.layers):
        person = layer_person(layer, schedule.people, at)
        if person is not None:
            return person
    return None


def _boundaries(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """Every instant in (after, until] at which the answer may change."""
    found: set[datetime] = set()
    for override in schedule.overrides:
        found.update((override.starts_at, override.ends_at))
    for layer in schedule.layers:
        zone = ZoneInfo(layer.time_zone)
        day = after.astimezone(zone).date() - timedelta(days=1)
        last = until.astimezone(zone).date() + timedelta(days=1)
        local_times = [layer.handoff_at, *(layer.hours or ())]
        while day <= last:
            for clock in local_times:
                found.add(utc(datetime.combine(day, clock, tzinfo=zone)))
            day += timedelta(days=1)
    return sorted(t for t in found if after < t <= until)


def next_handoff(
    schedule: Schedule, at: datetime, lookahead: timedelta = timedelta(days=LOOKAHEAD_DAYS)
) -> tuple[datetime, Person | None] | None:
    """The first instant after ``at`` when someone else is on call, and who that is."""
    at = utc(at)
    current = who_is_on_call(schedule, at)
    for boundary in _boundaries(schedule, at, at + lookahead):
        person = who_is_on_call(schedule, boundary)
        if person != current:
            return boundary, person
    return None


def now_and_next(schedule: Schedule, at: datetime) -> OnCallNow:
    upcoming = next_handoff(schedule, at)
    return OnCallNow(
        schedule_id=schedule.schedule_id,
        schedule_name=schedule.name,
        current=who_is_on_call(schedule, at),
        next_handoff_at=None if upcoming is None else upcoming[0],
        next_person=None if upcoming is None else upcoming[1],
    )


# --- database loaders --------------------------------------------------------------


def layer_from_json(doc: Mapping[str, Any]) -> Layer:
    """A layer as stored in ``oncall_schedules.layers`` (written by alerts.oncall_config)."""
    hours = doc.get("hours")
    return Layer(
        name=str(doc["name"]),
        participants=tuple(str(p) for p in doc["participants"]),
        handoff="weekly" if doc["handoff"] == "weekly" else "daily",
        handoff_at=time.fromisoformat(doc["handoff_at"]),
        start=date.fromisoformat(doc["start"]),
        time_zone=str(doc["time_zone"]),
        hours=None
        if not hours
        else (time.fromisoformat(hours["from"]), time.fromisoformat(hours["to"])),
    )


def load_people(conn: psycopg.Connection[Row]) -> dict[str, Person]:
    return {row["person_id"]: Person(**row) for row in conn.execute(q.PEOPLE).fetchall()}


def load_schedules(
    conn: psycopg.Connection[Row],
    people: Mapping[str, Person] | None = None,
    schedule_ids: Sequence[str] | None = None,
) -> dict[str, Schedule]:
    """Schedules with their layers and overrides, keyed by id, in configured order."""
    everyone = load_people(conn) if people is None else people
    ids = None if schedule_ids is None else list(schedule_ids)
    overrides: dict[str, list[Override]] = {}
    for row in conn.execute(q.OVERRIDES, {"ids": ids}).fetchall():
        overrides.setdefault(row["schedule_id"], []).append(
            Override(row["person_id"], row["starts_at"], row["ends_at"])
        )
    return {
        row["schedule_id"]: Schedule(
            schedule_id=row["schedule_id"],
            name=row["name"],
            layers=tuple(layer_from_json(doc) for doc in row["layers"]),
            overrides=tuple(overrides.get(row["schedule_id"], ())),
            people=everyone,
        )
        for row in conn.execute(q.SCHEDULES, {"ids": ids}).fetchall()
    }


def oncall_now_and_next(conn: psycopg.Connection[Row], at: datetime) -> list[OnCallNow]:
    """Per schedule, in configured order: who is on call at ``at``, the next handoff, who next."""
    return [now_and_next(schedule, at) for schedule in load_schedules(conn).values()]
