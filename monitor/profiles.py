"""Drug storage profiles: YAML data validated on load (DESIGN.md §6, docs/profiles.md)."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.severity import Severity

Stage = Literal["origin", "in_transit", "destination"]
STAGES: tuple[Stage, ...] = ("origin", "in_transit", "destination")
# WHO's freeze indicator threshold: a freeze-sensitive profile must alarm at or above it.
WHO_FREEZE_C = -0.5


class ProfileError(ValueError):
    """A profile file is missing or invalid; the message names file, field and reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageRange(_Strict):
    min_c: float
    max_c: float

    @model_validator(mode="after")
    def _ordered(self) -> StorageRange:
        if self.min_c > self.max_c:
            raise ValueError(f"min_c {self.min_c} is above max_c {self.max_c}")
        return self


class Rule(_Strict):
    id: str = Field(min_length=1)
    above_c: float | None = None
    below_c: float | None = None
    mode: Literal["single", "cumulative"]
    for_min: float = Field(ge=0)
    severity: Severity
    # Leg stages whose readings the rule counts; a run is broken where the stage leaves them.
    stages: tuple[Stage, ...] = STAGES

    @model_validator(mode="after")
    def _one_threshold(self) -> Rule:
        if (self.above_c is None) == (self.below_c is None):
            raise ValueError("a rule needs exactly one of above_c or below_c")
        return self

    @field_validator("stages")
    @classmethod
    def _distinct_stages(cls, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        if not stages:
            raise ValueError("a rule needs at least one stage (leave stages out for all)")
        if len(set(stages)) != len(stages):
            raise ValueError("stages must not repeat")
        return stages

    @property
    def direction(self) -> Literal["above", "below"]:
        return "above" if self.above_c is not None else "below"

    @property
    def threshold_c(self) -> float:
        value = self.above_c if self.above_c is not None else self.below_c
        assert value is not None
        return value


class BudgetBand(_Strict):
    above_c: float
    up_to_c: float
    budget_min: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> BudgetBand:
        if self.up_to_c <= self.above_c:
            raise ValueError(
                f"band is inverted or empty: up_to_c {self.up_to_c} must be above "
                f"above_c {self.above_c}"
            )
        return self


class MktLimit(_Strict):
    window_h: float = Field(gt=0)
    max_c: float


class ExpiryReduction(_Strict):
    """After an excursion the product must be used within this time (never after its expiry).

    The time counts from the start of the first excursion above the storage range.
    """

    use_within: float = Field(gt=0)
    unit: Literal["hours", "days", "months"]


class DrugProfile(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1)
    storage: StorageRange
    max_gap_min: float = Field(30, gt=0)
    # Readings in the first N minutes of the series (ts < first ts + N) count toward nothing.
    ignore_period_min: float = Field(0, ge=0)
    rules: list[Rule] = Field(default_factory=list)
    stability_budget: list[BudgetBand] = Field(default_factory=list)
    mkt: MktLimit | None = None
    may_return_to_storage: bool = False
    expiry_reduction: ExpiryReduction | None = None
    freeze_sensitive: bool = False
    freeze_thaw_max: int | None = Field(None, ge=0)
    source: str = Field(min_length=1)

    @field_validator("stability_budget")
    @classmethod
    def _bands_disjoint(cls, bands: list[BudgetBand]) -> list[BudgetBand]:
        ordered = sorted(bands, key=lambda b: b.above_c)
        for lower, upper in zip(ordered, ordered[1:], strict=False):
            if upper.above_c < lower.up_to_c:
                raise ValueError(
                    f"bands ({lower.above_c:g}, {lower.up_to_c:g}] and "
                    f"({upper.above_c:g}, {upper.up_to_c:g}] overlap; each band is its own "
                    "temperature range (hotter time counts against cooler bands by itself)"
                )
        return bands

    @model_validator(mode="after")
    def _consistent(self) -> DrugProfile:
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rules: rule ids must be unique; repeated: {', '.join(duplicates)}")
        low, high = self.storage.min_c, self.storage.max_c
        for i, band in enumerate(self.stability_budget):
            # A band (a, b] meets the inclusive range [low, high] when a < high and b >= low.
            if band.above_c < high and band.up_to_c >= low:
                raise ValueError(
                    f"stability_budget.{i}: band ({band.above_c:g}, {band.up_to_c:g}] overlaps "
                    f"the storage range {low:g}..{high:g}; a budget is for time outside it"
                )
            if band.above_c < high:
                # Hotter time counts against every band up to the top one (DESIGN.md §6), so
                # a band below the range would count in-range time: cold is for rules.
                raise ValueError(
                    f"stability_budget.{i}: band ({band.above_c:g}, {band.up_to_c:g}] lies "
                    f"below the storage range {low:g}..{high:g}; a budget is an allowance for "
                    "heat above the range (use a below_c rule for cold)"
                )
        if self.freeze_sensitive:
            if low < 0:
                raise ValueError(
                    f"freeze_sensitive: a freeze-sensitive product cannot be stored at "
                    f"{low:g} °C (storage.min_c below 0)"
                )
            if not any(
                r.below_c is not None
                and r.below_c >= WHO_FREEZE_C
                and r.severity is Severity.CRITICAL
                for r in self.rules
            ):
                raise ValueError(
                    f"freeze_sensitive: needs a critical rule with below_c at or above "
                    f"{WHO_FREEZE_C:g} °C (WHO freeze threshold)"
                )
        return self

    def content_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _describe(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        reason = "unknown field (not part of the profile format)"
    else:
        reason = err["msg"].removeprefix("Value error, ")
    return f"{where}: {reason}" if where else reason


def parse_profile(text: str, origin: str) -> DrugProfile:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{origin}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{origin}: a profile must be a YAML mapping")
    try:
        return DrugProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ProfileError(f"{origin}: {problems}") from exc


@cache
def catalog() -> dict[str, DrugProfile]:
    """The shipped profiles, by id; each file is named after the id it holds."""
    profiles: dict[str, DrugProfile] = {}
    for entry in sorted(resources.files("monitor.catalog").iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            origin = f"monitor/catalog/{entry.name}"
            profile = parse_profile(entry.read_text(encoding="utf-8"), origin)
            if Path(entry.name).stem != profile.id:
                raise ProfileError(f"{origin}: id {profile.id!r} does not match the file name")
            if profile.id in profiles:
                raise ProfileError(f"{origin}: duplicate profile id {profile.id}")
            profiles[profile.id] = profile
    return profiles


def load_profile(id_or_file: str) -> DrugProfile:
    """A shipped profile by id, or a YAML file by path."""
    path = Path(id_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ProfileError(f"{id_or_file}: cannot read ({reason})") from exc
        return parse_profile(text, id_or_file)
    found = catalog().get(id_or_file)
    if found is None:
        known = ", ".join(sorted(catalog()))
        raise ProfileError(f"no profile {id_or_file!r}; shipped profiles: {known}")
    return found
