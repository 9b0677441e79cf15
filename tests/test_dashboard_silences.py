"""Silences on the alerts page: created and expired from the dashboard through
alerts.silences, by roles holding ``alert.acknowledge`` only, in headless Chromium.

Each browser test saves a screenshot under build/screenshots/ (kept by CI as an artifact).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.silences import SilenceError
from core.clock import SystemClock
from core.db import Row
from core.settings import Settings
from dashboard.silence_form import silence_end
from tests.browser import chromium_page, save_screenshot
from tests.factories import shipment_with_logger
from tests.staff import (
    PASSWORD,
    browser_sign_in,
    create_staff,
    post_dash_callback,
    served_dashboard,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_silence_end_from_duration_or_utc_end_time() -> None:
    assert silence_end(2, None, NOW) == NOW + timedelta(hours=2)
    assert silence_end(0.5, "", NOW) == NOW + timedelta(minutes=30)
    # An end time, entered in UTC, wins over the duration.
    assert silence_end(2, "2026-03-11T08:15", NOW) == datetime(2026, 3, 11, 8, 15, tzinfo=UTC)
    for hours, until, field in (
        (None, None, "duration: "),
        (0, None, "duration: "),
        (-1, None, "duration: "),
        (float("nan"), None, "duration: "),
        (10**9, None, "duration: "),
        ("two", None, "duration: "),
        (2, "tomorrow", "ends_at: "),
    ):
        with pytest.raises(SilenceError) as raised:
            silence_end(hours, until, NOW)
        assert str(raised.value).startswith(field), (hours, until, str(raised.value))


@pytest.fixture
def shipment_id(db: psycopg.Connection[Row]) -> int:
    create_staff(db, ("logistics", "clinical"))
    return shipment_with_logger(
        db,
        ref="SHP-300",
        device_id="LOG-300",
        assigned_from=SystemClock().now() - timedelta(hours=4),
    )


@pytest.fixture
def base_url(settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]) -> Iterator[str]:
    with served_dashboard(settings, pool) as url:
        yield url


def _silences(db: psycopg.Connection[Row]) -> list[Row]:
    return db.execute(
        "SELECT silence_id, shipment_id, rule_id, reason, ends_at, created_by, expired_by "
        "FROM alert_silences ORDER BY silence_id"
    ).fetchall()


def _audits(db: psycopg.Connection[Row]) -> list[Row]:
    return db.execute(
        "SELECT actor, action, entity_id, details FROM audit_log WHERE entity_type = 'silence' "
        "ORDER BY audit_id"
    ).fetchall()


@pytest.mark.storage
def test_logistics_creates_and_expires_a_silence_and_clinical_is_refused(
    db: psycopg.Connection[Row], shipment_id: int, base_url: str
) -> None:
    with chromium_page() as page:
        page.set_viewport_size({"width": 1366, "height": 1000})
        browser_sign_in(page, base_url + "/alerts", "logistics@example.org", PASSWORD)
        page.wait_for_selector("#silence-form")
        assert page.locator("#silences-empty").is_visible()
        assert "Critical temperature alerts still page" in page.inner_text("#silence-form")
        callbacks: list[str] = []
        page.on(
            "request",
            lambda r: (
                callbacks.append(r.post_data or "") if "_dash-update-component" in r.url else None
            ),
        )
        # No reason: the service's refusal names the field; nothing is stored.
        page.fill("#silence-shipment", "SHP-300")
        page.click("#silence-create")
        failed = page.wait_for_selector("#silence-failed")
        assert failed is not None and failed.inner_text().startswith("Not created: reason: ")
        page.fill("#silence-shipment", "SHP-999")
        page.fill("#silence-reason", "reefer swap at the hub")
        page.click("#silence-create")
        page.wait_for_function(
            "() => document.querySelector('#silence-failed')?.innerText.includes('SHP-999')"
        )
        assert page.inner_text("#silence-failed").startswith("Not created: shipment: ")
        assert _silences(db) == []

        page.fill("#silence-shipment", "SHP-300")
        page.fill("#silence-rule", "logger-offline")
        page.fill("#silence-hours", "3")
        started = SystemClock().now()
        page.click("#silence-create")
        done = page.wait_for_selector("#silence-done")
        assert done is not None and "created by logistics@example.org" in done.inner_text()
        item = page.wait_for_selector(".silence:has-text('reefer swap at the hub')")
        assert item is not None
        assert "shipment SHP-300 · rule logger-offline" in item.inner_text()
        assert page.locator("#silence-reason").input_value() == ""
        [row] = _silences(db)
        assert row["shipment_id"] == shipment_id and row["rule_id"] == "logger-offline"
        assert row["reason"] == "reefer swap at the hub"
        assert row["created_by"] == "logistics@example.org" and row["expired_by"] is None
        ends = row["ends_at"] - started
        assert timedelta(hours=3) - timedelta(minutes=1) < ends < timedelta(hours=3, minutes=1)
        save_screenshot(page, "alerts-silence-created")
        create = next(body for body in callbacks if "silence-create" in body)

        page.click(f"#silence-{row['silence_id']} .silence-expire")
        page.wait_for_selector("#silences-empty")
        assert "expired by logistics@example.org" in page.inner_text("#silence-done")
        [expired] = _silences(db)
        assert expired["expired_by"] == "logistics@example.org"
        assert [(a["actor"], a["action"], a["entity_id"]) for a in _audits(db)] == [
            ("logistics@example.org", "silence.created", str(row["silence_id"])),
            ("logistics@example.org", "silence.expired", str(row["silence_id"])),
        ]
        save_screenshot(page, "alerts-silence-expired")

        page.click("#sign-out")
        browser_sign_in(page, base_url + "/alerts", "clinical@example.org", PASSWORD)
        page.wait_for_selector("#silences-panel")
        assert page.locator("#silence-form").count() == 0
        # The clinical role has no form; a hand-made create request is refused and audited.
        forged = json.loads(create)
        for state in forged["state"]:
            if state["id"] == "silence-reason":
                state["value"] = "clinical would hold pages"
        answer = post_dash_callback(page, forged)
        save_screenshot(page, "alerts-silence-clinical")
    assert answer["status"] == 200, answer["text"]
    assert "may not do this: alert.acknowledge" in answer["text"]
    assert len(_silences(db)) == 1
    denied = _audits(db)[-1]
    assert (denied["actor"], denied["action"], denied["entity_id"]) == (
        "clinical@example.org",
        "auth.permission_denied",
        "new",
    )
    assert denied["details"] == {
        "permission": "alert.acknowledge",
        "role": "clinical",
        "via": "dashboard",
    }
