"""The case panel of the shipment page: case, serialized units, chain of custody, the
physician's receipt, the 48-hour follow-up, adverse events, and the two exports.

The exports are served by the dashboard's own server under the API's paths
(``/api/v1/shipments/{id}/report.pdf`` and ``/epcis``), built by the same case_link
functions as the API, so the links work whether the dashboard and the API share a host
and port or not. The dashboard's sign-in guard refuses them without a session (a redirect
to the sign-in page); the role is checked here against the API's permission
(``shipment.view`` in core.accounts.PERMISSIONS) and a refusal is audited.

Roles holding ``shipment.manage`` (as ``POST /api/v1/shipments/{id}/custody``) record
custody events here; the callback checks the role again and audits a refusal. A recorded
``delivered`` marks an in-transit shipment delivered, and the receipt sweep then sends the
case's physician the signed link.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
import flask
import psycopg
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from case_link import queries as case_link_queries
from case_link.custody import CustodyError, CustodyEvent, custody_events, record_custody_event
from case_link.epcis import epcis_document
from case_link.quality import ShipmentNotFound, ShipmentQuality, load_shipment_quality
from case_link.report import render_report
from case_link.units import shipment_units
from core import accounts
from core.accounts import StaffUser
from core.clock import Clock, utc
from core.db import Row
from core.settings import Settings
from dashboard import case_queries
from dashboard.auth import current_user, refusal
from dashboard.case_parts import (
    TIME_FORMAT,
    adverse_events_table,
    case_link,
    custody_form,
    custody_table,
    default_place,
    followup_block,
    next_event_type,
    parse_utc_minute,
    place_details,
    receipt_block,
    recorded_message,
    step_badge,
    units_table,
)
from dashboard.cases import VIEW_PERMISSION
from dashboard.livemap import digest_of

EXPORT_PERMISSION = "shipment.view"  # as GET /api/v1/shipments/{id}/… (case_link.api)
MANAGE_PERMISSION = "shipment.manage"  # as POST /api/v1/shipments/{id}/custody


def report_path(shipment_id: int) -> str:
    return f"/api/v1/shipments/{shipment_id}/report.pdf"


def epcis_path(shipment_id: int) -> str:
    return f"/api/v1/shipments/{shipment_id}/epcis"


def section(shipment_id: int) -> html.Div:
    """The block of the shipment page; its content is filled (and refreshed) by a callback.

    The custody form sits outside the refreshed parts, so a refresh never clears it."""
    buttons = "btn btn-outline-primary btn-sm me-2"
    user = current_user()
    may_record = user is not None and accounts.can(user.role, MANAGE_PERMISSION)
    return html.Div(
        [
            html.H5("Case, units and chain of custody", className="mt-3"),
            html.Div(
                [
                    html.A(
                        "Quality report (PDF)",
                        href=report_path(shipment_id),
                        download=f"quality-report-{shipment_id}.pdf",
                        id="download-report",
                        className=buttons,
                    ),
                    html.A(
                        "EPCIS export (JSON-LD)",
                        href=epcis_path(shipment_id),
                        download=f"epcis-{shipment_id}.jsonld",
                        id="download-epcis",
                        className=buttons,
                    ),
                ],  # fmt: skip
                className="mb-2",
            ),
            dcc.Store(id="case-panel-shipment", data=shipment_id),
            dcc.Store(id="case-panel-digest"),
            dcc.Store(id="custody-recorded", data=0),
            html.Div(
                [
                    html.Div(id="case-panel-summary"),
                    dbc.Row(
                        [
                            dbc.Col(
                                [html.H6("Serialized units"), html.Div(id="case-panel-units")],
                                lg=5,
                            ),
                            dbc.Col(
                                [
                                    html.H6("Chain of custody"),
                                    html.Div(id="case-panel-custody"),
                                    custody_form(may_record),
                                ],
                                lg=7,
                            ),
                        ]
                    ),
                    html.Div(id="case-panel-more"),
                ],
                id="case-panel",
            ),
        ],
        id="case-section",
    )


def case_summary(shipment: Row) -> Any:
    if shipment["case_ref"] is None:
        return html.P("Not linked to a case.", className="text-muted", id="case-summary")
    physician = (
        f"{shipment['institution']} ({shipment['country']})"
        if shipment["institution"]
        else "no physician on the case"
    )
    return html.P(
        [
            "Case ",
            html.Strong(case_link(shipment["case_ref"]), id="case-ref"),
            " at ",
            step_badge(shipment["step"]),
            f" · {physician}",
        ],
        id="case-summary",
    )


def panel(
    shipment: Row,
    units: list[Row],
    custody: list[Row],
    receipt: Row | None,
    followup: Row | None,
    events: list[Row],
    now: datetime,
) -> tuple[Any, Any, Any, Any]:
    """The refreshed parts: case summary, units, custody timeline, and the rest."""
    tz = shipment["destination_tz"]
    more = html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(
                        [html.H6("Physician's receipt"), receipt_block(shipment, receipt, now)],
                        lg=7,
                    ),
                    dbc.Col(
                        [html.H6("48-hour follow-up"), followup_block(followup, tz, now)], lg=5
                    ),
                ]
            ),
            html.H6("Adverse events"),
            adverse_events_table(events, now, id_="shipment-adverse-events"),
        ]
    )
    return case_summary(shipment), units_table(units), custody_table(custody, tz), more


def record_from_form(
    conn: psycopg.Connection[Row],
    user: StaffUser,
    shipment_id: int,
    form: dict[str, Any],
    settings: Settings,
    now: datetime,
) -> tuple[dbc.Alert, bool]:
    """Record the form's custody event for ``user`` if the role allows it (a refusal is
    audited); the message and whether an event was recorded."""
    refused = refusal(
        conn,
        user,
        MANAGE_PERMISSION,
        entity_type="shipment",
        entity_id=shipment_id,
        element_id="custody-refused",
    )
    if refused is not None:
        return refused, False
    before = case_queries.custody_form_shipment(conn, shipment_id)
    if before is None:
        return dbc.Alert(f"Shipment {shipment_id} does not exist.", color="warning"), False
    place = str(form.get("place") or "")
    lat, lon, tz = place_details(place, before)
    try:
        event = CustodyEvent(
            event_type=str(form.get("event_type") or ""),
            at=parse_utc_minute(form.get("at")),
            place_name=place,
            actor=user.email,
            place_lat=lat,
            place_lon=lon,
            place_tz=tz,
            note=str(form.get("note") or "").strip() or None,
        )
        record_custody_event(conn, shipment_id, event, recorded_by=user.email, now=now)
    except CustodyError as exc:
        return dbc.Alert(f"Not recorded: {exc}", color="warning", id="custody-failed"), False
    return recorded_message(event, before, settings.receipt_link_ttl_hours, now), True


def _export(
    pool: ConnectionPool[psycopg.Connection[Row]], shipment_id: int
) -> ShipmentQuality | flask.Response:
    """The shipment's quality data for a signed-in user allowed to export, or the refusal."""
    user = current_user()
    if user is None:
        return flask.Response("sign in first", status=401, mimetype="text/plain")
    with pool.connection() as conn:
        if not accounts.can(user.role, EXPORT_PERMISSION):
            accounts.record_denial(
                conn, user, EXPORT_PERMISSION, entity_type="shipment", entity_id=shipment_id,
                via="dashboard",
            )  # fmt: skip
            return flask.Response(f"your role ({user.role}) may not export shipments", status=403)
        try:
            return load_shipment_quality(conn, shipment_id)
        except ShipmentNotFound as exc:
            return flask.Response(str(exc), status=404, mimetype="text/plain")


