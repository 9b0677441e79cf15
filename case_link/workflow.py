"""The Named Patient Program steps and their permitted order (pure; no database).

A case moves forward one step at a time. The only step that may be skipped is
``regulatory_filing``, and only when the case says the destination requires no filing.
A case may be closed early from any step, with a note giving the reason. Everything else
— going back, jumping ahead (shipping before prepayment has cleared, sourcing before the
physician's authorization) — is refused with the reason (21 CFR 11.10(f)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

StepName = Literal[
    "request",
    "review",
    "eligibility_pricing",
    "physician_authorization",
    "regulatory_filing",
    "prepayment",
    "sourcing_serialization",
    "shipping",
    "delivery_follow_up",
    "adverse_event_reporting",
    "closed",
]
# In the program's order (the same list as the CHECK on cases.step).
STEPS: Final[tuple[str, ...]] = get_args(StepName)

STEP_TITLES: Final[dict[str, str]] = {
    "request": "request",
    "review": "clinical & regulatory review",
    "eligibility_pricing": "eligibility & pricing",
    "physician_authorization": "physician authorization",
    "regulatory_filing": "regulatory filing",
    "prepayment": "prepayment",
    "sourcing_serialization": "sourcing & serialization",
    "shipping": "shipping",
    "delivery_follow_up": "delivery & follow-up",
    "adverse_event_reporting": "adverse-event reporting",
    "closed": "closed",
}

# A shipment may be linked to a case only once prepayment has cleared, i.e. from here on.
FIRST_SHIPPABLE_STEP: Final = "sourcing_serialization"


class TransitionRefused(ValueError):
    """A step change the program's order does not permit; the message says why."""


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What the rules need to know about a case besides its step."""

    step: str
    regulatory_filing_required: bool
    has_physician: bool


def step_index(step: str) -> int:
    try:
        return STEPS.index(step)
    except ValueError:
        raise TransitionRefused(
            f"{step!r} is not a Named Patient Program step (one of {', '.join(STEPS)})"
        ) from None


def next_steps(facts: CaseFacts) -> tuple[str, ...]:
    """The steps the case may move to now (closing early is always among them)."""
    if facts.step == "closed":
        return ()
    following = STEPS[step_index(facts.step) + 1]
    allowed = [following]
    if following == "regulatory_filing" and not facts.regulatory_filing_required:
        allowed = ["prepayment"]
    if "closed" not in allowed:
        allowed.append("closed")
    return tuple(allowed)


def check_transition(facts: CaseFacts, target: str, note: str | None) -> None:
    """Refuse (``TransitionRefused``) a move from ``facts.step`` to ``target`` out of order."""
    current, wanted = step_index(facts.step), step_index(target)
    if facts.step == "closed":
        raise TransitionRefused("the case is closed; a closed case does not change step")
    if target == facts.step:
        raise TransitionRefused(f"the case is already at {STEP_TITLES[target]}")
    if wanted < current:
        raise TransitionRefused(
            f"a case does not go back from {STEP_TITLES[facts.step]} to {STEP_TITLES[target]}"
        )
    allowed = next_steps(facts)
    if target == "closed":
        if allowed[0] != "closed" and not (note and note.strip()):
            raise TransitionRefused(
                f"closing a case at {STEP_TITLES[facts.step]} before the program's end needs "
                "a note giving the reason"
            )
        return
    if target == "regulatory_filing" and not facts.regulatory_filing_required:
        raise TransitionRefused(
            "this case needs no regulatory filing; go from physician authorization to prepayment"
        )
    if target not in allowed:
        missing = [
            STEP_TITLES[s]
            for s in STEPS[current + 1 : wanted]
            if s != "regulatory_filing" or facts.regulatory_filing_required
        ]
        raise TransitionRefused(
            f"{STEP_TITLES[target]} cannot follow {STEP_TITLES[facts.step]}: "
            f"{', '.join(missing)} must be completed first"
        )
    if target == "physician_authorization" and not facts.has_physician:
        raise TransitionRefused(
            "physician authorization needs a treating physician assigned to the case first"
        )
