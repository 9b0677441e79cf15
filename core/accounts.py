"""Staff accounts, roles and login sessions (issue 8; docs/accounts.md).

Pure parts: the role/permission table, scrypt password hashing, session tokens. The rest
is SQL on ``staff_users`` / ``staff_sessions``; every login, failed login, logout and
permission denial is written to the audit log in the same transaction as its effect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import psycopg

from core import audit
from core.db import Row
from core.settings import Settings


class Role(StrEnum):
    LOGISTICS = "logistics"
    QA = "qa"
    CLINICAL = "clinical"
    ADMIN = "admin"


# Which role may do what. The server checks this on every action; hiding a button in the
# dashboard is a convenience, never the control.
# This is the only table: APIs check it with core.accounts_api.require(permission), the
# dashboard with can(user.role, permission). docs/accounts.md lists it (a test compares).
PERMISSIONS: Final[dict[str, frozenset[Role]]] = {
    "view": frozenset(Role),
    "alert.acknowledge": frozenset({Role.LOGISTICS, Role.QA, Role.ADMIN}),
    "alert.resolve": frozenset({Role.LOGISTICS, Role.QA, Role.ADMIN}),
    "excursion.confirm": frozenset({Role.QA, Role.ADMIN}),
    "oncall.manage": frozenset({Role.ADMIN}),
    "shipment.contacts": frozenset({Role.LOGISTICS, Role.ADMIN}),
    "case.view": frozenset(Role),
    "case.manage": frozenset({Role.CLINICAL, Role.ADMIN}),
    "case.link_shipment": frozenset({Role.LOGISTICS, Role.CLINICAL, Role.ADMIN}),
    "physician.manage": frozenset({Role.CLINICAL, Role.ADMIN}),
    "adverse_event.manage": frozenset({Role.CLINICAL, Role.ADMIN}),
    "receipt.resend": frozenset({Role.LOGISTICS, Role.CLINICAL, Role.ADMIN}),
    "shipment.view": frozenset(Role),
    "shipment.manage": frozenset({Role.LOGISTICS, Role.ADMIN}),
    # Part 11: only QA assesses and signs a disposition. An administrator manages accounts
    # and could create any identity, so their signature would not be a qualified reviewer's.
    "disposition.assess": frozenset({Role.QA}),
    "disposition.sign": frozenset({Role.QA}),
    "user.manage": frozenset({Role.ADMIN}),
}

SESSION_COOKIE: Final = "coldchain_session"
SESSION_LIFETIME: Final = timedelta(hours=12)
MAX_FAILED_ATTEMPTS: Final = 5
LOCKOUT: Final = timedelta(minutes=15)
MIN_PASSWORD_LENGTH: Final = 12

# scrypt cost: 2**14 × 8 × 128 B = 16 MiB of memory per hash (RFC 7914 interactive level).
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
_KEY_BYTES: Final = 32
# A stored hash names its own parameters; refuse absurd ones instead of burning memory.
_MAX_N: Final = 2**20


class AccountError(ValueError):
    """A request about accounts that cannot be done (duplicate email, unknown role, ...)."""


def can(role: Role | str, permission: str) -> bool:
    """Whether ``role`` holds ``permission``; an unknown permission is a programming error."""
    allowed = PERMISSIONS[permission]
    try:
        return Role(role) in allowed
    except ValueError:
        return False


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$key``: a per-user random salt and the cost stored with the hash."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    key = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=64 * 1024 * 1024,
        dklen=_KEY_BYTES,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time comparison against a stored hash; a malformed hash never matches."""
    try:
        scheme, n_text, r_text, p_text, salt_text, key_text = encoded.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = base64.b64decode(salt_text), base64.b64decode(key_text)
    except ValueError:
        return False
    if scheme != "scrypt" or not (1 < n <= _MAX_N and 0 < r <= 32 and 0 < p <= 16) or not expected:
        return False
    try:
        key = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=n,
            r=r,
            p=p,
            maxmem=256 * 1024 * 1024,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(key, expected)


