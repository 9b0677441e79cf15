"""Pieces shared by the Cases page and the shipment page's case panel: links to a case
and a shipment, the step badge, times in UTC and at the destination, the adverse-events
table; the case panel's tables (units, custody, receipt, follow-up); and its "Record
custody event" form with its pure defaults (next event type, default place, the UTC time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

import dash_bootstrap_components as dbc
from dash import dcc, html

from case_link.custody import EVENT_TYPES, CustodyError, CustodyEvent
from case_link.workflow import STEP_TITLES
from core.db import Row
from dashboard import case_status
from dashboard.formatting import both_times, local_time, utc_time


def case_link(case_ref: str | None) -> Any:
    if not case_ref:
        return "—"
    return dcc.Link(case_ref, href=f"/cases?case={quote(case_ref)}", className="case-link")


def shipment_link(shipment_id: int, shipment_ref: str) -> dcc.Link:
    return dcc.Link(shipment_ref, href=f"/shipments/{shipment_id}", className="shipment-link")


def two_line_time(value: datetime | None, tz_name: str | None) -> Any:
    """UTC, and the destination's local time below it when that differs."""
    local = local_time(value, tz_name)
    if not local:
        return utc_time(value)
    return [utc_time(value), html.Br(), html.Small(local, className="text-muted")]


def step_badge(step: str) -> dbc.Badge:
    colour = "secondary" if step == "closed" else "primary"
    return dbc.Badge(STEP_TITLES.get(step, step), color=colour, className="case-step")


def table(headers: tuple[str, ...], rows: list[Any], id_: str) -> dbc.Table:
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(rows)],
        size="sm",
        hover=True,
        responsive=True,
        id=id_,
    )


def empty(text: str, id_: str) -> html.P:
    return html.P(text, className="text-muted", id=id_)


def adverse_events_table(rows: list[Row], now: datetime, id_: str = "adverse-events-table") -> Any:
    if not rows:
        return empty("No adverse events recorded.", f"{id_}-empty")
    body = []
    for row in rows:
        overdue = case_status.adverse_event_overdue(row, now)
        reports = []
        for who in ("manufacturer", "regulator"):
            due_at, reported_at = row[f"{who}_due_at"], row[f"{who}_reported_at"]
            state = case_status.report_state(due_at, reported_at, now)
            reports.append(
                html.Td(
                    case_status.report_text(due_at, reported_at, now),
                    className=f"ae-{who} report-{state}"
                    + (" text-danger fw-bold" if state == "overdue" else ""),
                )
            )
        description = row["description"]
        body.append(
            html.Tr(
                [
                    html.Td(
                        [
                            case_link(row["case_ref"]),
                            html.Br(),
                            shipment_link(row["shipment_id"], row["shipment_ref"]),
                        ]
                    ),
                    html.Td(f"{row['onset_date']:%Y-%m-%d}"),
                    html.Td(
                        case_status.seriousness_text(row),
                        className="ae-seriousness"
                        + (" text-danger fw-bold serious" if row["serious"] else ""),
                    ),
                    html.Td(
                        [
                            description if len(description) <= 140 else description[:139] + "…",
                            html.Div(
                                f"reported by {row['reporter']} ({row['source']})",
                                className="small text-muted",
                            ),
                        ]
                    ),
                    html.Td(row["outcome"].replace("_", " ")),
                    *reports,
                ],
                id=f"adverse-event-{row['adverse_event_id']}",
                className="adverse-event" + (" overdue" if overdue else ""),
            )
        )
    headers = (
        "Case / shipment",
        "Onset",
        "Seriousness",
        "Description",
        "Outcome",
        "Manufacturer report",
        "Regulator report",
    )
    return table(headers, body, id_)


def _facts(pairs: list[tuple[str, Any]], id_: str) -> html.Dl:
    return html.Dl(
        [item for k, v in pairs for item in (html.Dt(k, className="col-sm-4"),
                                              html.Dd(v, className="col-sm-8"))],
        className="row small mb-1",
        id=id_,
    )  # fmt: skip


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


# Custody events that happen at the destination; the others happen at the origin.
DESTINATION_EVENTS: Final = frozenset({"arrived", "customs_released", "delivered", "received"})
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M"  # what an <input type="datetime-local"> holds


