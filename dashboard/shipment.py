"""The shipment page: temperature against the storage band (and relative humidity where the
logger measures it), excursions and alerts.

The header facts (status, delivered time, …) follow the page's refresh interval and a
custody event recorded on the page; they are resent only when they changed, and the
chart is left alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import psycopg
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from core.db import Row
from dashboard import disposition, queries, shipment_case
from dashboard.auth import current_user
from dashboard.formatting import Unit, both_times, temperature, to_unit, unit_of, utc_time
from dashboard.livemap import digest_of
from dashboard.overview import severity_badge


def _when(value: datetime) -> str:
    """A time for people: UTC to the minute."""
    return utc_time(value)


def _in(values: list[float | None], unit: Unit) -> list[float | None]:
    return [None if v is None else round(to_unit(v, unit), 2) for v in values]


def humidity_values(readings: list[Row]) -> list[float | None] | None:
    """Mean relative humidity per bucket, in %; None when the shipment has no humidity data
    (many loggers have no humidity sensor), so that no empty trace or axis is drawn."""
    values = [None if r.get("rh_pct") is None else round(r["rh_pct"], 1) for r in readings]
    return values if any(v is not None for v in values) else None


def temperature_figure(
    shipment: Row, readings: list[Row], excursions: list[Row], unit: Unit = "C"
) -> go.Figure:
    storage = shipment["definition"]["storage"]
    figure = go.Figure()
    if readings:
        times = [r["ts"] for r in readings]
        figure.add_trace(
            go.Scatter(
                x=times,
                y=_in([r["max_c"] for r in readings], unit),
                mode="lines",
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
            )
        )
        figure.add_trace(
            go.Scatter(
                x=times,
                y=_in([r["min_c"] for r in readings], unit),
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(33,150,243,0.15)",
                name="min–max",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=times,
                y=_in([r["temp_c"] for r in readings], unit),
                mode="lines",
                line={"color": "#1565c0"},
                name=f"temperature °{unit}",
            )
        )
    humidity = humidity_values(readings)
    if humidity is not None:
        figure.add_trace(
            go.Scatter(
                x=[r["ts"] for r in readings],
                y=humidity,
                mode="lines",
                line={"color": "#00897b", "width": 1, "dash": "dot"},
                name="relative humidity %",
                yaxis="y2",
                hovertemplate="%{y:.1f} %<extra>relative humidity</extra>",
            )
        )
        # Humidity has its own fixed 0–100 % scale on the right; the °C/°F switch leaves it.
        figure.update_layout(
            yaxis2={
                "title": {"text": "relative humidity"},
                "overlaying": "y",
                "side": "right",
                "range": [0, 100],
                # Its own ticks (0, 25, … 100 %), not the temperature gridlines' positions.
                "tickmode": "linear",
                "tick0": 0,
                "dtick": 25,
                "showgrid": False,
                "ticksuffix": " %",
            }
        )
    figure.add_hrect(
        y0=to_unit(storage["min_c"], unit),
        y1=to_unit(storage["max_c"], unit),
        fillcolor="rgba(46,125,50,0.10)",
        line_width=0,
        annotation_text="storage range",
        annotation_position="top left",
    )
    last = readings[-1]["ts"] if readings else None
    for excursion in excursions:
        figure.add_vrect(
            x0=excursion["started_at"],
            x1=excursion["ended_at"] or last,
            fillcolor="rgba(198,40,40,0.15)",
            line_width=0,
        )
    figure.update_layout(
        margin={"l": 40, "r": 10 if humidity is None else 60, "t": 10, "b": 40},
        height=360,
        yaxis_title=f"°{unit}",
        xaxis_title="device time (UTC)",
        legend={"orientation": "h", "y": 1.08},
    )
    return figure


def alert_buttons(
    row: Row, allowed: frozenset[str], *, button_type: str = "alert-action", prefix: str = "alert"
) -> list[Any]:
    """Acknowledge/resolve buttons the alert's state and the signed-in role allow (a display
    convenience: the callback checks the role again). ``button_type`` is the pattern-matching
    id type its page's callback listens to; ``prefix`` names the buttons' classes."""
    buttons = []
    for action, label, colour, states in (
        ("ack", "Acknowledge", "warning", ("triggered",)),
        ("resolve", "Resolve", "success", ("triggered", "acknowledged")),
    ):
        if action in allowed and row["state"] in states:
            buttons.append(
                dbc.Button(
                    label,
                    id={"type": button_type, "action": action, "alert_id": row["alert_id"]},
                    color=colour,
                    size="sm",
                    outline=True,
                    className=f"ms-2 {prefix}-{action}",
                )
            )
    return buttons


def alerts_list(rows: list[Row], allowed: frozenset[str] = frozenset()) -> Any:
    """The shipment's alerts; buttons only for what the signed-in role may do."""
    if not rows:
        return html.P("No alerts.", className="text-muted")
    return dbc.ListGroup(
        [
            dbc.ListGroupItem(
                [
                    severity_badge(row["severity"]),
                    html.Strong(row["rule_id"], className="me-2"),
                    html.Span(row["summary"]),
                    html.Small(
                        f" — {row['state']} since {_when(row['triggered_at'])}",
                        className="text-muted alert-state",
                    ),
                    *(
                        [html.Small(f" by {row['acknowledged_by']}", className="text-muted")]
                        if row.get("acknowledged_by")
                        else []
                    ),
                    *alert_buttons(row, allowed),
                ],
                id=f"alert-{row['alert_id']}",
                className=f"shipment-alert state-{row['state']}",
            )
            for row in rows
        ]
    )


