"""Pieces shared by the Cases page and the shipment page's case panel: links to a case
and a shipment, the step badge, times in UTC and at the destination, the adverse-events
table."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import dash_bootstrap_components as dbc
from dash import dcc, html

from case_link.workflow import STEP_TITLES
from core.db import Row
from dashboard import case_status
from dashboard.formatting import local_time, utc_time


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
