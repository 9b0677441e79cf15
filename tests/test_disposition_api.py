"""The QA disposition API: roles, CSRF, the release rules and the stored signature."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from core.accounts import StaffUser
from core.clock import FixedClock
from core.db import Row
from core.settings import Settings
from tests.disposition_fixtures import (
    NAMES,
    NOW,
    PASSWORD,
    audit_entries,
    delivered_shipment_with_alarm,
    staff,
)
from tests.staff import api_client, bearer

pytestmark = pytest.mark.storage


@pytest.fixture
def shipment(db: psycopg.Connection[Row]) -> int:
    return delivered_shipment_with_alarm(db)


@pytest.fixture
def users(db: psycopg.Connection[Row]) -> dict[str, StaffUser]:
    return staff(db)


# --- HTTP API -----------------------------------------------------------------------------


@pytest.fixture
def client(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> Iterator[TestClient]:
    with api_client(settings, pool, FixedClock(NOW)) as the_client:
        yield the_client


def test_api_assess_and_sign(
    client: TestClient, db: psycopg.Connection[Row], shipment: int, users: dict[str, StaffUser]
) -> None:
    base = f"/api/v1/shipments/{shipment}"
    assert client.get(f"{base}/assessment").status_code == 401
    clinical, qa, admin = (
        bearer(client, role, password=PASSWORD) for role in ("clinical", "qa", "admin")
    )
    view = client.get(f"{base}/assessment", headers=clinical)
    assert view.status_code == 200 and view.json()["quality_state"] == "delivered"
    assert client.get("/api/v1/shipments/999999/assessment", headers=qa).status_code == 404
    assert client.post(f"{base}/assessment", headers=admin).status_code == 403
    started = client.post(f"{base}/assessment", headers=qa)
    assert started.status_code == 201 and started.json()["evidence_source"] == "assessment"
    [alarm] = started.json()["alarms"]

    sign = {"decision": "released", "reason": "no impact", "password": PASSWORD}
    blocked = client.post(f"{base}/disposition", headers=qa, json=sign)
    assert blocked.status_code == 409 and "not assessed" in blocked.json()["title"]
    url = f"{base}/alarms/{alarm['alarm_id']}/assessment"
    bad = client.post(url, headers=qa, json={"impact": "fine", "note": "x"})
    assert bad.status_code == 422 and bad.json()["title"].startswith("impact:")
    assert (
        client.post(
            f"{base}/alarms/999999/assessment",
            headers=qa,
            json={"impact": "no_impact", "note": "x"},
        ).status_code
        == 404
    )
    note = {"impact": "no_impact", "note": "within stability data"}
    assert client.post(url, headers=clinical, json=note).status_code == 403
    assert client.post(url, headers=qa, json=note).status_code == 201

    assert client.post(f"{base}/disposition", headers=admin, json=sign).status_code == 403
    wrong = client.post(f"{base}/disposition", headers=qa, json=sign | {"password": "nope"})
    assert wrong.status_code == 403 and "password does not match" in wrong.json()["title"]
    done = client.post(f"{base}/disposition", headers=qa, json=sign)
    assert done.status_code == 201, done.text
    assert done.json()["meaning"] == "Approved for release"
    assert done.json()["printed_name"] == NAMES["qa"]
    stored = db.execute(
        "SELECT decision, signer_email, printed_name, meaning, reason FROM dispositions"
    ).fetchall()
    assert stored == [
        {
            "decision": "released",
            "signer_email": "qa@example.org",
            "printed_name": NAMES["qa"],
            "meaning": "Approved for release",
            "reason": "no impact",
        }
    ]
    final = client.get(f"{base}/assessment", headers=clinical).json()
    assert final["quality_state"] == "released" and final["alarms"][0]["impact"] == "no_impact"


def test_api_cookie_changes_need_the_csrf_rule(
    client: TestClient, shipment: int, users: dict[str, StaffUser]
) -> None:
    login = client.post(
        "/api/v1/auth/login", json={"email": "qa@example.org", "password": PASSWORD}
    )
    assert login.status_code == 200
    base = f"/api/v1/shipments/{shipment}"
    assert client.post(f"{base}/assessment").status_code == 403
    assert (
        client.post(f"{base}/assessment", headers={"X-Requested-With": "coldchain"}).status_code
        == 201
    )


def test_api_refusal_names_the_role_and_is_audited_once(
    client: TestClient, db: psycopg.Connection[Row], shipment: int, users: dict[str, StaffUser]
) -> None:
    base = f"/api/v1/shipments/{shipment}"
    logistics = bearer(client, "logistics", password=PASSWORD)
    started = client.post(f"{base}/assessment", headers=logistics)
    assert started.status_code == 403
    assert started.json()["title"] == "the logistics role may not do disposition.assess"
    sign = {"decision": "released", "reason": "no impact", "password": PASSWORD}
    signed = client.post(f"{base}/disposition", headers=logistics, json=sign)
    assert signed.json()["title"] == "the logistics role may not do disposition.sign"
    denied = audit_entries(db, "auth.permission_denied")
    assert [(d["actor"], d["entity_id"], d["details"]["permission"]) for d in denied] == [
        ("logistics@example.org", str(shipment), "disposition.assess"),
        ("logistics@example.org", str(shipment), "disposition.sign"),
    ]
    assert audit_entries(db, "disposition.assessment_started") == []
