"""Twilio SMS/voice pages, webhooks and the alert lifecycle, against the real database.

The only fake is Twilio itself: a local HTTP server (tests/fake_twilio.py) that the real
``twilio`` client talks to, and webhook requests signed with the real RequestValidator.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
import requests
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from alerts import service
from alerts.channels import Channel, ChannelError, OutboxChannel, default_channels
from alerts.models import AlertState, Notification
from alerts.ratelimit import TokenBucket
from alerts.service import (
    InvalidTransition,
    acknowledge,
    deliver_due,
    raise_alert,
    resolve,
)
from alerts.twilio_channels import (
    TwilioSmsChannel,
    TwilioVoiceChannel,
    channel_error,
    twilio_channels,
    twilio_client,
)
from core.audit import verify_chain
from core.clock import FixedClock
from core.db import Row
from core.http import create_app
from core.settings import Settings
from core.severity import Severity
from tests.factories import T0, shipment_with_logger
from tests.fake_twilio import FakeTwilio

pytestmark = pytest.mark.storage

SID = "AC" + "0" * 32
TOKEN = "test-auth-token-0123456789abcdef"
FROM = "+15005550006"
PHONE = "+15551230001"
OTHER_PHONE = "+15551230002"
PUBLIC = "https://coldchain.example"
CODE = re.compile(r"^[A-HJKMNP-Z2-9]{6}$")


@pytest.fixture
def tw_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "twilio_account_sid": SID,
            "twilio_auth_token": SecretStr(TOKEN),
            "twilio_from_number": FROM,
            "public_url": PUBLIC,
        }
    )


def _twilio_only() -> Settings:
    """Twilio settings for tests that need no database."""
    return Settings(
        twilio_account_sid=SID,
        twilio_auth_token=SecretStr(TOKEN),
        twilio_from_number=FROM,
        public_url=PUBLIC,
    )


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(SID, TOKEN) as server:
        yield server


class _FakeTime:
    """Monotonic time that only moves when the bucket sleeps."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def _channels(tw: Settings, fake: FakeTwilio, time: _FakeTime | None = None) -> dict[str, Channel]:
    time = time or _FakeTime()
    client = twilio_client(tw, fake.http_client())

    def bucket() -> TokenBucket:
        return TokenBucket(1.0, monotonic=time.monotonic, sleep=time.sleep)

    return {
        "outbox": OutboxChannel(),
        "sms": TwilioSmsChannel(client, FROM, PUBLIC, bucket()),
        "voice": TwilioVoiceChannel(client, FROM, PUBLIC, bucket()),
    }


def _alert(
    db: psycopg.Connection[Row],
    shipment_id: int,
    *,
    rule: str = "high-30m",
    channel: str = "sms",
    recipient: str = PHONE,
    severity: Severity = Severity.HIGH,
) -> service.AlertChange:
    return raise_alert(
        db,
        shipment_id=shipment_id,
        rule_id=rule,
        severity=severity,
        summary="8 °C above threshold",
        message=f"[HIGH] Shipment SHP-001: rule {rule}, now 9.4 °C. http://dash.example/s/1",
        condition_at=T0,
        now=T0,
        channel=channel,
        recipient=recipient,
    )


def _page(db: psycopg.Connection[Row], alert_id: int, channel: str = "sms") -> Row:
    row = db.execute(
        "SELECT * FROM notifications WHERE alert_id = %s AND channel = %s "
        "ORDER BY notification_id DESC LIMIT 1",
        (alert_id, channel),
    ).fetchone()
    assert row is not None
    return row


def _alert_row(db: psycopg.Connection[Row], alert_id: int) -> Row:
    row = db.execute("SELECT * FROM alerts WHERE alert_id = %s", (alert_id,)).fetchone()
    assert row is not None
    return row


# --- Channels against the fake REST API --------------------------------------------------


def test_sms_page_is_sent_with_exact_parameters(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
) -> None:
    change = _alert(db, shipment_with_logger(db))
    assert CODE.match(change.ack_code)
    page = _page(db, change.alert_id)
    assert page["status"] == "pending"  # written before anything is sent

    clock = FixedClock(T0)
    # The channels exactly as the worker builds them from settings.
    channels = twilio_channels(tw_settings, fake.http_client())
    assert deliver_due(pool, channels, clock) == 1

    [request] = fake.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.auth == (SID, TOKEN)
    assert request.one("To") == PHONE
    assert request.one("From") == FROM
    assert request.one("Body") == (
        "[HIGH] Shipment SHP-001: rule high-30m, now 9.4 °C. http://dash.example/s/1 "
        f"Reply ACK {change.ack_code} to acknowledge."
    )
    assert request.one("StatusCallback") == (
        f"{PUBLIC}/webhooks/twilio/status?notification_id={page['notification_id']}"
    )
    row = _page(db, change.alert_id)
    assert (row["status"], row["provider_ref"], row["sent_at"], row["attempts"]) == (
        "sent",
        fake.created[0]["sid"],
        clock.now(),
        1,
    )


