"""Delivery channels. One small class each, one error type carrying ``permanent``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from alerts.models import Notification
from core.settings import Settings

log = logging.getLogger(__name__)


class ChannelError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a channel reports after handing a message over."""

    status: str  # "sent" (accepted by the provider) or "delivered"
    provider_ref: str | None = None


class Channel(Protocol):
    name: str

    def send(self, notification: Notification) -> Delivery: ...


class OutboxChannel:
    """Development channel: the notification row itself is the record; nothing leaves.

    Used whenever Twilio is not configured, so every page is still visible (dashboard,
    ``notifications`` table, log) and nothing silently disappears.
    """

    name = "outbox"

    def send(self, notification: Notification) -> Delivery:
        log.info(
            "outbox message",
            extra={
                "notification_id": notification.notification_id,
                "recipient": notification.recipient,
                "body": notification.body,
            },
        )
        return Delivery(status="delivered", provider_ref=None)


def default_channels(settings: Settings) -> dict[str, Channel]:
    """The outbox always; Twilio SMS and voice when TWILIO_* are set."""
    channels: dict[str, Channel] = {"outbox": OutboxChannel()}
    if settings.twilio_enabled:
        # Imported here: twilio_channels builds on this module's ChannelError and Delivery.
        from alerts.twilio_channels import twilio_channels

        channels.update(twilio_channels(settings))
    return channels
