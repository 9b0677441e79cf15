"""The disposition form on the shipment page: QA signs in Chromium; other roles are refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from waitress.server import create_server

from core.accounts import StaffUser
from core.clock import FixedClock
from core.db import Row
from core.settings import Settings
from dashboard.app import create_dashboard
from monitor import disposition
from tests.disposition_fixtures import (
    NAMES,
    NOW,
    PASSWORD,
    alarm_ids,
    audit_entries,
    delivered_shipment_with_alarm,
    staff,
)
from tests.staff import browser_sign_in, dashboard_sign_in

pytestmark = pytest.mark.storage


@pytest.fixture
def shipment(db: psycopg.Connection[Row]) -> int:
    return delivered_shipment_with_alarm(db)


@pytest.fixture
def users(db: psycopg.Connection[Row]) -> dict[str, StaffUser]:
    return staff(db)


@pytest.fixture
def dashboard_url(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> Iterator[str]:
    # The wall clock is fixed the day after the shipment, so the expiry rules are stable.
    app = create_dashboard(settings, pool, FixedClock(NOW))
    server = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()


def test_qa_assesses_an_alarm_and_signs_in_chromium(
    dashboard_url: str,
    db: psycopg.Connection[Row],
    shipment: int,
    users: dict[str, StaffUser],
) -> None:
    from tests.browser import chromium_page, save_screenshot

    [alarm_id] = alarm_ids(db, shipment)
    with chromium_page() as page:
        browser_sign_in(page, f"{dashboard_url}/shipments/{shipment}", "qa@example.org", PASSWORD)
        page.wait_for_selector("#disposition-state")
        assert page.inner_text("#disposition-state") == "delivered"
        assert page.inner_text("#disposition-verdict") == "REVIEW"
        assert "not assessed" in page.inner_text(f"#alarm-assessment-{alarm_id}")

        page.click("#disposition-start")
        page.wait_for_selector("#disposition-done")
        assert page.inner_text("#disposition-state") == "under assessment"
        row = f"#alarm-assessment-{alarm_id}"
        page.select_option(f"{row} select", "expiry_shortened")
        page.fill(f"{row} input", "40 min at 10 °C, within the 14-day allowance")
        page.click(f"{row} .alarm-assess")
        page.wait_for_selector(f"{row} >> text=Expiry must be shortened")

        page.select_option("#disposition-decision", "released_shortened_expiry")
        page.fill("#disposition-expiry", "2026-03-16")
        page.fill("#disposition-reason", "excursion within the room-temperature allowance")
        page.fill("#disposition-password", "not the password")
        page.click("#disposition-sign")
        page.wait_for_selector("#disposition-failed")
        assert "password does not match" in page.inner_text("#disposition-failed")
        assert page.input_value("#disposition-password") == ""  # never left in the form

        page.fill("#disposition-password", PASSWORD)
        page.click("#disposition-sign")
        page.wait_for_selector("#disposition-signed.alert")
        signed = page.inner_text("#disposition-signed")
        assert "Approved for release with shortened expiry, new expiry 2026-03-16" in signed
        assert f"Signed by {NAMES['qa']} (qa@example.org) at 2026-03-03T08:00:00Z" in signed
        assert page.inner_text("#disposition-state") == "released shortened expiry"
        save_screenshot(page, "disposition-signed")

    [stored] = db.execute(
        "SELECT decision, new_expiry_date, signer_email, printed_name, meaning, reason, signed_at "
        "FROM dispositions WHERE shipment_id = %s",
        (shipment,),
    ).fetchall()
    assert stored == {
        "decision": "released_shortened_expiry",
        "new_expiry_date": date(2026, 3, 16),
        "signer_email": "qa@example.org",
        "printed_name": NAMES["qa"],
        "meaning": "Approved for release with shortened expiry",
        "reason": "excursion within the room-temperature allowance",
        "signed_at": NOW,
    }
    [entry] = audit_entries(db, "disposition.signed")
    assert entry["details"]["via"] == "dashboard" and entry["actor"] == "qa@example.org"
    [failed] = audit_entries(db, "disposition.signature_failed")
    assert failed["details"]["via"] == "dashboard"


def test_a_clinical_user_calling_the_callback_directly_is_refused(
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Row]],
    db: psycopg.Connection[Row],
    shipment: int,
    users: dict[str, StaffUser],
) -> None:
    disposition.start_assessment(db, shipment, users["qa"], NOW, via="test")
    client = create_dashboard(settings, pool, FixedClock(NOW)).server.test_client()
    dashboard_sign_in(client, "clinical@example.org", PASSWORD)
    outputs = [
        {"id": "disposition-panel", "property": "children"},
        {"id": "disposition-result", "property": "children"},
        {"id": "disposition-password", "property": "value"},
    ]
    forged = {
        "output": "..disposition-panel.children...disposition-result.children..."
        "disposition-password.value..",
        "outputs": outputs,
        "inputs": [
            {"id": "disposition-shipment", "property": "data", "value": shipment},
            {"id": "disposition-start", "property": "n_clicks", "value": None},
            [],
            {"id": "disposition-sign", "property": "n_clicks", "value": 1},
        ],
        "changedPropIds": ["disposition-sign.n_clicks"],
        "state": [
            [],
            [],
            {"id": "disposition-decision", "property": "value", "value": "rejected"},
            {"id": "disposition-expiry", "property": "value", "value": None},
            {"id": "disposition-reason", "property": "value", "value": "forged"},
            {"id": "disposition-password", "property": "value", "value": PASSWORD},
        ],
    }
    answer = client.post("/_dash-update-component", json=forged)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert "may not do this" in answer.get_data(as_text=True)
    assert db.execute("SELECT count(*) AS n FROM dispositions").fetchone() == {"n": 0}
    [denied] = audit_entries(db, "auth.permission_denied")
    assert (denied["actor"], denied["entity_id"]) == ("clinical@example.org", str(shipment))
    assert denied["details"] == {
        "permission": "disposition.sign",
        "role": "clinical",
        "via": "dashboard",
    }
    # The form is not even shown to the clinical role (a convenience; the check is above).
    layout = client.post(
        "/_dash-update-component",
        json={
            "output": "page.children",
            "outputs": {"id": "page", "property": "children"},
            "inputs": [{"id": "url", "property": "pathname", "value": f"/shipments/{shipment}"}],
            "changedPropIds": ["url.pathname"],
            "state": [{"id": "temperature-unit", "property": "data", "value": None}],
        },
    )
    assert layout.status_code == 200
    [controls] = _components(layout.get_json(), "disposition-controls")
    assert controls["props"]["style"] == {"display": "none"}


def _components(tree: Any, component_id: str) -> list[dict[str, Any]]:
    """Every component with this id in a Dash JSON response."""
    found = []
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == component_id:
            found.append(tree)
        for value in tree.values():
            found += _components(value, component_id)
    elif isinstance(tree, list):
        for value in tree:
            found += _components(value, component_id)
    return found
