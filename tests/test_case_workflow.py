"""The Named Patient Program order: pure rules, then the recorded transitions in PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from case_link.cases import (
    CaseError,
    create_case,
    get_case,
    link_shipment,
    list_cases,
    register_case,
    transition_case,
)
from case_link.physicians import Physician, assign_physician, register_physician
from case_link.workflow import STEPS, CaseFacts, TransitionRefused, check_transition, next_steps
from core.db import Row
from tests.factories import T0, shipment_with_logger

DOCTOR = Physician("Dr. Test Example", "LIC-1", "Test Clinic", "DE", "+15555550100")


def facts(step: str, *, filing: bool = True, physician: bool = True) -> CaseFacts:
    return CaseFacts(step=step, regulatory_filing_required=filing, has_physician=physician)


def test_steps_match_the_database_check(db: psycopg.Connection[Row]) -> None:
    row = db.execute(
        "SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint "
        "WHERE conname = 'cases_step_check'"
    ).fetchone()
    assert row is not None
    for step in STEPS:
        assert f"'{step}'" in row["definition"]


def test_each_step_leads_to_the_next_and_closing_needs_a_reason() -> None:
    for current, following in zip(STEPS, STEPS[1:], strict=False):
        check_transition(facts(current), following, None)
    assert next_steps(facts("physician_authorization")) == ("regulatory_filing", "closed")
    assert next_steps(facts("physician_authorization", filing=False)) == ("prepayment", "closed")
    assert next_steps(facts("closed")) == ()
    with pytest.raises(TransitionRefused, match="needs a note"):
        check_transition(facts("review"), "closed", "  ")
    check_transition(facts("review"), "closed", "request withdrawn by the physician")
    # At the program's last step, closing is the next step and needs no reason.
    check_transition(facts("adverse_event_reporting"), "closed", None)


@pytest.mark.parametrize(
    ("current", "target", "reason"),
    [
        ("prepayment", "shipping", "sourcing & serialization must be completed first"),
        ("eligibility_pricing", "sourcing_serialization", "physician authorization, regulatory"),
        ("review", "request", "does not go back"),
        ("shipping", "shipping", "already at shipping"),
        ("closed", "request", "closed case does not change"),
        ("request", "launch", "not a Named Patient Program step"),
    ],
)
def test_out_of_order_is_refused_with_the_reason(current: str, target: str, reason: str) -> None:
    with pytest.raises(TransitionRefused, match=reason):
        check_transition(facts(current), target, None)


def test_filing_is_skipped_only_when_not_required() -> None:
    check_transition(facts("physician_authorization", filing=False), "prepayment", None)
    with pytest.raises(TransitionRefused, match="regulatory filing must be completed"):
        check_transition(facts("physician_authorization"), "prepayment", None)
    with pytest.raises(TransitionRefused, match="needs no regulatory filing"):
        check_transition(facts("physician_authorization", filing=False), "regulatory_filing", None)


def test_authorization_needs_a_physician() -> None:
    with pytest.raises(TransitionRefused, match="treating physician"):
        check_transition(
            facts("eligibility_pricing", physician=False), "physician_authorization", None
        )


def _walk(db: psycopg.Connection[Row], case_id: int, steps: list[str]) -> None:
    for i, step in enumerate(steps):
        transition_case(db, case_id, step, "clinical@example.org", T0 + timedelta(hours=i + 1))


def test_a_case_goes_through_the_program_and_every_change_is_recorded(
    db: psycopg.Connection[Row],
) -> None:
    case_id = create_case(db, "NPP-2026-0001", "clinical@example.org", T0)
    _walk(db, case_id, ["review", "eligibility_pricing"])
    with pytest.raises(TransitionRefused, match="treating physician"):
        transition_case(db, case_id, "physician_authorization", "clinical@example.org", T0)
    assign_physician(db, case_id, register_physician(db, DOCTOR, "test"), "test")
    _walk(db, case_id, ["physician_authorization", "regulatory_filing", "prepayment"])

    case = get_case(db, case_id)
    assert case["step"] == "prepayment"
    assert [(t["from_step"], t["to_step"]) for t in case["transitions"]] == [
        (None, "request"),
        ("request", "review"),
        ("review", "eligibility_pricing"),
        ("eligibility_pricing", "physician_authorization"),
        ("physician_authorization", "regulatory_filing"),
        ("regulatory_filing", "prepayment"),
    ]
    assert case["transitions"][-1]["at"] == T0 + timedelta(hours=3)
    audited = db.execute(
        "SELECT details FROM audit_log WHERE action = 'case.transitioned' AND entity_id = %s "
        "ORDER BY audit_id",
        (str(case_id),),
    ).fetchall()
    assert [a["details"]["to"] for a in audited] == [
        "review",
        "eligibility_pricing",
        "physician_authorization",
        "regulatory_filing",
        "prepayment",
    ]
    # A refused move changes nothing and records nothing.
    with pytest.raises(TransitionRefused, match="sourcing & serialization must be completed"):
        transition_case(db, case_id, "shipping", "clinical@example.org", T0)
    assert get_case(db, case_id)["step"] == "prepayment"
    assert len(get_case(db, case_id)["transitions"]) == 6
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("DELETE FROM case_transitions WHERE case_id = %s", (case_id,))


def test_no_shipment_before_prepayment_has_cleared(db: psycopg.Connection[Row]) -> None:
    shipment_id = shipment_with_logger(db)
    case_id = create_case(db, "NPP-2026-0002", "clinical@example.org", T0)
    with pytest.raises(CaseError, match="after prepayment has cleared"):
        link_shipment(db, shipment_id, case_id, "test")
    assign_physician(db, case_id, register_physician(db, DOCTOR, "test"), "test")
    db.execute("UPDATE cases SET regulatory_filing_required = false WHERE case_id = %s", (case_id,))
    _walk(
        db,
        case_id,
        ["review", "eligibility_pricing", "physician_authorization", "prepayment"],
    )
    with pytest.raises(CaseError, match="after prepayment"):
        link_shipment(db, shipment_id, case_id, "test")
    _walk(db, case_id, ["sourcing_serialization"])
    link_shipment(db, shipment_id, case_id, "test")
    assert [s["shipment_id"] for s in get_case(db, case_id)["shipments"]] == [shipment_id]


def test_case_refs_are_pseudonymous_and_unique(db: psycopg.Connection[Row]) -> None:
    with pytest.raises(CaseError, match="never a patient's name"):
        create_case(db, "Jane Doe", "clinical@example.org", T0)
    create_case(db, "NPP-2026-0003", "clinical@example.org", T0)
    with pytest.raises(CaseError, match="already in use"):
        create_case(db, "NPP-2026-0003", "clinical@example.org", T0)


def test_register_case_records_its_direct_step_and_list_filters(
    db: psycopg.Connection[Row],
) -> None:
    direct = register_case(db, "CASE-SIM-1", "simulator")
    assert register_case(db, "CASE-SIM-1", "simulator") == direct
    fresh = create_case(db, "NPP-2026-0004", "clinical@example.org", T0)
    assert [c["case_id"] for c in list_cases(db, "shipping")] == [direct]
    assert [c["case_id"] for c in list_cases(db, None)] == [fresh, direct]
    transitions = get_case(db, direct)["transitions"]
    assert [(t["from_step"], t["to_step"], t["note"]) for t in transitions] == [
        (None, "shipping", "registered directly at this step")
    ]
