"""The case-link API: cases, physicians, shipment units, custody and the exports.

Who may do what (core.accounts.PERMISSIONS, checked on the server with
core.accounts_api.require, every denial audited):

- every signed-in role reads cases, units, custody and the exports (cases are
  pseudonymous; the physician's contact details are not part of a case);
- ``clinical`` and ``admin`` create cases, move them through the program's steps, manage
  physicians and assign them to cases; only they read physicians' contact details;
- ``logistics`` and ``admin`` add units and custody events to shipments;
- linking a shipment to a case is done by ``logistics``, ``clinical`` or ``admin``.

Errors: 404 unknown case or shipment, 409 a step change the program's order forbids (the
detail says why), 422 invalid input (the detail names the field).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from case_link import cases as case_service
from case_link.custody import CustodyError, CustodyEvent, custody_events, record_custody_event
from case_link.epcis import epcis_document
from case_link.physicians import Physician, PhysicianError, assign_physician, register_physician
from case_link.quality import ShipmentNotFound, ShipmentQuality, load_shipment_quality
from case_link.report import render_report
from case_link.units import UnitError, UnitIdentifier, add_unit, shipment_units
from case_link.workflow import StepName, TransitionRefused
from core.accounts import StaffUser
from core.accounts_api import clock_of, require
from core.clock import isoformat_utc
from core.db import Row

router = APIRouter(prefix="/api/v1", tags=["cases"])


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _require_shipment(conn: psycopg.Connection[Row], shipment_id: int) -> None:
    if conn.execute("SELECT 1 FROM shipments WHERE shipment_id = %s", (shipment_id,)).fetchone():
        return
    raise HTTPException(404, f"shipment {shipment_id} does not exist")


# --- cases -------------------------------------------------------------------------------


class CaseCreate(BaseModel):
    case_ref: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]+$")
    regulatory_filing_required: bool = True
    note: str | None = Field(None, max_length=2000)


class CaseTransition(BaseModel):
    to: StepName
    note: str | None = Field(None, max_length=2000)


class PhysicianAssignment(BaseModel):
    physician_id: int


class ShipmentLink(BaseModel):
    shipment_id: int


CaseManager = Annotated[
    StaffUser, Depends(require("case.manage", entity_type="case", id_param="case_id"))
]


@router.post("/cases", status_code=201, summary="Open a pseudonymous case at 'request'")
def create_case(request: Request, user: CaseManager, body: CaseCreate) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            case_id = case_service.create_case(
                conn,
                body.case_ref,
                user.email,
                clock_of(request).now(),
                regulatory_filing_required=body.regulatory_filing_required,
                note=body.note,
            )
        except case_service.CaseError as exc:
            raise HTTPException(409, str(exc)) from exc
        return _json(case_service.get_case(conn, case_id))  # type: ignore[no-any-return]


@router.get("/cases", summary="Cases, newest first, optionally only those at one step")
def list_cases(
    request: Request,
    _user: Annotated[StaffUser, Depends(require("case.view"))],
    step: StepName | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        rows = case_service.list_cases(conn, step, limit)
    return {"cases": _json(rows)}


@router.get("/cases/{case_id}", summary="One case with its transitions and shipments")
def get_case(
    request: Request,
    case_id: int,
    _user: Annotated[StaffUser, Depends(require("case.view"))],
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            return _json(case_service.get_case(conn, case_id))  # type: ignore[no-any-return]
        except case_service.CaseNotFound as exc:
            raise HTTPException(404, str(exc)) from exc


@router.post("/cases/{case_id}/transitions", summary="Move a case to its next step")
def transition_case(
    request: Request, case_id: int, user: CaseManager, body: CaseTransition
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            left = case_service.transition_case(
                conn, case_id, body.to, user.email, clock_of(request).now(), body.note
            )
        except case_service.CaseNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except (TransitionRefused, case_service.CaseError) as exc:
            raise HTTPException(409, str(exc)) from exc
    return {"case_id": case_id, "from": left, "to": body.to}


@router.put("/cases/{case_id}/physician", summary="Assign the treating physician")
def put_physician(
    request: Request, case_id: int, user: CaseManager, body: PhysicianAssignment
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn, conn.transaction():
        known = conn.execute(
            "SELECT 1 FROM physicians WHERE physician_id = %s", (body.physician_id,)
        ).fetchone()
        if known is None:
            raise HTTPException(404, f"physician {body.physician_id} does not exist")
        try:
            assign_physician(conn, case_id, body.physician_id, user.email)
        except PhysicianError as exc:
            raise HTTPException(404, str(exc)) from exc
    return {"case_id": case_id, "physician_id": body.physician_id}


@router.post("/cases/{case_id}/shipments", summary="Link a shipment to the case")
def link_shipment(
    request: Request,
    case_id: int,
    user: Annotated[
        StaffUser, Depends(require("case.link_shipment", entity_type="case", id_param="case_id"))
    ],
    body: ShipmentLink,
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn, conn.transaction():
        _require_shipment(conn, body.shipment_id)
        try:
            case_service.link_shipment(conn, body.shipment_id, case_id, user.email)
        except case_service.CaseNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except case_service.CaseError as exc:
            raise HTTPException(409, str(exc)) from exc
    return {"case_id": case_id, "shipment_id": body.shipment_id}


# --- physicians --------------------------------------------------------------------------


class PhysicianCreate(BaseModel):
    name: str = Field(max_length=200)
    licence_no: str = Field(max_length=64)
    institution: str = Field(max_length=200)
    country: str = Field(max_length=2)
    mobile_e164: str = Field(max_length=16)
    email: str | None = Field(None, max_length=320)


PhysicianManager = Annotated[
    StaffUser, Depends(require("physician.manage", entity_type="physician"))
]


@router.post("/physicians", status_code=201, summary="Register a treating physician")
def create_physician(
    request: Request, user: PhysicianManager, body: PhysicianCreate
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            physician_id = register_physician(conn, Physician(**body.model_dump()), user.email)
        except PhysicianError as exc:
            raise HTTPException(422, str(exc)) from exc
    return {"physician_id": physician_id}


@router.get("/physicians", summary="Physicians with their contact details")
def list_physicians(request: Request, _user: PhysicianManager) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        rows = conn.execute(
            "SELECT physician_id, name, licence_no, institution, country, mobile_e164, email, "
            "created_at FROM physicians ORDER BY name, physician_id"
        ).fetchall()
    return {"physicians": _json(rows)}


# --- units and custody -------------------------------------------------------------------


class UnitCreate(BaseModel):
    gtin: str = Field(max_length=64)
    serial: str = Field(max_length=64)
    lot: str = Field(max_length=64)
    expiry: str = Field(max_length=32, description="YYYY-MM-DD")


class PlaceIn(BaseModel):
    name: str = Field(max_length=200)
    lat: float | None = None
    lon: float | None = None
    tz: str = Field("UTC", max_length=64)


class CustodyCreate(BaseModel):
    event_type: str = Field(max_length=32)
    at: AwareDatetime
    place: PlaceIn
    actor: str | None = Field(
        None, max_length=320, description="who had custody; the signed-in user by default"
    )
    note: str | None = Field(None, max_length=2000)


ShipmentManager = Annotated[
    StaffUser,
    Depends(require("shipment.manage", entity_type="shipment", id_param="shipment_id")),
]
ShipmentViewer = Annotated[StaffUser, Depends(require("shipment.view"))]


@router.post("/shipments/{shipment_id}/units", status_code=201, summary="Add a serialized unit")
def post_unit(
    request: Request, shipment_id: int, user: ShipmentManager, body: UnitCreate
) -> dict[str, Any]:
    now = clock_of(request).now()
    with request.app.state.pool.connection() as conn:
        _require_shipment(conn, shipment_id)
        try:
            unit = UnitIdentifier.parse(
                body.gtin, body.serial, body.lot, body.expiry, today=now.date()
            )
            unit_id = add_unit(conn, shipment_id, unit, user.email, now)
        except UnitError as exc:
            raise HTTPException(422, str(exc)) from exc
    return {"unit_id": unit_id, "gtin": unit.gtin, "serial": unit.serial}


@router.get("/shipments/{shipment_id}/units", summary="The shipment's serialized units")
def get_units(request: Request, shipment_id: int, _user: ShipmentViewer) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        _require_shipment(conn, shipment_id)
        return {"units": _json(shipment_units(conn, shipment_id))}


@router.post("/shipments/{shipment_id}/custody", status_code=201, summary="Append a custody event")
def post_custody(
    request: Request, shipment_id: int, user: ShipmentManager, body: CustodyCreate
) -> dict[str, Any]:
    event = CustodyEvent(
        event_type=body.event_type,
        at=body.at,
        place_name=body.place.name,
        place_lat=body.place.lat,
        place_lon=body.place.lon,
        place_tz=body.place.tz,
        actor=body.actor or user.email,
        note=body.note,
    )
    with request.app.state.pool.connection() as conn:
        _require_shipment(conn, shipment_id)
        try:
            event_id = record_custody_event(
                conn, shipment_id, event, recorded_by=user.email, now=clock_of(request).now()
            )
        except CustodyError as exc:
            raise HTTPException(422, str(exc)) from exc
    return {"custody_event_id": event_id}


@router.get("/shipments/{shipment_id}/custody", summary="The chain of custody, in time order")
def get_custody(request: Request, shipment_id: int, _user: ShipmentViewer) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        _require_shipment(conn, shipment_id)
        return {"custody": _json(custody_events(conn, shipment_id))}


# --- exports -----------------------------------------------------------------------------


def _quality(request: Request, shipment_id: int) -> ShipmentQuality:
    with request.app.state.pool.connection() as conn:
        try:
            return load_shipment_quality(conn, shipment_id)
        except ShipmentNotFound as exc:
            raise HTTPException(404, str(exc)) from exc


@router.get("/shipments/{shipment_id}/epcis", summary="GS1 EPCIS 2.0 JSON-LD (contract)")
def get_epcis(request: Request, shipment_id: int, _user: ShipmentViewer) -> JSONResponse:
    quality = _quality(request, shipment_id)
    document = epcis_document(
        quality, request.app.state.settings.public_url, clock_of(request).now()
    )
    return JSONResponse(document, media_type="application/ld+json")


@router.get("/shipments/{shipment_id}/report.pdf", summary="Shipment quality report (PDF)")
def get_report(request: Request, shipment_id: int, _user: ShipmentViewer) -> Response:
    quality = _quality(request, shipment_id)
    pdf = render_report(quality, clock_of(request).now())
    safe_ref = re.sub(r"[^A-Za-z0-9._-]", "_", quality.shipment["shipment_ref"])
    filename = f"quality-report-{safe_ref}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
