"""The rules of QA disposition, as pure functions (docs/profiles.md, "Disposition").

A shipment's quality state runs in transit → delivered → under assessment → released,
released with shortened expiry, or rejected. Assessment may be re-opened after a decision;
the new decision supersedes the old one, which stays on record. The database keeps the same
invariants with constraints and triggers (migration 0010); these functions give people the
reason in words before anything is written.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

from core import accounts
from core.accounts import StaffUser
from core.clock import isoformat_utc, utc
from monitor.models import BudgetUse, Evaluation
from monitor.profiles import DrugProfile, ExpiryReduction

QualityState = Literal[
    "in_transit",
    "delivered",
    "under_assessment",
    "released",
    "released_shortened_expiry",
    "rejected",
]
Decision = Literal["released", "released_shortened_expiry", "rejected"]
Impact = Literal["no_impact", "expiry_shortened", "product_affected"]
DECISIONS: Final[tuple[Decision, ...]] = ("released", "released_shortened_expiry", "rejected")
IMPACTS: Final[tuple[Impact, ...]] = ("no_impact", "expiry_shortened", "product_affected")
SIGNED_STATES: Final = frozenset({"released", "released_shortened_expiry", "rejected"})
# Assessment starts once the shipment is delivered, or re-opens after a decision.
ASSESSABLE_STATES: Final = frozenset({"delivered"}) | SIGNED_STATES
# 21 CFR 11.50(a)(3): the meaning of each signature, shown with it wherever it is displayed.
MEANINGS: Final[dict[Decision, str]] = {
    "released": "Approved for release",
    "released_shortened_expiry": "Approved for release with shortened expiry",
    "rejected": "Rejected: not to be used for any patient",
}
# Only QA signs. An administrator manages accounts and could create any identity, so an
# administrator's signature would not be attributable to a qualified reviewer.
MAX_NOTE_CHARS: Final = 2000


class DispositionError(ValueError):
    """A disposition request that cannot be done; ``field`` names the bad input, if one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DispositionError):
    pass


class NotPermitted(DispositionError):
    pass


class SignatureRefused(DispositionError):
    """The re-entered password does not match the signer's account."""


@dataclass(frozen=True, slots=True)
class AlarmStatus:
    """An alarm of the shipment and QA's newest assessment of it (None: unassessed)."""

    alarm_id: int
    rule_id: str
    severity: str
    started_at: datetime
    alarmed_at: datetime
    retrospective: bool
    impact: Impact | None = None
    note: str | None = None
    assessed_by: str | None = None
    assessed_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "alarm_id": self.alarm_id,
            "rule": self.rule_id,
            "severity": self.severity,
            "start": isoformat_utc(self.started_at),
            "at": isoformat_utc(self.alarmed_at),
            "retrospective": self.retrospective,
            "assessed": self.impact is not None,
            "impact": self.impact,
            "note": self.note,
            "assessed_by": self.assessed_by,
            "assessed_at": isoformat_utc(self.assessed_at) if self.assessed_at else None,
        }


def require_permission(user: StaffUser, permission: str) -> None:
    """The one permission table (core.accounts.PERMISSIONS): assessing and signing are qa's."""
    if not accounts.can(user.role, permission):
        raise NotPermitted(f"the {user.role} role may not do {permission}; only qa may")


def check_start(quality_state: str) -> None:
    if quality_state not in ASSESSABLE_STATES:
        raise DispositionError(
            f"assessment cannot start while the shipment is {quality_state}: "
            "it starts once the shipment is delivered"
        )


def check_alarm_assessment(impact: str, note: str) -> None:
    if impact not in IMPACTS:
        raise DispositionError(f"impact must be one of {', '.join(IMPACTS)}", "impact")
    if not note.strip():
        raise DispositionError("note is empty: say what the alarm means for the product", "note")
    if len(note) > MAX_NOTE_CHARS:
        raise DispositionError(f"note is longer than {MAX_NOTE_CHARS} characters", "note")


