"""A fleet's output: every logger's messages merged in the order they are sent."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime

from simulators.device import SimulatedMessage, device_messages, encode
from simulators.scenario import Scenario, ShipmentPlan

__all__ = [
    "SimulatedMessage",
    "encode",
    "fleet_messages",
    "fleet_readings",
    "iter_fleet_messages",
    "topic_for",
]


def iter_fleet_messages(
    scenario: Scenario, plans: list[ShipmentPlan], start: datetime, seed: int
) -> Iterator[SimulatedMessage]:
    """Every logger's messages in send-time order (ties by device id), generated lazily.

    Each logger's own stream is already in time order, so a k-way merge keeps memory to
    one pending message per logger however long the run.
    """
    streams = [device_messages(scenario, plan, start, seed) for plan in plans]
    return heapq.merge(*streams, key=lambda m: (m.at, m.device))


def fleet_messages(
    scenario: Scenario, plans: list[ShipmentPlan], start: datetime, seed: int
) -> list[SimulatedMessage]:
    return list(iter_fleet_messages(scenario, plans, start, seed))


def fleet_readings(
    scenario: Scenario, plans: list[ShipmentPlan], start: datetime, seed: int
) -> list[SimulatedMessage]:
    """The fleet's messages (the name predates batches: a fault-free fleet sends one
    reading per message)."""
    return fleet_messages(scenario, plans, start, seed)


def topic_for(prefix: str, carrier: str, device: str) -> str:
    return f"{prefix}/{carrier}/{device}/telemetry"
