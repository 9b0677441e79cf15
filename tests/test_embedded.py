"""The local stand-ins `make demo` relies on: embedded PostgreSQL and the amqtt fallback."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from core.db import connect, create_pool
from core.embedded import EmbeddedBroker, EmbeddedPostgres
from core.migrations import migrate, timescaledb_version
from core.settings import Settings
from ingest.consumer import IngestConsumer
from simulators.publisher import MqttFleet, publish_fleet
from tests.factories import shipment_with_logger
from tests.test_walking_skeleton import wait_for


def test_embedded_postgres_migrates_and_keeps_data(tmp_path: Path) -> None:
    folder = tmp_path / "pg"
    server = EmbeddedPostgres(folder)
    try:
        url = server.url()
        assert migrate(url)
        with connect(url) as conn:
            assert timescaledb_version(conn) is None  # plain PostgreSQL: readings is a table
            conn.execute("INSERT INTO devices (device_id, carrier) VALUES ('KEEP-1', 'acme')")
            conn.commit()
    finally:
        server.stop()
    again = EmbeddedPostgres(folder, delete_on_stop=True)
    try:
        with connect(again.url()) as conn:
            row = conn.execute("SELECT carrier FROM devices WHERE device_id = 'KEEP-1'").fetchone()
        assert row == {"carrier": "acme"}
        assert migrate(again.url()) == []
    finally:
        again.stop()


@pytest.mark.storage
def test_amqtt_fallback_carries_telemetry_over_mqtt_311(tmp_path: Path, db_url: str) -> None:
    from simulators.fleet import fleet_readings
    from simulators.scenario import load_scenario

    broker = EmbeddedBroker(tmp_path / "amqtt", prefer_amqtt=True)
    try:
        assert broker.url.endswith("?protocol=3.1.1")
        settings = Settings(
            database_url=db_url, mqtt_url=broker.url, topic_prefix=f"t{uuid.uuid4().hex[:8]}/v1"
        )
        scenario = load_scenario("walking-skeleton")
        plan = scenario.shipments[0]
        with connect(db_url, autocommit=True) as db:
            shipment_with_logger(
                db,
                ref=plan.ref,
                device_id=plan.device,
                carrier=plan.carrier,
                assigned_from=scenario.start,
            )
        pool = create_pool(db_url, name="amqtt-test")
        consumer = IngestConsumer(settings, pool, client_id="ingest-amqtt")
        consumer.start()
        assert consumer.subscribed.wait(15), "ingest never subscribed"
        try:
            readings = fleet_readings(scenario, [plan], scenario.start, 1)[:20]
            fleet = MqttFleet(settings.mqtt, settings.topic_prefix, [plan])
            try:
                assert publish_fleet(fleet, readings, None, threading.Event()) == 20
            finally:
                fleet.close()
            with connect(db_url) as db:
                wait_for(
                    "20 readings over MQTT 3.1.1",
                    lambda: (
                        db.execute(
                            "SELECT count(*) AS n FROM readings WHERE shipment_id IS NOT NULL"
                        ).fetchone()
                        == {"n": 20}
                    ),
                    30,
                )
        finally:
            consumer.stop()
            pool.close()
    finally:
        broker.stop()
