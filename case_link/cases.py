"""Patient cases (Named Patient Program, DESIGN.md §8): the step workflow and shipment links.

Cases are pseudonymous: a case reference, never a patient's name or contact details.
``create_case`` starts a case at ``request``; ``transition_case`` moves it along the
program's order (case_link.workflow), recording each change in ``case_transitions`` and
the audit log. ``register_case`` records a case directly at a given step (simulated fleets,
end-to-end tests) and says so in both.
"""

from __future__ import annotations

import re
from datetime import datetime

import psycopg

from case_link.workflow import (
    FIRST_SHIPPABLE_STEP,
    STEP_TITLES,
    CaseFacts,
    TransitionRefused,
    check_transition,
    step_index,
)
from core import audit
from core.db import Row

# A reference such as "NPP-2026-0042": no spaces, nothing that could hold a name.
_CASE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")


class CaseError(ValueError):
    """A case request that cannot be honoured; the message says why."""


class CaseNotFound(CaseError):
    """No case with that id."""


def register_case(
    conn: psycopg.Connection[Row], case_ref: str, actor: str, *, step: str = "shipping"
) -> int:
    """A pseudonymous case at ``step`` (no patient data), or the existing one with that ref.

    The step is taken as given, without the workflow's order checks: it is used where a
    shipment needs its case (simulated fleets, end-to-end tests). Only a new case is audited.
    """
    try:
        row = conn.execute(
            "INSERT INTO cases (case_ref, step) VALUES (%s, %s) "
            "ON CONFLICT (case_ref) DO NOTHING RETURNING case_id",
            (case_ref, step),
        ).fetchone()
    except psycopg.errors.CheckViolation as exc:
        raise CaseError(f"case step {step!r} is not a Named Patient Program step") from exc
    if row is None:
        existing = conn.execute(
            "SELECT case_id FROM cases WHERE case_ref = %s", (case_ref,)
        ).fetchone()
        assert existing is not None
        return int(existing["case_id"])
    conn.execute(
        "INSERT INTO case_transitions (case_id, from_step, to_step, actor, at, note) "
        "VALUES (%s, NULL, %s, %s, now(), 'registered directly at this step')",
        (row["case_id"], step, actor),
    )
    audit.record(
        conn,
        actor=actor,
        action="case.registered",
        entity_type="case",
        entity_id=row["case_id"],
        details={"case_ref": case_ref, "step": step},
    )
    return int(row["case_id"])


def link_shipment(
    conn: psycopg.Connection[Row], shipment_id: int, case_id: int, actor: str
) -> None:
    """Attach a shipment to its case; a shipment already on another case is refused.

    No shipment before prepayment has cleared: the case must have reached sourcing.
    """
    case = conn.execute("SELECT step FROM cases WHERE case_id = %s", (case_id,)).fetchone()
    if case is None:
        raise CaseNotFound(f"case {case_id} does not exist")
    if case["step"] == "closed" or step_index(case["step"]) < step_index(FIRST_SHIPPABLE_STEP):
        raise CaseError(
            f"case {case_id} is at {STEP_TITLES[case['step']]}: a shipment is linked only from "
            f"{STEP_TITLES[FIRST_SHIPPABLE_STEP]} on, after prepayment has cleared"
        )
    row = conn.execute(
        "SELECT case_id FROM shipments WHERE shipment_id = %s", (shipment_id,)
    ).fetchone()
    if row is None:
        raise CaseError(f"shipment {shipment_id} does not exist")
    if row["case_id"] == case_id:
        return
    if row["case_id"] is not None:
        raise CaseError(f"shipment {shipment_id} already belongs to case {row['case_id']}")
    conn.execute("UPDATE shipments SET case_id = %s WHERE shipment_id = %s", (case_id, shipment_id))
    audit.record(
        conn,
        actor=actor,
        action="shipment.case_linked",
        entity_type="shipment",
        entity_id=shipment_id,
        details={"case_id": case_id},
    )


def create_case(
    conn: psycopg.Connection[Row],
    case_ref: str,
    actor: str,
    now: datetime,
    *,
    regulatory_filing_required: bool = True,
    note: str | None = None,
) -> int:
    """Open a new case at ``request``; a reference already in use is refused."""
    ref = case_ref.strip()
    if not _CASE_REF.match(ref):
        raise CaseError(
            "case_ref must be 3-64 letters, digits, '.', '_' or '-' (a pseudonymous "
            f"reference such as 'NPP-2026-0042', never a patient's name), got {case_ref!r}"
        )
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO cases (case_ref, step, regulatory_filing_required, created_at, "
            "updated_at) VALUES (%s, 'request', %s, %s, %s) "
            "ON CONFLICT (case_ref) DO NOTHING RETURNING case_id",
            (ref, regulatory_filing_required, now, now),
        ).fetchone()
        if row is None:
            raise CaseError(f"case_ref {ref!r} is already in use")
        case_id = int(row["case_id"])
        conn.execute(
            "INSERT INTO case_transitions (case_id, from_step, to_step, actor, at, note) "
            "VALUES (%s, NULL, 'request', %s, %s, %s)",
            (case_id, actor, now, note),
        )
        audit.record(
            conn,
            actor=actor,
            action="case.created",
            entity_type="case",
            entity_id=case_id,
            details={
                "case_ref": ref,
                "regulatory_filing_required": regulatory_filing_required,
            },
        )
    return case_id


