"""Publishing simulated loggers: to MQTT (each with its own client) or to a JSONL file.

Each logger is its own MQTT client — client id ``sim-<device>``, its own credentials,
retained ``online``/``offline`` status with a last will — as a real one would be. A
thread per client (paho's ``loop_start``) does not scale to thousands of loggers, so one
thread drives every socket through a selector with paho's ``loop_read``/``loop_write``/
``loop_misc`` (the "external event loop" API); the only limit is open file descriptors,
which is raised to the hard limit and checked up front.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import resource
import selectors
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import paho.mqtt.client as mqtt

from core import mqtt as mqtt_support
from core.errors import StartupError
from core.settings import MqttTarget
from simulators.device import SimulatedMessage, encode
from simulators.fleet import topic_for
from simulators.progress import Progress
from simulators.scenario import Scenario

log = logging.getLogger(__name__)

__all__ = [
    "MqttFleet",
    "device_credentials",
    "device_password",
    "encode",
    "output_path",
    "publish_fleet",
    "simulation_start",
    "write_jsonl",
]
CONNECT_WAVE = 200  # connections opened at once before waiting for their CONNACKs
MAX_UNACKED = 20_000  # messages in flight across the fleet before publishing waits
KEEPALIVE_CHECK_S = 5.0
_FD_RESERVE = 64  # descriptors kept for the process's own files, database, logs


class LoggerIdentity(Protocol):
    @property
    def device(self) -> str: ...

    @property
    def carrier(self) -> str: ...


def simulation_start(scenario: Scenario, now: datetime, speed: float | None) -> datetime:
    """Device time of the first reading for a live run.

    The run is placed so that no reading is ever stamped in the future: real time starts
    now; accelerated and ``max`` runs start in the past and catch up with the wall clock.
    """
    duration = timedelta(hours=scenario.duration_h)
    if speed is None:
        return now - duration
    return now - duration * ((speed - 1) / speed) if speed > 1 else now


def device_password(secret_key: str, device: str) -> str:
    """A simulated logger's MQTT password: HMAC-SHA256(secret key, device id), hex."""
    return hmac.new(secret_key.encode(), device.encode(), hashlib.sha256).hexdigest()


def device_credentials(
    target: MqttTarget, secret_key: str | None, device: str
) -> tuple[str | None, str | None]:
    """Username and password a simulated logger logs in with.

    A user named in ``COLDCHAIN_MQTT_URL`` is a shared service account (the `simulator`
    user of deploy/mosquitto/acl) and wins; otherwise, with a secret key, each logger is
    its own user with a derived password (what `--provision` registers); otherwise
    anonymous (the dev broker).
    """
    if target.username is not None:
        return target.username, target.password
    if secret_key:
        return device, device_password(secret_key, device)
    return None, None


def write_jsonl(
    messages: Iterable[SimulatedMessage],
    prefix: str,
    out: IO[str],
    progress: Progress | None = None,
) -> int:
    """One ``{"topic", "payload"}`` line per message, payload exactly as published."""
    count = 0
    for message in messages:
        line = {
            "topic": topic_for(prefix, message.carrier, message.device),
            "payload": message.payload,
        }
        out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
        count += 1
        if progress is not None:
            progress.update(message.at, f"{count} messages")
    return count


def output_path(path: str) -> Path:
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise ValueError(f"--output {path}: folder {target.parent} does not exist")
    return target


