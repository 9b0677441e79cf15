"""The people-facing table of `coldchain monitor evaluate --format table`."""

from __future__ import annotations

from core.clock import isoformat_utc
from monitor.evaluation import Evaluation
from monitor.profiles import DrugProfile


def _num(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.2f}{unit}"


def format_table(profile: DrugProfile, result: Evaluation) -> str:
    def when(value: object) -> str:
        return "open" if value is None else isoformat_utc(value)  # type: ignore[arg-type]

    lines = [
        f"Profile    {profile.id} — {profile.name} "
        f"(storage {profile.storage.min_c:g}..{profile.storage.max_c:g} °C)",
        f"Readings   {result.readings}  from {when(result.start)}  to {when(result.end)}",
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
        f"  below {result.time_below_range_min:.1f}  data gap {result.data_gap_min:.1f}",
        "",
        "Excursions" if result.excursions else "Excursions: none",
    ]
    for e in result.excursions:
        lines.append(
            f"  {e.direction:<6} {isoformat_utc(e.start)} → {when(e.end):<20} "
            f"{e.duration_min:8.1f} min  peak {e.peak_c:.2f} °C"
        )
    lines.append("Alarms" if result.alarms else "Alarms: none")
    for a in result.alarms:
        lines.append(
            f"  {a.severity.value:<12} {a.rule:<20} at {isoformat_utc(a.at)} "
            f"(since {isoformat_utc(a.start)})"
        )
    if result.budget:
        lines.append("Stability budget")
    for b in result.budget:
        lines.append(
            f"  {b.above_c:g}..{b.up_to_c:g} °C  used {b.used_min:.1f} of "
            f"{b.budget_min:g} min, remaining {b.remaining_min:.1f}"
        )
    lines += ["", f"Proposed verdict: {result.verdict.upper()} (QA signs the disposition)"]
    return "\n".join(lines)
