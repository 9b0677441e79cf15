"""The overview page: every active shipment with its last reading and open alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import dcc, html

from core.db import Row

SEVERITY_COLOUR = {
    "critical": "danger",
    "high": "danger",
    "medium": "warning",
    "low": "info",
    "notification": "secondary",
}
STATE_COLOUR = {"ok": "#2e7d32", "alert": "#c62828", "no data": "#757575"}


def severity_badge(severity: str) -> dbc.Badge:
    return dbc.Badge(severity, color=SEVERITY_COLOUR.get(severity, "secondary"), className="me-2")


def _age(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int((now - ts).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _state(row: Row) -> str:
    if row["open_alerts"]:
        return "alert"
    return "no data" if row["last_ts"] is None else "ok"


def shipments_table(rows: list[Row], now: datetime) -> dbc.Table:
    header = html.Thead(
        html.Tr(
            [
                html.Th(h)
                for h in (
                    "Shipment",
                    "Drug profile",
                    "Lane",
                    "Logger",
                    "Last temperature",
                    "Last reading",
                    "Position",
                    "Open alerts",
                )
            ]
        )
    )
    body = []
    for row in rows:
        temp = "—" if row["last_temp_c"] is None else f"{row['last_temp_c']:.1f} °C"
        position = "—" if row["lat"] is None else f"{row['lat']:.3f}, {row['lon']:.3f}"
        alerts: Any = "none"
        if row["open_alerts"]:
            alerts = dbc.Badge(
                f"{row['open_alerts']} · {row['worst_severity']}",
                color=SEVERITY_COLOUR.get(row["worst_severity"], "secondary"),
                className="alert-badge",
            )
        body.append(
            html.Tr(
                [
                    html.Td(
                        dcc.Link(row["shipment_ref"], href=f"/shipments/{row['shipment_id']}"),
                        className="shipment-ref",
                    ),
                    html.Td(row["profile_id"]),
                    html.Td(row["lane"] or "—"),
                    html.Td(row["device_id"] or "—"),
                    html.Td(temp, className="last-temp"),
                    html.Td(_age(row["last_ts"], now)),
                    html.Td(position, className="position"),
                    html.Td(alerts, className="open-alerts"),
                ],
                id=f"shipment-{row['shipment_id']}",
                className=f"state-{_state(row).replace(' ', '-')}",
            )
        )
    return dbc.Table(
        [header, html.Tbody(body)], bordered=False, hover=True, size="sm", id="shipments-table"
    )


def alerts_list(rows: list[Row]) -> html.Div:
    if not rows:
        return html.Div("No open alerts.", className="text-muted", id="alerts-empty")
    items = [
        dbc.ListGroupItem(
            [
                severity_badge(row["severity"]),
                html.Strong(row["shipment_ref"], className="me-2"),
                html.Span(f"{row['rule_id']} — {row['summary']}"),
                html.Small(
                    f" ({row['state']}, {row['triggered_at']:%Y-%m-%d %H:%M} UTC)",
                    className="text-muted",
                ),
            ],
            className="open-alert",
        )
        for row in rows
    ]
    return html.Div(dbc.ListGroup(items), id="alerts-list")


def shipments_map(rows: list[Row], tile_url: str | None) -> go.Figure:
    placed = [r for r in rows if r["lat"] is not None]
    figure = go.Figure()
    for state in ("ok", "alert", "no data"):
        group = [r for r in placed if _state(r) == state]
        if group:
            figure.add_trace(
                go.Scattermap(
                    lat=[r["lat"] for r in group],
                    lon=[r["lon"] for r in group],
                    mode="markers",
                    marker={"size": 12, "color": STATE_COLOUR[state]},
                    name=state,
                    text=[
                        f"{r['shipment_ref']}: {r['last_temp_c']:.1f} °C"
                        if r["last_temp_c"] is not None
                        else r["shipment_ref"]
                        for r in group
                    ],
                    hoverinfo="text",
                )
            )
    layers = []
    if tile_url:
        # With no tiles reachable the positions still render on the plain base.
        layers = [{"sourcetype": "raster", "source": [tile_url], "below": "traces"}]
    figure.update_layout(
        map={"style": "white-bg", "layers": layers, "zoom": 1, "center": {"lat": 30, "lon": -20}},
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=380,
        uirevision="keep-view",
        legend={"orientation": "h", "y": 0.02, "x": 0.01},
    )
    return figure


def layout() -> html.Div:
    return html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(dcc.Graph(id="shipments-map", config={"displaylogo": False}), lg=7),
                    dbc.Col([html.H5("Open alerts"), html.Div(id="alerts-panel")], lg=5),
                ],
                className="mb-3",
            ),
            html.H5("Shipments"),
            html.Div(id="shipments-panel"),
            html.Small(id="updated-at", className="text-muted"),
        ]
    )