def next_event_type(status: str, last_event: str | None) -> str:
    """The custody event most likely recorded next: delivered for a shipment in transit,
    received for a delivered one, otherwise the one after the last recorded."""
    if status == "in_transit":
        return "delivered"
    if status == "delivered":
        return "received"
    if last_event not in EVENT_TYPES:
        return EVENT_TYPES[0]
    return EVENT_TYPES[min(EVENT_TYPES.index(last_event) + 1, len(EVENT_TYPES) - 1)]


def default_place(event_type: str | None, shipment: Row) -> str:
    """The shipment's destination name for destination events, else its origin name."""
    key = "destination_name" if event_type in DESTINATION_EVENTS else "origin_name"
    return str(shipment[key])


def place_details(place_name: str, shipment: Row) -> tuple[float | None, float | None, str]:
    """(lat, lon, time zone) of a place: the shipments row's when the place is its
    destination or origin (the origin has no recorded zone: UTC), else unknown and UTC."""
    name = place_name.strip()
    if name == shipment["destination_name"]:
        return shipment["destination_lat"], shipment["destination_lon"], shipment["destination_tz"]
    if name == shipment["origin_name"]:
        return shipment["origin_lat"], shipment["origin_lon"], "UTC"
    return None, None, "UTC"


def parse_utc_minute(text: str | None) -> datetime:
    """The form's time, entered in UTC ("YYYY-MM-DDTHH:MM" or "YYYY-MM-DD HH:MM")."""
    value = (text or "").strip()
    if not value:
        raise CustodyError("at", "enter the time in UTC, e.g. 2026-03-10 14:30")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CustodyError("at", f"{value!r} is not a time such as 2026-03-10 14:30") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def custody_form(visible: bool) -> html.Div:
    """The compact form; filled with defaults by a callback, hidden from roles that may not
    record (a display convenience: the callback checks the role again)."""
    return html.Div(
        [
            html.H6("Record custody event", className="mt-2"),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            dbc.Label("Event", html_for="custody-event-type", className="small"),
                            dbc.Select(
                                id="custody-event-type",
                                options=[
                                    {"label": t.replace("_", " "), "value": t} for t in EVENT_TYPES
                                ],
                                size="sm",
                            ),
                        ],
                        md=4,
                    ),
                    dbc.Col(
                        [
                            dbc.Label(
                                "Time (entered in UTC)", html_for="custody-at", className="small"
                            ),
                            dbc.Input(id="custody-at", type="datetime-local", size="sm"),
                        ],
                        md=4,
                    ),
                    dbc.Col(
                        [
                            dbc.Label("Place", html_for="custody-place", className="small"),
                            dbc.Input(id="custody-place", maxLength=200, size="sm"),
                        ],
                        md=4,
                    ),
                ],
                className="g-2",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Input(
                            id="custody-note",
                            placeholder="note (optional)",
                            maxLength=2000,
                            size="sm",
                        ),
                        md=9,
                    ),  # fmt: skip
                    dbc.Col(
                        dbc.Button("Record", id="custody-record", color="primary", size="sm"),
                        md=3,
                    ),
                ],
                className="g-2 mt-1",
            ),
            html.Div(id="custody-result", className="mt-2"),
        ],
        id="custody-form",
        style={} if visible else {"display": "none"},
    )


def recorded_message(event: CustodyEvent, before: Row, ttl_hours: int, now: datetime) -> dbc.Alert:
    """What was recorded, and for a delivery what follows (``before``: the form's row as it
    was before recording)."""
    text = (
        f"Recorded {event.event_type.replace('_', ' ')} at {utc_time(event.at)}, "
        f"{event.place_name.strip()}."
    )
    if event.event_type == "delivered":
        if before["status"] != "in_transit":
            text += f" The shipment's status stays {before['status'].replace('_', ' ')}."
        elif before["physician_id"] is None:
            text += " The shipment is delivered; its case has no physician, so no receipt link."
        elif event.at <= now - timedelta(hours=ttl_hours):
            text += (
                f" The shipment is delivered; a delivery older than {ttl_hours} h gets no "
                "receipt link."
            )
        else:
            text += (
                " The shipment is delivered; the physician's receipt link goes out within a minute."
            )
    return dbc.Alert(text, color="success", id="custody-done", className="py-2 small")
