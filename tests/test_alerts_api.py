"""The alerts API contract and staff login: 401/403/404/409/200, CSRF and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from alerts.service import raise_alert
from core.accounts import SESSION_COOKIE
from core.clock import FixedClock
from core.db import Row
from core.http import create_app
from core.settings import Settings
from core.severity import Severity
from tests.factories import T0, shipment_with_logger
from tests.staff import PASSWORD, api_client, bearer, create_staff

pytestmark = pytest.mark.storage

CSRF = {"X-Requested-With": "coldchain"}


@pytest.fixture
def client(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> Iterator[TestClient]:
    with api_client(settings, pool, FixedClock(T0 + timedelta(days=1))) as the_client:
        yield the_client


@pytest.fixture
def alerts(db: psycopg.Connection[Row]) -> dict[str, int]:
    """Two open alerts on one shipment, the freeze one newer; and one user per role."""
    shipment_id = shipment_with_logger(db)
    ids = {}
    for minutes, rule, severity in (
        (30, "high-30m", Severity.HIGH),
        (90, "freeze", Severity.CRITICAL),
    ):
        change = raise_alert(
            db,
            shipment_id=shipment_id,
            rule_id=rule,
            severity=severity,
            summary=f"{rule} on SHP-001",
            message=f"SHP-001 {rule}",
            condition_at=T0,
            now=T0 + timedelta(minutes=minutes),
        )
        ids[rule] = change.alert_id
    create_staff(db)
    return ids


def _alert(db: psycopg.Connection[Row], alert_id: int) -> Row:
    row = db.execute(
        "SELECT state, acknowledged_by, resolved_by, resolution_note FROM alerts "
        "WHERE alert_id = %s",
        (alert_id,),
    ).fetchone()
    assert row is not None
    return row


def _audit(db: psycopg.Connection[Row], action: str) -> list[Row]:
    return db.execute(
        "SELECT actor, entity_id, details FROM audit_log WHERE action = %s ORDER BY audit_id",
        (action,),
    ).fetchall()


def test_every_endpoint_needs_a_session(client: TestClient, alerts: dict[str, int]) -> None:
    alert_id = alerts["freeze"]
    for method, path in (
        ("GET", "/api/v1/alerts"),
        ("POST", f"/api/v1/alerts/{alert_id}/ack"),
        ("POST", f"/api/v1/alerts/{alert_id}/resolve"),
        ("POST", "/api/v1/auth/logout"),
    ):
        answer = client.request(method, path)
        assert answer.status_code == 401, (method, path)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == 401
    forged = client.get("/api/v1/alerts", headers={"Authorization": "Bearer not-a-session"})
    assert forged.status_code == 401


def test_list_is_newest_first_filters_by_state_and_is_open_to_every_role(
    client: TestClient, alerts: dict[str, int]
) -> None:
    headers = bearer(client, "clinical")
    listed = client.get("/api/v1/alerts", headers=headers)
    assert listed.status_code == 200
    rows = listed.json()["alerts"]
    assert [r["alert_id"] for r in rows] == [alerts["freeze"], alerts["high-30m"]]
    assert rows[0]["triggered_at"] == "2026-03-02T09:30:00Z"
    assert rows[0]["state"] == "triggered" and rows[0]["shipment_ref"] == "SHP-001"

    ack = client.post(f"/api/v1/alerts/{alerts['high-30m']}/ack", headers=bearer(client, "qa"))
    assert ack.status_code == 200
    acked = client.get("/api/v1/alerts", params={"state": "acknowledged"}, headers=headers)
    assert [r["alert_id"] for r in acked.json()["alerts"]] == [alerts["high-30m"]]
    assert (
        client.get("/api/v1/alerts", params={"state": "bogus"}, headers=headers).status_code == 422
    )


def test_acknowledge_and_resolve_record_the_user(
    client: TestClient, alerts: dict[str, int], db: psycopg.Connection[Row]
) -> None:
    headers = bearer(client, "logistics")
    alert_id = alerts["freeze"]
    ack = client.post(
        f"/api/v1/alerts/{alert_id}/ack", json={"note": "re-icing at FRA"}, headers=headers
    )
    assert ack.status_code == 200, ack.text
    assert ack.json() | {"cancelled_pages": None} == {
        "alert_id": alert_id,
        "state": "acknowledged",
        "changed": True,
        "at": "2026-03-03T08:00:00Z",
        "by": "logistics@example.org",
        "cancelled_pages": None,
    }
    assert _alert(db, alert_id)["acknowledged_by"] == "logistics@example.org"
    [entry] = _audit(db, "alert.acknowledged")
    assert entry["actor"] == "logistics@example.org" and entry["details"]["via"] == "api"
    [note] = _audit(db, "alert.acknowledgement_note")
    assert note["details"]["note"] == "re-icing at FRA" and note["entity_id"] == str(alert_id)

    again = client.post(f"/api/v1/alerts/{alert_id}/ack", headers=headers)
    assert again.status_code == 200 and again.json()["changed"] is False

    resolved = client.post(
        f"/api/v1/alerts/{alert_id}/resolve",
        json={"note": "QA released"},
        headers=bearer(client, "qa"),
    )
    assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
    row = _alert(db, alert_id)
    assert (row["resolved_by"], row["resolution_note"]) == ("qa@example.org", "QA released")


def test_clinical_role_is_refused_and_the_refusal_audited(
    client: TestClient, alerts: dict[str, int], db: psycopg.Connection[Row]
) -> None:
    headers = bearer(client, "clinical")
    alert_id = alerts["freeze"]
    for action in ("ack", "resolve"):
        answer = client.post(f"/api/v1/alerts/{alert_id}/{action}", headers=headers)
        assert answer.status_code == 403
        assert answer.headers["content-type"] == "application/problem+json"
        assert "clinical" in answer.json()["title"]
    assert _alert(db, alert_id)["state"] == "triggered"
    denials = _audit(db, "auth.permission_denied")
    assert [(d["actor"], d["entity_id"], d["details"]["permission"]) for d in denials] == [
        ("clinical@example.org", str(alert_id), "alert.acknowledge"),
        ("clinical@example.org", str(alert_id), "alert.resolve"),
    ]


def test_unknown_alert_is_404_and_acknowledging_a_resolved_one_is_409(
    client: TestClient, alerts: dict[str, int], db: psycopg.Connection[Row]
) -> None:
    headers = bearer(client, "admin")
    for action in ("ack", "resolve"):
        missing = client.post(f"/api/v1/alerts/999999/{action}", headers=headers)
        assert missing.status_code == 404 and "999999" in missing.json()["title"]
    alert_id = alerts["high-30m"]
    assert client.post(f"/api/v1/alerts/{alert_id}/resolve", headers=headers).status_code == 200
    conflict = client.post(f"/api/v1/alerts/{alert_id}/ack", headers=headers)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    assert _alert(db, alert_id)["acknowledged_by"] is None


def test_cookie_sessions_need_the_csrf_header_or_a_trusted_origin(
    client: TestClient, alerts: dict[str, int], db: psycopg.Connection[Row], settings: Settings
) -> None:
    login = client.post(
        "/api/v1/auth/login", json={"email": "qa@example.org", "password": PASSWORD}
    )
    assert login.status_code == 200
    cookie = login.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie and "Secure" not in cookie  # http:// in tests
    assert client.get("/api/v1/alerts").status_code == 200  # reading needs no CSRF proof

    freeze, high = alerts["freeze"], alerts["high-30m"]
    forged = client.post(f"/api/v1/alerts/{freeze}/ack")
    assert forged.status_code == 403 and "X-Requested-With" in forged.json()["title"]
    evil = client.post(f"/api/v1/alerts/{freeze}/ack", headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert _alert(db, freeze)["state"] == "triggered"

    assert client.post(f"/api/v1/alerts/{freeze}/ack", headers=CSRF).status_code == 200
    from_dashboard = client.post(
        f"/api/v1/alerts/{high}/ack", headers={"Origin": settings.dashboard_url}
    )
    assert from_dashboard.status_code == 200
    assert _alert(db, high)["acknowledged_by"] == "qa@example.org"


def test_secure_cookie_behind_https(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], alerts: dict[str, int]
) -> None:
    https = settings.model_copy(update={"public_url": "https://api.coldchain.example.org"})
    client = TestClient(create_app(https, pool), base_url="https://testserver")
    login = client.post(
        "/api/v1/auth/login", json={"email": "qa@example.org", "password": PASSWORD}
    )
    assert login.status_code == 200 and "Secure" in login.headers["set-cookie"]


def test_login_failures_logout_and_expiry(
    client: TestClient, alerts: dict[str, int], db: psycopg.Connection[Row]
) -> None:
    wrong = client.post("/api/v1/auth/login", json={"email": "qa@example.org", "password": "nope"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert wrong.headers["content-type"] == "application/problem+json"
    assert _audit(db, "auth.login_failed")[0]["details"]["via"] == "api"
    form = client.post(
        "/api/v1/auth/login",
        content=f'{{"email": "qa@example.org", "password": "{PASSWORD}"}}',
        headers={"Content-Type": "text/plain"},
    )
    assert form.status_code in (415, 422) and "set-cookie" not in form.headers

    headers = bearer(client, "qa")
    me = client.get("/api/v1/auth/me", headers=headers)
    assert me.json() == {"email": "qa@example.org", "display_name": "Qa", "role": "qa"}
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 200
    assert client.get("/api/v1/alerts", headers=headers).status_code == 401
    assert [e["details"]["via"] for e in _audit(db, "auth.logout")] == ["api"]

    clock: FixedClock = client.app.state.clock  # type: ignore[attr-defined]
    headers = bearer(client, "qa")
    clock.advance(timedelta(hours=11, minutes=59))
    assert client.get("/api/v1/alerts", headers=headers).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert client.get("/api/v1/alerts", headers=headers).status_code == 401


def test_confirming_an_excursion_is_for_qa_and_admin(
    client: TestClient, alerts: dict[str, int], db: psycopg.Connection[Row]
) -> None:
    alert_id = alerts["freeze"]
    for role in ("logistics", "clinical"):
        answer = client.post(
            f"/api/v1/alerts/{alert_id}/confirm-excursion", headers=bearer(client, role)
        )
        assert answer.status_code == 403
        assert answer.json()["title"] == f"the {role} role may not do excursion.confirm"
    for role in ("qa", "admin"):  # past the role check: the unknown alert is the refusal
        path = "/api/v1/alerts/999999/confirm-excursion"
        assert client.post(path, headers=bearer(client, role)).status_code == 404
    denials = _audit(db, "auth.permission_denied")
    assert [(d["actor"], d["entity_id"], d["details"]["permission"]) for d in denials] == [
        ("logistics@example.org", str(alert_id), "excursion.confirm"),
        ("clinical@example.org", str(alert_id), "excursion.confirm"),
    ]