def test_voice_page_gathers_a_keypress(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
) -> None:
    change = _alert(db, shipment_with_logger(db), channel="voice")
    page = _page(db, change.alert_id, "voice")
    assert "Reply ACK" not in page["body"]  # nobody can text back into a call
    assert deliver_due(pool, _channels(tw_settings, fake), FixedClock(T0)) == 1

    [request] = fake.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Calls.json"
    assert (request.one("To"), request.one("From")) == (PHONE, FROM)
    callback = f"{PUBLIC}/webhooks/twilio/status?notification_id={page['notification_id']}"
    assert request.one("StatusCallback") == callback
    assert request.params["StatusCallbackEvent"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    twiml = ET.fromstring(request.one("Twiml"))
    assert twiml.tag == "Response"
    gather, goodbye = list(twiml)
    assert gather.tag == "Gather"
    assert gather.attrib == {
        "numDigits": "1",
        "method": "POST",
        "action": f"{PUBLIC}/webhooks/twilio/voice?notification_id={page['notification_id']}",
    }
    [say] = list(gather)
    assert say.tag == "Say"
    assert say.text == (
        "[HIGH] Shipment SHP-001: rule high-30m, now 9.4 degrees Celsius. "
        "Press 1 to acknowledge, 2 to resolve."
    )
    assert (goodbye.tag, goodbye.text) == ("Say", "No input received. Goodbye.")
    assert _page(db, change.alert_id, "voice")["provider_ref"] == fake.created[0]["sid"]


def test_invalid_number_fails_permanently(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
) -> None:
    change = _alert(db, shipment_with_logger(db))
    fake.fail_next(400, 21211, "The 'To' number +15551230001 is not a valid phone number.")
    clock = FixedClock(T0)
    channels = _channels(tw_settings, fake)
    assert deliver_due(pool, channels, clock) == 1
    row = _page(db, change.alert_id)
    assert row["status"] == "failed"
    assert "HTTP 400 error 21211" in row["last_error"]
    clock.advance(timedelta(hours=2))
    assert deliver_due(pool, channels, clock) == 0
    assert len(fake.requests) == 1


def test_server_error_is_retried_then_sent(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
) -> None:
    change = _alert(db, shipment_with_logger(db))
    fake.fail_next(500, None, "Internal Server Error")
    clock = FixedClock(T0)
    channels = _channels(tw_settings, fake)
    assert deliver_due(pool, channels, clock) == 1
    row = _page(db, change.alert_id)
    assert (row["status"], row["due_at"]) == ("pending", T0 + timedelta(seconds=15))
    assert "HTTP 500" in row["last_error"]
    clock.advance(timedelta(seconds=15))
    assert deliver_due(pool, channels, clock) == 1
    row = _page(db, change.alert_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 2, None)
    assert len(fake.requests) == 2 and row["provider_ref"] == fake.created[0]["sid"]


@pytest.mark.parametrize(
    ("status", "code", "permanent"),
    [
        (400, 21211, True),  # invalid To
        (400, 21610, True),  # recipient replied STOP
        (400, 21614, True),  # not a mobile number
        (400, 21408, True),  # region not enabled
        (400, None, True),  # any other bad request
        (404, 20404, True),
        (401, 20003, False),  # credentials: fixable by the operator, keep the page
        (429, 20429, False),
        (500, None, False),
        (503, None, False),
    ],
)
def test_twilio_errors_map_to_permanent_or_transient(
    fake: FakeTwilio, status: int, code: int | None, permanent: bool
) -> None:
    sms = _channels(_twilio_only(), fake)["sms"]
    fake.fail_next(status, code)
    notification = Notification(1, 1, "sms", PHONE, "hello", 1)
    with pytest.raises(ChannelError) as raised:
        sms.send(notification)
    assert raised.value.permanent is permanent
    assert f"HTTP {status}" in str(raised.value)


def test_unreachable_twilio_is_transient() -> None:
    with FakeTwilio(SID, TOKEN) as gone:
        http_client = gone.http_client()  # a port that stops listening below
    client = twilio_client(_twilio_only(), http_client)
    sms = TwilioSmsChannel(client, FROM, PUBLIC, TokenBucket(1000.0))
    with pytest.raises(ChannelError) as raised:
        sms.send(Notification(1, 1, "sms", PHONE, "hello", 1))
    assert raised.value.permanent is False
    assert "unreachable" in str(raised.value)
    assert channel_error(requests.Timeout("slow")).permanent is False


def test_default_channels_follow_the_settings() -> None:
    no_twilio = Settings(twilio_account_sid=None, twilio_auth_token=None, twilio_from_number=None)
    assert set(default_channels(no_twilio)) == {"outbox"}
    channels = default_channels(_twilio_only())
    assert set(channels) == {"outbox", "sms", "voice"}
    assert isinstance(channels["sms"], TwilioSmsChannel)
    assert isinstance(channels["voice"], TwilioVoiceChannel)


def test_sends_are_paced_one_per_second_per_sender(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
) -> None:
    shipment_id = shipment_with_logger(db)
    for rule in ("r1", "r2", "r3"):
        _alert(db, shipment_id, rule=rule)
    time = _FakeTime()
    assert deliver_due(pool, _channels(tw_settings, fake, time), FixedClock(T0)) == 3
    # The first message spends the saved token; each later one waits a full second.
    assert time.sleeps == [1.0, 1.0]
    assert len(fake.requests) == 3


def test_token_bucket_refills_with_time() -> None:
    time = _FakeTime()
    bucket = TokenBucket(2.0, burst=2, monotonic=time.monotonic, sleep=time.sleep)
    assert [bucket.acquire(), bucket.acquire()] == [0.0, 0.0]  # the burst
    assert bucket.acquire() == 0.5  # 2 per second: half a second for the next token
    time.t += 10  # idle: refills to the burst, not beyond
    assert [bucket.acquire(), bucket.acquire(), bucket.acquire()] == [0.0, 0.0, 0.5]


def test_phone_channels_need_a_phone_number(db: psycopg.Connection[Row]) -> None:
    with pytest.raises(ValueError, match="E.164"):
        _alert(db, shipment_with_logger(db), recipient="on-call")


# --- Lifecycle ---------------------------------------------------------------------------


def test_lifecycle_moves_forward_only_and_is_audited(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    shipment_id = shipment_with_logger(db)
    change = _alert(db, shipment_id)
    voice = _alert(db, shipment_id, channel="voice", severity=Severity.CRITICAL)  # upgrade
    assert voice.alert_id == change.alert_id and voice.upgraded
    at = T0 + timedelta(minutes=5)

    first = acknowledge(db, change.alert_id, "alice", "dashboard", at)
    again = acknowledge(db, change.alert_id, "bob", "api", at + timedelta(minutes=1))
    assert (first.changed, first.cancelled_pages) == (True, 2)
    assert (again.changed, again.by, again.at) == (False, "alice", at)
    row = _alert_row(db, change.alert_id)
    assert (row["state"], row["acknowledged_by"], row["acknowledged_at"]) == (
        "acknowledged",
        "alice",
        at,
    )
    statuses = db.execute("SELECT DISTINCT status FROM notifications").fetchall()
    assert statuses == [{"status": "cancelled"}]
    # Cancelled pages are never sent.
    assert deliver_due(pool, {"outbox": OutboxChannel()}, FixedClock(at)) == 0

    done = resolve(db, change.alert_id, "alice", "re-iced at FRA hub", at + timedelta(hours=1))
    assert done.changed and done.state is AlertState.RESOLVED
    assert not resolve(db, change.alert_id, "bob", "dup", at + timedelta(hours=2)).changed
    with pytest.raises(InvalidTransition):
        acknowledge(db, change.alert_id, "bob", "sms", at + timedelta(hours=3))
    row = _alert_row(db, change.alert_id)
    assert (row["state"], row["resolved_by"], row["resolution_note"]) == (
        "resolved",
        "alice",
        "re-iced at FRA hub",
    )
    audit = db.execute(
        "SELECT actor, action, details FROM audit_log WHERE entity_type = 'alert' "
        "AND action IN ('alert.acknowledged', 'alert.resolved') ORDER BY audit_id"
    ).fetchall()
    assert [(a["actor"], a["action"], a["details"]["via"]) for a in audit] == [
        ("alice", "alert.acknowledged", "dashboard"),
        ("alice", "alert.resolved", "api"),
    ]
    assert audit[1]["details"]["previous_state"] == "acknowledged"
    assert verify_chain(db) is None

    # The code is free again once resolved: a new alert may hold it.
    db.execute(
        "INSERT INTO alerts (shipment_id, rule_id, severity, summary, triggered_at, ack_code) "
        "VALUES (%s, 'other', 'low', 's', %s, %s)",
        (shipment_id, T0, change.ack_code),
    )


def test_ack_codes_are_unique_among_open_alerts(
    db: psycopg.Connection[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    shipment_id = shipment_with_logger(db)
    # The upgrade of r1 is offered r2's code: an open alert keeps its own, so no clash.
    draws = iter(["K7Q2MD", "K7Q2MD", "K7Q2MD", "P3XW9A", "P3XW9A"])
    monkeypatch.setattr(service, "new_ack_code", lambda: next(draws))
    first = _alert(db, shipment_id, rule="r1")
    second = _alert(db, shipment_id, rule="r2")  # clashes twice, then draws a fresh code
    assert (first.ack_code, second.ack_code) == ("K7Q2MD", "P3XW9A")
    assert _alert(db, shipment_id, rule="r1", severity=Severity.CRITICAL).ack_code == "K7Q2MD"
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("UPDATE alerts SET ack_code = 'K7Q2MD' WHERE rule_id = 'r2'")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE alerts SET ack_code = 'O0I1L2' WHERE rule_id = 'r2'")


# --- Webhooks ----------------------------------------------------------------------------


def _sign(url: str, params: dict[str, str], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def _post(
    client: TestClient, path: str, params: dict[str, str], *, signature: str | None = "valid"
) -> requests.Response:
    headers = {}
    if signature == "valid":
        headers["X-Twilio-Signature"] = _sign(PUBLIC + path, params)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.post(path, data=params, headers=headers)  # type: ignore[return-value]


@pytest.fixture
def api(tw_settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]) -> TestClient:
    # The test client calls http://testserver: like a proxy, the host differs from
    # COLDCHAIN_PUBLIC_URL, which is what Twilio signs.
    return TestClient(create_app(tw_settings, pool))


def _sent_page(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
    shipment_id: int,
    **kwargs: object,
) -> tuple[service.AlertChange, Row]:
    change = _alert(db, shipment_id, **kwargs)  # type: ignore[arg-type]
    deliver_due(pool, _channels(tw_settings, fake), FixedClock(T0))
    page = _page(db, change.alert_id, str(kwargs.get("channel", "sms")))
    assert page["status"] == "sent"
    return change, page


def test_webhooks_refuse_unsigned_and_missigned_requests(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
    api: TestClient,
) -> None:
    change, page = _sent_page(db, pool, tw_settings, fake, shipment_with_logger(db))
    status_path = f"/webhooks/twilio/status?notification_id={page['notification_id']}"
    voice_path = f"/webhooks/twilio/voice?notification_id={page['notification_id']}"
    cases = [
        (status_path, {"MessageSid": page["provider_ref"], "MessageStatus": "delivered"}),
        ("/webhooks/twilio/sms", {"From": PHONE, "To": FROM, "Body": "1"}),
        (voice_path, {"CallSid": "CA1", "Digits": "1"}),
    ]
    for path, params in cases:
        assert _post(api, path, params, signature=None).status_code == 403
        assert _post(api, path, params, signature="bm90IGl0").status_code == 403
        other_token = _sign(PUBLIC + path, params, token="another-accounts-token")
        assert _post(api, path, params, signature=other_token).status_code == 403
        # Signed for the URL the request reached, not the public one Twilio knows.
        as_reached = _sign("http://testserver" + path, params)
        assert _post(api, path, params, signature=as_reached).status_code == 403
        # Signed for the public URL but the parameters were altered on the way.
        tampered = _sign(PUBLIC + path, {**params, "Body": "2", "Digits": "2"})
        assert _post(api, path, params, signature=tampered).status_code == 403
    assert _page(db, change.alert_id)["status"] == "sent"
    assert _alert_row(db, change.alert_id)["state"] == "triggered"
    # Correctly signed, the same request goes through.
    assert _post(api, *cases[0]).status_code == 204
    assert _page(db, change.alert_id)["status"] == "delivered"


def test_webhooks_do_not_exist_without_twilio(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    client = TestClient(create_app(settings, pool))
    params = {"From": PHONE, "Body": "1"}
    for path in ("/webhooks/twilio/status", "/webhooks/twilio/sms", "/webhooks/twilio/voice"):
        assert _post(client, path, params).status_code == 404


def test_status_callbacks_update_the_page_in_order(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
    api: TestClient,
) -> None:
    shipment_id = shipment_with_logger(db)
    change, page = _sent_page(db, pool, tw_settings, fake, shipment_id)
    path = f"/webhooks/twilio/status?notification_id={page['notification_id']}"

    def report(status: str, **extra: str) -> Row:
        params = {"MessageSid": page["provider_ref"], "MessageStatus": status, **extra}
        assert _post(api, path, params).status_code == 204
        return _page(db, change.alert_id)

    assert (report("sent")["status"], report("sent")["provider_status"]) == ("sent", "sent")
    assert report("delivered")["status"] == "delivered"
    late = report("sent")  # arrived out of order: ignored
    assert (late["status"], late["provider_status"]) == ("delivered", "delivered")
    # Delivered is not acknowledged: only a person can acknowledge.
    assert _alert_row(db, change.alert_id)["state"] == "triggered"

    # A page that never reached the phone is recorded as failed with Twilio's reason.
    other, other_page = _sent_page(db, pool, tw_settings, fake, shipment_id, rule="r2")
    params = {
        "MessageSid": other_page["provider_ref"],
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
    }
    other_path = f"/webhooks/twilio/status?notification_id={other_page['notification_id']}"
    assert _post(api, other_path, params).status_code == 204
    failed = _page(db, other.alert_id)
    assert (failed["status"], failed["provider_status"], failed["last_error"]) == (
        "failed",
        "undelivered",
        "twilio undelivered error 30003",
    )
    # A report for another message's SID does not touch this row.
    params = {"MessageSid": "SMnot-this-one", "MessageStatus": "delivered"}
    assert _post(api, other_path, params).status_code == 204
    assert _page(db, other.alert_id)["status"] == "failed"


def test_call_that_rings_out_is_failed(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
    api: TestClient,
) -> None:
    change, page = _sent_page(
        db, pool, tw_settings, fake, shipment_with_logger(db), channel="voice"
    )
    path = f"/webhooks/twilio/status?notification_id={page['notification_id']}"
    for status in ("initiated", "ringing", "no-answer"):
        params = {"CallSid": page["provider_ref"], "CallStatus": status}
        assert _post(api, path, params).status_code == 204
    row = _page(db, change.alert_id, "voice")
    assert (row["status"], row["provider_status"], row["last_error"]) == (
        "failed",
        "no-answer",
        "twilio no-answer",
    )


def test_report_that_overtakes_the_worker_prevents_a_second_send(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    api: TestClient,
) -> None:
    # Twilio accepted the message but the worker never heard back (timeout): the row is
    # pending for a retry when Twilio's report arrives; it must not be sent twice.
    change = _alert(db, shipment_with_logger(db))
    page = _page(db, change.alert_id)
    path = f"/webhooks/twilio/status?notification_id={page['notification_id']}"
    assert _post(api, path, {"MessageSid": "SMabc", "MessageStatus": "queued"}).status_code == 204
    row = _page(db, change.alert_id)
    assert (row["status"], row["provider_ref"]) == ("sent", "SMabc")
    assert deliver_due(pool, {"sms": OutboxChannel()}, FixedClock(T0)) == 0


def _reply(api: TestClient, body: str, sender: str = PHONE) -> str:
    response = _post(api, "/webhooks/twilio/sms", {"From": sender, "To": FROM, "Body": body})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    return " ".join(m.text or "" for m in root.iter("Message"))


def test_sms_ack_code_acknowledges_that_alert_and_cancels_its_pages(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
    api: TestClient,
) -> None:
    shipment_id = shipment_with_logger(db)
    first, _ = _sent_page(db, pool, tw_settings, fake, shipment_id, rule="r1")
    second, _ = _sent_page(db, pool, tw_settings, fake, shipment_id, rule="r2")
    # Each alert still has a voice page waiting (e.g. the next escalation step).
    for alert_id in (first.alert_id, second.alert_id):
        db.execute(
            "INSERT INTO notifications (alert_id, channel, recipient, body, due_at) "
            "VALUES (%s, 'voice', %s, 'call', %s)",
            (alert_id, PHONE, T0 + timedelta(minutes=5)),
        )

    # Not the latest page: the code, typed in lower case, picks the first alert.
    answer = _reply(api, f"  ack {first.ack_code.lower()} ")
    assert answer.startswith("Acknowledged: shipment SHP-001 r1 alert")
    acked = _alert_row(db, first.alert_id)
    assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", PHONE)
    assert _alert_row(db, second.alert_id)["state"] == "triggered"
    assert _page(db, first.alert_id, "voice")["status"] == "cancelled"
    assert _page(db, second.alert_id, "voice")["status"] == "pending"
    [entry] = db.execute(
        "SELECT actor, entity_id, details FROM audit_log WHERE action = 'alert.acknowledged'"
    ).fetchall()
    assert (entry["actor"], entry["entity_id"], entry["details"]["via"]) == (
        PHONE,
        str(first.alert_id),
        "sms",
    )
    assert verify_chain(db) is None
    assert "already acknowledged" in _reply(api, f"ACK {first.ack_code}")
    assert (
        len(db.execute("SELECT 1 FROM audit_log WHERE action = 'alert.acknowledged'").fetchall())
        == 1
    )


def test_sms_1_acknowledges_latest_page_and_2_resolves(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
    api: TestClient,
) -> None:
    shipment_id = shipment_with_logger(db)
    older, _ = _sent_page(db, pool, tw_settings, fake, shipment_id, rule="r1")
    db.execute("UPDATE notifications SET sent_at = sent_at - interval '1 minute'")
    latest, _ = _sent_page(db, pool, tw_settings, fake, shipment_id, rule="r2")

    assert _reply(api, "1").startswith("Acknowledged: shipment SHP-001 r2 alert")
    assert _alert_row(db, latest.alert_id)["state"] == "acknowledged"
    assert _alert_row(db, older.alert_id)["state"] == "triggered"
    assert _reply(api, "2").startswith("Resolved: shipment SHP-001 r2 alert")
    row = _alert_row(db, latest.alert_id)
    assert (row["state"], row["resolved_by"]) == ("resolved", PHONE)
    assert "already resolved" in _reply(api, "1")
    assert _alert_row(db, latest.alert_id)["state"] == "resolved"
    assert _reply(api, f"RESOLVE {older.ack_code}").startswith("Resolved: shipment SHP-001 r1")


def test_sms_from_a_phone_that_was_not_paged_changes_nothing(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
    api: TestClient,
) -> None:
    change, _ = _sent_page(db, pool, tw_settings, fake, shipment_with_logger(db))
    assert "No alert with code" in _reply(api, f"ACK {change.ack_code}", sender=OTHER_PHONE)
    assert "No alert has been paged" in _reply(api, "1", sender=OTHER_PHONE)
    assert "Reply ACK <code>" in _reply(api, "what is going on?")
    assert _reply(api, "STOP") == ""  # Twilio answers opt-out keywords itself
    assert _alert_row(db, change.alert_id)["state"] == "triggered"


def test_voice_keypress_acknowledges_or_resolves(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,
    fake: FakeTwilio,
    api: TestClient,
) -> None:
    change, page = _sent_page(
        db, pool, tw_settings, fake, shipment_with_logger(db), channel="voice"
    )
    path = f"/webhooks/twilio/voice?notification_id={page['notification_id']}"

    def press(digits: str, call_sid: str = page["provider_ref"]) -> ET.Element:
        response = _post(api, path, {"CallSid": call_sid, "Digits": digits, "To": PHONE})
        assert response.status_code == 200
        return ET.fromstring(response.text)

    again = press("7")  # not an option: asked again
    [gather] = again.iter("Gather")
    assert gather.attrib["action"] == PUBLIC + path
    assert _alert_row(db, change.alert_id)["state"] == "triggered"

    assert "does not belong" in "".join(press("1", call_sid="CAsomeone-else").itertext())
    assert _alert_row(db, change.alert_id)["state"] == "triggered"

    said = "".join(press("1").itertext())
    assert said.startswith("Acknowledged: shipment SHP-001 high-30m alert")
    row = _alert_row(db, change.alert_id)
    assert (row["state"], row["acknowledged_by"]) == ("acknowledged", PHONE)
    via = db.execute(
        "SELECT details->>'via' AS via FROM audit_log WHERE action = 'alert.acknowledged'"
    ).fetchone()
    assert via == {"via": "voice"}
    assert "".join(press("2").itertext()).startswith("Resolved:")
    assert _alert_row(db, change.alert_id)["state"] == "resolved"
