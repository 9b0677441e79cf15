"""`coldchain demo` signs its user in: an admin made once, the same password on later runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from core.accounts import can, login
from core.db import Row
from core.demo import DEMO_ACCOUNTS, DEMO_EMAIL, DEMO_QA_EMAIL, _demo_login

pytestmark = pytest.mark.storage


def test_demo_account_is_created_once_and_reused(
    db: psycopg.Connection[Row], tmp_path: Path
) -> None:
    email, password = _demo_login(db, tmp_path)
    assert email == DEMO_EMAIL
    assert (tmp_path / "demo-login.txt").stat().st_mode & 0o777 == 0o600
    assert _demo_login(db, tmp_path) == (email, password)
    now = datetime.now(UTC)
    assert login(db, email, password, now=now, via="test") is not None

    # The password file was lost: a new password is set, the old one stops working.
    (tmp_path / "demo-login.txt").unlink()
    _, fresh = _demo_login(db, tmp_path)
    assert fresh != password
    assert login(db, email, fresh, now=now, via="test") is not None
    assert login(db, email, password, now=now, via="test") is None


def test_demo_has_a_qa_account_that_may_sign(db: psycopg.Connection[Row], tmp_path: Path) -> None:
    admin, qa = DEMO_ACCOUNTS
    email, password = _demo_login(db, tmp_path, qa)
    assert email == DEMO_QA_EMAIL
    assert _demo_login(db, tmp_path, admin)[1] != password  # separate files, separate secrets
    assert (tmp_path / "demo-qa-login.txt").read_text().strip() == password
    row = db.execute("SELECT role FROM staff_users WHERE email = %s", (email,)).fetchone()
    assert row == {"role": "qa"}
    assert can(row["role"], "disposition.sign") and not can(admin.role, "disposition.sign")
