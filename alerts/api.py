"""The alerts API (contract, issue 6): list, acknowledge and resolve, role-checked.

``GET /api/v1/alerts`` is open to every signed-in role; acknowledging and resolving need
``alert.acknowledge`` / ``alert.resolve`` (core.accounts.PERMISSIONS); silences are
created and expired under ``alert.acknowledge``; ``excursion.confirm`` (QA, admin)
confirms the excursion of a temperature alert, which sends the GDP notice (alerts.gdp).
The lifecycle rules live in alerts.service; this module only translates them to HTTP (404
unknown alert, 409 a transition the lifecycle forbids or an alert that is not about
temperature).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from alerts import gdp, oncall_queries, service, silences
from alerts.models import AlertState, Transition
from core import audit
from core.accounts import StaffUser
from core.accounts_api import clock_of, require
from core.clock import isoformat_utc
from core.db import Row

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


class AlertAction(BaseModel):
    note: str | None = Field(None, max_length=2000)


def _alert_json(row: Row) -> dict[str, Any]:
    return {
        key: isoformat_utc(value) if isinstance(value, datetime) else value
        for key, value in row.items()
    }


def _transition_json(transition: Transition) -> dict[str, Any]:
    return {
        "alert_id": transition.alert_id,
        "state": transition.state.value,
        "changed": transition.changed,
        "at": isoformat_utc(transition.at) if transition.at else None,
        "by": transition.by,
        "cancelled_pages": transition.cancelled_pages,
    }


@router.get("", summary="Alerts, newest first, optionally of one state")
def list_alerts(
    request: Request,
    _user: Annotated[StaffUser, Depends(require("view"))],
    state: AlertState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        rows = service.list_alerts(conn, state.value if state else None, limit)
    return {"alerts": [_alert_json(row) for row in rows]}


@router.post("/{alert_id}/ack", summary="Acknowledge: stops further pages")
def acknowledge(
    request: Request,
    alert_id: int,
    user: Annotated[
        StaffUser, Depends(require("alert.acknowledge", entity_type="alert", id_param="alert_id"))
    ],
    body: AlertAction | None = None,
) -> dict[str, Any]:
    note = body.note if body else None
    with request.app.state.pool.connection() as conn, conn.transaction():
        try:
            transition = service.acknowledge(
                conn, alert_id, user.email, "api", clock_of(request).now()
            )
        except service.AlertNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except service.InvalidTransition as exc:
            raise HTTPException(409, str(exc)) from exc
        if note and transition.changed:
            # service.acknowledge takes no note; keep it beside the acknowledgement.
            audit.record(
                conn,
                actor=user.email,
                action="alert.acknowledgement_note",
                entity_type="alert",
                entity_id=alert_id,
                details={"note": note, "via": "api"},
            )
    return _transition_json(transition)


@router.post("/{alert_id}/resolve", summary="Resolve, with an optional note")
def resolve(
    request: Request,
    alert_id: int,
    user: Annotated[
        StaffUser, Depends(require("alert.resolve", entity_type="alert", id_param="alert_id"))
    ],
    body: AlertAction | None = None,
) -> dict[str, Any]:
    note = body.note if body else None
    with request.app.state.pool.connection() as conn:
        try:
            transition = service.resolve(
                conn, alert_id, user.email, note, clock_of(request).now(), via="api"
            )
        except service.AlertNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
    return _transition_json(transition)


@router.post(
    "/{alert_id}/confirm-excursion",
    summary="QA confirms the excursion: the distributor and recipient are notified once",
)
def confirm_excursion(
    request: Request,
    alert_id: int,
    user: Annotated[
        StaffUser, Depends(require("excursion.confirm", entity_type="alert", id_param="alert_id"))
    ],
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn, conn.transaction():
        alert = conn.execute(oncall_queries.ALERT_FOR_EXCURSION, (alert_id,)).fetchone()
        if alert is None or alert["shipment_id"] is None:
            raise HTTPException(404, f"alert {alert_id} does not exist or has no shipment")
        if not alert["temperature"]:
            # The notice tells outside parties of a temperature excursion; a receipt,
            # follow-up or adverse-event alert is not one.
            raise HTTPException(
                409,
                f"alert {alert_id} is for rule {alert['rule_id']}, not a temperature rule: "
                "only temperature excursions can be confirmed",
            )
        queued = gdp.confirm_excursion(
            conn,
            shipment_id=alert["shipment_id"],
            alert_id=alert_id,
            actor=user.email,
            now=clock_of(request).now(),
        )
    return {"alert_id": alert_id, "shipment_id": alert["shipment_id"], "notified": queued}


silences_router = APIRouter(prefix="/silences")


class SilenceBody(BaseModel):
    shipment_id: int | None = Field(None, ge=1)
    rule_id: str | None = Field(None, min_length=1, max_length=100)
    reason: str = Field(min_length=3, max_length=2000)
    ends_at: AwareDatetime


@silences_router.get("", summary="Silences, newest first (active ones only by default)")
def list_silences(
    request: Request,
    _user: Annotated[StaffUser, Depends(require("view"))],
    active: bool = True,
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        rows = silences.list_silences(conn, clock_of(request).now(), active)
    return {"silences": [_alert_json(row) for row in rows]}


@silences_router.post("", status_code=201, summary="Hold pages of a shipment and/or rule")
def create_silence(
    request: Request,
    body: SilenceBody,
    user: Annotated[StaffUser, Depends(require("alert.acknowledge", entity_type="silence"))],
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            silence_id = silences.create_silence(
                conn,
                shipment_id=body.shipment_id,
                rule_id=body.rule_id,
                reason=body.reason,
                ends_at=body.ends_at,
                actor=user.email,
                now=clock_of(request).now(),
            )
        except silences.SilenceError as exc:
            raise HTTPException(422, str(exc)) from exc
    return {"silence_id": silence_id}


@silences_router.post("/{silence_id}/expire", summary="End a silence now")
def expire_silence(
    request: Request,
    silence_id: int,
    user: Annotated[
        StaffUser,
        Depends(require("alert.acknowledge", entity_type="silence", id_param="silence_id")),
    ],
) -> dict[str, Any]:
    with request.app.state.pool.connection() as conn:
        try:
            changed = silences.expire_silence(conn, silence_id, user.email, clock_of(request).now())
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
    return {"silence_id": silence_id, "changed": changed}


router.include_router(silences_router)
