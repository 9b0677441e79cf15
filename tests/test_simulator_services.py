"""Simulated loggers against real Mosquitto and PostgreSQL: publishing, per-device
credentials, shipment setup, load mode, and every fault through ingest."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from psycopg_pool import ConnectionPool

from core.db import Row
from core.embedded import free_port
from core.errors import StartupError
from core.settings import MqttTarget, Settings
from ingest.consumer import IngestConsumer
from ingest.credentials import passwd_lines, write_passwd
from ingest.parser import parse_payload
from simulators.fleet import fleet_messages
from simulators.load import load_loggers, run_load
from simulators.provision import provision
from simulators.publisher import MqttFleet, publish_fleet, simulation_start, write_jsonl
from simulators.scenario import ScenarioError, load_scenario
from tests.test_walking_skeleton import wait_for

REPO = Path(__file__).resolve().parent.parent


class Recorder:
    """A subscriber that keeps every message it receives."""

    def __init__(self, url: str, topic_filter: str, user: str | None = None, pw: str = "") -> None:
        target = MqttTarget(url)
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"rec-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5 if target.mqtt_v5 else mqtt.MQTTv311,
        )
        if user:
            self.client.username_pw_set(user, pw)
        self.client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscription not acknowledged"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def telemetry(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(t, p.decode()) for t, p, _ in self.messages if t.endswith("/telemetry")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def prefix() -> str:
    return f"sim-{uuid.uuid4().hex[:10]}/v1"


def test_fleet_publishes_exactly_what_the_file_holds(mqtt_url: str, prefix: str) -> None:
    scenario = load_scenario("mixed-faults")
    messages = fleet_messages(scenario, scenario.shipments, scenario.start, scenario.seed)
    out = io.StringIO()
    write_jsonl(messages, prefix, out)
    expected = sorted(
        (line["topic"], line["payload"]) for line in map(json.loads, out.getvalue().splitlines())
    )
    recorder = Recorder(mqtt_url, f"{prefix}/#")
    try:
        fleet = MqttFleet(MqttTarget(mqtt_url), prefix, scenario.shipments)
        try:
            sent = publish_fleet(fleet, messages, None, threading.Event())
        finally:
            fleet.close()
        assert sent == len(messages) and fleet.acked == fleet.sent
        wait_for("every message", lambda: len(recorder.telemetry()) >= len(expected), 30)
        assert sorted(recorder.telemetry()) == expected  # duplicates and corrupt ones too
    finally:
        recorder.close()
    # Each logger has its own retained status: online while running, offline after.
    late = Recorder(mqtt_url, f"{prefix}/+/+/status")
    try:
        wait_for("retained statuses", lambda: len(late.messages) >= len(scenario.shipments), 10)
        assert {(t.split("/")[-2], p, r) for t, p, r in late.messages} == {
            (plan.device, b"offline", True) for plan in scenario.shipments
        }
    finally:
        late.close()


def test_speed_paces_by_device_time(mqtt_url: str, prefix: str) -> None:
    scenario = load_scenario("duplicate-resend")  # 4 device-hours
    messages = fleet_messages(scenario, scenario.shipments, scenario.start, 1)
    fleet = MqttFleet(MqttTarget(mqtt_url), prefix, scenario.shipments)
    began = time.monotonic()
    try:
        publish_fleet(fleet, messages, 4 * 3600 / 2.0, threading.Event())  # 4 h in 2 s
    finally:
        fleet.close()
    assert 1.9 <= time.monotonic() - began < 60


def test_live_runs_never_stamp_the_future() -> None:
    scenario = load_scenario("walking-skeleton")
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    duration = timedelta(hours=scenario.duration_h)
    for speed in (None, 0.5, 1.0, 60.0):
        start = simulation_start(scenario, now, speed)
        # The last reading is sent ``duration / speed`` of wall time after the first.
        wall = timedelta(0) if speed is None else duration / speed
        assert start <= now and start + duration <= now + wall


def test_unreachable_broker_is_a_startup_error(prefix: str) -> None:
    scenario = load_scenario("door-open")
    with pytest.raises(
        StartupError, match="cannot connect to the MQTT broker at mqtt://127.0.0.1:1"
    ):
        MqttFleet(MqttTarget("mqtt://127.0.0.1:1"), prefix, scenario.shipments)


def test_load_mode_reaches_its_rate_and_reports_it(mqtt_url: str, prefix: str) -> None:
    loggers = load_loggers(10)
    recorder = Recorder(mqtt_url, f"{prefix}/#")
    fleet = MqttFleet(MqttTarget(mqtt_url), prefix, loggers)
    try:
        report = run_load(fleet, loggers, 400.0, 4, 1.0, datetime.now(UTC), threading.Event())
    finally:
        fleet.close()
    try:
        assert (report.readings, report.messages, report.loggers) == (400, 100, 10)
        # 100 messages at 4 readings each, paced at 400 readings/s: the last is due at 0.99 s.
        assert report.elapsed_s >= 0.99 and report.achieved_rate <= 400 * 1.01 + 5
        wait_for("load messages", lambda: len(recorder.telemetry()) >= 100, 30)
        keys = set()
        for topic, payload in recorder.telemetry():
            device = topic.split("/")[-2]
            for reading in parse_payload(payload.encode(), topic_device_id=device):
                keys.add((device, reading.ts))
        assert len(keys) == 400  # no two readings share a key
        assert max(ts for _, ts in keys) <= datetime.now(UTC)
    finally:
        recorder.close()


# -- with the database ---------------------------------------------------------------------


@pytest.mark.storage
def test_provision_creates_cases_shipments_and_loggers(db: psycopg.Connection[Row]) -> None:
    scenario = load_scenario("mixed-faults")
    start = datetime(2026, 5, 4, 6, tzinfo=UTC)
    first = provision(db, scenario, scenario.shipments, start, secret_key="k" * 32)
    again = provision(db, scenario, scenario.shipments, start, secret_key="k" * 32)
    assert first == again and len(first) == 8
    rows = db.execute(
        "SELECT s.shipment_ref, c.case_ref, c.step, d.device_id, d.mqtt_password_hash, "
        "s.expected_delivery_at > s.departed_at AS later FROM shipments s "
        "JOIN cases c USING (case_id) JOIN shipment_devices sd USING (shipment_id) "
        "JOIN devices d USING (device_id) ORDER BY 1"
    ).fetchall()
    assert [r["shipment_ref"] for r in rows] == [f"MF-00{i}" for i in range(1, 9)]
    assert all(
        r["case_ref"] == f"CASE-{r['shipment_ref']}" and r["step"] == "shipping" for r in rows
    )
    assert all(r["mqtt_password_hash"].startswith("$7$") and r["later"] for r in rows)
    audited = db.execute(
        "SELECT action, count(*) AS n FROM audit_log WHERE actor = 'simulator' "
        "AND action IN ('case.created', 'case.transitioned', 'shipment.case_linked') "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    # Each case is opened and walked to shipping by the workflow (6 steps), once.
    assert audited == [
        {"action": "case.created", "n": 8},
        {"action": "case.transitioned", "n": 8 * 6},
        {"action": "shipment.case_linked", "n": 8},
    ]
    unknown = scenario.shipments[0].model_copy(
        update={"profile": "no-such-profile", "ref": "X-001"}
    )
    with pytest.raises(ScenarioError, match="'no-such-profile' is not in the monitor catalog"):
        provision(db, scenario, [unknown], start)


@pytest.mark.storage
def test_every_fault_reaches_ingest_as_designed(
    settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]], db: psycopg.Connection[Row]
) -> None:
    scenario = load_scenario("mixed-faults")
    start = simulation_start(scenario, datetime.now(UTC), None)
    with pool.connection() as conn:
        provision(conn, scenario, scenario.shipments, start)
    messages = fleet_messages(scenario, scenario.shipments, start, scenario.seed)
    keys: dict[tuple[str, datetime], set[str]] = {}
    for message in messages:
        if message.valid:
            for reading in parse_payload(message.payload.encode(), topic_device_id=message.device):
                keys.setdefault((message.device, reading.ts), set()).add(
                    json.dumps([reading.temp_c, reading.seq])
                )
    conflicting = sum(len(values) - 1 for values in keys.values())
    malformed = sum(1 for m in messages if not m.valid)
    assert conflicting == 6 and malformed == 7

    consumer = IngestConsumer(settings, pool, client_id=f"ingest-{uuid.uuid4().hex[:8]}")
    consumer.start()
    try:
        assert consumer.subscribed.wait(15), "ingest never subscribed"
        fleet = MqttFleet(settings.mqtt, settings.topic_prefix, scenario.shipments)
        try:
            publish_fleet(fleet, messages, None, threading.Event())
        finally:
            fleet.close()
        wait_for(
            "readings, conflicts and refusals",
            lambda: (
                db.execute(
                    "SELECT (SELECT count(*) FROM readings) AS r, "
                    "(SELECT count(*) FROM reading_conflicts) AS c, "
                    "(SELECT count(*) FROM rejected_messages) AS j"
                ).fetchone()
                == {"r": len(keys), "c": conflicting, "j": malformed}
            ),
            60,
        )
    finally:
        consumer.stop()
    sensor = db.execute(
        "SELECT count(*) AS n FROM readings WHERE device_id = 'LOG-MF-005' AND temp_c IS NULL "
        "AND status = 'sensor_error'"
    ).fetchone()
    assert sensor == {"n": 3}


def _mosquitto_with_passwords(
    folder: Path, passwd: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    write_passwd(folder / "passwd", passwd)
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\n"
        f"password_file {folder / 'passwd'}\nacl_file {REPO / 'deploy/mosquitto/acl'}\n"
        + (REPO / "deploy/mosquitto/dev.conf").read_text()
    )
    process = subprocess.Popen([binary, "-c", str(config)], stderr=subprocess.DEVNULL)
    url = f"mqtt://127.0.0.1:{port}"
    wait_for("password broker", lambda: _listening(port), 10)
    return process, url


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def tmp_broker_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "broker"
    folder.mkdir()
    yield folder


@pytest.mark.storage
def test_each_logger_logs_in_with_its_own_derived_password(
    db: psycopg.Connection[Row], tmp_broker_dir: Path
) -> None:
    """The production broker config: passwords from the registry, the repo's ACL."""
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.fail("mosquitto is needed for this test (apt-get install mosquitto)")
    scenario = load_scenario("door-open")
    secret = "s" * 32
    provision(db, scenario, scenario.shipments, scenario.start, secret_key=secret)
    process, url = _mosquitto_with_passwords(tmp_broker_dir, passwd_lines(db, {"ingest": "pw"}))
    try:
        recorder = Recorder(url, "coldchain/v1/#", user="ingest", pw="pw")
        messages = fleet_messages(scenario, scenario.shipments, scenario.start, 1)
        fleet = MqttFleet(MqttTarget(url), "coldchain/v1", scenario.shipments, secret_key=secret)
        try:
            publish_fleet(fleet, messages, None, threading.Event())
        finally:
            fleet.close()
        assert fleet.refused == 0
        wait_for("telemetry", lambda: len(recorder.telemetry()) >= len(messages), 20)
        recorder.close()
        with pytest.raises(StartupError, match="refused logger LOG-DO-001 .*user LOG-DO-001"):
            MqttFleet(MqttTarget(url), "coldchain/v1", scenario.shipments, secret_key="wrong" * 7)
    finally:
        process.terminate()
        process.wait(10)
