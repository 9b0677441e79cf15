"""The ingest benchmark's load: its messages, and a publisher that is not the bottleneck.

A fleet of loggers costs the ingest host nothing; a Python MQTT client publishing the same
messages from the same two cores costs more CPU per message than the ingest under test
(paho used 30 CPU seconds to publish 200,000 messages). So the benchmark speaks MQTT 3.1.1
directly over a socket: every PUBLISH packet (QoS 1) is encoded before the clock starts,
packets are written in large chunks, and a reader thread counts the broker's PUBACKs.
At most ``window`` messages are unacknowledged by the broker at any time, so the 16-bit
packet ids (1..65535, reused in order) are never reused while still in flight.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psutil

from core.db import connect
from core.settings import MqttTarget

CONNECT = 0x10
CONNACK = 0x20
PUBLISH_QOS1 = 0x32
DISCONNECT = b"\xe0\x00"
PUBACK_SIZE = 4  # fixed header, remaining length 2, packet id
CHUNK = 256  # packets per socket write


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(value: bytes) -> bytes:
    return struct.pack("!H", len(value)) + value


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02  # clean session: the publisher keeps no state at the broker
    payload = _string(client_id.encode())
    if username is not None:
        flags |= 0x80
        payload += _string(username.encode())
        if password is not None:
            flags |= 0x40
            payload += _string(password.encode())
    # Protocol "MQTT", level 4 (3.1.1), flags, keep-alive 0 (no PINGREQ needed).
    body = _string(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 0) + payload
    return bytes([CONNECT]) + _remaining_length(len(body)) + body


def publish_packets(topic_payloads: list[tuple[str, bytes]]) -> list[bytes]:
    """QoS 1 PUBLISH packets with packet ids 1..65535, reused in order."""
    packets = []
    for number, (topic, payload) in enumerate(topic_payloads):
        mid = number % 65535 + 1
        body = _string(topic.encode()) + struct.pack("!H", mid) + payload
        packets.append(bytes([PUBLISH_QOS1]) + _remaining_length(len(body)) + body)
    return packets


class WirePublisher:
    def __init__(self, url: str, client_id: str) -> None:
        target = MqttTarget(url)
        if target.tls:
            raise ValueError("the benchmark publisher speaks plain MQTT; use a mqtt:// URL")
        self._sock = socket.create_connection((target.host, target.port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(connect_packet(client_id, target.username, target.password))
        connack = self._read_exactly(4)
        if connack[0] != CONNACK or connack[3] != 0:
            raise ConnectionError(f"broker refused the benchmark publisher ({connack.hex()})")
        self._received = 0
        self._closed = False
        self._reader = threading.Thread(target=self._count_acks, name="bench-acks", daemon=True)
        self._reader.start()

    def _read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def _count_acks(self) -> None:
        # After CONNACK the broker sends this client nothing but 4-byte PUBACKs.
        self._sock.settimeout(None)
        while not self._closed:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self._received += len(chunk)

    @property
    def acked(self) -> int:
        return self._received // PUBACK_SIZE

    def send(
        self,
        packets: list[bytes],
        window: int,
        backlog: tuple[int, Callable[[], int]] | None = None,
        timeout_s: float = 600,
    ) -> None:
        """Write every packet, keeping at most ``window`` unacknowledged; wait for all acks.

        ``backlog`` is (limit, consumed): before each chunk beyond ``limit`` messages, wait
        until fewer than ``limit`` sent messages are unconsumed (``consumed()`` is checked at
        most every 0.2 s). The broker drops QoS 1 messages for a subscriber whose queue is
        full, so a publisher far faster than the subscriber must not run ahead of it.
        """
        if window > 65535 - CHUNK:
            raise ValueError("window must leave packet ids free (at most 65,279)")
        deadline = time.monotonic() + timeout_s
        consumed = 0
        for start in range(0, len(packets), CHUNK):
            while start + CHUNK - self.acked > window:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"broker acknowledged {self.acked} of {start} publishes")
                time.sleep(0.0005)
            while backlog is not None and start + CHUNK - consumed > backlog[0]:
                consumed = backlog[1]()
                if start + CHUNK - consumed > backlog[0]:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"subscriber consumed {consumed} of {start} messages")
                    time.sleep(0.2)
            self._sock.sendall(b"".join(packets[start : start + CHUNK]))
        while self.acked < len(packets):
            if time.monotonic() > deadline:
                raise TimeoutError(f"broker acknowledged {self.acked} of {len(packets)} publishes")
            time.sleep(0.001)

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.sendall(DISCONNECT)
        finally:
            self._sock.close()


# -- the load of the benchmark: messages, publisher processes, progress --------------------

PREFIX = "bench/v1"
MAX_UNACKED = 20_000  # unacknowledged by the broker (16-bit packet ids)
MAX_AHEAD = 60_000  # sent but not yet stored by the consumer under test


def count_stored(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT count(*) AS n FROM readings").fetchone()
    return 0 if row is None else int(row["n"])


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _publish_worker(
    url: str, db_url: str, messages: list[tuple[str, bytes]], ready: Any, go: Any, cpu_out: Any
) -> None:
    packets = publish_packets(messages)  # encoded before the clock starts
    publisher = WirePublisher(url, f"bench-pub-{uuid.uuid4().hex[:6]}")
    per_message = _count_readings(messages[0][1])
    ready.set()
    go.wait()
    cpu_before = cpu_seconds(psutil.Process())
    # Stay well inside the broker's per-subscriber queue (max_queued_messages 100,000).
    publisher.send(packets, MAX_UNACKED, (MAX_AHEAD, lambda: count_stored(db_url) // per_message))
    publisher.close()
    cpu_out.put(cpu_seconds(psutil.Process()) - cpu_before)


def _count_readings(payload: bytes) -> int:
    document = json.loads(payload)
    return len(document["readings"]) if "readings" in document else 1


def messages(rows: list[dict[str, Any]], batch: int) -> list[tuple[str, bytes]]:
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


def run_publishers(
    url: str, db_url: str, messages: list[tuple[str, bytes]], workers: int
) -> tuple[Callable[[], None], Callable[[], float]]:
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    cpu_out: Any = ctx.Queue()
    procs = []
    for w in range(workers):
        ready = ctx.Event()
        proc = ctx.Process(
            target=_publish_worker,
            args=(url, db_url, messages[w::workers], ready, go, cpu_out),
        )
        proc.start()
        ready.wait(30)
        procs.append(proc)

    def start() -> None:
        go.set()

    def finish() -> float:
        for proc in procs:
            proc.join(600)
        return sum(float(cpu_out.get(timeout=10)) for _ in procs)

    return start, finish


def wait_stored(url: str, expected: int, timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if count_stored(url) >= expected:
            return time.perf_counter()
        time.sleep(0.05)
    return time.perf_counter()
