"""Scenario files (YAML): shipments, their lanes, packaging, loggers and what befalls them.

A scenario is data: which drug profile, which lane, which packaging, how often the logger
reports, which events happen when, and the seed. The same scenario and seed always give
byte-identical output. An invalid file is refused with its name, the line and the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulators.faults import ClockReset, Event
from simulators.routes import LANES, Lane, LegKind, Site
from simulators.thermal import PACKAGING, Packaging, customised

FlightMode = Literal["store_and_forward", "radio_on"]


class ScenarioError(ValueError):
    """A scenario is missing or invalid; the message names file, line, field and reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thermal(_Strict):
    """Overrides of the packaging's thermal defaults (simulators/thermal.py)."""

    start_c: float | None = None
    refrigerant_c: float | None = None
    hold_h: float | None = Field(None, gt=0)
    tau_min: float | None = Field(None, gt=0)
    coupling_tau_min: float | None = Field(None, gt=0)
    leak: float | None = Field(None, ge=0, le=1)
    noise_c: float | None = Field(None, ge=0)


class ShipmentPlan(_Strict):
    ref: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{2,40}$")
    device: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$")
    carrier: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    profile: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")  # drug profile (monitor/catalog)
    lane: str
    packaging: str = "passive-2-8"
    thermal: Thermal = Thermal()
    # Per leg kind, the surroundings' temperature instead of the defaults (routes.py).
    ambient_c: dict[LegKind, float] = Field(default_factory=dict)
    flight_mode: FlightMode | None = None  # default: the scenario's
    events: list[Event] = Field(default_factory=list)

    @field_validator("lane")
    @classmethod
    def _known_lane(cls, lane: str) -> str:
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}; lanes: {', '.join(LANES)}")
        return lane

    @field_validator("packaging")
    @classmethod
    def _known_packaging(cls, packaging: str) -> str:
        if packaging not in PACKAGING:
            raise ValueError(f"unknown packaging {packaging!r}; packagings: {', '.join(PACKAGING)}")
        return packaging

    @property
    def route_lane(self) -> Lane:
        return LANES[self.lane]

    @property
    def origin(self) -> Site:
        return LANES[self.lane].origin

    @property
    def destination(self) -> Site:
        return LANES[self.lane].destination

    def package(self) -> Packaging:
        return customised(PACKAGING[self.packaging], **self.thermal.model_dump())


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    seed: int = 1
    interval_min: float = Field(5, gt=0, le=1440)
    duration_h: float = Field(gt=0, le=24 * 60)
    start: datetime = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    flight_mode: FlightMode = "store_and_forward"
    batch_max: int = Field(500, ge=1, le=10_000)  # readings per store-and-forward message
    shipments: list[ShipmentPlan] = Field(min_length=1)

    @field_validator("start")
    @classmethod
    def _aware(cls, start: datetime) -> datetime:
        if start.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-01-05T08:00:00Z")
        return start.astimezone(UTC)

    @property
    def steps(self) -> int:
        """Readings per logger minus one: one at 0 and one every interval to the end."""
        return int(self.duration_h * 60 // self.interval_min)


def parse_scenario(text: str, origin: str) -> Scenario:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        reason = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{where}: not valid YAML ({reason})") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{origin}: a scenario is a YAML mapping (name, shipments, ...)")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(origin, root, err["loc"], err["msg"]) for err in exc.errors()]
        raise ScenarioError("; ".join(problems)) from exc
    problems = [_problem(origin, root, loc, msg) for loc, msg in _consistency(scenario)]
    if problems:
        raise ScenarioError("; ".join(problems))
    return scenario


def _consistency(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """What a single field cannot check: unique loggers, colliding clock resets."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    seen_devices: set[str] = set()
    seen_refs: set[str] = set()
    for i, plan in enumerate(scenario.shipments):
        if plan.device in seen_devices:
            problems.append((("shipments", i, "device"), f"device {plan.device} is used twice"))
        if plan.ref in seen_refs:
            problems.append((("shipments", i, "ref"), f"shipment {plan.ref} is used twice"))
        seen_devices.add(plan.device)
        seen_refs.add(plan.ref)
        for j, event in enumerate(plan.events):
            if isinstance(event, ClockReset) and event.back_min % scenario.interval_min:
                problems.append(
                    (
                        ("shipments", i, "events", j, "back_min"),
                        f"must be a multiple of interval_min ({scenario.interval_min:g}) so "
                        "the reused timestamps collide with earlier ones",
                    )
                )
    return problems


def _problem(origin: str, root: yaml.Node | None, loc: tuple[Any, ...], msg: str) -> str:
    line, path = _locate(root, loc)
    reason = msg.removeprefix("Value error, ")
    field = ".".join(str(p) for p in path) or "scenario"
    return f"{origin}:{line}: {field}: {reason}" if line else f"{origin}: {field}: {reason}"


def _locate(root: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[int | None, list[Any]]:
    """The line of the YAML node a validation error points at, and its readable path.

    Pydantic adds the event type (a union tag) to the path; it is not a YAML key, so it
    is skipped. A missing field points at the mapping that lacks it.
    """
    node = root
    path: list[Any] = []
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(key)), None)
            kind = next((v.value for k, v in node.value if k.value == "type"), None)
            if child is None and key == kind:
                continue  # the union tag
            path.append(key)
            if child is not None:
                node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            path.append(key)
            if key < len(node.value):
                node = node.value[key]
        else:
            path.append(key)
    return (node.start_mark.line + 1 if node is not None else None), path


@cache
def shipped_scenarios() -> dict[str, Scenario]:
    found: dict[str, Scenario] = {}
    for entry in sorted(resources.files("simulators.scenarios").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            scenario = parse_scenario(entry.read_text(encoding="utf-8"), entry.name)
            if scenario.name in found:
                raise ScenarioError(f"{entry.name}: duplicate scenario name {scenario.name}")
            found[scenario.name] = scenario
    return found


def load_scenario(name_or_file: str) -> Scenario:
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml"):
        try:
            return parse_scenario(path.read_text(encoding="utf-8"), name_or_file)
        except OSError as exc:
            raise ScenarioError(f"{name_or_file}: cannot read ({exc.strerror})") from exc
        except UnicodeDecodeError as exc:
            raise ScenarioError(f"{name_or_file}: not UTF-8 text") from exc
    scenario = shipped_scenarios().get(name_or_file)
    if scenario is None:
        known = ", ".join(sorted(shipped_scenarios()))
        raise ScenarioError(
            f"no scenario {name_or_file!r} (give a shipped name or a .yaml file); "
            f"shipped scenarios: {known}"
        )
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
