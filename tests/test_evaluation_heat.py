"""Heat is monotone (DESIGN.md §6 steps 5 and 7): hotter never reads as safer.

Stability-budget bands count held time from their own lower bound up to the top band's
``up_to_c``; held time above that is unstudied exposure (``unstudied_min``), which rejects.
Also: instants evaluation cannot represent are refused, never wrapped onto real times.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from monitor.evaluation import evaluate
from monitor.models import Evaluation
from monitor.profiles import DrugProfile, catalog

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_RANK = {"accept": 0, "review": 1, "reject": 2}


def _frame(points: list[tuple[float, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=m) for m, _ in points],
            "temp_c": [np.nan if t is None else t for _, t in points],
        }
    )


def _warm_day(hot_c: float) -> pd.DataFrame:
    """2 h at 5 °C, then 25 h at ``hot_c``: readings every 10 min, a last one back at 5 °C."""
    points: list[tuple[float, float | None]] = [(m, 5.0) for m in range(0, 120, 10)]
    points += [(m, hot_c) for m in range(120, 120 + 25 * 60, 10)]
    points.append((120 + 25 * 60, 5.0))
    return _frame(points)


# -- the reproduction of issue 13 item 1 -------------------------------------------------------


@pytest.mark.parametrize("profile_id", ["refrigerated-2-8", "adalimumab-pen"])
def test_forty_degrees_is_never_more_lenient_than_twenty(profile_id: str) -> None:
    profile = catalog()[profile_id]
    at_20 = evaluate(profile, _warm_day(20.0))
    at_40 = evaluate(profile, _warm_day(40.0))
    # 20 °C lies in the (8, 25] band: 25 h = 1500 min of it.
    assert at_20.budget[0].used_min == pytest.approx(1500)
    assert at_20.unstudied_min == 0
    # 40 °C is above every band: no stability data covers it. 25 h of unstudied exposure.
    assert at_40.unstudied_min == pytest.approx(1500)
    assert at_40.verdict == "reject"
    assert _RANK[at_40.verdict] >= _RANK[at_20.verdict]


def test_a_single_reading_of_unstudied_heat_rejects_an_otherwise_clean_series() -> None:
    profile = catalog()["adalimumab-pen"]
    # 10 min at 26 °C: in no band (above 25), too short for high-30m, warm-cumulative or
    # the MKT limit to matter much; only unstudied exposure can reject it.
    result = evaluate(profile, _frame([(0, 5.0), (600, 5.0), (610, 26.0), (620, 5.0)]))
    assert result.unstudied_min == pytest.approx(10)
    assert result.budget[0].used_min == 0
    assert not any(a.severity.value == "critical" for a in result.alarms)
    assert result.verdict == "reject"


def test_hotter_bands_count_against_every_cooler_band() -> None:
    profile = DrugProfile.model_validate(
        {
            "id": "two-bands",
            "name": "two bands",
            "storage": {"min_c": 2.0, "max_c": 8.0},
            "stability_budget": [
                {"above_c": 8.0, "up_to_c": 15.0, "budget_min": 100},
                {"above_c": 15.0, "up_to_c": 25.0, "budget_min": 40},
            ],
            "source": "test",
        }
    )
    # Held: 10 min at 5 (in range), 20 min at 12, 30 min at 20, 5 min at 30, then 5 °C.
    result = evaluate(profile, _frame([(0, 5.0), (10, 12.0), (30, 20.0), (60, 30.0), (65, 5.0)]))
    cool, hot = result.budget
    # (8, 15]: 12 °C for 20 min plus 20 °C for 30 min (hotter counts too) = 50 min.
    assert cool.used_min == pytest.approx(50)
    # (15, 25]: only the 30 min at 20 °C.
    assert hot.used_min == pytest.approx(30)
    # 30 °C is above the top band's 25 °C: 5 min unstudied, not in any band.
    assert result.unstudied_min == pytest.approx(5)
    assert result.verdict == "reject"


def test_a_profile_without_a_budget_has_no_unstudied_exposure() -> None:
    profile = catalog()["freezer"]
    result = evaluate(profile, _frame([(0, -20.0), (20, 3.0), (40, -20.0)]))
    assert result.unstudied_min == 0
    assert result.to_json()["unstudied_min"] == 0


def test_monitor_evaluate_json_reports_unstudied_minutes(tmp_path: Path) -> None:
    csv = tmp_path / "hot.csv"
    csv.write_text(
        "ts,temp_c\n"
        + "".join(
            f"{ts.isoformat().replace('+00:00', 'Z')},{temp}\n"
            for ts, temp in zip(_warm_day(40.0)["ts"], _warm_day(40.0)["temp_c"], strict=True)
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "monitor", "evaluate", "--profile",
         "refrigerated-2-8", "--readings", str(csv), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["unstudied_min"] == pytest.approx(1500)
    assert out["verdict"] == "reject"


# -- an independent computation of bands and unstudied time, one reading at a time ------------


def _reference_exposure(
    profile: DrugProfile, points: list[tuple[int, float]]
) -> tuple[list[float], float]:
    ordered = sorted(dict(points).items())
    bands = profile.stability_budget
    top = max((b.up_to_c for b in bands), default=None)
    used = [0.0] * len(bands)
    unstudied = 0.0
    start = ordered[0][0]
    for i, (minute, temp) in enumerate(ordered[:-1]):
        if minute < start + profile.ignore_period_min:
            continue
        held = min(ordered[i + 1][0] - minute, profile.max_gap_min)
        for j, band in enumerate(bands):
            if top is not None and band.above_c < temp <= top:
                used[j] += held
        if top is not None and temp > top:
            unstudied += held
    return used, unstudied


# Temperatures around every catalog profile's bands, ranges and rule thresholds.
_temps = st.floats(-200.0, 60.0, allow_nan=False).map(lambda x: round(x, 1))
_points = st.lists(
    st.tuples(st.integers(0, 3000), _temps), min_size=2, max_size=40, unique_by=lambda p: p[0]
)
_profiles = st.sampled_from(sorted(catalog()))


@settings(max_examples=200, deadline=None)
@given(_profiles, _points)
def test_bands_and_unstudied_time_match_the_reference(
    profile_id: str, points: list[tuple[int, float]]
) -> None:
    profile = catalog()[profile_id]
    result = evaluate(profile, _frame([(m, t) for m, t in points]))
    used, unstudied = _reference_exposure(profile, points)
    assert [b.used_min for b in result.budget] == pytest.approx(used)
    assert result.unstudied_min == pytest.approx(unstudied)


def _harm(result: Evaluation) -> dict[str, float]:
    """Every figure that measures harm done by heat; none may shrink when a reading heats."""
    figures = {
        "verdict": _RANK[result.verdict],
        "max_c": result.max_c if result.max_c is not None else -np.inf,
        "mkt_c": result.mkt_c if result.mkt_c is not None else -np.inf,
        "mkt_window_max_c": (
            result.mkt_window_max_c if result.mkt_window_max_c is not None else -np.inf
        ),
        "time_above_range_min": result.time_above_range_min,
        "unstudied_min": result.unstudied_min,
    }
    for i, band in enumerate(result.budget):
        # Heat moves time from a band into unstudied exposure, never out of harm: the time
        # at or above each band's lower bound is what must not shrink.
        figures[f"band{i}_and_hotter"] = band.used_min + result.unstudied_min
    return figures


@settings(max_examples=400, deadline=None)
@given(_profiles, _points, st.data())
def test_making_an_above_range_reading_hotter_never_makes_anything_look_safer(
    profile_id: str, points: list[tuple[int, float]], data: st.DataObject
) -> None:
    profile = catalog()[profile_id]
    above = [i for i, (_, t) in enumerate(points) if t > profile.storage.max_c]
    assume(above)
    i = data.draw(st.sampled_from(above))
    delta = data.draw(st.floats(0.1, 80.0).map(lambda x: round(x, 1)))
    hotter = list(points)
    hotter[i] = (points[i][0], round(points[i][1] + delta, 1))
    before = evaluate(profile, _frame([(m, t) for m, t in points]))
    after = evaluate(profile, _frame([(m, t) for m, t in hotter]))
    harm_before, harm_after = _harm(before), _harm(after)
    for figure, value in harm_before.items():
        assert harm_after[figure] >= value - 1e-6, figure
    # Every rule that alarmed still alarms, and never later.
    first_before = {a.rule: a.at for a in reversed(before.alarms)}
    first_after = {a.rule: a.at for a in reversed(after.alarms)}
    for rule, at in first_before.items():
        assert rule in first_after and first_after[rule] <= at, rule


# -- instants that cannot be represented are refused, never wrapped ----------------------------


@pytest.mark.parametrize(
    "ts",
    [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        # now + 2**64 ns: wrapped onto a real 2026 instant by a unit conversion.
        T0 + timedelta(microseconds=2**64 // 1000),
        datetime(1, 1, 1, tzinfo=UTC),
    ],
)
def test_unrepresentable_instants_are_refused_not_wrapped(ts: datetime) -> None:
    profile = catalog()["refrigerated-2-8"]
    frame = _frame([(m, 12.0) for m in range(0, 460, 10)])
    frame.loc[len(frame)] = [ts, 4.0]
    with pytest.raises(ValueError, match="ts at row 46"):
        evaluate(profile, frame)


def test_wrapped_readings_cannot_cut_an_excursion_into_pieces() -> None:
    """The issue's attack: 90 readings near 2611 at 4 °C used to land inside a real run."""
    profile = catalog()["refrigerated-2-8"]
    real = _frame([(m, 12.0) for m in range(0, 460, 5)])
    assert [a.rule for a in evaluate(profile, real).alarms].count("high-30m") == 1
    far = T0 + timedelta(microseconds=2**64 // 1000)
    injected = pd.DataFrame({"ts": [far + timedelta(minutes=5 * k) for k in range(90)]})
    injected["temp_c"] = 4.0
    with pytest.raises(ValueError, match="cannot be represented|outside"):
        evaluate(profile, pd.concat([real, injected], ignore_index=True))