# Verified against when the email is unknown, so timing does not reveal which emails exist.
_DUMMY_HASH: Final = hash_password(secrets.token_urlsafe(16))


def new_password() -> str:
    """A generated password: 144 random bits, URL-safe, shown once."""
    return secrets.token_urlsafe(18)


def new_session_token() -> str:
    """256 random bits; only its SHA-256 is stored."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    # A 256-bit random token needs no slow hash: SHA-256 keeps the lookup an index probe.
    return hashlib.sha256(token.encode("utf-8")).digest()


def cookies_secure(settings: Settings) -> bool:
    """``Secure`` cookies whenever the API or the dashboard is reached over https."""
    return any(url.startswith("https://") for url in (settings.public_url, settings.dashboard_url))


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class StaffUser:
    user_id: int
    email: str
    display_name: str
    role: Role


@dataclass(frozen=True, slots=True)
class Login:
    user: StaffUser
    token: str
    expires_at: datetime


def _user(row: Row) -> StaffUser:
    return StaffUser(int(row["user_id"]), row["email"], row["display_name"], Role(row["role"]))


def create_user(
    conn: psycopg.Connection[Row],
    email: str,
    display_name: str,
    role: str,
    password: str,
    *,
    actor: str,
) -> StaffUser:
    email = normalise_email(email)
    try:
        the_role = Role(role)
    except ValueError as exc:
        raise AccountError(f"role must be one of {', '.join(Role)}, got {role!r}") from exc
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if not display_name.strip():
        raise AccountError("the display name is empty")
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO staff_users (email, display_name, role, password_hash) "
                "VALUES (%s, %s, %s, %s) RETURNING user_id, email, display_name, role",
                (email, display_name.strip(), the_role.value, hash_password(password)),
            ).fetchone()
            assert row is not None
            audit.record(
                conn,
                actor=actor,
                action="user.created",
                entity_type="staff_user",
                entity_id=email,
                details={"role": the_role.value, "display_name": display_name.strip()},
            )
    except psycopg.errors.UniqueViolation as exc:
        raise AccountError(f"a user with email {email} already exists") from exc
    except psycopg.errors.CheckViolation as exc:
        raise AccountError(f"{email!r} is not a valid email address") from exc
    return _user(row)


def list_users(conn: psycopg.Connection[Row]) -> list[Row]:
    return conn.execute(
        "SELECT user_id, email, display_name, role, active, created_at, last_login_at, "
        "locked_until FROM staff_users ORDER BY email"
    ).fetchall()


def deactivate_user(conn: psycopg.Connection[Row], email: str, *, actor: str, now: datetime) -> int:
    """Refuse further logins and end the user's open sessions; returns sessions revoked."""
    email = normalise_email(email)
    with conn.transaction():
        row = conn.execute(
            "UPDATE staff_users SET active = false WHERE email = %s RETURNING user_id", (email,)
        ).fetchone()
        if row is None:
            raise AccountError(f"no user with email {email}")
        revoked = conn.execute(
            "UPDATE staff_sessions SET revoked_at = %s "
            "WHERE user_id = %s AND revoked_at IS NULL AND expires_at > %s",
            (now, row["user_id"], now),
        ).rowcount
        audit.record(
            conn,
            actor=actor,
            action="user.deactivated",
            entity_type="staff_user",
            entity_id=email,
            details={"sessions_revoked": revoked},
        )
    return revoked


def set_password(conn: psycopg.Connection[Row], email: str, password: str, *, actor: str) -> None:
    """Replace a user's password and clear any lockout (audited; the password is not)."""
    email = normalise_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    with conn.transaction():
        row = conn.execute(
            "UPDATE staff_users SET password_hash = %s, failed_attempts = 0, locked_until = NULL "
            "WHERE email = %s RETURNING user_id",
            (hash_password(password), email),
        ).fetchone()
        if row is None:
            raise AccountError(f"no user with email {email}")
        audit.record(
            conn,
            actor=actor,
            action="user.password_set",
            entity_type="staff_user",
            entity_id=email,
        )


