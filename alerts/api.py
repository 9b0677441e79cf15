"""The alerts API (contract, issue 6): list, acknowledge and resolve, role-checked.

``GET /api/v1/alerts`` is open to every signed-in role; acknowledging and resolving need
``alert.acknowledge`` / ``alert.resolve`` (core.accounts.PERMISSIONS). The lifecycle rules
live in alerts.service; this module only translates them to HTTP (404 unknown alert,
409 a transition the lifecycle forbids).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from alerts import service
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
