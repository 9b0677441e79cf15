"""Nothing acknowledged is lost: ingest killed, PostgreSQL restarted, Mosquitto restarted,
garbage on the wire. Real broker, real database, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import Row, connect, create_pool
from core.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from core.migrations import migrate
from core.settings import Settings
from ingest.consumer import IngestConsumer
from ingest.devices import register_device
from ingest.service import IncomingMessage, store_batch
from tests.mqtt_tools import Publisher, reading_payloads
from tests.test_walking_skeleton import wait_for

pytestmark = pytest.mark.storage
DEVICE = "LOG-REL-1"


def _count(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT count(*) AS n FROM readings").fetchone()
    return 0 if row is None else int(row["n"])


def _start_ingest(
    db_url: str, mqtt_url: str, prefix: str, client_id: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")},
        "COLDCHAIN_DATABASE_URL": db_url,
        "COLDCHAIN_MQTT_URL": mqtt_url,
        "COLDCHAIN_TOPIC_PREFIX": prefix,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "ingest", "--client-id", client_id],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    wait_for("ingest subscribed", lambda: "ingest.consumer: subscribed" in log.read_text(), 30)
    return process


def test_sigkill_mid_stream_loses_and_doubles_nothing(
    settings: Settings, db_url: str, db: psycopg.Connection[Row], tmp_path: Path
) -> None:
    register_device(db, DEVICE, "acme", 5, actor="test")
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "ingest.log"
    assert settings.mqtt_url is not None
    mqtt_url = settings.mqtt_url
    ingest = _start_ingest(db_url, mqtt_url, settings.topic_prefix, client_id, log)
    payloads = reading_payloads(DEVICE, 6000)
    publisher = Publisher(mqtt_url, f"pub-{client_id}")
    topic = f"{settings.topic_prefix}/acme/{DEVICE}/telemetry"
    try:
        feeder = threading.Thread(target=publisher.publish, args=(topic, payloads, 200, 0.05))
        feeder.start()
        wait_for("part of the stream stored", lambda: _count(db_url) >= 1000, 60)
        ingest.send_signal(signal.SIGKILL)
        ingest.wait(10)
        killed_at = _count(db_url)
        feeder.join(60)
        publisher.wait_acked(len(payloads))
        assert killed_at < len(payloads), "the kill came too late to prove anything"
        # The broker kept the persistent session's messages; the same client id resumes it.
        ingest = _start_ingest(db_url, mqtt_url, settings.topic_prefix, client_id, log)
        wait_for("every reading stored", lambda: _count(db_url) >= len(payloads), 90)
    finally:
        publisher.close()
        ingest.terminate()
        ingest.wait(30)
    assert _count(db_url) == len(payloads)
    assert db.execute("SELECT count(*) AS n FROM reading_conflicts").fetchone() == {"n": 0}
    assert db.execute("SELECT count(DISTINCT seq) AS n FROM readings").fetchone() == {
        "n": len(payloads)
    }


@pytest.fixture
def restartable_postgres(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, Path]]:
    folder = tmp_path / "pg"
    server = EmbeddedPostgres(folder)
    yield server, folder
    EmbeddedPostgres(folder, delete_on_stop=True).stop()


def test_postgres_restart_mid_stream(
    restartable_postgres: tuple[EmbeddedPostgres, Path], mqtt_url: str
) -> None:
    server, folder = restartable_postgres
    url = server.url()
    migrate(url)
    with connect(url, autocommit=True) as conn:
        register_device(conn, DEVICE, "acme", 5, actor="test")
    prefix = f"t{uuid.uuid4().hex[:8]}/v1"
    settings = Settings(database_url=url, mqtt_url=mqtt_url, topic_prefix=prefix)
    pool = create_pool(url, name="restart-test")
    consumer = IngestConsumer(settings, pool, client_id=f"ingest-{prefix[:9]}")
    consumer.start()
    assert consumer.subscribed.wait(15), "ingest never subscribed"
    publisher = Publisher(mqtt_url, f"pub-{prefix[:9]}")
    payloads = reading_payloads(DEVICE, 3000)
    topic = f"{prefix}/acme/{DEVICE}/telemetry"
    try:
        publisher.publish(topic, payloads[:1000])
        wait_for("first part stored", lambda: _count(url) == 1000, 60)
        server.stop()  # the database goes away mid-stream
        publisher.publish(topic, payloads[1000:2000])
        publisher.wait_acked(2000)
        server = EmbeddedPostgres(folder)
        assert server.url() == url
        publisher.publish(topic, payloads[2000:])
        wait_for("everything stored after the restart", lambda: _count(url) == 3000, 90)
    finally:
        publisher.close()
        consumer.stop()
        pool.close()


def test_broker_restart_mid_stream(
    tmp_path: Path, db_url: str, db: psycopg.Connection[Row]
) -> None:
    register_device(db, DEVICE, "acme", 5, actor="test")
    port = free_port()
    broker = EmbeddedBroker(tmp_path / "broker", port)
    prefix = f"t{uuid.uuid4().hex[:8]}/v1"
    settings = Settings(database_url=db_url, mqtt_url=broker.url, topic_prefix=prefix)
    pool = create_pool(db_url, name="broker-restart")
    consumer = IngestConsumer(settings, pool, client_id=f"ingest-{prefix[:9]}")
    consumer.start()
    assert consumer.subscribed.wait(15), "ingest never subscribed"
    publisher = Publisher(broker.url, f"pub-{prefix[:9]}")
    payloads = reading_payloads(DEVICE, 3000)
    topic = f"{prefix}/acme/{DEVICE}/telemetry"
    try:
        publisher.publish(topic, payloads[:1500])
        publisher.wait_acked(1500)
        broker.stop()  # SIGTERM: Mosquitto writes its persistence file and exits
        publisher.publish(topic, payloads[1500:])  # queued in the client meanwhile
        broker = EmbeddedBroker(tmp_path / "broker", port)
        publisher.wait_acked(3000, 60)
        wait_for("every reading stored", lambda: _count(db_url) == 3000, 90)
    finally:
        publisher.close()
        consumer.stop()
        pool.close()
        broker.stop()
    assert db.execute("SELECT count(DISTINCT seq) AS n FROM readings").fetchone() == {"n": 3000}


topics = st.one_of(
    st.just("coldchain/v1/acme/LOG-REL-1/telemetry"),
    st.text(max_size=60),
    st.lists(
        st.sampled_from(["coldchain", "v1", "acme", "LOG-REL-1", "telemetry", "+", ""]), max_size=7
    ).map("/".join),
)
payloads = st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=20)
        # Timestamps at the calendar's edges: valid RFC 3339, beyond it in UTC; an
        # integer too big for a float.
        | st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-01:00", 10**400]),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["device_id", "ts", "temp_c", "readings", "lat", "status", "seq"]),
                inner,
                max_size=6,
            )
        ),
        max_leaves=12,
    ).map(lambda doc: __import__("json").dumps(doc).encode()),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(topics, payloads), min_size=1, max_size=8))
def test_garbage_never_crashes_and_is_recorded(
    db: psycopg.Connection[Row], garbage: list[tuple[str, bytes]]
) -> None:
    from tests.factories import T0

    register_device(db, DEVICE, "acme", 5, actor="test")
    before = db.execute(
        "SELECT (SELECT count(*) FROM rejected_messages) AS r, (SELECT count(*) FROM readings) AS s"
    ).fetchone()
    assert before is not None
    messages = [IncomingMessage(topic=t, payload=p, received_at=T0) for t, p in garbage]
    result = store_batch(db, messages, "coldchain/v1")
    after = db.execute(
        "SELECT (SELECT count(*) FROM rejected_messages) AS r, (SELECT count(*) FROM readings) AS s"
    ).fetchone()
    assert after is not None
    rejected = after["r"] - before["r"]
    assert rejected == sum(result.rejected.values()) == len(result.rejections)
    # Every message is either refused (and kept) or contributed readings (stored or not new).
    assert rejected + (len(messages) - rejected) == len(messages)
    assert after["s"] - before["s"] == result.stored


def test_garbage_over_mqtt_keeps_the_consumer_running(
    settings: Settings, db_url: str, db: psycopg.Connection[Row]
) -> None:
    register_device(db, DEVICE, "acme", 5, actor="test")
    pool = create_pool(db_url, name="garbage")
    consumer = IngestConsumer(settings, pool, client_id=f"ingest-{uuid.uuid4().hex[:8]}")
    consumer.start()
    assert consumer.subscribed.wait(15), "ingest never subscribed"
    assert settings.mqtt_url is not None
    publisher = Publisher(settings.mqtt_url, f"pub-{uuid.uuid4().hex[:8]}")
    prefix = settings.topic_prefix
    try:
        for topic, payload in [
            (f"{prefix}/acme/{DEVICE}/telemetry", b"\xff\x00garbage"),
            (f"{prefix}/acme/{DEVICE}/telemetry", b'{"device_id": "LOG-REL-1"}'),
            (f"{prefix}/acme/OTHER/telemetry", b'{"device_id": "LOG-REL-1", "ts": 1, "temp_c": 1}'),
            (f"{prefix}/acme/{DEVICE}/telemetry", b'{"device_id": "LOG-REL-1", "readings": []}'),
        ]:
            publisher.publish(topic, [payload])
        publisher.publish(f"{prefix}/acme/{DEVICE}/telemetry", reading_payloads(DEVICE, 1))
        wait_for("valid reading stored after garbage", lambda: _count(db_url) == 1, 30)
        wait_for(
            "garbage recorded",
            lambda: (
                db.execute("SELECT count(*) AS n FROM rejected_messages").fetchone() == {"n": 4}
            ),
            30,
        )
    finally:
        publisher.close()
        consumer.stop()
        pool.close()
    reasons = {r["reason"] for r in db.execute("SELECT reason FROM rejected_messages")}
    assert any(r.startswith("payload is not UTF-8") for r in reasons)
    assert "temp_c: required field is missing" in reasons
    assert "readings: must be a non-empty list" in reasons


def test_message_the_database_refuses_does_not_block_the_others(
    settings: Settings, db_url: str, db: psycopg.Connection[Row]
) -> None:
    register_device(db, DEVICE, "acme", 5, actor="test")
    # A stand-in for any message the database cannot take (a bug, a constraint added later).
    db.execute("""CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN IF NEW.temp_c = 13.37 THEN RAISE EXCEPTION 'poisoned reading'; END IF;
                  RETURN NEW; END $$""")
    db.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON readings FOR EACH ROW EXECUTE FUNCTION poison()"
    )
    pool = create_pool(db_url, name="poison")
    consumer = IngestConsumer(settings, pool, client_id=f"ingest-{uuid.uuid4().hex[:8]}")
    consumer.start()
    assert consumer.subscribed.wait(15), "ingest never subscribed"
    assert settings.mqtt_url is not None
    publisher = Publisher(settings.mqtt_url, f"pub-{uuid.uuid4().hex[:8]}")
    topic = f"{settings.topic_prefix}/acme/{DEVICE}/telemetry"
    good = reading_payloads(DEVICE, 20)
    poisoned = good[5].replace(b'"temp_c": 4.5', b'"temp_c": 13.37')
    assert poisoned != good[5]
    try:
        publisher.publish(topic, [*good[:5], poisoned, *good[6:]])
        wait_for("the good readings stored", lambda: _count(db_url) == 19, 30)
        wait_for(
            "the poisoned one kept",
            lambda: (
                db.execute("SELECT count(*) AS n FROM rejected_messages").fetchone() == {"n": 1}
            ),
            30,
        )
    finally:
        publisher.close()
        consumer.stop()
        pool.close()
    row = db.execute("SELECT reason, payload FROM rejected_messages").fetchone()
    assert row is not None and "poisoned reading" in row["reason"]
    assert bytes(row["payload"]) == poisoned
