"""Ingest benchmark line (b): the baseline most people write, a paho ``on_message`` that
INSERTs each reading, fed by the same publisher as the ingest under test."""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest_publisher import (
    PREFIX,
    count_stored,
    cpu_seconds,
    messages,
    run_publishers,
    wait_stored,
)
from core.settings import MqttTarget


@dataclass
class Line:
    """One line of the benchmark's table."""

    name: str
    readings: int
    seconds: float
    stored: int
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.readings / self.seconds


def _naive_consumer(db_url: str, mqtt_url: str, ready: Any, cpu_out: Any, expected: int) -> None:
    target = MqttTarget(mqtt_url)
    conn = psycopg.connect(db_url, autocommit=True)
    stored = {"n": 0}

    def on_connect(client: mqtt.Client, *_args: object) -> None:
        client.subscribe(f"{PREFIX}/+/+/telemetry", qos=1)

    def on_subscribe(*_args: object) -> None:
        ready.set()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        r = json.loads(msg.payload)
        conn.execute(
            "INSERT INTO readings (device_id, ts, seq, temp_c, lat, lon, battery_pct) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (r["device_id"], r["ts"], r["seq"], r["temp_c"], r["lat"], r["lon"], r["battery_pct"]),
        )
        stored["n"] += 1

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-naive", protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(target.host, target.port)
    client.loop_start()
    deadline = time.monotonic() + 600
    while stored["n"] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    cpu_out.put(cpu_seconds(psutil.Process()))


def bench_naive(db_url: str, mqtt_url: str, rows: list[dict[str, Any]]) -> Line:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    cpu_out: Any = ctx.Queue()
    consumer = ctx.Process(
        target=_naive_consumer, args=(db_url, mqtt_url, ready, cpu_out, len(rows))
    )
    consumer.start()
    ready.wait(30)
    start, finish = run_publishers(mqtt_url, db_url, messages(rows, 1), 1)
    started = time.perf_counter()
    start()
    publisher_cpu = finish()
    ended = wait_stored(db_url, len(rows))
    consumer.join(60)
    return Line(
        "(b) paho on_message INSERT per row",
        len(rows),
        ended - started,
        count_stored(db_url),
        {"consumer": cpu_out.get(timeout=10), "publisher": publisher_cpu},
    )
