"""Silences on the alerts page: the list with its Expire buttons and the form that holds
pages for a shipment and/or rule.

Silences are created and expired through ``alerts.silences`` under the permission the
alerts API uses (``alert.acknowledge``), checked again in the callback on the server and
audited when refused, whatever the page showed. Critical temperature alerts page through
any silence (alerts.silences).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

import dash_bootstrap_components as dbc
import psycopg
from dash import ALL, Dash, Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from alerts.silences import SilenceError, create_silence, expire_silence
from core import accounts
from core.accounts import StaffUser
from core.clock import Clock
from core.db import Row
from dashboard import queries
from dashboard.auth import current_user, refusal
from dashboard.formatting import utc_time

EXPIRE_TYPE = "silence-expire"
SILENCE_PERMISSION: Final = "alert.acknowledge"  # as alerts.api's silences_router
MAX_SILENCE_HOURS: Final = 24 * 365


def silences_panel(rows: list[Row], refs: dict[int, str], can_expire: bool = False) -> Any:
    if not rows:
        return html.P("No silences in force.", className="text-muted", id="silences-empty")
    return dbc.ListGroup(
        [
            dbc.ListGroupItem(
                [
                    html.Strong(
                        " · ".join(
                            part
                            for part in (
                                f"shipment {refs.get(row['shipment_id'], row['shipment_id'])}"
                                if row["shipment_id"]
                                else "",
                                f"rule {row['rule_id']}" if row["rule_id"] else "",
                            )
                            if part
                        )
                    ),
                    html.Div(row["reason"]),
                    html.Small(
                        f"until {utc_time(row['ends_at'])}, by {row['created_by']}",
                        className="text-muted",
                    ),
                    *(
                        [
                            dbc.Button(
                                "Expire",
                                id={"type": EXPIRE_TYPE, "silence_id": row["silence_id"]},
                                color="secondary",
                                size="sm",
                                outline=True,
                                className="ms-2 silence-expire",
                            )
                        ]
                        if can_expire
                        else []
                    ),
                ],
                id=f"silence-{row['silence_id']}",
                className="silence",
            )
            for row in rows
        ]
    )


def may_silence(user: StaffUser | None) -> bool:
    """Whether to show the silence form and Expire buttons; the callback checks again."""
    return user is not None and accounts.can(user.role, SILENCE_PERMISSION)


def _field(label: str, component: Any) -> html.Div:
    return html.Div(
        [dbc.Label(label, html_for=component.id, className="small mb-0"), component],
        className="mb-2",
    )


def silence_form() -> html.Div:
    """Hold pages for a shipment and/or rule; shown to roles holding SILENCE_PERMISSION."""
    return html.Div(
        [
            html.H6("New silence", className="mt-3"),
            _field(
                "Shipment reference (or empty)",
                dbc.Input(id="silence-shipment", maxLength=100, size="sm"),
            ),
            _field(
                "Rule id (or empty; a shipment, a rule or both)",
                dbc.Input(id="silence-rule", maxLength=100, size="sm"),
            ),
            _field("Reason", dbc.Textarea(id="silence-reason", maxLength=2000, rows=2)),
            dbc.Row(
                [
                    dbc.Col(
                        _field(
                            "Duration (hours)",
                            dbc.Input(
                                id="silence-hours",
                                type="number",
                                min=0,
                                step="any",
                                value=2,
                                size="sm",
                            ),
                        )
                    ),
                    dbc.Col(
                        _field(
                            "or end time (UTC)",
                            dbc.Input(id="silence-until", type="datetime-local", size="sm"),
                        )
                    ),
                ]
            ),
            html.Small(
                "Critical temperature alerts still page during a silence.",
                className="text-danger d-block mb-2",
                id="silence-critical-note",
            ),
            dbc.Button("Create silence", id="silence-create", size="sm", color="secondary"),
        ],
        id="silence-form",
    )


def silence_end(hours: object, until: str | None, now: datetime) -> datetime:
    """When a silence from the form ends: the end time (entered in UTC) if one is given,
    otherwise now plus the duration in hours."""
    text = (until or "").strip()
    if text:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise SilenceError(
                f"ends_at: {text!r} is not a time such as 2026-03-10 14:30"
            ) from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if hours is None or hours == "":
        raise SilenceError("duration: enter the hours, or an end time in UTC")
    try:
        value = float(str(hours))
    except ValueError:
        raise SilenceError(f"duration: {hours!r} is not a number of hours") from None
    if not 0 < value <= MAX_SILENCE_HOURS:  # NaN fails this too
        raise SilenceError(f"duration: more than 0 and at most {MAX_SILENCE_HOURS} hours")
    return now + timedelta(hours=value)


def _refused(
    conn: psycopg.Connection[Row], user: StaffUser, entity_id: str | int
) -> dbc.Alert | None:
    """None when the role may silence; otherwise the audited refusal."""
    return refusal(
        conn,
        user,
        SILENCE_PERMISSION,
        entity_type="silence",
        entity_id=entity_id,
        element_id="silence-refused",
    )


def create_from_form(
    conn: psycopg.Connection[Row],
    user: StaffUser,
    form: dict[str, str | None],
    hours: object,
    until: str | None,
    now: datetime,
) -> tuple[dbc.Alert, bool]:
    """Create the form's silence for ``user`` if the role allows it; a refusal is audited."""
    refused = _refused(conn, user, "new")
    if refused is not None:
        return refused, False
    ref = (form.get("shipment") or "").strip()
    reason = form.get("reason") or ""
    try:
        shipment_id = queries.shipment_id_by_ref(conn, ref) if ref else None
        if ref and shipment_id is None:
            raise SilenceError(f"shipment: no shipment with reference {ref!r}")
        rule_id = (form.get("rule") or "").strip() or None
        for field, text, limit in (("reason", reason, 2000), ("rule_id", rule_id or "", 100)):
            if len(text) > limit:  # the API's limits
                raise SilenceError(f"{field}: at most {limit} characters")
        silence_id = create_silence(
            conn,
            shipment_id=shipment_id,
            rule_id=rule_id,
            reason=reason,
            ends_at=silence_end(hours, until, now),
            actor=user.email,
            now=now,
        )
    except SilenceError as exc:
        return dbc.Alert(f"Not created: {exc}", color="warning", id="silence-failed"), False
    return dbc.Alert(
        f"Silence {silence_id} created by {user.email}.", color="success", id="silence-done"
    ), True


