"""Monitor → alerts → notifications against a real database."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.channels import ChannelError, Delivery, OutboxChannel
from alerts.models import Notification
from alerts.service import deliver_due
from core.audit import verify_chain
from core.clock import FixedClock
from core.db import Row
from ingest.service import store_batch
from monitor.service import evaluate_due
from tests.factories import T0, message, reading, shipment_with_logger

pytestmark = pytest.mark.storage
PREFIX = "coldchain/v1"
URL = "http://dash.example"


def _store(db: psycopg.Connection[Row], points: list[tuple[float, float]]) -> None:
    store_batch(
        db,
        [
            message(
                PREFIX,
                {"device_id": "LOG-001", "readings": [reading("LOG-001", m, t) for m, t in points]},
            )
        ],
        PREFIX,
    )


def test_excursion_opens_one_alert_and_one_page(db: psycopg.Connection[Row]) -> None:
    shipment_id = shipment_with_logger(db)
    clock = FixedClock(T0 + timedelta(hours=2))
    _store(db, [(0, 5.0), (10, 8.5), (20, 9.0), (30, 9.4), (40, 9.1), (50, 5.0)])
    [outcome] = evaluate_due(db, clock, URL)
    assert (outcome.shipment_id, outcome.verdict, outcome.new_alarms) == (shipment_id, "review", 1)

    alert = db.execute("SELECT * FROM alerts").fetchone()
    assert alert is not None
    assert (alert["rule_id"], alert["severity"], alert["state"]) == (
        "high-30m",
        "high",
        "triggered",
    )
    assert alert["summary"] == "above 8 °C for 30 min since 2026-03-02 08:10Z"
    excursion = db.execute("SELECT started_at, ended_at, peak_c FROM excursions").fetchone()
    assert excursion == {
        "started_at": T0 + timedelta(minutes=10),
        "ended_at": T0 + timedelta(minutes=50),
        "peak_c": 9.4,
    }
    [page] = db.execute("SELECT * FROM notifications").fetchall()
    assert (page["channel"], page["status"], page["alert_id"]) == (
        "outbox",
        "pending",
        alert["alert_id"],
    )
    assert "SHP-001" in page["body"] and "high-30m" in page["body"]
    # Duration on device time: condition began at 10, newest reading at 50 → 40 min.
    assert "(40 min)" in page["body"]
    assert "now 5.0 °C" in page["body"] and f"{URL}/shipments/{shipment_id}" in page["body"]
    actions = [r["action"] for r in db.execute("SELECT action FROM audit_log ORDER BY audit_id")]
    assert "alert.triggered" in actions
    assert verify_chain(db) is None

    # Nothing new: re-evaluating finds the same alarm and must not page again.
    db.execute("UPDATE shipments SET evaluate_from = %s", (T0,))
    [again] = evaluate_due(db, clock, URL)
    assert again.new_alarms == 0
    assert db.execute("SELECT count(*) AS n FROM notifications").fetchone() == {"n": 1}
    assert db.execute("SELECT count(*) AS n FROM alerts").fetchone() == {"n": 1}


def test_nothing_due_means_nothing_evaluated(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    assert evaluate_due(db, FixedClock(T0), URL) == []


def test_more_severe_alarm_upgrades_the_open_alert(db: psycopg.Connection[Row]) -> None:
    from alerts.service import raise_alert
    from core.severity import Severity

    shipment_id = shipment_with_logger(db)
    now = T0
    first = raise_alert(
        db,
        shipment_id=shipment_id,
        rule_id="r",
        severity=Severity.MEDIUM,
        summary="s",
        message="m1",
        condition_at=now,
        now=now,
    )
    same = raise_alert(
        db,
        shipment_id=shipment_id,
        rule_id="r",
        severity=Severity.LOW,
        summary="s",
        message="m2",
        condition_at=now,
        now=now,
    )
    higher = raise_alert(
        db,
        shipment_id=shipment_id,
        rule_id="r",
        severity=Severity.CRITICAL,
        summary="s",
        message="m3",
        condition_at=now,
        now=now,
    )
    assert (first.created, same.created, higher.created) == (True, False, False)
    assert (same.upgraded, higher.upgraded) == (False, True)
    assert first.alert_id == same.alert_id == higher.alert_id
    assert same.severity is Severity.MEDIUM and higher.severity is Severity.CRITICAL
    bodies = [
        r["body"] for r in db.execute("SELECT body FROM notifications ORDER BY notification_id")
    ]
    assert bodies == ["m1", "m3"]


class _Flaky:
    name = "outbox"

    def __init__(self, permanent: bool) -> None:
        self.permanent = permanent
        self.calls = 0

    def send(self, notification: Notification) -> Delivery:
        self.calls += 1
        raise ChannelError("provider said no", permanent=self.permanent)


def _one_pending(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    _store(db, [(0, 9.0), (40, 9.0), (50, 5.0)])
    evaluate_due(db, FixedClock(T0 + timedelta(hours=1)), URL)


def test_outbox_delivery_marks_the_row(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    _one_pending(db)
    clock = FixedClock(T0 + timedelta(hours=1))
    assert deliver_due(pool, {"outbox": OutboxChannel()}, clock) == 1
    assert deliver_due(pool, {"outbox": OutboxChannel()}, clock) == 0
    row = db.execute("SELECT status, attempts, sent_at FROM notifications").fetchone()
    assert row == {"status": "delivered", "attempts": 1, "sent_at": clock.now()}


def test_transient_failure_is_retried_later(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    _one_pending(db)
    clock = FixedClock(T0 + timedelta(hours=1))
    flaky = _Flaky(permanent=False)
    assert deliver_due(pool, {"outbox": flaky}, clock) == 1
    row = db.execute("SELECT status, due_at, last_error FROM notifications").fetchone()
    assert row is not None and row["status"] == "pending"
    assert row["due_at"] == clock.now() + timedelta(seconds=15)
    assert row["last_error"] == "provider said no"
    assert deliver_due(pool, {"outbox": flaky}, clock) == 0  # not due yet
    clock.advance(timedelta(seconds=16))
    assert deliver_due(pool, {"outbox": OutboxChannel()}, clock) == 1
    assert db.execute("SELECT status FROM notifications").fetchone() == {"status": "delivered"}


def test_permanent_failure_is_recorded_not_retried(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    _one_pending(db)
    clock = FixedClock(T0 + timedelta(hours=1))
    assert deliver_due(pool, {"outbox": _Flaky(permanent=True)}, clock) == 1
    clock.advance(timedelta(hours=1))
    assert deliver_due(pool, {"outbox": OutboxChannel()}, clock) == 0
    row = db.execute("SELECT status, last_error FROM notifications").fetchone()
    assert row == {"status": "failed", "last_error": "provider said no"}


def test_two_workers_never_send_the_same_page(db: psycopg.Connection[Row], db_url: str) -> None:
    from core.db import connect

    _one_pending(db)
    with connect(db_url) as first, connect(db_url) as second:
        from alerts import queries

        claim = {"now": T0 + timedelta(hours=1), "limit": 10}
        got_first = first.execute(queries.CLAIM_DUE, claim).fetchall()
        got_second = second.execute(queries.CLAIM_DUE, claim).fetchall()
        assert len(got_first) == 1 and got_second == []


def test_history_arriving_late_is_marked_retrospective(db: psycopg.Connection[Row]) -> None:
    shipment_with_logger(db)
    clock = FixedClock(T0 + timedelta(hours=5))
    _store(db, [(0, 5.0), (10, 5.0), (120, 5.0), (130, 5.0)])
    evaluate_due(db, clock, URL)
    assert db.execute("SELECT count(*) AS n FROM excursions").fetchone() == {"n": 0}
    # A store-and-forward batch fills the hole with a warm hour that was never seen live.
    _store(db, [(m, 9.5) for m in range(20, 120, 10)])
    [outcome] = evaluate_due(db, clock, URL)
    assert outcome.new_alarms == 1
    excursion = db.execute("SELECT started_at, retrospective FROM excursions").fetchone()
    assert excursion == {"started_at": T0 + timedelta(minutes=20), "retrospective": True}
    alarm = db.execute("SELECT rule_id, retrospective FROM alarms").fetchone()
    assert alarm == {"rule_id": "high-30m", "retrospective": True}
