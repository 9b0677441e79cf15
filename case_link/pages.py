"""The physician's pages (contract paths ``/r/{token}`` and ``/f/{token}``), without staff auth.

GET renders the form and changes nothing, so link scanners and previews cannot spend a
link. POST needs the form nonce of a page this server rendered for that token. Every kind
of unusable token gets the same page and status after the same work (see case_link.links).
Each client address has a small token bucket; beyond it the answer is 429.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Final

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from case_link import adverse_events, followups, links, page_html, queries, receipts
from case_link.forms import MAX_FORM_BYTES, FormError, parse_body
from core.accounts_api import clock_of
from core.db import Row
from core.settings import Settings

router = APIRouter(tags=["physician pages"], include_in_schema=False)

_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


class ClientRateLimiter:
    """A token bucket per client address: ``burst`` requests, refilled at ``rate_per_s``."""

    def __init__(self, rate_per_s: float = 0.2, burst: int = 20, max_clients: int = 10_000):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        # Least recently seen first: a full table forgets its oldest clients, never everyone.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, client: str, now: float | None = None) -> bool:
        at = time.monotonic() if now is None else now
        with self._lock:
            tokens, updated = self._buckets.pop(client, (float(self.burst), at))
            while len(self._buckets) >= self.max_clients:
                self._buckets.popitem(last=False)
            tokens = min(float(self.burst), tokens + (at - updated) * self.rate_per_s)
            allowed = tokens >= 1
            self._buckets[client] = (tokens - 1 if allowed else tokens, at)
            return allowed


def _limiter(request: Request) -> ClientRateLimiter:
    limiter = getattr(request.app.state, "physician_page_limiter", None)
    if limiter is None:
        limiter = request.app.state.physician_page_limiter = ClientRateLimiter()
    assert isinstance(limiter, ClientRateLimiter)
    return limiter


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _invalid(settings: Settings) -> HTMLResponse:
    return _html(page_html.invalid_page(settings.support_contact), 404)


def _too_many() -> HTMLResponse:
    return _html(
        page_html.layout("Too many requests", "<h1>Too many requests; try again shortly.</h1>"),
        429,
    )


def _context(
    request: Request,
) -> tuple[Settings, ConnectionPool[psycopg.Connection[Row]], bytes]:
    settings: Settings = request.app.state.settings
    return settings, request.app.state.pool, links.link_key(settings)


def _open(
    request: Request, purpose: links.Purpose, token: str
) -> tuple[links.PhysicianLink, Row] | None:
    settings, pool, key = _context(request)
    now = clock_of(request).now()
    with pool.connection() as conn:
        link = links.find_valid_link(conn, key, purpose, token, now)
        if link is None:
            return None
        shipment = conn.execute(queries.SHIPMENT_FOR_PAGE, (link.shipment_id,)).fetchone()
        if purpose == "followup":
            status = queries.followup_status(conn, link.shipment_id)
            if status is None or status["state"] == "completed":
                return None
    if shipment is None:
        return None
    return link, shipment


def _receipt_fields(
    shipment: Row, values: Mapping[str, Sequence[str]], problems: Mapping[str, str]
) -> str:
    h = page_html
    band = h.storage_range(shipment)
    return (
        "<h2>Receipt</h2>"
        + h.text_input(
            "received_at", "Received at (local time)", values, problems, "datetime-local"
        )
        + h.text_input("received_by", "Received by (printed name)", values, problems)
        + "<label>Was the package intact and sealed?</label>"
        + h.radios("package_intact", [("yes", "Yes"), ("no", "No")], values)
        + h.error(problems, "package_intact")
        + h.textarea(
            "package_note", "Describe any damage (required if not intact)", values, problems
        )
        + "<label>Temperature indicator or logger display</label>"
        + h.radios(
            "indicator_status",
            [("ok", "No alarm shown"), ("alarm", "Alarm shown"), ("none", "No indicator")],
            values,
        )
        + h.error(problems, "indicator_status")
        + h.textarea(
            "indicator_note", "What the indicator shows (required on alarm)", values, problems
        )
        + "<h2>Storage</h2>"
        + h.checkbox(
            "storage_confirmed", f"I placed the product in storage at {band}", values, "yes"
        )
        + h.text_input(
            "stored_at", "Placed in storage at (local time)", values, problems, "datetime-local"
        )
        + receipts_signature(values, problems)
    )


def receipts_signature(values: Mapping[str, Sequence[str]], problems: Mapping[str, str]) -> str:
    return page_html.signature_block(receipts.RECEIPT_MEANING, values, problems)


def _followup_fields(values: Mapping[str, Sequence[str]], problems: Mapping[str, str]) -> str:
    h = page_html
    yes_no = [("yes", "Yes"), ("no", "No")]
    criteria = "".join(
        h.checkbox("ae_seriousness", c.replace("_", " ").capitalize(), values, c)
        for c in adverse_events.SERIOUSNESS_CRITERIA
    )
    outcomes = [(o, o.replace("_", " ").capitalize()) for o in adverse_events.OUTCOMES]
    return (
        "<label>Was the shipment received safely?</label>"
        + h.radios("safe_receipt", yes_no, values)
        + h.error(problems, "safe_receipt")
        + "<label>Has the product been stored correctly since?</label>"
        + h.radios("stored_correctly", yes_no, values)
        + h.error(problems, "stored_correctly")
        + "<label>Administration</label>"
        + h.radios(
            "administration",
            [
                ("administered", "Administered"),
                ("planned", "Planned"),
                ("not_planned", "Not planned"),
            ],
            values,
        )
        + h.error(problems, "administration")
        + h.text_input(
            "administration_date", "Date administered or planned", values, problems, "date"
        )
        + "<label>Any adverse event?</label>"
        + h.radios("adverse_event", yes_no, values)
        + h.error(problems, "adverse_event")
        + "<h2>Adverse event (only if yes)</h2>"
        + h.text_input("ae_onset_date", "Onset date", values, problems, "date")
        + h.textarea("ae_description", "Description", values, problems)
        + "<label>Seriousness (tick all that apply; none = non-serious)</label>"
        + criteria
        + h.error(problems, "ae_seriousness")
        + "<label>Outcome</label>"
        + h.radios("ae_outcome", outcomes, values)
        + h.error(problems, "ae_outcome")
        + h.textarea("comments", "Comments (optional)", values, problems)
        + h.signature_block(followups.FOLLOWUP_MEANING, values, problems)
    )


def _render(
    request: Request,
    purpose: links.Purpose,
    link: links.PhysicianLink,
    shipment: Row,
    values: Mapping[str, Sequence[str]],
    problems: Mapping[str, str],
) -> HTMLResponse:
    _, _, key = _context(request)
    nonce = links.form_nonce(key, link, clock_of(request).now())
    if purpose == "receipt":
        intro = (
            "<p>Please check the package now: it is closed and undamaged, the temperature "
            "indicator shows no alarm, and the product goes into storage at "
            f"{escape(page_html.storage_range(shipment))} without delay.</p>"
        )
        fields = _receipt_fields(shipment, values, problems)
        title = "Confirm receipt"
    else:
        intro = "<p>A few questions about the product delivered to you.</p>"
        fields = _followup_fields(values, problems)
        title = "Follow-up"
    page = page_html.form_page(title, intro, shipment, nonce, fields, problems)
    return _html(page, 422 if problems else 200)


def _show(request: Request, purpose: links.Purpose, token: str) -> HTMLResponse:
    if not _limiter(request).allow(_client(request)):
        return _too_many()
    opened = _open(request, purpose, token)
    if opened is None:
        return _invalid(request.app.state.settings)
    return _render(request, purpose, *opened, {}, {})


async def _submit(request: Request, purpose: links.Purpose, token: str) -> HTMLResponse:
    if not _limiter(request).allow(_client(request)):
        return _too_many()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:  # stop reading: the form is never this large
            return _html(page_html.layout("Too large", "<h1>The form is too large.</h1>"), 413)
    # The database work runs in the thread pool, never on the event loop.
    return await run_in_threadpool(_submit_form, request, purpose, token, parse_body(body))


def _submit_form(
    request: Request, purpose: links.Purpose, token: str, values: dict[str, list[str]]
) -> HTMLResponse:
    settings, pool, key = _context(request)
    now = clock_of(request).now()
    opened = _open(request, purpose, token)
    if opened is None:
        return _invalid(settings)
    link, shipment = opened
    nonce = values.get("nonce", [""])[0]
    if not links.nonce_ok(key, link, nonce, now):
        # Not a page we rendered (or one left open for hours): show a fresh form.
        problems = {
            "nonce": "The form was open too long or did not come from this page; "
            "please check your answers and submit again."
        }
        return _render(request, purpose, link, shipment, values, problems)
    return _store(request, settings, pool, purpose, link, shipment, values, now)


def _store(
    request: Request,
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Row]],
    purpose: links.Purpose,
    link: links.PhysicianLink,
    shipment: Row,
    values: dict[str, list[str]],
    now: datetime,
) -> HTMLResponse:
    tz = shipment["destination_tz"]
    client = _client(request)
    try:
        if purpose == "receipt":
            form = receipts.parse_receipt_form(
                values, tz=tz, now=now, delivered_at=shipment["delivered_at"]
            )
            with pool.connection() as conn:
                done = receipts.confirm_receipt(conn, settings, link, shipment, form, now, client)
            digest = None if done is None else done.record_sha256
            message = "Thank you. Your confirmation of receipt has been recorded and signed."
        else:
            followup = followups.parse_followup_form(
                values, tz=tz, now=now, delivered_at=shipment["delivered_at"]
            )
            with pool.connection() as conn:
                digest = followups.complete_followup(
                    conn, settings, link, shipment, followup, now, client
                )
            message = "Thank you. Your follow-up answers have been recorded and signed."
    except FormError as exc:
        return _render(request, purpose, link, shipment, values, exc.problems)
    if digest is None:
        return _invalid(settings)
    return _html(page_html.done_page("Recorded", message, digest))


@router.get("/r/{token}", response_class=HTMLResponse)
def receipt_page(request: Request, token: str) -> HTMLResponse:
    return _show(request, "receipt", token)


@router.post("/r/{token}", response_class=HTMLResponse)
async def receipt_submit(request: Request, token: str) -> HTMLResponse:
    return await _submit(request, "receipt", token)


@router.get("/f/{token}", response_class=HTMLResponse)
def followup_page(request: Request, token: str) -> HTMLResponse:
    return _show(request, "followup", token)


@router.post("/f/{token}", response_class=HTMLResponse)
async def followup_submit(request: Request, token: str) -> HTMLResponse:
    return await _submit(request, "followup", token)
