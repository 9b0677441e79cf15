"""Patient cases (Named Patient Program, DESIGN.md §8): registering a case and linking shipments.

The step-by-step case workflow with its enforced order is not built yet (issue 7);
`register_case` records a case directly at a given step and says so in the audit log.
"""

from __future__ import annotations

import psycopg

from core import audit
from core.db import Row


class CaseError(ValueError):
    """A case request that cannot be honoured; the message says why."""


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
    """Attach a shipment to its case; a shipment already on another case is refused."""
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
