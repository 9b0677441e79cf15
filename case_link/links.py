"""Physician links: random, single-use, expiring tokens bound to one shipment.

A token is 144 random bits (``secrets.token_urlsafe(18)``). The database keeps only
HMAC-SHA256(COLDCHAIN_SECRET_KEY, purpose + token), so a copy of the database cannot be
turned into working links, and a token only works for the purpose it was made for.

Every lookup hashes and queries, whatever the token looks like, and every failure (unknown,
expired, used, wrong purpose, malformed) is the same ``None``: a caller cannot tell them
apart, neither by the answer nor by the time it takes.

Forms carry a nonce, HMAC(key, token hash + render time), so only a page rendered by this
server can be submitted, and a link scanner that only GETs changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import psycopg

from alerts.queries import INSERT_NOTIFICATION
from case_link import queries
from core.db import Row
from core.settings import Settings

log = logging.getLogger(__name__)

Purpose = Literal["receipt", "followup"]
PATH_PREFIX: Final[dict[str, str]] = {"receipt": "/r/", "followup": "/f/"}
TOKEN_BYTES: Final = 18  # 144 bits; token_urlsafe makes 24 characters of it
MAX_TOKEN_LENGTH: Final = 64
# Without COLDCHAIN_SECRET_KEY (development only; production refuses to start without a
# 32-character key) links are still 144 random bits, hashed with this fixed key.
_DEVELOPMENT_KEY: Final = b"coldchain-development-link-key"
FORM_NONCE_LIFETIME: Final = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class PhysicianLink:
    """A link row as the pages need it."""

    link_id: int
    purpose: str
    shipment_id: int
    physician_id: int
    token_hash: bytes
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class IssuedLink:
    link_id: int
    token: str
    url: str
    expires_at: datetime


def link_key(settings: Settings) -> bytes:
    if settings.secret_key is None:
        return _DEVELOPMENT_KEY
    return settings.secret_key.get_secret_value().encode("utf-8")


def token_hash(key: bytes, purpose: str, token: str) -> bytes:
    return hmac.new(key, f"{purpose}:{token}".encode(), hashlib.sha256).digest()


def link_url(public_url: str, purpose: Purpose, token: str) -> str:
    return f"{public_url}{PATH_PREFIX[purpose]}{token}"


def issue_link(
    conn: psycopg.Connection[Row],
    settings: Settings,
    *,
    purpose: Purpose,
    shipment_id: int,
    physician_id: int,
    now: datetime,
) -> IssuedLink:
    """Create a link row and return the only copy of its token (inside the URL)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = now + timedelta(hours=settings.receipt_link_ttl_hours)
    row = conn.execute(
        queries.INSERT_LINK,
        {
            "purpose": purpose,
            "shipment_id": shipment_id,
            "physician_id": physician_id,
            "token_hash": token_hash(link_key(settings), purpose, token),
            "now": now,
            "expires_at": expires_at,
        },
    ).fetchone()
    assert row is not None
    return IssuedLink(
        int(row["link_id"]), token, link_url(settings.public_url, purpose, token), expires_at
    )


def attach_notification(conn: psycopg.Connection[Row], link_id: int, notification_id: int) -> None:
    conn.execute(queries.LINK_NOTIFICATION, (notification_id, link_id))


def _well_formed(token: str) -> bool:
    return 16 <= len(token) <= MAX_TOKEN_LENGTH and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in token
    )


def find_valid_link(
    conn: psycopg.Connection[Row],
    key: bytes,
    purpose: Purpose,
    token: str,
    now: datetime,
) -> PhysicianLink | None:
    """The usable link behind ``token``, or None for every kind of failure alike."""
    # Hash and query even for malformed input, so every failure costs the same.
    candidate = token if _well_formed(token) else "-" * 22
    digest = token_hash(key, purpose, candidate)
    row = conn.execute(queries.LINK_BY_HASH, (digest,)).fetchone()
    stored = bytes(row["token_hash"]) if row is not None else b"\0" * 32
    matches = hmac.compare_digest(stored, digest)
    if row is None or not matches or candidate != token:
        return None
    link = PhysicianLink(**{**row, "token_hash": stored})
    spent = link.used_at is not None or link.revoked_at is not None
    if link.purpose != purpose or spent or link.expires_at <= now:
        return None
    return link


def form_nonce(key: bytes, link: PhysicianLink, rendered_at: datetime) -> str:
    """A value only this server can make for this link; the form posts it back."""
    stamp = str(int(rendered_at.timestamp()))
    mac = hmac.new(key, b"form:" + link.token_hash + stamp.encode(), hashlib.sha256).hexdigest()
    return f"{stamp}.{mac}"


def nonce_ok(key: bytes, link: PhysicianLink, nonce: str, now: datetime) -> bool:
    stamp, _, mac = nonce.partition(".")
    if not stamp.isdigit() or len(stamp) > 12:
        return False
    expected = hmac.new(
        key, b"form:" + link.token_hash + stamp.encode(), hashlib.sha256
    ).hexdigest()
    age = now.timestamp() - int(stamp)
    return hmac.compare_digest(expected, mac) and -60 <= age <= FORM_NONCE_LIFETIME.total_seconds()


def mark_used(conn: psycopg.Connection[Row], link_id: int, now: datetime) -> bool:
    """Spend the link; False when another request spent it first."""
    return conn.execute(queries.MARK_LINK_USED, (now, link_id, now)).fetchone() is not None


def notify_physician(
    conn: psycopg.Connection[Row],
    settings: Settings,
    *,
    link: IssuedLink,
    recipient: str,
    body: str,
    now: datetime,
) -> int:
    """Queue the SMS through the alerts outbox (written before it is sent, DESIGN.md §7).

    The alerts worker delivers it: by Twilio SMS when TWILIO_* are set, else the outbox
    channel records it. No alert is attached: ``alert_id`` stays NULL.
    """
    channel = "sms" if settings.twilio_enabled else "outbox"
    row = conn.execute(INSERT_NOTIFICATION, (None, channel, recipient, body, now)).fetchone()
    assert row is not None
    notification_id = int(row["notification_id"])
    attach_notification(conn, link.link_id, notification_id)
    return notification_id


def send_link(
    conn: psycopg.Connection[Row],
    settings: Settings,
    *,
    purpose: Purpose,
    shipment_id: int,
    physician_id: int,
    recipient: str,
    body: Callable[[str], str],
    now: datetime,
) -> tuple[IssuedLink, int]:
    """Issue a link and queue the SMS that carries it (``body`` makes the text from the
    link's URL); the link and the notification id."""
    link = issue_link(
        conn,
        settings,
        purpose=purpose,
        shipment_id=shipment_id,
        physician_id=physician_id,
        now=now,
    )
    notification_id = notify_physician(
        conn, settings, link=link, recipient=recipient, body=body(link.url), now=now
    )
    return link, notification_id
