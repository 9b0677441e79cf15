"""QA disposition on the shipment page: evidence, alarm assessments, the signed decision.

The form is shown to the qa role only, as a convenience: the callback passes the signed-in
user to :mod:`monitor.disposition`, which refuses (and audits) any other role, so a crafted
callback request gets nowhere. Signing asks for the password again (21 CFR 11.200(a)).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

import dash_bootstrap_components as dbc
import psycopg
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from core import accounts
from core.accounts import StaffUser
from core.clock import Clock
from core.db import Row
from dashboard.auth import current_user
from monitor import disposition
from monitor.quality import DispositionError, NotPermitted

DECISION_LABELS: Final = {
    "released": "Release",
    "released_shortened_expiry": "Release with shortened expiry",
    "rejected": "Reject",
}
IMPACT_LABELS: Final = {
    "no_impact": "No impact on the product",
    "expiry_shortened": "Expiry must be shortened",
    "product_affected": "Product affected: not usable",
}
_STATE_COLOURS: Final = {
    "in_transit": "secondary",
    "delivered": "info",
    "under_assessment": "warning",
    "released": "success",
    "released_shortened_expiry": "success",
    "rejected": "danger",
}


def _is_qa(user: StaffUser | None) -> bool:
    """Whether the page offers the signing controls (the service checks again on submit)."""
    return user is not None and accounts.can(user.role, disposition.SIGN_PERMISSION)


def section(shipment_id: int) -> html.Div:
    """The disposition block of the shipment page; its content is filled by the callback."""
    qa = _is_qa(current_user())
    hidden = {} if qa else {"display": "none"}
    controls = html.Div(
        [
            dbc.Button(
                "Start assessment",
                id="disposition-start",
                color="primary",
                size="sm",
                className="mb-2",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Select(
                            id="disposition-decision",
                            options=[{"label": v, "value": k} for k, v in DECISION_LABELS.items()],
                            value="released",
                        ),
                        md=4,
                    ),
                    dbc.Col(
                        dbc.Input(id="disposition-expiry", type="date", placeholder="new expiry"),
                        md=3,
                    ),
                    dbc.Col(
                        dbc.Input(
                            id="disposition-password",
                            type="password",
                            placeholder="your password",
                            autocomplete="off",
                        ),
                        md=3,
                    ),
                    dbc.Col(dbc.Button("Sign", id="disposition-sign", color="danger"), md=2),
                ],
                className="g-2",
            ),
            dbc.Textarea(
                id="disposition-reason", placeholder="reason for the decision", className="mt-2"
            ),
            html.Small(
                "Signing applies your electronic signature: your name, the time and the "
                "meaning of the decision are recorded with the disposition.",
                className="text-muted",
            ),
        ],
        id="disposition-controls",
        style=hidden,
    )
    return html.Div(
        [
            html.H5("Quality disposition", className="mt-3"),
            dcc.Store(id="disposition-shipment", data=shipment_id),
            html.Div(id="disposition-result"),
            html.Div(id="disposition-panel"),
            controls,
        ],
        id="disposition-section",
    )


def _evidence(view: dict[str, Any]) -> Any:
    result = view["evidence"]["evaluation"]
    items = [
        ("Readings", f"{result['readings']} from {result['start']} to {result['end']}"),
        ("MKT", f"{result['mkt_c']} °C overall, {result['mkt_window_max_c']} °C highest window"),
        (
            "Time (min)",
            f"above {result['time_above_range_min']}, below {result['time_below_range_min']}, "
            f"data gap {result['data_gap_min']}",
        ),
        ("Excursions", str(len(result["excursions"]))),
        *(
            (
                f"Budget {b['above_c']:g}..{b['up_to_c']:g} °C",
                f"used {b['used_min']} of {b['budget_min']:g} min (this leg {b['this_leg_min']}, "
                f"earlier legs {b['earlier_legs_min']})" + (" EXCEEDED" if b["exceeded"] else ""),
            )
            for b in view["evidence"]["budget_across_legs"]
        ),
        *(
            (
                f"Above {max(b['up_to_c'] for b in bands):g} °C (unstudied)",
                f"{view['evidence'].get('unstudied_min_across_legs', 0)} min"
                + (" REJECTS" if view["evidence"].get("unstudied_min_across_legs") else ""),
            )
            for bands in [view["evidence"]["budget_across_legs"]]
            if bands
        ),
        ("Latest shortened expiry", view["evidence"]["latest_shortened_expiry"] or "—"),
    ]
    source = (
        "monitor's evaluation now"
        if view["assessment"] is None
        else f"snapshot of {view['assessment']['started_at']} by {view['assessment']['started_by']}"
    )
    return html.Div(
        [
            html.P(
                [
                    "Proposed verdict: ",
                    html.Strong(view["proposed_verdict"].upper(), id="disposition-verdict"),
                    html.Small(f" ({source})", className="text-muted"),
                ]
            ),
            html.Dl([e for k, v in items for e in (html.Dt(k), html.Dd(v))], className="small"),
        ]
    )


def _alarm_row(alarm: dict[str, Any], editable: bool) -> Any:
    state = (
        f"{IMPACT_LABELS[alarm['impact']]} — {alarm['note']} ({alarm['assessed_by']})"
        if alarm["assessed"]
        else "not assessed"
    )
    form: list[Any] = []
    if editable:
        key = {"alarm_id": alarm["alarm_id"]}
        form = [
            dbc.Select(
                id={"type": "alarm-impact", **key},
                options=[{"label": v, "value": k} for k, v in IMPACT_LABELS.items()],
                value="no_impact",
                size="sm",
            ),
            dbc.Input(id={"type": "alarm-note", **key}, placeholder="meaning / impact", size="sm"),
            dbc.Button(
                "Record assessment",
                id={"type": "alarm-assess", **key},
                size="sm",
                color="secondary",
                className="alarm-assess",
            ),
        ]
    return dbc.ListGroupItem(
        [
            html.Strong(alarm["rule"], className="me-2"),
            html.Span(f"{alarm['severity']} at {alarm['at']}"),
            html.Span(" (found late)" if alarm["retrospective"] else ""),
            html.Div(state, className="alarm-assessment-state small"),
            *form,
        ],
        id=f"alarm-assessment-{alarm['alarm_id']}",
    )


def _signed(view: dict[str, Any]) -> Any:
    signed = view["disposition"]
    if signed is None:
        return html.P("Not signed.", className="text-muted", id="disposition-signed")
    expiry = f", new expiry {signed['new_expiry_date']}" if signed["new_expiry_date"] else ""
    return dbc.Alert(
        [
            html.Strong(f"{signed['meaning']}{expiry}. "),
            f"Signed by {signed['printed_name']} ({signed['signed_by']}) at "
            f"{signed['signed_at']}. Reason: {signed['reason']}",
        ],
        color="light",
        id="disposition-signed",
    )


def panel(view: dict[str, Any], user: StaffUser | None) -> Any:
    editable = _is_qa(user) and view["quality_state"] == "under_assessment"
    state = view["quality_state"]
    return html.Div(
        [
            dbc.Badge(state.replace("_", " "), color=_STATE_COLOURS[state], id="disposition-state"),
            _evidence(view),
            html.H6(f"Alarms ({view['unassessed_alarms']} not assessed)"),
            dbc.ListGroup([_alarm_row(a, editable) for a in view["alarms"]])
            if view["alarms"]
            else html.P("No alarms.", className="text-muted"),
            _signed(view),
        ]
    )


def _expiry(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise DispositionError(f"{text!r} is not a date", "new_expiry_date") from exc


def register(app: Dash, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock) -> None:
    @app.callback(
        Output("disposition-panel", "children"),
        Output("disposition-result", "children"),
        Output("disposition-password", "value"),
        Input("disposition-shipment", "data"),
        Input("disposition-start", "n_clicks"),
        Input({"type": "alarm-assess", "alarm_id": ALL}, "n_clicks"),
        Input("disposition-sign", "n_clicks"),
        State({"type": "alarm-impact", "alarm_id": ALL}, "value"),
        State({"type": "alarm-note", "alarm_id": ALL}, "value"),
        State("disposition-decision", "value"),
        State("disposition-expiry", "value"),
        State("disposition-reason", "value"),
        State("disposition-password", "value"),
    )
    def act(shipment_id: int | None, *_args: Any) -> tuple[Any, Any, Any]:
        user = current_user()
        if user is None or not isinstance(shipment_id, int):
            raise PreventUpdate
        trigger = ctx.triggered_id
        clicked = bool(ctx.triggered and ctx.triggered[0]["value"])
        message: Any = None
        with pool.connection() as conn:
            try:
                if trigger == "disposition-start" and clicked:
                    disposition.start_assessment(
                        conn, shipment_id, user, clock.now(), via="dashboard"
                    )
                    message = dbc.Alert(
                        "Assessment started: evidence snapshot taken.",
                        color="success",
                        id="disposition-done",
                    )
                elif isinstance(trigger, dict) and clicked:
                    alarm_id = int(trigger["alarm_id"])
                    disposition.assess_alarm(
                        conn,
                        shipment_id,
                        alarm_id,
                        user,
                        impact=str(_state_of("alarm-impact", alarm_id) or ""),
                        note=str(_state_of("alarm-note", alarm_id) or ""),
                        now=clock.now(),
                        via="dashboard",
                    )
                    message = dbc.Alert(
                        f"Alarm {alarm_id} assessed.", color="success", id="disposition-done"
                    )
                elif trigger == "disposition-sign" and clicked:
                    states = ctx.states
                    signed = disposition.sign_disposition(
                        conn,
                        shipment_id,
                        user,
                        password=str(states["disposition-password.value"] or ""),
                        decision=str(states["disposition-decision.value"] or ""),
                        reason=str(states["disposition-reason.value"] or ""),
                        new_expiry_date=_expiry(states["disposition-expiry.value"]),
                        now=clock.now(),
                        via="dashboard",
                    )
                    message = dbc.Alert(
                        f"Signed: {signed['meaning']} by {signed['printed_name']}.",
                        color="success",
                        id="disposition-done",
                    )
            except NotPermitted as exc:
                message = dbc.Alert(
                    f"Your role ({user.role}) may not do this: {exc}",
                    color="danger",
                    id="disposition-refused",
                )
            except DispositionError as exc:
                message = dbc.Alert(str(exc), color="warning", id="disposition-failed")
            try:
                view = disposition.assessment_view(conn, shipment_id)
            except DispositionError:
                return html.P("Shipment not found."), message, ""
        return panel(view, user), message, "" if message is not None else no_update


def _state_of(kind: str, alarm_id: int) -> Any:
    """The value of a pattern-matched field of one alarm in the triggering request."""
    for entry in ctx.states_list:
        if isinstance(entry, list):
            for item in entry:
                if item["id"] == {"type": kind, "alarm_id": alarm_id}:
                    return item.get("value")
    return None
