"""Pure evaluation of a reading series against a drug profile (DESIGN.md §6, docs/profiles.md).

Sample-and-hold on device time: each reading's value holds from its ``ts`` until the next
reading, for at most ``max_gap_min``; the rest of a longer interval is a data gap. A
reading without a temperature (sensor error) holds nothing: its whole interval is a gap.
Readings in the profile's start-up ignore period hold time that counts toward nothing.

Everything is computed with numpy on int64 nanoseconds, so durations and alarm instants
are exact and a run of exactly ``for_min`` alarms; Python objects are built only for the
results, with all instants converted to datetimes in one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.severity import Severity
from monitor.models import Alarm, BudgetUse, Direction, Evaluation, Excursion, Verdict
from monitor.profiles import STAGES, DrugProfile, Rule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
# USP <1079.2>: ΔH = 83.144 kJ/mol, R = 8.3144 J/(mol·K), so ΔH/R = 10 000 K.
MKT_DH_OVER_R = 10_000.0
KELVIN = 273.15
# MKT is compared with its limit at this resolution, so float rounding of a series held
# exactly at the limit cannot turn "accept" into "review".
_MKT_TOLERANCE_C = 1e-9
_NS_PER_MIN = 60_000_000_000
# Instants evaluation computes with: int64 nanoseconds reach 1677-09-21 to 2262-04-11, and
# rule delays, windows and the ignore period are added to them, so keep decades of headroom.
EVALUABLE_FROM = datetime(1700, 1, 1, tzinfo=UTC)
EVALUABLE_UNTIL = datetime(2200, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_US = (EVALUABLE_FROM - _EPOCH) // timedelta(microseconds=1)
_LAST_US = (EVALUABLE_UNTIL - _EPOCH) // timedelta(microseconds=1)
_DIRECTIONS: tuple[Direction, Direction] = ("above", "below")
_IN_TRANSIT = STAGES.index("in_transit")


def _utc_ns(column: pd.Series) -> IntArray:
    """Instants as int64 ns since the epoch; naive, missing or unrepresentable times are refused.

    Times go through microseconds, which hold any calendar date, and are checked against
    the window evaluation can compute in before they become nanoseconds: a unit
    conversion that overflows would wrap a far-future reading onto a real instant.
    """
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        if column.isna().any():
            raise ValueError(f"readings: ts is missing at row {int(np.argmax(column.isna()))}")
        aware = column
    elif pd.api.types.is_datetime64_dtype(column.dtype):
        raise ValueError("readings: ts has no time zone; device time must carry a UTC offset")
    else:
        for row, value in enumerate(column.tolist()):
            if not isinstance(value, datetime) or pd.isna(value):
                raise ValueError(f"readings: ts at row {row} is not a time ({value!r})")
            if value.utcoffset() is None:
                raise ValueError(f"readings: ts at row {row} ({value}) has no time zone")
        aware = pd.to_datetime(column, utc=True)
    utc = aware.dt.tz_convert("UTC")
    if utc.dt.unit == "ns":  # already nanoseconds, so within 1677..2262: check the headroom
        nanos = np.asarray(utc.to_numpy(dtype="datetime64[ns]")).view(np.int64)
        micros = nanos // 1000
    else:
        micros = np.asarray(utc.dt.as_unit("us").to_numpy(dtype="datetime64[us]")).view(np.int64)
        nanos = micros * 1000  # only used once the bounds below hold
    outside = (micros < _FIRST_US) | (micros >= _LAST_US)
    if outside.any():
        row = int(np.argmax(outside))
        raise ValueError(
            f"readings: ts at row {row} ({utc.iloc[row].isoformat()}) cannot be represented; "
            f"evaluation covers {EVALUABLE_FROM:%Y-%m-%d} to {EVALUABLE_UNTIL:%Y-%m-%d} UTC"
        )
    return nanos


def _temperatures(column: pd.Series) -> FloatArray:
    try:
        temp = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"readings: temp_c has a value that is not a number ({exc})") from exc
    bad = np.isinf(temp) | (temp <= -KELVIN)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"readings: temp_c at row {row} is not a temperature ({temp[row]})")
    return temp


def _stage_codes(frame: pd.DataFrame) -> npt.NDArray[np.int8]:
    if "stage" not in frame.columns:
        return np.full(len(frame), _IN_TRANSIT, dtype=np.int8)
    index = {stage: i for i, stage in enumerate(STAGES)}
    codes = np.asarray(frame["stage"].map(index).fillna(-1), dtype=np.int8)
    if (codes < 0).any():
        row = int(np.argmax(codes < 0))
        raise ValueError(
            f"readings: stage at row {row} is {frame['stage'].iloc[row]!r}; "
            f"expected one of {', '.join(STAGES)}"
        )
    return codes


class _Series:
    """Sorted, de-duplicated readings with held and gap time per reading (int64 ns)."""

    def __init__(self, frame: pd.DataFrame, profile: DrugProfile) -> None:
        missing = {"ts", "temp_c"} - set(frame.columns)
        if missing:
            raise ValueError(f"readings: missing column(s) {', '.join(sorted(missing))}")
        ts = _utc_ns(frame["ts"])
        temp = _temperatures(frame["temp_c"])
        stage = _stage_codes(frame)
        # Stable sort, then keep the first reading at each time: exact duplicates change
        # nothing, and for a repeated time with different values the first one received
        # is the reading (DESIGN.md §5).
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        first = np.ones(len(ts), dtype=np.bool_)
        first[1:] = ts[1:] != ts[:-1]
        kept = order[first]
        self.ts: IntArray = ts[first]
        self.temp: FloatArray = temp[kept]
        self.stage = stage[kept]
        n = len(self.ts)
        interval = np.diff(self.ts, append=self.ts[-1:]) if n else np.empty(0, np.int64)
        self.valid: BoolArray = ~np.isnan(self.temp)
        max_gap = round(profile.max_gap_min * _NS_PER_MIN)
        self.held: IntArray = np.where(self.valid, np.minimum(interval, max_gap), 0)
        self.gap: IntArray = interval - self.held
        self.held_cum: IntArray = np.concatenate(([0], np.cumsum(self.held)))
        ignore = round(profile.ignore_period_min * _NS_PER_MIN)
        self.counted: BoolArray = (
            self.ts >= self.ts[0] + ignore if n else np.empty(0, dtype=np.bool_)
        )

    def __len__(self) -> int:
        return len(self.ts)

    def beyond(self, direction: Direction, threshold: float) -> BoolArray:
        """Counted readings strictly beyond a threshold (sensor errors never are)."""
        with np.errstate(invalid="ignore"):
            side = self.temp > threshold if direction == "above" else self.temp < threshold
        return side & self.counted


@dataclass(frozen=True, slots=True)
class _Runs:
    """Maximal stretches of readings beyond a threshold with no gap between them."""

    first: IntArray  # index of the first reading of each run
    last: IntArray  # index of the last reading of each run
    duration: IntArray  # held ns
    open: BoolArray  # the series ends inside the run


def _runs(series: _Series, beyond: BoolArray) -> _Runs:
    continues = beyond[:-1] & beyond[1:] & (series.gap[:-1] == 0)
    starts = beyond.copy()
    starts[1:] &= ~continues
    ends = beyond.copy()
    ends[:-1] &= ~continues
    first, last = np.flatnonzero(starts), np.flatnonzero(ends)
    return _Runs(
        first,
        last,
        series.held_cum[last + 1] - series.held_cum[first],
        last == len(series) - 1,
    )


@dataclass(frozen=True, slots=True)
class _Found:
    """Excursions or alarms as parallel arrays (ns), before any Python object is made."""

    start: IntArray  # when the condition began
    end: IntArray  # excursions: where the run ends; alarms: when the alarm fires
    duration: IntArray  # excursions: held ns; alarms: unused
    value: FloatArray  # excursions: peak °C; alarms: unused
    code: IntArray  # excursions: index into _DIRECTIONS; alarms: index into profile.rules
    open: BoolArray  # excursions: still open at the last reading; alarms: unused

    @staticmethod
    def join(parts: list[_Found]) -> _Found:
        if not parts:
            empty = np.empty(0, np.int64)
            return _Found(empty, empty, empty, np.empty(0), empty, np.empty(0, np.bool_))
        return _Found(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FOUND_FIELDS))

    def take(self, order: IntArray) -> _Found:
        return _Found(*(getattr(self, f)[order] for f in _FOUND_FIELDS))


_FOUND_FIELDS = ("start", "end", "duration", "value", "code", "open")


def _excursions(series: _Series, profile: DrugProfile) -> _Found:
    parts = []
    for code, direction in enumerate(_DIRECTIONS):
        limit = profile.storage.max_c if direction == "above" else profile.storage.min_c
        beyond = series.beyond(direction, limit)
        if not beyond.any():
            continue
        runs = _runs(series, beyond)
        # reduceat over [first_i, first_i+1): readings between runs are masked out.
        if direction == "above":
            peaks = np.maximum.reduceat(np.where(beyond, series.temp, -np.inf), runs.first)
        else:
            peaks = np.minimum.reduceat(np.where(beyond, series.temp, np.inf), runs.first)
        parts.append(
            _Found(
                series.ts[runs.first],
                series.ts[runs.last] + series.held[runs.last],
                runs.duration,
                peaks,
                np.full(len(runs.first), code, dtype=np.int64),
                runs.open,
            )
        )
    found = _Found.join(parts)
    return found.take(np.argsort(found.start, kind="stable"))


def _rule_beyond(series: _Series, rule: Rule) -> BoolArray:
    beyond = series.beyond(rule.direction, rule.threshold_c)
    if len(rule.stages) < len(STAGES):
        beyond &= np.isin(series.stage, [STAGES.index(s) for s in rule.stages])
    return beyond


def _rule_alarms(series: _Series, rule: Rule, code: int) -> _Found | None:
    """The alarms of one rule: condition start and alarm instant."""
    beyond = _rule_beyond(series, rule)
    if not beyond.any():
        return None
    for_ns = round(rule.for_min * _NS_PER_MIN)
    if rule.mode == "single":
        runs = _runs(series, beyond)
        starts = series.ts[runs.first[runs.duration >= for_ns]]
        at = starts + for_ns
    else:
        # Cumulative: never resets; alarms once, when the running total reaches for_min,
        # part-way through the held interval of the reading that crosses it.
        held_beyond = np.where(beyond, series.held, 0)
        total_after = np.cumsum(held_beyond)
        reached = np.flatnonzero(beyond & (total_after >= for_ns))
        if len(reached) == 0:
            return None
        i = int(reached[0])
        total_before = int(total_after[i] - held_beyond[i])
        at = np.array([series.ts[i] + (for_ns - total_before)], dtype=np.int64)
        starts = series.ts[np.flatnonzero(beyond)[:1]]
    n = len(at)
    unused = np.zeros(n, np.int64)
    return _Found(
        starts, at, unused, np.zeros(n), np.full(n, code, np.int64), np.zeros(n, np.bool_)
    )


def _mkt_of(weighted: FloatArray | float, held: FloatArray | float, t_ref: float) -> Any:
    """MKT in °C from Σ held·e^(ΔH/R·(1/T_ref − 1/T)) and Σ held (factors ≤ 1, no underflow)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / (1.0 / t_ref - np.log(np.divide(weighted, held)) / MKT_DH_OVER_R) - KELVIN


