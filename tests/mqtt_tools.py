"""A plain QoS 1 publisher for tests that must survive broker restarts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import MqttTarget

START = datetime(2026, 4, 1, tzinfo=UTC)


def reading_payloads(device_id: str, count: int, step_s: int = 60) -> list[bytes]:
    return [
        json.dumps(
            {
                "device_id": device_id,
                "ts": (START + timedelta(seconds=i * step_s)).isoformat(),
                "seq": i,
                "temp_c": round(4 + (i % 40) / 10, 1),
            }
        ).encode()
        for i in range(count)
    ]


class Publisher:
    """Publishes at QoS 1 and counts broker acknowledgements; paho resends what was not
    acknowledged when it reconnects, so a broker restart loses nothing."""

    def __init__(self, url: str, client_id: str) -> None:
        target = MqttTarget(url)
        self.acked = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if target.mqtt_v5 else mqtt.MQTTv311,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.on_publish = self._on_publish
        self.client.connect(target.host, target.port)
        self.client.loop_start()

    def _on_publish(self, *_args: object) -> None:
        with self._lock:
            self.acked += 1

    def publish(
        self, topic: str, payloads: Iterable[bytes], pause_every: int = 0, pause_s: float = 0.0
    ) -> int:
        sent = 0
        for payload in payloads:
            info = self.client.publish(topic, payload, qos=1)
            # A refused publish (16-bit packet ids all in use) would be lost silently.
            assert info.rc != mqtt.MQTT_ERR_QUEUE_SIZE, "too many unacknowledged publishes"
            sent += 1
            if pause_every and sent % pause_every == 0:
                time.sleep(pause_s)
        return sent

    def wait_acked(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.acked >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"broker acknowledged {self.acked} of {count} publishes")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
