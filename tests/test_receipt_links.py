"""Receipt links against the real database: the request sweep, GET changes nothing, every
unusable token looks the same, the form nonce, rate limiting, the late-receipt alert."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from case_link import links, queries, receipts
from case_link.forms import DELIVERY_ALLOWANCE, FormError
from case_link.pages import ClientRateLimiter
from core.clock import FixedClock
from core.db import Row
from core.http import create_app
from core.settings import Settings
from dashboard.formatting import both_times
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


def _post_receipt(
    db: psycopg.Connection[Row], client: TestClient, shipment_id: int, **changes: str
) -> str:
    """Post the receipt form with ``changes``; the page must refuse it (422) and store
    nothing. Returns the page."""
    [url] = sent_links(db, shipment_id, "receipt")
    path = path_of(url)
    answer = client.post(path, data=_form(_nonce(client, path), **changes))
    assert answer.status_code == 422, (changes, answer.text)
    assert db.execute("SELECT count(*) AS n FROM receipt_confirmations").fetchone() == {"n": 0}
    text: str = answer.text
    return text


@pytest.mark.parametrize("tz", ["America/Los_Angeles", "Pacific/Kiritimati", "UTC"])
def test_receipt_times_are_local_and_within_the_delivery(
    db: psycopg.Connection[Row], client: TestClient, requested: int, tz: str
) -> None:
    client.app.state.physician_page_limiter = ClientRateLimiter(burst=1000)  # type: ignore[attr-defined]
    db.execute("UPDATE shipments SET destination_tz = %s WHERE shipment_id = %s", (tz, requested))

    def local(at: datetime) -> str:
        return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")

    good = local(DELIVERED)
    for bad in (
        "0001-01-01T00:00+00:00",  # an offset: the field is the destination's local time
        "0001-01-01T00:00+14:00",
        "2026-11-25T10:00Z",
        "0001-01-01T00:00",  # no UTC time exists east of UTC; far too early everywhere
        "9999-12-31T23:59",
        local(DELIVERED - timedelta(days=3)),  # well before the delivery
        local(DELIVERED + timedelta(hours=1)),  # in the future
    ):
        for field in ("received_at", "stored_at"):
            text = _post_receipt(
                db, client, requested, **{"received_at": good, "stored_at": good, field: bad}
            )
            assert f'id="err-{field}"' in text, (field, bad)
    # Storage before receipt is refused beside the storage field.
    text = _post_receipt(
        db,
        client,
        requested,
        received_at=local(DELIVERED + timedelta(minutes=2)),
        stored_at=good,
    )
    assert 'id="err-stored_at"' in text and 'id="err-received_at"' not in text


def test_receipt_time_may_be_a_little_before_the_recorded_delivery(
    db: psycopg.Connection[Row], client: TestClient, settings: Settings, requested: int
) -> None:
    shipment = db.execute(queries.SHIPMENT_FOR_PAGE, (requested,)).fetchone()
    assert shipment is not None and shipment["destination_tz"] == "UTC"

    def parse(received: datetime) -> receipts.ReceiptForm:
        local = received.strftime("%Y-%m-%dT%H:%M")
        values = {k: [v] for k, v in _form("x", received_at=local, stored_at=local).items()}
        now = DELIVERED + timedelta(hours=1)
        return receipts.parse_receipt_form(values, tz="UTC", now=now, delivered_at=DELIVERED)

    early = DELIVERED - DELIVERY_ALLOWANCE
    assert parse(early).received_at == early
    with pytest.raises(FormError) as refused:
        parse(early - timedelta(minutes=1))
    assert set(refused.value.problems) == {"received_at", "stored_at"}
    assert "must not be before" in refused.value.problems["received_at"]
    # Accepted through the page, and the staff case panel can show what was stored.
    [url] = sent_links(db, requested, "receipt")
    path = path_of(url)
    answer = client.post(
        path, data=_form(_nonce(client, path), received_at=early.strftime("%Y-%m-%dT%H:%M"))
    )
    assert answer.status_code == 200, answer.text
    stored = db.execute("SELECT received_at, stored_at FROM receipt_confirmations").fetchone()
    assert stored is not None and stored["received_at"] == early
    assert both_times(stored["received_at"], "America/Los_Angeles")


def test_control_characters_are_refused_by_field_but_line_breaks_kept(
    db: psycopg.Connection[Row], client: TestClient, requested: int
) -> None:
    text = _post_receipt(
        db,
        client,
        requested,
        received_by="Nurse\x00Keller",
        signer_name="Dr.\x1bWeber",
        package_intact="no",
        package_note="box\x00crushed",
    )
    for field in ("received_by", "signer_name", "package_note"):
        assert f'id="err-{field}"' in text
    # A line break in a one-line field is refused too.
    text = _post_receipt(db, client, requested, received_by="Nurse\nKeller")
    assert 'id="err-received_by"' in text
    [url] = sent_links(db, requested, "receipt")
    path = path_of(url)
    note = "outer box crushed\r\ninner box\tdry"
    answer = client.post(
        path, data=_form(_nonce(client, path), package_intact="no", package_note=note)
    )
    assert answer.status_code == 200, answer.text
    stored = db.execute("SELECT package_note FROM receipt_confirmations").fetchone()
    assert stored == {"package_note": note}


def test_confirmation_locks_the_request_before_spending_the_link(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    settings: Settings,
    clock: FixedClock,
    requested: int,
) -> None:
    """Same lock order as resend_receipt_link (request, then link): no deadlock."""
    [url] = sent_links(db, requested, "receipt")
    link = links.find_valid_link(
        db, links.link_key(settings), "receipt", token_of(url), clock.now()
    )
    assert link is not None
    shipment = db.execute(queries.SHIPMENT_FOR_PAGE, (requested,)).fetchone()
    assert shipment is not None
    values = {k: [v] for k, v in _form("x").items()}
    form = receipts.parse_receipt_form(values, tz="UTC", now=clock.now(), delivered_at=DELIVERED)
    results: list[object] = []

    def confirm() -> None:
        with pool.connection() as conn:
            results.append(
                receipts.confirm_receipt(conn, settings, link, shipment, form, clock.now(), None)
            )

    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as resend:
        # A resend holds the request row (its first lock) ...
        resend.execute(
            "SELECT 1 FROM receipt_requests WHERE shipment_id = %s FOR UPDATE", (requested,)
        )
        worker = threading.Thread(target=confirm)
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                waiting = db.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ).fetchone()
                if waiting is not None and waiting["n"] == 1:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the confirmation never waited for the request row")
            # ... so the waiting confirmation must not hold the link the resend needs next.
            db.execute(
                "SELECT 1 FROM physician_links WHERE link_id = %s FOR UPDATE NOWAIT",
                (link.link_id,),
            )
        finally:
            resend.rollback()
            worker.join(timeout=10)
    assert len(results) == 1 and isinstance(results[0], receipts.ConfirmedReceipt)


def test_a_full_rate_limiter_forgets_its_oldest_clients_not_everyone() -> None:
    limiter = ClientRateLimiter(rate_per_s=0.0, burst=1, max_clients=3)
    assert limiter.allow("busy", now=0.0)
    assert not limiter.allow("busy", now=1.0)
    assert limiter.allow("old", now=2.0)
    assert limiter.allow("new-1", now=3.0)
    assert not limiter.allow("busy", now=4.0)  # seen recently: kept
    for i in range(2, 6):  # rotating addresses push out the oldest entries only
        assert limiter.allow(f"new-{i}", now=4.0 + i)
        assert not limiter.allow("busy", now=4.5 + i)
    assert len(limiter._buckets) == 3
    assert limiter.allow("old", now=20.0)  # forgotten: a fresh bucket
