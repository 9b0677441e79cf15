"""The case panel of the shipment page: case, serialized units, chain of custody, the
physician's receipt, the 48-hour follow-up, adverse events, and the two exports.

The exports are served by the dashboard's own server under the API's paths
(``/api/v1/shipments/{id}/report.pdf`` and ``/epcis``), built by the same case_link
functions as the API, so the links work whether the dashboard and the API share a host
and port or not. The dashboard's sign-in guard refuses them without a session (a redirect
to the sign-in page); the role is checked here against the API's permission
(``shipment.view`` in core.accounts.PERMISSIONS) and a refusal is audited.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
import flask
import psycopg
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from case_link import queries as case_link_queries
from case_link.custody import custody_events
from case_link.epcis import epcis_document
from case_link.quality import ShipmentNotFound, ShipmentQuality, load_shipment_quality
from case_link.report import render_report
from case_link.units import shipment_units
from core import accounts
from core.clock import Clock
from core.db import Row
from core.settings import Settings
from dashboard import case_queries, case_status
from dashboard.auth import current_user
from dashboard.case_parts import adverse_events_table, case_link, step_badge
from dashboard.cases import VIEW_PERMISSION
from dashboard.formatting import both_times, local_time, utc_time
from dashboard.livemap import digest_of

EXPORT_PERMISSION = "shipment.view"  # as GET /api/v1/shipments/{id}/… (case_link.api)


def report_path(shipment_id: int) -> str:
    return f"/api/v1/shipments/{shipment_id}/report.pdf"


def epcis_path(shipment_id: int) -> str:
    return f"/api/v1/shipments/{shipment_id}/epcis"


def section(shipment_id: int) -> html.Div:
    """The block of the shipment page; its content is filled (and refreshed) by a callback."""
    buttons = "btn btn-outline-primary btn-sm me-2"
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
            html.Div(id="case-panel"),
        ],
        id="case-section",
    )


def _facts(pairs: list[tuple[str, Any]], id_: str) -> html.Dl:
    return html.Dl(
        [item for k, v in pairs for item in (html.Dt(k, className="col-sm-4"),
                                              html.Dd(v, className="col-sm-8"))],
        className="row small mb-1",
        id=id_,
    )  # fmt: skip


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


def units_table(rows: list[Row]) -> Any:
    if not rows:
        return html.P("No serialized units recorded.", className="text-muted", id="units-table")
    header = html.Thead(html.Tr([html.Th(h) for h in ("GTIN", "Serial", "Lot", "Expiry", "Legs")]))
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(r["gtin"], className="unit-gtin"),
                    html.Td(r["serial"], className="unit-serial"),
                    html.Td(r["lot"]),
                    html.Td(f"{r['expiry']:%Y-%m-%d}"),
                    html.Td(str(r["legs"])),
                ],
                className="unit",
            )
            for r in rows
        ]
    )
    return dbc.Table([header, body], size="sm", id="units-table")


def custody_table(rows: list[Row], destination_tz: str) -> Any:
    if not rows:
        return html.P("No custody events recorded.", className="text-muted", id="custody-table")
    headers = ("Event", "Time (UTC)", "Destination local time", "Place", "Actor", "Note")
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(r["event_type"].replace("_", " "), className="custody-event"),
                    html.Td(utc_time(r["at"])),
                    html.Td(local_time(r["at"], destination_tz) or utc_time(r["at"])),
                    html.Td(r["place_name"]),
                    html.Td(r["actor"], className="custody-actor"),
                    html.Td(r["note"] or ""),
                ],
                className=f"custody custody-{r['event_type']}",
            )
            for r in rows
        ]
    )
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in headers])), body],
        size="sm",
        responsive=True,
        id="custody-table",
    )


def receipt_block(shipment: Row, receipt: Row | None, now: datetime) -> Any:
    """The physician's signed receipt, or how long the confirmation has been awaited."""
    tz = shipment["destination_tz"]
    if receipt is not None and receipt["confirmation_id"] is not None:
        storage = (
            f"yes, placed in storage {both_times(receipt['stored_at'], tz)}"
            if receipt["storage_confirmed"]
            else "NOT confirmed"
        )
        return html.Div(
            [
                _facts(
                    [
                        ("Received at", both_times(receipt["received_at"], tz)),
                        ("Received by", receipt["received_by"]),
                        ("Package", case_status.package_condition(receipt)),
                        ("Storage confirmed", storage),
                        ("Signed", f"{receipt['signer_name']}, {utc_time(receipt['signed_at'])}"),
                        ("Meaning of the signature", receipt["signature_meaning"]),
                        ("Record SHA-256", html.Code(receipt["record_sha256"])),
                    ],
                    "receipt-record",
                ),
            ],
            id="receipt-status",
            className="receipt-confirmed"
            + (" text-danger" if case_status.receipt_has_issue(receipt) else ""),
        )
    if shipment["delivered_at"] is None:
        return html.P("Not delivered yet.", className="text-muted", id="receipt-status")
    since = receipt["delivered_at"] if receipt is not None else shipment["delivered_at"]
    text = (
        f"Awaiting confirmation since {both_times(since, tz)} "
        f"({case_status.whole_hours(since, now)} h)"
    )
    late = False
    if receipt is None:
        text += "; no link sent yet"
    else:
        text += f"; confirm by {utc_time(receipt['confirm_by'])}"
        late = case_status.past_deadline(receipt["confirm_by"], None, now)
    return dbc.Alert(
        [text, html.Strong(" · past the deadline") if late else ""],
        color="danger" if late else "warning",
        id="receipt-status",
        className="receipt-awaiting py-2",
    )


def followup_block(followup: Row | None, tz: str, now: datetime) -> Any:
    if followup is None:
        return html.P(
            "No follow-up scheduled: it is scheduled 48 h after the physician confirms receipt.",
            className="text-muted",
            id="followup-status",
        )
    category = case_status.followup_category(followup)
    colour = {"due": "warning", "overdue": "danger", "done": "success"}[category]
    outcome = case_status.followup_outcome(followup)
    return html.Div(
        [
            dbc.Badge(category, color=colour, className="me-2", id="followup-category"),
            html.Span(
                f"due {both_times(followup['due_at'], tz)} · "
                f"{case_status.followup_timing(followup, now)}"
            ),
            html.Div(
                f"Outcome ({utc_time(followup['completed_at'])}, {followup['signer_name']}): "
                f"{outcome}",
                className="small followup-outcome",
            )
            if outcome
            else "",
        ],
        id="followup-status",
    )


def panel(
    shipment: Row,
    units: list[Row],
    custody: list[Row],
    receipt: Row | None,
    followup: Row | None,
    events: list[Row],
    now: datetime,
) -> html.Div:
    tz = shipment["destination_tz"]
    return html.Div(
        [
            case_summary(shipment),
            dbc.Row(
                [
                    dbc.Col([html.H6("Serialized units"), units_table(units)], lg=5),
                    dbc.Col([html.H6("Chain of custody"), custody_table(custody, tz)], lg=7),
                ]
            ),
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
        Output("case-panel", "children"),
        Output("case-panel-digest", "data"),
        Input("case-panel-shipment", "data"),
        Input("refresh", "n_intervals"),
        State("case-panel-digest", "data"),
    )
    def refresh(shipment_id: int | None, _n: int | None, digest: str | None) -> tuple[Any, Any]:
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
        new_digest = digest_of(content)
        if new_digest == digest:
            return no_update, no_update
        return content, new_digest

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