def _mkt(
    series: _Series, weight: FloatArray, profile: DrugProfile
) -> tuple[float | None, float | None]:
    """(MKT over all data, highest MKT over the profile's windows); None without held time."""
    if weight.sum() <= 0:
        return None, None
    held_temp = series.temp[weight > 0]
    low, high = float(held_temp.min()), float(held_temp.max())
    t_ref = high + KELVIN
    with np.errstate(over="ignore", invalid="ignore"):
        exponent = MKT_DH_OVER_R * (1 / t_ref - 1 / (series.temp + KELVIN))
        factor = np.where(weight > 0, np.exp(exponent), 0.0)

    def clamp(mkt: Any) -> Any:
        # MKT lies between the held extremes; float rounding must not take it outside.
        return np.clip(mkt, low, high)

    overall = float(clamp(_mkt_of(float((weight * factor).sum()), float(weight.sum()), t_ref)))
    if profile.mkt is None:
        return overall, overall
    window = round(profile.mkt.window_h * 60 * _NS_PER_MIN)
    if series.ts[-1] - series.ts[0] <= window:
        return overall, overall
    weight_cum = np.concatenate(([0.0], np.cumsum(weight)))
    weighted_cum = np.concatenate(([0.0], np.cumsum(weight * factor)))

    def integrals(at: IntArray) -> tuple[FloatArray, FloatArray]:
        j = np.searchsorted(series.ts, at, side="right") - 1
        inside = np.minimum((at - series.ts[j]) / _NS_PER_MIN, weight[j])
        return weighted_cum[j] + inside * factor[j], weight_cum[j] + inside

    starts = series.ts[series.ts + window <= series.ts[-1]]
    f0, h0 = integrals(starts)
    f1, h1 = integrals(starts + window)
    held = h1 - h0
    usable = held > 0
    if not usable.any():
        return overall, None
    return overall, float(clamp(_mkt_of(f1[usable] - f0[usable], held[usable], t_ref)).max())


