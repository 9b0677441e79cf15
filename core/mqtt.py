"""paho-mqtt 2.x client construction shared by ingest and the simulators."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.errors import StartupError
from core.settings import MqttTarget


def new_client(
    target: MqttTarget,
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    manual_ack: bool = False,
    persistent_session: bool = False,
) -> mqtt.Client:
    """A client for ``target``; ``username``/``password`` override the URL's credentials."""
    protocol = mqtt.MQTTv5 if target.mqtt_v5 else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        # MQTT 3.1.1 expresses a persistent session as clean_session=False; v5 takes
        # clean_start at connect() time instead.
        clean_session=None if target.mqtt_v5 else not persistent_session,
        manual_ack=manual_ack,
    )
    user = username if username is not None else target.username
    secret = password if password is not None else target.password
    if user is not None:
        client.username_pw_set(user, secret)
    if target.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def connect_properties(session_expiry_s: int = 0, receive_maximum: int | None = None) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry_s:
        props.SessionExpiryInterval = session_expiry_s
    if receive_maximum:
        props.ReceiveMaximum = receive_maximum
    return props


def connect(client: mqtt.Client, target: MqttTarget, **kwargs: Any) -> None:
    """Connect once, turning an unreachable broker into a StartupError that says so."""
    try:
        client.connect(target.host, target.port, keepalive=30, **kwargs)
    except (OSError, socket.gaierror) as exc:
        raise StartupError(
            f"cannot connect to the MQTT broker at {target.redacted()} ({exc.strerror or exc}); "
            "check COLDCHAIN_MQTT_URL and that the broker is running"
        ) from exc


def refused_for_credentials(reason_code: Any) -> bool:
    """True when the broker refused us for bad credentials: retrying would never help."""
    text = str(reason_code).lower()
    return "not authorized" in text or "bad user name or password" in text
