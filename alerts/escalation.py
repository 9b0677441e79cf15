"""Escalation policies as pure functions: which policy an alert follows, which step is next.

A policy is ordered steps; each notifies people and/or the current on-call person of
schedules by SMS and/or voice, then waits ``wait_min`` before the next step. After the
last step the policy starts over, ``repeat`` more times; then it is exhausted. The
database side (claiming due escalations, writing pages) is alerts.paging.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alerts.oncall import Person, Schedule, who_is_on_call
from core.severity import Severity


@dataclass(frozen=True, slots=True)
class Target:
    person_id: str | None = None
    schedule_id: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    targets: tuple[Target, ...]
    channels: tuple[str, ...]  # "sms", "voice"
    wait: timedelta


@dataclass(frozen=True, slots=True)
class Policy:
    policy_id: str
    name: str
    steps: tuple[Step, ...]
    repeat: int = 0
    ack_timeout: timedelta | None = None
    group_window: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Route:
    policy_id: str
    severities: frozenset[Severity] | None = None
    lane: str | None = None
    customer: str | None = None

    def matches(self, severity: Severity, lane: str | None, customer: str | None) -> bool:
        return (
            (self.severities is None or severity in self.severities)
            and (self.lane is None or self.lane == lane)
            and (self.customer is None or self.customer == customer)
        )

    @property
    def specificity(self) -> int:
        # A customer is narrower than a lane, a lane narrower than a severity band.
        return (
            4 * (self.customer is not None)
            + 2 * (self.lane is not None)
            + (self.severities is not None)
        )


@dataclass(frozen=True, slots=True)
class Position:
    """Where an escalation stands: the step to run next, in which pass over the policy."""

    step_index: int
    repeat: int


@dataclass(frozen=True, slots=True)
class StepRun:
    """Running the step at ``ran``; ``following`` is None when the policy is exhausted."""

    ran: Position
    step: Step
    following: Position | None
    next_at: datetime | None


def choose_policy(
    routes: Sequence[Route], severity: Severity, lane: str | None, customer: str | None
) -> str | None:
    """The policy of the most specific matching route; the earlier route wins a tie."""
    best: Route | None = None
    for route in routes:
        if route.matches(severity, lane, customer) and (
            best is None or route.specificity > best.specificity
        ):
            best = route
    return None if best is None else best.policy_id


def run_step(policy: Policy, at: Position, now: datetime) -> StepRun:
    """Run the step at ``at`` (a step index beyond a shortened policy wraps to the next pass)."""
    position = at
    if position.step_index >= len(policy.steps):
        position = Position(0, position.repeat + 1)
    step = policy.steps[position.step_index]
    if position.step_index + 1 < len(policy.steps):
        following: Position | None = Position(position.step_index + 1, position.repeat)
    elif position.repeat < policy.repeat:
        following = Position(0, position.repeat + 1)
    else:
        following = None
    return StepRun(position, step, following, None if following is None else now + step.wait)


def step_recipients(
    step: Step, schedules: Mapping[str, Schedule], people: Mapping[str, Person], now: datetime
) -> list[Person]:
    """The people a step pages at ``now``, each once, in the step's order."""
    found: list[Person] = []
    for target in step.targets:
        person: Person | None = None
        if target.person_id is not None:
            person = people.get(target.person_id)
        elif target.schedule_id is not None and target.schedule_id in schedules:
            person = who_is_on_call(schedules[target.schedule_id], now)
        if person is not None and person.active and person not in found:
            found.append(person)
    return found


def policy_from_row(row: Mapping[str, Any]) -> Policy:
    """A policy as stored in ``escalation_policies`` (written by alerts.oncall_config)."""
    return Policy(
        policy_id=row["policy_id"],
        name=row["name"],
        steps=tuple(_step(doc) for doc in row["steps"]),
        repeat=int(row["repeat"]),
        ack_timeout=None
        if row["ack_timeout_min"] is None
        else timedelta(minutes=row["ack_timeout_min"]),
        group_window=timedelta(seconds=row["group_window_s"]),
    )


def _step(doc: Mapping[str, Any]) -> Step:
    return Step(
        targets=tuple(
            Target(person_id=t.get("person"), schedule_id=t.get("schedule")) for t in doc["notify"]
        ),
        channels=tuple(doc["via"]),
        wait=timedelta(minutes=doc["wait_min"]),
    )


def route_from_row(row: Mapping[str, Any]) -> Route:
    severities: Iterable[str] | None = row["severities"]
    return Route(
        policy_id=row["policy_id"],
        severities=None if severities is None else frozenset(Severity(s) for s in severities),
        lane=row["lane"],
        customer=row["customer"],
    )
