"""The Dash application: routing and the refresh callbacks.

Pages: ``/`` (live map and overview), ``/shipments/<id>``, ``/alerts``, ``/devices`` and
``/cases``. Every callback reads the database (the single source of truth); the app holds
no state of its own. The browser keeps only the person's choice of °C or °F (local storage).
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
import psycopg
from dash import Dash, Input, Output, State, dcc, html
from psycopg_pool import ConnectionPool

from core.clock import Clock, SystemClock
from core.db import Row
from core.settings import Settings
from dashboard import (
    actions,
    alerts_page,
    cases,
    devices,
    disposition,
    overview,
    queries,
    shipment,
    shipment_case,
    units,
)
from dashboard.auth import DashboardAuth, current_user
from dashboard.formatting import unit_of

REFRESH_MS = 3000


def _navbar() -> dbc.NavbarSimple:
    user = current_user()
    items = []
    if user is not None:
        items = [
            dbc.NavItem(dbc.NavLink("Map", href="/", id="nav-map")),
            dbc.NavItem(dbc.NavLink("Alerts", href="/alerts", id="nav-alerts")),
            dbc.NavItem(dbc.NavLink("Devices", href="/devices", id="nav-devices")),
            dbc.NavItem(dbc.NavLink("Cases", href="/cases", id="nav-cases")),
            dbc.NavItem(
                dbc.Switch(id="unit-switch", label="°F", value=False, className="text-light mx-3"),
                className="d-flex align-items-center",
            ),
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
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Store(id="temperature-unit", storage_type="local", data="C"),
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
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    auth = DashboardAuth(settings, pool, the_clock)
    auth.install(app)
    # A function, so each page load shows the user the guard signed in for that request.
    app.layout = _layout
    actions.register(app, pool, the_clock)
    disposition.register(app, pool, the_clock)
    overview.register(app, pool, the_clock)
    alerts_page.register(app, pool, the_clock)
    devices.register(app, pool, the_clock)
    units.register(app, pool)
    shipment.register(app, pool)
    cases.register(app, pool, the_clock, settings)
    shipment_case.register(app, pool, the_clock, settings)

    @app.callback(
        Output("page", "children"),
        Input("url", "pathname"),
        State("temperature-unit", "data"),
    )
    def route(pathname: str | None, unit: str | None) -> Any:
        path = (pathname or "/").rstrip("/")
        if path == "/alerts":
            with pool.connection() as conn:
                return alerts_page.layout(conn, the_clock.now(), current_user())
        if path == "/cases":
            return cases.layout()
        if path == "/devices":
            with pool.connection() as conn:
                return devices.layout(conn, the_clock.now())
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
                    unit_of(unit),
                )
        with pool.connection() as conn:
            return overview.layout(conn, settings.map_tile_url)

    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.server.add_url_rule("/healthz", "healthz", healthz)
    return app
