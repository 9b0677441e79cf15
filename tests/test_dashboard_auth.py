"""Dashboard sign-in and alert buttons, through Flask's client and in headless Chromium."""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.service import raise_alert
from core.accounts import SESSION_COOKIE, create_user
from core.clock import SystemClock
from core.db import Row
from core.settings import Settings
from core.severity import Severity
from dashboard.app import create_dashboard
from tests.factories import shipment_with_logger
from tests.staff import post_dash_callback

pytestmark = pytest.mark.storage

PASSWORD = "dashboard password 1"


@pytest.fixture
def fleet(db: psycopg.Connection[Row]) -> dict[str, int]:
    """One shipment with two open alerts; a logistics and a clinical user."""
    shipment_id = shipment_with_logger(db)
    now = SystemClock().now()
    ids = {"shipment": shipment_id}
    for minutes, rule in ((2, "high-30m"), (1, "freeze")):
        ids[rule] = raise_alert(
            db,
            shipment_id=shipment_id,
            rule_id=rule,
            severity=Severity.HIGH,
            summary=f"{rule} on SHP-001",
            message="page",
            condition_at=now,
            now=now - timedelta(minutes=minutes),
        ).alert_id
    create_user(db, "lou@example.org", "Lou Logistics", "logistics", PASSWORD, actor="test")
    create_user(db, "cal@example.org", "Cal Clinical", "clinical", PASSWORD, actor="test")
    return ids


def _alert(db: psycopg.Connection[Row], alert_id: int) -> Row:
    row = db.execute(
        "SELECT state, acknowledged_by FROM alerts WHERE alert_id = %s", (alert_id,)
    ).fetchone()
    assert row is not None
    return row


def _audit(db: psycopg.Connection[Row], action: str) -> list[Row]:
    return db.execute(
        "SELECT actor, entity_id, details FROM audit_log WHERE action = %s ORDER BY audit_id",
        (action,),
    ).fetchall()


