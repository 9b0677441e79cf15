"""Device MQTT passwords (Mosquitto's password-file format) and carrier API keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from core import audit
from core.db import Row

# Mosquitto 2.x `mosquitto_passwd` format: $7$<iterations>$<base64 salt>$<base64 hash>,
# PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key. Mosquitto's own default is 101 iterations;
# we use more because the file may leave the broker host in backups.
MOSQUITTO_ITERATIONS = 1000
_KEY_PREFIX = "cck"


class CredentialError(ValueError):
    """A credential request that cannot be honoured; the message says why."""


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS
) -> str:
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def new_device_password() -> str:
    return secrets.token_urlsafe(24)


def set_device_password(
    conn: psycopg.Connection[Row], device_id: str, password: str, *, actor: str
) -> None:
    row = conn.execute(
        "UPDATE devices SET mqtt_password_hash = %s WHERE device_id = %s RETURNING device_id",
        (mosquitto_hash(password), device_id),
    ).fetchone()
    if row is None:
        raise CredentialError(f"device {device_id!r} is not registered")
    audit.record(
        conn,
        actor=actor,
        action="device.mqtt_password_set",
        entity_type="device",
        entity_id=device_id,
    )


def passwd_lines(
    conn: psycopg.Connection[Row], service_users: dict[str, str] | None = None
) -> list[str]:
    """Lines of a Mosquitto password file: active devices with a password, then services."""
    rows = conn.execute(
        "SELECT device_id, mqtt_password_hash FROM devices "
        "WHERE active AND mqtt_password_hash IS NOT NULL ORDER BY device_id"
    ).fetchall()
    lines = [f"{r['device_id']}:{r['mqtt_password_hash']}" for r in rows]
    for user, password in sorted((service_users or {}).items()):
        if ":" in user or not user:
            raise CredentialError(f"service user {user!r} is not a valid MQTT user name")
        lines.append(f"{user}:{mosquitto_hash(password)}")
    return lines


def write_passwd(path: Path, lines: list[str]) -> None:
    """Replace the file atomically, readable by its owner only (the broker reloads on HUP)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    carrier: str


def create_api_key(
    conn: psycopg.Connection[Row], carrier: str, label: str = "", *, actor: str
) -> str:
    """A new key for ``carrier``; the returned token is shown once and never stored."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    try:
        conn.execute(
            "INSERT INTO carrier_api_keys (key_id, carrier, label, secret_hash) "
            "VALUES (%s, %s, %s, %s)",
            (key_id, carrier, label, hashlib.sha256(secret.encode()).digest()),
        )
    except psycopg.errors.CheckViolation as exc:
        raise CredentialError(
            f"carrier {carrier!r} rejected: lower-case letters, digits, '_' or '-'"
        ) from exc
    audit.record(
        conn,
        actor=actor,
        action="carrier.api_key_created",
        entity_type="carrier",
        entity_id=carrier,
        details={"key_id": key_id, "label": label},
    )
    return f"{_KEY_PREFIX}_{key_id}_{secret}"


def revoke_api_key(conn: psycopg.Connection[Row], key_id: str, *, actor: str) -> str:
    row = conn.execute(
        "UPDATE carrier_api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL "
        "RETURNING carrier",
        (key_id,),
    ).fetchone()
    if row is None:
        raise CredentialError(f"no active API key {key_id!r}")
    audit.record(
        conn,
        actor=actor,
        action="carrier.api_key_revoked",
        entity_type="carrier",
        entity_id=row["carrier"],
        details={"key_id": key_id},
    )
    return str(row["carrier"])


def authenticate_api_key(conn: psycopg.Connection[Row], token: str, now: datetime) -> ApiKey | None:
    """The carrier a presented token belongs to, or None (unknown, malformed or revoked)."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != _KEY_PREFIX or not key_id or not secret:
        return None
    row = conn.execute(
        "SELECT carrier, secret_hash FROM carrier_api_keys WHERE key_id = %s "
        "AND revoked_at IS NULL",
        (key_id,),
    ).fetchone()
    if row is None:
        return None
    presented = hashlib.sha256(secret.encode()).digest()
    if not hmac.compare_digest(presented, bytes(row["secret_hash"])):
        return None
    conn.execute("UPDATE carrier_api_keys SET last_used_at = %s WHERE key_id = %s", (now, key_id))
    return ApiKey(key_id=key_id, carrier=str(row["carrier"]))
