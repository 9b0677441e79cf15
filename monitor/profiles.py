"""Drug storage profiles: YAML data validated on load (DESIGN.md §6)."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.severity import Severity


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

    @model_validator(mode="after")
    def _one_threshold(self) -> Rule:
        if (self.above_c is None) == (self.below_c is None):
            raise ValueError("a rule needs exactly one of above_c or below_c")
        return self

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
            raise ValueError(f"up_to_c {self.up_to_c} must be above above_c {self.above_c}")
        return self


class MktLimit(_Strict):
    window_h: float = Field(gt=0)
    max_c: float


class DrugProfile(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1)
    storage: StorageRange
    max_gap_min: float = Field(30, gt=0)
    rules: list[Rule] = Field(default_factory=list)
    stability_budget: list[BudgetBand] = Field(default_factory=list)
    mkt: MktLimit | None = None
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> DrugProfile:
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(duplicates)}")
        return self

    def content_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'profile'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ProfileError(f"{origin}: {problems}") from exc


@cache
def catalog() -> dict[str, DrugProfile]:
    """The shipped profiles, by id."""
    profiles: dict[str, DrugProfile] = {}
    for entry in sorted(resources.files("monitor.catalog").iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            profile = parse_profile(
                entry.read_text(encoding="utf-8"), f"monitor/catalog/{entry.name}"
            )
            if profile.id in profiles:
                raise ProfileError(
                    f"monitor/profiles/{entry.name}: duplicate profile id {profile.id}"
                )
            profiles[profile.id] = profile
    return profiles


def load_profile(id_or_file: str) -> DrugProfile:
    """A shipped profile by id, or a YAML file by path."""
    path = Path(id_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"{id_or_file}: cannot read ({exc.strerror})") from exc
        return parse_profile(text, id_or_file)
    found = catalog().get(id_or_file)
    if found is None:
        known = ", ".join(sorted(catalog()))
        raise ProfileError(f"no profile {id_or_file!r}; shipped profiles: {known}")
    return found
