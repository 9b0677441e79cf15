"""Escalation against the real database with a fixed clock: exact step timing, ack, ack
timeout, failed pages moving on, grouping, and a worker restart mid-escalation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from alerts import oncall_config
from alerts.escalation import Route, choose_policy
from alerts.jobs import add_alert_jobs
from alerts.paging import sweep_escalations
from alerts.service import AlertChange, acknowledge, deliver_due, raise_alert, resolve
from core.clock import FixedClock
from core.db import Row
from core.http import create_app
from core.settings import Settings
from core.severity import Severity
from tests.factories import T0, shipment_with_logger
from tests.fake_twilio import FakeTwilio
from tests.test_twilio import _channels, _post, fake, tw_settings  # noqa: F401 - fixtures

pytestmark = pytest.mark.storage

ANA, BEN, LEAD = "+15555550101", "+15555550102", "+15555550103"
PHONE_CHANNELS = frozenset({"outbox", "sms", "voice"})


def oncall_doc(**policy: Any) -> dict[str, Any]:
    """Ops rotation Ana/Ben (daily at 09:00 UTC: Ana at T0), lead as the second step."""
    return {
        "people": [
            {"id": "ana", "name": "Ana", "phone": ANA, "time_zone": "UTC"},
            {"id": "ben", "name": "Ben", "phone": BEN, "time_zone": "UTC"},
            {"id": "lead", "name": "Lead", "phone": LEAD, "time_zone": "UTC"},
        ],
        "schedules": [
            {
                "id": "ops",
                "name": "Ops",
                "layers": [
                    {
                        "name": "all",
                        "participants": ["ana", "ben"],
                        "handoff": "daily",
                        "handoff_at": "09:00",
                        "start": "2026-03-01",
                        "time_zone": "UTC",
                    }
                ],
            }
        ],
        "policies": [
            {
                "id": "std",
                "name": "Standard",
                "steps": [
                    {"notify": [{"schedule": "ops"}], "via": ["sms", "voice"], "wait_min": 5},
                    {"notify": [{"person": "lead"}], "via": ["voice"], "wait_min": 10},
                ],
                "repeat": 1,
                "ack_timeout_min": 30,
                "group_window_s": 60,
                **policy,
            }
        ],
        "routing": [{"policy": "std"}],
    }


def configure(db: psycopg.Connection[Row], **policy: Any) -> None:
    doc = oncall_config.parse(oncall_doc(**policy), "test")
    oncall_config.apply(db, doc, actor="test", source="test", now=T0)


def alarm(
    db: psycopg.Connection[Row],
    shipment_id: int,
    clock: FixedClock,
    rule: str = "freeze",
    severity: Severity = Severity.CRITICAL,
) -> AlertChange:
    return raise_alert(
        db,
        shipment_id=shipment_id,
        rule_id=rule,
        severity=severity,
        summary=f"{rule} summary",
        message=f"[{severity.value.upper()}] Shipment SHP-001: rule {rule}",
        condition_at=T0,
        now=clock.now(),
    )


def pages(db: psycopg.Connection[Row]) -> list[tuple[str, str, int, int]]:
    """Escalation pages in order: (person, channel, step, repeat)."""
    rows = db.execute(
        "SELECT person_id, channel, escalation_step, escalation_repeat FROM notifications "
        "WHERE person_id IS NOT NULL ORDER BY notification_id"
    ).fetchall()
    return [
        (r["person_id"], r["channel"], r["escalation_step"], r["escalation_repeat"]) for r in rows
    ]


def escalation(db: psycopg.Connection[Row], alert_id: int) -> Row:
    row = db.execute("SELECT * FROM alert_escalations WHERE alert_id = %s", (alert_id,)).fetchone()
    assert row is not None
    return row


def test_most_specific_route_wins() -> None:
    routes = [
        Route("default"),
        Route("critical", severities=frozenset({Severity.CRITICAL})),
        Route("eu-lane", lane="MEM-FRA"),
        Route("acme", customer="acme"),
        Route("eu-critical", severities=frozenset({Severity.CRITICAL}), lane="MEM-FRA"),
    ]
    assert choose_policy(routes, Severity.LOW, None, None) == "default"
    assert choose_policy(routes, Severity.CRITICAL, None, None) == "critical"
    assert choose_policy(routes, Severity.LOW, "MEM-FRA", None) == "eu-lane"
    assert choose_policy(routes, Severity.CRITICAL, "MEM-FRA", None) == "eu-critical"
    assert choose_policy(routes, Severity.CRITICAL, "MEM-FRA", "acme") == "acme"
    assert choose_policy(routes[1:2], Severity.LOW, None, None) is None


def test_unanswered_steps_escalate_after_exactly_their_wait(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    configure(db)
    clock = FixedClock(T0)
    change = alarm(db, shipment_with_logger(db), clock)
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 1
    assert pages(db) == [("ana", "sms", 0, 0), ("ana", "voice", 0, 0)]
    clock.advance(timedelta(minutes=5) - timedelta(microseconds=1))
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 0
    clock.advance(timedelta(microseconds=1))  # exactly 5 min: the lead's phone rings
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 1
    assert pages(db)[2:] == [("lead", "voice", 1, 0)]
    clock.advance(timedelta(minutes=10))  # second pass over the policy (repeat: 1)
    sweep_escalations(pool, PHONE_CHANNELS, clock)
    clock.advance(timedelta(minutes=5))
    sweep_escalations(pool, PHONE_CHANNELS, clock)
    assert pages(db)[3:] == [("ana", "sms", 0, 1), ("ana", "voice", 0, 1), ("lead", "voice", 1, 1)]
    clock.advance(timedelta(hours=3))
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 0
    assert len(pages(db)) == 6
    assert escalation(db, change.alert_id)["state"] == "exhausted"
    exhausted = db.execute(
        "SELECT entity_id FROM audit_log WHERE action = 'alert.escalation_exhausted'"
    ).fetchall()
    assert [r["entity_id"] for r in exhausted] == [str(change.alert_id)]


def test_ack_stops_escalation_until_the_ack_timeout_then_resolve_ends_it(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    configure(db)
    clock = FixedClock(T0)
    change = alarm(db, shipment_with_logger(db), clock)
    sweep_escalations(pool, PHONE_CHANNELS, clock)
    clock.advance(timedelta(minutes=2))
    acknowledge(db, change.alert_id, ANA, "sms", clock.now())
    assert escalation(db, change.alert_id)["next_step_at"] == T0 + timedelta(minutes=32)
    clock.advance(timedelta(minutes=30) - timedelta(microseconds=1))
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 0
    assert len(pages(db)) == 2  # the lead was never called
    clock.advance(timedelta(microseconds=1))  # acknowledged 30 min ago, still unresolved
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 1
    assert pages(db)[2:] == [("ana", "sms", 0, 0), ("ana", "voice", 0, 0)]
    state = db.execute("SELECT state FROM alerts WHERE alert_id = %s", (change.alert_id,))
    assert state.fetchone() == {"state": "triggered"}
    resolve(db, change.alert_id, ANA, "re-iced", clock.now())
    clock.advance(timedelta(hours=2))
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 0
    assert len(pages(db)) == 4
    assert escalation(db, change.alert_id)["state"] == "done"


def test_unanswered_call_moves_on_at_once_and_delivered_sms_is_no_ack(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,  # noqa: F811
    fake: FakeTwilio,  # noqa: F811
) -> None:
    configure(db)
    clock = FixedClock(T0)
    app = create_app(tw_settings, pool)
    app.state.clock = clock
    api = TestClient(app)
    change = alarm(db, shipment_with_logger(db), clock)
    sweep_escalations(pool, PHONE_CHANNELS, clock)
    assert deliver_due(pool, _channels(tw_settings, fake), clock) == 2
    sent = {
        r["channel"]: r
        for r in db.execute("SELECT notification_id, channel, provider_ref FROM notifications")
    }
    sms, call = sent["sms"], sent["voice"]
    sms_path = f"/webhooks/twilio/status?notification_id={sms['notification_id']}"
    params = {"MessageSid": sms["provider_ref"], "MessageStatus": "delivered"}
    assert _post(api, sms_path, params).status_code == 204
    clock.advance(timedelta(minutes=1))
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 0  # delivered is not an ack
    call_path = f"/webhooks/twilio/status?notification_id={call['notification_id']}"
    for status in ("initiated", "ringing", "no-answer"):
        params = {"CallSid": call["provider_ref"], "CallStatus": status}
        assert _post(api, call_path, params).status_code == 204
    assert escalation(db, change.alert_id)["next_step_at"] == T0 + timedelta(minutes=1)
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 1
    assert pages(db)[2:] == [("lead", "voice", 1, 0)]
    # A late failure report of the earlier step does not cut the lead's wait short.
    params = {"MessageSid": sms["provider_ref"], "MessageStatus": "undelivered"}
    assert _post(api, sms_path, params).status_code == 204
    assert escalation(db, change.alert_id)["next_step_at"] == T0 + timedelta(minutes=11)


def test_permanent_channel_error_moves_to_the_next_step(
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
    tw_settings: Settings,  # noqa: F811
    fake: FakeTwilio,  # noqa: F811
) -> None:
    configure(db)
    clock = FixedClock(T0)
    change = alarm(db, shipment_with_logger(db), clock)
    sweep_escalations(pool, PHONE_CHANNELS, clock)
    clock.advance(timedelta(seconds=20))
    fake.fail_next(400, 21211, "The 'To' number is not a valid phone number.")
    deliver_due(pool, _channels(tw_settings, fake), clock)
    failed = db.execute("SELECT count(*) AS n FROM notifications WHERE status = 'failed'")
    assert failed.fetchone() == {"n": 1}
    assert escalation(db, change.alert_id)["next_step_at"] == T0 + timedelta(seconds=20)
    assert sweep_escalations(pool, PHONE_CHANNELS, clock) == 1
    assert pages(db)[-1] == ("lead", "voice", 1, 0)


def test_one_shipments_alerts_within_the_window_page_once(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    configure(db)
    clock = FixedClock(T0)
    shipment_id = shipment_with_logger(db)
    first = alarm(db, shipment_id, clock, "high-30m", Severity.HIGH)
    for rule in ("warm-cumulative", "logger-offline", "battery-low"):
        clock.advance(timedelta(seconds=10))
        alarm(db, shipment_id, clock, rule, Severity.MEDIUM)
    assert sweep_escalations(pool, {"outbox"}, clock) == 1
    rows = db.execute("SELECT recipient, body FROM notifications").fetchall()
    assert [r["recipient"] for r in rows] == [ANA]  # sms + voice via the outbox: once
    assert (
        "Also open on this shipment: warm-cumulative (medium), logger-offline (medium), "
        in (rows[0]["body"])
    )
    # Answering the page acknowledges every alert it named.
    acknowledge(db, first.alert_id, ANA, "sms", clock.now())
    states = db.execute("SELECT DISTINCT state FROM alerts").fetchall()
    assert states == [{"state": "acknowledged"}]
    # After the window a new alert of the shipment pages on its own.
    clock.advance(timedelta(seconds=61))
    alarm(db, shipment_id, clock, "delivery-delayed", Severity.LOW)
    assert sweep_escalations(pool, {"outbox"}, clock) == 1
    assert len(pages(db)) == 2


def test_more_severe_alert_takes_over_the_group_and_pages_now(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    configure(db)
    clock = FixedClock(T0)
    shipment_id = shipment_with_logger(db)
    offline = alarm(db, shipment_id, clock, "logger-offline", Severity.MEDIUM)
    sweep_escalations(pool, {"outbox"}, clock)
    clock.advance(timedelta(seconds=30))
    freeze = alarm(db, shipment_id, clock, "freeze", Severity.CRITICAL)
    assert sweep_escalations(pool, {"outbox"}, clock) == 1
    bodies = [
        r["body"] for r in db.execute("SELECT body FROM notifications ORDER BY notification_id")
    ]
    assert len(bodies) == 2 and "rule freeze" in bodies[1]
    assert "logger-offline (medium)" in bodies[1]
    assert escalation(db, offline.alert_id)["state"] == "done"
    assert escalation(db, freeze.alert_id)["state"] == "active"
    # The freeze clears: the offline alert inherits the escalation where it stands.
    resolve(db, freeze.alert_id, "monitor", "back in range", clock.now(), via="monitor")
    inherited = escalation(db, offline.alert_id)
    assert (inherited["state"], inherited["step_index"]) == ("active", 1)


def test_restarted_worker_continues_without_losing_or_repeating_a_page(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]], db_url: str
) -> None:
    configure(db)
    clock = FixedClock(T0)

    def start_worker() -> BackgroundScheduler:
        scheduler = BackgroundScheduler(timezone="UTC")
        add_alert_jobs(scheduler, pool, clock, interval_s=3600)
        scheduler.start(paused=True)  # ticks are driven by the test, on the fixed clock
        return scheduler

    def tick(scheduler: BackgroundScheduler) -> None:
        scheduler.get_job("notifications").func()

    worker = start_worker()
    alarm(db, shipment_with_logger(db), clock)
    tick(worker)
    clock.advance(timedelta(minutes=5))
    # A worker claims the due step and dies before committing: the row stays locked, a
    # second worker skips it, and after the crash (rollback) the step runs exactly once.
    with psycopg.connect(db_url) as crashed:
        crashed.execute(
            "SELECT alert_id FROM alert_escalations WHERE next_step_at <= %s FOR UPDATE",
            (clock.now(),),
        )
        tick(worker)
        assert len(pages(db)) == 1
        crashed.rollback()
    worker.shutdown(wait=True)
    worker = start_worker()
    tick(worker)
    tick(worker)
    clock.advance(timedelta(minutes=10))
    tick(worker)
    worker.shutdown(wait=True)
    worker = start_worker()
    clock.advance(timedelta(minutes=5))
    tick(worker)
    clock.advance(timedelta(hours=1))
    tick(worker)
    worker.shutdown(wait=True)
    # Outbox only: SMS and voice of one step are one outbox page to the person's phone.
    assert pages(db) == [
        ("ana", "outbox", 0, 0),
        ("lead", "outbox", 1, 0),
        ("ana", "outbox", 0, 1),
        ("lead", "outbox", 1, 1),
    ]
    statuses = db.execute("SELECT DISTINCT status, recipient FROM notifications ORDER BY 2")
    assert statuses.fetchall() == [
        {"status": "delivered", "recipient": ANA},
        {"status": "delivered", "recipient": LEAD},
    ]


def test_upgrade_in_place_pages_again_from_the_first_step(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    configure(db)
    clock = FixedClock(T0)
    shipment_id = shipment_with_logger(db)
    change = alarm(db, shipment_id, clock, "high-30m", Severity.HIGH)
    sweep_escalations(pool, {"outbox"}, clock)
    clock.advance(timedelta(minutes=5))
    sweep_escalations(pool, {"outbox"}, clock)
    acknowledge(db, change.alert_id, LEAD, "voice", clock.now())
    # Another alert of the shipment opened meanwhile leads its own escalation.
    other = alarm(db, shipment_id, clock, "warm-cumulative", Severity.MEDIUM)
    clock.advance(timedelta(minutes=1))
    upgraded = alarm(db, shipment_id, clock, "high-30m", Severity.CRITICAL)
    assert (upgraded.alert_id, upgraded.upgraded) == (change.alert_id, True)
    state = db.execute(
        "SELECT state, group_alert_id FROM alerts WHERE alert_id = %s", (change.alert_id,)
    )
    assert state.fetchone() == {"state": "triggered", "group_alert_id": None}
    assert sweep_escalations(pool, {"outbox"}, clock) == 2
    assert pages(db) == [
        ("ana", "outbox", 0, 0),
        ("lead", "outbox", 1, 0),
        ("ana", "outbox", 0, 0),  # warm-cumulative, its own escalation
        ("ana", "outbox", 0, 0),  # high-30m, now critical, from the first step
    ]
    assert escalation(db, other.alert_id)["state"] == "active"
    retriggered = db.execute(
        "SELECT details FROM audit_log WHERE action = 'alert.retriggered'"
    ).fetchall()
    assert [r["details"]["reason"] for r in retriggered] == ["severity rose to critical"]


def test_unreadable_policy_falls_back_to_the_next_matching_route(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    document = oncall_doc()
    document["policies"].append(
        {
            "id": "broken",
            "name": "Edited by hand",
            "steps": [{"notify": [{"person": "lead"}], "via": ["sms"], "wait_min": 5}],
        }
    )
    document["routing"].insert(0, {"policy": "broken", "severity": ["critical"]})
    oncall_config.apply(db, oncall_config.parse(document, "test"), actor="t", source="t", now=T0)
    db.execute(
        "UPDATE escalation_policies SET steps = '[{\"via\": [\"sms\"]}]' WHERE policy_id = 'broken'"
    )
    clock = FixedClock(T0)
    change = alarm(db, shipment_with_logger(db), clock)
    assert escalation(db, change.alert_id)["policy_id"] == "std"
    sweep_escalations(pool, {"outbox"}, clock)
    assert pages(db) == [("ana", "outbox", 0, 0)]