class MqttFleet:
    """One connected MQTT client per logger, all driven from the calling thread."""

    def __init__(
        self,
        target: MqttTarget,
        prefix: str,
        loggers: Iterable[LoggerIdentity],
        *,
        secret_key: str | None = None,
        connect_timeout_s: float = 20.0,
    ) -> None:
        self.target = target
        self.prefix = prefix
        self.secret_key = secret_key
        self.sent = 0  # telemetry and status publications
        self.acked = 0
        self.refused = 0  # PUBACKs with a failure reason (MQTT v5: not authorized)
        self._lock = threading.RLock()
        self._selector = selectors.DefaultSelector()
        self._clients: dict[str, mqtt.Client] = {}
        self._status: dict[str, str] = {}
        self._connack: dict[str, Any] = {}
        self._lost: set[str] = set()
        self._dirty: set[mqtt.Client] = set()
        self._last_misc = time.monotonic()
        self._closed = False
        unique = {logger.device: logger.carrier for logger in loggers}
        _ensure_descriptors(len(unique))
        devices = list(unique.items())
        try:
            for first in range(0, len(devices), CONNECT_WAVE):
                self._connect_wave(devices[first : first + CONNECT_WAVE], connect_timeout_s)
        except BaseException:
            self._drop_all()
            raise

    # -- connections ---------------------------------------------------------------------

    def _connect_wave(self, devices: list[tuple[str, str]], timeout_s: float) -> None:
        for device, carrier in devices:
            user, password = device_credentials(self.target, self.secret_key, device)
            client = mqtt_support.new_client(
                self.target, f"sim-{device}", username=user, password=password
            )
            client.user_data_set(device)
            status = f"{self.prefix}/{carrier}/{device}/status"
            client.will_set(status, "offline", qos=1, retain=True)
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_publish = self._on_publish
            self._clients[device] = client
            self._status[device] = status
            mqtt_support.connect(client, self.target)
            self._register(client)
        deadline = time.monotonic() + timeout_s
        while any(device not in self._connack for device, _ in devices):
            if time.monotonic() > deadline:
                raise StartupError(
                    f"the MQTT broker at {self.target.redacted()} did not answer the simulated "
                    f"loggers' CONNECT within {timeout_s:g} s"
                )
            self.service(0.05)
        for device, _ in devices:
            reason = self._connack[device]
            if reason.is_failure:
                user, _ = device_credentials(self.target, self.secret_key, device)
                raise StartupError(
                    f"the MQTT broker at {self.target.redacted()} refused logger {device} "
                    f"(client id sim-{device}, user {user or 'anonymous'}): {reason}; check "
                    "COLDCHAIN_MQTT_URL, COLDCHAIN_SECRET_KEY and the broker's password file "
                    "(docs/simulators.md)"
                )
            self._publish_raw(device, self._status[device], "online", retain=True)

    def _register(self, client: mqtt.Client) -> None:
        sock = client.socket()
        if sock is not None:
            self._selector.register(sock, selectors.EVENT_READ, client)
        self._dirty.add(client)

    def _on_connect(self, client: mqtt.Client, device: str, _f: Any, reason: Any, _p: Any) -> None:
        self._connack[device] = reason
        self._lost.discard(device)

    def _on_disconnect(
        self, client: mqtt.Client, device: str, _f: Any, reason: Any, _p: Any
    ) -> None:
        if not self._closed:
            log.warning("simulated logger lost its connection", extra={"device": device})
            self._lost.add(device)
            # Forget the closed socket now, before another connection can reuse its number.
            self._forget(client)

    def _on_publish(
        self, client: mqtt.Client, device: str, _mid: int, reason: Any, _p: Any
    ) -> None:
        self.acked += 1
        if reason.is_failure:
            self.refused += 1

    def _forget(self, client: mqtt.Client) -> None:
        for key in list(self._selector.get_map().values()):
            if key.data is client:
                self._selector.unregister(key.fileobj)

    def _reconnect_lost(self) -> None:
        for device in sorted(self._lost):
            client = self._clients[device]
            try:
                client.reconnect()
            except OSError:
                continue  # the broker is still away; try again on the next round
            self._lost.discard(device)
            self._register(client)

    # -- the event loop ------------------------------------------------------------------

    def service(self, timeout: float) -> None:
        """Read acknowledgements, write what is queued, keep connections alive."""
        with self._lock:
            for key, _ in self._selector.select(timeout):
                client: mqtt.Client = key.data
                client.loop_read()
                self._dirty.add(client)
            for client in list(self._dirty):
                if client.want_write():
                    client.loop_write()
                if not client.want_write():
                    self._dirty.discard(client)
            now = time.monotonic()
            if now - self._last_misc >= KEEPALIVE_CHECK_S:
                self._last_misc = now
                for client in self._clients.values():
                    client.loop_misc()
                if self._lost:
                    self._reconnect_lost()

    def _publish_raw(self, device: str, topic: str, payload: str, *, retain: bool = False) -> None:
        client = self._clients[device]
        client.publish(topic, payload, qos=1, retain=retain)
        self.sent += 1
        self._dirty.add(client)

    def publish(self, message: SimulatedMessage) -> None:
        with self._lock:
            topic = topic_for(self.prefix, message.carrier, message.device)
            self._publish_raw(message.device, topic, message.payload)
            while self.sent - self.acked > MAX_UNACKED:
                self.service(0.05)
            if self.sent % 64 == 0:
                self.service(0)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until the broker acknowledged everything published; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                log.warning(
                    "broker did not acknowledge every message",
                    extra={"unacknowledged": self.sent - self.acked},
                )
                return False
            self.service(0.05)
        return True

    def close(self) -> None:
        """Say ``offline`` (a clean disconnect does not fire the will) and disconnect."""
        with self._lock:
            if self._closed:
                return
            for device in self._clients:
                if device not in self._lost:
                    self._publish_raw(device, self._status[device], "offline", retain=True)
            self.flush(10.0)
            self._closed = True
            self._drop_all()

    def _drop_all(self) -> None:
        self._closed = True
        for client in self._clients.values():
            client.disconnect()
        self._selector.close()


def _ensure_descriptors(connections: int) -> None:
    """Raise the open-file limit for this many sockets, or say why it cannot be done."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + _FD_RESERVE
    if needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise StartupError(
            f"{connections} simulated loggers need {needed} open files but the hard limit "
            f"is {hard}; raise it (ulimit -Hn) or simulate fewer --devices"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def publish_fleet(
    fleet: MqttFleet,
    messages: Iterable[SimulatedMessage],
    speed: float | None,
    stop: threading.Event,
    progress: Progress | None = None,
) -> int:
    """Publish in send-time order, paced by ``speed`` (None: as fast as possible).

    Returns the number of messages published, all acknowledged by the broker unless it
    stopped answering (then a warning is logged).
    """
    first_at: datetime | None = None
    wall_start = time.monotonic()
    sent = 0
    for message in messages:
        if first_at is None:
            first_at = message.at
        if speed is not None:
            due = wall_start + (message.at - first_at).total_seconds() / speed
            while not stop.is_set() and (wait := due - time.monotonic()) > 0:
                fleet.service(min(wait, 0.2))
        if stop.is_set():
            break
        fleet.publish(message)
        sent += 1
        if progress is not None:
            progress.update(message.at, f"{sent} messages")
    fleet.flush()
    return sent
