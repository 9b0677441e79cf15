"""The alerts page: open alerts by severity and age, their escalation history, who is on
call now and next, and the silences in force.

The acknowledge/resolve buttons go through ``dashboard.actions.perform``, which checks the
signed-in role on the server and audits a refusal, whatever the page showed. Silences are
created and expired in ``dashboard.silence_form``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
import psycopg
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from psycopg_pool import ConnectionPool

from alerts.oncall import OnCallNow, oncall_now_and_next
from alerts.silences import list_silences
from core.accounts import StaffUser
from core.clock import Clock
from core.db import Row
from core.severity import Severity
from dashboard import actions, livemap, queries, shipment
from dashboard.auth import current_user
from dashboard.formatting import both_times, minutes_ago, utc_time
from dashboard.overview import SEVERITY_COLOUR, severity_badge
from dashboard.silence_form import may_silence, silence_form, silences_panel
from dashboard.silence_form import register as silence_form_register

BUTTON_TYPE = "board-action"


def board_buttons(row: Row, allowed: frozenset[str]) -> list[Any]:
    return shipment.alert_buttons(row, allowed, button_type=BUTTON_TYPE, prefix="board")


def history_table(pages: list[Row]) -> Any:
    """Each page sent for the alert: the escalation history, oldest first."""
    if not pages:
        return html.Small("No pages sent.", className="text-muted")
    header = html.Thead(
        html.Tr(
            [
                html.Th(h)
                for h in ("Channel", "Recipient", "Status", "Attempts", "Queued", "Sent", "Updated")
            ]
        )
    )
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(p["channel"]),
                    html.Td(p["recipient"]),
                    html.Td(
                        p["status"]
                        + (f" ({p['provider_status']})" if p["provider_status"] else "")
                        + (f": {p['last_error']}" if p["last_error"] else ""),
                        className="page-status",
                    ),
                    html.Td(str(p["attempts"])),
                    html.Td(utc_time(p["created_at"])),
                    html.Td(utc_time(p["sent_at"])),
                    html.Td(utc_time(p["updated_at"])),
                ],
                className="page-row",
            )
            for p in pages
        ]
    )
    return dbc.Table([header, body], size="sm", responsive=True, className="mb-0 history")


def alert_card(row: Row, pages: list[Row], allowed: frozenset[str], now: datetime) -> dbc.Card:
    target: Any = html.Strong("no shipment", className="me-2")
    if row["shipment_id"] is not None:
        target = dcc.Link(
            html.Strong(row["shipment_ref"]),
            href=f"/shipments/{row['shipment_id']}",
            className="me-2",
        )
    noun = "page" if len(pages) == 1 else "pages"
    acknowledged = []
    if row["acknowledged_by"]:
        acknowledged = [
            html.Div(
                f"Acknowledged by {row['acknowledged_by']} at {utc_time(row['acknowledged_at'])}",
                className="text-muted small",
            )
        ]
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(
                    [
                        severity_badge(row["severity"]),
                        target,
                        html.Span(row["rule_id"], className="me-2"),
                        dbc.Badge(row["state"], color="light", text_color="dark", className="me-2"),
                        html.Small(
                            f"open {minutes_ago(row['triggered_at'], now)}", className="text-muted"
                        ),
                        *shipment.alert_buttons(
                            row, allowed, button_type=BUTTON_TYPE, prefix="board"
                        ),
                    ],
                    className="d-flex flex-wrap align-items-center",
                ),
                html.Div(row["summary"], className="mt-1"),
                html.Div(
                    "Triggered " + both_times(row["triggered_at"], row["destination_tz"]),
                    className="text-muted small",
                ),
                *acknowledged,
                html.Details(
                    [
                        html.Summary(f"Escalation history ({len(pages)} {noun})"),
                        history_table(pages),
                    ],
                    className="mt-1",
                ),
            ]
        ),
        id=f"board-alert-{row['alert_id']}",
        className=f"mb-2 board-alert state-{row['state']} severity-{row['severity']}",
    )


def board(conn: psycopg.Connection[Row], user: StaffUser | None, now: datetime) -> html.Div:
    rows = queries.alerts_board(conn)
    if not rows:
        return html.Div(html.P("No open alerts.", className="text-muted", id="board-empty"))
    pages: dict[int, list[Row]] = {}
    for page in queries.alert_notifications(conn, [r["alert_id"] for r in rows]):
        pages.setdefault(page["alert_id"], []).append(page)
    allowed = actions.allowed_actions(user)
    counts = Counter(r["severity"] for r in rows)
    summary = [
        dbc.Badge(
            f"{severity.value} {counts[severity.value]}",
            color=SEVERITY_COLOUR[severity.value],
            className="me-1 severity-count",
        )
        for severity in reversed(Severity)
        if counts[severity.value]
    ]
    return html.Div(
        [
            html.Div(summary, className="mb-2", id="board-summary"),
            *(alert_card(r, pages.get(r["alert_id"], []), allowed, now) for r in rows),
        ]
    )


def _person(person: Any) -> str:
    return "nobody" if person is None else f"{person.name} ({person.phone_e164})"


def oncall_panel(entries: list[OnCallNow]) -> Any:
    if not entries:
        return html.P("No on-call schedules configured.", className="text-muted")
    return dbc.ListGroup(
        [
            dbc.ListGroupItem(
                [
                    html.Strong(entry.schedule_name),
                    html.Div(["Now: ", html.Span(_person(entry.current), className="oncall-now")]),
                    html.Div(
                        [
                            "Next: ",
                            html.Span(_person(entry.next_person), className="oncall-next"),
                            f" from {utc_time(entry.next_handoff_at)}"
                            if entry.next_handoff_at
                            else "",
                        ],
                        className="text-muted small",
                    ),
                ],
                className="oncall-schedule",
                id=f"oncall-{entry.schedule_id}",
            )
            for entry in entries
        ]
    )


def side_panels(conn: psycopg.Connection[Row], now: datetime, user: StaffUser | None) -> list[Any]:
    silences = list_silences(conn, now, True)
    refs = queries.shipment_refs(conn, [r["shipment_id"] for r in silences if r["shipment_id"]])
    return [
        html.H5("On call"),
        html.Div(oncall_panel(oncall_now_and_next(conn, now)), id="oncall-panel", className="mb-3"),
        html.H5("Silences"),
        html.Div(silences_panel(silences, refs, may_silence(user)), id="silences-panel"),
    ]


def layout(conn: psycopg.Connection[Row], now: datetime, user: StaffUser | None) -> html.Div:
    content = (board(conn, user, now), side_panels(conn, now, user))
    return html.Div(
        [
            html.H4("Open alerts", className="mb-2"),
            html.Div(id="board-action-result"),
            dbc.Row(
                [
                    dbc.Col(html.Div(content[0], id="alerts-board"), lg=8),
                    dbc.Col(
                        [
                            html.Div(content[1], id="alerts-side"),
                            html.Div(id="silence-result", className="mt-2"),
                            *([silence_form()] if may_silence(user) else []),
                        ],
                        lg=4,
                    ),
                ]
            ),
            dcc.Store(id="board-digest", data=livemap.digest_of(content)),
            dcc.Store(id="silence-changed", data=0),
        ]
    )


def register(app: Dash, pool: ConnectionPool[psycopg.Connection[Row]], clock: Clock) -> None:
    silence_form_register(app, pool, clock)

    @app.callback(
        Output("alerts-board", "children"),
        Output("alerts-side", "children"),
        Output("board-action-result", "children"),
        Output("board-digest", "data"),
        Input("refresh", "n_intervals"),
        Input({"type": BUTTON_TYPE, "action": ALL, "alert_id": ALL}, "n_clicks"),
        Input("silence-changed", "data"),
        State("board-digest", "data"),
        prevent_initial_call=True,
    )
    def update(
        _n: int | None, _clicks: list[int | None], _changed: int | None, digest: str | None
    ) -> tuple[Any, Any, Any, Any]:
        user = current_user()
        message: Any = no_update
        clicked = None
        if ctx.triggered_id not in ("refresh", "silence-changed"):
            clicked = actions.clicked_action(ctx.triggered_id, ctx.triggered[0]["value"])
            # Buttons appearing in a re-rendered board fire this too, unclicked.
            if clicked is None or user is None:
                raise PreventUpdate
        with pool.connection() as conn:
            if clicked is not None and user is not None:
                message = actions.perform(conn, user, clicked[0], clicked[1], clock)
            now = clock.now()
            content = (board(conn, user, now), side_panels(conn, now, user))
        # Unchanged boards are not resent: re-rendering would close open histories.
        new_digest = livemap.digest_of(content)
        if new_digest == digest and message is no_update:
            raise PreventUpdate
        return *content, message, new_digest
