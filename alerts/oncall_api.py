"""The on-call API: read the configuration and who is on call; admins replace or amend it.

``GET /api/v1/oncall/config`` and ``GET /api/v1/oncall/now`` are open to every signed-in
role (logistics needs to know whom to call). ``PUT /api/v1/oncall/config`` (the whole
document, as ``coldchain oncall import`` takes it) and ``POST /api/v1/oncall/schedules/
{schedule_id}/overrides`` need ``oncall.manage`` (admin); ``PUT /api/v1/oncall/shipments/
{id}`` (a shipment's customer and distributor contact) needs ``shipment.contacts``
(logistics, admin). Roles are core.accounts.PERMISSIONS, checked by
core.accounts_api.require; a refusal is audited like every other.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import AwareDatetime, BaseModel, Field

from alerts import oncall_config
from alerts import oncall_queries as q
from alerts.oncall import OnCallNow, Person, oncall_now_and_next
from core import audit
from core.accounts import StaffUser
from core.accounts_api import clock_of, require
from core.clock import isoformat_utc

router = APIRouter(prefix="/api/v1/oncall", tags=["on-call"])
Viewer = Annotated[StaffUser, Depends(require("view"))]
OnCallManager = Annotated[StaffUser, Depends(require("oncall.manage", entity_type="oncall"))]


def _person(person: Person | None) -> dict[str, Any] | None:
    if person is None:
        return None
    return {"id": person.person_id, "name": person.name, "phone": person.phone_e164}


def now_json(entry: OnCallNow) -> dict[str, Any]:
    return {
        "schedule": entry.schedule_id,
        "name": entry.schedule_name,
        "current": _person(entry.current),
        "next_handoff_at": isoformat_utc(entry.next_handoff_at) if entry.next_handoff_at else None,
        "next": _person(entry.next_person),
    }


@router.get("/config", summary="The on-call configuration (people, schedules, policies)")
def get_config(request: Request, _user: Viewer) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        return oncall_config.export(conn)


@router.put("/config", summary="Replace the on-call configuration (admin)")
def put_config(
    request: Request, user: OnCallManager, document: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    try:
        doc = oncall_config.parse(document, "request body")
    except oncall_config.ConfigError as exc:
        raise HTTPException(422, str(exc)) from exc
    with request.app.state.pool.connection() as conn:
        changed = oncall_config.apply(
            conn, doc, actor=user.email, source="api", now=clock_of(request).now()
        )
        return {"changed": changed, "config": oncall_config.export(conn)}


@router.get("/now", summary="Per schedule: who is on call, the next handoff and who then")
def get_now(request: Request, _user: Viewer, at: AwareDatetime | None = None) -> dict[str, Any]:
    instant = at or clock_of(request).now()
    with request.app.state.pool.connection() as conn:
        board = oncall_now_and_next(conn, instant)
    return {"at": isoformat_utc(instant), "schedules": [now_json(entry) for entry in board]}


class OverrideBody(BaseModel):
    person: str = Field(min_length=1, max_length=64)
    start: AwareDatetime
    end: AwareDatetime


@router.post(
    "/schedules/{schedule_id}/overrides", status_code=201, summary="Add an override (admin)"
)
def add_override(
    request: Request, schedule_id: str, user: OnCallManager, body: OverrideBody
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        document = oncall_config.export(conn)
        schedule = next((s for s in document["schedules"] if s["id"] == schedule_id), None)
        if schedule is None:
            raise HTTPException(404, f"schedule {schedule_id!r} does not exist")
        schedule["overrides"].append(
            {
                "person": body.person,
                "start": isoformat_utc(body.start),
                "end": isoformat_utc(body.end),
            }
        )
        try:
            doc = oncall_config.parse(document, "override")
        except oncall_config.ConfigError as exc:
            raise HTTPException(422, str(exc)) from exc
        oncall_config.apply(
            conn, doc, actor=user.email, source="api override", now=clock_of(request).now()
        )
        return {"schedule": schedule_id, "overrides": schedule["overrides"]}


class ShipmentContacts(BaseModel):
    customer: str | None = Field(None, min_length=1, max_length=200)
    distributor_name: str | None = Field(None, min_length=1, max_length=200)
    distributor_phone: str | None = Field(None, pattern=r"^\+[1-9]\d{6,14}$")
    distributor_email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@router.put(
    "/shipments/{shipment_id}",
    summary="A shipment's customer (routing) and distributor (GDP notice), logistics or admin",
)
def put_shipment_contacts(
    request: Request,
    shipment_id: int,
    user: Annotated[
        StaffUser,
        Depends(require("shipment.contacts", entity_type="shipment", id_param="shipment_id")),
    ],
    body: ShipmentContacts,
) -> dict[str, Any]:
    values = body.model_dump()
    with request.app.state.pool.connection() as conn, conn.transaction():
        row = conn.execute(q.SET_SHIPMENT_CONTACTS, {**values, "shipment_id": shipment_id})
        if row.fetchone() is None:
            raise HTTPException(404, f"shipment {shipment_id} does not exist")
        audit.record(
            conn,
            actor=user.email,
            action="shipment.alert_contacts_set",
            entity_type="shipment",
            entity_id=shipment_id,
            details=values,
        )
    return {"shipment_id": shipment_id, **values}
