"""Receipt links against the real database: the request sweep, GET changes nothing, every
unusable token looks the same, the form nonce, rate limiting, the late-receipt alert."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from case_link import links, queries, receipts
from case_link.pages import ClientRateLimiter
from core.clock import FixedClock
from core.db import Row
from core.http import create_app
from core.settings import Settings
from tests.factories import T0
from tests.physician_fixtures import (
    PHYSICIAN_MOBILE,
    delivered_shipment,
    path_of,
    sent_links,
    token_of,
)

pytestmark = pytest.mark.storage

DELIVERED = T0 + timedelta(days=2)
NONCE = re.compile(r'name=nonce value="([^"]+)"')


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(DELIVERED + timedelta(minutes=5))


@pytest.fixture
def client(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], clock: FixedClock
) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"support_contact": "+49 69 1234 5678"}), pool)
    app.state.clock = clock
    with TestClient(app) as the_client:
        yield the_client


@pytest.fixture
def requested(db: psycopg.Connection[Row], settings: Settings, clock: FixedClock) -> int:
    shipment_id, _ = delivered_shipment(db, DELIVERED)
    assert receipts.request_receipts(db, settings, clock.now()) == [shipment_id]
    return shipment_id


def _form(nonce: str, **changes: str) -> dict[str, str]:
    local = DELIVERED.strftime("%Y-%m-%dT%H:%M")
    form = {
        "nonce": nonce,
        "received_at": local,
        "received_by": "Nurse Jonas Keller",
        "package_intact": "yes",
        "indicator_status": "ok",
        "storage_confirmed": "yes",
        "stored_at": local,
        "signer_name": "Dr. Anna Weber",
        "signature_agree": "yes",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != ""}


def _nonce(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = NONCE.search(page.text)
    assert match is not None
    return match.group(1)


def test_delivery_queues_one_sms_without_patient_data(
    db: psycopg.Connection[Row], settings: Settings, clock: FixedClock, requested: int
) -> None:
    [url] = sent_links(db, requested, "receipt")
    assert url.startswith(f"{settings.public_url}/r/")
    notification = db.execute(
        "SELECT channel, recipient, body, alert_id FROM notifications"
    ).fetchone()
    assert notification is not None
    assert notification["channel"] == "outbox"  # no Twilio configured
    assert notification["recipient"] == PHYSICIAN_MOBILE
    assert notification["alert_id"] is None
    assert "SHP-001" in notification["body"] and "NPP-7001" not in notification["body"]
    # The token itself is nowhere in the database, only its keyed hash.
    token = token_of(url)
    stored = db.execute("SELECT token_hash FROM physician_links").fetchone()
    assert stored is not None
    assert bytes(stored["token_hash"]) == links.token_hash(
        links.link_key(settings), "receipt", token
    )
    assert token.encode() not in bytes(stored["token_hash"])
    # A second sweep finds nothing new: one request per delivery.
    assert receipts.request_receipts(db, settings, clock.now()) == []
    status = queries.receipt_status(db, requested)
    assert status is not None and status["confirm_by"] == DELIVERED + timedelta(hours=24)


def test_get_shows_the_shipment_and_changes_nothing(
    db: psycopg.Connection[Row], client: TestClient, requested: int
) -> None:
    [url] = sent_links(db, requested, "receipt")
    audit_before = db.execute("SELECT count(*) AS n FROM audit_log").fetchone()
    for _ in range(3):  # a link scanner, a preview, the physician
        page = client.get(path_of(url))
        assert page.status_code == 200
    text = page.text
    assert "SHP-001" in text and "Adalimumab" in text and "2–8 °C" in text
    assert "5.4 °C" in text and "1 temperature excursion" in text
    # Self-contained: no scripts, no external styles or images.
    assert "<script" not in text and "<link" not in text and "src=" not in text
    assert page.headers["cache-control"] == "no-store"
    link = db.execute("SELECT used_at FROM physician_links").fetchone()
    assert link is not None and link["used_at"] is None
    assert db.execute("SELECT count(*) AS n FROM receipt_confirmations").fetchone() == {"n": 0}
    assert db.execute("SELECT count(*) AS n FROM audit_log").fetchone() == audit_before


def test_post_needs_the_form_nonce_of_a_rendered_page(
    db: psycopg.Connection[Row], client: TestClient, requested: int
) -> None:
    [url] = sent_links(db, requested, "receipt")
    path = path_of(url)
    for nonce in ("", "1700000000.deadbeef", _nonce(client, path)[:-2] + "00"):
        answer = client.post(path, data=_form(nonce))
        assert answer.status_code == 422
    assert db.execute("SELECT count(*) AS n FROM receipt_confirmations").fetchone() == {"n": 0}


def test_bad_fields_are_named_and_nothing_is_stored(
    db: psycopg.Connection[Row], client: TestClient, requested: int
) -> None:
    [url] = sent_links(db, requested, "receipt")
    path = path_of(url)
    answer = client.post(
        path,
        data=_form(
            _nonce(client, path),
            signer_name="",
            package_intact="no",
            received_at="2099-01-01T10:00",
        ),
    )
    assert answer.status_code == 422
    for field in ("signer_name", "package_note", "received_at"):
        assert f'id="err-{field}"' in answer.text
    assert "Nurse Jonas Keller" in answer.text  # what was typed is kept
    link = db.execute("SELECT used_at FROM physician_links").fetchone()
    assert link is not None and link["used_at"] is None


def test_expired_used_forged_and_guessed_tokens_get_the_same_page(
    db: psycopg.Connection[Row],
    client: TestClient,
    settings: Settings,
    clock: FixedClock,
    requested: int,
) -> None:
    [url] = sent_links(db, requested, "receipt")
    path = path_of(url)
    assert client.post(path, data=_form(_nonce(client, path))).status_code == 200
    # An expired one: another delivered shipment asked long ago.
    other, _ = delivered_shipment(db, DELIVERED, ref="SHP-002", case_ref="NPP-7002")
    receipts.request_receipts(db, settings, clock.now())
    [expired] = sent_links(db, other, "receipt")
    db.execute(
        "UPDATE physician_links SET created_at = created_at - interval '8 days', "
        "expires_at = %s WHERE shipment_id = %s",
        (clock.now() - timedelta(seconds=1), other),
    )
    token = token_of(url)
    candidates = {
        "used": path,
        "expired": path_of(expired),
        "forged": "/r/" + token[:-1] + ("A" if token[-1] != "A" else "B"),
        "guessed": "/r/" + "x" * 24,
        "malformed": "/r/%3Cscript%3E",
        "wrong purpose": "/f/" + token,
    }
    answers = {kind: client.get(p) for kind, p in candidates.items()}
    bodies = {answer.text for answer in answers.values()}
    assert len(bodies) == 1, "every unusable link must look the same"
    assert {answer.status_code for answer in answers.values()} == {404}
    body = bodies.pop()
    assert "no longer valid" in body and "+49 69 1234 5678" in body
    assert "SHP" not in body
    # Posting to a used link stores nothing more.
    again = client.post(path, data=_form("x"))
    assert again.status_code == 404 and again.text == body
    assert db.execute("SELECT count(*) AS n FROM receipt_confirmations").fetchone() == {"n": 1}


def test_requests_are_rate_limited_per_client(
    db: psycopg.Connection[Row], client: TestClient, requested: int
) -> None:
    app = client.app
    app.state.physician_page_limiter = ClientRateLimiter(rate_per_s=0.001, burst=3)  # type: ignore[attr-defined]
    [url] = sent_links(db, requested, "receipt")
    statuses = [client.get("/r/" + "y" * 24).status_code for _ in range(3)]
    assert statuses == [404, 404, 404]
    assert client.get(path_of(url)).status_code == 429  # even a valid link, for this client
    assert client.post(path_of(url), data={}).status_code == 429


def test_rate_limiter_refills_and_keeps_clients_apart() -> None:
    limiter = ClientRateLimiter(rate_per_s=1.0, burst=2)
    assert [limiter.allow("a", now=0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("b", now=0.0)
    assert limiter.allow("a", now=1.0)
    assert not limiter.allow("a", now=1.0)


def test_unconfirmed_receipt_alerts_logistics_and_confirmation_resolves_it(
    db: psycopg.Connection[Row],
    client: TestClient,
    settings: Settings,
    clock: FixedClock,
    requested: int,
) -> None:
    # 24 h after delivery (the default), not before.
    assert receipts.escalate_unconfirmed(db, DELIVERED + timedelta(hours=23)) == []
    late = DELIVERED + timedelta(hours=24, minutes=1)
    assert receipts.escalate_unconfirmed(db, late) == [requested]
    assert receipts.escalate_unconfirmed(db, late) == []  # once
    alert = db.execute(
        "SELECT alert_id, state, severity FROM alerts WHERE rule_id = 'receipt-unconfirmed'"
    ).fetchone()
    assert alert is not None and (alert["state"], alert["severity"]) == ("triggered", "medium")

    clock.advance(timedelta(hours=30))
    [url] = sent_links(db, requested, "receipt")
    answer = client.post(path_of(url), data=_form(_nonce(client, path_of(url))))
    assert answer.status_code == 200, answer.text
    resolved = db.execute(
        "SELECT state, resolved_by FROM alerts WHERE alert_id = %s", (alert["alert_id"],)
    ).fetchone()
    assert resolved is not None and resolved["state"] == "resolved"
    assert resolved["resolved_by"].startswith("physician:")


def test_a_reported_problem_raises_a_high_alert(
    db: psycopg.Connection[Row], client: TestClient, requested: int
) -> None:
    [url] = sent_links(db, requested, "receipt")
    path = path_of(url)
    answer = client.post(
        path,
        data=_form(
            _nonce(client, path),
            package_intact="no",
            package_note="outer box crushed",
            indicator_status="alarm",
            indicator_note="red light",
        ),
    )
    assert answer.status_code == 200, answer.text
    alert = db.execute(
        "SELECT severity, summary FROM alerts WHERE rule_id = 'receipt-issue'"
    ).fetchone()
    assert alert is not None and alert["severity"] == "high"
    assert "package not intact" in alert["summary"]


def test_a_failing_row_is_retried_and_does_not_hold_back_the_others(
    db: psycopg.Connection[Row], settings: Settings, clock: FixedClock
) -> None:
    good, _ = delivered_shipment(db, DELIVERED)
    bad, _ = delivered_shipment(db, DELIVERED, ref="SHP-002", case_ref="NPP-7002")
    # A database failure for one shipment's link, injected in the real database.
    db.execute(
        f"""
        CREATE FUNCTION refuse_link() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.shipment_id = {int(bad)} THEN RAISE EXCEPTION 'injected failure'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_link BEFORE INSERT ON physician_links
            FOR EACH ROW EXECUTE FUNCTION refuse_link();
        """
    )
    assert receipts.request_receipts(db, settings, clock.now()) == [good]
    assert queries.receipt_status(db, bad) is None
    db.execute("DROP TRIGGER refuse_link ON physician_links")
    assert receipts.request_receipts(db, settings, clock.now()) == [bad]
    assert len(sent_links(db, bad, "receipt")) == 1
