"""Evaluation semantics of DESIGN.md §6: golden cases with their arithmetic, and invariants."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.evaluation import evaluate
from monitor.profiles import STAGES, DrugProfile
from monitor.readings import read_readings_csv

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
Point = tuple[float, float | None] | tuple[float, float | None, str]


def _rule(rule_id: str, **fields: object) -> dict[str, object]:
    return {"id": rule_id, "mode": "single", "for_min": 0, "severity": "high", **fields}


def _profile(**overrides: object) -> DrugProfile:
    base: dict[str, object] = {
        "id": "test-2-8",
        "name": "test",
        "storage": {"min_c": 2.0, "max_c": 8.0},
        "max_gap_min": 30,
        "rules": [
            _rule("high-30m", above_c=8.0, for_min=30),
            _rule("freeze", below_c=0.0, severity="critical"),
            _rule("warm-cum", above_c=8.0, mode="cumulative", for_min=35, severity="medium"),
        ],
        "stability_budget": [{"above_c": 8.0, "up_to_c": 25.0, "budget_min": 45}],
        "mkt": {"window_h": 1, "max_c": 8.0},
        "source": "test",
    }
    base.update(overrides)
    return DrugProfile.model_validate(base)


def _bare(**overrides: object) -> DrugProfile:
    """A profile with nothing but a 2-8 °C range, to isolate one feature."""
    return _profile(**{"rules": [], "stability_budget": [], "mkt": None, **overrides})


def _series(points: list[Point]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=p[0]) for p in points],
            "temp_c": [np.nan if p[1] is None else p[1] for p in points],
        }
    )
    if points and len(points[0]) == 3:
        frame["stage"] = [p[2] for p in points]
    return frame


def _at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


GOLDEN = [
    (0, 5.0),
    (10, 9.0),
    (20, 10.0),
    (30, 9.5),
    (40, 7.0),
    (50, 5.0),
    (120, 5.0),
    (130, 9.0),
    (140, 5.0),
]


def test_golden_times_excursions_and_alarms() -> None:
    result = evaluate(_profile(), _series(GOLDEN))
    # Held: 0→10 in, 10..40 above (3×10), 40→50 in, 50→120 holds 30 (max gap) + 40 gap,
    # 120→130 in, 130→140 above, last reading holds 0.
    assert result.time_in_range_min == pytest.approx(10 + 10 + 30 + 10)
    assert result.time_above_range_min == pytest.approx(30 + 10)
    assert result.time_below_range_min == 0
    assert result.data_gap_min == pytest.approx(40)
    assert result.ignored_min == 0 and result.freeze_thaw_cycles == 0
    assert [(e.direction, e.start, e.end, e.duration_min, e.peak_c) for e in result.excursions] == [
        ("above", _at(10), _at(40), 30, 10.0),
        ("above", _at(130), _at(140), 10, 9.0),
    ]
    # high-30m: first run lasts exactly 30 → alarms at 10 + 30; the second (10 min) does not.
    # warm-cum: 10+10+10 = 30 by minute 40, then reaches 35 five minutes into 130 → 135.
    assert [(a.rule, a.at, a.start) for a in result.alarms] == [
        ("high-30m", _at(40), _at(10)),
        ("warm-cum", _at(135), _at(10)),
    ]
    assert result.budget[0].used_min == pytest.approx(40)
    assert result.budget[0].remaining_min == pytest.approx(5)
    assert result.verdict == "review"


def test_golden_mkt_matches_usp_formula() -> None:
    result = evaluate(_profile(), _series(GOLDEN))
    held = {5.0: 10 + 30 + 10, 9.0: 10 + 10, 10.0: 10, 9.5: 10, 7.0: 10}
    numerator = sum(t * math.exp(-10_000 / (c + 273.15)) for c, t in held.items())
    expected = 10_000 / -math.log(numerator / sum(held.values())) - 273.15
    assert result.mkt_c == pytest.approx(expected, abs=1e-9)
    assert result.min_c == 5.0 and result.max_c == 10.0


def test_mkt_over_the_whole_series_and_the_hottest_24_hour_window() -> None:
    # Hourly readings: 24 h at 5 °C, then 24 h at 10 °C, then a last reading at 48 h.
    points: list[Point] = [(60 * h, 5.0 if h < 24 else 10.0) for h in range(48)]
    points.append((60 * 48, 5.0))
    profile = _bare(max_gap_min=90, mkt={"window_h": 24, "max_c": 8.0})
    result = evaluate(profile, _series(points))
    # Whole series: equal weights → MKT = 10000 / −ln((e^(−10000/278.15) + e^(−10000/283.15))/2).
    mean_factor = (math.exp(-10_000 / 278.15) + math.exp(-10_000 / 283.15)) / 2
    assert result.mkt_c == pytest.approx(10_000 / -math.log(mean_factor) - 273.15, abs=1e-9)
    # e^(10000·(1/278.15 − 1/283.15)) = e^0.6349 = 1.887, so mean factor = 1.4434 × f(5 °C);
    # 1/T = 1/278.15 − ln(1.4434)/10000 = 0.0035952 − 0.0000367 → T = 281.02 K = 7.87 °C,
    # well above the 7.5 °C arithmetic mean: MKT weights warm time more.
    assert result.mkt_c == pytest.approx(7.87, abs=0.005)
    # Windows [ts_i, ts_i + 24 h] must end by 48 h: the last starts at 24 h, all at 10 °C.
    assert result.mkt_window_max_c == pytest.approx(10.0, abs=1e-9)
    assert result.verdict == "review"  # 10 °C window MKT > the 8 °C limit; nothing else


def test_windowed_mkt_is_the_whole_series_when_shorter_than_the_window() -> None:
    points: list[Point] = [(0, 5.0), (30, 12.0), (60, 5.0)]
    result = evaluate(_bare(mkt={"window_h": 24, "max_c": 8.0}), _series(points))
    assert result.mkt_window_max_c == result.mkt_c


def test_windowed_mkt_takes_the_hottest_window() -> None:
    # 3 h at 5 °C, then 1 h at 12 °C, then a last reading: the hottest 1 h window is the
    # 12 °C hour itself (windows start at readings and must fit inside the data).
    points = [(m, 5.0) for m in range(0, 180, 10)] + [(m, 12.0) for m in range(180, 240, 10)]
    points.append((240, 5.0))
    result = evaluate(_profile(max_gap_min=30), _series(points))
    assert result.mkt_window_max_c == pytest.approx(12.0)
    assert result.mkt_c is not None and 5.0 < result.mkt_c < 12.0
    assert result.verdict == "reject"  # 60 min in the 8-25 band exceeds the 45 min budget


def test_series_held_exactly_at_the_mkt_limit_is_accepted() -> None:
    # MKT of a flat 8.0 °C series is 8.0; float rounding must not make it "above" 8.0.
    points: list[Point] = [(m, 8.0) for m in range(0, 240, 10)]
    result = evaluate(_bare(mkt={"window_h": 1, "max_c": 8.0}), _series(points))
    assert result.mkt_c == 8.0 and result.mkt_window_max_c == 8.0
    assert result.verdict == "accept"


def test_single_rule_for_min_zero_alarms_on_any_reading_beyond() -> None:
    profile = _bare(rules=[_rule("any", above_c=8.0)])
    # 8.0 is not above 8.0 (strict); 8.1 at minute 20 alarms at once; the last reading
    # (9.0 at 40) is a run of zero held time, still open, and alarms too.
    points: list[Point] = [(0, 5.0), (10, 8.0), (20, 8.1), (30, 5.0), (40, 9.0)]
    result = evaluate(profile, _series(points))
    assert [(a.at, a.start) for a in result.alarms] == [(_at(20), _at(20)), (_at(40), _at(40))]
    assert [(e.start, e.end, e.duration_min) for e in result.excursions] == [
        (_at(20), _at(30), 10),
        (_at(40), None, 0),
    ]


def test_gap_ends_a_run_where_the_gap_begins() -> None:
    # 0:9, 10:9, then 50 min to the next reading: 30 held + 20 gap; the run ends at 40.
    profile = _bare(rules=[_rule("r", above_c=8.0, for_min=35)])
    result = evaluate(profile, _series([(0, 9.0), (10, 9.0), (60, 9.0), (70, 5.0)]))
    assert [(e.start, e.end, e.duration_min) for e in result.excursions] == [
        (_at(0), _at(40), 40),
        (_at(60), _at(70), 10),
    ]
    # The first run (40 min) reaches 35 at 0 + 35; the second (10 min) does not.
    assert [a.at for a in result.alarms] == [_at(35)]
    assert result.data_gap_min == pytest.approx(20)


def test_cumulative_alarm_fires_inside_the_held_interval_that_crosses() -> None:
    profile = _bare(rules=[_rule("cum", above_c=8.0, mode="cumulative", for_min=25)])
    points: list[Point] = [(0, 9.0), (10, 5.0), (20, 9.0), (30, 5.0), (40, 9.0), (60, 5.0)]
    result = evaluate(profile, _series(points))
    # Above: 0→10 (10), 20→30 (10), 40→60 (20). 20 by minute 30; 25 reached 5 min after 40.
    assert [(a.rule, a.at, a.start) for a in result.alarms] == [("cum", _at(45), _at(0))]


def test_open_run_has_no_end_and_freeze_is_critical() -> None:
    result = evaluate(_profile(), _series([(0, 5.0), (10, -0.5), (20, -1.0)]))
    [excursion] = result.excursions
    assert (excursion.direction, excursion.start, excursion.end) == ("below", _at(10), None)
    assert excursion.peak_c == -1.0
    assert [(a.rule, a.at) for a in result.alarms] == [("freeze", _at(10))]
    assert result.verdict == "reject"


def test_budget_bands_count_held_time_in_each_half_open_band() -> None:
    bands = [
        {"above_c": 8.0, "up_to_c": 15.0, "budget_min": 30},
        {"above_c": 15.0, "up_to_c": 25.0, "budget_min": 10},
    ]
    points: list[Point] = [(0, 5.0), (10, 8.0), (20, 15.0), (30, 15.5), (40, 25.0), (50, 25.5)]
    points.append((60, 5.0))
    result = evaluate(_bare(stability_budget=bands), _series(points))
    # 8.0 is in range (no band); 15.0 → (8, 15] only; 15.5 and 25.0 → (15, 25] and, being
    # hotter, (8, 15] too; 25.5 is above the top band: unstudied, in no band.
    assert [(b.used_min, b.remaining_min, b.exceeded) for b in result.budget] == [
        (30, 0, False),
        (20, -10, True),
    ]
    assert result.unstudied_min == pytest.approx(10)
    assert result.time_above_range_min == pytest.approx(40)
    assert result.verdict == "reject"  # a band is exceeded


def test_sensor_error_is_a_gap_not_in_range() -> None:
    result = evaluate(_profile(), _series([(0, 5.0), (10, None), (20, 5.0), (30, 5.0)]))
    assert result.time_in_range_min == pytest.approx(20)
    assert result.data_gap_min == pytest.approx(10)
    assert result.verdict == "review"


def test_sensor_error_breaks_a_run() -> None:
    profile = _bare(rules=[_rule("r", above_c=8.0, for_min=15)])
    result = evaluate(profile, _series([(0, 9.0), (10, None), (20, 9.0), (30, 5.0)]))
    # Two 10-minute runs, neither reaches 15.
    assert [(e.start, e.end) for e in result.excursions] == [
        (_at(0), _at(10)),
        (_at(20), _at(30)),
    ]
    assert result.alarms == []


VERDICTS = [
    ("clean", _bare(), [(0, 5.0), (10, 5.0)], "accept"),
    ("non-critical alarm", _bare(rules=[_rule("r", above_c=8.0)]), [(0, 9.0), (10, 5)], "review"),
    ("data gap", _bare(), [(0, 5.0), (60, 5.0)], "review"),
    ("window MKT", _bare(mkt={"window_h": 1, "max_c": 8}), [(0, 9.0), (10, 5.0)], "review"),
    ("critical alarm", _bare(rules=[_rule("r", below_c=2.0, severity="critical")]),
     [(0, 1.0), (10, 5.0)], "reject"),
    ("budget", _bare(stability_budget=[{"above_c": 8, "up_to_c": 25, "budget_min": 5}]),
     [(0, 9.0), (10, 5.0)], "reject"),
    ("freeze-thaw", _bare(storage={"min_c": -80, "max_c": 8}, freeze_thaw_max=0),
     [(0, -70.0), (10, 5.0), (20, -70.0)], "reject"),
    ("empty", _bare(), [], "review"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("profile", "points", "verdict"), [v[1:] for v in VERDICTS], ids=[v[0] for v in VERDICTS]
)
def test_each_verdict(profile: DrugProfile, points: list[Point], verdict: str) -> None:
    assert evaluate(profile, _series(points)).verdict == verdict


def test_timestamps_with_non_utc_offsets() -> None:
    kolkata, los_angeles = timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))
    utc = _series(GOLDEN)
    local = utc.copy()
    local["ts"] = [t.astimezone(kolkata if i % 2 else los_angeles) for i, t in enumerate(utc["ts"])]
    assert local["ts"].dtype == object  # mixed offsets: not one pandas time zone
    assert evaluate(_profile(), local) == evaluate(_profile(), utc)
    one_zone = utc.copy()
    one_zone["ts"] = one_zone["ts"].dt.tz_convert("Asia/Tokyo")
    result = evaluate(_profile(), one_zone)
    assert result.start == T0 and result.start.utcoffset() == timedelta(0)


def test_naive_times_and_bad_stages_are_refused() -> None:
    naive = _series(GOLDEN)
    naive["ts"] = naive["ts"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="no time zone"):
        evaluate(_profile(), naive)
    mixed = _series(GOLDEN).astype({"ts": object})
    mixed.loc[3, "ts"] = datetime(2026, 1, 5, 8, 30)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="ts at row 3 .* has no time zone"):
        evaluate(_profile(), mixed)
    with pytest.raises(ValueError, match="stage at row 1 is 'on the moon'"):
        evaluate(_profile(), _series([(0, 5.0, "origin"), (10, 5.0, "on the moon")]))
    with pytest.raises(ValueError, match="temp_c at row 0 is not a temperature"):
        evaluate(_profile(), _series([(0, -300.0), (10, 5.0)]))


def test_ignore_period_drops_the_first_minutes_from_everything_but_the_span() -> None:
    points: list[Point] = [(0, 20.0), (5, 12.0), (10, 9.0), (15, 5.0), (25, 9.0), (35, 5.0)]
    ignoring = _bare(ignore_period_min=15, rules=[_rule("any", above_c=8.0)])
    result = evaluate(ignoring, _series(points))
    # Readings at 0, 5, 10 are before 0 + 15: their 3 × 5 min are ignored. From 15: 10 min
    # in range, 25→35 above (10 min), the last reading holds 0. 15 + 10 + 10 = the 35 span.
    assert result.ignored_min == pytest.approx(15)
    assert (result.time_in_range_min, result.time_above_range_min) == (10, 10)
    assert [(e.start, e.end) for e in result.excursions] == [(_at(25), _at(35))]
    assert [a.at for a in result.alarms] == [_at(25)]
    assert (result.min_c, result.max_c, result.start) == (5.0, 9.0, _at(0))
    # Without the ignore period the start-up readings are an excursion from minute 0.
    plain = evaluate(_bare(rules=[_rule("any", above_c=8.0)]), _series(points))
    assert plain.excursions[0].start == _at(0) and plain.alarms[0].at == _at(0)


def test_a_reading_exactly_at_the_end_of_the_ignore_period_counts() -> None:
    result = evaluate(_bare(ignore_period_min=10), _series([(0, 9.0), (10, 9.0), (20, 5.0)]))
    assert [e.start for e in result.excursions] == [_at(10)]


STAGED: list[Point] = [
    (0, 9.0, "origin"),
    (10, 9.0, "in_transit"),
    (20, 9.0, "in_transit"),
    (30, 9.0, "destination"),
    (40, 9.0, "in_transit"),
    (50, 5.0, "in_transit"),
]


def test_stage_scoped_single_rule_counts_only_its_stages_and_breaks_runs() -> None:
    rule = _rule("transit-15", above_c=8.0, for_min=15, stages=["in_transit"])
    result = evaluate(_bare(rules=[rule]), _series(STAGED))
    # In scope: 10→20→30 (20 min, ends where the destination reading starts) → alarms at
    # 10 + 15 = 25; 40→50 (10 min) does not. Storage excursions ignore stages: one run 0→50.
    assert [(a.at, a.start) for a in result.alarms] == [(_at(25), _at(10))]
    assert [(e.start, e.end, e.duration_min) for e in result.excursions] == [(_at(0), _at(50), 50)]
    # Without a stage column every reading is in transit: one 50 min run, alarm at 0 + 15.
    unstaged = evaluate(_bare(rules=[rule]), _series([p[:2] for p in STAGED]))
    assert [(a.at, a.start) for a in unstaged.alarms] == [(_at(15), _at(0))]
    at_destination = _rule("dest", above_c=8.0, stages=["destination"])
    assert evaluate(_bare(rules=[at_destination]), _series([p[:2] for p in STAGED])).alarms == []


def test_stage_scoped_cumulative_rule_sums_only_its_stages() -> None:
    rule = _rule("cum", above_c=8.0, mode="cumulative", for_min=25, stages=["in_transit"])
    result = evaluate(_bare(rules=[rule]), _series(STAGED))
    # In transit above: 10→20, 20→30, 40→50 (10 each): 20 by minute 30, 25 at 40 + 5.
    assert [(a.at, a.start) for a in result.alarms] == [(_at(45), _at(10))]


FREEZE_THAW = [
    ([5, -1, 5], 1),  # froze and thawed
    ([5, -1], 0),  # frozen at the end: not yet a cycle
    ([-70, 5], 0),  # a frozen product thawed once (as at the treatment centre)
    ([-70, 5, -70], 1),  # thawed and refrozen
    ([5, -1, 5, -1, 5], 2),
    ([5, -1, 0, -2, 0, 3], 1),  # 0 °C changes nothing
    ([5, None, -1, None, 5], 1),  # sensor errors do not reset the state
    ([5, 0, 5, 0], 0),
]


@pytest.mark.parametrize(("temps", "cycles"), FREEZE_THAW)
def test_freeze_thaw_cycles(temps: list[float | None], cycles: int) -> None:
    profile = _bare(storage={"min_c": -80.0, "max_c": 8.0}, max_gap_min=60)
    series = _series([(10 * i, t) for i, t in enumerate(temps)])
    assert evaluate(profile, series).freeze_thaw_cycles == cycles


def test_freeze_thaw_limit_decides_the_verdict_and_gaps_do_not_reset() -> None:
    # A 3-hour gap between the freeze and the thaw still completes the cycle.
    points: list[Point] = [(0, 5.0), (10, -3.0), (200, 5.0), (210, -3.0), (220, 5.0)]
    allowing_one = _bare(storage={"min_c": -80.0, "max_c": 8.0}, freeze_thaw_max=1)
    result = evaluate(allowing_one, _series(points))
    assert result.freeze_thaw_cycles == 2 and result.verdict == "reject"
    assert evaluate(allowing_one, _series(points[:3])).verdict == "review"  # 1 cycle, the gap


def test_ignored_readings_do_not_count_toward_freeze_thaw() -> None:
    points: list[Point] = [(0, 20.0), (5, -70.0), (30, 5.0)]
    profile = _bare(storage={"min_c": -80.0, "max_c": -60.0})
    assert evaluate(profile, _series(points)).freeze_thaw_cycles == 1
    assert evaluate(profile.model_copy(update={"ignore_period_min": 5}), _series(points)) \
        .freeze_thaw_cycles == 0  # fmt: skip


def test_clean_series_is_accepted() -> None:
    result = evaluate(_profile(), _series([(m, 5.0) for m in range(0, 600, 10)]))
    assert result.verdict == "accept" and result.alarms == [] and result.excursions == []
    assert result.mkt_c == pytest.approx(5.0)


def test_empty_series() -> None:
    result = evaluate(_profile(), _series([]))
    assert result.readings == 0 and result.verdict == "review" and result.mkt_c is None


def test_json_has_contract_keys_and_the_new_fields() -> None:
    report = evaluate(_profile(), _series(GOLDEN)).to_json()
    assert {
        "readings", "start", "end", "min_c", "max_c", "mkt_c", "mkt_window_max_c",
        "time_in_range_min", "time_above_range_min", "time_below_range_min", "data_gap_min",
        "excursions", "alarms", "budget", "verdict", "freeze_thaw_cycles", "ignored_min",
    } <= set(report)  # fmt: skip
    assert report["start"] == "2026-01-05T08:00:00Z"
    assert report["excursions"][0] == {
        "direction": "above",
        "start": "2026-01-05T08:10:00Z",
        "end": "2026-01-05T08:40:00Z",
        "duration_min": 30,
        "peak_c": 10.0,
    }
    assert report["alarms"][1] == {
        "rule": "warm-cum",
        "severity": "medium",
        "at": "2026-01-05T10:15:00Z",
        "start": "2026-01-05T08:10:00Z",
    }


# -- the CSV boundary ------------------------------------------------------------------------


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "readings.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_unsorted_duplicates_sensor_errors_offsets_and_stage(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "ts,temp_c,stage\n"
        "2026-01-05T10:20:00+02:00,9.0,in_transit\n"  # 08:20Z
        "2026-01-05T08:00:00Z,5.0,origin\n"
        "\n"
        "2026-01-05T03:10:00-05:00,,in_transit\n"  # 08:10Z, sensor error
        "2026-01-05T08:00:00Z,5.0,origin\n"  # exact duplicate
        " 2026-01-05T08:30:00Z , 5.5 , destination\n",
    )
    frame = read_readings_csv(path)
    result = evaluate(_bare(), frame)
    # 08:00 in (10), 08:10 sensor error (10 gap), 08:20 above (10), 08:30 last.
    assert result.readings == 4
    assert (result.time_in_range_min, result.data_gap_min, result.time_above_range_min) == (
        10,
        10,
        10,
    )
    assert list(frame["stage"]) == ["in_transit", "origin", "in_transit", "origin", "destination"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("time,temp\n1,2\n", "missing column(s) temp_c, ts"),
        ("ts,temp_c,probe\n", "unknown column(s) probe"),
        ("ts,temp_c\n2026-01-05T08:00:00Z,5\n2026-01-05T08:10:00,5\n",
         "line 3, column ts: '2026-01-05T08:10:00' has no UTC offset"),
        ("ts,temp_c\n2026-02-30T08:00:00Z,5\n", "line 2, column ts: '2026-02-30T08:00:00Z' is not"),
        ("ts,temp_c\n,5\n", "line 2, column ts: '' is empty"),
        ("ts,temp_c\n2026-01-05T08:00:00Z,warm\n2026-01-05T08:10:00Z,nan\n",
         "line 2, column temp_c: 'warm' is not a number .*1 more such line"),
        ("ts,temp_c\n2026-01-05T08:00:00Z,-300\n",
         "line 2, column temp_c: '-300' is below absolute zero"),
        ("ts,temp_c,stage\n2026-01-05T08:00:00Z,5,\n", "line 2, column stage: '' is not one of"),
        ("ts,temp_c\n2026-01-05T08:00:00Z,5,6\n", "not a readable CSV .*line 2, saw 3"),
        ("ts,ts,temp_c\n", "repeated column"),
    ],
)  # fmt: skip
def test_csv_errors_name_the_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_readings_csv(_csv(tmp_path, text))


def test_cli_refuses_bad_csv_without_a_traceback(tmp_path: Path) -> None:
    path = _csv(tmp_path, "ts,temp_c\n2026-01-05T08:00:00Z,5\n2026-01-05 08:10,5\n")
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "monitor", "evaluate", "--profile", "adalimumab-pen",
         "--readings", path],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert "line 3, column ts" in done.stderr and "Traceback" not in done.stderr


# -- a reference evaluator, written straight from DESIGN.md §6, one reading at a time ----------


@dataclass
class _Held:
    minute: float
    temp: float | None
    stage: str
    held: float
    gap: float
    counted: bool


def _reference_rows(
    profile: DrugProfile, points: list[tuple[int, float | None, str]]
) -> list[_Held]:
    first: dict[int, tuple[float | None, str]] = {}
    for minute, temp, stage in points:
        first.setdefault(minute, (temp, stage))  # the first reading at a time is the reading
    ordered = sorted(first.items())
    rows = []
    for i, (minute, (temp, stage)) in enumerate(ordered):
        interval = (ordered[i + 1][0] if i + 1 < len(ordered) else minute) - minute
        held = min(interval, profile.max_gap_min) if temp is not None else 0
        counted = minute >= ordered[0][0] + profile.ignore_period_min
        rows.append(_Held(minute, temp, stage, held, interval - held, counted))
    return rows


def _reference_runs(rows: list[_Held], beyond: list[bool]) -> list[list[_Held]]:
    runs, current = [], None
    for row, is_beyond in zip(rows, beyond, strict=True):
        if is_beyond:
            current = (current or []) + [row]
            if row.gap > 0:  # a gap ends the run where it begins
                runs.append(current)
                current = None
        elif current is not None:
            runs.append(current)
            current = None
    return runs + ([current] if current else [])


def _reference(
    profile: DrugProfile, points: list[tuple[int, float | None, str]]
) -> dict[str, object]:
    rows = _reference_rows(profile, points)
    last = rows[-1]

    def beyond(row: _Held, direction: str, threshold: float, stages: tuple[str, ...]) -> bool:
        if row.temp is None or not row.counted or row.stage not in stages:
            return False
        return row.temp > threshold if direction == "above" else row.temp < threshold

    excursions = []
    for direction, limit in (("above", profile.storage.max_c), ("below", profile.storage.min_c)):
        for run in _reference_runs(rows, [beyond(r, direction, limit, STAGES) for r in rows]):
            temps = [r.temp for r in run if r.temp is not None]
            excursions.append((
                direction, run[0].minute,
                None if run[-1] is last else run[-1].minute + run[-1].held,
                sum(r.held for r in run), max(temps) if direction == "above" else min(temps),
            ))  # fmt: skip
    alarms = []
    for rule in profile.rules:
        hits = [beyond(r, rule.direction, rule.threshold_c, rule.stages) for r in rows]
        if rule.mode == "single":
            for run in _reference_runs(rows, hits):
                if sum(r.held for r in run) >= rule.for_min:
                    alarms.append((run[0].minute + rule.for_min, rule.id, run[0].minute))
            continue
        total, start = 0.0, None
        for row, hit in zip(rows, hits, strict=True):
            if hit:
                start = row.minute if start is None else start
                if total + row.held >= rule.for_min:
                    alarms.append((row.minute + rule.for_min - total, rule.id, start))
                    break
                total += row.held
    return {
        "excursions": sorted(excursions, key=lambda e: e[1]),
        "alarms": sorted(alarms),
        "in": sum(r.held for r in rows if r.counted and r.temp is not None
                  and profile.storage.min_c <= r.temp <= profile.storage.max_c),
        "gap": sum(r.gap for r in rows),
        "ignored": sum(r.held for r in rows if not r.counted),
    }  # fmt: skip


def _minutes(value: datetime | None) -> float | None:
    return None if value is None else (value - T0).total_seconds() / 60


staged_points = st.lists(
    st.tuples(
        st.integers(0, 400),
        st.one_of(st.none(), st.sampled_from([-1.0, 0.0, 1.5, 2.0, 5.0, 8.0, 8.5, 12.0])),
        st.sampled_from(STAGES),
    ),
    min_size=1,
    max_size=40,
)
rules_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "direction": st.sampled_from(["above_c", "below_c"]),
            "threshold": st.sampled_from([0.0, 2.0, 5.0, 8.0]),
            "mode": st.sampled_from(["single", "cumulative"]),
            "for_min": st.sampled_from([0, 5, 10, 30]),
            "stages": st.lists(st.sampled_from(STAGES), min_size=1, max_size=3, unique=True),
        }
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(
    staged_points,
    rules_strategy,
    st.sampled_from([5, 10, 30]),
    st.sampled_from([0, 5, 20]),
)
def test_matches_the_reference_evaluator(
    points: list[tuple[int, float | None, str]],
    rules: list[dict[str, object]],
    max_gap: int,
    ignore: int,
) -> None:
    profile = _bare(
        max_gap_min=max_gap,
        ignore_period_min=ignore,
        rules=[
            _rule(f"r{i}", **{str(r["direction"]): r["threshold"]}, mode=r["mode"],
                  for_min=r["for_min"], stages=r["stages"])
            for i, r in enumerate(rules)
        ],
    )  # fmt: skip
    result = evaluate(profile, _series(points))
    expected = _reference(profile, points)
    excursions = [
        (e.direction, _minutes(e.start), _minutes(e.end), e.duration_min, e.peak_c)
        for e in result.excursions
    ]
    # Whole minutes and exact temperatures: everything compares exactly.
    assert excursions == expected["excursions"]
    alarms = [(_minutes(a.at), a.rule, _minutes(a.start)) for a in result.alarms]
    assert alarms == expected["alarms"]
    assert result.time_in_range_min == pytest.approx(expected["in"])
    assert result.data_gap_min == pytest.approx(expected["gap"])
    assert result.ignored_min == pytest.approx(expected["ignored"])


# -- invariants ------------------------------------------------------------------------------

readings_strategy = st.lists(
    st.tuples(
        st.integers(0, 2000), st.one_of(st.none(), st.floats(-5, 30).map(lambda x: round(x, 1)))
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda p: p[0],
)


@settings(max_examples=150, deadline=None)
@given(readings_strategy, st.sampled_from([0, 15, 120]))
def test_time_accounts_for_the_whole_span(
    points: list[tuple[int, float | None]], ignore: int
) -> None:
    result = evaluate(_profile(ignore_period_min=ignore), _series(points))
    span = max(m for m, _ in points) - min(m for m, _ in points)
    total = (
        result.time_in_range_min
        + result.time_above_range_min
        + result.time_below_range_min
        + result.data_gap_min
        + result.ignored_min
    )
    assert total == pytest.approx(span)


@settings(max_examples=150, deadline=None)
@given(readings_strategy)
def test_mkt_lies_between_held_extremes(points: list[tuple[int, float | None]]) -> None:
    result = evaluate(_profile(max_gap_min=2000), _series(points))
    ordered = sorted(points)
    held = [t for (_, t), _next in zip(ordered, ordered[1:], strict=False) if t is not None]
    if result.mkt_c is None:
        assert held == []
        return
    assert min(held) <= result.mkt_c <= max(held)
    # None when no window that fits inside the data holds any time.
    if result.mkt_window_max_c is not None:
        assert min(held) <= result.mkt_window_max_c <= max(held)


@settings(max_examples=100, deadline=None)
@given(staged_points, st.randoms(use_true_random=False))
def test_order_and_exact_duplicates_change_nothing(
    points: list[tuple[int, float | None, str]], rnd: random.Random
) -> None:
    distinct = list({p[0]: p for p in points}.values())  # one reading per time
    shuffled = distinct + distinct[: len(distinct) // 2]
    rnd.shuffle(shuffled)
    profile = _profile(rules=[_rule("t", above_c=8.0, for_min=10, stages=["in_transit"])])
    assert evaluate(profile, _series(distinct)) == evaluate(profile, _series(shuffled))


@settings(max_examples=150, deadline=None)
@given(
    readings_strategy,
    st.floats(0, 15),
    st.floats(0, 5),
    st.sampled_from(["above_c", "below_c"]),
    st.sampled_from(["single", "cumulative"]),
    st.integers(0, 90),
)
def test_less_strict_threshold_alarms_no_later(
    points: list[tuple[int, float | None]],
    strict: float,
    relax: float,
    direction: str,
    mode: str,
    for_min: int,
) -> None:
    def first_alarm(threshold: float) -> datetime | None:
        rule = _rule("r", **{direction: threshold}, mode=mode, for_min=for_min)
        alarms = evaluate(_bare(rules=[rule]), _series(points)).alarms
        return alarms[0].at if alarms else None

    strict_at = first_alarm(strict)
    if strict_at is not None:
        relaxed_at = first_alarm(strict - relax if direction == "above_c" else strict + relax)
        assert relaxed_at is not None and relaxed_at <= strict_at


# -- the people-facing table -----------------------------------------------------------------


def test_table_shows_cycles_ignored_time_allowance_and_exceeded_bands() -> None:
    from monitor.report import format_table

    profile = _profile(
        ignore_period_min=5,
        freeze_thaw_max=0,
        expiry_reduction={"use_within": 14, "unit": "days"},
        may_return_to_storage=True,
        storage={"min_c": -80.0, "max_c": 8.0},
    )
    points: list[Point] = [(0, 20.0), (10, 9.0), (70, 9.0), (80, -1.0), (90, 5.0)]
    table = format_table(profile, evaluate(profile, _series(points)))
    # The reading at 0 is before 0 + 5 and holds 10 min; 10→70 holds 30 above (+30 gap),
    # 70→80 holds 10 above: 40 min in the 8-25 band. −1 at 80, then 5 at 90: one cycle.
    assert "ignored (first 5 min) 10.0" in table
    assert "Freeze–thaw cycles 1 (limit 0)" in table
    assert "may return to storage: yes; freeze-sensitive: no" in table
    assert "use within 14 days of 2026-01-05T08:10:00Z (first excursion above range)" in table
    assert "8..25 °C  used 40.0 of 45 min, remaining 5.0" in table
    assert "Proposed verdict: REJECT" in table
