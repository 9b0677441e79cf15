"""`coldchain oncall import` and `coldchain oncall show` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from core.db import Row
from tests.test_cli import coldchain

pytestmark = pytest.mark.storage

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "oncall.example.yaml"


def test_import_is_idempotent_and_show_lists_schedules(
    db_url: str, db: psycopg.Connection[Row]
) -> None:
    env = {"COLDCHAIN_DATABASE_URL": db_url}
    first = coldchain("oncall", "import", str(EXAMPLE), env=env)
    assert first.returncode == 0, first.stderr
    assert "imported 6 people, 2 schedules, 2 policies, 3 routes" in first.stdout
    again = coldchain("oncall", "import", str(EXAMPLE), env=env)
    assert "unchanged" in again.stdout
    shown = coldchain("oncall", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "logistics (Logistics on-call (follow the sun)):" in shown.stdout
    assert "qa (QA duty): Quinn Adler (QA lead) (+15555550106)" in shown.stdout
    audits = db.execute("SELECT actor FROM audit_log WHERE action = 'oncall.imported'")
    assert [a["actor"].startswith("cli:") for a in audits] == [True, True]


def test_bad_file_is_refused_naming_file_and_field(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "oncall.yaml"
    path.write_text(
        "people:\n  - {id: ana, name: Ana, phone: '5550101', time_zone: UTC}\n", encoding="utf-8"
    )
    result = coldchain("oncall", "import", str(path), env={"COLDCHAIN_DATABASE_URL": db_url})
    assert result.returncode == 2
    assert f"{path}: invalid on-call configuration" in result.stderr
    assert "people.0.phone" in result.stderr
