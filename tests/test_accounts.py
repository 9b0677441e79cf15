"""Staff accounts: password hashing, lockout, sessions, the permission table and the CLI."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from core import accounts
from core.accounts import AccountError, Role, can, create_user, hash_password, verify_password
from core.accounts_api import require
from core.clock import SystemClock
from core.db import Row
from core.settings import Settings
from tests.factories import T0
from tests.test_cli import coldchain

pytestmark = pytest.mark.storage

PASSWORD = "correct horse battery"


def _audit(db: psycopg.Connection[Row], action: str) -> list[Row]:
    return db.execute(
        "SELECT actor, entity_id, details FROM audit_log WHERE action = %s ORDER BY audit_id",
        (action,),
    ).fetchall()


def test_hash_carries_parameters_and_a_per_user_salt() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    scheme, n, r, p, salt, key = first.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert first != second, "two users with the same password must not share a hash"
    # The stored key is exactly scrypt(password, salt) with the stated parameters.
    expected = hashlib.scrypt(
        PASSWORD.encode(), salt=base64.b64decode(salt), n=2**14, r=8, p=1, dklen=32
    )
    assert base64.b64decode(key) == expected
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password(PASSWORD + "x", first)
    assert not verify_password("", first)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain-text",
        "pbkdf2$16384$8$1$AAAA$AAAA",
        "scrypt$abc$8$1$AAAA$AAAA",
        "scrypt$4294967296$8$1$AAAA$AAAA",  # would ask for terabytes of memory
        "scrypt$16384$8$1$not base64!$AAAA",
        "scrypt$16384$8$1$AAAA$",
    ],
)
def test_malformed_hashes_never_match(stored: str) -> None:
    assert verify_password(PASSWORD, stored) is False


def test_permission_table() -> None:
    assert all(can(role, "view") for role in Role)
    for permission in ("alert.acknowledge", "alert.resolve"):
        assert {r for r in Role if can(r, permission)} == {Role.LOGISTICS, Role.QA, Role.ADMIN}
    assert {r for r in Role if can(r, "user.manage")} == {Role.ADMIN}
    assert not can("intruder", "view")
    with pytest.raises(KeyError):
        can(Role.ADMIN, "alert.delete")  # a typo in a permission must fail loudly
    with pytest.raises(KeyError, match="alert.delete"):
        require("alert.delete")  # ... already when a route declares it
    # Part 11: only QA assesses and signs a disposition, not even an administrator.
    for permission in ("disposition.assess", "disposition.sign"):
        assert {r for r in Role if can(r, permission)} == {Role.QA}


def test_docs_list_every_permission_with_exactly_its_roles(repo_root: Path) -> None:
    text = (repo_root / "docs" / "accounts.md").read_text()
    section = text.split("## Roles and permissions", 1)[1].split("\n## ", 1)[0]
    header, *rows = [line for line in section.splitlines() if line.startswith("| ")]
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns[:5] == ["permission", *(role.value for role in Role)]
    roles = list(Role)
    documented = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        permission = re.fullmatch(r"`([a-z_.]+)`", cells[0])
        assert permission is not None, row
        assert all(cell in {"✓", ""} for cell in cells[1:5]), row
        marks = zip(roles, cells[1:5], strict=True)
        documented[permission[1]] = frozenset(role for role, mark in marks if mark == "✓")
    assert len(documented) == len(rows), "a permission is listed twice in docs/accounts.md"
    assert documented == accounts.PERMISSIONS


def test_cookies_are_secure_when_either_service_is_https() -> None:
    plain = Settings(public_url="http://127.0.0.1:8000", dashboard_url="http://127.0.0.1:8050")
    assert accounts.cookies_secure(plain) is False
    for field in ("public_url", "dashboard_url"):
        https = plain.model_copy(update={field: "https://coldchain.example.org"})
        assert accounts.cookies_secure(https) is True, field


def test_create_user_refuses_bad_input(db: psycopg.Connection[Row]) -> None:
    create_user(db, "Dana@Example.org ", "Dana Reyes", "qa", PASSWORD, actor="test")
    with pytest.raises(AccountError, match="already exists"):
        create_user(db, "dana@example.org", "Other", "qa", PASSWORD, actor="test")
    with pytest.raises(AccountError, match="role must be one of"):
        create_user(db, "x@example.org", "X", "superuser", PASSWORD, actor="test")
    with pytest.raises(AccountError, match="at least 12"):
        create_user(db, "x@example.org", "X", "qa", "short", actor="test")
    with pytest.raises(AccountError, match="not a valid email"):
        create_user(db, "no-at-sign", "X", "qa", PASSWORD, actor="test")
    row = db.execute("SELECT email, password_hash FROM staff_users").fetchone()
    assert row is not None and row["email"] == "dana@example.org"
    assert PASSWORD not in row["password_hash"] and row["password_hash"].startswith("scrypt$")
    assert _audit(db, "user.created")[0]["entity_id"] == "dana@example.org"


def test_five_failures_lock_the_account_for_fifteen_minutes(db: psycopg.Connection[Row]) -> None:
    create_user(db, "sam@example.org", "Sam", "logistics", PASSWORD, actor="test")
    for _ in range(4):
        assert accounts.login(db, "sam@example.org", "wrong", now=T0, via="test") is None
    # Four failures: not locked yet, and a success resets the count.
    assert accounts.login(db, "sam@example.org", PASSWORD, now=T0, via="test") is not None
    for _ in range(5):
        assert accounts.login(db, "sam@example.org", "wrong", now=T0, via="test") is None
    locked = db.execute("SELECT locked_until FROM staff_users").fetchone()
    assert locked == {"locked_until": T0 + timedelta(minutes=15)}
    almost = T0 + timedelta(minutes=14, seconds=59)
    assert accounts.login(db, "SAM@example.org", PASSWORD, now=almost, via="test") is None
    after = T0 + timedelta(minutes=15)
    session = accounts.login(db, "sam@example.org", PASSWORD, now=after, via="test")
    assert session is not None and session.user.role is Role.LOGISTICS

    failures = _audit(db, "auth.login_failed")
    assert [f["details"]["reason"] for f in failures] == ["wrong_password"] * 9 + ["locked"]
    assert [f["details"].get("locked") for f in failures[4:9]] == [False] * 4 + [True]
    assert len(_audit(db, "auth.login")) == 2
    user = db.execute("SELECT failed_attempts, last_login_at FROM staff_users").fetchone()
    assert user == {"failed_attempts": 0, "last_login_at": after}


def test_unknown_email_is_refused_and_audited(db: psycopg.Connection[Row]) -> None:
    assert accounts.login(db, "ghost@example.org", PASSWORD, now=T0, via="test") is None
    [entry] = _audit(db, "auth.login_failed")
    assert entry["entity_id"] == "ghost@example.org"
    assert entry["details"]["reason"] == "unknown_email"


def test_session_expires_after_twelve_hours_and_logout_revokes(
    db: psycopg.Connection[Row],
) -> None:
    create_user(db, "qa@example.org", "Quinn", "qa", PASSWORD, actor="test")
    session = accounts.login(db, "qa@example.org", PASSWORD, now=T0, via="test")
    assert session is not None and session.expires_at == T0 + timedelta(hours=12)
    assert len(session.token) >= 43  # 32 random bytes, base64url
    stored = db.execute("SELECT token_hash FROM staff_sessions").fetchone()
    assert stored is not None and bytes(stored["token_hash"]) == accounts.token_hash(session.token)
    assert session.token.encode() not in bytes(stored["token_hash"])

    just_before = T0 + timedelta(hours=11, minutes=59)
    user = accounts.session_user(db, session.token, just_before)
    assert user is not None and user.email == "qa@example.org"
    assert accounts.session_user(db, session.token, T0 + timedelta(hours=12)) is None
    assert accounts.session_user(db, session.token + "x", T0) is None

    assert accounts.logout(db, session.token, now=T0 + timedelta(hours=1), via="test")
    assert accounts.session_user(db, session.token, T0 + timedelta(hours=1)) is None
    assert not accounts.logout(db, session.token, now=T0 + timedelta(hours=1), via="test")
    assert [e["actor"] for e in _audit(db, "auth.logout")] == ["qa@example.org"]


def test_deactivation_ends_sessions_and_refuses_login(db: psycopg.Connection[Row]) -> None:
    create_user(db, "cl@example.org", "Cleo", "clinical", PASSWORD, actor="test")
    session = accounts.login(db, "cl@example.org", PASSWORD, now=T0, via="test")
    assert session is not None
    assert accounts.deactivate_user(db, "cl@example.org", actor="test", now=T0) == 1
    assert accounts.session_user(db, session.token, T0) is None
    assert accounts.login(db, "cl@example.org", PASSWORD, now=T0, via="test") is None
    assert _audit(db, "auth.login_failed")[-1]["details"]["reason"] == "inactive"
    with pytest.raises(AccountError, match="no user"):
        accounts.deactivate_user(db, "nobody@example.org", actor="test", now=T0)


def test_cli_users_add_list_deactivate(
    db: psycopg.Connection[Row], db_url: str, tmp_path: Path
) -> None:
    env = {"COLDCHAIN_DATABASE_URL": db_url}
    added = coldchain(
        "users", "add", "lee@example.org", "--name", "Lee Park", "--role", "qa", env=env
    )
    assert added.returncode == 0, added.stderr
    match = re.search(r"shown once; hand it over privately\): (\S+)", added.stdout)
    assert match, added.stdout
    generated = match[1]
    # A session open now, so deactivation has one to end.
    now = SystemClock().now()
    assert accounts.login(db, "lee@example.org", generated, now=now, via="test") is not None

    secret = tmp_path / "pw"
    secret.write_text("a file-given password\n")
    from_file = coldchain(
        "users", "add", "Ann@Example.org", "--name", "Ann", "--role", "admin",
        "--password-file", str(secret), env=env,
    )  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    assert "shown once" not in from_file.stdout
    login = accounts.login(db, "ann@example.org", "a file-given password", now=T0, via="test")
    assert login is not None

    again = coldchain("users", "add", "lee@example.org", "--name", "L", "--role", "qa", env=env)
    assert again.returncode == 2 and "already exists" in again.stderr
    bad_role = coldchain("users", "add", "x@example.org", "--name", "X", "--role", "boss", env=env)
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr

    listed = coldchain("users", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["EMAIL", "ROLE", "ACTIVE"]
    assert lines[1].split()[:3] == ["ann@example.org", "admin", "yes"]
    assert lines[2].split()[:3] == ["lee@example.org", "qa", "yes"]
    assert generated not in listed.stdout

    gone = coldchain("users", "deactivate", "lee@example.org", env=env)
    assert gone.returncode == 0 and "1 open session(s) ended" in gone.stdout
    assert accounts.login(db, "lee@example.org", generated, now=T0, via="test") is None
    listed = coldchain("users", "list", env=env)
    assert "lee@example.org" in listed.stdout
    assert [line.split()[2] for line in listed.stdout.splitlines()[1:]] == ["yes", "no"]
    missing = coldchain("users", "deactivate", "nobody@example.org", env=env)
    assert missing.returncode == 2 and "no user with email" in missing.stderr