def add_use_within(start: datetime, reduction: ExpiryReduction) -> date:
    """The last day of use after ``start`` (UTC) under a label's use-within allowance."""
    start = utc(start)
    if reduction.unit == "hours":
        return (start + timedelta(hours=reduction.use_within)).date()
    if reduction.unit == "days":
        return (start + timedelta(days=reduction.use_within)).date()
    months = int(reduction.use_within)
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def latest_shortened_expiry(
    profile: DrugProfile, legs: Sequence[Evaluation], unit_expiry: date | None = None
) -> date | None:
    """The latest expiry allowed: the label's use-within after the first excursion above
    range on any leg of the units, and never after the units' own expiry."""
    limits = [] if unit_expiry is None else [unit_expiry]
    warm = [e.start for leg in legs for e in leg.excursions if e.direction == "above"]
    if profile.expiry_reduction is not None and warm:
        limits.append(add_use_within(min(warm), profile.expiry_reduction))
    return min(limits) if limits else None


def budget_across_legs(
    this_leg: Sequence[BudgetUse], earlier_legs: Sequence[Sequence[BudgetUse]]
) -> list[dict[str, Any]]:
    """Each stability-budget band summed over the units' earlier legs and this one.

    Every leg is evaluated against this shipment's profile, so the bands line up.
    """
    bands = []
    for i, band in enumerate(this_leg):
        earlier = sum(leg[i].used_min for leg in earlier_legs)
        used = band.used_min + earlier
        bands.append(
            {
                "above_c": band.above_c,
                "up_to_c": band.up_to_c,
                "budget_min": band.budget_min,
                "this_leg_min": round(band.used_min, 4),
                "earlier_legs_min": round(earlier, 4),
                "used_min": round(used, 4),
                "remaining_min": round(band.budget_min - used, 4),
                "exceeded": used > band.budget_min,
            }
        )
    return bands


def proposed_verdict(
    leg_verdict: str, across_legs: Sequence[dict[str, Any]], unstudied_min: float = 0.0
) -> str:
    """The leg's verdict, or reject when the units' budget is spent over all their legs or
    they were ever held above the top band (unstudied exposure, on any leg)."""
    spent = any(band["exceeded"] for band in across_legs)
    return "reject" if spent or unstudied_min > 0 else leg_verdict


def check_disposition(
    *,
    quality_state: str,
    decision: str,
    reason: str,
    new_expiry_date: date | None,
    latest_expiry: date | None,
    alarms: Sequence[AlarmStatus],
    now: datetime,
) -> Decision:
    """The decision, if it may be signed now; else DispositionError with the reason."""
    if decision not in DECISIONS:
        raise DispositionError(f"decision must be one of {', '.join(DECISIONS)}", "decision")
    if quality_state != "under_assessment":
        raise DispositionError(
            f"the shipment is {quality_state}: start the assessment before signing"
        )
    if not reason.strip():
        raise DispositionError("reason is empty: say why this decision was taken", "reason")
    if len(reason) > MAX_NOTE_CHARS:
        raise DispositionError(f"reason is longer than {MAX_NOTE_CHARS} characters", "reason")
    chosen = next(d for d in DECISIONS if d == decision)
    if chosen == "released_shortened_expiry":
        if new_expiry_date is None:
            raise DispositionError(
                "new_expiry_date is required for a release with shortened expiry",
                "new_expiry_date",
            )
        if new_expiry_date <= utc(now).date():
            raise DispositionError(
                f"new_expiry_date {new_expiry_date} is not after today", "new_expiry_date"
            )
        if latest_expiry is not None and new_expiry_date > latest_expiry:
            raise DispositionError(
                f"new_expiry_date {new_expiry_date} is after {latest_expiry}, the latest the "
                "label allows after the first excursion above range",
                "new_expiry_date",
            )
    elif new_expiry_date is not None:
        raise DispositionError(
            "new_expiry_date is only for a release with shortened expiry", "new_expiry_date"
        )
    if chosen == "rejected":
        return chosen
    unassessed = [a.alarm_id for a in alarms if a.impact is None]
    if unassessed:
        raise DispositionError(
            "release refused: alarm(s) "
            + ", ".join(str(i) for i in unassessed)
            + " are not assessed yet"
        )
    affected = [a.alarm_id for a in alarms if a.impact == "product_affected"]
    if affected:
        raise DispositionError(
            "release refused: alarm(s) "
            + ", ".join(str(i) for i in affected)
            + " are assessed as product_affected"
        )
    if chosen == "released" and any(a.impact == "expiry_shortened" for a in alarms):
        raise DispositionError(
            "an alarm is assessed as expiry_shortened: release with a shortened expiry",
            "decision",
        )
    return chosen
