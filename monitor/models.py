"""Typed results of an evaluation (DESIGN.md §6): what `monitor evaluate` prints as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.clock import isoformat_utc
from core.severity import Severity

Direction = Literal["above", "below"]
Verdict = Literal["accept", "review", "reject"]


@dataclass(frozen=True, slots=True)
class Excursion:
    direction: Direction
    start: datetime
    end: datetime | None  # None: still beyond range at the last reading
    duration_min: float
    peak_c: float


@dataclass(frozen=True, slots=True)
class Alarm:
    rule: str
    severity: Severity
    at: datetime
    start: datetime  # when the condition began (the excursion start, not the alarm)


@dataclass(frozen=True, slots=True)
class BudgetUse:
    above_c: float
    up_to_c: float
    budget_min: float
    used_min: float

    @property
    def remaining_min(self) -> float:
        return self.budget_min - self.used_min

    @property
    def exceeded(self) -> bool:
        return self.used_min > self.budget_min


@dataclass(frozen=True, slots=True)
class Evaluation:
    readings: int
    start: datetime | None
    end: datetime | None
    min_c: float | None
    max_c: float | None
    mkt_c: float | None
    mkt_window_max_c: float | None
    time_in_range_min: float
    time_above_range_min: float
    time_below_range_min: float
    data_gap_min: float
    excursions: list[Excursion]
    alarms: list[Alarm]
    budget: list[BudgetUse]
    verdict: Verdict
    freeze_thaw_cycles: int
    ignored_min: float  # time held by readings in the start-up ignore period
    # Held time above the top stability-budget band: no stability data covers it (rejects).
    unstudied_min: float

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else isoformat_utc(value)

        def num(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "readings": self.readings,
            "start": when(self.start),
            "end": when(self.end),
            "min_c": num(self.min_c),
            "max_c": num(self.max_c),
            "mkt_c": num(self.mkt_c),
            "mkt_window_max_c": num(self.mkt_window_max_c),
            "time_in_range_min": num(self.time_in_range_min),
            "time_above_range_min": num(self.time_above_range_min),
            "time_below_range_min": num(self.time_below_range_min),
            "data_gap_min": num(self.data_gap_min),
            "unstudied_min": num(self.unstudied_min),
            "ignored_min": num(self.ignored_min),
            "freeze_thaw_cycles": self.freeze_thaw_cycles,
            "excursions": [
                {
                    "direction": e.direction,
                    "start": when(e.start),
                    "end": when(e.end),
                    "duration_min": num(e.duration_min),
                    "peak_c": num(e.peak_c),
                }
                for e in self.excursions
            ],
            "alarms": [
                {
                    "rule": a.rule,
                    "severity": a.severity.value,
                    "at": when(a.at),
                    "start": when(a.start),
                }
                for a in self.alarms
            ],
            "budget": [
                {
                    "above_c": b.above_c,
                    "up_to_c": b.up_to_c,
                    "budget_min": b.budget_min,
                    "used_min": num(b.used_min),
                    "remaining_min": num(b.remaining_min),
                }
                for b in self.budget
            ],
            "verdict": self.verdict,
        }