def expire_from_click(
    conn: psycopg.Connection[Row], user: StaffUser, silence_id: int, now: datetime
) -> tuple[dbc.Alert, bool]:
    """End a silence now for ``user`` if the role allows it; a refusal is audited."""
    refused = _refused(conn, user, silence_id)
    if refused is not None:
        return refused, False
    try:
        changed = expire_silence(conn, silence_id, user.email, now)
    except LookupError as exc:
        return dbc.Alert(str(exc), color="warning", id="silence-failed"), False
    if not changed:
        return dbc.Alert(
            f"Silence {silence_id} had already ended.", color="warning", id="silence-failed"
        ), True
    return dbc.Alert(
        f"Silence {silence_id} expired by {user.email}; held pages go out on the next sweep.",
        color="success",
        id="silence-done",
    ), True


def register(app: Dash, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock) -> None:
    @app.callback(
        Output("silence-result", "children"),
        Output("silence-changed", "data"),
        Output("silence-reason", "value"),
        Input("silence-create", "n_clicks"),
        Input({"type": EXPIRE_TYPE, "silence_id": ALL}, "n_clicks"),
        State("silence-shipment", "value"),
        State("silence-rule", "value"),
        State("silence-reason", "value"),
        State("silence-hours", "value"),
        State("silence-until", "value"),
        State("silence-changed", "data"),
        prevent_initial_call=True,
    )
    def silence(
        _create: int | None,
        _expire: list[int | None],
        shipment_ref: str | None,
        rule_id: str | None,
        reason: str | None,
        hours: object,
        until: str | None,
        changed: int | None,
    ) -> tuple[Any, Any, Any]:
        user = current_user()
        trigger = ctx.triggered_id
        # Expire buttons appearing in a re-rendered panel fire this too, unclicked.
        if user is None or not ctx.triggered[0]["value"]:
            raise PreventUpdate
        form = {"shipment": shipment_ref, "rule": rule_id, "reason": reason}
        with pool.connection() as conn:
            if trigger == "silence-create":
                message, done = create_from_form(conn, user, form, hours, until, clock.now())
            elif isinstance(trigger, dict) and isinstance(trigger.get("silence_id"), int):
                message, done = expire_from_click(conn, user, trigger["silence_id"], clock.now())
            else:
                raise PreventUpdate
        if not done:
            return message, no_update, no_update
        return message, (changed or 0) + 1, "" if trigger == "silence-create" else no_update
