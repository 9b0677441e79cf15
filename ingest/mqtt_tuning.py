"""paho-mqtt tuned for a subscriber that receives thousands of small messages a second.

paho handles every incoming packet with three ``recv`` system calls (type, length, body),
then a ``select`` and a pass of its housekeeping before the next packet, and looks the
topic up in its per-topic callback tree although the ingest registers no per-topic
callbacks. At one reading per message that costs more CPU than validating and storing
the reading. ``tune`` changes five things and nothing in the protocol:

- the socket is read in 64 KiB chunks, and paho takes its packets from that buffer;
- ``loop_read`` goes on handling packets while complete data is buffered (at most
  ``READ_BURST`` rounds, so outgoing acknowledgements and keep-alives are not delayed);
- when the application sets ``on_messages`` (and acknowledges by itself), the complete
  QoS 1 PUBLISH packets without MQTT v5 properties (what Mosquitto forwards from loggers)
  at the front of the buffer are decoded in one pass and handed over together, one call
  per socket read instead of paho's packet state machine and a message object for each;
- other incoming messages go straight to ``on_message``;
- a PUBLISH without properties that paho reads itself is decoded without building an
  empty ``Properties`` object for it, paho's costliest step.

This overrides internal methods of paho-mqtt 2.x (``_create_socket``, which paho itself
uses to wrap TLS and WebSocket transports, ``_handle_publish`` and ``_handle_on_message``)
and the public ``loop_read``. pyproject.toml keeps paho below 3, and the reliability
tests (ingest killed, broker and database restarted, garbage on the wire) run through
this client.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

log = logging.getLogger(__name__)

CHUNK = 65536
READ_BURST = 1000
_UINT16 = struct.Struct("!H")
_QOS1_PUBLISH, _IGNORED_FLAGS = 0x32, 0x09  # PUBLISH with QoS 1; DUP and RETAIN bits

# One received PUBLISH: (topic, payload, packet id, QoS).
Delivery = tuple[str, bytes, int, int]


class _BufferedSocket:
    """A socket (plain or TLS) read in large chunks; hands out the few bytes asked for.

    ``pending()`` reports buffered bytes, which paho checks (as it does for TLS) to go on
    reading without waiting in ``select``.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._offset = 0

    def recv(self, size: int) -> bytes:
        if self._offset >= len(self._buffer):
            data: bytes = self._sock.recv(max(size, CHUNK))
            if len(data) <= size:
                return data
            self._buffer, self._offset = data, 0
        start = self._offset
        self._offset = min(start + size, len(self._buffer))
        return self._buffer[start : self._offset]

    def buffered(self) -> int:
        return len(self._buffer) - self._offset

    def unread(self) -> tuple[bytes, int]:
        """The buffered chunk and where its unread part starts."""
        return self._buffer, self._offset

    def skip_to(self, offset: int) -> None:
        """Mark the chunk read up to ``offset`` (what ``unread`` reported was decoded)."""
        self._offset = offset

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return self.buffered() + int(inner)

    def close(self) -> None:
        self._buffer, self._offset = b"", 0
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        # send, fileno, setblocking, ... are the socket's own.
        return getattr(self._sock, name)


def next_publish(buffer: bytes, position: int, v5: bool) -> tuple[Delivery, int] | None:
    """The QoS 1 PUBLISH without properties that starts at ``position``, and where the
    next packet starts; None if the packet there is another kind or is not complete."""
    end = len(buffer)
    if position >= end or buffer[position] & ~_IGNORED_FLAGS != _QOS1_PUBLISH:
        return None
    # Remaining length: 1 to 4 bytes of 7 bits, least significant first.
    length, shift, index = 0, 0, position + 1
    while True:
        if index >= end or shift > 21:
            return None  # incomplete here, or malformed (paho reports that)
        byte = buffer[index]
        index += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    packet_end = index + length
    if packet_end > end or length < 2:
        return None
    topic_end = index + 2 + ((buffer[index] << 8) | buffer[index + 1])
    payload_start = topic_end + (3 if v5 else 2)  # packet id, then v5's properties length
    if topic_end == index + 2 or payload_start > packet_end:
        return None  # a topic alias (empty topic) or a short packet: paho's to handle
    if v5 and buffer[topic_end + 2] != 0:
        return None  # has properties
    topic = buffer[index + 2 : topic_end].decode("utf-8", "replace")
    mid = (buffer[topic_end] << 8) | buffer[topic_end + 1]
    return (topic, buffer[payload_start:packet_end], mid, 1), packet_end


class TunedClient(mqtt.Client):
    """paho's Client with buffered reads; see the module docstring."""

    # Receives the messages decoded together from one socket read (see the module
    # docstring). A class attribute: ``tune`` gives an existing client this class.
    on_messages: Callable[[list[Delivery]], None] | None = None

    def _create_socket(self) -> Any:
        return _BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(READ_BURST):
            sock = self._sock
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not isinstance(sock, _BufferedSocket):
                break
            if not sock.buffered():
                break
            if self._in_packet["command"] == 0 and self._deliver_buffered(sock):
                continue  # paho is between packets: decode what is buffered here
            rc = super().loop_read(max_packets)
        return rc

    def _deliver_buffered(self, sock: _BufferedSocket) -> bool:
        """Decode the complete property-less QoS 1 PUBLISH packets at the front of the
        buffer and hand them to ``on_messages``; False if there was none."""
        on_messages = self.on_messages
        if on_messages is None or not self._manual_ack:
            return False  # paho acknowledges by itself only on its own path
        buffer, position = sock.unread()
        v5 = self._protocol == mqtt.MQTTv5
        deliveries = []
        while (decoded := next_publish(buffer, position, v5)) is not None:
            delivery, position = decoded
            deliveries.append(delivery)
        if not deliveries:
            return False
        sock.skip_to(position)
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()  # paho's keep-alive clock
        with self._in_callback_mutex:
            try:
                on_messages(deliveries)
            except Exception:
                log.exception("on_messages failed")
                if not self.suppress_exceptions:
                    raise
        return True

    def _handle_publish(self) -> MQTTErrorCode:
        command: int = self._in_packet["command"]
        packet: bytearray = self._in_packet["packet"]
        # The ingest's case, decoded here: MQTT v5, QoS 1, no properties, acknowledged by
        # the application after its commit. Anything else is paho's to decode.
        if (command & 0x06) != 0x02 or self._protocol != mqtt.MQTTv5 or not self._manual_ack:
            return super()._handle_publish()
        (topic_length,) = _UINT16.unpack_from(packet, 0)
        position = 2 + topic_length  # then the packet id (2 bytes) and the properties
        if len(packet) < position + 3 or packet[position + 2] != 0 or topic_length == 0:
            return super()._handle_publish()
        (mid,) = _UINT16.unpack_from(packet, position)
        message = mqtt.MQTTMessage(mid=mid, topic=bytes(packet[2:position]))
        message.dup = bool(command & 0x08)
        message.qos = 1
        message.retain = bool(command & 0x01)
        message.payload = bytes(packet[position + 3 :])
        message.timestamp = time.monotonic()
        self._handle_on_message(message)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        # No per-topic callbacks are registered (message_callback_add), so paho's walk of
        # its topic tree for each message would always come back empty.
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception:
                log.exception("on_message failed")
                if not self.suppress_exceptions:
                    raise


def tune(client: mqtt.Client) -> TunedClient:
    """The same client, configured as it is, with the tuned packet handling.

    ``TunedClient`` adds methods only, no state, so an existing client can take its class.
    """
    client.__class__ = TunedClient
    assert isinstance(client, TunedClient)
    return client
