"""Twilio SMS and voice channels, and the one place Twilio errors become ChannelErrors.

Both channels pass a status callback carrying the notification id, so Twilio's status
reports find their row even when they arrive before the worker has stored the SID.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import requests
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from alerts.channels import Channel, ChannelError, Delivery
from alerts.models import Notification
from alerts.ratelimit import TokenBucket
from core.settings import Settings

log = logging.getLogger(__name__)

# Twilio error codes that no retry can fix: the number is invalid, unreachable by this
# kind of message, not allowed by the account's geo permissions, or has opted out.
# https://www.twilio.com/docs/api/errors
PERMANENT_ERROR_CODES = frozenset(
    {
        13223,  # voice: invalid phone number format
        13224,  # voice: invalid phone number
        13227,  # voice: geo permission
        21211,  # invalid 'To' phone number
        21214,  # 'To' phone number cannot be reached
        21215,  # geo permission (voice)
        21217,  # phone number does not appear to be valid
        21401,  # invalid phone number
        21407,  # this phone number type does not support SMS
        21408,  # permission to send an SMS has not been enabled for the region
        21610,  # the recipient replied STOP (unsubscribed)
        21612,  # cannot route to this number
        21614,  # 'To' number is not a valid mobile number
    }
)
# Calls report these events to the status callback; a page that rang out unanswered is
# a failure worth knowing about (busy, no-answer come with "completed").
CALL_STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
REQUEST_TIMEOUT_S = 10.0


def channel_error(exc: Exception) -> ChannelError:
    """Translate what the twilio client raised into permanent or transient."""
    if isinstance(exc, (TwilioRestException, TwilioServiceException)):
        status, code = int(exc.status), exc.code
        detail = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
        message = f"twilio HTTP {status}" + (f" error {code}" if code else "") + f": {detail}"
        if status == 429 or status >= 500:
            return ChannelError(message, permanent=False)
        if code in PERMANENT_ERROR_CODES:
            return ChannelError(message, permanent=True)
        # Bad credentials are the operator's to fix; the page must still go out afterwards.
        if status == 401:
            return ChannelError(message, permanent=False)
        return ChannelError(message, permanent=400 <= status < 500)
    if isinstance(exc, requests.RequestException):
        return ChannelError(f"twilio unreachable: {type(exc).__name__}: {exc}", permanent=False)
    return ChannelError(f"twilio: {type(exc).__name__}: {exc}", permanent=False)


def twilio_client(settings: Settings, http_client: HttpClient | None = None) -> Any:
    """A client from the settings alone (the twilio library would otherwise read os.environ)."""
    sid, token = settings.twilio_account_sid, settings.twilio_auth_token
    if sid is None or token is None:
        raise ValueError("Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)")
    return Client(
        sid,
        token.get_secret_value(),
        http_client=http_client or TwilioHttpClient(timeout=REQUEST_TIMEOUT_S),
        # A non-empty mapping, so the client takes edge and region from here, not the process.
        environment={"TWILIO_ACCOUNT_SID": sid},
    )


def status_callback_url(public_url: str, notification_id: int) -> str:
    return f"{public_url}/webhooks/twilio/status?notification_id={notification_id}"


def voice_action_url(public_url: str, notification_id: int) -> str:
    return f"{public_url}/webhooks/twilio/voice?notification_id={notification_id}"


def speakable(text: str) -> str:
    """Page text as a voice reads it well: no links, units spelled out."""
    text = re.sub(r"https?://\S+", "", text).replace("°C", " degrees Celsius")
    return re.sub(r"\s+", " ", text).strip()


def gather_twiml(prompt: str, action_url: str) -> str:
    """Say the prompt, take one key; silence ends the call politely."""
    response = VoiceResponse()
    gather = response.gather(num_digits=1, action=action_url, method="POST")
    gather.say(prompt)
    response.say("No input received. Goodbye.")
    return str(response)


class TwilioSmsChannel:
    name = "sms"

    def __init__(self, client: Any, from_number: str, public_url: str, bucket: TokenBucket):
        self.client = client
        self.from_number = from_number
        self.public_url = public_url
        self.bucket = bucket

    def send(self, notification: Notification) -> Delivery:
        self.bucket.acquire()
        try:
            message = self.client.messages.create(
                to=notification.recipient,
                from_=self.from_number,
                body=notification.body,
                status_callback=status_callback_url(self.public_url, notification.notification_id),
            )
        except (TwilioException, requests.RequestException) as exc:
            raise channel_error(exc) from exc
        return Delivery(status="sent", provider_ref=str(message.sid))


class TwilioVoiceChannel:
    name = "voice"

    def __init__(self, client: Any, from_number: str, public_url: str, bucket: TokenBucket):
        self.client = client
        self.from_number = from_number
        self.public_url = public_url
        self.bucket = bucket

    def send(self, notification: Notification) -> Delivery:
        prompt = f"{speakable(notification.body)} Press 1 to acknowledge, 2 to resolve."
        twiml = gather_twiml(
            prompt, voice_action_url(self.public_url, notification.notification_id)
        )
        self.bucket.acquire()
        try:
            call = self.client.calls.create(
                to=notification.recipient,
                from_=self.from_number,
                twiml=twiml,
                status_callback=status_callback_url(self.public_url, notification.notification_id),
                status_callback_event=CALL_STATUS_EVENTS,
                status_callback_method="POST",
            )
        except (TwilioException, requests.RequestException) as exc:
            raise channel_error(exc) from exc
        return Delivery(status="sent", provider_ref=str(call.sid))


def twilio_channels(
    settings: Settings, http_client: HttpClient | None = None
) -> dict[str, Channel]:
    """SMS and voice from TWILIO_FROM_NUMBER, each paced at one request a second."""
    from_number = settings.twilio_from_number
    if from_number is None:
        raise ValueError("TWILIO_FROM_NUMBER is not set")
    client = twilio_client(settings, http_client)
    return {
        # One bucket per sender: messages per second are counted per from-number (long
        # code), calls per second per account; one from-number here, so one of each.
        "sms": TwilioSmsChannel(client, from_number, settings.public_url, TokenBucket(1.0)),
        "voice": TwilioVoiceChannel(client, from_number, settings.public_url, TokenBucket(1.0)),
    }
