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
from dashboard.auth import current_user

# Button action → (permission, what the person reads).
ACTIONS: Final = {
    "ack": ("alert.acknowledge", "acknowledged"),
    "resolve": ("alert.resolve", "resolved"),
}


def allowed_actions(user: StaffUser | None) -> frozenset[str]:
    """Which buttons to show; a display convenience only, the callback checks again."""
    if user is None:
        return frozenset()
    return frozenset(name for name, (permission, _) in ACTIONS.items() if user.can(permission))


def _shipment_id(pathname: str | None) -> int | None:
    tail = (pathname or "").rstrip("/").removeprefix("/shipments/")
    return int(tail) if tail.isdigit() else None


def register(app: Dash, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock) -> None:
    @app.callback(
        Output("shipment-alerts", "children"),
        Output("alert-action-result", "children"),
        Input({"type": "alert-action", "action": ALL, "alert_id": ALL}, "n_clicks"),
        State("url", "pathname"),
        prevent_initial_call=True,
    )
    def act(_clicks: list[int | None], pathname: str | None) -> tuple[Any, Any]:
        trigger = ctx.triggered_id
        # Buttons re-rendered after an action arrive with n_clicks unset: not a click.
        if not isinstance(trigger, dict) or not ctx.triggered[0]["value"]:
            raise PreventUpdate
        action, alert_id = str(trigger["action"]), int(trigger["alert_id"])
        user = current_user()
        if user is None or action not in ACTIONS:
            raise PreventUpdate
        permission, done = ACTIONS[action]
        with pool.connection() as conn:
            if not user.can(permission):
                accounts.record_denial(
                    conn, user, permission, entity_type="alert", entity_id=alert_id,
                    via="dashboard",
                )  # fmt: skip
                return no_update, dbc.Alert(
                    f"Your role ({user.role}) may not do this: {permission}.",
                    color="danger",
                    id="alert-action-refused",
                )
            try:
                if action == "ack":
                    service.acknowledge(conn, alert_id, user.email, "dashboard", clock.now())
                else:
                    service.resolve(conn, alert_id, user.email, None, clock.now(), via="dashboard")
            except (service.AlertNotFound, service.InvalidTransition) as exc:
                message = dbc.Alert(str(exc), color="warning", id="alert-action-failed")
            else:
                message = dbc.Alert(
                    f"Alert {alert_id} {done} by {user.email}.",
                    color="success",
                    id="alert-action-done",
                )
            shipment_id = _shipment_id(pathname)
            rows = queries.shipment_alerts(conn, shipment_id) if shipment_id else []
        return shipment.alerts_list(rows, allowed_actions(user)), message
