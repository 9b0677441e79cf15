"""The Cases page: cases by program step, deliveries awaiting the physician's confirmation,
48-hour follow-ups (due, overdue, done) and adverse events with their reporting deadlines.

Read-only, for every staff role (the callback checks the role itself, whatever the page
showed). Patients are pseudonymous: nothing but the case reference is shown. The page
refreshes with the navbar's interval; unchanged content is not sent again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs

import dash_bootstrap_components as dbc
import psycopg
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from case_link.workflow import STEP_TITLES, STEPS
from core import accounts
from core.clock import Clock
from core.db import Row
from core.settings import Settings
from dashboard import case_queries, case_status
from dashboard.auth import current_user
from dashboard.case_parts import (
    adverse_events_table,
    case_link,
    empty,
    shipment_link,
    step_badge,
    table,
    two_line_time,
)
from dashboard.formatting import both_times, utc_time
from dashboard.livemap import digest_of

# The permission to read cases: every staff role (clinical, qa, logistics, admin).
VIEW_PERMISSION: Final = "view"
_CATEGORY_COLOUR: Final = {"due": "warning", "overdue": "danger", "done": "success"}
_CATEGORY_TITLE: Final = {"due": "Due", "overdue": "Overdue", "done": "Done"}


def filters_from_query(search: str | None) -> tuple[list[str], str]:
    """The step filter and the case reference of ``?step=…&case=…`` (unknown steps ignored)."""
    query = parse_qs((search or "").removeprefix("?"))
    steps = [s for s in query.get("step", []) if s in STEPS]
    case_ref = (query.get("case") or [""])[0][:100]
    return steps, case_ref


def step_counts(counts: Mapping[str, int], selected: list[str]) -> html.Div:
    """One badge per program step with its number of cases; a click filters by that step."""
    items = []
    for step in STEPS:
        active = step in selected
        items.append(
            dcc.Link(
                dbc.Badge(
                    [STEP_TITLES[step], html.Span(f" {counts.get(step, 0)}", className="count")],
                    color="primary" if active else "light",
                    text_color=None if active else "dark",
                    className="me-1 mb-1 border",
                ),
                href=f"/cases?step={step}",
                id=f"step-count-{step}",
                className="step-count",
            )
        )
    return html.Div(items, id="step-counts")


def cases_table(rows: list[Row]) -> Any:
    if not rows:
        return empty("No cases match.", "cases-empty")
    body = [
        html.Tr(
            [
                html.Td(row["case_ref"], className="case-ref"),
                html.Td(row["institution"] or "no physician yet", className="institution"),
                html.Td(row["country"] or "—", className="country"),
                html.Td(step_badge(row["step"])),
                html.Td(
                    [
                        item
                        for i, (sid, ref) in enumerate(
                            zip(row["shipment_ids"], row["shipment_refs"], strict=True)
                        )
                        for item in ([", "] if i else []) + [shipment_link(sid, ref)]
                    ]
                    or "—"
                ),
                html.Td(utc_time(row["updated_at"]), className="updated"),
            ],
            id=f"case-{row['case_id']}",
            className=f"case-row step-{row['step']}",
        )
        for row in rows
    ]
    headers = ("Case", "Physician institution", "Country", "Step", "Shipments", "Updated")
    return table(headers, body, "cases-table")


def _awaiting_status(row: Row, now: datetime) -> dbc.Badge:
    if case_status.past_deadline(row["confirm_by"], None, now):
        return dbc.Badge("past confirmation deadline", color="danger", className="deadline")
    if row["institution"] is None:
        return dbc.Badge("no physician on the case", color="secondary", className="deadline")
    if row["requested_at"] is None:
        return dbc.Badge("link not sent yet", color="info", className="deadline")
    return dbc.Badge("waiting", color="warning", className="deadline")


def awaiting_table(rows: list[Row], now: datetime) -> Any:
    if not rows:
        return empty("No delivery is waiting for the physician's confirmation.", "awaiting-empty")
    body = [
        html.Tr(
            [
                html.Td(shipment_link(row["shipment_id"], row["shipment_ref"])),
                html.Td(case_link(row["case_ref"])),
                html.Td(row["institution"] or "—"),
                html.Td(two_line_time(row["delivered_at"], row["destination_tz"])),
                html.Td(
                    f"{case_status.whole_hours(row['delivered_at'], now)} h",
                    className="hours-since-delivery",
                ),
                html.Td(utc_time(row["confirm_by"])),
                html.Td(_awaiting_status(row, now)),
            ],
            id=f"awaiting-{row['shipment_id']}",
            className="awaiting-row" + (" past-deadline" if row["confirm_by"] <= now else ""),
        )
        for row in rows
    ]
    headers = (
        "Shipment",
        "Case",
        "Physician institution",
        "Delivered (UTC · local)",
        "Since delivery",
        "Confirm by",
        "Status",
    )
    return table(headers, body, "awaiting-table")


def _followup_item(row: Row, now: datetime) -> dbc.ListGroupItem:
    category = case_status.followup_category(row)
    receipt = (
        f"receipt signed {utc_time(row['receipt_signed_at'])} "
        f"(received by {row['receipt_received_by']})"
        if row["receipt_signed_at"] is not None
        else ""
    )
    outcome = case_status.followup_outcome(row)
    colour = None
    if category == "overdue":
        colour = "danger"
    elif case_status.followup_needs_attention(row):
        colour = "warning"
    return dbc.ListGroupItem(
        [
            html.Strong(shipment_link(row["shipment_id"], row["shipment_ref"])),
            html.Span(" · case "),
            case_link(row["case_ref"]),
            html.Span(
                f" · due {both_times(row['due_at'], row['destination_tz'])} · "
                f"{case_status.followup_timing(row, now)}",
                className="followup-timing",
            ),
            html.Div(receipt, className="small text-muted followup-receipt") if receipt else "",
            html.Div(
                f"Outcome ({utc_time(row['completed_at'])}, {row['signer_name']}): {outcome}",
                className="small followup-outcome",
            )
            if outcome
            else "",
        ],
        id=f"followup-{row['followup_id']}",
        className=f"followup followup-{category}",
        color=colour,
    )


def followups_panel(rows: list[Row], now: datetime) -> html.Div:
    groups: dict[str, list[Row]] = {c: [] for c in case_status.FOLLOWUP_CATEGORIES}
    for row in rows:
        groups[case_status.followup_category(row)].append(row)
    sections: list[Any] = []
    for category, members in groups.items():
        sections.append(
            html.H6(
                [
                    _CATEGORY_TITLE[category],
                    dbc.Badge(
                        str(len(members)), color=_CATEGORY_COLOUR[category], className="ms-2"
                    ),
                ],
                className="mt-2",
            )
        )
        sections.append(
            dbc.ListGroup(
                [_followup_item(r, now) for r in members], id=f"followups-{category}", flush=True
            )
            if members
            else empty("None.", f"followups-{category}")
        )
    return html.Div(sections)


def layout() -> html.Div:
    return html.Div(
        [
            # Reads ?step= and ?case= of the address (links from counts and shipment pages).
            dcc.Location(id="cases-url", refresh=False),
            html.H4("Cases", id="cases-title"),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Input(
                            id="cases-search",
                            type="search",
                            placeholder="Case reference",
                            debounce=True,
                        ),
                        xs=12,
                        md=4,
                        className="mb-2",
                    ),
                    dbc.Col(
                        dcc.Dropdown(
                            id="cases-step",
                            options=[{"label": STEP_TITLES[s], "value": s} for s in STEPS],
                            multi=True,
                            placeholder="Program step",
                        ),
                        xs=12,
                        md=8,
                        className="mb-2",
                    ),
                ],
                className="g-2",
            ),
            html.Div(id="cases-counts", className="mb-2"),
            dbc.Row(
                [
                    dbc.Col([html.H5("Cases"), html.Div(id="cases-list")], lg=6),
                    dbc.Col(
                        [
                            html.H5("Deliveries awaiting the physician's confirmation"),
                            html.Div(id="cases-awaiting"),
                        ],
                        lg=6,
                    ),
                ]
            ),
            dbc.Row(
                [
                    dbc.Col([html.H5("48-hour follow-ups"), html.Div(id="cases-followups")], lg=4),
                    dbc.Col([html.H5("Adverse events"), html.Div(id="cases-adverse-events")], lg=8),
                ],
                className="mt-3",
            ),
            dcc.Store(id="cases-digest"),
            html.Small(id="cases-updated-at", className="text-muted"),
        ],
        id="cases-page",
    )


def register(
    app: Dash, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock, settings: Settings
) -> None:
    @app.callback(
        Output("cases-step", "value"),
        Output("cases-search", "value"),
        Input("cases-url", "search"),
    )
    def from_address(search: str | None) -> tuple[list[str], str]:
        return filters_from_query(search)

    @app.callback(
        Output("cases-counts", "children"),
        Output("cases-list", "children"),
        Output("cases-awaiting", "children"),
        Output("cases-followups", "children"),
        Output("cases-adverse-events", "children"),
        Output("cases-digest", "data"),
        Output("cases-updated-at", "children"),
        Input("refresh", "n_intervals"),
        Input("cases-step", "value"),
        Input("cases-search", "value"),
        State("cases-digest", "data"),
    )
    def refresh(
        _n: int | None, steps: list[str] | None, search: str | None, digest: str | None
    ) -> tuple[Any, ...]:
        user = current_user()
        # Every staff role reads cases; the check stays here so the page follows the
        # permission table, whatever a crafted request asks for.
        if user is None or not accounts.can(user.role, VIEW_PERMISSION):
            raise PreventUpdate
        now = clock.now()
        chosen = [s for s in steps or [] if s in STEPS]
        with pool.connection() as conn:
            panels = (
                step_counts(case_queries.step_counts(conn, search), chosen),
                cases_table(case_queries.cases(conn, chosen, search)),
                awaiting_table(
                    case_queries.awaiting_confirmation(
                        conn,
                        now,
                        confirm_hours=settings.receipt_confirm_within_hours,
                        link_ttl_hours=settings.receipt_link_ttl_hours,
                        search=search,
                    ),
                    now,
                ),
                followups_panel(case_queries.followups(conn, search), now),
                adverse_events_table(case_queries.adverse_events(conn, search), now),
            )
        new_digest = digest_of(panels)
        same = new_digest == digest
        return (
            *((no_update,) * 5 if same else panels),
            no_update if same else new_digest,
            f"Updated {now:%Y-%m-%d %H:%M:%S} UTC",
        )
