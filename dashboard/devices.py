"""The devices page: every logger with battery, last seen, firmware, calibration due date
and the shipment it rides with now; sortable, with overdue calibration and low battery
flagged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import dash_bootstrap_components as dbc
import psycopg
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from core.clock import Clock
from core.db import Row
from dashboard import queries
from dashboard.formatting import age, utc_time
from monitor.live import BATTERY_LOW_PCT

# Calibration falling due within this many days is flagged ahead of time.
CALIBRATION_NOTICE: Final = timedelta(days=30)
FLAG_CALIBRATION_OVERDUE: Final = "calibration overdue"
FLAG_CALIBRATION_SOON: Final = "calibration due soon"
FLAG_BATTERY_LOW: Final = "battery low"
FLAG_INACTIVE: Final = "deactivated"

# (column id, heading) in display order; every column sorts.
COLUMNS: Final = (
    ("device_id", "Logger"),
    ("carrier", "Carrier"),
    ("shipment_ref", "Shipment"),
    ("battery_pct", "Battery %"),
    ("last_seen", "Last seen"),
    ("firmware", "Firmware"),
    ("calibration_due", "Calibration due"),
    ("flags", "Flags"),
)
SORT_BUTTON: Final = "devices-sort"
# Every logger is sorted; the page shows this many of them in that order.
DISPLAY_ROWS: Final = 300
DEFAULT_SORT: Final = {"column": "device_id", "descending": False}


def device_flags(row: Row, today: date) -> list[str]:
    """What needs doing about a logger, as pure logic of (row, today)."""
    flags = []
    due = row["calibration_due"]
    if due is not None and due < today:
        flags.append(FLAG_CALIBRATION_OVERDUE)
    elif due is not None and due <= today + CALIBRATION_NOTICE:
        flags.append(FLAG_CALIBRATION_SOON)
    if row["battery_pct"] is not None and row["battery_pct"] <= BATTERY_LOW_PCT:
        flags.append(FLAG_BATTERY_LOW)
    if not row["active"]:
        flags.append(FLAG_INACTIVE)
    return flags


@dataclass(frozen=True, slots=True)
class DeviceLine:
    row: Row
    flags: tuple[str, ...]

    def key(self, column: str) -> Any:
        return ", ".join(self.flags) if column == "flags" else self.row[column]


def device_lines(rows: list[Row], today: date) -> list[DeviceLine]:
    return [DeviceLine(row, tuple(device_flags(row, today))) for row in rows]


def sort_lines(lines: list[DeviceLine], column: str, descending: bool) -> list[DeviceLine]:
    """Sorted by ``column``; loggers without a value go last either way."""
    if column not in dict(COLUMNS):
        raise ValueError(f"sort column: unknown column {column!r}")
    known = [line for line in lines if line.key(column) is not None]
    unknown = [line for line in lines if line.key(column) is None]
    known.sort(key=lambda line: (line.key(column), line.row["device_id"]), reverse=descending)
    return known + unknown


def _header(column: str, heading: str, sort: dict[str, Any]) -> html.Th:
    arrow = ""
    if sort["column"] == column:
        arrow = " ▼" if sort["descending"] else " ▲"
    return html.Th(
        html.Button(
            heading + arrow,
            id={"type": SORT_BUTTON, "column": column},
            className="btn btn-link btn-sm p-0 fw-bold text-decoration-none text-reset",
            title=f"Sort by {heading.lower()}",
        ),
        className=(f"sorted-{'descending' if sort['descending'] else 'ascending'}")
        if sort["column"] == column
        else "",
    )


def _flagged(flags: tuple[str, ...], flag: str) -> str:
    return "table-danger fw-bold" if flag in flags else ""


def devices_table(lines: list[DeviceLine], sort: dict[str, Any], now: datetime) -> html.Div:
    body = []
    ordered = sort_lines(lines, sort["column"], sort["descending"])
    for line in ordered[:DISPLAY_ROWS]:
        row = line.row
        shipment: Any = "—"
        if row["shipment_id"] is not None:
            shipment = dcc.Link(row["shipment_ref"], href=f"/shipments/{row['shipment_id']}")
        battery = "—" if row["battery_pct"] is None else f"{row['battery_pct']:.0f}"
        due = row["calibration_due"]
        body.append(
            html.Tr(
                [
                    html.Td(row["device_id"], className="device-id"),
                    html.Td(row["carrier"]),
                    html.Td(shipment),
                    html.Td(battery, className=_flagged(line.flags, FLAG_BATTERY_LOW)),
                    html.Td(f"{utc_time(row['last_seen'])} ({age(row['last_seen'], now)})"),
                    html.Td(row["firmware"] or "—"),
                    html.Td(
                        due.isoformat() if due else "unknown",
                        className=_flagged(line.flags, FLAG_CALIBRATION_OVERDUE),
                    ),
                    html.Td(", ".join(line.flags), className="device-flags"),
                ],
                id=f"device-{row['device_id']}",
                className="table-warning" if FLAG_CALIBRATION_SOON in line.flags else "",
            )
        )
    header = html.Thead(html.Tr([_header(c, h, sort) for c, h in COLUMNS]))
    table = dbc.Table(
        [header, html.Tbody(body)],
        size="sm",
        hover=True,
        responsive=True,
        className="text-nowrap",
        id="devices-table",
    )
    if len(ordered) <= DISPLAY_ROWS:
        return html.Div(table)
    more = f"Showing the first {DISPLAY_ROWS} of {len(ordered)} in this order; sort to see others."
    return html.Div([table, html.Small(more, className="text-muted")])


def layout(conn: psycopg.Connection[Row], now: datetime) -> html.Div:
    lines = device_lines(queries.devices(conn, now), now.date())
    overdue = sum(FLAG_CALIBRATION_OVERDUE in line.flags for line in lines)
    low = sum(FLAG_BATTERY_LOW in line.flags for line in lines)
    return html.Div(
        [
            html.H4("Loggers"),
            html.P(
                [
                    f"{len(lines)} loggers · ",
                    html.Span(f"{overdue} calibration overdue", id="devices-overdue"),
                    " · ",
                    html.Span(f"{low} battery low", id="devices-battery-low"),
                    f" (at or below {BATTERY_LOW_PCT:g} %). Click a heading to sort.",
                ],
                className="text-muted",
            ),
            dcc.Store(id="devices-sort-state", data=DEFAULT_SORT),
            html.Div(devices_table(lines, DEFAULT_SORT, now), id="devices-panel"),
        ]
    )


def register(app: Dash, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock) -> None:
    @app.callback(
        Output("devices-panel", "children"),
        Output("devices-sort-state", "data"),
        Input({"type": SORT_BUTTON, "column": ALL}, "n_clicks"),
        State("devices-sort-state", "data"),
        prevent_initial_call=True,
    )
    def sort_by(_clicks: list[int | None], sort: dict[str, Any] | None) -> tuple[Any, Any]:
        trigger = ctx.triggered_id
        # Headings re-rendered by a sort arrive unclicked.
        if not isinstance(trigger, dict) or not ctx.triggered[0]["value"]:
            raise PreventUpdate
        column = str(trigger["column"])
        if column not in dict(COLUMNS):
            raise PreventUpdate
        current = sort or DEFAULT_SORT
        # The same heading again flips the order; a new one starts ascending.
        descending = column == current["column"] and not current["descending"]
        chosen = {"column": column, "descending": descending}
        now = clock.now()
        with pool.connection() as conn:
            lines = device_lines(queries.devices(conn, now), now.date())
        return devices_table(lines, chosen, now), chosen