def test_nothing_is_readable_without_a_session(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], fleet: dict[str, int]
) -> None:
    client = create_dashboard(settings, pool).server.test_client()
    page = client.get(f"/shipments/{fleet['shipment']}")
    assert page.status_code == 302
    assert page.headers["Location"] == f"/login?next=/shipments/{fleet['shipment']}"
    for path in ("/_dash-layout", "/_dash-dependencies"):
        assert client.get(path).status_code == 401, path
    callback = client.post("/_dash-update-component", json={"output": "page.children"})
    assert callback.status_code == 401 and b"SHP-001" not in callback.data
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/login").status_code == 200

    # The login form only works with the token bound to its pre-session cookie.
    client.get("/login")
    forged = client.post(
        "/login", data={"email": "lou@example.org", "password": PASSWORD, "csrf_token": "x"}
    )
    assert forged.status_code == 400 and b"form expired" in forged.data
    assert client.get_cookie(SESSION_COOKIE) is None

    form = client.get("/login?next=//evil.example/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
    assert token and 'name="next" value="/"' in form  # no open redirect
    signed_in = client.post(
        "/login",
        data={"email": "lou@example.org", "password": PASSWORD, "csrf_token": token[1]},
    )
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/_dash-layout").status_code == 200
    cross_site = client.post(
        "/_dash-update-component", json={}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403


def test_sign_in_acknowledge_and_role_refusal_in_chromium(
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Row]],
    fleet: dict[str, int],
    db: psycopg.Connection[Row],
) -> None:
    from core.embedded import free_port
    from dashboard.server import serve_dashboard
    from tests.browser import chromium_page, save_screenshot

    server = serve_dashboard(settings, pool, "127.0.0.1", free_port())
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.port}"
    shipment_url = f"{base}/shipments/{fleet['shipment']}"
    try:
        with chromium_page() as page:
            page.goto(shipment_url)
            assert page.url == f"{base}/login?next=/shipments/{fleet['shipment']}"
            page.fill("#email", "lou@example.org")
            page.fill("#password", "not the password")
            page.click("#sign-in")
            assert "Wrong email or password" in page.locator("#login-error").inner_text()

            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            page.wait_for_selector("#shipment-title")
            assert page.url == shipment_url  # back where the person was going
            assert page.locator("#signed-in-user").inner_text() == "Lou Logistics · logistics"
            page.click("text=← all shipments")
            page.wait_for_selector("#shipments-table tbody tr")
            assert "SHP-001" in page.locator("#shipments-table").inner_text()
            page.locator("#shipments-table .shipment-ref a").first.click()
            page.wait_for_selector("#shipment-alerts .alert-ack")

            freeze = fleet["freeze"]
            callbacks: list[str] = []
            page.on(
                "request",
                lambda r: (
                    callbacks.append(r.post_data or "")
                    if "_dash-update-component" in r.url
                    else None
                ),
            )
            page.locator(f"#alert-{freeze} .alert-ack").click()
            page.wait_for_selector("#alert-action-done")
            assert "acknowledged by lou@example.org" in page.inner_text("#alert-action-done")
            assert "acknowledged" in page.locator(f"#alert-{freeze} .alert-state").inner_text()
            assert page.locator(f"#alert-{freeze} .alert-ack").count() == 0
            save_screenshot(page, "auth-logistics-acknowledged")
            assert _alert(db, freeze) == {
                "state": "acknowledged",
                "acknowledged_by": "lou@example.org",
            }
            [acked] = _audit(db, "alert.acknowledged")
            assert acked["actor"] == "lou@example.org" and acked["details"]["via"] == "dashboard"
            click = next(body for body in callbacks if "alert-action" in body)

            page.click("#sign-out")
            page.wait_for_selector("#sign-in")
            page.goto(base + "/")
            assert page.url.startswith(f"{base}/login")  # the session was revoked

            page.fill("#email", "cal@example.org")
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            page.goto(shipment_url)
            page.wait_for_selector("#shipment-alerts .shipment-alert")
            assert page.locator("#signed-in-user").inner_text() == "Cal Clinical · clinical"
            assert page.locator("#shipment-alerts button").count() == 0
            save_screenshot(page, "auth-clinical-no-buttons")
            # The button is hidden, but the server must refuse even a hand-made callback.
            high = fleet["high-30m"]
            # The real click's request, aimed at the other alert as if its button existed.
            forged = json.loads(click)
            button = {"action": "ack", "alert_id": high, "type": "alert-action"}
            forged["inputs"] = [[{"id": button, "property": "n_clicks", "value": 1}]]
            forged["changedPropIds"] = [json.dumps(button, separators=(",", ":")) + ".n_clicks"]
            answer = post_dash_callback(page, forged)
            assert answer["status"] == 200 and "may not do this" in answer["text"]
            assert _alert(db, high) == {"state": "triggered", "acknowledged_by": None}
            [denied] = _audit(db, "auth.permission_denied")
            assert (denied["actor"], denied["entity_id"]) == ("cal@example.org", str(high))
            assert denied["details"] == {
                "permission": "alert.acknowledge",
                "role": "clinical",
                "via": "dashboard",
            }

            # A session that ends while the page is open sends the person to sign in.
            page.goto(base + "/")
            page.wait_for_selector("#shipments-table tbody tr")
            db.execute("UPDATE staff_sessions SET revoked_at = now() WHERE revoked_at IS NULL")
            page.wait_for_url(f"{base}/login?next=%2F", timeout=15_000)
            assert page.locator("#sign-in").count() == 1
    finally:
        server.close()
    logins = [(e["actor"], e["details"]["via"]) for e in _audit(db, "auth.login")]
    assert logins == [("lou@example.org", "dashboard"), ("cal@example.org", "dashboard")]
    assert [e["actor"] for e in _audit(db, "auth.logout")] == ["lou@example.org"]
    assert [e["details"]["reason"] for e in _audit(db, "auth.login_failed")] == ["wrong_password"]
