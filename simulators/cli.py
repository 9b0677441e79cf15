"""`coldchain simulate`: list scenarios, write JSONL, publish a fleet, replay, or load-test."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.clock import SystemClock
from core.errors import StartupError
from core.runner import stop_on_signals
from core.settings import Settings
from simulators.device import SimulatedMessage
from simulators.fleet import iter_fleet_messages
from simulators.progress import Progress
from simulators.publisher import (
    LoggerIdentity,
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
    print(text, flush=True)  # noqa: T201 - command output


def _secret(settings: Settings) -> str | None:
    return settings.secret_key.get_secret_value() if settings.secret_key else None


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    modes = [flag for flag in ("list", "scenario", "replay", "load") if getattr(args, flag)]
    if len(modes) > 1:
        raise StartupError(f"choose one of --list, --scenario, --replay, --load (got {modes})")
    if args.list:
        for name, scenario in sorted(shipped_scenarios().items()):
            _out(
                f"{name:<28} {len(scenario.shipments)} shipment(s), {scenario.duration_h:g} h, "
                f"every {scenario.interval_min:g} min — {scenario.description}"
            )
        return 0
    if args.replay:
        return run_replay(args, settings)
    if args.load:
        return run_load_mode(args, settings)
    if not args.scenario:
        raise StartupError(
            "simulate needs --scenario NAME_OR_FILE (or --list, --replay FILE.csv, --load)"
        )
    try:
        scenario = load_scenario(args.scenario)
        plans = scale_fleet(scenario, args.devices)
    except ScenarioError as exc:
        raise StartupError(str(exc)) from exc
    seed = scenario.seed if args.seed is None else args.seed
    span = timedelta(hours=scenario.duration_h)

    if args.output:
        # Files are reproducible: the scenario's own start time, never the wall clock.
        progress = Progress(scenario.start, span, "simulating", enabled=args.progress or None)
        messages = iter_fleet_messages(scenario, plans, scenario.start, seed)
        count = _write(args.output, messages, settings.topic_prefix, progress)
        _out(f"wrote {count} messages from {len(plans)} logger(s) to {args.output}")
        return 0

    start = simulation_start(scenario, SystemClock().now(), args.speed)
    if args.provision:
        run_provision(settings, scenario, plans, start, seed)
    progress = Progress(start, span, "publishing", enabled=args.progress or None)
    messages = iter_fleet_messages(scenario, plans, start, seed)
    return _publish(settings, plans, messages, args.speed, progress)


def _write(path: str, messages: Iterable[SimulatedMessage], prefix: str, progress: Progress) -> int:
    try:
        target = output_path(path)
    except ValueError as exc:
        raise StartupError(str(exc)) from exc
    with target.open("w", encoding="utf-8", newline="\n") as out:
        count = write_jsonl(messages, prefix, out, progress)
    progress.close(f"{count} messages")
    return count


def _publish(
    settings: Settings,
    loggers: Sequence[LoggerIdentity],
    messages: Iterator[SimulatedMessage],
    speed: float | None,
    progress: Progress,
) -> int:
    stop = threading.Event()
    stop_on_signals(stop)
    readings = 0

    def counted() -> Iterator[SimulatedMessage]:
        nonlocal readings
        for message in messages:
            readings += message.readings
            yield message

    fleet = MqttFleet(settings.mqtt, settings.topic_prefix, loggers, secret_key=_secret(settings))
    pace = "as fast as possible" if speed is None else f"at {speed:g}x"
    _out(
        f"publishing from {len(loggers)} logger(s) {pace} to {settings.mqtt.redacted()} "
        "(Ctrl-C stops)"
    )
    try:
        sent = publish_fleet(fleet, counted(), speed, stop, progress)
    finally:
        fleet.close()
    progress.close(f"{sent} messages")
    _out(f"published {sent} messages carrying {readings} readings")
    _check_delivery(fleet)
    return 0


def _check_delivery(fleet: MqttFleet) -> None:
    """A run whose messages the broker refused or never acknowledged is a failed run."""
    if fleet.refused:
        raise StartupError(
            f"the broker refused {fleet.refused} publication(s) (not authorized): the "
            "loggers' user may not write these topics; see the broker's ACL"
        )
    if fleet.acked < fleet.sent:
        raise StartupError(
            f"the broker acknowledged only {fleet.acked} of {fleet.sent} publications; "
            "it was unreachable for part of the run"
        )


def run_provision(
    settings: Settings,
    scenario: Scenario,
    plans: list[ShipmentPlan],
    start: datetime,
    seed: int | None = None,
) -> None:
    from core.db import connect
    from simulators.provision import provision

    with connect(settings.require_database_url()) as conn:
        try:
            shipments = provision(
                conn, scenario, plans, start, seed=seed, secret_key=_secret(settings)
            )
        except ScenarioError as exc:
            raise StartupError(str(exc)) from exc
    _out(f"provisioned {len(shipments)} shipment(s) with their cases and loggers")


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.replay import ReplayError, ReplayLogger, read_export, replay_messages

    if not args.device or not args.carrier:
        raise StartupError("--replay needs --device ID and --carrier CARRIER")
    try:
        tz = ZoneInfo(args.tz) if args.tz else None
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise StartupError(f"--tz {args.tz!r} is not an IANA time zone") from exc
    try:
        readings = read_export(Path(args.replay), args.device, tz)
    except ReplayError as exc:
        raise StartupError(str(exc)) from exc
    logger = ReplayLogger(args.device, args.carrier)
    first = datetime.fromisoformat(str(readings[0]["ts"]))
    last = max(datetime.fromisoformat(str(r["ts"])) for r in readings)
    progress = Progress(first, last - first, "replaying", enabled=args.progress or None)
    if args.output:
        count = _write(
            args.output, replay_messages(readings, args.carrier), settings.topic_prefix, progress
        )
        _out(f"wrote {count} messages from {args.device} to {args.output}")
        return 0
    if args.provision:
        from core.db import connect
        from simulators.provision import register_loggers

        with connect(settings.require_database_url()) as conn:
            register_loggers(conn, [logger], 10, secret_key=_secret(settings))
        _out(f"registered {args.device} (carrier {args.carrier})")
    return _publish(
        settings, [logger], replay_messages(readings, args.carrier), args.speed, progress
    )


def run_load_mode(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.load import load_loggers, run_load

    if args.rate is None or args.rate <= 0:
        raise StartupError("--load needs --rate READINGS_PER_S above 0")
    if args.batch < 1 or args.duration_s <= 0:
        raise StartupError("--batch must be at least 1 and --duration-s above 0")
    if args.output:
        raise StartupError("--load measures a broker; it cannot write --output")
    devices = args.devices or 100
    if devices < 1:
        raise StartupError("--devices must be at least 1")
    loggers = load_loggers(devices)
    if args.provision:
        from core.db import connect
        from simulators.provision import register_loggers

        with connect(settings.require_database_url()) as conn:
            register_loggers(conn, loggers, 1, secret_key=_secret(settings))
        _out(f"registered {devices} load-test logger(s)")
    stop = threading.Event()
    stop_on_signals(stop)
    fleet = MqttFleet(settings.mqtt, settings.topic_prefix, loggers, secret_key=_secret(settings))
    _out(
        f"load: {devices} logger(s), target {args.rate:g} readings/s in messages of "
        f"{args.batch}, for {args.duration_s:g} s, to {settings.mqtt.redacted()}"
    )
    try:
        report = run_load(
            fleet, loggers, args.rate, args.batch, args.duration_s, SystemClock().now(), stop
        )
    finally:
        fleet.close()
    _out(
        f"published {report.readings} readings in {report.messages} messages in "
        f"{report.elapsed_s:.2f} s: achieved {report.achieved_rate:.1f} readings/s "
        f"(target {report.target_rate:g})"
    )
    _check_delivery(fleet)
    return 0
