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
from dashboard import actions, overview, queries, shipment
from dashboard.auth import DashboardAuth, current_user

REFRESH_MS = 3000


def _navbar() -> dbc.NavbarSimple:
    user = current_user()
    items = []
    if user is not None:
        items = [
            dbc.NavItem(
                html.Span(
                    [html.Span(user.display_name, id="signed-in-name"), f" · {user.role}"],
                    id="signed-in-user",
                    className="navbar-text text-light me-3",
                )
            ),
            dbc.NavItem(
                html.Form(
                    html.Button(
                        "Sign out",
                        id="sign-out",
                        type="submit",
                        className="btn btn-outline-light btn-sm",
                    ),
                    method="POST",
                    action="/logout",
                )
            ),
        ]
    return dbc.NavbarSimple(
        items,
        brand="Cold-chain shipments",
        brand_href="/",
        color="primary",
        dark=True,
        fluid=True,
        className="mb-3",
    )


def _layout() -> dbc.Container:
    return dbc.Container(
        [
            dcc.Location(id="url"),
            _navbar(),
            html.Div(id="page"),
            dcc.Interval(id="refresh", interval=REFRESH_MS),
        ],
        fluid=True,
    )


def create_dashboard(
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Row]],
    clock: Clock | None = None,
) -> Dash:
    the_clock = clock or SystemClock()
    app = Dash(
        __name__,
        title="Cold-chain shipments",
        # Bootswatch "Flatly" (MIT) is served from dashboard/assets/, not a CDN: the
        # dashboard must work offline and load nothing from third parties.
        serve_locally=True,
        update_title="",
        suppress_callback_exceptions=True,
    )
    auth = DashboardAuth(settings, pool, the_clock)
    auth.install(app)
    # A function, so each page load shows the user the guard signed in for that request.
    app.layout = _layout
    actions.register(app, pool, the_clock)

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
                    actions.allowed_actions(current_user()),
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