def excursions_table(rows: list[Row], unit: Unit = "C") -> Any:
    if not rows:
        return html.P("No excursions.", className="text-muted")
    header = html.Thead(
        html.Tr(
            [html.Th(h) for h in ("Direction", "Start", "End", "Minutes", "Peak", "Found late")]
        )
    )
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(r["direction"]),
                    html.Td(_when(r["started_at"])),
                    html.Td(_when(r["ended_at"]) if r["ended_at"] else "ongoing"),
                    html.Td(f"{r['duration_min']:.0f}"),
                    html.Td(temperature(r["peak_c"], unit)),
                    html.Td("yes" if r["retrospective"] else "no"),
                ]
            )
            for r in rows
        ]
    )
    return dbc.Table([header, body], size="sm", id="excursions-table")


def facts_list(shipment: Row, unit: Unit = "C") -> html.Dl:
    """The header facts; times in UTC and the destination's clock (shipments.destination_tz)."""
    storage = shipment["definition"]["storage"]
    tz = shipment["destination_tz"]
    facts = [
        (
            "Drug profile",
            f"{shipment['profile_name']} ({temperature(storage['min_c'], unit)} to "
            f"{temperature(storage['max_c'], unit)})",
        ),
        ("Lane", shipment["lane"] or "—"),
        ("From", shipment["origin_name"]),
        ("To", f"{shipment['destination_name']} ({tz})"),
        ("Status", shipment["status"]),
        ("Departed", both_times(shipment["departed_at"], tz)),
        ("Expected delivery", both_times(shipment["expected_delivery_at"], tz)),
        ("Delivered", both_times(shipment["delivered_at"], tz)),
    ]
    return html.Dl(
        [
            item
            for k, v in facts
            for item in (html.Dt(k), html.Dd(v, className="fact-" + k.lower().replace(" ", "-")))
        ]
    )


def layout(
    shipment: Row | None,
    readings: list[Row],
    excursions: list[Row],
    alerts: list[Row],
    allowed: frozenset[str] = frozenset(),
    unit: Unit = "C",
) -> html.Div:
    if shipment is None:
        return html.Div(
            [html.H4("Shipment not found"), dcc.Link("Back to all shipments", href="/")],
            id="shipment-missing",
        )
    facts = facts_list(shipment, unit)
    return html.Div(
        [
            dcc.Link("← all shipments", href="/"),
            html.H4(f"Shipment {shipment['shipment_ref']}", id="shipment-title", className="mt-2"),
            dcc.Store(
                id="shipment-facts-state",
                data={"shipment_id": shipment["shipment_id"], "digest": digest_of(facts)},
            ),
            dbc.Row(
                [
                    dbc.Col(html.Div(facts, id="shipment-facts"), lg=3),
                    dbc.Col(
                        dcc.Graph(
                            id="temperature-chart",
                            figure=temperature_figure(shipment, readings, excursions, unit),
                            config={"displaylogo": False},
                        ),
                        lg=9,
                    ),
                ]
            ),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.H5("Alerts"),
                            html.Div(id="alert-action-result"),
                            html.Div(alerts_list(alerts, allowed), id="shipment-alerts"),
                        ],
                        lg=6,
                    ),
                    dbc.Col(
                        [
                            html.H5("Excursions"),
                            html.Div(excursions_table(excursions, unit), id="shipment-excursions"),
                        ],
                        lg=6,
                    ),
                ]
            ),
            disposition.section(shipment["shipment_id"]),
            shipment_case.section(shipment["shipment_id"]),
        ]
    )


def register(app: Dash, pool: ConnectionPool[psycopg.Connection[Row]]) -> None:
    @app.callback(
        Output("shipment-facts", "children"),
        Output("shipment-facts-state", "data"),
        Input("refresh", "n_intervals"),
        Input("custody-recorded", "data"),
        Input("temperature-unit", "data"),
        State("shipment-facts-state", "data"),
        prevent_initial_call=True,
    )
    def refresh_facts(
        _n: int | None, _recorded: int | None, unit: str | None, state: dict[str, Any] | None
    ) -> tuple[Any, Any]:
        """The header again (a delivery recorded on the page or by the monitor's geofence,
        or the °C/°F switch); unchanged facts are not resent."""
        shipment_id = (state or {}).get("shipment_id")
        if current_user() is None or not isinstance(shipment_id, int):
            raise PreventUpdate
        with pool.connection() as conn:
            found = queries.shipment(conn, shipment_id)
        if found is None:
            raise PreventUpdate
        facts = facts_list(found, unit_of(unit))
        digest = digest_of(facts)
        if state and digest == state.get("digest"):
            return no_update, no_update
        return facts, {"shipment_id": shipment_id, "digest": digest}
