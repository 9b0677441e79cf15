"""End to end in a real browser: delivery → SMS through the real twilio client (to the fake
Twilio server) → the physician opens the link in headless Chromium, fills and signs the
form → the signed record, its SHA-256, the audit entry and the scheduled follow-up."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from pydantic import SecretStr

from alerts.service import deliver_due
from alerts.twilio_channels import twilio_channels
from case_link import queries, receipts
from case_link.forms import record_digest
from core.audit import verify_chain
from core.clock import SystemClock
from core.db import Row
from core.embedded import free_port
from core.runner import serve_api
from core.settings import Settings
from tests.fake_twilio import FakeTwilio
from tests.physician_fixtures import LINK, PHYSICIAN_MOBILE, delivered_shipment

pytestmark = pytest.mark.storage

SID = "AC" + "1" * 32
TOKEN = "test-auth-token-receipt-0123456789"
FROM = "+15005550006"


def test_physician_confirms_receipt_in_chromium(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], db: psycopg.Connection[Row]
) -> None:
    from tests.browser import chromium_page, save_screenshot

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tw = settings.model_copy(
        update={
            "twilio_account_sid": SID,
            "twilio_auth_token": SecretStr(TOKEN),
            "twilio_from_number": FROM,
            "public_url": base,
            "secret_key": SecretStr("k" * 40),
        }
    )
    now = datetime.now(UTC)
    shipment_id, case_id = delivered_shipment(db, now - timedelta(hours=1))
    assert receipts.request_receipts(db, tw, now) == [shipment_id]

    with FakeTwilio(SID, TOKEN) as fake:
        channels = twilio_channels(tw, fake.http_client())
        assert deliver_due(pool, channels, SystemClock()) == 1
        [sms] = fake.created
    assert sms["to"] == PHYSICIAN_MOBILE and sms["from"] == FROM
    assert "NPP-7001" not in sms["body"]  # no case reference (patient) in the SMS
    match = LINK.search(sms["body"])
    assert match is not None and match.group(0).startswith(f"{base}/r/")
    url = match.group(0)

    server = serve_api(tw, pool, "127.0.0.1", port)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    local = (now - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    try:
        with chromium_page() as page:
            page.goto(url)
            assert "SHP-001" in page.content()
            assert "Adalimumab" in page.content()
            page.fill("#received_at", local)
            page.fill("#received_by", "Nurse Jonas Keller")
            page.check("input[name=package_intact][value=yes]")
            page.check("input[name=indicator_status][value=ok]")
            page.check("input[name=storage_confirmed]")
            page.fill("#stored_at", local)
            page.fill("#signer_name", "Dr. Anna Weber")
            page.check("input[name=signature_agree]")
            page.click("button[type=submit]")
            page.wait_for_selector("#record-sha256")
            shown_digest = page.locator("#record-sha256").inner_text().strip()
            save_screenshot(page, "receipt-signed")
            # The link is spent: opening it again shows only the plain page.
            page.goto(url)
            assert "no longer valid" in page.content()
    finally:
        server.should_exit = True

    row = db.execute(
        "SELECT received_by, package_intact, indicator_status, storage_confirmed, stored_at, "
        "signer_name, signature_meaning, signed_at, record, record_sha256 "
        "FROM receipt_confirmations WHERE shipment_id = %s",
        (shipment_id,),
    ).fetchone()
    assert row is not None
    assert row["received_by"] == "Nurse Jonas Keller" and row["signer_name"] == "Dr. Anna Weber"
    assert row["package_intact"] and row["indicator_status"] == "ok" and row["storage_confirmed"]
    assert row["stored_at"] == datetime.fromisoformat(local).replace(tzinfo=UTC)
    # The signature is bound to the record: its hash is the hash of exactly what is stored.
    assert row["record_sha256"] == shown_digest == record_digest(row["record"])
    signature = row["record"]["signature"]
    assert signature["printed_name"] == "Dr. Anna Weber"
    assert signature["meaning"] == row["signature_meaning"] == receipts.RECEIPT_MEANING
    assert row["record"]["received_by"] == "Nurse Jonas Keller"

    audit = db.execute(
        "SELECT actor, details FROM audit_log WHERE action = 'receipt.confirmed'"
    ).fetchone()
    assert audit is not None and audit["actor"].startswith("physician:")
    assert audit["details"]["record_sha256"] == shown_digest
    assert audit["details"]["printed_name"] == "Dr. Anna Weber"
    assert verify_chain(db) is None

    followup = queries.followup_status(db, shipment_id)
    assert followup is not None and followup["state"] == "scheduled"
    assert followup["due_at"] == row["signed_at"] + timedelta(hours=48)
    # The case moves on from shipping to delivery & follow-up, by the workflow's rules.
    moved = db.execute(
        "SELECT c.step, t.from_step, t.actor FROM cases c JOIN case_transitions t USING (case_id) "
        "WHERE c.case_id = %s ORDER BY t.transition_id DESC LIMIT 1",
        (case_id,),
    ).fetchone()
    assert moved == {"step": "delivery_follow_up", "from_step": "shipping", "actor": audit["actor"]}