def _freeze_thaw_cycles(series: _Series) -> int:
    """Returns to the starting state: frozen (< 0 °C) ⇄ thawed (> 0 °C), 0 °C changes nothing."""
    considered = series.valid & series.counted & (series.temp != 0)
    thawed = series.temp[considered] > 0
    return int(np.count_nonzero(thawed[1:] != thawed[:-1])) // 2


def _stability_budget(
    profile: DrugProfile, temp: FloatArray, held: IntArray
) -> tuple[list[BudgetUse], float]:
    """Each band's use, and the unstudied exposure above the top band (DESIGN.md §6 step 5).

    Heat never reads as safer: time hotter than a band counts against it too, up to the
    top band's ``up_to_c``; beyond that no stability data covers the product at all.
    ``held`` is zero for readings that count toward nothing.
    """
    if not profile.stability_budget:
        return [], 0.0
    top = max(band.up_to_c for band in profile.stability_budget)
    with np.errstate(invalid="ignore"):  # NaN (sensor error) holds nothing anyway
        studied = temp <= top
        budget = [
            BudgetUse(
                band.above_c,
                band.up_to_c,
                band.budget_min,
                _minutes(held[(temp > band.above_c) & studied].sum()),
            )
            for band in profile.stability_budget
        ]
        return budget, _minutes(held[temp > top].sum())


