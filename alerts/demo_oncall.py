"""The on-call configuration `coldchain demo` starts with: fictional people (+1 555 01xx),
one rotation, short waits so escalation is visible within minutes. Without Twilio the
pages land in the outbox (``notifications``) addressed to these people's numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from alerts import oncall_config
from core.db import Row

DEMO_ONCALL: dict[str, Any] = {
    "people": [
        {"id": "riley", "name": "Riley Demo", "phone": "+15555550121", "time_zone": "UTC"},
        {"id": "sam", "name": "Sam Demo", "phone": "+15555550122", "time_zone": "UTC"},
        {"id": "taylor", "name": "Taylor Demo (lead)", "phone": "+15555550123", "time_zone": "UTC"},
    ],
    "schedules": [
        {
            "id": "demo-ops",
            "name": "Demo operations",
            "layers": [
                {
                    "name": "round the clock",
                    "participants": ["riley", "sam"],
                    "handoff": "daily",
                    "handoff_at": "09:00",
                    "start": "2026-01-01",
                    "time_zone": "UTC",
                }
            ],
        }
    ],
    "policies": [
        {
            "id": "demo",
            "name": "Demo escalation",
            "steps": [
                {"notify": [{"schedule": "demo-ops"}], "via": ["sms", "voice"], "wait_min": 2},
                {"notify": [{"person": "taylor"}], "via": ["voice"], "wait_min": 3},
            ],
            "repeat": 2,
            "ack_timeout_min": 30,
            "group_window_s": 60,
        }
    ],
    "routing": [{"policy": "demo"}],
}


def import_demo_oncall(conn: psycopg.Connection[Row], now: datetime) -> bool:
    """Import the demo configuration unless one is already there (kept across runs)."""
    if conn.execute("SELECT 1 FROM oncall_people LIMIT 1").fetchone() is not None:
        return False
    doc = oncall_config.parse(DEMO_ONCALL, "demo on-call configuration")
    return oncall_config.apply(conn, doc, actor="demo", source="coldchain demo", now=now)
