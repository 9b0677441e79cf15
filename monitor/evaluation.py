"""Pure evaluation of a reading series against a drug profile (DESIGN.md §6).

Sample-and-hold on device time: each reading's value holds from its ``ts`` until the next
reading, for at most ``max_gap_min``; the rest of a longer interval is a data gap. A
reading without a temperature (sensor error) holds nothing: its whole interval is a gap.
Everything is computed with numpy over the whole series; there is no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.clock import isoformat_utc
from core.severity import Severity
from monitor.profiles import DrugProfile, Rule

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
# USP <1079.2>: ΔH = 83.144 kJ/mol, R = 8.3144 J/(mol·K), so ΔH/R = 10 000 K.
MKT_DH_OVER_R = 10_000.0
KELVIN = 273.15
_NS_PER_MIN = 60_000_000_000


@dataclass(frozen=True, slots=True)
class Excursion:
    direction: Literal["above", "below"]
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
    verdict: Literal["accept", "review", "reject"]

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


class _Series:
    """Sorted, de-duplicated readings with held and gap time per reading (minutes)."""

    def __init__(self, frame: pd.DataFrame, max_gap_min: float) -> None:
        ts = pd.to_datetime(frame["ts"], utc=True)
        temp = pd.to_numeric(frame["temp_c"], errors="coerce")
        clean = pd.DataFrame({"ts": ts, "temp": temp}).sort_values("ts", kind="stable")
        # Exact duplicates change nothing; for a repeated time with different values the
        # first one received is the reading (DESIGN.md §5).
        clean = clean.drop_duplicates(subset="ts", keep="first")
        self.ts_ns: npt.NDArray[np.int64] = (
            clean["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        )
        self.temp: FloatArray = clean["temp"].to_numpy(dtype=np.float64)
        self.minutes: FloatArray = (
            (self.ts_ns - self.ts_ns[0]) / _NS_PER_MIN if len(clean) else (np.empty(0))
        )
        interval = np.diff(self.minutes, append=self.minutes[-1:] if len(clean) else [])
        valid = ~np.isnan(self.temp)
        self.held: FloatArray = np.where(valid, np.minimum(interval, max_gap_min), 0.0)
        self.gap: FloatArray = interval - self.held

    def __len__(self) -> int:
        return len(self.ts_ns)

    def when(self, minute: float) -> datetime:
        ns = int(self.ts_ns[0]) + round(minute * _NS_PER_MIN)
        return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
            microsecond=(ns % 1_000_000_000) // 1000
        )


@dataclass(frozen=True, slots=True)
class _Run:
    first: int  # index of the first reading beyond
    last: int  # index of the last reading beyond
    duration_min: float
    open: bool  # the series ends inside the run


def _runs(series: _Series, beyond: BoolArray) -> list[_Run]:
    """Stretches of held time beyond a threshold, split by readings back inside or gaps."""
    if not beyond.any():
        return []
    n = len(series)
    # A run continues from reading i to i+1 when both are beyond and no gap lies between.
    continues = beyond[:-1] & beyond[1:] & (series.gap[:-1] == 0)
    starts = np.flatnonzero(beyond & ~np.concatenate(([False], continues)))
    ends = np.flatnonzero(beyond & ~np.concatenate((continues, [False])))
    held_cum = np.concatenate(([0.0], np.cumsum(series.held)))
    return [
        _Run(int(a), int(b), float(held_cum[b + 1] - held_cum[a]), bool(b == n - 1))
        for a, b in zip(starts, ends, strict=True)
    ]


def _beyond(temp: FloatArray, direction: str, threshold: float) -> BoolArray:
    with np.errstate(invalid="ignore"):
        return (temp > threshold) if direction == "above" else (temp < threshold)


def _excursions(series: _Series, profile: DrugProfile) -> list[Excursion]:
    found: list[Excursion] = []
    for direction, limit in (("above", profile.storage.max_c), ("below", profile.storage.min_c)):
        beyond = _beyond(series.temp, direction, limit)
        for run in _runs(series, beyond):
            stretch = series.temp[run.first : run.last + 1]
            peak = float(stretch.max() if direction == "above" else stretch.min())
            end_min = series.minutes[run.last] + series.held[run.last]
            found.append(
                Excursion(
                    direction=direction,  # type: ignore[arg-type]
                    start=series.when(series.minutes[run.first]),
                    end=None if run.open else series.when(end_min),
                    duration_min=run.duration_min,
                    peak_c=peak,
                )
            )
    found.sort(key=lambda e: e.start)
    return found


def _rule_alarms(series: _Series, rule: Rule) -> list[Alarm]:
    beyond = _beyond(series.temp, rule.direction, rule.threshold_c)
    if not beyond.any():
        return []
    if rule.mode == "single":
        return [
            Alarm(
                rule.id,
                rule.severity,
                at=series.when(series.minutes[run.first] + rule.for_min),
                start=series.when(series.minutes[run.first]),
            )
            for run in _runs(series, beyond)
            if run.duration_min >= rule.for_min
        ]
    # Cumulative: never resets; alarms once, when the running total reaches for_min.
    held_beyond = np.where(beyond, series.held, 0.0)
    total_after = np.cumsum(held_beyond)
    reached = np.flatnonzero(beyond & (total_after >= rule.for_min))
    if len(reached) == 0:
        return []
    i = int(reached[0])
    total_before = float(total_after[i] - held_beyond[i])
    first = int(np.flatnonzero(beyond)[0])
    return [
        Alarm(
            rule.id,
            rule.severity,
            at=series.when(series.minutes[i] + (rule.for_min - total_before)),
            start=series.when(series.minutes[first]),
        )
    ]


def _mkt(weights: FloatArray, factors: FloatArray) -> float | None:
    total = float(weights.sum())
    if total <= 0:
        return None
    return float(MKT_DH_OVER_R / -np.log(float((weights * factors).sum()) / total) - KELVIN)


def _mkt_window_max(series: _Series, factors: FloatArray, window_h: float) -> float | None:
    """Highest MKT over windows [ts_i, ts_i + window] that fit inside the data."""
    window = window_h * 60.0
    span = float(series.minutes[-1])
    if span <= window:
        return _mkt(series.held, factors)
    weighted_cum = np.concatenate(([0.0], np.cumsum(series.held * factors)))
    held_cum = np.concatenate(([0.0], np.cumsum(series.held)))

    def integrals(at: FloatArray) -> tuple[FloatArray, FloatArray]:
        j = np.searchsorted(series.minutes, at, side="right") - 1
        inside = np.minimum(at - series.minutes[j], series.held[j])
        return weighted_cum[j] + inside * factors[j], held_cum[j] + inside

    starts = series.minutes[series.minutes + window <= span]
    f0, h0 = integrals(starts)
    f1, h1 = integrals(starts + window)
    held = h1 - h0
    usable = held > 0
    if not usable.any():
        return None
    mkts = MKT_DH_OVER_R / -np.log((f1 - f0)[usable] / held[usable]) - KELVIN
    return float(mkts.max())


def evaluate(profile: DrugProfile, readings: pd.DataFrame) -> Evaluation:
    """Evaluate readings (columns ``ts``, ``temp_c``) against ``profile``."""
    series = _Series(readings, profile.max_gap_min)
    if len(series) == 0:
        return Evaluation(
            0,
            None,
            None,
            None,
            None,
            None,
            None,
            0.0,
            0.0,
            0.0,
            0.0,
            [],
            [],
            [BudgetUse(b.above_c, b.up_to_c, b.budget_min, 0.0) for b in profile.stability_budget],
            "review",
        )
    temp, held = series.temp, series.held
    valid = ~np.isnan(temp)
    above = _beyond(temp, "above", profile.storage.max_c)
    below = _beyond(temp, "below", profile.storage.min_c)
    inside = valid & ~above & ~below
    with np.errstate(over="ignore", invalid="ignore"):
        factors = np.where(valid, np.exp(-MKT_DH_OVER_R / (temp + KELVIN)), 0.0)

    alarms = sorted(
        (a for rule in profile.rules for a in _rule_alarms(series, rule)),
        key=lambda a: (a.at, a.rule),
    )
    budget = []
    for band in profile.stability_budget:
        with np.errstate(invalid="ignore"):
            in_band = (temp > band.above_c) & (temp <= band.up_to_c)
        budget.append(
            BudgetUse(band.above_c, band.up_to_c, band.budget_min, float(held[in_band].sum()))
        )
    mkt_window_max = (
        _mkt_window_max(series, factors, profile.mkt.window_h)
        if profile.mkt
        else _mkt(held, factors)
    )
    gap_min = float(series.gap.sum())

    critical = any(a.severity is Severity.CRITICAL for a in alarms)
    if critical or any(b.exceeded for b in budget):
        verdict: Literal["accept", "review", "reject"] = "reject"
    elif (
        alarms
        or gap_min > 0
        or (profile.mkt and mkt_window_max is not None and mkt_window_max > profile.mkt.max_c)
    ):
        verdict = "review"
    else:
        verdict = "accept"

    return Evaluation(
        readings=len(series),
        start=series.when(0.0),
        end=series.when(float(series.minutes[-1])),
        min_c=float(np.nanmin(temp)) if valid.any() else None,
        max_c=float(np.nanmax(temp)) if valid.any() else None,
        mkt_c=_mkt(held, factors),
        mkt_window_max_c=mkt_window_max,
        time_in_range_min=float(held[inside].sum()),
        time_above_range_min=float(held[above].sum()),
        time_below_range_min=float(held[below].sum()),
        data_gap_min=gap_min,
        excursions=_excursions(series, profile),
        alarms=alarms,
        budget=budget,
        verdict=verdict,
    )


def read_readings_csv(path: str) -> pd.DataFrame:
    """Read a ``ts,temp_c`` CSV; a missing column or unparseable time is a ValueError."""
    frame = pd.read_csv(path, dtype={"temp_c": "float64"}, keep_default_na=True)
    missing = {"ts", "temp_c"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(sorted(missing))} (header must be ts,temp_c)"
        )
    try:
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{path}: column ts has a value that is not an RFC 3339 time ({exc})"
        ) from exc
    return frame
