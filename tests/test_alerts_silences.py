"""Silences hold pages of their scope until they end; a critical temperature alert pages
regardless. The silence and on-call APIs: roles, validation, audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from alerts.paging import sweep_escalations
from alerts.silences import create_silence
from core.clock import FixedClock
from core.db import Row
from core.settings import Settings
from core.severity import Severity
from tests.factories import T0, shipment_with_logger
from tests.staff import api_client, bearer, create_staff
from tests.test_alerts_escalation import alarm, configure, oncall_doc, pages

pytestmark = pytest.mark.storage

OUTBOX = frozenset({"outbox"})


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def client(
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Row]],
    db: psycopg.Connection[Row],
    clock: FixedClock,
) -> Iterator[TestClient]:
    create_staff(db)
    with api_client(settings, pool, clock) as the_client:
        yield the_client


def test_silence_holds_pages_until_it_ends(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]], clock: FixedClock
) -> None:
    configure(db)
    shipment_id = shipment_with_logger(db)
    create_silence(
        db,
        shipment_id=shipment_id,
        rule_id="logger-offline",
        reason="carrier reports the truck in a dead zone until 10:00",
        ends_at=T0 + timedelta(hours=2),
        actor="logistics@example.org",
        now=clock.now(),
    )
    alarm(db, shipment_id, clock, "logger-offline", Severity.HIGH)
    assert sweep_escalations(pool, OUTBOX, clock) == 1
    assert pages(db) == []
    clock.advance(timedelta(hours=2) - timedelta(microseconds=1))
    assert sweep_escalations(pool, OUTBOX, clock) == 0
    clock.advance(timedelta(microseconds=1))
    assert sweep_escalations(pool, OUTBOX, clock) == 1
    # 10:00: the daily handoff at 09:00 made Ben the one on call when the silence ended.
    assert pages(db) == [("ben", "outbox", 0, 0)]


def test_critical_temperature_alert_pages_through_a_silence(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]], clock: FixedClock
) -> None:
    configure(db)
    shipment_id = shipment_with_logger(db)
    create_silence(
        db,
        shipment_id=shipment_id,
        rule_id=None,
        reason="shipment in QA quarantine",
        ends_at=T0 + timedelta(days=1),
        actor="qa@example.org",
        now=clock.now(),
    )
    alarm(db, shipment_id, clock, "warm-cumulative", Severity.MEDIUM)
    sweep_escalations(pool, OUTBOX, clock)
    assert pages(db) == []
    clock.advance(timedelta(minutes=5))  # outside the grouping window
    alarm(db, shipment_id, clock, "freeze", Severity.CRITICAL)
    sweep_escalations(pool, OUTBOX, clock)
    assert pages(db) == [("ana", "outbox", 0, 0)]
    body = db.execute("SELECT body FROM notifications").fetchone()
    assert body is not None and "rule freeze" in body["body"]


def test_silence_api_roles_validation_expiry_and_audit(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    client: TestClient,
    clock: FixedClock,
) -> None:
    configure(db)
    shipment_id = shipment_with_logger(db)
    body = {
        "shipment_id": shipment_id,
        "reason": "customs hold, broker informed",
        "ends_at": (T0 + timedelta(hours=4)).isoformat(),
    }
    assert client.post("/api/v1/alerts/silences", json=body).status_code == 401
    denied = client.post("/api/v1/alerts/silences", json=body, headers=bearer(client, "clinical"))
    assert denied.status_code == 403
    logistics = bearer(client, "logistics")
    past = {**body, "ends_at": (T0 - timedelta(minutes=1)).isoformat()}
    refused = client.post("/api/v1/alerts/silences", json=past, headers=logistics)
    assert refused.status_code == 422 and "ends_at" in refused.text
    unscoped = {"reason": "everything", "ends_at": body["ends_at"]}
    refused = client.post("/api/v1/alerts/silences", json=unscoped, headers=logistics)
    assert refused.status_code == 422 and "scope" in refused.text
    created = client.post("/api/v1/alerts/silences", json=body, headers=logistics)
    assert created.status_code == 201, created.text
    silence_id = created.json()["silence_id"]
    listed = client.get("/api/v1/alerts/silences", headers=bearer(client, "clinical")).json()
    assert [s["silence_id"] for s in listed["silences"]] == [silence_id]

    alarm(db, shipment_id, clock, "high-30m", Severity.HIGH)
    sweep_escalations(pool, OUTBOX, clock)
    assert pages(db) == []
    clock.advance(timedelta(minutes=10))
    expired = client.post(f"/api/v1/alerts/silences/{silence_id}/expire", headers=logistics)
    assert expired.json() == {"silence_id": silence_id, "changed": True}
    again = client.post(f"/api/v1/alerts/silences/{silence_id}/expire", headers=logistics)
    assert again.json()["changed"] is False
    missing = client.post("/api/v1/alerts/silences/999999/expire", headers=logistics)
    assert missing.status_code == 404
    assert sweep_escalations(pool, OUTBOX, clock) == 1  # held pages go out on expiry
    assert pages(db) == [("ana", "outbox", 0, 0)]
    actions = db.execute(
        "SELECT action, actor FROM audit_log WHERE entity_type = 'silence' ORDER BY audit_id"
    ).fetchall()
    assert [(a["action"], a["actor"]) for a in actions] == [
        ("auth.permission_denied", "clinical@example.org"),
        ("silence.created", "logistics@example.org"),
        ("silence.expired", "logistics@example.org"),
    ]


def test_oncall_api_reads_for_staff_and_writes_for_admins(
    db: psycopg.Connection[Row], client: TestClient, clock: FixedClock
) -> None:
    logistics, admin = bearer(client, "logistics"), bearer(client, "admin")
    document = oncall_doc()
    denied = client.put("/api/v1/oncall/config", json=document, headers=logistics)
    assert denied.status_code == 403
    put = client.put("/api/v1/oncall/config", json=document, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["changed"] is True
    assert (
        client.put("/api/v1/oncall/config", json=document, headers=admin).json()["changed"] is False
    )
    bad = {**document, "routing": [{"policy": "nope"}]}
    refused = client.put("/api/v1/oncall/config", json=bad, headers=admin)
    assert refused.status_code == 422 and "routing.0.policy: unknown policy 'nope'" in refused.text
    config = client.get("/api/v1/oncall/config", headers=logistics).json()
    assert [p["id"] for p in config["people"]] == ["ana", "ben", "lead"]
    now = client.get("/api/v1/oncall/now", headers=logistics).json()
    assert now["schedules"] == [
        {
            "schedule": "ops",
            "name": "Ops",
            "current": {"id": "ana", "name": "Ana", "phone": "+15555550101"},
            "next_handoff_at": "2026-03-02T09:00:00Z",
            "next": {"id": "ben", "name": "Ben", "phone": "+15555550102"},
        }
    ]
    override = {
        "person": "lead",
        "start": "2026-03-02T08:30:00Z",
        "end": "2026-03-02T12:00:00Z",
    }
    path = "/api/v1/oncall/schedules/ops/overrides"
    assert client.post(path, json=override, headers=logistics).status_code == 403
    assert client.post(path, json=override, headers=admin).status_code == 201
    clock.advance(timedelta(minutes=45))
    now = client.get("/api/v1/oncall/now", headers=logistics).json()
    assert now["schedules"][0]["current"]["id"] == "lead"
    assert now["schedules"][0]["next_handoff_at"] == "2026-03-02T12:00:00Z"
    unknown = client.post(path, json={**override, "person": "ghost"}, headers=admin)
    assert unknown.status_code == 422
    imports = db.execute(
        "SELECT actor FROM audit_log WHERE action = 'oncall.imported' ORDER BY audit_id"
    ).fetchall()
    assert [i["actor"] for i in imports] == ["admin@example.org"] * 3


def test_shipment_customer_routes_and_distributor_is_set_through_the_api(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    client: TestClient,
    clock: FixedClock,
) -> None:
    document = oncall_doc()
    document["policies"].append(
        {
            "id": "acme",
            "name": "Acme key account",
            "steps": [{"notify": [{"person": "lead"}], "via": ["sms"], "wait_min": 5}],
        }
    )
    document["routing"].insert(0, {"policy": "acme", "customer": "acme"})
    put = client.put("/api/v1/oncall/config", json=document, headers=bearer(client, "admin"))
    assert put.status_code == 200, put.text
    shipment_id = shipment_with_logger(db)
    path = f"/api/v1/oncall/shipments/{shipment_id}"
    body = {"customer": "acme", "distributor_name": "EuroPharm", "distributor_phone": "+4969123456"}
    assert client.put(path, json=body, headers=bearer(client, "clinical")).status_code == 403
    logistics = bearer(client, "logistics")
    bad = client.put(path, json={**body, "distributor_phone": "069 123"}, headers=logistics)
    assert bad.status_code == 422 and "distributor_phone" in bad.text
    missing = client.put("/api/v1/oncall/shipments/999999", json=body, headers=logistics)
    assert missing.status_code == 404
    assert client.put(path, json=body, headers=logistics).status_code == 200
    stored = db.execute(
        "SELECT customer, distributor_phone FROM shipments WHERE shipment_id = %s", (shipment_id,)
    ).fetchone()
    assert stored == {"customer": "acme", "distributor_phone": "+4969123456"}
    alarm(db, shipment_id, clock, "high-30m", Severity.HIGH)
    sweep_escalations(pool, OUTBOX, clock)
    assert pages(db) == [("lead", "outbox", 0, 0)]  # the customer's route beats the default
