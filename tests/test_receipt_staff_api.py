"""Staff side of the receipt: the case's receipts and follow-ups, and re-sending a link."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from case_link import receipts
from core.clock import FixedClock
from core.db import Row
from core.settings import Settings
from tests.factories import T0
from tests.physician_fixtures import delivered_shipment, path_of, sent_links
from tests.staff import api_client, bearer, create_staff

pytestmark = pytest.mark.storage

DELIVERED = T0 + timedelta(days=2)
NOW = DELIVERED + timedelta(hours=30)


@pytest.fixture
def client(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> Iterator[TestClient]:
    with api_client(settings, pool, FixedClock(NOW)) as the_client:
        yield the_client


def test_staff_see_the_receipt_and_resend_a_link_that_replaces_the_old_one(
    db: psycopg.Connection[Row], settings: Settings, client: TestClient
) -> None:
    create_staff(db, ("qa", "logistics"))
    shipment_id, case_id = delivered_shipment(db, DELIVERED)
    base = f"/api/v1/cases/{case_id}/receipts"
    resend = f"{base}/{shipment_id}/resend"
    logistics = bearer(client, "logistics")
    # Not delivered to anyone yet: nothing to re-send.
    assert client.post(resend, headers=logistics).status_code == 409

    receipts.request_receipts(db, settings, DELIVERED + timedelta(minutes=1))
    [old] = sent_links(db, shipment_id, "receipt")
    view = client.get(base, headers=bearer(client, "qa"))
    assert view.status_code == 200
    [entry] = view.json()["shipments"]
    assert entry["shipment_ref"] == "SHP-001" and entry["followup"] is None
    assert entry["receipt"]["confirmed_at"] is None
    assert entry["receipt"]["confirm_by"] == "2026-03-05T08:00:00Z"

    assert client.post(resend, headers=bearer(client, "qa")).status_code == 403
    answer = client.post(resend, headers=logistics)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert "token" not in answer.text and "/r/" not in answer.text  # staff never see it
    links = sent_links(db, shipment_id, "receipt")
    assert len(links) == 2 and links[0] == old
    assert client.get(path_of(old)).status_code == 404  # the old link stopped working
    assert client.get(path_of(links[1])).status_code == 200
    revoked = db.execute(
        "SELECT link_id FROM physician_links WHERE revoked_at IS NOT NULL"
    ).fetchall()
    assert [r["link_id"] for r in revoked] == body["revoked_link_ids"]
    audit = db.execute(
        "SELECT actor FROM audit_log WHERE action = 'receipt.link_resent'"
    ).fetchone()
    assert audit == {"actor": "logistics@example.org"}
    assert client.get("/api/v1/cases/999999/receipts", headers=logistics).status_code == 404
