"""Evaluation of 1,000,000 readings against a 2-8 °C profile: rules, a budget and MKT.

Two series, both unsorted as readings arrive:

- realistic: a year of 2-8 °C logging with ~55 excursions (hundreds of runs);
- pathological: a mean-reverting random walk around the 8 °C limit, ~10^5 runs above it,
  evaluated with an extra `for_min: 0` rule so every run is both an excursion and an alarm
  (the case where building one Python object per run used to dominate).

Baseline, measured in the same run on the same data: the least work any evaluation must
do — sort the readings by time and take the time-weighted mean of exp(-ΔH/RT) (one MKT).
The ratio says how many such passes the full evaluation costs; the absolute time is
printed for the issue's target (1,000,000 readings in under 2 s on the CI machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import numpy as np
import pandas as pd

from monitor.evaluation import evaluate
from monitor.profiles import DrugProfile, load_profile

N = 1_000_000
TARGET_S = 2.0
# `make bench` fails if evaluation costs more than this many baselines.
MAX_RATIO = {"realistic": 10.0, "pathological": 25.0}


def _frame(ts: np.ndarray, temp: np.ndarray, seed: int) -> pd.DataFrame:
    frame = pd.DataFrame({"ts": pd.to_datetime(ts, utc=True), "temp_c": temp})
    return frame.sample(frac=1.0, random_state=seed)  # unsorted, as readings arrive


def _start() -> np.datetime64:
    return np.datetime64(datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None), "ns")


def realistic(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = rng.choice([60, 60, 60, 300, 3600], size=n).astype("timedelta64[s]")
    ts = _start() + np.cumsum(steps).astype("timedelta64[ns]")
    # Daily swing and sensor noise around 5 °C, plus 50 warm excursions of about two
    # hours and 5 freezes (hundreds of runs, not 10^5).
    temp = 5 + 1.2 * np.sin(np.arange(n) / 720) + rng.normal(0, 0.2, n)
    for begin in rng.integers(0, n - 200, 55):
        temp[begin : begin + 120] = 10.5 if begin % 11 else -1.0
    return _frame(ts, temp, seed)


def pathological(n: int, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = _start() + (np.arange(n) * 60).astype("timedelta64[s]").astype("timedelta64[ns]")
    # AR(1) walk x_t = 0.9·x_{t-1} + ε around 8 °C: the sign changes on about
    # arccos(0.9)/π ≈ 14 % of steps, i.e. ~7·10^4 runs above the limit per 10^6 readings.
    noise = rng.normal(0, 0.3, n)
    walk = np.empty(n)
    walk[0] = 0.0
    for i in range(1, n):  # once, to build the data; not timed
        walk[i] = 0.9 * walk[i - 1] + noise[i]
    return _frame(ts, 8.0 + walk, seed)


def pathological_profile() -> DrugProfile:
    base = load_profile("refrigerated-2-8").model_dump(mode="json")
    base["rules"].append(
        {"id": "any-above", "above_c": 8.0, "mode": "single", "for_min": 0, "severity": "low"}
    )
    return DrugProfile.model_validate(base)


def _baseline(frame: pd.DataFrame) -> float:
    ordered = frame.sort_values("ts")
    minutes = ordered["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64) / 6e10
    held = np.diff(minutes, append=minutes[-1])
    factors = np.exp(-10_000 / (ordered["temp_c"].to_numpy() + 273.15))
    return float(10_000 / -np.log((held * factors).sum() / held.sum()) - 273.15)


def _best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run() -> None:
    cases = (
        ("realistic", realistic(N), load_profile("refrigerated-2-8")),
        ("pathological", pathological(N), pathological_profile()),
    )
    failures = []
    for name, frame, profile in cases:
        result = evaluate(profile, frame)
        baseline = _best_of(partial(_baseline, frame))
        full = _best_of(partial(evaluate, profile, frame))
        ratio = full / baseline
        print(
            f"evaluation  {name:<12} {N:,} readings, {len(result.excursions):,} excursions, "
            f"{len(result.alarms):,} alarms: {full:.3f} s (target < {TARGET_S:g} s); "
            f"baseline {baseline:.3f} s; ratio {ratio:.1f} (limit {MAX_RATIO[name]:g})"
        )
        if ratio > MAX_RATIO[name]:
            failures.append(f"{name} evaluation is {ratio:.1f}x the baseline")
    if failures:
        raise SystemExit("; ".join(failures))
