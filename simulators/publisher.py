"""Publishing a simulated fleet: to MQTT (one client per logger) or to a JSONL file."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import paho.mqtt.client as mqtt

from core import mqtt as mqtt_support
from core.settings import MqttTarget
from simulators.fleet import SimulatedReading, topic_for
from simulators.scenario import Scenario, ShipmentPlan

log = logging.getLogger(__name__)


def encode(payload: dict[str, object]) -> str:
    """The exact bytes a logger publishes (compact JSON, stable key order)."""
    return json.dumps(payload, separators=(",", ":"))


def simulation_start(scenario: Scenario, now: datetime, speed: float | None) -> datetime:
    """Device time of the first reading for a live run.

    The run is placed so that no reading is ever stamped in the future: real time starts
    now; accelerated and ``max`` runs start in the past and catch up with the wall clock.
    """
    duration = timedelta(hours=scenario.duration_h)
    if speed is None:
        return now - duration
    return now - duration * ((speed - 1) / speed)


def write_jsonl(readings: Iterable[SimulatedReading], prefix: str, out: IO[str]) -> int:
    count = 0
    for reading in readings:
        line = {"topic": topic_for(prefix, reading.plan), "payload": encode(reading.payload)}
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
        count += 1
    return count


class MqttFleet:
    """One connected client per logger, each with its own client id and status topic."""

    def __init__(self, target: MqttTarget, prefix: str, plans: list[ShipmentPlan]) -> None:
        self.prefix = prefix
        self.clients: dict[str, mqtt.Client] = {}
        self.status_topics: dict[str, str] = {}
        for plan in plans:
            client = mqtt_support.new_client(target, f"sim-{plan.device}")
            status = f"{prefix}/{plan.carrier}/{plan.device}/status"
            client.will_set(status, "offline", qos=1, retain=True)
            mqtt_support.connect(client, target)
            client.loop_start()
            client.publish(status, "online", qos=1, retain=True)
            self.clients[plan.device] = client
            self.status_topics[plan.device] = status

    def publish(self, reading: SimulatedReading) -> mqtt.MQTTMessageInfo:
        client = self.clients[reading.plan.device]
        return client.publish(topic_for(self.prefix, reading.plan), encode(reading.payload), qos=1)

    def close(self) -> None:
        for device, client in self.clients.items():
            # A clean disconnect does not fire the will, so say "offline" ourselves.
            client.publish(
                self.status_topics[device], "offline", qos=1, retain=True
            ).wait_for_publish(5)
            client.disconnect()
            client.loop_stop()


def publish_fleet(
    fleet: MqttFleet,
    readings: list[SimulatedReading],
    speed: float | None,
    stop: threading.Event,
) -> int:
    """Publish in device-time order, paced by ``speed`` (None: as fast as possible)."""
    if not readings:
        return 0
    first_ts = readings[0].ts
    wall_start = time.monotonic()
    pending: list[mqtt.MQTTMessageInfo] = []
    sent = 0
    for reading in readings:
        if speed is not None:
            due = wall_start + (reading.ts - first_ts).total_seconds() / speed
            if stop.wait(max(0.0, due - time.monotonic())):
                break
        elif stop.is_set():
            break
        pending.append(fleet.publish(reading))
        sent += 1
        if len(pending) >= 500:
            for info in pending:
                info.wait_for_publish(timeout=30)
            pending.clear()
    for info in pending:
        info.wait_for_publish(timeout=30)
    return sent


def output_path(path: str) -> Path:
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise ValueError(f"--output {path}: folder {target.parent} does not exist")
    return target
