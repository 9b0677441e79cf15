"""What `coldchain oncall import` and `coldchain oncall show` do (text for people)."""

from __future__ import annotations

import getpass
from pathlib import Path

import psycopg

from alerts import oncall_config
from alerts.oncall import Person, oncall_now_and_next
from core.clock import Clock, SystemClock, isoformat_utc
from core.db import Row
from core.errors import StartupError


def import_file(conn: psycopg.Connection[Row], path: Path, clock: Clock | None = None) -> str:
    """Validate and import; a bad file is a StartupError listing every field at fault."""
    try:
        doc = oncall_config.load_file(path)
    except oncall_config.ConfigError as exc:
        raise StartupError(str(exc)) from exc
    now = (clock or SystemClock()).now()
    changed = oncall_config.apply(
        conn, doc, actor=f"cli:{getpass.getuser()}", source=str(path), now=now
    )
    counts = (
        f"{len(doc.people)} people, {len(doc.schedules)} schedules, "
        f"{len(doc.policies)} policies, {len(doc.routing)} routes"
    )
    if not changed:
        return f"{path}: unchanged ({counts})"
    return f"{path}: imported {counts}"


def _who(person: Person | None) -> str:
    return "nobody" if person is None else f"{person.name} ({person.phone_e164})"


def show(conn: psycopg.Connection[Row], clock: Clock | None = None) -> str:
    now = (clock or SystemClock()).now()
    board = oncall_now_and_next(conn, now)
    if not board:
        return "no on-call schedules configured (coldchain oncall import FILE.yaml)"
    lines = [f"on call at {isoformat_utc(now)}:"]
    for entry in board:
        lines.append(f"  {entry.schedule_id} ({entry.schedule_name}): {_who(entry.current)}")
        if entry.next_handoff_at is not None:
            lines.append(
                f"    next: {_who(entry.next_person)} from {isoformat_utc(entry.next_handoff_at)}"
            )
    return "\n".join(lines)
