"""Evaluation semantics of DESIGN.md §6: golden cases with their arithmetic, and invariants."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.evaluation import evaluate
from monitor.profiles import DrugProfile, ProfileError, load_profile, parse_profile

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _profile(**overrides: object) -> DrugProfile:
    base: dict[str, object] = {
        "id": "test-2-8",
        "name": "test",
        "storage": {"min_c": 2.0, "max_c": 8.0},
        "max_gap_min": 30,
        "rules": [
            {"id": "high-30m", "above_c": 8.0, "mode": "single", "for_min": 30, "severity": "high"},
            {
                "id": "freeze",
                "below_c": 0.0,
                "mode": "single",
                "for_min": 0,
                "severity": "critical",
            },
            {
                "id": "warm-cum",
                "above_c": 8.0,
                "mode": "cumulative",
                "for_min": 35,
                "severity": "medium",
            },
        ],
        "stability_budget": [{"above_c": 8.0, "up_to_c": 25.0, "budget_min": 45}],
        "mkt": {"window_h": 1, "max_c": 8.0},
        "source": "test",
    }
    base.update(overrides)
    return DrugProfile.model_validate(base)


def _series(points: list[tuple[float, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=m) for m, _ in points],
            "temp_c": [np.nan if t is None else t for _, t in points],
        }
    )


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
    assert [(e.start, e.end, e.duration_min, e.peak_c) for e in result.excursions] == [
        (_at(10), _at(40), 30, 10.0),
        (_at(130), _at(140), 10, 9.0),
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


def test_windowed_mkt_takes_the_hottest_window() -> None:
    # 3 h at 5 °C, then 1 h at 12 °C, then a last reading: the hottest 1 h window is the
    # 12 °C hour itself (windows start at readings and must fit inside the data).
    points = [(m, 5.0) for m in range(0, 180, 10)] + [(m, 12.0) for m in range(180, 240, 10)]
    points.append((240, 5.0))
    result = evaluate(_profile(max_gap_min=30), _series(points))
    assert result.mkt_window_max_c == pytest.approx(12.0)
    assert result.mkt_c is not None and 5.0 < result.mkt_c < 12.0
    assert result.verdict == "reject"  # 60 min in the 8-25 band exceeds the 45 min budget


def test_gap_ends_a_run_where_the_gap_begins() -> None:
    # 0:9, 10:9, then 50 min to the next reading: 30 held + 20 gap; the run ends at 40.
    profile = _profile(
        rules=[{"id": "r", "above_c": 8.0, "mode": "single", "for_min": 35, "severity": "high"}]
    )
    result = evaluate(profile, _series([(0, 9.0), (10, 9.0), (60, 9.0), (70, 5.0)]))
    assert [(e.start, e.end, e.duration_min) for e in result.excursions] == [
        (_at(0), _at(40), 40),
        (_at(60), _at(70), 10),
    ]
    assert [a.at for a in result.alarms] == [_at(35)]
    assert result.data_gap_min == pytest.approx(20)


def test_open_run_has_no_end_and_freeze_is_critical() -> None:
    result = evaluate(_profile(), _series([(0, 5.0), (10, -0.5), (20, -1.0)]))
    [excursion] = result.excursions
    assert (excursion.direction, excursion.start, excursion.end) == ("below", _at(10), None)
    assert excursion.peak_c == -1.0
    assert [(a.rule, a.at) for a in result.alarms] == [("freeze", _at(10))]
    assert result.verdict == "reject"


def test_sensor_error_is_a_gap_not_in_range() -> None:
    result = evaluate(_profile(), _series([(0, 5.0), (10, None), (20, 5.0), (30, 5.0)]))
    assert result.time_in_range_min == pytest.approx(20)
    assert result.data_gap_min == pytest.approx(10)
    assert result.verdict == "review"


def test_clean_series_is_accepted() -> None:
    result = evaluate(_profile(), _series([(m, 5.0) for m in range(0, 600, 10)]))
    assert result.verdict == "accept" and result.alarms == [] and result.excursions == []
    assert result.mkt_c == pytest.approx(5.0)


def test_empty_series() -> None:
    result = evaluate(_profile(), _series([]))
    assert result.readings == 0 and result.verdict == "review" and result.mkt_c is None


def test_json_has_contract_keys() -> None:
    keys = set(evaluate(_profile(), _series(GOLDEN)).to_json())
    assert {
        "readings",
        "start",
        "end",
        "min_c",
        "max_c",
        "mkt_c",
        "mkt_window_max_c",
        "time_in_range_min",
        "time_above_range_min",
        "time_below_range_min",
        "data_gap_min",
        "excursions",
        "alarms",
        "budget",
        "verdict",
    } <= keys


def test_profile_errors_name_file_and_field() -> None:
    with pytest.raises(
        ProfileError, match=r"x\.yaml: rules\.0: .*exactly one of above_c or below_c"
    ):
        parse_profile(
            "id: a\nname: a\nsource: s\nstorage: {min_c: 2, max_c: 8}\n"
            "rules: [{id: r, mode: single, for_min: 1, severity: high}]",
            "x.yaml",
        )
    with pytest.raises(ProfileError, match="storage: .*min_c 9.0 is above max_c 8.0"):
        parse_profile("id: a\nname: a\nsource: s\nstorage: {min_c: 9, max_c: 8}", "y.yaml")
    with pytest.raises(ProfileError, match="no profile 'nope'; shipped profiles: "):
        load_profile("nope")


def test_shipped_catalog_loads() -> None:
    profile = load_profile("adalimumab-pen")
    assert profile.storage.max_c == 8.0 and profile.source


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
@given(readings_strategy)
def test_time_accounts_for_the_whole_span(points: list[tuple[int, float | None]]) -> None:
    result = evaluate(_profile(), _series(points))
    span = max(m for m, _ in points) - min(m for m, _ in points)
    total = (
        result.time_in_range_min
        + result.time_above_range_min
        + result.time_below_range_min
        + result.data_gap_min
    )
    assert total == pytest.approx(span)


@settings(max_examples=150, deadline=None)
@given(readings_strategy)
def test_mkt_lies_between_held_extremes(points: list[tuple[int, float | None]]) -> None:
    result = evaluate(_profile(), _series(points))
    if result.mkt_c is not None:
        ordered = sorted(points)
        held = [t for (_, t), (_nm, _) in zip(ordered, ordered[1:], strict=False) if t is not None]
        assert min(held) - 1e-9 <= result.mkt_c <= max(held) + 1e-9


@settings(max_examples=100, deadline=None)
@given(readings_strategy, st.randoms(use_true_random=False))
def test_order_and_exact_duplicates_change_nothing(
    points: list[tuple[int, float | None]], rnd: object
) -> None:
    shuffled = points + points[: len(points) // 2]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert evaluate(_profile(), _series(points)) == evaluate(_profile(), _series(shuffled))


@settings(max_examples=150, deadline=None)
@given(
    readings_strategy,
    st.floats(0, 15),
    st.floats(0, 5),
    st.sampled_from(["single", "cumulative"]),
    st.integers(0, 90),
)
def test_less_strict_threshold_alarms_no_later(
    points: list[tuple[int, float | None]], strict: float, relax: float, mode: str, for_min: int
) -> None:
    def first_alarm(threshold: float) -> datetime | None:
        profile = _profile(
            rules=[
                {
                    "id": "r",
                    "above_c": threshold,
                    "mode": mode,
                    "for_min": for_min,
                    "severity": "high",
                }
            ]
        )
        alarms = evaluate(profile, _series(points)).alarms
        return alarms[0].at if alarms else None

    strict_at = first_alarm(strict)
    if strict_at is not None:
        relaxed_at = first_alarm(strict - relax)
        assert relaxed_at is not None and relaxed_at <= strict_at
