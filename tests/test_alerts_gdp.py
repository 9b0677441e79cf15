"""The GDP excursion notice: distributor and recipient told once, without patient data."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.channels import OutboxChannel
from alerts.gdp import send_pending_notices
from alerts.service import acknowledge, deliver_due
from case_link.cases import create_case
from case_link.physicians import Physician, assign_physician, register_physician
from core.clock import FixedClock
from core.db import Row
from core.settings import Settings
from core.severity import Severity
from tests.factories import T0, shipment_with_logger
from tests.staff import api_client, bearer, create_staff
from tests.test_alerts_escalation import alarm

pytestmark = pytest.mark.storage

DISTRIBUTOR = "+15555550170"
PHYSICIAN = "+4915112345678"
CASE_REF = "NPP-2026-0042"


def _shipment(db: psycopg.Connection[Row], *, with_contacts: bool = True) -> int:
    shipment_id = shipment_with_logger(db)
    if not with_contacts:
        return shipment_id
    case_id = create_case(db, CASE_REF, "test", T0)
    physician = Physician("Dr. Lena Vogt", "LV-1234", "Uniklinik Frankfurt", "DE", PHYSICIAN)
    assign_physician(db, case_id, register_physician(db, physician, "test"), "test")
    db.execute(
        "UPDATE shipments SET case_id = %s, distributor_name = 'EuroPharm Logistics', "
        "distributor_phone = %s WHERE shipment_id = %s",
        (case_id, DISTRIBUTOR, shipment_id),
    )
    return shipment_id


def test_confirmed_excursion_notifies_distributor_and_recipient_once(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    clock = FixedClock(T0)
    shipment_id = _shipment(db)
    # Medium does not confirm an excursion; high on a temperature rule does.
    alarm(db, shipment_id, clock, "warm-cumulative", Severity.MEDIUM)
    assert send_pending_notices(pool, {"outbox", "sms"}, "https://dash.example", T0) == 0
    change = alarm(db, shipment_id, clock, "high-30m", Severity.HIGH)
    clock.advance(timedelta(minutes=1))
    alarm(db, shipment_id, clock, "freeze", Severity.CRITICAL)  # already told: not again
    assert send_pending_notices(pool, {"outbox", "sms"}, "https://dash.example", T0) == 2
    assert send_pending_notices(pool, {"outbox", "sms"}, "https://dash.example", T0) == 0
    rows = db.execute(
        "SELECT channel, recipient, body, alert_id FROM notifications "
        "WHERE recipient IN (%s, %s) ORDER BY recipient",
        (DISTRIBUTOR, PHYSICIAN),
    ).fetchall()
    assert [(r["channel"], r["recipient"]) for r in rows] == [
        ("sms", DISTRIBUTOR),
        ("sms", PHYSICIAN),
    ]
    body = rows[0]["body"]
    assert body == rows[1]["body"]
    assert body.startswith("GDP temperature excursion notice: shipment SHP-001 (rule high-30m)")
    assert f"https://dash.example/shipments/{shipment_id}" in body
    assert CASE_REF not in body and "Vogt" not in body  # no patient or case data
    # Acknowledging the alert does not cancel the notice (it is not a page).
    acknowledge(db, change.alert_id, "ana", "api", clock.now())
    assert deliver_due(pool, {"outbox": OutboxChannel(), "sms": OutboxChannel()}, clock) >= 2
    delivered = db.execute(
        "SELECT count(*) AS n FROM notifications WHERE recipient IN (%s, %s) "
        "AND status = 'delivered'",
        (DISTRIBUTOR, PHYSICIAN),
    ).fetchone()
    assert delivered == {"n": 2}
    audit = db.execute(
        "SELECT details FROM audit_log WHERE action = 'gdp.excursion_confirmed'"
    ).fetchall()
    assert [a["details"]["parties"] for a in audit] == [["distributor", "recipient"]]


def test_live_rules_do_not_confirm_and_missing_contacts_are_recorded(
    db: psycopg.Connection[Row], pool: ConnectionPool[psycopg.Connection[Row]]
) -> None:
    clock = FixedClock(T0)
    shipment_id = _shipment(db, with_contacts=False)
    alarm(db, shipment_id, clock, "battery-low", Severity.CRITICAL)
    alarm(db, shipment_id, clock, "ae-distributor-report", Severity.HIGH)
    assert send_pending_notices(pool, {"outbox"}, "https://dash.example", T0) == 0
    alarm(db, shipment_id, clock, "freeze", Severity.CRITICAL)
    assert send_pending_notices(pool, {"outbox"}, "https://dash.example", T0) == 2
    statuses = db.execute("SELECT party, status FROM gdp_notices ORDER BY party").fetchall()
    assert [(s["party"], s["status"]) for s in statuses] == [
        ("distributor", "no_contact"),
        ("recipient", "no_contact"),
    ]
    undeliverable = db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'gdp.notice_undeliverable'"
    ).fetchone()
    assert undeliverable == {"n": 2}


@pytest.mark.parametrize(
    "rule", ["receipt-unconfirmed", "followup-overdue", "ae-distributor-report", "battery-low"]
)
def test_qa_cannot_confirm_an_excursion_for_a_rule_that_is_not_about_temperature(
    rule: str,
    settings: Settings,
    db: psycopg.Connection[Row],
    pool: ConnectionPool[psycopg.Connection[Row]],
) -> None:
    clock = FixedClock(T0)
    shipment_id = _shipment(db)
    other = alarm(db, shipment_id, clock, rule, Severity.MEDIUM).alert_id
    temperature = alarm(db, shipment_id, clock, "warm-cumulative", Severity.MEDIUM).alert_id
    create_staff(db, ["qa"])
    with api_client(settings, pool, clock) as client:
        headers = bearer(client, "qa")
        refused = client.post(f"/api/v1/alerts/{other}/confirm-excursion", headers=headers)
        assert refused.status_code == 409
        assert f"rule {rule}, not a temperature rule" in refused.json()["title"]
        assert db.execute("SELECT count(*) AS n FROM gdp_notices").fetchone() == {"n": 0}
        confirmed = client.post(f"/api/v1/alerts/{temperature}/confirm-excursion", headers=headers)
    assert confirmed.status_code == 200
    assert confirmed.json()["notified"] == ["distributor", "recipient"]
    assert send_pending_notices(pool, {"outbox", "sms"}, "https://dash.example", T0) == 2
    notified = db.execute(
        "SELECT body FROM notifications WHERE recipient IN (%s, %s)", (DISTRIBUTOR, PHYSICIAN)
    ).fetchall()
    assert len(notified) == 2
    assert all("rule warm-cumulative" in n["body"] for n in notified)
