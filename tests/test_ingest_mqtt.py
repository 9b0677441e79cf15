"""The tuned paho client of the ingest, against the real broker and database."""

from __future__ import annotations

import socket
import time
import uuid

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.ingest_publisher import WirePublisher, publish_packets
from core.db import Row, connect, create_pool
from core.settings import MqttTarget, Settings
from ingest.consumer import IngestConsumer
from ingest.devices import register_device
from ingest.mqtt_tuning import _BufferedSocket, next_publish
from tests.mqtt_tools import reading_payloads
from tests.test_walking_skeleton import wait_for

DEVICE = "LOG-MQTT-1"


def _count(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT count(*) AS n FROM readings").fetchone()
    return 0 if row is None else int(row["n"])


def test_buffered_socket_hands_out_what_was_asked() -> None:
    left, right = socket.socketpair()
    try:
        wrapped = _BufferedSocket(left)
        right.sendall(b"\x30\x05hello\x30\x03abc")
        assert wrapped.recv(1) == b"\x30"
        assert wrapped.pending() == 11  # the rest of the chunk is buffered
        assert wrapped.recv(1) == b"\x05"
        assert wrapped.recv(5) == b"hello"
        assert wrapped.recv(1) == b"\x30"
        assert wrapped.recv(100) == b"\x03abc"  # never more than buffered
        assert wrapped.pending() == 0
        right.close()
        assert wrapped.recv(1) == b""  # the peer closed
        assert wrapped.fileno() == left.fileno()
    finally:
        left.close()


def _remaining_length(size: int) -> bytes:
    out = b""
    while True:
        size, digit = divmod(size, 128)
        out += bytes([digit | (0x80 if size else 0)])
        if not size:
            return out


def _publish(
    topic: bytes, mid: int, payload: bytes, properties: bytes | None, first: int = 0x32
) -> bytes:
    """A PUBLISH laid out by hand from the MQTT spec (properties None: MQTT 3.1.1)."""
    body = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big")
    if properties is not None:
        body += bytes([len(properties)]) + properties
    body += payload
    return bytes([first]) + _remaining_length(len(body)) + body


@pytest.mark.parametrize("v5", [True, False])
def test_buffered_publishes_are_decoded_in_one_pass(v5: bool) -> None:
    props = b"" if v5 else None
    big = b"x" * 20_000  # a three-byte remaining length
    chunk = (
        _publish(b"cc/a/L1/telemetry", 7, b'{"t":1}', props)
        + _publish("cc/a/Lé/telemetry".encode(), 65535, big, props, first=0x3B)  # DUP, RETAIN
        + _publish(b"cc/a/L1/telemetry", 9, b"", props)
    )
    position, decoded = 0, []
    while (result := next_publish(chunk, position, v5)) is not None:
        delivery, position = result
        decoded.append(delivery)
    assert position == len(chunk)
    assert decoded == [
        ("cc/a/L1/telemetry", b'{"t":1}', 7, 1),
        ("cc/a/Lé/telemetry", big, 65535, 1),
        ("cc/a/L1/telemetry", b"", 9, 1),
    ]


def test_packets_left_to_paho_are_not_decoded() -> None:
    whole = _publish(b"cc/a/L1/telemetry", 7, b"{}", b"")
    for cut in range(len(whole)):  # an incomplete packet waits for the rest
        assert next_publish(whole[:cut], 0, True) is None
    user_property = b"\x26\x00\x01k\x00\x01v"
    assert next_publish(_publish(b"cc/a/L1/telemetry", 7, b"{}", user_property), 0, True) is None
    assert next_publish(_publish(b"", 7, b"{}", b"\x23\x00\x01"), 0, True) is None  # alias
    assert next_publish(_publish(b"cc/t", 7, b"{}", b"", first=0x30), 0, True) is None  # QoS 0
    assert next_publish(_publish(b"cc/t", 7, b"{}", b"", first=0x34), 0, True) is None  # QoS 2
    assert next_publish(b"\x40\x02\x00\x07", 0, True) is None  # PUBACK
    assert next_publish(b"\x32\xff\xff\xff\xff\x7f", 0, True) is None  # malformed length
    assert next_publish(b"\x32\x03\x00\x09a", 0, True) is None  # topic longer than packet


def _protocol(target: MqttTarget) -> MQTTProtocolVersion:
    """The broker's protocol: MQTT v5 (Mosquitto), or 3.1.1 (the embedded amqtt fallback)."""
    return mqtt.MQTTv5 if target.mqtt_v5 else mqtt.MQTTv311


def _publisher(url: str) -> mqtt.Client:
    target = MqttTarget(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"pub-{uuid.uuid4().hex[:8]}",
        protocol=_protocol(target),
    )
    client.connect(target.host, target.port)
    client.loop_start()
    return client


@pytest.mark.storage
def test_messages_with_and_without_v5_properties_are_stored(
    settings: Settings, db_url: str, db: psycopg.Connection[Row]
) -> None:
    """The tuned client decodes a property-less QoS 1 PUBLISH itself and leaves the rest
    (properties — MQTT v5 only —, QoS 0) to paho; every kind the broker carries is stored."""
    register_device(db, DEVICE, "acme", 5, actor="test")
    assert settings.mqtt_url is not None
    v5 = MqttTarget(settings.mqtt_url).mqtt_v5
    pool = create_pool(db_url, name="tuned")
    consumer = IngestConsumer(settings, pool, client_id=f"ingest-{uuid.uuid4().hex[:8]}")
    consumer.start()
    publisher = _publisher(settings.mqtt_url)
    topic = f"{settings.topic_prefix}/acme/{DEVICE}/telemetry"
    payloads = reading_payloads(DEVICE, 4)
    properties = None
    if v5:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.MessageExpiryInterval = 3600
        properties.UserProperty = [("firmware", "2.1")]
    try:
        assert consumer.subscribed.wait(15), "ingest never subscribed"
        publisher.publish(topic, payloads[0], qos=1).wait_for_publish(10)
        # With properties on MQTT v5; MQTT 3.1.1 has none, so a plain QoS 1 message there.
        publisher.publish(topic, payloads[1], qos=1, properties=properties).wait_for_publish(10)
        publisher.publish(topic, payloads[2], qos=0).wait_for_publish(10)
        publisher.publish(topic, payloads[3], qos=1).wait_for_publish(10)
        wait_for("all four stored", lambda: _count(db_url) == 4, 30)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        consumer.stop()
        pool.close()
    seqs = [r["seq"] for r in db.execute("SELECT seq FROM readings ORDER BY seq")]
    assert seqs == [0, 1, 2, 3]


@pytest.mark.storage
def test_burst_is_stored_once_and_acknowledged(
    settings: Settings, db_url: str, db: psycopg.Connection[Row]
) -> None:
    """A burst far larger than a batch: every message stored once, and every one
    acknowledged (the broker has nothing left to redeliver to the same session)."""
    register_device(db, DEVICE, "acme", 5, actor="test")
    assert settings.mqtt_url is not None
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    pool = create_pool(db_url, name="burst")
    consumer = IngestConsumer(settings, pool, client_id=client_id, batch_size=700)
    consumer.start()
    topic = f"{settings.topic_prefix}/acme/{DEVICE}/telemetry"
    payloads = reading_payloads(DEVICE, 5000)
    try:
        assert consumer.subscribed.wait(15), "ingest never subscribed"
        publisher = WirePublisher(settings.mqtt_url, f"pub-{uuid.uuid4().hex[:8]}")
        publisher.send(publish_packets([(topic, p) for p in payloads]), window=2000)
        publisher.close()
        wait_for("the burst stored", lambda: _count(db_url) == len(payloads), 60)
    finally:
        consumer.stop()
        pool.close()
    # Resume the ingest's persistent session: anything not acknowledged would come again.
    target = MqttTarget(settings.mqtt_url)
    redelivered: list[int] = []
    if target.mqtt_v5:
        resumed = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        resumed.on_message = lambda _c, _u, msg: redelivered.append(msg.mid)
        resumed.connect(target.host, target.port, clean_start=False)
    else:  # MQTT 3.1.1 names the persistent session at construction
        resumed = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        resumed.on_message = lambda _c, _u, msg: redelivered.append(msg.mid)
        resumed.connect(target.host, target.port)
    resumed.loop_start()
    time.sleep(2)
    resumed.disconnect()
    resumed.loop_stop()
    assert redelivered == []
    assert db.execute("SELECT count(DISTINCT seq) AS n FROM readings").fetchone() == {
        "n": len(payloads)
    }
