"""MQTT consumer: QoS 1, persistent session, acknowledgement only after commit.

paho's network thread receives each message and parses it at once (pure Python, no
database), so parsing overlaps the writing of the previous batch. A writer thread takes
what has accumulated once it holds ``batch_size`` messages or ``MAX_BATCH_READINGS``
readings, or its first message has waited ``max_wait_s``; what arrived while the previous
batch was being written may be more (at most the receive window). It stores the batch in
one transaction, then acknowledges every message of it with one write. If the database is
down the batch is retried and nothing is acknowledged, so the broker keeps the messages.
"""

from __future__ import annotations

import gc
import logging
import struct
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from psycopg_pool import ConnectionPool

from core import mqtt as mqtt_support
from core.clock import Clock, SystemClock
from core.db import Row
from core.errors import StartupError
from core.settings import Settings
from ingest import metrics
from ingest.mqtt_tuning import Delivery, tune
from ingest.service import (
    IncomingMessage,
    PreparedBatch,
    record_rejection,
    store_batch,
    write_batch,
)

log = logging.getLogger(__name__)

# Messages the broker may have in flight to us unacknowledged (MQTT v5 Receive Maximum).
# A batch can hold no more messages than this, and while one batch is being written the
# next one fills from the same window, so it is twice the batch size. Mosquitto's
# default of 20 would stall a consumer that acknowledges only after a batch commits; for
# MQTT 3.1.1 the broker's max_inflight_messages is the window (deploy/mosquitto/*.conf).
RECEIVE_MAXIMUM = 40_000
# Each batch is one commit (a WAL flush of everything it wrote) and one device_latest
# upsert; big batches spread those over many readings (measured: 20,000-message batches
# store one-reading messages about 1.5 times as fast as 5,000-message ones). A batch
# also closes once its first message has waited ``max_wait_s``, so the size bound only
# matters under a heavy load. The reading bound keeps the memory of batch uploads in check.
BATCH_SIZE = 20_000
MAX_BATCH_READINGS = 25_000
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue for a week of downtime
_PUBACK = struct.Struct("!BBH")


class _Pending:
    """Messages received and parsed, not yet written; with what acknowledges them."""

    __slots__ = ("acks", "batch", "first_at")

    def __init__(self) -> None:
        self.batch = PreparedBatch()
        self.acks: list[tuple[int, int, int]] = []  # (connection generation, mid, qos)
        self.first_at = 0.0


