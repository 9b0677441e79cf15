"""Adverse events of a case for staff: record, list, mark reported (issue 7); and the
physician's receipt confirmation and follow-up of each of the case's shipments.

``GET /api/v1/cases/{case_id}/adverse-events`` and ``GET /api/v1/cases/{case_id}/receipts``
are open to every signed-in role; recording an event and marking it reported to the
manufacturer or the regulator need ``adverse_event.manage`` (clinical, admin), re-sending
a receipt link ``receipt.resend`` (logistics, clinical, admin): core.accounts.PERMISSIONS,
checked on the server by core.accounts_api.require, refusals audited.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from case_link import adverse_events, queries, receipts
from core.accounts import StaffUser
from core.accounts_api import clock_of, require
from core.clock import isoformat_utc, utc
from core.db import Row

router = APIRouter(prefix="/api/v1/cases", tags=["adverse events"])
CaseViewer = Annotated[StaffUser, Depends(require("view"))]
AdverseEventManager = Annotated[
    StaffUser,
    Depends(require("adverse_event.manage", entity_type="case", id_param="case_id")),
]
ReceiptResender = Annotated[
    StaffUser, Depends(require("receipt.resend", entity_type="case", id_param="case_id"))
]


class AdverseEventIn(BaseModel):
    onset_date: date
    description: str = Field(min_length=1, max_length=4000)
    seriousness: list[str] = Field(default_factory=list, max_length=6)
    outcome: str
    reporter: str = Field(min_length=1, max_length=200)
    shipment_id: int | None = Field(
        None, description="the shipment concerned; default: the case's latest shipment"
    )


class ReportedIn(BaseModel):
    reported_to: Literal["manufacturer", "regulator"]
    reported_at: datetime | None = Field(None, description="default: now")
    reference: str | None = Field(None, max_length=200)


def _json(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = isoformat_utc(value)
        elif isinstance(value, date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def _case_exists(conn: psycopg.Connection[Row], case_id: int) -> None:
    if conn.execute(queries.CASE_EXISTS, (case_id,)).fetchone() is None:
        raise HTTPException(404, f"case {case_id} does not exist")


@router.get("/{case_id}/adverse-events", summary="Adverse events of a case")
def list_events(request: Request, case_id: int, _user: CaseViewer) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        _case_exists(conn, case_id)
        rows = adverse_events.list_adverse_events(conn, case_id)
    return {"adverse_events": [_json(r) for r in rows]}


@router.post("/{case_id}/adverse-events", status_code=201, summary="Record an adverse event")
def record_event(
    request: Request,
    case_id: int,
    body: AdverseEventIn,
    user: AdverseEventManager,
) -> dict[str, Any]:
    report = adverse_events.AdverseEventReport(
        body.onset_date, body.description, tuple(body.seriousness), body.outcome
    )
    now = clock_of(request).now()
    with request.app.state.pool.connection() as conn, conn.transaction():
        _case_exists(conn, case_id)
        row = conn.execute(
            queries.CASE_SHIPMENT, {"case_id": case_id, "shipment_id": body.shipment_id}
        ).fetchone()
        if row is None:
            raise HTTPException(
                422, "shipment_id: no such shipment in this case (an event concerns a shipment)"
            )
        try:
            event_id = adverse_events.create_adverse_event(
                conn,
                request.app.state.settings,
                case_id=case_id,
                shipment_id=row["shipment_id"],
                report=report,
                reporter=body.reporter,
                source="staff",
                actor=user.email,
                now=now,
            )
        except adverse_events.AdverseEventError as exc:
            raise HTTPException(422, f"{exc.field}: {exc}") from exc
        created = conn.execute(queries.ADVERSE_EVENT_BY_ID, (event_id, case_id)).fetchone()
    assert created is not None
    return _json(created)


@router.patch(
    "/{case_id}/adverse-events/{adverse_event_id}",
    summary="Mark an adverse event reported to the manufacturer or the regulator",
)
def mark_reported(
    request: Request,
    case_id: int,
    adverse_event_id: int,
    body: ReportedIn,
    user: AdverseEventManager,
) -> dict[str, Any]:
    now = clock_of(request).now()
    try:
        reported_at = utc(body.reported_at) if body.reported_at else now
    except ValueError as exc:
        raise HTTPException(422, "reported_at: give a time zone, e.g. 2026-11-25T10:00Z") from exc
    with request.app.state.pool.connection() as conn:
        try:
            row, changed = adverse_events.mark_reported(
                conn,
                case_id=case_id,
                adverse_event_id=adverse_event_id,
                recipient=body.reported_to,
                reported_at=reported_at,
                reference=body.reference,
                actor=user.email,
                now=now,
            )
        except adverse_events.AdverseEventNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except adverse_events.AdverseEventError as exc:
            raise HTTPException(422, f"{exc.field}: {exc}") from exc
    return {**_json(row), "changed": changed}


@router.get(
    "/{case_id}/receipts",
    summary="Receipt confirmation and 48-hour follow-up of each shipment of a case",
)
def list_receipts(request: Request, case_id: int, _user: CaseViewer) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        _case_exists(conn, case_id)
        shipments = conn.execute(queries.CASE_SHIPMENTS, (case_id,)).fetchall()
        out = []
        for shipment in shipments:
            receipt = queries.receipt_status(conn, shipment["shipment_id"])
            followup = queries.followup_status(conn, shipment["shipment_id"])
            out.append(
                {
                    **_json(shipment),
                    "receipt": None if receipt is None else _json(receipt),
                    "followup": None if followup is None else _json(followup),
                }
            )
    return {"shipments": out}


@router.post(
    "/{case_id}/receipts/{shipment_id}/resend",
    status_code=201,
    summary="Send the physician a new receipt link; the previous one stops working",
)
def resend_receipt(
    request: Request,
    case_id: int,
    shipment_id: int,
    user: ReceiptResender,
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            resent = receipts.resend_receipt_link(
                conn,
                request.app.state.settings,
                case_id=case_id,
                shipment_id=shipment_id,
                actor=user.email,
                now=clock_of(request).now(),
            )
        except receipts.ResendRefused as exc:
            raise HTTPException(409, str(exc)) from exc
    return {
        "link_id": resent.link_id,
        "notification_id": resent.notification_id,
        "expires_at": isoformat_utc(resent.expires_at),
        "revoked_link_ids": resent.revoked_link_ids,
    }