def login(
    conn: psycopg.Connection[Row], email: str, password: str, *, now: datetime, via: str
) -> Login | None:
    """Check the password and open a session; None for any refusal (all audited).

    Five wrong passwords in a row lock the account for 15 minutes; while locked even the
    right password is refused. The reason is in the audit log, never in the answer.
    """
    email = normalise_email(email)[:320]
    with conn.transaction():
        row = conn.execute(
            "SELECT user_id, email, display_name, role, password_hash, active, failed_attempts, "
            "locked_until FROM staff_users WHERE email = %s FOR UPDATE",
            (email,),
        ).fetchone()
        matches = verify_password(password, row["password_hash"] if row else _DUMMY_HASH)
        refusal = _refusal(row, matches, now)
        if refusal is None and row is not None:
            user = _user(row)
            token = new_session_token()
            expires_at = now + SESSION_LIFETIME
            conn.execute(
                "UPDATE staff_users SET failed_attempts = 0, locked_until = NULL, "
                "last_login_at = %s WHERE user_id = %s",
                (now, user.user_id),
            )
            conn.execute(
                "INSERT INTO staff_sessions (token_hash, user_id, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s)",
                (token_hash(token), user.user_id, now, expires_at),
            )
            audit.record(
                conn,
                actor=user.email,
                action="auth.login",
                entity_type="staff_user",
                entity_id=user.email,
                details={"via": via, "role": user.role.value},
            )
            return Login(user, token, expires_at)
        details: dict[str, object] = {"via": via, "reason": refusal}
        if refusal == "wrong_password" and row is not None:
            failed = int(row["failed_attempts"]) + 1
            locked = failed >= MAX_FAILED_ATTEMPTS
            conn.execute(
                "UPDATE staff_users SET failed_attempts = %s, locked_until = %s WHERE user_id = %s",
                (0 if locked else failed, now + LOCKOUT if locked else None, row["user_id"]),
            )
            details |= {"failed_attempts": failed, "locked": locked}
        audit.record(
            conn,
            actor=email or "anonymous",
            action="auth.login_failed",
            entity_type="staff_user",
            entity_id=email,
            details=details,
        )
    return None


def _refusal(row: Row | None, matches: bool, now: datetime) -> str | None:
    if row is None:
        return "unknown_email"
    if not row["active"]:
        return "inactive"
    if row["locked_until"] is not None and row["locked_until"] > now:
        return "locked"
    return None if matches else "wrong_password"


def session_user(conn: psycopg.Connection[Row], token: str, now: datetime) -> StaffUser | None:
    """The active user holding this unexpired, unrevoked session token, or None."""
    row = conn.execute(
        "SELECT u.user_id, u.email, u.display_name, u.role FROM staff_sessions s "
        "JOIN staff_users u USING (user_id) "
        "WHERE s.token_hash = %s AND s.revoked_at IS NULL AND s.expires_at > %s AND u.active",
        (token_hash(token), now),
    ).fetchone()
    return None if row is None else _user(row)


def logout(conn: psycopg.Connection[Row], token: str, *, now: datetime, via: str) -> bool:
    """Revoke the session; False when it was unknown, expired or already revoked."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE staff_sessions s SET revoked_at = %s FROM staff_users u "
            "WHERE s.token_hash = %s AND s.revoked_at IS NULL AND s.expires_at > %s "
            "AND u.user_id = s.user_id RETURNING u.email",
            (now, token_hash(token), now),
        ).fetchone()
        if row is None:
            return False
        audit.record(
            conn,
            actor=row["email"],
            action="auth.logout",
            entity_type="staff_user",
            entity_id=row["email"],
            details={"via": via},
        )
    return True


def record_denial(
    conn: psycopg.Connection[Row],
    user: StaffUser,
    permission: str,
    *,
    entity_type: str,
    entity_id: str | int,
    via: str,
) -> None:
    """Audit an action refused for lack of permission (21 CFR 11.10(g) authority checks)."""
    with conn.transaction():
        audit.record(
            conn,
            actor=user.email,
            action="auth.permission_denied",
            entity_type=entity_type,
            entity_id=entity_id,
            details={"permission": permission, "role": user.role.value, "via": via},
        )
