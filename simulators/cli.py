"""`coldchain simulate`: list scenarios, write JSONL, or publish a fleet over MQTT."""

from __future__ import annotations

import argparse
import logging
import threading
from datetime import datetime

from core.clock import SystemClock
from core.errors import StartupError
from core.runner import stop_on_signals
from core.settings import Settings
from simulators.fleet import fleet_readings
from simulators.publisher import (
    MqttFleet,
    output_path,
    publish_fleet,
    simulation_start,
    write_jsonl,
)
from simulators.scenario import (
    Scenario,
    ScenarioError,
    ShipmentPlan,
    load_scenario,
    scale_fleet,
    shipped_scenarios,
)

log = logging.getLogger(__name__)


def _out(text: str) -> None:
    print(text)  # noqa: T201 - command output


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    if args.list:
        for name, scenario in sorted(shipped_scenarios().items()):
            _out(
                f"{name:<24} {len(scenario.shipments)} shipment(s), {scenario.duration_h:g} h — "
                f"{scenario.description}"
            )
        return 0
    if not args.scenario:
        raise StartupError("simulate needs --scenario NAME_OR_FILE (or --list to see them)")
    try:
        scenario = load_scenario(args.scenario)
        plans = scale_fleet(scenario, args.devices)
    except ScenarioError as exc:
        raise StartupError(str(exc)) from exc
    seed = scenario.seed if args.seed is None else args.seed

    if args.output:
        # Files are reproducible: the scenario's own start time, never the wall clock.
        try:
            path = output_path(args.output)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        readings = fleet_readings(scenario, plans, scenario.start, seed)
        with path.open("w", encoding="utf-8", newline="\n") as out:
            count = write_jsonl(readings, settings.topic_prefix, out)
        _out(f"wrote {count} messages from {len(plans)} logger(s) to {path}")
        return 0

    start = simulation_start(scenario, SystemClock().now(), args.speed)
    if args.provision:
        run_provision(settings, scenario, plans, start)
    readings = fleet_readings(scenario, plans, start, seed)
    stop = threading.Event()
    stop_on_signals(stop)
    fleet = MqttFleet(settings.mqtt, settings.topic_prefix, plans)
    pace = "as fast as possible" if args.speed is None else f"at {args.speed:g}x"
    _out(
        f"publishing {len(readings)} readings from {len(plans)} logger(s) {pace} "
        f"to {settings.mqtt.redacted()} (Ctrl-C stops)"
    )
    try:
        sent = publish_fleet(fleet, readings, args.speed, stop)
    finally:
        fleet.close()
    _out(f"published {sent} readings")
    return 0


def run_provision(
    settings: Settings, scenario: Scenario, plans: list[ShipmentPlan], start: datetime
) -> None:
    from core.db import connect
    from simulators.provision import provision

    with connect(settings.require_database_url()) as conn:
        shipments = provision(conn, scenario, plans, start)
    _out(f"provisioned {len(shipments)} shipment(s) and their loggers")
