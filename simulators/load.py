"""Load mode for benchmarks: N loggers at a target total rate, optionally batched."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.clock import isoformat_utc
from simulators.device import SimulatedMessage, encode
from simulators.publisher import MqttFleet, publish_fleet

CARRIER = "load-test"


@dataclass(frozen=True, slots=True)
class LoadLogger:
    device: str
    carrier: str = CARRIER


@dataclass(frozen=True, slots=True)
class LoadReport:
    loggers: int
    messages: int
    readings: int
    elapsed_s: float
    target_rate: float

    @property
    def achieved_rate(self) -> float:
        """Readings per second, from the first publication to the last acknowledgement."""
        return self.readings / self.elapsed_s if self.elapsed_s > 0 else 0.0


def load_loggers(count: int) -> list[LoadLogger]:
    return [LoadLogger(f"LOAD-{i:05d}") for i in range(1, count + 1)]


def load_messages(
    loggers: list[LoadLogger], rate: float, batch: int, duration_s: float, now: datetime
) -> Iterator[SimulatedMessage]:
    """``rate × duration_s`` readings round-robin over the loggers, ``batch`` per message.

    ``at`` spaces messages at ``batch / rate`` seconds, so publishing at speed 1 hits the
    target rate. Each logger's readings are one second apart and end at ``now``, so none
    is stamped in the future (ingest would flag it) and none collides with another.
    """
    total = max(1, round(rate * duration_s))
    per_logger = math.ceil(total / len(loggers))
    first_ts = now - timedelta(seconds=per_logger)
    counters = dict.fromkeys((logger.device for logger in loggers), 0)
    rng = random.Random(f"load:{len(loggers)}:{rate}:{batch}")
    made = 0
    for index in range(math.ceil(total / batch)):
        logger = loggers[index % len(loggers)]
        size = min(batch, total - made)
        readings: list[dict[str, Any]] = []
        for _ in range(size):
            seq = counters[logger.device]
            counters[logger.device] = seq + 1
            readings.append(
                {
                    "ts": isoformat_utc(first_ts + timedelta(seconds=seq)),
                    "seq": seq,
                    "temp_c": round(5.0 + rng.gauss(0.0, 0.3), 2),
                    "battery_pct": 90.0,
                    "status": "ok",
                }
            )
        made += size
        document: dict[str, Any] = (
            {"device_id": logger.device, **readings[0]}
            if batch == 1
            else {"device_id": logger.device, "readings": readings}
        )
        yield SimulatedMessage(
            logger.device,
            logger.carrier,
            now + timedelta(seconds=index * batch / rate),
            encode(document),
            "reading" if batch == 1 else "batch",
            size,
        )


def run_load(
    fleet: MqttFleet,
    loggers: list[LoadLogger],
    rate: float,
    batch: int,
    duration_s: float,
    now: datetime,
    stop: threading.Event,
) -> LoadReport:
    """Publish at the target rate (as fast as possible if the target is out of reach)."""
    readings = 0

    def counted() -> Iterator[SimulatedMessage]:
        nonlocal readings
        for message in load_messages(loggers, rate, batch, duration_s, now):
            readings += message.readings
            yield message

    began = time.monotonic()
    messages = publish_fleet(fleet, counted(), 1.0, stop)
    return LoadReport(len(loggers), messages, readings, time.monotonic() - began, rate)