class IngestConsumer:
    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool[psycopg.Connection[Row]],
        *,
        client_id: str = "coldchain-ingest",
        shared_group: str | None = None,
        batch_size: int = BATCH_SIZE,
        max_wait_s: float = 0.2,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.clock = clock or SystemClock()
        self.target = settings.mqtt
        topic = f"{settings.topic_prefix}/+/+/telemetry"
        self.subscription = f"$share/{shared_group}/{topic}" if shared_group else topic
        self._pending = _Pending()
        self._arrived = threading.Condition(threading.Lock())
        self._generation = 0  # counts connections: a packet id is only valid on its own
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._fatal: str | None = None
        self.client = tune(
            mqtt_support.new_client(
                self.target, client_id, manual_ack=True, persistent_session=True
            )
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_messages = self._receive
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect

    # -- paho callbacks (network thread: never block here) --------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            if mqtt_support.refused_for_credentials(reason):
                self._fatal = f"the broker refused the ingest credentials ({reason})"
                self._stop.set()
            log.warning("broker refused connection", extra={"reason": str(reason)})
            return
        with self._arrived:
            self._generation += 1
        client.subscribe(self.subscription, qos=1)
        log.info("connected to broker", extra={"subscription": self.subscription})

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        if any(reason.is_failure for reason in reasons):
            log.error(
                "broker refused the subscription",
                extra={"subscription": self.subscription, "reasons": [str(r) for r in reasons]},
            )
            return
        self.subscribed.set()
        log.info("subscribed", extra={"subscription": self.subscription})

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if not self._stop.is_set():
            log.warning("disconnected from broker; reconnecting", extra={"reason": str(reason)})

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # As the tuned client decodes topics: a topic that is not UTF-8 (which brokers
        # refuse from publishers anyway) is then refused with a reason, not an exception.
        topic = msg._topic.decode("utf-8", "replace")
        self._receive([(topic, bytes(msg.payload), msg.mid, msg.qos)])

    def _receive(self, deliveries: list[Delivery]) -> None:
        """Messages read from the broker together (the tuned client decodes a whole socket
        read at once): parsed, validated and added to the batch being gathered."""
        received_at = self.clock.now()
        prefix = self.settings.topic_prefix
        with self._arrived:
            pending = self._pending
            if not pending.acks:
                pending.first_at = time.monotonic()
                self._arrived.notify()
            generation = self._generation
            add, acks = pending.batch.add, pending.acks
            for topic, payload, mid, qos in deliveries:
                add(IncomingMessage(topic, payload, received_at), prefix)
                acks.append((generation, mid, qos))
            if self._full(pending):
                self._arrived.notify()

    def _full(self, pending: _Pending) -> bool:
        return len(pending.acks) >= self.batch_size or pending.batch.readings >= MAX_BATCH_READINGS

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        # Everything alive now (modules, settings, the pool) lives as long as the process:
        # keep it out of the cyclic garbage collector's full passes, which otherwise walk
        # it again and again while batches come and go.
        gc.freeze()
        kwargs: dict[str, Any] = {}
        if self.target.mqtt_v5:
            kwargs = {
                "clean_start": False,
                "properties": mqtt_support.connect_properties(SESSION_EXPIRY_S, RECEIVE_MAXIMUM),
            }
        mqtt_support.connect(self.client, self.target, **kwargs)
        self.client.loop_start()
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        """Flush what was received, acknowledge it, then disconnect."""
        self._stop.set()
        if hasattr(self, "_writer"):
            self._writer.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()
        if self._fatal:
            raise StartupError(self._fatal + "; check the user and password in COLDCHAIN_MQTT_URL")

    # -- writer thread ----------------------------------------------------------------------

    def _next_batch(self) -> _Pending | None:
        """What has arrived, once the batch is full or its first message waited long enough."""
        with self._arrived:
            if not self._pending.acks and not self._arrived.wait(timeout=0.2):
                return None
            while not self._full(self._pending):
                remaining = self._pending.first_at + self.max_wait_s - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    break
                self._arrived.wait(timeout=remaining)
            pending, self._pending = self._pending, _Pending()
        metrics.RECEIVED.inc(len(pending.acks))  # counted per batch, not per message
        return pending

    def _write_loop(self) -> None:
        while True:
            pending = self._next_batch()
            if pending is None:
                if self._stop.is_set():
                    return
                continue
            self._store_until_committed(pending.batch)
            self._acknowledge(pending.acks)

    def _acknowledge(self, acks: list[tuple[int, int, int]]) -> None:
        """Send the PUBACKs of a committed batch.

        Messages received on an earlier connection are not acknowledged: the broker
        delivers them again on this one (persistent session), possibly under packet ids
        that now belong to other messages, and storing them again changes nothing.
        """
        with self._arrived:
            generation = self._generation
        packets = [
            _PUBACK.pack(mqtt.PUBACK, 2, mid)
            for gen, mid, qos in acks
            if qos == 1 and gen == generation
        ]
        if not packets:
            return
        # One write for the whole batch. paho's ack() queues one packet and wakes its
        # network thread once per message, which costs more than storing the reading;
        # PUBACK is 4 bytes (MQTT 3.1.1, and v5 with reason "success"), so the batch's
        # acknowledgements go out as one queued packet.
        self.client._packet_queue(mqtt.PUBACK, b"".join(packets), 0, 0)

    def _store_until_committed(self, batch: PreparedBatch) -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                with self.pool.connection() as conn:
                    result = write_batch(conn, batch)
            except psycopg.OperationalError as exc:
                # Not acknowledged: the broker redelivers if we die; we retry while alive.
                log.error(
                    "database unavailable; batch kept for retry",
                    extra={"messages": len(batch.messages), "error": str(exc).strip()},
                )
                time.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            except psycopg.Error:
                # One message the database refuses must not hold up every message after it.
                log.exception("batch failed; storing its messages one by one")
                for message in batch.messages:
                    self._store_or_refuse(message)
                return
            metrics.observe(
                result, time.monotonic() - started, batch.messages[0].received_at, self.clock.now()
            )
            return

    def _store_or_refuse(self, message: IncomingMessage) -> None:
        """Store one message; if the database refuses it, keep it as a rejected message."""
        while True:
            try:
                with self.pool.connection() as conn:
                    try:
                        result = store_batch(conn, [message], self.settings.topic_prefix)
                    except psycopg.OperationalError:
                        raise
                    except psycopg.Error as exc:
                        conn.rollback()
                        reason = f"could not be stored ({type(exc).__name__}: {exc})".strip()
                        record_rejection(conn, message, None, reason)
                        conn.commit()
                        metrics.REJECTED.labels(reason="storage_error").inc()
                        return
            except psycopg.OperationalError:
                time.sleep(1)
                continue
            metrics.observe(result, 0.0, message.received_at, self.clock.now())
            return
