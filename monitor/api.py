"""QA disposition over HTTP: the assessment, alarm assessments and the signed decision.

Every route needs a signed-in staff user (cookie or bearer, with the CSRF rule for cookie
changes); assessing (``disposition.assess``) and signing (``disposition.sign``) are for
the qa role only (core.accounts.PERMISSIONS, checked here by core.accounts_api.require and
again by the service, which the dashboard shares).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from core.accounts import StaffUser
from core.accounts_api import clock_of, require
from monitor import disposition
from monitor.quality import DispositionError, NotFound, NotPermitted, SignatureRefused

router = APIRouter(prefix="/api/v1/shipments", tags=["disposition"])
Viewer = Annotated[StaffUser, Depends(require("view"))]
Assessor = Annotated[
    StaffUser,
    Depends(require("disposition.assess", entity_type="shipment", id_param="shipment_id")),
]
Signer = Annotated[
    StaffUser,
    Depends(require("disposition.sign", entity_type="shipment", id_param="shipment_id")),
]


class AlarmAssessmentBody(BaseModel):
    impact: str = Field(
        description="no_impact, expiry_shortened or product_affected", max_length=40
    )
    note: str = Field(description="what the alarm means for the product", max_length=2000)


class DispositionBody(BaseModel):
    decision: str = Field(
        description="released, released_shortened_expiry or rejected", max_length=40
    )
    reason: str = Field(description="why this decision was taken", max_length=2000)
    password: str = Field(description="the signer's password, re-entered", max_length=1024)
    new_expiry_date: date | None = Field(
        None, description="required for released_shortened_expiry (YYYY-MM-DD)"
    )


def _refuse(exc: DispositionError) -> NoReturn:
    if isinstance(exc, NotFound):
        raise HTTPException(404, str(exc)) from exc
    if isinstance(exc, NotPermitted | SignatureRefused):
        raise HTTPException(403, str(exc)) from exc
    if exc.field is not None:
        raise HTTPException(422, f"{exc.field}: {exc}") from exc
    raise HTTPException(409, str(exc)) from exc


@router.get("/{shipment_id}/assessment", summary="Proposed verdict, evidence and alarms")
def get_assessment(request: Request, shipment_id: int, _user: Viewer) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            return disposition.assessment_view(conn, shipment_id)
        except DispositionError as exc:
            _refuse(exc)


@router.post(
    "/{shipment_id}/assessment", summary="Start (or re-open) QA assessment", status_code=201
)
def start_assessment(request: Request, shipment_id: int, user: Assessor) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            disposition.start_assessment(
                conn, shipment_id, user, clock_of(request).now(), via="api"
            )
            return disposition.assessment_view(conn, shipment_id)
        except DispositionError as exc:
            _refuse(exc)


@router.post(
    "/{shipment_id}/alarms/{alarm_id}/assessment",
    summary="Record what an alarm means for the product",
    status_code=201,
)
def assess_alarm(
    request: Request,
    shipment_id: int,
    alarm_id: int,
    body: AlarmAssessmentBody,
    user: Assessor,
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            assessment_id = disposition.assess_alarm(
                conn,
                shipment_id,
                alarm_id,
                user,
                impact=body.impact,
                note=body.note,
                now=clock_of(request).now(),
                via="api",
            )
        except DispositionError as exc:
            _refuse(exc)
    return {"alarm_assessment_id": assessment_id, "alarm_id": alarm_id, "impact": body.impact}


@router.post(
    "/{shipment_id}/disposition",
    summary="Sign QA's decision (electronic signature, 21 CFR 11.50/11.200)",
    status_code=201,
)
def sign_disposition(
    request: Request, shipment_id: int, body: DispositionBody, user: Signer
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            return disposition.sign_disposition(
                conn,
                shipment_id,
                user,
                password=body.password,
                decision=body.decision,
                reason=body.reason,
                new_expiry_date=body.new_expiry_date,
                now=clock_of(request).now(),
                via="api",
            )
        except DispositionError as exc:
            _refuse(exc)
