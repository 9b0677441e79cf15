"""The Dash application: routing and the refresh callbacks.

Pages: ``/`` (live overview) and ``/shipments/<id>``. Every callback reads the database
(the single source of truth); the app holds no state of its own.
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import psycopg
from dash import Dash, Input, Output, dcc, html
from psycopg_pool import ConnectionPool

from core.clock import Clock, SystemClock
from core.db import Row
from core.settings import Settings
from dashboard import overview, queries, shipment

REFRESH_MS = 3000


def create_dashboard(
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Row]],
    clock: Clock | None = None,
) -> Dash:
    the_clock = clock or SystemClock()
    app = Dash(
        __name__,
        title="Cold-chain shipments",
        external_stylesheets=[dbc.themes.FLATLY],
        serve_locally=True,
        update_title="",
        suppress_callback_exceptions=True,
    )
    app.layout = dbc.Container(
        [
            dcc.Location(id="url"),
            dbc.NavbarSimple(
                brand="Cold-chain shipments",
                brand_href="/",
                color="primary",
                dark=True,
                fluid=True,
                className="mb-3",
            ),
            html.Div(id="page"),
            dcc.Interval(id="refresh", interval=REFRESH_MS),
        ],
        fluid=True,
    )

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def route(pathname: str | None) -> Any:
        path = (pathname or "/").rstrip("/")
        if path.startswith("/shipments/"):
            tail = path.removeprefix("/shipments/")
            if not tail.isdigit():
                return shipment.layout(None, [], [], [])
            shipment_id = int(tail)
            with pool.connection() as conn:
                found = queries.shipment(conn, shipment_id)
                return shipment.layout(
                    found,
                    queries.shipment_readings(conn, shipment_id) if found else [],
                    queries.shipment_excursions(conn, shipment_id) if found else [],
                    queries.shipment_alerts(conn, shipment_id) if found else [],
                )
        return overview.layout()

    @app.callback(
        Output("shipments-panel", "children"),
        Output("alerts-panel", "children"),
        Output("shipments-map", "figure"),
        Output("updated-at", "children"),
        Input("refresh", "n_intervals"),
        Input("url", "pathname"),
    )
    def refresh(_n: int | None, _path: str | None) -> tuple[Any, Any, go.Figure, str]:
        now = the_clock.now()
        with pool.connection() as conn:
            rows = queries.shipments_overview(conn)
            alerts = queries.open_alerts(conn)
        return (
            overview.shipments_table(rows, now),
            overview.alerts_list(alerts),
            overview.shipments_map(rows, settings.map_tile_url),
            f"Updated {now:%Y-%m-%d %H:%M:%S} UTC",
        )

    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.server.add_url_rule("/healthz", "healthz", healthz)
    return app
