"""Twilio webhooks: delivery reports, SMS replies and keypresses (DESIGN.md §7).

Every request must carry a valid ``X-Twilio-Signature`` for the URL Twilio called, which
is rebuilt from ``COLDCHAIN_PUBLIC_URL`` (the address Twilio knows) rather than from the
request, so validation holds behind a TLS-terminating proxy. Without Twilio settings
there is nothing to validate against and the webhooks do not exist (404).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qsl

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from alerts import queries
from alerts.service import (
    AlertNotFound,
    InvalidTransition,
    acknowledge,
    paged_alert,
    record_provider_status,
    resolve,
)
from alerts.twilio_channels import gather_twiml, voice_action_url
from core.accounts_api import clock_of
from core.db import Row
from core.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks/twilio", tags=["twilio"])

# Twilio's status words for messages and calls in the order they can follow each other;
# a report earlier in this order than the one recorded arrived late and is ignored.
TWILIO_STATUS_ORDER = (
    "accepted",
    "scheduled",
    "queued",
    "initiated",
    "sending",
    "ringing",
    "sent",
    "in-progress",
    "delivered",
    "read",
    "completed",
    "failed",
    "undelivered",
    "busy",
    "no-answer",
    "canceled",
)
_FAILED = {"failed", "undelivered", "busy", "no-answer", "canceled"}
_DELIVERED = {"in-progress", "delivered", "read", "completed"}
# Carrier keywords Twilio answers itself; a reply of ours to STOP would be refused.
_OPT_KEYWORDS = {
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "START",
    "YES",
    "UNSTOP",
    "HELP",
    "INFO",
}
_REPLY = re.compile(
    r"^(?:(?P<ack>1|ACK|ACKNOWLEDGE)|(?P<resolve>2|RESOLVE))(?:\s+(?P<code>[A-Z0-9]{6}))?$"
)
HELP_TEXT = (
    "Reply ACK <code> to acknowledge or RESOLVE <code> to resolve an alert "
    "(1 or 2 alone answer the latest page to this phone)."
)

Params = ImmutableMultiDict[str, str]


def page_status(twilio_status: str) -> str:
    """The notification status a Twilio message or call status means."""
    if twilio_status in _FAILED:
        return "failed"
    if twilio_status in _DELIVERED:
        return "delivered"
    return "sent"


async def twilio_params(request: Request) -> Params:
    """The form parameters of a request proven to come from Twilio."""
    settings: Settings = request.app.state.settings
    token = settings.twilio_auth_token
    if not settings.twilio_enabled or token is None:
        raise HTTPException(404, "Twilio is not configured")
    body = (await request.body()).decode("utf-8", errors="replace")
    params: Params = ImmutableMultiDict(parse_qsl(body, keep_blank_values=True))
    url = settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not RequestValidator(token.get_secret_value()).validate(
        url, params, signature
    ):
        log.warning("twilio webhook refused: bad signature", extra={"url": url})
        raise HTTPException(403, "X-Twilio-Signature is missing or does not match")
    return params


TwilioParams = Annotated[Params, Depends(twilio_params)]


def _twiml(xml: str) -> Response:
    return Response(content=xml, media_type="application/xml")


def _notification_id(request: Request) -> int | None:
    value = request.query_params.get("notification_id", "")
    return int(value) if value.isdigit() else None


@router.post("/status", status_code=204)
def status_callback(request: Request, params: TwilioParams) -> Response:
    """Delivery reports of pages; delivered is not acknowledged — only a person can do that."""
    sid = params.get("MessageSid") or params.get("CallSid") or ""
    reported = (params.get("MessageStatus") or params.get("CallStatus") or "").lower()
    if not sid or reported not in TWILIO_STATUS_ORDER:
        log.warning("twilio status not understood", extra={"sid": sid, "status": reported})
        return Response(status_code=204)
    status = page_status(reported)
    error = None
    if status == "failed":
        code = params.get("ErrorCode")
        error = f"twilio {reported}" + (f" error {code}" if code else "")
    with request.app.state.pool.connection() as conn:
        applied = record_provider_status(
            conn,
            notification_id=_notification_id(request),
            provider_ref=sid,
            provider_status=reported,
            status=status,
            order=TWILIO_STATUS_ORDER,
            error=error,
            now=clock_of(request).now(),
        )
    if status == "failed" and applied:
        log.error("page not delivered", extra={"sid": sid, "status": reported, "error": error})
    return Response(status_code=204)


@router.post("/sms")
def inbound_sms(request: Request, params: TwilioParams) -> Response:
    """A reply to a page: ACK/1 acknowledges, RESOLVE/2 resolves."""
    sender = params.get("From", "")
    text = " ".join(params.get("Body", "").upper().split())
    reply = MessagingResponse()
    if text in _OPT_KEYWORDS:
        if text in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"):
            log.error("on-call phone opted out of SMS pages", extra={"recipient": sender})
        return _twiml(str(reply))
    match = _REPLY.match(text)
    if match is None:
        reply.message(HELP_TEXT)
        return _twiml(str(reply))
    code = match["code"]
    with request.app.state.pool.connection() as conn:
        alert_id = paged_alert(conn, sender, code)
        if alert_id is None:
            reply.message(
                f"No alert with code {code} was paged to this phone. {HELP_TEXT}"
                if code
                else f"No alert has been paged to this phone. {HELP_TEXT}"
            )
            return _twiml(str(reply))
        resolving = match["resolve"] is not None
        now = clock_of(request).now()
        reply.message(_act(conn, alert_id, sender, "sms", now, resolving=resolving))
    return _twiml(str(reply))


@router.post("/voice")
def voice_keypress(request: Request, params: TwilioParams) -> Response:
    """The digit pressed during a paging call (the call's <Gather> action)."""
    settings: Settings = request.app.state.settings
    notification_id = _notification_id(request)
    digits = params.get("Digits", "")
    response = VoiceResponse()
    with request.app.state.pool.connection() as conn:
        page = (
            None
            if notification_id is None
            else conn.execute(queries.NOTIFICATION_BY_ID, (notification_id,)).fetchone()
        )
        if (
            page is None
            or page["channel"] != "voice"
            or page["alert_id"] is None
            or page["provider_ref"] not in (None, params.get("CallSid"))
        ):
            response.say("This call does not belong to an alert. Goodbye.")
            return _twiml(str(response))
        if digits not in ("1", "2"):
            return _twiml(
                gather_twiml(
                    "Press 1 to acknowledge, 2 to resolve.",
                    voice_action_url(settings.public_url, page["notification_id"]),
                )
            )
        said = _act(
            conn,
            page["alert_id"],
            page["recipient"],
            "voice",
            clock_of(request).now(),
            resolving=digits == "2",
        )
    response.say(said)
    return _twiml(str(response))


def _act(
    conn: psycopg.Connection[Row],
    alert_id: int,
    actor: str,
    via: str,
    now: datetime,
    *,
    resolving: bool,
) -> str:
    """Acknowledge or resolve for a person who was paged; the sentence to tell them."""
    label = _label(conn, alert_id)
    try:
        if resolving:
            done = resolve(conn, alert_id, actor, None, now, via=via)
            return f"Resolved: {label}." if done.changed else f"{label} was already resolved."
        done = acknowledge(conn, alert_id, actor, via, now)
    except InvalidTransition:
        return f"{label} is already resolved."
    except AlertNotFound:
        return "That alert no longer exists."
    if not done.changed:
        return f"{label} was already acknowledged."
    return f"Acknowledged: {label}. Further pages for it are stopped."


def _label(conn: psycopg.Connection[Row], alert_id: int) -> str:
    row = conn.execute(queries.ALERT_LABEL, (alert_id,)).fetchone()
    if row is None:
        return f"alert {alert_id}"
    shipment = f"shipment {row['shipment_ref']} " if row["shipment_ref"] else ""
    return f"{shipment}{row['rule_id']} alert" + (f" {row['ack_code']}" if row["ack_code"] else "")