def _datetimes(ns: IntArray) -> list[datetime]:
    """Bulk ns → aware UTC datetimes, truncated to the microsecond like datetime itself."""
    return list(pd.to_datetime(ns // 1000, unit="us", utc=True).to_pydatetime())


def _minutes(ns: Any) -> float:
    return float(ns) / _NS_PER_MIN


def _verdict(
    profile: DrugProfile,
    alarms: list[Alarm],
    budget: list[BudgetUse],
    gap_min: float,
    mkt_window_max: float | None,
    freeze_thaw_cycles: int,
    unstudied_min: float,
) -> Verdict:
    """The proposal of DESIGN.md §6 rule 7, plus the freeze–thaw limit; QA signs."""
    if (
        any(a.severity is Severity.CRITICAL for a in alarms)
        or any(b.exceeded for b in budget)
        or unstudied_min > 0
        or (profile.freeze_thaw_max is not None and freeze_thaw_cycles > profile.freeze_thaw_max)
    ):
        return "reject"
    mkt_high = (
        profile.mkt is not None
        and mkt_window_max is not None
        and mkt_window_max > profile.mkt.max_c + _MKT_TOLERANCE_C
    )
    return "review" if alarms or gap_min > 0 or mkt_high else "accept"


def evaluate(profile: DrugProfile, readings: pd.DataFrame) -> Evaluation:
    """Evaluate readings (``ts``, ``temp_c``, optional ``stage``) against ``profile``.

    ``ts`` must be timezone-aware; an empty ``temp_c`` is a sensor error; ``stage`` is
    origin, in_transit or destination (every reading is in_transit without the column).
    A malformed frame raises ValueError.
    """
    series = _Series(readings, profile)
    if len(series) == 0:
        empty_budget = [
            BudgetUse(b.above_c, b.up_to_c, b.budget_min, 0.0) for b in profile.stability_budget
        ]
        return Evaluation(
            0, None, None, None, None, None, None, 0.0, 0.0, 0.0, 0.0, [], [], empty_budget,
            "review", 0, 0.0, 0.0,
        )  # fmt: skip
    temp, held = series.temp, series.held
    value = series.valid & series.counted  # readings whose held time is evaluated
    above = series.beyond("above", profile.storage.max_c)
    below = series.beyond("below", profile.storage.min_c)
    inside = value & ~above & ~below

    excursions = _excursions(series, profile)
    alarm_parts = [_rule_alarms(series, rule, i) for i, rule in enumerate(profile.rules)]
    alarms = _Found.join([a for a in alarm_parts if a is not None])
    # Alarms in firing order; simultaneous ones by rule id.
    id_rank = np.argsort(np.argsort([rule.id for rule in profile.rules])).astype(np.int64)
    alarms = alarms.take(np.lexsort((id_rank[alarms.code], alarms.end)))

    budget, unstudied_min = _stability_budget(profile, temp, np.where(value, held, 0))
    mkt_c, mkt_window_max = _mkt(series, np.where(value, held / _NS_PER_MIN, 0.0), profile)
    gap_min = _minutes(series.gap.sum())
    cycles = _freeze_thaw_cycles(series)

    instants = _datetimes(
        np.concatenate(
            (excursions.start, excursions.end, alarms.end, alarms.start, series.ts[[0, -1]])
        )
    )
    n_exc, n_alarm = len(excursions.start), len(alarms.start)
    exc_start, exc_end = instants[:n_exc], instants[n_exc : 2 * n_exc]
    alarm_at = instants[2 * n_exc : 2 * n_exc + n_alarm]
    alarm_start = instants[2 * n_exc + n_alarm : 2 * n_exc + 2 * n_alarm]
    excursion_list = [
        Excursion(_DIRECTIONS[code], start, None if is_open else end, dur / _NS_PER_MIN, peak)
        for code, start, end, is_open, dur, peak in zip(
            excursions.code.tolist(),
            exc_start,
            exc_end,
            excursions.open.tolist(),
            excursions.duration.tolist(),
            excursions.value.tolist(),
            strict=True,
        )
    ]
    rules = profile.rules
    alarm_list = [
        Alarm(rules[code].id, rules[code].severity, at, start)
        for code, at, start in zip(alarms.code.tolist(), alarm_at, alarm_start, strict=True)
    ]

    verdict = _verdict(profile, alarm_list, budget, gap_min, mkt_window_max, cycles, unstudied_min)
    return Evaluation(
        readings=len(series),
        start=instants[-2],
        end=instants[-1],
        min_c=float(temp[value].min()) if value.any() else None,
        max_c=float(temp[value].max()) if value.any() else None,
        mkt_c=mkt_c,
        mkt_window_max_c=mkt_window_max,
        time_in_range_min=_minutes(held[inside].sum()),
        time_above_range_min=_minutes(held[above].sum()),
        time_below_range_min=_minutes(held[below].sum()),
        data_gap_min=gap_min,
        excursions=excursion_list,
        alarms=alarm_list,
        budget=budget,
        verdict=verdict,
        freeze_thaw_cycles=cycles,
        ignored_min=_minutes(held[~series.counted].sum()),
        unstudied_min=unstudied_min,
    )