def transition_case(
    conn: psycopg.Connection[Row],
    case_id: int,
    to_step: str,
    actor: str,
    now: datetime,
    note: str | None = None,
) -> str:
    """Move a case to ``to_step`` if the program's order permits; returns the step it left.

    Raises ``TransitionRefused`` with the reason otherwise (and records nothing).
    """
    if note is not None and len(note) > 2000:
        raise CaseError("note must be at most 2000 characters")
    with conn.transaction():
        case = conn.execute(
            "SELECT step, regulatory_filing_required, physician_id FROM cases "
            "WHERE case_id = %s FOR UPDATE",
            (case_id,),
        ).fetchone()
        if case is None:
            raise CaseNotFound(f"case {case_id} does not exist")
        facts = CaseFacts(
            step=case["step"],
            regulatory_filing_required=case["regulatory_filing_required"],
            has_physician=case["physician_id"] is not None,
        )
        check_transition(facts, to_step, note)
        conn.execute(
            "UPDATE cases SET step = %s, updated_at = %s WHERE case_id = %s",
            (to_step, now, case_id),
        )
        conn.execute(
            "INSERT INTO case_transitions (case_id, from_step, to_step, actor, at, note) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (case_id, facts.step, to_step, actor, now, note),
        )
        audit.record(
            conn,
            actor=actor,
            action="case.transitioned",
            entity_type="case",
            entity_id=case_id,
            details={"from": facts.step, "to": to_step, "note": note},
        )
    return facts.step


def advance_on_receipt(
    conn: psycopg.Connection[Row], shipment_id: int, actor: str, now: datetime
) -> str | None:
    """The physician has the drug: a case still at ``shipping`` moves to delivery & follow-up.

    Returns the new step, or None when the case is elsewhere (already further on, or a
    shipment without a case); the workflow's rules apply as for any other transition.
    """
    case = conn.execute(
        "SELECT c.case_id, c.step FROM shipments s JOIN cases c USING (case_id) "
        "WHERE s.shipment_id = %s",
        (shipment_id,),
    ).fetchone()
    if case is None or case["step"] != "shipping":
        return None
    transition_case(
        conn,
        int(case["case_id"]),
        "delivery_follow_up",
        actor,
        now,
        note=f"physician confirmed receipt of shipment {shipment_id}",
    )
    return "delivery_follow_up"


def get_case(conn: psycopg.Connection[Row], case_id: int) -> Row:
    """The case with its transitions and shipment ids; ``CaseNotFound`` if unknown."""
    case = conn.execute(
        "SELECT case_id, case_ref, step, regulatory_filing_required, physician_id, created_at, "
        "updated_at FROM cases WHERE case_id = %s",
        (case_id,),
    ).fetchone()
    if case is None:
        raise CaseNotFound(f"case {case_id} does not exist")
    case["transitions"] = conn.execute(
        "SELECT from_step, to_step, actor, at, note FROM case_transitions "
        "WHERE case_id = %s ORDER BY transition_id",
        (case_id,),
    ).fetchall()
    case["shipments"] = conn.execute(
        "SELECT shipment_id, shipment_ref, status, delivered_at FROM shipments "
        "WHERE case_id = %s ORDER BY shipment_id",
        (case_id,),
    ).fetchall()
    return case


def list_cases(conn: psycopg.Connection[Row], step: str | None, limit: int = 200) -> list[Row]:
    """Cases, newest first, optionally only those at ``step``."""
    if step is not None:
        step_index(step)  # refuses an unknown step with the list of valid ones
    return conn.execute(
        "SELECT case_id, case_ref, step, regulatory_filing_required, physician_id, created_at, "
        "updated_at FROM cases WHERE %(step)s::text IS NULL OR step = %(step)s "
        "ORDER BY case_id DESC LIMIT %(limit)s",
        {"step": step, "limit": limit},
    ).fetchall()


__all__ = [
    "CaseError",
    "CaseNotFound",
    "TransitionRefused",
    "advance_on_receipt",
    "create_case",
    "get_case",
    "link_shipment",
    "list_cases",
    "register_case",
    "transition_case",
]
