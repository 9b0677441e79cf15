"""The on-call configuration document: people, schedules, escalation policies, routing.

One document (YAML from ``coldchain oncall import``, JSON from ``PUT /api/v1/oncall``) is
validated whole with pydantic, cross references included, and replaces the stored
configuration in one transaction, audited. Importing the same document again changes
nothing (and says so). docs/alerts.md shows the format.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
import yaml
from psycopg.types.json import Jsonb
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from alerts import oncall_queries as q
from core import audit
from core.db import Row
from core.severity import Severity

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Channel = Literal["sms", "voice"]


class ConfigError(ValueError):
    """An on-call document that cannot be used; the message names the file and field."""


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonDoc(_Strict):
    id: Slug
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(pattern=r"^\+[1-9]\d{6,14}$", description="E.164, e.g. +15555550101")
    time_zone: str
    active: bool = True

    _check_zone = field_validator("time_zone")(_zone)


class HoursDoc(_Strict):
    from_: time = Field(alias="from")
    to: time


class LayerDoc(_Strict):
    name: str = Field(min_length=1, max_length=100)
    participants: list[str] = Field(min_length=1)
    handoff: Literal["daily", "weekly"]
    handoff_at: time
    start: date
    time_zone: str
    hours: HoursDoc | None = None

    _check_zone = field_validator("time_zone")(_zone)


class OverrideDoc(_Strict):
    person: str
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> OverrideDoc:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ScheduleDoc(_Strict):
    id: Slug
    name: str = Field(min_length=1, max_length=200)
    layers: list[LayerDoc] = Field(min_length=1)
    overrides: list[OverrideDoc] = []


class TargetDoc(_Strict):
    person: str | None = None
    schedule: str | None = None

    @model_validator(mode="after")
    def _one(self) -> TargetDoc:
        if (self.person is None) == (self.schedule is None):
            raise ValueError("name exactly one of person or schedule")
        return self


class StepDoc(_Strict):
    notify: list[TargetDoc] = Field(min_length=1)
    via: list[Channel] = Field(min_length=1)
    wait_min: int = Field(ge=1, le=1440)


class PolicyDoc(_Strict):
    id: Slug
    name: str = Field(min_length=1, max_length=200)
    steps: list[StepDoc] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=20)
    ack_timeout_min: int | None = Field(None, ge=1, le=10080)
    group_window_s: int = Field(60, ge=0, le=3600)


class RouteDoc(_Strict):
    policy: str
    severity: list[Severity] | None = None
    lane: str | None = Field(None, min_length=1)
    customer: str | None = Field(None, min_length=1)


class OnCallDoc(_Strict):
    people: list[PersonDoc] = []
    schedules: list[ScheduleDoc] = []
    policies: list[PolicyDoc] = []
    routing: list[RouteDoc] = []

    @model_validator(mode="after")
    def _references(self) -> OnCallDoc:
        people = _unique("people", [p.id for p in self.people])
        schedules = _unique("schedules", [s.id for s in self.schedules])
        policies = _unique("policies", [p.id for p in self.policies])
        for i, schedule in enumerate(self.schedules):
            for j, layer in enumerate(schedule.layers):
                for k, who in enumerate(layer.participants):
                    _known(who, people, f"schedules.{i}.layers.{j}.participants.{k}", "person")
            for j, override in enumerate(schedule.overrides):
                _known(override.person, people, f"schedules.{i}.overrides.{j}.person", "person")
        for i, policy in enumerate(self.policies):
            for j, step in enumerate(policy.steps):
                for k, target in enumerate(step.notify):
                    where = f"policies.{i}.steps.{j}.notify.{k}"
                    if target.person is not None:
                        _known(target.person, people, f"{where}.person", "person")
                    if target.schedule is not None:
                        _known(target.schedule, schedules, f"{where}.schedule", "schedule")
        for i, route in enumerate(self.routing):
            _known(route.policy, policies, f"routing.{i}.policy", "policy")
        if self.policies and not any(
            r.severity is None and r.lane is None and r.customer is None for r in self.routing
        ):
            raise ValueError("routing needs a default route (a route with only a policy)")
        return self


def _unique(section: str, ids: list[str]) -> set[str]:
    seen: set[str] = set()
    for i, value in enumerate(ids):
        if value in seen:
            raise ValueError(f"{section}.{i}.id: duplicate id {value!r}")
        seen.add(value)
    return seen


def _known(value: str, known: set[str], where: str, kind: str) -> None:
    if value not in known:
        raise ValueError(f"{where}: unknown {kind} {value!r}")


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid on-call configuration"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse(document: Any, source: str) -> OnCallDoc:
    """Validate a parsed document; ConfigError lists every problem with its field path."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the document must be a mapping with people, schedules, ...")
    try:
        return OnCallDoc.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc


def load_file(path: Path) -> OnCallDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse(document, str(path))


def _layer_json(layer: LayerDoc) -> dict[str, Any]:
    hours = layer.hours
    return {
        "name": layer.name,
        "participants": layer.participants,
        "handoff": layer.handoff,
        "handoff_at": layer.handoff_at.isoformat(),
        "start": layer.start.isoformat(),
        "time_zone": layer.time_zone,
        "hours": None
        if hours is None
        else {"from": hours.from_.isoformat(), "to": hours.to.isoformat()},
    }


