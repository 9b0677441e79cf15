"""Run a simulator scenario through ingest and the monitor at full speed, on device time.

Each message is stored as the ingest writer stores it (``store_batch``, received when the
logger sends it); every ``tick_min`` of simulated time the monitor evaluates what is due
and sweeps the live conditions with the wall clock set to that instant, as a running
``coldchain monitor run`` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from core.clock import FixedClock
from core.db import Row
from ingest.service import IncomingMessage, store_batch
from monitor.service import evaluate_due, set_planned_route, sweep_live
from simulators.fleet import fleet_messages, topic_for
from simulators.provision import provision
from simulators.routes import LANES
from simulators.scenario import load_scenario

PREFIX = "coldchain/v1"
DASHBOARD = "http://dash.example"


@dataclass
class ScenarioRun:
    shipments: dict[str, int]  # ref → shipment_id
    end: datetime  # the last instant the monitor ran
    raised: list[tuple[int, str]] = field(default_factory=list)  # live sweep (shipment, rule)
    resolved: list[tuple[int, str]] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)


def _monitor(db: psycopg.Connection[Row], at: datetime, run: ScenarioRun) -> None:
    clock = FixedClock(at)
    while evaluate_due(db, clock, DASHBOARD):
        pass
    outcome = sweep_live(db, clock, DASHBOARD)
    run.raised += outcome.raised
    run.resolved += outcome.resolved
    run.delivered += outcome.delivered


def run_scenario(
    db: psycopg.Connection[Row],
    name: str,
    *,
    corridor_km: float | None = None,
    tick_min: float = 10,
    after_min: float = 1,
) -> ScenarioRun:
    """Provision and play ``name``; with ``corridor_km`` each shipment is watched against
    its lane's planned route (origin → gateway airports → destination)."""
    scenario = load_scenario(name)
    plans = list(scenario.shipments)
    shipments = provision(db, scenario, plans, scenario.start)
    if corridor_km is not None:
        for plan in plans:
            lane = LANES[plan.lane]
            waypoints = [(s.lat, s.lon) for s in (lane.departure, lane.arrival)]
            set_planned_route(
                db,
                shipments[plan.ref],
                corridor_km=corridor_km,
                waypoints=waypoints,
                actor="test",
            )
    messages = fleet_messages(scenario, plans, scenario.start, scenario.seed)
    run = ScenarioRun(shipments, scenario.start)
    tick = timedelta(minutes=tick_min)
    next_tick = scenario.start + tick
    for simulated in messages:
        while simulated.at >= next_tick:
            _monitor(db, next_tick, run)
            next_tick += tick
        incoming = IncomingMessage(
            topic=topic_for(PREFIX, simulated.carrier, simulated.device),
            payload=simulated.payload.encode(),
            received_at=simulated.at,
        )
        store_batch(db, [incoming], PREFIX)
    run.end = messages[-1].at + timedelta(minutes=after_min)
    _monitor(db, run.end, run)
    return run
