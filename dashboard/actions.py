"""Acknowledge and resolve buttons on the shipment page.

The callback checks the signed-in user's role itself: a crafted callback request from a
role without the permission is refused and audited, whatever the page showed.
"""

from __future__ import annotations

from typing import Any, Final

import dash_bootstrap_components as dbc
import psycopg
from dash import ALL, Dash, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from alerts import service
from core import accounts
from core.accounts import StaffUser
from core.clock import Clock
from core.db import Row
from dashboard import queries, shipment
from dashboard.auth import current_user, refusal
from dashboard.units import shipment_id_of

# Button action → (permission, what the person reads).
ACTIONS: Final = {
    "ack": ("alert.acknowledge", "acknowledged"),
    "resolve": ("alert.resolve", "resolved"),
}


def allowed_actions(user: StaffUser | None) -> frozenset[str]:
    """Which buttons to show; a display convenience only, the callback checks again."""
    if user is None:
        return frozenset()
    return frozenset(
        name for name, (permission, _) in ACTIONS.items() if accounts.can(user.role, permission)
    )


def perform(
    conn: psycopg.Connection[Row], user: StaffUser, action: str, alert_id: int, clock: Clock
) -> dbc.Alert:
    """Acknowledge or resolve for ``user`` if the role allows it; a refusal is audited."""
    permission, done = ACTIONS[action]
    refused = refusal(
        conn,
        user,
        permission,
        entity_type="alert",
        entity_id=alert_id,
        element_id="alert-action-refused",
    )
    if refused is not None:
        return refused
    try:
        if action == "ack":
            service.acknowledge(conn, alert_id, user.email, "dashboard", clock.now())
        else:
            service.resolve(conn, alert_id, user.email, None, clock.now(), via="dashboard")
    except (service.AlertNotFound, service.InvalidTransition) as exc:
        return dbc.Alert(str(exc), color="warning", id="alert-action-failed")
    return dbc.Alert(
        f"Alert {alert_id} {done} by {user.email}.", color="success", id="alert-action-done"
    )


def clicked_action(trigger: object, value: object) -> tuple[str, int] | None:
    """The (action, alert id) of a real click on a pattern-matched alert button."""
    # Buttons re-rendered after an action arrive with n_clicks unset: not a click.
    if not isinstance(trigger, dict) or not value:
        return None
    action = str(trigger.get("action"))
    alert_id = trigger.get("alert_id")
    if action not in ACTIONS or not isinstance(alert_id, int):
        return None
    return action, alert_id


def register(app: Dash, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock) -> None:
    @app.callback(
        Output("shipment-alerts", "children"),
        Output("alert-action-result", "children"),
        Input({"type": "alert-action", "action": ALL, "alert_id": ALL}, "n_clicks"),
        State("url", "pathname"),
        prevent_initial_call=True,
    )
    def act(_clicks: list[int | None], pathname: str | None) -> tuple[Any, Any]:
        clicked = clicked_action(ctx.triggered_id, ctx.triggered[0]["value"])
        user = current_user()
        if clicked is None or user is None:
            raise PreventUpdate
        action, alert_id = clicked
        with pool.connection() as conn:
            message = perform(conn, user, action, alert_id, clock)
            if message.id == "alert-action-refused":
                return no_update, message
            shipment_id = shipment_id_of(pathname)
            rows = queries.shipment_alerts(conn, shipment_id) if shipment_id else []
        return shipment.alerts_list(rows, allowed_actions(user)), message