def _step_json(step: StepDoc) -> dict[str, Any]:
    return step.model_dump(mode="json", exclude_none=True)


def export(conn: psycopg.Connection[Row]) -> dict[str, Any]:
    """The stored configuration as a document that ``parse`` accepts (JSON-ready)."""
    overrides: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(q.OVERRIDES_ALL).fetchall():
        overrides.setdefault(row["schedule_id"], []).append(
            {
                "person": row["person_id"],
                "start": _iso(row["starts_at"]),
                "end": _iso(row["ends_at"]),
            }
        )
    return {
        "people": [
            {
                "id": r["person_id"],
                "name": r["name"],
                "phone": r["phone_e164"],
                "time_zone": r["time_zone"],
                "active": r["active"],
            }
            for r in conn.execute(q.PEOPLE).fetchall()
        ],
        "schedules": [
            {
                "id": r["schedule_id"],
                "name": r["name"],
                "layers": [
                    {k: v for k, v in layer.items() if v is not None} for layer in r["layers"]
                ],
                "overrides": overrides.get(r["schedule_id"], []),
            }
            for r in conn.execute(q.SCHEDULES_ALL).fetchall()
        ],
        "policies": [
            {
                "id": r["policy_id"],
                "name": r["name"],
                "steps": r["steps"],
                "repeat": r["repeat"],
                "ack_timeout_min": r["ack_timeout_min"],
                "group_window_s": r["group_window_s"],
            }
            for r in conn.execute(q.POLICIES).fetchall()
        ],
        "routing": [
            {
                "policy": r["policy_id"],
                **({"severity": r["severities"]} if r["severities"] else {}),
                **({"lane": r["lane"]} if r["lane"] else {}),
                **({"customer": r["customer"]} if r["customer"] else {}),
            }
            for r in conn.execute(q.ROUTES).fetchall()
        ],
    }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def fingerprint(document: dict[str, Any]) -> str:
    """A hash of the normalised configuration: equal documents, equal fingerprints."""
    normal = parse(document, "stored configuration").model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()


def apply(
    conn: psycopg.Connection[Row], doc: OnCallDoc, *, actor: str, source: str, now: datetime
) -> bool:
    """Replace the stored configuration with ``doc``; False when it was already the same."""
    with conn.transaction():
        # One importer at a time: two concurrent replaces would interleave their deletes.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('oncall_config'))")
        before = fingerprint(export(conn))
        after = fingerprint(doc.model_dump(mode="json", by_alias=True))
        if before == after:
            audit.record(
                conn,
                actor=actor,
                action="oncall.imported",
                entity_type="oncall_config",
                entity_id="oncall",
                details={"source": source, "changed": False, "fingerprint": after},
            )
            return False
        _replace(conn, doc, now)
        audit.record(
            conn,
            actor=actor,
            action="oncall.imported",
            entity_type="oncall_config",
            entity_id="oncall",
            details={
                "source": source,
                "changed": True,
                "fingerprint": after,
                "previous_fingerprint": before,
                "people": len(doc.people),
                "schedules": len(doc.schedules),
                "policies": len(doc.policies),
                "routes": len(doc.routing),
            },
        )
    return True


def _replace(conn: psycopg.Connection[Row], doc: OnCallDoc, now: datetime) -> None:
    conn.execute(q.DELETE_ROUTES)
    conn.execute(q.DELETE_OVERRIDES)
    conn.execute(q.DELETE_POLICIES_EXCEPT, ([p.id for p in doc.policies],))
    conn.execute(q.DELETE_SCHEDULES_EXCEPT, ([s.id for s in doc.schedules],))
    conn.execute(q.DELETE_PEOPLE_EXCEPT, ([p.id for p in doc.people],))
    for position, person in enumerate(doc.people):
        conn.execute(
            q.UPSERT_PERSON,
            {
                "person_id": person.id,
                "name": person.name,
                "phone_e164": person.phone,
                "time_zone": person.time_zone,
                "active": person.active,
                "position": position,
                "now": now,
            },
        )
    for position, schedule in enumerate(doc.schedules):
        conn.execute(
            q.UPSERT_SCHEDULE,
            {
                "schedule_id": schedule.id,
                "name": schedule.name,
                "layers": Jsonb([_layer_json(layer) for layer in schedule.layers]),
                "position": position,
                "now": now,
            },
        )
        for override in schedule.overrides:
            conn.execute(
                q.INSERT_OVERRIDE,
                {
                    "schedule_id": schedule.id,
                    "person_id": override.person,
                    "starts_at": override.start,
                    "ends_at": override.end,
                },
            )
    for position, policy in enumerate(doc.policies):
        conn.execute(
            q.UPSERT_POLICY,
            {
                "policy_id": policy.id,
                "name": policy.name,
                "steps": Jsonb([_step_json(step) for step in policy.steps]),
                "repeat": policy.repeat,
                "ack_timeout_min": policy.ack_timeout_min,
                "group_window_s": policy.group_window_s,
                "position": position,
                "now": now,
            },
        )
    for position, route in enumerate(doc.routing):
        conn.execute(
            q.INSERT_ROUTE,
            {
                "position": position,
                "policy_id": route.policy,
                "severities": None if route.severity is None else [s.value for s in route.severity],
                "lane": route.lane,
                "customer": route.customer,
            },
        )
