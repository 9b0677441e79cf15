"""Ingest throughput: the same readings into the same table five ways (issue 4).

(a) ceiling: `psql \\copy` of the rows; (b) the baseline most people write: a paho
`on_message` that INSERTs each row; (c) this ingest end to end through Mosquitto at QoS 1,
one reading per message; (d) the same with 50-reading batch messages; (e) this ingest's
writer alone, fed from memory. Each line: readings/s, ratio to (a), CPU seconds per
process, and a loss check (rows stored = unique readings sent). Results are printed as a
table and saved to bench/results/ingest.json.

Uses COLDCHAIN_TEST_DATABASE_URL / COLDCHAIN_TEST_MQTT_URL when set, else embedded ones.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg import sql

from core.db import connect
from core.embedded import EmbeddedBroker, EmbeddedPostgres
from core.migrations import migrate
from core.settings import MqttTarget
from ingest.devices import register_device
from ingest.service import IncomingMessage, store_batch

DEVICES = 100
PER_DEVICE = 2_000  # 200,000 readings for (a), (c), (d), (e)
BASELINE_READINGS = 20_000  # (b) is slow; its rate is measured on fewer rows
START = datetime(2026, 1, 1, tzinfo=UTC)
RESULTS = Path(__file__).parent / "results" / "ingest.json"
PREFIX = "bench/v1"
MAX_UNACKED = 20_000


@dataclass
class Line:
    name: str
    readings: int
    seconds: float
    stored: int
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.readings / self.seconds


def readings(devices: int, per_device: int) -> list[dict[str, Any]]:
    rows = []
    for d in range(devices):
        device = f"BENCH-{d:04d}"
        for i in range(per_device):
            rows.append(
                {
                    "device_id": device,
                    "ts": (START + timedelta(minutes=i)).isoformat(),
                    "seq": i,
                    "temp_c": round(4 + (i % 40) / 10, 1),
                    "lat": 40.0,
                    "lon": -73.0,
                    "battery_pct": 90.0,
                }
            )
    return rows


def _count(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT count(*) AS n FROM readings").fetchone()
    return 0 if row is None else int(row["n"])


def _reset(url: str) -> None:
    with connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE readings, device_latest, reading_conflicts, rejected_messages")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# -- (a) psql \copy ------------------------------------------------------------------------


def bench_copy(url: str, rows: list[dict[str, Any]], folder: Path) -> Line:
    csv_path = folder / "readings.csv"
    with csv_path.open("w") as out:
        for r in rows:
            out.write(
                f"{r['device_id']},{r['ts']},{r['seq']},{r['temp_c']},{r['lat']},"
                f"{r['lon']},{r['battery_pct']}\n"
            )
    command = (
        f"\\copy readings (device_id, ts, seq, temp_c, lat, lon, battery_pct) "
        f"FROM '{csv_path}' WITH (FORMAT csv)"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", command], capture_output=True, check=True
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    psql_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Line("(a) psql \\copy (ceiling)", len(rows), seconds, _count(url), {"psql": psql_cpu})


# -- publishers -----------------------------------------------------------------------------


def _publish_worker(
    url: str, messages: list[tuple[str, bytes]], ready: Any, go: Any, cpu_out: Any
) -> None:
    target = MqttTarget(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    done = {"n": 0}

    def on_publish(*_args: object) -> None:
        done["n"] += 1

    client.on_publish = on_publish
    client.connect(target.host, target.port)
    client.loop_start()
    ready.set()
    go.wait()
    for sent, (topic, payload) in enumerate(messages, start=1):
        client.publish(topic, payload, qos=1)
        # MQTT packet ids are 16-bit: paho refuses a publish whose id is still queued, so
        # keep well under 65,535 unacknowledged messages (backpressure, as a logger would).
        while sent - done["n"] > MAX_UNACKED:
            time.sleep(0.001)
    deadline = time.monotonic() + 300
    while done["n"] < len(messages) and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    cpu_out.put(_cpu(psutil.Process()))


def _messages(rows: list[dict[str, Any]], batch: int) -> list[tuple[str, bytes]]:
    by_device: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_device.setdefault(r["device_id"], []).append(r)
    out = []
    for device, items in by_device.items():
        topic = f"{PREFIX}/bench/{device}/telemetry"
        if batch == 1:
            out += [(topic, json.dumps(r, separators=(",", ":")).encode()) for r in items]
        else:
            for i in range(0, len(items), batch):
                chunk = [
                    {k: v for k, v in r.items() if k != "device_id"} for r in items[i : i + batch]
                ]
                out.append(
                    (
                        topic,
                        json.dumps(
                            {"device_id": device, "readings": chunk}, separators=(",", ":")
                        ).encode(),
                    )
                )
    # Interleave devices as a fleet would.
    out.sort(key=lambda m: hash(m[1]) % 9973)
    return out


def _run_publishers(
    url: str, messages: list[tuple[str, bytes]], workers: int
) -> tuple[Callable[[], None], Callable[[], float]]:
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    cpu_out: Any = ctx.Queue()
    procs = []
    for w in range(workers):
        ready = ctx.Event()
        proc = ctx.Process(
            target=_publish_worker, args=(url, messages[w::workers], ready, go, cpu_out)
        )
        proc.start()
        ready.wait(30)
        procs.append(proc)

    def start() -> None:
        go.set()

    def finish() -> float:
        for proc in procs:
            proc.join(600)
        return sum(cpu_out.get(timeout=10) for _ in procs)

    return start, finish


def _wait_stored(url: str, expected: int, timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _count(url) >= expected:
            return time.perf_counter()
        time.sleep(0.05)
    return time.perf_counter()


# -- (b) naive on_message INSERT -------------------------------------------------------------


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
    cpu_out.put(_cpu(psutil.Process()))


def bench_naive(db_url: str, mqtt_url: str, rows: list[dict[str, Any]]) -> Line:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    cpu_out: Any = ctx.Queue()
    consumer = ctx.Process(
        target=_naive_consumer, args=(db_url, mqtt_url, ready, cpu_out, len(rows))
    )
    consumer.start()
    ready.wait(30)
    start, finish = _run_publishers(mqtt_url, _messages(rows, 1), 1)
    started = time.perf_counter()
    start()
    publisher_cpu = finish()
    ended = _wait_stored(db_url, len(rows))
    consumer.join(60)
    return Line(
        "(b) paho on_message INSERT per row",
        len(rows),
        ended - started,
        _count(db_url),
        {"consumer": cpu_out.get(timeout=10), "publisher": publisher_cpu},
    )


# -- (c)/(d) this ingest end to end ---------------------------------------------------------


def bench_ingest(
    db_url: str, mqtt_url: str, rows: list[dict[str, Any]], batch: int, name: str, folder: Path
) -> Line:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")},
        "COLDCHAIN_DATABASE_URL": db_url,
        "COLDCHAIN_MQTT_URL": mqtt_url,
        "COLDCHAIN_TOPIC_PREFIX": PREFIX,
        "COLDCHAIN_LOG_LEVEL": "WARNING",
    }
    log = folder / f"ingest-{batch}.log"
    client_id = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    ingest = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "ingest", "--client-id", client_id],
        env={**env, "COLDCHAIN_LOG_LEVEL": "INFO"},
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    deadline = time.monotonic() + 30
    while "ingest.consumer: subscribed" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    start, finish = _run_publishers(mqtt_url, _messages(rows, batch), 1)
    started = time.perf_counter()
    start()
    publisher_cpu = finish()
    ended = _wait_stored(db_url, len(rows))
    ingest_cpu = _cpu(psutil.Process(ingest.pid))
    ingest.terminate()
    ingest.wait(60)
    return Line(
        name,
        len(rows),
        ended - started,
        _count(db_url),
        {"ingest": ingest_cpu, "publisher": publisher_cpu},
    )


# -- (e) writer only -------------------------------------------------------------------------


def bench_writer(db_url: str, rows: list[dict[str, Any]]) -> Line:
    received = datetime.now(UTC)
    messages = [
        IncomingMessage(topic=topic, payload=payload, received_at=received)
        for topic, payload in _messages(rows, 1)
    ]
    me = psutil.Process()
    cpu_before = _cpu(me)
    started = time.perf_counter()
    with connect(db_url) as conn:
        for i in range(0, len(messages), 500):
            store_batch(conn, messages[i : i + 500], PREFIX)
    seconds = time.perf_counter() - started
    return Line(
        "(e) this ingest's writer, from memory",
        len(rows),
        seconds,
        _count(db_url),
        {"writer": _cpu(me) - cpu_before},
    )


def _services(folder: Path) -> tuple[str, str, list[Callable[[], None]]]:
    stops: list[Callable[[], None]] = []
    db_url = os.environ.get("COLDCHAIN_TEST_DATABASE_URL")
    mqtt_url = os.environ.get("COLDCHAIN_TEST_MQTT_URL")
    if db_url:
        name = f"cc_bench_{uuid.uuid4().hex[:8]}"
        with connect(db_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        base = db_url.rsplit("/", 1)[0]
        bench_url = f"{base}/{name}"

        def drop() -> None:
            with connect(db_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

        stops.append(drop)
    else:
        server = EmbeddedPostgres(folder / "pg", delete_on_stop=True)
        bench_url = server.url()
        stops.append(server.stop)
    if not mqtt_url:
        broker = EmbeddedBroker(folder / "broker")
        mqtt_url = broker.url
        stops.append(broker.stop)
    return bench_url, mqtt_url, stops


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db_url, mqtt_url, stops = _services(folder)
        try:
            migrate(db_url)
            with connect(db_url, autocommit=True) as conn:
                for d in range(DEVICES):
                    register_device(conn, f"BENCH-{d:04d}", "bench", 1, actor="bench")
                engine = conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
                ).fetchone()
            rows = readings(DEVICES, PER_DEVICE)
            lines = []
            for make in (
                lambda: bench_copy(db_url, rows, folder),
                lambda: bench_naive(db_url, mqtt_url, rows[:BASELINE_READINGS]),
                lambda: bench_ingest(
                    db_url, mqtt_url, rows, 1, "(c) this ingest, 1 reading/message", folder
                ),
                lambda: bench_ingest(
                    db_url, mqtt_url, rows, 50, "(d) this ingest, 50 readings/message", folder
                ),
                lambda: bench_writer(db_url, rows),
            ):
                _reset(db_url)
                lines.append(make())
        finally:
            for stop in reversed(stops):
                stop()
    _report(lines, "TimescaleDB " + engine["extversion"] if engine else "PostgreSQL")


def _report(lines: list[Line], engine: str) -> None:
    ceiling = lines[0].rate
    machine = (
        f"{platform.machine()}, {psutil.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {engine}"
    )
    print(f"ingest benchmark — {machine}")
    print(f"{'method':<42} {'readings':>9} {'readings/s':>11} {'× (a)':>7} {'lost':>5}  CPU s")
    for line in lines:
        lost = line.readings - line.stored
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in line.cpu.items()) or "—"
        print(
            f"{line.name:<42} {line.readings:>9,} {line.rate:>11,.0f} "
            f"{line.rate / ceiling:>7.2f} {lost:>5}  {cpu}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": machine,
                "measured_at": datetime.now(UTC).isoformat(),
                "lines": [
                    {
                        **asdict(line),
                        "readings_per_s": line.rate,
                        "ratio_to_copy": line.rate / ceiling,
                    }
                    for line in lines
                ],
            },
            indent=2,
        )
    )
