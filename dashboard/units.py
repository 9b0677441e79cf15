"""°C or °F: the navbar switch, the browser's stored choice, and the chart that follows it."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import psycopg
from dash import Dash, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from core.db import Row
from dashboard import queries
from dashboard.formatting import unit_of
from dashboard.shipment import excursions_table, temperature_figure


def shipment_id_of(pathname: str | None) -> int | None:
    tail = (pathname or "").rstrip("/").removeprefix("/shipments/")
    return int(tail) if tail.isdigit() else None


def register(app: Dash, pool: ConnectionPool[psycopg.Connection[Row]]) -> None:
    @app.callback(
        Output("temperature-unit", "data"),
        Output("unit-switch", "value"),
        Input("unit-switch", "value"),
        Input("temperature-unit", "data"),
    )
    def temperature_unit(switch: bool | None, stored: str | None) -> tuple[Any, Any]:
        """The switch and the stored choice (local storage, per browser), kept in step."""
        if ctx.triggered_id == "unit-switch":
            return ("F" if switch else "C"), no_update
        return no_update, stored == "F"

    @app.callback(
        Output("temperature-chart", "figure"),
        Output("shipment-excursions", "children"),
        Input("temperature-unit", "data"),
        State("url", "pathname"),
        prevent_initial_call=True,
    )
    def chart_in_unit(unit: str | None, pathname: str | None) -> tuple[go.Figure, Any]:
        shipment_id = shipment_id_of(pathname)
        if shipment_id is None:
            raise PreventUpdate
        with pool.connection() as conn:
            found = queries.shipment(conn, shipment_id)
            if found is None:
                raise PreventUpdate
            excursions = queries.shipment_excursions(conn, shipment_id)
            readings = queries.shipment_readings(conn, shipment_id)
        chosen = unit_of(unit)
        return (
            temperature_figure(found, readings, excursions, chosen),
            excursions_table(excursions, chosen),
        )
