"""MQTT consumer: QoS 1, persistent session, acknowledgement only after commit.

paho's network thread only enqueues; a writer thread batches by size and time, stores the
batch in one transaction, then acknowledges each message. If the database is down the
batch is retried and nothing is acknowledged, so the broker keeps the messages.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
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
from ingest.service import IncomingMessage, record_rejection, store_batch

log = logging.getLogger(__name__)

# Messages the broker may have in flight to us unacknowledged. Mosquitto's default of 20
# would stall a consumer that acknowledges only after a batch commits; the repo's
# mosquitto.conf raises max_inflight_messages to match (docs/operations.md).
RECEIVE_MAXIMUM = 1000
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue for a week of downtime


@dataclass(frozen=True, slots=True)
class _Pending:
    message: IncomingMessage
    mid: int
    qos: int


class IngestConsumer:
    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool[psycopg.Connection[Row]],
        *,
        client_id: str = "coldchain-ingest",
        shared_group: str | None = None,
        batch_size: int = 500,
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
        self._inbox: queue.Queue[_Pending] = queue.Queue()
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._fatal: str | None = None
        self.client = mqtt_support.new_client(
            self.target, client_id, manual_ack=True, persistent_session=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
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
        metrics.RECEIVED.inc()
        incoming = IncomingMessage(
            topic=msg.topic, payload=bytes(msg.payload), received_at=self.clock.now()
        )
        self._inbox.put(_Pending(incoming, msg.mid, msg.qos))

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
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

    def _next_batch(self) -> list[_Pending]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                if self._stop.is_set():
                    return
                continue
            self._store_until_committed(batch)
            for pending in batch:
                if pending.qos > 0:
                    self.client.ack(pending.mid, pending.qos)

    def _store_until_committed(self, batch: list[_Pending]) -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                with self.pool.connection() as conn:
                    result = store_batch(
                        conn, [p.message for p in batch], self.settings.topic_prefix
                    )
            except psycopg.OperationalError as exc:
                # Not acknowledged: the broker redelivers if we die; we retry while alive.
                log.error(
                    "database unavailable; batch kept for retry",
                    extra={"messages": len(batch), "error": str(exc).strip()},
                )
                time.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            except psycopg.Error:
                # One message the database refuses must not hold up every message after it.
                log.exception("batch failed; storing its messages one by one")
                for pending in batch:
                    self._store_or_refuse(pending.message)
                return
            metrics.observe(
                result, time.monotonic() - started, batch[0].message.received_at, self.clock.now()
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