def _filename(stem: str, shipment_ref: str, suffix: str) -> str:
    safe_ref = re.sub(r"[^A-Za-z0-9._-]", "_", shipment_ref)
    return f"{stem}-{safe_ref}.{suffix}"


def register(
    app: Dash, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock, settings: Settings
) -> None:
    @app.callback(
        Output("case-panel-summary", "children"),
        Output("case-panel-units", "children"),
        Output("case-panel-custody", "children"),
        Output("case-panel-more", "children"),
        Output("case-panel-digest", "data"),
        Input("case-panel-shipment", "data"),
        Input("refresh", "n_intervals"),
        Input("custody-recorded", "data"),
        State("case-panel-digest", "data"),
    )
    def refresh(
        shipment_id: int | None, _n: int | None, _recorded: int | None, digest: str | None
    ) -> tuple[Any, ...]:
        user = current_user()
        if (
            user is None
            or not accounts.can(user.role, VIEW_PERMISSION)
            or not isinstance(shipment_id, int)
        ):
            raise PreventUpdate
        now = clock.now()
        with pool.connection() as conn:
            shipment = case_queries.shipment_case(conn, shipment_id)
            if shipment is None:
                raise PreventUpdate
            content = panel(
                shipment,
                shipment_units(conn, shipment_id),
                custody_events(conn, shipment_id),
                case_link_queries.receipt_status(conn, shipment_id),
                case_link_queries.followup_status(conn, shipment_id),
                case_queries.shipment_adverse_events(conn, shipment_id),
                now,
            )
        new_digest = digest_of(list(content))
        if new_digest == digest:
            return no_update, no_update, no_update, no_update, no_update
        return (*content, new_digest)

    @app.callback(
        Output("custody-event-type", "value"),
        Output("custody-at", "value"),
        Output("custody-place", "value"),
        Output("custody-note", "value"),
        Input("case-panel-shipment", "data"),
        Input("custody-recorded", "data"),
        Input("custody-event-type", "value"),
        State("custody-place", "value"),
    )
    def fill(
        shipment_id: int | None, _recorded: int | None, event_type: str | None, place: str | None
    ) -> tuple[Any, ...]:
        """Defaults on load and after each recorded event; a change of event type moves a
        default place between origin and destination (a typed place is kept)."""
        user = current_user()
        if (
            user is None
            or not accounts.can(user.role, MANAGE_PERMISSION)
            or not isinstance(shipment_id, int)
        ):
            raise PreventUpdate
        with pool.connection() as conn:
            row = case_queries.custody_form_shipment(conn, shipment_id)
        if row is None:
            raise PreventUpdate
        if ctx.triggered_id == "custody-event-type":
            if place and place.strip() not in (row["origin_name"], row["destination_name"]):
                raise PreventUpdate
            return no_update, no_update, default_place(event_type, row), no_update
        chosen = next_event_type(row["status"], row["last_event"])
        at = utc(clock.now()).strftime(TIME_FORMAT)
        return chosen, at, default_place(chosen, row), ""

    @app.callback(
        Output("custody-result", "children"),
        Output("custody-recorded", "data"),
        Input("custody-record", "n_clicks"),
        State("case-panel-shipment", "data"),
        State("custody-event-type", "value"),
        State("custody-at", "value"),
        State("custody-place", "value"),
        State("custody-note", "value"),
        State("custody-recorded", "data"),
        prevent_initial_call=True,
    )
    def record(
        clicks: int | None,
        shipment_id: int | None,
        event_type: str | None,
        at: str | None,
        place: str | None,
        note: str | None,
        recorded: int | None,
    ) -> tuple[Any, Any]:
        user = current_user()
        if user is None or not clicks or not isinstance(shipment_id, int):
            raise PreventUpdate
        form = {"event_type": event_type, "at": at, "place": place, "note": note}
        with pool.connection() as conn:
            message, done = record_from_form(conn, user, shipment_id, form, settings, clock.now())
        return message, (recorded or 0) + 1 if done else no_update

    def report(shipment_id: int) -> flask.typing.ResponseReturnValue:
        quality = _export(pool, shipment_id)
        if isinstance(quality, flask.Response):
            return quality
        pdf = render_report(quality, clock.now())
        name = _filename("quality-report", quality.shipment["shipment_ref"], "pdf")
        response = flask.Response(pdf, mimetype="application/pdf")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        response.headers["Cache-Control"] = "no-store"
        return response

    def epcis(shipment_id: int) -> flask.typing.ResponseReturnValue:
        quality = _export(pool, shipment_id)
        if isinstance(quality, flask.Response):
            return quality
        document = epcis_document(quality, settings.public_url, clock.now())
        name = _filename("epcis", quality.shipment["shipment_ref"], "jsonld")
        response = flask.Response(json.dumps(document), mimetype="application/ld+json")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        response.headers["Cache-Control"] = "no-store"
        return response

    server: flask.Flask = app.server
    server.add_url_rule(
        "/api/v1/shipments/<int:shipment_id>/report.pdf", "shipment_report_pdf", report
    )
    server.add_url_rule("/api/v1/shipments/<int:shipment_id>/epcis", "shipment_epcis", epcis)
