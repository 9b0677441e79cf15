"""Delivery channels. One small class each, one error type carrying ``permanent``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

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

    def send(self, recipient: str, body: str) -> Delivery: ...


class OutboxChannel:
    """Development channel: the notification row itself is the record; nothing leaves.

    Used whenever Twilio is not configured, so every page is still visible (dashboard,
    ``notifications`` table, log) and nothing silently disappears.
    """

    name = "outbox"

    def send(self, recipient: str, body: str) -> Delivery:
        log.info("outbox message", extra={"recipient": recipient, "body": body})
        return Delivery(status="delivered", provider_ref=None)


def default_channels() -> dict[str, Channel]:
    return {"outbox": OutboxChannel()}
