"""The people-facing table of `coldchain monitor evaluate --format table`."""

from __future__ import annotations

from datetime import datetime

from core.clock import isoformat_utc
from monitor.models import Evaluation
from monitor.profiles import DrugProfile


def _num(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.2f}{unit}"


def _when(value: datetime | None) -> str:
    return "open" if value is None else isoformat_utc(value)


def _allowance(profile: DrugProfile, result: Evaluation) -> list[str]:
    """What the label allows after an excursion, tied to this series where it can be."""
    first_warm = next((e.start for e in result.excursions if e.direction == "above"), None)
    lines = [
        f"Label      may return to storage: {'yes' if profile.may_return_to_storage else 'no'}"
        f"; freeze-sensitive: {'yes' if profile.freeze_sensitive else 'no'}"
    ]
    reduction = profile.expiry_reduction
    if reduction is not None:
        since = (
            f"of {isoformat_utc(first_warm)} (first excursion above range)"
            if first_warm is not None
            else "of the first excursion above range (none here)"
        )
        lines.append(
            f"           use within {reduction.use_within:g} {reduction.unit} {since}, by expiry"
        )
    return lines


def format_table(profile: DrugProfile, result: Evaluation) -> str:
    freeze_limit = (
        f" (limit {profile.freeze_thaw_max})" if profile.freeze_thaw_max is not None else ""
    )
    lines = [
        f"Profile    {profile.id} — {profile.name} "
        f"(storage {profile.storage.min_c:g}..{profile.storage.max_c:g} °C)",
        f"Readings   {result.readings}  from {_when(result.start)}  to {_when(result.end)}",
        f"Range      min {_num(result.min_c, ' °C')}  max {_num(result.max_c, ' °C')}",
        f"MKT        {_num(result.mkt_c, ' °C')} overall, "
        f"{_num(result.mkt_window_max_c, ' °C')} highest window"
        + (
            f" (limit {profile.mkt.max_c:g} °C over {profile.mkt.window_h:g} h)"
            if profile.mkt
            else ""
        ),
        f"Time (min) in range {result.time_in_range_min:.1f}"
        f"  above {result.time_above_range_min:.1f}"
        f"  below {result.time_below_range_min:.1f}  data gap {result.data_gap_min:.1f}"
        + (
            f"  ignored (first {profile.ignore_period_min:g} min) {result.ignored_min:.1f}"
            if profile.ignore_period_min
            else ""
        ),
        f"Freeze–thaw cycles {result.freeze_thaw_cycles}{freeze_limit}",
        *_allowance(profile, result),
        "",
        "Excursions" if result.excursions else "Excursions: none",
    ]
    for e in result.excursions:
        lines.append(
            f"  {e.direction:<6} {isoformat_utc(e.start)} → {_when(e.end):<20} "
            f"{e.duration_min:8.1f} min  peak {e.peak_c:.2f} °C"
        )
    lines.append("Alarms" if result.alarms else "Alarms: none")
    for a in result.alarms:
        lines.append(
            f"  {a.severity.value:<12} {a.rule:<20} at {isoformat_utc(a.at)} "
            f"(since {isoformat_utc(a.start)})"
        )
    if result.budget:
        lines.append("Stability budget (time hotter than a band counts against it too)")
    for b in result.budget:
        lines.append(
            f"  {b.above_c:g}..{b.up_to_c:g} °C  used {b.used_min:.1f} of "
            f"{b.budget_min:g} min, remaining {b.remaining_min:.1f}"
            + ("  EXCEEDED" if b.exceeded else "")
        )
    if result.budget:
        top = max(b.up_to_c for b in result.budget)
        lines.append(
            f"  above {top:g} °C (unstudied, no stability data) {result.unstudied_min:.1f} min"
            + ("  REJECTS" if result.unstudied_min > 0 else "")
        )
    lines += ["", f"Proposed verdict: {result.verdict.upper()} (QA signs the disposition)"]
    return "\n".join(lines)
