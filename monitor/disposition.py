"""QA disposition of a shipment: assessment, alarm assessments, the signed decision.

The rules are in :mod:`monitor.quality`; this module reads and writes the database, each
action in one transaction with its audit entry. The signature follows 21 CFR Part 11:
the signer re-enters their password (11.200(a)), the record carries the printed name, the
time and the meaning (11.50), and it is linked to what was signed — the assessment with
its evidence snapshot — so it cannot be moved to another record (11.70).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from core import accounts, audit
from core.accounts import StaffUser
from core.clock import isoformat_utc
from core.db import Row
from monitor import quality, queries
from monitor.evaluation import evaluate
from monitor.models import Evaluation
from monitor.profiles import DrugProfile
from monitor.quality import AlarmStatus, DispositionError, NotFound, NotPermitted

ASSESS_PERMISSION = "disposition.assess"
SIGN_PERMISSION = "disposition.sign"


def _evaluate(conn: psycopg.Connection[Row], shipment_id: int, profile: DrugProfile) -> Evaluation:
    rows = conn.execute(queries.SHIPMENT_READINGS, (shipment_id,)).fetchall()
    return evaluate(profile, pd.DataFrame(rows, columns=["ts", "temp_c", "stage"]))


def shipment_evaluation(conn: psycopg.Connection[Row], shipment: Row) -> dict[str, Any]:
    """The evidence for a proposed verdict, as the monitor computes it now.

    The stability budget counts every leg of the shipment's serialized units: the earlier
    legs' readings are evaluated against this shipment's profile and their band use added.
    """
    profile = DrugProfile.model_validate(shipment["definition"])
    shipment_id = shipment["shipment_id"]
    result = _evaluate(conn, shipment_id, profile)
    legs = conn.execute(queries.EARLIER_LEGS, {"shipment_id": shipment_id}).fetchall()
    earlier = [_evaluate(conn, leg["shipment_id"], profile) for leg in legs]
    units = conn.execute(queries.SHIPMENT_UNITS_SUMMARY, (shipment_id,)).fetchone()
    unit_expiry = None if units is None else units["earliest_expiry"]
    latest = quality.latest_shortened_expiry(profile, [*earlier, result], unit_expiry)
    across = quality.budget_across_legs(result.budget, [leg.budget for leg in earlier])
    unstudied = result.unstudied_min + sum(leg.unstudied_min for leg in earlier)
    reduction = profile.expiry_reduction
    return {
        "profile": {
            "id": profile.id,
            "name": profile.name,
            "content_hash": profile.content_hash(),
            "may_return_to_storage": profile.may_return_to_storage,
            "expiry_reduction": None if reduction is None else reduction.model_dump(),
        },
        "evaluation": result.to_json(),
        "units": {
            "count": 0 if units is None else units["units"],
            "earliest_expiry": None if unit_expiry is None else unit_expiry.isoformat(),
        },
        "earlier_legs": [
            {
                "shipment_id": leg["shipment_id"],
                "shipment_ref": leg["shipment_ref"],
                "readings": evaluation.readings,
                "excursions": len(evaluation.excursions),
                "verdict": evaluation.verdict,
            }
            for leg, evaluation in zip(legs, earlier, strict=True)
        ],
        "budget_across_legs": across,
        "unstudied_min_across_legs": round(unstudied, 4),
        "latest_shortened_expiry": None if latest is None else latest.isoformat(),
        "proposed_verdict": quality.proposed_verdict(result.verdict, across, unstudied),
    }


def _shipment(conn: psycopg.Connection[Row], shipment_id: int) -> Row:
    row = conn.execute(queries.SHIPMENT_FOR_ASSESSMENT, (shipment_id,)).fetchone()
    if row is None:
        raise NotFound(f"no shipment {shipment_id}")
    return row


def alarm_statuses(conn: psycopg.Connection[Row], shipment_id: int) -> list[AlarmStatus]:
    return [AlarmStatus(**row) for row in conn.execute(queries.SHIPMENT_ALARMS, (shipment_id,))]


def _disposition_json(row: Row) -> dict[str, Any]:
    return {
        "disposition_id": row["disposition_id"],
        "assessment_id": row["assessment_id"],
        "decision": row["decision"],
        "new_expiry_date": row["new_expiry_date"].isoformat() if row["new_expiry_date"] else None,
        "proposed_verdict": row["proposed_verdict"],
        "signed_by": row["signer_email"],
        "printed_name": row["printed_name"],
        "meaning": row["meaning"],
        "reason": row["reason"],
        "signed_at": isoformat_utc(row["signed_at"]),
        "supersedes": row["supersedes"],
    }


def assessment_view(conn: psycopg.Connection[Row], shipment_id: int) -> dict[str, Any]:
    """Proposed verdict with its evidence, alarms with their assessments, signed decisions.

    Once assessment has started the evidence is the snapshot taken then; before, it is the
    monitor's evaluation of the readings as they are now.
    """
    shipment = _shipment(conn, shipment_id)
    assessment = conn.execute(queries.LATEST_ASSESSMENT, (shipment_id,)).fetchone()
    if assessment is None:
        evidence = shipment_evaluation(conn, shipment)
        verdict = evidence["proposed_verdict"]
    else:
        evidence, verdict = assessment["evidence"], assessment["proposed_verdict"]
    alarms = alarm_statuses(conn, shipment_id)
    signed = [_disposition_json(r) for r in conn.execute(queries.DISPOSITIONS, (shipment_id,))]
    return {
        "shipment_id": shipment_id,
        "shipment_ref": shipment["shipment_ref"],
        "status": shipment["status"],
        "quality_state": shipment["quality_state"],
        "proposed_verdict": verdict,
        "evidence_source": "live" if assessment is None else "assessment",
        "assessment": None
        if assessment is None
        else {
            "assessment_id": assessment["assessment_id"],
            "started_at": isoformat_utc(assessment["started_at"]),
            "started_by": assessment["started_by"],
        },
        "evidence": evidence,
        "alarms": [a.to_json() for a in alarms],
        "unassessed_alarms": sum(1 for a in alarms if a.impact is None),
        "disposition": signed[0] if signed else None,
        "superseded_dispositions": signed[1:],
        "signature_meanings": dict(quality.MEANINGS),
    }


def _permit(
    conn: psycopg.Connection[Row], user: StaffUser, permission: str, shipment_id: int, via: str
) -> None:
    """Only QA assesses and signs; a refusal is audited (21 CFR 11.10(g))."""
    try:
        quality.require_permission(user, permission)
    except NotPermitted:
        accounts.record_denial(
            conn, user, permission, entity_type="shipment", entity_id=shipment_id, via=via
        )
        raise


def start_assessment(
    conn: psycopg.Connection[Row], shipment_id: int, user: StaffUser, now: datetime, *, via: str
) -> int:
    """Snapshot the evidence and move the shipment to under_assessment; the assessment id."""
    _permit(conn, user, ASSESS_PERMISSION, shipment_id, via)
    with conn.transaction():
        if conn.execute(queries.LOCK_SHIPMENT, (shipment_id,)).fetchone() is None:
            raise NotFound(f"no shipment {shipment_id}")
        shipment = _shipment(conn, shipment_id)
        quality.check_start(shipment["quality_state"])
        evidence = shipment_evaluation(conn, shipment)
        verdict = evidence["proposed_verdict"]
        row = conn.execute(
            queries.INSERT_ASSESSMENT,
            {
                "shipment_id": shipment_id,
                "now": now,
                "started_by": user.email,
                "profile_id": shipment["profile_id"],
                "profile_hash": evidence["profile"]["content_hash"],
                "proposed_verdict": verdict,
                "evidence": Jsonb(evidence),
            },
        ).fetchone()
        assert row is not None
        audit.record(
            conn,
            actor=user.email,
            action="disposition.assessment_started",
            entity_type="shipment",
            entity_id=shipment_id,
            details={
                "assessment_id": row["assessment_id"],
                "proposed_verdict": verdict,
                "previous_state": shipment["quality_state"],
                "via": via,
            },
        )
    return int(row["assessment_id"])


def assess_alarm(
    conn: psycopg.Connection[Row],
    shipment_id: int,
    alarm_id: int,
    user: StaffUser,
    *,
    impact: str,
    note: str,
    now: datetime,
    via: str,
) -> int:
    """Record what an alarm means for the product; a newer assessment supersedes.

    Only while the shipment is under assessment: after a signature the outcome changes
    only by re-opening the assessment (start_assessment) and signing again.
    """
    _permit(conn, user, ASSESS_PERMISSION, shipment_id, via)
    quality.check_alarm_assessment(impact, note)
    with conn.transaction():
        if conn.execute(queries.LOCK_SHIPMENT, (shipment_id,)).fetchone() is None:
            raise NotFound(f"no shipment {shipment_id}")
        state = _shipment(conn, shipment_id)["quality_state"]
        if state != "under_assessment":
            raise DispositionError(
                f"alarms cannot be assessed while the shipment is {state}: "
                "start (or re-open) the assessment first"
            )
        if conn.execute(queries.ALARM_OF_SHIPMENT, (alarm_id, shipment_id)).fetchone() is None:
            raise NotFound(f"shipment {shipment_id} has no alarm {alarm_id}")
        row = conn.execute(
            queries.INSERT_ALARM_ASSESSMENT,
            {
                "alarm_id": alarm_id,
                "impact": impact,
                "note": note.strip(),
                "assessed_by": user.email,
                "now": now,
            },
        ).fetchone()
        assert row is not None
        audit.record(
            conn,
            actor=user.email,
            action="disposition.alarm_assessed",
            entity_type="shipment",
            entity_id=shipment_id,
            details={"alarm_id": alarm_id, "impact": impact, "note": note.strip(), "via": via},
        )
    return int(row["alarm_assessment_id"])


def _verify_signer(
    conn: psycopg.Connection[Row],
    user: StaffUser,
    password: str,
    shipment_id: int,
    now: datetime,
    via: str,
) -> None:
    """The re-entered password must be the signer's own (21 CFR 11.200(a)).

    Wrong passwords count toward the same lockout as sign-in (core.accounts), so a stolen
    session cannot be used to guess the password here; each refusal is audited.
    """
    with conn.transaction():
        row = conn.execute(queries.SIGNER_FOR_UPDATE, (user.user_id,)).fetchone()
        locked = row is not None and row["locked_until"] is not None and row["locked_until"] > now
        if (
            row is not None
            and not locked
            and accounts.verify_password(password, row["password_hash"])
        ):
            conn.execute(queries.SIGNER_CLEAR_FAILURES, (user.user_id,))
            return
        details: dict[str, Any] = {"via": via}
        if row is None or locked:
            details["reason"] = "account locked or deactivated"
        else:
            failed = int(row["failed_attempts"]) + 1
            now_locked = failed >= accounts.MAX_FAILED_ATTEMPTS
            conn.execute(
                queries.SIGNER_RECORD_FAILURE,
                (
                    0 if now_locked else failed,
                    now + accounts.LOCKOUT if now_locked else None,
                    user.user_id,
                ),
            )
            details |= {
                "reason": "password does not match",
                "failed_attempts": failed,
                "locked": now_locked,
            }
        audit.record(
            conn,
            actor=user.email,
            action="disposition.signature_failed",
            entity_type="shipment",
            entity_id=shipment_id,
            details=details,
        )
    if details["reason"] == "account locked or deactivated":
        raise quality.SignatureRefused(
            "the account is locked after repeated wrong passwords, or deactivated: "
            "the signature was not applied",
            "password",
        )
    raise quality.SignatureRefused(
        "the password does not match your account: the signature was not applied", "password"
    )


def sign_disposition(
    conn: psycopg.Connection[Row],
    shipment_id: int,
    user: StaffUser,
    *,
    password: str,
    decision: str,
    reason: str,
    new_expiry_date: date | None,
    now: datetime,
    via: str,
) -> dict[str, Any]:
    """Sign QA's decision; the stored disposition as JSON."""
    _permit(conn, user, SIGN_PERMISSION, shipment_id, via)
    _verify_signer(conn, user, password, shipment_id, now, via)
    try:
        with conn.transaction():
            if conn.execute(queries.LOCK_SHIPMENT, (shipment_id,)).fetchone() is None:
                raise NotFound(f"no shipment {shipment_id}")
            shipment = _shipment(conn, shipment_id)
            assessment = conn.execute(queries.LATEST_ASSESSMENT, (shipment_id,)).fetchone()
            latest = (
                None
                if assessment is None
                else assessment["evidence"].get("latest_shortened_expiry")
            )
            chosen = quality.check_disposition(
                quality_state=shipment["quality_state"],
                decision=decision,
                reason=reason,
                new_expiry_date=new_expiry_date,
                latest_expiry=date.fromisoformat(latest) if latest else None,
                alarms=alarm_statuses(conn, shipment_id),
                now=now,
            )
            assert assessment is not None  # under_assessment implies one
            previous = conn.execute(queries.DISPOSITIONS, (shipment_id,)).fetchone()
            values = {
                "shipment_id": shipment_id,
                "assessment_id": assessment["assessment_id"],
                "decision": chosen,
                "new_expiry_date": new_expiry_date,
                "proposed_verdict": assessment["proposed_verdict"],
                "signer_user_id": user.user_id,
                "signer_email": user.email,
                "printed_name": user.display_name,
                "meaning": quality.MEANINGS[chosen],
                "reason": reason.strip(),
                "now": now,
                "supersedes": None if previous is None else previous["disposition_id"],
            }
            row = conn.execute(queries.INSERT_DISPOSITION, values).fetchone()
            assert row is not None
            audit.record(
                conn,
                actor=user.email,
                action="disposition.signed",
                entity_type="shipment",
                entity_id=shipment_id,
                details={
                    "disposition_id": row["disposition_id"],
                    "assessment_id": assessment["assessment_id"],
                    "decision": chosen,
                    "meaning": values["meaning"],
                    "printed_name": user.display_name,
                    "reason": values["reason"],
                    "new_expiry_date": new_expiry_date.isoformat() if new_expiry_date else None,
                    "proposed_verdict": assessment["proposed_verdict"],
                    "signed_at": isoformat_utc(now),
                    "supersedes": values["supersedes"],
                    "authentication": "password re-entered",
                    "via": via,
                },
            )
    except (psycopg.errors.CheckViolation, psycopg.errors.InsufficientPrivilege) as exc:
        # The database's own guard caught what changed between the check and the insert.
        message = exc.diag.message_primary or str(exc)
        raise DispositionError(f"the database refused the disposition: {message}") from exc
    stored = conn.execute(queries.DISPOSITIONS, (shipment_id,)).fetchone()
    assert stored is not None
    return _disposition_json(stored)
