"""The overview page: the live map with its filters, the shipment list and open alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import dash_bootstrap_components as dbc
import psycopg
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from core.clock import Clock
from core.db import Row
from core.severity import Severity
from dashboard import livemap, queries
from dashboard.fleet import (
    STATE_COLOUR,
    STATE_ORDER,
    Filters,
    FleetShipment,
    MapState,
    drug_class,
)
from dashboard.formatting import Unit, both_times, minutes_ago, temperature, unit_of

SEVERITY_COLOUR = {
    "critical": "danger",
    "high": "danger",
    "medium": "warning",
    "low": "info",
    "notification": "secondary",
}
# The list under the map shows the shipments needing attention first, at most this many.
TABLE_ROWS: Final = 100
_ATTENTION: Final = {state: rank for rank, state in enumerate(reversed(STATE_ORDER))}


def severity_badge(severity: str) -> dbc.Badge:
    return dbc.Badge(severity, color=SEVERITY_COLOUR.get(severity, "secondary"), className="me-2")


def state_badge(state: MapState) -> html.Span:
    return html.Span(
        state.value,
        className="badge map-state",
        style={"backgroundColor": STATE_COLOUR[state]},
    )


def _worst(rank: int | None) -> str:
    return list(Severity)[rank].value if rank is not None else "notification"


def shipments_table(items: list[FleetShipment], now: datetime, unit: Unit) -> html.Div:
    ordered = sorted(items, key=lambda i: (_ATTENTION[i.state], i.row["shipment_ref"]))
    header = html.Thead(
        html.Tr(
            [
                html.Th(h)
                for h in (
                    "Shipment",
                    "State",
                    "Drug profile",
                    "Lane",
                    "Logger",
                    "Last temperature",
                    "Last reading",
                    "Expected delivery (UTC · local)",
                    "Position",
                    "Open alerts",
                )
            ]
        )
    )
    body = []
    for item in ordered[:TABLE_ROWS]:
        row = item.row
        position = "—" if row["lat"] is None else f"{row['lat']:.3f}, {row['lon']:.3f}"
        alerts: Any = "none"
        if row["open_alerts"]:
            worst = _worst(row["worst_rank"])
            alerts = dbc.Badge(
                f"{row['open_alerts']} · {worst}",
                color=SEVERITY_COLOUR.get(worst, "secondary"),
                className="alert-badge",
            )
        body.append(
            html.Tr(
                [
                    html.Td(
                        dcc.Link(row["shipment_ref"], href=f"/shipments/{row['shipment_id']}"),
                        className="shipment-ref",
                    ),
                    html.Td(state_badge(item.state)),
                    html.Td(row["profile_id"]),
                    html.Td(row["lane"] or "—"),
                    html.Td(row["device_id"] or "—"),
                    html.Td(temperature(row["last_temp_c"], unit), className="last-temp"),
                    html.Td(minutes_ago(row["last_ts"], now), className="last-reading"),
                    html.Td(
                        both_times(row["expected_delivery_at"], row["destination_tz"]),
                        className="expected-delivery",
                    ),
                    html.Td(position, className="position"),
                    html.Td(alerts, className="open-alerts"),
                ],
                id=f"shipment-{row['shipment_id']}",
                className=f"state-{item.state.value}",
            )
        )
    note = []
    if len(ordered) > TABLE_ROWS:
        note = [
            html.Small(
                f"Showing the {TABLE_ROWS} needing most attention of {len(ordered)}; "
                "filter or search to narrow down.",
                className="text-muted",
            )
        ]
    table = dbc.Table(
        [header, html.Tbody(body)],
        bordered=False,
        hover=True,
        size="sm",
        responsive=True,
        # One line per shipment; on narrow screens the table scrolls sideways instead.
        className="text-nowrap",
        id="shipments-table",
    )
    return html.Div([table, *note])


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


def _dropdown(id_: str, label: str, options: list[str]) -> dbc.Col:
    return dbc.Col(
        dcc.Dropdown(
            id=id_, options=options, multi=True, placeholder=label, className="map-filter"
        ),
        xs=12,
        sm=6,
        lg=2,
        className="mb-2",
    )


def filter_bar(options: Row, drug_classes: list[str]) -> dbc.Row:
    return dbc.Row(
        [
            dbc.Col(
                dbc.Input(
                    id="map-search",
                    type="search",
                    placeholder="Shipment or case reference",
                    debounce=True,
                ),
                xs=12,
                lg=4,
                className="mb-2",
            ),
            _dropdown("filter-lane", "Lane", list(options["lanes"])),
            _dropdown("filter-carrier", "Carrier", list(options["carriers"])),
            _dropdown("filter-class", "Drug class", drug_classes),
            _dropdown("filter-state", "State", [s.value for s in STATE_ORDER]),
        ],
        className="g-2",
    )


def counts_line(counts: dict[str, int]) -> list[Any]:
    return [
        html.Span(
            f"{state.value} {counts.get(state.value, 0)}",
            className="badge me-1 map-count",
            id=f"map-count-{state.value}",
            style={"backgroundColor": STATE_COLOUR[state]},
        )
        for state in reversed(STATE_ORDER)
    ]


def layout(conn: psycopg.Connection[Row], tile_url: str | None) -> html.Div:
    """The page; its filter choices are the lanes, carriers and drug classes that exist."""
    options = queries.filter_options(conn)
    classes = sorted({drug_class(d) for d in queries.profile_definitions(conn).values()})
    return html.Div(
        [
            filter_bar(options, classes),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.Div(id="map-counts", className="mb-1"),
                            dcc.Graph(
                                id="shipments-map",
                                figure=livemap.base_figure(tile_url),
                                config={"displaylogo": False, "scrollZoom": True},
                            ),
                            dcc.Store(id="map-digest"),
                            dcc.Store(id="panels-digest"),
                        ],
                        lg=7,
                    ),
                    dbc.Col(
                        [
                            html.H5(dcc.Link("Open alerts", href="/alerts")),
                            html.Div(id="alerts-panel"),
                        ],
                        lg=5,
                    ),
                ],
                className="mb-3",
            ),
            html.H5("Shipments"),
            html.Div(id="shipments-panel"),
            html.Small(id="updated-at", className="text-muted"),
        ]
    )


def register(app: Dash, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock) -> None:
    @app.callback(
        Output("shipments-map", "figure"),
        Output("map-digest", "data"),
        Output("map-counts", "children"),
        Output("shipments-panel", "children"),
        Output("alerts-panel", "children"),
        Output("panels-digest", "data"),
        Output("updated-at", "children"),
        Input("refresh", "n_intervals"),
        Input("filter-lane", "value"),
        Input("filter-carrier", "value"),
        Input("filter-class", "value"),
        Input("filter-state", "value"),
        Input("map-search", "value"),
        Input("temperature-unit", "data"),
        Input("shipments-map", "relayoutData"),
        State("map-digest", "data"),
        State("panels-digest", "data"),
    )
    def refresh(
        _n: int | None,
        lanes: list[str] | None,
        carriers: list[str] | None,
        classes: list[str] | None,
        states: list[str] | None,
        search: str | None,
        unit: str | None,
        relayout: dict[str, Any] | None,
        digest: str | None,
        panels_digest: str | None,
    ) -> tuple[Any, ...]:
        now = clock.now()
        filters = Filters.from_inputs(lanes, carriers, classes, states, search)
        with pool.connection() as conn:
            update = livemap.map_update(conn, filters, unit_of(unit), relayout, now)
            alerts = queries.open_alerts(conn)
        # What the browser already holds is not sent again (the digests say so).
        map_same = update.digest == digest
        panels = (
            counts_line(update.counts),
            shipments_table(update.shown, now, unit_of(unit)),
            alerts_list(alerts),
        )
        new_panels_digest = livemap.digest_of(panels)
        panels_same = new_panels_digest == panels_digest
        return (
            no_update if map_same else update.patch,
            no_update if map_same else update.digest,
            *((no_update,) * 3 if panels_same else panels),
            no_update if panels_same else new_panels_digest,
            f"Updated {now:%Y-%m-%d %H:%M:%S} UTC",
        )

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Input("shipments-map", "clickData"),
        prevent_initial_call=True,
    )
    def open_shipment(click: dict[str, Any] | None) -> str:
        points = (click or {}).get("points") or []
        shipment_id = points[0].get("customdata") if points else None
        # A click on a cluster bubble carries no shipment: zooming in is the answer.
        if not isinstance(shipment_id, int):
            raise PreventUpdate
        return f"/shipments/{shipment_id}"
