"""Demo path end to end with real parts: the demo on-call configuration, a simulated fleet
with a freezing shipment over Mosquitto, ingest, monitor and the alerts worker; the
freeze pages the on-call person through the outbox within seconds, and an
acknowledgement from the dashboard stops the escalation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from alerts.demo_oncall import import_demo_oncall
from alerts.service import acknowledge
from core.db import Row
from core.settings import Settings
from ingest.consumer import IngestConsumer
from simulators.fleet import fleet_readings
from simulators.provision import provision
from simulators.publisher import MqttFleet, publish_fleet, simulation_start
from simulators.scenario import load_scenario
from tests.test_walking_skeleton import running_services, wait_for  # noqa: F401 - fixture

pytestmark = pytest.mark.storage

DEMO_PHONES = {"+15555550121": "riley", "+15555550122": "sam"}


def test_freeze_pages_the_demo_on_call_person_and_ack_stops_it(
    settings: Settings,
    pool: ConnectionPool[psycopg.Connection[Row]],
    running_services: IngestConsumer,  # noqa: F811
    db: psycopg.Connection[Row],
) -> None:
    assert import_demo_oncall(db, datetime.now(UTC))
    scenario = load_scenario("walking-skeleton")
    plans = list(scenario.shipments)
    start = simulation_start(scenario, datetime.now(UTC), None)
    with pool.connection() as conn:
        provision(conn, scenario, plans, start)
    fleet = MqttFleet(settings.mqtt, settings.topic_prefix, plans)
    try:
        publish_fleet(
            fleet, fleet_readings(scenario, plans, start, scenario.seed), None, threading.Event()
        )
    finally:
        fleet.close()

    def freeze_page() -> Row | None:
        return db.execute(
            "SELECT n.recipient, n.person_id, n.status, n.body, n.created_at, a.alert_id, "
            "a.triggered_at FROM notifications n JOIN alerts a USING (alert_id) "
            "WHERE a.rule_id = 'freeze' AND n.status = 'delivered'"
        ).fetchone()

    page = wait_for("the freeze page in the outbox", freeze_page, 90)
    assert DEMO_PHONES[page["recipient"]] == page["person_id"]
    assert "SKEL-004" in page["body"] and "rule freeze" in page["body"]
    assert "Reply ACK" in page["body"]
    # Written by the worker's first tick after the alert opened (0.5 s ticks here).
    assert (page["created_at"] - page["triggered_at"]).total_seconds() < 5

    acknowledge(db, page["alert_id"], "demo@coldchain.example", "dashboard", datetime.now(UTC))
    escalation = db.execute(
        "SELECT state FROM alert_escalations WHERE alert_id = %s", (page["alert_id"],)
    ).fetchone()
    assert escalation == {"state": "acknowledged"}
    pending = db.execute(
        "SELECT count(*) AS n FROM notifications WHERE alert_id = %s AND status = 'pending'",
        (page["alert_id"],),
    ).fetchone()
    assert pending == {"n": 0}
