"""Scenario files (YAML): shipments, their loggers and the events that befall them."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ScenarioError(ValueError):
    """A scenario is missing or invalid; the message names file, field and reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Place(_Strict):
    name: str
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    tz: str = "UTC"


class Package(_Strict):
    """First-order thermal model of a passive shipper."""

    start_c: float
    setpoint_c: float  # what the refrigerant holds the payload at while it lasts
    ambient_c: float  # what the payload drifts to once the refrigerant is spent
    tau_min: float = Field(gt=0)  # time constant of the drift
    noise_c: float = Field(0.05, ge=0)


class Event(_Strict):
    type: Literal["refrigerant_exhaustion", "over_conditioned"]
    at_min: float = Field(ge=0)
    # over_conditioned: the temperature the frozen packs pull the payload to.
    setpoint_c: float | None = None


class ShipmentPlan(_Strict):
    ref: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{2,40}$")
    device: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$")
    carrier: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    profile: str
    lane: str
    origin: Place
    destination: Place
    package: Package
    events: list[Event] = Field(default_factory=list)


class Scenario(_Strict):
    name: str
    description: str
    seed: int = 1
    interval_min: float = Field(5, gt=0)
    duration_h: float = Field(gt=0)
    start: datetime = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    shipments: list[ShipmentPlan] = Field(min_length=1)


def parse_scenario(text: str, origin: str) -> Scenario:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{origin}: not valid YAML ({exc})") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'scenario'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ScenarioError(f"{origin}: {problems}") from exc


@cache
def shipped_scenarios() -> dict[str, Scenario]:
    found = {}
    for entry in sorted(resources.files("simulators.scenarios").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            scenario = parse_scenario(entry.read_text(encoding="utf-8"), entry.name)
            found[scenario.name] = scenario
    return found


def load_scenario(name_or_file: str) -> Scenario:
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml"):
        try:
            return parse_scenario(path.read_text(encoding="utf-8"), name_or_file)
        except OSError as exc:
            raise ScenarioError(f"{name_or_file}: cannot read ({exc.strerror})") from exc
    scenario = shipped_scenarios().get(name_or_file)
    if scenario is None:
        known = ", ".join(sorted(shipped_scenarios()))
        raise ScenarioError(f"no scenario {name_or_file!r}; shipped scenarios: {known}")
    return scenario


def scale_fleet(scenario: Scenario, devices: int | None) -> list[ShipmentPlan]:
    """The scenario's shipments, cycled with numbered copies up to ``devices`` loggers."""
    plans = scenario.shipments
    if devices is None:
        return list(plans)
    if devices < 1:
        raise ScenarioError("--devices must be at least 1")
    fleet = []
    for i in range(devices):
        plan = plans[i % len(plans)]
        copy = i // len(plans)
        if copy == 0:
            fleet.append(plan)
        else:
            fleet.append(
                plan.model_copy(
                    update={"ref": f"{plan.ref}-{copy:03d}", "device": f"{plan.device}-{copy:03d}"}
                )
            )
    return fleet
